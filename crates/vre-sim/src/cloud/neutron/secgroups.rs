//! Security groups and their rules, including the `default` group Neutron
//! creates for every project.

use std::sync::Arc;

use axum::extract::{Extension, RawQuery, State};
use serde_json::{Map, Value};

use super::model::{RuleSpec, SecurityGroup, SecurityGroupRule, Standard};
use super::networks::project_for;
use super::resource::{Change, Create, Delete, Resource, Update};
use super::{in_use, invalid_input, list_response, not_found, opt_bool, opt_str, over_quota, owned, query};
use crate::cloud::api::{ApiError, ApiResult};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;
use crate::cloud::table::Table;

const GROUP_ATTRIBUTES: [&str; 3] = ["stateful", "shared", "security_group_rules"];

const RULE_ATTRIBUTES: [&str; 11] = [
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "normalized_cidr",
    "remote_group_id",
    "remote_address_group_id",
    "belongs_to_default_sg",
];

/// IANA protocol numbers of the names Neutron accepts.
const PROTOCOLS: [(&str, u8); 24] = [
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocols with ports: TCP, UDP, UDP-Lite, SCTP, DCCP.
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 136, 132, 33];

fn group_not_found(id: &str) -> ApiError {
    not_found("SecurityGroupNotFound", format!("Security group {id} does not exist"))
}

fn rule_not_found(id: &str) -> ApiError {
    not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

pub(crate) fn visible_group(g: &SecurityGroup, auth: &AuthContext) -> bool {
    owned(auth, &g.std.project_id)
}

/// Adds a rule; `description` is `None` for the rules Neutron makes itself.
fn add_rule(
    s: &mut CloudState,
    group: &SecurityGroup,
    spec: RuleSpec,
    description: Option<&str>,
    now: Micros,
) -> String {
    let id = s.uuid();
    let mut std = Standard::new(id.clone(), &group.std.project_id, "", now);
    std.description = description.unwrap_or_default().to_string();
    std.revision = 0;
    std.standard_attr_id = s.next_standard_attr_id();
    s.security_group_rules.insert(SecurityGroupRule {
        std,
        security_group_id: group.std.id.clone(),
        spec,
        belongs_to_default_sg: group.is_default,
        automatic: description.is_none(),
    });
    id
}

fn open_rule(direction: &str, ethertype: &str, remote_group: Option<&str>) -> RuleSpec {
    RuleSpec {
        direction: direction.into(),
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_group.map(str::to_string),
    }
}

fn new_group(
    s: &mut CloudState,
    project_id: &str,
    name: &str,
    description: &str,
    is_default: bool,
    now: Micros,
) -> SecurityGroup {
    let id = s.uuid();
    let mut std = Standard::new(id, project_id, name, now);
    std.description = description.to_string();
    let group = SecurityGroup {
        std,
        stateful: true,
        is_default,
    };
    if is_default {
        for ethertype in ["IPv4", "IPv6"] {
            add_rule(
                s,
                &group,
                open_rule("ingress", ethertype, Some(&group.std.id)),
                None,
                now,
            );
        }
    }
    for ethertype in ["IPv4", "IPv6"] {
        add_rule(s, &group, open_rule("egress", ethertype, None), None, now);
    }
    group
}

/// The project's `default` group, created (with its four rules) on first
/// use as Neutron does.
pub(crate) fn ensure_default_security_group(s: &mut CloudState, project_id: &str, now: Micros) -> String {
    if let Some(g) = s
        .security_groups
        .iter()
        .find(|g| g.is_default && g.std.project_id == project_id)
    {
        return g.std.id.clone();
    }
    let group = new_group(s, project_id, "default", "Default security group", true, now);
    let id = group.std.id.clone();
    s.security_groups.insert(group);
    id
}

fn group_json(s: &CloudState, g: &SecurityGroup) -> Map<String, Value> {
    let rules = s
        .security_group_rules
        .iter()
        .filter(|r| r.security_group_id == g.std.id)
        .map(|r| Value::Object(r.to_json(true)))
        .collect();
    g.to_json(rules)
}

impl Resource for SecurityGroup {
    const SINGULAR: &'static str = "security_group";
    const COLLECTION: &'static str = "security-groups";
    const ATTRIBUTES: &'static [&'static str] = &GROUP_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.security_groups
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        visible_group(row, auth)
    }

    fn render(s: &CloudState, row: &Self, _auth: &AuthContext) -> Map<String, Value> {
        group_json(s, row)
    }

    fn not_found(id: &str) -> ApiError {
        group_not_found(id)
    }
}

