//! Routers (gateways, interfaces) and floating IPs, which need a router
//! between their external network and the port's subnet.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::model::{FixedIp, FloatingIp, Gateway, HostRoute, Port, Router, Standard};
use super::networks::project_for;
use super::ports::{FixedIpRequest, PortSpec, create_port, remove_port};
use super::resource::{Change, Create, Delete, Resource, Update};
use super::{in_use, invalid_input, not_found, opt_bool, opt_str, over_quota, owned, policy_denied};
use crate::cloud::api::{ApiError, ApiResult, json_body, json_response};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;
use crate::cloud::table::Table;

const ROUTER_ATTRIBUTES: [&str; 11] = [
    "admin_state_up",
    "status",
    "availability_zone_hints",
    "availability_zones",
    "flavor_id",
    "service_type_id",
    "routes",
    "external_gateway_info",
    "distributed",
    "ha",
    "enable_ndp_proxy",
];

const FIP_ATTRIBUTES: [&str; 7] = [
    "floating_network_id",
    "floating_ip_address",
    "port_id",
    "fixed_ip_address",
    "router_id",
    "status",
    "port_details",
];

fn router_not_found(id: &str) -> ApiError {
    not_found("RouterNotFound", format!("Router {id} could not be found"))
}

fn fip_not_found(id: &str) -> ApiError {
    not_found("FloatingIPNotFound", format!("Floating IP {id} could not be found"))
}

fn bad_router(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Bad router request: {msg}.")).kind("BadRequest")
}

fn bad_floatingip(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Bad floatingip request: {msg}.")).kind("BadRequest")
}

fn router_json(s: &CloudState, r: &Router, admin: bool) -> Map<String, Value> {
    let ips: Vec<FixedIp> = r
        .gateway
        .as_ref()
        .and_then(|g| s.ports.get(&g.port_id))
        .map(|p| p.fixed_ips.clone())
        .unwrap_or_default();
    r.to_json(admin, &ips)
}

/// Interface ports of a router.
fn interfaces(s: &CloudState, router_id: &str) -> Vec<String> {
    s.ports_of_device(router_id)
        .iter()
        .filter(|p| {
            s.ports
                .get(p)
                .is_some_and(|p| p.device_owner == "network:router_interface")
        })
        .cloned()
        .collect()
}

impl Resource for Router {
    const SINGULAR: &'static str = "router";
    const COLLECTION: &'static str = "routers";
    const ATTRIBUTES: &'static [&'static str] = &ROUTER_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.routers
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        owned(auth, &row.std.project_id)
    }

    fn render(s: &CloudState, row: &Self, auth: &AuthContext) -> Map<String, Value> {
        router_json(s, row, auth.is_admin())
    }

    fn not_found(id: &str) -> ApiError {
        router_not_found(id)
    }
}

