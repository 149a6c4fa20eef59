//! Every Azure Resource Manager request vre makes, as data: the OpenAPI
//! operationId, HTTP verb, path template (exactly as the specification
//! writes it), api-version, parameters and JSON body. The unit tests check
//! each one against the ARM OpenAPI files.
//!
//! Bodies keep ARM's `properties` nesting: the specifications mark it
//! `x-ms-client-flatten`, which only flattens SDK models, never the JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `Microsoft.Compute` virtual machines (ComputeRP).
pub const COMPUTE_API: &str = "2025-04-01";
/// `Microsoft.Compute/disks` (DiskRP).
pub const DISKS_API: &str = "2025-01-02";
/// `Microsoft.Network`.
pub const NETWORK_API: &str = "2026-01-01";
/// `Microsoft.Resources` (resource groups).
pub const RESOURCES_API: &str = "2025-04-01";

/// One ARM request (the kit's call description): `operation` is the
/// OpenAPI operationId, `template` the path as the OpenAPI file writes it,
/// `version` the api-version.
pub type ArmCall = vre_cloud_kit::RestCall;

/// An ARM call of `api_version`.
fn arm(
    operation_id: &'static str,
    verb: &'static str,
    template: &'static str,
    api_version: &'static str,
    params: Vec<(&'static str, String)>,
    purpose: impl Into<String>,
) -> ArmCall {
    ArmCall::new(operation_id, verb, template, params, purpose).version(api_version)
}

/// Where the cluster lives: subscription, resource group, location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
}

impl Scope {
    fn s(&self) -> (&'static str, String) {
        ("subscriptionId", self.subscription.clone())
    }
    fn g(&self) -> (&'static str, String) {
        ("resourceGroupName", self.resource_group.clone())
    }

    /// The ARM id of a resource in the group (`/subscriptions/.../providers/Microsoft.Network/virtualNetworks/n`).
    pub fn id(&self, provider_type: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{provider_type}/{name}",
            self.subscription, self.resource_group
        )
    }

    pub fn group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription, self.resource_group
        )
    }
}

/// Resource types vre creates.
pub mod types {
    pub const VIRTUAL_NETWORK: &str = "Microsoft.Network/virtualNetworks";
    pub const SECURITY_GROUP: &str = "Microsoft.Network/networkSecurityGroups";
    pub const PUBLIC_IP: &str = "Microsoft.Network/publicIPAddresses";
    pub const NETWORK_INTERFACE: &str = "Microsoft.Network/networkInterfaces";
    pub const VIRTUAL_MACHINE: &str = "Microsoft.Compute/virtualMachines";
    pub const DISK: &str = "Microsoft.Compute/disks";
}

/// Tags of a resource (`vre:cluster`, `vre:key`, `vre:role`).
pub type Tags = BTreeMap<String, String>;

// ---- resource groups ----

const RG: &str = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}";

pub fn resource_groups_get(s: &Scope) -> ArmCall {
    arm(
        "ResourceGroups_Get",
        "GET",
        RG,
        RESOURCES_API,
        vec![s.s(), s.g()],
        format!("read resource group {}", s.resource_group),
    )
}

pub fn resource_groups_create(s: &Scope, tags: &Tags) -> ArmCall {
    arm(
        "ResourceGroups_CreateOrUpdate",
        "PUT",
        RG,
        RESOURCES_API,
        vec![s.s(), s.g()],
        format!("create resource group {}", s.resource_group),
    )
    .body(json!({"location": s.location, "tags": tags}))
}

pub fn resource_groups_delete(s: &Scope) -> ArmCall {
    arm(
        "ResourceGroups_Delete",
        "DELETE",
        RG,
        RESOURCES_API,
        vec![s.s(), s.g()],
        format!("delete resource group {}", s.resource_group),
    )
}

