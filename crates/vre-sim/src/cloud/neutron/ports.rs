//! Ports, fixed IP allocation, and the ports Nova creates for servers.

use std::net::Ipv4Addr;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::model::{FixedIp, Port, Standard};
use super::networks::{project_for, visible_network};
use super::resource::{Change, Create, Delete, Resource, Update};
use super::secgroups::{ensure_default_security_group, visible_group};
use super::{bad_request, in_use, invalid_input, not_found, opt_bool, opt_str, owned, policy_denied};
use crate::cloud::api::{ApiError, ApiResult, Query};
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;
use crate::cloud::table::Table;

const PORT_ATTRIBUTES: [&str; 20] = [
    "network_id",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "admin_state_up",
    "status",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "ip_allocation",
    "binding:vnic_type",
    "binding:host_id",
    "binding:profile",
    "binding:vif_details",
    "binding:vif_type",
    "ip_address",
    "subnet_id",
    "security_group_ids",
];

pub(crate) fn port_not_found(id: &str) -> ApiError {
    not_found("PortNotFound", format!("Port {id} could not be found."))
}

/// A requested fixed IP: a subnet, an address, or both.
#[derive(Clone, Debug, Default)]
pub(crate) struct FixedIpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<Ipv4Addr>,
}

/// What a new port is.
#[derive(Clone, Debug)]
pub(crate) struct PortSpec {
    pub network_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub mac_address: Option<String>,
    pub device_id: String,
    pub device_owner: String,
    /// `None`: the project's default group (when port security is on).
    pub security_groups: Option<Vec<String>>,
    pub admin_state_up: bool,
    pub port_security_enabled: Option<bool>,
    pub binding_host: String,
    pub allowed_address_pairs: Vec<Value>,
}

impl PortSpec {
    pub(crate) fn new(network_id: &str, project_id: &str) -> PortSpec {
        PortSpec {
            network_id: network_id.to_string(),
            project_id: project_id.to_string(),
            name: String::new(),
            description: String::new(),
            fixed_ips: None,
            mac_address: None,
            device_id: String::new(),
            device_owner: String::new(),
            security_groups: None,
            admin_state_up: true,
            port_security_enabled: None,
            binding_host: String::new(),
            allowed_address_pairs: Vec::new(),
        }
    }
}