/// Sets (or clears, with `None`) a router's external gateway.
fn set_gateway(s: &mut CloudState, router_id: &str, info: Option<&Value>, now: Micros) -> ApiResult<()> {
    let router = s
        .routers
        .get(router_id)
        .ok_or_else(|| router_not_found(router_id))?
        .clone();
    let wanted = match info {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Object(m)) => {
            let network_id = m.get("network_id").and_then(Value::as_str).ok_or_else(|| {
                invalid_input("Validation of dictionary's keys failed. Expected keys: {'network_id'}")
            })?;
            Some((
                network_id.to_string(),
                m.get("enable_snat").and_then(Value::as_bool).unwrap_or(true),
                m.get("external_fixed_ips").cloned(),
            ))
        }
        Some(other) => return Err(invalid_input(format!("'{other}' is not a dictionary"))),
    };
    if let Some(old) = &router.gateway {
        let same_network = wanted.as_ref().is_some_and(|(n, _, _)| *n == old.network_id);
        if !same_network && s.floating_ips.iter().any(|f| f.router_id.as_deref() == Some(router_id)) {
            return Err(in_use(
                "RouterExternalGatewayInUseByFloatingIp",
                format!(
                    "Gateway cannot be updated for router {router_id}, since a gateway to external network {} is required by one or more floating IPs.",
                    old.network_id
                ),
            ));
        }
        if same_network {
            if let (Some(r), Some((_, snat, _))) = (s.routers.get_mut(router_id), &wanted)
                && let Some(g) = r.gateway.as_mut()
            {
                g.enable_snat = *snat;
            }
            return Ok(());
        }
        remove_port(s, &old.port_id, now);
    }
    let gateway = match wanted {
        None => None,
        Some((network_id, enable_snat, fixed)) => {
            let network = s
                .networks
                .get(&network_id)
                .ok_or_else(|| not_found("NetworkNotFound", format!("Network {network_id} could not be found.")))?;
            if !network.external {
                return Err(bad_router(format!("Network {network_id} is not an external network")));
            }
            let mut spec = PortSpec::new(&network_id, "");
            spec.device_id = router_id.to_string();
            spec.device_owner = "network:router_gateway".into();
            spec.binding_host = crate::cloud::nova::HOST.into();
            spec.security_groups = Some(Vec::new());
            if let Some(Value::Array(items)) = fixed {
                spec.fixed_ips = Some(fixed_requests(&items)?);
            }
            let port_id = create_port(s, spec, now)?;
            Some(Gateway {
                network_id,
                enable_snat,
                port_id,
            })
        }
    };
    if let Some(r) = s.routers.get_mut(router_id) {
        r.gateway = gateway;
    }
    Ok(())
}

fn fixed_requests(items: &[Value]) -> ApiResult<Vec<FixedIpRequest>> {
    items
        .iter()
        .map(|i| {
            let ip = match i.get("ip_address").and_then(Value::as_str) {
                Some(t) => {
                    Some(Ipv4Addr::from_str(t).map_err(|_| invalid_input(format!("'{t}' is not a valid IP address")))?)
                }
                None => None,
            };
            Ok(FixedIpRequest {
                subnet_id: i.get("subnet_id").and_then(Value::as_str).map(str::to_string),
                ip_address: ip,
            })
        })
        .collect()
}

fn parse_routes(value: Option<&Value>) -> ApiResult<Option<Vec<HostRoute>>> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| {
                match (
                    r.get("destination").and_then(Value::as_str),
                    r.get("nexthop").and_then(Value::as_str),
                ) {
                    (Some(d), Some(n)) => Ok(HostRoute {
                        destination: d.into(),
                        nexthop: n.into(),
                    }),
                    _ => Err(invalid_input(format!("Invalid data format for hostroute: '{r}'"))),
                }
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(other) => Err(invalid_input(format!("Invalid data format for hostroute: '{other}'"))),
    }
}

impl Create for Router {
    const CREATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "external_gateway_info",
        "tenant_id",
        "project_id",
        "distributed",
        "ha",
        "availability_zone_hints",
        "flavor_id",
        "routes",
        "tags",
    ];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        if !auth.is_admin() && (body.contains_key("distributed") || body.contains_key("ha")) {
            return Err(policy_denied("create_router:distributed"));
        }
        let project_id = project_for(body, auth)?;
        let id = s.uuid();
        let mut std = Standard::new(id.clone(), &project_id, opt_str(body, "name")?.unwrap_or(""), now);
        std.description = opt_str(body, "description")?.unwrap_or("").to_string();
        s.routers.insert(Router {
            std,
            admin_state_up: opt_bool(body, "admin_state_up")?.unwrap_or(true),
            gateway: None,
            routes: parse_routes(body.get("routes"))?.unwrap_or_default(),
        });
        if let Err(e) = set_gateway(s, &id, body.get("external_gateway_info"), now) {
            s.routers.remove(&id);
            return Err(e);
        }
        // Setting the gateway is a second change of the new router.
        if let Some(r) = s.routers.get_mut(&id).filter(|r| r.gateway.is_some()) {
            r.std.revision += 1;
        }
        let r = s.routers.get(&id).cloned().ok_or_else(|| router_not_found(&id))?;
        Ok(router_json(s, &r, auth.is_admin()))
    }
}

