//! The scheduler: binds pending pods to nodes that pass the default
//! filters (taints and tolerations, cordons, nodeSelector, required node
//! affinity, pod capacity, persistent volume claims), spreading pods over
//! the least loaded nodes; unschedulable pods get `PodScheduled=False`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{SCHEDULER, Snapshot, get_of, log_err};
use crate::kube::clock;
use crate::kube::cluster::{CORE, Cluster};
use crate::kube::registry::set_at;
use crate::kube::selector::{labels_of, node_affinity_matches, node_selector_matches};

/// Whether a toleration tolerates a taint (the core/v1 rules).
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (t_effect, tol_effect) = (s(taint, "effect"), s(toleration, "effect"));
    if !tol_effect.is_empty() && tol_effect != t_effect {
        return false;
    }
    let tol_key = s(toleration, "key");
    let op = toleration.get("operator").and_then(Value::as_str).unwrap_or("Equal");
    if tol_key.is_empty() {
        return op == "Exists";
    }
    if tol_key != s(taint, "key") {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" => s(toleration, "value") == s(taint, "value"),
        _ => false,
    }
}

/// The first NoSchedule/NoExecute taint of a node the tolerations do not tolerate.
pub fn untolerated_taint<'a>(node: &'a Value, tolerations: &[&Value]) -> Option<&'a Value> {
    node.at("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (effect == "NoSchedule" || effect == "NoExecute") && !tolerations.iter().any(|tol| tolerates(tol, t))
        })
}

