//! The deployment engine: plan, apply (a DAG of idempotent steps, state
//! saved after each), destroy (by tag), scale (drain before delete), status.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::sync::watch;

use crate::dag::Dag;
use crate::dialer::{Dialer, DirectDialer};
use crate::error::{CloudError, Error, Result, Retry};
use crate::events::{Event, EventSink, PlanSummary, StepProgress};
use crate::microservice::{Dns, Endpoint, Microservice};
use crate::orchestrator::{BootstrapFacts, ClusterFacts, ExpectedNode, NodeFact, NodeState, Orchestrator};
use crate::plan::{self, Action, Plan, PlanItem};
use crate::provider::{
    Capabilities, CloudProvider, ClusterRef, InstanceBatch, InstanceRequest, NetworkInfo, NetworkRequest,
    PreflightRequest, SecurityGroupRequest, VolumeRequest,
};
use crate::resource::{CloudResource, KeyParts, ResourceKey, ResourceKind, ResourceStatus, attr};
use crate::retry::RetryPolicy;
use crate::spec::{ClusterSpec, Role};
use crate::state::{STATE_DIR, STATE_FILE, State, StateStore};

/// The Kubernetes API port on the master.
pub const API_PORT: u16 = 6443;

/// Output names written to the state and printed at the end of apply.
pub mod output {
    /// Path of the admin kubeconfig.
    pub const KUBECONFIG: &str = "kubeconfig";
    /// `https://host:port` of the API server as vre reaches it.
    pub const API_ENDPOINT: &str = "api_endpoint";
    /// The domain apps live under.
    pub const DOMAIN: &str = "domain";
    /// The master's private address.
    pub const MASTER_PRIVATE_IP: &str = "master_private_ip";
    /// The master's public address.
    pub const MASTER_PUBLIC_IP: &str = "master_public_ip";
    /// The cluster subnet.
    pub const NETWORK_CIDR: &str = "network_cidr";
    /// Prefix of an endpoint output (`endpoint/jupyter`).
    pub const ENDPOINT_PREFIX: &str = "endpoint/";
}

/// How much longer than one cloud call a step that waits on machines or the
/// cluster (boots, joins, rollouts) takes, for the DAG's choice of which
/// ready step gets a free slot first.
const WAITING_STEP_WEIGHT: u32 = 5;

/// One VRE: its spec and the parts that build it.
pub struct Deployment {
    spec: Arc<ClusterSpec>,
    dir: PathBuf,
    cluster: ClusterRef,
    provider: Arc<dyn CloudProvider>,
    orchestrator: Arc<dyn Orchestrator>,
    microservices: Vec<Arc<dyn Microservice>>,
    dns: Option<Arc<dyn Dns>>,
    events: EventSink,
    retry: RetryPolicy,
    public_key: String,
    cancel: Option<watch::Receiver<bool>>,
    dialer: Arc<dyn Dialer>,
    /// Ignored settings were reported (once per deployment: `vre apply`
    /// plans, then applies).
    warned: Arc<AtomicBool>,
}

/// Builds a [`Deployment`].
pub struct DeploymentBuilder {
    spec: ClusterSpec,
    dir: PathBuf,
    provider: Option<Arc<dyn CloudProvider>>,
    orchestrator: Option<Arc<dyn Orchestrator>>,
    microservices: Vec<Arc<dyn Microservice>>,
    dns: Option<Arc<dyn Dns>>,
    events: EventSink,
    retry: Option<RetryPolicy>,
    public_key: Option<String>,
    cancel: Option<watch::Receiver<bool>>,
    dialer: Option<Arc<dyn Dialer>>,
}

