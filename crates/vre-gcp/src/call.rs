//! Every Compute Engine v1 request vre makes, as data: the discovery method
//! id, HTTP verb, path template with its parameters, query and JSON body.
//! Building requests here (and sending them in `client`) lets the unit tests
//! check each one against the official discovery document.

use serde_json::{Value, json};

/// One Compute Engine API request (the kit's call description; its
/// `operation` is the discovery method id, `compute.instances.bulkInsert`).
pub type ComputeCall = vre_cloud_kit::RestCall;

/// Where a call is made: project, region, zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub project: String,
    pub region: String,
    pub zone: String,
}

impl Location {
    fn p(&self) -> (&'static str, String) {
        ("project", self.project.clone())
    }
    fn r(&self) -> (&'static str, String) {
        ("region", self.region.clone())
    }
    fn z(&self) -> (&'static str, String) {
        ("zone", self.zone.clone())
    }

    /// Partial URL of a global resource (`projects/p/global/networks/n`).
    pub fn global_url(&self, collection: &str, name: &str) -> String {
        format!("projects/{}/global/{collection}/{name}", self.project)
    }
    pub fn region_url(&self, collection: &str, name: &str) -> String {
        format!("projects/{}/regions/{}/{collection}/{name}", self.project, self.region)
    }
    pub fn zone_url(&self, collection: &str, name: &str) -> String {
        format!("projects/{}/zones/{}/{collection}/{name}", self.project, self.zone)
    }
}

/// Which operations collection an operation lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationScope {
    Global,
    Region(String),
    Zone(String),
}

// ---- networks and subnetworks ----

pub fn networks_get(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.networks.get",
        "GET",
        "projects/{project}/global/networks/{network}",
        vec![l.p(), ("network", name.into())],
        format!("read network {name}"),
    )
}

pub fn networks_insert(l: &Location, name: &str, description: &str, auto_subnets: bool) -> ComputeCall {
    ComputeCall::new(
        "compute.networks.insert",
        "POST",
        "projects/{project}/global/networks",
        vec![l.p()],
        format!("create network {name}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "autoCreateSubnetworks": auto_subnets,
        "routingConfig": {"routingMode": "REGIONAL"},
    }))
}

pub fn networks_delete(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.networks.delete",
        "DELETE",
        "projects/{project}/global/networks/{network}",
        vec![l.p(), ("network", name.into())],
        format!("delete network {name}"),
    )
}

pub fn subnetworks_get(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.subnetworks.get",
        "GET",
        "projects/{project}/regions/{region}/subnetworks/{subnetwork}",
        vec![l.p(), l.r(), ("subnetwork", name.into())],
        format!("read subnetwork {name}"),
    )
}

pub fn subnetworks_insert(l: &Location, name: &str, description: &str, network: &str, cidr: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.subnetworks.insert",
        "POST",
        "projects/{project}/regions/{region}/subnetworks",
        vec![l.p(), l.r()],
        format!("create subnetwork {name}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "network": network,
        "ipCidrRange": cidr,
        "privateIpGoogleAccess": true,
    }))
}

pub fn subnetworks_delete(l: &Location, region: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.subnetworks.delete",
        "DELETE",
        "projects/{project}/regions/{region}/subnetworks/{subnetwork}",
        vec![l.p(), ("region", region.into()), ("subnetwork", name.into())],
        format!("delete subnetwork {name}"),
    )
}

// ---- firewalls ----

/// The firewall body both insert and patch send.
#[derive(Clone, Debug, PartialEq)]
pub struct FirewallRule {
    pub name: String,
    pub description: String,
    pub network: String,
    /// `(protocol, ports)`; empty ports = every port.
    pub allowed: Vec<(String, Vec<String>)>,
    pub source_ranges: Vec<String>,
    pub source_tags: Vec<String>,
    pub target_tags: Vec<String>,
}

impl FirewallRule {
    fn to_json(&self) -> Value {
        let allowed: Vec<Value> = self
            .allowed
            .iter()
            .map(|(proto, ports)| {
                if ports.is_empty() {
                    json!({"IPProtocol": proto})
                } else {
                    json!({"IPProtocol": proto, "ports": ports})
                }
            })
            .collect();
        let mut v = json!({
            "name": self.name,
            "description": self.description,
            "network": self.network,
            "direction": "INGRESS",
            "priority": 1000,
            "allowed": allowed,
            "sourceRanges": self.source_ranges,
            "targetTags": self.target_tags,
        });
        if !self.source_tags.is_empty() {
            v["sourceTags"] = json!(self.source_tags);
        }
        v
    }
}

