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

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use vre_core::provider::{InstanceBatch, NetworkInfo, NetworkRequest, SecurityGroupRequest, VolumeRequest};
use vre_core::spec::{Diagnostics, ImageSpec, Table, TableReader};
use vre_core::{
    Capabilities, CloudError, CloudProvider, CloudResource, ClusterRef, ClusterSpec, Error, ProviderContext,
    ProviderFactory, ProviderTemplate, ResourceKey, ResourceKind, Result,
};
use vre_openstack::{OpenStackProvider, OpenStackSettings};
use vre_sim::{Serving, Sim, SimConfig, SimOptions};

/// The provider name.
pub const PROVIDER: &str = "local";
/// Its table in vre.toml.
pub const TABLE: &str = "sim";

/// `(key, kind)` of every `[sim]` key, in documentation order.
const KEYS: &[&str] = &[
    "time_scale",
    "boot_seconds",
    "boot_jitter_seconds",
    "join_seconds",
    "ready_seconds",
    "latency_ms",
    "jitter_ms",
    "rate_limit_per_second",
    "rate_limit_burst",
    "error_rate",
    "timeout_rate",
    "server_error_rate",
    "never_join_rate",
    "seed",
    "cloud_port",
];

/// The `[sim]` table, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimSettings {
    pub config: SimConfig,
    pub cloud_port: u16,
}

/// Reads `[sim]` into `diags` (every problem, located).
pub fn read_settings(table: &Table, diags: &mut Diagnostics) -> SimSettings {
    let mut r = TableReader::new(table, TABLE);
    let mut c = SimConfig::default();
    let secs = |v: f64| Duration::from_secs_f64(v);
    let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
    if let Some(v) = r.float(diags, "time_scale", 0.0, 100.0, 0.02) {
        c.time_scale = v.value;
    }
    if let Some(v) = r.float(diags, "boot_seconds", 0.0, 86_400.0, 30.0) {
        c.boot_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "boot_jitter_seconds", 0.0, 86_400.0, 10.0) {
        c.boot_jitter = secs(v.value);
    }
    if let Some(v) = r.float(diags, "join_seconds", 0.0, 86_400.0, 20.0) {
        c.join_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "ready_seconds", 0.0, 86_400.0, 10.0) {
        c.ready_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "latency_ms", 0.0, 600_000.0, 50.0) {
        c.latency = ms(v.value);
    }
    if let Some(v) = r.float(diags, "jitter_ms", 0.0, 600_000.0, 10.0) {
        c.jitter = ms(v.value);
    }
    let per_second = r.float(diags, "rate_limit_per_second", 0.001, 1_000_000.0, 10.0);
    let burst = r.integer(diags, "rate_limit_burst", 1, 1_000_000, 20);
    if let Some(p) = per_second {
        c.rate_limit = Some(vre_sim::RateLimit {
            per_second: p.value,
            burst: burst.map_or(p.value.ceil() as u32, |b| b.value as u32),
        });
    } else if let Some(b) = burst {
        diags.error(
            "sim.rate_limit_burst",
            b.span,
            "needs rate_limit_per_second; add `rate_limit_per_second = 10` or remove it",
        );
    }
    for (key, slot) in [
        ("error_rate", &mut c.error_rate),
        ("timeout_rate", &mut c.timeout_rate),
        ("server_error_rate", &mut c.server_error_rate),
        ("never_join_rate", &mut c.never_join_rate),
    ] {
        if let Some(v) = r.float(diags, key, 0.0, 1.0, 0.05) {
            *slot = v.value;
        }
    }
    if let Some(v) = r.integer(diags, "seed", 0, i64::MAX, 1) {
        c.seed = v.value as u64;
    }
    let cloud_port = r
        .integer(diags, "cloud_port", 0, 65535, 0)
        .map_or(0, |v| v.value as u16);
    r.finish(diags, KEYS);
    SimSettings { config: c, cloud_port }
}

