//! Nodes: waiting (one watch) until the expected ones are registered and
//! Ready, role labels and taints, and the state vre reports.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use vre_core::{
    BootstrapFacts, Event, EventSink, ExpectedNode, FIELD_MANAGER, NODE_ROLE_LABEL, NODE_ROLE_PREFIX, NodeState, Role,
};

use crate::error::{KubeError, Result, describe, status_of};
use crate::kubeadm::{self, EDGE_LABEL};

/// The step name progress events carry.
const STEP: &str = "nodes";

fn ready_condition(node: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    ready_condition(node).is_some_and(|c| c.status == "True")
}

/// Why a node is not Ready, from its Ready condition.
pub fn not_ready_reason(node: &Node) -> String {
    match ready_condition(node) {
        Some(c) => {
            let reason = c.reason.as_deref().unwrap_or(c.status.as_str());
            match c.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason.to_string(),
            }
        }
        None => "no Ready condition reported yet (the kubelet has not posted its status)".into(),
    }
}

/// A node as vre reports it.
pub fn node_state(node: &Node) -> NodeState {
    let ready = is_ready(node);
    let status = node.status.as_ref();
    NodeState {
        name: node.name_any(),
        role: node.labels().get(NODE_ROLE_LABEL).and_then(|r| r.parse::<Role>().ok()),
        ready,
        reason: (!ready).then(|| not_ready_reason(node)),
        internal_ip: status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone()),
        kubelet_version: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone()),
    }
}

/// The registered node that is `expected`: the same name, or its FQDN
/// (some clouds give hosts a domain).
fn find<'a>(nodes: &'a BTreeMap<String, Node>, expected: &str) -> Option<&'a Node> {
    nodes.get(expected).or_else(|| {
        nodes
            .iter()
            .find(|(name, _)| name.strip_prefix(expected).is_some_and(|rest| rest.starts_with('.')))
            .map(|(_, n)| n)
    })
}

/// The timeout error: which nodes never registered, which are NotReady and why.
pub fn timeout_error(
    expected: &[ExpectedNode],
    nodes: &BTreeMap<String, Node>,
    after: Duration,
    api_port: u16,
    watch_error: Option<&str>,
) -> vre_core::Error {
    let mut missing = Vec::new();
    let mut not_ready = Vec::new();
    for e in expected {
        match find(nodes, &e.name) {
            None => missing.push(e.name.clone()),
            Some(n) if !is_ready(n) => not_ready.push(format!("{} ({})", e.name, not_ready_reason(n))),
            Some(_) => {}
        }
    }
    let mut hints = Vec::new();
    if !missing.is_empty() {
        hints.push(format!(
            "never registered: {}; check the join token and CA hash in their user data, that the master is reachable on port {api_port} from them, and /var/log/cloud-init-output.log on those nodes",
            missing.join(", ")
        ));
    }
    if !not_ready.is_empty() {
        hints.push(format!("registered but NotReady: {}", not_ready.join("; ")));
    }
    if let Some(w) = watch_error {
        hints.push(format!("the last watch error was: {w}"));
    }
    let names: Vec<String> = missing
        .iter()
        .cloned()
        .chain(
            not_ready
                .iter()
                .map(|s| s.split(' ').next().unwrap_or_default().to_string()),
        )
        .collect();
    vre_core::Error::Timeout {
        what: format!(
            "{} of {} nodes to join and become Ready ({})",
            names.len(),
            expected.len(),
            names.join(", ")
        ),
        after,
        hint: hints.join("; "),
    }
}

/// Waits, with one watch on all Nodes, until every expected node is
/// registered and Ready; reports progress as [`Event::NodesReady`].
pub async fn wait_registered(
    client: &Client,
    expected: &[ExpectedNode],
    timeout: Duration,
    events: &EventSink,
    api_port: u16,
) -> vre_core::Result<BTreeMap<String, Node>> {
    let deadline = Instant::now() + timeout;
    let api: Api<Node> = Api::all(client.clone());
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Node>> = None;
    let mut reported = None;
    let mut watch_error: Option<String> = None;
    loop {
        let ready = expected
            .iter()
            .filter(|e| find(&nodes, &e.name).is_some_and(is_ready))
            .count();
        if reported != Some(ready) {
            events.emit(Event::NodesReady {
                ready,
                expected: expected.len(),
            });
            events.count(STEP, "nodes Ready", ready as u64, expected.len() as u64);
            reported = Some(ready);
        }
        if ready == expected.len() {
            return Ok(nodes);
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(timeout_error(
                    expected,
                    &nodes,
                    timeout,
                    api_port,
                    watch_error.as_deref(),
                ));
            }
            Ok(None) => return Err(vre_core::Error::orchestrator("watch nodes", "the watch stream ended")),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "node watch error; the watcher retries");
                watch_error = Some(e.to_string());
            }
            Ok(Some(Ok(ev))) => match ev {
                watcher::Event::Init => listing = Some(BTreeMap::new()),
                watcher::Event::InitApply(n) => {
                    listing.get_or_insert_with(BTreeMap::new).insert(n.name_any(), n);
                }
                watcher::Event::InitDone => nodes = listing.take().unwrap_or_default(),
                watcher::Event::Apply(n) => {
                    nodes.insert(n.name_any(), n);
                }
                watcher::Event::Delete(n) => {
                    nodes.remove(&n.name_any());
                }
            },
        }
    }
}

