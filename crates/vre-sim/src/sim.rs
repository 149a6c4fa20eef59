//! The whole simulator: the cloud API, the clusters it boots, and a small
//! control API so that other processes (a second `vre` command, `vre sim
//! serve`, benchmarks) use the running simulator instead of starting their
//! own on the same state.
//!
//! One process owns a state directory at a time (a lock file); it writes
//! `serving.json` there with its URLs. Another process finds the owner
//! through [`Sim::find_serving`] and talks to it over HTTP.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cloud::{CloudHandle, CloudOptions, CloudServer, ResourceCounts};
use crate::kube::Clusters;
use crate::{SimConfig, SimError, SimStats};

/// Files of a simulator state directory.
pub const SERVING_FILE: &str = "serving.json";
pub const LOCK_FILE: &str = "lock";
pub const PASSWORD_FILE: &str = "password";
pub const CLOUD_STATE_FILE: &str = "cloud.json";
pub const KUBE_STATE_DIR: &str = "kube";

/// How to start a simulator.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    pub config: SimConfig,
    /// Where the state lives (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
    /// Port of the cloud API (0: the one used last time if free, else any).
    pub cloud_port: u16,
}

/// What `serving.json` says about a running simulator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    /// Keystone v3 URL of the cloud API.
    pub auth_url: String,
    /// The control API (`/health`, `/endpoint?ip=`, `/counts`, `/stats`).
    pub control_url: String,
    pub pid: u32,
}

/// Calls answered so far, by API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub keystone: u64,
    pub nova: u64,
    pub neutron: u64,
    pub cinder: u64,
    pub glance: u64,
    pub kube: u64,
    pub injected_faults: u64,
    pub rate_limited: u64,
}

impl StatsSnapshot {
    pub fn of(s: &SimStats) -> Self {
        StatsSnapshot {
            keystone: s.keystone.load(Ordering::Relaxed),
            nova: s.nova.load(Ordering::Relaxed),
            neutron: s.neutron.load(Ordering::Relaxed),
            cinder: s.cinder.load(Ordering::Relaxed),
            glance: s.glance.load(Ordering::Relaxed),
            kube: s.kube.load(Ordering::Relaxed),
            injected_faults: s.injected_faults.load(Ordering::Relaxed),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
        }
    }

    pub fn cloud_calls(&self) -> u64 {
        self.keystone + self.nova + self.neutron + self.cinder + self.glance
    }
}