/// Picks the addresses for a port on `network_id`.
fn allocate(s: &CloudState, network_id: &str, requests: Option<&[FixedIpRequest]>) -> ApiResult<Vec<FixedIp>> {
    let network = s
        .networks
        .get(network_id)
        .ok_or_else(|| not_found("NetworkNotFound", format!("Network {network_id} could not be found.")))?;
    let mut out: Vec<FixedIp> = Vec::new();
    let in_use_by_out = |out: &[FixedIp], ip: Ipv4Addr| out.iter().any(|f| f.ip_address == ip);
    let Some(requests) = requests else {
        // One address from the first subnet of the network.
        let Some(subnet) = network.subnets.iter().find_map(|id| s.subnets.get(id)) else {
            return Ok(out);
        };
        let used = s.index.ips.get(&subnet.std.id);
        let ip = match used {
            Some(u) => u.next_free(&subnet.allocation_pools, subnet.gateway_ip),
            None => super::ipam::SubnetAllocations::default().next_free(&subnet.allocation_pools, subnet.gateway_ip),
        };
        let ip = ip.ok_or_else(|| {
            ApiError::conflict(format!("No more IP addresses available on network {network_id}."))
                .kind("IpAddressGenerationFailure")
        })?;
        out.push(FixedIp {
            subnet_id: subnet.std.id.clone(),
            ip_address: ip,
        });
        return Ok(out);
    };
    for request in requests {
        let subnet = match (&request.subnet_id, request.ip_address) {
            (Some(id), _) => {
                let subnet = s.subnets.get(id).filter(|sub| sub.network_id == network_id).ok_or_else(|| {
                    invalid_input(format!(
                        "Failed to create port on network {network_id}, because fixed_ips included invalid subnet {id}"
                    ))
                })?;
                if let Some(ip) = request.ip_address
                    && !subnet.cidr.contains(ip)
                {
                    return Err(
                        bad_request(format!("IP address {ip} is not a valid IP for the specified subnet."))
                            .kind("InvalidIpForSubnet"),
                    );
                }
                subnet
            }
            (None, Some(ip)) => network
                .subnets
                .iter()
                .filter_map(|id| s.subnets.get(id))
                .find(|sub| sub.cidr.contains(ip))
                .ok_or_else(|| {
                    bad_request(format!(
                        "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                    ))
                    .kind("InvalidIpForNetwork")
                })?,
            (None, None) => return Err(invalid_input("Exceeded maximum amount of fixed ips per port.")),
        };
        let used = s.index.ips.get(&subnet.std.id);
        let ip = match request.ip_address {
            Some(ip) => {
                if used.and_then(|u| u.owner(ip)).is_some() || in_use_by_out(&out, ip) {
                    return Err(in_use(
                        "IpAddressAlreadyAllocated",
                        format!("IP address {ip} already allocated in subnet {}", subnet.std.id),
                    ));
                }
                ip
            }
            None => {
                let mut scratch = used.cloned().unwrap_or_default();
                for f in &out {
                    scratch.take(f.ip_address, "");
                }
                scratch
                    .next_free(&subnet.allocation_pools, subnet.gateway_ip)
                    .ok_or_else(|| {
                        ApiError::conflict(format!("No more IP addresses available on network {network_id}."))
                            .kind("IpAddressGenerationFailure")
                    })?
            }
        };
        out.push(FixedIp {
            subnet_id: subnet.std.id.clone(),
            ip_address: ip,
        });
    }
    Ok(out)
}

/// Creates a port (the checks Neutron makes, then the allocation).
pub(crate) fn create_port(s: &mut CloudState, spec: PortSpec, now: Micros) -> ApiResult<String> {
    let network = s.networks.get(&spec.network_id).ok_or_else(|| {
        not_found(
            "NetworkNotFound",
            format!("Network {} could not be found.", spec.network_id),
        )
    })?;
    let port_security = spec.port_security_enabled.unwrap_or(network.port_security_enabled);
    let fixed_ips = allocate(s, &spec.network_id, spec.fixed_ips.as_deref())?;
    if let Some(mac) = &spec.mac_address
        && s.ports
            .iter()
            .any(|p| p.network_id == spec.network_id && &p.mac_address == mac)
    {
        return Err(in_use(
            "MacAddressInUse",
            format!(
                "Unable to complete operation for network {}. The mac address {mac} is in use.",
                spec.network_id
            ),
        ));
    }
    let neutron_owned = spec.device_owner.starts_with("network:");
    let security_groups = match spec.security_groups {
        Some(groups) => {
            if !groups.is_empty() && !port_security {
                return Err(in_use(
                    "PortSecurityAndIPRequiredForSecurityGroups",
                    "Port security must be enabled and port must have an IP address in order to use security groups.",
                ));
            }
            for g in &groups {
                if !s
                    .security_groups
                    .get(g)
                    .is_some_and(|sg| sg.std.project_id == spec.project_id || spec.project_id.is_empty())
                {
                    return Err(not_found(
                        "SecurityGroupNotFound",
                        format!("Security group {g} does not exist"),
                    ));
                }
            }
            groups
        }
        None if port_security && !neutron_owned && !spec.project_id.is_empty() => {
            vec![ensure_default_security_group(s, &spec.project_id, now)]
        }
        None => Vec::new(),
    };
    let id = s.uuid();
    let mac = match spec.mac_address {
        Some(m) => m,
        None => s.mac_address(),
    };
    let mut std = Standard::new(id.clone(), &spec.project_id, &spec.name, now);
    std.description = spec.description;
    s.insert_port(Port {
        std,
        network_id: spec.network_id,
        mac_address: mac,
        fixed_ips,
        device_id: spec.device_id,
        device_owner: spec.device_owner,
        security_groups,
        admin_state_up: spec.admin_state_up,
        port_security_enabled: port_security,
        binding_host: spec.binding_host,
        allowed_address_pairs: spec.allowed_address_pairs,
    });
    Ok(id)
}

/// Deletes a port and what hangs on it: floating IP associations, and the
/// NIC of the server it belonged to.
pub(crate) fn remove_port(s: &mut CloudState, id: &str, now: Micros) {
    let fips: Vec<String> = s.fips_of_port(id).to_vec();
    let had_fips = !fips.is_empty();
    for fip in fips {
        s.set_fip_port(&fip, None, now);
    }
    if had_fips {
        s.notify_addresses(id);
    }
    if let Some(port) = s.remove_port(id)
        && let Some(server) = s.servers.get_mut(&port.device_id)
    {
        server.port_ids.retain(|p| p != id);
        server.created_ports.retain(|p| p != id);
    }
}

/// A NIC requested for a server.
#[derive(Clone, Debug)]
pub(crate) enum NicRequest {
    Network { id: String, fixed_ip: Option<Ipv4Addr> },
    Port(String),
}

/// Binds a NIC to a new server: creates the port on a network (Nova does
/// this with the server's security groups) or binds an existing port.
/// Returns the port id and whether Nova created it.
pub(crate) fn create_server_port(
    s: &mut CloudState,
    nic: &NicRequest,
    server_id: &str,
    project_id: &str,
    security_groups: &[String],
    host: &str,
    now: Micros,
) -> ApiResult<(String, bool)> {
    match nic {
        NicRequest::Network { id, fixed_ip } => {
            let mut spec = PortSpec::new(id, project_id);
            spec.device_id = server_id.to_string();
            spec.device_owner = "compute:nova".into();
            spec.binding_host = host.to_string();
            spec.security_groups = Some(security_groups.to_vec());
            if s.networks.get(id).is_some_and(|n| !n.port_security_enabled) {
                spec.security_groups = Some(Vec::new());
            }
            spec.fixed_ips = fixed_ip.map(|ip| {
                vec![FixedIpRequest {
                    subnet_id: None,
                    ip_address: Some(ip),
                }]
            });
            Ok((create_port(s, spec, now)?, true))
        }
        NicRequest::Port(port_id) => {
            s.set_port_device(port_id, server_id, "compute:nova", host, now);
            Ok((port_id.clone(), false))
        }
    }
}

/// Undoes [`create_server_port`] for every NIC of a server: deletes the
/// ports Nova created, unbinds the ones the user gave.
pub(crate) fn release_server_ports(s: &mut CloudState, ports: &[String], created: &[String], now: Micros) {
    for port in ports {
        if created.contains(port) {
            remove_port(s, port, now);
        } else {
            s.set_port_device(port, "", "", "", now);
        }
    }
}

fn parse_fixed_ips(value: &Value) -> ApiResult<Vec<FixedIpRequest>> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid_input(format!("Invalid data format for fixed IP: '{value}'")))?;
    list.iter()
        .map(|item| {
            let subnet_id = item.get("subnet_id").and_then(Value::as_str).map(str::to_string);
            let ip_address = match item.get("ip_address") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_str()
                        .and_then(|t| Ipv4Addr::from_str(t).ok())
                        .ok_or_else(|| invalid_input(format!("'{v}' is not a valid IP address")))?,
                ),
            };
            if subnet_id.is_none() && ip_address.is_none() {
                return Err(invalid_input(format!("Invalid data format for fixed IP: '{item}'")));
            }
            Ok(FixedIpRequest { subnet_id, ip_address })
        })
        .collect()
}