pub fn firewalls_list(l: &Location, filter: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.firewalls.list",
        "GET",
        "projects/{project}/global/firewalls",
        vec![l.p()],
        "list firewalls",
    )
    .query("filter", filter)
}

pub fn firewalls_get(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.firewalls.get",
        "GET",
        "projects/{project}/global/firewalls/{firewall}",
        vec![l.p(), ("firewall", name.into())],
        format!("read firewall {name}"),
    )
}

pub fn firewalls_insert(l: &Location, rule: &FirewallRule) -> ComputeCall {
    ComputeCall::new(
        "compute.firewalls.insert",
        "POST",
        "projects/{project}/global/firewalls",
        vec![l.p()],
        format!("create firewall {}", rule.name),
    )
    .body(rule.to_json())
}

pub fn firewalls_patch(l: &Location, rule: &FirewallRule) -> ComputeCall {
    ComputeCall::new(
        "compute.firewalls.patch",
        "PATCH",
        "projects/{project}/global/firewalls/{firewall}",
        vec![l.p(), ("firewall", rule.name.clone())],
        format!("update firewall {}", rule.name),
    )
    .body(rule.to_json())
}

pub fn firewalls_delete(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.firewalls.delete",
        "DELETE",
        "projects/{project}/global/firewalls/{firewall}",
        vec![l.p(), ("firewall", name.into())],
        format!("delete firewall {name}"),
    )
}

// ---- images ----

pub fn images_get(project: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.images.get",
        "GET",
        "projects/{project}/global/images/{image}",
        vec![("project", project.into()), ("image", name.into())],
        format!("read image {name} in project {project}"),
    )
}

pub fn images_get_from_family(project: &str, family: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.images.getFromFamily",
        "GET",
        "projects/{project}/global/images/family/{family}",
        vec![("project", project.into()), ("family", family.into())],
        format!("read image family {family} in project {project}"),
    )
}

/// Imports a `.tar.gz` holding `disk.raw` from Cloud Storage (`https://storage.googleapis.com/...`).
pub fn images_insert(l: &Location, name: &str, description: &str, source_url: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.images.insert",
        "POST",
        "projects/{project}/global/images",
        vec![l.p()],
        format!("import image {name}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "rawDisk": {"source": source_url, "containerType": "TAR"},
    }))
}

pub fn images_delete(project: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.images.delete",
        "DELETE",
        "projects/{project}/global/images/{image}",
        vec![("project", project.into()), ("image", name.into())],
        format!("delete image {name}"),
    )
}

// ---- addresses ----

pub fn addresses_get(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.addresses.get",
        "GET",
        "projects/{project}/regions/{region}/addresses/{address}",
        vec![l.p(), l.r(), ("address", name.into())],
        format!("read address {name}"),
    )
}

pub fn addresses_list(l: &Location, filter: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.addresses.list",
        "GET",
        "projects/{project}/regions/{region}/addresses",
        vec![l.p(), l.r()],
        "list addresses",
    )
    .query("filter", filter)
}

pub fn addresses_insert(l: &Location, name: &str, description: &str, labels: &Value) -> ComputeCall {
    ComputeCall::new(
        "compute.addresses.insert",
        "POST",
        "projects/{project}/regions/{region}/addresses",
        vec![l.p(), l.r()],
        format!("reserve address {name}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "addressType": "EXTERNAL",
        "networkTier": "PREMIUM",
        "labels": labels,
    }))
}

/// Reserves an internal address of the subnetwork, so no other instance is given it first.
pub fn addresses_insert_internal(
    l: &Location,
    name: &str,
    description: &str,
    subnetwork: &str,
    address: &str,
    labels: &Value,
) -> ComputeCall {
    ComputeCall::new(
        "compute.addresses.insert",
        "POST",
        "projects/{project}/regions/{region}/addresses",
        vec![l.p(), l.r()],
        format!("reserve internal address {address}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "addressType": "INTERNAL",
        "purpose": "GCE_ENDPOINT",
        "subnetwork": subnetwork,
        "address": address,
        "labels": labels,
    }))
}

pub fn addresses_delete(l: &Location, region: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.addresses.delete",
        "DELETE",
        "projects/{project}/regions/{region}/addresses/{address}",
        vec![l.p(), ("region", region.into()), ("address", name.into())],
        format!("release address {name}"),
    )
}

// ---- instances ----

pub fn instances_list(l: &Location, filter: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.list",
        "GET",
        "projects/{project}/zones/{zone}/instances",
        vec![l.p(), l.z()],
        "list instances",
    )
    .query("filter", filter)
}