/// A running simulator (cloud + clusters + control API).
pub struct Sim {
    cloud: SharedCloud,
    clusters: Arc<Clusters>,
    stats: Arc<SimStats>,
    config: Arc<SimConfig>,
    password: String,
    state_dir: Option<PathBuf>,
    control_addr: SocketAddr,
    control_stop: watch::Sender<bool>,
    control_task: Option<JoinHandle<()>>,
    _lock: Option<File>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("auth_url", &self.auth_url())
            .field("control", &self.control_addr)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

type SharedCloud = Arc<std::sync::Mutex<Option<CloudHandle>>>;

#[derive(Clone)]
struct Control {
    clusters: Arc<Clusters>,
    stats: Arc<SimStats>,
    cloud: SharedCloud,
}

fn counts_of(cloud: &SharedCloud) -> BTreeMap<String, ResourceCounts> {
    cloud
        .lock()
        .expect("simulator poisoned")
        .as_ref()
        .map(|c| c.counts())
        .unwrap_or_default()
}

impl Sim {
    /// Starts a simulator. With a state directory, it takes the directory's
    /// lock (another running simulator there is an error: use
    /// [`Sim::find_serving`] first), reloads the state, and writes
    /// `serving.json`.
    pub async fn start(options: SimOptions) -> Result<Sim, SimError> {
        let config = Arc::new(options.config);
        let stats = Arc::new(SimStats::default());
        let mut lock = None;
        let mut password = "vre-sim".to_string();
        let mut port = options.cloud_port;
        if let Some(dir) = &options.state_dir {
            std::fs::create_dir_all(dir).map_err(|source| SimError::StateWrite {
                path: dir.clone(),
                source,
            })?;
            lock = Some(take_lock(dir)?);
            password = load_or_create_password(dir)?;
            if port == 0 {
                port = previous_port(dir).unwrap_or(0);
            }
        }
        let clusters = Clusters::new(
            config.clone(),
            stats.clone(),
            options.state_dir.as_ref().map(|d| d.join(KUBE_STATE_DIR)),
        );
        let mut cloud_options = CloudOptions {
            port,
            password: password.clone(),
            state_file: options.state_dir.as_ref().map(|d| d.join(CLOUD_STATE_FILE)),
            ..CloudOptions::default()
        };
        let cloud =
            match CloudServer::start(cloud_options.clone(), config.clone(), stats.clone(), clusters.clone()).await {
                Ok(c) => c,
                // the port used last time is taken: any port will do
                Err(SimError::Bind { .. }) if options.cloud_port == 0 && port != 0 => {
                    cloud_options.port = 0;
                    CloudServer::start(cloud_options, config.clone(), stats.clone(), clusters.clone()).await?
                }
                Err(e) => return Err(e),
            };
        let cloud: SharedCloud = Arc::new(std::sync::Mutex::new(Some(cloud)));
        let control = Control {
            clusters: clusters.clone(),
            stats: stats.clone(),
            cloud: cloud.clone(),
        };
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/endpoint", get(endpoint))
            .route("/counts", get(counts_handler))
            .route("/stats", get(stats_handler))
            .with_state(control);
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .await
            .map_err(|source| SimError::Bind {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                source,
            })?;
        let control_addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            source,
        })?;
        let (control_stop, mut stop_rx) = watch::channel(false);
        let control_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.changed().await;
                })
                .await;
        });
        let sim = Sim {
            cloud,
            clusters,
            stats,
            config,
            password,
            state_dir: options.state_dir,
            control_addr,
            control_stop,
            control_task: Some(control_task),
            _lock: lock,
        };
        if let Some(dir) = &sim.state_dir {
            let serving = Serving {
                auth_url: sim.auth_url(),
                control_url: sim.control_url(),
                pid: std::process::id(),
            };
            let text = serde_json::to_vec_pretty(&serving).expect("plain struct");
            write_file(&dir.join(SERVING_FILE), &text, false)?;
        }
        Ok(sim)
    }

    /// The simulator serving `state_dir` in another process, if one is running.
    pub fn find_serving(state_dir: &Path) -> Option<Serving> {
        let lock_path = state_dir.join(LOCK_FILE);
        let f = OpenOptions::new().write(true).open(&lock_path).ok()?;
        match f.try_lock() {
            // nobody holds it: a leftover serving.json is stale
            Ok(()) => None,
            Err(_) => {
                let text = std::fs::read_to_string(state_dir.join(SERVING_FILE)).ok()?;
                serde_json::from_str(&text).ok()
            }
        }
    }

    /// The admin password of a state directory's cloud (user `admin`, project `vre`).
    pub fn password_of(state_dir: &Path) -> Result<String, SimError> {
        load_or_create_password(state_dir)
    }

    pub fn auth_url(&self) -> String {
        self.cloud
            .lock()
            .expect("simulator poisoned")
            .as_ref()
            .map(|c| c.auth_url())
            .unwrap_or_default()
    }

    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn config(&self) -> &Arc<SimConfig> {
        &self.config
    }

    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot::of(&self.stats)
    }

    pub fn clusters(&self) -> &Arc<Clusters> {
        &self.clusters
    }

    /// The loopback address of the API server answering for `ip` (a master's address).
    pub fn endpoint_for(&self, ip: IpAddr) -> Option<SocketAddr> {
        self.clusters.endpoint_for(ip)
    }

    /// Resources in the cloud, by project.
    pub fn counts(&self) -> BTreeMap<String, ResourceCounts> {
        counts_of(&self.cloud)
    }

    /// Stops everything and saves the state.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        let _ = self.control_stop.send(true);
        if let Some(t) = self.control_task.take() {
            let _ = t.await;
        }
        self.clusters.shutdown().await;
        let cloud = self.cloud.lock().expect("simulator poisoned").take();
        if let Some(c) = cloud {
            c.shutdown().await?;
        }
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_file(dir.join(SERVING_FILE));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct IpQuery {
    ip: IpAddr,
}

async fn endpoint(State(c): State<Control>, Query(q): Query<IpQuery>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match c.clusters.endpoint_for(q.ip) {
        Some(addr) => axum::Json(serde_json::json!({ "endpoint": addr.to_string() })).into_response(),
        None => (
            http::StatusCode::NOT_FOUND,
            format!("no API server answers for {}", q.ip),
        )
            .into_response(),
    }
}

async fn counts_handler(State(c): State<Control>) -> axum::Json<BTreeMap<String, ResourceCounts>> {
    axum::Json(counts_of(&c.cloud))
}

async fn stats_handler(State(c): State<Control>) -> axum::Json<StatsSnapshot> {
    axum::Json(StatsSnapshot::of(&c.stats))
}

fn take_lock(dir: &Path) -> Result<File, SimError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SimError::StateWrite {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(_) => Err(SimError::InvalidOption {
            option: "state_dir".into(),
            reason: format!(
                "another simulator is running on {} (find it with Sim::find_serving, or stop it)",
                dir.display()
            ),
        }),
    }
}

fn previous_port(dir: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(dir.join(SERVING_FILE)).ok()?;
    let s: Serving = serde_json::from_str(&text).ok()?;
    url::Url::parse(&s.auth_url).ok()?.port()
}

fn load_or_create_password(dir: &Path) -> Result<String, SimError> {
    let path = dir.join(PASSWORD_FILE);
    if let Ok(p) = std::fs::read_to_string(&path) {
        let p = p.trim().to_string();
        if !p.is_empty() {
            return Ok(p);
        }
    }
    let mut bytes = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        SimError::InvalidOption {
            option: "password".into(),
            reason: "the system random generator failed".into(),
        }
    })?;
    let p = hex::encode(bytes);
    write_file(&path, p.as_bytes(), true)?;
    Ok(p)
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), SimError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let err = |source| SimError::StateWrite {
        path: path.to_path_buf(),
        source,
    };
    {
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(true).write(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}
