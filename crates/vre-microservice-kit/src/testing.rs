//! The cluster facts microservice tests render objects against (feature
//! `testing`): what the engine reports once every node of a spec exists.

use std::path::Path;
use std::sync::Arc;

use vre_core::{ClusterFacts, ClusterSpec, NodeFact};

/// The edge address of [`cluster_facts`].
pub const EDGE_IP: &str = "192.0.2.7";

/// Facts for `spec` in deployment directory `dir`: one [`NodeFact`] per node
/// of every role group, named as the engine names them, with no address and
/// no volume device until `node` sets them (it gets the fact, the node's
/// number in its role, and how many nodes came before it); one edge address
/// [`EDGE_IP`], the domain `192.0.2.7.nip.io` and an API endpoint.
pub fn cluster_facts(spec: ClusterSpec, dir: &Path, mut node: impl FnMut(&mut NodeFact, u32, usize)) -> ClusterFacts {
    let mut nodes = Vec::new();
    for g in &spec.nodes {
        for i in 1..=g.count {
            let mut n = NodeFact {
                name: spec.node_name(g.role, i),
                role: g.role,
                private_ip: None,
                public_ip: None,
                volume_device: None,
            };
            node(&mut n, i, nodes.len());
            nodes.push(n);
        }
    }
    ClusterFacts {
        spec: Arc::new(spec),
        nodes,
        edge_ips: vec![EDGE_IP.parse().expect("a literal address")],
        domain: Some(format!("{EDGE_IP}.nip.io")),
        api_endpoint: "https://192.0.2.1:6443".into(),
        dir: dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::Role;

    #[test]
    fn one_fact_per_node_named_as_the_engine_names_them() {
        let mut spec = ClusterSpec::new("lab", "sim");
        spec.group_mut(Role::Service).count = 2;
        let f = cluster_facts(spec, Path::new("/d"), |n, i, before| {
            n.volume_device = Some(format!("{i}/{before}"));
        });
        let names: Vec<_> = f
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.volume_device.as_deref()))
            .collect();
        assert_eq!(names.len(), f.spec.total_nodes() as usize);
        assert!(names.contains(&("lab-master-1", Some("1/0"))), "{names:?}");
        assert_eq!(f.host_for("app").as_deref(), Some("app.192.0.2.7.nip.io"));
    }
}
