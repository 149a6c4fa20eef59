//! The `local` provider: the real OpenStack provider driving the embedded
//! simulator (vre-sim), whose machines boot after a (scaled) delay and run
//! their kubeadm user data against a simulated Kubernetes API.
//!
//! The simulator keeps its state in `<dir>/.vre/sim/`. The first `vre`
//! command that needs it starts it in-process (and writes
//! `serving.json`); a command started while another one (or `vre sim
//! serve`) runs uses that one over loopback instead.
//!
//! `[sim]` table (all optional), also settable as `VRE_SIM_<KEY>` variables:
//! `time_scale` (0.02: a 30 s boot takes 0.6 s), `boot_seconds`,
//! `boot_jitter_seconds`, `join_seconds`, `ready_seconds`, `latency_ms`,
//! `jitter_ms`, `rate_limit_per_second`, `rate_limit_burst`, `error_rate`,
//! `timeout_rate`, `server_error_rate`, `never_join_rate`, `seed`,
//! `cloud_port`.
#![warn(missing_docs)]

mod dialer;
mod provider;
mod running;
mod settings;

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::Diagnostics;
use vre_core::{CloudProvider, ClusterSpec, Error, ProviderContext, ProviderFactory, ProviderTemplate, Result};
use vre_openstack::{OpenStackProvider, OpenStackSettings};

pub use running::{endpoints, shutdown_all, sim_dir};
pub use settings::{SimSettings, read_settings};

/// The provider name.
pub const PROVIDER: &str = "local";
/// Its table in vre.toml.
pub const TABLE: &str = "sim";

/// The factory registered as `local`.
pub struct LocalFactory;

#[async_trait]
impl ProviderFactory for LocalFactory {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn description(&self) -> &str {
        "the embedded simulator: an OpenStack-compatible cloud and Kubernetes API on loopback, no account needed"
    }

    fn table(&self) -> &str {
        TABLE
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: "# provider \"local\" runs on vre's embedded simulator (state in .vre/sim/): no account,\n# no credentials. `vre sim serve` keeps it up for kubectl between commands.".into(),
            image: "kubenow-ubuntu-24.04".into(),
            image_source: None,
            image_preinstalled: true,
            ssh_user: "ubuntu".into(),
            master_flavor: "m1.medium".into(),
            worker_flavor: "m1.medium".into(),
            storage_flavor: "m1.medium".into(),
            edge_flavor: "m1.small".into(),
            table: "[sim]                            # knobs of the simulation; also VRE_SIM_<KEY> variables\ntime_scale = 0.02                # simulated seconds -> real seconds (a 30 s boot takes 0.6 s)\n# boot_seconds = 30               # BUILD -> ACTIVE\n# join_seconds = 20               # ACTIVE -> node registered\n# ready_seconds = 10              # registered -> Ready\n# latency_ms = 0                  # added to every API call\n# rate_limit_per_second = 10      # per API; excess calls get 429 with Retry-After\n# error_rate = 0.0                # share of cloud calls answering 500/503\n# server_error_rate = 0.0         # share of servers landing in ERROR\n# seed = 1\n".into(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        read_settings(&spec.provider_table, diags);
    }

    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        let table = settings::with_env(&ctx.spec.provider_table, &ctx.env)?;
        let mut diags = Diagnostics::new();
        let settings = read_settings(&table, &mut diags);
        if !diags.is_empty() {
            return Err(Error::Spec(diags));
        }
        let state_dir = sim_dir(&ctx.dir);
        let poll = provider::scaled_poll(settings.config.time_scale);
        let running = running::running_sim(&state_dir, settings).await?;
        let password = running.password()?;
        let inner = OpenStackProvider::with_password(
            &running.auth_url(),
            "admin",
            &password,
            "vre",
            "Default",
            OpenStackSettings::default(),
        )
        .with_poll(poll);
        ctx.dialer.install(Arc::new(dialer::SimDialer {
            running: running.clone(),
        }));
        Ok(Arc::new(provider::LocalProvider {
            inner,
            _running: running,
        }))
    }
}
