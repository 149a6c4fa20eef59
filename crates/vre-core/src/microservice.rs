//! The top layer: the microservices that make a bare cluster a research
//! environment, and the DNS records that point at its edge.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::orchestrator::{ClusterFacts, Manifest, Orchestrator, ReadinessCheck};
use crate::resource::CloudResource;
use crate::spec::{ClusterSpec, Diagnostics};

/// A URL a microservice or app serves, printed at the end of `vre apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Short name (`jupyter`).
    pub name: String,
    /// Where it is served.
    pub url: String,
}

/// One microservice (shared storage, object storage, the edge load balancer,
/// an app). Object-safe; used as `Arc<dyn Microservice>`.
// No `mockall::automock` here: mockall cannot mock an async-trait method
// taking `&dyn Orchestrator` (asomers/mockall#371) without changing the
// signature every implementation spells out. `testing::FakeOrchestrator` and
// small hand-written microservices serve the engine tests instead.
#[async_trait]
pub trait Microservice: Send + Sync {
    /// Unique name; other microservices list it in `depends_on`.
    fn name(&self) -> &str;

    /// Validates its own settings in `spec` (files named relative to the
    /// deployment directory `dir`), reporting every problem into `diags`
    /// with the spec field it is about. Plan and apply call it before the
    /// provider's first cloud call; the default finds nothing.
    fn check_settings(&self, _spec: &ClusterSpec, _dir: &Path, _diags: &mut Diagnostics) {}

    /// Names of microservices that must be ready first.
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }

    /// The objects it needs, given the cluster.
    fn objects(&self, facts: &ClusterFacts) -> Result<Vec<Manifest>>;

    /// How to tell it is up.
    fn readiness(&self, facts: &ClusterFacts) -> Vec<ReadinessCheck>;

    /// What it serves, once up.
    fn endpoints(&self, _facts: &ClusterFacts) -> Vec<Endpoint> {
        Vec::new()
    }

    /// Installs it: by default applies [`Microservice::objects`] and waits on
    /// [`Microservice::readiness`]. Override for installs that need more
    /// (a Helm release).
    async fn install(&self, orchestrator: &dyn Orchestrator, facts: &ClusterFacts, timeout: Duration) -> Result<()> {
        orchestrator.apply(&self.objects(facts)?).await?;
        orchestrator.wait_ready(&self.readiness(facts), timeout).await
    }
}

/// Runs [`Microservice::check_settings`] of every microservice: all problems
/// at once as [`crate::Error::Spec`], or nothing.
pub fn check_microservices(microservices: &[Arc<dyn Microservice>], spec: &ClusterSpec, dir: &Path) -> Result<()> {
    let mut diags = Diagnostics::new();
    for m in microservices {
        m.check_settings(spec, dir, &mut diags);
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Spec(diags))
    }
}

/// A DNS record vre manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Fully qualified name (`*.mylab.example.org`).
    pub name: String,
    /// The address it points at.
    pub address: IpAddr,
    /// Proxied through the DNS provider's CDN (Cloudflare).
    pub proxied: bool,
}

/// Records for the edge. Object-safe; used as `Arc<dyn Dns>`.
// automock goes before #[async_trait] (mockall must see the `async fn`s)
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Dns: Send + Sync {
    /// The DNS provider's name (`cloudflare`, `nip.io`, ...).
    fn name(&self) -> &str;

    /// The domain apps live under, given the edge addresses, or `None` when
    /// there is no edge address yet.
    fn domain(&self, cluster: &str, edge_ips: &[IpAddr]) -> Option<String>;

    /// The records that should exist for these edge addresses.
    fn records(&self, cluster: &str, edge_ips: &[IpAddr]) -> Vec<DnsRecord>;

    /// Creates or updates the records (tagged with the cluster) and returns
    /// them as resources (`kind = DnsRecord`).
    async fn ensure_records(&self, cluster: &str, records: &[DnsRecord]) -> Result<Vec<CloudResource>>;

    /// Every record tagged with the cluster, including stale ones.
    async fn list_records(&self, cluster: &str) -> Result<Vec<CloudResource>>;

    /// Deletes one record; an absent record is success.
    async fn delete_record(&self, record: &CloudResource) -> Result<()>;
}