/// `[sim]` with `VRE_SIM_<KEY>` variables laid over it.
fn with_env(table: &Table, env: &BTreeMap<String, String>) -> Result<Table> {
    let mut t = table.clone();
    for key in KEYS {
        let var = format!("VRE_SIM_{}", key.to_ascii_uppercase());
        if let Some(v) = env.get(&var).filter(|v| !v.is_empty()) {
            let value = if let Ok(i) = v.parse::<i64>() {
                vre_core::spec::Value::Integer(i)
            } else if let Ok(f) = v.parse::<f64>() {
                vre_core::spec::Value::Float(f)
            } else {
                return Err(Error::input(var, format!("\"{v}\" is not a number")));
            };
            t.insert(key, value);
        }
    }
    Ok(t)
}

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
        let table = with_env(&ctx.spec.provider_table, &ctx.env)?;
        let mut diags = Diagnostics::new();
        let settings = read_settings(&table, &mut diags);
        if !diags.is_empty() {
            return Err(Error::Spec(diags));
        }
        let state_dir = sim_dir(&ctx.dir);
        let poll = scaled_poll(settings.config.time_scale);
        let running = running_sim(&state_dir, settings).await?;
        let password = running.password()?;
        let inner = OpenStackProvider::with_password(
            &running.auth_url(),
            "admin",
            &password,
            "vre",
            "Default",
            OpenStackSettings::default(),
        )
        .with_spec(ctx.spec.clone())
        .with_events(ctx.events.clone())
        .with_poll(poll);
        Ok(Arc::new(LocalProvider { inner, running }))
    }
}

/// The OpenStack provider's waits, on the simulator's clock: its servers
/// boot and its volumes attach `time_scale` times faster than a cloud's, so
/// polls that keep their real-cloud period would wait out most of a
/// simulated boot (a 1 s poll is 50 simulated seconds at 0.02).
fn scaled_poll(time_scale: f64) -> vre_openstack::PollPolicy {
    let cloud = vre_openstack::PollPolicy::default();
    let floor = Duration::from_millis(20);
    let scale = |d: Duration| d.mul_f64(time_scale.clamp(0.0, 1.0)).max(floor);
    vre_openstack::PollPolicy {
        first: scale(cloud.first),
        max: scale(cloud.max),
    }
}

/// `<dir>/.vre/sim`
pub fn sim_dir(dir: &Path) -> PathBuf {
    dir.join(vre_core::state::STATE_DIR).join("sim")
}

/// A simulator this process runs, or one another process serves.
#[derive(Clone)]
enum Running {
    Here(Arc<Sim>),
    Elsewhere {
        serving: Serving,
        state_dir: PathBuf,
        http: reqwest::Client,
    },
}

/// Simulators started by this process, by state directory, so that every
/// deployment of one directory shares one and they can be shut down (and
/// their state saved) before the process exits.
static STARTED: Mutex<Vec<(PathBuf, Arc<Sim>)>> = Mutex::new(Vec::new());

async fn running_sim(state_dir: &Path, settings: SimSettings) -> Result<Running> {
    if let Some(sim) = STARTED
        .lock()
        .expect("poisoned")
        .iter()
        .find(|(d, _)| d == state_dir)
        .map(|(_, s)| s.clone())
    {
        return Ok(Running::Here(sim));
    }
    if let Some(serving) = Sim::find_serving(state_dir) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::component("local", format!("cannot build an HTTP client: {e}")))?;
        let healthy = http
            .get(format!("{}/health", serving.control_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            return Ok(Running::Elsewhere {
                serving,
                state_dir: state_dir.to_path_buf(),
                http,
            });
        }
    }
    let sim = Sim::start(SimOptions {
        config: settings.config,
        state_dir: Some(state_dir.to_path_buf()),
        cloud_port: settings.cloud_port,
    })
    .await
    .map_err(|e| Error::component("local", format!("cannot start the simulator: {e}")))?;
    let sim = Arc::new(sim);
    STARTED
        .lock()
        .expect("poisoned")
        .push((state_dir.to_path_buf(), sim.clone()));
    Ok(Running::Here(sim))
}

impl Running {
    fn auth_url(&self) -> String {
        match self {
            Running::Here(s) => s.auth_url(),
            Running::Elsewhere { serving, .. } => serving.auth_url.clone(),
        }
    }

