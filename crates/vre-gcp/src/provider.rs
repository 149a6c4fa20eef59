//! [`GcpProvider`]: the [`CloudProvider`] on Compute Engine.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;
use vre_core::plan::{key_pair_name, network_name, security_group_name};
use vre_core::spec::{ImageSpec, Ipv4Cidr, node_name};
use vre_core::{
    Capabilities, CloudProvider, CloudResource, ClusterRef, Error, InstanceBatch, InstanceRequest, NetworkInfo,
    NetworkRequest, PreflightProblem, PreflightRequest, ROLE_LABEL, ResourceKey, ResourceKind, ResourceStatus, Result,
    SecurityGroupRequest, SpecField, StepProgress, VolumeRequest, attr,
};

use crate::call::{self, ComputeCall, EXTERNAL_ACCESS_CONFIG, FirewallRule, Location};
use crate::client::{ComputeClient, PollPolicy};
use crate::error::GcpError;
use crate::ownership::{self, description, is_owned, key_from_label, label_filter, labels};
use crate::settings::{GcpSettings, SubnetMode};
use vre_cloud_kit::{Observed, WaitWording, wait_instances_reported};

/// The device name of a node's data disk; the guest sees it as `/dev/disk/by-id/google-vre-data`.
pub const DATA_DEVICE: &str = "vre-data";
/// [`CloudResource::attrs`] key of the SSH public key a key-pair resource carries.
pub const PUBLIC_KEY_ATTR: &str = "public_key";
/// Marks a network that vre uses but did not create (never deleted).
pub const REUSED_ATTR: &str = "reused";
/// The network tag firewall rules select nodes by.
pub const NETWORK_TAG_ATTR: &str = "network_tag";
/// The kind of a reserved internal address (the master's).
const INTERNAL_ADDRESS_KIND: &str = "internal-address";
/// `bulkInsert` accepts up to this many instances per call.
const MAX_BULK: u32 = 1000;

/// The Compute Engine provider.
#[derive(Debug)]
pub struct GcpProvider {
    client: ComputeClient,
    loc: Location,
    settings: GcpSettings,
}

/// The parts of a partial resource URL (`projects/p/zones/z/instances/n`).
#[derive(Debug, PartialEq, Eq)]
struct ResourcePath<'a> {
    project: &'a str,
    /// `None` for global resources.
    region: Option<&'a str>,
    zone: Option<&'a str>,
    name: &'a str,
}

fn parse_path(id: &str) -> Option<ResourcePath<'_>> {
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

fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The reservation of the master's internal address.
fn master_address_name(cluster: &str) -> String {
    format!("{}-internal-ip", node_name(cluster, vre_core::Role::Master, 1))
}

fn subnet_name(cluster: &str) -> String {
    format!("{cluster}-subnet")
}

fn ingress_firewall_name(cluster: &str) -> String {
    format!("{cluster}-sg-ingress")
}

fn unexpected(purpose: &str, message: impl Into<String>) -> Error {
    GcpError::Decode {
        operation: purpose.to_string(),
        message: message.into(),
    }
    .into()
}

