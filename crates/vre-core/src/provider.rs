//! The `CloudProvider` trait every cloud implements, the requests the engine
//! hands it, and the registry through which the CLI and library users find
//! providers by name.
//!
//! # Contract
//! Every create is keyed by the resource's unique name (`<cluster>-...`) and
//! tagged with [`crate::CLUSTER_TAG`] and [`crate::KEY_TAG`] (or the cloud's
//! nearest equivalent). Calling it again after a timeout or a crash must not
//! make a second resource: look the name up first, or use the cloud's
//! idempotency token. The engine relies on this to retry and to resume.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::dialer::DialerSlot;
use crate::error::{Error, Result};
use crate::events::{EventSink, StepProgress};
use crate::spec_field::PreflightProblem;

use crate::resource::{CloudResource, ResourceKey, ResourceKind};
use crate::spec::{
    ClusterSpec, Diagnostics, ImageSpec, Ipv4Cidr, LoadedSpec, NodeGroup, PortRange, ProviderTables, Role, SPEC_FILE,
    parse_spec,
};

/// What a cloud offers natively.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// One call creates many identical instances (Nova multiple-create, EC2
    /// RunInstances count, GCE bulkInsert).
    pub multi_create: bool,
    /// Largest batch one such call accepts: the engine splits a larger role
    /// group into several calls of at most this many instances.
    pub max_batch: u32,
    /// Public IPs are bound when the instance is created (GCE, Azure); otherwise
    /// they are associated once the instance is running (OpenStack, AWS).
    pub public_ip_at_create: bool,
    /// The subnet's DNS resolvers are set from `network.dns_servers`
    /// (OpenStack); otherwise instances use the cloud's own resolver and a
    /// non-default setting is reported as ignored.
    pub custom_dns_servers: bool,
}

/// Everything one call needs to know about the cluster it works for.
#[derive(Clone, Debug)]
pub struct ClusterRef {
    /// The cluster name (tag value and name prefix).
    pub name: String,
}

impl ClusterRef {
    /// A reference to the cluster called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ClusterRef { name: name.into() }
    }

    /// `<cluster>-<suffix>`: the name of a cluster-wide resource.
    pub fn resource_name(&self, suffix: &str) -> String {
        format!("{}-{}", self.name, suffix)
    }
}

/// The cluster network the provider must make sure exists.
#[derive(Clone, Debug)]
pub struct NetworkRequest {
    /// The cluster subnet (`network.cidr`).
    pub cidr: Ipv4Cidr,
    /// The subnet's resolvers (`network.dns_servers`).
    pub dns_servers: Vec<IpAddr>,
    /// The master's fixed address as the spec sets it (`network.master_ip`);
    /// `None` picks host 10 of the subnet. See [`NetworkRequest::master_address`].
    pub master_ip: Option<Ipv4Addr>,
}

impl NetworkRequest {
    /// The master's private address in `cidr` (the subnet actually used,
    /// which may be a reused one): the spec's `master_ip` when it lies in
    /// `cidr`, else host 10 (or 2 in tiny subnets).
    pub fn master_address(&self, cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
        crate::spec::master_address(self.master_ip, cidr)
    }
}

/// What [`CloudProvider::preflight`] checks against the cloud.
#[derive(Clone, Debug)]
pub struct PreflightRequest {
    /// Every node group of the spec (groups with `count = 0` included).
    pub nodes: Vec<NodeGroup>,
    /// The image nodes boot from.
    pub image: ImageSpec,
    /// The cluster network.
    pub network: NetworkRequest,
}

impl PreflightRequest {
    /// The groups that have nodes.
    pub fn groups(&self) -> impl Iterator<Item = &NodeGroup> {
        self.nodes.iter().filter(|g| g.count > 0)
    }

    /// Nodes in all groups.
    pub fn total_nodes(&self) -> u64 {
        self.nodes.iter().map(|g| u64::from(g.count)).sum()
    }
}

/// The network as built: the primary resource and what instances need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The network itself (`key = network`); `attrs` carry ids such as
    /// [`crate::resource::attr::SUBNET_ID`].
    pub network: CloudResource,
    /// The subnet nodes get their addresses from.
    pub cidr: Ipv4Cidr,
}

/// The cluster's security group.
#[derive(Clone, Debug)]
pub struct SecurityGroupRequest {
    /// Ports opened to the world; all traffic between members is allowed.
    pub ingress_ports: Vec<PortRange>,
    /// The master's private address in the network as built, for clouds that
    /// reserve it together with the security group (Azure's master NIC).
    pub master_ip: Option<Ipv4Addr>,
}

