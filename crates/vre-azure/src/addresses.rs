//! Standard static public IPs and their association with a NIC.

use serde_json::Value;
use vre_core::{CloudResource, ClusterRef, ResourceKey, ResourceKind, Result, attr};

use crate::call::{self, NicSpec};
use crate::instances::nic_name;
use crate::provider::{AzureProvider, key_of, last_segment, same_id, status_of, str_at, tags};

impl AzureProvider {
    pub(crate) fn pip_resource(&self, v: &Value) -> CloudResource {
        let id = str_at(v, "/id").unwrap_or_default();
        let state = str_at(v, "/properties/provisioningState").unwrap_or("Succeeded");
        let mut r = CloudResource::new(
            ResourceKind::PublicIp,
            id,
            str_at(v, "/name").unwrap_or(last_segment(id)),
        )
        .with_status(status_of(state, None));
        if let Some(ip) = str_at(v, "/properties/ipAddress") {
            r = r.with_attr(attr::ADDRESS, ip);
        }
        if let Some(k) = key_of(v) {
            r = r.with_key(k);
        }
        r
    }

    /// A Standard static public IP (`CloudProvider::allocate_public_ip`).
    pub(crate) async fn public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let pip = match self
            .client
            .get_opt(&call::public_ip_addresses_get(&self.scope, name))
            .await?
        {
            Some(p) => p,
            None => {
                let role = key.node().map(|(r, _)| r);
                let put = call::public_ip_addresses_create(&self.scope, name, &tags(&cluster.name, Some(key), role));
                self.client.execute(&put).await?
            }
        };
        Ok(self.pip_resource(&pip).with_key(key.clone()))
    }

    /// Puts a public IP on the VM's NIC (`CloudProvider::associate_public_ip`).
    pub(crate) async fn attach_public_ip(
        &self,
        cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let name = nic_name(&instance.name);
        let nic = self
            .client
            .send(&call::network_interfaces_get(&self.scope, &name))
            .await?;
        let ipc = nic
            .pointer("/properties/ipConfigurations/0/properties")
            .cloned()
            .unwrap_or(Value::Null);
        let bound = str_at(&ipc, "/publicIPAddress/id").is_some_and(|i| same_id(i, &ip.id));
        if !bound {
            // created before its address existed: bind it now
            let spec = NicSpec {
                subnet_id: str_at(&ipc, "/subnet/id").unwrap_or_default().to_string(),
                security_group_id: str_at(&nic, "/properties/networkSecurityGroup/id")
                    .unwrap_or_default()
                    .to_string(),
                private_ip: (str_at(&ipc, "/privateIPAllocationMethod") == Some("Static"))
                    .then(|| str_at(&ipc, "/privateIPAddress").unwrap_or_default().to_string()),
                public_ip_id: Some(ip.id.clone()),
            };
            let node_tags = tags(
                &cluster.name,
                instance.key.as_ref(),
                instance.key.as_ref().and_then(|k| k.node()).map(|n| n.0),
            );
            self.client
                .execute(&call::network_interfaces_create(&self.scope, &name, &spec, &node_tags))
                .await?;
        }
        let pip = self
            .client
            .send(&call::public_ip_addresses_get(&self.scope, &ip.name))
            .await?;
        let mut r = self
            .pip_resource(&pip)
            .with_attr(attr::INSTANCE_ID, instance.id.clone());
        if let Some(k) = &ip.key {
            r = r.with_key(k.clone());
        }
        Ok(r)
    }
}
