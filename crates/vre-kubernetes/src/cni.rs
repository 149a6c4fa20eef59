//! The CNI: flannel, as KubeNow used, from a pinned release's manifest
//! vendored under `manifests/`, with its network set to the pod CIDR.

use serde::Deserialize;
use serde_json::Value;
use vre_core::{Manifest, ReadinessCheck};

use crate::error::{KubeError, Result};

/// The pinned flannel release.
pub const FLANNEL_VERSION: &str = "v0.28.9";
const FLANNEL_MANIFEST: &str = include_str!("../manifests/flannel-v0.28.9.yml");
const FLANNEL_NAMESPACE: &str = "kube-flannel";
const FLANNEL_CONFIG: &str = "kube-flannel-cfg";
const FLANNEL_DAEMONSET: &str = "kube-flannel-ds";

/// The CNI plugins vre can install (`kubernetes.cni`).
pub const SUPPORTED: &[&str] = &["flannel"];

/// Parses a multi-document YAML text into objects (empty documents skipped).
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| KubeError::BadObject {
            object: format!("{origin} document {}", i + 1),
            message: e.to_string(),
        })?;
        if !v.is_null() {
            out.push(Manifest::new(v));
        }
    }
    Ok(out)
}

/// flannel's objects with `net-conf.json`'s `Network` set to `pod_cidr`.
pub fn flannel_manifests(pod_cidr: &str) -> Result<Vec<Manifest>> {
    let mut objects = parse_documents(FLANNEL_MANIFEST, "flannel manifest")?;
    let cm = objects
        .iter_mut()
        .find(|m| m.kind() == "ConfigMap" && m.name() == FLANNEL_CONFIG)
        .ok_or_else(|| KubeError::Failed(format!("the flannel manifest has no ConfigMap {FLANNEL_CONFIG}")))?;
    let net_conf = cm.0["data"]["net-conf.json"]
        .as_str()
        .ok_or_else(|| KubeError::Failed("the flannel ConfigMap has no net-conf.json".into()))?;
    let mut conf: Value =
        serde_json::from_str(net_conf).map_err(|e| KubeError::Failed(format!("flannel net-conf.json: {e}")))?;
    conf["Network"] = Value::String(pod_cidr.to_string());
    let text = serde_json::to_string_pretty(&conf).map_err(|e| KubeError::Failed(e.to_string()))?;
    cm.0["data"]["net-conf.json"] = Value::String(format!("{text}\n"));
    Ok(objects)
}

/// flannel is up when its DaemonSet has rolled out on every node.
pub fn flannel_readiness() -> Vec<ReadinessCheck> {
    vec![ReadinessCheck::Rollout {
        kind: "DaemonSet".into(),
        namespace: FLANNEL_NAMESPACE.into(),
        name: FLANNEL_DAEMONSET.into(),
    }]
}

/// The objects and readiness checks of the CNI named `cni`.
pub fn cni(cni: &str, pod_cidr: &str) -> Result<(Vec<Manifest>, Vec<ReadinessCheck>)> {
    match cni {
        "flannel" => Ok((flannel_manifests(pod_cidr)?, flannel_readiness())),
        other => Err(KubeError::Spec {
            field: "kubernetes.cni",
            message: format!("\"{other}\" is not supported; use one of: {}", SUPPORTED.join(", ")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_follows_the_pod_cidr() {
        let objs = flannel_manifests("10.32.0.0/12").unwrap();
        let kinds: Vec<&str> = objs.iter().map(|m| m.kind()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ClusterRole",
                "ClusterRoleBinding",
                "ServiceAccount",
                "ConfigMap",
                "DaemonSet"
            ]
        );
        let cm = objs.iter().find(|m| m.kind() == "ConfigMap").unwrap();
        let conf: Value = serde_json::from_str(cm.0["data"]["net-conf.json"].as_str().unwrap()).unwrap();
        assert_eq!(conf["Network"], "10.32.0.0/12");
        assert_eq!(conf["Backend"]["Type"], "vxlan");
        let ds = objs.iter().find(|m| m.kind() == "DaemonSet").unwrap();
        assert_eq!(ds.namespace(), Some(FLANNEL_NAMESPACE));
        assert_eq!(ds.name(), FLANNEL_DAEMONSET);
        let image = ds.0["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        assert!(image.ends_with(FLANNEL_VERSION), "{image}");
        // it must run on tainted (storage, master) nodes too
        let tolerations = ds.0["spec"]["template"]["spec"]["tolerations"].as_array().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t["operator"] == "Exists" && t["effect"] == "NoSchedule" && t.get("key").is_none())
        );
    }

    #[test]
    fn unknown_cni_names_the_field() {
        let e = cni("weave", "10.244.0.0/16").unwrap_err().to_string();
        assert!(e.starts_with("kubernetes.cni: "), "{e}");
    }
}
