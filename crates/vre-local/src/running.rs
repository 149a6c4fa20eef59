//! The simulator a deployment directory uses: one this process started (and
//! shuts down before it exits), or one another process serves (`vre sim
//! serve`), found through its `serving.json`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vre_core::{CloudError, Error, Result};
use vre_sim::{Serving, Sim, SimOptions};

use crate::settings::SimSettings;

/// `<dir>/.vre/sim`
pub fn sim_dir(dir: &Path) -> PathBuf {
    dir.join(vre_core::state::STATE_DIR).join("sim")
}

/// A simulator this process runs, or one another process serves.
#[derive(Clone)]
pub(crate) enum Running {
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

fn started_for(state_dir: &Path) -> Option<Arc<Sim>> {
    STARTED
        .lock()
        .expect("poisoned")
        .iter()
        .find(|(d, _)| d == state_dir)
        .map(|(_, s)| s.clone())
}

/// The simulator for `state_dir`: the one this process started, a healthy
/// one another process serves, or a new one started here.
pub(crate) async fn running_sim(state_dir: &Path, settings: SimSettings) -> Result<Running> {
    if let Some(sim) = started_for(state_dir) {
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
    /// The simulated Keystone's URL.
    pub(crate) fn auth_url(&self) -> String {
        match self {
            Running::Here(s) => s.auth_url(),
            Running::Elsewhere { serving, .. } => serving.auth_url.clone(),
        }
    }

    /// The simulated cloud's admin password.
    pub(crate) fn password(&self) -> Result<String> {
        match self {
            Running::Here(s) => Ok(s.password().to_string()),
            Running::Elsewhere { state_dir, .. } => Sim::password_of(state_dir)
                .map_err(|e| Error::component("local", format!("cannot read the simulator's password: {e}"))),
        }
    }

    /// The loopback address of the API server a simulated machine at `ip`
    /// runs, once it runs one.
    pub(crate) async fn endpoint_for(&self, ip: IpAddr) -> Result<Option<SocketAddr>> {
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

/// URLs of the simulator serving `dir`, for `vre sim serve`.
pub fn endpoints(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(sim) = started_for(&sim_dir(dir)) {
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
