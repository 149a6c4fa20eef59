//! The control loops of a simulated cluster (kube-controller-manager,
//! kube-scheduler and the kubelets' pod handling, simplified): they read
//! the store's change events in batches, take one snapshot per batch and
//! reconcile only what the batch touched, so a change costs work
//! proportional to what it affects, not to the cluster size squared.

mod lifecycle;
mod scheduling;
mod services;
mod tokens;
mod volumes;
mod workloads;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::cluster::{CORE, Cluster, State, gr};
use super::selector::LabelSelector;
use super::store::Since;
use crate::SimConfig;

pub use lifecycle::{node_condition, pod_is_ready};
pub use volumes::{PV_PROTECTION, PVC_PROTECTION, default_class};
pub use workloads::disruption_budget;

/// The field manager names the controllers write with.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const SCHEDULER: &str = "kube-scheduler";
pub const KUBELET: &str = "kubelet";

/// Node addresses the cloud knows and the cluster does not (floating IPs),
/// for LoadBalancer Services; shared with the machine side.
#[derive(Debug, Default)]
pub struct EdgeAddresses {
    /// Node name -> public addresses.
    pub by_node: Mutex<BTreeMap<String, Vec<IpAddr>>>,
    /// Woken when the addresses change.
    pub changed: Notify,
}

/// What one batch of events asks the controllers to look at.
#[derive(Debug, Default)]
pub struct Dirty {
    pub full: bool,
    pub namespaces: BTreeSet<String>,
    pub deleted_uids: HashSet<String>,
    pub deployments: BTreeSet<(String, String)>,
    pub replicasets: BTreeSet<(String, String)>,
    pub statefulsets: BTreeSet<(String, String)>,
    pub daemonsets: BTreeSet<(String, String)>,
    pub jobs: BTreeSet<(String, String)>,
    /// All DaemonSets (a node changed).
    pub all_daemonsets: bool,
    /// Namespaces whose Services may need new endpoints.
    pub service_namespaces: BTreeSet<String>,
    pub services: BTreeSet<(String, String)>,
    pub load_balancers: bool,
    pub pdb_namespaces: BTreeSet<String>,
    pub volumes: bool,
    /// Pods may need scheduling or a kubelet.
    pub pods: bool,
    /// Nodes whose readiness changed.
    pub nodes: BTreeSet<String>,
    pub foreground: bool,
    /// A timer tick: time-based checks (taint eviction, job pods finishing,
    /// token expiry).
    pub tick: bool,
    /// Bootstrap token Secrets changed.
    pub tokens: bool,
}

impl Dirty {
    fn everything() -> Self {
        Dirty {
            full: true,
            all_daemonsets: true,
            load_balancers: true,
            volumes: true,
            pods: true,
            foreground: true,
            ..Default::default()
        }
    }

    fn is_empty(&self) -> bool {
        !self.full
            && self.namespaces.is_empty()
            && self.deleted_uids.is_empty()
            && self.deployments.is_empty()
            && self.replicasets.is_empty()
            && self.statefulsets.is_empty()
            && self.daemonsets.is_empty()
            && self.jobs.is_empty()
            && !self.all_daemonsets
            && self.service_namespaces.is_empty()
            && self.services.is_empty()
            && !self.load_balancers
            && self.pdb_namespaces.is_empty()
            && !self.volumes
            && !self.pods
            && self.nodes.is_empty()
            && !self.foreground
            && !self.tick
            && !self.tokens
    }
}