impl Update for Router {
    const UPDATE_FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "external_gateway_info",
        "routes",
        "distributed",
        "ha",
    ];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        Router::find(s, id, auth)?;
        if body.contains_key("external_gateway_info") {
            set_gateway(s, id, body.get("external_gateway_info"), now)?;
        }
        let routes = parse_routes(body.get("routes"))?;
        let r = s.routers.get_mut(id).ok_or_else(|| router_not_found(id))?;
        if let Some(n) = opt_str(body, "name")? {
            r.std.name = n.to_string();
        }
        if let Some(d) = opt_str(body, "description")? {
            r.std.description = d.to_string();
        }
        if let Some(v) = opt_bool(body, "admin_state_up")? {
            r.admin_state_up = v;
        }
        if let Some(routes) = routes {
            r.routes = routes;
        }
        r.std.touch(now);
        let r = r.clone();
        Ok(router_json(s, &r, auth.is_admin()))
    }
}

impl Delete for Router {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, now, .. } = change;
        let router = Router::find(s, id, auth)?;
        let attached = interfaces(s, id);
        if !attached.is_empty() {
            return Err(in_use(
                "RouterInUse",
                format!("Router {id} has ports still attached: {}", attached.join(", ")),
            ));
        }
        if let Some(g) = router.gateway.clone() {
            remove_port(s, &g.port_id, now);
        }
        s.routers.remove(id);
        Ok(())
    }
}

fn interface_body(body: &[u8]) -> ApiResult<(Option<String>, Option<String>)> {
    let value =
        json_body(body).ok_or_else(|| ApiError::bad_request("Malformed request body").kind("HTTPBadRequest"))?;
    let subnet = value.get("subnet_id").and_then(Value::as_str).map(str::to_string);
    let port = value.get("port_id").and_then(Value::as_str).map(str::to_string);
    match (&subnet, &port) {
        (Some(_), Some(_)) => Err(bad_router("Cannot specify both subnet-id and port-id")),
        (None, None) => Err(bad_router("Either subnet_id or port_id must be specified")),
        _ => Ok((subnet, port)),
    }
}

fn interface_info(s: &CloudState, router: &Router, port_id: &str) -> Value {
    let port = s.ports.get(port_id);
    let subnets: Vec<&str> = port
        .map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect())
        .unwrap_or_default();
    json!({
        "id": router.std.id,
        "project_id": router.std.project_id,
        "port_id": port_id,
        "network_id": port.map(|p| p.network_id.as_str()).unwrap_or_default(),
        "subnet_id": subnets.first().copied().unwrap_or_default(),
        "subnet_ids": subnets,
    })
}

