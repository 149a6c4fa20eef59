//! The state file: what vre created, in the deployment directory, written
//! atomically after every completed step, behind a lock so two processes
//! cannot race. No secrets are ever stored here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::resource::{CloudResource, ResourceKey};

/// Directory (inside the deployment directory) holding vre's own files.
pub const STATE_DIR: &str = ".vre";
/// The state file's name inside [`STATE_DIR`].
pub const STATE_FILE: &str = "state.json";
/// The lock file's name inside [`STATE_DIR`].
pub const LOCK_FILE: &str = "lock";
/// The state format version this build writes.
pub const STATE_VERSION: u32 = 1;

/// What vre knows about a deployment between runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// Random id fixed when the state is first created; a state file from
    /// another deployment is refused.
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    /// The cluster name.
    pub cluster: String,
    /// The provider name.
    pub provider: String,
    /// Resources by logical key.
    pub resources: BTreeMap<ResourceKey, CloudResource>,
    /// Resources the cluster owns that have no key (subnets, routers, ports).
    #[serde(default)]
    pub extra: Vec<CloudResource>,
    /// Facts worth printing (kubeconfig, domain, endpoints).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Cluster-level steps completed (`nodes`, `base`, `microservice/storage`).
    #[serde(default)]
    pub completed: BTreeSet<String>,
}

impl State {
    /// A fresh state with a new lineage.
    pub fn new(cluster: &str, provider: &str) -> Self {
        State {
            version: STATE_VERSION,
            lineage: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            serial: 0,
            cluster: cluster.to_string(),
            provider: provider.to_string(),
            resources: BTreeMap::new(),
            extra: Vec::new(),
            outputs: BTreeMap::new(),
            completed: BTreeSet::new(),
        }
    }
}

/// An open, locked state file.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    state: State,
    // held for the store's lifetime; the OS releases it if the process dies
    _lock: File,
}

impl StateStore {
    /// Opens (creating if needed) the state of `cluster` in `dir`, taking the lock.
    pub fn open(dir: &Path, cluster: &str, provider: &str) -> Result<Self> {
        let vre_dir = dir.join(STATE_DIR);
        std::fs::create_dir_all(&vre_dir).map_err(|e| Error::io(format!("creating {}", vre_dir.display()), e))?;
        let lock_path = vre_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", lock_path.display()), e));
            }
        }
        let path = vre_dir.join(STATE_FILE);
        let state = match Self::read(&path)? {
            Some(s) => {
                if s.cluster != cluster {
                    return Err(Error::State {
                        path,
                        message: format!(
                            "belongs to cluster \"{}\", but vre.toml says name = \"{cluster}\"; renaming a cluster is not supported: destroy it first, or restore the old name",
                            s.cluster
                        ),
                        source: None,
                    });
                }
                s
            }
            None => State::new(cluster, provider),
        };
        Ok(StateStore {
            path,
            state,
            _lock: lock,
        })
    }

    /// Reads a state file without locking it (for `vre status` while an apply runs).
    pub fn read(path: &Path) -> Result<Option<State>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| Error::State {
            path: path.to_path_buf(),
            message: format!(
                "is not valid ({e}); restore it from {}.bak or remove it (destroy still finds resources by tag)",
                path.display()
            ),
            source: None,
        })?;
        if state.version > STATE_VERSION {
            return Err(Error::State {
                path: path.to_path_buf(),
                message: format!(
                    "was written by a newer vre (state version {}); upgrade vre",
                    state.version
                ),
                source: None,
            });
        }
        Ok(Some(state))
    }

    /// The state as last read or written.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the state and writes it at once.
    pub fn update(&mut self, f: impl FnOnce(&mut State)) -> Result<()> {
        f(&mut self.state);
        self.save()
    }

    /// Writes the state atomically: temp file, fsync, rename, fsync of the
    /// directory. A crash leaves either the old or the new file, never half.
    pub fn save(&mut self) -> Result<()> {
        self.state.serial += 1;
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| Error::State {
            path: self.path.clone(),
            message: format!("cannot serialize: {e}"),
            source: None,
        })?;
        write_atomic(&self.path, text.as_bytes(), false)
    }
}

/// Writes `bytes` to `path` atomically (temp + fsync + rename + dir fsync);
/// `private` makes the file 0600 before anything is written to it.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    {
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(true).write(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| io("creating", e))?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("chmod", e))?;
        }
        f.write_all(bytes).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
    }
    if path.exists() && !private && path.extension().is_some_and(|e| e == "json") {
        // one previous generation, for hand recovery
        let _ = std::fs::copy(path, path.with_extension("json.bak"));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a file only its owner can read (keys, kubeconfigs, tokens).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceKind;

    #[test]
    fn saves_reloads_and_bumps_serial() {
        let dir = tempfile::tempdir().unwrap();
        let lineage;
        {
            let mut s = StateStore::open(dir.path(), "lab", "local").unwrap();
            lineage = s.state().lineage.clone();
            s.update(|st| {
                st.resources.insert(
                    ResourceKey::network(),
                    CloudResource::new(ResourceKind::Network, "n-1", "lab-net"),
                );
            })
            .unwrap();
            assert_eq!(s.state().serial, 1);
        }
        let s = StateStore::open(dir.path(), "lab", "local").unwrap();
        assert_eq!(s.state().lineage, lineage);
        assert_eq!(s.state().serial, 1);
        assert_eq!(s.state().resources[&ResourceKey::network()].id, "n-1");
    }

    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _a = StateStore::open(dir.path(), "lab", "local").unwrap();
        let b = StateStore::open(dir.path(), "lab", "local");
        assert!(matches!(b, Err(Error::Locked { .. })), "{b:?}");
    }

    #[test]
    fn refuses_state_of_another_cluster() {
        let dir = tempfile::tempdir().unwrap();
        StateStore::open(dir.path(), "lab", "local").unwrap().save().unwrap();
        let e = StateStore::open(dir.path(), "other", "local").unwrap_err();
        assert!(e.to_string().contains("belongs to cluster \"lab\""), "{e}");
    }

    #[test]
    fn a_crash_mid_write_leaves_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), "lab", "local").unwrap();
        s.save().unwrap();
        let path = s.path().to_path_buf();
        drop(s);
        // a crash between writing the temp file and the rename: the temp
        // file is there, half written, and the state file is untouched
        std::fs::write(dir.path().join(".vre/.state.json.tmp999"), b"{\"version\": 1, \"lin").unwrap();
        let s = StateStore::read(&path).unwrap().unwrap();
        assert_eq!(s.serial, 1);
        // a torn state file (not possible with rename, but say a disk error) is reported, not parsed
        std::fs::write(&path, b"{\"version\": 1, \"lin").unwrap();
        let e = StateStore::read(&path).unwrap_err();
        assert!(e.to_string().contains("is not valid"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_private(&p, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
