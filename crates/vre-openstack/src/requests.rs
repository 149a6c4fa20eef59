//! Every OpenStack request vre sends, built by pure functions (no I/O): the
//! service, method, path, query and body of each call, so a unit test can
//! check each one against the API reference. The resource files send them
//! through [`crate::api::Api`] and read the answers with [`crate::wire`].

use std::net::Ipv4Addr;

use base64::Engine as _;
use serde_json::{Value, json};
use vre_core::{CLUSTER_TAG, KEY_TAG, ROLE_TAG, VolumeRequest};

use crate::api::{Call, Service};
use crate::wire::{NOVA_MICROVERSION, NOVA_MICROVERSION_VOLUME_TYPE, SecurityGroupRule, cluster_tag};

/// Nova and Cinder listings ask for this many items per page.
const PAGE_LIMIT: &str = "1000";

/// Adds `marker` to a paged listing when there is one.
fn after(call: Call<'static>, marker: Option<&str>) -> Call<'static> {
    match marker {
        Some(m) => call.query("marker", m),
        None => call,
    }
}

// ---------------------------------------------------------------- Nova

/// What a `POST /servers` carries.
#[derive(Clone, Debug)]
pub struct ServerCreate<'a> {
    pub name: &'a str,
    pub flavor_id: &'a str,
    pub image_id: &'a str,
    pub network_id: &'a str,
    pub fixed_ip: Option<Ipv4Addr>,
    pub security_group: &'a str,
    pub key_name: &'a str,
    pub user_data: &'a str,
    pub cluster: &'a str,
    pub role: &'a str,
    pub count: u32,
    pub availability_zone: Option<&'a str>,
    /// Boot from a new volume of this size made from the image.
    pub boot_volume_gb: Option<u32>,
    pub volume_type: Option<&'a str>,
}

impl ServerCreate<'_> {
    /// The request body of Nova's create server (multiple create when `count > 1`).
    pub fn body(&self) -> Value {
        let mut network = json!({ "uuid": self.network_id });
        if let Some(ip) = self.fixed_ip {
            network["fixed_ip"] = json!(ip.to_string());
        }
        let mut server = json!({
            "name": self.name,
            "flavorRef": self.flavor_id,
            "networks": [network],
            "security_groups": [{ "name": self.security_group }],
            "key_name": self.key_name,
            "user_data": base64::engine::general_purpose::STANDARD.encode(self.user_data.as_bytes()),
            "metadata": { CLUSTER_TAG: self.cluster, ROLE_TAG: self.role },
        });
        match self.boot_volume_gb {
            Some(size) => {
                let mut bdm = json!({
                    "boot_index": 0,
                    "uuid": self.image_id,
                    "source_type": "image",
                    "destination_type": "volume",
                    "volume_size": size,
                    "delete_on_termination": true,
                });
                if let Some(t) = self.volume_type {
                    bdm["volume_type"] = json!(t);
                }
                server["block_device_mapping_v2"] = json!([bdm]);
            }
            None => server["imageRef"] = json!(self.image_id),
        }
        if let Some(az) = self.availability_zone {
            server["availability_zone"] = json!(az);
        }
        if self.count > 1 {
            server["min_count"] = json!(self.count);
            server["max_count"] = json!(self.count);
            server["return_reservation_id"] = json!(true);
        }
        json!({ "server": server })
    }

    pub fn microversion(&self) -> &'static str {
        if self.boot_volume_gb.is_some() && self.volume_type.is_some() {
            NOVA_MICROVERSION_VOLUME_TYPE
        } else {
            NOVA_MICROVERSION
        }
    }
}

/// The body of `POST /os-keypairs` importing `public_key` (type `ssh`, 2.2+).
pub fn key_pair_import(name: &str, public_key: &str) -> Value {
    json!({ "keypair": { "name": name, "public_key": public_key.trim(), "type": "ssh" } })
}