pub(super) async fn add_interface(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (subnet_id, port_id) = interface_body(&body)?;
    let now = Micros::now();
    let info = cloud.write(|s| {
        let router = Router::find(s, &id, &auth)?.clone();
        let existing: Vec<String> = interfaces(s, &id)
            .iter()
            .filter_map(|p| s.ports.get(p))
            .flat_map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.clone()))
            .collect();
        let check_subnet = |s: &CloudState, subnet_id: &str| -> ApiResult<()> {
            let subnet = s.subnets.get(subnet_id).ok_or_else(|| not_found("SubnetNotFound", format!("Subnet {subnet_id} could not be found.")))?;
            if existing.iter().any(|e| e == subnet_id) {
                return Err(bad_router(format!("Router already has a port on subnet {subnet_id}")));
            }
            for other in existing.iter().filter_map(|e| s.subnets.get(e)) {
                if other.cidr.overlaps(subnet.cidr) {
                    return Err(bad_router(format!(
                        "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                        subnet.cidr, subnet.std.id, other.cidr, other.std.id
                    )));
                }
            }
            Ok(())
        };
        let port_id = match (subnet_id, port_id) {
            (Some(subnet_id), _) => {
                check_subnet(s, &subnet_id)?;
                let subnet = s.subnets.get(&subnet_id).ok_or_else(|| not_found("SubnetNotFound", format!("Subnet {subnet_id} could not be found.")))?;
                if !owned(&auth, &subnet.std.project_id) && !s.networks.get(&subnet.network_id).is_some_and(|n| n.shared) {
                    return Err(not_found("SubnetNotFound", format!("Subnet {subnet_id} could not be found.")));
                }
                let gateway = subnet.gateway_ip.ok_or_else(|| bad_router("Subnet for router interface must have a gateway IP"))?;
                let network_id = subnet.network_id.clone();
                let mut spec = PortSpec::new(&network_id, &router.std.project_id);
                spec.fixed_ips = Some(vec![FixedIpRequest { subnet_id: Some(subnet_id.clone()), ip_address: Some(gateway) }]);
                spec.device_id = id.clone();
                spec.device_owner = "network:router_interface".into();
                spec.binding_host = crate::cloud::nova::HOST.into();
                spec.security_groups = Some(Vec::new());
                create_port(s, spec, now).map_err(|e| {
                    if e.kind == Some("IpAddressAlreadyAllocated") {
                        in_use(
                            "IpAddressInUse",
                            format!("Unable to complete operation for network {network_id}. The IP address {gateway} is in use."),
                        )
                    } else {
                        e
                    }
                })?
            }
            (None, Some(port_id)) => {
                let port = Port::find(s, &port_id, &auth)?;
                if !port.device_id.is_empty() {
                    return Err(in_use(
                        "PortInUse",
                        format!(
                            "Unable to complete operation on port {port_id} for network {}. Port already has an attached device {}.",
                            port.network_id, port.device_id
                        ),
                    ));
                }
                let Some(first) = port.fixed_ips.first() else {
                    return Err(bad_router("Router port must have at least one fixed IP"));
                };
                check_subnet(s, &first.subnet_id.clone())?;
                s.set_port_device(&port_id, &id, "network:router_interface", crate::cloud::nova::HOST, now);
                port_id
            }
            (None, None) => return Err(bad_router("Either subnet_id or port_id must be specified")),
        };
        if let Some(r) = s.routers.get_mut(&id) {
            r.std.touch(now);
        }
        Ok(interface_info(s, &router, &port_id))
    })?;
    Ok(json_response(StatusCode::OK, &info))
}

pub(super) async fn remove_interface(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (subnet_id, port_id) = interface_body(&body)?;
    let now = Micros::now();
    let info = cloud.write(|s| {
        let router = Router::find(s, &id, &auth)?.clone();
        let ports = interfaces(s, &id);
        let port_id = match (&subnet_id, &port_id) {
            (_, Some(port_id)) => ports.iter().find(|p| *p == port_id).cloned().ok_or_else(|| {
                not_found("RouterInterfaceNotFound", format!("Router {id} does not have an interface with id {port_id}"))
            })?,
            (Some(subnet_id), None) => ports
                .iter()
                .find(|p| s.ports.get(p).is_some_and(|p| p.fixed_ips.iter().any(|f| f.subnet_id == *subnet_id)))
                .cloned()
                .ok_or_else(|| not_found("RouterInterfaceNotFoundForSubnet", format!("Router {id} has no interface on subnet {subnet_id}")))?,
            (None, None) => return Err(bad_router("Either subnet_id or port_id must be specified")),
        };
        let subnets: Vec<String> = s.ports.get(&port_id).map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect()).unwrap_or_default();
        // Floating IPs reaching ports behind this interface need it.
        for fip in s.floating_ips.iter().filter(|f| f.router_id.as_deref() == Some(id.as_str())) {
            let Some(fixed) = fip.fixed_ip_address else { continue };
            if let Some(sub) = subnets.iter().find(|sub| s.subnets.get(sub).is_some_and(|x| x.cidr.contains(fixed))) {
                return Err(in_use(
                    "RouterInterfaceInUseByFloatingIP",
                    format!(
                        "Router interface for subnet {sub} on router {id} cannot be deleted, as it is required by one or more floating IPs."
                    ),
                ));
            }
        }
        let info = interface_info(s, &router, &port_id);
        remove_port(s, &port_id, now);
        if let Some(r) = s.routers.get_mut(&id) {
            r.std.touch(now);
        }
        Ok(info)
    })?;
    Ok(json_response(StatusCode::OK, &info))
}

