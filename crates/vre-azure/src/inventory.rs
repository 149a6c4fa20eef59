//! What the cluster's resource group holds, and deleting one resource of it.

use serde_json::Value;
use tokio::time::Instant;
use vre_core::plan::{key_pair_name, network_name, security_group_name};
use vre_core::{CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result, attr};

use crate::call::{self, types};
use crate::provider::{AzureProvider, DISK_KIND, NIC_KIND, last_segment, remove, same_id, status_of, str_at};

impl AzureProvider {
    /// Everything in the cluster's resource group (`CloudProvider::inventory`).
    pub(crate) async fn owned(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        let Some(group) = self.own_group(cluster).await? else {
            return Ok(Vec::new());
        };
        let c = &cluster.name;
        let (all_list, disk_list) = (
            call::resources_list_by_resource_group(&self.scope),
            call::disks_list(&self.scope),
        );
        let (all, disks, view) = futures::try_join!(
            self.list_or_empty(&all_list),
            self.list_or_empty(&disk_list),
            self.compute_view()
        )?;
        let mut out = Vec::new();
        let volumes: Vec<CloudResource> = disks.iter().map(|d| self.disk_resource(d)).collect();
        for vm in &view.vms {
            let inst = view.instance(cluster, vm, None);
            for d in vm
                .pointer("/properties/storageProfile/dataDisks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let disk_id = str_at(d, "/managedDisk/id").unwrap_or_default();
                let Some(vol) = volumes.iter().find(|v| same_id(&v.id, disk_id)) else {
                    continue;
                };
                if let Some((role, i)) = vol.key.as_ref().and_then(|k| k.node()) {
                    out.push(
                        CloudResource::new(
                            ResourceKind::VolumeAttachment,
                            format!("{}#{}", inst.id, vol.id),
                            format!("{}-attachment", vol.name),
                        )
                        .with_key(ResourceKey::attachment(role, i))
                        .with_attr(
                            attr::DEVICE,
                            format!(
                                "/dev/disk/azure/scsi1/lun{}",
                                d.get("lun").and_then(Value::as_u64).unwrap_or(0)
                            ),
                        )
                        .with_attr(attr::INSTANCE_ID, inst.id.clone())
                        .with_attr(attr::VOLUME_ID, vol.id.clone()),
                    );
                }
            }
            out.push(inst);
        }
        if !view.vms.is_empty() {
            let name = key_pair_name(c);
            out.push(
                CloudResource::new(ResourceKind::KeyPair, format!("osProfile/ssh/{name}"), name)
                    .with_key(ResourceKey::key_pair()),
            );
        }
        out.extend(volumes);
        out.extend(view.pips.iter().map(|p| self.pip_resource(p)));
        for n in &view.nics {
            let id = str_at(n, "/id").unwrap_or_default();
            out.push(CloudResource::new(
                ResourceKind::Other(NIC_KIND.into()),
                id,
                last_segment(id),
            ));
        }
        for r in &all {
            let id = str_at(r, "/id").unwrap_or_default();
            let name = str_at(r, "/name").unwrap_or(last_segment(id));
            let ty = str_at(r, "/type").unwrap_or_default();
            let state = str_at(r, "/properties/provisioningState")
                .or_else(|| str_at(r, "/provisioningState"))
                .unwrap_or("Succeeded");
            let res = if ty.eq_ignore_ascii_case(types::VIRTUAL_NETWORK) {
                let mut x = CloudResource::new(ResourceKind::Network, id, name);
                if name == network_name(c) {
                    x = x.with_key(ResourceKey::network());
                }
                x
            } else if ty.eq_ignore_ascii_case(types::SECURITY_GROUP) {
                let mut x = CloudResource::new(ResourceKind::SecurityGroup, id, name);
                if name == security_group_name(c) {
                    x = x.with_key(ResourceKey::security_group());
                }
                x
            } else if [
                types::VIRTUAL_MACHINE,
                types::DISK,
                types::PUBLIC_IP,
                types::NETWORK_INTERFACE,
            ]
            .iter()
            .any(|t| ty.eq_ignore_ascii_case(t))
            {
                continue; // listed above, with their details
            } else {
                CloudResource::new(ResourceKind::Other(ty.to_string()), id, name)
            };
            out.push(res.with_status(status_of(state, None)));
        }
        let gid = str_at(&group, "/id").map_or_else(|| self.scope.group_id(), str::to_string);
        out.push(CloudResource::new(
            ResourceKind::ResourceGroup,
            gid,
            &self.scope.resource_group,
        ));
        Ok(out)
    }

