//! Reserved external addresses and their access configs on instances.

use serde_json::Value;
use vre_core::{CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, ResourceStatus, Result, attr};

use crate::call;
use crate::ownership::{key_from_label, labels};
use crate::provider::{GcpProvider, INTERNAL_ADDRESS_KIND, create, last_segment, str_at};

impl GcpProvider {
    pub(crate) fn address_resource(&self, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let region = str_at(v, "/region").map_or(self.loc.region.as_str(), last_segment);
        let id = format!("projects/{}/regions/{region}/addresses/{name}", self.loc.project);
        let status = match str_at(v, "/status").unwrap_or("RESERVED") {
            "RESERVING" => ResourceStatus::Pending,
            _ => ResourceStatus::Ready,
        };
        let kind = if str_at(v, "/addressType") == Some("INTERNAL") {
            ResourceKind::Other(INTERNAL_ADDRESS_KIND.into())
        } else {
            ResourceKind::PublicIp
        };
        let mut r = CloudResource::new(kind, id, name).with_status(status);
        if let Some(a) = str_at(v, "/address") {
            r = r.with_attr(attr::ADDRESS, a);
        }
        if let Some(k) = v
            .pointer(&format!("/labels/{}", vre_core::KEY_LABEL))
            .and_then(Value::as_str)
            .and_then(key_from_label)
        {
            r = r.with_key(k);
        }
        r
    }

    /// Reserves an external address (`CloudProvider::allocate_public_ip`).
    pub(crate) async fn reserve_address(
        &self,
        cluster: &ClusterRef,
        key: &ResourceKey,
        name: &str,
    ) -> Result<CloudResource> {
        let get = call::addresses_get(&self.loc, name);
        let v = match self.client.get_opt(&get).await? {
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "address", name)?;
                v
            }
            None => {
                let role = key.node().map(|(r, _)| r);
                let insert = call::addresses_insert(
                    &self.loc,
                    name,
                    &format!("public address of vre cluster {}", cluster.name),
                    &labels(&cluster.name, Some(key), role),
                );
                create(&self.client, &insert).await?;
                self.client.send(&get).await?
            }
        };
        Ok(self.address_resource(&v).with_key(key.clone()))
    }

    /// Puts a reserved address on an instance's access config (`CloudProvider::associate_public_ip`).
    pub(crate) async fn attach_address(&self, ip: &CloudResource, instance: &CloudResource) -> Result<CloudResource> {
        let address = ip
            .attr(attr::ADDRESS)
            .ok_or_else(|| {
                Error::component(
                    "apply",
                    format!("public IP {} has no address recorded; run `vre apply` again", ip.name),
                )
            })?
            .to_string();
        let (zone, name, v) = self.instance_by_id(&instance.id).await?.ok_or_else(|| {
            Error::from(vre_core::CloudError::http(
                crate::error::SERVICE,
                format!("bind {address} to {}", instance.name),
                404,
                format!("instance {} does not exist", instance.name),
                None,
            ))
        })?;
        let nic = str_at(&v, "/networkInterfaces/0/name").unwrap_or("nic0").to_string();
        let configs: Vec<Value> = v
            .pointer("/networkInterfaces/0/accessConfigs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let bound = configs.iter().any(|c| str_at(c, "/natIP") == Some(address.as_str()));
        if !bound {
            // bulkInsert gave the node an ephemeral address (it boots with
            // internet access); swap it for the reserved one
            for c in &configs {
                if let Some(cfg) = str_at(c, "/name") {
                    self.client
                        .execute(&call::instances_delete_access_config(
                            &self.loc, &zone, &name, &nic, cfg,
                        ))
                        .await?;
                }
            }
            self.client
                .execute(&call::instances_add_access_config(
                    &self.loc, &zone, &name, &nic, &address,
                ))
                .await?;
        }
        Ok(ip.clone().with_attr(attr::INSTANCE_ID, instance.id.clone()))
    }
}