/// `GET /flavors/detail` (one page, from `marker`).
pub fn list_flavors(marker: Option<&str>) -> Call<'static> {
    after(Call::get(Service::Nova, &["flavors", "detail"], "list flavors"), marker)
}

/// `GET /os-keypairs/{name}`.
pub fn show_key_pair(name: &str) -> Call<'static> {
    Call::get(Service::Nova, &["os-keypairs", name], "show key pair")
}

/// `DELETE /os-keypairs/{name}`.
pub fn delete_key_pair(name: &str) -> Call<'static> {
    Call::delete(Service::Nova, &["os-keypairs", name], "delete key pair")
}

/// `POST /os-keypairs` importing `public_key` under `name`.
pub fn import_key_pair(name: &str, public_key: &str) -> Call<'static> {
    Call::post(
        Service::Nova,
        &["os-keypairs"],
        key_pair_import(name, public_key),
        "import key pair",
    )
}

/// `GET /servers/detail?name=^<cluster>-` (one page, from `marker`), only the
/// servers of multiple create `reservation` when given.
pub fn list_servers(cluster: &str, reservation: Option<&str>, marker: Option<&str>) -> Call<'static> {
    let mut call = Call::get(Service::Nova, &["servers", "detail"], "list servers")
        .query("name", format!("^{cluster}-"))
        .query("limit", PAGE_LIMIT);
    if let Some(r) = reservation {
        call = call.query("reservation_id", r);
    }
    after(call, marker)
}

/// `POST /servers`: one server, or a multiple create when `create.count > 1`.
pub fn create_servers(create: &ServerCreate<'_>) -> Call<'static> {
    let op = if create.count > 1 {
        "create servers (multiple create)"
    } else {
        "create server"
    };
    Call::post(Service::Nova, &["servers"], create.body(), op).microversion(create.microversion())
}

/// `PUT /servers/{id}` giving the server `name`.
pub fn rename_server(id: &str, name: &str) -> Call<'static> {
    Call::put(
        Service::Nova,
        &["servers", id],
        json!({ "server": { "name": name } }),
        "rename server",
    )
}

/// `DELETE /servers/{id}`.
pub fn delete_server(id: &str) -> Call<'static> {
    Call::delete(Service::Nova, &["servers", id], "delete server")
}

/// `POST /servers/{server}/os-volume_attachments`.
pub fn attach_volume(server_id: &str, volume_id: &str) -> Call<'static> {
    Call::post(
        Service::Nova,
        &["servers", server_id, "os-volume_attachments"],
        json!({ "volumeAttachment": { "volumeId": volume_id } }),
        "attach volume",
    )
}

/// `DELETE /servers/{server}/os-volume_attachments/{volume}`.
pub fn detach_volume(server_id: &str, volume_id: &str) -> Call<'static> {
    Call::delete(
        Service::Nova,
        &["servers", server_id, "os-volume_attachments", volume_id],
        "detach volume",
    )
}

/// `GET /limits` of Nova.
pub fn compute_limits() -> Call<'static> {
    Call::get(Service::Nova, &["limits"], "read compute limits")
}

// ---------------------------------------------------------------- Neutron

/// A rule vre wants in its security group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRule {
    pub protocol: Option<&'static str>,
    pub ports: Option<(u16, u16)>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

impl WantedRule {
    /// Is `have` this rule (IPv4 ingress)?
    pub fn matches(&self, have: &SecurityGroupRule) -> bool {
        let prefix = |p: &Option<String>| p.as_deref().filter(|p| *p != "0.0.0.0/0").map(str::to_string);
        have.direction == "ingress"
            && have.ethertype == "IPv4"
            && have.protocol.as_deref().filter(|p| *p != "any") == self.protocol
            && (have.port_range_min.zip(have.port_range_max)) == self.ports
            && prefix(&have.remote_ip_prefix) == prefix(&self.remote_ip_prefix)
            && have.remote_group_id == self.remote_group_id
    }

