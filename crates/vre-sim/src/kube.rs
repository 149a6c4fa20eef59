//! The Kubernetes side of the simulator: a registry of simulated clusters,
//! each with a real Kubernetes API server (HTTPS on 127.0.0.1) that
//! `kube`-rs and `kubectl` use as they would a kube-apiserver.
//!
//! The cloud tells [`Clusters`] about machines through [`MachineEvents`]:
//! - a machine whose `#cloud-config` runs `kubeadm init` brings up a cluster
//!   after `join_time`: its API server serves with a certificate signed by
//!   the CA from the user data's `ca.crt`/`ca.key`, the bootstrap tokens are
//!   stored as `bootstrap-token-<id>` Secrets, `cluster-info` is signed with
//!   them, and the master's Node registers (Ready after `ready_time`);
//! - a machine that runs `kubeadm join` registers its Node after
//!   `join_time` if the join would succeed for real (the endpoint is a
//!   master's address, the token signs `cluster-info` and authenticates,
//!   one `caCertHashes` pin matches the CA, the kubelet's `--node-labels`
//!   pass NodeRestriction), else the reason is kept in
//!   [`Clusters::join_failures`];
//! - a deleted machine's Node turns NotReady (Unknown) like a vanished
//!   kubelet; a deleted master stops its cluster;
//! - a cloud started on saved state lists its booted machines first
//!   ([`MachineEvents::resync`]): one never recorded here (it booted while
//!   the simulator shut down) runs its user data, one recorded here but no
//!   longer in the cloud is deleted.
//!
//! Each API server offers discovery, CRUD for every built-in kind and for
//! CRD-defined kinds, watch, merge/JSON/strategic patches, server-side
//! apply with managedFields and conflicts, Table output, RBAC, and simple
//! controllers (DaemonSet, Deployment, StatefulSet, Job, volumes, Service
//! endpoints and load balancers, garbage collection, namespaces). The
//! [`SimConfig`] latency, jitter and rate limit apply to every call, which
//! [`SimStats::kube`] counts.
//!
//! [`Clusters::shutdown`] stops everything and saves the state; dropping the
//! registry without it stops the servers and controllers without saving.
//!
//! Not simulated: container logs, exec, attach, port-forward and proxies
//! (404); admission webhooks (stored, never called); protobuf answers
//! (requests in protobuf are understood for the kinds kubectl's typed
//! clients send, answers are JSON); aggregated discovery (clients fall back
//! to the per-group documents); OpenAPI schemas (the v3 documents list the
//! PATCH operations kubectl checks for server-side field validation; the v2
//! document, in JSON or protobuf, has no definitions, so kubectl validates
//! nothing client-side);
//! Events; periodic kubelet heartbeats (conditions carry the time of the
//! last status change); a node waiting for a CNI before turning Ready.

mod admission;
mod apply;
mod auth;
mod bootstrap;
mod catalog;
mod clock;
mod cluster;
mod controllers;
mod crd_schema;
mod fieldset;
mod kubeadm;
mod openapi;
mod patch;
mod persist;
mod pki;
mod protobuf;
mod registry;
mod schema;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::sync::watch as signal;

use crate::{Machine, MachineEvents, SimConfig, SimStats};
use bootstrap::{InitPlan, JoinPlan, Plan};
use cluster::{Cidr, Cluster, ClusterMeta};
use controllers::{CONTROLLER_MANAGER, EdgeAddresses, KUBELET};
use persist::{ClusterFile, MachineRecord, MachinesFile, Phase};

pub use persist::JoinFailure;

/// How long `kubeadm join` keeps retrying discovery when its configuration
/// sets no `discovery.timeout` (kubeadm's default), in simulated time.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long after a kubelet stops the node controller marks its Node
/// Unknown (`--node-monitor-grace-period`), in simulated time.
const NODE_MONITOR_GRACE: Duration = Duration::from_secs(40);
/// How often pending joins retry discovery, in simulated time.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);
/// How often cluster state is saved when it changed (wall clock).
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A running cluster, as [`Clusters::clusters`] lists it.
#[derive(Clone)]
pub struct ClusterInfo {
    /// The id of its master machine (clusters are keyed by it).
    pub id: String,
    /// `ClusterConfiguration.clusterName`.
    pub name: String,
    pub project_id: String,
    /// The master machine's name.
    pub master: String,
    /// Where its API server listens (`127.0.0.1:<port>`).
    pub endpoint: SocketAddr,
    /// The cluster CA certificate (PEM): verifies the serving certificate.
    pub ca_cert_pem: String,
    /// A bearer token bound to `cluster-admin` (for tests and tools).
    pub admin_token: String,
    pub kubernetes_version: String,
    pub master_private_ip: Option<Ipv4Addr>,
    pub master_public_ips: Vec<IpAddr>,
}

