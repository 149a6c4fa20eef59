//! The OpenStack-compatible cloud API of the simulator.
//!
//! One HTTP server on 127.0.0.1 serves the subset of OpenStack that vre
//! uses, laid out as devstack lays it out:
//!
//! | service | path | API |
//! |---|---|---|
//! | Keystone | `/identity` | identity v3: password, application credential and token auth, the catalog |
//! | Nova | `/compute/v2.1` | compute with microversions 2.1–2.104: flavors, key pairs, servers, attachments |
//! | Neutron | `/networking/v2.0` | networks, subnets, ports, routers, security groups, floating IPs, tags |
//! | Cinder | `/volume/v3[/{project_id}]` | block storage 3.0–3.71: volumes |
//! | Glance | `/image/v2` | images, including the interoperable import (`web-download`) |
//!
//! Paths, status codes, JSON fields and error bodies follow the OpenStack API
//! reference, so the real `vre-openstack` provider runs against it
//! unchanged. The identity is seeded: domain `Default`, projects `vre` and
//! `admin`, user `admin` (roles `admin`, `member`, `reader` on both) and
//! user `demo` (`member`, `reader` on `vre`), both with
//! [`CloudOptions::password`]. A fresh cloud has the external network
//! `public` with `public-subnet` 172.24.4.0/24 (the floating IP pool), the
//! flavors `m1.tiny` to `m1.xlarge` and the public images `ubuntu-24.04`
//! and `kubenow-ubuntu-24.04`.
//!
//! Servers go BUILD -> ACTIVE after [`SimConfig::boot_time`] (plus jitter,
//! scaled by [`SimConfig::time_scale`]), or -> ERROR ("No valid host was
//! found.") with probability [`SimConfig::server_error_rate`]. When a
//! server turns ACTIVE the [`MachineEvents`] given at start hear of it
//! (with its decoded user data and addresses), and again when a floating
//! IP is (dis)associated and when it is deleted. Every call is counted in
//! [`SimStats`]; latency, rate limits (429 with `Retry-After`) and faults
//! (500/503, dropped connections) are injected from the seeded random
//! stream, so a sequential client sees the same run for the same seed.
//!
//! The state can be kept in a JSON file (written atomically, debounced, and
//! on [`CloudHandle::shutdown`]); a restarted server resumes it, timers
//! included. Tokens are signed, never stored: they stay valid across a
//! restart with the same password, and no secret reaches the state file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vre_sim::SimError> {
//! use std::sync::Arc;
//! use vre_sim::cloud::{CloudOptions, CloudServer};
//! # struct Nobody;
//! # impl vre_sim::MachineEvents for Nobody {
//! #     fn booted(&self, _: &vre_sim::Machine) {}
//! #     fn addresses_changed(&self, _: &vre_sim::Machine) {}
//! #     fn deleted(&self, _: &vre_sim::Machine) {}
//! # }
//! let cloud = CloudServer::start(
//!     CloudOptions::default(),
//!     Arc::new(vre_sim::SimConfig::default()),
//!     Arc::new(vre_sim::SimStats::default()),
//!     Arc::new(Nobody),
//! )
//! .await?;
//! println!("OS_AUTH_URL={}", cloud.auth_url());
//! cloud.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod app;
mod cinder;
mod clock;
mod faults;
mod glance;
mod keystone;
mod listener;
mod metadata;
mod neutron;
mod nova;
mod state;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{MachineEvents, SimConfig, SimError, SimStats};
use app::{Cloud, Pace};
use clock::Micros;
use keystone::Identity;
use state::CloudState;

/// How the cloud server starts.
#[derive(Clone)]
pub struct CloudOptions {
    /// The port on 127.0.0.1; 0 picks a free one (see [`CloudHandle::url`]).
    pub port: u16,
    /// The password of the seeded users (`admin`, `demo`). Never logged,
    /// never saved.
    pub password: String,
    /// Where the cloud state lives between runs; `None` keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// Application credentials Keystone accepts.
    pub application_credentials: Vec<ApplicationCredential>,
    /// Token lifetime (Keystone's default: one hour).
    pub token_ttl: Duration,
    /// How long the simulated operations take besides booting.
    pub timings: CloudTimings,
    /// How long after a change the state file is written.
    pub save_debounce: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            port: 0,
            password: "vre-sim".into(),
            state_file: None,
            application_credentials: Vec::new(),
            token_ttl: Duration::from_secs(3600),
            timings: CloudTimings::default(),
            save_debounce: Duration::from_millis(200),
        }
    }
}

