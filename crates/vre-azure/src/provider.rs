//! [`AzureProvider`]: the [`CloudProvider`] on Azure Resource Manager.
//!
//! Everything lives in one resource group owned by the cluster (tagged
//! `vre:cluster=<name>`), so destroy is one resource-group delete and a
//! check that the group is gone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use vre_core::plan::{key_pair_name, network_name, security_group_name};
use vre_core::spec::{ImageSpec, Ipv4Cidr, node_name};
use vre_core::{
    CLUSTER_TAG, Capabilities, CloudProvider, CloudResource, ClusterRef, Error, InstanceBatch, InstanceRequest,
    KEY_TAG, NetworkInfo, NetworkRequest, PreflightProblem, PreflightRequest, ROLE_TAG, ResourceKey, ResourceKind,
    ResourceStatus, Result, Role, SecurityGroupRequest, SpecField, StepProgress, VolumeRequest, attr,
};

use crate::call::{self, ArmCall, ImageRef, InboundRule, NicSpec, Scope, Tags, VmSpec, types};
use crate::client::{ArmClient, PollPolicy};
use crate::error::AzureError;
use crate::settings::AzureSettings;
use vre_cloud_kit::{Observed, WaitWording, wait_instances_reported};

/// [`CloudResource::attrs`] key of the SSH public key a key-pair resource carries.
pub const PUBLIC_KEY_ATTR: &str = "public_key";
/// The LUN of a node's data disk; the guest sees it as `/dev/disk/azure/scsi1/lun0`.
pub const DATA_LUN: u32 = 0;
/// VMs of one group created at once.
const CREATE_CONCURRENCY: usize = 8;
/// Kinds only this provider has.
const NIC_KIND: &str = "nic";
const DISK_KIND: &str = "disk";

/// The Azure provider.
#[derive(Debug)]
pub struct AzureProvider {
    client: ArmClient,
    scope: Scope,
    settings: AzureSettings,
    /// The master's fixed address as the last network request set it; its
    /// NIC is made once the security group exists.
    master_address: Mutex<Option<Ipv4Addr>>,
    /// Whether the resource group is known to exist (made once, lazily).
    group_ready: Mutex<bool>,
    /// Set once this provider deleted the group: everything in it is gone too.
    group_deleted: Mutex<bool>,
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn nic_name(node: &str) -> String {
    format!("{node}-nic")
}

fn os_disk_name(node: &str) -> String {
    format!("{node}-osdisk")
}

fn subnet_name(cluster: &str) -> String {
    format!("{cluster}-subnet")
}

fn tags(cluster: &str, key: Option<&ResourceKey>, role: Option<Role>) -> Tags {
    let mut t = BTreeMap::new();
    t.insert(CLUSTER_TAG.to_string(), cluster.to_string());
    if let Some(k) = key {
        t.insert(KEY_TAG.to_string(), k.as_str().to_string());
    }
    if let Some(r) = role {
        t.insert(ROLE_TAG.to_string(), r.as_str().to_string());
    }
    t
}

fn tag<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get("tags").and_then(|t| t.get(name)).and_then(Value::as_str)
}

fn key_of(v: &Value) -> Option<ResourceKey> {
    tag(v, KEY_TAG).and_then(ResourceKey::parse)
}