impl Resource for SecurityGroupRule {
    const SINGULAR: &'static str = "security_group_rule";
    const COLLECTION: &'static str = "security-group-rules";
    const ATTRIBUTES: &'static [&'static str] = &RULE_ATTRIBUTES;

    fn table(s: &CloudState) -> &Table<Self> {
        &s.security_group_rules
    }

    fn visible(_s: &CloudState, row: &Self, auth: &AuthContext) -> bool {
        owned(auth, &row.std.project_id)
    }

    fn render(_s: &CloudState, row: &Self, _auth: &AuthContext) -> Map<String, Value> {
        row.to_json(false)
    }

    fn not_found(id: &str) -> ApiError {
        rule_not_found(id)
    }
}

pub(super) async fn list(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    raw: RawQuery,
) -> ApiResult {
    let query = query(raw);
    let now = Micros::now();
    let items = cloud.write(|s| {
        ensure_default_security_group(s, &auth.project_id, now);
        // Rules by group once, not per group.
        let mut rules: std::collections::HashMap<&str, Vec<Value>> = std::collections::HashMap::new();
        for r in s.security_group_rules.iter() {
            rules
                .entry(r.security_group_id.as_str())
                .or_default()
                .push(Value::Object(r.to_json(true)));
        }
        s.security_groups
            .iter()
            .filter(|g| visible_group(g, &auth))
            .map(|g| g.to_json(rules.remove(g.std.id.as_str()).unwrap_or_default()))
            .collect()
    });
    list_response(&cloud, "security-groups", items, &GROUP_ATTRIBUTES, &query)
}

impl Create for SecurityGroup {
    const CREATE_FIELDS: &'static [&'static str] =
        &["name", "description", "stateful", "tenant_id", "project_id", "tags"];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, quotas, now } = change;
        let quota = quotas.security_groups as usize;
        let project_id = project_for(body, auth)?;
        ensure_default_security_group(s, &project_id, now);
        let name = opt_str(body, "name")?.unwrap_or("");
        if name == "default" {
            return Err(in_use(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            ));
        }
        if s.security_groups
            .iter()
            .filter(|g| g.std.project_id == project_id)
            .count()
            >= quota
        {
            return Err(over_quota("security_group"));
        }
        let mut group = new_group(
            s,
            &project_id,
            name,
            opt_str(body, "description")?.unwrap_or(""),
            false,
            now,
        );
        group.stateful = opt_bool(body, "stateful")?.unwrap_or(true);
        let json = group_json(s, &group);
        s.security_groups.insert(group);
        Ok(json)
    }
}

impl Update for SecurityGroup {
    const UPDATE_FIELDS: &'static [&'static str] = &["name", "description", "stateful"];

    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let group = s
            .security_groups
            .get_mut(id)
            .filter(|g| visible_group(g, auth))
            .ok_or_else(|| group_not_found(id))?;
        if let Some(name) = opt_str(body, "name")? {
            if group.is_default && name != "default" {
                return Err(in_use(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            group.std.name = name.to_string();
        }
        if let Some(d) = opt_str(body, "description")? {
            group.std.description = d.to_string();
        }
        if let Some(v) = opt_bool(body, "stateful")? {
            group.stateful = v;
        }
        group.std.touch(now);
        let group = group.clone();
        Ok(group_json(s, &group))
    }
}

impl Delete for SecurityGroup {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, .. } = change;
        let group = SecurityGroup::find(s, id, auth)?;
        if group.is_default && !auth.is_admin() {
            return Err(in_use(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        if s.ports.iter().any(|p| p.security_groups.iter().any(|g| g == id)) {
            return Err(in_use("SecurityGroupInUse", format!("Security Group {id} in use.")));
        }
        s.security_groups.remove(id);
        // Its rules, and the rules of other groups that point at it.
        let doomed: Vec<String> = s
            .security_group_rules
            .iter()
            .filter(|r| r.security_group_id == id || r.spec.remote_group_id.as_deref() == Some(id))
            .map(|r| r.std.id.clone())
            .collect();
        for r in doomed {
            s.security_group_rules.remove(&r);
        }
        Ok(())
    }
}

// ---- rules ----

/// The protocol number of a rule's protocol (`None`: any).
fn protocol_number(protocol: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == protocol)
        .map(|(_, num)| *num)
        .or_else(|| protocol.parse().ok())
}

fn parse_port(body: &Map<String, Value>, key: &str) -> ApiResult<Option<u32>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= 65535)
            .map(Some)
            .ok_or_else(|| invalid_input(format!("Invalid value for port {}", crate::cloud::api::brief(v)))),
    }
}