impl fmt::Debug for CloudOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudOptions")
            .field("port", &self.port)
            .field("password", &"<redacted>")
            .field("state_file", &self.state_file)
            .field("application_credentials", &self.application_credentials)
            .field("token_ttl", &self.token_ttl)
            .field("timings", &self.timings)
            .field("save_debounce", &self.save_debounce)
            .finish()
    }
}

/// An application credential (`methods: ["application_credential"]`),
/// bound to a seeded user and project.
#[derive(Clone)]
pub struct ApplicationCredential {
    pub id: String,
    pub name: String,
    pub secret: String,
    /// The seeded user it belongs to (`admin` or `demo`).
    pub user: String,
    /// The project its tokens are scoped to (`vre` or `admin`).
    pub project: String,
}

impl fmt::Debug for ApplicationCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationCredential")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("user", &self.user)
            .field("project", &self.project)
            .finish()
    }
}

/// Simulated durations (multiplied by [`SimConfig::time_scale`]) of the
/// cloud's asynchronous operations other than booting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CloudTimings {
    /// A deleted server lingers (task_state `deleting`) this long.
    pub server_delete: Duration,
    /// Stop, start and reboot take this long (task_state `powering-off`, ...).
    pub server_action: Duration,
    /// Volumes stay `creating` this long.
    pub volume_create: Duration,
    /// Volumes stay `deleting` this long.
    pub volume_delete: Duration,
    /// Volumes stay `attaching` this long.
    pub volume_attach: Duration,
    /// Volumes stay `detaching` this long.
    pub volume_detach: Duration,
    /// A `web-download` import stays `importing` this long.
    pub image_import: Duration,
    /// An injected timeout holds the connection this long, then drops it.
    pub fault_hold: Duration,
}

impl Default for CloudTimings {
    fn default() -> Self {
        CloudTimings {
            server_delete: Duration::from_secs(3),
            server_action: Duration::from_secs(2),
            volume_create: Duration::from_secs(4),
            volume_delete: Duration::from_secs(3),
            volume_attach: Duration::from_secs(3),
            volume_detach: Duration::from_secs(3),
            image_import: Duration::from_secs(10),
            fault_hold: Duration::from_secs(120),
        }
    }
}

/// What a project holds, to check that a teardown left nothing behind.
///
/// `security_groups` leaves out the `default` group Neutron creates for
/// every project on its own; `ports` counts every port of the project
/// (server NICs, router interfaces), not the router gateway and floating
/// IP ports Neutron owns itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCounts {
    pub servers: usize,
    pub volumes: usize,
    pub ports: usize,
    pub floating_ips: usize,
    pub networks: usize,
    pub subnets: usize,
    pub routers: usize,
    pub security_groups: usize,
    pub key_pairs: usize,
    pub images: usize,
}

impl ResourceCounts {
    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == ResourceCounts::default()
    }
}

/// Something due later: a build ending, a deleted server disappearing, a
/// volume or image changing status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    ServerBuilt(String),
    ServerGone(String),
    ServerTask(String),
    Volume(String),
    ImageImported(String),
}

fn fire(s: &mut CloudState, timer: &Timer, now: Micros) {
    match timer {
        Timer::ServerBuilt(id) => nova::fire_built(s, id, now),
        Timer::ServerGone(id) => nova::fire_gone(s, id, now),
        Timer::ServerTask(id) => nova::fire_task(s, id, now),
        Timer::Volume(id) => cinder::fire(s, id, now),
        Timer::ImageImported(id) => glance::fire_imported(s, id, now),
    }
}

/// Starts the cloud server.
#[derive(Debug)]
pub struct CloudServer;

impl CloudServer {
    /// Binds 127.0.0.1:`options.port`, loads `options.state_file` if it
    /// exists (else seeds a fresh cloud) and serves until
    /// [`CloudHandle::shutdown`]. `events` hears about machines as they
    /// boot, change addresses and go away.
    pub async fn start(
        options: CloudOptions,
        config: Arc<SimConfig>,
        stats: Arc<SimStats>,
        events: Arc<dyn MachineEvents>,
    ) -> Result<CloudHandle, SimError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let base_url = format!("http://{addr}");
        let identity = Identity::new(&options.password, options.token_ttl, &options.application_credentials)?;