// ---- floating IPs ----

fn fip_json(s: &CloudState, f: &FloatingIp) -> Map<String, Value> {
    f.to_json(f.port_id.as_deref().and_then(|p| s.ports.get(p)))
}

impl Resource for FloatingIp {
    const SINGULAR: &'static str = "floatingip";
    const COLLECTION: &'static str = "floatingips";
    const ATTRIBUTES: &'static [&'static str] = &FIP_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.floating_ips
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        owned(auth, &row.std.project_id)
    }

    fn render(s: &CloudState, row: &Self, _auth: &AuthContext) -> Map<String, Value> {
        fip_json(s, row)
    }

    fn not_found(id: &str) -> ApiError {
        fip_not_found(id)
    }
}

/// Where a floating IP on `external_net` can reach `port_id`: the fixed IP
/// and the router connecting the port's subnet to the external network.
fn association(
    s: &CloudState,
    auth: &AuthContext,
    fip_id: &str,
    external_net: &str,
    port_id: &str,
    fixed_ip: Option<Ipv4Addr>,
) -> ApiResult<(Ipv4Addr, String)> {
    let port = Port::find(s, port_id, auth)?;
    let fixed = match fixed_ip {
        Some(ip) => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address == ip)
            .ok_or_else(|| bad_floatingip(format!("Port {port_id} does not have fixed ip {ip}")))?,
        None => port.fixed_ips.first().ok_or_else(|| {
            bad_floatingip(format!(
                "Port {port_id} does not have any IPv4 address. Therefore, cannot associate it with a Floating IP"
            ))
        })?,
    };
    let router = s
        .routers
        .iter()
        .filter(|r| r.gateway.as_ref().is_some_and(|g| g.network_id == external_net))
        .find(|r| {
            interfaces(s, &r.std.id)
                .iter()
                .filter_map(|p| s.ports.get(p))
                .any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == fixed.subnet_id))
        })
        .ok_or_else(|| {
            not_found(
                "ExternalGatewayForFloatingIPNotFound",
                format!(
                    "External network {external_net} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                    fixed.subnet_id
                ),
            )
        })?;
    let taken = s
        .fips_of_port(port_id)
        .iter()
        .filter(|f| *f != fip_id)
        .filter_map(|f| s.floating_ips.get(f))
        .any(|f| f.fixed_ip_address == Some(fixed.ip_address) && f.floating_network_id == external_net);
    if taken {
        return Err(in_use(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({fip_id}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {external_net}.",
                s.floating_ips
                    .get(fip_id)
                    .map(|f| f.floating_ip_address.to_string())
                    .unwrap_or_default(),
                fixed.ip_address
            ),
        ));
    }
    Ok((fixed.ip_address, router.std.id.clone()))
}

fn optional_ip(body: &Map<String, Value>, key: &str) -> ApiResult<Option<Ipv4Addr>> {
    match opt_str(body, key)? {
        None => Ok(None),
        Some(t) => Ipv4Addr::from_str(t)
            .map(Some)
            .map_err(|_| invalid_input(format!("'{t}' is not a valid IP address"))),
    }
}

