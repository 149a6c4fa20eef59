//! Workload controllers: Deployment -> ReplicaSet -> Pods, StatefulSet
//! (ordered pods and their claims), DaemonSet (one pod per eligible node),
//! Job, and PodDisruptionBudget status, with the status fields clients wait
//! on (`observedGeneration`, ready/available/updated counts, conditions).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{
    CONTROLLER_MANAGER, Dirty, Snapshot, controller_of, controller_ref, get_of, list_of, log_err, selector,
    template_hash,
};
use crate::kube::clock;
use crate::kube::cluster::{CORE, Cluster, State, gr};
use crate::kube::registry::{DeleteOptions, set_at};
use crate::kube::selector::{LabelSelector, labels_of};

use super::lifecycle::pod_is_ready;
use super::scheduling::node_rejects;

fn name(obj: &Value) -> &str {
    obj.at("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn uid(obj: &Value) -> &str {
    obj.at("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

fn generation(obj: &Value) -> i64 {
    obj.at("/metadata/generation").and_then(Value::as_i64).unwrap_or(1)
}

fn terminating(obj: &Value) -> bool {
    obj.at("/metadata/deletionTimestamp").is_some()
}

fn phase(pod: &Value) -> &str {
    pod.at("/status/phase").and_then(Value::as_str).unwrap_or("Pending")
}

/// A pod that counts toward its controller's replicas.
fn active(pod: &Value) -> bool {
    !terminating(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

fn replicas(obj: &Value) -> i64 {
    obj.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// An int-or-percent (`maxUnavailable: 25%`) scaled against `total`.
fn scaled_value(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.trim().parse::<f64>().ok()) {
            Some(p) => {
                let x = p * total as f64 / 100.0;
                if round_up { x.ceil() as i64 } else { x.floor() as i64 }
            }
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Sets a condition in `status.conditions`, keeping its timestamps when
/// nothing about it changed.
fn put_condition(
    status: &mut Value,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
    with_update_time: bool,
) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status["conditions"].as_array_mut() else {
        return;
    };
    let existing = conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty));
    match existing {
        Some(c) => {
            let same = c.get("status").and_then(Value::as_str) == Some(value)
                && c.get("reason").and_then(Value::as_str) == Some(reason)
                && c.get("message").and_then(Value::as_str) == Some(message);
            if same {
                return;
            }
            if c.get("status").and_then(Value::as_str) != Some(value) {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(value);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            if with_update_time {
                c["lastUpdateTime"] = json!(now);
            }
        }
        None => {
            let mut c =
                json!({"type": ty, "status": value, "reason": reason, "message": message, "lastTransitionTime": now});
            if with_update_time {
                c["lastUpdateTime"] = json!(now);
            }
            conds.push(c);
        }
    }
}

/// A pod built from a workload's template.
fn pod_from_template(owner: &Value, template: &Value, extra_labels: &[(&str, String)]) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    for (k, v) in extra_labels {
        set_at(&mut meta, &["labels", k], json!(v));
    }
    meta["namespace"] = owner["metadata"]["namespace"].clone();
    meta["ownerReferences"] = json!([controller_ref(owner)]);
    if let Some(m) = meta.as_object_mut() {
        m.remove("creationTimestamp");
        m.remove("name");
        m.remove("generateName");
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

fn keys_to_visit(
    cluster: &Cluster,
    resource: &str,
    dirty: &std::collections::BTreeSet<(String, String)>,
    all: bool,
) -> Vec<Arc<Value>> {
    if all {
        return list_of(cluster, "apps", resource, None);
    }
    dirty
        .iter()
        .filter_map(|(ns, n)| get_of(cluster, "apps", resource, ns, n))
        .collect()
}

/// Deployments: a ReplicaSet per pod template (named `<name>-<hash>`),
/// old ones scaled down as the new one becomes available.
pub fn deployments(cluster: &Arc<Cluster>, d: &Dirty) {
    let now = clock::now_rfc3339();
    for dep in keys_to_visit(cluster, "deployments", &d.deployments, d.full) {
        if terminating(&dep) {
            continue;
        }
        let ns = dep
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let dname = name(&dep).to_string();
        let template = dep.at("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let desired = replicas(&dep);
        let paused = dep.at("/spec/paused").and_then(Value::as_bool) == Some(true);
        let owned: Vec<Arc<Value>> = list_of(cluster, "apps", "replicasets", Some(&ns))
            .into_iter()
            .filter(|rs| controller_of(rs).is_some_and(|(_, _, u)| u == uid(&dep)))
            .collect();
        let revision = |rs: &Value| -> i64 {
            rs.at("/metadata/annotations/deployment.kubernetes.io~1revision")
                .and_then(Value::as_str)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0)
        };
        let new_rs = owned
            .iter()
            .find(|rs| rs.at("/metadata/labels/pod-template-hash").and_then(Value::as_str) == Some(hash.as_str()));
        let recreate = dep.at("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let max_unavailable = if recreate {
            desired
        } else {
            scaled_value(dep.at("/spec/strategy/rollingUpdate/maxUnavailable"), desired, false, 0)
        };
        match new_rs {
            None if !paused => {
                let old_running: i64 = owned
                    .iter()
                    .map(|rs| rs.at("/status/replicas").and_then(Value::as_i64).unwrap_or(0))
                    .sum();
                if recreate && old_running > 0 {
                    scale_old(cluster, &ns, &owned, None, 0);
                } else {
                    let next = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
                    let mut tpl = template.clone();
                    tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                    let mut sel = dep.at("/spec/selector").cloned().unwrap_or(json!({}));
                    sel["matchLabels"]["pod-template-hash"] = json!(hash);
                    let mut labels = template.at("/metadata/labels").cloned().unwrap_or(json!({}));
                    labels["pod-template-hash"] = json!(hash);
                    let rs = json!({
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "metadata": {
                            "name": format!("{dname}-{hash}"),
                            "namespace": ns,
                            "labels": labels,
                            "annotations": {
                                "deployment.kubernetes.io/revision": next.to_string(),
                                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                                "deployment.kubernetes.io/max-replicas": (desired + scaled_value(dep.at("/spec/strategy/rollingUpdate/maxSurge"), desired, true, 0)).to_string(),
                            },
                            "ownerReferences": [controller_ref(&dep)],
                        },
                        "spec": {"replicas": desired, "selector": sel, "template": tpl,
                            "minReadySeconds": dep.at("/spec/minReadySeconds").cloned().unwrap_or(json!(0))},
                    });
                    log_err(
                        "create a ReplicaSet for a Deployment",
                        cluster.create_system(("apps", "replicasets"), rs, CONTROLLER_MANAGER),
                    );
                }
            }
            None => {}
            Some(rs) => {
                let rs_name = name(rs).to_string();
                if replicas(rs) != desired && !paused {
                    log_err(
                        "scale the new ReplicaSet",
                        cluster.mutate(("apps", "replicasets"), &ns, &rs_name, false, CONTROLLER_MANAGER, |v| {
                            v["spec"]["replicas"] = json!(desired);
                            v["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                                json!(desired.to_string());
                        }),
                    );
                }
                let new_available = rs.at("/status/availableReplicas").and_then(Value::as_i64).unwrap_or(0);
                let old_target = if recreate { 0 } else { (desired - new_available).max(0) };
                scale_old(cluster, &ns, &owned, Some(&rs_name), old_target);
            }
        }
        // Old ReplicaSets beyond revisionHistoryLimit go.
        let limit = dep
            .at("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0) as usize;
        let mut idle: Vec<&Arc<Value>> = owned
            .iter()
            .filter(|rs| rs.at("/metadata/labels/pod-template-hash").and_then(Value::as_str) != Some(hash.as_str()))
            .filter(|rs| replicas(rs) == 0 && rs.at("/status/replicas").and_then(Value::as_i64).unwrap_or(0) == 0)
            .collect();
        idle.sort_by_key(|rs| revision(rs));
        if idle.len() > limit {
            for rs in &idle[..idle.len() - limit] {
                log_err(
                    "prune an old ReplicaSet",
                    cluster.delete_system(("apps", "replicasets"), &ns, name(rs), &DeleteOptions::default()),
                );
            }
        }
        // Status from the ReplicaSets.
        let sum = |p: &str| -> i64 {
            owned
                .iter()
                .map(|rs| rs.pointer(p).and_then(Value::as_i64).unwrap_or(0))
                .sum()
        };
        let (total, ready, available) = (
            sum("/status/replicas"),
            sum("/status/readyReplicas"),
            sum("/status/availableReplicas"),
        );
        let new_rs = owned
            .iter()
            .find(|rs| rs.at("/metadata/labels/pod-template-hash").and_then(Value::as_str) == Some(hash.as_str()));
        let updated = new_rs.map_or(0, |rs| rs.at("/status/replicas").and_then(Value::as_i64).unwrap_or(0));
        let new_available = new_rs.map_or(0, |rs| {
            rs.at("/status/availableReplicas").and_then(Value::as_i64).unwrap_or(0)
        });
        let observed = generation(&dep);
        let rs_label = new_rs
            .map(|r| name(r).to_string())
            .unwrap_or_else(|| format!("{dname}-{hash}"));
        let complete = updated == desired && total == desired && new_available == desired;
        let now2 = now.clone();
        log_err(
            "update Deployment status",
            cluster.mutate(
                ("apps", "deployments"),
                &ns,
                &dname,
                true,
                CONTROLLER_MANAGER,
                move |v| {
                    let mut status = v.get("status").cloned().unwrap_or(json!({}));
                    if !status.is_object() {
                        status = json!({});
                    }
                    status["observedGeneration"] = json!(observed);
                    for (k, n) in [
                        ("replicas", total),
                        ("updatedReplicas", updated),
                        ("readyReplicas", ready),
                        ("availableReplicas", available),
                    ] {
                        if n > 0 {
                            status[k] = json!(n);
                        } else if let Some(m) = status.as_object_mut() {
                            m.remove(k);
                        }
                    }
                    let unavailable = (desired - available).max(0);
                    if unavailable > 0 {
                        status["unavailableReplicas"] = json!(unavailable);
                    } else if let Some(m) = status.as_object_mut() {
                        m.remove("unavailableReplicas");
                    }
                    if available >= desired - max_unavailable {
                        put_condition(
                            &mut status,
                            "Available",
                            "True",
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability.",
                            &now2,
                            true,
                        );
                    } else {
                        put_condition(
                            &mut status,
                            "Available",
                            "False",
                            "MinimumReplicasUnavailable",
                            "Deployment does not have minimum availability.",
                            &now2,
                            true,
                        );
                    }
                    if paused {
                        put_condition(
                            &mut status,
                            "Progressing",
                            "Unknown",
                            "DeploymentPaused",
                            "Deployment is paused",
                            &now2,
                            true,
                        );
                    } else if complete {
                        put_condition(
                            &mut status,
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            &format!("ReplicaSet \"{rs_label}\" has successfully progressed."),
                            &now2,
                            true,
                        );
                    } else {
                        put_condition(
                            &mut status,
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            &format!("ReplicaSet \"{rs_label}\" is progressing."),
                            &now2,
                            true,
                        );
                    }
                    v["status"] = status;
                },
            ),
        );
    }
}

/// Scales the old ReplicaSets of a Deployment down to `target` replicas in
/// total, the oldest first.
fn scale_old(cluster: &Cluster, ns: &str, owned: &[Arc<Value>], new_name: Option<&str>, target: i64) {
    let mut old: Vec<&Arc<Value>> = owned
        .iter()
        .filter(|rs| Some(name(rs)) != new_name && replicas(rs) > 0)
        .collect();
    old.sort_by_key(|rs| {
        rs.at("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    });
    let mut total: i64 = old.iter().map(|rs| replicas(rs)).sum();
    for rs in old {
        if total <= target {
            break;
        }
        let reduce = (total - target).min(replicas(rs));
        let want = replicas(rs) - reduce;
        total -= reduce;
        log_err(
            "scale down an old ReplicaSet",
            cluster.mutate(("apps", "replicasets"), ns, name(rs), false, CONTROLLER_MANAGER, |v| {
                v["spec"]["replicas"] = json!(want);
            }),
        );
    }
}

/// Orders pods the way the ReplicaSet controller deletes them: unbound,
/// then not ready, then the newest.
fn deletion_rank(pod: &Value) -> (u8, u8, std::cmp::Reverse<String>) {
    let unbound = pod.at("/spec/nodeName").is_none() as u8;
    let not_ready = (!pod_is_ready(pod)) as u8;
    let created = pod
        .at("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (1 - unbound, 1 - not_ready, std::cmp::Reverse(created))
}

/// ReplicaSets: keep `spec.replicas` pods.
pub fn replicasets(cluster: &Arc<Cluster>, snap: &Snapshot, d: &Dirty) {
    let targets = keys_to_visit(cluster, "replicasets", &d.replicasets, d.full);
    if targets.is_empty() {
        return;
    }
    let by_owner = snap.pods_by_owner();
    for rs in targets {
        if terminating(&rs) {
            continue;
        }
        let ns = rs
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rs_name = name(&rs).to_string();
        let pods: Vec<&Arc<Value>> = by_owner
            .get(uid(&rs))
            .map(|v| v.iter().copied().filter(|p| active(p)).collect())
            .unwrap_or_default();
        let desired = replicas(&rs);
        let have = pods.len() as i64;
        if have < desired {
            let template = rs.at("/spec/template").cloned().unwrap_or(json!({}));
            for _ in 0..(desired - have) {
                let mut pod = pod_from_template(&rs, &template, &[]);
                pod["metadata"]["generateName"] = json!(format!("{rs_name}-"));
                log_err(
                    "create a ReplicaSet pod",
                    cluster.create_system((CORE, "pods"), pod, CONTROLLER_MANAGER),
                );
            }
        } else if have > desired {
            let mut ranked = pods.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            for p in ranked.iter().take((have - desired) as usize) {
                log_err(
                    "delete a surplus pod",
                    cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                );
            }
        }
        let ready = pods.iter().filter(|p| pod_is_ready(p)).count() as i64;
        let sel = selector(&rs, "/spec/selector");
        let labeled = pods.iter().filter(|p| sel.matches_object(p)).count() as i64;
        let observed = generation(&rs);
        log_err(
            "update ReplicaSet status",
            cluster.mutate(("apps", "replicasets"), &ns, &rs_name, true, CONTROLLER_MANAGER, |v| {
                let mut status = json!({"replicas": have, "observedGeneration": observed});
                if labeled > 0 {
                    status["fullyLabeledReplicas"] = json!(labeled);
                }
                if ready > 0 {
                    status["readyReplicas"] = json!(ready);
                    status["availableReplicas"] = json!(ready);
                }
                v["status"] = status;
            }),
        );
    }
}

fn ordinal(pod_name: &str, set: &str) -> Option<i64> {
    pod_name.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// StatefulSets: pods `<name>-<ordinal>` with their claims from
/// volumeClaimTemplates, created in order (OrderedReady) or at once
/// (Parallel), updated from the highest ordinal down.
pub fn statefulsets(cluster: &Arc<Cluster>, snap: &Snapshot, d: &Dirty) {
    let targets = keys_to_visit(cluster, "statefulsets", &d.statefulsets, d.full);
    if targets.is_empty() {
        return;
    }
    let by_owner = snap.pods_by_owner();
    for sts in targets {
        if terminating(&sts) {
            continue;
        }
        let ns = sts
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let sname = name(&sts).to_string();
        let desired = replicas(&sts);
        let template = sts.at("/spec/template").cloned().unwrap_or(json!({}));
        let revision = format!("{sname}-{}", template_hash(&template));
        let parallel = sts.at("/spec/podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
        let pods: Vec<&Arc<Value>> = by_owner.get(uid(&sts)).cloned().unwrap_or_default();
        let mut by_ordinal: BTreeMap<i64, &Arc<Value>> = BTreeMap::new();
        for p in &pods {
            if let Some(o) = ordinal(name(p), &sname) {
                by_ordinal.insert(o, p);
            }
        }
        let healthy = |o: i64| by_ordinal.get(&o).is_some_and(|p| active(p) && pod_is_ready(p));
        // Create missing ordinals.
        for o in 0..desired {
            if by_ordinal.contains_key(&o) {
                continue;
            }
            if !parallel && !(0..o).all(healthy) {
                break;
            }
            create_stateful_pod(cluster, &sts, &template, &ns, &sname, o, &revision);
            if !parallel {
                break;
            }
        }
        // Remove ordinals beyond the desired count, the highest first.
        let extra: Vec<i64> = by_ordinal.keys().copied().filter(|o| *o >= desired).rev().collect();
        for o in extra.iter().take(if parallel { extra.len() } else { 1 }) {
            let p = by_ordinal[o];
            if !terminating(p) {
                log_err(
                    "scale down a StatefulSet",
                    cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                );
            }
        }
        // Rolling update: replace the highest outdated pod once all are ready.
        let on_delete = sts.at("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
        let partition = sts
            .at("/spec/updateStrategy/rollingUpdate/partition")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let rev_of = |p: &Value| {
            p.at("/metadata/labels/controller-revision-hash")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if !on_delete && (0..desired).all(healthy) {
            let outdated = by_ordinal
                .iter()
                .rev()
                .find(|(o, p)| **o < desired && **o >= partition && rev_of(p).as_deref() != Some(revision.as_str()));
            if let Some((_, p)) = outdated {
                log_err(
                    "roll a StatefulSet pod",
                    cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                );
            }
        }
        let live: Vec<&&Arc<Value>> = by_ordinal.values().filter(|p| active(p)).collect();
        let ready = live.iter().filter(|p| pod_is_ready(p)).count() as i64;
        let updated = live
            .iter()
            .filter(|p| rev_of(p).as_deref() == Some(revision.as_str()))
            .count() as i64;
        let count = live.len() as i64;
        let observed = generation(&sts);
        let all_updated = updated == count && count == desired;
        log_err(
            "update StatefulSet status",
            cluster.mutate(("apps", "statefulsets"), &ns, &sname, true, CONTROLLER_MANAGER, |v| {
                let current_rev = if all_updated {
                    revision.clone()
                } else {
                    v.at("/status/currentRevision")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| revision.clone())
                };
                let current = if current_rev == revision {
                    updated
                } else {
                    count - updated
                };
                let mut status = json!({
                    "observedGeneration": observed,
                    "replicas": count,
                    "currentRevision": current_rev,
                    "updateRevision": revision,
                    "collisionCount": 0,
                    "availableReplicas": ready,
                });
                if ready > 0 {
                    status["readyReplicas"] = json!(ready);
                }
                if current > 0 {
                    status["currentReplicas"] = json!(current);
                }
                if updated > 0 {
                    status["updatedReplicas"] = json!(updated);
                }
                v["status"] = status;
            }),
        );
    }
}

fn create_stateful_pod(
    cluster: &Cluster,
    sts: &Value,
    template: &Value,
    ns: &str,
    sname: &str,
    o: i64,
    revision: &str,
) {
    let pod_name = format!("{sname}-{o}");
    let match_labels = sts.at("/spec/selector/matchLabels").cloned().unwrap_or(json!({}));
    let mut volumes: Vec<Value> = Vec::new();
    for t in sts
        .at("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tname = name(t).to_string();
        let claim = format!("{tname}-{pod_name}");
        if get_of(cluster, CORE, "persistentvolumeclaims", ns, &claim).is_none() {
            let mut labels = t.at("/metadata/labels").cloned().unwrap_or(json!({}));
            if let (Some(l), Some(m)) = (labels.as_object_mut(), match_labels.as_object()) {
                for (k, v) in m {
                    l.insert(k.clone(), v.clone());
                }
            }
            let pvc = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns, "labels": labels,
                    "annotations": t.at("/metadata/annotations").cloned().unwrap_or(json!({}))},
                "spec": t.get("spec").cloned().unwrap_or(json!({})),
            });
            log_err(
                "create a StatefulSet claim",
                cluster.create_system((CORE, "persistentvolumeclaims"), pvc, CONTROLLER_MANAGER),
            );
        }
        volumes.push(json!({"name": tname, "persistentVolumeClaim": {"claimName": claim}}));
    }
    let mut pod = pod_from_template(
        sts,
        template,
        &[
            ("controller-revision-hash", revision.to_string()),
            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ("apps.kubernetes.io/pod-index", o.to_string()),
        ],
    );
    pod["metadata"]["name"] = json!(pod_name);
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = sts.at("/spec/serviceName").and_then(Value::as_str) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    if !volumes.is_empty() {
        let existing: Vec<Value> = pod
            .at("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut merged: Vec<Value> = existing
            .into_iter()
            .filter(|v| !volumes.iter().any(|c| c["name"] == v["name"]))
            .collect();
        merged.extend(volumes);
        pod["spec"]["volumes"] = json!(merged);
    }
    log_err(
        "create a StatefulSet pod",
        cluster.create_system((CORE, "pods"), pod, CONTROLLER_MANAGER),
    );
}

/// Tolerations every DaemonSet pod gets (the DaemonSet controller adds them).
fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The node a DaemonSet pod is for: its nodeName, or the node its
/// `matchFields metadata.name` affinity pins.
fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod.at("/spec/nodeName").and_then(Value::as_str) {
        return Some(n);
    }
    pod.at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)?
        .iter()
        .flat_map(|t| t.get("matchFields").and_then(Value::as_array).into_iter().flatten())
        .find(|f| f.get("key").and_then(Value::as_str) == Some("metadata.name"))?
        .at("/values/0")?
        .as_str()
}

/// Whether a DaemonSet pod may stay on a node it would not be placed on:
/// the node exists, matches the selector and affinity, and every NoExecute
/// taint is tolerated.
fn should_continue_running(snap: &Snapshot, node: &str, probe: &Value) -> bool {
    let Some(n) = snap.nodes.iter().find(|n| name(n) == node) else {
        return false;
    };
    let labels = labels_of(n);
    if !crate::kube::selector::node_selector_matches(probe.at("/spec/nodeSelector"), &labels)
        || !crate::kube::selector::node_affinity_matches(probe.at("/spec/affinity"), node, &labels)
    {
        return false;
    }
    let tolerations: Vec<&Value> = probe
        .at("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    n.at("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|t| {
            t.get("effect").and_then(Value::as_str) != Some("NoExecute")
                || tolerations.iter().any(|tol| super::scheduling::tolerates(tol, t))
        })
}

/// DaemonSets: one pod per node that the template's nodeSelector,
/// required affinity and tolerations (plus the DaemonSet tolerations)
/// admit; status counts from those nodes.
pub fn daemonsets(cluster: &Arc<Cluster>, snap: &Snapshot, d: &Dirty) {
    let all = d.full || d.all_daemonsets;
    let targets = keys_to_visit(cluster, "daemonsets", &d.daemonsets, all);
    if targets.is_empty() {
        return;
    }
    let by_owner = snap.pods_by_owner();
    for ds in targets {
        if terminating(&ds) {
            continue;
        }
        let ns = ds
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ds_name = name(&ds).to_string();
        let template = ds.at("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let host_network = template.at("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
        // The pod as the scheduler would see it, for eligibility.
        let mut probe = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
        let mut tolerations: Vec<Value> = probe
            .at("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in daemon_tolerations(host_network) {
            if !tolerations
                .iter()
                .any(|x| x.get("key") == t.get("key") && x.get("effect") == t.get("effect"))
            {
                tolerations.push(t);
            }
        }
        probe["spec"]["tolerations"] = json!(tolerations);
        let eligible: Vec<&str> = snap
            .nodes
            .iter()
            .filter(|n| node_rejects(n, &probe, 0).is_none())
            .map(|n| name(n))
            .collect();
        let eligible_set: std::collections::HashSet<&str> = eligible.iter().copied().collect();
        let pods: Vec<&Arc<Value>> = by_owner
            .get(uid(&ds))
            .map(|v| v.iter().copied().filter(|p| active(p)).collect())
            .unwrap_or_default();
        let mut on_node: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
        for p in &pods {
            if let Some(n) = target_node(p) {
                on_node.entry(n).or_default().push(p);
            }
        }
        let rev_ok = |p: &Value| {
            p.at("/metadata/labels/controller-revision-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str())
        };
        let observed = generation(&ds);
        for node in &eligible {
            match on_node.get(node) {
                None => {
                    let mut pod = pod_from_template(
                        &ds,
                        &template,
                        &[
                            ("controller-revision-hash", hash.clone()),
                            ("pod-template-generation", observed.to_string()),
                        ],
                    );
                    pod["metadata"]["generateName"] = json!(format!("{ds_name}-"));
                    pod["spec"]["tolerations"] = json!(tolerations);
                    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
                        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
                    });
                    log_err(
                        "create a DaemonSet pod",
                        cluster.create_system((CORE, "pods"), pod, CONTROLLER_MANAGER),
                    );
                }
                Some(list) if list.len() > 1 => {
                    let mut extra = list.clone();
                    extra.sort_by_key(|p| {
                        std::cmp::Reverse(
                            p.at("/metadata/creationTimestamp")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        )
                    });
                    for p in &extra[..extra.len() - 1] {
                        log_err(
                            "delete a duplicate DaemonSet pod",
                            cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                        );
                    }
                }
                Some(_) => {}
            }
        }
        // Pods on nodes that should not run them go, unless they may keep
        // running there (only NoSchedule taints stand in the way, as on an
        // unreachable node): those count as misscheduled.
        for (node, list) in &on_node {
            if !eligible_set.contains(node) && !should_continue_running(snap, node, &probe) {
                for p in list {
                    log_err(
                        "delete a misscheduled DaemonSet pod",
                        cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                    );
                }
            }
        }
        let desired = eligible.len() as i64;
        // Rolling update: replace outdated pods, maxUnavailable at a time.
        let rolling = ds.at("/spec/updateStrategy/type").and_then(Value::as_str) != Some("OnDelete");
        let current: Vec<&&Arc<Value>> = pods
            .iter()
            .filter(|p| target_node(p).is_some_and(|n| eligible_set.contains(n)))
            .collect();
        let ready = current.iter().filter(|p| pod_is_ready(p)).count() as i64;
        if rolling {
            let max_unavailable = scaled_value(
                ds.at("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
                desired,
                true,
                1,
            )
            .max(1);
            let unavailable = desired - ready;
            let budget = (max_unavailable - unavailable.max(0)).max(0);
            let outdated: Vec<&&&Arc<Value>> = current.iter().filter(|p| !rev_ok(p)).collect();
            // Unready outdated pods go first, they cost no availability.
            for p in outdated.iter().filter(|p| !pod_is_ready(p)) {
                log_err(
                    "replace an outdated DaemonSet pod",
                    cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                );
            }
            for p in outdated.iter().filter(|p| pod_is_ready(p)).take(budget as usize) {
                log_err(
                    "replace an outdated DaemonSet pod",
                    cluster.delete_system((CORE, "pods"), &ns, name(p), &DeleteOptions::default()),
                );
            }
        }
        let scheduled = eligible.iter().filter(|n| on_node.contains_key(**n)).count() as i64;
        let misscheduled = on_node.keys().filter(|n| !eligible_set.contains(**n)).count() as i64;
        let updated = current.iter().filter(|p| rev_ok(p)).count() as i64;
        log_err(
            "update DaemonSet status",
            cluster.mutate(("apps", "daemonsets"), &ns, &ds_name, true, CONTROLLER_MANAGER, |v| {
                let mut status = json!({
                    "currentNumberScheduled": scheduled,
                    "desiredNumberScheduled": desired,
                    "numberMisscheduled": misscheduled,
                    "numberReady": ready,
                    "observedGeneration": observed,
                });
                if updated > 0 {
                    status["updatedNumberScheduled"] = json!(updated);
                }
                if ready > 0 {
                    status["numberAvailable"] = json!(ready);
                }
                if desired - ready > 0 {
                    status["numberUnavailable"] = json!(desired - ready);
                }
                v["status"] = status;
            }),
        );
    }
}

/// Jobs: run `parallelism` pods until `completions` succeeded.
pub fn jobs(cluster: &Arc<Cluster>, snap: &Snapshot, d: &Dirty) {
    let targets: Vec<Arc<Value>> = if d.full {
        list_of(cluster, "batch", "jobs", None)
    } else {
        d.jobs
            .iter()
            .filter_map(|(ns, n)| get_of(cluster, "batch", "jobs", ns, n))
            .collect()
    };
    if targets.is_empty() {
        return;
    }
    let by_owner = snap.pods_by_owner();
    let now = clock::now_rfc3339();
    for job in targets {
        if terminating(&job) || job.at("/spec/suspend").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let ns = job
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let jname = name(&job).to_string();
        let done = job
            .at("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                matches!(c.get("type").and_then(Value::as_str), Some("Complete" | "Failed"))
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
        if done {
            continue;
        }
        let pods: Vec<&Arc<Value>> = by_owner.get(uid(&job)).cloned().unwrap_or_default();
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
        let running: Vec<&&Arc<Value>> = pods.iter().filter(|p| active(p)).collect();
        let completions = job.at("/spec/completions").and_then(Value::as_i64).unwrap_or(1);
        let parallelism = job.at("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1);
        let complete = succeeded >= completions;
        if !complete {
            let want = parallelism.min(completions - succeeded) - running.len() as i64;
            let template = job.at("/spec/template").cloned().unwrap_or(json!({}));
            let job_uid = uid(&job).to_string();
            for _ in 0..want.max(0) {
                let mut pod = pod_from_template(
                    &job,
                    &template,
                    &[
                        ("batch.kubernetes.io/controller-uid", job_uid.clone()),
                        ("batch.kubernetes.io/job-name", jname.clone()),
                        ("controller-uid", job_uid.clone()),
                        ("job-name", jname.clone()),
                    ],
                );
                pod["metadata"]["generateName"] = json!(format!("{jname}-"));
                log_err(
                    "create a Job pod",
                    cluster.create_system((CORE, "pods"), pod, CONTROLLER_MANAGER),
                );
            }
        }
        let active_n = if complete { 0 } else { running.len() as i64 };
        let ready = running.iter().filter(|p| pod_is_ready(p)).count() as i64;
        let now2 = now.clone();
        log_err(
            "update Job status",
            cluster.mutate(("batch", "jobs"), &ns, &jname, true, CONTROLLER_MANAGER, |v| {
                let mut status = v.get("status").cloned().filter(Value::is_object).unwrap_or(json!({}));
                if status.get("startTime").is_none() {
                    status["startTime"] = json!(now2);
                }
                status["active"] = json!(active_n);
                status["ready"] = json!(ready);
                status["succeeded"] = json!(succeeded);
                status["failed"] = json!(failed);
                status["terminating"] = json!(0);
                status["uncountedTerminatedPods"] = json!({});
                if complete {
                    status["completionTime"] = json!(now2);
                    put_condition(
                        &mut status,
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &now2,
                        false,
                    );
                    put_condition(
                        &mut status,
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &now2,
                        false,
                    );
                    if let Some(m) = status.as_object_mut() {
                        m.remove("active");
                    }
                }
                v["status"] = status;
            }),
        );
    }
}

/// The state of a PodDisruptionBudget, computed from the pods it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub expected: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

/// Computes a PDB's budget from the pods it selects (the disruption
/// controller's arithmetic: minAvailable and maxUnavailable as integers or
/// percentages rounded up).
pub fn disruption_budget(st: &State, pdb: &Value) -> Budget {
    let ns = pdb.at("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let sel = LabelSelector::from_object(pdb.at("/spec/selector")).unwrap_or(LabelSelector {
        requirements: Vec::new(),
        nothing: true,
    });
    let pods: Vec<&Arc<Value>> = st
        .store
        .list(&gr(CORE, "pods"), Some(ns))
        .map(|(_, p)| p)
        .filter(|p| active(p) && !sel.nothing && sel.matches(&labels_of(p)))
        .collect();
    let expected = pods.len() as i64;
    let healthy = pods.iter().filter(|p| pod_is_ready(p)).count() as i64;
    let spec = pdb.get("spec").cloned().unwrap_or(json!({}));
    let desired = if let Some(max) = spec.get("maxUnavailable") {
        (expected - scaled_value(Some(max), expected, true, 0)).max(0)
    } else {
        scaled_value(spec.get("minAvailable").or(Some(&json!(1))), expected, true, 1)
    };
    Budget {
        expected,
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: (healthy - desired).max(0),
    }
}

/// PodDisruptionBudget status.
pub fn disruption_budgets(cluster: &Arc<Cluster>, _snap: &Snapshot, d: &Dirty) {
    let targets: Vec<Arc<Value>> = if d.full {
        list_of(cluster, "policy", "poddisruptionbudgets", None)
    } else {
        d.pdb_namespaces
            .iter()
            .flat_map(|ns| list_of(cluster, "policy", "poddisruptionbudgets", Some(ns)))
            .collect()
    };
    let now = clock::now_rfc3339();
    for pdb in targets {
        let budget = disruption_budget(&cluster.lock(), &pdb);
        let ns = pdb
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let observed = generation(&pdb);
        let now2 = now.clone();
        log_err(
            "update PodDisruptionBudget status",
            cluster.mutate(
                ("policy", "poddisruptionbudgets"),
                &ns,
                name(&pdb),
                true,
                CONTROLLER_MANAGER,
                |v| {
                    let mut status = v.get("status").cloned().filter(Value::is_object).unwrap_or(json!({}));
                    status["observedGeneration"] = json!(observed);
                    status["expectedPods"] = json!(budget.expected);
                    status["currentHealthy"] = json!(budget.current_healthy);
                    status["desiredHealthy"] = json!(budget.desired_healthy);
                    status["disruptionsAllowed"] = json!(budget.disruptions_allowed);
                    if budget.disruptions_allowed > 0 {
                        put_condition(
                            &mut status,
                            "DisruptionAllowed",
                            "True",
                            "SufficientPods",
                            "",
                            &now2,
                            false,
                        );
                    } else {
                        put_condition(
                            &mut status,
                            "DisruptionAllowed",
                            "False",
                            "InsufficientPods",
                            "",
                            &now2,
                            false,
                        );
                    }
                    v["status"] = status;
                },
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_scale_like_intstr() {
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false, 0), 2);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true, 0), 3);
        assert_eq!(scaled_value(Some(&json!(2)), 10, true, 0), 2);
        assert_eq!(scaled_value(None, 10, true, 7), 7);
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("web-2", "web"), Some(2));
        assert_eq!(ordinal("web-x", "web"), None);
        assert_eq!(ordinal("webby-1", "web"), None);
    }

    #[test]
    fn daemon_pod_targets() {
        let p = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}}}}});
        assert_eq!(target_node(&p), Some("n7"));
        assert_eq!(target_node(&json!({"spec": {"nodeName": "n1"}})), Some("n1"));
    }
}
