//! [`AzureProvider`]: the [`CloudProvider`] on Azure Resource Manager.
//!
//! Everything lives in one resource group owned by the cluster (tagged
//! `vre:cluster=<name>`), so destroy is one resource-group delete and a
//! check that the group is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Mutex;
use vre_core::spec::ImageSpec;
use vre_core::{
    CLUSTER_TAG, Capabilities, CloudProvider, CloudResource, ClusterRef, Error, InstanceBatch, KEY_TAG, NetworkInfo,
    NetworkRequest, PreflightProblem, PreflightRequest, ROLE_TAG, ResourceKey, ResourceKind, ResourceStatus, Result,
    Role, SecurityGroupRequest, StepProgress, VolumeRequest,
};

use crate::call::{self, ArmCall, Scope, Tags};
use crate::client::{ArmClient, PollPolicy};
use crate::settings::AzureSettings;

/// [`CloudResource::attrs`] key of the SSH public key a key-pair resource carries.
pub const PUBLIC_KEY_ATTR: &str = "public_key";
/// The LUN of a node's data disk; the guest sees it as `/dev/disk/azure/scsi1/lun0`.
pub const DATA_LUN: u32 = 0;
/// VMs of one group created at once.
pub(crate) const CREATE_CONCURRENCY: usize = 8;
/// Kinds only this provider has.
pub(crate) const NIC_KIND: &str = "nic";
pub(crate) const DISK_KIND: &str = "disk";

/// The Azure provider.
#[derive(Debug)]
pub struct AzureProvider {
    pub(crate) client: ArmClient,
    pub(crate) scope: Scope,
    pub(crate) settings: AzureSettings,
    /// Whether the resource group is known to exist (made once, lazily).
    pub(crate) group_ready: Mutex<bool>,
    /// Set once this provider deleted the group: everything in it is gone too.
    pub(crate) group_deleted: Mutex<bool>,
}

pub(crate) fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub(crate) fn tags(cluster: &str, key: Option<&ResourceKey>, role: Option<Role>) -> Tags {
    let mut t = BTreeMap::new();
    t.insert(CLUSTER_TAG.to_string(), cluster.to_string());
    if let Some(k) = key {
        t.insert(KEY_TAG.to_string(), k.as_str().to_string());
    }
    if let Some(r) = role {
        t.insert(ROLE_TAG.to_string(), r.as_str().to_string());
    }
    t
}

pub(crate) fn tag<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get("tags").and_then(|t| t.get(name)).and_then(Value::as_str)
}

pub(crate) fn key_of(v: &Value) -> Option<ResourceKey> {
    tag(v, KEY_TAG).and_then(ResourceKey::parse)
}

/// Runs a delete; a resource (or group) already gone is fine.
pub(crate) async fn remove(client: &ArmClient, c: &ArmCall) -> Result<()> {
    match client.execute(c).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl AzureProvider {
    /// A provider for the cluster named `cluster` in `subscription`.
    pub fn new(client: ArmClient, subscription: String, settings: AzureSettings, cluster: &str) -> Self {
        let scope = Scope {
            subscription,
            resource_group: settings.resource_group_of(cluster),
            location: settings.location.clone(),
        };
        AzureProvider {
            client,
            scope,
            settings,
            group_ready: Mutex::new(false),
            group_deleted: Mutex::new(false),
        }
    }

    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.client = self.client.with_poll(poll);
        self
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn settings(&self) -> &AzureSettings {
        &self.settings
    }

    pub(crate) fn group_conflict(&self, cluster: &ClusterRef) -> Error {
        Error::input(
            "azure.resource_group",
            format!(
                "resource group \"{}\" exists and is not tagged {CLUSTER_TAG}={}; vre deletes its group on destroy, so name a group of its own",
                self.scope.resource_group, cluster.name
            ),
        )
    }

    /// The cluster's resource group, created on first use.
    pub(crate) async fn ensure_group(&self, cluster: &ClusterRef) -> Result<()> {
        let mut ready = self.group_ready.lock().await;
        if *ready {
            return Ok(());
        }
        match self.client.get_opt(&call::resource_groups_get(&self.scope)).await? {
            Some(g) if tag(&g, CLUSTER_TAG) == Some(cluster.name.as_str()) => {}
            Some(_) => return Err(self.group_conflict(cluster)),
            None => {
                self.client
                    .execute(&call::resource_groups_create(
                        &self.scope,
                        &tags(&cluster.name, None, None),
                    ))
                    .await?;
            }
        }
        *ready = true;
        *self.group_deleted.lock().await = false;
        Ok(())
    }

    /// The group, when it exists and is this cluster's.
    pub(crate) async fn own_group(&self, cluster: &ClusterRef) -> Result<Option<Value>> {
        Ok(self
            .client
            .get_opt(&call::resource_groups_get(&self.scope))
            .await?
            .filter(|g| tag(g, CLUSTER_TAG) == Some(cluster.name.as_str())))
    }

    pub(crate) async fn list_or_empty(&self, c: &ArmCall) -> Result<Vec<Value>> {
        match self.client.list(c).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

/// ARM provisioning states as resource statuses.
pub(crate) fn status_of(state: &str, failed: Option<&str>) -> ResourceStatus {
    match state {
        "Succeeded" => ResourceStatus::Ready,
        "Failed" | "Canceled" => ResourceStatus::Failed {
            reason: failed.map_or_else(|| format!("provisioning state {state}"), str::to_string),
        },
        "Deleting" => ResourceStatus::Deleting,
        _ => ResourceStatus::Pending,
    }
}

#[async_trait]
impl CloudProvider for AzureProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        // ARM has no multi-create for plain VMs: a group's VMs are created
        // concurrently, one PUT each (scale sets would be a different model)
        Capabilities {
            multi_create: false,
            max_batch: 1,
            public_ip_at_create: true,
            custom_dns_servers: false,
        }
    }

    async fn preflight(&self, cluster: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        self.check_against_cloud(cluster, request).await
    }

    async fn ensure_image(
        &self,
        _cluster: &ClusterRef,
        image: &ImageSpec,
        _progress: &StepProgress,
    ) -> Result<CloudResource> {
        self.referenced_image(image).await
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        self.virtual_network(cluster, request).await
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.security_group(cluster, network, request).await
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        self.key_pair(cluster, public_key).await
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        self.create_vms(cluster, batch).await
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        self.wait_provisioned(cluster, instances, timeout, progress).await
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        self.data_disk(cluster, request).await
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.attach_disk(key, volume, instance).await
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.public_ip(cluster, key, name).await
    }

    async fn associate_public_ip(
        &self,
        cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.attach_public_ip(cluster, ip, instance).await
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        self.owned(cluster).await
    }

    async fn delete(&self, _cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        self.delete_resource(resource).await
    }

    fn destroy_rank(&self, kind: &ResourceKind) -> u32 {
        // the group first: deleting it deletes everything in it
        match kind {
            ResourceKind::ResourceGroup => 0,
            ResourceKind::DnsRecord => 0,
            ResourceKind::Instance => 1,
            ResourceKind::VolumeAttachment => 2,
            ResourceKind::Other(k) if k == NIC_KIND => 3,
            ResourceKind::PublicIp => 4,
            ResourceKind::Volume => 5,
            ResourceKind::Other(k) if k == DISK_KIND => 5,
            ResourceKind::SecurityGroup => 6,
            ResourceKind::Network => 7,
            ResourceKind::KeyPair => 8,
            ResourceKind::Image => 9,
            other => 10 + other.destroy_rank(),
        }
    }
}