/// One node to create.
#[derive(Clone, Debug)]
pub struct InstanceRequest {
    /// The node's logical key.
    pub key: ResourceKey,
    /// `<cluster>-<role>-<index>`; unique in the cluster and the node's hostname.
    pub name: String,
    /// The node's index in its role group (from 1).
    pub index: u32,
    /// A fixed private address (the master's), when the provider supports it.
    pub fixed_ip: Option<Ipv4Addr>,
    /// A public IP allocated beforehand, for providers that bind it at creation.
    pub public_ip: Option<CloudResource>,
}

/// Nodes of one role group, created together: a single multi-create call
/// where the cloud has one. Every instance gets the same user data, which
/// holds the join token (and on the master the CA key): `Debug` leaves it
/// out, and nothing may log or store it.
#[derive(Clone)]
pub struct InstanceBatch {
    /// The group's role.
    pub role: Role,
    /// The flavor (instance type) of every node.
    pub flavor: String,
    /// Root disk size, when the spec sets one.
    pub root_disk_gb: Option<u32>,
    /// The image to boot.
    pub image: CloudResource,
    /// The network to attach to.
    pub network: NetworkInfo,
    /// The security group to put them in.
    pub security_group: CloudResource,
    /// The SSH key pair to install.
    pub key_pair: CloudResource,
    /// cloud-init user data for the group (plain text; providers encode it).
    pub user_data: String,
    /// The image's login user (`ssh.user`), for clouds that create it at boot.
    pub ssh_user: String,
    /// The nodes to create.
    pub instances: Vec<InstanceRequest>,
    /// Deterministic idempotency token for this batch (EC2 ClientToken).
    pub token: String,
    /// Progress of the engine step creating the group.
    pub progress: StepProgress,
}

impl std::fmt::Debug for InstanceBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceBatch")
            .field("role", &self.role)
            .field("flavor", &self.flavor)
            .field("root_disk_gb", &self.root_disk_gb)
            .field("image", &self.image.name)
            .field("network", &self.network.network.name)
            .field("security_group", &self.security_group.name)
            .field("key_pair", &self.key_pair.name)
            .field("user_data", &format_args!("<{} bytes, redacted>", self.user_data.len()))
            .field("instances", &self.instances)
            .field("ssh_user", &self.ssh_user)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A data volume to create.
#[derive(Clone, Debug)]
pub struct VolumeRequest {
    /// The volume's logical key.
    pub key: ResourceKey,
    /// `<cluster>-<role>-<index>-data`.
    pub name: String,
    /// Size in GB.
    pub size_gb: u32,
}

