//! The on-disk state of the clusters: one JSON file per cluster (identity,
//! port, objects, resourceVersion counter) and one for the machines the
//! cluster side tracks and the join failures. Files hold key material (the
//! cluster CA key, tokens), so they are written 0600, atomically (temporary
//! file, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cluster::ClusterMeta;
use super::store::StoreSnapshot;
use crate::Machine;

/// The state format; bumped on incompatible changes.
pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
pub struct ClusterFile {
    pub format: u32,
    pub meta: ClusterMeta,
    pub port: u16,
    pub private_ip: Option<std::net::Ipv4Addr>,
    pub public_ips: Vec<std::net::IpAddr>,
    pub next_pod_cidr: u32,
    pub store: StoreSnapshot,
}

/// Where a machine is in its bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Booted; kubeadm is running (init, or join retrying discovery).
    Pending,
    /// Its Node is registered, not Ready yet.
    Registered,
    Ready,
    /// kubeadm failed; see the join failures.
    Failed,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct MachineRecord {
    /// The machine; its user data is dropped once kubeadm is done with it.
    pub machine: Machine,
    pub master: bool,
    pub cluster: Option<String>,
    pub node: Option<String>,
    pub phase: Phase,
}

impl std::fmt::Debug for MachineRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The user data holds key material: only the machine's identity.
        f.debug_struct("MachineRecord")
            .field("machine_id", &self.machine.id)
            .field("machine_name", &self.machine.name)
            .field("master", &self.master)
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("phase", &self.phase)
            .finish()
    }
}

/// Why a machine never became a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinFailure {
    pub machine_id: String,
    pub machine_name: String,
    /// The cluster (its master machine id) it tried to join, when known.
    pub cluster: Option<String>,
    /// kubeadm's or the kubelet's reason, as a one-line message.
    pub reason: String,
    /// When it was recorded (RFC 3339).
    pub at: String,
}

#[derive(Default, Serialize, Deserialize)]
pub struct MachinesFile {
    pub format: u32,
    pub machines: Vec<MachineRecord>,
    pub join_failures: Vec<JoinFailure>,
}

pub fn kube_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("kube")
}

/// `cluster-<id>.json`, with the id reduced to file-name-safe characters.
pub fn cluster_path(state_dir: &Path, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    kube_dir(state_dir).join(format!("cluster-{safe}.json"))
}

pub fn machines_path(state_dir: &Path) -> PathBuf {
    kube_dir(state_dir).join("machines.json")
}

/// Writes a file atomically with mode 0600, streaming `value` as JSON
/// (no intermediate buffer the size of the file).
pub fn write_json_private<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    crate::files::write_private(path, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        serde_json::to_writer(&mut w, value).map_err(std::io::Error::other)?;
        w.flush()
    })
}

/// Reads every cluster file of a state directory (unreadable files are
/// reported and skipped).
pub fn read_clusters(state_dir: &Path) -> Vec<ClusterFile> {
    let Ok(entries) = std::fs::read_dir(kube_dir(state_dir)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("cluster-") && name.ends_with(".json")) {
            continue;
        }
        match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ClusterFile>(&b).map_err(|e| e.to_string()))
        {
            Ok(f) if f.format == FORMAT => out.push(f),
            Ok(f) => {
                tracing::warn!(target: "vre_sim::kube", "{}: state format {} is not {FORMAT}; ignoring it", p.display(), f.format)
            }
            Err(e) => {
                tracing::warn!(target: "vre_sim::kube", "{}: unreadable cluster state ({e}); ignoring it", p.display())
            }
        }
    }
    out
}

pub fn read_machines(state_dir: &Path) -> MachinesFile {
    let p = machines_path(state_dir);
    match std::fs::read(&p) {
        Ok(b) => match serde_json::from_slice::<MachinesFile>(&b) {
            Ok(f) if f.format == FORMAT => f,
            _ => {
                tracing::warn!(target: "vre_sim::kube", "{}: unreadable machine state; starting without it", p.display());
                MachinesFile::default()
            }
        },
        Err(_) => MachinesFile::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = cluster_path(dir.path(), "a/b");
        assert!(p.ends_with("kube/cluster-a_b.json"));
        write_json_private(&p, &serde_json::json!({})).unwrap();
        write_json_private(&p, &serde_json::json!({"x": 1})).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"x\":1}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(read_clusters(dir.path()).is_empty());
        assert!(read_machines(dir.path()).machines.is_empty());
    }
}
