//! The `local` provider: the OpenStack provider pointed at the simulator,
//! polling on the simulated clock. Addresses inside the simulated cloud are
//! mapped to loopback by the [`crate::dialer::SimDialer`] the factory installs.

use std::time::Duration;

use async_trait::async_trait;
use vre_core::provider::{InstanceBatch, NetworkInfo, NetworkRequest, SecurityGroupRequest, VolumeRequest};
use vre_core::spec::ImageSpec;
use vre_core::{
    Capabilities, CloudProvider, CloudResource, ClusterRef, PreflightProblem, PreflightRequest, ResourceKey,
    ResourceKind, Result, StepProgress,
};
use vre_openstack::OpenStackProvider;

use crate::PROVIDER;
use crate::running::Running;

/// The OpenStack provider's waits, on the simulator's clock: its servers
/// boot and its volumes attach `time_scale` times faster than a cloud's, so
/// polls that keep their real-cloud period would wait out most of a
/// simulated boot (a 1 s poll is 50 simulated seconds at 0.02).
pub(crate) fn scaled_poll(time_scale: f64) -> vre_openstack::PollPolicy {
    let cloud = vre_openstack::PollPolicy::default();
    let floor = Duration::from_millis(20);
    let scale = |d: Duration| d.mul_f64(time_scale.clamp(0.0, 1.0)).max(floor);
    vre_openstack::PollPolicy {
        first: scale(cloud.first),
        max: scale(cloud.max),
    }
}

/// The OpenStack provider, pointed at the simulator (kept running while
/// the provider lives).
pub(crate) struct LocalProvider {
    pub(crate) inner: OpenStackProvider,
    pub(crate) _running: Running,
}

#[async_trait]
impl CloudProvider for LocalProvider {
    fn name(&self) -> &str {
        PROVIDER
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn preflight(&self, c: &ClusterRef, r: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        // problems name [openstack] keys; the simulator's table is [sim]
        self.inner.preflight(c, r).await
    }
    async fn ensure_image(&self, c: &ClusterRef, image: &ImageSpec, p: &StepProgress) -> Result<CloudResource> {
        self.inner.ensure_image(c, image, p).await
    }
    async fn ensure_network(&self, c: &ClusterRef, r: &NetworkRequest) -> Result<NetworkInfo> {
        self.inner.ensure_network(c, r).await
    }
    async fn ensure_security_group(
        &self,
        c: &ClusterRef,
        n: &NetworkInfo,
        r: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.inner.ensure_security_group(c, n, r).await
    }
    async fn ensure_key_pair(&self, c: &ClusterRef, k: &str) -> Result<CloudResource> {
        self.inner.ensure_key_pair(c, k).await
    }
    async fn create_instances(&self, c: &ClusterRef, b: &InstanceBatch) -> Result<Vec<CloudResource>> {
        self.inner.create_instances(c, b).await
    }
    async fn wait_instances(
        &self,
        c: &ClusterRef,
        i: &[CloudResource],
        t: Duration,
        p: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        self.inner.wait_instances(c, i, t, p).await
    }
    async fn create_volume(&self, c: &ClusterRef, r: &VolumeRequest) -> Result<CloudResource> {
        self.inner.create_volume(c, r).await
    }
    async fn attach_volume(
        &self,
        c: &ClusterRef,
        k: &ResourceKey,
        v: &CloudResource,
        i: &CloudResource,
    ) -> Result<CloudResource> {
        self.inner.attach_volume(c, k, v, i).await
    }
    async fn allocate_public_ip(&self, c: &ClusterRef, k: &ResourceKey, n: &str) -> Result<CloudResource> {
        self.inner.allocate_public_ip(c, k, n).await
    }
    async fn associate_public_ip(
        &self,
        c: &ClusterRef,
        ip: &CloudResource,
        i: &CloudResource,
    ) -> Result<CloudResource> {
        self.inner.associate_public_ip(c, ip, i).await
    }
    async fn inventory(&self, c: &ClusterRef) -> Result<Vec<CloudResource>> {
        self.inner.inventory(c).await
    }
    async fn delete(&self, c: &ClusterRef, r: &CloudResource) -> Result<()> {
        self.inner.delete(c, r).await
    }
    fn destroy_rank(&self, kind: &ResourceKind) -> u32 {
        self.inner.destroy_rank(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_follow_the_simulated_clock() {
        let p = scaled_poll(0.05);
        assert_eq!(p.first, Duration::from_millis(50));
        assert_eq!(p.max, Duration::from_millis(500));
        let p = scaled_poll(0.0001);
        assert_eq!((p.first, p.max), (Duration::from_millis(20), Duration::from_millis(20)));
        // a simulation in real time (or slower) polls like a real cloud
        assert_eq!(scaled_poll(1.0), vre_openstack::PollPolicy::default());
        assert_eq!(scaled_poll(5.0), vre_openstack::PollPolicy::default());
    }
}
