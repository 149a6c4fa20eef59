//! The typed cluster spec: what `vre.toml` says, and what a library user
//! builds in code.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::document::Table;

/// A node's role in KubeNow's topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The control plane (exactly one).
    Master,
    /// Workers for ordinary pods.
    Service,
    /// Nodes with data volumes serving shared storage.
    Storage,
    /// Nodes running the edge load balancer.
    Edge,
}

impl Role {
    /// Every role, in creation order.
    pub const ALL: [Role; 4] = [Role::Master, Role::Service, Role::Storage, Role::Edge];

    /// The lower-case name (`service`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Service => "service",
            Role::Storage => "storage",
            Role::Edge => "edge",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; use one of master, service, storage, edge"))
    }
}

/// The nodes of one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// The group's role.
    pub role: Role,
    /// Number of nodes.
    pub count: u32,
    /// Flavor / instance type / machine type, as the cloud names it.
    pub flavor: String,
    /// Root disk size; `None` keeps the flavor's or image's default.
    pub root_disk_gb: Option<u32>,
    /// Size of the extra block volume attached to each node (storage nodes).
    pub volume_gb: Option<u32>,
    /// Whether each node of the group gets a public (floating) IP.
    pub public_ip: bool,
}

impl NodeGroup {
    /// A group of `count` nodes of `role` on `flavor`, with no volume.
    pub fn new(role: Role, count: u32, flavor: impl Into<String>) -> Self {
        NodeGroup {
            role,
            count,
            flavor: flavor.into(),
            root_disk_gb: None,
            volume_gb: None,
            public_ip: matches!(role, Role::Master | Role::Edge),
        }
    }
}

/// The machine image nodes boot from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Image name on the cloud.
    pub name: String,
    /// Where to import the image from when the cloud does not have it.
    pub source: Option<String>,
    /// `true`: kubeadm, kubelet and containerd are already on the image (fast
    /// boots, as KubeNow's images); `false`: a vanilla Ubuntu LTS image, the
    /// user data installs them first.
    pub preinstalled: bool,
}

/// SSH access to the nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SshSpec {
    /// The image's SSH user.
    pub user: String,
    /// Path of the public key, relative to the deployment directory.
    pub public_key: PathBuf,
}

/// An IPv4 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// A CIDR; `addr` must be the network address.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!("prefix /{prefix} is longer than 32"));
        }
        let c = Ipv4Cidr { addr, prefix };
        if c.network() != addr {
            return Err(format!(
                "{addr}/{prefix} has host bits set; the network is {}/{prefix}",
                c.network()
            ));
        }
        Ok(c)
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// Number of addresses usable by hosts (excluding network and broadcast).
    pub fn host_count(&self) -> u64 {
        let size = 1u64 << (32 - u32::from(self.prefix));
        size.saturating_sub(2)
    }

    /// The `n`-th address of the network (`n = 1` is the usual gateway).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        if u64::from(n) > self.host_count() {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.network()) + n))
    }

    /// The two share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("\"{s}\" is not in CIDR notation"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("\"{a}\" is not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("\"/{p}\" is not a prefix length"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> String {
        c.to_string()
    }
}

/// A TCP port or an inclusive range of ports opened to the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub from: u16,
    /// Last port (inclusive).
    pub to: u16,
}

impl PortRange {
    /// The single port `p`.
    pub fn single(p: u16) -> Self {
        PortRange { from: p, to: p }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// The cluster network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The cluster subnet (ignored when an existing network is reused).
    pub cidr: Ipv4Cidr,
    /// Resolvers for the subnet.
    pub dns_servers: Vec<IpAddr>,
    /// Ports opened to the world on every node (intra-cluster traffic is always open).
    pub ingress_ports: Vec<PortRange>,
    /// The master's fixed private address; every node learns it before boot
    /// so all groups boot at once. Default: host 10 of `cidr`.
    pub master_ip: Option<Ipv4Addr>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            cidr: Ipv4Cidr {
                addr: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 24,
            },
            dns_servers: vec![
                IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            ],
            ingress_ports: [22, 80, 443, 6443].into_iter().map(PortRange::single).collect(),
            master_ip: None,
        }
    }
}

impl NetworkSpec {
    /// The master's private address in `cidr`.
    pub fn master_address(&self, cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
        master_address(self.master_ip, cidr)
    }
}

/// The master's private address in `cidr`: `master_ip` when it lies in
/// `cidr`, none when it does not, else host 10 (or 2 in tiny subnets).
pub fn master_address(master_ip: Option<Ipv4Addr>, cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
    match master_ip {
        Some(ip) if cidr.contains(ip) => Some(ip),
        Some(_) => None,
        None => cidr.host(10).or_else(|| cidr.host(2)),
    }
}

