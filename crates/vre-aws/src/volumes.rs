//! Data volumes of storage nodes: `CreateVolume` in the subnet's zone
//! (tagged, with a deterministic `ClientToken`), `AttachVolume` once the node
//! runs, and the device path the volume shows up as inside the node.

use vre_core::provider::VolumeRequest;
use vre_core::{
    CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, ResourceStatus, Result, attr as core_attr,
};

use crate::error::{Blame, setting};
use crate::provider::{AwsProvider, DEVICE_TAG, attr, key_of};
use crate::requests;
use crate::wire::{self, DescribeInstanceTypesResponse, DescribeVolumesResponse, Tagged};

/// The device name vre attaches data volumes as.
pub const DATA_DEVICE: &str = "/dev/sdf";

/// Where the data volume appears inside the node. On Nitro instances EBS
/// volumes are NVMe devices whose order is not guaranteed; udev names them
/// by volume id. On Xen instances `/dev/sdf` becomes `/dev/xvdf`.
pub fn os_device(hypervisor: Option<&str>, volume_id: &str) -> String {
    match hypervisor {
        Some("nitro") => format!(
            "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{}",
            volume_id.replace('-', "")
        ),
        Some("xen") => DATA_DEVICE.replace("/dev/sd", "/dev/xvd"),
        _ => DATA_DEVICE.to_string(),
    }
}

fn volume_status(status: &str) -> ResourceStatus {
    match status {
        "creating" => ResourceStatus::Pending,
        "deleting" | "deleted" => ResourceStatus::Deleting,
        "error" => ResourceStatus::Failed {
            reason: "EBS reports the volume in error".into(),
        },
        _ => ResourceStatus::Ready,
    }
}

/// A data volume as the engine sees it.
pub fn volume_resource(v: &wire::Volume) -> CloudResource {
    let name = v.tag("Name").unwrap_or(&v.volume_id).to_string();
    let mut r = AwsProvider::resource(ResourceKind::Volume, &v.volume_id, &name, key_of(v))
        .with_status(volume_status(&v.status))
        .with_attr(core_attr::SIZE_GB, v.size.to_string())
        .with_attr(attr::ZONE, v.availability_zone.clone())
        .with_attr(attr::STATE, v.status.clone());
    if let Some(t) = &v.volume_type {
        r = r.with_attr("volume_type", t.clone());
    }
    r
}

/// The attachment of a keyed data volume to its node, if attached.
pub fn attachment_resource(v: &wire::Volume) -> Option<CloudResource> {
    let a = v
        .attachment_set
        .item
        .iter()
        .find(|a| matches!(a.status.as_str(), "attaching" | "attached"))?;
    let key = key_of(v)
        .and_then(|k| k.node())
        .map(|(role, i)| ResourceKey::attachment(role, i));
    let name = format!("{}-attachment", v.tag("Name").unwrap_or(&v.volume_id));
    let device = v.tag(DEVICE_TAG).unwrap_or(&a.device).to_string();
    let status = if a.status == "attached" {
        ResourceStatus::Ready
    } else {
        ResourceStatus::Pending
    };
    Some(
        AwsProvider::resource(
            ResourceKind::VolumeAttachment,
            &format!("{}:{}", v.volume_id, a.instance_id),
            &name,
            key,
        )
        .with_status(status)
        .with_attr(core_attr::VOLUME_ID, v.volume_id.clone())
        .with_attr(core_attr::INSTANCE_ID, a.instance_id.clone())
        .with_attr(core_attr::DEVICE, device)
        .with_attr(attr::EC2_DEVICE, a.device.clone()),
    )
}

impl AwsProvider {
    pub(crate) async fn describe_volume(&self, id: &str) -> Result<Option<wire::Volume>> {
        let r: DescribeVolumesResponse = self.call(&requests::describe_volume(id), &Blame::default()).await?;
        Ok(r.volume_set.into_vec().into_iter().next())
    }

    /// Polls until `check` accepts the volume (or it is gone, when `gone_ok`).
    async fn until_volume(
        &self,
        id: &str,
        what: &str,
        gone_ok: bool,
        check: impl Fn(&wire::Volume) -> Result<bool>,
    ) -> Result<Option<wire::Volume>> {
        self.poll(&format!("volume {id} {what}"), self.wait.timeout, || async {
            match self.describe_volume(id).await? {
                Some(v) => Ok(check(&v)?.then_some(Some(v))),
                None if gone_ok => Ok(Some(None)),
                None => Err(Error::component(
                    "volume",
                    format!("volume {id} disappeared while vre waited for it"),
                )),
            }
        })
        .await
    }

