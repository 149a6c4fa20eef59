//! vre-sim: an embedded cloud and cluster, on loopback, so `vre apply` works
//! on a fresh machine with no cloud account. Modelled on Cluster API's
//! in-memory provider: machines "boot" after a delay, then their user data
//! is "run": a master's `kubeadm init` brings up a Kubernetes API server for
//! that cluster, a worker's `kubeadm join` (valid token and CA hash only)
//! registers a Node that turns Ready after a delay.
//!
//! Two halves share the types in this file:
//! - [`cloud`]: an OpenStack-compatible API (Keystone v3, Nova, Neutron,
//!   Cinder v3, Glance v2), so the real `vre-openstack` provider runs
//!   against it unchanged.
//! - [`kube`]: one Kubernetes API server per simulated cluster (discovery,
//!   CRUD, watch, server-side apply, patches, TLS with the cluster's CA),
//!   with simple controllers.
//!
//! The cloud tells the cluster side about machines through
//! [`MachineEvents`]; both halves read the same [`SimConfig`] knobs and
//! count calls in the same [`SimStats`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod calendar;
pub mod cloud;
mod files;
pub mod kube;
pub mod sim;

pub use sim::{Serving, Sim, SimOptions, StatsSnapshot};

/// Knobs of the simulation. All durations are in simulated time; they are
/// multiplied by `time_scale` before anything sleeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Added to every API call (cloud and Kubernetes).
    pub latency: Duration,
    /// Uniform random extra latency in `[0, jitter]`.
    pub jitter: Duration,
    /// Per-endpoint (per service: nova, neutron, ...) rate limit; excess
    /// calls get 429 with `Retry-After`.
    pub rate_limit: Option<RateLimit>,
    /// Probability that a cloud call answers 500 or 503.
    pub error_rate: f64,
    /// Probability that a cloud call hangs past the client's patience
    /// (the connection is held, then dropped with no answer).
    pub timeout_rate: f64,
    /// Probability that a new server lands in ERROR instead of ACTIVE.
    pub server_error_rate: f64,
    /// Probability that a node's `kubeadm join` silently never completes.
    pub never_join_rate: f64,
    /// BUILD -> ACTIVE.
    pub boot_time: Duration,
    /// Uniform random extra boot time in `[0, boot_jitter]`.
    pub boot_jitter: Duration,
    /// ACTIVE -> the master's API server answers / a node is registered.
    pub join_time: Duration,
    /// Registered -> Ready.
    pub ready_time: Duration,
    /// Multiplies every simulated duration (0.01 runs a 60 s boot in 0.6 s).
    pub time_scale: f64,
    /// Seed of every random choice, for reproducible runs.
    pub seed: u64,
    /// Project quotas (Nova instances / cores / RAM, Cinder gigabytes, ...).
    pub quotas: Quotas,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_limit: None,
            error_rate: 0.0,
            timeout_rate: 0.0,
            server_error_rate: 0.0,
            never_join_rate: 0.0,
            boot_time: Duration::from_secs(30),
            boot_jitter: Duration::from_secs(10),
            join_time: Duration::from_secs(20),
            ready_time: Duration::from_secs(10),
            time_scale: 0.02,
            seed: 1,
            quotas: Quotas::default(),
        }
    }
}

impl SimConfig {
    /// A simulated duration as wall-clock time.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale.max(0.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained calls per second per endpoint.
    pub per_second: f64,
    /// Calls allowed in a burst above the sustained rate.
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    pub instances: u32,
    pub cores: u32,
    pub ram_mb: u64,
    pub volumes: u32,
    pub gigabytes: u64,
    pub floating_ips: u32,
    pub networks: u32,
    pub security_groups: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            instances: 5000,
            cores: 40_000,
            ram_mb: 160_000_000,
            volumes: 5000,
            gigabytes: 1_000_000,
            floating_ips: 1000,
            networks: 100,
            security_groups: 100,
        }
    }
}

/// A machine as the cloud knows it, handed to the cluster side. Its user
/// data holds key material (the join token, on a master the CA key), so
/// `Debug` prints only its size.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The server id.
    pub id: String,
    /// The server name (the node's hostname).
    pub name: String,
    /// The project that owns it (clusters never span projects).
    pub project_id: String,
    pub private_ip: Option<Ipv4Addr>,
    pub public_ips: Vec<IpAddr>,
    /// The user data, decoded from base64.
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("project_id", &self.project_id)
            .field("private_ip", &self.private_ip)
            .field("public_ips", &self.public_ips)
            .field(
                "user_data",
                &self
                    .user_data
                    .as_ref()
                    .map(|u| format!("<{} bytes, redacted>", u.len())),
            )
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// How the cloud tells the cluster side what its machines do.
pub trait MachineEvents: Send + Sync {
    /// The machine reached ACTIVE: "run" its user data.
    fn booted(&self, machine: &Machine);
    /// A public address was bound to / removed from a running machine.
    fn addresses_changed(&self, machine: &Machine);
    /// The machine was deleted.
    fn deleted(&self, machine: &Machine);
    /// The cloud (re)started on saved state: `running` are all its booted
    /// machines. Events of the moments before the last shutdown may have
    /// been lost (a boot after the cluster side saved, a deletion still in
    /// the queue), so the cluster side reconciles: a machine it never heard
    /// of boots, one it knows that is not listed is gone. The default
    /// announces each machine as booted (which must be idempotent).
    fn resync(&self, running: &[Machine]) {
        for m in running {
            self.booted(m);
        }
    }
}

/// Calls answered, by API, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct SimStats {
    pub keystone: AtomicU64,
    pub nova: AtomicU64,
    pub neutron: AtomicU64,
    pub cinder: AtomicU64,
    pub glance: AtomicU64,
    pub kube: AtomicU64,
    /// Calls answered with an injected fault (5xx, timeout) or 429.
    pub injected_faults: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl SimStats {
    pub fn cloud_calls(&self) -> u64 {
        [&self.keystone, &self.nova, &self.neutron, &self.cinder, &self.glance]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn kube_calls(&self) -> u64 {
        self.kube.load(Ordering::Relaxed)
    }
}

/// Why a simulator server could not start, save or load its state.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source} (choose another port or stop what holds it)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the simulator state {}: {source}", path.display())]
    StateRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator state {} is not valid: {source} (move it away to start from an empty simulator)", path.display())]
    StateParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the simulator state {}: {source}", path.display())]
    StateWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A start option the simulator cannot honour; `option` names it.
    #[error("{option}: {reason}")]
    InvalidOption { option: String, reason: String },
}
