//! Helm charts through the `helm` binary (Helm 3) found on `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vre_core::{Error, Result};

/// The `helm` program vre runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Helm {
    pub program: PathBuf,
}

/// One `helm upgrade --install`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub repo: &'a str,
    pub chart: &'a str,
    pub version: &'a str,
    /// Absolute path of the values file.
    pub values: Option<PathBuf>,
    pub kubeconfig: &'a Path,
    pub timeout: Duration,
}

impl Helm {
    /// `helm` on `path` (the value of `PATH`), or a clear error for `field`.
    pub fn find(path: Option<&OsStr>, field: &str) -> Result<Helm> {
        let found = path.and_then(|p| {
            std::env::split_paths(p)
                .map(|dir| dir.join("helm"))
                .find(|candidate| is_executable(candidate))
        });
        found.map(|program| Helm { program }).ok_or_else(|| {
            Error::input(
                field,
                "is a Helm chart but no `helm` binary is on PATH; install Helm 3 (https://helm.sh/docs/intro/install/) or ship the app as `manifest = \"...\"`",
            )
        })
    }

    /// `helm` on this process's `PATH`.
    pub fn from_env(field: &str) -> Result<Helm> {
        Helm::find(std::env::var_os("PATH").as_deref(), field)
    }

    /// The arguments of `helm upgrade --install` for `r`.
    pub fn install_args(r: &Release<'_>) -> Vec<String> {
        let mut a = vec![
            "upgrade".to_string(),
            "--install".into(),
            r.name.into(),
            r.chart.into(),
            "--repo".into(),
            r.repo.into(),
            "--version".into(),
            r.version.into(),
            "--namespace".into(),
            r.namespace.into(),
            "--create-namespace".into(),
            "--wait".into(),
            "--timeout".into(),
            format!("{}s", r.timeout.as_secs().max(1)),
            "--kubeconfig".into(),
            r.kubeconfig.display().to_string(),
        ];
        if let Some(v) = &r.values {
            a.push("--values".into());
            a.push(v.display().to_string());
        }
        a
    }

    /// Runs `helm upgrade --install --wait`; the error carries helm's own last words.
    pub async fn install(&self, r: &Release<'_>) -> Result<()> {
        self.run(
            &Self::install_args(r),
            &format!("installing chart {} {}", r.chart, r.version),
        )
        .await
    }

    async fn run(&self, args: &[String], what: &str) -> Result<()> {
        let out = tokio::process::Command::new(&self.program)
            .args(args)
            .env("HELM_NO_PLUGINS", "1")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Error::io(format!("running {}", self.program.display()), e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim();
        Err(Error::component(
            "helm",
            format!("{what} failed ({}): {last}", out.status),
        ))
    }
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}