fn string_list(value: &Value, what: &str) -> ApiResult<Vec<String>> {
    value
        .as_array()
        .and_then(|l| {
            l.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| invalid_input(format!("'{value}' is not a list of {what}")))
}

fn visible_port(p: &Port, auth: &AuthContext) -> bool {
    owned(auth, &p.std.project_id)
}

impl Resource for Port {
    const SINGULAR: &'static str = "port";
    const COLLECTION: &'static str = "ports";
    const ATTRIBUTES: &'static [&'static str] = &PORT_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.ports
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        visible_port(row, auth)
    }

    fn render(_s: &CloudState, row: &Self, auth: &AuthContext) -> Map<String, Value> {
        row.to_json(auth.is_admin())
    }

    fn not_found(id: &str) -> ApiError {
        port_not_found(id)
    }

    /// `device_id` is the common filter (Nova, the provider): use the index.
    fn candidates<'a>(s: &'a CloudState, query: &Query) -> Vec<&'a Self> {
        match query.all("device_id").as_slice() {
            [device] => s
                .ports_of_device(device)
                .iter()
                .filter_map(|id| s.ports.get(id))
                .collect(),
            _ => s.ports.iter().collect(),
        }
    }
}

const PORT_CREATE: [&str; 17] = [
    "network_id",
    "name",
    "description",
    "fixed_ips",
    "mac_address",
    "device_id",
    "device_owner",
    "security_groups",
    "admin_state_up",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "tenant_id",
    "project_id",
    "extra_dhcp_opts",
];