impl std::fmt::Debug for ClusterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("project_id", &self.project_id)
            .field("master", &self.master)
            .field("endpoint", &self.endpoint)
            .field("kubernetes_version", &self.kubernetes_version)
            .field("master_private_ip", &self.master_private_ip)
            .field("master_public_ips", &self.master_public_ips)
            .field("admin_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ClusterInfo {
    /// A kubeconfig for this cluster that authenticates with the admin
    /// token (the server is the loopback endpoint; the CA is embedded).
    pub fn admin_kubeconfig(&self) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_cert_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: https://{ep}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {name}-admin\n  context:\n    cluster: {name}\n    user: {name}-admin\ncurrent-context: {name}-admin\nusers:\n- name: {name}-admin\n  user:\n    token: {token}\n",
            name = self.name,
            ep = self.endpoint,
            token = self.admin_token,
        )
    }
}

struct Running {
    cluster: Arc<Cluster>,
    server: Option<server::ApiServer>,
    controllers: Option<(signal::Sender<bool>, tokio::task::JoinHandle<()>)>,
    edge: Arc<EdgeAddresses>,
    port: u16,
    private_ip: Option<Ipv4Addr>,
    public_ips: Vec<IpAddr>,
    next_pod_cidr: u32,
    saved_rv: Option<u64>,
}

impl Running {
    fn info(&self) -> ClusterInfo {
        let m = &self.cluster.meta;
        ClusterInfo {
            id: m.id.clone(),
            name: m.name.clone(),
            project_id: m.project_id.clone(),
            master: m.master_name.clone(),
            endpoint: SocketAddr::from(([127, 0, 0, 1], self.port)),
            ca_cert_pem: m.ca_cert_pem.clone(),
            admin_token: m.admin_token.clone(),
            kubernetes_version: m.kubernetes_version.clone(),
            master_private_ip: self.private_ip,
            master_public_ips: self.public_ips.clone(),
        }
    }

    fn answers_on(&self, ip: IpAddr) -> bool {
        self.private_ip.map(IpAddr::V4) == Some(ip) || self.public_ips.contains(&ip)
    }
}

struct Registry {
    clusters: BTreeMap<String, Running>,
    machines: BTreeMap<String, MachineRecord>,
    failures: Vec<JoinFailure>,
    rng: fastrand::Rng,
    dirty: bool,
}

/// The simulated clusters (see the module documentation).
pub struct Clusters {
    config: Arc<SimConfig>,
    stats: Arc<SimStats>,
    state_dir: Option<PathBuf>,
    runtime: Option<Handle>,
    me: Weak<Clusters>,
    inner: Mutex<Registry>,
    stop: signal::Sender<bool>,
    saver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Clusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clusters")
            .field("state_dir", &self.state_dir)
            .field("clusters", &self.clusters())
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    for x in b.iter_mut() {
        *x = fastrand::u8(..);
    }
    hex::encode(b)
}

