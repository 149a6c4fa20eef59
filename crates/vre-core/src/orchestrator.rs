//! The middle layer: the container orchestrator (Kubernetes) that nodes
//! join by themselves at boot, and the facts handed to it and to the
//! microservices.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::events::EventSink;
use crate::spec::{ClusterSpec, Role};

/// The node label carrying a node's role (`vre.io/role=storage`). Set by the
/// kubelet at registration (kubelets may not set `node-role.kubernetes.io/*`
/// themselves), used by microservices as their node selector.
pub const NODE_ROLE_LABEL: &str = "vre.io/role";
/// The conventional role label the orchestrator adds after a node joins
/// (`node-role.kubernetes.io/<role>`), so `kubectl get nodes` shows roles.
pub const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// Taint key keeping ordinary pods off storage nodes (KubeNow's
/// `dedicated=fileserver`): `dedicated=storage:NoSchedule`.
pub const STORAGE_TAINT_KEY: &str = "dedicated";
/// Taint value paired with [`STORAGE_TAINT_KEY`].
pub const STORAGE_TAINT_VALUE: &str = "storage";
/// Field manager of every server-side apply vre makes.
pub const FIELD_MANAGER: &str = "vre";

/// What a node's bootstrap (user data) needs to know, all of it known before
/// any instance exists, so every role group boots at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapFacts {
    /// The cluster name.
    pub cluster: String,
    /// The master's fixed private address: the API endpoint nodes join.
    pub master_private_ip: Ipv4Addr,
    /// The master's public address, when it has one (goes into the API certificate).
    pub master_public_ip: Option<IpAddr>,
    /// The API server port.
    pub api_port: u16,
    /// Kubernetes version to install (`1.33`).
    pub kubernetes_version: String,
    /// Pod network CIDR.
    pub pod_cidr: String,
    /// Service network CIDR.
    pub service_cidr: String,
    /// kubeadm, kubelet and containerd are on the image.
    pub image_preinstalled: bool,
    /// The user cloud-init sets up for SSH.
    pub ssh_user: String,
    /// Whether the master also carries the edge role (labels).
    pub master_as_edge: bool,
    /// The master is the only node: leave it untainted.
    pub single_node: bool,
}

/// A node the engine expects to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedNode {
    /// The node name (`<cluster>-<role>-<index>`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its private address, when known.
    pub private_ip: Option<IpAddr>,
}

/// A node as the orchestrator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node name.
    pub name: String,
    /// Its role, from the role label.
    pub role: Option<Role>,
    /// The Ready condition is true.
    pub ready: bool,
    /// Why it is not ready (condition message), when it is not.
    pub reason: Option<String>,
    /// The InternalIP address it reports.
    pub internal_ip: Option<String>,
    /// The kubelet version it reports.
    pub kubelet_version: Option<String>,
}

/// A running node, for the microservices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFact {
    /// The node name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its private address, when known.
    pub private_ip: Option<IpAddr>,
    /// Its public address, when it has one.
    pub public_ip: Option<IpAddr>,
    /// The data volume's device (storage nodes).
    pub volume_device: Option<String>,
}

/// The cluster as the microservices and DNS see it once nodes are up.
#[derive(Clone, Debug)]
pub struct ClusterFacts {
    /// The spec the cluster was built from.
    pub spec: Arc<ClusterSpec>,
    /// Every node of the spec.
    pub nodes: Vec<NodeFact>,
    /// Public addresses of the nodes running the edge load balancer.
    pub edge_ips: Vec<IpAddr>,
    /// The domain apps live under (`<app>.<domain>`), when DNS gives one.
    pub domain: Option<String>,
    /// `https://host:port` of the API server as vre reaches it.
    pub api_endpoint: String,
    /// The deployment directory (for files apps refer to).
    pub dir: PathBuf,
}

impl ClusterFacts {
    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.spec.name
    }

    /// The nodes of `role`.
    pub fn nodes_with(&self, role: Role) -> impl Iterator<Item = &NodeFact> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    /// Host name of `app` under the cluster domain, if there is one.
    pub fn host_for(&self, app: &str) -> Option<String> {
        self.domain.as_ref().map(|d| format!("{app}.{d}"))
    }
}