impl Create for Port {
    const CREATE_FIELDS: &'static [&'static str] = &PORT_CREATE;

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let network_id = opt_str(body, "network_id")?
            .ok_or_else(|| bad_request("Failed to parse request. Required attribute 'network_id' not specified"))?;
        let network = s
            .networks
            .get(network_id)
            .filter(|n| visible_network(n, auth))
            .ok_or_else(|| not_found("NetworkNotFound", format!("Network {network_id} could not be found.")))?;
        if network.external && !auth.is_admin() && !owned(auth, &network.std.project_id) {
            return Err(policy_denied("create_port and rule:create_port:fixed_ips"));
        }
        if !auth.is_admin() && body.contains_key("binding:host_id") {
            return Err(policy_denied("create_port:binding:host_id"));
        }
        let mut spec = PortSpec::new(network_id, &project_for(body, auth)?);
        ensure_default_security_group(s, &spec.project_id, now);
        spec.name = opt_str(body, "name")?.unwrap_or("").to_string();
        spec.description = opt_str(body, "description")?.unwrap_or("").to_string();
        spec.fixed_ips = body.get("fixed_ips").map(parse_fixed_ips).transpose()?;
        spec.mac_address = opt_str(body, "mac_address")?.map(str::to_string);
        spec.device_id = opt_str(body, "device_id")?.unwrap_or("").to_string();
        spec.device_owner = opt_str(body, "device_owner")?.unwrap_or("").to_string();
        spec.security_groups = match body.get("security_groups") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => Some(string_list(v, "security group ids")?),
        };
        spec.admin_state_up = opt_bool(body, "admin_state_up")?.unwrap_or(true);
        spec.port_security_enabled = opt_bool(body, "port_security_enabled")?;
        spec.binding_host = opt_str(body, "binding:host_id")?.unwrap_or("").to_string();
        if let Some(pairs) = body.get("allowed_address_pairs").and_then(Value::as_array) {
            spec.allowed_address_pairs = pairs.clone();
        }
        let id = create_port(s, spec, now)?;
        Ok(s.ports.get(&id).map(|p| p.to_json(auth.is_admin())).unwrap_or_default())
    }
}