    fn password(&self) -> Result<String> {
        match self {
            Running::Here(s) => Ok(s.password().to_string()),
            Running::Elsewhere { state_dir, .. } => Sim::password_of(state_dir)
                .map_err(|e| Error::component("local", format!("cannot read the simulator's password: {e}"))),
        }
    }

    async fn endpoint_for(&self, ip: IpAddr) -> Result<Option<SocketAddr>> {
        match self {
            Running::Here(s) => Ok(s.endpoint_for(ip)),
            Running::Elsewhere { serving, http, .. } => {
                let url = format!("{}/endpoint?ip={ip}", serving.control_url);
                let r = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| CloudError::transport("vre-sim", "find the API server", e))?;
                if r.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                #[derive(serde::Deserialize)]
                struct Answer {
                    endpoint: SocketAddr,
                }
                let a: Answer = r
                    .json()
                    .await
                    .map_err(|e| CloudError::transport("vre-sim", "find the API server", e))?;
                Ok(Some(a.endpoint))
            }
        }
    }
}

/// The OpenStack provider, pointed at the simulator, with addresses inside
/// the simulated cloud mapped to loopback.
struct LocalProvider {
    inner: OpenStackProvider,
    running: Running,
}

#[async_trait]
impl CloudProvider for LocalProvider {
    fn name(&self) -> &str {
        PROVIDER
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn preflight(&self, c: &ClusterRef, spec: &ClusterSpec) -> Result<Vec<(String, String)>> {
        // problems name [openstack] keys; the simulator's table is [sim]
        Ok(self.inner.preflight(c, spec).await?)
    }
    async fn ensure_image(&self, c: &ClusterRef, image: &ImageSpec) -> Result<CloudResource> {
        self.inner.ensure_image(c, image).await
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
    async fn wait_instances(&self, c: &ClusterRef, i: &[CloudResource], t: Duration) -> Result<Vec<CloudResource>> {
        self.inner.wait_instances(c, i, t).await
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
    async fn reachable(&self, addr: SocketAddr) -> Result<SocketAddr> {
        if addr.port() != vre_core::API_PORT {
            return Err(Error::input(
                "provider",
                format!(
                    "the simulator runs no {} on {addr}: simulated machines only serve the Kubernetes API (use kubectl)",
                    if addr.port() == 22 { "SSH server" } else { "service" }
                ),
            ));
        }
        // the master's API server comes up a little after its machine boots
        for _ in 0..600 {
            if let Some(a) = self.running.endpoint_for(addr.ip()).await? {
                return Ok(a);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("the simulated API server of {addr}"),
            after: Duration::from_secs(60),
            hint: "the master never ran kubeadm init: check its user data (`vre status`)".into(),
        })
    }
}

/// URLs of the simulator serving `dir`, for `vre sim serve`.
pub fn endpoints(dir: &Path) -> Vec<(String, String)> {
    let state_dir = sim_dir(dir);
    let mut out = Vec::new();
    if let Some(sim) = STARTED
        .lock()
        .expect("poisoned")
        .iter()
        .find(|(d, _)| d == &state_dir)
        .map(|(_, s)| s.clone())
    {
        out.push(("OS_AUTH_URL".to_string(), sim.auth_url()));
        out.push(("control".to_string(), sim.control_url()));
        for c in sim.clusters().clusters() {
            out.push((format!("kube {}", c.name), format!("https://{}", c.endpoint)));
        }
    }
    out
}

/// Stops every simulator this process started, saving their state. Call
/// before the process exits (the CLI does).
pub async fn shutdown_all() {
    let started: Vec<(PathBuf, Arc<Sim>)> = std::mem::take(&mut *STARTED.lock().expect("poisoned"));
    for (dir, sim) in started {
        match Arc::try_unwrap(sim) {
            Ok(sim) => {
                if let Err(e) = sim.shutdown().await {
                    tracing::warn!(dir = %dir.display(), "saving the simulator state failed: {e}");
                }
            }
            Err(_) => {
                tracing::warn!(dir = %dir.display(), "the simulator is still in use; its last changes may not be saved")
            }
        }
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