/// The labels vre keeps on a node of `role`: `node-role.kubernetes.io/<role>`
/// (shown by `kubectl get nodes`), `vre.io/role`, and `vre.io/edge` on edge nodes.
pub fn role_labels(role: Role, facts: Option<&BootstrapFacts>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(format!("{NODE_ROLE_PREFIX}{role}"), String::new());
    labels.insert(NODE_ROLE_LABEL.to_string(), role.as_str().to_string());
    let edge = role == Role::Edge || (role == Role::Master && facts.is_some_and(|f| f.master_as_edge));
    if edge {
        labels.insert(EDGE_LABEL.to_string(), "true".into());
        if role == Role::Master {
            labels.insert(format!("{NODE_ROLE_PREFIX}{}", Role::Edge), String::new());
        }
    }
    labels
}

/// The taints a node of `role` must carry. Without the bootstrap facts
/// (a new process), the master's taint is not checked (it depends on
/// whether the cluster is a single node).
pub fn required_taints(role: Role, facts: Option<&BootstrapFacts>) -> Vec<Taint> {
    match (role, facts) {
        (_, Some(f)) => kubeadm::node_taints(role, f),
        (Role::Master, None) => Vec::new(),
        (_, None) => kubeadm::role_taints(role, false),
    }
}

/// The taints missing from `node`, of those `required`.
pub fn missing_taints(node: &Node, required: &[Taint]) -> Vec<Taint> {
    let have = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    required
        .iter()
        .filter(|r| {
            !have
                .iter()
                .any(|h| h.key == r.key && h.value == r.value && h.effect == r.effect)
        })
        .cloned()
        .collect()
}

/// Server-side applies the role labels of `name` (field manager `vre`).
pub async fn apply_labels(client: &Client, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|e| KubeError::api(format!("label node {name}"), e))?;
    Ok(())
}

/// Adds the `required` taints `name` lacks (read-modify-write guarded by
/// resourceVersion, retried on conflict). Returns the taints added.
pub async fn ensure_taints(client: &Client, name: &str, required: &[Taint]) -> Result<Vec<Taint>> {
    let api: Api<Node> = Api::all(client.clone());
    for _ in 0..5 {
        let node = api
            .get(name)
            .await
            .map_err(|e| KubeError::api(format!("get node {name}"), e))?;
        let missing = missing_taints(&node, required);
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let mut taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        taints.extend(missing.iter().cloned());
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(missing),
            Err(e) if status_of(&e) == Some(409) => continue,
            Err(e) => return Err(KubeError::api(format!("taint node {name}"), e)),
        }
    }
    Err(KubeError::Failed(format!(
        "taint node {name}: the node kept changing (5 conflicts); run again"
    )))
}

/// Every Node the API server knows.
pub async fn list(client: &Client) -> Result<Vec<NodeState>> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::api("list nodes", e))?;
    Ok(nodes.items.iter().map(node_state).collect())
}

/// Deletes the Node object; an absent node is fine.
pub async fn remove(client: &Client, name: &str) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(KubeError::Failed(format!("delete node {name}: {}", describe(&e)))),
    }
}

/// How many nodes are labelled and tainted at once.
const NODE_UPDATE_CONCURRENCY: usize = 16;

