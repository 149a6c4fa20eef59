//! Networks and subnets.

use std::net::Ipv4Addr;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::ipam::{Cidr, Pool, default_pools};
use super::model::{HostRoute, Network, Standard, Subnet};
use super::resource::{Change, Create, Delete, Resource, Update};
use super::{bad_request, in_use, invalid_input, not_found, opt_bool, opt_str, over_quota, owned, policy_denied};
use crate::cloud::api::{ApiError, ApiResult};
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;
use crate::cloud::table::Table;

const NETWORK_ATTRIBUTES: [&str; 15] = [
    "admin_state_up",
    "availability_zone_hints",
    "availability_zones",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "l2_adjacency",
    "mtu",
    "port_security_enabled",
    "router:external",
    "is_default",
    "shared",
    "status",
    "subnets",
    "provider:network_type",
    "provider:segmentation_id",
];

const SUBNET_ATTRIBUTES: [&str; 16] = [
    "network_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "segment_id",
    "service_types",
    "subnetpool_id",
    "router:external",
    "dns_publish_fixed_ip",
    "use_default_subnetpool",
];

/// VXLAN networks under ML2/OVS: 1500 minus the VXLAN overhead.
const TENANT_MTU: u32 = 1450;

fn network_not_found(id: &str) -> ApiError {
    not_found("NetworkNotFound", format!("Network {id} could not be found."))
}

fn subnet_not_found(id: &str) -> ApiError {
    not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
}

/// A network the caller can see: its own, shared or external ones.
pub(crate) fn visible_network(n: &Network, auth: &AuthContext) -> bool {
    owned(auth, &n.std.project_id) || n.shared || n.external
}

impl Resource for Network {
    const SINGULAR: &'static str = "network";
    const COLLECTION: &'static str = "networks";
    const ATTRIBUTES: &'static [&'static str] = &NETWORK_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.networks
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        visible_network(row, auth)
    }

    fn render(_s: &CloudState, row: &Self, auth: &AuthContext) -> Map<String, Value> {
        row.to_json(auth.is_admin(), false)
    }

    fn not_found(id: &str) -> ApiError {
        network_not_found(id)
    }
}

/// Seeds the external network `public` and `public-subnet`
/// (172.24.4.0/24, gateway .1, pool .10-.250, no DHCP), as devstack does.
pub(crate) fn seed_public_network(s: &mut CloudState, project_id: &str) {
    let now = Micros::now();
    let network_id = crate::cloud::keystone::stable_uuid("network", "public");
    let subnet_id = crate::cloud::keystone::stable_uuid("subnet", "public-subnet");
    s.networks.insert(Network {
        std: Standard::new(network_id.clone(), project_id, "public", now),
        admin_state_up: true,
        shared: false,
        external: true,
        is_default: true,
        mtu: 1500,
        port_security_enabled: true,
        network_type: "flat".into(),
        physical_network: Some("public".into()),
        segmentation_id: None,
        subnets: vec![subnet_id.clone()],
    });
    s.subnets.insert(Subnet {
        std: Standard::new(subnet_id, project_id, "public-subnet", now),
        network_id,
        cidr: Cidr {
            network: u32::from(Ipv4Addr::new(172, 24, 4, 0)),
            prefix: 24,
        },
        gateway_ip: Some(Ipv4Addr::new(172, 24, 4, 1)),
        allocation_pools: vec![Pool {
            start: Ipv4Addr::new(172, 24, 4, 10),
            end: Ipv4Addr::new(172, 24, 4, 250),
        }],
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
        enable_dhcp: false,
        external: true,
    });
}