/// The Kubernetes settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubernetesSpec {
    /// `MAJOR.MINOR.PATCH`, e.g. `1.30.2`.
    pub version: String,
    /// Pod network CIDR.
    pub pod_cidr: Ipv4Cidr,
    /// Service network CIDR.
    pub service_cidr: Ipv4Cidr,
    /// The CNI plugin (`flannel`).
    pub cni: String,
}

impl Default for KubernetesSpec {
    fn default() -> Self {
        KubernetesSpec {
            version: "1.30.2".into(),
            pod_cidr: "10.244.0.0/16".parse().expect("constant"),
            service_cidr: "10.96.0.0/12".parse().expect("constant"),
            cni: "flannel".into(),
        }
    }
}

/// Shared POSIX storage (GlusterFS on the storage nodes) and S3 object storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageSpec {
    /// Shared storage is installed.
    pub enabled: bool,
    /// Object storage is installed too.
    pub object_storage: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            enabled: true,
            object_storage: true,
        }
    }
}

/// How the edge serves HTTPS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum HttpsMode {
    /// Plain HTTP on the edge (HTTPS may still be terminated by a proxy).
    None,
    /// Cloudflare proxies the records and terminates TLS (as KubeNow).
    Cloudflare,
    /// Traefik obtains certificates from an ACME CA (Let's Encrypt).
    Acme {
        /// The ACME account e-mail.
        email: String,
        /// Use the CA's staging endpoint (untrusted certificates, high limits).
        staging: bool,
    },
}

/// The edge load balancer (Traefik).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerSpec {
    /// It is installed.
    pub enabled: bool,
    /// How it serves HTTPS.
    pub https: HttpsMode,
    /// Its dashboard is exposed.
    pub dashboard: bool,
}

impl Default for LoadBalancerSpec {
    fn default() -> Self {
        LoadBalancerSpec {
            enabled: true,
            https: HttpsMode::None,
            dashboard: false,
        }
    }
}

/// Where the edge's DNS records live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum DnsSpec {
    /// `<edge-ip>.nip.io`: no account, no API calls.
    NipIo,
    /// Records in a Cloudflare zone; token from `CLOUDFLARE_API_TOKEN`.
    Cloudflare {
        /// The Cloudflare zone.
        zone: String,
        /// Records go under this subdomain of the zone.
        subdomain: Option<String>,
        /// Records are proxied by Cloudflare.
        proxied: bool,
    },
    /// No records; apps are reached by edge IP.
    None,
}

impl DnsSpec {
    /// The provider's name (`nip.io`, `cloudflare`, `none`).
    pub fn name(&self) -> &'static str {
        match self {
            DnsSpec::NipIo => "nip.io",
            DnsSpec::Cloudflare { .. } => "cloudflare",
            DnsSpec::None => "none",
        }
    }
}

/// An application installed after the microservices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    /// The app's name (its host under the domain).
    pub name: String,
    /// The namespace it is installed in.
    pub namespace: String,
    /// Where it comes from.
    pub source: AppSource,
    /// Expose `<name>.<domain>` through the edge to this service port.
    pub expose: Option<AppExpose>,
}

/// Where an app comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AppSource {
    /// A Helm chart (installed with the `helm` binary).
    Chart {
        /// The chart repository URL.
        repo: String,
        /// The chart name.
        chart: String,
        /// The chart version.
        version: String,
        /// Values file, relative to the deployment directory.
        values: Option<PathBuf>,
    },
    /// Plain Kubernetes manifests (multi-document YAML), relative to the deployment directory.
    Manifest {
        /// The manifest file.
        path: PathBuf,
    },
}

/// How an app is exposed at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppExpose {
    /// The Kubernetes service.
    pub service: String,
    /// Its port.
    pub port: u16,
}

/// How the engine runs (not what it builds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSpec {
    /// Steps running at once.
    pub parallelism: usize,
    /// Attempts for a retriable cloud error, the first included.
    pub max_attempts: u32,
    /// How long nodes may take to boot and join.
    pub node_timeout_secs: u64,
    /// How long a microservice may take to become ready.
    pub ready_timeout_secs: u64,
}

impl Default for EngineSpec {
    fn default() -> Self {
        EngineSpec {
            parallelism: 16,
            max_attempts: 8,
            node_timeout_secs: 1200,
            ready_timeout_secs: 900,
        }
    }
}