/// Whether `node` carries every one of `labels` with its value.
fn has_labels(node: &Node, labels: &BTreeMap<String, String>) -> bool {
    let have = node.labels();
    labels.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Labels and taints one node per its role; a node already in shape costs no request.
async fn finish_role(
    client: &Client,
    role: Role,
    node: Node,
    facts: Option<&BootstrapFacts>,
    events: &EventSink,
) -> Result<NodeState> {
    let name = node.name_any();
    let labels = role_labels(role, facts);
    if !has_labels(&node, &labels) {
        apply_labels(client, &name, &labels).await?;
    }
    let required = required_taints(role, facts);
    if !missing_taints(&node, &required).is_empty() {
        let added = ensure_taints(client, &name, &required).await?;
        if !added.is_empty() {
            events.warn(format!(
                "node {name} registered without its {} taint(s); added them",
                added.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut state = node_state(&node);
    state.role = Some(role);
    Ok(state)
}

/// Labels and taints every expected node per its role, a few at a time,
/// and returns their state.
pub async fn finish_roles(
    client: &Client,
    expected: &[ExpectedNode],
    nodes: &BTreeMap<String, Node>,
    facts: Option<&BootstrapFacts>,
    events: &EventSink,
) -> Result<Vec<NodeState>> {
    let work: Vec<(Role, Node)> = expected
        .iter()
        .filter_map(|e| find(nodes, &e.name).map(|n| (e.role, n.clone())))
        .collect();
    let mut states = Vec::with_capacity(work.len());
    for chunk in work.chunks(NODE_UPDATE_CONCURRENCY) {
        let done = futures::future::join_all(
            chunk
                .iter()
                .map(|(role, node)| finish_role(client, *role, node.clone(), facts, events)),
        )
        .await;
        for state in done {
            states.push(state?);
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, ready: Option<(&str, &str)>, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(NODE_ROLE_LABEL.to_string(), "storage".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|(status, msg)| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        reason: Some(
                            if status == "True" {
                                "KubeletReady"
                            } else {
                                "KubeletNotReady"
                            }
                            .into(),
                        ),
                        message: Some(msg.into()),
                        ..NodeCondition::default()
                    }]
                }),
                ..NodeStatus::default()
            }),
        }
    }

    fn expected(name: &str, role: Role) -> ExpectedNode {
        ExpectedNode {
            name: name.into(),
            role,
            private_ip: None,
        }
    }

    #[test]
    fn state_and_readiness() {
        let n = node(
            "a",
            Some((
                "False",
                "container runtime network not ready: cni plugin not initialized",
            )),
            vec![],
        );
        let s = node_state(&n);
        assert!(!s.ready);
        assert_eq!(s.role, Some(Role::Storage));
        assert!(s.reason.unwrap().contains("cni plugin not initialized"));
        assert!(node_state(&node("b", Some(("True", "ok")), vec![])).ready);
        assert!(!node_state(&node("c", None, vec![])).ready);
    }

    #[test]
    fn timeout_names_missing_and_not_ready_nodes_with_causes() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "lab-service-1".to_string(),
            node("lab-service-1", Some(("True", "ok")), vec![]),
        );
        nodes.insert(
            "lab-storage-1".to_string(),
            node("lab-storage-1", Some(("False", "cni plugin not initialized")), vec![]),
        );
        let exp = [
            expected("lab-service-1", Role::Service),
            expected("lab-storage-1", Role::Storage),
            expected("lab-edge-1", Role::Edge),
        ];
        let e = timeout_error(&exp, &nodes, Duration::from_secs(600), 6443, None).to_string();
        assert!(e.contains("2 of 3 nodes"), "{e}");
        assert!(e.contains("never registered: lab-edge-1"), "{e}");
        assert!(e.contains("join token and CA hash") && e.contains("port 6443"), "{e}");
        assert!(
            e.contains("lab-storage-1 (KubeletNotReady: cni plugin not initialized)"),
            "{e}"
        );
        assert!(!e.contains("lab-service-1"), "{e}");
    }

    #[test]
    fn fqdn_node_names_match() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "lab-edge-1.novalocal".to_string(),
            node("lab-edge-1.novalocal", Some(("True", "")), vec![]),
        );
        assert!(find(&nodes, "lab-edge-1").is_some());
        assert!(find(&nodes, "lab-edge").is_none());
    }

    #[test]
    fn labels_per_role() {
        let l = role_labels(Role::Storage, None);
        assert_eq!(l.get("node-role.kubernetes.io/storage").map(String::as_str), Some(""));
        assert_eq!(l.get(NODE_ROLE_LABEL).map(String::as_str), Some("storage"));
        assert!(!l.contains_key(EDGE_LABEL));
        assert_eq!(
            role_labels(Role::Edge, None).get(EDGE_LABEL).map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn labelled_nodes_need_no_update() {
        let mut n = node("s", None, vec![]);
        let want = role_labels(Role::Storage, None);
        assert!(!has_labels(&n, &want), "only vre.io/role is set at registration");
        n.metadata.labels = Some(want.clone());
        assert!(has_labels(&n, &want));
    }

    #[test]
    fn missing_storage_taint_is_found() {
        let want = required_taints(Role::Storage, None);
        assert_eq!(want.len(), 1);
        assert_eq!(missing_taints(&node("s", None, vec![]), &want), want);
        assert!(missing_taints(&node("s", None, want.clone()), &want).is_empty());
        assert!(required_taints(Role::Service, None).is_empty());
    }
}
