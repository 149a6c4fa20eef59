//! Public addresses of edge nodes and the master: Elastic IPs allocated
//! (tagged) before the node exists, so their address can go into the API
//! server certificate, and associated once the node runs.

use vre_core::{CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result, attr as core_attr};

use crate::error::Blame;
use crate::provider::{AwsProvider, attr, key_of};
use crate::requests;
use crate::wire::{self, AllocateAddressResponse, AssociateAddressResponse, DescribeAddressesResponse, Tagged};

/// An Elastic IP as the engine sees it.
pub fn address_resource(a: &wire::Address) -> CloudResource {
    let id = a.allocation_id.clone().unwrap_or_else(|| a.public_ip.clone());
    let name = a.tag("Name").unwrap_or(&a.public_ip).to_string();
    let mut r = AwsProvider::resource(ResourceKind::PublicIp, &id, &name, key_of(a))
        .with_attr(core_attr::ADDRESS, a.public_ip.clone());
    if let Some(i) = &a.instance_id {
        r = r.with_attr(core_attr::INSTANCE_ID, i.clone());
    }
    if let Some(x) = &a.association_id {
        r = r.with_attr(attr::ASSOCIATION_ID, x.clone());
    }
    r
}

impl AwsProvider {
    async fn address(&self, allocation_id: &str) -> Result<Option<wire::Address>> {
        match self
            .ec2
            .call::<DescribeAddressesResponse>(&requests::describe_address(allocation_id))
            .await
        {
            Ok(r) => Ok(r.addresses_set.into_vec().into_iter().next()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn allocate_address(
        &self,
        cluster: &ClusterRef,
        key: &ResourceKey,
        name: &str,
    ) -> Result<CloudResource> {
        let found: DescribeAddressesResponse = self
            .call(
                &requests::describe_address_of_key(&cluster.name, key.as_str()),
                &Blame::default(),
            )
            .await?;
        let mut found = found.addresses_set.into_vec();
        found.sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
        let address = match found.into_iter().next() {
            Some(a) => a,
            None => {
                let tags = self.tags(cluster, Some(key), name);
                let blame = Blame {
                    role: key.node().map(|(r, _)| r),
                    ..Blame::default()
                };
                let made: AllocateAddressResponse = self.call(&requests::allocate_address(&tags), &blame).await?;
                wire::Address {
                    allocation_id: Some(made.allocation_id),
                    public_ip: made.public_ip,
                    ..Default::default()
                }
            }
        };
        let mut r = address_resource(&address).with_key(key.clone());
        r.name = name.to_string();
        Ok(r)
    }

    pub(crate) async fn associate_address(
        &self,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let Some(current) = self.address(&ip.id).await? else {
            return Err(Error::component(
                "public IP",
                format!(
                    "Elastic IP {} ({}) was released outside vre; run `vre apply` again to allocate a new one",
                    ip.id, ip.name
                ),
            ));
        };
        let association = if current.instance_id.as_deref() == Some(instance.id.as_str()) {
            current.association_id.clone()
        } else {
            let made: AssociateAddressResponse = self
                .call(&requests::associate_address(&ip.id, &instance.id), &Blame::default())
                .await?;
            made.association_id
        };
        let mut r = address_resource(&current);
        r.name = ip.name.clone();
        r.key = ip.key.clone();
        r = r.with_attr(core_attr::INSTANCE_ID, instance.id.clone());
        if let Some(a) = association {
            r = r.with_attr(attr::ASSOCIATION_ID, a);
        }
        Ok(r)
    }

    /// Disassociates (when bound) and releases an Elastic IP.
    pub(crate) async fn release(&self, ip: &CloudResource) -> Result<()> {
        let Some(current) = self.address(&ip.id).await? else {
            return Ok(());
        };
        if let Some(assoc) = &current.association_id {
            self.send_unless_gone(&requests::disassociate_address(assoc)).await?;
        }
        self.send_unless_gone(&requests::release_address(&ip.id)).await?;
        Ok(())
    }
}