    /// Deletes one resource (the group deletes everything); one already gone is fine (`CloudProvider::delete`).
    pub(crate) async fn delete_resource(&self, resource: &CloudResource) -> Result<()> {
        let s = &self.scope;
        if resource.kind == ResourceKind::ResourceGroup {
            remove(&self.client, &call::resource_groups_delete(s)).await?;
            // the delete's operation ends when ARM says so; make sure the group is gone
            let poll = self.client.poll().clone();
            let started = Instant::now();
            let mut attempt = 0;
            while self.client.get_opt(&call::resource_groups_get(s)).await?.is_some() {
                if started.elapsed() > poll.timeout {
                    return Err(Error::Timeout {
                        what: format!("resource group {} to be deleted", s.resource_group),
                        after: poll.timeout,
                        hint: "Azure is still deleting it; run `vre destroy` again later".into(),
                    });
                }
                tokio::time::sleep(poll.delay(attempt, None)).await;
                attempt += 1;
            }
            *self.group_ready.lock().await = false;
            *self.group_deleted.lock().await = true;
            return Ok(());
        }
        if *self.group_deleted.lock().await {
            // it went with its resource group
            return Ok(());
        }
        let name = last_segment(&resource.id);
        match &resource.kind {
            ResourceKind::KeyPair | ResourceKind::Image => Ok(()),
            ResourceKind::Instance => remove(&self.client, &call::virtual_machines_delete(s, name)).await,
            ResourceKind::VolumeAttachment => {
                let (vm_id, disk_id) = resource.id.split_once('#').unwrap_or((resource.id.as_str(), ""));
                let vm_name = last_segment(vm_id);
                let Some(vm) = self.client.get_opt(&call::virtual_machines_get(s, vm_name)).await? else {
                    return Ok(());
                };
                let attached = vm
                    .pointer("/properties/storageProfile/dataDisks")
                    .and_then(Value::as_array)
                    .is_some_and(|ds| {
                        ds.iter()
                            .any(|d| str_at(d, "/managedDisk/id").is_some_and(|i| same_id(i, disk_id)))
                    });
                if !attached {
                    return Ok(());
                }
                remove(&self.client, &call::virtual_machines_detach_disk(s, vm_name, disk_id)).await
            }
            ResourceKind::PublicIp => remove(&self.client, &call::public_ip_addresses_delete(s, name)).await,
            ResourceKind::Volume => remove(&self.client, &call::disks_delete(s, name)).await,
            ResourceKind::Other(k) if k == DISK_KIND => remove(&self.client, &call::disks_delete(s, name)).await,
            ResourceKind::Other(k) if k == NIC_KIND => {
                remove(&self.client, &call::network_interfaces_delete(s, name)).await
            }
            ResourceKind::SecurityGroup => remove(&self.client, &call::network_security_groups_delete(s, name)).await,
            ResourceKind::Network => remove(&self.client, &call::virtual_networks_delete(s, name)).await,
            other => Err(Error::component(
                "destroy",
                format!(
                    "vre-azure does not delete {other} resources one by one; {} ({}) goes with resource group {}",
                    resource.name, resource.id, s.resource_group
                ),
            )),
        }
    }
}
