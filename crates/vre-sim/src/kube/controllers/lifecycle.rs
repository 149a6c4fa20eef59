//! Object and node lifecycles: namespace setup and termination, garbage
//! collection by ownerReferences, the node lifecycle controller (pods on
//! unreachable nodes: not ready, then evicted by NoExecute taints), pod
//! garbage collection, and the kubelets' handling of the pods bound to
//! their node.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{CONTROLLER_MANAGER, Dirty, KUBELET, Snapshot, controller_of, get_of, list_of, log_err};
use crate::SimConfig;
use crate::kube::clock;
use crate::kube::cluster::{CORE, Cidr, Cluster, gr};
use crate::kube::registry::{DeleteOptions, owner_uids};

/// The status (`True`/`False`/`Unknown`) of a node condition.
pub fn node_condition<'a>(node: &'a Value, ty: &str) -> Option<&'a str> {
    node.at("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))?
        .get("status")?
        .as_str()
}

/// Whether a pod's Ready condition is True.
pub fn pod_is_ready(pod: &Value) -> bool {
    pod.at("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

fn name(obj: &Value) -> &str {
    obj.at("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn namespace(obj: &Value) -> &str {
    obj.at("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

fn uid(obj: &Value) -> &str {
    obj.at("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

fn terminating(obj: &Value) -> bool {
    obj.at("/metadata/deletionTimestamp").is_some()
}

/// New namespaces get their `default` ServiceAccount and the
/// `kube-root-ca.crt` ConfigMap; terminating ones are emptied, then removed.
pub fn namespaces(cluster: &Arc<Cluster>, d: &Dirty) {
    let all = list_of(cluster, CORE, "namespaces", None);
    for ns in &all {
        let n = name(ns).to_string();
        if terminating(ns) {
            finish_namespace(cluster, &n);
            continue;
        }
        if !(d.full || d.namespaces.contains(&n)) {
            continue;
        }
        if get_of(cluster, CORE, "serviceaccounts", &n, "default").is_none() {
            log_err(
                "create default ServiceAccount",
                cluster.create_system(
                    (CORE, "serviceaccounts"),
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": n}}),
                    CONTROLLER_MANAGER,
                ),
            );
        }
        if get_of(cluster, CORE, "configmaps", &n, "kube-root-ca.crt").is_none() {
            log_err(
                "publish kube-root-ca.crt",
                cluster.create_system(
                    (CORE, "configmaps"),
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "kube-root-ca.crt", "namespace": n,
                            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                        "data": {"ca.crt": cluster.meta.ca_cert_pem}}),
                    CONTROLLER_MANAGER,
                ),
            );
        }
    }
}

fn finish_namespace(cluster: &Arc<Cluster>, ns: &str) {
    let types: Vec<_> = cluster
        .catalog()
        .types()
        .filter(|t| t.namespaced && !t.create_only)
        .cloned()
        .collect();
    let mut remaining = 0usize;
    for t in &types {
        let objs = list_of(cluster, &t.group, &t.plural, Some(ns));
        remaining += objs.len();
        for o in objs {
            if terminating(&o) {
                continue;
            }
            log_err(
                "empty terminating namespace",
                cluster.delete_system((&t.group, &t.plural), ns, name(&o), &DeleteOptions::default()),
            );
        }
    }
    if remaining == 0 {
        let mut st = cluster.lock();
        st.store.remove(&gr(CORE, "namespaces"), "", ns);
    }
}

/// Deletes dependents of deleted owners, runs foreground and orphan
/// deletion, and (on full passes) removes objects whose owners are gone.
pub fn garbage_collect(cluster: &Arc<Cluster>, d: &Dirty) {
    if d.deleted_uids.is_empty() && !d.foreground && !d.full {
        return;
    }
    let types: Vec<_> = cluster.catalog().types().filter(|t| !t.create_only).cloned().collect();
    let mut all: Vec<(Arc<crate::kube::catalog::ResourceType>, Arc<Value>)> = Vec::new();
    {
        let st = cluster.lock();
        for t in &types {
            for (_, o) in st.store.list(&t.key(), None) {
                all.push((t.clone(), o.clone()));
            }
        }
    }
    let existing: HashSet<&str> = if d.full {
        all.iter().map(|(_, o)| uid(o)).collect()
    } else {
        HashSet::new()
    };
    let gone = |u: &str| d.deleted_uids.contains(u) || (d.full && !existing.contains(u));
    // Dependents by owner uid, for foreground deletion.
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, o)) in all.iter().enumerate() {
        for u in owner_uids(o) {
            dependents.entry(u).or_default().push(i);
        }
    }
    for (t, o) in &all {
        let owners: Vec<&str> = owner_uids(o).collect();
        if owners.is_empty() || terminating(o) {
            continue;
        }
        if owners.iter().all(|u| gone(u)) {
            log_err(
                "garbage-collect a dependent",
                cluster.delete_system((&t.group, &t.plural), namespace(o), name(o), &DeleteOptions::default()),
            );
        } else if owners.iter().any(|u| gone(u)) {
            let dead: Vec<String> = owners.iter().filter(|u| gone(u)).map(|u| u.to_string()).collect();
            log_err(
                "drop an ownerReference to a deleted owner",
                cluster.mutate(
                    (&t.group, &t.plural),
                    namespace(o),
                    name(o),
                    false,
                    CONTROLLER_MANAGER,
                    |v| {
                        if let Some(refs) = v.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                            refs.retain(|r| {
                                !r.get("uid")
                                    .and_then(Value::as_str)
                                    .is_some_and(|u| dead.iter().any(|d| d == u))
                            });
                        }
                    },
                ),
            );
        }
    }
    for (t, o) in &all {
        if !terminating(o) {
            continue;
        }
        let fins: Vec<&str> = o
            .at("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let foreground = fins.contains(&"foregroundDeletion");
        let orphan = fins.contains(&"orphan");
        if !foreground && !orphan {
            continue;
        }
        let deps = dependents.get(uid(o)).cloned().unwrap_or_default();
        let live_deps: Vec<&(Arc<crate::kube::catalog::ResourceType>, Arc<Value>)> =
            deps.iter().map(|&i| &all[i]).collect();
        if foreground && !live_deps.is_empty() {
            for (dt, dep) in live_deps {
                if !terminating(dep) {
                    log_err(
                        "foreground-delete a dependent",
                        cluster.delete_system(
                            (&dt.group, &dt.plural),
                            namespace(dep),
                            name(dep),
                            &DeleteOptions::default(),
                        ),
                    );
                }
            }
            continue;
        }
        if orphan {
            let owner_uid = uid(o).to_string();
            for (dt, dep) in live_deps {
                log_err(
                    "orphan a dependent",
                    cluster.mutate(
                        (&dt.group, &dt.plural),
                        namespace(dep),
                        name(dep),
                        false,
                        CONTROLLER_MANAGER,
                        |v| {
                            if let Some(refs) = v.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut)
                            {
                                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid.as_str()));
                            }
                        },
                    ),
                );
            }
        }
        log_err(
            "finish foreground/orphan deletion",
            cluster.mutate(
                (&t.group, &t.plural),
                namespace(o),
                name(o),
                false,
                CONTROLLER_MANAGER,
                |v| {
                    if let Some(f) = v.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                        f.retain(|x| x != "foregroundDeletion" && x != "orphan");
                    }
                },
            ),
        );
    }
}

