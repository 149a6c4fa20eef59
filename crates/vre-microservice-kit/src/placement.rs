//! Where vre's pods run: node affinity by role (`vre.io/role`, set by every
//! node's kubelet) and the tolerations matching the taints each role carries.
//!
//! Taints in a vre cluster: storage nodes carry `dedicated=storage:NoSchedule`
//! ([`STORAGE_TAINT_KEY`]); the master carries kubeadm's
//! `node-role.kubernetes.io/control-plane:NoSchedule` unless it is the only
//! node. Service and edge nodes are untainted.

use serde_json::{Value, json};
use vre_core::{NODE_ROLE_LABEL, Role, STORAGE_TAINT_KEY, STORAGE_TAINT_VALUE};

/// The taint kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";

/// A node affinity that admits exactly the nodes of `roles` (by their
/// `vre.io/role` label).
pub fn role_affinity(roles: &[Role]) -> Value {
    let values: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    json!({
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{
                    "matchExpressions": [{
                        "key": NODE_ROLE_LABEL,
                        "operator": "In",
                        "values": values,
                    }]
                }]
            }
        }
    })
}

/// A node affinity that admits only the node named `node`.
pub fn node_affinity(node: &str) -> Value {
    json!({
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{
                    "matchFields": [{
                        "key": "metadata.name",
                        "operator": "In",
                        "values": [node],
                    }]
                }]
            }
        }
    })
}

/// The tolerations pods placed on `roles` need (none for service and edge).
pub fn tolerations(roles: &[Role]) -> Vec<Value> {
    let mut out = Vec::new();
    if roles.contains(&Role::Master) {
        out.push(json!({
            "key": CONTROL_PLANE_TAINT_KEY,
            "operator": "Exists",
            "effect": "NoSchedule",
        }));
    }
    if roles.contains(&Role::Storage) {
        out.push(json!({
            "key": STORAGE_TAINT_KEY,
            "operator": "Equal",
            "value": STORAGE_TAINT_VALUE,
            "effect": "NoSchedule",
        }));
    }
    out
}

/// The taints a node of `role` carries in a cluster (`single_node`: the
/// master is the only node and stays untainted), as the orchestrator sets them.
pub fn taints_of(role: Role, single_node: bool) -> Vec<Value> {
    match role {
        Role::Master if !single_node => vec![json!({"key": CONTROL_PLANE_TAINT_KEY, "effect": "NoSchedule"})],
        Role::Storage => vec![json!({"key": STORAGE_TAINT_KEY, "value": STORAGE_TAINT_VALUE, "effect": "NoSchedule"})],
        _ => Vec::new(),
    }
}

/// Whether `tolerations` let a pod onto a node with `taints` (NoSchedule and
/// NoExecute taints only; the rules of the Kubernetes scheduler).
pub fn tolerates(tolerations: &[Value], taints: &[Value]) -> bool {
    taints
        .iter()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
        .all(|taint| {
            tolerations.iter().any(|tol| {
                let key_ok = match tol["key"].as_str() {
                    None | Some("") => tol["operator"] == "Exists",
                    Some(k) => Some(k) == taint["key"].as_str(),
                };
                let value_ok = match tol["operator"].as_str() {
                    Some("Exists") => true,
                    _ => tol["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or(""),
                };
                let effect_ok = match tol["effect"].as_str() {
                    None | Some("") => true,
                    Some(e) => Some(e) == taint["effect"].as_str(),
                };
                key_ok && value_ok && effect_ok
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_match_exactly_the_taints_of_the_roles_asked_for() {
        for roles in [
            vec![Role::Edge],
            vec![Role::Edge, Role::Master],
            vec![Role::Storage],
            vec![Role::Service],
        ] {
            let tol = tolerations(&roles);
            for role in Role::ALL {
                let fits = tolerates(&tol, &taints_of(role, false));
                let untainted = taints_of(role, false).is_empty();
                assert_eq!(fits, roles.contains(&role) || untainted, "{roles:?} on {role}");
            }
        }
        // a single-node master needs no toleration
        assert!(tolerates(&[], &taints_of(Role::Master, true)));
        assert!(!tolerates(&[], &taints_of(Role::Master, false)));
    }

    #[test]
    fn role_affinity_lists_the_roles() {
        let a = role_affinity(&[Role::Edge, Role::Master]);
        let e = &a["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0];
        assert_eq!(e["key"], NODE_ROLE_LABEL);
        assert_eq!(e["values"], json!(["edge", "master"]));
    }
}