/// Runs a delete; a resource (or group) already gone is fine.
async fn remove(client: &ArmClient, c: &ArmCall) -> Result<()> {
    match client.execute(c).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl AzureProvider {
    /// A provider for the cluster named `cluster` in `subscription`.
    pub fn new(client: ArmClient, subscription: String, settings: AzureSettings, cluster: &str) -> Self {
        let scope = Scope {
            subscription,
            resource_group: settings.resource_group_of(cluster),
            location: settings.location.clone(),
        };
        AzureProvider {
            client,
            scope,
            settings,
            master_address: Mutex::new(None),
            group_ready: Mutex::new(false),
            group_deleted: Mutex::new(false),
        }
    }

    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.client = self.client.with_poll(poll);
        self
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn settings(&self) -> &AzureSettings {
        &self.settings
    }

    fn group_conflict(&self, cluster: &ClusterRef) -> Error {
        Error::input(
            "azure.resource_group",
            format!(
                "resource group \"{}\" exists and is not tagged {CLUSTER_TAG}={}; vre deletes its group on destroy, so name a group of its own",
                self.scope.resource_group, cluster.name
            ),
        )
    }

    /// The cluster's resource group, created on first use.
    async fn ensure_group(&self, cluster: &ClusterRef) -> Result<()> {
        let mut ready = self.group_ready.lock().await;
        if *ready {
            return Ok(());
        }
        match self.client.get_opt(&call::resource_groups_get(&self.scope)).await? {
            Some(g) if tag(&g, CLUSTER_TAG) == Some(cluster.name.as_str()) => {}
            Some(_) => return Err(self.group_conflict(cluster)),
            None => {
                self.client
                    .execute(&call::resource_groups_create(
                        &self.scope,
                        &tags(&cluster.name, None, None),
                    ))
                    .await?;
            }
        }
        *ready = true;
        *self.group_deleted.lock().await = false;
        Ok(())
    }

    /// The group, when it exists and is this cluster's.
    async fn own_group(&self, cluster: &ClusterRef) -> Result<Option<Value>> {
        Ok(self
            .client
            .get_opt(&call::resource_groups_get(&self.scope))
            .await?
            .filter(|g| tag(g, CLUSTER_TAG) == Some(cluster.name.as_str())))
    }

    async fn list_or_empty(&self, c: &ArmCall) -> Result<Vec<Value>> {
        match self.client.list(c).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// VMs, NICs and public IPs of the group, for instance resources.
    async fn compute_view(&self) -> Result<ComputeView> {
        let (vm_list, nic_list, pip_list) = (
            call::virtual_machines_list(&self.scope),
            call::network_interfaces_list(&self.scope),
            call::public_ip_addresses_list(&self.scope),
        );
        let (vms, nics, pips) = futures::try_join!(
            self.list_or_empty(&vm_list),
            self.list_or_empty(&nic_list),
            self.list_or_empty(&pip_list),
        )?;
        Ok(ComputeView { vms, nics, pips })
    }

    /// The image nodes boot from: the table's, else `image.name` read as a URN or id.
    fn image(&self, image: &ImageSpec) -> Result<ImageRef> {
        self.settings.image_for(image).ok_or_else(not_an_image)
    }

    fn pip_resource(&self, v: &Value) -> CloudResource {
        let id = str_at(v, "/id").unwrap_or_default();
        let state = str_at(v, "/properties/provisioningState").unwrap_or("Succeeded");
        let mut r = CloudResource::new(
            ResourceKind::PublicIp,
            id,
            str_at(v, "/name").unwrap_or(last_segment(id)),
        )
        .with_status(status_of(state, None));
        if let Some(ip) = str_at(v, "/properties/ipAddress") {
            r = r.with_attr(attr::ADDRESS, ip);
        }
        if let Some(k) = key_of(v) {
            r = r.with_key(k);
        }
        r
    }

    fn disk_resource(&self, v: &Value) -> CloudResource {
        let id = str_at(v, "/id").unwrap_or_default();
        let key = key_of(v);
        let kind = if key.is_some() {
            ResourceKind::Volume
        } else {
            ResourceKind::Other(DISK_KIND.into())
        };
        let state = str_at(v, "/properties/provisioningState").unwrap_or("Succeeded");
        let mut r = CloudResource::new(kind, id, str_at(v, "/name").unwrap_or(last_segment(id)))
            .with_status(status_of(state, None))
            .with_attr(attr::VOLUME_ID, id);
        if let Some(gb) = v.pointer("/properties/diskSizeGB").and_then(Value::as_u64) {
            r = r.with_attr(attr::SIZE_GB, gb.to_string());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    async fn failure_reason(&self, vm: &str) -> String {
        let view = self
            .client
            .get_opt(&call::virtual_machines_instance_view(&self.scope, vm))
            .await;
        let statuses = view
            .ok()
            .flatten()
            .and_then(|v| v.get("statuses").cloned())
            .unwrap_or(Value::Null);
        statuses
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| str_at(s, "/code").is_some_and(|c| c.starts_with("ProvisioningState/failed")))
            .map(|s| {
                let code = str_at(s, "/code")
                    .unwrap_or_default()
                    .trim_start_matches("ProvisioningState/failed/");
                format!("{code}: {}", str_at(s, "/message").unwrap_or("provisioning failed"))
            })
            .unwrap_or_else(|| "provisioning failed".to_string())
    }

    /// Creates the master's NIC with its static private address as soon as
    /// subnet and security group exist, before any node's NIC can be given
    /// that address dynamically; the master's creation later adds its public IP.
    async fn reserve_master_address(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        security_group: &str,
    ) -> Result<()> {
        let Some(ip) = *self.master_address.lock().await else {
            return Ok(());
        };
        let master = node_name(&cluster.name, Role::Master, 1);
        let name = nic_name(&master);
        if self
            .client
            .get_opt(&call::network_interfaces_get(&self.scope, &name))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let subnet = network.network.attr(attr::SUBNET_ID).unwrap_or_default();
        let nic = NicSpec {
            subnet_id: subnet.to_string(),
            security_group_id: security_group.to_string(),
            private_ip: Some(ip.to_string()),
            public_ip_id: None,
        };
        let key = ResourceKey::server(Role::Master, 1);
        self.client
            .execute(&call::network_interfaces_create(
                &self.scope,
                &name,
                &nic,
                &tags(&cluster.name, Some(&key), Some(Role::Master)),
            ))
            .await?;
        Ok(())
    }

    /// Creates one node: its NIC, then its VM (both followed to the end of
    /// their operations). A VM whose operation failed comes back `Failed`.
    async fn create_node(
        &self,
        cluster: &ClusterRef,
        batch: &InstanceBatch,
        req: &InstanceRequest,
    ) -> Result<CloudResource> {
        let c = &cluster.name;
        let public_key = batch.key_pair.attr(PUBLIC_KEY_ATTR).ok_or_else(|| {
            Error::component(
                "apply",
                "the key-pair resource carries no public key; run `vre apply` again",
            )
        })?;
        let subnet = batch.network.network.attr(attr::SUBNET_ID).ok_or_else(|| {
            Error::component("apply", "the network resource carries no subnet; run `vre apply` again")
        })?;
        let nic = NicSpec {
            subnet_id: subnet.to_string(),
            security_group_id: batch.security_group.id.clone(),
            private_ip: req.fixed_ip.map(|ip| ip.to_string()),
            public_ip_id: req.public_ip.as_ref().map(|p| p.id.clone()),
        };
        let node_tags = tags(c, Some(&req.key), Some(batch.role));
        let nic_body = self
            .client
            .execute(&call::network_interfaces_create(
                &self.scope,
                &nic_name(&req.name),
                &nic,
                &node_tags,
            ))
            .await?;
        let vm = VmSpec {
            size: batch.flavor.clone(),
            image: ImageRef::parse(&batch.image.id).ok_or_else(not_an_image)?,
            nic_id: str_at(&nic_body, "/id").map_or_else(
                || self.scope.id(types::NETWORK_INTERFACE, &nic_name(&req.name)),
                str::to_string,
            ),
            os_disk_name: os_disk_name(&req.name),
            os_disk_gb: batch.root_disk_gb,
            disk_sku: self.settings.disk_sku.clone(),
            admin_user: batch.ssh_user.clone(),
            ssh_public_key: public_key.to_string(),
            custom_data: batch.user_data.clone(),
        };
        match self
            .client
            .execute(&call::virtual_machines_create(&self.scope, &req.name, &vm, &node_tags))
            .await
        {
            Ok(_) => Ok(CloudResource::new(
                ResourceKind::Instance,
                self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                &req.name,
            )
            .with_key(req.key.clone())
            .with_status(ResourceStatus::Ready)),
            Err(AzureError::Operation { code, message, .. }) => {
                // the VM exists in state Failed: the engine replaces it
                Ok(CloudResource::new(
                    ResourceKind::Instance,
                    self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                    &req.name,
                )
                .with_key(req.key.clone())
                .with_status(ResourceStatus::Failed {
                    reason: format!("{code}: {message}"),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `image.name` (with no image in the table) names no Azure image.
fn not_an_image() -> Error {
    Error::rejected(
        SpecField::Image,
        "is not an Azure image; write publisher:offer:sku:version such as \"Canonical:ubuntu-24_04-lts:server:latest\"",
    )
}

/// One node's creation, boxed so a group's run side by side.
type NodeCreate<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<CloudResource>> + Send + 'a>>;

/// The VMs of the group with what their resources need.
struct ComputeView {
    vms: Vec<Value>,
    nics: Vec<Value>,
    pips: Vec<Value>,
}

impl ComputeView {
    fn vm(&self, name: &str) -> Option<&Value> {
        self.vms
            .iter()
            .find(|v| str_at(v, "/name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The VM as a resource; `failed` is the reason known from its operation.
    fn instance(&self, cluster: &ClusterRef, vm: &Value, failed: Option<&str>) -> CloudResource {
        let name = str_at(vm, "/name").unwrap_or_default();
        let id = str_at(vm, "/id").unwrap_or_default();
        let state = str_at(vm, "/properties/provisioningState").unwrap_or("Creating");
        let mut r = CloudResource::new(ResourceKind::Instance, id, name).with_status(status_of(state, failed));
        if let Some((role, i)) = ResourceKey::server_from_name(&cluster.name, name) {
            r = r.with_key(ResourceKey::server(role, i));
        }
        if let Some(size) = str_at(vm, "/properties/hardwareProfile/vmSize") {
            r = r.with_attr(attr::FLAVOR, size);
        }
        if let Some(role) = tag(vm, ROLE_TAG) {
            r = r.with_attr(attr::ROLE, role);
        }
        if let Some(vm_id) = str_at(vm, "/properties/vmId") {
            r = r.with_attr(attr::INSTANCE_ID, vm_id);
        }
        let nic_id = vm
            .pointer("/properties/networkProfile/networkInterfaces")
            .and_then(Value::as_array)
            .and_then(|n| n.first())
            .and_then(|n| str_at(n, "/id"))
            .unwrap_or_default();
        if let Some(nic) = self
            .nics
            .iter()
            .find(|n| str_at(n, "/id").is_some_and(|i| same_id(i, nic_id)))
        {
            let ipc = nic.pointer("/properties/ipConfigurations/0/properties");
            if let Some(ip) = ipc.and_then(|p| str_at(p, "/privateIPAddress")) {
                r = r.with_attr(attr::PRIVATE_IP, ip);
            }
            let pip_id = ipc.and_then(|p| str_at(p, "/publicIPAddress/id")).unwrap_or_default();
            if let Some(addr) = self
                .pips
                .iter()
                .find(|p| str_at(p, "/id").is_some_and(|i| same_id(i, pip_id)))
                .and_then(|p| str_at(p, "/properties/ipAddress"))
            {
                r = r.with_attr(attr::PUBLIC_IP, addr);
            }
        }
        r
    }
}

/// ARM provisioning states as resource statuses.
fn status_of(state: &str, failed: Option<&str>) -> ResourceStatus {
    match state {
        "Succeeded" => ResourceStatus::Ready,
        "Failed" | "Canceled" => ResourceStatus::Failed {
            reason: failed.map_or_else(|| format!("provisioning state {state}"), str::to_string),
        },
        "Deleting" => ResourceStatus::Deleting,
        _ => ResourceStatus::Pending,
    }
}

fn rules_of(v: &Value) -> Vec<Value> {
    let mut rules: Vec<Value> = v
        .pointer("/properties/securityRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let p = &r["properties"];
            let mut ports: Vec<String> = p["destinationPortRanges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if let Some(one) = p["destinationPortRange"].as_str() {
                ports.push(one.to_string());
            }
            ports.sort();
            serde_json::json!([
                r["name"],
                p["priority"],
                p["protocol"],
                p["sourceAddressPrefix"],
                p["destinationAddressPrefix"],
                ports
            ])
        })
        .collect();
    rules.sort_by_key(|r| r.to_string());
    rules
}

#[async_trait]
impl CloudProvider for AzureProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        // ARM has no multi-create for plain VMs: a group's VMs are created
        // concurrently, one PUT each (scale sets would be a different model)
        Capabilities {
            multi_create: false,
            max_batch: 1,
            public_ip_at_create: true,
            custom_dns_servers: false,
        }
    }

    async fn preflight(&self, cluster: &ClusterRef, request: &PreflightRequest) -> Result<Vec<PreflightProblem>> {
        let mut problems = Vec::new();
        if let Some(g) = self.client.get_opt(&call::resource_groups_get(&self.scope)).await?
            && tag(&g, CLUSTER_TAG) != Some(cluster.name.as_str())
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "resource_group"),
                self.group_conflict(cluster).to_string(),
            ));
        }
        if self.settings.image_for(&request.image).is_none() {
            problems.push(PreflightProblem::new(
                SpecField::Image,
                "is not an Azure image (publisher:offer:sku:version or an image id)",
            ));
        }
        let sizes = match self.client.list(&call::virtual_machine_sizes_list(&self.scope)).await {
            Ok(s) => s,
            Err(e @ AzureError::Api { status: 400 | 404, .. }) => {
                problems.push(PreflightProblem::new(
                    SpecField::setting(crate::settings::TABLE, "location"),
                    format!(
                        "\"{}\" was refused ({e}); pick one from `az account list-locations -o table`",
                        self.scope.location
                    ),
                ));
                return Ok(problems);
            }
            Err(e) => return Err(e.into()),
        };
        let existing = match self.own_group(cluster).await? {
            Some(_) => self.list_or_empty(&call::virtual_machines_list(&self.scope)).await?,
            None => Vec::new(),
        };
        let mut cores_needed = 0;
        for g in request.groups() {
            match sizes
                .iter()
                .find(|s| str_at(s, "/name").is_some_and(|n| n.eq_ignore_ascii_case(&g.flavor)))
            {
                None => problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "VM size \"{}\" is not offered in {}; list them with `az vm list-sizes -l {} -o table`",
                        g.flavor, self.scope.location, self.scope.location
                    ),
                )),
                Some(s) => {
                    let cores = s.get("numberOfCores").and_then(Value::as_i64).unwrap_or(0);
                    let missing = (1..=g.count)
                        .filter(|i| {
                            !existing
                                .iter()
                                .any(|v| str_at(v, "/name") == Some(node_name(&cluster.name, g.role, *i).as_str()))
                        })
                        .count() as i64;
                    cores_needed += cores * missing;
                }
            }
        }
        if cores_needed > 0 {
            let usages = self.client.list(&call::usage_list(&self.scope)).await?;
            if let Some(u) = usages.iter().find(|u| str_at(u, "/name/value") == Some("cores")) {
                let limit = u.get("limit").and_then(Value::as_i64).unwrap_or(i64::MAX);
                let used = u.get("currentValue").and_then(Value::as_i64).unwrap_or(0);
                if cores_needed > limit - used {
                    problems.push(PreflightProblem::new(
                        SpecField::Nodes,
                        format!(
                            "the new nodes need {cores_needed} vCPUs but only {} of the regional vCPU quota ({limit}) are free in {}; request more quota or choose smaller sizes",
                            (limit - used).max(0),
                            self.scope.location
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
        if image.source.is_some() {
            return Err(Error::rejected(
                SpecField::ImageSource,
                "vre cannot import images on Azure; set azure.image_id to an uploaded image",
            ));
        }
        // Marketplace images are referenced, not copied: the VM create checks them
        let img = self.image(image)?;
        let mut r = CloudResource::new(ResourceKind::Image, img.describe(), img.describe());
        if let ImageRef::Platform {
            publisher,
            offer,
            sku,
            version,
        } = img
        {
            r = r
                .with_attr("publisher", publisher)
                .with_attr("offer", offer)
                .with_attr("sku", sku)
                .with_attr("version", version);
        }
        Ok(r)
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        self.ensure_group(cluster).await?;
        *self.master_address.lock().await = request.master_address(&request.cidr);
        let name = network_name(&cluster.name);
        let subnet = subnet_name(&cluster.name);
        let cidr = request.cidr.to_string();
        let vnet = match self
            .client
            .get_opt(&call::virtual_networks_get(&self.scope, &name))
            .await?
        {
            Some(v) => v,
            None => {
                let put = call::virtual_networks_create(
                    &self.scope,
                    &name,
                    &cidr,
                    &subnet,
                    &tags(&cluster.name, Some(&ResourceKey::network()), None),
                );
                self.client.execute(&put).await?
            }
        };
        let sub = vnet
            .pointer("/properties/subnets")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().find(|x| str_at(x, "/name") == Some(subnet.as_str())))
            .ok_or_else(|| {
                Error::component(
                    "apply",
                    format!("virtual network {name} has no subnet {subnet}; delete the network or run `vre destroy`"),
                )
            })?;
        let prefix = str_at(sub, "/properties/addressPrefix").unwrap_or_default();
        let have: Ipv4Cidr = prefix
            .parse()
            .map_err(|e: String| Error::component("apply", format!("subnet {subnet} has prefix \"{prefix}\": {e}")))?;
        if have != request.cidr {
            return Err(Error::rejected(
                SpecField::NetworkCidr,
                format!(
                    "subnet {subnet} already has {have}, the spec says {}; change it back or `vre destroy` first",
                    request.cidr
                ),
            ));
        }
        let vnet_id = str_at(&vnet, "/id").map_or_else(|| self.scope.id(types::VIRTUAL_NETWORK, &name), str::to_string);
        let sub_id = str_at(sub, "/id").map_or_else(|| format!("{vnet_id}/subnets/{subnet}"), str::to_string);
        Ok(NetworkInfo {
            network: CloudResource::new(ResourceKind::Network, vnet_id, &name)
                .with_attr(attr::SUBNET_ID, sub_id)
                .with_attr(attr::CIDR, have.to_string()),
            cidr: have,
        })
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let name = security_group_name(&cluster.name);
        let cidr = network.cidr.to_string();
        let mut rules = vec![InboundRule {
            name: "allow-cluster-internal".into(),
            priority: 100,
            protocol: "*".into(),
            source: cidr.clone(),
            destination: cidr,
            ports: vec!["*".into()],
        }];
        if !request.ingress_ports.is_empty() {
            rules.push(InboundRule {
                name: "allow-ingress".into(),
                priority: 200,
                protocol: "Tcp".into(),
                source: "*".into(),
                destination: "*".into(),
                ports: request.ingress_ports.iter().map(|p| p.to_string()).collect(),
            });
        }
        let put = call::network_security_groups_create(
            &self.scope,
            &name,
            &rules,
            &tags(&cluster.name, Some(&ResourceKey::security_group()), None),
        );
        let current = self
            .client
            .get_opt(&call::network_security_groups_get(&self.scope, &name))
            .await?;
        let wanted = serde_json::json!({"properties": put.body.as_ref().and_then(|b| b.get("properties")).cloned()});
        let nsg = match current {
            Some(v) if rules_of(&v) == rules_of(&wanted) => v,
            _ => self.client.execute(&put).await?,
        };
        let id = str_at(&nsg, "/id").map_or_else(|| self.scope.id(types::SECURITY_GROUP, &name), str::to_string);
        self.reserve_master_address(cluster, network, &id).await?;
        Ok(CloudResource::new(ResourceKind::SecurityGroup, id, name))
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        let key = public_key.trim();
        if !(key.starts_with("ssh-rsa ") || key.starts_with("ssh-ed25519 ") || key.starts_with("ecdsa-"))
            || key.contains('\n')
        {
            return Err(Error::input(
                "ssh.public_key",
                "is not a single-line OpenSSH public key (ssh-rsa, ssh-ed25519 or ecdsa); point it at a .pub file",
            ));
        }
        // the key goes into each VM's osProfile; ARM keeps no separate object for it
        let name = key_pair_name(&cluster.name);
        Ok(
            CloudResource::new(ResourceKind::KeyPair, format!("osProfile/ssh/{name}"), name)
                .with_attr(PUBLIC_KEY_ATTR, key),
        )
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        self.ensure_group(cluster).await?;
        let view = self.compute_view().await?;
        let todo: Vec<&InstanceRequest> = batch.instances.iter().filter(|r| view.vm(&r.name).is_none()).collect();
        let creates: Vec<NodeCreate<'_>> = todo
            .into_iter()
            .map(|req| Box::pin(self.create_node(cluster, batch, req)) as NodeCreate<'_>)
            .collect();
        let made: Vec<Result<CloudResource>> = stream::iter(creates)
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut errors = Vec::new();
        for m in made {
            match m {
                Ok(r) => {
                    if let ResourceStatus::Failed { reason } = &r.status {
                        failed.insert(r.name.clone(), reason.clone());
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            // the nodes that were made are found again on the retry
            return Err(errors.remove(0));
        }
        let view = self.compute_view().await?;
        let mut out = Vec::new();
        for req in &batch.instances {
            let r = match view.vm(&req.name) {
                Some(vm) => view.instance(cluster, vm, failed.get(&req.name).map(String::as_str)),
                None => CloudResource::new(
                    ResourceKind::Instance,
                    self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                    &req.name,
                )
                .with_status(ResourceStatus::Failed {
                    reason: failed
                        .get(&req.name)
                        .cloned()
                        .unwrap_or_else(|| "the VM was not created".into()),
                }),
            };
            out.push(r.with_key(req.key.clone()));
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
        // one listing of the group's VMs per round
        let list = |asked: Vec<CloudResource>| async move {
            let view = self.compute_view().await?;
            let mut out = Vec::new();
            for want in asked {
                let known = match &want.status {
                    ResourceStatus::Failed { reason } => Some(reason.clone()),
                    _ => None,
                };
                let r = match view.vm(&want.name) {
                    Some(vm) => {
                        let mut reason = known;
                        if str_at(vm, "/properties/provisioningState") == Some("Failed") && reason.is_none() {
                            reason = Some(self.failure_reason(&want.name).await);
                        }
                        view.instance(cluster, vm, reason.as_deref())
                    }
                    None => want.with_status(ResourceStatus::Failed {
                        reason: "the VM disappeared while it was being created".into(),
                    }),
                };
                out.push(Observed::by_status(r));
            }
            Ok(out)
        };
        let wording = WaitWording {
            settled: "virtual machines provisioned or failed",
            things: "virtual machines",
            until: "to be provisioned",
            hint: format!("check them with `az vm show -g {} -n NAME`", self.scope.resource_group),
        };
        wait_instances_reported(self.client.poll(), instances, timeout, list, progress, wording).await
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let disk = match self
            .client
            .get_opt(&call::disks_get(&self.scope, &request.name))
            .await?
        {
            Some(d) => d,
            None => {
                let role = request.key.node().map(|(r, _)| r);
                let put = call::disks_create(
                    &self.scope,
                    &request.name,
                    request.size_gb,
                    &self.settings.disk_sku,
                    &tags(&cluster.name, Some(&request.key), role),
                );
                self.client.execute(&put).await?
            }
        };
        Ok(self.disk_resource(&disk).with_key(request.key.clone()))
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let vm = self
            .client
            .send(&call::virtual_machines_get(&self.scope, &instance.name))
            .await?;
        let attached = vm
            .pointer("/properties/storageProfile/dataDisks")
            .and_then(Value::as_array)
            .is_some_and(|ds| {
                ds.iter()
                    .any(|d| str_at(d, "/managedDisk/id").is_some_and(|i| same_id(i, &volume.id)))
            });
        if !attached {
            self.client
                .execute(&call::virtual_machines_attach_disk(
                    &self.scope,
                    &instance.name,
                    &volume.id,
                    DATA_LUN,
                ))
                .await?;
        }
        Ok(CloudResource::new(
            ResourceKind::VolumeAttachment,
            format!("{}#{}", instance.id, volume.id),
            format!("{}-attachment", volume.name),
        )
        .with_key(key.clone())
        .with_attr(attr::DEVICE, format!("/dev/disk/azure/scsi1/lun{DATA_LUN}"))
        .with_attr(attr::INSTANCE_ID, instance.id.clone())
        .with_attr(attr::VOLUME_ID, volume.id.clone()))
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let pip = match self
            .client
            .get_opt(&call::public_ip_addresses_get(&self.scope, name))
            .await?
        {
            Some(p) => p,
            None => {
                let role = key.node().map(|(r, _)| r);
                let put = call::public_ip_addresses_create(&self.scope, name, &tags(&cluster.name, Some(key), role));
                self.client.execute(&put).await?
            }
        };
        Ok(self.pip_resource(&pip).with_key(key.clone()))
    }

    async fn associate_public_ip(
        &self,
        cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        let name = nic_name(&instance.name);
        let nic = self
            .client
            .send(&call::network_interfaces_get(&self.scope, &name))
            .await?;
        let ipc = nic
            .pointer("/properties/ipConfigurations/0/properties")
            .cloned()
            .unwrap_or(Value::Null);
        let bound = str_at(&ipc, "/publicIPAddress/id").is_some_and(|i| same_id(i, &ip.id));
        if !bound {
            // created before its address existed: bind it now
            let spec = NicSpec {
                subnet_id: str_at(&ipc, "/subnet/id").unwrap_or_default().to_string(),
                security_group_id: str_at(&nic, "/properties/networkSecurityGroup/id")
                    .unwrap_or_default()
                    .to_string(),
                private_ip: (str_at(&ipc, "/privateIPAllocationMethod") == Some("Static"))
                    .then(|| str_at(&ipc, "/privateIPAddress").unwrap_or_default().to_string()),
                public_ip_id: Some(ip.id.clone()),
            };
            let node_tags = tags(
                &cluster.name,
                instance.key.as_ref(),
                instance.key.as_ref().and_then(|k| k.node()).map(|n| n.0),
            );
            self.client
                .execute(&call::network_interfaces_create(&self.scope, &name, &spec, &node_tags))
                .await?;
        }
        let pip = self
            .client
            .send(&call::public_ip_addresses_get(&self.scope, &ip.name))
            .await?;
        let mut r = self
            .pip_resource(&pip)
            .with_attr(attr::INSTANCE_ID, instance.id.clone());
        if let Some(k) = &ip.key {
            r = r.with_key(k.clone());
        }
        Ok(r)
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        let Some(group) = self.own_group(cluster).await? else {
            return Ok(Vec::new());
        };
        let c = &cluster.name;
        let (all_list, disk_list) = (
            call::resources_list_by_resource_group(&self.scope),
            call::disks_list(&self.scope),
        );
        let (all, disks, view) = futures::try_join!(
            self.list_or_empty(&all_list),
            self.list_or_empty(&disk_list),
            self.compute_view()
        )?;
        let mut out = Vec::new();
        let volumes: Vec<CloudResource> = disks.iter().map(|d| self.disk_resource(d)).collect();
        for vm in &view.vms {
            let inst = view.instance(cluster, vm, None);
            for d in vm
                .pointer("/properties/storageProfile/dataDisks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let disk_id = str_at(d, "/managedDisk/id").unwrap_or_default();
                let Some(vol) = volumes.iter().find(|v| same_id(&v.id, disk_id)) else {
                    continue;
                };
                if let Some((role, i)) = vol.key.as_ref().and_then(|k| k.node()) {
                    out.push(
                        CloudResource::new(
                            ResourceKind::VolumeAttachment,
                            format!("{}#{}", inst.id, vol.id),
                            format!("{}-attachment", vol.name),
                        )
                        .with_key(ResourceKey::attachment(role, i))
                        .with_attr(
                            attr::DEVICE,
                            format!(
                                "/dev/disk/azure/scsi1/lun{}",
                                d.get("lun").and_then(Value::as_u64).unwrap_or(0)
                            ),
                        )
                        .with_attr(attr::INSTANCE_ID, inst.id.clone())
                        .with_attr(attr::VOLUME_ID, vol.id.clone()),
                    );
                }
            }
            out.push(inst);
        }
        if !view.vms.is_empty() {
            let name = key_pair_name(c);
            out.push(
                CloudResource::new(ResourceKind::KeyPair, format!("osProfile/ssh/{name}"), name)
                    .with_key(ResourceKey::key_pair()),
            );
        }
        out.extend(volumes);
        out.extend(view.pips.iter().map(|p| self.pip_resource(p)));
        for n in &view.nics {
            let id = str_at(n, "/id").unwrap_or_default();
            out.push(CloudResource::new(
                ResourceKind::Other(NIC_KIND.into()),
                id,
                last_segment(id),
            ));
        }
        for r in &all {
            let id = str_at(r, "/id").unwrap_or_default();
            let name = str_at(r, "/name").unwrap_or(last_segment(id));
            let ty = str_at(r, "/type").unwrap_or_default();
            let state = str_at(r, "/properties/provisioningState")
                .or_else(|| str_at(r, "/provisioningState"))
                .unwrap_or("Succeeded");
            let res = if ty.eq_ignore_ascii_case(types::VIRTUAL_NETWORK) {
                let mut x = CloudResource::new(ResourceKind::Network, id, name);
                if name == network_name(c) {
                    x = x.with_key(ResourceKey::network());
                }
                x
            } else if ty.eq_ignore_ascii_case(types::SECURITY_GROUP) {
                let mut x = CloudResource::new(ResourceKind::SecurityGroup, id, name);
                if name == security_group_name(c) {
                    x = x.with_key(ResourceKey::security_group());
                }
                x
            } else if [
                types::VIRTUAL_MACHINE,
                types::DISK,
                types::PUBLIC_IP,
                types::NETWORK_INTERFACE,
            ]
            .iter()
            .any(|t| ty.eq_ignore_ascii_case(t))
            {
                continue; // listed above, with their details
            } else {
                CloudResource::new(ResourceKind::Other(ty.to_string()), id, name)
            };
            out.push(res.with_status(status_of(state, None)));
        }
        let gid = str_at(&group, "/id").map_or_else(|| self.scope.group_id(), str::to_string);
        out.push(CloudResource::new(
            ResourceKind::ResourceGroup,
            gid,
            &self.scope.resource_group,
        ));
        Ok(out)
    }

    async fn delete(&self, _cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        let s = &self.scope;
        if resource.kind == ResourceKind::ResourceGroup {
            remove(&self.client, &call::resource_groups_delete(s)).await?;
            // the delete's operation ends when ARM says so; make sure the group is gone
            let poll = self.client.poll().clone();
            let started = Instant::now();
            let mut attempt = 0;
            while self.client.get_opt(&call::resource_groups_get(s)).await?.is_some() {
                if started.elapsed() > poll.timeout {
                    return Err(Error::Timeout {
                        what: format!("resource group {} to be deleted", s.resource_group),
                        after: poll.timeout,
                        hint: "Azure is still deleting it; run `vre destroy` again later".into(),
                    });
                }
                tokio::time::sleep(poll.delay(attempt, None)).await;
                attempt += 1;
            }
            *self.group_ready.lock().await = false;
            *self.group_deleted.lock().await = true;
            return Ok(());
        }
        if *self.group_deleted.lock().await {
            // it went with its resource group
            return Ok(());
        }
        let name = last_segment(&resource.id);
        match &resource.kind {
            ResourceKind::KeyPair | ResourceKind::Image => Ok(()),
            ResourceKind::Instance => remove(&self.client, &call::virtual_machines_delete(s, name)).await,
            ResourceKind::VolumeAttachment => {
                let (vm_id, disk_id) = resource.id.split_once('#').unwrap_or((resource.id.as_str(), ""));
                let vm_name = last_segment(vm_id);
                let Some(vm) = self.client.get_opt(&call::virtual_machines_get(s, vm_name)).await? else {
                    return Ok(());
                };
                let attached = vm
                    .pointer("/properties/storageProfile/dataDisks")
                    .and_then(Value::as_array)
                    .is_some_and(|ds| {
                        ds.iter()
                            .any(|d| str_at(d, "/managedDisk/id").is_some_and(|i| same_id(i, disk_id)))
                    });
                if !attached {
                    return Ok(());
                }
                remove(&self.client, &call::virtual_machines_detach_disk(s, vm_name, disk_id)).await
            }
            ResourceKind::PublicIp => remove(&self.client, &call::public_ip_addresses_delete(s, name)).await,
            ResourceKind::Volume => remove(&self.client, &call::disks_delete(s, name)).await,
            ResourceKind::Other(k) if k == DISK_KIND => remove(&self.client, &call::disks_delete(s, name)).await,
            ResourceKind::Other(k) if k == NIC_KIND => {
                remove(&self.client, &call::network_interfaces_delete(s, name)).await
            }
            ResourceKind::SecurityGroup => remove(&self.client, &call::network_security_groups_delete(s, name)).await,
            ResourceKind::Network => remove(&self.client, &call::virtual_networks_delete(s, name)).await,
            other => Err(Error::component(
                "destroy",
                format!(
                    "vre-azure does not delete {other} resources one by one; {} ({}) goes with resource group {}",
                    resource.name, resource.id, s.resource_group
                ),
            )),
        }
    }

    fn destroy_rank(&self, kind: &ResourceKind) -> u32 {
        // the group first: deleting it deletes everything in it
        match kind {
            ResourceKind::ResourceGroup => 0,
            ResourceKind::DnsRecord => 0,
            ResourceKind::Instance => 1,
            ResourceKind::VolumeAttachment => 2,
            ResourceKind::Other(k) if k == NIC_KIND => 3,
            ResourceKind::PublicIp => 4,
            ResourceKind::Volume => 5,
            ResourceKind::Other(k) if k == DISK_KIND => 5,
            ResourceKind::SecurityGroup => 6,
            ResourceKind::Network => 7,
            ResourceKind::KeyPair => 8,
            ResourceKind::Image => 9,
            other => 10 + other.destroy_rank(),
        }
    }
}