    /// `POST /v2.0/security-group-rules` body.
    pub fn body(&self, group_id: &str) -> Value {
        let mut r = json!({
            "security_group_id": group_id,
            "direction": "ingress",
            "ethertype": "IPv4",
        });
        if let Some(p) = self.protocol {
            r["protocol"] = json!(p);
        }
        if let Some((a, b)) = self.ports {
            r["port_range_min"] = json!(a);
            r["port_range_max"] = json!(b);
        }
        if let Some(p) = &self.remote_ip_prefix {
            r["remote_ip_prefix"] = json!(p);
        }
        if let Some(g) = &self.remote_group_id {
            r["remote_group_id"] = json!(g);
        }
        json!({ "security_group_rule": r })
    }
}

/// `allocation_pools` of a subnet that leave out `reserved` (the master's
/// fixed address), so no other port is given it first.
pub fn allocation_pools(cidr: &vre_core::spec::Ipv4Cidr, reserved: Option<Ipv4Addr>) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let hosts = cidr.host_count();
    if hosts < 3 {
        return Vec::new();
    }
    // host 1 is the gateway
    let first = u32::from(cidr.network()) + 2;
    let last = u32::from(cidr.network()) + hosts as u32;
    let Some(r) = reserved.map(u32::from).filter(|r| (first..=last).contains(r)) else {
        return vec![(Ipv4Addr::from(first), Ipv4Addr::from(last))];
    };
    let mut pools = Vec::new();
    if r > first {
        pools.push((Ipv4Addr::from(first), Ipv4Addr::from(r - 1)));
    }
    if r < last {
        pools.push((Ipv4Addr::from(r + 1), Ipv4Addr::from(last)));
    }
    pools
}

/// `GET /v2.0/networks?name=` (external ones only when `external`).
pub fn find_networks(name: &str, external: bool) -> Call<'static> {
    let call = Call::get(Service::Neutron, &["networks"], "find network").query("name", name);
    if external {
        call.query("router:external", "true")
    } else {
        call
    }
}

/// `GET /v2.0/networks?router:external=true`.
pub fn list_external_networks() -> Call<'static> {
    Call::get(Service::Neutron, &["networks"], "list external networks").query("router:external", "true")
}

/// `GET /v2.0/{resource}?tags=vre:cluster=<cluster>`.
pub fn list_tagged<'a>(resource: &str, cluster: &str, operation: &'a str) -> Call<'a> {
    Call::get(Service::Neutron, &[resource], operation).query("tags", cluster_tag(cluster))
}

/// `PUT /v2.0/{resource}/{id}/tags`, replacing every tag.
pub fn set_tags(resource: &str, id: &str, tags: &[String]) -> Call<'static> {
    Call::put(
        Service::Neutron,
        &[resource, id, "tags"],
        json!({ "tags": tags }),
        "set tags",
    )
}

/// `GET /v2.0/{resource}?name=<name>&<extra>`.
pub fn find_named<'a>(resource: &str, name: &str, extra: &[(&'a str, String)], operation: &'a str) -> Call<'a> {
    extra.iter().fold(
        Call::get(Service::Neutron, &[resource], operation).query("name", name),
        |call, (k, v)| call.query(k, v.clone()),
    )
}

/// `POST /v2.0/{resource}` with `body`.
pub fn create<'a>(resource: &str, body: Value, operation: &'a str) -> Call<'a> {
    Call::post(Service::Neutron, &[resource], body, operation)
}

/// `GET /v2.0/{resource}/{id}`.
pub fn show<'a>(resource: &str, id: &str, operation: &'a str) -> Call<'a> {
    Call::get(Service::Neutron, &[resource, id], operation)
}

/// `DELETE /v2.0/{resource}/{id}`.
pub fn delete<'a>(resource: &str, id: &str, operation: &'a str) -> Call<'a> {
    Call::delete(Service::Neutron, &[resource, id], operation)
}