/// The node lifecycle controller: pods on unreachable nodes turn not
/// ready; pods that do not tolerate a node's NoExecute taints are evicted
/// (after their tolerationSeconds, in simulated time); pods bound to nodes
/// that no longer exist are removed.
pub fn nodes(cluster: &Arc<Cluster>, config: &SimConfig, snap: &Snapshot, d: &Dirty) {
    if d.nodes.is_empty() && !d.tick && !d.full {
        return;
    }
    let nodes: HashMap<&str, &Arc<Value>> = snap.nodes.iter().map(|n| (name(n), n)).collect();
    let now = clock::now_unix() as f64;
    for pod in &snap.pods {
        let Some(node_name) = pod.at("/spec/nodeName").and_then(Value::as_str) else {
            continue;
        };
        let Some(node) = nodes.get(node_name) else {
            // Pod GC: the node is gone for good.
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            log_err(
                "remove a pod of a deleted node",
                cluster.delete_system((CORE, "pods"), namespace(pod), name(pod), &opts),
            );
            continue;
        };
        if terminating(pod) {
            continue;
        }
        let taints: Vec<&Value> = no_execute_taints(node).collect();
        let tolerations: Vec<&Value> = pod
            .at("/spec/tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let mut evict = false;
        for t in taints {
            match tolerations.iter().find(|tol| super::scheduling::tolerates(tol, t)) {
                None => evict = true,
                Some(tol) => {
                    if let Some(secs) = tol.get("tolerationSeconds").and_then(Value::as_i64) {
                        let added = t
                            .get("timeAdded")
                            .and_then(Value::as_str)
                            .and_then(clock::parse_rfc3339)
                            .unwrap_or(now as i64) as f64;
                        let wait = config
                            .scaled(std::time::Duration::from_secs(secs.max(0) as u64))
                            .as_secs_f64();
                        if now - added >= wait {
                            evict = true;
                        }
                    }
                }
            }
        }
        if evict {
            log_err(
                "taint-based eviction",
                cluster.delete_system((CORE, "pods"), namespace(pod), name(pod), &DeleteOptions::default()),
            );
        }
    }
}

fn condition(ty: &str, status: &str, now: &str) -> Value {
    json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now})
}

