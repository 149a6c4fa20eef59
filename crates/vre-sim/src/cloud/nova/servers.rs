//! Servers: create (with multiple-create), list and detail with filters,
//! show, update, delete, metadata, tags, actions, and the build and
//! delete timers that move them along.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderValue, LOCATION};
use serde_json::{Value, json};

use super::model::{Attachment, Fate, Fault, Server, VmState};
use super::views::{self, ShowOptions};
use super::{
    HOST, METADATA_ITEMS_QUOTA, Microversion, collection_links, limit_and_marker, links, required_object, usage,
};
use crate::cloud::api::{ApiError, ApiResult, Query, brief, empty_response, json_response, python_repr, request_json};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::metadata::{HasMetadata, Metadata};
use crate::cloud::neutron::{NicRequest, create_server_port, ensure_default_security_group, release_server_ports};
use crate::cloud::state::{CloudState, MachineEvent};
use crate::cloud::{Timer, cinder};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance {id} could not be found."))
}

/// Nova's JSON-schema error: the refused value as Python prints it.
fn invalid(path: &str, value: &Value, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {path}. Value: {}. {reason}",
        python_repr(value)
    ))
}

fn invalid_state(action: &str, id: &str, state: VmState) -> ApiError {
    ApiError::conflict(format!(
        "Cannot '{action}' instance {id} while it is in vm_state {}",
        state.as_str()
    ))
}

/// A server the caller may act on (its project's; any for admins).
fn find<'a>(s: &'a CloudState, auth: &AuthContext, id: &str) -> ApiResult<&'a Server> {
    s.servers
        .get(id)
        .filter(|srv| auth.is_admin() || srv.project_id == auth.project_id)
        .ok_or_else(|| not_found(id))
}

// ---- create ----

enum Networks {
    Absent,
    Auto,
    None,
    List(Vec<NicRequest>),
}

struct Bdm {
    boot_index: Option<i64>,
    source: String,
    destination: String,
    uuid: Option<String>,
    volume_size: Option<u64>,
    delete_on_termination: bool,
    tag: Option<String>,
}

struct CreateRequest {
    name: String,
    image_ref: Option<String>,
    flavor_ref: String,
    key_name: Option<String>,
    user_data: Option<String>,
    metadata: BTreeMap<String, String>,
    networks: Networks,
    /// Security group names or ids (None: `default`).
    security_groups: Option<Vec<String>>,
    bdms: Vec<Bdm>,
    min_count: u32,
    max_count: u32,
    return_reservation_id: bool,
    description: Option<String>,
    tags: Vec<String>,
    hostname: Option<String>,
    availability_zone: Option<String>,
    config_drive: bool,
    auto_disk_config: bool,
    access_ipv4: String,
    access_ipv6: String,
    admin_pass: Option<String>,
    /// `security_groups` as given, echoed in the 202 body.
    echo_security_groups: Value,
}

/// Nova's `parameter_types.boolean`.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
            "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn positive_integer(value: &Value, path: &str) -> ApiResult<u32> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| *n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(path, value, format!("{} is not a positive integer", brief(value))))
}

/// The id at the end of a reference that may be a URL.
fn id_from_ref(r: &str) -> String {
    r.trim_end_matches('/').rsplit('/').next().unwrap_or(r).to_string()
}

fn check_name(value: &Value, path: &str) -> ApiResult<String> {
    let name = value
        .as_str()
        .ok_or_else(|| invalid(path, value, format!("{} is not of type 'string'", brief(value))))?;
    if name.is_empty() || name.chars().count() > 255 || name.trim() != name {
        return Err(invalid(path, value, format!("'{name}' does not match the name format")));
    }
    Ok(name.to_string())
}

fn check_metadata(value: &Value, path: &str) -> ApiResult<BTreeMap<String, String>> {
    let map = value
        .as_object()
        .ok_or_else(|| invalid(path, value, format!("{} is not of type 'object'", brief(value))))?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(invalid(
                path,
                value,
                format!("'{k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{{1,255}}$'"),
            ));
        }
        let v = v
            .as_str()
            .ok_or_else(|| invalid(&format!("{path}/{k}"), v, format!("{v} is not of type 'string'")))?;
        if v.chars().count() > 255 {
            return Err(invalid(
                &format!("{path}/{k}"),
                &json!(v),
                format!("'{}' is too long", brief(&json!(v))),
            ));
        }
        out.insert(k.clone(), v.to_string());
    }
    Ok(out)
}

fn validate_tag(tag: &str) -> ApiResult<()> {
    if tag.is_empty() || tag.chars().count() > 60 || tag.contains('/') || tag.contains(',') {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute tags. Value: {tag}. '{tag}' does not match '^[^,/]*$' or is longer than 60 characters"
        )));
    }
    Ok(())
}