/// A Kubernetes (or other orchestrator) object, as JSON. vre-core carries no
/// client library; the orchestrator turns these into API calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Manifest(pub serde_json::Value);

impl Manifest {
    /// Wraps a JSON object.
    pub fn new(value: serde_json::Value) -> Self {
        Manifest(value)
    }

    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.0;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    }

    /// `apiVersion`, or empty.
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"]).unwrap_or("")
    }

    /// `kind`, or empty.
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"]).unwrap_or("")
    }

    /// `metadata.name`, or empty.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"]).unwrap_or("")
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at(&["metadata", "namespace"])
    }

    /// `Kind/namespace/name` for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.kind(), ns, self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }
}

/// How to tell a microservice is up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum ReadinessCheck {
    /// A DaemonSet, Deployment or StatefulSet has rolled out: every desired
    /// pod updated and ready (observedGeneration current).
    Rollout {
        /// `DaemonSet`, `Deployment` or `StatefulSet`.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A PersistentVolumeClaim is Bound.
    PvcBound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An object exists.
    Exists {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
        /// Its namespace (none for cluster-scoped objects).
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
}

impl std::fmt::Display for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadinessCheck::Rollout { kind, namespace, name } => write!(f, "{kind} {namespace}/{name} rolled out"),
            ReadinessCheck::PvcBound { namespace, name } => write!(f, "PVC {namespace}/{name} bound"),
            ReadinessCheck::Exists {
                kind, namespace, name, ..
            } => match namespace {
                Some(ns) => write!(f, "{kind} {ns}/{name} exists"),
                None => write!(f, "{kind} {name} exists"),
            },
        }
    }
}

/// The orchestrator layer. Object-safe; used as `Arc<dyn Orchestrator>`.
// automock goes before #[async_trait] (mockall must see the `async fn`s)
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Orchestrator: Send + Sync {
    /// The orchestrator's name (`kubernetes`).
    fn name(&self) -> &str;

    /// Creates (first time) or loads the cluster's bootstrap secrets (CA,
    /// join token) in the deployment directory, 0600. Local; idempotent.
    async fn prepare(&self, facts: &BootstrapFacts) -> Result<()>;

    /// User data (cloud-init) for every node of `role`: identical across the
    /// group so one multi-create call boots them all.
    fn user_data(&self, role: Role, facts: &BootstrapFacts) -> Result<String>;

    /// Points the orchestrator at the API server at `api` (as vre reaches
    /// it) and writes the admin kubeconfig; returns its path.
    async fn connect(&self, api: SocketAddr, facts: &BootstrapFacts) -> Result<PathBuf>;

    /// Waits (watching, not polling each node) until every expected node is
    /// registered and Ready, then makes sure role labels are in place. The
    /// timeout error names the nodes that never joined and the likely cause.
    async fn wait_nodes(
        &self,
        expected: &[ExpectedNode],
        timeout: Duration,
        events: &EventSink,
    ) -> Result<Vec<NodeState>>;

    /// What every VRE needs before microservices: the CNI. Idempotent.
    async fn install_base(&self, facts: &ClusterFacts) -> Result<()>;

    /// Server-side apply (field manager `vre`), in order. Idempotent.
    async fn apply(&self, objects: &[Manifest]) -> Result<()>;

    /// Waits until every check passes; the error names those that did not.
    async fn wait_ready(&self, checks: &[ReadinessCheck], timeout: Duration) -> Result<()>;

    /// Deletes objects (absent ones are fine), in the given order.
    async fn delete(&self, objects: &[Manifest]) -> Result<()>;

    /// Cordons the node and evicts its pods (DaemonSet pods stay).
    async fn drain(&self, node: &str, timeout: Duration) -> Result<()>;

    /// Removes the Node object.
    async fn remove_node(&self, node: &str) -> Result<()>;

    /// The nodes as the API server reports them.
    async fn nodes(&self) -> Result<Vec<NodeState>>;

    /// Where the admin kubeconfig is (or will be) written.
    fn kubeconfig_path(&self) -> PathBuf;
}