/// `GET /v2.0/ports` filtered by `filters` (`device_id`, `network_id`).
pub fn list_ports<'a>(filters: &[(&'a str, String)]) -> Call<'a> {
    filters
        .iter()
        .fold(Call::get(Service::Neutron, &["ports"], "list ports"), |call, (k, v)| {
            call.query(k, v.clone())
        })
}

/// `GET /v2.0/subnets?network_id=&ip_version=4`.
pub fn ipv4_subnets(network_id: &str) -> Call<'static> {
    Call::get(Service::Neutron, &["subnets"], "list subnets")
        .query("network_id", network_id)
        .query("ip_version", "4")
}

/// The body creating the cluster's network.
pub fn network_body(name: &str, cluster: &str) -> Value {
    json!({ "network": { "name": name, "admin_state_up": true, "description": format!("vre cluster {cluster}") } })
}

/// The body creating the cluster's subnet: DHCP on, the given name servers and
/// allocation pools (`(start, end)` pairs).
pub fn subnet_body(name: &str, network_id: &str, cidr: &str, dns: &[String], pools: &[(Ipv4Addr, Ipv4Addr)]) -> Value {
    let pools: Vec<Value> = pools
        .iter()
        .map(|(a, b)| json!({ "start": a.to_string(), "end": b.to_string() }))
        .collect();
    json!({ "subnet": {
        "name": name, "network_id": network_id, "ip_version": 4, "cidr": cidr,
        "dns_nameservers": dns, "allocation_pools": pools, "enable_dhcp": true,
    } })
}

/// The body creating the cluster's router, its gateway on `external_network_id`.
pub fn router_body(name: &str, external_network_id: &str) -> Value {
    json!({ "router": { "name": name, "admin_state_up": true, "external_gateway_info": { "network_id": external_network_id } } })
}

/// `PUT /v2.0/routers/{router}/add_router_interface`.
pub fn add_router_interface(router_id: &str, subnet_id: &str) -> Call<'static> {
    Call::put(
        Service::Neutron,
        &["routers", router_id, "add_router_interface"],
        json!({ "subnet_id": subnet_id }),
        "add router interface",
    )
}

/// `PUT /v2.0/routers/{router}/remove_router_interface`.
pub fn remove_router_interface(router_id: &str, subnet_id: &str) -> Call<'static> {
    Call::put(
        Service::Neutron,
        &["routers", router_id, "remove_router_interface"],
        json!({ "subnet_id": subnet_id }),
        "remove router interface",
    )
}

/// `GET /v2.0/security-groups?name=`.
pub fn find_security_groups(name: &str) -> Call<'static> {
    Call::get(Service::Neutron, &["security-groups"], "find security group").query("name", name)
}

/// The body creating the cluster's security group.
pub fn security_group_body(name: &str, cluster: &str) -> Value {
    json!({ "security_group": { "name": name, "description": format!("vre cluster {cluster}: all traffic between nodes, ingress ports from anywhere") } })
}

/// `GET /v2.0/security-group-rules?security_group_id=`.
pub fn list_rules(group_id: &str) -> Call<'static> {
    Call::get(Service::Neutron, &["security-group-rules"], "list rules").query("security_group_id", group_id)
}

/// `POST /v2.0/security-group-rules` adding `rule` to group `group_id`.
pub fn add_rule(rule: &WantedRule, group_id: &str) -> Call<'static> {
    Call::post(
        Service::Neutron,
        &["security-group-rules"],
        rule.body(group_id),
        "add rule",
    )
}

/// `GET /v2.0/floatingips?tags=<all of tags>`.
pub fn find_floating_ips_tagged(tags: &[String]) -> Call<'static> {
    Call::get(Service::Neutron, &["floatingips"], "find floating IP").query("tags", tags.join(","))
}

/// `GET /v2.0/floatingips?description=`.
pub fn find_floating_ips_described(description: &str) -> Call<'static> {
    Call::get(Service::Neutron, &["floatingips"], "find floating IP").query("description", description)
}