fn ns_name(obj: &Value) -> (String, String) {
    (
        obj.at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        obj.at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// `Value::pointer` without its per-token allocations: the control loops
/// read a handful of fields of every pod and node on every pass, and at
/// thousands of objects the allocations were most of the simulator's CPU.
pub trait At {
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() || pointer.contains('~') {
            return self.pointer(pointer);
        }
        let rest = pointer.strip_prefix('/')?;
        rest.split('/').try_fold(self, |v, token| match v {
            Value::Object(m) => m.get(token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
    }
}

/// The controller owner (`controller: true` ownerReference) of an object.
pub fn controller_of(obj: &Value) -> Option<(&str, &str, &str)> {
    obj.at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|r| {
            if r.get("controller").and_then(Value::as_bool) != Some(true) {
                return None;
            }
            Some((
                r.get("kind")?.as_str()?,
                r.get("name")?.as_str()?,
                r.get("uid")?.as_str()?,
            ))
        })
}

fn mark(d: &mut Dirty, resource: &str, group: &str, obj: &Value, previous: Option<&Value>, deleted: bool) {
    let (ns, name) = ns_name(obj);
    if deleted && let Some(uid) = obj.at("/metadata/uid").and_then(Value::as_str) {
        d.deleted_uids.insert(uid.to_string());
    }
    if obj.at("/metadata/deletionTimestamp").is_some() {
        d.foreground = true;
    }
    let owner = |d: &mut Dirty, o: &Value| {
        if let Some((kind, oname, _)) = controller_of(o) {
            let key = (ns.clone(), oname.to_string());
            match kind {
                "ReplicaSet" => {
                    d.replicasets.insert(key);
                }
                "Deployment" => {
                    d.deployments.insert(key);
                }
                "DaemonSet" => {
                    d.daemonsets.insert(key);
                }
                "StatefulSet" => {
                    d.statefulsets.insert(key);
                }
                "Job" => {
                    d.jobs.insert(key);
                }
                _ => {}
            }
        }
    };
    match (group, resource) {
        ("", "namespaces") => {
            d.namespaces.insert(name);
        }
        ("", "nodes") => {
            let ready_now = node_condition(obj, "Ready").map(str::to_string);
            let ready_before = previous.and_then(|p| node_condition(p, "Ready")).map(str::to_string);
            if ready_now != ready_before || deleted || previous.is_none() {
                d.nodes.insert(name.clone());
            }
            d.all_daemonsets = true;
            d.pods = true;
            d.load_balancers = true;
            d.volumes = true;
        }
        ("", "pods") => {
            owner(d, obj);
            if let Some(p) = previous {
                owner(d, p);
            }
            d.service_namespaces.insert(ns.clone());
            d.pdb_namespaces.insert(ns);
            d.pods = true;
            d.volumes = true;
        }
        ("apps", "deployments") => {
            d.deployments.insert((ns, name));
        }
        ("apps", "replicasets") => {
            owner(d, obj);
            d.replicasets.insert((ns, name));
        }
        ("apps", "daemonsets") => {
            d.daemonsets.insert((ns, name));
        }
        ("apps", "statefulsets") => {
            d.statefulsets.insert((ns, name));
        }
        ("batch", "jobs") => {
            d.jobs.insert((ns, name));
        }
        ("", "services") => {
            d.services.insert((ns, name));
        }
        ("", "secrets") if ns == "kube-system" => {
            d.tokens = true;
        }
        ("policy", "poddisruptionbudgets") => {
            d.pdb_namespaces.insert(ns);
        }
        ("", "persistentvolumeclaims") | ("", "persistentvolumes") | ("storage.k8s.io", "storageclasses") => {
            d.volumes = true;
            d.pods = true;
        }
        _ => {}
    }
}

/// The objects one batch works on, taken under the lock once.
pub struct Snapshot {
    pub nodes: Vec<Arc<Value>>,
    pub pods: Vec<Arc<Value>>,
    pub edge: BTreeMap<String, Vec<IpAddr>>,
}

impl Snapshot {
    fn take(st: &State, edge: &EdgeAddresses) -> Self {
        Snapshot {
            nodes: st
                .store
                .list(&gr(CORE, "nodes"), None)
                .map(|(_, o)| o.clone())
                .collect(),
            pods: st.store.list(&gr(CORE, "pods"), None).map(|(_, o)| o.clone()).collect(),
            edge: edge.by_node.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }

    /// Pods by the uid of their controller.
    pub fn pods_by_owner(&self) -> HashMap<&str, Vec<&Arc<Value>>> {
        let mut m: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
        for p in &self.pods {
            if let Some((_, _, uid)) = controller_of(p) {
                m.entry(uid).or_default().push(p);
            }
        }
        m
    }
}

/// Objects of one collection, read under the lock.
pub fn list_of(cluster: &Cluster, group: &str, resource: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
    cluster
        .lock()
        .store
        .list(&gr(group, resource), ns)
        .map(|(_, o)| o.clone())
        .collect()
}

pub fn get_of(cluster: &Cluster, group: &str, resource: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
    cluster.lock().store.get(&gr(group, resource), ns, name).cloned()
}

/// Logs a controller write that failed (the next batch retries).
pub fn log_err<T>(what: &str, r: Result<T, super::status::ApiError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(target: "vre_sim::kube", "controller: {what}: {e}");
            None
        }
    }
}

/// An ownerReference to `owner` as its controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The hash Kubernetes writes as `pod-template-hash` /
/// `controller-revision-hash`: FNV-1a (32 bits) of the template, its
/// decimal digits mapped onto the apiserver's "safe" alphabet (as
/// `rand.SafeEncodeString` does).
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in super::fieldset::canonical_json(template).bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A label selector object, or one that matches nothing.
pub fn selector(obj: &Value, pointer: &str) -> LabelSelector {
    LabelSelector::from_object(obj.pointer(pointer)).unwrap_or(LabelSelector {
        requirements: Vec::new(),
        nothing: true,
    })
}

/// How often every object is reconciled, changed or not (wall clock).
const FULL_RESYNC: Duration = Duration::from_secs(30);

/// Runs the control loops of a cluster until `shutdown` turns true.
pub async fn run(
    cluster: Arc<Cluster>,
    config: Arc<SimConfig>,
    edge: Arc<EdgeAddresses>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut changes, mut cursor) = {
        let st = cluster.lock();
        (st.store.subscribe(), st.store.resource_version())
    };
    let tick = config
        .scaled(Duration::from_secs(5))
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Dirty::everything();
    let mut last_resync = tokio::time::Instant::now();
    loop {
        if !pending.is_empty() {
            reconcile(&cluster, &config, &edge, &pending).await;
        }
        pending = Dirty::default();
        tokio::select! {
            // A dropped sender (the registry is gone) stops the loop too.
            r = shutdown.changed() => { if r.is_err() { return; } }
            r = changes.changed() => { if r.is_err() { return; } }
            _ = edge.changed.notified() => { pending.load_balancers = true; }
            _ = ticker.tick() => {
                pending.tick = true;
                if last_resync.elapsed() >= FULL_RESYNC {
                    last_resync = tokio::time::Instant::now();
                    pending = Dirty::everything();
                }
            }
        }
        if *shutdown.borrow() || cluster.is_stopped() {
            return;
        }
        // Let a burst of writes settle into one batch.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let st = cluster.lock();
        match st.store.since(cursor) {
            Since::Expired { .. } => pending = Dirty::everything(),
            Since::Events(events) => {
                for e in events {
                    mark(
                        &mut pending,
                        &e.resource.resource,
                        &e.resource.group,
                        &e.object,
                        e.previous.as_deref(),
                        e.kind == super::store::EventType::Deleted,
                    );
                }
            }
        }
        cursor = st.store.resource_version();
    }
}

/// A pod the scheduler or its kubelet still has to act on.
fn pod_unsettled(pod: &Value) -> bool {
    let placed = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod.at("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    !placed || phase == "Pending" || pod.at("/metadata/deletionTimestamp").is_some()
}

async fn reconcile(cluster: &Arc<Cluster>, config: &SimConfig, edge: &EdgeAddresses, d: &Dirty) {
    let snap = {
        let st = cluster.lock();
        Snapshot::take(&st, edge)
    };
    lifecycle::namespaces(cluster, d);
    lifecycle::garbage_collect(cluster, d);
    // A tick re-runs the time-driven loops only when something waits on
    // time: pods not yet placed, started or gone, NoExecute taints counting
    // down. Every change in the store wakes them anyway, and with thousands
    // of settled pods an idle pass was most of the simulator's CPU.
    let tick_nodes = d.tick
        && snap
            .nodes
            .iter()
            .any(|n| lifecycle::no_execute_taints(n).next().is_some());
    let tick_pods = d.tick && snap.pods.iter().any(|p| pod_unsettled(p));
    if !d.nodes.is_empty() || d.full || tick_nodes {
        lifecycle::nodes(cluster, config, &snap, d);
    }
    workloads::deployments(cluster, d);
    workloads::replicasets(cluster, &snap, d);
    workloads::statefulsets(cluster, &snap, d);
    workloads::daemonsets(cluster, &snap, d);
    workloads::jobs(cluster, &snap, d);
    if d.volumes || d.full {
        volumes::reconcile(cluster, &snap);
    }
    if d.pods || d.full || tick_pods {
        scheduling::schedule(cluster, &snap);
        lifecycle::kubelets(cluster, &snap);
    }
    services::reconcile(cluster, &snap, d);
    if d.tokens || d.tick || d.full {
        tokens::reconcile(cluster);
    }
    workloads::disruption_budgets(cluster, &snap, d);
    tokio::task::yield_now().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_reads_as_value_pointer_does() {
        let v = json!({"a": {"b": [1, {"c/d": 2, "e~f": 3, "": 4}]}, "x": null});
        for p in [
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1",
            "/a/b/2",
            "/a/b/x",
            "/a/b/1/c~1d",
            "/a/b/1/e~0f",
            "/a/b/1/",
            "/x",
            "/x/y",
            "/nope",
            "a",
        ] {
            assert_eq!(v.at(p), v.pointer(p), "{p}");
        }
    }

    #[test]
    fn settled_pods_need_no_tick() {
        let running = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        assert!(!pod_unsettled(&running));
        assert!(pod_unsettled(&json!({"spec": {}})));
        assert!(pod_unsettled(
            &json!({"spec": {"nodeName": "n"}, "status": {"phase": "Pending"}})
        ));
        assert!(pod_unsettled(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}})
        ));
    }

    #[test]
    fn template_hash_is_stable_and_safe() {
        let a = template_hash(&json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(a, template_hash(&json!({"spec": {"containers": [{"name": "a"}]}})));
        assert_ne!(a, template_hash(&json!({"spec": {"containers": [{"name": "b"}]}})));
        assert!(a.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }
}