    pub(crate) async fn volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        let key = request.key.to_string();
        let pages: Vec<DescribeVolumesResponse> = self
            .pages(requests::describe_volume_of_key(&cluster.name, &key))
            .await?;
        let mut found: Vec<wire::Volume> = pages.into_iter().flat_map(|p| p.volume_set.into_vec()).collect();
        found.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        let vol = match found.into_iter().next() {
            Some(v) => v,
            None => {
                let zone = self.zone(cluster).await?;
                let tags = self.tags(cluster, Some(&request.key), &request.name);
                let token = Self::token(&["volume", &cluster.name, &key]);
                let q = requests::create_volume(&zone, request.size_gb, &self.settings.volume_type, &token, &tags);
                let blame = Blame {
                    role: request.key.node().map(|(r, _)| r),
                    ..Blame::default()
                };
                self.call::<wire::CreateVolumeResponse>(&q, &blame).await?
            }
        };
        let vol = if vol.status == "creating" {
            let id = vol.volume_id.clone();
            self.until_volume(&id, "to become available", false, |v| match v.status.as_str() {
                // the VolumeAvailable waiter: available is success, deleted is failure
                "available" | "in-use" => Ok(true),
                "creating" => Ok(false),
                other => Err(Error::component(
                    "volume",
                    format!(
                        "EBS could not create volume {id} (it is {other}); run `vre apply` again to make a new one"
                    ),
                )),
            })
            .await?
            .unwrap_or(vol)
        } else {
            vol
        };
        let mut r = volume_resource(&vol).with_key(request.key.clone());
        r.name = request.name.clone();
        Ok(r)
    }

    /// The hypervisor of an instance type (cached; `None` when EC2 does not say).
    async fn hypervisor(&self, instance_type: &str) -> Result<Option<String>> {
        if let Some(h) = self.hypervisors.lock().expect("poisoned").get(instance_type) {
            return Ok(Some(h.clone()));
        }
        let r: DescribeInstanceTypesResponse = self
            .call(&requests::describe_instance_types(&[instance_type]), &Blame::default())
            .await?;
        let h = r
            .instance_type_set
            .into_vec()
            .into_iter()
            .next()
            .and_then(|t| t.hypervisor);
        if let Some(h) = &h {
            self.hypervisors
                .lock()
                .expect("poisoned")
                .insert(instance_type.to_string(), h.clone());
        }
        Ok(h)
    }

    pub(crate) async fn attach(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let vol_id = volume.id.as_str();
        let Some(vol) = self.describe_volume(vol_id).await? else {
            return Err(Error::component(
                "volume",
                format!(
                    "volume {vol_id} ({}) does not exist any more; run `vre apply` again to recreate it",
                    volume.name
                ),
            ));
        };
        if let Some(zone) = instance.attr(attr::ZONE)
            && zone != vol.availability_zone
        {
            return Err(Error::rejected(
                setting("availability_zone"),
                format!(
                    "volume {vol_id} is in {} but {} runs in {zone}; EBS volumes attach within one zone: set availability_zone = \"{}\"",
                    vol.availability_zone, instance.name, vol.availability_zone
                ),
            ));
        }
        let current = vol
            .attachment_set
            .item
            .iter()
            .find(|a| matches!(a.status.as_str(), "attaching" | "attached"))
            .cloned();
        match current {
            Some(a) if a.instance_id == instance.id => {}
            other => {
                if let Some(a) = other {
                    // still attached to a node that was replaced
                    self.send_unless_gone(&requests::detach_volume(vol_id, &a.instance_id, Some(&a.device)))
                        .await?;
                    self.until_volume(vol_id, "to detach", false, |v| Ok(v.status == "available"))
                        .await?;
                }
                self.send(
                    &requests::attach_volume(vol_id, &instance.id, DATA_DEVICE),
                    &Blame::default(),
                )
                .await?;
            }
        }
        let inst_id = instance.id.clone();
        let attached = self
            .until_volume(vol_id, "to attach", false, |v| {
                Ok(v.attachment_set
                    .item
                    .iter()
                    .any(|a| a.instance_id == inst_id && a.status == "attached"))
            })
            .await?
            .unwrap_or(vol);
        let hypervisor = match instance.attr(core_attr::FLAVOR) {
            Some(t) => self.hypervisor(t).await?,
            None => None,
        };
        let device = os_device(hypervisor.as_deref(), vol_id);
        if attached.tag(DEVICE_TAG) != Some(device.as_str()) {
            self.send(
                &requests::create_tags(&[vol_id], &[(DEVICE_TAG.to_string(), device.clone())]),
                &Blame::default(),
            )
            .await?;
        }
        let ec2_device = attached
            .attachment_set
            .item
            .iter()
            .find(|a| a.instance_id == instance.id)
            .map_or(DATA_DEVICE.to_string(), |a| a.device.clone());
        Ok(CloudResource::new(
            ResourceKind::VolumeAttachment,
            format!("{vol_id}:{}", instance.id),
            format!("{}-attachment", volume.name),
        )
        .with_key(key.clone())
        .with_attr(core_attr::VOLUME_ID, vol_id)
        .with_attr(core_attr::INSTANCE_ID, instance.id.clone())
        .with_attr(core_attr::DEVICE, device)
        .with_attr(attr::EC2_DEVICE, ec2_device))
    }

    /// Detaches a volume from an instance and waits until it is free.
    pub(crate) async fn detach(&self, attachment: &CloudResource) -> Result<()> {
        let (vol_id, inst_id) = match (
            attachment.attr(core_attr::VOLUME_ID),
            attachment.attr(core_attr::INSTANCE_ID),
        ) {
            (Some(v), Some(i)) => (v.to_string(), i.to_string()),
            _ => match attachment.id.split_once(':') {
                Some((v, i)) => (v.to_string(), i.to_string()),
                None => {
                    return Err(Error::component(
                        "volume",
                        format!("attachment {} names no volume and instance", attachment.id),
                    ));
                }
            },
        };
        match self
            .ec2
            .send(&requests::detach_volume(
                &vol_id,
                &inst_id,
                attachment.attr(attr::EC2_DEVICE),
            ))
            .await
        {
            Ok(_) => {}
            // not attached (any more) or gone
            Err(e) if e.is_not_found() || e.is_code("IncorrectState") => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.until_volume(&vol_id, "to detach", true, |v| {
            Ok(!v
                .attachment_set
                .item
                .iter()
                .any(|a| a.instance_id == inst_id && a.status != "detached"))
        })
        .await?;
        Ok(())
    }

    /// Deletes a volume once nothing holds it, and waits until it is gone.
    pub(crate) async fn delete_volume(&self, id: &str) -> Result<()> {
        match self.describe_volume(id).await? {
            None => return Ok(()),
            // a root volume EC2 removes with its instance
            Some(v) if v.status == "deleting" || v.status == "deleted" => {}
            Some(_) => {
                self.delete_when_free(&format!("volume {id}"), requests::delete_volume(id))
                    .await?
            }
        }
        self.until_volume(id, "to be deleted", true, |v| Ok(v.status == "deleted"))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_follow_the_hypervisor() {
        assert_eq!(
            os_device(Some("nitro"), "vol-0123456789abcdef0"),
            "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
        );
        assert_eq!(os_device(Some("xen"), "vol-1"), "/dev/xvdf");
        assert_eq!(os_device(None, "vol-1"), "/dev/sdf");
    }

    #[test]
    fn attachments_are_keyed_by_their_volume() {
        let v: wire::Volume = wire::parse(
            r#"<item><volumeId>vol-9</volumeId><size>50</size><availabilityZone>eu-north-1a</availabilityZone><status>in-use</status>
            <attachmentSet><item><volumeId>vol-9</volumeId><instanceId>i-4</instanceId><device>/dev/sdf</device><status>attached</status></item></attachmentSet>
            <tagSet><item><key>vre:key</key><value>volume/storage-2</value></item><item><key>Name</key><value>lab-storage-2-data</value></item>
            <item><key>vre:device</key><value>/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol9</value></item></tagSet></item>"#,
        )
        .unwrap();
        let vol = volume_resource(&v);
        assert_eq!(vol.key, Some(ResourceKey::volume(vre_core::Role::Storage, 2)));
        assert_eq!(vol.attr(core_attr::SIZE_GB), Some("50"));
        let a = attachment_resource(&v).unwrap();
        assert_eq!(a.key, Some(ResourceKey::attachment(vre_core::Role::Storage, 2)));
        assert_eq!(a.id, "vol-9:i-4");
        assert_eq!(a.name, "lab-storage-2-data-attachment");
        assert_eq!(
            a.attr(core_attr::DEVICE),
            Some("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol9")
        );
        assert_eq!(a.attr(core_attr::INSTANCE_ID), Some("i-4"));
    }
}