impl DeploymentBuilder {
    /// The cloud to build on (required).
    pub fn provider(mut self, p: Arc<dyn CloudProvider>) -> Self {
        self.provider = Some(p);
        self
    }
    /// The orchestrator nodes join (required).
    pub fn orchestrator(mut self, o: Arc<dyn Orchestrator>) -> Self {
        self.orchestrator = Some(o);
        self
    }
    /// Adds a microservice; those it depends on must be added before it.
    pub fn microservice(mut self, m: Arc<dyn Microservice>) -> Self {
        self.microservices.push(m);
        self
    }
    /// The DNS provider for the edge records (optional).
    pub fn dns(mut self, d: Arc<dyn Dns>) -> Self {
        self.dns = Some(d);
        self
    }
    /// Where progress events go (default: dropped).
    pub fn events(mut self, e: EventSink) -> Self {
        self.events = e;
        self
    }
    /// The retry policy for cloud calls (default: `engine.max_attempts` from the spec).
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = Some(r);
        self
    }
    /// The SSH public key text (default: the file `ssh.public_key` names).
    pub fn public_key(mut self, k: impl Into<String>) -> Self {
        self.public_key = Some(k.into());
        self
    }
    /// When the receiver turns true (Ctrl-C), no new step starts; running
    /// steps finish and are saved, then apply returns [`Error::Interrupted`].
    pub fn cancel(mut self, c: watch::Receiver<bool>) -> Self {
        self.cancel = Some(c);
        self
    }
    /// How vre reaches addresses inside the cloud (default: directly); take
    /// it from the [`crate::ProviderContext`] the provider was built with.
    pub fn dialer(mut self, d: Arc<dyn Dialer>) -> Self {
        self.dialer = Some(d);
        self
    }

    /// Validates the spec and the microservice dependencies and makes the deployment.
    pub fn build(self) -> Result<Deployment> {
        let problems = crate::spec::validate(&self.spec);
        if !problems.is_empty() {
            let mut d = crate::spec::Diagnostics::new();
            for (f, m) in problems {
                d.error(&f, None, m);
            }
            return Err(Error::Spec(d));
        }
        let provider = self
            .provider
            .ok_or_else(|| Error::input("provider", "no cloud provider given to the deployment builder"))?;
        let orchestrator = self
            .orchestrator
            .ok_or_else(|| Error::input("orchestrator", "no orchestrator given to the deployment builder"))?;
        let public_key = match self.public_key {
            Some(k) => k,
            None => {
                let p = self.dir.join(&self.spec.ssh.public_key);
                std::fs::read_to_string(&p)
                    .map_err(|e| {
                        Error::input(
                            "ssh.public_key",
                            format!("cannot read {}: {e}; point it at an existing .pub file", p.display()),
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        // microservice names unique, dependencies known
        let names: Vec<&str> = self.microservices.iter().map(|m| m.name()).collect();
        for (i, m) in self.microservices.iter().enumerate() {
            if names[..i].contains(&m.name()) {
                return Err(Error::component(m.name(), "two microservices have this name"));
            }
            for d in m.depends_on() {
                if !names[..i].contains(&d.as_str()) {
                    return Err(Error::component(
                        m.name(),
                        format!("depends on \"{d}\", which is not registered before it"),
                    ));
                }
            }
        }
        let retry = self.retry.unwrap_or(RetryPolicy {
            max_attempts: self.spec.engine.max_attempts,
            ..RetryPolicy::default()
        });
        Ok(Deployment {
            cluster: ClusterRef::new(&self.spec.name),
            spec: Arc::new(self.spec),
            dir: self.dir,
            provider,
            orchestrator,
            microservices: self.microservices,
            dns: self.dns,
            events: self.events,
            retry,
            public_key,
            cancel: self.cancel,
            dialer: self.dialer.unwrap_or_else(|| Arc::new(DirectDialer)),
            warned: Arc::default(),
        })
    }
}

/// What apply did.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ApplyReport {
    /// What the plan said apply would do.
    pub summary: PlanSummary,
    /// Wall time of the whole apply.
    pub elapsed: Duration,
    /// Outputs written to the state (kubeconfig path, API endpoint, endpoints, ...).
    pub outputs: BTreeMap<String, String>,
    /// Number of steps in the DAG.
    pub steps: usize,
    /// Length of the DAG's longest dependency chain, in steps.
    pub critical_path: usize,
    /// Most steps that ran at the same time.
    pub peak_concurrency: usize,
}

/// What destroy did.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct DestroyReport {
    /// Resources deleted (DNS records included).
    pub deleted: Vec<CloudResource>,
    /// Resources left on purpose (images, which are expensive to re-import).
    pub kept: Vec<CloudResource>,
    /// Wall time of the whole destroy.
    pub elapsed: Duration,
}

/// `vre status`.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The cluster name.
    pub cluster: String,
    /// The provider name.
    pub provider: String,
    /// The state file, when there is one.
    pub state: Option<State>,
    /// What the cloud reports for the cluster.
    pub inventory: Vec<CloudResource>,
    /// Nodes as Kubernetes sees them, or why they could not be read.
    pub nodes: std::result::Result<Vec<NodeState>, String>,
}

/// What a step does.
enum Step {
    Image,
    Network,
    SecurityGroup,
    KeyPair,
    Bootstrap,
    AllocateIp(PlanItem),
    Volume(PlanItem),
    Servers(Role),
    Attach(Role, u32),
    Associate(Role, u32),
    Connect,
    DeleteNode(Vec<PlanItem>),
    Delete(PlanItem),
    Nodes,
    Base,
    Microservice(usize),
    Dns,
}

/// Shared by the steps of one apply.
struct Run<'d> {
    d: &'d Deployment,
    plan: Plan,
    store: tokio::sync::Mutex<StateStore>,
    current: Mutex<HashMap<ResourceKey, CloudResource>>,
    network: Mutex<Option<NetworkInfo>>,
    facts: Mutex<Option<BootstrapFacts>>,
    outputs: Mutex<BTreeMap<String, String>>,
    lineage: String,
}

impl Deployment {
    /// Starts building a deployment of `spec` kept in `dir`.
    pub fn builder(spec: ClusterSpec, dir: impl Into<PathBuf>) -> DeploymentBuilder {
        DeploymentBuilder {
            spec,
            dir: dir.into(),
            provider: None,
            orchestrator: None,
            microservices: Vec::new(),
            dns: None,
            events: EventSink::none(),
            retry: None,
            public_key: None,
            cancel: None,
            dialer: None,
        }
    }

    /// The spec it deploys.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The deployment directory (state, keys, kubeconfig).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cloud it builds on.
    pub fn provider(&self) -> &Arc<dyn CloudProvider> {
        &self.provider
    }

    /// The orchestrator nodes join.
    pub fn orchestrator(&self) -> &Arc<dyn Orchestrator> {
        &self.orchestrator
    }

    /// How vre reaches addresses inside the cloud.
    pub fn dialer(&self) -> &Arc<dyn Dialer> {
        &self.dialer
    }

    /// The cluster network as the spec asks for it.
    fn network_request(&self) -> NetworkRequest {
        NetworkRequest {
            cidr: self.spec.network.cidr,
            dns_servers: self.spec.network.dns_servers.clone(),
            master_ip: self.spec.network.master_ip,
        }
    }

    /// What the provider checks before anything is created.
    fn preflight_request(&self) -> PreflightRequest {
        PreflightRequest {
            nodes: self.spec.nodes.clone(),
            image: self.spec.image.clone(),
            network: self.network_request(),
        }
    }