pub fn instances_get(l: &Location, zone: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.get",
        "GET",
        "projects/{project}/zones/{zone}/instances/{instance}",
        vec![l.p(), ("zone", zone.into()), ("instance", name.into())],
        format!("read instance {name}"),
    )
}

/// One `instances.bulkInsert`: `names` get the same `properties`.
pub fn instances_bulk_insert(l: &Location, names: &[String], properties: Value, purpose: String) -> ComputeCall {
    let per_instance: serde_json::Map<String, Value> = names.iter().map(|n| (n.clone(), json!({}))).collect();
    let count = names.len().to_string();
    ComputeCall::new(
        "compute.instances.bulkInsert",
        "POST",
        "projects/{project}/zones/{zone}/instances/bulkInsert",
        vec![l.p(), l.z()],
        purpose,
    )
    .body(json!({
        "count": count,
        "minCount": count,
        "perInstanceProperties": per_instance,
        "instanceProperties": properties,
    }))
}

pub fn instances_delete(l: &Location, zone: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.delete",
        "DELETE",
        "projects/{project}/zones/{zone}/instances/{instance}",
        vec![l.p(), ("zone", zone.into()), ("instance", name.into())],
        format!("delete instance {name}"),
    )
}

pub fn instances_attach_disk(l: &Location, zone: &str, instance: &str, disk: &str, device: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.attachDisk",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/attachDisk",
        vec![l.p(), ("zone", zone.into()), ("instance", instance.into())],
        format!("attach disk to {instance}"),
    )
    .body(json!({
        "source": disk,
        "deviceName": device,
        "mode": "READ_WRITE",
        "type": "PERSISTENT",
        "autoDelete": false,
    }))
}

pub fn instances_detach_disk(l: &Location, zone: &str, instance: &str, device: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.detachDisk",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/detachDisk",
        vec![l.p(), ("zone", zone.into()), ("instance", instance.into())],
        format!("detach disk {device} from {instance}"),
    )
    .query("deviceName", device)
}

pub fn instances_add_access_config(l: &Location, zone: &str, instance: &str, nic: &str, nat_ip: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.addAccessConfig",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/addAccessConfig",
        vec![l.p(), ("zone", zone.into()), ("instance", instance.into())],
        format!("bind {nat_ip} to {instance}"),
    )
    .query("networkInterface", nic)
    .body(json!({
        "type": "ONE_TO_ONE_NAT",
        "name": EXTERNAL_ACCESS_CONFIG,
        "natIP": nat_ip,
        "networkTier": "PREMIUM",
    }))
}

pub fn instances_delete_access_config(
    l: &Location,
    zone: &str,
    instance: &str,
    nic: &str,
    config: &str,
) -> ComputeCall {
    ComputeCall::new(
        "compute.instances.deleteAccessConfig",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/deleteAccessConfig",
        vec![l.p(), ("zone", zone.into()), ("instance", instance.into())],
        format!("remove the ephemeral address of {instance}"),
    )
    .query("accessConfig", config)
    .query("networkInterface", nic)
}

/// The name GCE gives (and vre uses for) the one external access config of a NIC.
pub const EXTERNAL_ACCESS_CONFIG: &str = "External NAT";

// ---- disks ----

pub fn disks_get(l: &Location, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.disks.get",
        "GET",
        "projects/{project}/zones/{zone}/disks/{disk}",
        vec![l.p(), l.z(), ("disk", name.into())],
        format!("read disk {name}"),
    )
}

pub fn disks_list(l: &Location, filter: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.disks.list",
        "GET",
        "projects/{project}/zones/{zone}/disks",
        vec![l.p(), l.z()],
        "list disks",
    )
    .query("filter", filter)
}

pub fn disks_insert(
    l: &Location,
    name: &str,
    description: &str,
    size_gb: u32,
    disk_type: &str,
    labels: &Value,
) -> ComputeCall {
    ComputeCall::new(
        "compute.disks.insert",
        "POST",
        "projects/{project}/zones/{zone}/disks",
        vec![l.p(), l.z()],
        format!("create disk {name}"),
    )
    .body(json!({
        "name": name,
        "description": description,
        "sizeGb": size_gb.to_string(),
        "type": l.zone_url("diskTypes", disk_type),
        "labels": labels,
    }))
}

pub fn disks_delete(l: &Location, zone: &str, name: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.disks.delete",
        "DELETE",
        "projects/{project}/zones/{zone}/disks/{disk}",
        vec![l.p(), ("zone", zone.into()), ("disk", name.into())],
        format!("delete disk {name}"),
    )
}

// ---- catalogue (preflight) ----

