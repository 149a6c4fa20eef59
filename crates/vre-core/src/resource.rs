//! Cloud resources as the engine sees them: a kind, the cloud's id, a name,
//! and the logical key that ties it to the cluster's resource graph.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::spec::Role;

/// The tag (label, metadata key) every resource of a cluster carries, with
/// the cluster name as value. Clouds that restrict characters (GCP labels)
/// use [`CLUSTER_LABEL`] instead.
pub const CLUSTER_TAG: &str = "vre:cluster";
/// [`CLUSTER_TAG`] for clouds whose label keys allow only `[a-z0-9_-]`.
pub const CLUSTER_LABEL: &str = "vre-cluster";
/// The tag holding a resource's logical key ([`ResourceKey`]).
pub const KEY_TAG: &str = "vre:key";
/// [`KEY_TAG`] for label-restricted clouds.
pub const KEY_LABEL: &str = "vre-key";
/// The tag holding a node's role.
pub const ROLE_TAG: &str = "vre:role";
/// [`ROLE_TAG`] for label-restricted clouds.
pub const ROLE_LABEL: &str = "vre-role";

/// Well-known attribute names in [`CloudResource::attrs`].
pub mod attr {
    /// A node's private address.
    pub const PRIVATE_IP: &str = "private_ip";
    /// A node's public address.
    pub const PUBLIC_IP: &str = "public_ip";
    /// An instance's flavor.
    pub const FLAVOR: &str = "flavor";
    /// An instance's role.
    pub const ROLE: &str = "role";
    /// A network's CIDR.
    pub const CIDR: &str = "cidr";
    /// A network's subnet id.
    pub const SUBNET_ID: &str = "subnet_id";
    /// An attachment's device (`/dev/vdb`).
    pub const DEVICE: &str = "device";
    /// The instance an attachment or public IP belongs to.
    pub const INSTANCE_ID: &str = "instance_id";
    /// The volume of an attachment.
    pub const VOLUME_ID: &str = "volume_id";
    /// A volume's size in GB.
    pub const SIZE_GB: &str = "size_gb";
    /// A public IP's address.
    pub const ADDRESS: &str = "address";
    /// Why the cloud put an instance in error.
    pub const FAULT: &str = "fault";
    /// `"true"` on a resource the provider reuses (an existing network or
    /// security group named in its table) without owning it: it shows in the
    /// inventory so plans keep it, and destroy leaves it alone.
    pub const REUSED: &str = "reused";
}

/// What a cloud resource is. The order of the variants is the default order
/// in which `destroy` removes them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// A DNS record.
    DnsRecord,
    /// A public (floating, elastic) IP.
    PublicIp,
    /// A volume attached to an instance.
    VolumeAttachment,
    /// A server.
    Instance,
    /// A block volume.
    Volume,
    /// A network port (interface).
    Port,
    /// A router's interface on a subnet.
    RouterInterface,
    /// A router.
    Router,
    /// An internet gateway.
    Gateway,
    /// A route table.
    RouteTable,
    /// A subnet.
    Subnet,
    /// A security group (firewall).
    SecurityGroup,
    /// A network (VPC, VNet).
    Network,
    /// An SSH key pair.
    KeyPair,
    /// An image.
    Image,
    /// A resource group (Azure).
    ResourceGroup,
    /// A kind only one provider has (`nic`, `disk`, `firewall`, ...).
    Other(String),
}

impl ResourceKind {
    /// The lower-case name (`volume_attachment`).
    pub fn as_str(&self) -> &str {
        match self {
            ResourceKind::DnsRecord => "dns-record",
            ResourceKind::PublicIp => "public-ip",
            ResourceKind::VolumeAttachment => "volume-attachment",
            ResourceKind::Instance => "instance",
            ResourceKind::Volume => "volume",
            ResourceKind::Port => "port",
            ResourceKind::RouterInterface => "router-interface",
            ResourceKind::Router => "router",
            ResourceKind::Gateway => "gateway",
            ResourceKind::RouteTable => "route-table",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::Network => "network",
            ResourceKind::KeyPair => "key-pair",
            ResourceKind::Image => "image",
            ResourceKind::ResourceGroup => "resource-group",
            ResourceKind::Other(s) => s,
        }
    }

