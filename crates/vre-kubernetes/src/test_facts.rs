//! The lab cluster the unit tests render bootstrap files for: one set of
//! facts and user-data inputs, which each test varies with struct update.

use std::time::Duration;

use vre_core::BootstrapFacts;

use crate::cloud_init::UserDataInputs;
use crate::kubeadm::KubeadmInputs;
use crate::pki::ClusterCa;
use crate::token::BootstrapToken;
use crate::version::KubernetesVersion;

/// Cluster `lab`: master at 10.0.0.10 (public 203.0.113.7) as the edge,
/// Kubernetes 1.30.2 on a plain image, separate worker nodes.
pub(crate) fn lab_facts() -> BootstrapFacts {
    BootstrapFacts {
        cluster: "lab".into(),
        master_private_ip: "10.0.0.10".parse().unwrap(),
        master_public_ip: Some("203.0.113.7".parse().unwrap()),
        api_port: 6443,
        kubernetes_version: "1.30.2".into(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        image_preinstalled: false,
        ssh_user: "ubuntu".into(),
        master_as_edge: true,
        single_node: false,
    }
}

/// User-data inputs for `facts` (at its own Kubernetes version) with a
/// one-day token, the default timeouts and `join_attempts` joins.
pub(crate) fn lab_inputs<'a>(
    facts: &'a BootstrapFacts,
    token: &'a BootstrapToken,
    ca: &'a ClusterCa,
    join_attempts: u32,
) -> UserDataInputs<'a> {
    UserDataInputs {
        kubeadm: KubeadmInputs {
            facts,
            version: KubernetesVersion::parse(&facts.kubernetes_version).unwrap(),
            token,
            ca_hash: ca.cert_hash(),
            token_ttl: Duration::from_secs(86400),
            discovery_timeout: Duration::from_secs(1800),
            control_plane_timeout: Duration::from_secs(600),
        },
        ca,
        join_attempts,
    }
}
