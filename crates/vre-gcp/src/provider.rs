//! [`GcpProvider`]: the [`CloudProvider`] on Compute Engine. The work is
//! split by resource family (the modules `network`, `image`, `instances`,
//! `volumes`, `addresses`, `inventory` and `preflight`); this file holds the
//! shared parts and the trait implementation that dispatches to them.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use vre_core::spec::ImageSpec;
use vre_core::{
    Capabilities, CloudProvider, CloudResource, ClusterRef, Error, InstanceBatch, NetworkInfo, NetworkRequest,
    PreflightProblem, PreflightRequest, ResourceKey, ResourceKind, Result, SecurityGroupRequest, StepProgress,
    VolumeRequest,
};

use crate::call::{ComputeCall, Location};
use crate::client::{ComputeClient, PollPolicy};
use crate::error::GcpError;
use crate::ownership::is_owned;
use crate::settings::GcpSettings;

/// The device name of a node's data disk; the guest sees it as `/dev/disk/by-id/google-vre-data`.
pub const DATA_DEVICE: &str = "vre-data";
/// [`CloudResource::attrs`] key of the SSH public key a key-pair resource carries.
pub const PUBLIC_KEY_ATTR: &str = "public_key";
/// Marks a network that vre uses but did not create (never deleted).
pub const REUSED_ATTR: &str = "reused";
/// The network tag firewall rules select nodes by.
pub const NETWORK_TAG_ATTR: &str = "network_tag";
/// The kind of a reserved internal address (the master's).
pub(crate) const INTERNAL_ADDRESS_KIND: &str = "internal-address";
/// `bulkInsert` accepts up to this many instances per call.
pub(crate) const MAX_BULK: u32 = 1000;

/// The Compute Engine provider.
#[derive(Debug)]
pub struct GcpProvider {
    pub(crate) client: ComputeClient,
    pub(crate) loc: Location,
    pub(crate) settings: GcpSettings,
}

/// The parts of a partial resource URL (`projects/p/zones/z/instances/n`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath<'a> {
    pub(crate) project: &'a str,
    /// `None` for global resources.
    pub(crate) region: Option<&'a str>,
    pub(crate) zone: Option<&'a str>,
    pub(crate) name: &'a str,
}

pub(crate) fn parse_path(id: &str) -> Option<ResourcePath<'_>> {
    let rest = id.split("projects/").nth(1)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [project, "global", _, name] => Some(ResourcePath {
            project,
            region: None,
            zone: None,
            name,
        }),
        [project, "regions", region, _, name] => Some(ResourcePath {
            project,
            region: Some(region),
            zone: None,
            name,
        }),
        [project, "zones", zone, _, name] => Some(ResourcePath {
            project,
            region: None,
            zone: Some(zone),
            name,
        }),
        _ => None,
    }
}

pub(crate) fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

pub(crate) fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn unexpected(purpose: &str, message: impl Into<String>) -> Error {
    GcpError::Decode {
        operation: purpose.to_string(),
        message: message.into(),
    }
    .into()
}