/// Validates a rule as Neutron does and returns it in canonical form.
fn parse_rule(s: &CloudState, body: &Map<String, Value>) -> ApiResult<RuleSpec> {
    let direction = opt_str(body, "direction")?.ok_or_else(|| {
        ApiError::bad_request("Failed to parse request. Required attribute 'direction' not specified")
            .kind("BadRequest")
    })?;
    if !matches!(direction, "ingress" | "egress") {
        return Err(invalid_input(format!("{direction} is not in ['ingress', 'egress']")));
    }
    let ethertype = opt_str(body, "ethertype")?.unwrap_or("IPv4");
    if !matches!(ethertype, "IPv4" | "IPv6") {
        return Err(ApiError::bad_request(format!(
            "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
        ))
        .kind("SecurityGroupRuleInvalidEtherType"));
    }
    let protocol = match body.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.eq_ignore_ascii_case("any") => None,
        Some(Value::String(p)) => Some(p.to_ascii_lowercase()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(invalid_input(format!("'{other}' is not a valid protocol"))),
    };
    let number = match &protocol {
        None => None,
        Some(p) => Some(protocol_number(p).ok_or_else(|| {
            let names: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
            ApiError::bad_request(format!(
                "Security group rule protocol {p} not supported. Only protocol values {names:?} and integer representations [0 to 255] are supported."
            ))
            .kind("SecurityGroupRuleInvalidProtocol")
        })?),
    };
    if ethertype == "IPv4" && matches!(number, Some(41 | 43 | 44 | 58 | 59 | 60)) {
        return Err(ApiError::bad_request(format!(
            "Invalid ethertype {ethertype} for protocol {}.",
            protocol.as_deref().unwrap_or_default()
        ))
        .kind("SecurityGroupEthertypeConflictWithProtocol"));
    }
    let mut min = parse_port(body, "port_range_min")?;
    let mut max = parse_port(body, "port_range_max")?;
    if min.is_some() || max.is_some() {
        match number {
            None => {
                return Err(
                    ApiError::bad_request("Must also specify protocol if port range is given.")
                        .kind("SecurityGroupProtocolRequiredWithPorts"),
                );
            }
            Some(n) if PORT_PROTOCOLS.contains(&n) => {
                if min == Some(0) || max == Some(0) {
                    return Err(ApiError::bad_request("Invalid value for port 0").kind("SecurityGroupInvalidPortValue"));
                }
                if !matches!((min, max), (Some(a), Some(b)) if a <= b) {
                    return Err(ApiError::bad_request(
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                    )
                    .kind("SecurityGroupInvalidPortRange"));
                }
                if min == Some(1) && max == Some(65535) {
                    (min, max) = (None, None);
                }
            }
            Some(1 | 58) => {
                for (value, attr, field) in [(min, "port_range_min", "type"), (max, "port_range_max", "code")] {
                    if let Some(v) = value.filter(|v| *v > 255) {
                        return Err(ApiError::bad_request(format!(
                            "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                        ))
                        .kind("SecurityGroupInvalidIcmpValue"));
                    }
                }
                if min.is_none() && max.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                        max.unwrap_or_default()
                    ))
                    .kind("SecurityGroupMissingIcmpType"));
                }
            }
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "Ports cannot be specified for protocol {n}. Ports are only supported for TCP, UDP, UDPLITE, SCTP, DCCP."
                ))
                .kind("SecurityGroupInvalidProtocolForPort"));
            }
        }
    }
    let remote_ip_prefix = match opt_str(body, "remote_ip_prefix")? {
        None => None,
        Some(prefix) => Some(normalize_prefix(prefix, ethertype)?),
    };
    let remote_group_id = opt_str(body, "remote_group_id")?.map(str::to_string);
    if remote_ip_prefix.is_some() && remote_group_id.is_some() {
        return Err(ApiError::bad_request(
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        )
        .kind("SecurityGroupMultipleRemoteEntites"));
    }
    if let Some(g) = &remote_group_id
        && !s.security_groups.contains(g)
    {
        return Err(group_not_found(g));
    }
    Ok(RuleSpec {
        direction: direction.to_string(),
        ethertype: ethertype.to_string(),
        protocol,
        port_range_min: min,
        port_range_max: max,
        remote_ip_prefix,
        remote_group_id,
    })
}

/// Adds the mask to a bare address and checks it against the ethertype.
fn normalize_prefix(prefix: &str, ethertype: &str) -> ApiResult<String> {
    let (addr, mask) = prefix.split_once('/').map_or((prefix, None), |(a, m)| (a, Some(m)));
    let conflict = || {
        ApiError::bad_request(format!("Conflicting value ethertype {ethertype} for CIDR {prefix}"))
            .kind("SecurityGroupRuleParameterConflict")
    };
    let invalid = || invalid_input(format!("'{prefix}' is not a valid IP subnet"));
    match addr.parse::<std::net::IpAddr>().map_err(|_| invalid())? {
        std::net::IpAddr::V4(_) if ethertype != "IPv4" => Err(conflict()),
        std::net::IpAddr::V6(_) if ethertype != "IPv6" => Err(conflict()),
        ip => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let mask: u32 = match mask {
                Some(m) => m.parse().ok().filter(|m| *m <= max).ok_or_else(invalid)?,
                None => max,
            };
            Ok(format!("{addr}/{mask}"))
        }
    }
}