pub fn resources_list_by_resource_group(s: &Scope) -> ArmCall {
    arm(
        "Resources_ListByResourceGroup",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/resources",
        RESOURCES_API,
        vec![s.s(), s.g()],
        format!("list the resources of {}", s.resource_group),
    )
    .query("$expand", "provisioningState")
}

// ---- virtual networks ----

const VNET: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}";

pub fn virtual_networks_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "VirtualNetworks_Get",
        "GET",
        VNET,
        NETWORK_API,
        vec![s.s(), s.g(), ("virtualNetworkName", name.into())],
        format!("read virtual network {name}"),
    )
}

/// A virtual network with one subnet. The subnet keeps default outbound
/// access: nodes without a public IP need it to download packages.
pub fn virtual_networks_create(s: &Scope, name: &str, cidr: &str, subnet: &str, tags: &Tags) -> ArmCall {
    arm(
        "VirtualNetworks_CreateOrUpdate",
        "PUT",
        VNET,
        NETWORK_API,
        vec![s.s(), s.g(), ("virtualNetworkName", name.into())],
        format!("create virtual network {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "properties": {
            "addressSpace": {"addressPrefixes": [cidr]},
            "subnets": [{
                "name": subnet,
                "properties": {"addressPrefix": cidr, "defaultOutboundAccess": true},
            }],
        },
    }))
}

pub fn virtual_networks_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "VirtualNetworks_Delete",
        "DELETE",
        VNET,
        NETWORK_API,
        vec![s.s(), s.g(), ("virtualNetworkName", name.into())],
        format!("delete virtual network {name}"),
    )
}

// ---- network security groups ----

const NSG: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkSecurityGroups/{networkSecurityGroupName}";

/// One inbound allow rule.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundRule {
    pub name: String,
    pub priority: u32,
    /// `Tcp`, `Udp`, `*`, ...
    pub protocol: String,
    pub source: String,
    pub destination: String,
    /// `*`, `22`, `30000-32767`.
    pub ports: Vec<String>,
}

impl InboundRule {
    fn to_json(&self) -> Value {
        let mut p = json!({
            "protocol": self.protocol,
            "access": "Allow",
            "direction": "Inbound",
            "priority": self.priority,
            "sourceAddressPrefix": self.source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": self.destination,
        });
        match self.ports.as_slice() {
            [one] => p["destinationPortRange"] = json!(one),
            many => p["destinationPortRanges"] = json!(many),
        }
        json!({"name": self.name, "properties": p})
    }
}

pub fn network_security_groups_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "NetworkSecurityGroups_Get",
        "GET",
        NSG,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkSecurityGroupName", name.into())],
        format!("read network security group {name}"),
    )
}

pub fn network_security_groups_create(s: &Scope, name: &str, rules: &[InboundRule], tags: &Tags) -> ArmCall {
    arm(
        "NetworkSecurityGroups_CreateOrUpdate",
        "PUT",
        NSG,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkSecurityGroupName", name.into())],
        format!("create network security group {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "properties": {"securityRules": rules.iter().map(InboundRule::to_json).collect::<Vec<_>>()},
    }))
}

pub fn network_security_groups_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "NetworkSecurityGroups_Delete",
        "DELETE",
        NSG,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkSecurityGroupName", name.into())],
        format!("delete network security group {name}"),
    )
}

// ---- public IP addresses ----

const PIP: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/publicIPAddresses/{publicIpAddressName}";

pub fn public_ip_addresses_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "PublicIPAddresses_Get",
        "GET",
        PIP,
        NETWORK_API,
        vec![s.s(), s.g(), ("publicIpAddressName", name.into())],
        format!("read public IP {name}"),
    )
}

/// A Standard-SKU static IPv4 address.
pub fn public_ip_addresses_create(s: &Scope, name: &str, tags: &Tags) -> ArmCall {
    arm(
        "PublicIPAddresses_CreateOrUpdate",
        "PUT",
        PIP,
        NETWORK_API,
        vec![s.s(), s.g(), ("publicIpAddressName", name.into())],
        format!("create public IP {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {
            "publicIPAllocationMethod": "Static",
            "publicIPAddressVersion": "IPv4",
            "idleTimeoutInMinutes": 4,
        },
    }))
}

