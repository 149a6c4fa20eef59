//! In-memory test doubles (feature `testing`): a cloud that keeps its
//! resources in a map and finds them by tag, and an orchestrator that
//! records what it was asked. They never touch the network.
//!
//! The fake cloud obeys the provider contract (every create is keyed by
//! name and idempotent) and can inject faults: a retriable error on the next
//! calls of an operation, servers landing in ERROR, and a "crash" (the
//! engine's future is dropped) after a number of calls.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::{CloudError, Error, Result};
use crate::events::{Event, EventSink, StepProgress};
use crate::orchestrator::{
    BootstrapFacts, ClusterFacts, ExpectedNode, Manifest, NodeState, Orchestrator, ReadinessCheck,
};
use crate::provider::{
    Capabilities, CloudProvider, ClusterRef, InstanceBatch, NetworkInfo, NetworkRequest, PreflightRequest,
    ProviderContext, ProviderFactory, ProviderTemplate, SecurityGroupRequest, VolumeRequest,
};
use crate::resource::{CloudResource, ResourceKey, ResourceKind, ResourceStatus, attr};
use crate::spec::{ClusterSpec, Diagnostics, ImageSpec, Role, TableReader};
use crate::spec_field::{PreflightProblem, SpecField};

/// A resource in the fake cloud, with the cluster it is tagged with.
#[derive(Clone, Debug)]
struct Stored {
    cluster: String,
    resource: CloudResource,
}

#[derive(Default)]
struct CloudState {
    resources: BTreeMap<String, Stored>,
    next_id: u64,
    next_ip: u32,
    /// Every call, as `operation` or `operation:detail`.
    calls: Vec<String>,
    /// operation -> errors to return on its next calls
    faults: HashMap<String, Vec<Error>>,
    /// instance names that land in ERROR when they first boot
    doomed: Vec<String>,
    /// after this many more calls, the crash signal fires and calls hang
    crash_after: Option<usize>,
    flavors: Vec<String>,
}

