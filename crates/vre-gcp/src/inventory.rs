//! What the cluster owns in the project, and deleting one resource of it.

use serde_json::Value;
use vre_core::plan::{key_pair_name, network_name};
use vre_core::{CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result};

use crate::call::{self, ComputeCall};
use crate::network::subnet_name;
use crate::ownership::{self, is_owned, label_filter};
use crate::provider::{
    DATA_DEVICE, GcpProvider, INTERNAL_ADDRESS_KIND, REUSED_ATTR, parse_path, remove, str_at, unexpected,
};
use crate::volumes::attachment_resource;

impl GcpProvider {
    /// Everything labelled as the cluster's (`CloudProvider::inventory`).
    pub(crate) async fn owned(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        let c = &cluster.name;
        let own_network = self.settings.network.is_none();
        let (net_name, sub_name) = (network_name(c), subnet_name(c));
        let (get_net, get_sub) = (
            call::networks_get(&self.loc, &net_name),
            call::subnetworks_get(&self.loc, &sub_name),
        );
        let firewalls = call::firewalls_list(&self.loc, &ownership::name_prefix_filter(c));
        let (addresses, disks) = (
            call::addresses_list(&self.loc, &label_filter(c)),
            call::disks_list(&self.loc, &label_filter(c)),
        );
        let instance_list = call::instances_list(&self.loc, &label_filter(c));
        let maybe = |call: ComputeCall| async move {
            if own_network {
                self.client.get_opt(&call).await
            } else {
                Ok(None)
            }
        };
        // independent listings, side by side
        let (net, sub, firewalls, addresses, disks, instances) = futures::try_join!(
            maybe(get_net),
            maybe(get_sub),
            self.client.list(&firewalls),
            self.client.list(&addresses),
            self.client.list(&disks),
            self.client.list(&instance_list),
        )?;
        let mut out = Vec::new();
        if net.as_ref().is_some_and(|v| is_owned(v, c)) {
            out.push(
                CloudResource::new(
                    ResourceKind::Network,
                    self.loc.global_url("networks", &net_name),
                    &net_name,
                )
                .with_key(ResourceKey::network()),
            );
        }
        if sub.as_ref().is_some_and(|v| is_owned(v, c)) {
            out.push(CloudResource::new(
                ResourceKind::Subnet,
                self.loc.region_url("subnetworks", &sub_name),
                &sub_name,
            ));
        }
        out.extend(
            firewalls
                .iter()
                .filter(|v| is_owned(v, c))
                .map(|v| self.firewall_resource(cluster, v)),
        );
        out.extend(addresses.iter().map(|v| self.address_resource(v)));
        for d in &disks {
            let r = self.disk_resource(d);
            let in_use = d.get("users").and_then(Value::as_array).is_some_and(|u| !u.is_empty());
            // a boot disk in use is part of its instance and goes with it
            if r.kind == ResourceKind::Volume || !in_use {
                out.push(r);
            }
        }
        for v in &instances {
            let inst = self.instance_resource(cluster, v);
            for d in v.get("disks").and_then(Value::as_array).into_iter().flatten() {
                if str_at(d, "/deviceName") != Some(DATA_DEVICE) {
                    continue;
                }
                let source = str_at(d, "/source").unwrap_or_default();
                let Some(vol) = disks
                    .iter()
                    .map(|x| self.disk_resource(x))
                    .find(|x| source.ends_with(&format!("/disks/{}", x.name)))
                else {
                    continue;
                };
                if let Some((role, i)) = vol.key.as_ref().and_then(|k| k.node()) {
                    out.push(attachment_resource(ResourceKey::attachment(role, i), &inst.id, &vol));
                }
            }
            out.push(inst);
        }
        if !instances.is_empty() {
            // the key lives in the instances' metadata and goes with them
            let name = key_pair_name(c);
            out.push(
                CloudResource::new(ResourceKind::KeyPair, format!("metadata/ssh-keys/{name}"), name)
                    .with_key(ResourceKey::key_pair()),
            );
        }
        Ok(out)
    }

    /// Deletes one resource; one already gone is fine (`CloudProvider::delete`).
    pub(crate) async fn delete_resource(&self, resource: &CloudResource) -> Result<()> {
        let l = &self.loc;
        let path = || {
            parse_path(&resource.id).ok_or_else(|| {
                unexpected(
                    &format!("delete {} {}", resource.kind, resource.name),
                    format!("\"{}\" is not a resource path", resource.id),
                )
            })
        };
        match &resource.kind {
            ResourceKind::KeyPair => Ok(()),
            ResourceKind::Network => {
                if resource.attr(REUSED_ATTR) == Some("true") {
                    return Ok(());
                }
                remove(&self.client, &call::networks_delete(l, path()?.name)).await
            }
            ResourceKind::Subnet => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::subnetworks_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::SecurityGroup => remove(&self.client, &call::firewalls_delete(l, path()?.name)).await,
            ResourceKind::Other(k) if k == "firewall" => {
                remove(&self.client, &call::firewalls_delete(l, path()?.name)).await
            }
            ResourceKind::Other(k) if k == INTERNAL_ADDRESS_KIND => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::addresses_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::PublicIp => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::addresses_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::Volume => {
                let p = path()?;
                remove(&self.client, &call::disks_delete(l, p.zone.unwrap_or(&l.zone), p.name)).await
            }
            ResourceKind::Other(k) if k == "disk" => {
                let p = path()?;
                remove(&self.client, &call::disks_delete(l, p.zone.unwrap_or(&l.zone), p.name)).await
            }
            ResourceKind::Instance => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::instances_delete(l, p.zone.unwrap_or(&l.zone), p.name),
                )
                .await
            }
            ResourceKind::VolumeAttachment => {
                let (instance, device) = resource
                    .id
                    .split_once('#')
                    .unwrap_or((resource.id.as_str(), DATA_DEVICE));
                let Some((zone, name, v)) = self.instance_by_id(instance).await? else {
                    return Ok(());
                };
                let attached = v
                    .get("disks")
                    .and_then(Value::as_array)
                    .is_some_and(|ds| ds.iter().any(|d| str_at(d, "/deviceName") == Some(device)));
                if !attached {
                    return Ok(());
                }
                remove(&self.client, &call::instances_detach_disk(l, &zone, &name, device)).await
            }
            ResourceKind::Image => {
                let p = path()?;
                remove(&self.client, &call::images_delete(p.project, p.name)).await
            }
            other => Err(Error::component(
                "destroy",
                format!(
                    "vre-gcp does not make {other} resources; {} ({}) was not deleted",
                    resource.name, resource.id
                ),
            )),
        }
    }
}