pub fn public_ip_addresses_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "PublicIPAddresses_Delete",
        "DELETE",
        PIP,
        NETWORK_API,
        vec![s.s(), s.g(), ("publicIpAddressName", name.into())],
        format!("delete public IP {name}"),
    )
}

pub fn public_ip_addresses_list(s: &Scope) -> ArmCall {
    arm(
        "PublicIPAddresses_List",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/publicIPAddresses",
        NETWORK_API,
        vec![s.s(), s.g()],
        "list public IPs",
    )
}

// ---- network interfaces ----

const NIC: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkInterfaces/{networkInterfaceName}";

/// What a node's network interface is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct NicSpec {
    pub subnet_id: String,
    pub security_group_id: String,
    /// A static private address (the master's); dynamic otherwise.
    pub private_ip: Option<String>,
    pub public_ip_id: Option<String>,
}

pub fn network_interfaces_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "NetworkInterfaces_Get",
        "GET",
        NIC,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkInterfaceName", name.into())],
        format!("read network interface {name}"),
    )
}

pub fn network_interfaces_create(s: &Scope, name: &str, nic: &NicSpec, tags: &Tags) -> ArmCall {
    let mut ip = json!({
        "subnet": {"id": nic.subnet_id},
        "primary": true,
        "privateIPAddressVersion": "IPv4",
    });
    match &nic.private_ip {
        Some(addr) => {
            ip["privateIPAllocationMethod"] = json!("Static");
            ip["privateIPAddress"] = json!(addr);
        }
        None => ip["privateIPAllocationMethod"] = json!("Dynamic"),
    }
    if let Some(pip) = &nic.public_ip_id {
        ip["publicIPAddress"] = json!({"id": pip});
    }
    arm(
        "NetworkInterfaces_CreateOrUpdate",
        "PUT",
        NIC,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkInterfaceName", name.into())],
        format!("create network interface {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "properties": {
            "networkSecurityGroup": {"id": nic.security_group_id},
            "ipConfigurations": [{"name": IP_CONFIGURATION, "properties": ip}],
        },
    }))
}

/// The name of a NIC's one IP configuration.
pub const IP_CONFIGURATION: &str = "ipconfig1";

pub fn network_interfaces_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "NetworkInterfaces_Delete",
        "DELETE",
        NIC,
        NETWORK_API,
        vec![s.s(), s.g(), ("networkInterfaceName", name.into())],
        format!("delete network interface {name}"),
    )
}

pub fn network_interfaces_list(s: &Scope) -> ArmCall {
    arm(
        "NetworkInterfaces_List",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkInterfaces",
        NETWORK_API,
        vec![s.s(), s.g()],
        "list network interfaces",
    )
}

// ---- managed disks ----

const DISK: &str =
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/disks/{diskName}";

pub fn disks_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "Disks_Get",
        "GET",
        DISK,
        DISKS_API,
        vec![s.s(), s.g(), ("diskName", name.into())],
        format!("read disk {name}"),
    )
}

/// An empty managed data disk.
pub fn disks_create(s: &Scope, name: &str, size_gb: u32, sku: &str, tags: &Tags) -> ArmCall {
    arm(
        "Disks_CreateOrUpdate",
        "PUT",
        DISK,
        DISKS_API,
        vec![s.s(), s.g(), ("diskName", name.into())],
        format!("create disk {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "sku": {"name": sku},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": size_gb},
    }))
}

pub fn disks_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "Disks_Delete",
        "DELETE",
        DISK,
        DISKS_API,
        vec![s.s(), s.g(), ("diskName", name.into())],
        format!("delete disk {name}"),
    )
}