/// Everything one VRE is made of. Build it from `vre.toml` with
/// [`crate::ProviderRegistry::load_spec`] or in code with [`ClusterSpec::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// DNS-safe; prefix of every resource name and value of the cluster tag.
    pub name: String,
    /// A provider registered in the [`crate::ProviderRegistry`].
    pub provider: String,
    /// Kubernetes settings.
    pub kubernetes: KubernetesSpec,
    /// The node image.
    pub image: ImageSpec,
    /// SSH access.
    pub ssh: SshSpec,
    /// One group per role, in [`Role::ALL`] order.
    pub nodes: Vec<NodeGroup>,
    /// The master runs the edge load balancer (default: when there are no edge nodes).
    pub master_as_edge: bool,
    /// The cluster network.
    pub network: NetworkSpec,
    /// Shared and object storage.
    pub storage: StorageSpec,
    /// The edge load balancer.
    pub loadbalancer: LoadBalancerSpec,
    /// DNS for the edge.
    pub dns: DnsSpec,
    /// Apps installed last.
    pub apps: Vec<AppSpec>,
    /// Engine tuning.
    pub engine: EngineSpec,
    /// The provider's own table (`[openstack]`, `[aws]`, ...), parsed by its factory.
    pub provider_table: Table,
}

impl ClusterSpec {
    /// A spec with KubeNow's defaults: one master, nothing else, master as edge.
    pub fn new(name: impl Into<String>, provider: impl Into<String>) -> Self {
        ClusterSpec {
            name: name.into(),
            provider: provider.into(),
            kubernetes: KubernetesSpec::default(),
            image: ImageSpec {
                name: "ubuntu-24.04".into(),
                source: None,
                preinstalled: false,
            },
            ssh: SshSpec {
                user: "ubuntu".into(),
                public_key: PathBuf::from("ssh_key.pub"),
            },
            nodes: Role::ALL
                .into_iter()
                .map(|r| NodeGroup::new(r, u32::from(r == Role::Master), "m1.medium"))
                .collect(),
            master_as_edge: true,
            network: NetworkSpec::default(),
            storage: StorageSpec {
                enabled: false,
                object_storage: false,
            },
            loadbalancer: LoadBalancerSpec::default(),
            dns: DnsSpec::NipIo,
            apps: Vec::new(),
            engine: EngineSpec::default(),
            provider_table: Table::default(),
        }
    }

    /// The group of `role`, if the spec has one.
    pub fn group(&self, role: Role) -> Option<&NodeGroup> {
        self.nodes.iter().find(|g| g.role == role)
    }

    /// The group of `role`, added (empty) when absent.
    pub fn group_mut(&mut self, role: Role) -> &mut NodeGroup {
        if let Some(i) = self.nodes.iter().position(|g| g.role == role) {
            return &mut self.nodes[i];
        }
        self.nodes.push(NodeGroup::new(role, 0, "m1.medium"));
        self.nodes.sort_by_key(|g| g.role);
        let i = self.nodes.iter().position(|g| g.role == role).expect("just pushed");
        &mut self.nodes[i]
    }

    /// Nodes of `role` (0 without a group).
    pub fn count(&self, role: Role) -> u32 {
        self.group(role).map_or(0, |g| g.count)
    }

    /// Nodes in all.
    pub fn total_nodes(&self) -> u64 {
        self.nodes.iter().map(|g| u64::from(g.count)).sum()
    }

    /// The roles whose nodes run the edge load balancer.
    pub fn edge_roles(&self) -> Vec<Role> {
        let mut roles = Vec::new();
        if self.count(Role::Edge) > 0 {
            roles.push(Role::Edge);
        }
        if self.master_as_edge {
            roles.push(Role::Master);
        }
        roles
    }

    /// Name of node `index` (1-based) of `role`: `<cluster>-<role>-<index>`.
    pub fn node_name(&self, role: Role, index: u32) -> String {
        node_name(&self.name, role, index)
    }
}

/// Name of node `index` (1-based) of `role` in `cluster`.
pub fn node_name(cluster: &str, role: Role, index: u32) -> String {
    format!("{cluster}-{role}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_checks_host_bits() {
        let c: Ipv4Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert_eq!(c.host(10), Some("10.1.0.10".parse().unwrap()));
        assert!("10.1.0.1/16".parse::<Ipv4Cidr>().unwrap_err().contains("host bits"));
        assert!("10.1.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.0.0/33".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn master_address_defaults_to_host_ten() {
        let n = NetworkSpec::default();
        assert_eq!(n.master_address(&n.cidr), Some("10.0.0.10".parse().unwrap()));
    }
}