fn container_id() -> String {
    format!(
        "containerd://{}",
        hex::encode(fastrand::u128(..).to_le_bytes()) + &hex::encode(fastrand::u128(..).to_le_bytes())
    )
}

fn image_id(image: &str) -> String {
    use sha2::Digest;
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    let repo = if repo.contains('/') {
        repo.to_string()
    } else {
        format!("library/{repo}")
    };
    let repo = if repo
        .split('/')
        .next()
        .is_some_and(|h| h.contains('.') || h.contains(':'))
    {
        repo
    } else {
        format!("docker.io/{repo}")
    };
    format!("{repo}@sha256:{}", hex::encode(sha2::Sha256::digest(image.as_bytes())))
}

fn running_status(pod: &Value, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    let containers: Vec<Value> = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            json!({
                "name": c.get("name"),
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image,
                "imageID": image_id(image),
                "containerID": container_id(),
                "started": true,
            })
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers", "True", now),
            condition("Initialized", "True", now),
            condition("Ready", "True", now),
            condition("ContainersReady", "True", now),
            condition("PodScheduled", "True", now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": containers,
        "qosClass": pod.at("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
    });
    let inits: Vec<Value> = pod
        .at("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            json!({
                "name": c.get("name"),
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now, "containerID": container_id()}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image,
                "imageID": image_id(image),
                "containerID": container_id(),
                "started": false,
            })
        })
        .collect();
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    status
}

fn set_condition(status: &mut Value, ty: &str, value: &str, reason: Option<&str>, now: &str) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    match conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some(value) {
                c["status"] = json!(value);
                c["lastTransitionTime"] = json!(now);
            }
            match reason {
                Some(r) => c["reason"] = json!(r),
                None => {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("reason");
                    }
                }
            }
        }
        None => {
            let mut c = condition(ty, value, now);
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            conds.push(c);
        }
    }
}

/// The taints of a node that evict running pods (effect NoExecute).
pub fn no_execute_taints(node: &Value) -> impl Iterator<Item = &Value> {
    node.at("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("effect").and_then(Value::as_str) == Some("NoExecute"))
}

/// The address a node reports as InternalIP.
pub fn node_ip(node: &Value) -> Option<String> {
    node.at("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|a| {
            (a.get("type").and_then(Value::as_str) == Some("InternalIP"))
                .then(|| a.get("address").and_then(Value::as_str).map(str::to_string))?
        })
}