pub fn disks_list(s: &Scope) -> ArmCall {
    arm(
        "Disks_ListByResourceGroup",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/disks",
        DISKS_API,
        vec![s.s(), s.g()],
        "list disks",
    )
}

// ---- virtual machines ----

const VM: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}";

/// The image a VM boots from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRef {
    /// A Marketplace image.
    Platform {
        publisher: String,
        offer: String,
        sku: String,
        version: String,
    },
    /// A managed image or gallery image version, by ARM id.
    Id(String),
}

impl ImageRef {
    fn to_json(&self) -> Value {
        match self {
            ImageRef::Platform {
                publisher,
                offer,
                sku,
                version,
            } => json!({"publisher": publisher, "offer": offer, "sku": sku, "version": version}),
            ImageRef::Id(id) => json!({"id": id}),
        }
    }

    /// `publisher:offer:sku:version`, or the id.
    pub fn describe(&self) -> String {
        match self {
            ImageRef::Platform {
                publisher,
                offer,
                sku,
                version,
            } => format!("{publisher}:{offer}:{sku}:{version}"),
            ImageRef::Id(id) => id.clone(),
        }
    }

    /// Parses `publisher:offer:sku:version` (the Azure CLI's URN) or an image resource id.
    pub fn parse(s: &str) -> Option<ImageRef> {
        if s.starts_with("/subscriptions/") {
            return Some(ImageRef::Id(s.to_string()));
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [p, o, k, v] if parts.iter().all(|x| !x.is_empty() && !x.contains(char::is_whitespace)) => {
                Some(ImageRef::Platform {
                    publisher: p.to_string(),
                    offer: o.to_string(),
                    sku: k.to_string(),
                    version: v.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// What a VM is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct VmSpec {
    pub size: String,
    pub image: ImageRef,
    pub nic_id: String,
    pub os_disk_name: String,
    pub os_disk_gb: Option<u32>,
    pub disk_sku: String,
    pub admin_user: String,
    pub ssh_public_key: String,
    /// cloud-init user data, plain text (sent base64-encoded as `customData`).
    pub custom_data: String,
}

pub fn virtual_machines_get(s: &Scope, name: &str) -> ArmCall {
    arm(
        "VirtualMachines_Get",
        "GET",
        VM,
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", name.into())],
        format!("read virtual machine {name}"),
    )
}

pub fn virtual_machines_instance_view(s: &Scope, name: &str) -> ArmCall {
    arm(
        "VirtualMachines_InstanceView",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}/instanceView",
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", name.into())],
        format!("read the instance view of {name}"),
    )
}

pub fn virtual_machines_create(s: &Scope, name: &str, vm: &VmSpec, tags: &Tags) -> ArmCall {
    use base64::Engine;
    let mut os_disk = json!({
        "name": vm.os_disk_name,
        "createOption": "FromImage",
        "caching": "ReadWrite",
        "managedDisk": {"storageAccountType": vm.disk_sku},
        "deleteOption": "Delete",
    });
    if let Some(gb) = vm.os_disk_gb {
        os_disk["diskSizeGB"] = json!(gb);
    }
    arm(
        "VirtualMachines_CreateOrUpdate",
        "PUT",
        VM,
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", name.into())],
        format!("create virtual machine {name}"),
    )
    .body(json!({
        "location": s.location,
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {"imageReference": vm.image.to_json(), "osDisk": os_disk},
            "osProfile": {
                "computerName": name,
                "adminUsername": vm.admin_user,
                "customData": base64::engine::general_purpose::STANDARD.encode(&vm.custom_data),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": {"publicKeys": [{
                        "path": format!("/home/{}/.ssh/authorized_keys", vm.admin_user),
                        "keyData": vm.ssh_public_key,
                    }]},
                    "provisionVMAgent": true,
                },
            },
            "networkProfile": {"networkInterfaces": [{
                "id": vm.nic_id,
                "properties": {"primary": true, "deleteOption": "Delete"},
            }]},
        },
    }))
}

