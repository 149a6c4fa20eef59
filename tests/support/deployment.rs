//! Deployment directories: `vre init local` for the key pair, then a
//! vre.toml written for the topology at hand.

use std::fmt::Write as _;
use std::path::Path;

use super::vre_command;

/// Node counts of a VRE (the master is always one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    pub service: u32,
    pub storage: u32,
    pub edge: u32,
}

impl Topology {
    /// KubeNow's proportions for `total` nodes: one master, one edge per 32
    /// nodes (none below 32: the master is the edge), and the rest split
    /// 5:3 between service and storage nodes (service rounded to nearest).
    pub fn kubenow(total: u32) -> Topology {
        assert!(total >= 2, "a KubeNow topology needs a master and a worker");
        let edge = total / 32;
        let rest = total - 1 - edge;
        let service = (rest * 5 + 4) / 8;
        Topology {
            service,
            storage: rest - service,
            edge,
        }
    }

    pub fn total(&self) -> u32 {
        1 + self.service + self.storage + self.edge
    }
}

/// What goes into vre.toml besides the topology.
#[derive(Clone, Debug)]
pub struct SpecOptions {
    /// The cluster subnet; must hold every node.
    pub cidr: String,
    pub parallelism: Option<u32>,
    pub max_attempts: Option<u32>,
    pub node_timeout_secs: Option<u64>,
    pub ready_timeout_secs: Option<u64>,
    /// Lines of the `[sim]` table (`key = value`).
    pub sim: Vec<String>,
}

impl Default for SpecOptions {
    fn default() -> Self {
        SpecOptions {
            cidr: "10.0.0.0/24".into(),
            parallelism: None,
            max_attempts: None,
            node_timeout_secs: None,
            ready_timeout_secs: None,
            sim: Vec::new(),
        }
    }
}

/// A vre.toml for `provider = "local"`.
pub fn spec_toml(name: &str, t: Topology, o: &SpecOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "name = \"{name}\"\nprovider = \"local\"\n");
    let _ = writeln!(s, "[image]\nname = \"kubenow-ubuntu-24.04\"\npreinstalled = true\n");
    let _ = writeln!(s, "[network]\ncidr = \"{}\"\n", o.cidr);
    let _ = writeln!(s, "[nodes.master]\nflavor = \"m1.medium\"\n");
    let _ = writeln!(s, "[nodes.service]\ncount = {}\nflavor = \"m1.medium\"\n", t.service);
    let _ = writeln!(
        s,
        "[nodes.storage]\ncount = {}\nflavor = \"m1.medium\"\nvolume_gb = 10\n",
        t.storage
    );
    let _ = writeln!(s, "[nodes.edge]\ncount = {}\nflavor = \"m1.small\"\n", t.edge);
    let mut engine = String::new();
    if let Some(p) = o.parallelism {
        let _ = writeln!(engine, "parallelism = {p}");
    }
    if let Some(a) = o.max_attempts {
        let _ = writeln!(engine, "max_attempts = {a}");
    }
    if let Some(n) = o.node_timeout_secs {
        let _ = writeln!(engine, "node_timeout_secs = {n}");
    }
    if let Some(r) = o.ready_timeout_secs {
        let _ = writeln!(engine, "ready_timeout_secs = {r}");
    }
    if !engine.is_empty() {
        let _ = writeln!(s, "[engine]\n{engine}");
    }
    if !o.sim.is_empty() {
        let _ = writeln!(s, "[sim]\n{}", o.sim.join("\n"));
    }
    s
}

/// `vre init local <dir> --name <name>` (the SSH key pair), then `spec` as vre.toml.
pub fn create(dir: &Path, name: &str, spec: &str) -> Result<(), String> {
    let out = vre_command(&["init", "local", &dir.display().to_string(), "--name", name])
        .output()
        .map_err(|e| format!("running vre init: {e}"))?;
    if !out.status.success() {
        return Err(format!("vre init failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::write(dir.join("vre.toml"), spec).map_err(|e| format!("writing vre.toml: {e}"))
}
