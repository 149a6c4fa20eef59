//! Floating IPs of edge nodes and the master: allocated from the pool,
//! tagged with the cluster and their key, bound to the node's port.

use serde_json::Value;
use vre_core::SpecField;
use vre_core::spec::Role;
use vre_core::{CloudResource, ClusterRef, KEY_TAG, ResourceKey, ResourceKind, attr};

use crate::error::OpenStackError;
use crate::neutron::{parse_list, parse_one};
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{FloatingIp, cluster_tag, key_tag, tag_value};

impl OpenStackProvider {
    /// The floating IP keyed `key`: found by its tags, taken back from an
    /// interrupted allocation, or allocated from the pool and tagged.
    pub(crate) async fn allocate_ip(
        &self,
        cluster: &ClusterRef,
        key: &ResourceKey,
        name: &str,
    ) -> OsResult<CloudResource> {
        let api = self.api().await?;
        let tags = vec![cluster_tag(&cluster.name), key_tag(key.as_str())];
        let v: Value = api.json(requests::find_floating_ips_tagged(&tags)).await?;
        let found: Vec<FloatingIp> = parse_list(&v, "floatingips", "find floating IP")?;
        if let Some(f) = found.first() {
            return Ok(self.floating_ip_resource(f, Some(name)).with_key(key.clone()));
        }
        // one allocated by an interrupted earlier call, before it was tagged
        let v: Value = api.json(requests::find_floating_ips_described(name)).await?;
        let untagged: Vec<FloatingIp> = parse_list(&v, "floatingips", "find floating IP")?;
        let fip = match untagged
            .into_iter()
            .find(|f| f.description == name && f.tags.is_empty())
        {
            Some(f) => f,
            None => {
                let pool = self
                    .external_network(self.settings.pool(), self.settings.pool_key())
                    .await?;
                let v: Value = match api.json(requests::allocate_floating_ip(&pool.id, name)).await {
                    Ok(v) => v,
                    Err(OpenStackError::Api {
                        status: 409,
                        code,
                        message,
                        ..
                    }) if code.as_deref() == Some("OverQuota") || message.contains("Quota") => {
                        let role = key.node().map_or(Role::Edge, |n| n.0);
                        return Err(OpenStackError::Rejected {
                            field: SpecField::PublicIp(role),
                            message: format!("{message}; release unused floating IPs or ask for more quota"),
                        });
                    }
                    Err(e) => return Err(e),
                };
                parse_one(&v, "floatingip", "allocate floating IP")?
            }
        };
        self.set_tags("floatingips", &fip.id, tags.clone()).await?;
        let mut fip = fip;
        fip.tags = tags;
        Ok(self.floating_ip_resource(&fip, Some(name)).with_key(key.clone()))
    }

    /// Binds floating IP `ip` to the port of `instance` holding its private address.
    pub(crate) async fn associate(&self, ip: &CloudResource, instance: &CloudResource) -> OsResult<CloudResource> {
        let ports = self.ports(&[("device_id", instance.id.clone())]).await?;
        let private = instance.attr(attr::PRIVATE_IP);
        let port = ports
            .iter()
            .find(|p| private.is_some_and(|ip| p.fixed_ips.iter().any(|f| f.ip_address == ip)))
            .or(ports.first())
            .ok_or_else(|| OpenStackError::Failed {
                service: "neutron",
                operation: "associate floating IP".into(),
                message: format!("server {} has no port to bind {} to", instance.name, ip.name),
            })?;
        let api = self.api().await?;
        let v: Value = api.json(requests::show_floating_ip(&ip.id)).await?;
        let current: FloatingIp = parse_one(&v, "floatingip", "show floating IP")?;
        let bound = if current.port_id.as_deref() == Some(port.id.as_str()) {
            current
        } else {
            let v: Value = api.json(requests::associate_floating_ip(&ip.id, &port.id)).await?;
            parse_one(&v, "floatingip", "associate floating IP")?
        };
        let mut r = self
            .floating_ip_resource(&bound, Some(&ip.name))
            .with_attr(attr::INSTANCE_ID, instance.id.clone());
        if let Some(k) = &ip.key {
            r = r.with_key(k.clone());
        }
        Ok(r)
    }

    /// A floating IP as the engine sees it, named `name` (else by its description).
    pub(crate) fn floating_ip_resource(&self, f: &FloatingIp, name: Option<&str>) -> CloudResource {
        let key = tag_value(&f.tags, KEY_TAG).and_then(ResourceKey::parse);
        let name = name.map(str::to_string).unwrap_or_else(|| f.description.clone());
        let mut r = CloudResource::new(ResourceKind::PublicIp, &f.id, name)
            .with_attr(attr::ADDRESS, f.floating_ip_address.clone());
        if let Some(p) = &f.port_id {
            r = r.with_attr("port_id", p.clone());
        }
        if let Some(ip) = &f.fixed_ip_address {
            r = r.with_attr(attr::PRIVATE_IP, ip.clone());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }
}