impl Create for Network {
    const CREATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "shared",
        "router:external",
        "port_security_enabled",
        "mtu",
        "tenant_id",
        "project_id",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "availability_zone_hints",
        "is_default",
        "tags",
    ];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, quotas, now } = change;
        let quota = quotas.networks;
        let external = opt_bool(body, "router:external")?.unwrap_or(false);
        let shared = opt_bool(body, "shared")?.unwrap_or(false);
        if !auth.is_admin() && external {
            return Err(policy_denied("create_network and rule:create_network:router:external"));
        }
        if !auth.is_admin() && shared {
            return Err(policy_denied("create_network and rule:create_network:shared"));
        }
        if !auth.is_admin() && body.keys().any(|k| k.starts_with("provider:")) {
            return Err(policy_denied(
                "create_network and rule:create_network:provider:network_type",
            ));
        }
        let project_id = project_for(body, auth)?;
        if s.networks.iter().filter(|n| n.std.project_id == project_id).count() >= quota as usize {
            return Err(over_quota("network"));
        }
        let mtu = match body.get("mtu") {
            None | Some(Value::Null) => TENANT_MTU,
            Some(v) => v
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| *m >= 68)
                .ok_or_else(|| invalid_input(format!("'{v}' is too small - must be at least '68'")))?,
        };
        let id = s.uuid();
        let segmentation_id = Some(s.networks.len() as u32 + 1);
        let mut std = Standard::new(id, &project_id, opt_str(body, "name")?.unwrap_or(""), now);
        std.description = opt_str(body, "description")?.unwrap_or("").to_string();
        let network = Network {
            std,
            admin_state_up: opt_bool(body, "admin_state_up")?.unwrap_or(true),
            shared,
            external,
            is_default: opt_bool(body, "is_default")?.unwrap_or(false),
            mtu,
            port_security_enabled: opt_bool(body, "port_security_enabled")?.unwrap_or(true),
            network_type: opt_str(body, "provider:network_type")?.unwrap_or("vxlan").to_string(),
            physical_network: opt_str(body, "provider:physical_network")?.map(str::to_string),
            segmentation_id,
            subnets: Vec::new(),
        };
        let json = network.to_json(auth.is_admin(), true);
        s.networks.insert(network);
        Ok(json)
    }
}

/// The owner of a new resource: the caller's project, or (admins only)
/// the one the body names.
pub(crate) fn project_for(body: &Map<String, Value>, auth: &AuthContext) -> ApiResult<String> {
    let given = opt_str(body, "project_id")?.or(opt_str(body, "tenant_id")?);
    match given {
        Some(p) if p != auth.project_id && !auth.is_admin() => Err(bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        )),
        Some(p) => Ok(p.to_string()),
        None => Ok(auth.project_id.clone()),
    }
}

impl Update for Network {
    const UPDATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "shared",
        "router:external",
        "port_security_enabled",
        "mtu",
        "is_default",
    ];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let network = Network::find(s, id, auth)?;
        if !owned(auth, &network.std.project_id) {
            return Err(policy_denied("update_network"));
        }
        if !auth.is_admin() && (body.contains_key("router:external") || body.contains_key("shared")) {
            return Err(policy_denied("update_network:router:external"));
        }
        if opt_bool(body, "router:external")? == Some(false)
            && network.external
            && s.ports
                .iter()
                .any(|p| p.network_id == id && p.device_owner == "network:router_gateway")
        {
            return Err(in_use(
                "ExternalNetworkInUse",
                format!(
                    "External network {id} cannot be updated to be made non-external, since it has existing gateway ports."
                ),
            ));
        }
        let network = s.networks.get_mut(id).ok_or_else(|| network_not_found(id))?;
        if let Some(name) = opt_str(body, "name")? {
            network.std.name = name.to_string();
        }
        if let Some(d) = opt_str(body, "description")? {
            network.std.description = d.to_string();
        }
        if let Some(v) = opt_bool(body, "admin_state_up")? {
            network.admin_state_up = v;
        }
        if let Some(v) = opt_bool(body, "shared")? {
            network.shared = v;
        }
        if let Some(v) = opt_bool(body, "router:external")? {
            network.external = v;
        }
        if let Some(v) = opt_bool(body, "port_security_enabled")? {
            network.port_security_enabled = v;
        }
        if let Some(v) = body.get("mtu").and_then(Value::as_u64) {
            network.mtu = u32::try_from(v).unwrap_or(network.mtu);
        }
        network.std.touch(now);
        let external = network.external;
        let json = network.to_json(auth.is_admin(), false);
        let subnets = network.subnets.clone();
        for sid in subnets {
            if let Some(sub) = s.subnets.get_mut(&sid) {
                sub.external = external;
            }
        }
        Ok(json)
    }
}