/// Why a node cannot take a pod, in the scheduler's words; `None` if it can.
pub fn node_rejects(node: &Value, pod: &Value, pods_on_node: usize) -> Option<String> {
    if node.at("/metadata/deletionTimestamp").is_some() {
        return Some("node(s) were being deleted".into());
    }
    let tolerations: Vec<&Value> = pod
        .at("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if node.at("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        let cordon = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        if !tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return Some("node(s) were unschedulable".into());
        }
    }
    if let Some(t) = untolerated_taint(node, &tolerations) {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.get("key").and_then(Value::as_str).unwrap_or(""),
            t.get("value").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let labels = labels_of(node);
    let name = node.at("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !node_selector_matches(pod.at("/spec/nodeSelector"), &labels)
        || !node_affinity_matches(pod.at("/spec/affinity"), name, &labels)
    {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    let max_pods = node
        .at("/status/allocatable/pods")
        .and_then(|v| {
            v.as_str()
                .and_then(|s| s.parse::<usize>().ok())
                .or_else(|| v.as_u64().map(|n| n as usize))
        })
        .unwrap_or(110);
    if pods_on_node >= max_pods {
        return Some("Too many pods".into());
    }
    None
}

/// Claims of a pod that block scheduling, or the WaitForFirstConsumer
/// claims to hand to the chosen node.
enum Claims {
    Ready(Vec<String>),
    Blocked(String),
}

fn claims(cluster: &Cluster, pod: &Value) -> Claims {
    let ns = pod.at("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let mut wait = Vec::new();
    for v in pod.at("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let Some(claim) = v.at("/persistentVolumeClaim/claimName").and_then(Value::as_str) else {
            continue;
        };
        let Some(pvc) = get_of(cluster, CORE, "persistentvolumeclaims", ns, claim) else {
            return Claims::Blocked(format!("persistentvolumeclaim \"{claim}\" not found"));
        };
        if pvc.at("/metadata/deletionTimestamp").is_some() {
            return Claims::Blocked(format!("persistentvolumeclaim \"{claim}\" is being deleted"));
        }
        if pvc.at("/status/phase").and_then(Value::as_str) == Some("Bound") {
            continue;
        }
        let class = pvc.at("/spec/storageClassName").and_then(Value::as_str).unwrap_or("");
        let wffc = !class.is_empty()
            && get_of(cluster, "storage.k8s.io", "storageclasses", "", class)
                .is_some_and(|sc| sc.get("volumeBindingMode").and_then(Value::as_str) == Some("WaitForFirstConsumer"));
        if wffc {
            wait.push(claim.to_string());
        } else {
            return Claims::Blocked("pod has unbound immediate PersistentVolumeClaims".into());
        }
    }
    Claims::Ready(wait)
}

/// The node a pod's required affinity pins by name (`matchFields
/// metadata.name In [node]` in its only term), as DaemonSet pods have.
fn pinned_node(pod: &Value) -> Option<&str> {
    let terms = pod
        .at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    let [term] = terms.as_slice() else { return None };
    let [field] = term.get("matchFields")?.as_array()?.as_slice() else {
        return None;
    };
    let values = field.get("values")?.as_array()?;
    (field.get("key")?.as_str()? == "metadata.name" && field.get("operator")?.as_str()? == "In" && values.len() == 1)
        .then(|| values[0].as_str())
        .flatten()
}

/// One scheduling pass over the pending pods of the snapshot.
pub fn schedule(cluster: &Arc<Cluster>, snap: &Snapshot) {
    let mut load: HashMap<String, usize> = HashMap::new();
    for p in &snap.pods {
        if let Some(n) = p.at("/spec/nodeName").and_then(Value::as_str) {
            let phase = p.at("/status/phase").and_then(Value::as_str).unwrap_or("");
            if phase != "Succeeded" && phase != "Failed" {
                *load.entry(n.to_string()).or_default() += 1;
            }
        }
    }
    let by_name: HashMap<&str, &Arc<Value>> = snap
        .nodes
        .iter()
        .map(|n| (n.at("/metadata/name").and_then(Value::as_str).unwrap_or(""), n))
        .collect();
    let now = clock::now_rfc3339();
    for pod in &snap.pods {
        if pod
            .at("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
            || pod.at("/metadata/deletionTimestamp").is_some()
            || pod
                .at("/spec/schedulerName")
                .and_then(Value::as_str)
                .is_some_and(|s| s != "default-scheduler")
            || pod
                .at("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty())
        {
            continue;
        }
        let ns = pod
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = pod
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let total = snap.nodes.len();
        let wait_claims = match claims(cluster, pod) {
            Claims::Blocked(why) => {
                mark_unschedulable(
                    cluster,
                    &ns,
                    &name,
                    &format!("0/{total} nodes are available: {why}."),
                    &now,
                );
                continue;
            }
            Claims::Ready(w) => w,
        };
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(&str, usize)> = None;
        // A pod pinned to one node by name (DaemonSet pods) only checks that node.
        let candidates: Vec<&Arc<Value>> = match pinned_node(pod) {
            Some(n) => by_name.get(n).copied().into_iter().collect(),
            None => snap.nodes.iter().collect(),
        };
        for node in candidates {
            let node_name = node.at("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let count = load.get(node_name).copied().unwrap_or(0);
            match node_rejects(node, pod, count) {
                Some(why) => *reasons.entry(why).or_default() += 1,
                None => {
                    if best.is_none_or(|(_, c)| count < c) {
                        best = Some((node_name, count));
                    }
                }
            }
        }
        let Some((chosen, _)) = best else {
            let detail: Vec<String> = reasons.iter().map(|(why, n)| format!("{n} {why}")).collect();
            let message = if detail.is_empty() {
                format!("0/{total} nodes are available: no nodes available to schedule pods.")
            } else {
                format!(
                    "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
                    detail.join(", ")
                )
            };
            mark_unschedulable(cluster, &ns, &name, &message, &now);
            continue;
        };
        let chosen = chosen.to_string();
        for claim in &wait_claims {
            let node = chosen.clone();
            log_err(
                "select a node for a WaitForFirstConsumer claim",
                cluster.mutate((CORE, "persistentvolumeclaims"), &ns, claim, false, SCHEDULER, |pvc| {
                    set_at(
                        pvc,
                        &["metadata", "annotations", "volume.kubernetes.io/selected-node"],
                        json!(node),
                    );
                }),
            );
        }
        let bound = log_err(
            "bind a pod",
            cluster.mutate((CORE, "pods"), &ns, &name, false, SCHEDULER, |p| {
                set_at(p, &["spec", "nodeName"], json!(chosen));
            }),
        );
        if bound.flatten().is_some() {
            *load.entry(chosen.clone()).or_default() += 1;
            let now2 = now.clone();
            log_err(
                "record PodScheduled",
                cluster.mutate((CORE, "pods"), &ns, &name, true, SCHEDULER, |p| {
                    set_scheduled(&mut p["status"], "True", None, &now2);
                }),
            );
        }
    }
}

fn set_scheduled(status: &mut Value, value: &str, unschedulable: Option<&str>, now: &str) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status["conditions"].as_array_mut() else {
        return;
    };
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    let mut c = json!({"type": "PodScheduled", "status": value, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(msg) = unschedulable {
        c["reason"] = json!("Unschedulable");
        c["message"] = json!(msg);
    }
    conds.push(c);
}

fn mark_unschedulable(cluster: &Cluster, ns: &str, name: &str, message: &str, now: &str) {
    log_err(
        "record an unschedulable pod",
        cluster.mutate((CORE, "pods"), ns, name, true, SCHEDULER, |p| {
            let already = p
                .at("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("PodScheduled")
                        && c.get("message").and_then(Value::as_str) == Some(message)
                });
            if !already {
                set_scheduled(&mut p["status"], "False", Some(message), now);
            }
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_rules() {
        let taint = json!({"key": "dedicated", "value": "storage", "effect": "NoSchedule"});
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "Equal", "value": "storage"}),
            &taint
        ));
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
            &taint
        ));
        assert!(tolerates(&json!({"operator": "Exists"}), &taint));
        assert!(!tolerates(&json!({"key": "dedicated", "value": "other"}), &taint));
        assert!(!tolerates(
            &json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
            &taint
        ));
    }

    #[test]
    fn nodes_reject_with_reasons() {
        let node = json!({"metadata": {"name": "n1", "labels": {"vre.io/role": "storage"}},
            "spec": {"taints": [{"key": "dedicated", "value": "storage", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"pods": "110"}}});
        let pod = json!({"spec": {"containers": []}});
        assert!(
            node_rejects(&node, &pod, 0)
                .unwrap()
                .contains("untolerated taint {dedicated: storage}")
        );
        let tolerant = json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}], "nodeSelector": {"vre.io/role": "edge"}}});
        assert!(node_rejects(&node, &tolerant, 0).unwrap().contains("affinity/selector"));
        let fits = json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}], "nodeSelector": {"vre.io/role": "storage"}}});
        assert!(node_rejects(&node, &fits, 0).is_none());
        assert_eq!(node_rejects(&node, &fits, 110).unwrap(), "Too many pods");
        let mut cordoned = node.clone();
        cordoned["spec"]["unschedulable"] = json!(true);
        assert!(node_rejects(&cordoned, &fits, 0).unwrap().contains("unschedulable"));
    }
}