fn parse_create(body: &[u8], v: Microversion) -> ApiResult<CreateRequest> {
    let body = request_json(body)?;
    let root = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    for key in root.keys() {
        if !matches!(
            key.as_str(),
            "server" | "os:scheduler_hints" | "OS-SCH-HNT:scheduler_hints"
        ) {
            return Err(ApiError::bad_request(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
    }
    let server = required_object(&body, "server")?;
    let whole = Value::Object(server.clone());
    let mut allowed = vec![
        "name",
        "imageRef",
        "flavorRef",
        "adminPass",
        "metadata",
        "networks",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
        "availability_zone",
        "block_device_mapping",
        "block_device_mapping_v2",
        "config_drive",
        "key_name",
        "min_count",
        "max_count",
        "return_reservation_id",
        "security_groups",
        "user_data",
    ];
    if !v.at_least(57) {
        allowed.push("personality");
    }
    if v.at_least(19) {
        allowed.push("description");
    }
    if v.at_least(52) {
        allowed.push("tags");
    }
    if v.at_least(63) {
        allowed.push("trusted_image_certificates");
    }
    if v.at_least(74) {
        allowed.extend(["host", "hypervisor_hostname"]);
    }
    if v.at_least(90) {
        allowed.push("hostname");
    }
    for key in server.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(
                "server",
                &whole,
                format!("Additional properties are not allowed ('{key}' was unexpected)"),
            ));
        }
    }
    for required in ["name", "flavorRef"] {
        if !server.contains_key(required) {
            return Err(invalid(
                "server",
                &whole,
                format!("'{required}' is a required property"),
            ));
        }
    }
    if v.at_least(37) && !server.contains_key("networks") {
        return Err(invalid("server", &whole, "'networks' is a required property"));
    }
    let name = check_name(&server["name"], "name")?;
    let flavor_ref = match &server["flavorRef"] {
        Value::String(s) if !s.is_empty() => id_from_ref(s),
        Value::Number(n) => n.to_string(),
        other => return Err(invalid("flavorRef", other, "is not a valid flavor reference")),
    };
    let image_ref = match server.get("imageRef") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(id_from_ref(s)),
        Some(other) => {
            return Err(invalid(
                "imageRef",
                other,
                format!("{} is not of type 'string'", brief(other)),
            ));
        }
    };
    let user_data = match server.get("user_data") {
        None | Some(Value::Null) => None,
        Some(value @ Value::String(s)) => {
            if s.len() > 65535 {
                return Err(invalid("user_data", value, format!("'{}' is too long", brief(value))));
            }
            if base64::engine::general_purpose::STANDARD.decode(s.trim()).is_err() {
                return Err(invalid(
                    "user_data",
                    value,
                    format!("'{}' is not a 'base64'", brief(value)),
                ));
            }
            Some(s.clone())
        }
        Some(other) => {
            return Err(invalid(
                "user_data",
                other,
                format!("{} is not of type 'string'", brief(other)),
            ));
        }
    };
    let metadata = match server.get("metadata") {
        None => BTreeMap::new(),
        Some(m) => check_metadata(m, "metadata")?,
    };
    let networks = match server.get("networks") {
        None => Networks::Absent,
        Some(Value::String(s)) if v.at_least(37) && s == "auto" => Networks::Auto,
        Some(Value::String(s)) if v.at_least(37) && s == "none" => Networks::None,
        Some(Value::Array(items)) => {
            let mut nics = Vec::new();
            let mut ports: Vec<String> = Vec::new();
            for item in items {
                let obj = item
                    .as_object()
                    .ok_or_else(|| ApiError::bad_request("Bad networks format"))?;
                for key in obj.keys() {
                    if !matches!(key.as_str(), "uuid" | "port" | "fixed_ip" | "tag") || key == "tag" && !v.at_least(32)
                    {
                        return Err(invalid(
                            "networks",
                            item,
                            format!("Additional properties are not allowed ('{key}' was unexpected)"),
                        ));
                    }
                }
                let fixed_ip =
                    match obj.get("fixed_ip") {
                        None | Some(Value::Null) => None,
                        Some(ip) => Some(ip.as_str().and_then(|t| Ipv4Addr::from_str(t).ok()).ok_or_else(|| {
                            invalid("fixed_ip", ip, format!("{} is not a valid IP address", brief(ip)))
                        })?),
                    };
                match obj.get("port").and_then(Value::as_str) {
                    Some(port) => {
                        if ports.iter().any(|p| p == port) {
                            return Err(ApiError::bad_request(format!(
                                "Port ID '{port}' was specified twice: you cannot attach a port multiple times."
                            )));
                        }
                        if let Some(ip) = fixed_ip {
                            return Err(ApiError::bad_request(format!(
                                "Specified Fixed IP '{ip}' cannot be used with port '{port}': the two cannot be specified together."
                            )));
                        }
                        ports.push(port.to_string());
                        nics.push(NicRequest::Port(port.to_string()));
                    }
                    None => {
                        let uuid = obj
                            .get("uuid")
                            .and_then(Value::as_str)
                            .ok_or_else(|| ApiError::bad_request("Bad network format: missing 'uuid'"))?;
                        if !looks_like_uuid(uuid) {
                            return Err(ApiError::bad_request(format!(
                                "Bad networks format: network uuid is not in proper format ({uuid})"
                            )));
                        }
                        nics.push(NicRequest::Network {
                            id: uuid.to_string(),
                            fixed_ip,
                        });
                    }
                }
            }
            Networks::List(nics)
        }
        Some(other) => {
            return Err(invalid(
                "networks",
                other,
                format!("{} is not valid under any of the given schemas", brief(other)),
            ));
        }
    };
    let security_groups = match server.get("security_groups") {
        None => None,
        Some(Value::Array(items)) => {
            let mut names: Vec<String> = Vec::new();
            for item in items {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("security_groups", item, "'name' is a required property"))?;
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
            Some(names)
        }
        Some(other) => {
            return Err(invalid(
                "security_groups",
                other,
                format!("{} is not of type 'array'", brief(other)),
            ));
        }
    };
    let mut bdms = Vec::new();
    if let Some(items) = server.get("block_device_mapping_v2") {
        let items = items
            .as_array()
            .ok_or_else(|| invalid("block_device_mapping_v2", items, "is not of type 'array'"))?;
        for item in items {
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            let boot_index = match item.get("boot_index") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) if s == "none" => None,
                Some(Value::String(s)) => s.parse().ok(),
                Some(other) => return Err(invalid("boot_index", other, "is not a valid boot index")),
            };
            bdms.push(Bdm {
                boot_index,
                source: text("source_type").unwrap_or_else(|| "image".into()),
                destination: text("destination_type").unwrap_or_else(|| "local".into()),
                uuid: text("uuid"),
                volume_size: item
                    .get("volume_size")
                    .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|t| t.parse().ok()))),
                delete_on_termination: item.get("delete_on_termination").and_then(boolean).unwrap_or(false),
                tag: text("tag"),
            });
        }
    }
    let min_count = server
        .get("min_count")
        .map(|c| positive_integer(c, "min_count"))
        .transpose()?
        .unwrap_or(1);
    let max_count = server
        .get("max_count")
        .map(|c| positive_integer(c, "max_count"))
        .transpose()?
        .unwrap_or(min_count);
    if min_count > max_count {
        return Err(ApiError::bad_request("min_count must be <= max_count"));
    }
    let return_reservation_id = match server.get("return_reservation_id") {
        None => false,
        Some(b) => boolean(b).ok_or_else(|| invalid("return_reservation_id", b, "is not of type 'boolean'"))?,
    };
    let description = match server.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(d.clone()),
        Some(other) => return Err(invalid("description", other, "is not a valid description")),
    };
    let mut tags = Vec::new();
    if let Some(t) = server.get("tags") {
        let list = t
            .as_array()
            .ok_or_else(|| invalid("tags", t, "is not of type 'array'"))?;
        if list.len() > 50 {
            return Err(invalid("tags", t, "is too long"));
        }
        for tag in list {
            let tag = tag
                .as_str()
                .ok_or_else(|| invalid("tags", tag, "is not of type 'string'"))?;
            validate_tag(tag)?;
            if !tags.iter().any(|x: &String| x == tag) {
                tags.push(tag.to_string());
            }
        }
    }
    let hostname = server.get("hostname").and_then(Value::as_str).map(str::to_string);
    let text = |k: &str| server.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(CreateRequest {
        name,
        image_ref,
        flavor_ref,
        key_name: text("key_name"),
        user_data,
        metadata,
        networks,
        security_groups,
        bdms,
        min_count,
        max_count,
        return_reservation_id,
        description,
        tags,
        hostname,
        availability_zone: text("availability_zone"),
        config_drive: server.get("config_drive").and_then(boolean).unwrap_or(false),
        auto_disk_config: server.get("OS-DCF:diskConfig").and_then(Value::as_str) == Some("AUTO"),
        access_ipv4: text("accessIPv4").unwrap_or_default(),
        access_ipv6: text("accessIPv6").unwrap_or_default(),
        admin_pass: text("adminPass"),
        echo_security_groups: server
            .get("security_groups")
            .cloned()
            .unwrap_or_else(|| json!([{"name": "default"}])),
    })
}

