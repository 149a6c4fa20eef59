//! Helpers shared by the integration tests and benches that run `vre` as a
//! user does: the binary in child processes, the simulator in a process of
//! its own, deployment directories for a topology, the simulated cloud read
//! back through its OpenStack API, and what a process costs from `/proc`.
#![allow(dead_code)]

pub mod deployment;
pub mod http;
pub mod kube;
pub mod openstack;
pub mod process;
pub mod sim;

use std::process::Command;

/// The `vre` binary cargo built for this test or bench.
pub const VRE: &str = env!("CARGO_BIN_EXE_vre");

/// Environment prefixes that must not leak into a `vre` the tests start:
/// cloud credentials, and knobs the test sets itself.
const SCRUBBED: &[&str] = &[
    "OS_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "CLOUDFLARE_",
    "VRE_SIM_",
    "RUST_LOG",
    "KUBECONFIG",
];

/// `vre <args>` with a clean environment (no credentials, no sim knobs, no log filter).
pub fn vre_command(args: &[&str]) -> Command {
    let mut c = Command::new(VRE);
    c.args(args);
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && SCRUBBED.iter().any(|p| k.starts_with(p))
        {
            c.env_remove(k);
        }
    }
    c
}
