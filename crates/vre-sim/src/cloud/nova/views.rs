//! The server representation, field by field as Nova's view builder writes
//! it for each microversion.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha224};

use super::model::{Server, VmState};
use super::{Microversion, links};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::state::CloudState;

/// Which optional parts of the server view a call shows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShowOptions {
    /// Everything `GET /servers/{id}` shows (false: the pre-2.75 `PUT` view).
    pub all_attributes: bool,
    pub server_groups: bool,
    pub user_data: bool,
}

impl ShowOptions {
    pub(crate) fn show(v: Microversion) -> ShowOptions {
        ShowOptions {
            all_attributes: true,
            server_groups: v.at_least(71),
            user_data: true,
        }
    }

    pub(crate) fn detail() -> ShowOptions {
        ShowOptions {
            all_attributes: true,
            server_groups: false,
            user_data: true,
        }
    }

    pub(crate) fn update(v: Microversion) -> ShowOptions {
        ShowOptions {
            all_attributes: v.at_least(75),
            server_groups: v.at_least(71),
            user_data: true,
        }
    }
}

/// `utils.generate_hostid`: sha224 of project id and host.
fn host_id(project_id: &str, host: Option<&str>) -> String {
    match host {
        Some(h) => hex::encode(Sha224::digest(format!("{project_id}{h}").as_bytes())),
        None => String::new(),
    }
}

/// `{"id", "name", "links"}` (the `GET /servers` view).
pub(crate) fn basic(cloud: &Cloud, server: &Server) -> Value {
    json!({"id": server.id, "name": server.name, "links": links(cloud, "servers", &server.id)})
}

/// The `addresses` of a server: fixed then floating addresses by network
/// name, hidden while it builds.
pub(crate) fn addresses(s: &CloudState, server: &Server, extend: bool) -> Value {
    let mut out = Map::new();
    if server.vm_state == VmState::Building {
        return Value::Object(out);
    }
    for port_id in &server.port_ids {
        let Some(port) = s.ports.get(port_id) else { continue };
        let label = s
            .networks
            .get(&port.network_id)
            .map(|n| n.std.name.clone())
            .unwrap_or_default();
        let entry = |addr: String, kind: &str| {
            let mut a = json!({"version": 4, "addr": addr});
            if extend {
                a["OS-EXT-IPS:type"] = json!(kind);
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(port.mac_address);
            }
            a
        };
        let list = out.entry(label).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            for f in &port.fixed_ips {
                items.push(entry(f.ip_address.to_string(), "fixed"));
            }
            for fip in s.fips_of_port(port_id) {
                if let Some(fip) = s.floating_ips.get(fip) {
                    items.push(entry(fip.floating_ip_address.to_string(), "floating"));
                }
            }
        }
    }
    Value::Object(out)
}

/// The names of the security groups on the server's ports.
fn security_groups(s: &CloudState, server: &Server) -> Vec<Value> {
    let mut names: Vec<String> = Vec::new();
    for port in server.port_ids.iter().filter_map(|p| s.ports.get(p)) {
        for g in port.security_groups.iter().filter_map(|g| s.security_groups.get(g)) {
            if !names.contains(&g.std.name) {
                names.push(g.std.name.clone());
            }
        }
    }
    names.into_iter().map(|n| json!({ "name": n })).collect()
}

