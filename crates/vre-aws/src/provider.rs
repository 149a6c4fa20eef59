//! `AwsProvider`: the `CloudProvider` over EC2. The work is split by
//! resource family: the modules `image`, `network`, `instances` and
//! `inventory`; this file holds the shared
//! parts and the trait implementation that dispatches to them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use vre_core::provider::{
    InstanceBatch, NetworkInfo, NetworkRequest, PreflightRequest, SecurityGroupRequest, VolumeRequest,
};
use vre_core::spec::ImageSpec;
use vre_core::{
    CLUSTER_TAG, Capabilities, CloudProvider, CloudResource, ClusterRef, Error, EventSink, KEY_TAG, PreflightProblem,
    ResourceKey, ResourceKind, Result, StepProgress,
};

use crate::client::Ec2Client;
use crate::error::{Blame, setting};
use crate::query::{Query, Tag};
use crate::requests;
use crate::settings::AwsSettings;
use crate::wire::{self, DescribeAvailabilityZonesResponse};
use vre_cloud_kit::PollPolicy;

/// Attribute names this provider adds to [`CloudResource::attrs`] besides `vre_core::attr`.
pub mod attr {
    pub const VPC_ID: &str = "vpc_id";
    pub const ZONE: &str = "availability_zone";
    pub const ROOT_DEVICE: &str = "root_device";
    pub const ASSOCIATION_ID: &str = "association_id";
    /// The device name given to AttachVolume (`/dev/sdf`); `vre_core::attr::DEVICE` is the one the OS sees.
    pub const EC2_DEVICE: &str = "ec2_device";
    pub const STATE: &str = "state";
}

/// The tag holding the device path a data volume shows up as inside its node.
pub const DEVICE_TAG: &str = "vre:device";

/// How pollers wait on EC2 (volumes, detaches, deletions, booting
/// instances): 2 s growing by half up to 15 s, settling within 10 minutes.
pub fn default_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(15),
        factor: 1.5,
        timeout: Duration::from_secs(600),
    }
}

/// The AWS provider.
pub struct AwsProvider {
    pub(crate) ec2: Arc<Ec2Client>,
    pub(crate) settings: AwsSettings,
    pub(crate) events: EventSink,
    pub(crate) wait: PollPolicy,
    zone: OnceCell<String>,
    /// instance type -> hypervisor (`nitro`, `xen`)
    pub(crate) hypervisors: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("ec2", &self.ec2)
            .field("settings", &self.settings)
            .finish()
    }
}