impl Clusters {
    /// The cluster registry. Call it within a Tokio runtime: it spawns the
    /// API servers and controllers of clusters reloaded from `state_dir`
    /// (each on its former port when that is free) and a task that saves
    /// changed clusters there once a second. Without a state directory
    /// nothing is saved.
    pub fn new(config: Arc<SimConfig>, stats: Arc<SimStats>, state_dir: Option<PathBuf>) -> Arc<Clusters> {
        let runtime = Handle::try_current().ok();
        if runtime.is_none() {
            tracing::error!(target: "vre_sim::kube", "Clusters::new was called outside a Tokio runtime: no cluster can start");
        }
        let (stop, _) = signal::channel(false);
        let seed = config.seed;
        let this = Arc::new_cyclic(|me| Clusters {
            config,
            stats,
            state_dir,
            runtime,
            me: me.clone(),
            inner: Mutex::new(Registry {
                clusters: BTreeMap::new(),
                machines: BTreeMap::new(),
                failures: Vec::new(),
                rng: fastrand::Rng::with_seed(seed ^ 0x6b75_6265),
                dirty: false,
            }),
            stop,
            saver: Mutex::new(None),
        });
        if this.runtime.is_some() {
            this.reload();
            this.start_saver();
        }
        this
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loopback address of the API server that answers for a master's
    /// private or public IP (what "the master's :6443" means in the sim).
    pub fn endpoint_for(&self, ip: IpAddr) -> Option<SocketAddr> {
        self.cluster_for(ip).map(|c| c.endpoint)
    }

    /// The cluster whose master has this private or public IP.
    pub fn cluster_for(&self, ip: IpAddr) -> Option<ClusterInfo> {
        let reg = self.lock();
        // Public addresses are unique; private ones only within a project.
        reg.clusters
            .values()
            .find(|r| r.public_ips.contains(&ip))
            .or_else(|| reg.clusters.values().find(|r| r.answers_on(ip)))
            .map(Running::info)
    }

    /// Every running cluster.
    pub fn clusters(&self) -> Vec<ClusterInfo> {
        self.lock().clusters.values().map(Running::info).collect()
    }

    /// Why machines never joined (or never brought a cluster up), oldest first.
    pub fn join_failures(&self) -> Vec<JoinFailure> {
        self.lock().failures.clone()
    }

    /// One object of a cluster, as stored (tests and diagnostics).
    pub fn object(&self, cluster_id: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let c = self.cluster_handle(cluster_id)?;
        let st = c.lock();
        st.store
            .get(&cluster::gr(group, resource), namespace, name)
            .map(|o| (**o).clone())
    }

    /// The objects of a collection (`namespace` `None`: all namespaces).
    pub fn objects(&self, cluster_id: &str, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(c) = self.cluster_handle(cluster_id) else {
            return Vec::new();
        };
        let st = c.lock();
        st.store
            .list(&cluster::gr(group, resource), namespace)
            .map(|(_, o)| (**o).clone())
            .collect()
    }

    /// The `sha256:<hex>` CA pin of a cluster (what joins must present).
    pub fn ca_pin(&self, cluster_id: &str) -> Option<String> {
        self.cluster_handle(cluster_id)
            .and_then(|c| pki::pem_pin(&c.meta.ca_cert_pem))
    }

    fn cluster_handle(&self, cluster_id: &str) -> Option<Arc<Cluster>> {
        self.lock().clusters.get(cluster_id).map(|r| r.cluster.clone())
    }

    /// Stops every API server, controller and pending timer, and saves the
    /// state (when there is a state directory).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let saver = self.saver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = saver {
            s.abort();
            let _ = s.await;
        }
        self.save(true);
        let running: Vec<Running> = std::mem::take(&mut self.lock().clusters).into_values().collect();
        for r in running {
            stop_running(r).await;
        }
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(rt) = &self.runtime {
            rt.spawn(fut);
        }
    }

    /// Runs `f` after a simulated delay, unless the registry shuts down.
    fn after(&self, delay: Duration, f: impl FnOnce(Arc<Clusters>) + Send + 'static) {
        let me = self.me.clone();
        let mut stop = self.stop.subscribe();
        let wait = self.config.scaled(delay);
        self.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    if let Some(c) = me.upgrade() {
                        f(c);
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }

    fn fail(&self, machine: &Machine, cluster: Option<&str>, reason: String) {
        tracing::warn!(target: "vre_sim::kube", "machine {} ({}): {reason}", machine.name, machine.id);
        let mut reg = self.lock();
        reg.failures.push(JoinFailure {
            machine_id: machine.id.clone(),
            machine_name: machine.name.clone(),
            cluster: cluster.map(str::to_string),
            reason,
            at: clock::now_rfc3339(),
        });
        if let Some(r) = reg.machines.get_mut(&machine.id) {
            r.phase = Phase::Failed;
            r.machine.user_data = None;
        }
        reg.dirty = true;
    }

    fn record(&self, machine: &Machine, master: bool) {
        let mut reg = self.lock();
        reg.machines.insert(
            machine.id.clone(),
            MachineRecord {
                machine: machine.clone(),
                master,
                cluster: None,
                node: None,
                phase: Phase::Pending,
            },
        );
        reg.dirty = true;
    }

    /// The pending record of a machine (None once deleted or done).
    fn pending(&self, id: &str) -> Option<MachineRecord> {
        self.lock()
            .machines
            .get(id)
            .filter(|r| r.phase == Phase::Pending)
            .cloned()
    }

    fn start_plan(&self, machine: &Machine) {
        // shutting down: the saved state no longer changes, and the next
        // start hears of this boot again (`resync`)
        if *self.stop.borrow() {
            return;
        }
        // cloud-init runs user data once per instance: a machine already
        // seen (booted again, or resumed after a restart) only refreshes
        // its addresses.
        let known = {
            let reg = self.lock();
            reg.machines.contains_key(&machine.id) || reg.clusters.contains_key(&machine.id)
        };
        if known {
            return self.addresses(machine);
        }
        tracing::info!(target: "vre_sim::kube", "machine {} ({}) boots and runs its user data", machine.name, machine.id);
        let plan = match machine.user_data.as_deref().map(bootstrap::plan) {
            None | Some(Ok(None)) => return,
            Some(Err(reason)) => {
                self.record(machine, false);
                return self.fail(machine, None, reason);
            }
            Some(Ok(Some(p))) => p,
        };
        if self.runtime.is_none() {
            return self.fail(machine, None, "the simulator runs without a Tokio runtime".into());
        }
        match plan {
            Plan::Init(_) => {
                self.record(machine, true);
                let id = machine.id.clone();
                self.after(self.config.join_time, move |c| c.init_master(&id));
            }
            Plan::Join(p) => {
                self.record(machine, false);
                let never = {
                    let mut reg = self.lock();
                    let roll = reg.rng.f64();
                    roll < self.config.never_join_rate
                };
                if never {
                    return self.fail(
                        machine,
                        None,
                        format!(
                            "kubeadm join to {} never completed (simulated fault: never_join_rate)",
                            p.api_server_endpoint
                        ),
                    );
                }
                let id = machine.id.clone();
                let timeout = p.discovery_timeout.unwrap_or(DISCOVERY_TIMEOUT);
                let deadline = tokio::time::Instant::now() + self.config.scaled(self.config.join_time + timeout);
                self.after(self.config.join_time, move |c| c.join(&id, deadline));
            }
        }
    }

    /// `kubeadm init` finishes: the control plane comes up.
    fn init_master(&self, id: &str) {
        let Some(rec) = self.pending(id) else { return };
        let machine = rec.machine.clone();
        let Some(Ok(Some(Plan::Init(plan)))) = machine.user_data.as_deref().map(bootstrap::plan) else {
            return;
        };
        if let Err(reason) = self.bring_up(&machine, &plan) {
            self.fail(&machine, Some(id), reason);
        }
    }

    fn bring_up(&self, machine: &Machine, plan: &InitPlan) -> Result<(), String> {
        pki::ClusterCa::from_pem(&plan.ca_cert_pem, &plan.ca_key_pem).map_err(|e| format!("kubeadm init: {e}"))?;
        let node_name = plan.node.name.clone().unwrap_or_else(|| machine.name.to_lowercase());
        if let Some(v) = bootstrap::node_restriction_violation(&plan.node.labels) {
            return Err(format!("kubeadm init: waiting for the kubelet timed out: {v}"));
        }
        if plan.pod_subnet.as_deref().is_some_and(|p| Cidr::parse(p).is_none()) {
            return Err(format!(
                "kubeadm init: networking.podSubnet {:?} is not a valid IPv4 CIDR",
                plan.pod_subnet.clone().unwrap_or_default()
            ));
        }
        if Cidr::parse(&plan.service_subnet).is_none() {
            return Err(format!(
                "kubeadm init: networking.serviceSubnet {:?} is not a valid IPv4 CIDR",
                plan.service_subnet
            ));
        }
        let advertise = plan
            .advertise_address
            .clone()
            .or_else(|| machine.private_ip.map(|ip| ip.to_string()))
            .unwrap_or_else(|| "127.0.0.1".into());
        let meta = ClusterMeta {
            id: machine.id.clone(),
            name: plan.cluster_name.clone(),
            project_id: machine.project_id.clone(),
            master_name: machine.name.clone(),
            master_node: node_name.clone(),
            kubernetes_version: plan.kubernetes_version.clone(),
            pod_subnet: plan.pod_subnet.clone(),
            service_subnet: plan.service_subnet.clone(),
            dns_domain: plan.dns_domain.clone(),
            control_plane_endpoint: plan.control_plane_endpoint.clone(),
            cert_sans: plan.cert_sans.clone(),
            ca_cert_pem: plan.ca_cert_pem.clone(),
            ca_key_pem: plan.ca_key_pem.clone(),
            admin_token: random_token(),
            bind_port: plan.bind_port,
            advertise_address: advertise.clone(),
        };
        let cluster = Arc::new(Cluster::new(meta));
        let dns = kubeadm::dns_ip(cluster.service_cidr());
        let seeds = kubeadm::init_objects(plan, &cluster.meta, &advertise, &dns);
        cluster.seed(&seeds);
        let mut running = self.launch(cluster.clone(), 0, machine.private_ip, machine.public_ips.clone(), 0)?;
        {
            let mut reg = self.lock();
            // Addresses may have changed while the control plane came up
            // (a floating IP associated): the record has the current ones.
            match reg.machines.get(&machine.id) {
                Some(rec) => {
                    running.public_ips = rec.machine.public_ips.clone();
                    running.private_ip = rec.machine.private_ip.or(running.private_ip);
                }
                None => {
                    drop(reg);
                    self.spawn(stop_running(running));
                    return Err("the machine was deleted while kubeadm init ran".into());
                }
            }
            reg.clusters.insert(machine.id.clone(), running);
            reg.dirty = true;
        }
        tracing::info!(target: "vre_sim::kube", "cluster {} ({}) is up for master {}", cluster.meta.name, machine.id, machine.name);
        self.register_node(&cluster.meta.id, machine, &node_name, &plan.node, true, plan.max_pods)
    }

    /// Starts the API server and controllers of a cluster.
    fn launch(
        &self,
        cluster: Arc<Cluster>,
        port: u16,
        private_ip: Option<Ipv4Addr>,
        public_ips: Vec<IpAddr>,
        next_pod_cidr: u32,
    ) -> Result<Running, String> {
        let meta = &cluster.meta;
        let ca =
            pki::ClusterCa::from_pem(&meta.ca_cert_pem, &meta.ca_key_pem).map_err(|e| format!("kubeadm init: {e}"))?;
        let mut ips: Vec<IpAddr> = public_ips.clone();
        if let Some(p) = private_ip {
            ips.push(IpAddr::V4(p));
        }
        if let Ok(a) = meta.advertise_address.parse::<IpAddr>() {
            ips.push(a);
        }
        let sans = kubeadm::serving_sans(meta, &meta.master_node, &ips, cluster.kubernetes_service_ip());
        let tls = pki::server_config(&ca, &sans).map_err(|e| format!("kubeadm init: {e}"))?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let advertise = format!("{}:{}", meta.advertise_address, meta.bind_port);
        let ctx = Arc::new(server::ServerContext::new(
            cluster.clone(),
            self.config.clone(),
            self.stats.clone(),
            advertise,
        ));
        let _guard = self.runtime.as_ref().map(Handle::enter);
        let api = server::start(ctx, listener, tls).map_err(|e| format!("cannot serve the API: {e}"))?;
        let port = api.addr.port();
        let edge = Arc::new(EdgeAddresses::default());
        let (tx, rx) = signal::channel(false);
        let handle = tokio::spawn(controllers::run(cluster.clone(), self.config.clone(), edge.clone(), rx));
        Ok(Running {
            cluster,
            server: Some(api),
            controllers: Some((tx, handle)),
            edge,
            port,
            private_ip,
            public_ips,
            next_pod_cidr,
            saved_rv: None,
        })
    }

    /// A kubelet registers its Node (NotReady), then reports Ready.
    fn register_node(
        &self,
        cluster_id: &str,
        machine: &Machine,
        node_name: &str,
        reg: &bootstrap::NodeRegistration,
        control_plane: bool,
        max_pods: Option<u64>,
    ) -> Result<(), String> {
        let (cluster, edge, pod_cidr) = {
            let mut r = self.lock();
            let Some(run) = r.clusters.get_mut(cluster_id) else {
                return Err("the cluster stopped before the node registered".into());
            };
            let pod_cidr = run
                .cluster
                .meta
                .pod_subnet
                .as_deref()
                .and_then(Cidr::parse)
                .and_then(|c| {
                    let idx = run.next_pod_cidr;
                    // /24 per node, as kube-controller-manager's default node-cidr-mask-size.
                    let mask = 24u8.max(c.prefix);
                    let per = 1u64 << (32 - mask);
                    ((idx as u64 + 1) * per <= c.size()).then(|| Cidr {
                        base: c.base + idx * per as u32,
                        prefix: mask,
                    })
                });
            if pod_cidr.is_some() {
                run.next_pod_cidr += 1;
            }
            (run.cluster.clone(), run.edge.clone(), pod_cidr)
        };
        let spec = kubeadm::NodeSpec {
            name: node_name,
            ip: machine.private_ip,
            machine_id: &machine.id,
            registration: reg,
            control_plane,
            kubernetes_version: &cluster.meta.kubernetes_version,
            pod_cidr,
            max_pods: max_pods.unwrap_or(110),
        };
        let node = kubeadm::node_object(&spec);
        // A kubelet re-registering replaces a stale Node of the same name.
        let _ = cluster.delete_system(
            ("", "nodes"),
            "",
            node_name,
            &registry::DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        );
        cluster
            .create_system(("", "nodes"), node, KUBELET)
            .map_err(|e| format!("the kubelet could not register node {node_name}: {e}"))?;
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": node_name, "namespace": "kube-node-lease",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                    "uid": cluster.lock().store.get(&cluster::gr("", "nodes"), "", node_name).and_then(|n| n.pointer("/metadata/uid").cloned()).unwrap_or(Value::Null)}]},
            "spec": {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": clock::now_micro()},
        });
        let _ = cluster.delete_system(
            ("coordination.k8s.io", "leases"),
            "kube-node-lease",
            node_name,
            &registry::DeleteOptions::default(),
        );
        if let Err(e) = cluster.create_system(("coordination.k8s.io", "leases"), lease, KUBELET) {
            tracing::debug!(target: "vre_sim::kube", "node lease for {node_name}: {e}");
        }
        {
            let mut r = self.lock();
            // the record's addresses, not the snapshot this join started
            // with: a floating IP associated meanwhile changed them
            // (none when the machine was deleted meanwhile)
            if let Some(rec) = r.machines.get_mut(&machine.id) {
                rec.cluster = Some(cluster_id.to_string());
                rec.node = Some(node_name.to_string());
                rec.phase = Phase::Registered;
                rec.machine.user_data = None;
                if let Ok(mut m) = edge.by_node.lock() {
                    m.insert(node_name.to_string(), rec.machine.public_ips.clone());
                }
            }
            r.dirty = true;
        }
        edge.changed.notify_one();
        let (cid, mid, node) = (cluster_id.to_string(), machine.id.clone(), node_name.to_string());
        self.after(self.config.ready_time, move |c| c.node_ready(&cid, &mid, &node));
        Ok(())
    }

    fn node_ready(&self, cluster_id: &str, machine_id: &str, node: &str) {
        let registered = self
            .lock()
            .machines
            .get(machine_id)
            .is_some_and(|r| r.phase == Phase::Registered);
        let Some(cluster) = self.cluster_handle(cluster_id) else {
            return;
        };
        if !registered {
            return;
        }
        let status = cluster.mutate(("", "nodes"), "", node, true, KUBELET, kubeadm::mark_ready);
        let spec = cluster.mutate(("", "nodes"), "", node, false, CONTROLLER_MANAGER, kubeadm::mark_ready);
        let _ = cluster.mutate(
            ("coordination.k8s.io", "leases"),
            "kube-node-lease",
            node,
            false,
            KUBELET,
            |l| {
                l["spec"]["renewTime"] = json!(clock::now_micro());
            },
        );
        if let (Err(e), _) | (_, Err(e)) = (&status, &spec) {
            tracing::warn!(target: "vre_sim::kube", "node {node} could not turn Ready: {e}");
            return;
        }
        let mut r = self.lock();
        if let Some(rec) = r.machines.get_mut(machine_id) {
            rec.phase = Phase::Ready;
        }
        r.dirty = true;
    }

    /// `kubeadm join`: discovery (retried until the discovery timeout),
    /// then the checks a real join makes, then the kubelet registers.
    fn join(&self, id: &str, deadline: tokio::time::Instant) {
        let Some(rec) = self.pending(id) else { return };
        let machine = rec.machine.clone();
        let Some(Ok(Some(Plan::Join(plan)))) = machine.user_data.as_deref().map(bootstrap::plan) else {
            return;
        };
        let found = self.find_endpoint(&machine, &plan);
        let (cluster_id, cluster) = match found {
            Ok(Some(c)) => c,
            Ok(None) => {
                if tokio::time::Instant::now() < deadline {
                    let id = id.to_string();
                    self.after(DISCOVERY_RETRY, move |c| c.join(&id, deadline));
                } else {
                    self.fail(
                        &machine,
                        None,
                        format!("kubeadm join: couldn't validate the identity of the API Server: Get \"https://{}/api/v1/namespaces/kube-public/configmaps/cluster-info\": no API server answers there (timed out)", plan.api_server_endpoint),
                    );
                }
                return;
            }
            Err(reason) => return self.fail(&machine, None, reason),
        };
        if let Err(reason) = kubeadm::verify_join(&cluster.lock(), &cluster.meta, &plan) {
            return self.fail(&machine, Some(&cluster_id), format!("kubeadm join: {reason}"));
        }
        if let Some(v) = bootstrap::node_restriction_violation(&plan.node.labels) {
            return self.fail(&machine, Some(&cluster_id), v);
        }
        let node_name = plan.node.name.clone().unwrap_or_else(|| machine.name.to_lowercase());
        let existing_ready = cluster
            .lock()
            .store
            .get(&cluster::gr("", "nodes"), "", &node_name)
            .is_some_and(|n| controllers::node_condition(n, "Ready") == Some("True"));
        if existing_ready {
            return self.fail(
                &machine,
                Some(&cluster_id),
                format!("kubeadm join: a Node with name \"{node_name}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"),
            );
        }
        if let Err(reason) = self.register_node(
            &cluster_id,
            &machine,
            &node_name,
            &plan.node,
            plan.control_plane,
            plan.max_pods,
        ) {
            self.fail(&machine, Some(&cluster_id), reason);
        }
    }

    /// The cluster a join's `apiServerEndpoint` reaches, if one answers there.
    fn find_endpoint(&self, machine: &Machine, plan: &JoinPlan) -> Result<Option<(String, Arc<Cluster>)>, String> {
        let ep = plan.api_server_endpoint.trim();
        let (host, port) = match ep.rsplit_once(':') {
            Some((h, p)) => (
                h.trim_matches(|c| c == '[' || c == ']'),
                p.parse::<u16>()
                    .map_err(|_| format!("kubeadm join: apiServerEndpoint {ep:?} has an invalid port"))?,
            ),
            None => (ep, 6443),
        };
        let reg = self.lock();
        let ip = host.parse::<IpAddr>().ok();
        let matches = |r: &Running| match ip {
            Some(ip) => r.answers_on(ip),
            None => r
                .cluster
                .meta
                .control_plane_endpoint
                .as_deref()
                .is_some_and(|e| e == host || e.starts_with(&format!("{host}:"))),
        };
        // Private addresses only reach masters of the same project.
        let found = reg.clusters.values().filter(|r| matches(r)).find(|r| {
            r.cluster.meta.project_id == machine.project_id || ip.is_some_and(|ip| r.public_ips.contains(&ip))
        });
        let Some(r) = found else { return Ok(None) };
        if port != r.cluster.meta.bind_port {
            return Err(format!(
                "kubeadm join: dial tcp {ep}: connect: connection refused (the API server listens on port {})",
                r.cluster.meta.bind_port
            ));
        }
        Ok(Some((r.cluster.meta.id.clone(), r.cluster.clone())))
    }

    /// A deleted machine: its kubelet is gone (Node Unknown after the grace
    /// period); a master takes its cluster down.
    fn machine_deleted(&self, machine: &Machine) {
        let (rec, running) = {
            let mut reg = self.lock();
            let rec = reg.machines.remove(&machine.id);
            let running = reg.clusters.remove(&machine.id);
            reg.dirty = true;
            (rec, running)
        };
        if let Some(r) = running {
            tracing::info!(target: "vre_sim::kube", "master {} deleted: cluster {} stops", machine.name, r.cluster.meta.name);
            if let Some(dir) = &self.state_dir {
                let _ = std::fs::remove_file(persist::cluster_path(dir, &r.cluster.meta.id));
            }
            self.spawn(stop_running(r));
            return;
        }
        let Some(rec) = rec else { return };
        let (Some(cid), Some(node)) = (rec.cluster, rec.node) else {
            return;
        };
        let edge = self.lock().clusters.get(&cid).map(|r| r.edge.clone());
        if let Some(edge) = edge {
            if let Ok(mut m) = edge.by_node.lock() {
                m.remove(&node);
            }
            edge.changed.notify_one();
        }
        self.after(NODE_MONITOR_GRACE, move |c| {
            let Some(cluster) = c.cluster_handle(&cid) else { return };
            let _ = cluster.mutate(
                ("", "nodes"),
                "",
                &node,
                true,
                CONTROLLER_MANAGER,
                kubeadm::mark_unreachable,
            );
            let _ = cluster.mutate(
                ("", "nodes"),
                "",
                &node,
                false,
                CONTROLLER_MANAGER,
                kubeadm::mark_unreachable,
            );
        });
    }

    fn addresses(&self, machine: &Machine) {
        let mut reg = self.lock();
        if let Some(r) = reg.clusters.get_mut(&machine.id) {
            r.public_ips = machine.public_ips.clone();
            r.private_ip = machine.private_ip.or(r.private_ip);
        }
        let target = reg.machines.get_mut(&machine.id).map(|rec| {
            rec.machine.public_ips = machine.public_ips.clone();
            rec.machine.private_ip = machine.private_ip;
            (rec.cluster.clone(), rec.node.clone())
        });
        if let Some((Some(cid), Some(node))) = target
            && let Some(r) = reg.clusters.get(&cid)
        {
            if let Ok(mut m) = r.edge.by_node.lock() {
                m.insert(node, machine.public_ips.clone());
            }
            r.edge.changed.notify_one();
        }
        reg.dirty = true;
    }

    /// Restores clusters and machines from the state directory.
    fn reload(&self) {
        let Some(dir) = self.state_dir.clone() else { return };
        let machines = persist::read_machines(&dir);
        {
            let mut reg = self.lock();
            reg.failures = machines.join_failures;
            for m in machines.machines {
                reg.machines.insert(m.machine.id.clone(), m);
            }
        }
        for f in persist::read_clusters(&dir) {
            let id = f.meta.id.clone();
            let cluster = Arc::new(Cluster::with_store(f.meta, store::Store::restore(f.store)));
            match self.launch(cluster, f.port, f.private_ip, f.public_ips, f.next_pod_cidr) {
                Ok(mut running) => {
                    running.saved_rv = Some(running.cluster.lock().store.resource_version());
                    let port = running.port;
                    if port != f.port {
                        tracing::warn!(target: "vre_sim::kube", "cluster {id}: port {} is taken; its API server now listens on {port}", f.port);
                    }
                    self.lock().clusters.insert(id, running);
                }
                Err(e) => tracing::warn!(target: "vre_sim::kube", "cluster {id}: cannot restart its API server: {e}"),
            }
        }
        // Resume what was in flight: bootstraps, and nodes on their way to Ready.
        let records: Vec<MachineRecord> = self.lock().machines.values().cloned().collect();
        for rec in records {
            match rec.phase {
                Phase::Pending => {
                    // kubeadm was still running: run it again.
                    let m = rec.machine.clone();
                    self.lock().machines.remove(&m.id);
                    self.start_plan(&m);
                }
                Phase::Registered => {
                    if let (Some(cid), Some(node)) = (rec.cluster.clone(), rec.node.clone()) {
                        let mid = rec.machine.id.clone();
                        self.after(self.config.ready_time, move |c| c.node_ready(&cid, &mid, &node));
                    }
                }
                Phase::Ready | Phase::Failed => {}
            }
            if let (Some(cid), Some(node)) = (&rec.cluster, &rec.node)
                && let Some(r) = self.lock().clusters.get(cid)
                && let Ok(mut m) = r.edge.by_node.lock()
            {
                m.insert(node.clone(), rec.machine.public_ips.clone());
            }
        }
    }

    fn start_saver(&self) {
        if self.state_dir.is_none() {
            return;
        }
        let me = self.me.clone();
        let mut stop = self.stop.subscribe();
        let handle = self.runtime.as_ref().map(|rt| {
            rt.spawn(async move {
                // at most one save in flight, and a large cluster's file
                // costs the simulator a bounded share of its CPU
                let mut pause = SAVE_INTERVAL;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => return,
                    }
                    let Some(c) = me.upgrade() else { return };
                    let started = std::time::Instant::now();
                    let _ = tokio::task::spawn_blocking(move || c.save(false)).await;
                    pause = SAVE_INTERVAL.max(crate::files::pause_after_save(started.elapsed()));
                }
            })
        });
        *self.saver.lock().unwrap_or_else(|p| p.into_inner()) = handle;
    }

    /// Writes changed clusters (all with `force`) and the machine file.
    /// The locks are held only to take snapshots (which share the stored
    /// objects); encoding and writing happen after.
    fn save(&self, force: bool) {
        let Some(dir) = &self.state_dir else { return };
        let mut files: Vec<(String, u64, ClusterFile)> = Vec::new();
        let machines = {
            let mut reg = self.lock();
            for (id, r) in reg.clusters.iter() {
                let (rv, snapshot) = {
                    let st = r.cluster.lock();
                    let rv = st.store.resource_version();
                    if !force && r.saved_rv == Some(rv) {
                        continue;
                    }
                    (rv, st.store.snapshot())
                };
                let file = ClusterFile {
                    format: persist::FORMAT,
                    meta: r.cluster.meta.clone(),
                    port: r.port,
                    private_ip: r.private_ip,
                    public_ips: r.public_ips.clone(),
                    next_pod_cidr: r.next_pod_cidr,
                    store: snapshot,
                };
                files.push((id.clone(), rv, file));
            }
            if force || reg.dirty {
                reg.dirty = false;
                Some(MachinesFile {
                    format: persist::FORMAT,
                    machines: reg.machines.values().cloned().collect(),
                    join_failures: reg.failures.clone(),
                })
            } else {
                None
            }
        };
        for (id, rv, file) in files {
            match persist::write_json_private(&persist::cluster_path(dir, &id), &file) {
                Ok(()) => {
                    if let Some(r) = self.lock().clusters.get_mut(&id) {
                        r.saved_rv = Some(rv);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "vre_sim::kube", "cluster {id}: cannot save its state in {}: {e}", dir.display())
                }
            }
        }
        if let Some(m) = machines
            && let Err(e) = persist::write_json_private(&persist::machines_path(dir), &m)
        {
            self.lock().dirty = true;
            tracing::warn!(target: "vre_sim::kube", "cannot save the machine state in {}: {e}", dir.display());
        }
    }
}