impl Delete for Network {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, .. } = change;
        let network = Network::find(s, id, auth)?;
        if !owned(auth, &network.std.project_id) {
            return Err(policy_denied("delete_network"));
        }
        // Only ports Neutron owns itself (DHCP) go with the network.
        let in_use_ports: Vec<&str> = s
            .ports
            .iter()
            .filter(|p| p.network_id == id && p.device_owner != "network:dhcp")
            .map(|p| p.std.id.as_str())
            .collect();
        if !in_use_ports.is_empty() {
            return Err(in_use(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {id}. There are one or more ports still in use on the network, id for these ports is: {}.",
                    in_use_ports.join(",")
                ),
            ));
        }
        let subnets = network.subnets.clone();
        for sid in subnets {
            s.subnets.remove(&sid);
            s.index.ips.remove(&sid);
        }
        s.networks.remove(id);
        Ok(())
    }
}

// ---- subnets ----

fn visible_subnet(s: &CloudState, sub: &Subnet, auth: &AuthContext) -> bool {
    owned(auth, &sub.std.project_id)
        || s.networks
            .get(&sub.network_id)
            .is_some_and(|n| visible_network(n, auth))
}

impl Resource for Subnet {
    const SINGULAR: &'static str = "subnet";
    const COLLECTION: &'static str = "subnets";
    const ATTRIBUTES: &'static [&'static str] = &SUBNET_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.subnets
    }

    fn visible(s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        visible_subnet(s, row, auth)
    }

    fn render(_s: &CloudState, row: &Self, _auth: &AuthContext) -> Map<String, Value> {
        row.to_json()
    }

    fn not_found(id: &str) -> ApiError {
        subnet_not_found(id)
    }
}

fn parse_ip(value: &Value) -> ApiResult<Ipv4Addr> {
    value.as_str().and_then(|v| Ipv4Addr::from_str(v).ok()).ok_or_else(|| {
        invalid_input(format!(
            "'{}' is not a valid IP address",
            crate::cloud::api::brief(value)
        ))
    })
}

fn parse_pools(value: &Value, cidr: Cidr) -> ApiResult<Vec<Pool>> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid_input(format!("Invalid data format for IP pool: '{value}'")))?;
    let mut pools: Vec<Pool> = Vec::new();
    for item in list {
        let (Some(start), Some(end)) = (item.get("start"), item.get("end")) else {
            return Err(invalid_input(format!("Invalid data format for IP pool: '{item}'")));
        };
        let pool = Pool {
            start: parse_ip(start)?,
            end: parse_ip(end)?,
        };
        if u32::from(pool.start) > u32::from(pool.end) {
            return Err(
                bad_request(format!("The allocation pool {}-{} is not valid.", pool.start, pool.end))
                    .kind("InvalidAllocationPool"),
            );
        }
        if !cidr.contains(pool.start)
            || !cidr.contains(pool.end)
            || u32::from(pool.end) == cidr.broadcast() && cidr.prefix < 31
        {
            return Err(bad_request(format!(
                "The allocation pool {}-{} spans beyond the subnet cidr {cidr}.",
                pool.start, pool.end
            ))
            .kind("OutOfBoundsAllocationPool"));
        }
        if let Some(other) = pools
            .iter()
            .find(|p| u32::from(p.start) <= u32::from(pool.end) && u32::from(pool.start) <= u32::from(p.end))
        {
            return Err(in_use(
                "OverlappingAllocationPools",
                format!(
                    "Found overlapping allocation pools: {}-{} {}-{} for subnet {cidr}.",
                    other.start, other.end, pool.start, pool.end
                ),
            ));
        }
        pools.push(pool);
    }
    Ok(pools)
}

