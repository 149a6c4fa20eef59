//! Checks on generated (or user-supplied) Kubernetes objects that catch what
//! the API server would reject or what would silently misbehave: missing
//! identity fields, unpinned images, ports without `protocol` (server-side
//! apply on Kubernetes 1.20 rejects those), and workload selectors that do
//! not select their own pods.

use serde_json::Value;
use vre_core::Manifest;

/// Kinds that live outside namespaces (those vre and its presets use).
pub const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "IngressClass",
    "StorageClass",
    "CSIDriver",
    "PersistentVolume",
    "PriorityClass",
    "CustomResourceDefinition",
];

/// Kinds whose `spec.template` is a pod template.
const WORKLOADS: &[&str] = &["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"];

/// Every problem found, one line each (`Kind/ns/name: what`); empty when all is well.
pub fn problems(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for m in objects {
        let who = m.describe();
        let mut p = |msg: String| out.push(format!("{who}: {msg}"));
        if m.api_version().is_empty() {
            p("no apiVersion".into());
        }
        if m.kind().is_empty() {
            p("no kind".into());
        }
        if m.name().is_empty() {
            p("no metadata.name".into());
        }
        let cluster_scoped = CLUSTER_SCOPED.contains(&m.kind());
        match (cluster_scoped, m.namespace()) {
            (true, Some(_)) => p("cluster-scoped object with a namespace".into()),
            (false, None) => p("namespaced object without metadata.namespace".into()),
            _ => {}
        }
        if m.kind() == "Service" {
            for port in m.0["spec"]["ports"].as_array().into_iter().flatten() {
                if port["protocol"].as_str().is_none() {
                    p(format!("service port {} has no protocol", port["port"]));
                }
            }
        }
        if WORKLOADS.contains(&m.kind()) {
            let template = &m.0["spec"]["template"];
            pod_problems(&template["spec"], &mut p);
            if m.kind() != "Job" {
                let pod_labels = &template["metadata"]["labels"];
                match m.0["spec"]["selector"]["matchLabels"].as_object() {
                    None => p("no spec.selector.matchLabels".into()),
                    Some(sel) => {
                        for (k, v) in sel {
                            if &pod_labels[k] != v {
                                p(format!("selector {k}={v} does not match the pod template's labels"));
                            }
                        }
                    }
                }
            }
        }
        if m.kind() == "Pod" {
            pod_problems(&m.0["spec"], &mut p);
        }
    }
    out
}

fn pod_problems(pod: &Value, p: &mut impl FnMut(String)) {
    let containers = pod["containers"].as_array().into_iter().flatten();
    let init = pod["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(init) {
        let name = c["name"].as_str().unwrap_or("?");
        match c["image"].as_str() {
            None => p(format!("container {name} has no image")),
            Some(image) => {
                if let Some(why) = unpinned(image) {
                    p(format!("container {name}: image {image} {why}"));
                }
            }
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port["protocol"].as_str().is_none() {
                p(format!(
                    "container {name}: port {} has no protocol",
                    port["containerPort"]
                ));
            }
        }
    }
}

/// Why `image` is not pinned to a version, if it is not.
pub fn unpinned(image: &str) -> Option<&'static str> {
    if image.contains("@sha256:") {
        return None;
    }
    // the tag is after the last ':' that follows the last '/' (registry ports have ':' too)
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("has no tag"),
        Some((_, "latest" | "dev" | "main" | "master" | "nightly")) => Some("uses a moving tag"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_the_api_server_or_scheduler_would_trip_on() {
        let bad = vec![
            Manifest::new(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 80}]}})),
            Manifest::new(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
                "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "y"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 8080}]}]}}}}),
            ),
            Manifest::new(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}}),
            ),
        ];
        let p = problems(&bad);
        let all = p.join("\n");
        for needle in [
            "Service/s: namespaced object without metadata.namespace",
            "service port 80 has no protocol",
            "selector app=\"x\" does not match",
            "image busybox has no tag",
            "port 8080 has no protocol",
            "Namespace/x/n: cluster-scoped object with a namespace",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(p.len(), 6, "{all}");
    }

    #[test]
    fn image_pinning() {
        assert_eq!(unpinned("traefik:v3.5.4"), None);
        assert_eq!(unpinned("registry:5000/x/y:1.2"), None);
        assert_eq!(unpinned("quay.io/x@sha256:abcd"), None);
        assert!(unpinned("registry:5000/x/y").is_some());
        assert!(unpinned("nginx:latest").is_some());
        assert!(unpinned("nginx").is_some());
    }
}