pub fn virtual_machines_delete(s: &Scope, name: &str) -> ArmCall {
    arm(
        "VirtualMachines_Delete",
        "DELETE",
        VM,
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", name.into())],
        format!("delete virtual machine {name}"),
    )
}

pub fn virtual_machines_list(s: &Scope) -> ArmCall {
    arm(
        "VirtualMachines_List",
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines",
        COMPUTE_API,
        vec![s.s(), s.g()],
        "list virtual machines",
    )
}

const ATTACH_DETACH: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}/attachDetachDataDisks";

/// Attaches a managed disk at `lun`; it stays when the VM is deleted.
pub fn virtual_machines_attach_disk(s: &Scope, vm: &str, disk_id: &str, lun: u32) -> ArmCall {
    arm(
        "VirtualMachines_AttachDetachDataDisks",
        "POST",
        ATTACH_DETACH,
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", vm.into())],
        format!("attach a data disk to {vm}"),
    )
    .body(json!({"dataDisksToAttach": [{"diskId": disk_id, "lun": lun, "caching": "None", "deleteOption": "Detach"}]}))
}

pub fn virtual_machines_detach_disk(s: &Scope, vm: &str, disk_id: &str) -> ArmCall {
    arm(
        "VirtualMachines_AttachDetachDataDisks",
        "POST",
        ATTACH_DETACH,
        COMPUTE_API,
        vec![s.s(), s.g(), ("vmName", vm.into())],
        format!("detach a data disk from {vm}"),
    )
    .body(json!({"dataDisksToDetach": [{"diskId": disk_id}]}))
}

// ---- catalogue (preflight) ----

pub fn virtual_machine_sizes_list(s: &Scope) -> ArmCall {
    arm(
        "VirtualMachineSizes_List",
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/vmSizes",
        COMPUTE_API,
        vec![s.s(), ("location", s.location.clone())],
        format!("list VM sizes in {}", s.location),
    )
}

