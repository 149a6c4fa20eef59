//! vre's [`Orchestrator`](vre_core::Orchestrator) on Kubernetes.
//!
//! Nodes bootstrap themselves: [`prepare`](vre_core::Orchestrator::prepare) creates
//! a cluster CA and a join token locally (`<dir>/.vre/pki`, 0600), and the
//! user data of each role (`#cloud-config`) runs `kubeadm init` on the
//! master with that CA, or `kubeadm join` on the other nodes, pinning the
//! CA by hash (never skipping CA verification). Roles become node labels
//! (`vre.io/role`) and taints at registration. vre then talks to the API
//! server with an admin certificate it signed itself (`<dir>/kubeconfig`),
//! watches the nodes until they are Ready, installs flannel, and applies
//! the microservices with server-side apply (field manager `vre`).

pub mod apply;
mod backoff;
pub mod cloud_init;
pub mod cni;
pub mod drain;
pub mod error;
pub mod kubeadm;
pub mod kubeconfig;
pub mod node_bootstrap;
pub mod nodes;
pub mod orchestrator;
pub mod pki;
pub mod readiness;
pub mod storage_class;
#[cfg(test)]
mod test_facts;
pub mod token;
pub mod version;

pub use error::KubeError;
pub use kubeadm::EDGE_LABEL;
pub use orchestrator::{KUBECONFIG_FILE, KubernetesOptions, KubernetesOrchestrator};