/// An in-memory cloud. Clone it to share it between "processes" (two
/// deployments built one after another, as after a crash).
#[derive(Clone)]
pub struct FakeCloud {
    state: Arc<Mutex<CloudState>>,
    crash: Arc<Notify>,
    name: String,
    capabilities: Capabilities,
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeCloud {
    /// An empty cloud with every capability a multi-create cloud has.
    pub fn new() -> Self {
        FakeCloud {
            state: Arc::new(Mutex::new(CloudState {
                flavors: vec!["m1.small".into(), "m1.medium".into(), "m1.large".into()],
                ..CloudState::default()
            })),
            crash: Arc::new(Notify::new()),
            name: "fake".into(),
            capabilities: Capabilities {
                multi_create: true,
                max_batch: 1000,
                public_ip_at_create: false,
                custom_dns_servers: true,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state.lock().expect("fake cloud poisoned")
    }

    /// The same cloud, announcing `capabilities` instead.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Every call made so far, as `operation` or `operation:detail`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// How many calls named `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.as_str() == op || c.starts_with(&format!("{op}:")))
            .count()
    }

    /// The resources tagged with `cluster`.
    pub fn resources(&self, cluster: &str) -> Vec<CloudResource> {
        self.lock()
            .resources
            .values()
            .filter(|s| s.cluster == cluster)
            .map(|s| s.resource.clone())
            .collect()
    }

    /// Makes the next calls of `op` fail with these errors, in order.
    pub fn fail_next(&self, op: &str, errors: Vec<Error>) {
        self.lock().faults.entry(op.to_string()).or_default().extend(errors);
    }

    /// Servers with these names land in ERROR the first time they boot.
    pub fn doom(&self, names: &[&str]) {
        self.lock().doomed.extend(names.iter().map(|s| s.to_string()));
    }

    /// After `n` more calls the cloud "crashes" the caller: [`FakeCloud::crashed`]
    /// completes and every call from then on hangs.
    pub fn crash_after(&self, n: usize) {
        self.lock().crash_after = Some(n);
    }

    /// Lets calls through again after a crash.
    pub fn heal(&self) {
        self.lock().crash_after = None;
    }

    /// Completes when the crash point is reached.
    pub async fn crashed(&self) {
        self.crash.notified().await
    }

    /// Deletes a resource behind vre's back.
    pub fn remove(&self, id: &str) {
        self.lock().resources.remove(id);
    }

    /// Adds a resource as if another process had made it.
    pub fn insert(&self, cluster: &str, r: CloudResource) {
        self.lock().resources.insert(
            r.id.clone(),
            Stored {
                cluster: cluster.to_string(),
                resource: r,
            },
        );
    }

    fn new_id(st: &mut CloudState, kind: &ResourceKind) -> String {
        st.next_id += 1;
        format!("{}-{:04}", kind.as_str(), st.next_id)
    }

    /// Records the call; applies injected faults and the crash point.
    async fn enter(&self, op: &str, detail: &str) -> Result<()> {
        let hang = {
            let mut st = self.lock();
            st.calls.push(if detail.is_empty() {
                op.to_string()
            } else {
                format!("{op}:{detail}")
            });
            match st.crash_after {
                Some(0) => true,
                Some(n) => {
                    st.crash_after = Some(n - 1);
                    false
                }
                None => false,
            }
        };
        if hang {
            self.crash.notify_waiters();
            self.crash.notify_one();
            std::future::pending::<()>().await;
        }
        let fault = {
            let mut st = self.lock();
            match st.faults.get_mut(op) {
                Some(v) if !v.is_empty() => Some(v.remove(0)),
                _ => None,
            }
        };
        tokio::task::yield_now().await;
        match fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn find(&self, cluster: &str, kind: &ResourceKind, name: &str) -> Option<CloudResource> {
        self.lock()
            .resources
            .values()
            .find(|s| s.cluster == cluster && &s.resource.kind == kind && s.resource.name == name)
            .map(|s| s.resource.clone())
    }

    fn create(&self, cluster: &str, r: CloudResource) -> CloudResource {
        let mut st = self.lock();
        let mut r = r;
        r.id = Self::new_id(&mut st, &r.kind);
        st.resources.insert(
            r.id.clone(),
            Stored {
                cluster: cluster.to_string(),
                resource: r.clone(),
            },
        );
        r
    }

    fn ensure(&self, cluster: &str, kind: ResourceKind, name: &str, key: Option<ResourceKey>) -> CloudResource {
        if let Some(r) = self.find(cluster, &kind, name) {
            return r;
        }
        let mut r = CloudResource::new(kind, "", name);
        r.key = key;
        self.create(cluster, r)
    }

    fn not_found(op: &str, id: &str) -> Error {
        CloudError::http("fake", op, 404, format!("{id} not found"), None).into()
    }
}

#[async_trait]
impl CloudProvider for FakeCloud {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn preflight(&self, _c: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        self.enter("preflight", "").await?;
        let flavors = self.lock().flavors.clone();
        Ok(request
            .groups()
            .filter(|g| !flavors.contains(&g.flavor))
            .map(|g| {
                PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "flavor \"{}\" does not exist on this cloud; available: {}",
                        g.flavor,
                        flavors.join(", ")
                    ),
                )
            })
            .collect())
    }

    async fn ensure_image(&self, _c: &ClusterRef, image: &ImageSpec, _p: &StepProgress) -> Result<CloudResource> {
        self.enter("ensure_image", &image.name).await?;
        Ok(CloudResource::new(
            ResourceKind::Image,
            format!("img-{}", image.name),
            &image.name,
        ))
    }

    async fn ensure_network(&self, c: &ClusterRef, req: &NetworkRequest) -> Result<NetworkInfo> {
        self.enter("ensure_network", "").await?;
        let net = self.ensure(
            &c.name,
            ResourceKind::Network,
            &c.resource_name("net"),
            Some(ResourceKey::network()),
        );
        let subnet = self.ensure(&c.name, ResourceKind::Subnet, &c.resource_name("subnet"), None);
        self.ensure(&c.name, ResourceKind::Router, &c.resource_name("router"), None);
        Ok(NetworkInfo {
            network: net
                .with_attr(attr::SUBNET_ID, subnet.id)
                .with_attr(attr::CIDR, req.cidr.to_string()),
            cidr: req.cidr,
        })
    }

    async fn ensure_security_group(
        &self,
        c: &ClusterRef,
        _n: &NetworkInfo,
        _r: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.enter("ensure_security_group", "").await?;
        Ok(self.ensure(
            &c.name,
            ResourceKind::SecurityGroup,
            &c.resource_name("sg"),
            Some(ResourceKey::security_group()),
        ))
    }

    async fn ensure_key_pair(&self, c: &ClusterRef, _k: &str) -> Result<CloudResource> {
        self.enter("ensure_key_pair", "").await?;
        Ok(self.ensure(
            &c.name,
            ResourceKind::KeyPair,
            &c.resource_name("key"),
            Some(ResourceKey::key_pair()),
        ))
    }

    async fn create_instances(&self, c: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        let missing: Vec<_> = batch
            .instances
            .iter()
            .filter(|r| self.find(&c.name, &ResourceKind::Instance, &r.name).is_none())
            .collect();
        self.enter("create_instances", &format!("{}x{}", batch.role, missing.len()))
            .await?;
        let mut out = Vec::new();
        for req in &batch.instances {
            if let Some(r) = self.find(&c.name, &ResourceKind::Instance, &req.name) {
                out.push(r);
                continue;
            }
            let mut r = CloudResource::new(ResourceKind::Instance, "", &req.name)
                .with_key(req.key.clone())
                .with_status(ResourceStatus::Pending)
                .with_attr(attr::FLAVOR, &batch.flavor)
                .with_attr(attr::ROLE, batch.role.as_str());
            if let Some(ip) = req.fixed_ip {
                r = r.with_attr(attr::PRIVATE_IP, ip.to_string());
            }
            out.push(self.create(&c.name, r));
        }
        Ok(out)
    }

    async fn wait_instances(
        &self,
        c: &ClusterRef,
        instances: &[CloudResource],
        _t: Duration,
        _p: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        self.enter("wait_instances", &instances.len().to_string()).await?;
        let mut st = self.lock();
        let mut out = Vec::new();
        for i in instances {
            st.next_ip += 1;
            let ip = Ipv4Addr::new(10, 0, (20 + st.next_ip / 250) as u8, (st.next_ip % 250) as u8 + 2);
            let doomed_at = st.doomed.iter().position(|n| n == &i.name);
            let Some(s) = st.resources.get_mut(&i.id).filter(|s| s.cluster == c.name) else {
                return Err(Self::not_found("wait_instances", &i.id));
            };
            if s.resource.status == ResourceStatus::Pending {
                if doomed_at.is_some() {
                    s.resource.status = ResourceStatus::Failed {
                        reason: "No valid host was found.".into(),
                    };
                } else {
                    s.resource.status = ResourceStatus::Ready;
                    s.resource
                        .attrs
                        .entry(attr::PRIVATE_IP.into())
                        .or_insert(ip.to_string());
                }
            }
            out.push(s.resource.clone());
            if let Some(p) = doomed_at {
                st.doomed.remove(p);
            }
        }
        Ok(out)
    }

    async fn create_volume(&self, c: &ClusterRef, req: &VolumeRequest) -> Result<CloudResource> {
        self.enter("create_volume", &req.name).await?;
        if let Some(v) = self.find(&c.name, &ResourceKind::Volume, &req.name) {
            return Ok(v);
        }
        Ok(self.create(
            &c.name,
            CloudResource::new(ResourceKind::Volume, "", &req.name)
                .with_key(req.key.clone())
                .with_attr(attr::SIZE_GB, req.size_gb.to_string()),
        ))
    }

    async fn attach_volume(
        &self,
        c: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.enter("attach_volume", &volume.name).await?;
        let name = format!("{}-data-attachment", instance.name);
        if let Some(a) = self.find(&c.name, &ResourceKind::VolumeAttachment, &name) {
            return Ok(a);
        }
        if !self.lock().resources.contains_key(&instance.id) {
            return Err(Self::not_found("attach_volume", &instance.id));
        }
        Ok(self.create(
            &c.name,
            CloudResource::new(ResourceKind::VolumeAttachment, "", name)
                .with_key(key.clone())
                .with_attr(attr::DEVICE, "/dev/vdb")
                .with_attr(attr::VOLUME_ID, &volume.id)
                .with_attr(attr::INSTANCE_ID, &instance.id),
        ))
    }

    async fn allocate_public_ip(&self, c: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.enter("allocate_public_ip", name).await?;
        if let Some(ip) = self.find(&c.name, &ResourceKind::PublicIp, name) {
            return Ok(ip);
        }
        let n = {
            let mut st = self.lock();
            st.next_ip += 1;
            st.next_ip
        };
        Ok(self.create(
            &c.name,
            CloudResource::new(ResourceKind::PublicIp, "", name)
                .with_key(key.clone())
                .with_attr(attr::ADDRESS, format!("203.0.113.{}", n % 250 + 1)),
        ))
    }

    async fn associate_public_ip(
        &self,
        c: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.enter("associate_public_ip", &ip.name).await?;
        let mut st = self.lock();
        let Some(s) = st.resources.get_mut(&ip.id).filter(|s| s.cluster == c.name) else {
            return Err(Self::not_found("associate_public_ip", &ip.id));
        };
        s.resource.attrs.insert(attr::INSTANCE_ID.into(), instance.id.clone());
        Ok(s.resource.clone())
    }

    async fn inventory(&self, c: &ClusterRef) -> Result<Vec<CloudResource>> {
        self.enter("inventory", "").await?;
        Ok(self.resources(&c.name))
    }

    async fn delete(&self, c: &ClusterRef, r: &CloudResource) -> Result<()> {
        self.enter("delete", r.kind.as_str()).await?;
        let mut st = self.lock();
        match st.resources.get(&r.id) {
            Some(s) if s.cluster == c.name => {
                st.resources.remove(&r.id);
                // attachments and IP bindings go with their instance
                if r.kind == ResourceKind::Instance {
                    st.resources.retain(|_, s| {
                        !(s.resource.kind == ResourceKind::VolumeAttachment
                            && s.resource.attr(attr::INSTANCE_ID) == Some(r.id.as_str()))
                    });
                }
                Ok(())
            }
            _ => Err(Self::not_found("delete", &r.id)),
        }
    }
}

/// A factory for [`FakeCloud`], for registry and CLI tests.
pub struct FakeCloudFactory {
    /// The cloud every build returns.
    pub cloud: FakeCloud,
}

#[async_trait]
impl ProviderFactory for FakeCloudFactory {
    fn name(&self) -> &str {
        "fake"
    }

