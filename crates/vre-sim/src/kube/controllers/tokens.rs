//! kube-controller-manager's bootstrap signer and token cleaner: the
//! `cluster-info` ConfigMap carries a `jws-kubeconfig-<id>` signature for
//! every live bootstrap token usable for signing (tokens created after
//! `kubeadm init` included), and expired token Secrets are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{CONTROLLER_MANAGER, get_of, list_of, log_err};
use crate::kube::auth;
use crate::kube::cluster::{CORE, Cluster};
use crate::kube::pki;
use crate::kube::registry::{DeleteOptions, set_at};

const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

/// One pass of the signer and the cleaner.
pub fn reconcile(cluster: &Arc<Cluster>) {
    let secrets: Vec<Arc<Value>> = list_of(cluster, CORE, "secrets", Some("kube-system"))
        .into_iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE))
        .collect();
    let mut signatures = BTreeMap::new();
    let Some(info) = get_of(cluster, CORE, "configmaps", "kube-public", "cluster-info") else {
        return;
    };
    let kubeconfig = info
        .at("/data/kubeconfig")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for s in &secrets {
        let name = s.at("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let Some(id) = name.strip_prefix("bootstrap-token-") else {
            continue;
        };
        let token = auth::token_secret(&cluster.lock(), id);
        let Some(token) = token else { continue };
        if token.expired() {
            log_err(
                "delete an expired bootstrap token",
                cluster.delete_system((CORE, "secrets"), "kube-system", name, &DeleteOptions::default()),
            );
            continue;
        }
        if token.signing && token.id == id {
            signatures.insert(
                format!("jws-kubeconfig-{id}"),
                pki::detached_jws(&kubeconfig, id, &token.secret),
            );
        }
    }
    let current: BTreeMap<String, String> = info
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("jws-kubeconfig-"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    if current == signatures {
        return;
    }
    log_err(
        "sign cluster-info",
        cluster.mutate(
            (CORE, "configmaps"),
            "kube-public",
            "cluster-info",
            false,
            CONTROLLER_MANAGER,
            |cm| {
                if let Some(data) = cm.get_mut("data").and_then(Value::as_object_mut) {
                    data.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
                }
                for (k, v) in &signatures {
                    set_at(cm, &["data", k], json!(v));
                }
            },
        ),
    );
}
