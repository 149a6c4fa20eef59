//! Drain for scale-down: cordon the node, evict its pods through the
//! Eviction API (so PodDisruptionBudgets are honoured), and wait until
//! they are gone. DaemonSet pods and mirror (static) pods stay, as with
//! `kubectl drain --ignore-daemonsets`; pods without a controller and pods
//! with emptyDir volumes are evicted too (`--force
//! --delete-emptydir-data`): the node is about to be deleted anyway.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::error::{KubeError, Result, describe, status_of};

/// The annotation the kubelet puts on the API mirror of a static pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Why a pod on a drained node is left alone, if it is.
pub fn skip_reason(pod: &Pod) -> Option<&'static str> {
    if pod.annotations().contains_key(MIRROR_POD_ANNOTATION) {
        return Some("mirror pod");
    }
    let daemonset_owned = pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    daemonset_owned.then_some("DaemonSet pod")
}

/// The `group/version` of the Eviction subresource the server serves
/// (`policy/v1` since 1.22, `policy/v1beta1` before), from discovery of
/// `pods/eviction` as `kubectl drain` does; `policy/v1` if discovery does
/// not say.
pub async fn eviction_version(client: &Client) -> Result<String> {
    let list = client
        .list_core_api_resources("v1")
        .await
        .map_err(|e| KubeError::api("discovery of v1 resources", e))?;
    let found = list.resources.iter().find(|r| r.name == "pods/eviction").and_then(|r| {
        let group = r.group.as_deref().filter(|g| !g.is_empty())?;
        let version = r.version.as_deref().filter(|v| !v.is_empty())?;
        Some(format!("{group}/{version}"))
    });
    Ok(found.unwrap_or_else(|| "policy/v1".into()))
}

/// The Eviction body for `pod` in `api_version`.
pub fn eviction_body(api_version: &str, namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": api_version,
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    })
}

/// What one eviction request did.
#[derive(Debug, PartialEq, Eq)]
enum Evicted {
    /// Accepted: the pod is being deleted.
    Yes,
    /// The pod was already gone.
    Gone,
    /// Refused for now (a PodDisruptionBudget): try again later.
    NotNow(String),
}

async fn evict(client: &Client, api_version: &str, pod: &Pod) -> Result<Evicted> {
    let ns = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let body =
        serde_json::to_vec(&eviction_body(api_version, &ns, &name)).map_err(|e| KubeError::Failed(e.to_string()))?;
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| KubeError::Failed(format!("eviction request: {e}")))?;
    match client.request::<serde_json::Value>(req).await {
        Ok(_) => Ok(Evicted::Yes),
        Err(e) => match status_of(&e) {
            Some(404) => Ok(Evicted::Gone),
            Some(429) => Ok(Evicted::NotNow(describe(&e))),
            _ => Err(KubeError::api(format!("evict pod {ns}/{name}"), e)),
        },
    }
}

fn pod_key(p: &Pod) -> String {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(api
        .list(&lp)
        .await
        .map_err(|e| KubeError::api(format!("list pods on {node}"), e))?
        .items)
}

/// Marks `node` unschedulable. Returns `false` when the node does not exist.
pub async fn cordon(client: &Client, node: &str) -> Result<bool> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"spec": {"unschedulable": true}});
    match api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(true),
        Err(e) if status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(KubeError::api(format!("cordon node {node}"), e)),
    }
}

/// Cordons `node`, evicts every pod but DaemonSet and mirror pods (retrying
/// those a PodDisruptionBudget protects), and waits until they are gone.
/// `eviction_client` must not retry 429 answers itself.
pub async fn drain(client: &Client, eviction_client: &Client, node: &str, timeout: Duration) -> vre_core::Result<()> {
    let deadline = Instant::now() + timeout;
    if !cordon(client, node).await? {
        return Ok(());
    }
    let version = eviction_version(client).await?;
    let mut pending: Vec<Pod> = pods_on(client, node)
        .await?
        .into_iter()
        .filter(|p| skip_reason(p).is_none())
        .collect();
    let mut evicted: BTreeSet<String> = BTreeSet::new();
    let mut blocked: Vec<String> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    while !pending.is_empty() {
        blocked.clear();
        let mut retry = Vec::new();
        for pod in pending {
            match evict(eviction_client, &version, &pod).await? {
                Evicted::Yes => {
                    evicted.insert(pod.uid().unwrap_or_else(|| pod_key(&pod)));
                }
                Evicted::Gone => {}
                Evicted::NotNow(why) => {
                    blocked.push(format!("{} ({why})", pod_key(&pod)));
                    retry.push(pod);
                }
            }
        }
        pending = retry;
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(vre_core::Error::Timeout {
                what: format!("the eviction of {} pod(s) from {node}", pending.len()),
                after: timeout,
                hint: format!(
                    "refused: {}; a PodDisruptionBudget allows no disruption now (scale the workload up or relax the budget)",
                    blocked.join("; ")
                ),
            });
        }
        backoff.sleep_until(deadline).await;
    }
    // evicted pods terminate with their grace period: wait until they are gone
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        let remaining: Vec<String> = pods_on(client, node)
            .await?
            .iter()
            .filter(|p| p.uid().is_some_and(|u| evicted.contains(&u)))
            .map(pod_key)
            .collect();
        if remaining.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(vre_core::Error::Timeout {
                what: format!("evicted pods to leave {node}"),
                after: timeout,
                hint: format!(
                    "still terminating: {}; their kubelet may be unreachable (the node is deleted anyway)",
                    remaining.join(", ")
                ),
            });
        }
        backoff.sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn pod(owner: Option<&str>, mirror: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                annotations: mirror.then(|| [(MIRROR_POD_ANNOTATION.to_string(), "abc".to_string())].into()),
                owner_references: owner.map(|k| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: k.into(),
                        name: "o".into(),
                        uid: "u".into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn daemonset_and_mirror_pods_stay() {
        assert_eq!(skip_reason(&pod(Some("DaemonSet"), false)), Some("DaemonSet pod"));
        assert_eq!(skip_reason(&pod(None, true)), Some("mirror pod"));
        assert_eq!(skip_reason(&pod(Some("ReplicaSet"), false)), None);
        assert_eq!(skip_reason(&pod(None, false)), None);
    }

    #[test]
    fn eviction_body_names_its_version() {
        let b = eviction_body("policy/v1beta1", "ns", "p");
        assert_eq!(b["apiVersion"], "policy/v1beta1");
        assert_eq!(b["kind"], "Eviction");
        assert_eq!(b["metadata"]["name"], "p");
        assert_eq!(b["metadata"]["namespace"], "ns");
    }
}