fn looks_like_uuid(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// The hostname Nova derives from a display name.
fn sanitize_hostname(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if c == ' ' || c == '_' || c == '.' {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(63).collect();
    if out.is_empty() { "server".to_string() } else { out }
}

/// The NICs of a new server, checked as Nova checks them against Neutron.
fn resolve_networks(s: &CloudState, auth: &AuthContext, req: &CreateRequest) -> ApiResult<Vec<NicRequest>> {
    let candidates = || -> Vec<String> {
        s.networks
            .iter()
            .filter(|n| !n.external && (n.std.project_id == auth.project_id || n.shared))
            .map(|n| n.std.id.clone())
            .collect()
    };
    let nics = match &req.networks {
        Networks::None => return Ok(Vec::new()),
        Networks::Absent | Networks::Auto => {
            let nets = candidates();
            match nets.as_slice() {
                [] if matches!(req.networks, Networks::Auto) => {
                    return Err(ApiError::bad_request(format!(
                        "Unable to automatically allocate a network for project {}",
                        auth.project_id
                    )));
                }
                [] => return Ok(Vec::new()),
                [one] => vec![NicRequest::Network {
                    id: one.clone(),
                    fixed_ip: None,
                }],
                _ => {
                    return Err(ApiError::conflict(
                        "More than one possible network found. Specify network ID(s) to select which one(s) to connect to.",
                    ));
                }
            }
        }
        Networks::List(nics) => nics.clone(),
    };
    for nic in &nics {
        match nic {
            NicRequest::Network { id, fixed_ip } => {
                let network = s
                    .networks
                    .get(id)
                    .filter(|n| n.std.project_id == auth.project_id || n.shared || n.external || auth.is_admin())
                    .ok_or_else(|| ApiError::bad_request(format!("Network {id} could not be found.")))?;
                if network.external && !network.shared && !auth.is_admin() {
                    return Err(ApiError::forbidden(format!(
                        "It is not allowed to create an interface on external network {id}"
                    )));
                }
                if network.subnets.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "Network {id} requires a subnet in order to boot instances on."
                    )));
                }
                if let Some(ip) = fixed_ip {
                    if req.max_count > 1 {
                        return Err(ApiError::bad_request(
                            "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.",
                        ));
                    }
                    let holder = network
                        .subnets
                        .iter()
                        .find_map(|sub| s.index.ips.get(sub).and_then(|a| a.owner(*ip)))
                        .and_then(|port| s.ports.get(port));
                    if let Some(port) = holder {
                        return Err(ApiError::bad_request(format!(
                            "Fixed IP address {ip} is already in use on instance {}.",
                            port.device_id
                        )));
                    }
                    if !network
                        .subnets
                        .iter()
                        .filter_map(|sub| s.subnets.get(sub))
                        .any(|sub| sub.cidr.contains(*ip))
                    {
                        return Err(ApiError::bad_request(format!("Fixed IP not found for address {ip}.")));
                    }
                }
            }
            NicRequest::Port(port_id) => {
                let port = s
                    .ports
                    .get(port_id)
                    .filter(|p| p.std.project_id == auth.project_id || auth.is_admin())
                    .ok_or_else(|| ApiError::bad_request(format!("Port id {port_id} could not be found.")))?;
                if !port.device_id.is_empty() {
                    return Err(ApiError::conflict(format!("Port {port_id} is still in use.")));
                }
                if req.max_count > 1 {
                    return Err(ApiError::bad_request(
                        "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.",
                    ));
                }
                if port.fixed_ips.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "Port {port_id} requires a FixedIP in order to be used."
                    )));
                }
            }
        }
    }
    Ok(nics)
}