impl AwsProvider {
    pub fn new(ec2: Arc<Ec2Client>, settings: AwsSettings, events: EventSink) -> Self {
        AwsProvider {
            ec2,
            settings,
            events,
            wait: default_poll(),
            zone: OnceCell::new(),
            hypervisors: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the polling schedule (tests poll fast).
    pub fn with_poll(mut self, wait: PollPolicy) -> Self {
        self.wait = wait;
        self
    }

    /// The EC2 client (request counts, direct calls).
    pub fn client(&self) -> &Arc<Ec2Client> {
        &self.ec2
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// Sends `q`, turning an EC2 error into the engine's error.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(&self, q: &Query, blame: &Blame) -> Result<T> {
        self.ec2.call(q).await.map_err(|e| e.blame(blame))
    }

    /// Sends `q` when the answer carries nothing vre needs.
    pub(crate) async fn send(&self, q: &Query, blame: &Blame) -> Result<()> {
        self.ec2.send(q).await.map(|_| ()).map_err(|e| e.blame(blame))
    }

    /// Sends `q`; `*.NotFound` is `Ok(false)`.
    pub(crate) async fn send_unless_gone(&self, q: &Query) -> Result<bool> {
        match self.ec2.send(q).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every page of a Describe call.
    pub(crate) async fn pages<T: serde::de::DeserializeOwned + wire::Paged>(&self, q: Query) -> Result<Vec<T>> {
        self.ec2.call_pages(q).await.map_err(Error::from)
    }

    /// The tags of a resource vre creates.
    pub(crate) fn tags(&self, cluster: &ClusterRef, key: Option<&ResourceKey>, name: &str) -> Vec<Tag> {
        let mut t: Vec<Tag> = vec![(CLUSTER_TAG.into(), cluster.name.clone())];
        if let Some(k) = key {
            t.push((KEY_TAG.into(), k.to_string()));
        }
        t.push(("Name".into(), name.to_string()));
        t.extend(self.settings.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        t
    }

    /// A deterministic idempotency token (EC2 allows 64 ASCII characters).
    pub(crate) fn token(parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0u8]);
        }
        format!("vre-{}", &hex::encode(h.finalize())[..40])
    }

    /// The zone of the subnet and volumes: `[aws] availability_zone`, else the
    /// reused subnet's, else the zone of the subnet vre made earlier, else
    /// the region's first available zone. Resolved once per provider.
    pub(crate) async fn zone(&self, cluster: &ClusterRef) -> Result<String> {
        self.zone
            .get_or_try_init(|| async {
                if let Some(z) = &self.settings.availability_zone {
                    return Ok(z.clone());
                }
                if let Some(id) = &self.settings.subnet_id {
                    let s = self.reused_subnet(id).await?;
                    return Ok(s.availability_zone);
                }
                let mine: Vec<wire::DescribeSubnetsResponse> =
                    self.pages(requests::describe_subnets_of_cluster(&cluster.name)).await?;
                if let Some(s) = mine.into_iter().flat_map(|p| p.subnet_set.into_vec()).next() {
                    return Ok(s.availability_zone);
                }
                let zones: DescribeAvailabilityZonesResponse =
                    self.call(&requests::describe_zones(), &Blame::default()).await?;
                let mut names: Vec<String> = zones
                    .availability_zone_info
                    .into_vec()
                    .into_iter()
                    .filter(|z| z.zone_state == "available")
                    .map(|z| z.zone_name)
                    .collect();
                names.sort();
                names.into_iter().next().ok_or_else(|| {
                    Error::rejected(
                        setting("availability_zone"),
                        format!(
                            "region {} reports no available zone; set availability_zone in [aws]",
                            self.ec2.region()
                        ),
                    )
                })
            })
            .await
            .cloned()
    }

    /// Polls `probe` until it yields a value, backing off per the wait policy.
    /// `what` names the awaited state for the timeout message.
    pub(crate) async fn poll<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        let mut delay = self.wait.initial;
        loop {
            if let Some(v) = probe().await? {
                return Ok(v);
            }
            if Instant::now() + delay > deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    after: timeout,
                    hint: "EC2 is slower than usual or the resource is stuck; look at it in the EC2 console, then run the command again".into(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = self.wait.next(delay);
        }
    }

    /// Runs a delete that EC2 refuses with `DependencyViolation` while
    /// dependents are still going away (ENIs of terminated instances), for
    /// up to the settle timeout; `*.NotFound` is success.
    pub(crate) async fn delete_when_free(&self, what: &str, q: Query) -> Result<()> {
        let deadline = Instant::now() + self.wait.timeout;
        let mut delay = self.wait.initial;
        loop {
            match self.ec2.send(&q).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e)
                    if (e.is_code("DependencyViolation") || e.is_code("VolumeInUse"))
                        && Instant::now() + delay < deadline =>
                {
                    tracing::debug!(what, error = %e, "waiting for dependents to go");
                    tokio::time::sleep(delay).await;
                    delay = self.wait.next(delay);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) fn resource(kind: ResourceKind, id: &str, name: &str, key: Option<ResourceKey>) -> CloudResource {
        let r = CloudResource::new(kind, id, name);
        match key {
            Some(k) => r.with_key(k),
            None => r,
        }
    }
}

/// Reads a tag's value as a resource key.
pub(crate) fn key_of(tags: &impl wire::Tagged) -> Option<ResourceKey> {
    tags.tag(KEY_TAG).and_then(ResourceKey::parse)
}

#[async_trait]
impl CloudProvider for AwsProvider {
    fn name(&self) -> &str {
        "aws"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            multi_create: true,
            max_batch: 1000,
            public_ip_at_create: false,
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
        progress: &StepProgress,
    ) -> Result<CloudResource> {
        self.image(image, progress).await
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        self.network(cluster, request).await
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
        self.launch(cluster, batch).await
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        self.wait_running(cluster, instances, timeout, progress).await
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        self.volume(cluster, request).await
    }

    async fn attach_volume(
        &self,
        cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.attach(cluster, key, volume, instance).await
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.allocate_address(cluster, key, name).await
    }

    async fn associate_public_ip(
        &self,
        _cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.associate_address(ip, instance).await
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        self.list(cluster).await
    }

    async fn delete(&self, cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        self.remove(cluster, resource).await
    }
}
