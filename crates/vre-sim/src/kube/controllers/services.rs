//! Service controllers: Endpoints and EndpointSlices from the pods a
//! Service selects (ready and not-ready addresses, target ports resolved
//! by number or container port name), and LoadBalancer addresses from the
//! cluster's edge nodes' public IPs (the master's when there is no edge).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{CONTROLLER_MANAGER, Dirty, Snapshot, get_of, list_of, log_err};
use crate::kube::cluster::{CORE, Cluster};
use crate::kube::registry::DeleteOptions;
use crate::kube::selector::labels_of;

use super::lifecycle::{node_condition, pod_is_ready};

/// The node label that marks edge nodes (vre-core's `NODE_ROLE_LABEL`).
pub const ROLE_LABEL: &str = "vre.io/role";

fn name(obj: &Value) -> &str {
    obj.at("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn namespace(obj: &Value) -> &str {
    obj.at("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

/// The public addresses LoadBalancer Services get: ready edge nodes', or
/// the master's when the cluster has no edge node.
pub fn load_balancer_ips(cluster: &Cluster, snap: &Snapshot) -> Vec<String> {
    let mut ips = BTreeSet::new();
    for node in &snap.nodes {
        let is_edge = node
            .at("/metadata/labels")
            .and_then(|l| l.get(ROLE_LABEL))
            .and_then(Value::as_str)
            == Some("edge");
        if is_edge && node_condition(node, "Ready") == Some("True") {
            for ip in snap.edge.get(name(node)).into_iter().flatten() {
                ips.insert(ip.to_string());
            }
        }
    }
    if ips.is_empty() {
        let has_edge = snap.nodes.iter().any(|n| {
            n.at("/metadata/labels")
                .and_then(|l| l.get(ROLE_LABEL))
                .and_then(Value::as_str)
                == Some("edge")
        });
        if !has_edge {
            for ip in snap.edge.get(&cluster.meta.master_node).into_iter().flatten() {
                ips.insert(ip.to_string());
            }
        }
    }
    ips.into_iter().collect()
}

/// The port a Service port targets on a pod (`targetPort` by number, or a
/// container port by name); `None` when the pod has no such named port.
fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    match svc_port.get("targetPort") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            if let Ok(n) = s.parse() {
                return Some(n);
            }
            pod.at("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .find_map(|c| {
                    c.get("ports")?.as_array()?.iter().find_map(|p| {
                        (p.get("name").and_then(Value::as_str) == Some(s.as_str()))
                            .then(|| p.get("containerPort")?.as_i64())?
                    })
                })
        }
        _ => svc_port.get("port").and_then(Value::as_i64),
    }
}