/// The kubelets: start pods bound to live nodes (Running, Ready, IPs),
/// finish Job pods, confirm deletions, and (node lifecycle controller)
/// mark pods on unreachable nodes not ready.
pub fn kubelets(cluster: &Arc<Cluster>, snap: &Snapshot) {
    // each node's Ready condition, read once per pass (not once per pod)
    let nodes: HashMap<&str, (&Arc<Value>, Option<&str>)> = snap
        .nodes
        .iter()
        .map(|n| (name(n), (n, node_condition(n, "Ready"))))
        .collect();
    // pod addresses in use per node: built when a pod needs one
    let mut used: Option<HashMap<&str, HashSet<String>>> = None;
    let pods_ips = || {
        let mut m: HashMap<&str, HashSet<String>> = HashMap::new();
        for p in &snap.pods {
            if let (Some(n), Some(ip)) = (
                p.at("/spec/nodeName").and_then(Value::as_str),
                p.at("/status/podIP").and_then(Value::as_str),
            ) {
                m.entry(n).or_default().insert(ip.to_string());
            }
        }
        m
    };
    let now = clock::now_rfc3339();
    for pod in &snap.pods {
        let Some(node_name) = pod.at("/spec/nodeName").and_then(Value::as_str) else {
            continue;
        };
        let Some(&(node, ready)) = nodes.get(node_name) else {
            continue;
        };
        let alive = ready.is_some() && ready != Some("Unknown");
        let (ns, pname) = (namespace(pod), name(pod));
        if terminating(pod) {
            if alive {
                let opts = DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                log_err(
                    "kubelet: confirm pod termination",
                    cluster.delete_system((CORE, "pods"), ns, pname, &opts),
                );
            }
            continue;
        }
        let phase = pod.at("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
        let host_network = pod.at("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
        match phase {
            "Pending" if alive && (ready == Some("True") || host_network) => {
                let host_ip = node_ip(node).unwrap_or_default();
                let pod_ip = if host_network {
                    host_ip.clone()
                } else {
                    let taken = used.get_or_insert_with(pods_ips).entry(node_name).or_default();
                    let ip = allocate_pod_ip(node, taken);
                    taken.insert(ip.clone());
                    ip
                };
                let status = running_status(pod, &host_ip, &pod_ip, &now);
                log_err(
                    "kubelet: start a pod",
                    cluster.mutate((CORE, "pods"), ns, pname, true, KUBELET, |p| {
                        p["status"] = status;
                    }),
                );
            }
            "Running" => {
                let job_pod = controller_of(pod).is_some_and(|(k, _, _)| k == "Job");
                if job_pod && alive {
                    let now2 = now.clone();
                    log_err(
                        "kubelet: a job pod completes",
                        cluster.mutate((CORE, "pods"), ns, pname, true, KUBELET, |p| {
                            let st = &mut p["status"];
                            st["phase"] = json!("Succeeded");
                            set_condition(st, "Ready", "False", Some("PodCompleted"), &now2);
                            set_condition(st, "ContainersReady", "False", Some("PodCompleted"), &now2);
                            if let Some(cs) = st.get_mut("containerStatuses").and_then(Value::as_array_mut) {
                                for c in cs {
                                    let started = c.at("/state/running/startedAt").cloned().unwrap_or(json!(now2));
                                    c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now2}});
                                    c["ready"] = json!(false);
                                    c["started"] = json!(false);
                                }
                            }
                        }),
                    );
                    continue;
                }
                let want_ready = alive;
                if want_ready != pod_is_ready(pod) {
                    let manager = if alive { KUBELET } else { CONTROLLER_MANAGER };
                    let now2 = now.clone();
                    log_err(
                        "mark pod readiness",
                        cluster.mutate((CORE, "pods"), ns, pname, true, manager, |p| {
                            let v = if want_ready { "True" } else { "False" };
                            set_condition(&mut p["status"], "Ready", v, None, &now2);
                            set_condition(&mut p["status"], "ContainersReady", v, None, &now2);
                            if let Some(cs) = p["status"].get_mut("containerStatuses").and_then(Value::as_array_mut) {
                                for c in cs {
                                    c["ready"] = json!(want_ready);
                                }
                            }
                        }),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The next free address of a node's podCIDR (or, without one, of a /24
/// derived from the node's name in 10.244.0.0/16).
fn allocate_pod_ip(node: &Value, taken: &HashSet<String>) -> String {
    let cidr = node
        .at("/spec/podCIDR")
        .and_then(Value::as_str)
        .and_then(Cidr::parse)
        .unwrap_or_else(|| {
            let mut h: u32 = 0;
            for b in name(node).bytes() {
                h = h.wrapping_mul(31).wrapping_add(b as u32);
            }
            Cidr {
                base: u32::from(Ipv4Addr::new(10, 244, (h % 256) as u8, 0)),
                prefix: 24,
            }
        });
    let size = cidr.size().min(65_536);
    for n in 2..size.saturating_sub(1) {
        if let Some(ip) = cidr.nth(n) {
            let s = ip.to_string();
            if !taken.contains(&s) {
                return s;
            }
        }
    }
    cidr.nth(2).map(|ip| ip.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_come_from_the_node_cidr() {
        let node = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.3.0/24"}});
        let mut taken = HashSet::new();
        let a = allocate_pod_ip(&node, &taken);
        assert_eq!(a, "10.244.3.2");
        taken.insert(a);
        assert_eq!(allocate_pod_ip(&node, &taken), "10.244.3.3");
    }

    #[test]
    fn image_ids_look_like_registry_digests() {
        assert!(image_id("nginx:1.27").starts_with("docker.io/library/nginx@sha256:"));
        assert!(image_id("ghcr.io/x/y:1").starts_with("ghcr.io/x/y@sha256:"));
    }
}
