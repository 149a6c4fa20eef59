//! [`OpenStackProvider`]: vre's `CloudProvider` on Nova, Neutron, Cinder and
//! Glance. The work is split by resource family (the crate's `servers`,
//! `flavors`, `networks`, `security_groups`, `volumes`, `images`,
//! `floating_ips` and `key_pairs` files, with `preflight`, `inventory` and
//! `delete`); every request they send is built in [`crate::requests`]. This
//! file holds the provider's state and the trait implementation that
//! dispatches to them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Mutex, OnceCell};
use vre_core::spec::ImageSpec;
use vre_core::{
    Capabilities, CloudProvider, CloudResource, ClusterRef, InstanceBatch, NetworkInfo, NetworkRequest,
    PreflightProblem, PreflightRequest, ResourceKey, Result, SecurityGroupRequest, StepProgress, VolumeRequest,
};

use crate::api::{Api, from_osauth};
use crate::auth::{Credentials, KeystoneAuth, SharedAuth};
use crate::error::OpenStackError;
use crate::settings::OpenStackSettings;
use crate::wire::{Flavor, Server};

pub use crate::networks::ROUTER_ID;
pub use crate::servers::CreatePlan;

/// What the crate's internal calls return.
pub(crate) type OsResult<T> = std::result::Result<T, OpenStackError>;

/// How often waits poll: the first delay, multiplied by 1.5 up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// The first delay.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl PollPolicy {
    /// The delay after `d`.
    pub(crate) fn next(&self, d: Duration) -> Duration {
        d.mul_f64(1.5).min(self.max)
    }
}

/// The OpenStack provider. Authenticates on first use; building it makes no call.
pub struct OpenStackProvider {
    credentials: Credentials,
    pub(crate) settings: OpenStackSettings,
    pub(crate) poll: PollPolicy,
    api: OnceCell<Api>,
    pub(crate) flavors: Mutex<Option<Vec<Flavor>>>,
    /// The last listing of each cluster's servers, shared by every wait.
    pub(crate) servers: Mutex<BTreeMap<String, (Instant, Vec<Server>)>>,
}

impl std::fmt::Debug for OpenStackProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackProvider")
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpenStackProvider {
    /// A provider for `credentials` (no network call until first used).
    pub fn new(credentials: Credentials, settings: OpenStackSettings) -> Self {
        OpenStackProvider {
            credentials,
            settings,
            poll: PollPolicy::default(),
            api: OnceCell::new(),
            flavors: Mutex::new(None),
            servers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Password authentication given in code: what the facade uses to point
    /// the provider at the embedded simulator (`user = "admin"`, project
    /// `vre`, domain `Default`).
    pub fn with_password(
        auth_url: &str,
        user: &str,
        password: &str,
        project: &str,
        domain: &str,
        settings: OpenStackSettings,
    ) -> Self {
        OpenStackProvider::new(
            Credentials::password(auth_url, user, password, project, domain),
            settings,
        )
    }

    /// Replaces the polling schedule (tests and the simulator poll faster).
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    /// The `[openstack]` table this provider was built with.
    pub fn settings(&self) -> &OpenStackSettings {
        &self.settings
    }

    /// The authenticated connection (set up on first use).
    pub async fn api(&self) -> OsResult<&Api> {
        self.api
            .get_or_try_init(|| async {
                let auth = Arc::new(KeystoneAuth::new(self.credentials.clone())?);
                let client = self.credentials.http_client()?;
                let mut session = osauth::Session::new_with_client(client, SharedAuth(auth.clone()))
                    .await
                    .map_err(|e| from_osauth("keystone", "authenticate", e))?;
                session.set_endpoint_interface(self.credentials.interface_type()?);
                if let Some(r) = &self.credentials.region {
                    session.set_region(r.clone());
                }
                Ok(Api::new(session, auth))
            })
            .await
    }
}

#[async_trait]
impl CloudProvider for OpenStackProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            multi_create: true,
            max_batch: 1000,
            public_ip_at_create: false,
            custom_dns_servers: true,
        }
    }

    async fn preflight(&self, cluster: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        Ok(self.preflight_checks(cluster, request).await?)
    }

    async fn ensure_image(
        &self,
        _cluster: &ClusterRef,
        image: &ImageSpec,
        progress: &StepProgress,
    ) -> Result<CloudResource> {
        Ok(self.image(image, progress).await?)
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        Ok(self.network(cluster, request).await?)
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        _network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        Ok(self.security_group(cluster, request).await?)
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        Ok(self.key_pair(cluster, public_key).await?)
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        Ok(self.instances(cluster, batch).await?)
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        Ok(self.wait(cluster, instances, timeout, progress).await?)
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        Ok(self.new_volume(cluster, request).await?)
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        Ok(self.attach(key, volume, instance).await?)
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        Ok(self.allocate_ip(cluster, key, name).await?)
    }

    async fn associate_public_ip(
        &self,
        _cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        Ok(self.associate(ip, instance).await?)
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        Ok(self.list_inventory(cluster).await?)
    }

    async fn delete(&self, cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        Ok(self.remove(cluster, resource).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_has_no_secret() {
        let p = OpenStackProvider::with_password(
            "http://127.0.0.1:1/v3",
            "admin",
            "hunter2",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