/// One pass: the Services the batch touched.
pub fn reconcile(cluster: &Arc<Cluster>, snap: &Snapshot, d: &Dirty) {
    let mut targets: Vec<Arc<Value>> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |s: Arc<Value>, targets: &mut Vec<Arc<Value>>| {
        if seen.insert((namespace(&s).to_string(), name(&s).to_string())) {
            targets.push(s);
        }
    };
    if d.full || d.load_balancers {
        for s in list_of(cluster, CORE, "services", None) {
            if d.full || s.at("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
                add(s, &mut targets);
            }
        }
    }
    for ns in &d.service_namespaces {
        for s in list_of(cluster, CORE, "services", Some(ns)) {
            add(s, &mut targets);
        }
    }
    for (ns, n) in &d.services {
        match get_of(cluster, CORE, "services", ns, n) {
            Some(s) => add(s, &mut targets),
            None => {
                // The Service is gone: so are its Endpoints (slices go by ownerReference).
                if get_of(cluster, CORE, "endpoints", ns, n).is_some() {
                    log_err(
                        "remove the Endpoints of a deleted Service",
                        cluster.delete_system((CORE, "endpoints"), ns, n, &DeleteOptions::default()),
                    );
                }
            }
        }
    }
    if targets.is_empty() {
        return;
    }
    let lb_ips = load_balancer_ips(cluster, snap);
    for svc in targets {
        if svc.at("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        endpoints(cluster, snap, &svc);
        if svc.at("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
            let ingress: Vec<Value> = lb_ips.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect();
            let current = svc.at("/status/loadBalancer/ingress").cloned().unwrap_or(json!([]));
            if current != json!(ingress) {
                log_err(
                    "publish a LoadBalancer address",
                    cluster.mutate(
                        (CORE, "services"),
                        namespace(&svc),
                        name(&svc),
                        true,
                        CONTROLLER_MANAGER,
                        |v| {
                            v["status"]["loadBalancer"] = if ingress.is_empty() {
                                json!({})
                            } else {
                                json!({"ingress": ingress})
                            };
                        },
                    ),
                );
            }
        }
    }
}

fn endpoints(cluster: &Cluster, snap: &Snapshot, svc: &Value) {
    let Some(selector) = svc
        .at("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    if svc.at("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    let ns = namespace(svc);
    let svc_name = name(svc);
    let publish_not_ready = svc.at("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
    let ports: Vec<Value> = svc
        .at("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut ready_addrs = Vec::new();
    let mut not_ready_addrs = Vec::new();
    let mut slice_endpoints = Vec::new();
    let mut resolved_ports: Option<Vec<Value>> = None;
    let mut pods: Vec<&Arc<Value>> = snap
        .pods
        .iter()
        .filter(|p| namespace(p) == ns)
        .filter(|p| {
            let labels = labels_of(p);
            selector
                .iter()
                .all(|(k, v)| v.as_str().is_some_and(|v| labels.get(k).is_some_and(|l| l == v)))
        })
        .filter(|p| {
            p.at("/status/podIP")
                .and_then(Value::as_str)
                .is_some_and(|ip| !ip.is_empty())
        })
        .filter(|p| {
            !matches!(
                p.at("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    pods.sort_by_key(|p| name(p).to_string());
    for pod in pods {
        let ip = pod.at("/status/podIP").and_then(Value::as_str).unwrap_or("");
        let pod_ports: Option<Vec<Value>> = ports
            .iter()
            .map(|p| {
                let mut e = json!({"port": target_port(p, pod)?, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
                if let Some(n) = p.get("name").filter(|n| n.as_str().is_some_and(|s| !s.is_empty())) {
                    e["name"] = n.clone();
                }
                if let Some(a) = p.get("appProtocol") {
                    e["appProtocol"] = a.clone();
                }
                Some(e)
            })
            .collect();
        let Some(pod_ports) = pod_ports else { continue };
        if resolved_ports.is_none() {
            resolved_ports = Some(pod_ports);
        }
        let terminating = pod.at("/metadata/deletionTimestamp").is_some();
        let ready = pod_is_ready(pod) && !terminating;
        let mut address = json!({"ip": ip, "targetRef": {"kind": "Pod", "namespace": ns, "name": name(pod), "uid": pod["metadata"]["uid"]}});
        let node = pod.at("/spec/nodeName").cloned();
        if let Some(n) = &node {
            address["nodeName"] = n.clone();
        }
        if !terminating {
            if ready || publish_not_ready {
                ready_addrs.push(address.clone());
            } else {
                not_ready_addrs.push(address.clone());
            }
        }
        let mut ep = json!({
            "addresses": [ip],
            "conditions": {"ready": ready || (publish_not_ready && !terminating), "serving": pod_is_ready(pod), "terminating": terminating},
            "targetRef": address["targetRef"],
        });
        if let Some(n) = node {
            ep["nodeName"] = n;
        }
        slice_endpoints.push(ep);
    }
    let ports_json = resolved_ports.unwrap_or_default();
    let mut subset = json!({});
    if !ready_addrs.is_empty() {
        subset["addresses"] = json!(ready_addrs);
    }
    if !not_ready_addrs.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready_addrs);
    }
    let subsets = if ready_addrs.is_empty() && not_ready_addrs.is_empty() {
        None
    } else {
        subset["ports"] = json!(ports_json);
        Some(json!([subset]))
    };
    let labels = svc.at("/metadata/labels").cloned().unwrap_or(json!({}));
    match get_of(cluster, CORE, "endpoints", ns, svc_name) {
        None => {
            let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": svc_name, "namespace": ns, "labels": labels}});
            if let Some(s) = &subsets {
                ep["subsets"] = s.clone();
            }
            log_err(
                "create Endpoints",
                cluster.create_system((CORE, "endpoints"), ep, CONTROLLER_MANAGER),
            );
        }
        Some(existing) => {
            if existing.get("subsets") != subsets.as_ref() {
                log_err(
                    "update Endpoints",
                    cluster.mutate(
                        (CORE, "endpoints"),
                        ns,
                        svc_name,
                        false,
                        CONTROLLER_MANAGER,
                        |v| match &subsets {
                            Some(s) => v["subsets"] = s.clone(),
                            None => {
                                if let Some(m) = v.as_object_mut() {
                                    m.remove("subsets");
                                }
                            }
                        },
                    ),
                );
            }
        }
    }
    // One EndpointSlice per Service, named after it and its uid.
    let suffix = super::template_hash(&svc["metadata"]["uid"]);
    let slice_name = format!("{svc_name}-{}", &suffix[..suffix.len().min(5)]);
    let slice_ports: Vec<Value> = if slice_endpoints.is_empty() {
        Vec::new()
    } else {
        ports_json
    };
    match get_of(cluster, "discovery.k8s.io", "endpointslices", ns, &slice_name) {
        None => {
            let mut slice_labels = labels.clone();
            if !slice_labels.is_object() {
                slice_labels = json!({});
            }
            slice_labels["kubernetes.io/service-name"] = json!(svc_name);
            slice_labels["endpointslice.kubernetes.io/managed-by"] = json!("endpointslice-controller.k8s.io");
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": slice_name, "namespace": ns, "labels": slice_labels, "ownerReferences": [super::controller_ref(svc)]},
                "addressType": "IPv4",
                "endpoints": slice_endpoints,
                "ports": slice_ports,
            });
            log_err(
                "create an EndpointSlice",
                cluster.create_system(("discovery.k8s.io", "endpointslices"), slice, CONTROLLER_MANAGER),
            );
        }
        Some(existing) => {
            if existing.get("endpoints") != Some(&json!(slice_endpoints))
                || existing.get("ports") != Some(&json!(slice_ports))
            {
                log_err(
                    "update an EndpointSlice",
                    cluster.mutate(
                        ("discovery.k8s.io", "endpointslices"),
                        ns,
                        &slice_name,
                        false,
                        CONTROLLER_MANAGER,
                        |v| {
                            v["endpoints"] = json!(slice_endpoints);
                            v["ports"] = json!(slice_ports);
                        },
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ports_resolve_by_name() {
        let pod = json!({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}});
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "http"}), &pod),
            Some(8080)
        );
        assert_eq!(target_port(&json!({"port": 80, "targetPort": 9000}), &pod), Some(9000));
        assert_eq!(target_port(&json!({"port": 80}), &pod), Some(80));
        assert_eq!(target_port(&json!({"port": 80, "targetPort": "grpc"}), &pod), None);
    }
}