    fn description(&self) -> &str {
        "an in-memory cloud for tests"
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: "# The fake cloud needs no credentials.".into(),
            image: "fake-image".into(),
            image_source: None,
            image_preinstalled: true,
            ssh_user: "ubuntu".into(),
            master_flavor: "m1.medium".into(),
            worker_flavor: "m1.medium".into(),
            storage_flavor: "m1.medium".into(),
            edge_flavor: "m1.small".into(),
            table: "[fake]\n# zone = \"a\"\n".into(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        let mut r = TableReader::new(&spec.provider_table, "fake");
        if let Some(z) = r.string(diags, "zone", "\"a\"")
            && z.value.is_empty()
        {
            diags.error("fake.zone", z.span, "is empty; write a zone such as \"a\"");
        }
        r.finish(diags, &["zone"]);
    }

    async fn build(&self, _ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        Ok(Arc::new(self.cloud.clone()))
    }
}

/// An orchestrator that records calls and reports every expected node Ready.
#[derive(Clone, Default)]
pub struct FakeOrchestrator {
    /// Every call, as `operation:detail`.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Every object applied.
    pub applied: Arc<Mutex<Vec<Manifest>>>,
    /// Where the kubeconfig path points.
    pub dir: PathBuf,
    /// Nodes that never join (wait_nodes times out naming them).
    pub never_join: Arc<Mutex<Vec<String>>>,
}

impl FakeOrchestrator {
    /// A fake with its kubeconfig path in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FakeOrchestrator {
            dir: dir.into(),
            ..Default::default()
        }
    }