type RuleKey = (
    String,
    String,
    Option<u32>,
    Option<u32>,
    Option<u8>,
    Option<String>,
    Option<String>,
);

/// Neutron's duplicate-rule key: `0.0.0.0/0` and `::/0` mean no prefix,
/// protocols compare by number.
fn rule_key(spec: &RuleSpec) -> RuleKey {
    let prefix = spec
        .remote_ip_prefix
        .clone()
        .filter(|p| p != "0.0.0.0/0" && p != "::/0");
    (
        spec.direction.clone(),
        spec.ethertype.clone(),
        spec.port_range_min,
        spec.port_range_max,
        spec.protocol.as_deref().and_then(protocol_number),
        spec.remote_group_id.clone(),
        prefix,
    )
}

impl Create for SecurityGroupRule {
    const CREATE_FIELDS: &'static [&'static str] = &[
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "description",
        "tenant_id",
        "project_id",
        "remote_address_group_id",
    ];

    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
        let &Change { auth, now, .. } = change;
        let group_id = opt_str(body, "security_group_id")?.ok_or_else(|| {
            ApiError::bad_request("Failed to parse request. Required attribute 'security_group_id' not specified")
                .kind("BadRequest")
        })?;
        let group = SecurityGroup::find(s, group_id, auth)?.clone();
        let spec = parse_rule(s, body)?;
        let key = rule_key(&spec);
        if let Some(existing) = s
            .security_group_rules
            .iter()
            .find(|r| r.security_group_id == group.std.id && rule_key(&r.spec) == key)
        {
            return Err(in_use(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", existing.std.id),
            ));
        }
        let id = add_rule(s, &group, spec, Some(opt_str(body, "description")?.unwrap_or("")), now);
        if let Some(g) = s.security_groups.get_mut(&group.std.id) {
            g.std.touch(now);
        }
        Ok(s.security_group_rules
            .get(&id)
            .map(|r| r.to_json(false))
            .unwrap_or_default())
    }
}

impl Delete for SecurityGroupRule {
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()> {
        let &Change { auth, now, .. } = change;
        let rule = SecurityGroupRule::find(s, id, auth)?;
        let group = rule.security_group_id.clone();
        s.security_group_rules.remove(id);
        if let Some(g) = s.security_groups.get_mut(&group) {
            g.std.touch(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(body: Value) -> ApiResult<RuleSpec> {
        parse_rule(&CloudState::new(1), body.as_object().unwrap())
    }

    #[test]
    fn canonicalizes_like_neutron() {
        let r = rule(serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65535})).unwrap();
        assert_eq!(
            (r.port_range_min, r.port_range_max),
            (None, None),
            "the whole range is no range"
        );
        let r = rule(serde_json::json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.1"})).unwrap();
        assert_eq!(r.remote_ip_prefix.as_deref(), Some("10.0.0.1/32"));
        assert_eq!(r.ethertype, "IPv4");
    }

    #[test]
    fn rejects_what_neutron_rejects() {
        let kind = |b: Value| rule(b).unwrap_err().kind;
        assert_eq!(
            kind(serde_json::json!({"direction": "ingress", "port_range_min": 22, "port_range_max": 22})),
            Some("SecurityGroupProtocolRequiredWithPorts")
        );
        assert_eq!(
            kind(
                serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 30, "port_range_max": 22})
            ),
            Some("SecurityGroupInvalidPortRange")
        );
        assert_eq!(
            kind(
                serde_json::json!({"direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 2})
            ),
            Some("SecurityGroupInvalidProtocolForPort")
        );
        assert_eq!(
            kind(serde_json::json!({"direction": "ingress", "protocol": "bogus"})),
            Some("SecurityGroupRuleInvalidProtocol")
        );
        assert_eq!(
            kind(serde_json::json!({"direction": "ingress", "remote_ip_prefix": "::/0"})),
            Some("SecurityGroupRuleParameterConflict")
        );
        assert_eq!(kind(serde_json::json!({"direction": "sideways"})), Some("InvalidInput"));
    }

    #[test]
    fn duplicate_keys_ignore_the_any_prefix_and_protocol_spelling() {
        let a = rule(serde_json::json!({"direction": "ingress", "protocol": "tcp", "remote_ip_prefix": "0.0.0.0/0"}))
            .unwrap();
        let b = rule(serde_json::json!({"direction": "ingress", "protocol": "6"})).unwrap();
        assert_eq!(rule_key(&a), rule_key(&b));
    }
}