/// Security group ids for the names (or ids) of a create request.
fn resolve_security_groups(
    s: &mut CloudState,
    auth: &AuthContext,
    names: Option<&[String]>,
    now: Micros,
) -> ApiResult<Vec<String>> {
    let default = ensure_default_security_group(s, &auth.project_id, now);
    let Some(names) = names else { return Ok(vec![default]) };
    let mut ids = Vec::new();
    for name in names {
        let found = s
            .security_groups
            .iter()
            .filter(|g| g.std.project_id == auth.project_id)
            .find(|g| g.std.id == *name || g.std.name == *name)
            .map(|g| g.std.id.clone());
        let id = found
            .ok_or_else(|| ApiError::bad_request(format!("Unable to find security_group with name or id '{name}'")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// How many instances quota allows (Nova's `check_num_instances_quota`).
fn allowed_count(
    cloud: &Cloud,
    s: &CloudState,
    project_id: &str,
    flavor: &super::model::Flavor,
    min: u32,
    max: u32,
) -> ApiResult<u32> {
    let q = &cloud.config.quotas;
    let (instances, cores, ram) = usage(s, project_id);
    let (quota_i, quota_c, quota_r) = (u64::from(q.instances), u64::from(q.cores), q.ram_mb);
    let (vcpus, mem) = (u64::from(flavor.vcpus), flavor.ram_mb);
    let fits = |n: u64| instances + n <= quota_i && cores + n * vcpus <= quota_c && ram + n * mem <= quota_r;
    if fits(u64::from(max)) {
        return Ok(max);
    }
    let mut allowed = quota_i.saturating_sub(instances);
    if let Some(n) = quota_c.saturating_sub(cores).checked_div(vcpus) {
        allowed = allowed.min(n);
    }
    if let Some(n) = quota_r.saturating_sub(ram).checked_div(mem) {
        allowed = allowed.min(n);
    }
    if allowed >= u64::from(min) && allowed <= u64::from(max) {
        return Ok(allowed as u32);
    }
    // Report what is over, as Nova words it.
    let requested = if min == max {
        min.to_string()
    } else {
        format!("{min}-{max}")
    };
    let n = u64::from(max);
    let mut overs: Vec<(&str, String, u64, u64)> = Vec::new();
    if instances + n > quota_i {
        overs.push(("instances", requested.clone(), instances, quota_i));
    }
    if cores + n * vcpus > quota_c {
        overs.push(("cores", (n * vcpus).to_string(), cores, quota_c));
    }
    if ram + n * mem > quota_r {
        overs.push(("ram", (n * mem).to_string(), ram, quota_r));
    }
    // Nova lists the resources in name order.
    overs.sort_by_key(|o| o.0);
    let names: Vec<&str> = overs.iter().map(|o| o.0).collect();
    let requested: Vec<&str> = overs.iter().map(|o| o.1.as_str()).collect();
    let used: Vec<String> = overs.iter().map(|o| o.2.to_string()).collect();
    let limits: Vec<String> = overs.iter().map(|o| o.3.to_string()).collect();
    let names = names.join(", ");
    Err(ApiError::forbidden(format!(
        "Quota exceeded for {names}: Requested {}, but already used {} of {} {names}",
        requested.join(", "),
        used.join(", "),
        limits.join(", "),
    )))
}

const PASSWORD_SYMBOLS: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

struct Created {
    first: String,
    reservation_id: String,
    admin_pass: String,
}

fn build_servers(
    cloud: &Cloud,
    s: &mut CloudState,
    auth: &AuthContext,
    v: Microversion,
    req: &CreateRequest,
    now: Micros,
) -> ApiResult<Created> {
    let flavor = s
        .flavors
        .iter()
        .find(|f| f.id == req.flavor_ref)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("Flavor {} could not be found.", req.flavor_ref)))?;
    let boot_bdm = req
        .bdms
        .iter()
        .find(|b| b.boot_index == Some(0) && b.destination == "volume");
    let image_id = match &req.image_ref {
        Some(id) => {
            let image = s
                .images
                .get(id)
                .filter(|i| i.owner == auth.project_id || i.visibility != "private" || auth.is_admin())
                .ok_or_else(|| ApiError::bad_request("Can not find requested image"))?;
            if image.status != "active" {
                return Err(ApiError::bad_request(format!("Image {id} is not active.")));
            }
            (boot_bdm.is_none()).then(|| id.clone())
        }
        None if boot_bdm.is_some() => None,
        None => return Err(ApiError::bad_request("Invalid imageRef provided.")),
    };
    if let Some(key) = &req.key_name
        && !s.keypairs.contains(&format!("{}/{key}", auth.user_id))
    {
        return Err(ApiError::bad_request("Invalid key_name provided."));
    }
    if req.hostname.is_some() && req.max_count > 1 {
        return Err(ApiError::bad_request(
            "Unable to allocate a single hostname to multiple instances",
        ));
    }
    if let Some(az) = &req.availability_zone
        && az != "nova"
    {
        return Err(ApiError::bad_request(
            "The requested availability zone is not available",
        ));
    }
    if req.metadata.len() > METADATA_ITEMS_QUOTA {
        return Err(ApiError::forbidden(format!(
            "Maximum number of metadata items exceeds {METADATA_ITEMS_QUOTA}"
        )));
    }
    let nics = resolve_networks(s, auth, req)?;
    let groups = resolve_security_groups(s, auth, req.security_groups.as_deref(), now)?;
    // Volumes the BDMs name must exist and be free.
    for bdm in req.bdms.iter().filter(|b| b.destination == "volume") {
        match bdm.source.as_str() {
            "volume" => {
                let id = bdm.uuid.as_deref().unwrap_or_default();
                let volume = s
                    .volumes
                    .get(id)
                    .filter(|vol| vol.project_id == auth.project_id || auth.is_admin())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("Block Device Mapping is Invalid: failed to get volume {id}."))
                    })?;
                if volume.status != "available" {
                    return Err(ApiError::bad_request(format!(
                        "Invalid volume: volume '{id}' status must be 'available'. Currently in '{}'",
                        volume.status
                    )));
                }
                if req.max_count > 1 {
                    return Err(ApiError::bad_request(format!(
                        "Block Device Mapping is Invalid: volume {id} cannot be attached to more than one instance."
                    )));
                }
            }
            "image" | "blank" => {
                if bdm.volume_size.unwrap_or(0) == 0 {
                    return Err(ApiError::bad_request(
                        "Block Device Mapping is Invalid: Images with destination_type 'volume' need to have a non-zero size specified.",
                    ));
                }
                if bdm.source == "image" {
                    let id = bdm.uuid.as_deref().unwrap_or_default();
                    if s.images.get(id).is_none_or(|i| i.status != "active") {
                        return Err(ApiError::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get image {id}."
                        )));
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Block Device Mapping is Invalid: source type {other} is not supported."
                )));
            }
        }
    }
    let count = allowed_count(cloud, s, &auth.project_id, &flavor, req.min_count, req.max_count)?;
    // New volumes for image/blank BDMs count against Cinder's quota.
    let new_gb: u64 = req
        .bdms
        .iter()
        .filter(|b| b.destination == "volume" && b.source != "volume")
        .filter_map(|b| b.volume_size)
        .sum();
    if new_gb > 0 {
        cinder::check_quota(
            cloud,
            s,
            &auth.project_id,
            new_gb * u64::from(count),
            req.bdms.len() as u64 * u64::from(count),
        )
        .map_err(|e| ApiError::forbidden(e.message))?;
    }
    let reservation_id = format!("r-{}", s.random_text(8, "abcdefghijklmnopqrstuvwxyz0123456789"));
    let admin_pass = match &req.admin_pass {
        Some(p) => p.clone(),
        None => s.random_text(12, PASSWORD_SYMBOLS),
    };
    let config = &cloud.config;
    let mut first = String::new();
    for index in 0..count {
        let id = s.uuid();
        if first.is_empty() {
            first = id.clone();
        }
        let name = if count > 1 {
            format!("{}-{}", req.name, index + 1)
        } else {
            req.name.clone()
        };
        let hostname = req.hostname.clone().unwrap_or_else(|| sanitize_hostname(&name));
        let (fails, jitter) = s.builds_rng(|r| (r.f64() < config.server_error_rate, r.f64()));
        let boot = config.scaled(config.boot_time + config.boot_jitter.mul_f64(jitter));
        let mut fate = if fails { Fate::NoValidHost } else { Fate::Active };
        let done = if fails { now.plus(boot / 10) } else { now.plus(boot) };
        s.instance_counter += 1;
        let mut server = Server {
            id: id.clone(),
            name,
            hostname,
            description: if v.at_least(19) {
                req.description.clone()
            } else {
                Some(req.name.clone())
            },
            project_id: auth.project_id.clone(),
            user_id: auth.user_id.clone(),
            created: now,
            updated: now,
            vm_state: VmState::Building,
            task_state: None,
            power_state: 0,
            fate,
            build_started: now,
            build_done: Some(done),
            gone_at: None,
            task_done: None,
            launched_at: None,
            image_id: image_id.clone(),
            flavor: flavor.clone(),
            key_name: req.key_name.clone(),
            user_data: req.user_data.clone(),
            metadata: req.metadata.clone(),
            tags: req.tags.clone(),
            reservation_id: reservation_id.clone(),
            launch_index: index,
            instance_number: s.instance_counter,
            availability_zone: req.availability_zone.clone(),
            config_drive: req.config_drive,
            auto_disk_config: req.auto_disk_config,
            access_ipv4: req.access_ipv4.clone(),
            access_ipv6: req.access_ipv6.clone(),
            port_ids: Vec::new(),
            created_ports: Vec::new(),
            attachments: Vec::new(),
            fault: None,
            locked: false,
            booted: false,
        };
        if fate == Fate::Active {
            for nic in &nics {
                match create_server_port(s, nic, &id, &auth.project_id, &groups, HOST, now) {
                    Ok((port, created)) => {
                        server.port_ids.push(port.clone());
                        if created {
                            server.created_ports.push(port);
                        }
                    }
                    Err(_) => {
                        // The network ran out of addresses: the build aborts.
                        release_server_ports(s, &server.port_ids, &server.created_ports, now);
                        server.port_ids.clear();
                        server.created_ports.clear();
                        fate = Fate::NetworkFailed;
                        server.fate = fate;
                        break;
                    }
                }
            }
        }
        let mut next_device = b'b';
        for bdm in req.bdms.iter().filter(|b| b.destination == "volume") {
            let volume_id = match bdm.source.as_str() {
                "volume" => bdm.uuid.clone().unwrap_or_default(),
                _ => cinder::create_for_server(
                    s,
                    auth,
                    bdm.volume_size.unwrap_or(1),
                    bdm.uuid.as_deref().filter(|_| bdm.source == "image"),
                    now,
                ),
            };
            let device = if bdm.boot_index == Some(0) {
                "/dev/vda".to_string()
            } else {
                let d = format!("/dev/vd{}", next_device as char);
                next_device += 1;
                d
            };
            let attachment_id = cinder::reserve(s, &volume_id, &id, &device, now);
            let bdm_uuid = s.uuid();
            server.attachments.push(Attachment {
                volume_id,
                device,
                delete_on_termination: bdm.delete_on_termination,
                tag: bdm.tag.clone(),
                attachment_id,
                bdm_uuid,
                boot_index: bdm.boot_index,
            });
        }
        s.servers.insert(server);
        s.schedule(done, Timer::ServerBuilt(id));
    }
    Ok(Created {
        first,
        reservation_id,
        admin_pass,
    })
}