fn parse_nameservers(value: &Value) -> ApiResult<Vec<String>> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid_input(format!("Invalid data format for nameserver: '{value}'")))?;
    let mut out: Vec<String> = Vec::new();
    for ns in list {
        let ip = parse_ip(ns)?;
        if out.contains(&ip.to_string()) {
            return Err(invalid_input(format!("Duplicate nameserver '{ip}'")));
        }
        out.push(ip.to_string());
    }
    if out.len() > 5 {
        return Err(bad_request(
            "Unable to complete operation for subnet. The number of DNS nameservers exceeds the limit 5.",
        )
        .kind("DNSNameServersExhausted"));
    }
    Ok(out)
}

fn parse_routes(value: &Value) -> ApiResult<Vec<HostRoute>> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid_input(format!("Invalid data format for hostroute: '{value}'")))?;
    list.iter()
        .map(|r| {
            match (
                r.get("destination").and_then(Value::as_str),
                r.get("nexthop").and_then(Value::as_str),
            ) {
                (Some(d), Some(n)) => Ok(HostRoute {
                    destination: d.to_string(),
                    nexthop: n.to_string(),
                }),
                _ => Err(invalid_input(format!("Invalid data format for hostroute: '{r}'"))),
            }
        })
        .collect()
}

fn check_gateway(gateway: Option<Ipv4Addr>, pools: &[Pool]) -> ApiResult<()> {
    if let Some(g) = gateway
        && let Some(p) = pools.iter().find(|p| p.contains(g))
    {
        return Err(in_use(
            "GatewayConflictWithAllocationPools",
            format!("Gateway ip {g} conflicts with allocation pool {}-{}.", p.start, p.end),
        ));
    }
    Ok(())
}

impl Create for Subnet {
    const CREATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "network_id",
        "cidr",
        "ip_version",
        "gateway_ip",
        "allocation_pools",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
        "tenant_id",
        "project_id",
        "ipv6_address_mode",
        "ipv6_ra_mode",
        "subnetpool_id",
        "segment_id",
        "service_types",
        "prefixlen",
        "use_default_subnetpool",
    ];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let network_id = opt_str(body, "network_id")?
            .ok_or_else(|| bad_request("Failed to parse request. Required attribute 'network_id' not specified"))?;
        let network = Network::find(s, network_id, auth)?;
        if !owned(auth, &network.std.project_id) {
            return Err(policy_denied("create_subnet"));
        }
        match body.get("ip_version") {
            Some(v) if v.as_u64() == Some(4) || v.as_str() == Some("4") => {}
            Some(v) if v.as_u64() == Some(6) || v.as_str() == Some("6") => {
                return Err(invalid_input(
                    "IPv6 subnets are not simulated by vre-sim; use ip_version 4",
                ));
            }
            Some(v) => return Err(invalid_input(format!("{v} is not in [4, 6]"))),
            None => {
                return Err(bad_request(
                    "Failed to parse request. Required attribute 'ip_version' not specified",
                ));
            }
        }
        let cidr_text = opt_str(body, "cidr")?
            .ok_or_else(|| bad_request("a subnetpool must be specified in the absence of a cidr"))?;
        let cidr = match Cidr::parse(cidr_text) {
            Ok(c) => c,
            // Neutron keeps the network address of a CIDR given with host bits set.
            Err(Some(normalized)) => Cidr::parse(&normalized)
                .map_err(|_| invalid_input(format!("'{cidr_text}' is not a valid IP subnet")))?,
            Err(None) => return Err(invalid_input(format!("'{cidr_text}' is not a valid IP subnet"))),
        };
        for other in &network.subnets {
            if let Some(o) = s.subnets.get(other)
                && o.cidr.overlaps(cidr)
            {
                return Err(invalid_input(format!(
                    "Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet"
                )));
            }
        }
        let (first, _) = cidr.hosts();
        let gateway = match body.get("gateway_ip") {
            None => Some(Ipv4Addr::from(first)),
            Some(Value::Null) => None,
            Some(v) => {
                let g = parse_ip(v)?;
                if !cidr.contains(g) {
                    return Err(invalid_input("Gateway is not valid on subnet"));
                }
                Some(g)
            }
        };
        let pools = match body.get("allocation_pools") {
            None | Some(Value::Null) => default_pools(cidr, gateway),
            Some(v) => parse_pools(v, cidr)?,
        };
        check_gateway(gateway, &pools)?;
        let dns = match body.get("dns_nameservers") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_nameservers(v)?,
        };
        let routes = match body.get("host_routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_routes(v)?,
        };
        let project_id = project_for(body, auth)?;
        let external = network.external;
        let id = s.uuid();
        let mut std = Standard::new(id.clone(), &project_id, opt_str(body, "name")?.unwrap_or(""), now);
        std.description = opt_str(body, "description")?.unwrap_or("").to_string();
        std.revision = 0;
        let subnet = Subnet {
            std,
            network_id: network_id.to_string(),
            cidr,
            gateway_ip: gateway,
            allocation_pools: pools,
            dns_nameservers: dns,
            host_routes: routes,
            enable_dhcp: opt_bool(body, "enable_dhcp")?.unwrap_or(true),
            external,
        };
        let json = subnet.to_json();
        s.subnets.insert(subnet);
        if let Some(n) = s.networks.get_mut(network_id) {
            n.subnets.push(id);
            n.std.touch(now);
        }
        Ok(json)
    }
}