        let loaded = match &options.state_file {
            Some(path) => app::load_state(path)?,
            None => None,
        };
        let fresh = loaded.is_none();
        let mut state = loaded.unwrap_or_else(|| {
            let mut s = CloudState::new(config.seed);
            s.seed(&identity);
            s.rebuild_indexes();
            s
        });
        state.pace = Pace {
            time_scale: config.time_scale,
            timings: options.timings.clone(),
        };

        let (cloud, event_rx) = Cloud::new(
            base_url,
            config,
            stats,
            identity,
            options.timings.clone(),
            state,
            options.state_file.clone(),
        );
        if fresh {
            cloud.mark_dirty();
        } else {
            cloud.resync_machines();
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let router = router(cloud.clone());
        let tasks = vec![
            tokio::spawn(listener::serve(listener, router, shutdown_rx.clone())),
            tokio::spawn(cloud.clone().run_timers(shutdown_rx.clone())),
            tokio::spawn(Cloud::deliver_events(events, event_rx, shutdown_rx.clone())),
            tokio::spawn(cloud.clone().run_saver(options.save_debounce, shutdown_rx)),
        ];
        if fresh {
            cloud.save_if_dirty().await?;
        }
        Ok(CloudHandle {
            cloud,
            addr,
            shutdown: shutdown_tx,
            tasks,
        })
    }
}

/// A running cloud server.
pub struct CloudHandle {
    cloud: Arc<Cloud>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for CloudHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudHandle").field("addr", &self.addr).finish()
    }
}

impl CloudHandle {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.cloud.base_url.clone()
    }

    /// The Keystone v3 URL (`OS_AUTH_URL`).
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.cloud.base_url)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id of a seeded project (`vre`, `admin`).
    pub fn project_id(&self, name: &str) -> Option<String> {
        self.cloud.identity.project_by_name(name).map(|p| p.id.clone())
    }

    /// What every project holds, by project name.
    pub fn counts(&self) -> BTreeMap<String, ResourceCounts> {
        self.cloud.read(|s| s.counts(&self.cloud.identity))
    }

    /// What one project holds (all zero for an unknown project).
    pub fn project_counts(&self, project: &str) -> ResourceCounts {
        self.counts().remove(project).unwrap_or_default()
    }

    /// Writes the state file now (if there is one and anything changed).
    pub async fn save(&self) -> Result<(), SimError> {
        self.cloud.save_if_dirty().await
    }

    /// Stops serving (open connections get a moment to finish), then saves
    /// the state.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.cloud.save_if_dirty().await
    }
}

impl Drop for CloudHandle {
    /// Stops the server's tasks (without the final save `shutdown` does).
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Every route, behind the service layer (counting, limits, faults,
/// latency, error bodies) and, but for version discovery and token
/// issuing, Keystone token validation.
fn router(cloud: Arc<Cloud>) -> Router {
    let authenticated = Router::new()
        .route(
            "/identity/v3/auth/tokens",
            get(keystone::validate_token)
                .head(keystone::check_token)
                .delete(keystone::revoke_token),
        )
        .route("/identity/v3/auth/catalog", get(keystone::auth_catalog))
        .route("/identity/v3/auth/projects", get(keystone::auth_projects))
        .route("/identity/v3/projects", get(keystone::list_projects))
        .route("/identity/v3/projects/{id}", get(keystone::show_project))
        .merge(nova::routes())
        .merge(neutron::routes())
        .merge(cinder::routes())
        .merge(glance::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            cloud.clone(),
            keystone::require_token,
        ));
    let public = Router::new()
        .route("/identity", get(keystone::versions))
        .route("/identity/", get(keystone::versions))
        .route("/identity/v3", get(keystone::version))
        .route("/identity/v3/", get(keystone::version))
        .route("/identity/v3/auth/tokens", post(keystone::issue_token))
        .route("/compute", get(nova::versions))
        .route("/compute/", get(nova::versions))
        .route("/compute/v2.1", get(nova::version))
        .route("/compute/v2.1/", get(nova::version))
        .route("/networking", get(neutron::versions))
        .route("/networking/", get(neutron::versions))
        .route("/volume", get(cinder::versions))
        .route("/volume/", get(cinder::versions))
        .route("/image", get(glance::versions))
        .route("/image/", get(glance::versions))
        .route("/image/versions", get(glance::versions_ok));
    public
        .merge(authenticated)
        .fallback(faults::not_found)
        .layer(axum::middleware::from_fn_with_state(
            cloud.clone(),
            faults::service_layer,
        ))
        .with_state(cloud)
}