/// The detailed view of a server.
pub(crate) fn show(
    cloud: &Cloud,
    s: &CloudState,
    server: &Server,
    v: Microversion,
    admin: bool,
    opts: ShowOptions,
    now: Micros,
) -> Value {
    let host = server.host(now);
    let status = server.status();
    let flavor = &server.flavor;
    let flavor_json = if v.at_least(47) {
        let mut f = json!({
            "vcpus": flavor.vcpus, "ram": flavor.ram_mb, "disk": flavor.disk_gb,
            "ephemeral": flavor.ephemeral_gb, "swap": flavor.swap_mb, "original_name": flavor.name,
        });
        if admin {
            f["extra_specs"] = json!(flavor.extra_specs);
        }
        f
    } else {
        json!({"id": flavor.id, "links": [{"href": format!("{}/compute/flavors/{}", cloud.base_url, flavor.id), "rel": "bookmark"}]})
    };
    let image = match &server.image_id {
        Some(id) => {
            let mut i = json!({"id": id, "links": [{"href": format!("{}/compute/images/{id}", cloud.base_url), "rel": "bookmark"}]});
            if v.at_least(98) {
                i["properties"] = json!({});
            }
            i
        }
        None => json!(""),
    };
    let mut m = Map::new();
    m.insert("accessIPv4".into(), json!(server.access_ipv4));
    m.insert("accessIPv6".into(), json!(server.access_ipv6));
    m.insert("addresses".into(), addresses(s, server, opts.all_attributes));
    m.insert("created".into(), json!(server.created.iso_seconds()));
    m.insert("flavor".into(), flavor_json);
    m.insert("hostId".into(), json!(host_id(&server.project_id, host)));
    m.insert("id".into(), json!(server.id));
    m.insert("image".into(), image);
    m.insert("links".into(), links(cloud, "servers", &server.id));
    m.insert("metadata".into(), json!(server.metadata));
    m.insert("name".into(), json!(server.name));
    m.insert("status".into(), json!(status));
    m.insert("tenant_id".into(), json!(server.project_id));
    m.insert("user_id".into(), json!(server.user_id));
    m.insert("updated".into(), json!(server.updated.iso_seconds()));
    m.insert(
        "OS-DCF:diskConfig".into(),
        json!(if server.auto_disk_config { "AUTO" } else { "MANUAL" }),
    );
    if status == "ERROR"
        && let Some(f) = &server.fault
    {
        let mut fault = json!({"code": f.code, "created": f.created.iso_seconds(), "message": f.message});
        if !f.details.is_empty() && (admin || f.code != 500) {
            fault["details"] = json!(f.details);
        }
        m.insert("fault".into(), fault);
    }
    if matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    ) {
        m.insert("progress".into(), json!(0));
    }
    if opts.all_attributes {
        let az = if host.is_some() {
            "nova".to_string()
        } else {
            server.availability_zone.clone().unwrap_or_default()
        };
        m.insert("OS-EXT-AZ:availability_zone".into(), json!(az));
        m.insert(
            "config_drive".into(),
            json!(if server.config_drive { "True" } else { "" }),
        );
        m.insert("key_name".into(), json!(server.key_name));
        m.insert(
            "OS-SRV-USG:launched_at".into(),
            json!(server.launched_at.map(Micros::iso_db)),
        );
        m.insert("OS-SRV-USG:terminated_at".into(), Value::Null);
        // Nova asks Neutron for the groups of the server's ports, which a
        // building server does not have yet.
        let groups = if server.vm_state == VmState::Building {
            Vec::new()
        } else {
            security_groups(s, server)
        };
        if !groups.is_empty() {
            m.insert("security_groups".into(), json!(groups));
        }
    }
    if admin && opts.all_attributes {
        m.insert("OS-EXT-SRV-ATTR:host".into(), json!(host));
        m.insert("OS-EXT-SRV-ATTR:instance_name".into(), json!(server.instance_name()));
        m.insert("OS-EXT-SRV-ATTR:hypervisor_hostname".into(), json!(host));
        if v.at_least(3) {
            m.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(server.hostname));
            m.insert("OS-EXT-SRV-ATTR:kernel_id".into(), json!(""));
            m.insert("OS-EXT-SRV-ATTR:launch_index".into(), json!(server.launch_index));
            m.insert("OS-EXT-SRV-ATTR:ramdisk_id".into(), json!(""));
            m.insert("OS-EXT-SRV-ATTR:reservation_id".into(), json!(server.reservation_id));
            m.insert(
                "OS-EXT-SRV-ATTR:root_device_name".into(),
                json!(host.map(|_| "/dev/vda")),
            );
            if opts.user_data {
                m.insert("OS-EXT-SRV-ATTR:user_data".into(), json!(server.user_data));
            }
        }
    }
    if opts.all_attributes {
        let task = match server.vm_state {
            VmState::Building if server.task_state.is_none() => server.build_task(now).map(str::to_string),
            _ => server.task_state.clone(),
        };
        m.insert("OS-EXT-STS:task_state".into(), json!(task));
        m.insert("OS-EXT-STS:vm_state".into(), json!(server.vm_state.as_str()));
        m.insert("OS-EXT-STS:power_state".into(), json!(server.power_state));
        let volumes: Vec<Value> = server
            .attachments
            .iter()
            .map(|a| {
                let mut vol = json!({ "id": a.volume_id });
                if v.at_least(3) {
                    vol["delete_on_termination"] = json!(a.delete_on_termination);
                }
                vol
            })
            .collect();
        m.insert("os-extended-volumes:volumes_attached".into(), json!(volumes));
    }
    if v.at_least(9) {
        m.insert("locked".into(), json!(server.locked));
    }
    if v.at_least(16) && admin && opts.all_attributes {
        m.insert("host_status".into(), json!(if host.is_some() { "UP" } else { "" }));
    }
    if v.at_least(19) {
        m.insert("description".into(), json!(server.description));
    }
    if v.at_least(26) {
        m.insert("tags".into(), json!(server.tags));
    }
    if v.at_least(63) {
        m.insert("trusted_image_certificates".into(), Value::Null);
    }
    if opts.server_groups {
        m.insert("server_groups".into(), json!([]));
    }
    if v.at_least(73) {
        m.insert("locked_reason".into(), Value::Null);
    }
    if v.at_least(90) && !admin {
        m.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(server.hostname));
    }
    if v.at_least(96) && opts.all_attributes {
        m.insert("pinned_availability_zone".into(), json!(server.availability_zone));
    }
    if v.at_least(100) {
        m.insert("scheduler_hints".into(), json!({}));
    }
    Value::Object(m)
}