impl Update for Subnet {
    const UPDATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "gateway_ip",
        "allocation_pools",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
        "service_types",
    ];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let subnet = Subnet::find(s, id, auth)?;
        if !owned(auth, &subnet.std.project_id) {
            return Err(policy_denied("update_subnet"));
        }
        let cidr = subnet.cidr;
        let gateway = match body.get("gateway_ip") {
            None => subnet.gateway_ip,
            Some(Value::Null) => None,
            Some(v) => Some(parse_ip(v)?),
        };
        if gateway != subnet.gateway_ip
            && let Some(old) = subnet.gateway_ip
            && let Some(port) = s.index.ips.get(id).and_then(|a| a.owner(old))
        {
            return Err(in_use(
                "GatewayIpInUse",
                format!("Current gateway ip {old} already in use by port {port}. Unable to update."),
            ));
        }
        let pools = match body.get("allocation_pools") {
            None => subnet.allocation_pools.clone(),
            Some(v) => parse_pools(v, cidr)?,
        };
        check_gateway(gateway, &pools)?;
        let dns = match body.get("dns_nameservers") {
            None => subnet.dns_nameservers.clone(),
            Some(Value::Null) => Vec::new(),
            Some(v) => parse_nameservers(v)?,
        };
        let routes = match body.get("host_routes") {
            None => subnet.host_routes.clone(),
            Some(Value::Null) => Vec::new(),
            Some(v) => parse_routes(v)?,
        };
        let name = opt_str(body, "name")?.map(str::to_string);
        let description = opt_str(body, "description")?.map(str::to_string);
        let dhcp = opt_bool(body, "enable_dhcp")?;
        let subnet = s.subnets.get_mut(id).ok_or_else(|| subnet_not_found(id))?;
        subnet.gateway_ip = gateway;
        subnet.allocation_pools = pools;
        subnet.dns_nameservers = dns;
        subnet.host_routes = routes;
        if let Some(n) = name {
            subnet.std.name = n;
        }
        if let Some(d) = description {
            subnet.std.description = d;
        }
        if let Some(d) = dhcp {
            subnet.enable_dhcp = d;
        }
        subnet.std.touch(now);
        Ok(subnet.to_json())
    }
}

impl Delete for Subnet {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, now, .. } = change;
        let subnet = Subnet::find(s, id, auth)?;
        if !owned(auth, &subnet.std.project_id) {
            return Err(policy_denied("delete_subnet"));
        }
        if s.index.ips.get(id).is_some_and(|a| !a.is_empty()) {
            return Err(in_use(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
                ),
            ));
        }
        let network_id = subnet.network_id.clone();
        s.subnets.remove(id);
        s.index.ips.remove(id);
        if let Some(n) = s.networks.get_mut(&network_id) {
            n.subnets.retain(|x| *x != id);
            n.std.touch(now);
        }
        Ok(())
    }
}
