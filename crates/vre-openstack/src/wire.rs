//! Answers of the OpenStack APIs vre calls, as the API references document
//! them (Compute v2.1 with microversions, Networking v2.0, Block Storage v3,
//! Image v2). Answers keep only the fields vre reads; unknown fields are
//! ignored. The bodies vre sends are built in [`crate::requests`] (re-exported
//! here under their old paths).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;
use vre_core::{CLUSTER_TAG, KEY_TAG};

pub use crate::requests::{ServerCreate, WantedRule, allocation_pools, key_pair_import};

/// The Nova microversion vre speaks (2.47: the flavor is embedded in servers).
pub const NOVA_MICROVERSION: &str = "2.47";
/// The microversion needed for `volume_type` in a block device mapping.
pub const NOVA_MICROVERSION_VOLUME_TYPE: &str = "2.67";

/// `vre:cluster=<name>`: the Neutron tag of every resource of a cluster.
pub fn cluster_tag(cluster: &str) -> String {
    format!("{CLUSTER_TAG}={cluster}")
}

/// `vre:key=<key>`: the Neutron tag holding a resource's logical key.
pub fn key_tag(key: &str) -> String {
    format!("{KEY_TAG}={key}")
}

/// The value of tag `name=` among `tags`.
pub fn tag_value<'a>(tags: &'a [String], name: &str) -> Option<&'a str> {
    tags.iter().find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
}