/// `POST /v2.0/floatingips` from pool network `pool_id`.
pub fn allocate_floating_ip(pool_id: &str, description: &str) -> Call<'static> {
    Call::post(
        Service::Neutron,
        &["floatingips"],
        json!({ "floatingip": { "floating_network_id": pool_id, "description": description } }),
        "allocate floating IP",
    )
}

/// `GET /v2.0/floatingips/{id}`.
pub fn show_floating_ip(id: &str) -> Call<'static> {
    Call::get(Service::Neutron, &["floatingips", id], "show floating IP")
}

/// `PUT /v2.0/floatingips/{id}` binding it to `port_id`.
pub fn associate_floating_ip(id: &str, port_id: &str) -> Call<'static> {
    Call::put(
        Service::Neutron,
        &["floatingips", id],
        json!({ "floatingip": { "port_id": port_id } }),
        "associate floating IP",
    )
}

/// `GET /v2.0/quotas/{project}/details`.
pub fn network_quotas(project_id: &str) -> Call<'static> {
    Call::get(
        Service::Neutron,
        &["quotas", project_id, "details"],
        "read network quotas",
    )
}

// ---------------------------------------------------------------- Cinder

/// `GET /volumes/detail?metadata={"vre:cluster": <cluster>}` (one page, from `marker`).
pub fn list_volumes(cluster: &str, marker: Option<&str>) -> Call<'static> {
    let filter = json!({ CLUSTER_TAG: cluster }).to_string();
    after(
        Call::get(Service::Cinder, &["volumes", "detail"], "list volumes")
            .query("metadata", filter)
            .query("limit", PAGE_LIMIT),
        marker,
    )
}

/// `GET /volumes/{id}`.
pub fn show_volume(id: &str) -> Call<'static> {
    Call::get(Service::Cinder, &["volumes", id], "show volume")
}

/// `POST /volumes`: the data volume `request` asks for, its key and cluster in
/// its metadata.
pub fn create_volume(
    cluster: &str,
    request: &VolumeRequest,
    volume_type: Option<&str>,
    availability_zone: Option<&str>,
) -> Call<'static> {
    let mut vol = json!({
        "size": request.size_gb,
        "name": request.name,
        "description": format!("vre cluster {cluster}"),
        "metadata": { CLUSTER_TAG: cluster, KEY_TAG: request.key.as_str() },
    });
    if let Some(t) = volume_type {
        vol["volume_type"] = json!(t);
    }
    if let Some(az) = availability_zone {
        vol["availability_zone"] = json!(az);
    }
    Call::post(Service::Cinder, &["volumes"], json!({ "volume": vol }), "create volume")
}

/// `DELETE /volumes/{id}`.
pub fn delete_volume(id: &str) -> Call<'static> {
    Call::delete(Service::Cinder, &["volumes", id], "delete volume")
}

/// `GET /limits` of Cinder.
pub fn volume_limits() -> Call<'static> {
    Call::get(Service::Cinder, &["limits"], "read volume limits")
}

// ---------------------------------------------------------------- Glance

/// `GET /v2/images?name=`.
pub fn find_images(name: &str) -> Call<'static> {
    Call::get(Service::Glance, &["images"], "find image").query("name", name)
}

/// `GET /v2/info/import`: the import methods this Glance offers.
pub fn import_info() -> Call<'static> {
    Call::get(Service::Glance, &["info", "import"], "discover import methods")
}

/// `GET /v2/images/{id}`.
pub fn show_image(id: &str) -> Call<'static> {
    Call::get(Service::Glance, &["images", id], "show image")
}

/// `POST /v2/images`: a private, bare image record to import into.
pub fn create_image(name: &str, disk_format: &str) -> Call<'static> {
    Call::post(
        Service::Glance,
        &["images"],
        json!({ "name": name, "disk_format": disk_format, "container_format": "bare", "visibility": "private" }),
        "create image",
    )
}