/// Runs a create call; a resource that exists already (a retry after a lost answer) is fine.
pub(crate) async fn create(client: &ComputeClient, c: &ComputeCall) -> std::result::Result<(), GcpError> {
    match client.execute(c).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a delete call; a resource already gone is fine.
pub(crate) async fn remove(client: &ComputeClient, c: &ComputeCall) -> Result<()> {
    match client.execute(c).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(GcpError::Operation { errors, .. }) if errors.iter().all(|(code, _)| code == "RESOURCE_NOT_FOUND") => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

impl GcpProvider {
    /// A provider in `project`.
    pub fn new(client: ComputeClient, project: String, settings: GcpSettings) -> Self {
        let loc = Location {
            project,
            region: settings.region.clone(),
            zone: settings.zone.clone(),
        };
        GcpProvider { client, loc, settings }
    }

    /// How operations and instances are polled (tests make it fast).
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.client = self.client.with_poll(poll);
        self
    }

    pub fn project(&self) -> &str {
        &self.loc.project
    }

    pub fn settings(&self) -> &GcpSettings {
        &self.settings
    }

    pub(crate) fn owned_or_conflict(&self, v: &Value, cluster: &ClusterRef, what: &str, name: &str) -> Result<()> {
        if is_owned(v, &cluster.name) {
            Ok(())
        } else {
            Err(Error::input(
                "name",
                format!(
                    "{what} \"{name}\" exists in project {} but does not belong to cluster \"{}\"; pick another cluster name or remove it",
                    self.loc.project, cluster.name
                ),
            ))
        }
    }
}

#[async_trait]
impl CloudProvider for GcpProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            multi_create: true,
            max_batch: MAX_BULK,
            public_ip_at_create: true,
            custom_dns_servers: false,
        }
    }

    async fn preflight(&self, cluster: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        self.check_against_cloud(cluster, request).await
    }

    async fn ensure_image(
        &self,
        _cluster: &ClusterRef,
        image: &ImageSpec,
        _progress: &StepProgress,
    ) -> Result<CloudResource> {
        self.image(image).await
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        self.network(cluster, request).await
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.firewalls(cluster, network, request).await
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        self.key_pair(cluster, public_key).await
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        self.bulk_insert(cluster, batch).await
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        self.wait_running(cluster, instances, timeout, progress).await
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        self.disk(cluster, request).await
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.attach_disk(key, volume, instance).await
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.reserve_address(cluster, key, name).await
    }

    async fn associate_public_ip(
        &self,
        _cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        self.attach_address(ip, instance).await
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        self.owned(cluster).await
    }

    async fn delete(&self, _cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        self.delete_resource(resource).await
    }

    fn destroy_rank(&self, kind: &ResourceKind) -> u32 {
        // instances go first: a reserved address or a disk in use cannot be deleted
        match kind {
            ResourceKind::DnsRecord => 0,
            ResourceKind::Instance => 1,
            ResourceKind::VolumeAttachment => 2,
            ResourceKind::PublicIp => 3,
            ResourceKind::Other(k) if k == INTERNAL_ADDRESS_KIND => 3,
            ResourceKind::Volume => 4,
            ResourceKind::Other(k) if k == "disk" => 4,
            ResourceKind::SecurityGroup => 5,
            ResourceKind::Other(k) if k == "firewall" => 5,
            ResourceKind::Subnet => 6,
            ResourceKind::Network => 7,
            ResourceKind::KeyPair => 8,
            ResourceKind::Image => 9,
            other => 10 + other.destroy_rank(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call;
    use crate::discovery::Discovery;
    use crate::network::normalized;
    use serde_json::json;
    use std::net::Ipv4Addr;
    use vre_core::{InstanceRequest, attr};

    fn provider() -> GcpProvider {
        let settings = GcpSettings::for_zone("europe-north1-a");
        GcpProvider::new(
            crate::scripted::client_for("http://127.0.0.1:9/"),
            "vre-test-project".into(),
            settings,
        )
    }

    fn batch(role: vre_core::Role, count: u32, public: bool) -> InstanceBatch {
        let p = provider();
        let l = &p.loc;
        let network = NetworkInfo {
            network: CloudResource::new(ResourceKind::Network, l.global_url("networks", "lab-net"), "lab-net")
                .with_attr(attr::SUBNET_ID, l.region_url("subnetworks", "lab-subnet")),
            cidr: "10.0.0.0/24".parse().unwrap(),
        };
        let instances = (1..=count)
            .map(|i| InstanceRequest {
                key: ResourceKey::server(role, i),
                name: format!("lab-{role}-{i}"),
                index: i,
                fixed_ip: (role == vre_core::Role::Master).then(|| Ipv4Addr::new(10, 0, 0, 10)),
                public_ip: public.then(|| {
                    CloudResource::new(ResourceKind::PublicIp, l.region_url("addresses", "x"), "x")
                        .with_attr(attr::ADDRESS, format!("203.0.113.{i}"))
                }),
            })
            .collect();
        InstanceBatch {
            role,
            flavor: "e2-standard-2".into(),
            root_disk_gb: Some(40),
            image: CloudResource::new(
                ResourceKind::Image,
                "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250101",
                "ubuntu",
            ),
            network,
            security_group: CloudResource::new(
                ResourceKind::SecurityGroup,
                l.global_url("firewalls", "lab-sg"),
                "lab-sg",
            )
            .with_attr(NETWORK_TAG_ATTR, "lab-sg"),
            key_pair: CloudResource::new(ResourceKind::KeyPair, "metadata/ssh-keys/lab-key", "lab-key")
                .with_attr(PUBLIC_KEY_ATTR, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v vre"),
            user_data: "#cloud-config\nruncmd: [kubeadm join]\n".into(),
            ssh_user: "ubuntu".into(),
            instances,
            token: "lab-service-0123".into(),
            progress: StepProgress::none(),
        }
    }

    fn bulk_body(b: &InstanceBatch) -> ComputeCall {
        let p = provider();
        let c = ClusterRef::new("lab");
        let todo: Vec<&InstanceRequest> = b.instances.iter().collect();
        let props = p.instance_properties(&c, b, &todo).unwrap();
        let names: Vec<String> = b.instances.iter().map(|i| i.name.clone()).collect();
        call::instances_bulk_insert(&p.loc, &names, props, "create".into())
    }

    #[test]
    fn bulk_insert_bodies_match_the_discovery_document() {
        let d = Discovery::load();
        for b in [
            batch(vre_core::Role::Master, 1, true),
            batch(vre_core::Role::Service, 3, false),
            batch(vre_core::Role::Edge, 2, true),
        ] {
            let c = bulk_body(&b);
            let problems = d.check_call(c.operation, c.verb, c.template, &c.params, &c.query, c.body.as_ref());
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
    }

    #[test]
    fn the_master_gets_its_fixed_and_public_address_at_creation() {
        let c = bulk_body(&batch(vre_core::Role::Master, 1, true));
        let body = c.body.unwrap();
        let props = &body["instanceProperties"];
        assert_eq!(body["count"], "1");
        assert_eq!(body["minCount"], "1");
        assert_eq!(props["networkInterfaces"][0]["networkIP"], "10.0.0.10");
        assert_eq!(
            props["networkInterfaces"][0]["accessConfigs"][0]["natIP"],
            "203.0.113.1"
        );
        assert_eq!(
            props["metadata"]["items"][0],
            json!({"key": "user-data", "value": "#cloud-config\nruncmd: [kubeadm join]\n"})
        );
        assert_eq!(
            props["metadata"]["items"][1]["value"],
            "ubuntu:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v vre"
        );
        assert_eq!(props["labels"], json!({"vre-cluster": "lab", "vre-role": "master"}));
        assert_eq!(props["tags"]["items"], json!(["lab-sg"]));
        assert_eq!(props["disks"][0]["initializeParams"]["diskSizeGb"], "40");
    }

    #[test]
    fn groups_get_one_call_with_every_name_and_ephemeral_addresses() {
        let c = bulk_body(&batch(vre_core::Role::Edge, 2, true));
        let body = c.body.unwrap();
        assert_eq!(body["count"], "2");
        let names: Vec<&String> = body["perInstanceProperties"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["lab-edge-1", "lab-edge-2"]);
        let nic = &body["instanceProperties"]["networkInterfaces"][0];
        assert!(nic.get("networkIP").is_none());
        assert!(
            nic["accessConfigs"][0].get("natIP").is_none(),
            "distinct addresses are bound after creation"
        );
    }

    #[test]
    fn resource_paths_parse() {
        assert_eq!(
            parse_path("projects/p/zones/europe-north1-a/instances/lab-master-1"),
            Some(ResourcePath {
                project: "p",
                region: None,
                zone: Some("europe-north1-a"),
                name: "lab-master-1"
            })
        );
        assert_eq!(
            parse_path("https://compute.googleapis.com/compute/v1/projects/p/regions/r/addresses/a").map(|p| p.region),
            Some(Some("r"))
        );
        assert_eq!(parse_path("projects/p/global/networks/n").map(|p| p.name), Some("n"));
        assert_eq!(parse_path("metadata/ssh-keys/x"), None);
    }

    #[test]
    fn rules_compare_regardless_of_order() {
        let a = json!([{"IPProtocol": "tcp", "ports": ["80", "22"]}, {"IPProtocol": "udp"}]);
        let b = json!([{"IPProtocol": "udp"}, {"ports": ["22", "80"], "IPProtocol": "tcp"}]);
        assert_eq!(normalized(Some(&a)), normalized(Some(&b)));
        assert_ne!(normalized(Some(&a)), normalized(Some(&json!([{"IPProtocol": "udp"}]))));
    }
}