pub(super) async fn create(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    body: Bytes,
) -> ApiResult {
    let req = parse_create(&body, v)?;
    let now = Micros::now();
    let created = cloud.write(|s| build_servers(&cloud, s, &auth, v, &req, now))?;
    if req.return_reservation_id {
        return Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({"reservation_id": created.reservation_id}),
        ));
    }
    let body = json!({"server": {
        "id": created.first,
        "links": links(&cloud, "servers", &created.first),
        "OS-DCF:diskConfig": if req.auto_disk_config { "AUTO" } else { "MANUAL" },
        "security_groups": req.echo_security_groups,
        "adminPass": created.admin_pass,
    }});
    let mut response = json_response(StatusCode::ACCEPTED, &body);
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/compute/v2.1/servers/{}", cloud.base_url, created.first)) {
        response.headers_mut().insert(LOCATION, loc);
    }
    Ok(response)
}

/// BUILD is over: ACTIVE (the machine boots and runs its user data) or
/// ERROR with the fault Nova records.
pub(crate) fn fire_built(s: &mut CloudState, id: &str, now: Micros) {
    let Some(server) = s.servers.get_mut(id) else { return };
    if server.vm_state != VmState::Building || server.build_done.is_none_or(|d| d > now) {
        return;
    }
    server.build_done = None;
    server.updated = now;
    let attachments: Vec<String> = server.attachments.iter().map(|a| a.volume_id.clone()).collect();
    match server.fate {
        Fate::Active => {
            server.vm_state = VmState::Active;
            server.power_state = 1;
            server.launched_at = Some(now);
            server.booted = true;
            for volume in &attachments {
                cinder::complete_attach(s, volume, now);
            }
            if let Some(server) = s.servers.get(id) {
                let machine = s.machine(server);
                s.outbox.events.push(MachineEvent::Booted(machine));
            }
        }
        failure => {
            let message = match failure {
                Fate::NetworkFailed => {
                    format!("Build of instance {id} aborted: Failed to allocate the network(s), not rescheduling.")
                }
                _ => "No valid host was found. There are not enough hosts available.".to_string(),
            };
            let details = match failure {
                Fate::NetworkFailed => "  File \"/opt/stack/nova/nova/compute/manager.py\", line 2650, in _build_and_run_instance\n    raise exception.BuildAbortException(\n".to_string(),
                _ => "Traceback (most recent call last):\n  File \"/opt/stack/nova/nova/conductor/manager.py\", line 1580, in schedule_and_build_instances\n    host_lists = self._schedule_instances(context, request_specs[0],\n  File \"/opt/stack/nova/nova/scheduler/client/query.py\", line 41, in select_destinations\n    return self.scheduler_rpcapi.select_destinations(context, spec_obj,\nnova.exception.NoValidHost: No valid host was found. There are not enough hosts available.\n".to_string(),
            };
            server.vm_state = VmState::Error;
            server.power_state = 0;
            server.fault = Some(Fault {
                code: 500,
                message,
                details,
                created: now,
            });
            // A build that never started leaves its volumes free again.
            server.attachments.clear();
            for volume in &attachments {
                cinder::detach_now(s, volume, now);
            }
        }
    }
}

/// The deleted server is gone: its ports, volumes and machine go with it.
pub(crate) fn fire_gone(s: &mut CloudState, id: &str, now: Micros) {
    let Some(server) = s.servers.get(id) else { return };
    if server.gone_at.is_none_or(|g| g > now) {
        return;
    }
    let machine = server.booted.then(|| s.machine(server));
    let server = match s.servers.remove(id) {
        Some(srv) => srv,
        None => return,
    };
    release_server_ports(s, &server.port_ids, &server.created_ports, now);
    for a in &server.attachments {
        cinder::detach_now(s, &a.volume_id, now);
        if a.delete_on_termination {
            cinder::delete_now(s, &a.volume_id);
        }
    }
    if let Some(machine) = machine {
        s.outbox.events.push(MachineEvent::Deleted(machine));
    }
}

// ---- list / show ----

/// Query parameters Nova's schema knows (2.75+ rejects others).
const KNOWN_FILTERS: [&str; 44] = [
    "reservation_id",
    "name",
    "status",
    "image",
    "flavor",
    "ip",
    "changes-since",
    "all_tenants",
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "deleted",
    "ip6",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "changes-before",
    "locked",
    "availability_zone",
    "config_drive",
    "key_name",
    "created_at",
    "launched_at",
    "terminated_at",
    "power_state",
    "task_state",
    "vm_state",
    "progress",
    "user_id",
    "hostname",
    "host",
    "node",
    "tenant_id",
    "project_id",
    "uuid",
    "image_ref",
    "display_name",
    "display_description",
    "description",
    "access_ip_v4",
    "access_ip_v6",
    "flavor_ref",
];

const STATUSES: [&str; 20] = [
    "ACTIVE",
    "BUILD",
    "DELETED",
    "ERROR",
    "HARD_REBOOT",
    "MIGRATING",
    "PASSWORD",
    "PAUSED",
    "REBOOT",
    "REBUILD",
    "RESCUE",
    "RESIZE",
    "REVERT_RESIZE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHUTOFF",
    "SOFT_DELETED",
    "SUSPENDED",
    "UNKNOWN",
    "VERIFY_RESIZE",
];