    /// Default destroy wave (lower goes first).
    pub fn destroy_rank(&self) -> u32 {
        match self {
            ResourceKind::DnsRecord => 0,
            ResourceKind::PublicIp => 1,
            ResourceKind::VolumeAttachment => 2,
            ResourceKind::Instance => 3,
            ResourceKind::Volume => 4,
            ResourceKind::Port => 5,
            ResourceKind::RouterInterface => 6,
            ResourceKind::Router => 7,
            ResourceKind::Gateway => 8,
            ResourceKind::RouteTable => 9,
            ResourceKind::Subnet => 10,
            ResourceKind::SecurityGroup => 11,
            ResourceKind::Network => 12,
            ResourceKind::KeyPair => 13,
            ResourceKind::Image => 14,
            ResourceKind::Other(_) => 15,
            ResourceKind::ResourceGroup => 16,
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "dns-record" => ResourceKind::DnsRecord,
            "public-ip" => ResourceKind::PublicIp,
            "volume-attachment" => ResourceKind::VolumeAttachment,
            "instance" => ResourceKind::Instance,
            "volume" => ResourceKind::Volume,
            "port" => ResourceKind::Port,
            "router-interface" => ResourceKind::RouterInterface,
            "router" => ResourceKind::Router,
            "gateway" => ResourceKind::Gateway,
            "route-table" => ResourceKind::RouteTable,
            "subnet" => ResourceKind::Subnet,
            "security-group" => ResourceKind::SecurityGroup,
            "network" => ResourceKind::Network,
            "key-pair" => ResourceKind::KeyPair,
            "image" => ResourceKind::Image,
            "resource-group" => ResourceKind::ResourceGroup,
            other => ResourceKind::Other(other.to_string()),
        })
    }
}

impl Serialize for ResourceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResourceKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|e: std::convert::Infallible| match e {}))
    }
}

/// The logical identity of a resource in a cluster's graph: `network`,
/// `server/service-3`, `volume/storage-1`, ... Providers store it in a tag
/// (or derive it from the name) so it can be found again without state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceKey(String);