/// Runs a create call; a resource that exists already (a retry after a lost answer) is fine.
async fn create(client: &ComputeClient, c: &ComputeCall) -> std::result::Result<(), GcpError> {
    match client.execute(c).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a delete call; a resource already gone is fine.
async fn remove(client: &ComputeClient, c: &ComputeCall) -> Result<()> {
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

    /// Reserves the master's fixed address in the subnetwork before any
    /// instance exists, so a node of another group booting at the same time
    /// cannot be given it.
    async fn reserve_master_address(
        &self,
        cluster: &ClusterRef,
        request: &NetworkRequest,
        info: &NetworkInfo,
    ) -> Result<()> {
        let Some(ip) = request.master_address(&info.cidr) else {
            return Ok(());
        };
        let name = master_address_name(&cluster.name);
        if let Some(v) = self.client.get_opt(&call::addresses_get(&self.loc, &name)).await? {
            self.owned_or_conflict(&v, cluster, "address", &name)?;
            if str_at(&v, "/address") == Some(ip.to_string().as_str()) {
                return Ok(());
            }
            // network.master_ip changed since the reservation
            remove(
                &self.client,
                &call::addresses_delete(&self.loc, &self.loc.region, &name),
            )
            .await?;
        }
        let subnet = info.network.attr(attr::SUBNET_ID).unwrap_or_default();
        let insert = call::addresses_insert_internal(
            &self.loc,
            &name,
            &format!("fixed address of the master of vre cluster {}", cluster.name),
            subnet,
            &ip.to_string(),
            &labels(&cluster.name, None, Some(vre_core::Role::Master)),
        );
        create(&self.client, &insert).await?;
        Ok(())
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

    fn owned_or_conflict(&self, v: &Value, cluster: &ClusterRef, what: &str, name: &str) -> Result<()> {
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

    // ---- networks ----

    async fn existing_network(&self, name: &str) -> Result<NetworkInfo> {
        let net = self
            .client
            .get_opt(&call::networks_get(&self.loc, name))
            .await?
            .ok_or_else(|| {
                Error::input(
                    "gcp.network",
                    format!(
                        "network \"{name}\" does not exist in project {}; create it or remove gcp.network",
                        self.loc.project
                    ),
                )
            })?;
        let auto = net
            .get("autoCreateSubnetworks")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sub_name = match (&self.settings.subnetwork, auto) {
            (Some(s), _) => s.clone(),
            (None, true) => name.to_string(),
            (None, false) => {
                return Err(Error::input(
                    "gcp.subnetwork",
                    format!(
                        "is required: \"{name}\" is a custom-mode network; name its subnetwork in {}",
                        self.loc.region
                    ),
                ));
            }
        };
        let sub = self
            .client
            .get_opt(&call::subnetworks_get(&self.loc, &sub_name))
            .await?
            .ok_or_else(|| {
                Error::input(
                    "gcp.subnetwork",
                    format!(
                        "subnetwork \"{sub_name}\" does not exist in region {}; name one of network \"{name}\"",
                        self.loc.region
                    ),
                )
            })?;
        let info = self.network_info(name, &sub_name, &sub)?;
        Ok(NetworkInfo {
            network: info.network.with_attr(REUSED_ATTR, "true"),
            cidr: info.cidr,
        })
    }

    fn network_info(&self, name: &str, sub_name: &str, sub: &Value) -> Result<NetworkInfo> {
        let range = str_at(sub, "/ipCidrRange").unwrap_or("");
        let cidr: Ipv4Cidr = range.parse().map_err(|e: String| {
            unexpected(
                &format!("read subnetwork {sub_name}"),
                format!("ipCidrRange \"{range}\": {e}"),
            )
        })?;
        let network = CloudResource::new(ResourceKind::Network, self.loc.global_url("networks", name), name)
            .with_attr(attr::SUBNET_ID, self.loc.region_url("subnetworks", sub_name))
            .with_attr(attr::CIDR, cidr.to_string());
        Ok(NetworkInfo { network, cidr })
    }

    // ---- firewalls ----

    async fn ensure_firewall(&self, cluster: &ClusterRef, rule: &FirewallRule) -> Result<()> {
        match self.client.get_opt(&call::firewalls_get(&self.loc, &rule.name)).await? {
            None => Ok(create(&self.client, &call::firewalls_insert(&self.loc, rule)).await?),
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "firewall", &rule.name)?;
                let want = call::firewalls_insert(&self.loc, rule).body.unwrap_or(Value::Null);
                let same = ["allowed", "sourceRanges", "targetTags"]
                    .iter()
                    .all(|k| normalized(v.get(*k)) == normalized(want.get(*k)));
                if !same {
                    self.client.execute(&call::firewalls_patch(&self.loc, rule)).await?;
                }
                Ok(())
            }
        }
    }

    // ---- images ----

    /// Projects `image.name` is looked up in: the image project, then the own project (imports land there).
    fn image_projects(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = &self.settings.image_project {
            v.push(p.clone());
        }
        if !v.contains(&self.loc.project) {
            v.push(self.loc.project.clone());
        }
        v
    }

    /// The image named `name` (or the newest of the family `name`).
    async fn find_image(&self, name: &str) -> Result<Option<Value>> {
        for project in self.image_projects() {
            if let Some(v) = self.client.get_opt(&call::images_get(&project, name)).await? {
                return Ok(Some(v));
            }
            if let Some(v) = self
                .client
                .get_opt(&call::images_get_from_family(&project, name))
                .await?
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn image_resource(&self, v: &Value) -> Result<CloudResource> {
        let name = str_at(v, "/name").unwrap_or_default();
        let link = str_at(v, "/selfLink").unwrap_or_default();
        let project = parse_path(link).map_or(self.loc.project.as_str(), |p| p.project);
        let status = match str_at(v, "/status").unwrap_or("READY") {
            "READY" => ResourceStatus::Ready,
            "PENDING" => ResourceStatus::Pending,
            "DELETING" => ResourceStatus::Deleting,
            other => ResourceStatus::Failed {
                reason: format!("image status {other}"),
            },
        };
        Ok(CloudResource::new(
            ResourceKind::Image,
            format!("projects/{project}/global/images/{name}"),
            name,
        )
        .with_status(status))
    }

    async fn wait_image_ready(&self, name: &str) -> Result<CloudResource> {
        let poll = self.client.poll().clone();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let v = self.client.send(&call::images_get(&self.loc.project, name)).await?;
            let img = self.image_resource(&v)?;
            match &img.status {
                ResourceStatus::Ready => return Ok(img),
                ResourceStatus::Failed { reason } => {
                    return Err(Error::rejected(
                        SpecField::ImageSource,
                        format!(
                            "importing image \"{name}\" failed ({reason}); check that the archive is a tar.gz holding disk.raw"
                        ),
                    ));
                }
                _ => {}
            }
            if started.elapsed() > poll.timeout {
                return Err(Error::Timeout {
                    what: format!("image {name} to become READY"),
                    after: poll.timeout,
                    hint: "the import continues; run the same command again later".into(),
                });
            }
            tokio::time::sleep(poll.delay(attempt, None)).await;
            attempt += 1;
        }
    }

    // ---- instances ----

    async fn list_instances(&self, cluster: &ClusterRef) -> Result<Vec<Value>> {
        Ok(self
            .client
            .list(&call::instances_list(&self.loc, &label_filter(&cluster.name)))
            .await?)
    }

    fn instance_resource(&self, cluster: &ClusterRef, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let zone = str_at(v, "/zone").map_or(self.loc.zone.as_str(), last_segment);
        let id = format!("projects/{}/zones/{zone}/instances/{name}", self.loc.project);
        let state = str_at(v, "/status").unwrap_or("PROVISIONING");
        let status = match state {
            "RUNNING" => ResourceStatus::Ready,
            "PROVISIONING" | "STAGING" | "REPAIRING" | "PENDING" => ResourceStatus::Pending,
            other => {
                let detail = str_at(v, "/statusMessage")
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                ResourceStatus::Failed {
                    reason: format!("instance is {other}{detail}"),
                }
            }
        };
        let mut r = CloudResource::new(ResourceKind::Instance, id, name).with_status(status);
        if let Some((role, i)) = ResourceKey::server_from_name(&cluster.name, name) {
            r = r.with_key(ResourceKey::server(role, i));
        }
        if let Some(ip) = str_at(v, "/networkInterfaces/0/networkIP") {
            r = r.with_attr(attr::PRIVATE_IP, ip);
        }
        if let Some(ip) = str_at(v, "/networkInterfaces/0/accessConfigs/0/natIP") {
            r = r.with_attr(attr::PUBLIC_IP, ip);
        }
        if let Some(mt) = str_at(v, "/machineType") {
            r = r.with_attr(attr::FLAVOR, last_segment(mt));
        }
        if let Some(role) = v.pointer(&format!("/labels/{ROLE_LABEL}")).and_then(Value::as_str) {
            r = r.with_attr(attr::ROLE, role);
        }
        if let Some(n) = str_at(v, "/id") {
            r = r.with_attr(attr::INSTANCE_ID, n);
        }
        r
    }

    /// The `instanceProperties` of one bulkInsert.
    fn instance_properties(
        &self,
        cluster: &ClusterRef,
        batch: &InstanceBatch,
        todo: &[&InstanceRequest],
    ) -> Result<Value> {
        let public_key = batch.key_pair.attr(PUBLIC_KEY_ATTR).ok_or_else(|| {
            Error::component(
                "apply",
                "the key-pair resource carries no public key; run `vre apply` again",
            )
        })?;
        let tag = batch
            .security_group
            .attr(NETWORK_TAG_ATTR)
            .map_or_else(|| security_group_name(&cluster.name), str::to_string);
        let subnet = batch.network.network.attr(attr::SUBNET_ID).ok_or_else(|| {
            Error::component(
                "apply",
                "the network resource carries no subnetwork; run `vre apply` again",
            )
        })?;
        let single = match todo {
            [one] => Some(*one),
            _ => None,
        };
        if single.is_none() && todo.iter().any(|i| i.fixed_ip.is_some()) {
            return Err(Error::component(
                "apply",
                format!(
                    "{} {} nodes ask for fixed addresses; bulkInsert gives one address per call",
                    todo.len(),
                    batch.role
                ),
            ));
        }
        let mut access = json!({"type": "ONE_TO_ONE_NAT", "name": EXTERNAL_ACCESS_CONFIG, "networkTier": "PREMIUM"});
        if let Some(addr) = single
            .and_then(|i| i.public_ip.as_ref())
            .and_then(|ip| ip.attr(attr::ADDRESS))
        {
            access["natIP"] = json!(addr);
        }
        let mut nic = json!({
            "network": batch.network.network.id,
            "subnetwork": subnet,
            "accessConfigs": [access],
        });
        if let Some(ip) = single.and_then(|i| i.fixed_ip) {
            nic["networkIP"] = json!(ip.to_string());
        }
        let disk_labels = labels(&cluster.name, None, Some(batch.role));
        let mut init = json!({
            "sourceImage": batch.image.id,
            "diskType": self.settings.disk_type,
            "labels": disk_labels,
        });
        if let Some(gb) = batch.root_disk_gb {
            init["diskSizeGb"] = json!(gb.to_string());
        }
        Ok(json!({
            "machineType": batch.flavor,
            "description": format!("{} node of vre cluster {}", batch.role, cluster.name),
            "labels": labels(&cluster.name, None, Some(batch.role)),
            "tags": {"items": [tag]},
            "metadata": {"items": [
                {"key": "user-data", "value": batch.user_data},
                {"key": "ssh-keys", "value": format!("{}:{}", batch.ssh_user, public_key.trim())},
            ]},
            "disks": [{
                "boot": true,
                "autoDelete": true,
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "initializeParams": init,
            }],
            "networkInterfaces": [nic],
        }))
    }

    fn disk_resource(&self, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let zone = str_at(v, "/zone").map_or(self.loc.zone.as_str(), last_segment);
        let id = format!("projects/{}/zones/{zone}/disks/{name}", self.loc.project);
        let key = v
            .pointer(&format!("/labels/{}", vre_core::KEY_LABEL))
            .and_then(Value::as_str)
            .and_then(key_from_label);
        let status = match str_at(v, "/status").unwrap_or("READY") {
            "READY" => ResourceStatus::Ready,
            "CREATING" | "RESTORING" => ResourceStatus::Pending,
            "DELETING" => ResourceStatus::Deleting,
            other => ResourceStatus::Failed {
                reason: format!("disk status {other}"),
            },
        };
        let kind = if key.is_some() {
            ResourceKind::Volume
        } else {
            ResourceKind::Other("disk".into())
        };
        let mut r = CloudResource::new(kind, id.clone(), name)
            .with_status(status)
            .with_attr(attr::VOLUME_ID, id);
        if let Some(gb) = str_at(v, "/sizeGb") {
            r = r.with_attr(attr::SIZE_GB, gb);
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    fn address_resource(&self, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let region = str_at(v, "/region").map_or(self.loc.region.as_str(), last_segment);
        let id = format!("projects/{}/regions/{region}/addresses/{name}", self.loc.project);
        let status = match str_at(v, "/status").unwrap_or("RESERVED") {
            "RESERVING" => ResourceStatus::Pending,
            _ => ResourceStatus::Ready,
        };
        let kind = if str_at(v, "/addressType") == Some("INTERNAL") {
            ResourceKind::Other(INTERNAL_ADDRESS_KIND.into())
        } else {
            ResourceKind::PublicIp
        };
        let mut r = CloudResource::new(kind, id, name).with_status(status);
        if let Some(a) = str_at(v, "/address") {
            r = r.with_attr(attr::ADDRESS, a);
        }
        if let Some(k) = v
            .pointer(&format!("/labels/{}", vre_core::KEY_LABEL))
            .and_then(Value::as_str)
            .and_then(key_from_label)
        {
            r = r.with_key(k);
        }
        r
    }

    fn firewall_resource(&self, cluster: &ClusterRef, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let id = self.loc.global_url("firewalls", name);
        if name == security_group_name(&cluster.name) {
            CloudResource::new(ResourceKind::SecurityGroup, id, name)
                .with_key(ResourceKey::security_group())
                .with_attr(NETWORK_TAG_ATTR, security_group_name(&cluster.name))
        } else {
            CloudResource::new(ResourceKind::Other("firewall".into()), id, name)
        }
    }

    async fn instance_by_id(&self, id: &str) -> Result<Option<(String, String, Value)>> {
        let p =
            parse_path(id).ok_or_else(|| unexpected("read instance", format!("\"{id}\" is not an instance path")))?;
        let zone = p.zone.unwrap_or(&self.loc.zone).to_string();
        let name = p.name.to_string();
        let v = self
            .client
            .get_opt(&call::instances_get(&self.loc, &zone, &name))
            .await?;
        Ok(v.map(|v| (zone, name, v)))
    }
}

/// The attachment of a node's data disk (device `vre-data`); its id names instance and device.
fn attachment_resource(key: ResourceKey, instance_id: &str, volume: &CloudResource) -> CloudResource {
    CloudResource::new(
        ResourceKind::VolumeAttachment,
        format!("{instance_id}#{DATA_DEVICE}"),
        format!("{}-attachment", volume.name),
    )
    .with_key(key)
    .with_attr(attr::DEVICE, format!("/dev/disk/by-id/google-{DATA_DEVICE}"))
    .with_attr(attr::INSTANCE_ID, instance_id)
    .with_attr(attr::VOLUME_ID, volume.id.clone())
}

/// A JSON value with object keys sorted and arrays of strings sorted, for comparing rules.
fn normalized(v: Option<&Value>) -> Value {
    match v {
        None => Value::Null,
        Some(Value::Array(a)) => {
            let mut items: Vec<Value> = a.iter().map(|x| normalized(Some(x))).collect();
            items.sort_by_key(|x| x.to_string());
            Value::Array(items)
        }
        Some(Value::Object(o)) => {
            let sorted: BTreeMap<&String, Value> = o.iter().map(|(k, x)| (k, normalized(Some(x)))).collect();
            json!(sorted)
        }
        Some(other) => other.clone(),
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
        let mut problems = Vec::new();
        let zone = self.client.get_opt(&call::zones_get(&self.loc)).await?;
        if zone.is_none() {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "zone"),
                format!(
                    "zone \"{}\" does not exist for project {}; pick one from `gcloud compute zones list`",
                    self.loc.zone, self.loc.project
                ),
            ));
            return Ok(problems);
        }
        if let Some(n) = &self.settings.network
            && self.client.get_opt(&call::networks_get(&self.loc, n)).await?.is_none()
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "network"),
                format!("network \"{n}\" does not exist in project {}", self.loc.project),
            ));
        }
        let existing: Vec<String> = self
            .list_instances(cluster)
            .await?
            .iter()
            .filter_map(|v| str_at(v, "/name").map(str::to_string))
            .collect();
        let mut cpus_needed: i64 = 0;
        for g in request.groups() {
            match self.client.get_opt(&call::machine_types_get(&self.loc, &g.flavor)).await? {
                None => problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "machine type \"{}\" is not offered in zone {}; list them with `gcloud compute machine-types list --filter=zone:{}`",
                        g.flavor, self.loc.zone, self.loc.zone
                    ),
                )),
                Some(mt) => {
                    let cpus = mt.get("guestCpus").and_then(Value::as_i64).unwrap_or(0);
                    let missing = (1..=g.count).filter(|i| !existing.contains(&node_name(&cluster.name, g.role, *i))).count();
                    cpus_needed += cpus * missing as i64;
                }
            }
        }
        if self.find_image(&request.image.name).await?.is_none() && request.image.source.is_none() {
            problems.push(PreflightProblem::new(
                SpecField::Image,
                format!(
                    "no image or image family \"{}\" in project(s) {}; set gcp.image_project, or image.source to a tar.gz in Cloud Storage to import it",
                    request.image.name,
                    self.image_projects().join(", ")
                ),
            ));
        }
        if cpus_needed > 0
            && let Some(region) = self.client.get_opt(&call::regions_get(&self.loc)).await?
        {
            let quota = region.get("quotas").and_then(Value::as_array).and_then(|qs| {
                qs.iter()
                    .find(|q| q.get("metric").and_then(Value::as_str) == Some("CPUS"))
            });
            if let Some(q) = quota {
                let limit = q.get("limit").and_then(Value::as_f64).unwrap_or(f64::MAX);
                let usage = q.get("usage").and_then(Value::as_f64).unwrap_or(0.0);
                let free = (limit - usage).max(0.0);
                if cpus_needed as f64 > free {
                    problems.push(PreflightProblem::new(
                        SpecField::Nodes,
                        format!(
                            "the new nodes need {cpus_needed} vCPUs but only {free} of the CPUS quota ({limit}) are free in {}; request more quota or choose smaller machine types",
                            self.loc.region
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }

    async fn ensure_image(
        &self,
        _cluster: &ClusterRef,
        image: &ImageSpec,
        _progress: &StepProgress,
    ) -> Result<CloudResource> {
        if let Some(v) = self.find_image(&image.name).await? {
            let img = self.image_resource(&v)?;
            return match img.status {
                ResourceStatus::Pending => self.wait_image_ready(&img.name).await,
                _ => Ok(img),
            };
        }
        let Some(source) = &image.source else {
            return Err(Error::rejected(
                SpecField::Image,
                format!(
                    "no image or image family \"{}\" in project(s) {}; set image.source to import one",
                    image.name,
                    self.image_projects().join(", ")
                ),
            ));
        };
        let url = crate::image::storage_url(source).ok_or_else(|| {
            Error::rejected(
                SpecField::ImageSource,
                format!("\"{source}\" is not a gs:// or https://storage.googleapis.com/ URL"),
            )
        })?;
        let desc = format!("imported by vre from {url}");
        create(&self.client, &call::images_insert(&self.loc, &image.name, &desc, &url)).await?;
        self.wait_image_ready(&image.name).await
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        if let Some(name) = &self.settings.network {
            let info = self.existing_network(name).await?;
            self.reserve_master_address(cluster, request, &info).await?;
            return Ok(info);
        }
        let name = network_name(&cluster.name);
        let auto = self.settings.subnet_mode == SubnetMode::Auto;
        let net = match self.client.get_opt(&call::networks_get(&self.loc, &name)).await? {
            Some(v) => v,
            None => {
                let insert = call::networks_insert(&self.loc, &name, &description(&cluster.name, "network"), auto);
                create(&self.client, &insert).await?;
                self.client.send(&call::networks_get(&self.loc, &name)).await?
            }
        };
        self.owned_or_conflict(&net, cluster, "network", &name)?;
        let is_auto = net
            .get("autoCreateSubnetworks")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sub_name = if is_auto {
            name.clone()
        } else {
            subnet_name(&cluster.name)
        };
        let sub = match self
            .client
            .get_opt(&call::subnetworks_get(&self.loc, &sub_name))
            .await?
        {
            Some(v) => v,
            None if is_auto => {
                return Err(unexpected(
                    &format!("read subnetwork {sub_name}"),
                    format!(
                        "auto-mode network {name} has no subnetwork in region {}",
                        self.loc.region
                    ),
                ));
            }
            None => {
                let insert = call::subnetworks_insert(
                    &self.loc,
                    &sub_name,
                    &description(&cluster.name, "subnet"),
                    &self.loc.global_url("networks", &name),
                    &request.cidr.to_string(),
                );
                create(&self.client, &insert).await?;
                self.client.send(&call::subnetworks_get(&self.loc, &sub_name)).await?
            }
        };
        let info = self.network_info(&name, &sub_name, &sub)?;
        if !is_auto && info.cidr != request.cidr {
            return Err(Error::rejected(
                SpecField::NetworkCidr,
                format!(
                    "subnetwork {sub_name} already has range {}, the spec says {}; change it back or `vre destroy` first",
                    info.cidr, request.cidr
                ),
            ));
        }
        self.reserve_master_address(cluster, request, &info).await?;
        Ok(info)
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        let c = &cluster.name;
        let tag = security_group_name(c);
        let internal = FirewallRule {
            name: security_group_name(c),
            description: description(c, "security-group"),
            network: network.network.id.clone(),
            allowed: ["tcp", "udp", "icmp", "ipip"]
                .iter()
                .map(|p| (p.to_string(), Vec::new()))
                .collect(),
            source_ranges: vec![network.cidr.to_string()],
            source_tags: vec![tag.clone()],
            target_tags: vec![tag.clone()],
        };
        self.ensure_firewall(cluster, &internal).await?;
        let ingress_name = ingress_firewall_name(c);
        if request.ingress_ports.is_empty() {
            remove(&self.client, &call::firewalls_delete(&self.loc, &ingress_name)).await?;
        } else {
            let ingress = FirewallRule {
                name: ingress_name,
                description: description(c, "security-group-ingress"),
                network: network.network.id.clone(),
                allowed: vec![(
                    "tcp".into(),
                    request.ingress_ports.iter().map(|p| p.to_string()).collect(),
                )],
                source_ranges: vec!["0.0.0.0/0".into()],
                source_tags: Vec::new(),
                target_tags: vec![tag.clone()],
            };
            self.ensure_firewall(cluster, &ingress).await?;
        }
        Ok(CloudResource::new(
            ResourceKind::SecurityGroup,
            self.loc.global_url("firewalls", &internal.name),
            &internal.name,
        )
        .with_attr(NETWORK_TAG_ATTR, tag))
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        let key = public_key.trim();
        if !(key.starts_with("ssh-") || key.starts_with("ecdsa-")) || key.contains('\n') {
            return Err(Error::input(
                "ssh.public_key",
                "is not a single-line OpenSSH public key; point it at a .pub file",
            ));
        }
        // Compute Engine has no key-pair object: the key goes into each
        // instance's `ssh-keys` metadata
        let name = key_pair_name(&cluster.name);
        Ok(
            CloudResource::new(ResourceKind::KeyPair, format!("metadata/ssh-keys/{name}"), name)
                .with_attr(PUBLIC_KEY_ATTR, key),
        )
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        let existing = self.list_instances(cluster).await?;
        let exists = |name: &str| existing.iter().any(|v| str_at(v, "/name") == Some(name));
        let todo: Vec<&InstanceRequest> = batch.instances.iter().filter(|i| !exists(&i.name)).collect();
        if !todo.is_empty() {
            let properties = self.instance_properties(cluster, batch, &todo)?;
            let names: Vec<String> = todo.iter().map(|i| i.name.clone()).collect();
            let purpose = format!("create {} {} instance(s)", names.len(), batch.role);
            create(
                &self.client,
                &call::instances_bulk_insert(&self.loc, &names, properties, purpose),
            )
            .await?;
        }
        let now = self.list_instances(cluster).await?;
        let mut out = Vec::new();
        for req in &batch.instances {
            let v = now
                .iter()
                .find(|v| str_at(v, "/name") == Some(req.name.as_str()))
                .ok_or_else(|| {
                    unexpected(
                        &format!("create {} instances", batch.role),
                        format!("bulkInsert finished but instance {} is not listed", req.name),
                    )
                })?;
            out.push(self.instance_resource(cluster, v).with_key(req.key.clone()));
        }
        Ok(out)
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        // one instances.list per round for the whole cluster
        let list = |asked: Vec<CloudResource>| async move {
            let listed = self.list_instances(cluster).await?;
            Ok(asked
                .into_iter()
                .map(|want| {
                    Observed::by_status(
                        match listed.iter().find(|v| str_at(v, "/name") == Some(want.name.as_str())) {
                            Some(v) => self.instance_resource(cluster, v),
                            None => want.with_status(ResourceStatus::Failed {
                                reason: "the instance disappeared while booting".into(),
                            }),
                        },
                    )
                })
                .collect())
        };
        let wording = WaitWording {
            settled: "instances running or failed",
            things: "instances",
            until: "to be RUNNING",
            hint: format!(
                "check them with `gcloud compute instances describe --zone {}`",
                self.loc.zone
            ),
        };
        wait_instances_reported(self.client.poll(), instances, timeout, list, progress, wording).await
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        let get = call::disks_get(&self.loc, &request.name);
        let v = match self.client.get_opt(&get).await? {
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "disk", &request.name)?;
                v
            }
            None => {
                let role = request.key.node().map(|(r, _)| r);
                let insert = call::disks_insert(
                    &self.loc,
                    &request.name,
                    &format!("data disk of vre cluster {}", cluster.name),
                    request.size_gb,
                    &self.settings.disk_type,
                    &labels(&cluster.name, Some(&request.key), role),
                );
                create(&self.client, &insert).await?;
                self.client.send(&get).await?
            }
        };
        Ok(self.disk_resource(&v).with_key(request.key.clone()))
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let (zone, name, v) = self.instance_by_id(&instance.id).await?.ok_or_else(|| {
            Error::from(vre_core::CloudError::http(
                crate::error::SERVICE,
                format!("attach {} to {}", volume.name, instance.name),
                404,
                format!("instance {} does not exist", instance.name),
                None,
            ))
        })?;
        let suffix = format!("/disks/{}", volume.name);
        let attached = v.get("disks").and_then(Value::as_array).is_some_and(|ds| {
            ds.iter()
                .any(|d| str_at(d, "/source").is_some_and(|s| s.ends_with(&suffix)))
        });
        if !attached {
            self.client
                .execute(&call::instances_attach_disk(
                    &self.loc,
                    &zone,
                    &name,
                    &volume.id,
                    DATA_DEVICE,
                ))
                .await?;
        }
        Ok(attachment_resource(key.clone(), &instance.id, volume))
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        let get = call::addresses_get(&self.loc, name);
        let v = match self.client.get_opt(&get).await? {
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "address", name)?;
                v
            }
            None => {
                let role = key.node().map(|(r, _)| r);
                let insert = call::addresses_insert(
                    &self.loc,
                    name,
                    &format!("public address of vre cluster {}", cluster.name),
                    &labels(&cluster.name, Some(key), role),
                );
                create(&self.client, &insert).await?;
                self.client.send(&get).await?
            }
        };
        Ok(self.address_resource(&v).with_key(key.clone()))
    }

    async fn associate_public_ip(
        &self,
        _cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let address = ip
            .attr(attr::ADDRESS)
            .ok_or_else(|| {
                Error::component(
                    "apply",
                    format!("public IP {} has no address recorded; run `vre apply` again", ip.name),
                )
            })?
            .to_string();
        let (zone, name, v) = self.instance_by_id(&instance.id).await?.ok_or_else(|| {
            Error::from(vre_core::CloudError::http(
                crate::error::SERVICE,
                format!("bind {address} to {}", instance.name),
                404,
                format!("instance {} does not exist", instance.name),
                None,
            ))
        })?;
        let nic = str_at(&v, "/networkInterfaces/0/name").unwrap_or("nic0").to_string();
        let configs: Vec<Value> = v
            .pointer("/networkInterfaces/0/accessConfigs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let bound = configs.iter().any(|c| str_at(c, "/natIP") == Some(address.as_str()));
        if !bound {
            // bulkInsert gave the node an ephemeral address (it boots with
            // internet access); swap it for the reserved one
            for c in &configs {
                if let Some(cfg) = str_at(c, "/name") {
                    self.client
                        .execute(&call::instances_delete_access_config(
                            &self.loc, &zone, &name, &nic, cfg,
                        ))
                        .await?;
                }
            }
            self.client
                .execute(&call::instances_add_access_config(
                    &self.loc, &zone, &name, &nic, &address,
                ))
                .await?;
        }
        Ok(ip.clone().with_attr(attr::INSTANCE_ID, instance.id.clone()))
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        let c = &cluster.name;
        let own_network = self.settings.network.is_none();
        let (net_name, sub_name) = (network_name(c), subnet_name(c));
        let (get_net, get_sub) = (
            call::networks_get(&self.loc, &net_name),
            call::subnetworks_get(&self.loc, &sub_name),
        );
        let firewalls = call::firewalls_list(&self.loc, &ownership::name_prefix_filter(c));
        let (addresses, disks) = (
            call::addresses_list(&self.loc, &label_filter(c)),
            call::disks_list(&self.loc, &label_filter(c)),
        );
        let instance_list = call::instances_list(&self.loc, &label_filter(c));
        let maybe = |call: ComputeCall| async move {
            if own_network {
                self.client.get_opt(&call).await
            } else {
                Ok(None)
            }
        };
        // independent listings, side by side
        let (net, sub, firewalls, addresses, disks, instances) = futures::try_join!(
            maybe(get_net),
            maybe(get_sub),
            self.client.list(&firewalls),
            self.client.list(&addresses),
            self.client.list(&disks),
            self.client.list(&instance_list),
        )?;
        let mut out = Vec::new();
        if net.as_ref().is_some_and(|v| is_owned(v, c)) {
            out.push(
                CloudResource::new(
                    ResourceKind::Network,
                    self.loc.global_url("networks", &net_name),
                    &net_name,
                )
                .with_key(ResourceKey::network()),
            );
        }
        if sub.as_ref().is_some_and(|v| is_owned(v, c)) {
            out.push(CloudResource::new(
                ResourceKind::Subnet,
                self.loc.region_url("subnetworks", &sub_name),
                &sub_name,
            ));
        }
        out.extend(
            firewalls
                .iter()
                .filter(|v| is_owned(v, c))
                .map(|v| self.firewall_resource(cluster, v)),
        );
        out.extend(addresses.iter().map(|v| self.address_resource(v)));
        for d in &disks {
            let r = self.disk_resource(d);
            let in_use = d.get("users").and_then(Value::as_array).is_some_and(|u| !u.is_empty());
            // a boot disk in use is part of its instance and goes with it
            if r.kind == ResourceKind::Volume || !in_use {
                out.push(r);
            }
        }
        for v in &instances {
            let inst = self.instance_resource(cluster, v);
            for d in v.get("disks").and_then(Value::as_array).into_iter().flatten() {
                if str_at(d, "/deviceName") != Some(DATA_DEVICE) {
                    continue;
                }
                let source = str_at(d, "/source").unwrap_or_default();
                let Some(vol) = disks
                    .iter()
                    .map(|x| self.disk_resource(x))
                    .find(|x| source.ends_with(&format!("/disks/{}", x.name)))
                else {
                    continue;
                };
                if let Some((role, i)) = vol.key.as_ref().and_then(|k| k.node()) {
                    out.push(attachment_resource(ResourceKey::attachment(role, i), &inst.id, &vol));
                }
            }
            out.push(inst);
        }
        if !instances.is_empty() {
            // the key lives in the instances' metadata and goes with them
            let name = key_pair_name(c);
            out.push(
                CloudResource::new(ResourceKind::KeyPair, format!("metadata/ssh-keys/{name}"), name)
                    .with_key(ResourceKey::key_pair()),
            );
        }
        Ok(out)
    }

    async fn delete(&self, _cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        let l = &self.loc;
        let path = || {
            parse_path(&resource.id).ok_or_else(|| {
                unexpected(
                    &format!("delete {} {}", resource.kind, resource.name),
                    format!("\"{}\" is not a resource path", resource.id),
                )
            })
        };
        match &resource.kind {
            ResourceKind::KeyPair => Ok(()),
            ResourceKind::Network => {
                if resource.attr(REUSED_ATTR) == Some("true") {
                    return Ok(());
                }
                remove(&self.client, &call::networks_delete(l, path()?.name)).await
            }
            ResourceKind::Subnet => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::subnetworks_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::SecurityGroup => remove(&self.client, &call::firewalls_delete(l, path()?.name)).await,
            ResourceKind::Other(k) if k == "firewall" => {
                remove(&self.client, &call::firewalls_delete(l, path()?.name)).await
            }
            ResourceKind::Other(k) if k == INTERNAL_ADDRESS_KIND => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::addresses_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::PublicIp => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::addresses_delete(l, p.region.unwrap_or(&l.region), p.name),
                )
                .await
            }
            ResourceKind::Volume => {
                let p = path()?;
                remove(&self.client, &call::disks_delete(l, p.zone.unwrap_or(&l.zone), p.name)).await
            }
            ResourceKind::Other(k) if k == "disk" => {
                let p = path()?;
                remove(&self.client, &call::disks_delete(l, p.zone.unwrap_or(&l.zone), p.name)).await
            }
            ResourceKind::Instance => {
                let p = path()?;
                remove(
                    &self.client,
                    &call::instances_delete(l, p.zone.unwrap_or(&l.zone), p.name),
                )
                .await
            }
            ResourceKind::VolumeAttachment => {
                let (instance, device) = resource
                    .id
                    .split_once('#')
                    .unwrap_or((resource.id.as_str(), DATA_DEVICE));
                let Some((zone, name, v)) = self.instance_by_id(instance).await? else {
                    return Ok(());
                };
                let attached = v
                    .get("disks")
                    .and_then(Value::as_array)
                    .is_some_and(|ds| ds.iter().any(|d| str_at(d, "/deviceName") == Some(device)));
                if !attached {
                    return Ok(());
                }
                remove(&self.client, &call::instances_detach_disk(l, &zone, &name, device)).await
            }
            ResourceKind::Image => {
                let p = path()?;
                remove(&self.client, &call::images_delete(p.project, p.name)).await
            }
            other => Err(Error::component(
                "destroy",
                format!(
                    "vre-gcp does not make {other} resources; {} ({}) was not deleted",
                    resource.name, resource.id
                ),
            )),
        }
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
    use crate::discovery::Discovery;
    use std::net::Ipv4Addr;

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