async fn stop_running(mut r: Running) {
    r.cluster.stop();
    if let Some((tx, handle)) = r.controllers.take() {
        let _ = tx.send(true);
        let _ = handle.await;
    }
    if let Some(s) = r.server.take() {
        s.stop().await;
    }
}

impl MachineEvents for Clusters {
    fn booted(&self, machine: &Machine) {
        self.start_plan(machine);
    }

    fn addresses_changed(&self, machine: &Machine) {
        self.addresses(machine);
    }

    fn deleted(&self, machine: &Machine) {
        self.machine_deleted(machine);
    }

    fn resync(&self, running: &[Machine]) {
        let live: std::collections::HashSet<&str> = running.iter().map(|m| m.id.as_str()).collect();
        let gone: Vec<Machine> = {
            let reg = self.lock();
            let mut gone: Vec<Machine> = reg
                .machines
                .values()
                .filter(|r| !live.contains(r.machine.id.as_str()))
                .map(|r| r.machine.clone())
                .collect();
            // a master whose record was not saved still runs its cluster
            gone.extend(
                reg.clusters
                    .iter()
                    .filter(|(id, _)| !live.contains(id.as_str()) && !reg.machines.contains_key(*id))
                    .map(|(id, r)| Machine {
                        id: id.clone(),
                        name: r.cluster.meta.master_name.clone(),
                        project_id: r.cluster.meta.project_id.clone(),
                        private_ip: r.private_ip,
                        public_ips: r.public_ips.clone(),
                        user_data: None,
                        metadata: BTreeMap::new(),
                    }),
            );
            gone
        };
        for m in &gone {
            tracing::info!(target: "vre_sim::kube", "machine {} ({}) was deleted around the last shutdown", m.name, m.id);
            self.machine_deleted(m);
        }
        for m in running {
            self.start_plan(m);
        }
    }
}