/// The parts of a [`ResourceKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyParts<'a> {
    /// `image`.
    Image,
    /// `network`.
    Network,
    /// `security-group`.
    SecurityGroup,
    /// `key-pair`.
    KeyPair,
    /// A node's server.
    Server(Role, u32),
    /// A node's data volume.
    Volume(Role, u32),
    /// A node's volume attachment.
    Attachment(Role, u32),
    /// A node's public IP.
    PublicIp(Role, u32),
    /// A DNS record, by name.
    Dns(&'a str),
    /// Any other key.
    Other(&'a str),
}

impl ResourceKey {
    /// The image.
    pub fn image() -> Self {
        ResourceKey("image".into())
    }
    /// The cluster network.
    pub fn network() -> Self {
        ResourceKey("network".into())
    }
    /// The cluster security group.
    pub fn security_group() -> Self {
        ResourceKey("security-group".into())
    }
    /// The cluster key pair.
    pub fn key_pair() -> Self {
        ResourceKey("key-pair".into())
    }
    /// The server of node `index` of `role`.
    pub fn server(role: Role, index: u32) -> Self {
        ResourceKey(format!("server/{role}-{index}"))
    }
    /// The data volume of node `index` of `role`.
    pub fn volume(role: Role, index: u32) -> Self {
        ResourceKey(format!("volume/{role}-{index}"))
    }
    /// The volume attachment of node `index` of `role`.
    pub fn attachment(role: Role, index: u32) -> Self {
        ResourceKey(format!("attachment/{role}-{index}"))
    }
    /// The public IP of node `index` of `role`.
    pub fn public_ip(role: Role, index: u32) -> Self {
        ResourceKey(format!("public-ip/{role}-{index}"))
    }
    /// The DNS record called `name`.
    pub fn dns(name: &str) -> Self {
        ResourceKey(format!("dns/{name}"))
    }

    /// Parses a key read back from a tag; `None` when it is not a vre key.
    pub fn parse(s: &str) -> Option<Self> {
        let k = ResourceKey(s.to_string());
        match k.parts() {
            KeyParts::Other(_) => None,
            _ => Some(k),
        }
    }

    /// The key of the node a cloud resource named `<cluster>-<role>-<index>` belongs to.
    pub fn server_from_name(cluster: &str, name: &str) -> Option<(Role, u32)> {
        let rest = name.strip_prefix(cluster)?.strip_prefix('-')?;
        let (role, index) = rest.rsplit_once('-')?;
        let role: Role = role.parse().ok()?;
        let index: u32 = index.parse().ok().filter(|i| *i > 0)?;
        Some((role, index))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key taken apart.
    pub fn parts(&self) -> KeyParts<'_> {
        match self.0.as_str() {
            "image" => return KeyParts::Image,
            "network" => return KeyParts::Network,
            "security-group" => return KeyParts::SecurityGroup,
            "key-pair" => return KeyParts::KeyPair,
            _ => {}
        }
        let Some((kind, rest)) = self.0.split_once('/') else {
            return KeyParts::Other(&self.0);
        };
        if kind == "dns" {
            return KeyParts::Dns(rest);
        }
        let node = rest
            .rsplit_once('-')
            .and_then(|(r, i)| Some((r.parse::<Role>().ok()?, i.parse::<u32>().ok().filter(|i| *i > 0)?)));
        match (kind, node) {
            ("server", Some((r, i))) => KeyParts::Server(r, i),
            ("volume", Some((r, i))) => KeyParts::Volume(r, i),
            ("attachment", Some((r, i))) => KeyParts::Attachment(r, i),
            ("public-ip", Some((r, i))) => KeyParts::PublicIp(r, i),
            _ => KeyParts::Other(&self.0),
        }
    }

    /// The node (role, index) this key belongs to, if any.
    pub fn node(&self) -> Option<(Role, u32)> {
        match self.parts() {
            KeyParts::Server(r, i) | KeyParts::Volume(r, i) | KeyParts::Attachment(r, i) | KeyParts::PublicIp(r, i) => {
                Some((r, i))
            }
            _ => None,
        }
    }

    /// The resource kind that represents this key in an inventory.
    pub fn primary_kind(&self) -> ResourceKind {
        match self.parts() {
            KeyParts::Image => ResourceKind::Image,
            KeyParts::Network => ResourceKind::Network,
            KeyParts::SecurityGroup => ResourceKind::SecurityGroup,
            KeyParts::KeyPair => ResourceKind::KeyPair,
            KeyParts::Server(..) => ResourceKind::Instance,
            KeyParts::Volume(..) => ResourceKind::Volume,
            KeyParts::Attachment(..) => ResourceKind::VolumeAttachment,
            KeyParts::PublicIp(..) => ResourceKind::PublicIp,
            KeyParts::Dns(_) => ResourceKind::DnsRecord,
            KeyParts::Other(s) => ResourceKind::Other(s.to_string()),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle state of a resource as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Usable.
    Ready,
    /// Being created (BUILD, pending, provisioning).
    Pending,
    /// The cloud gave up on it (ERROR), with its reason.
    Failed {
        /// The cloud's reason.
        reason: String,
    },
    /// Being deleted.
    Deleting,
}

/// One resource in a cloud, as a provider reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudResource {
    /// What it is.
    pub kind: ResourceKind,
    /// The cloud's id (UUID, `i-0abc`, self-link, ARM id).
    pub id: String,
    /// Its name in the cloud.
    pub name: String,
    /// The logical key, when the resource is one the graph knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ResourceKey>,
    /// Where it stands.
    pub status: ResourceStatus,
    /// Non-secret facts: addresses, flavor, device, size (see [`attr`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl CloudResource {
    /// A ready resource with no key and no attributes.
    pub fn new(kind: ResourceKind, id: impl Into<String>, name: impl Into<String>) -> Self {
        CloudResource {
            kind,
            id: id.into(),
            name: name.into(),
            key: None,
            status: ResourceStatus::Ready,
            attrs: BTreeMap::new(),
        }
    }

    /// The same resource under `key`.
    pub fn with_key(mut self, key: ResourceKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The same resource in `status`.
    pub fn with_status(mut self, status: ResourceStatus) -> Self {
        self.status = status;
        self
    }

    /// The same resource with attribute `k` set to `v`.
    pub fn with_attr(mut self, k: &str, v: impl Into<String>) -> Self {
        self.attrs.insert(k.to_string(), v.into());
        self
    }

    /// Attribute `k`, when set.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = ResourceKey::server(Role::Service, 12);
        assert_eq!(k.as_str(), "server/service-12");
        assert_eq!(k.parts(), KeyParts::Server(Role::Service, 12));
        assert_eq!(
            ResourceKey::parse("volume/storage-3").unwrap().node(),
            Some((Role::Storage, 3))
        );
        assert!(ResourceKey::parse("server/boss-1").is_none());
        assert!(ResourceKey::parse("server/service-0").is_none());
        assert_eq!(
            ResourceKey::public_ip(Role::Edge, 1).primary_kind(),
            ResourceKind::PublicIp
        );
    }

    #[test]
    fn server_names_map_to_nodes() {
        assert_eq!(
            ResourceKey::server_from_name("lab", "lab-service-7"),
            Some((Role::Service, 7))
        );
        assert_eq!(ResourceKey::server_from_name("lab", "lab2-service-7"), None);
        assert_eq!(ResourceKey::server_from_name("lab", "lab-service"), None);
    }

    #[test]
    fn kinds_serialize_as_strings() {
        let j = serde_json::to_string(&ResourceKind::Other("nic".into())).unwrap();
        assert_eq!(j, "\"nic\"");
        let k: ResourceKind = serde_json::from_str("\"security-group\"").unwrap();
        assert_eq!(k, ResourceKind::SecurityGroup);
        assert!(ResourceKind::Instance.destroy_rank() < ResourceKind::Network.destroy_rank());
    }
}