/// A cloud, as the engine drives it. Object-safe; used as `Arc<dyn CloudProvider>`.
// automock goes before #[async_trait] (mockall must see the `async fn`s)
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// The registered provider name.
    fn name(&self) -> &str;

    /// What this cloud offers natively.
    fn capabilities(&self) -> Capabilities;

    /// Checks the spec against the cloud before anything is created: that
    /// flavors, the image (or its import source), the external network and
    /// quotas exist. Returns every problem, each naming its [`crate::SpecField`].
    async fn preflight(&self, cluster: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>>;

    /// Finds the image by name, importing it from `image.source` when absent;
    /// returns once it is usable.
    async fn ensure_image(
        &self,
        cluster: &ClusterRef,
        image: &ImageSpec,
        progress: &StepProgress,
    ) -> Result<CloudResource>;

    /// Network, subnet and the route to the internet (router, gateway), or
    /// the existing network the provider's table names.
    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo>;

    /// A security group allowing all traffic between its members plus the ingress ports.
    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource>;

    /// Imports the SSH public key.
    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource>;

    /// Creates the batch's instances that do not exist yet (one call when the
    /// cloud supports multi-create) and returns all of them, possibly still pending.
    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>>;

    /// Waits until the instances are running with their addresses known.
    /// Polls in batches (never one call per instance per second); an
    /// instance the cloud put in error is reported with the cloud's reason.
    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>>;

    /// Creates a data volume (or returns the one with its name).
    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource>;

    /// Attaches `volume` to `instance` (no-op when already attached); the
    /// result is a `VolumeAttachment` with the device in `attrs`.
    async fn attach_volume(
        &self,
        cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource>;

    /// Allocates a public IP for the node `key` belongs to (before the node
    /// exists, so its address can go into certificates).
    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource>;

    /// Binds an allocated public IP to a running instance (no-op when bound).
    async fn associate_public_ip(
        &self,
        cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource>;

    /// Every resource tagged with the cluster (or named with its prefix),
    /// keyed where the provider can tell. The source of truth for plan and destroy.
    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>>;

    /// Deletes one resource and returns once it is gone; a resource already
    /// gone is success.
    async fn delete(&self, cluster: &ClusterRef, resource: &CloudResource) -> Result<()>;

    /// The destroy wave of `kind` (lower goes first).
    fn destroy_rank(&self, kind: &ResourceKind) -> u32 {
        kind.destroy_rank()
    }
}

/// The text `vre init` writes for a provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderTemplate {
    /// Comment lines for the top of vre.toml: where credentials come from.
    pub credentials: String,
    /// Image name.
    pub image: String,
    /// Where to import the image from when it is absent.
    pub image_source: Option<String>,
    /// The image has kubeadm, kubelet and containerd.
    pub image_preinstalled: bool,
    /// SSH user of the image.
    pub ssh_user: String,
    /// Default master flavor.
    pub master_flavor: String,
    /// Default service (worker) flavor.
    pub worker_flavor: String,
    /// Default storage flavor.
    pub storage_flavor: String,
    /// Default edge flavor.
    pub edge_flavor: String,
    /// The provider's own table, commented TOML including its `[header]`.
    pub table: String,
}

/// What a factory gets to build a provider.
#[derive(Clone)]
pub struct ProviderContext {
    /// The validated spec.
    pub spec: Arc<ClusterSpec>,
    /// The deployment directory (state, keys, kubeconfig live here).
    pub dir: PathBuf,
    /// Where the provider reports progress.
    pub events: EventSink,
    /// Environment variables (passed in so tests control them).
    pub env: BTreeMap<String, String>,
    /// How vre reaches addresses inside the cloud: direct unless the
    /// factory installs another [`crate::Dialer`] (the embedded simulator maps
    /// machine addresses to loopback).
    pub dialer: DialerSlot,
}

impl ProviderContext {
    /// A context for `spec` in `dir`, with the process environment.
    pub fn new(spec: Arc<ClusterSpec>, dir: PathBuf) -> Self {
        ProviderContext {
            spec,
            dir,
            events: EventSink::none(),
            env: std::env::vars().collect(),
            dialer: DialerSlot::default(),
        }
    }

    /// A non-empty environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Makes a provider from a spec. Registered by name in a [`ProviderRegistry`];
/// downstream crates add clouds by implementing this.
#[async_trait]
pub trait ProviderFactory: Send + Sync {
    /// The value of `provider = "..."`.
    fn name(&self) -> &str;

    /// One line for `vre providers`.
    fn description(&self) -> &str;

    /// The provider's table in vre.toml (default: its name).
    fn table(&self) -> &str {
        self.name()
    }

    /// What `vre init` writes for this provider.
    fn template(&self) -> ProviderTemplate;

    /// Reads `spec.provider_table` with [`crate::spec::TableReader`],
    /// reporting every problem (unknown keys included) into `diags`.
    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics);

    /// Resolves credentials from the cloud's standard sources, without any
    /// network call; a missing credential is [`Error::Credentials`] naming the
    /// variable or file to set. Then builds the provider.
    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>>;
}

/// `name -> factory`, open to downstream crates.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    factories: BTreeMap<String, Arc<dyn ProviderFactory>>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a factory; a name registered twice is replaced (last wins), so a
    /// downstream crate can override a built-in provider.
    pub fn register(&mut self, factory: Arc<dyn ProviderFactory>) -> &mut Self {
        self.factories.insert(factory.name().to_string(), factory);
        self
    }

    /// The factory registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn ProviderFactory>> {
        self.factories.get(name).cloned()
    }

    /// Every factory, by name.
    pub fn factories(&self) -> impl Iterator<Item = &Arc<dyn ProviderFactory>> {
        self.factories.values()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// Each provider's table name, for spec parsing.
    pub fn tables(&self) -> ProviderTables {
        ProviderTables {
            tables: self
                .factories
                .values()
                .map(|f| (f.name().to_string(), f.table().to_string()))
                .collect(),
        }
    }

    /// Parses and validates spec text (as found in `dir`), the provider's
    /// table included. Every problem comes back at once.
    pub fn parse_spec(&self, text: &str, file: &str, dir: &std::path::Path) -> Result<LoadedSpec> {
        let check = |spec: &ClusterSpec, diags: &mut Diagnostics| {
            if let Some(f) = self.get(&spec.provider) {
                f.check_table(spec, diags);
            }
        };
        parse_spec(text, file, dir, &self.tables(), &check).map_err(Error::Spec)
    }

    /// Reads `<dir>/vre.toml`.
    pub fn load_spec(&self, dir: &std::path::Path) -> Result<LoadedSpec> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(
                    SPEC_FILE,
                    format!(
                        "{} not found; run `vre init <provider> {}` or pass -C <dir>",
                        path.display(),
                        dir.display()
                    ),
                )
            } else {
                Error::io(format!("reading {}", path.display()), e)
            }
        })?;
        self.parse_spec(&text, SPEC_FILE, dir)
    }

    /// Builds the provider a loaded spec names.
    pub async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        let f = self.get(&ctx.spec.provider).ok_or_else(|| {
            Error::input(
                "provider",
                format!(
                    "unknown provider \"{}\"; registered: {}",
                    ctx.spec.provider,
                    self.names().join(", ")
                ),
            )
        })?;
        f.build(ctx).await
    }
}