    /// Where its progress events go.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// A deployment of the same VRE with `role` scaled to `count` nodes.
    pub fn scaled(&self, role: Role, count: u32) -> Result<Deployment> {
        if role == Role::Master {
            return Err(Error::input(
                "nodes.master.count",
                "a VRE has exactly one master; scale service, storage or edge",
            ));
        }
        let mut spec = (*self.spec).clone();
        spec.group_mut(role).count = count;
        if let Some((f, m)) = crate::spec::validate(&spec).into_iter().next() {
            return Err(Error::input(f, m));
        }
        Ok(Deployment {
            spec: Arc::new(spec),
            dir: self.dir.clone(),
            cluster: self.cluster.clone(),
            provider: self.provider.clone(),
            orchestrator: self.orchestrator.clone(),
            microservices: self.microservices.clone(),
            dns: self.dns.clone(),
            events: self.events.clone(),
            retry: self.retry.clone(),
            public_key: self.public_key.clone(),
            cancel: self.cancel.clone(),
            dialer: self.dialer.clone(),
            warned: self.warned.clone(),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_DIR).join(STATE_FILE)
    }

    async fn call<T, F, Fut>(&self, step: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.retry.run(&self.events, step, op).await
    }

    async fn inventory(&self) -> Result<Vec<CloudResource>> {
        self.call("inventory", || self.provider.inventory(&self.cluster)).await
    }

    /// What apply would do. Reads only: no lock, nothing created.
    pub async fn plan(&self) -> Result<Plan> {
        crate::microservice::check_microservices(&self.microservices, &self.spec, &self.dir)?;
        self.warn_ignored_settings();
        let state = StateStore::read(&self.state_path())?;
        let inventory = self.inventory().await?;
        let mut plan = Plan::compute(&self.spec, state.as_ref(), &inventory);
        plan.converge = self.converge_steps();
        Ok(plan)
    }

    /// Settings of the spec this provider cannot honour, said once instead
    /// of being dropped silently.
    fn warn_ignored_settings(&self) {
        if self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        let caps = self.provider.capabilities();
        let dns = &self.spec.network.dns_servers;
        if !caps.custom_dns_servers && *dns != crate::spec::NetworkSpec::default().dns_servers {
            self.events.warn(format!(
                "network.dns_servers is not applied on {}: its instances use the cloud's own resolver (remove the key to silence this)",
                self.provider.name()
            ));
        }
    }

    fn converge_steps(&self) -> Vec<String> {
        let mut c = vec![
            format!("wait for {} nodes to join", self.spec.total_nodes()),
            format!("install {}", self.spec.kubernetes.cni),
        ];
        for m in &self.microservices {
            c.push(format!("microservice {}", m.name()));
        }
        if let Some(d) = &self.dns {
            c.push(format!("DNS ({})", d.name()));
        }
        c
    }

    /// Brings the cloud and the cluster to the spec. Safe to interrupt and
    /// run again: it resumes from what the cloud reports.
    pub async fn apply(&self) -> Result<ApplyReport> {
        let started = Instant::now();
        self.events.emit(Event::Started {
            operation: "apply".into(),
            cluster: self.spec.name.clone(),
        });
        let result = self.apply_inner(started).await;
        self.events.emit(Event::Finished {
            operation: "apply".into(),
            ok: result.is_ok(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        result
    }

    async fn apply_inner(&self, started: Instant) -> Result<ApplyReport> {
        crate::microservice::check_microservices(&self.microservices, &self.spec, &self.dir)?;
        let mut store = StateStore::open(&self.dir, &self.spec.name, &self.spec.provider)?;
        // the cloud is asked before anything is created
        let request = self.preflight_request();
        let problems = self
            .call("preflight", || self.provider.preflight(&self.cluster, &request))
            .await?;
        if !problems.is_empty() {
            return Err(Error::Many(
                problems
                    .into_iter()
                    .map(|p| Error::rejected(p.field, p.message))
                    .collect(),
            )
            .single());
        }
        let inventory = self.inventory().await?;
        self.warn_ignored_settings();
        let mut plan = Plan::compute(&self.spec, Some(store.state()), &inventory);
        plan.converge = self.converge_steps();
        let summary = plan.summary();
        self.events.emit(Event::Planned {
            summary: summary.clone(),
        });

        // the state follows the cloud: what exists is recorded, what vanished is dropped
        let mut current = HashMap::new();
        for it in &plan.items {
            if let (Some(cur), true) = (&it.current, it.action == Action::Keep) {
                current.insert(it.key.clone(), cur.clone());
            }
        }
        let owned_extra: Vec<CloudResource> = inventory.iter().filter(|r| r.key.is_none()).cloned().collect();
        store.update(|s| {
            s.resources = current.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            s.extra = owned_extra;
            s.provider = self.spec.provider.clone();
        })?;

        let run = Run {
            d: self,
            lineage: store.state().lineage.clone(),
            store: tokio::sync::Mutex::new(store),
            current: Mutex::new(current),
            network: Mutex::new(None),
            facts: Mutex::new(None),
            outputs: Mutex::new(BTreeMap::new()),
            plan,
        };
        let dag = self.build_dag(&run.plan);
        let steps = dag.len();
        let critical_path = dag.critical_path();
        let report = dag
            .run(
                self.spec.engine.parallelism,
                &self.events,
                self.cancel.clone(),
                |id, step| {
                    let run = &run;
                    Box::pin(async move { run.step(&id, step).await })
                },
            )
            .await;
        let peak = report.peak_concurrency;
        let outputs = run.outputs.lock().expect("poisoned").clone();
        {
            let mut store = run.store.lock().await;
            store.update(|s| s.outputs.extend(outputs.clone()))?;
        }
        report.into_result()?;
        for (k, v) in &outputs {
            self.events.emit(Event::Output {
                name: k.clone(),
                value: v.clone(),
            });
        }
        Ok(ApplyReport {
            summary,
            elapsed: started.elapsed(),
            outputs,
            steps,
            critical_path,
            peak_concurrency: peak,
        })
    }

    fn build_dag(&self, plan: &Plan) -> Dag<Step> {
        let spec = &self.spec;
        let mut dag = Dag::new();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        dag.add("image", format!("image {}", spec.image.name), &[], Step::Image);
        dag.add("network", format!("network {}", spec.network.cidr), &[], Step::Network);
        dag.add(
            "security-group",
            "security group",
            &s(&["network"]),
            Step::SecurityGroup,
        );
        dag.add("key-pair", "key pair", &[], Step::KeyPair);

        let live_items: Vec<&PlanItem> = plan.items.iter().filter(|i| i.action != Action::Delete).collect();
        for it in &live_items {
            match it.key.parts() {
                KeyParts::PublicIp(..) if it.action != Action::Keep => dag.add(
                    it.key.as_str(),
                    format!("public IP {}", it.name),
                    &s(&["network"]),
                    Step::AllocateIp((*it).clone()),
                ),
                KeyParts::Volume(..) if it.action != Action::Keep => dag.add(
                    it.key.as_str(),
                    format!("volume {}", it.name),
                    &[],
                    Step::Volume((*it).clone()),
                ),
                _ => {}
            }
        }
        let master_ip = ResourceKey::public_ip(Role::Master, 1).as_str().to_string();
        let mut boot_deps = s(&["network"]);
        boot_deps.push(master_ip.clone());
        dag.add("bootstrap", "cluster CA and join token", &boot_deps, Step::Bootstrap);

        let caps = self.provider.capabilities();
        // deletions of nodes leaving the spec drain first (needs the API)
        let mut node_deletes: BTreeMap<(Role, u32), Vec<PlanItem>> = BTreeMap::new();
        let mut other_deletes = Vec::new();
        for it in plan.items.iter().filter(|i| i.action == Action::Delete) {
            match it.key.node() {
                Some(n) if !it.reason.starts_with("duplicate") => node_deletes.entry(n).or_default().push(it.clone()),
                _ => other_deletes.push(it.clone()),
            }
        }
        let master_exists = plan
            .item(&ResourceKey::server(Role::Master, 1))
            .is_some_and(|i| i.action == Action::Keep);
        if master_exists {
            dag.add(
                "connect",
                "connect to the API server",
                &s(&["bootstrap"]),
                Step::Connect,
            );
        }
        for it in other_deletes {
            dag.add(
                format!(
                    "delete/{}",
                    it.current.as_ref().map_or(it.name.as_str(), |c| c.id.as_str())
                ),
                format!("delete duplicate {}", it.name),
                &[],
                Step::Delete(it),
            );
        }
        let mut delete_steps = Vec::new();
        for ((role, i), items) in node_deletes {
            let id = format!("remove/{role}-{i}");
            let deps = if master_exists { s(&["connect"]) } else { vec![] };
            dag.add(
                &id,
                format!("drain and delete {}", spec.node_name(role, i)),
                &deps,
                Step::DeleteNode(items),
            );
            delete_steps.push(id);
        }

        for g in spec.nodes.iter().filter(|g| g.count > 0) {
            let mut deps = s(&["image", "network", "security-group", "key-pair", "bootstrap"]);
            if caps.public_ip_at_create {
                for i in 1..=g.count {
                    deps.push(ResourceKey::public_ip(g.role, i).as_str().to_string());
                }
            }
            // scale-down and replacement free quota first
            deps.extend(delete_steps.iter().cloned());
            dag.add_weighted(
                format!("servers/{}", g.role),
                format!("{} {} node(s) ({})", g.count, g.role, g.flavor),
                &deps,
                WAITING_STEP_WEIGHT,
                Step::Servers(g.role),
            );
        }
        let mut attach_steps = Vec::new();
        let mut assoc_steps: Vec<(Role, String)> = Vec::new();
        for it in &live_items {
            match it.key.parts() {
                KeyParts::Attachment(role, i) => {
                    let id = it.key.as_str().to_string();
                    dag.add(
                        &id,
                        format!("attach {}", plan::volume_name(&spec.node_name(role, i))),
                        &[
                            format!("servers/{role}"),
                            ResourceKey::volume(role, i).as_str().to_string(),
                        ],
                        Step::Attach(role, i),
                    );
                    attach_steps.push(id);
                }
                KeyParts::PublicIp(role, i) => {
                    let id = format!("associate/{role}-{i}");
                    dag.add(
                        &id,
                        format!("bind public IP to {}", spec.node_name(role, i)),
                        &[format!("servers/{role}"), it.key.as_str().to_string()],
                        Step::Associate(role, i),
                    );
                    assoc_steps.push((role, id));
                }
                _ => {}
            }
        }
        if !master_exists {
            let mut deps = vec!["servers/master".to_string()];
            deps.extend(
                assoc_steps
                    .iter()
                    .filter(|(r, _)| *r == Role::Master)
                    .map(|(_, id)| id.clone()),
            );
            dag.add_weighted(
                "connect",
                "connect to the API server",
                &deps,
                WAITING_STEP_WEIGHT,
                Step::Connect,
            );
        }
        // The CNI goes in as soon as the API answers: a real kubelet reports
        // its node NotReady ("network plugin not ready") until it is there.
        dag.add_weighted(
            "base",
            format!("install {}", spec.kubernetes.cni),
            &s(&["connect"]),
            WAITING_STEP_WEIGHT,
            Step::Base,
        );
        let mut node_deps: Vec<String> = vec!["base".into()];
        node_deps.extend(
            spec.nodes
                .iter()
                .filter(|g| g.count > 0)
                .map(|g| format!("servers/{}", g.role)),
        );
        dag.add_weighted(
            "nodes",
            format!("wait for {} nodes to be Ready", spec.total_nodes()),
            &node_deps,
            WAITING_STEP_WEIGHT,
            Step::Nodes,
        );
        let edge_roles = spec.edge_roles();
        let mut ms_deps = s(&["nodes"]);
        ms_deps.extend(attach_steps.iter().cloned());
        ms_deps.extend(
            assoc_steps
                .iter()
                .filter(|(r, _)| edge_roles.contains(r))
                .map(|(_, id)| id.clone()),
        );
        for (i, m) in self.microservices.iter().enumerate() {
            let mut deps = ms_deps.clone();
            deps.extend(m.depends_on().into_iter().map(|d| format!("microservice/{d}")));
            dag.add_weighted(
                format!("microservice/{}", m.name()),
                format!("microservice {}", m.name()),
                &deps,
                WAITING_STEP_WEIGHT,
                Step::Microservice(i),
            );
        }
        if self.dns.is_some() {
            let deps: Vec<String> = assoc_steps
                .iter()
                .filter(|(r, _)| edge_roles.contains(r))
                .map(|(_, id)| id.clone())
                .chain(std::iter::once("nodes".to_string()))
                .collect();
            dag.add("dns", "DNS records for the edge", &deps, Step::Dns);
        }
        dag
    }

    /// Deletes everything the cluster owns, found by tag (the state file is
    /// a hint, not a requirement), in dependency order; then checks that
    /// nothing is left.
    pub async fn destroy(&self) -> Result<DestroyReport> {
        let started = Instant::now();
        self.events.emit(Event::Started {
            operation: "destroy".into(),
            cluster: self.spec.name.clone(),
        });
        let r = self.destroy_inner(started).await;
        self.events.emit(Event::Finished {
            operation: "destroy".into(),
            ok: r.is_ok(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        r
    }

    async fn destroy_inner(&self, started: Instant) -> Result<DestroyReport> {
        let mut store = StateStore::open(&self.dir, &self.spec.name, &self.spec.provider)?;
        let mut targets = self.inventory().await?;
        // what the state knows but the listing missed is tried too (404 is fine)
        for r in store.state().resources.values().chain(store.state().extra.iter()) {
            if !targets.iter().any(|t| t.id == r.id && t.kind == r.kind) && r.kind != ResourceKind::DnsRecord {
                targets.push(r.clone());
            }
        }
        let mut dns_records = Vec::new();
        if let Some(dns) = &self.dns {
            dns_records = self.call("dns", || dns.list_records(&self.spec.name)).await?;
        }
        let (kept, targets): (Vec<_>, Vec<_>) = targets.into_iter().partition(|r| !owned(r));
        let mut waves: BTreeMap<u32, Vec<CloudResource>> = BTreeMap::new();
        for r in targets {
            waves.entry(self.provider.destroy_rank(&r.kind)).or_default().push(r);
        }
        let mut deleted = Vec::new();
        let parallelism = self.spec.engine.parallelism;
        // DNS first: records must not point at addresses about to be released
        let results: Vec<Result<CloudResource>> = stream::iter(dns_records.into_iter().map(|r| async move {
            let dns = self.dns.as_ref().expect("records only listed with a DNS provider");
            self.call("dns", || dns.delete_record(&r)).await.map(|_| r)
        }))
        .buffer_unordered(parallelism)
        .collect()
        .await;
        self.collect_deleted(results, &mut deleted)?;
        for (_, wave) in waves {
            let results: Vec<Result<CloudResource>> = stream::iter(wave.into_iter().map(|r| async move {
                let step = format!("delete/{}", r.kind);
                match self.call(&step, || self.provider.delete(&self.cluster, &r)).await {
                    Ok(()) => Ok(r),
                    Err(e) if e.is_not_found() => Ok(r),
                    Err(e) => Err(e),
                }
            }))
            .buffer_unordered(parallelism)
            .collect()
            .await;
            let failed = self.collect_deleted(results, &mut deleted);
            store.update(|s| {
                s.resources.retain(|_, r| !deleted.iter().any(|d| d.id == r.id));
                s.extra.retain(|r| !deleted.iter().any(|d| d.id == r.id));
            })?;
            failed?;
        }
        // nothing tagged may remain
        let left: Vec<CloudResource> = self.inventory().await?.into_iter().filter(owned).collect();
        if !left.is_empty() {
            return Err(Error::component(
                "destroy",
                format!(
                    "{} resources are still there after deleting: {}; run `vre destroy` again",
                    left.len(),
                    left.iter()
                        .map(|r| format!("{} {} ({})", r.kind, r.name, r.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        store.update(|s| {
            s.resources.clear();
            s.extra.clear();
            s.outputs.clear();
            s.completed.clear();
        })?;
        Ok(DestroyReport {
            deleted,
            kept,
            elapsed: started.elapsed(),
        })
    }

    fn collect_deleted(&self, results: Vec<Result<CloudResource>>, deleted: &mut Vec<CloudResource>) -> Result<()> {
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(r) => {
                    self.events.emit(Event::Resource {
                        action: "deleted".into(),
                        kind: r.kind.to_string(),
                        name: r.name.clone(),
                        id: r.id.clone(),
                    });
                    deleted.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        Error::collect(errors)
    }

    /// The state, what the cloud reports, and the nodes.
    pub async fn status(&self) -> Result<Status> {
        let state = StateStore::read(&self.state_path())?;
        let inventory = self.inventory().await?;
        let nodes = if state
            .as_ref()
            .is_some_and(|s| s.outputs.contains_key(output::KUBECONFIG))
        {
            self.orchestrator.nodes().await.map_err(|e| e.to_string())
        } else {
            Err("the cluster has not been applied yet".to_string())
        };
        Ok(Status {
            cluster: self.spec.name.clone(),
            provider: self.spec.provider.clone(),
            state,
            inventory,
            nodes,
        })
    }
}

impl Error {
    /// `Many` of one is that one.
    fn single(self) -> Error {
        match self {
            Error::Many(mut v) if v.len() == 1 => v.remove(0),
            e => e,
        }
    }
}

impl Run<'_> {
    fn get(&self, key: &ResourceKey) -> Option<CloudResource> {
        self.current.lock().expect("poisoned").get(key).cloned()
    }

    async fn record(&self, resources: &[CloudResource], action: &str) -> Result<()> {
        {
            let mut cur = self.current.lock().expect("poisoned");
            for r in resources {
                if let Some(k) = &r.key {
                    cur.insert(k.clone(), r.clone());
                }
            }
        }
        for r in resources {
            self.d.events.emit(Event::Resource {
                action: action.into(),
                kind: r.kind.to_string(),
                name: r.name.clone(),
                id: r.id.clone(),
            });
        }
        let mut store = self.store.lock().await;
        store.update(|s| {
            for r in resources {
                if let Some(k) = &r.key {
                    s.resources.insert(k.clone(), r.clone());
                }
            }
        })
    }

    async fn forget(&self, resources: &[CloudResource]) -> Result<()> {
        {
            let mut cur = self.current.lock().expect("poisoned");
            cur.retain(|_, r| !resources.iter().any(|x| x.id == r.id));
        }
        let mut store = self.store.lock().await;
        store.update(|s| s.resources.retain(|_, r| !resources.iter().any(|x| x.id == r.id)))
    }

    fn need(&self, key: &ResourceKey) -> Result<CloudResource> {
        self.get(key).ok_or_else(|| {
            Error::component(
                "apply",
                format!("{key} is missing although the step that makes it finished"),
            )
        })
    }

    fn network(&self) -> Result<NetworkInfo> {
        self.network
            .lock()
            .expect("poisoned")
            .clone()
            .ok_or_else(|| Error::component("apply", "the network step has not run"))
    }

    fn facts(&self) -> Result<BootstrapFacts> {
        self.facts
            .lock()
            .expect("poisoned")
            .clone()
            .ok_or_else(|| Error::component("apply", "the bootstrap step has not run"))
    }

    fn output(&self, k: &str, v: impl Into<String>) {
        self.outputs.lock().expect("poisoned").insert(k.to_string(), v.into());
    }

    async fn step(&self, id: &str, step: Step) -> Result<()> {
        let d = self.d;
        let c = &d.cluster;
        let p = &d.provider;
        match step {
            Step::Image => {
                let progress = StepProgress::new(d.events.clone(), id);
                let img = d.call(id, || p.ensure_image(c, &d.spec.image, &progress)).await?;
                self.record(&[img.with_key(ResourceKey::image())], "ensured").await
            }
            Step::Network => {
                let req = d.network_request();
                let net = d.call(id, || p.ensure_network(c, &req)).await?;
                self.output(output::NETWORK_CIDR, net.cidr.to_string());
                *self.network.lock().expect("poisoned") = Some(net.clone());
                self.record(&[net.network.with_key(ResourceKey::network())], "ensured")
                    .await
            }
            Step::SecurityGroup => {
                let net = self.network()?;
                let req = SecurityGroupRequest {
                    ingress_ports: d.spec.network.ingress_ports.clone(),
                    master_ip: master_private_ip(&d.spec, &net.cidr),
                };
                let sg = d.call(id, || p.ensure_security_group(c, &net, &req)).await?;
                self.record(&[sg.with_key(ResourceKey::security_group())], "ensured")
                    .await
            }
            Step::KeyPair => {
                let kp = d.call(id, || p.ensure_key_pair(c, &d.public_key)).await?;
                self.record(&[kp.with_key(ResourceKey::key_pair())], "ensured").await
            }
            Step::AllocateIp(it) => {
                let ip = d.call(id, || p.allocate_public_ip(c, &it.key, &it.name)).await?;
                self.record(&[ip.with_key(it.key.clone())], "created").await
            }
            Step::Volume(it) => {
                let req = VolumeRequest {
                    key: it.key.clone(),
                    name: it.name.clone(),
                    size_gb: d
                        .spec
                        .group(it.key.node().map_or(Role::Storage, |n| n.0))
                        .and_then(|g| g.volume_gb)
                        .unwrap_or(1),
                };
                let v = d.call(id, || p.create_volume(c, &req)).await?;
                self.record(&[v.with_key(it.key.clone())], "created").await
            }
            Step::Bootstrap => {
                let net = self.network()?;
                let master_private_ip = d.spec.network.master_address(&net.cidr).ok_or_else(|| {
                    Error::input(
                        "network.master_ip",
                        format!(
                            "is not inside the cluster subnet {}; pick an address inside it",
                            net.cidr
                        ),
                    )
                })?;
                let master_public_ip = self
                    .get(&ResourceKey::public_ip(Role::Master, 1))
                    .and_then(|r| r.attr(attr::ADDRESS).and_then(|a| a.parse::<IpAddr>().ok()));
                let facts = BootstrapFacts {
                    cluster: d.spec.name.clone(),
                    master_private_ip,
                    master_public_ip,
                    api_port: API_PORT,
                    kubernetes_version: d.spec.kubernetes.version.clone(),
                    pod_cidr: d.spec.kubernetes.pod_cidr.to_string(),
                    service_cidr: d.spec.kubernetes.service_cidr.to_string(),
                    image_preinstalled: d.spec.image.preinstalled,
                    ssh_user: d.spec.ssh.user.clone(),
                    master_as_edge: d.spec.master_as_edge,
                    single_node: d.spec.total_nodes() == 1,
                };
                d.orchestrator.prepare(&facts).await?;
                self.output(output::MASTER_PRIVATE_IP, master_private_ip.to_string());
                if let Some(ip) = master_public_ip {
                    self.output(output::MASTER_PUBLIC_IP, ip.to_string());
                }
                *self.facts.lock().expect("poisoned") = Some(facts);
                Ok(())
            }
            Step::Servers(role) => self.servers(id, role).await,
            Step::Attach(role, i) => {
                let key = ResourceKey::attachment(role, i);
                let vol = self.need(&ResourceKey::volume(role, i))?;
                let server = self.need(&ResourceKey::server(role, i))?;
                let a = d.call(id, || p.attach_volume(c, &key, &vol, &server)).await?;
                self.record(&[a.with_key(key.clone())], "attached").await
            }
            Step::Associate(role, i) => {
                let key = ResourceKey::public_ip(role, i);
                let ip = self.need(&key)?;
                let server = self.need(&ResourceKey::server(role, i))?;
                let bound = d.call(id, || p.associate_public_ip(c, &ip, &server)).await?;
                self.record(&[bound.with_key(key)], "associated").await
            }
            Step::Connect => {
                let facts = self.facts()?;
                let host: IpAddr = match facts.master_public_ip {
                    Some(ip) => ip,
                    None => IpAddr::V4(facts.master_private_ip),
                };
                let addr = d.dialer.dial(SocketAddr::new(host, API_PORT)).await?;
                let kubeconfig = d.orchestrator.connect(addr, &facts).await?;
                self.output(output::KUBECONFIG, kubeconfig.display().to_string());
                self.output(output::API_ENDPOINT, format!("https://{addr}"));
                Ok(())
            }
            Step::DeleteNode(items) => {
                let server = items.iter().find(|i| i.kind == ResourceKind::Instance);
                if let Some(s) = server
                    && d.plan_has_master(&self.plan)
                {
                    let t = Duration::from_secs(d.spec.engine.ready_timeout_secs.min(300));
                    if let Err(e) = d.orchestrator.drain(&s.name, t).await {
                        d.events
                            .warn(format!("drain of {} failed ({e}); deleting it anyway", s.name));
                    }
                    if let Err(e) = d.orchestrator.remove_node(&s.name).await {
                        d.events.warn(format!("removing node {} failed ({e})", s.name));
                    }
                }
                let mut sorted: Vec<&PlanItem> = items.iter().collect();
                sorted.sort_by_key(|i| d.provider.destroy_rank(&i.kind));
                for it in sorted {
                    if let Some(cur) = &it.current {
                        match d.call(id, || p.delete(c, cur)).await {
                            Ok(()) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e),
                        }
                        self.forget(std::slice::from_ref(cur)).await?;
                        d.events.emit(Event::Resource {
                            action: "deleted".into(),
                            kind: cur.kind.to_string(),
                            name: cur.name.clone(),
                            id: cur.id.clone(),
                        });
                    }
                }
                Ok(())
            }
            Step::Delete(it) => {
                if let Some(cur) = &it.current {
                    match d.call(id, || p.delete(c, cur)).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                    d.events.emit(Event::Resource {
                        action: "deleted".into(),
                        kind: cur.kind.to_string(),
                        name: cur.name.clone(),
                        id: cur.id.clone(),
                    });
                }
                Ok(())
            }
            Step::Nodes => {
                let expected: Vec<ExpectedNode> = d
                    .spec
                    .nodes
                    .iter()
                    .flat_map(|g| (1..=g.count).map(move |i| (g.role, i)))
                    .map(|(role, i)| ExpectedNode {
                        name: d.spec.node_name(role, i),
                        role,
                        private_ip: self
                            .get(&ResourceKey::server(role, i))
                            .and_then(|s| s.attr(attr::PRIVATE_IP).and_then(|a| a.parse().ok())),
                    })
                    .collect();
                let timeout = Duration::from_secs(d.spec.engine.node_timeout_secs);
                d.orchestrator.wait_nodes(&expected, timeout, &d.events).await?;
                self.completed("nodes").await
            }
            Step::Base => {
                let facts = self.cluster_facts()?;
                d.orchestrator.install_base(&facts).await?;
                self.completed("base").await
            }
            Step::Microservice(i) => {
                let m = &d.microservices[i];
                let facts = self.cluster_facts()?;
                let timeout = Duration::from_secs(d.spec.engine.ready_timeout_secs);
                m.install(d.orchestrator.as_ref(), &facts, timeout).await?;
                for Endpoint { name, url } in m.endpoints(&facts) {
                    self.output(&format!("{}{name}", output::ENDPOINT_PREFIX), url);
                }
                self.completed(id).await
            }
            Step::Dns => {
                let dns = d.dns.as_ref().expect("dns step only with a DNS provider");
                let edge_ips = self.edge_ips();
                if edge_ips.is_empty() {
                    d.events.warn("no edge node has an address; DNS records skipped");
                    return Ok(());
                }
                let wanted = dns.records(&d.spec.name, &edge_ips);
                let made = d.call(id, || dns.ensure_records(&d.spec.name, &wanted)).await?;
                // stale records (an edge that went away) are removed
                let existing = d.call(id, || dns.list_records(&d.spec.name)).await?;
                for r in existing {
                    if !made.iter().any(|m| m.id == r.id) {
                        d.call(id, || dns.delete_record(&r)).await?;
                    }
                }
                let keyed: Vec<CloudResource> = made
                    .into_iter()
                    .map(|r| {
                        let k = ResourceKey::dns(&r.name);
                        r.with_key(k)
                    })
                    .collect();
                self.record(&keyed, "ensured").await?;
                if let Some(domain) = dns.domain(&d.spec.name, &edge_ips) {
                    self.output(output::DOMAIN, domain);
                }
                Ok(())
            }
        }
    }

    async fn completed(&self, what: &str) -> Result<()> {
        let mut store = self.store.lock().await;
        store.update(|s| {
            s.completed.insert(what.to_string());
        })
    }

    fn edge_ips(&self) -> Vec<IpAddr> {
        let spec = &self.d.spec;
        let mut ips = Vec::new();
        for role in spec.edge_roles() {
            for i in 1..=spec.count(role) {
                let public = self
                    .get(&ResourceKey::public_ip(role, i))
                    .and_then(|r| r.attr(attr::ADDRESS).and_then(|a| a.parse().ok()));
                let private = || {
                    self.get(&ResourceKey::server(role, i))
                        .and_then(|r| r.attr(attr::PRIVATE_IP).and_then(|a| a.parse().ok()))
                };
                if let Some(ip) = public.or_else(private) {
                    ips.push(ip);
                }
            }
        }
        ips
    }

    /// The cluster as it stands now (computed afresh: the CNI step runs
    /// before every node has its address, the microservices after).
    fn cluster_facts(&self) -> Result<ClusterFacts> {
        let d = self.d;
        let spec = &d.spec;
        let mut nodes = Vec::new();
        for g in &spec.nodes {
            for i in 1..=g.count {
                let server = self.get(&ResourceKey::server(g.role, i));
                nodes.push(NodeFact {
                    name: spec.node_name(g.role, i),
                    role: g.role,
                    private_ip: server
                        .as_ref()
                        .and_then(|s| s.attr(attr::PRIVATE_IP).and_then(|a| a.parse().ok())),
                    public_ip: self
                        .get(&ResourceKey::public_ip(g.role, i))
                        .and_then(|r| r.attr(attr::ADDRESS).and_then(|a| a.parse().ok())),
                    volume_device: self
                        .get(&ResourceKey::attachment(g.role, i))
                        .and_then(|a| a.attr(attr::DEVICE).map(str::to_string)),
                });
            }
        }
        let edge_ips = self.edge_ips();
        let domain = d.dns.as_ref().and_then(|dns| dns.domain(&spec.name, &edge_ips));
        let api_endpoint = self
            .outputs
            .lock()
            .expect("poisoned")
            .get(output::API_ENDPOINT)
            .cloned()
            .unwrap_or_default();
        let facts = ClusterFacts {
            spec: spec.clone(),
            nodes,
            edge_ips,
            domain,
            api_endpoint,
            dir: d.dir.clone(),
        };
        Ok(facts)
    }

    /// Creates the group's missing and replaced servers (one batch, or
    /// chunks of the cloud's `max_batch`), waits
    /// for them, and replaces servers the cloud put in error once.
    async fn servers(&self, id: &str, role: Role) -> Result<()> {
        let d = self.d;
        let (c, p) = (&d.cluster, &d.provider);
        let g = d.spec.group(role).expect("step only for existing groups").clone();
        let facts = self.facts()?;
        let user_data = d.orchestrator.user_data(role, &facts)?;
        let mut todo: Vec<u32> = Vec::new();
        let mut pending: Vec<CloudResource> = Vec::new();
        for i in 1..=g.count {
            let it = self.plan.item(&ResourceKey::server(role, i));
            match it.map(|it| (it.action, it.current.clone())) {
                Some((Action::Keep, Some(cur))) => {
                    if cur.status == ResourceStatus::Pending {
                        pending.push(cur);
                    }
                }
                Some((Action::Replace, Some(cur))) => {
                    d.call(id, || p.delete(c, &cur))
                        .await
                        .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })?;
                    self.forget(std::slice::from_ref(&cur)).await?;
                    todo.push(i);
                }
                _ => todo.push(i),
            }
        }
        let total = g.count as u64;
        for round in 0..2 {
            // one call per chunk of at most the cloud's `max_batch`, each
            // with its own idempotency token (computed from its indices)
            let chunk = chunk_size(&p.capabilities(), todo.len());
            for (n, indices) in todo.chunks(chunk).enumerate() {
                let batch = self.batch(id, &g, &facts, &user_data, indices)?;
                if n == 0 {
                    d.events
                        .progress(id, format!("creating {} {role} server(s)", todo.len()));
                }
                let made = d.call(id, || p.create_instances(c, &batch)).await?;
                let made: Vec<CloudResource> = made
                    .into_iter()
                    .map(|r| {
                        let key = r.key.clone().or_else(|| {
                            ResourceKey::server_from_name(&c.name, &r.name).map(|(ro, i)| ResourceKey::server(ro, i))
                        });
                        match key {
                            Some(k) => r.with_key(k),
                            None => r,
                        }
                    })
                    .collect();
                self.record(&made, "created").await?;
                pending.extend(made);
            }
            if pending.is_empty() {
                return Ok(());
            }
            d.events.count(
                id,
                format!("waiting for {role} servers"),
                total - pending.len() as u64,
                total,
            );
            let timeout = Duration::from_secs(d.spec.engine.node_timeout_secs);
            let progress = StepProgress::new(d.events.clone(), id);
            let done = d.call(id, || p.wait_instances(c, &pending, timeout, &progress)).await?;
            let done: Vec<CloudResource> = done
                .into_iter()
                .map(|r| {
                    match (
                        &r.key,
                        pending.iter().find(|x| x.id == r.id).and_then(|x| x.key.clone()),
                    ) {
                        (None, Some(k)) => r.with_key(k),
                        _ => r,
                    }
                })
                .collect();
            self.record(&done, "ready").await?;
            let failed: Vec<&CloudResource> = done
                .iter()
                .filter(|r| matches!(r.status, ResourceStatus::Failed { .. }))
                .collect();
            if failed.is_empty() {
                d.events.count(id, format!("{role} servers running"), total, total);
                return Ok(());
            }
            let reasons: Vec<String> = failed
                .iter()
                .map(|r| match &r.status {
                    ResourceStatus::Failed { reason } => format!("{}: {reason}", r.name),
                    _ => r.name.clone(),
                })
                .collect();
            if round == 1 {
                return Err(CloudError {
                    service: d.provider.name().to_string(),
                    operation: format!("boot {role} servers"),
                    status: None,
                    code: None,
                    message: format!(
                        "{} server(s) went to ERROR twice: {}; check the cloud's capacity and quota, then run `vre apply` again",
                        failed.len(),
                        reasons.join("; ")
                    ),
                    retry: Retry::Never,
                    source: None,
                }
                .into());
            }
            d.events
                .warn(format!("replacing servers in ERROR: {}", reasons.join("; ")));
            todo.clear();
            for r in &failed {
                d.call(id, || p.delete(c, r))
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })?;
                if let Some((_, i)) = r.key.as_ref().and_then(|k| k.node()) {
                    todo.push(i);
                }
            }
            self.forget(&failed.iter().map(|r| (*r).clone()).collect::<Vec<_>>())
                .await?;
            pending = Vec::new();
        }
        Ok(())
    }

    fn batch(
        &self,
        id: &str,
        g: &crate::spec::NodeGroup,
        facts: &BootstrapFacts,
        user_data: &str,
        indices: &[u32],
    ) -> Result<InstanceBatch> {
        let d = self.d;
        let caps = d.provider.capabilities();
        let instances = indices
            .iter()
            .map(|&i| InstanceRequest {
                key: ResourceKey::server(g.role, i),
                name: d.spec.node_name(g.role, i),
                index: i,
                fixed_ip: (g.role == Role::Master).then_some(facts.master_private_ip),
                public_ip: if caps.public_ip_at_create {
                    self.get(&ResourceKey::public_ip(g.role, i))
                } else {
                    None
                },
            })
            .collect();
        let token = format!(
            "{}-{}-{}",
            d.spec.name,
            g.role,
            fnv(&format!("{:?}{}", indices, self.lineage))
        );
        Ok(InstanceBatch {
            role: g.role,
            flavor: g.flavor.clone(),
            root_disk_gb: g.root_disk_gb,
            image: self.need(&ResourceKey::image())?,
            network: self.network()?,
            security_group: self.need(&ResourceKey::security_group())?,
            key_pair: self.need(&ResourceKey::key_pair())?,
            user_data: user_data.to_string(),
            ssh_user: d.spec.ssh.user.clone(),
            instances,
            token,
            progress: StepProgress::new(d.events.clone(), id),
        })
    }
}

impl Deployment {
    fn plan_has_master(&self, plan: &Plan) -> bool {
        plan.item(&ResourceKey::server(Role::Master, 1))
            .is_some_and(|i| i.action == Action::Keep)
    }
}

/// Instances per `create_instances` call for `n` servers: at most the
/// cloud's `max_batch` when it creates many at once and states a limit,
/// otherwise all of them (never zero: `chunks` needs a positive size).
fn chunk_size(caps: &Capabilities, n: usize) -> usize {
    let n = n.max(1);
    if caps.multi_create && caps.max_batch > 0 {
        n.min(caps.max_batch as usize)
    } else {
        n
    }
}

/// Does destroy delete it? Not images (expensive to re-import, often
/// shared) nor resources the provider reuses without owning.
fn owned(r: &CloudResource) -> bool {
    r.kind != ResourceKind::Image && r.attr(attr::REUSED) != Some("true")
}

/// FNV-1a, for short deterministic tokens.
fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The master's private address for a network, as the engine computes it.
pub fn master_private_ip(spec: &ClusterSpec, cidr: &crate::spec::Ipv4Cidr) -> Option<Ipv4Addr> {
    spec.network.master_address(cidr)
}
