//! Cinder data volumes of storage nodes: created with the cluster and key in
//! their metadata, attached through Nova once the node runs, and waited on
//! until Cinder says they are ready, attached, detached or gone.

use std::time::{Duration, Instant};

use vre_core::SpecField;
use vre_core::spec::Role;
use vre_core::{
    CLUSTER_TAG, CloudResource, ClusterRef, KEY_TAG, ResourceKey, ResourceKind, ResourceStatus, VolumeRequest, attr,
};

use crate::error::{OpenStackError, ok_if_gone};
use crate::paging::list_all;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{CinderAttachment, Volume, VolumeAttachmentOne, VolumeList, VolumeOne};

impl OpenStackProvider {
    /// The cluster's volumes (`GET /volumes/detail` by metadata, all pages).
    pub(crate) async fn volumes(&self, cluster: &ClusterRef) -> OsResult<Vec<Volume>> {
        let mut volumes = list_all::<VolumeList>(self.api().await?, |marker| {
            requests::list_volumes(&cluster.name, marker)
        })
        .await?;
        volumes.retain(|v| v.meta(CLUSTER_TAG) == Some(cluster.name.as_str()));
        Ok(volumes)
    }

    pub(crate) async fn volume(&self, id: &str) -> OsResult<Volume> {
        let v: VolumeOne = self.api().await?.json(requests::show_volume(id)).await?;
        Ok(v.volume)
    }

    /// Polls a volume until `done` says so; an `error*` status fails.
    pub(crate) async fn wait_volume(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Volume) -> bool,
    ) -> OsResult<Option<Volume>> {
        let started = Instant::now();
        let limit = Duration::from_secs(900);
        let mut delay = self.poll.first;
        loop {
            match self.volume(id).await {
                Ok(v) if done(&v) => return Ok(Some(v)),
                Ok(v) if v.status.starts_with("error") => {
                    return Err(OpenStackError::Failed {
                        service: "cinder",
                        operation: what.to_string(),
                        message: format!(
                            "volume {} went to {}; look at it with `openstack volume show {id}`",
                            v.name.unwrap_or_default(),
                            v.status
                        ),
                    });
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
            if started.elapsed() > limit {
                return Err(OpenStackError::Timeout {
                    what: format!("volume {id} to {what}"),
                    after: limit,
                });
            }
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }

    pub(crate) fn volume_resource(&self, v: &Volume) -> CloudResource {
        let key = v.meta(KEY_TAG).and_then(ResourceKey::parse);
        let status = match v.status.as_str() {
            "available" | "in-use" => ResourceStatus::Ready,
            s if s.starts_with("error") => ResourceStatus::Failed {
                reason: format!("Cinder reports the volume as {s}"),
            },
            "deleting" => ResourceStatus::Deleting,
            _ => ResourceStatus::Pending,
        };
        let mut r = CloudResource::new(ResourceKind::Volume, &v.id, v.name.clone().unwrap_or_default())
            .with_status(status)
            .with_attr(attr::SIZE_GB, v.size.to_string());
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    pub(crate) fn attachment_resource(&self, v: &Volume, a: &CinderAttachment) -> CloudResource {
        let key = v
            .meta(KEY_TAG)
            .and_then(ResourceKey::parse)
            .and_then(|k| k.node())
            .map(|(r, i)| ResourceKey::attachment(r, i));
        let name = format!("{}-attachment", v.name.clone().unwrap_or_else(|| v.id.clone()));
        let mut r = CloudResource::new(
            ResourceKind::VolumeAttachment,
            format!("{}/{}", a.server_id, v.id),
            name,
        )
        .with_attr(attr::INSTANCE_ID, a.server_id.clone())
        .with_attr(attr::VOLUME_ID, v.id.clone());
        if let Some(d) = &a.device {
            r = r.with_attr(attr::DEVICE, d.clone());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    pub(crate) async fn new_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> OsResult<CloudResource> {
        let existing = self.volumes(cluster).await?;
        let found = existing
            .iter()
            .find(|v| v.meta(KEY_TAG) == Some(request.key.as_str()) && v.status != "deleting");
        let id = match found {
            Some(v) => v.id.clone(),
            None => {
                let create = requests::create_volume(
                    &cluster.name,
                    request,
                    self.settings.volume_type.as_deref(),
                    self.settings.availability_zone.as_deref(),
                );
                let made: VolumeOne = match self.api().await?.json(create).await {
                    Ok(v) => v,
                    Err(OpenStackError::Api {
                        status: 413 | 403,
                        message,
                        ..
                    }) => {
                        let role = request.key.node().map_or(Role::Storage, |n| n.0);
                        return Err(OpenStackError::Rejected {
                            field: SpecField::Volume(role),
                            message: format!("{message}; lower the size or count, or ask for more quota"),
                        });
                    }
                    Err(e) => return Err(e),
                };
                made.volume.id
            }
        };
        let v = self
            .wait_volume(&id, "become available", |v| {
                v.status == "available" || v.status == "in-use"
            })
            .await?
            .ok_or_else(|| OpenStackError::Failed {
                service: "cinder",
                operation: "create volume".into(),
                message: format!("volume {} vanished while it was being created", request.name),
            })?;
        Ok(self.volume_resource(&v).with_key(request.key.clone()))
    }

    pub(crate) async fn attach(
        &self,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> OsResult<CloudResource> {
        let v = self.volume(&volume.id).await?;
        if !v.attachments.iter().any(|a| a.server_id == instance.id) {
            match self
                .api()
                .await?
                .json::<VolumeAttachmentOne>(requests::attach_volume(&instance.id, &volume.id))
                .await
            {
                Ok(a) => {
                    tracing::debug!(device = ?a.volume_attachment.device, server = %a.volume_attachment.server_id, volume = %a.volume_attachment.volume_id, "attached")
                }
                // attached meanwhile (a retry after a lost answer)
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        let v = self
            .wait_volume(&volume.id, "attach", |v| {
                v.status == "in-use" && v.attachments.iter().any(|a| a.server_id == instance.id)
            })
            .await?
            .ok_or_else(|| OpenStackError::Failed {
                service: "cinder",
                operation: "attach volume".into(),
                message: format!("volume {} vanished while being attached", volume.name),
            })?;
        let a = v
            .attachments
            .iter()
            .find(|a| a.server_id == instance.id)
            .expect("waited for this attachment");
        Ok(self.attachment_resource(&v, a).with_key(key.clone()))
    }

    pub(crate) async fn detach(&self, server_id: &str, volume_id: &str) -> OsResult<()> {
        ok_if_gone(
            self.api()
                .await?
                .send(requests::detach_volume(server_id, volume_id))
                .await,
        )?;
        self.wait_volume(volume_id, "detach", |v| {
            !v.attachments.iter().any(|a| a.server_id == server_id)
        })
        .await
        .map(|_| ())
    }
}
