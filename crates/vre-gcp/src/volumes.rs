//! Data disks of storage nodes and their attachment as device `vre-data`.

use serde_json::Value;
use vre_core::{
    CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, ResourceStatus, Result, VolumeRequest, attr,
};

use crate::call;
use crate::ownership::{key_from_label, labels};
use crate::provider::{DATA_DEVICE, GcpProvider, create, last_segment, str_at};

impl GcpProvider {
    pub(crate) fn disk_resource(&self, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let zone = str_at(v, "/zone").map_or(self.loc.zone.as_str(), last_segment);
        let id = format!("projects/{}/zones/{zone}/disks/{name}", self.loc.project);
        let key = v
            .pointer(&format!("/labels/{}", vre_core::KEY_LABEL))
            .and_then(Value::as_str)
            .and_then(key_from_label);
        let status = match str_at(v, "/status").unwrap_or("READY") {
            "READY" => ResourceStatus::Ready,
            "CREATING" | "RESTORING" => ResourceStatus::Pending,
            "DELETING" => ResourceStatus::Deleting,
            other => ResourceStatus::Failed {
                reason: format!("disk status {other}"),
            },
        };
        let kind = if key.is_some() {
            ResourceKind::Volume
        } else {
            ResourceKind::Other("disk".into())
        };
        let mut r = CloudResource::new(kind, id.clone(), name)
            .with_status(status)
            .with_attr(attr::VOLUME_ID, id);
        if let Some(gb) = str_at(v, "/sizeGb") {
            r = r.with_attr(attr::SIZE_GB, gb);
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    /// A data disk, made once (`CloudProvider::create_volume`).
    pub(crate) async fn disk(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        let get = call::disks_get(&self.loc, &request.name);
        let v = match self.client.get_opt(&get).await? {
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "disk", &request.name)?;
                v
            }
            None => {
                let role = request.key.node().map(|(r, _)| r);
                let insert = call::disks_insert(
                    &self.loc,
                    &request.name,
                    &format!("data disk of vre cluster {}", cluster.name),
                    request.size_gb,
                    &self.settings.disk_type,
                    &labels(&cluster.name, Some(&request.key), role),
                );
                create(&self.client, &insert).await?;
                self.client.send(&get).await?
            }
        };
        Ok(self.disk_resource(&v).with_key(request.key.clone()))
    }

    /// Attaches a data disk as device `vre-data` (`CloudProvider::attach_volume`).
    pub(crate) async fn attach_disk(
        &self,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let (zone, name, v) = self.instance_by_id(&instance.id).await?.ok_or_else(|| {
            Error::from(vre_core::CloudError::http(
                crate::error::SERVICE,
                format!("attach {} to {}", volume.name, instance.name),
                404,
                format!("instance {} does not exist", instance.name),
                None,
            ))
        })?;
        let suffix = format!("/disks/{}", volume.name);
        let attached = v.get("disks").and_then(Value::as_array).is_some_and(|ds| {
            ds.iter()
                .any(|d| str_at(d, "/source").is_some_and(|s| s.ends_with(&suffix)))
        });
        if !attached {
            self.client
                .execute(&call::instances_attach_disk(
                    &self.loc,
                    &zone,
                    &name,
                    &volume.id,
                    DATA_DEVICE,
                ))
                .await?;
        }
        Ok(attachment_resource(key.clone(), &instance.id, volume))
    }
}

/// The attachment of a node's data disk (device `vre-data`); its id names instance and device.
pub(crate) fn attachment_resource(key: ResourceKey, instance_id: &str, volume: &CloudResource) -> CloudResource {
    CloudResource::new(
        ResourceKind::VolumeAttachment,
        format!("{instance_id}#{DATA_DEVICE}"),
        format!("{}-attachment", volume.name),
    )
    .with_key(key)
    .with_attr(attr::DEVICE, format!("/dev/disk/by-id/google-{DATA_DEVICE}"))
    .with_attr(attr::INSTANCE_ID, instance_id)
    .with_attr(attr::VOLUME_ID, volume.id.clone())
}
