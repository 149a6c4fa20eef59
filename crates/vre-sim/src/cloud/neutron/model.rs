//! Neutron's resources and their JSON representation (ML2 with the router,
//! port-security and default service plugins, as the reference rig runs).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ipam::{Cidr, Pool};
use crate::cloud::clock::Micros;
use crate::cloud::table::Keyed;

/// Fields every Neutron resource with standard attributes carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Standard {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created: Micros,
    pub updated: Micros,
    pub revision: u64,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Neutron's `standard_attr_id` (shown in a group's embedded rules).
    #[serde(default)]
    pub standard_attr_id: u64,
}

impl Standard {
    pub(crate) fn new(id: String, project_id: &str, name: &str, now: Micros) -> Standard {
        Standard {
            id,
            project_id: project_id.to_string(),
            name: name.to_string(),
            description: String::new(),
            created: now,
            updated: now,
            revision: 1,
            tags: Vec::new(),
            standard_attr_id: 0,
        }
    }

    /// Bumps `revision_number` and `updated_at` after a change.
    pub(crate) fn touch(&mut self, now: Micros) {
        self.revision += 1;
        self.updated = now;
    }

    fn write(&self, m: &mut Map<String, Value>, with_name: bool) {
        m.insert("id".into(), json!(self.id));
        if with_name {
            m.insert("name".into(), json!(self.name));
        }
        m.insert("description".into(), json!(self.description));
        m.insert("project_id".into(), json!(self.project_id));
        m.insert("tenant_id".into(), json!(self.project_id));
        m.insert("created_at".into(), json!(self.created.iso_seconds()));
        m.insert("updated_at".into(), json!(self.updated.iso_seconds()));
        m.insert("revision_number".into(), json!(self.revision));
        m.insert("tags".into(), json!(self.tags));
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Network {
    #[serde(flatten)]
    pub std: Standard,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub is_default: bool,
    pub mtu: u32,
    pub port_security_enabled: bool,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    /// Subnet ids in creation order.
    pub subnets: Vec<String>,
}

impl Keyed for Network {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl Network {
    /// `created`: the create response (which always carries `is_default`).
    pub(crate) fn to_json(&self, admin: bool, created: bool) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, true);
        m.insert("admin_state_up".into(), json!(self.admin_state_up));
        m.insert("availability_zone_hints".into(), json!([]));
        // No DHCP agent hosts tenant networks here.
        m.insert("availability_zones".into(), json!([]));
        m.insert("ipv4_address_scope".into(), Value::Null);
        m.insert("ipv6_address_scope".into(), Value::Null);
        m.insert("qinq".into(), json!(false));
        m.insert("vlan_transparent".into(), json!(false));
        m.insert("mtu".into(), json!(self.mtu));
        m.insert("port_security_enabled".into(), json!(self.port_security_enabled));
        m.insert("router:external".into(), json!(self.external));
        if created || self.external {
            m.insert("is_default".into(), json!(self.is_default));
        }
        m.insert("shared".into(), json!(self.shared));
        m.insert("status".into(), json!("ACTIVE"));
        m.insert("subnets".into(), json!(self.subnets));
        if admin {
            m.insert("provider:network_type".into(), json!(self.network_type));
            m.insert("provider:physical_network".into(), json!(self.physical_network));
            m.insert("provider:segmentation_id".into(), json!(self.segmentation_id));
        }
        m
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Subnet {
    #[serde(flatten)]
    pub std: Standard,
    pub network_id: String,
    pub cidr: Cidr,
    pub gateway_ip: Option<Ipv4Addr>,
    pub allocation_pools: Vec<Pool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub enable_dhcp: bool,
    /// Copied from the network for the `router:external` attribute.
    pub external: bool,
}

impl Keyed for Subnet {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl Subnet {
    pub(crate) fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, true);
        m.insert("network_id".into(), json!(self.network_id));
        m.insert("cidr".into(), json!(self.cidr.to_string()));
        m.insert("ip_version".into(), json!(4));
        m.insert("gateway_ip".into(), json!(self.gateway_ip.map(|g| g.to_string())));
        m.insert(
            "allocation_pools".into(),
            json!(
                self.allocation_pools
                    .iter()
                    .map(|p| json!({"start": p.start.to_string(), "end": p.end.to_string()}))
                    .collect::<Vec<_>>()
            ),
        );
        m.insert("dns_nameservers".into(), json!(self.dns_nameservers));
        m.insert(
            "host_routes".into(),
            json!(
                self.host_routes
                    .iter()
                    .map(|r| json!({"destination": r.destination, "nexthop": r.nexthop}))
                    .collect::<Vec<_>>()
            ),
        );
        m.insert("enable_dhcp".into(), json!(self.enable_dhcp));
        m.insert("ipv6_address_mode".into(), Value::Null);
        m.insert("ipv6_ra_mode".into(), Value::Null);
        m.insert("service_types".into(), json!([]));
        m.insert("subnetpool_id".into(), Value::Null);
        m.insert("router:external".into(), json!(self.external));
        m
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FixedIp {
    pub subnet_id: String,
    pub ip_address: Ipv4Addr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Port {
    #[serde(flatten)]
    pub std: Standard,
    pub network_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Vec<String>,
    pub admin_state_up: bool,
    pub port_security_enabled: bool,
    pub binding_host: String,
    #[serde(default)]
    pub allowed_address_pairs: Vec<Value>,
}

impl Keyed for Port {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl Port {
    /// A bound port is ACTIVE, an unbound one DOWN.
    pub(crate) fn status(&self) -> &'static str {
        if self.binding_host.is_empty() || !self.admin_state_up {
            "DOWN"
        } else {
            "ACTIVE"
        }
    }

    pub(crate) fn to_json(&self, admin: bool) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, true);
        m.insert("network_id".into(), json!(self.network_id));
        m.insert("mac_address".into(), json!(self.mac_address));
        m.insert(
            "fixed_ips".into(),
            json!(
                self.fixed_ips
                    .iter()
                    .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
                    .collect::<Vec<_>>()
            ),
        );
        m.insert("device_id".into(), json!(self.device_id));
        m.insert("device_owner".into(), json!(self.device_owner));
        m.insert("security_groups".into(), json!(self.security_groups));
        m.insert("admin_state_up".into(), json!(self.admin_state_up));
        m.insert("status".into(), json!(self.status()));
        m.insert("port_security_enabled".into(), json!(self.port_security_enabled));
        m.insert("allowed_address_pairs".into(), json!(self.allowed_address_pairs));
        m.insert("extra_dhcp_opts".into(), json!([]));
        m.insert("binding:vnic_type".into(), json!("normal"));
        if admin {
            let bound = !self.binding_host.is_empty();
            m.insert("binding:host_id".into(), json!(self.binding_host));
            m.insert("binding:profile".into(), json!({}));
            m.insert(
                "binding:vif_details".into(),
                if bound {
                    json!({
                        "connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": false,
                        "datapath_type": "system", "bridge_name": "br-int", "bound_drivers": {"0": "openvswitch"},
                    })
                } else {
                    json!({})
                },
            );
            m.insert("binding:vif_type".into(), json!(if bound { "ovs" } else { "unbound" }));
        }
        m
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Gateway {
    pub network_id: String,
    pub enable_snat: bool,
    pub port_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Router {
    #[serde(flatten)]
    pub std: Standard,
    pub admin_state_up: bool,
    pub gateway: Option<Gateway>,
    #[serde(default)]
    pub routes: Vec<HostRoute>,
}

impl Keyed for Router {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl Router {
    /// `gateway_ips`: the fixed IPs of the gateway port.
    pub(crate) fn to_json(&self, admin: bool, gateway_ips: &[FixedIp]) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, true);
        m.insert("admin_state_up".into(), json!(self.admin_state_up));
        m.insert("status".into(), json!("ACTIVE"));
        m.insert("availability_zone_hints".into(), json!([]));
        m.insert("availability_zones".into(), json!([]));
        m.insert("flavor_id".into(), Value::Null);
        m.insert(
            "routes".into(),
            json!(
                self.routes
                    .iter()
                    .map(|r| json!({"destination": r.destination, "nexthop": r.nexthop}))
                    .collect::<Vec<_>>()
            ),
        );
        let gateway = self.gateway.as_ref().map(|g| {
            json!({
                "network_id": g.network_id,
                "enable_snat": g.enable_snat,
                "external_fixed_ips": gateway_ips
                    .iter()
                    .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
                    .collect::<Vec<_>>(),
            })
        });
        m.insert("external_gateway_info".into(), gateway.unwrap_or(Value::Null));
        if admin {
            m.insert("distributed".into(), json!(false));
            m.insert("ha".into(), json!(false));
        }
        m
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SecurityGroup {
    #[serde(flatten)]
    pub std: Standard,
    pub stateful: bool,
    /// The project's `default` group, created by Neutron itself.
    pub is_default: bool,
}

impl Keyed for SecurityGroup {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl SecurityGroup {
    pub(crate) fn to_json(&self, rules: Vec<Value>) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, true);
        m.insert("stateful".into(), json!(self.stateful));
        m.insert("shared".into(), json!(false));
        m.insert("security_group_rules".into(), json!(rules));
        m
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RuleSpec {
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SecurityGroupRule {
    #[serde(flatten)]
    pub std: Standard,
    pub security_group_id: String,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub belongs_to_default_sg: bool,
    /// Made by Neutron with its group (`description` null).
    #[serde(default)]
    pub automatic: bool,
}

impl Keyed for SecurityGroupRule {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl SecurityGroupRule {
    /// `embedded`: as listed inside its group (with `tags` and
    /// `standard_attr_id`, which the rule API itself does not show).
    pub(crate) fn to_json(&self, embedded: bool) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, false);
        if embedded {
            m.insert("standard_attr_id".into(), json!(self.std.standard_attr_id));
        } else {
            m.remove("tags");
        }
        if self.automatic {
            m.insert("description".into(), Value::Null);
        }
        let s = &self.spec;
        m.insert("security_group_id".into(), json!(self.security_group_id));
        m.insert("direction".into(), json!(s.direction));
        m.insert("ethertype".into(), json!(s.ethertype));
        m.insert("protocol".into(), json!(s.protocol));
        m.insert("port_range_min".into(), json!(s.port_range_min));
        m.insert("port_range_max".into(), json!(s.port_range_max));
        m.insert("remote_ip_prefix".into(), json!(s.remote_ip_prefix));
        m.insert("normalized_cidr".into(), json!(s.remote_ip_prefix));
        m.insert("remote_group_id".into(), json!(s.remote_group_id));
        m.insert("remote_address_group_id".into(), Value::Null);
        m.insert("belongs_to_default_sg".into(), json!(self.belongs_to_default_sg));
        m
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FloatingIp {
    #[serde(flatten)]
    pub std: Standard,
    pub floating_network_id: String,
    pub floating_ip_address: Ipv4Addr,
    /// The port in the external network that holds the address.
    pub floating_port_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<Ipv4Addr>,
    pub router_id: Option<String>,
}

impl Keyed for FloatingIp {
    fn key(&self) -> &str {
        &self.std.id
    }
}

impl FloatingIp {
    pub(crate) fn status(&self) -> &'static str {
        if self.port_id.is_some() { "ACTIVE" } else { "DOWN" }
    }

    /// `port`: the associated port, for `port_details`.
    pub(crate) fn to_json(&self, port: Option<&Port>) -> Map<String, Value> {
        let mut m = Map::new();
        self.std.write(&mut m, false);
        m.insert("floating_network_id".into(), json!(self.floating_network_id));
        m.insert(
            "floating_ip_address".into(),
            json!(self.floating_ip_address.to_string()),
        );
        m.insert("port_id".into(), json!(self.port_id));
        m.insert(
            "fixed_ip_address".into(),
            json!(self.fixed_ip_address.map(|a| a.to_string())),
        );
        m.insert("router_id".into(), json!(self.router_id));
        m.insert("status".into(), json!(self.status()));
        m.insert(
            "port_details".into(),
            port.map(|p| {
                json!({
                    "name": p.std.name, "network_id": p.network_id, "mac_address": p.mac_address,
                    "admin_state_up": p.admin_state_up, "status": p.status(),
                    "device_id": p.device_id, "device_owner": p.device_owner,
                })
            })
            .unwrap_or(Value::Null),
        );
        m
    }
}