    fn log(&self, s: impl Into<String>) {
        self.calls.lock().expect("poisoned").push(s.into());
    }

    /// Every call made so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("poisoned").clone()
    }
}

#[async_trait]
impl Orchestrator for FakeOrchestrator {
    fn name(&self) -> &str {
        "fake-kubernetes"
    }

    async fn prepare(&self, facts: &BootstrapFacts) -> Result<()> {
        self.log(format!("prepare:{}", facts.master_private_ip));
        Ok(())
    }

    fn user_data(&self, role: Role, facts: &BootstrapFacts) -> Result<String> {
        Ok(format!(
            "#cloud-config\n# {role} joins {}:{}\n",
            facts.master_private_ip, facts.api_port
        ))
    }

    async fn connect(&self, api: SocketAddr, _f: &BootstrapFacts) -> Result<PathBuf> {
        self.log(format!("connect:{api}"));
        Ok(self.kubeconfig_path())
    }

    async fn wait_nodes(
        &self,
        expected: &[ExpectedNode],
        timeout: Duration,
        events: &EventSink,
    ) -> Result<Vec<NodeState>> {
        self.log(format!("wait_nodes:{}", expected.len()));
        let never = self.never_join.lock().expect("poisoned").clone();
        let missing: Vec<&str> = expected
            .iter()
            .filter(|n| never.contains(&n.name))
            .map(|n| n.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Timeout {
                what: format!("{} of {} nodes", missing.len(), expected.len()),
                after: timeout,
                hint: format!("never joined: {}", missing.join(", ")),
            });
        }
        events.emit(Event::NodesReady {
            ready: expected.len(),
            expected: expected.len(),
        });
        Ok(expected
            .iter()
            .map(|n| NodeState {
                name: n.name.clone(),
                role: Some(n.role),
                ready: true,
                reason: None,
                internal_ip: n.private_ip.map(|i| i.to_string()),
                kubelet_version: None,
            })
            .collect())
    }

    async fn install_base(&self, facts: &ClusterFacts) -> Result<()> {
        self.log(format!("install_base:{}", facts.nodes.len()));
        Ok(())
    }

    async fn apply(&self, objects: &[Manifest]) -> Result<()> {
        self.log(format!("apply:{}", objects.len()));
        self.applied.lock().expect("poisoned").extend(objects.iter().cloned());
        Ok(())
    }

    async fn wait_ready(&self, checks: &[ReadinessCheck], _t: Duration) -> Result<()> {
        self.log(format!("wait_ready:{}", checks.len()));
        Ok(())
    }

    async fn delete(&self, objects: &[Manifest]) -> Result<()> {
        self.log(format!("delete:{}", objects.len()));
        Ok(())
    }

    async fn drain(&self, node: &str, _t: Duration) -> Result<()> {
        self.log(format!("drain:{node}"));
        Ok(())
    }

    async fn remove_node(&self, node: &str) -> Result<()> {
        self.log(format!("remove_node:{node}"));
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeState>> {
        Ok(Vec::new())
    }

    fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}
