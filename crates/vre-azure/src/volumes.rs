//! Managed data disks of storage nodes, attached at LUN 0.

use serde_json::Value;
use vre_core::{CloudResource, ClusterRef, ResourceKey, ResourceKind, Result, VolumeRequest, attr};

use crate::call;
use crate::provider::{AzureProvider, DATA_LUN, DISK_KIND, key_of, last_segment, same_id, status_of, str_at, tags};

impl AzureProvider {
    pub(crate) fn disk_resource(&self, v: &Value) -> CloudResource {
        let id = str_at(v, "/id").unwrap_or_default();
        let key = key_of(v);
        let kind = if key.is_some() {
            ResourceKind::Volume
        } else {
            ResourceKind::Other(DISK_KIND.into())
        };
        let state = str_at(v, "/properties/provisioningState").unwrap_or("Succeeded");
        let mut r = CloudResource::new(kind, id, str_at(v, "/name").unwrap_or(last_segment(id)))
            .with_status(status_of(state, None))
            .with_attr(attr::VOLUME_ID, id);
        if let Some(gb) = v.pointer("/properties/diskSizeGB").and_then(Value::as_u64) {
            r = r.with_attr(attr::SIZE_GB, gb.to_string());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    /// A managed data disk, made once (`CloudProvider::create_volume`).
    pub(crate) async fn data_disk(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let disk = match self
            .client
            .get_opt(&call::disks_get(&self.scope, &request.name))
            .await?
        {
            Some(d) => d,
            None => {
                let role = request.key.node().map(|(r, _)| r);
                let put = call::disks_create(
                    &self.scope,
                    &request.name,
                    request.size_gb,
                    &self.settings.disk_sku,
                    &tags(&cluster.name, Some(&request.key), role),
                );
                self.client.execute(&put).await?
            }
        };
        Ok(self.disk_resource(&disk).with_key(request.key.clone()))
    }

    /// Attaches a data disk at LUN 0 (`CloudProvider::attach_volume`).
    pub(crate) async fn attach_disk(
        &self,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let vm = self
            .client
            .send(&call::virtual_machines_get(&self.scope, &instance.name))
            .await?;
        let attached = vm
            .pointer("/properties/storageProfile/dataDisks")
            .and_then(Value::as_array)
            .is_some_and(|ds| {
                ds.iter()
                    .any(|d| str_at(d, "/managedDisk/id").is_some_and(|i| same_id(i, &volume.id)))
            });
        if !attached {
            self.client
                .execute(&call::virtual_machines_attach_disk(
                    &self.scope,
                    &instance.name,
                    &volume.id,
                    DATA_LUN,
                ))
                .await?;
        }
        Ok(CloudResource::new(
            ResourceKind::VolumeAttachment,
            format!("{}#{}", instance.id, volume.id),
            format!("{}-attachment", volume.name),
        )
        .with_key(key.clone())
        .with_attr(attr::DEVICE, format!("/dev/disk/azure/scsi1/lun{DATA_LUN}"))
        .with_attr(attr::INSTANCE_ID, instance.id.clone())
        .with_attr(attr::VOLUME_ID, volume.id.clone()))
    }
}