impl Create for FloatingIp {
    const CREATE_FIELDS: &'static [&'static str] = &[
        "floating_network_id",
        "floating_ip_address",
        "subnet_id",
        "port_id",
        "fixed_ip_address",
        "description",
        "tenant_id",
        "project_id",
        "dns_name",
        "dns_domain",
        "qos_policy_id",
    ];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, quotas, now } = change;
        let quota = quotas.floating_ips as usize;
        let network_id = opt_str(body, "floating_network_id")?.ok_or_else(|| {
            ApiError::bad_request("Failed to parse request. Required attribute 'floating_network_id' not specified")
                .kind("BadRequest")
        })?;
        let network = s
            .networks
            .get(network_id)
            .ok_or_else(|| not_found("NetworkNotFound", format!("Network {network_id} could not be found.")))?;
        if !network.external {
            return Err(bad_floatingip(format!(
                "Network {network_id} is not a valid external network"
            )));
        }
        let address = optional_ip(body, "floating_ip_address")?;
        if address.is_some() && !auth.is_admin() {
            return Err(policy_denied("create_floatingip:floating_ip_address"));
        }
        let project_id = project_for(body, auth)?;
        if s.floating_ips.iter().filter(|f| f.std.project_id == project_id).count() >= quota {
            return Err(over_quota("floatingip"));
        }
        let id = s.uuid();
        let association = match opt_str(body, "port_id")? {
            Some(port_id) => {
                let (fixed, router) = association(
                    s,
                    auth,
                    &id,
                    network_id,
                    port_id,
                    optional_ip(body, "fixed_ip_address")?,
                )?;
                Some((port_id.to_string(), fixed, router))
            }
            None => None,
        };
        let mut spec = PortSpec::new(network_id, "");
        spec.device_id = id.clone();
        spec.device_owner = "network:floatingip".into();
        spec.security_groups = Some(Vec::new());
        let subnet_id = opt_str(body, "subnet_id")?.map(str::to_string);
        if subnet_id.is_some() || address.is_some() {
            spec.fixed_ips = Some(vec![FixedIpRequest {
                subnet_id,
                ip_address: address,
            }]);
        }
        let floating_port = create_port(s, spec, now)?;
        let ip = s
            .ports
            .get(&floating_port)
            .and_then(|p| p.fixed_ips.first())
            .map(|f| f.ip_address)
            .ok_or_else(|| bad_request_no_ip(network_id))?;
        let mut std = Standard::new(id.clone(), &project_id, "", now);
        std.description = opt_str(body, "description")?.unwrap_or("").to_string();
        std.revision = 0;
        s.floating_ips.insert(FloatingIp {
            std,
            floating_network_id: network_id.to_string(),
            floating_ip_address: ip,
            floating_port_id: floating_port,
            port_id: None,
            fixed_ip_address: None,
            router_id: None,
        });
        if let Some((port_id, fixed, router)) = association {
            s.set_fip_port(&id, Some((port_id.clone(), fixed, router)), now);
            s.notify_addresses(&port_id);
        }
        let f = s.floating_ips.get(&id).cloned().ok_or_else(|| fip_not_found(&id))?;
        Ok(fip_json(s, &f))
    }
}

fn bad_request_no_ip(network_id: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Unable to find any IP address on external network {network_id}."
    ))
    .kind("ExternalIpAddressExhausted")
}

impl Update for FloatingIp {
    const UPDATE_FIELDS: &'static [&'static str] = &["port_id", "fixed_ip_address", "description", "qos_policy_id"];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let fip = FloatingIp::find(s, id, auth)?.clone();
        if body.contains_key("port_id") {
            let old_port = fip.port_id.clone();
            match opt_str(body, "port_id")? {
                Some(port_id) => {
                    let (fixed, router) = association(
                        s,
                        auth,
                        id,
                        &fip.floating_network_id,
                        port_id,
                        optional_ip(body, "fixed_ip_address")?,
                    )?;
                    s.set_fip_port(id, Some((port_id.to_string(), fixed, router)), now);
                    if let Some(old) = old_port.filter(|o| o != port_id) {
                        s.notify_addresses(&old);
                    }
                    s.notify_addresses(port_id);
                }
                None => {
                    s.set_fip_port(id, None, now);
                    if let Some(old) = old_port {
                        s.notify_addresses(&old);
                    }
                }
            }
        }
        if let Some(d) = opt_str(body, "description")?
            && let Some(f) = s.floating_ips.get_mut(id)
        {
            f.std.description = d.to_string();
            f.std.touch(now);
        }
        let f = s.floating_ips.get(id).cloned().ok_or_else(|| fip_not_found(id))?;
        Ok(fip_json(s, &f))
    }
}

impl Delete for FloatingIp {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, now, .. } = change;
        let fip = FloatingIp::find(s, id, auth)?.clone();
        if let Some(port) = &fip.port_id {
            s.set_fip_port(id, None, now);
            s.notify_addresses(port);
        }
        s.floating_ips.remove(id);
        s.remove_port(&fip.floating_port_id);
        Ok(())
    }
}