pub fn zones_get(l: &Location) -> ComputeCall {
    ComputeCall::new(
        "compute.zones.get",
        "GET",
        "projects/{project}/zones/{zone}",
        vec![l.p(), l.z()],
        format!("read zone {}", l.zone),
    )
}

pub fn regions_get(l: &Location) -> ComputeCall {
    ComputeCall::new(
        "compute.regions.get",
        "GET",
        "projects/{project}/regions/{region}",
        vec![l.p(), l.r()],
        format!("read region {}", l.region),
    )
}

pub fn machine_types_get(l: &Location, machine_type: &str) -> ComputeCall {
    ComputeCall::new(
        "compute.machineTypes.get",
        "GET",
        "projects/{project}/zones/{zone}/machineTypes/{machineType}",
        vec![l.p(), l.z(), ("machineType", machine_type.into())],
        format!("read machine type {machine_type}"),
    )
}

// ---- operations ----

/// `operations.wait` in the operation's own collection.
pub fn operations_wait(project: &str, scope: &OperationScope, name: &str) -> ComputeCall {
    let purpose = format!("wait for operation {name}");
    match scope {
        OperationScope::Global => ComputeCall::new(
            "compute.globalOperations.wait",
            "POST",
            "projects/{project}/global/operations/{operation}/wait",
            vec![("project", project.into()), ("operation", name.into())],
            purpose,
        ),
        OperationScope::Region(r) => ComputeCall::new(
            "compute.regionOperations.wait",
            "POST",
            "projects/{project}/regions/{region}/operations/{operation}/wait",
            vec![
                ("project", project.into()),
                ("region", r.clone()),
                ("operation", name.into()),
            ],
            purpose,
        ),
        OperationScope::Zone(z) => ComputeCall::new(
            "compute.zoneOperations.wait",
            "POST",
            "projects/{project}/zones/{zone}/operations/{operation}/wait",
            vec![
                ("project", project.into()),
                ("zone", z.clone()),
                ("operation", name.into()),
            ],
            purpose,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Discovery;

    pub(crate) fn loc() -> Location {
        Location {
            project: "vre-test-project".into(),
            region: "europe-north1".into(),
            zone: "europe-north1-a".into(),
        }
    }

    pub(crate) fn check(d: &Discovery, c: &ComputeCall) -> Vec<String> {
        d.check_call(c.operation, c.verb, c.template, &c.params, &c.query, c.body.as_ref())
    }

    fn every_call() -> Vec<ComputeCall> {
        let l = loc();
        let net = l.global_url("networks", "lab-net");
        let rule = FirewallRule {
            name: "lab-sg".into(),
            description: "vre-cluster=lab vre-key=security-group (managed by vre)".into(),
            network: net.clone(),
            allowed: vec![("tcp".into(), vec![]), ("udp".into(), vec!["8472".into()])],
            source_ranges: vec!["10.0.0.0/24".into()],
            source_tags: vec!["lab-sg".into()],
            target_tags: vec!["lab-sg".into()],
        };
        let labels = json!({"vre-cluster": "lab", "vre-key": "volume_storage-1", "vre-role": "storage"});
        let props = json!({
            "machineType": "e2-standard-2",
            "labels": {"vre-cluster": "lab", "vre-role": "service"},
            "tags": {"items": ["lab-sg"]},
            "metadata": {"items": [{"key": "user-data", "value": "#cloud-config\n"}]},
            "disks": [{"boot": true, "autoDelete": true, "type": "PERSISTENT",
                       "initializeParams": {"sourceImage": "projects/ubuntu-os-cloud/global/images/ubuntu-2404", "diskSizeGb": "50"}}],
            "networkInterfaces": [{"network": net, "subnetwork": l.region_url("subnetworks", "lab-subnet"),
                                   "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": EXTERNAL_ACCESS_CONFIG}]}],
        });
        let names = vec!["lab-service-1".to_string(), "lab-service-2".to_string()];
        vec![
            networks_get(&l, "lab-net"),
            networks_insert(&l, "lab-net", "d", false),
            networks_delete(&l, "lab-net"),
            subnetworks_get(&l, "lab-subnet"),
            subnetworks_insert(&l, "lab-subnet", "d", &net, "10.0.0.0/24"),
            subnetworks_delete(&l, "europe-north1", "lab-subnet"),
            firewalls_get(&l, "lab-sg"),
            firewalls_list(&l, "name eq lab-.*"),
            firewalls_insert(&l, &rule),
            firewalls_patch(&l, &rule),
            firewalls_delete(&l, "lab-sg"),
            images_get("ubuntu-os-cloud", "ubuntu-2404-noble-amd64-v20250101"),
            images_get_from_family("ubuntu-os-cloud", "ubuntu-2404-lts-amd64"),
            images_insert(
                &l,
                "kubenow-v050",
                "d",
                "https://storage.googleapis.com/kubenow-images/kubenow-v050.tar.gz",
            ),
            images_delete("vre-test-project", "kubenow-v050"),
            addresses_get(&l, "lab-edge-1-ip"),
            addresses_list(&l, "labels.vre-cluster = \"lab\""),
            addresses_insert(&l, "lab-edge-1-ip", "d", &labels),
            addresses_delete(&l, "europe-north1", "lab-edge-1-ip"),
            addresses_insert_internal(
                &l,
                "lab-master-1-internal-ip",
                "d",
                &l.region_url("subnetworks", "lab-subnet"),
                "10.0.0.10",
                &labels,
            ),
            instances_list(&l, "labels.vre-cluster = \"lab\""),
            instances_get(&l, "europe-north1-a", "lab-master-1"),
            instances_bulk_insert(&l, &names, props, "create".into()),
            instances_delete(&l, "europe-north1-a", "lab-master-1"),
            instances_attach_disk(
                &l,
                "europe-north1-a",
                "lab-storage-1",
                &l.zone_url("disks", "lab-storage-1-data"),
                "vre-data",
            ),
            instances_detach_disk(&l, "europe-north1-a", "lab-storage-1", "vre-data"),
            instances_add_access_config(&l, "europe-north1-a", "lab-edge-1", "nic0", "203.0.113.7"),
            instances_delete_access_config(&l, "europe-north1-a", "lab-edge-1", "nic0", EXTERNAL_ACCESS_CONFIG),
            disks_get(&l, "lab-storage-1-data"),
            disks_list(&l, "labels.vre-cluster = \"lab\""),
            disks_insert(&l, "lab-storage-1-data", "d", 100, "pd-balanced", &labels),
            disks_delete(&l, "europe-north1-a", "lab-storage-1-data"),
            zones_get(&l),
            regions_get(&l),
            machine_types_get(&l, "e2-standard-2"),
            operations_wait("vre-test-project", &OperationScope::Global, "operation-1"),
            operations_wait(
                "vre-test-project",
                &OperationScope::Region("europe-north1".into()),
                "operation-2",
            ),
            operations_wait(
                "vre-test-project",
                &OperationScope::Zone("europe-north1-a".into()),
                "operation-3",
            ),
        ]
    }

    #[test]
    fn every_call_matches_the_discovery_document() {
        let d = Discovery::load();
        let calls = every_call();
        let mut problems = Vec::new();
        for c in &calls {
            problems.extend(check(&d, c));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // and each call's expanded path is what the document's template gives
        for c in &calls {
            let (m, _) = d
                .find(c.verb, &c.path())
                .unwrap_or_else(|| panic!("{} {}", c.verb, c.path()));
            assert_eq!(m.id, c.operation, "{}", c.path());
        }
    }

    #[test]
    fn the_checker_catches_wrong_requests() {
        let d = Discovery::load();
        let l = loc();
        // a property the schema does not have
        let mut c = networks_insert(&l, "lab-net", "d", false);
        c.body.as_mut().unwrap()["cidr"] = json!("10.0.0.0/24");
        assert!(check(&d, &c).iter().any(|p| p.contains("cidr")), "{:?}", check(&d, &c));
        // a value outside an enum
        let mut c = addresses_insert(&l, "a", "d", &json!({}));
        c.body.as_mut().unwrap()["addressType"] = json!("PUBLIC");
        assert!(check(&d, &c).iter().any(|p| p.contains("addressType")));
        // a missing required query parameter
        let mut c = instances_detach_disk(&l, "z", "i", "vre-data");
        c.query.clear();
        assert!(check(&d, &c).iter().any(|p| p.contains("deviceName")));
        // the wrong verb
        let mut c = instances_delete(&l, "europe-north1-a", "x");
        c.verb = "POST";
        assert!(!check(&d, &c).is_empty());
        // a name that breaks the path pattern
        let c = instances_get(&l, "europe-north1-a", "Lab_Master");
        assert!(
            check(&d, &c).iter().any(|p| p.contains("instance")),
            "{:?}",
            check(&d, &c)
        );
    }

    #[test]
    fn paths_are_expanded_and_encoded() {
        let c = firewalls_get(&loc(), "a b");
        assert_eq!(c.path(), "projects/vre-test-project/global/firewalls/a%20b");
        let c = operations_wait("p", &OperationScope::Zone("z".into()), "op");
        assert_eq!(c.path(), "projects/p/zones/z/operations/op/wait");
    }
}