fn name_matcher(pattern: &str) -> Box<dyn Fn(&str) -> bool + Send> {
    // MySQL's REGEXP, as Nova runs it, ignores case.
    match regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Box::new(move |name: &str| re.is_match(name)),
        Err(_) => {
            let literal = pattern.to_string();
            Box::new(move |name: &str| name.contains(&literal))
        }
    }
}

fn tag_list<'a>(query: &'a Query, key: &str) -> Vec<&'a str> {
    query
        .get(key)
        .map(|v| v.split(',').filter(|t| !t.is_empty()).collect())
        .unwrap_or_default()
}

/// The servers a list call returns, filtered, sorted and paged.
fn select(s: &CloudState, auth: &AuthContext, v: Microversion, query: &Query) -> ApiResult<Option<Vec<String>>> {
    if v.at_least(75) {
        for (key, _) in query.pairs() {
            if !KNOWN_FILTERS.contains(&key.as_str()) && !key.starts_with('_') {
                return Err(ApiError::bad_request(format!(
                    "'{key}' does not match any of the regexes: '^_'"
                )));
            }
        }
    }
    let statuses: Vec<String> = query.all("status").iter().map(|s| s.to_ascii_uppercase()).collect();
    if !statuses.is_empty() && statuses.iter().all(|st| !STATUSES.contains(&st.as_str())) {
        if v.at_least(38) {
            return Err(ApiError::bad_request("Invalid status value"));
        }
        return Ok(None);
    }
    let parse_time = |key: &str| -> ApiResult<Option<Micros>> {
        match query.get(key) {
            None => Ok(None),
            Some(t) => Micros::parse_iso(t)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid filter field: {key}."))),
        }
    };
    let since = parse_time("changes-since")?;
    let before = if v.at_least(66) {
        parse_time("changes-before")?
    } else {
        None
    };
    if let (Some(a), Some(b)) = (since, before)
        && b < a
    {
        return Err(ApiError::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    let all_tenants = auth.is_admin()
        && query
            .get("all_tenants")
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"));
    let project_filter = if all_tenants {
        query.get("project_id").or(query.get("tenant_id"))
    } else {
        Some(auth.project_id.as_str())
    };
    let name = query.get("name").map(name_matcher);
    let ip = query.get("ip").map(name_matcher);
    let (tags, tags_any, not_tags, not_tags_any) = if v.at_least(26) {
        (
            tag_list(query, "tags"),
            tag_list(query, "tags-any"),
            tag_list(query, "not-tags"),
            tag_list(query, "not-tags-any"),
        )
    } else {
        Default::default()
    };
    let later = |k: &str| if v.at_least(83) { query.get(k) } else { None };
    let key_name = later("key_name");
    let vm_state = later("vm_state");
    let locked = if v.at_least(73) {
        query
            .get("locked")
            .map(|l| matches!(l.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    } else {
        None
    };
    let hostname = if v.at_least(90) { query.get("hostname") } else { None };
    let mut servers: Vec<&Server> = s
        .servers
        .iter()
        .filter(|srv| project_filter.is_none_or(|p| srv.project_id == p))
        .filter(|srv| name.as_ref().is_none_or(|m| m(&srv.name)))
        .filter(|srv| statuses.is_empty() || statuses.iter().any(|st| st == srv.status()))
        .filter(|srv| query.get("reservation_id").is_none_or(|r| srv.reservation_id == r))
        .filter(|srv| query.get("image").is_none_or(|i| srv.image_id.as_deref() == Some(i)))
        .filter(|srv| query.get("flavor").is_none_or(|f| srv.flavor.id == f))
        .filter(|srv| since.is_none_or(|t| srv.updated >= t))
        .filter(|srv| before.is_none_or(|t| srv.updated <= t))
        .filter(|srv| tags.iter().all(|t| srv.tags.iter().any(|x| x == t)))
        .filter(|srv| tags_any.is_empty() || tags_any.iter().any(|t| srv.tags.iter().any(|x| x == t)))
        .filter(|srv| not_tags.is_empty() || !not_tags.iter().all(|t| srv.tags.iter().any(|x| x == t)))
        .filter(|srv| !not_tags_any.iter().any(|t| srv.tags.iter().any(|x| x == t)))
        .filter(|srv| key_name.is_none_or(|k| srv.key_name.as_deref() == Some(k)))
        .filter(|srv| vm_state.is_none_or(|st| srv.vm_state.as_str() == st))
        .filter(|srv| locked.is_none_or(|l| srv.locked == l))
        .filter(|srv| hostname.is_none_or(|h| srv.hostname == h))
        .filter(|srv| {
            ip.as_ref().is_none_or(|m| {
                srv.port_ids
                    .iter()
                    .filter_map(|p| s.ports.get(p))
                    .any(|p| p.fixed_ips.iter().any(|f| m(&f.ip_address.to_string())))
            })
        })
        .collect();
    // Default order: newest first.
    let keys = query.all("sort_key");
    let dirs = query.all("sort_dir");
    let order: Vec<(&str, bool)> = if keys.is_empty() {
        vec![("created_at", false), ("uuid", false)]
    } else {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (*k, dirs.get(i).is_some_and(|d| *d == "asc")))
            .collect()
    };
    servers.sort_by(|a, b| {
        for (key, asc) in &order {
            let ord = match *key {
                "display_name" => a.name.cmp(&b.name),
                "updated_at" => a.updated.cmp(&b.updated),
                "launched_at" => a.launched_at.cmp(&b.launched_at),
                "uuid" => a.id.cmp(&b.id),
                "vm_state" => a.vm_state.as_str().cmp(b.vm_state.as_str()),
                _ => a
                    .created
                    .cmp(&b.created)
                    .then(a.instance_number.cmp(&b.instance_number)),
            };
            let ord = if *asc { ord } else { ord.reverse() };
            if ord.is_ne() {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    let (limit, marker) = limit_and_marker(query)?;
    if let Some(marker) = marker {
        let pos = servers
            .iter()
            .position(|srv| srv.id == marker)
            .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?;
        servers.drain(..=pos);
    }
    servers.truncate(limit);
    Ok(Some(servers.into_iter().map(|srv| srv.id.clone()).collect()))
}

fn list_common(cloud: &Cloud, auth: &AuthContext, v: Microversion, raw: RawQuery, detail: bool) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let now = Micros::now();
    let admin = auth.is_admin();
    let (items, last) = cloud.read(|s| -> ApiResult<(Vec<Value>, Option<String>)> {
        let ids = select(s, auth, v, &query)?.unwrap_or_default();
        let items = ids
            .iter()
            .filter_map(|id| s.servers.get(id))
            .map(|srv| {
                if detail {
                    views::show(cloud, s, srv, v, admin, ShowOptions::detail(), now)
                } else {
                    views::basic(cloud, srv)
                }
            })
            .collect();
        Ok((items, ids.last().cloned()))
    })?;
    let count = items.len();
    let mut body = json!({ "servers": items });
    let path = if detail { "servers/detail" } else { "servers" };
    if let Some(l) = collection_links(cloud, path, &query, count, last.as_deref()) {
        body["servers_links"] = l;
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET …/servers` (`DETAIL` false) and `GET …/servers/detail` (true).
pub(super) async fn list<const DETAIL: bool>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    raw: RawQuery,
) -> ApiResult {
    list_common(&cloud, &auth, v, raw, DETAIL)
}

pub(super) async fn show(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
) -> ApiResult {
    let now = Micros::now();
    let view = cloud.read(|s| {
        find(s, &auth, &id).map(|srv| views::show(&cloud, s, srv, v, auth.is_admin(), ShowOptions::show(v), now))
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "server": view })))
}

pub(super) async fn list_ips(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let addresses = cloud.read(|s| find(s, &auth, &id).map(|srv| views::addresses(s, srv, false)))?;
    Ok(json_response(StatusCode::OK, &json!({ "addresses": addresses })))
}

pub(super) async fn update(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = request_json(&body)?;
    let server = required_object(&body, "server")?;
    let mut allowed = vec!["name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"];
    if v.at_least(19) {
        allowed.push("description");
    }
    if v.at_least(90) {
        allowed.push("hostname");
    }
    if v.at_least(104) {
        allowed.push("pinned_availability_zone");
    }
    for key in server.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(
                "server",
                &Value::Object(server.clone()),
                format!("Additional properties are not allowed ('{key}' was unexpected)"),
            ));
        }
    }
    let name = server.get("name").map(|n| check_name(n, "name")).transpose()?;
    let now = Micros::now();
    let view = cloud.write(|s| {
        find(s, &auth, &id)?;
        let srv = s.servers.get_mut(&id).ok_or_else(|| not_found(&id))?;
        if let Some(name) = name {
            srv.name = name;
        }
        if let Some(d) = server.get("description") {
            srv.description = d.as_str().map(str::to_string);
        }
        if let Some(h) = server.get("hostname").and_then(Value::as_str) {
            srv.hostname = h.to_string();
        }
        if let Some(a) = server.get("accessIPv4").and_then(Value::as_str) {
            srv.access_ipv4 = a.to_string();
        }
        if let Some(a) = server.get("accessIPv6").and_then(Value::as_str) {
            srv.access_ipv6 = a.to_string();
        }
        if let Some(d) = server.get("OS-DCF:diskConfig").and_then(Value::as_str) {
            srv.auto_disk_config = d == "AUTO";
        }
        if let Some(az) = server.get("pinned_availability_zone") {
            srv.availability_zone = az.as_str().map(str::to_string);
        }
        srv.updated = now;
        let srv = s.servers.get(&id).ok_or_else(|| not_found(&id))?;
        Ok(views::show(
            &cloud,
            s,
            srv,
            v,
            auth.is_admin(),
            ShowOptions::update(v),
            now,
        ))
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "server": view })))
}

pub(super) async fn delete(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let now = Micros::now();
    let gone = now.plus(cloud.config.scaled(cloud.timings.server_delete));
    cloud.write(|s| {
        let srv = find(s, &auth, &id)?;
        if srv.locked && !auth.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if srv.gone_at.is_some() {
            return Ok(());
        }
        let srv = s.servers.get_mut(&id).ok_or_else(|| not_found(&id))?;
        srv.task_state = Some("deleting".into());
        srv.build_done = None;
        srv.task_done = None;
        srv.gone_at = Some(gone);
        srv.updated = now;
        s.schedule(gone, Timer::ServerGone(id.clone()));
        Ok(())
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn action(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = request_json(&body)?;
    let (name, _) = body
        .as_object()
        .and_then(|m| m.iter().next())
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let name = name.clone();
    let now = Micros::now();
    let done = now.plus(cloud.config.scaled(cloud.timings.server_action));
    cloud.write(|s| {
        let srv = find(s, &auth, &id)?;
        let state = srv.vm_state;
        if srv.locked && !auth.is_admin() && !matches!(name.as_str(), "lock" | "unlock") {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        let busy = srv.task_state.clone();
        let check = |action: &str, allowed: &[VmState]| -> ApiResult<()> {
            if let Some(task) = &busy {
                return Err(ApiError::conflict(format!(
                    "Cannot '{action}' instance {id} while it is in task_state {task}"
                )));
            }
            if !allowed.contains(&state) {
                return Err(invalid_state(action, &id, state));
            }
            Ok(())
        };
        // Stop, start and reboot take a moment, shown in `task_state`.
        let task = match name.as_str() {
            "os-stop" => {
                check("stop", &[VmState::Active, VmState::Error])?;
                Some("powering-off")
            }
            "os-start" => {
                check("start", &[VmState::Stopped])?;
                Some("powering-on")
            }
            "reboot" => {
                check("reboot", &[VmState::Active, VmState::Stopped, VmState::Error])?;
                Some("rebooting")
            }
            "lock" | "unlock" => None,
            other => return Err(ApiError::bad_request(format!("There is no such action: {other}"))),
        };
        let srv = s.servers.get_mut(&id).ok_or_else(|| not_found(&id))?;
        match task {
            Some(task) => {
                srv.task_state = Some(task.to_string());
                srv.task_done = Some(done);
                s.schedule(done, Timer::ServerTask(id.clone()));
            }
            None => srv.locked = name == "lock",
        }
        if let Some(srv) = s.servers.get_mut(&id) {
            srv.updated = now;
        }
        Ok(())
    })?;
    Ok(empty_response(StatusCode::ACCEPTED))
}

/// An action's task is over: the server is stopped, started or rebooted.
pub(crate) fn fire_task(s: &mut CloudState, id: &str, now: Micros) {
    let Some(srv) = s.servers.get_mut(id) else { return };
    if srv.task_done.is_none_or(|d| d > now) || srv.gone_at.is_some() {
        return;
    }
    srv.task_done = None;
    match srv.task_state.take().as_deref() {
        Some("powering-off") => {
            srv.vm_state = VmState::Stopped;
            srv.power_state = 4;
        }
        Some("powering-on" | "rebooting") => {
            srv.vm_state = VmState::Active;
            srv.power_state = 1;
        }
        _ => {}
    }
    srv.updated = now;
}

// ---- metadata ----

impl HasMetadata for Server {
    fn metadata(s: &CloudState, auth: &AuthContext, id: &str) -> ApiResult<Metadata> {
        find(s, auth, id).map(|srv| srv.metadata.clone())
    }

    fn metadata_body(body: &[u8], key: &str) -> ApiResult<Metadata> {
        let body = request_json(body)?;
        let value = body
            .get(key)
            .ok_or_else(|| invalid(key, &body, format!("'{key}' is a required property")))?;
        check_metadata(value, key)
    }

    fn change_metadata(
        cloud: &Cloud,
        auth: &AuthContext,
        id: &str,
        f: impl FnOnce(&mut Metadata) -> ApiResult<()>,
    ) -> ApiResult<Metadata> {
        let now = Micros::now();
        cloud.write(|s| {
            let srv = find(s, auth, id)?;
            check_changeable(srv, "update metadata")?;
            let srv = s.servers.get_mut(id).ok_or_else(|| not_found(id))?;
            let mut metadata = srv.metadata.clone();
            f(&mut metadata)?;
            if metadata.len() > METADATA_ITEMS_QUOTA {
                return Err(ApiError::forbidden(format!(
                    "Maximum number of metadata items exceeds {METADATA_ITEMS_QUOTA}"
                )));
            }
            srv.metadata = metadata.clone();
            srv.updated = now;
            Ok(metadata)
        })
    }
}

/// Nova refuses metadata and tag changes while a server builds or deletes.
fn check_changeable(srv: &Server, action: &str) -> ApiResult<()> {
    if srv.vm_state == VmState::Building || srv.vm_state == VmState::Error && action.contains("tag") {
        return Err(invalid_state(action, &srv.id, srv.vm_state));
    }
    if srv.task_state.is_some() {
        return Err(ApiError::conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {}",
            srv.id,
            srv.task_state.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

pub(super) async fn show_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    let value = cloud
        .read(|s| find(s, &auth, &id).map(|srv| srv.metadata.get(&key).cloned()))?
        .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
    Ok(json_response(StatusCode::OK, &json!({"meta": { key: value }})))
}

pub(super) async fn set_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let meta = Server::metadata_body(&body, "meta")?;
    if meta.len() != 1 {
        return Err(ApiError::bad_request("Request body contains too many items"));
    }
    let Some(value) = meta.get(&key).cloned() else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    Server::change_metadata(&cloud, &auth, &id, |m| {
        m.insert(key.clone(), value.clone());
        Ok(())
    })?;
    Ok(json_response(StatusCode::OK, &json!({"meta": { key: value }})))
}

pub(super) async fn delete_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    Server::change_metadata(&cloud, &auth, &id, |m| {
        m.remove(&key)
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("Metadata item was not found"))
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

// ---- tags (2.26+) ----

fn require_tags(v: Microversion) -> ApiResult<()> {
    if v.at_least(26) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

fn change_tags(
    cloud: &Cloud,
    auth: &AuthContext,
    id: &str,
    action: &str,
    f: impl FnOnce(&mut Vec<String>) -> ApiResult<bool>,
) -> ApiResult<(Vec<String>, bool)> {
    let now = Micros::now();
    cloud.write(|s| {
        let srv = find(s, auth, id)?;
        check_changeable(srv, action)?;
        let srv = s.servers.get_mut(id).ok_or_else(|| not_found(id))?;
        let mut tags = srv.tags.clone();
        let changed = f(&mut tags)?;
        if tags.len() > 50 {
            return Err(ApiError::bad_request(
                "The number of tags exceeded the per-server limit 50",
            ));
        }
        srv.tags = tags.clone();
        srv.updated = now;
        Ok((tags, changed))
    })
}

pub(super) async fn list_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
) -> ApiResult {
    require_tags(v)?;
    let tags = cloud.read(|s| find(s, &auth, &id).map(|srv| srv.tags.clone()))?;
    Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
}

pub(super) async fn replace_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_tags(v)?;
    let body = request_json(&body)?;
    let list = body
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("tags", &body, "'tags' is a required property"))?;
    let mut new: Vec<String> = Vec::new();
    for t in list {
        let t = t
            .as_str()
            .ok_or_else(|| invalid("tags", t, "is not of type 'string'"))?;
        validate_tag(t)?;
        if !new.iter().any(|x| x == t) {
            new.push(t.to_string());
        }
    }
    let (tags, _) = change_tags(&cloud, &auth, &id, "update tags", |tags| {
        *tags = new;
        Ok(true)
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
}

pub(super) async fn clear_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
) -> ApiResult {
    require_tags(v)?;
    change_tags(&cloud, &auth, &id, "delete tags", |tags| {
        tags.clear();
        Ok(true)
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn check_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    require_tags(v)?;
    let present = cloud.read(|s| find(s, &auth, &id).map(|srv| srv.tags.contains(&tag)))?;
    if !present {
        return Err(ApiError::not_found(format!("Server {id} has no tag '{tag}'")));
    }
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn add_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_tags(v)?;
    validate_tag(&tag)?;
    let (_, added) = change_tags(&cloud, &auth, &id, "update tag", |tags| {
        if tags.contains(&tag) {
            return Ok(false);
        }
        tags.push(tag.clone());
        Ok(true)
    })?;
    if !added {
        return Ok(empty_response(StatusCode::NO_CONTENT));
    }
    let mut response = empty_response(StatusCode::CREATED);
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/compute/v2.1/servers/{id}/tags/{tag}", cloud.base_url)) {
        response.headers_mut().insert(LOCATION, loc);
    }
    Ok(response)
}

pub(super) async fn remove_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    require_tags(v)?;
    change_tags(&cloud, &auth, &id, "delete tag", |tags| {
        let before = tags.len();
        tags.retain(|t| *t != tag);
        if tags.len() == before {
            return Err(ApiError::not_found(format!("Server {id} has no tag '{tag}'")));
        }
        Ok(true)
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_sanitized_display_names() {
        assert_eq!(sanitize_hostname("Web Server_1"), "web-server-1");
        assert_eq!(sanitize_hostname("vre-node-3"), "vre-node-3");
        assert_eq!(sanitize_hostname("!!!"), "server");
    }

    #[test]
    fn references_may_be_urls() {
        assert_eq!(id_from_ref("http://x/compute/flavors/3"), "3");
        assert_eq!(id_from_ref("abc"), "abc");
    }

    #[test]
    fn create_bodies_are_checked_per_microversion() {
        let body = br#"{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "tags": ["x"]}}"#;
        let e = parse_create(body, Microversion(51)).err().unwrap();
        assert!(e.message.contains("'tags' was unexpected"), "{}", e.message);
        let e = parse_create(body, Microversion(52)).err().unwrap();
        assert!(e.message.contains("'networks' is a required property"), "{}", e.message);
        let ok = br#"{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "tags": ["x"], "networks": "none", "min_count": "2"}}"#;
        let req = parse_create(ok, Microversion(52)).unwrap();
        assert_eq!((req.min_count, req.max_count), (2, 2));
        let bad = br#"{"server": {"name": "a", "flavorRef": "1", "networks": "none", "user_data": "***"}}"#;
        let e = parse_create(bad, Microversion(60)).err().unwrap();
        assert!(e.message.contains("is not a 'base64'"), "{}", e.message);
        let bad = br#"{"server": {"name": "a", "flavorRef": "1", "min_count": 3, "max_count": 2}}"#;
        assert_eq!(
            parse_create(bad, Microversion(1)).err().unwrap().message,
            "min_count must be <= max_count"
        );
    }
}