pub fn usage_list(s: &Scope) -> ArmCall {
    arm(
        "Usage_List",
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/usages",
        COMPUTE_API,
        vec![s.s(), ("location", s.location.clone())],
        format!("read compute quotas in {}", s.location),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::ArmSpecs;

    pub(crate) fn scope() -> Scope {
        Scope {
            subscription: "00000000-1111-4222-8333-444444444444".into(),
            resource_group: "lab-rg".into(),
            location: "westeurope".into(),
        }
    }

    pub(crate) fn check(specs: &ArmSpecs, c: &ArmCall) -> Vec<String> {
        specs.check_call(
            c.operation,
            c.verb,
            c.template,
            c.version,
            &c.params,
            &c.query,
            c.body.as_ref(),
        )
    }

    fn node_tags() -> Tags {
        Tags::from([
            ("vre:cluster".to_string(), "lab".to_string()),
            ("vre:key".to_string(), "server/master-1".to_string()),
            ("vre:role".to_string(), "master".to_string()),
        ])
    }

    fn vm(image: ImageRef) -> VmSpec {
        VmSpec {
            size: "Standard_D2s_v5".into(),
            image,
            nic_id: scope().id(types::NETWORK_INTERFACE, "lab-master-1-nic"),
            os_disk_name: "lab-master-1-osdisk".into(),
            os_disk_gb: Some(64),
            disk_sku: "StandardSSD_LRS".into(),
            admin_user: "ubuntu".into(),
            ssh_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v vre".into(),
            custom_data: "#cloud-config\nruncmd: [kubeadm init]\n".into(),
        }
    }

    fn every_call() -> Vec<ArmCall> {
        let s = scope();
        let t = node_tags();
        let subnet = format!("{}/subnets/lab-subnet", s.id(types::VIRTUAL_NETWORK, "lab-net"));
        let nsg = s.id(types::SECURITY_GROUP, "lab-sg");
        let rules = vec![
            InboundRule {
                name: "allow-cluster-internal".into(),
                priority: 100,
                protocol: "*".into(),
                source: "10.0.0.0/24".into(),
                destination: "10.0.0.0/24".into(),
                ports: vec!["*".into()],
            },
            InboundRule {
                name: "allow-ingress".into(),
                priority: 200,
                protocol: "Tcp".into(),
                source: "*".into(),
                destination: "*".into(),
                ports: vec!["22".into(), "30000-32767".into()],
            },
        ];
        let nic = NicSpec {
            subnet_id: subnet.clone(),
            security_group_id: nsg,
            private_ip: Some("10.0.0.10".into()),
            public_ip_id: Some(s.id(types::PUBLIC_IP, "lab-master-1-ip")),
        };
        let dynamic = NicSpec {
            private_ip: None,
            public_ip_id: None,
            ..nic.clone()
        };
        let disk = s.id(types::DISK, "lab-storage-1-data");
        let platform = ImageRef::parse("Canonical:ubuntu-24_04-lts:server:latest").unwrap();
        let custom =
            ImageRef::parse("/subscriptions/x/resourceGroups/img/providers/Microsoft.Compute/images/kubenow").unwrap();
        vec![
            resource_groups_get(&s),
            resource_groups_create(&s, &t),
            resource_groups_delete(&s),
            resources_list_by_resource_group(&s),
            virtual_networks_get(&s, "lab-net"),
            virtual_networks_create(&s, "lab-net", "10.0.0.0/24", "lab-subnet", &t),
            virtual_networks_delete(&s, "lab-net"),
            network_security_groups_get(&s, "lab-sg"),
            network_security_groups_create(&s, "lab-sg", &rules, &t),
            network_security_groups_delete(&s, "lab-sg"),
            public_ip_addresses_get(&s, "lab-master-1-ip"),
            public_ip_addresses_create(&s, "lab-master-1-ip", &t),
            public_ip_addresses_delete(&s, "lab-master-1-ip"),
            public_ip_addresses_list(&s),
            network_interfaces_get(&s, "lab-master-1-nic"),
            network_interfaces_create(&s, "lab-master-1-nic", &nic, &t),
            network_interfaces_create(&s, "lab-service-1-nic", &dynamic, &t),
            network_interfaces_delete(&s, "lab-master-1-nic"),
            network_interfaces_list(&s),
            disks_get(&s, "lab-storage-1-data"),
            disks_create(&s, "lab-storage-1-data", 200, "StandardSSD_LRS", &t),
            disks_delete(&s, "lab-storage-1-data"),
            disks_list(&s),
            virtual_machines_get(&s, "lab-master-1"),
            virtual_machines_instance_view(&s, "lab-master-1"),
            virtual_machines_create(&s, "lab-master-1", &vm(platform), &t),
            virtual_machines_create(&s, "lab-master-1", &vm(custom), &t),
            virtual_machines_delete(&s, "lab-master-1"),
            virtual_machines_list(&s),
            virtual_machines_attach_disk(&s, "lab-storage-1", &disk, 0),
            virtual_machines_detach_disk(&s, "lab-storage-1", &disk),
            virtual_machine_sizes_list(&s),
            usage_list(&s),
        ]
    }

    #[test]
    fn every_call_matches_the_arm_specifications() {
        let specs = ArmSpecs::load();
        let mut problems = Vec::new();
        for c in every_call() {
            problems.extend(check(&specs, &c));
            // and the concrete path finds the same operation again
            let (op, _) = specs
                .find(c.version, c.verb, &c.path())
                .unwrap_or_else(|| panic!("{} {} not found", c.verb, c.path()));
            assert_eq!(op.op["operationId"], c.operation, "{}", c.path());
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_checker_catches_wrong_requests() {
        let specs = ArmSpecs::load();
        let s = scope();
        // an unknown property
        let mut c = virtual_networks_create(&s, "n", "10.0.0.0/24", "sn", &Tags::new());
        c.body.as_mut().unwrap()["properties"]["cidr"] = json!("10.0.0.0/24");
        assert!(
            check(&specs, &c).iter().any(|p| p.contains("body.properties.cidr")),
            "{:?}",
            check(&specs, &c)
        );
        // a read-only property
        let mut c = public_ip_addresses_create(&s, "ip", &Tags::new());
        c.body.as_mut().unwrap()["properties"]["provisioningState"] = json!("Succeeded");
        assert!(
            check(&specs, &c).iter().any(|p| p.contains("read-only")),
            "{:?}",
            check(&specs, &c)
        );
        // a closed enum
        let mut c = public_ip_addresses_create(&s, "ip", &Tags::new());
        c.body.as_mut().unwrap()["sku"]["name"] = json!("Premium");
        assert!(check(&specs, &c).iter().any(|p| p.contains("sku.name")));
        // a required property
        let mut c = disks_create(&s, "d", 10, "StandardSSD_LRS", &Tags::new());
        c.body.as_mut().unwrap()["properties"]
            .as_object_mut()
            .unwrap()
            .remove("creationData");
        assert!(check(&specs, &c).iter().any(|p| p.contains("creationData is required")));
        // the wrong api-version, verb or operationId
        let mut c = virtual_machines_get(&s, "vm");
        c.version = "2019-07-01";
        assert!(!check(&specs, &c).is_empty());
        let mut c = virtual_machines_get(&s, "vm");
        c.operation = "VirtualMachines_Read";
        assert!(!check(&specs, &c).is_empty());
        // a query parameter the operation does not declare
        let c = virtual_machines_get(&s, "vm").query("$top", "5");
        assert!(check(&specs, &c).iter().any(|p| p.contains("$top")));
    }

    #[test]
    fn custom_data_is_base64_cloud_init() {
        use base64::Engine;
        let c = virtual_machines_create(
            &scope(),
            "lab-master-1",
            &vm(ImageRef::parse("a:b:c:d").unwrap()),
            &node_tags(),
        );
        let b = c.body.unwrap();
        let data = b
            .pointer("/properties/osProfile/customData")
            .and_then(Value::as_str)
            .unwrap();
        let plain = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        assert_eq!(plain, b"#cloud-config\nruncmd: [kubeadm init]\n");
        assert_eq!(
            b.pointer("/properties/osProfile/linuxConfiguration/ssh/publicKeys/0/path")
                .unwrap(),
            "/home/ubuntu/.ssh/authorized_keys"
        );
        assert_eq!(
            b.pointer("/properties/storageProfile/osDisk/deleteOption").unwrap(),
            "Delete"
        );
        assert_eq!(
            b.pointer("/properties/networkProfile/networkInterfaces/0/properties/deleteOption")
                .unwrap(),
            "Delete"
        );
        assert_eq!(b["tags"]["vre:cluster"], "lab");
    }

    #[test]
    fn images_parse_from_urns_and_ids() {
        assert_eq!(
            ImageRef::parse("Canonical:ubuntu-24_04-lts:server:latest")
                .unwrap()
                .describe(),
            "Canonical:ubuntu-24_04-lts:server:latest"
        );
        assert!(matches!(
            ImageRef::parse("/subscriptions/x/images/y"),
            Some(ImageRef::Id(_))
        ));
        assert_eq!(ImageRef::parse("ubuntu-24.04"), None);
        assert_eq!(ImageRef::parse("a::c:d"), None);
    }

    #[test]
    fn paths_keep_the_specifications_casing() {
        assert_eq!(
            resource_groups_get(&scope()).path(),
            "/subscriptions/00000000-1111-4222-8333-444444444444/resourcegroups/lab-rg"
        );
        assert_eq!(
            disks_list(&scope()).query_pairs(crate::client::API_VERSION),
            vec![("api-version", DISKS_API)]
        );
    }
}