impl Update for Port {
    const UPDATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "fixed_ips",
        "device_id",
        "device_owner",
        "security_groups",
        "admin_state_up",
        "port_security_enabled",
        "allowed_address_pairs",
        "binding:host_id",
        "binding:vnic_type",
        "binding:profile",
        "mac_address",
        "extra_dhcp_opts",
    ];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let port = Port::find(s, id, auth)?.clone();
        if body.contains_key("mac_address") && !auth.is_admin() {
            return Err(policy_denied("update_port:mac_address"));
        }
        let groups = match body.get("security_groups") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => {
                let groups = string_list(v, "security group ids")?;
                for g in &groups {
                    if !s.security_groups.get(g).is_some_and(|sg| visible_group(sg, auth)) {
                        return Err(not_found(
                            "SecurityGroupNotFound",
                            format!("Security group {g} does not exist"),
                        ));
                    }
                }
                Some(groups)
            }
        };
        let port_security = opt_bool(body, "port_security_enabled")?.unwrap_or(port.port_security_enabled);
        if !port_security && !groups.as_ref().unwrap_or(&port.security_groups).is_empty() {
            return Err(in_use(
                "PortSecurityPortHasSecurityGroup",
                "Port has security group associated. Cannot disable port security or ip address until security group is removed",
            ));
        }
        if let Some(requests) = body.get("fixed_ips").map(parse_fixed_ips).transpose()? {
            // Reallocate: free the old addresses first so they can be kept.
            for f in &port.fixed_ips {
                if let Some(a) = s.index.ips.get_mut(&f.subnet_id) {
                    a.release(f.ip_address);
                }
            }
            match allocate(s, &port.network_id, Some(&requests)) {
                Ok(new) => {
                    for f in &new {
                        s.index
                            .ips
                            .entry(f.subnet_id.clone())
                            .or_default()
                            .take(f.ip_address, id);
                    }
                    if let Some(p) = s.ports.get_mut(id) {
                        p.fixed_ips = new;
                    }
                }
                Err(e) => {
                    for f in &port.fixed_ips {
                        s.index
                            .ips
                            .entry(f.subnet_id.clone())
                            .or_default()
                            .take(f.ip_address, id);
                    }
                    return Err(e);
                }
            }
        }
        if body.contains_key("device_id") || body.contains_key("device_owner") || body.contains_key("binding:host_id") {
            let device = opt_str(body, "device_id")?.unwrap_or(&port.device_id).to_string();
            let owner = opt_str(body, "device_owner")?.unwrap_or(&port.device_owner).to_string();
            let host = opt_str(body, "binding:host_id")?
                .unwrap_or(&port.binding_host)
                .to_string();
            s.set_port_device(id, &device, &owner, &host, now);
        }
        let p = s.ports.get_mut(id).ok_or_else(|| port_not_found(id))?;
        if let Some(n) = opt_str(body, "name")? {
            p.std.name = n.to_string();
        }
        if let Some(d) = opt_str(body, "description")? {
            p.std.description = d.to_string();
        }
        if let Some(g) = groups {
            p.security_groups = g;
        }
        if let Some(v) = opt_bool(body, "admin_state_up")? {
            p.admin_state_up = v;
        }
        p.port_security_enabled = port_security;
        if let Some(mac) = opt_str(body, "mac_address")? {
            p.mac_address = mac.to_string();
        }
        if let Some(pairs) = body.get("allowed_address_pairs").and_then(Value::as_array) {
            p.allowed_address_pairs = pairs.clone();
        }
        p.std.touch(now);
        Ok(p.to_json(auth.is_admin()))
    }
}

impl Delete for Port {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, now, .. } = change;
        let port = Port::find(s, id, auth)?;
        if matches!(
            port.device_owner.as_str(),
            "network:router_interface" | "network:router_gateway" | "network:floatingip"
        ) || port.device_owner == "network:router_interface_distributed"
        {
            return Err(in_use(
                "ServicePortInUse",
                format!(
                    "Port {id} cannot be deleted directly via the port API: has device owner {}.",
                    port.device_owner
                ),
            ));
        }
        remove_port(s, id, now);
        Ok(())
    }
}
