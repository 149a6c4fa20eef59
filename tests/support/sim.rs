//! The simulator in a process of its own (`vre sim serve -C DIR`), so that a
//! `vre` command can be measured, or killed, without touching the cloud it
//! talks to. `vre` commands started on the same directory find it through
//! `.vre/sim/serving.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use vre::sim::cloud::ResourceCounts;
use vre::sim::{Serving, StatsSnapshot};

use super::http::Http;
use super::process::{self, ProcSample};
use super::vre_command;

/// `<dir>/.vre/sim`
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join(".vre").join("sim")
}

/// A running `vre sim serve`.
pub struct SimProcess {
    child: Option<Child>,
    pub serving: Serving,
    pub dir: PathBuf,
    http: Http,
}

impl SimProcess {
    /// Starts `vre sim serve -C dir` with `env` (e.g. `VRE_SIM_*` knobs) and
    /// waits until its control API answers. Its output goes to
    /// `<dir>/sim-serve.log` (appended: a restart keeps what the last one said).
    pub fn start(dir: &Path, env: &[(String, String)]) -> Result<SimProcess, String> {
        let log_path = dir.join("sim-serve.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = vre_command(&["sim", "serve", "-C", &dir.display().to_string()]);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd.spawn().map_err(|e| format!("starting vre sim serve: {e}"))?;
        let mut sim = SimProcess {
            child: Some(child),
            serving: Serving {
                auth_url: String::new(),
                control_url: String::new(),
                pid: 0,
            },
            dir: dir.to_path_buf(),
            http: Http::new(),
        };
        let started = Instant::now();
        let serving_file = state_dir(dir).join(vre::sim::sim::SERVING_FILE);
        loop {
            if let Some(c) = sim.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("vre sim serve exited with {status}: {log}"));
            }
            let serving: Option<Serving> = std::fs::read_to_string(&serving_file)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if let Some(s) = serving
                && Some(s.pid) == sim.child.as_ref().map(Child::id)
                && sim.http.get_text(&format!("{}/health", s.control_url)).is_ok()
            {
                sim.serving = s;
                return Ok(sim);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "vre sim serve did not come up within 60 s; see {}",
                    log_path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.serving.pid
    }

    /// Calls answered so far, by API.
    pub fn stats(&self) -> Result<StatsSnapshot, String> {
        let text = self.http.get_text(&format!("{}/stats", self.serving.control_url))?;
        serde_json::from_str(&text).map_err(|e| format!("/stats: {e}: {text}"))
    }

    /// Resources by project name.
    pub fn counts(&self) -> Result<BTreeMap<String, ResourceCounts>, String> {
        let text = self.http.get_text(&format!("{}/counts", self.serving.control_url))?;
        serde_json::from_str(&text).map_err(|e| format!("/counts: {e}: {text}"))
    }

    /// Resources of the project vre deploys into (`vre`).
    pub fn project_counts(&self) -> Result<ResourceCounts, String> {
        Ok(self.counts()?.remove("vre").unwrap_or_default())
    }

    /// The simulator's process, as `/proc` sees it now.
    pub fn sample(&self) -> Option<ProcSample> {
        process::sample(self.pid())
    }

    /// The sim's admin password (user `admin`, project `vre`).
    pub fn password(&self) -> Result<String, String> {
        std::fs::read_to_string(state_dir(&self.dir).join(vre::sim::sim::PASSWORD_FILE))
            .map(|p| p.trim().to_string())
            .map_err(|e| format!("reading the sim password: {e}"))
    }

    /// Stops it with Ctrl-C (it saves its state), or kills it after 20 s.
    pub fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        process::interrupt(child.id());
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if started.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("vre sim serve ignored Ctrl-C for 20 s; killed it".into());
                }
            }
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