/// `POST /v2/images/{id}/import` with the `web-download` method.
pub fn import_image(id: &str, uri: &str) -> Call<'static> {
    Call::post(
        Service::Glance,
        &["images", id, "import"],
        json!({ "method": { "name": "web-download", "uri": uri } }),
        "import image (web-download)",
    )
}

/// `DELETE /v2/images/{id}`.
pub fn delete_image(id: &str) -> Call<'static> {
    Call::delete(Service::Glance, &["images", id], "delete image")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;
    use vre_core::ResourceKey;
    use vre_core::spec::Role;

    fn query(c: &Call<'_>) -> Vec<(String, String)> {
        c.query.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn server_listing_is_paged_and_filtered_by_name() {
        let c = list_servers("lab", Some("r-1"), Some("abc"));
        assert_eq!((c.service, c.method.clone()), (Service::Nova, Method::GET));
        assert_eq!(c.path, ["servers", "detail"]);
        assert_eq!(
            query(&c),
            pairs(&[
                ("name", "^lab-"),
                ("limit", "1000"),
                ("reservation_id", "r-1"),
                ("marker", "abc")
            ])
        );
        assert_eq!(
            query(&list_servers("lab", None, None)),
            pairs(&[("name", "^lab-"), ("limit", "1000")])
        );
    }

    #[test]
    fn volume_create_carries_key_and_cluster() {
        let request = VolumeRequest {
            key: ResourceKey::volume(Role::Storage, 1),
            name: "lab-storage-1-data".into(),
            size_gb: 50,
        };
        let c = create_volume("lab", &request, Some("ssd"), None);
        assert_eq!((c.service, c.method.clone()), (Service::Cinder, Method::POST));
        assert_eq!(
            c.body,
            Some(json!({ "volume": {
                "size": 50, "name": "lab-storage-1-data", "description": "vre cluster lab",
                "metadata": { CLUSTER_TAG: "lab", KEY_TAG: request.key.as_str() }, "volume_type": "ssd",
            } }))
        );
        let filter = query(&list_volumes("lab", None));
        assert_eq!(
            filter[0],
            ("metadata".to_string(), r#"{"vre:cluster":"lab"}"#.to_string())
        );
    }

    #[test]
    fn neutron_paths_and_bodies() {
        let c = find_named("subnets", "lab-subnet", &[("network_id", "n1".into())], "find subnet");
        assert_eq!(c.path, ["subnets"]);
        assert_eq!(query(&c), pairs(&[("name", "lab-subnet"), ("network_id", "n1")]));
        assert_eq!(
            query(&find_networks("public", true)),
            pairs(&[("name", "public"), ("router:external", "true")])
        );
        assert_eq!(
            query(&list_tagged("routers", "lab", "list routers")),
            pairs(&[("tags", "vre:cluster=lab")])
        );
        let r = remove_router_interface("r1", "s1");
        assert_eq!(
            (r.method.clone(), r.path.clone()),
            (
                Method::PUT,
                vec!["routers".to_string(), "r1".into(), "remove_router_interface".into()]
            )
        );
        assert_eq!(r.body, Some(json!({ "subnet_id": "s1" })));
        let pools = [("10.0.0.2".parse().unwrap(), "10.0.0.9".parse().unwrap())];
        assert_eq!(
            subnet_body("lab-subnet", "n1", "10.0.0.0/24", &["8.8.8.8".into()], &pools)["subnet"]["allocation_pools"],
            json!([{ "start": "10.0.0.2", "end": "10.0.0.9" }])
        );
        assert_eq!(
            query(&find_floating_ips_tagged(&["a".into(), "b".into()])),
            pairs(&[("tags", "a,b")])
        );
    }

    #[test]
    fn glance_import_is_web_download() {
        let c = import_image("i1", "https://example.org/x.img");
        assert_eq!(c.path, ["images", "i1", "import"]);
        assert_eq!(
            c.body,
            Some(json!({ "method": { "name": "web-download", "uri": "https://example.org/x.img" } }))
        );
        assert_eq!(create_image("x", "qcow2").body.unwrap()["visibility"], "private");
    }

    #[test]
    fn multiple_create_body() {
        let c = ServerCreate {
            name: "lab-service",
            flavor_id: "3",
            image_id: "70a599e0-31e7-49b7-b260-868f441e862b",
            network_id: "net-1",
            fixed_ip: None,
            security_group: "sg-1",
            key_name: "lab-key",
            user_data: "#cloud-config\n",
            cluster: "lab",
            role: "service",
            count: 3,
            availability_zone: Some("nova"),
            boot_volume_gb: None,
            volume_type: None,
        };
        assert_eq!(
            c.body(),
            json!({"server": {
                "name": "lab-service", "flavorRef": "3", "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b",
                "networks": [{"uuid": "net-1"}], "security_groups": [{"name": "sg-1"}], "key_name": "lab-key",
                "user_data": "I2Nsb3VkLWNvbmZpZwo=", "metadata": {"vre:cluster": "lab", "vre:role": "service"},
                "availability_zone": "nova", "min_count": 3, "max_count": 3, "return_reservation_id": true
            }})
        );
        assert_eq!(c.microversion(), NOVA_MICROVERSION);
    }

    #[test]
    fn single_create_with_fixed_ip_and_boot_volume() {
        let c = ServerCreate {
            name: "lab-master-1",
            flavor_id: "3",
            image_id: "img",
            network_id: "net-1",
            fixed_ip: Some(Ipv4Addr::new(10, 0, 0, 10)),
            security_group: "sg-1",
            key_name: "lab-key",
            user_data: "x",
            cluster: "lab",
            role: "master",
            count: 1,
            availability_zone: None,
            boot_volume_gb: Some(40),
            volume_type: Some("ssd"),
        };
        let b = c.body();
        assert_eq!(
            b["server"]["networks"],
            json!([{"uuid": "net-1", "fixed_ip": "10.0.0.10"}])
        );
        assert!(b["server"].get("imageRef").is_none());
        assert!(b["server"].get("min_count").is_none());
        assert_eq!(
            b["server"]["block_device_mapping_v2"],
            json!([{"boot_index": 0, "uuid": "img", "source_type": "image", "destination_type": "volume",
                    "volume_size": 40, "delete_on_termination": true, "volume_type": "ssd"}])
        );
        assert_eq!(c.microversion(), "2.67");
    }

    #[test]
    fn security_group_rules_match_what_neutron_returns() {
        let all_from_group = WantedRule {
            protocol: None,
            ports: None,
            remote_ip_prefix: None,
            remote_group_id: Some("sg-1".into()),
        };
        let have: SecurityGroupRule = serde_json::from_value(json!({
            "id": "r1", "direction": "ingress", "ethertype": "IPv4", "protocol": null,
            "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null, "remote_group_id": "sg-1"
        }))
        .unwrap();
        assert!(all_from_group.matches(&have));
        let ssh = WantedRule {
            protocol: Some("tcp"),
            ports: Some((22, 22)),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            remote_group_id: None,
        };
        assert!(!ssh.matches(&have));
        let have_ssh: SecurityGroupRule = serde_json::from_value(json!({
            "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"
        }))
        .unwrap();
        assert!(ssh.matches(&have_ssh));
        assert_eq!(
            ssh.body("sg-1"),
            json!({"security_group_rule": {"security_group_id": "sg-1", "direction": "ingress", "ethertype": "IPv4",
                   "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}})
        );
    }

    #[test]
    fn pools_leave_out_the_master_address() {
        let cidr: vre_core::spec::Ipv4Cidr = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            allocation_pools(&cidr, Some(Ipv4Addr::new(10, 0, 0, 10))),
            vec![
                (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 9)),
                (Ipv4Addr::new(10, 0, 0, 11), Ipv4Addr::new(10, 0, 0, 254))
            ]
        );
        assert_eq!(
            allocation_pools(&cidr, None),
            vec![(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 254))]
        );
    }
}