// ---------------------------------------------------------------- Nova

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<ServerAddress>>,
    pub flavor: Option<ServerFlavor>,
    pub fault: Option<Fault>,
    pub key_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ServerAddress {
    pub addr: String,
    #[serde(default)]
    pub version: u8,
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

/// `flavor` of a server: `{id, links}` before 2.47, the embedded flavor after.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ServerFlavor {
    pub id: Option<String>,
    pub original_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Fault {
    pub code: Option<u16>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct ServerList {
    pub servers: Vec<Server>,
    #[serde(default)]
    pub servers_links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
pub struct ServerOne {
    pub server: Server,
}

#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

/// The answer of `POST /servers`: one server, or the reservation id of a
/// multiple create (`return_reservation_id`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CreateServerAnswer {
    Reservation { reservation_id: String },
    Server { server: CreatedServer },
}

#[derive(Debug, Deserialize)]
pub struct CreatedServer {
    pub id: String,
}

impl Server {
    /// The node's fixed IPv4 address on `network` (any network when `None`).
    pub fn private_ip(&self, network: Option<&str>) -> Option<Ipv4Addr> {
        self.addresses
            .iter()
            .filter(|(n, _)| network.is_none_or(|w| w == n.as_str()))
            .flat_map(|(_, a)| a.iter())
            .filter(|a| a.version == 4 && a.kind.as_deref().is_none_or(|k| k == "fixed"))
            .find_map(|a| a.addr.parse().ok())
    }

    /// The flavor's name (2.47+), else its id.
    pub fn flavor_ref(&self) -> Option<&str> {
        let f = self.flavor.as_ref()?;
        f.original_name.as_deref().or(f.id.as_deref())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub vcpus: u64,
    /// MiB.
    #[serde(default)]
    pub ram: u64,
    /// GiB.
    #[serde(default)]
    pub disk: u64,
}

/// `GET /flavors/detail` (one page).
#[derive(Debug, Deserialize)]
pub struct FlavorList {
    pub flavors: Vec<Flavor>,
    #[serde(default)]
    pub flavors_links: Vec<Link>,
}

/// A key pair as `GET /os-keypairs/{name}` and `POST /os-keypairs` answer it
/// (`user_id`, `type`, dates and the rest are not read).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct KeyPair {
    pub name: String,
    #[serde(default)]
    pub public_key: String,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Deserialize)]
pub struct KeyPairOne {
    pub keypair: KeyPair,
}

/// `GET /limits` of Nova and Cinder.
#[derive(Debug, Deserialize)]
pub struct Limits {
    pub limits: LimitsInner,
}

#[derive(Debug, Deserialize)]
pub struct LimitsInner {
    #[serde(default)]
    pub absolute: BTreeMap<String, i64>,
}

impl Limits {
    /// `(max, used)`; a negative max means unlimited and gives `None`.
    pub fn pair(&self, max: &str, used: &str) -> Option<(u64, u64)> {
        let m = *self.limits.absolute.get(max)?;
        if m < 0 {
            return None;
        }
        let u = self.limits.absolute.get(used).copied().unwrap_or(0).max(0);
        Some((m as u64, u as u64))
    }
}

#[derive(Debug, Deserialize)]
pub struct VolumeAttachmentOne {
    #[serde(rename = "volumeAttachment")]
    pub volume_attachment: NovaVolumeAttachment,
}

#[derive(Debug, Deserialize)]
pub struct NovaVolumeAttachment {
    pub device: Option<String>,
    #[serde(rename = "serverId")]
    pub server_id: String,
    #[serde(rename = "volumeId")]
    pub volume_id: String,
}

// ---------------------------------------------------------------- Neutron

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(rename = "router:external", default)]
    pub external: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub network_id: String,
    pub cidr: String,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Router {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub network_id: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub security_group_rules: Vec<SecurityGroupRule>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SecurityGroupRule {
    #[serde(default)]
    pub id: String,
    pub direction: String,
    #[serde(default)]
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    #[serde(default)]
    pub floating_network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `GET /v2.0/quotas/{project_id}/details`.
#[derive(Debug, Deserialize)]
pub struct NeutronQuotaDetails {
    pub quota: BTreeMap<String, QuotaDetail>,
}

#[derive(Debug, Deserialize)]
pub struct QuotaDetail {
    pub limit: i64,
    #[serde(default)]
    pub used: i64,
    #[serde(default)]
    pub reserved: i64,
}

// ---------------------------------------------------------------- Cinder

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Volume {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub size: u64,
    /// Values are strings on the wire, but some clouds answer booleans.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    #[serde(default)]
    pub attachments: Vec<CinderAttachment>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CinderAttachment {
    pub server_id: String,
    pub attachment_id: Option<String>,
    pub volume_id: Option<String>,
    pub device: Option<String>,
}

impl Volume {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub volumes_links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
pub struct VolumeOne {
    pub volume: Volume,
}

// ---------------------------------------------------------------- Glance

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    pub disk_format: Option<String>,
    pub min_disk: Option<u64>,
    /// Set by Glance when an import failed for a store.
    pub os_glance_failed_import: Option<String>,
    pub os_glance_import_task: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ImageList {
    pub images: Vec<Image>,
    pub next: Option<String>,
}

/// `GET /v2/info/import`.
#[derive(Debug, Deserialize)]
pub struct ImportInfo {
    #[serde(rename = "import-methods")]
    pub import_methods: ImportMethods,
}

#[derive(Debug, Deserialize)]
pub struct ImportMethods {
    #[serde(default)]
    pub value: Vec<String>,
}

/// The disk format of an image at `url`, from its extension.
pub fn disk_format_of(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "raw" => "raw",
        "iso" => "iso",
        "vmdk" => "vmdk",
        "vdi" => "vdi",
        "vhd" => "vhd",
        "vhdx" => "vhdx",
        _ => "qcow2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn servers_detail_from_the_api_reference() {
        let l: ServerList = serde_json::from_str(&fixture("nova-servers-details-v2.47.json")).unwrap();
        let s = &l.servers[0];
        assert_eq!(s.id, "764e369e-a874-4401-b7ce-43e4760888da");
        assert_eq!(s.status, "ACTIVE");
        assert_eq!(s.private_ip(Some("private")), Some(Ipv4Addr::new(192, 168, 0, 3)));
        assert_eq!(s.private_ip(Some("other")), None);
        assert_eq!(s.flavor_ref(), Some("m1.tiny.specs"));
        assert_eq!(l.servers_links[0].rel, "next");
    }

    #[test]
    fn multiple_create_answer_is_a_reservation() {
        let a: CreateServerAnswer = serde_json::from_str(&fixture("nova-multiple-create-resp.json")).unwrap();
        assert!(matches!(a, CreateServerAnswer::Reservation { reservation_id } if reservation_id == "r-3fhpjulh"));
        let a: CreateServerAnswer = serde_json::from_str(&fixture("nova-server-create-resp.json")).unwrap();
        assert!(
            matches!(a, CreateServerAnswer::Server { server } if server.id == "f5dc173b-6804-445a-a6d8-c705dad5b5eb")
        );
    }

    #[test]
    fn error_server_has_its_fault() {
        let s: ServerOne = serde_json::from_str(&fixture("nova-server-error.json")).unwrap();
        assert_eq!(s.server.status, "ERROR");
        let f = s.server.fault.unwrap();
        assert_eq!(f.code, Some(500));
        assert!(f.message.starts_with("No valid host was found"));
    }

    #[test]
    fn neutron_answers() {
        let n: serde_json::Value = serde_json::from_str(&fixture("neutron-network-create-resp.json")).unwrap();
        let net: Network = serde_json::from_value(n["network"].clone()).unwrap();
        assert_eq!(net.name, "net1");
        assert!(!net.external);
        assert_eq!(net.tags, vec!["tag1,tag2"]);
        let f: serde_json::Value = serde_json::from_str(&fixture("neutron-floatingip-create-resp.json")).unwrap();
        let fip: FloatingIp = serde_json::from_value(f["floatingip"].clone()).unwrap();
        assert_eq!(fip.floating_ip_address, "172.24.4.228");
        assert_eq!(fip.port_id.as_deref(), Some("ce705c24-c1ef-408a-bda3-7bbd946164ab"));
        let g: serde_json::Value = serde_json::from_str(&fixture("neutron-security-group-create-resp.json")).unwrap();
        let sg: SecurityGroup = serde_json::from_value(g["security_group"].clone()).unwrap();
        assert_eq!(sg.security_group_rules.len(), 2);
        assert!(sg.security_group_rules.iter().all(|r| r.direction == "egress"));
    }

    #[test]
    fn cinder_volumes_from_the_api_reference() {
        let l: VolumeList = serde_json::from_str(&fixture("cinder-volumes-detail-resp.json")).unwrap();
        assert_eq!(l.volumes.len(), 2);
        let v = &l.volumes[0];
        assert_eq!(v.status, "in-use");
        assert_eq!(v.attachments[0].device.as_deref(), Some("/dev/vdb"));
        assert_eq!(v.attachments[0].server_id, "f4fda93b-06e0-4743-8117-bc8bcecd651b");
        // a boolean metadata value does not break parsing
        assert_eq!(v.meta("attached_mode"), Some("rw"));
        assert_eq!(v.meta("readonly"), None);
    }

    #[test]
    fn glance_answers() {
        let i: ImportInfo = serde_json::from_str(&fixture("glance-import-info.json")).unwrap();
        assert!(i.import_methods.value.iter().any(|m| m == "web-download"));
        let l: ImageList = serde_json::from_str(&fixture("glance-images-list-resp.json")).unwrap();
        assert_eq!(l.images[0].status, "active");
        assert_eq!(l.images[0].name.as_deref(), Some("cirros-0.3.2-x86_64-disk"));
        assert_eq!(
            disk_format_of("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"),
            "qcow2"
        );
        assert_eq!(disk_format_of("http://x/disk.raw?sig=1"), "raw");
    }

    #[test]
    fn limits_of_nova_and_cinder() {
        let l: Limits = serde_json::from_str(&fixture("nova-limits-resp.json")).unwrap();
        assert_eq!(l.pair("maxTotalInstances", "totalInstancesUsed"), Some((10, 0)));
        assert_eq!(l.pair("maxTotalRAMSize", "totalRAMUsed"), Some((51200, 0)));
        let l: Limits = serde_json::from_value(json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumeGigabytes": -1, "totalGigabytesUsed": 12}}}))
        .unwrap();
        assert_eq!(l.pair("maxTotalVolumeGigabytes", "totalGigabytesUsed"), None);
    }

    #[test]
    fn tags() {
        let t = vec![cluster_tag("lab"), key_tag("network")];
        assert_eq!(t, vec!["vre:cluster=lab", "vre:key=network"]);
        assert_eq!(tag_value(&t, KEY_TAG), Some("network"));
        assert_eq!(tag_value(&t, "vre:role"), None);
    }
}
