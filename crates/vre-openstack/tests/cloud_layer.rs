//! The cloud layer of a small VRE (1 master, 3 service, 2 storage with
//! volumes, 1 edge with a floating IP) deployed, checked through the
//! OpenStack API, applied again and destroyed, driving the provider the way
//! the engine does.
//!
//! - `against_vre_sim` starts the embedded simulator and always runs.
//! - `against_real_openstack` is `#[ignore]`: it needs `OS_CLOUD` (and
//!   `OS_CLIENT_CONFIG_FILE`, e.g. the clouds.yaml that
//!   `ci/openstack/openstack-services.sh start` writes: cloud `vre`). The image
//!   is `VRE_OS_IMAGE` (default `cirros`), the flavor `VRE_OS_FLAVOR`
//!   (default `m1.tiny`).
//!
//! Both run the same body, [`deploy_check_destroy`]. The `reusing_*` pair
//! runs [`reuse_check_destroy`]: a network and a security group that exist
//! before the cluster, named in `[openstack]`, kept by plans and left in place
//! by destroy.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vre_core::plan::{Action, Plan, public_ip_name, volume_name};
use vre_core::spec::{ClusterSpec, ImageSpec, NodeGroup, PortRange, Role};
use vre_core::{
    CloudProvider, CloudResource, ClusterRef, InstanceBatch, InstanceRequest, NetworkRequest, PreflightRequest,
    ResourceKey, ResourceKind, ResourceStatus, SecurityGroupRequest, StepProgress, VolumeRequest, attr,
};
use vre_openstack::api::{Call, Service};
use vre_openstack::{Credentials, OpenStackProvider, OpenStackSettings, PollPolicy};

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcjCBr2yxgP2oEr4OyKgNfaJ9N7mb8TlcFIbJ0sqrp6 vre-test";

struct Target {
    /// Builds the provider for an `[openstack]` table, as the factory does.
    provider: Box<dyn Fn(OpenStackSettings) -> OpenStackProvider>,
    image: String,
    flavor: String,
}

fn spec(cluster: &str, flavor: &str, image: &str) -> ClusterSpec {
    let mut s = ClusterSpec::new(cluster, "openstack");
    s.image = ImageSpec {
        name: image.into(),
        source: None,
        preinstalled: true,
    };
    s.nodes = vec![
        NodeGroup::new(Role::Master, 1, flavor),
        NodeGroup::new(Role::Service, 3, flavor),
        NodeGroup {
            volume_gb: Some(1),
            ..NodeGroup::new(Role::Storage, 2, flavor)
        },
        NodeGroup::new(Role::Edge, 1, flavor),
    ];
    // the master's public IP is not part of this test's topology
    s.group_mut(Role::Master).public_ip = false;
    s.master_as_edge = false;
    s.network.cidr = "10.42.0.0/24".parse().unwrap();
    s.network.ingress_ports = vec![
        PortRange::single(22),
        PortRange::single(443),
        PortRange { from: 30000, to: 32767 },
    ];
    s
}

fn unique_cluster() -> String {
    format!("it{}", fastrand_suffix())
}

fn fastrand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:x}", std::process::id() % 0xfff, nanos % 0xfffff)
}

/// The engine's order: image, network, security group, key pair, public IPs
/// and volumes, servers per role (one batch each), wait, attach, associate.
async fn apply(p: &OpenStackProvider, c: &ClusterRef, s: &ClusterSpec) -> BTreeMap<ResourceKey, CloudResource> {
    let mut made = BTreeMap::new();
    let network = NetworkRequest {
        cidr: s.network.cidr,
        dns_servers: s.network.dns_servers.clone(),
        master_ip: s.network.master_ip,
    };
    let preflight = PreflightRequest {
        nodes: s.nodes.clone(),
        image: s.image.clone(),
        network: network.clone(),
    };
    let problems = p.preflight(c, &preflight).await.unwrap();
    assert!(problems.is_empty(), "preflight: {problems:?}");
    let image = p.ensure_image(c, &s.image, &StepProgress::none()).await.unwrap();
    let net = p.ensure_network(c, &network).await.unwrap();
    assert_eq!(net.cidr, s.network.cidr);
    let sg = p
        .ensure_security_group(
            c,
            &net,
            &SecurityGroupRequest {
                ingress_ports: s.network.ingress_ports.clone(),
                master_ip: s.network.master_address(&net.cidr),
            },
        )
        .await
        .unwrap();
    let kp = p.ensure_key_pair(c, PUBLIC_KEY).await.unwrap();
    for g in &s.nodes {
        for i in 1..=g.count {
            let node = s.node_name(g.role, i);
            if g.public_ip {
                let key = ResourceKey::public_ip(g.role, i);
                let ip = p.allocate_public_ip(c, &key, &public_ip_name(&node)).await.unwrap();
                made.insert(key, ip);
            }
            if let Some(size) = g.volume_gb {
                let key = ResourceKey::volume(g.role, i);
                let v = p
                    .create_volume(
                        c,
                        &VolumeRequest {
                            key: key.clone(),
                            name: volume_name(&node),
                            size_gb: size,
                        },
                    )
                    .await
                    .unwrap();
                made.insert(key, v);
            }
        }
    }
    let master_ip = s.network.master_address(&net.cidr).unwrap();
    for g in &s.nodes {
        let batch = InstanceBatch {
            role: g.role,
            flavor: g.flavor.clone(),
            root_disk_gb: None,
            image: image.clone(),
            network: net.clone(),
            security_group: sg.clone(),
            key_pair: kp.clone(),
            user_data: format!("#cloud-config\nhostname: {}-{}\n", c.name, g.role),
            instances: (1..=g.count)
                .map(|i| InstanceRequest {
                    key: ResourceKey::server(g.role, i),
                    name: s.node_name(g.role, i),
                    index: i,
                    fixed_ip: (g.role == Role::Master).then_some(master_ip),
                    public_ip: None,
                })
                .collect(),
            ssh_user: s.ssh.user.clone(),
            token: format!("{}-{}-test", c.name, g.role),
            progress: StepProgress::none(),
        };
        let created = p.create_instances(c, &batch).await.unwrap();
        assert_eq!(created.len(), g.count as usize, "{created:?}");
        let ready = p
            .wait_instances(c, &created, Duration::from_secs(600), &StepProgress::none())
            .await
            .unwrap();
        for r in ready {
            assert_eq!(r.status, ResourceStatus::Ready, "{r:?}");
            made.insert(r.key.clone().expect("servers are keyed by name"), r);
        }
    }
    assert_eq!(
        made[&ResourceKey::server(Role::Master, 1)].attr(attr::PRIVATE_IP),
        Some(master_ip.to_string().as_str())
    );
    for g in &s.nodes {
        for i in 1..=g.count {
            let server = made[&ResourceKey::server(g.role, i)].clone();
            if g.volume_gb.is_some() {
                let key = ResourceKey::attachment(g.role, i);
                let vol = made[&ResourceKey::volume(g.role, i)].clone();
                let a = p.attach_volume(c, &key, &vol, &server).await.unwrap();
                assert!(a.attr(attr::DEVICE).is_some_and(|d| d.starts_with("/dev/")), "{a:?}");
                made.insert(key, a);
            }
            if g.public_ip {
                let key = ResourceKey::public_ip(g.role, i);
                let ip = made[&key].clone();
                let bound = p.associate_public_ip(c, &ip, &server).await.unwrap();
                assert_eq!(bound.attr(attr::INSTANCE_ID), Some(server.id.as_str()));
                made.insert(key, bound);
            }
        }
    }
    made.insert(ResourceKey::image(), image);
    made.insert(ResourceKey::network(), net.network);
    made.insert(ResourceKey::security_group(), sg);
    made.insert(ResourceKey::key_pair(), kp);
    made
}

async fn get(p: &OpenStackProvider, service: Service, path: &[&str], query: &[(&'static str, String)]) -> Value {
    let mut call = Call::get(service, path, "test read");
    for (k, v) in query {
        call = call.query(k, v.clone());
    }
    p.api().await.unwrap().json(call).await.unwrap()
}

fn kinds(inv: &[CloudResource]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in inv {
        *m.entry(r.kind.to_string()).or_insert(0) += 1;
    }
    m
}

/// Checks every resource through the OpenStack API itself.
async fn check_cloud(
    p: &OpenStackProvider,
    c: &ClusterRef,
    s: &ClusterSpec,
    made: &BTreeMap<ResourceKey, CloudResource>,
) {
    let tag = format!("vre:cluster={}", c.name);
    // servers: names, metadata, flavor, network, security group, key, one reservation per role
    let servers = get(
        p,
        Service::Nova,
        &["servers", "detail"],
        &[("name", format!("^{}-", c.name))],
    )
    .await;
    let servers = servers["servers"].as_array().unwrap();
    let names: BTreeSet<&str> = servers.iter().map(|x| x["name"].as_str().unwrap()).collect();
    let expected: BTreeSet<String> = s
        .nodes
        .iter()
        .flat_map(|g| (1..=g.count).map(move |i| s.node_name(g.role, i)))
        .collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect());
    let mut reservations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for x in servers {
        assert_eq!(x["status"], "ACTIVE", "{x}");
        assert_eq!(x["metadata"]["vre:cluster"], c.name.as_str());
        assert_eq!(x["key_name"], format!("{}-key", c.name).as_str());
        assert_eq!(x["flavor"]["original_name"], s.nodes[0].flavor.as_str());
        assert!(x["addresses"].get(format!("{}-net", c.name)).is_some(), "{x}");
        let sgs: Vec<&str> = x["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(sgs.contains(&format!("{}-sg", c.name).as_str()), "{sgs:?}");
        let role = x["metadata"]["vre:role"].as_str().unwrap().to_string();
        let r = x["OS-EXT-SRV-ATTR:reservation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        reservations.entry(role).or_default().insert(r);
    }
    for g in &s.nodes {
        let r = &reservations[g.role.as_str()];
        assert_eq!(
            r.len(),
            1,
            "{} servers of {} come from one create request: {r:?}",
            g.count,
            g.role
        );
    }
    let all: BTreeSet<&String> = reservations.values().flatten().collect();
    assert_eq!(
        all.len(),
        s.nodes.len(),
        "one create request per role group: {reservations:?}"
    );

    // network, subnet (CIDR, DNS, pools without the master's address), router with gateway and interface
    let nets = get(p, Service::Neutron, &["networks"], &[("tags", tag.clone())]).await;
    let nets = nets["networks"].as_array().unwrap();
    assert_eq!(nets.len(), 1);
    let net_id = nets[0]["id"].as_str().unwrap().to_string();
    let subnets = get(p, Service::Neutron, &["subnets"], &[("network_id", net_id.clone())]).await;
    let subnet = &subnets["subnets"][0];
    assert_eq!(subnet["cidr"], s.network.cidr.to_string().as_str());
    assert_eq!(subnet["dns_nameservers"].as_array().unwrap().len(), 2);
    let master = s.network.master_address(&s.network.cidr).unwrap();
    for pool in subnet["allocation_pools"].as_array().unwrap() {
        let a: Ipv4Addr = pool["start"].as_str().unwrap().parse().unwrap();
        let b: Ipv4Addr = pool["end"].as_str().unwrap().parse().unwrap();
        assert!(!(a..=b).contains(&master), "{pool}");
    }
    let routers = get(p, Service::Neutron, &["routers"], &[("tags", tag.clone())]).await;
    let router = &routers["routers"][0];
    assert!(router["external_gateway_info"]["network_id"].is_string(), "{router}");
    let rports = get(
        p,
        Service::Neutron,
        &["ports"],
        &[
            ("device_id", router["id"].as_str().unwrap().to_string()),
            ("network_id", net_id.clone()),
        ],
    )
    .await;
    assert_eq!(rports["ports"].as_array().unwrap().len(), 1);

    // security group: all traffic from the group, the ingress ports from anywhere
    let sg_id = made[&ResourceKey::security_group()].id.clone();
    let rules = get(
        p,
        Service::Neutron,
        &["security-group-rules"],
        &[("security_group_id", sg_id.clone())],
    )
    .await;
    let rules = rules["security_group_rules"].as_array().unwrap();
    let ingress: Vec<&Value> = rules.iter().filter(|r| r["direction"] == "ingress").collect();
    assert!(
        ingress
            .iter()
            .any(|r| r["remote_group_id"] == sg_id.as_str() && r["protocol"].is_null())
    );
    for port in &s.network.ingress_ports {
        assert!(
            ingress.iter().any(|r| r["protocol"] == "tcp"
                && r["port_range_min"] == port.from
                && r["port_range_max"] == port.to
                && r["remote_ip_prefix"] == "0.0.0.0/0"),
            "no rule for {port}: {ingress:?}"
        );
    }
    assert_eq!(
        ingress.len(),
        1 + s.network.ingress_ports.len(),
        "no duplicate rules: {ingress:?}"
    );

    // floating IP: tagged, bound to the edge's port
    let fips = get(p, Service::Neutron, &["floatingips"], &[("tags", tag.clone())]).await;
    let fips = fips["floatingips"].as_array().unwrap();
    assert_eq!(fips.len(), 1);
    let edge = &made[&ResourceKey::server(Role::Edge, 1)];
    assert_eq!(fips[0]["fixed_ip_address"], edge.attr(attr::PRIVATE_IP).unwrap());
    assert_eq!(fips[0]["description"], public_ip_name(&edge.name).as_str());

    // volumes: in use by their storage node
    for i in 1..=2 {
        let v = &made[&ResourceKey::volume(Role::Storage, i)];
        let vol = get(p, Service::Cinder, &["volumes", &v.id], &[]).await;
        assert_eq!(vol["volume"]["status"], "in-use");
        assert_eq!(
            vol["volume"]["metadata"]["vre:key"],
            format!("volume/storage-{i}").as_str()
        );
        let server = &made[&ResourceKey::server(Role::Storage, i)];
        assert_eq!(vol["volume"]["attachments"][0]["server_id"], server.id.as_str());
    }

    // key pair
    let kp = get(p, Service::Nova, &["os-keypairs", &format!("{}-key", c.name)], &[]).await;
    assert_eq!(
        kp["keypair"]["public_key"].as_str().unwrap().split_whitespace().nth(1),
        PUBLIC_KEY.split_whitespace().nth(1)
    );
}

/// What the engine's destroy deletes: not images, not what the provider reuses.
fn owned(r: &CloudResource) -> bool {
    r.kind != ResourceKind::Image && r.attr(attr::REUSED) != Some("true")
}

async fn destroy(p: &OpenStackProvider, c: &ClusterRef) -> usize {
    let inv = p.inventory(c).await.unwrap();
    let mut waves: BTreeMap<u32, Vec<CloudResource>> = BTreeMap::new();
    for r in inv.into_iter().filter(owned) {
        waves.entry(p.destroy_rank(&r.kind)).or_default().push(r);
    }
    let mut n = 0;
    for (_, wave) in waves {
        let results = futures::future::join_all(wave.iter().map(|r| p.delete(c, r))).await;
        for (r, res) in wave.iter().zip(results) {
            res.unwrap_or_else(|e| panic!("deleting {} {}: {e}", r.kind, r.name));
            n += 1;
        }
    }
    n
}

async fn deploy_check_destroy(t: Target) {
    let cluster = unique_cluster();
    let c = ClusterRef::new(&cluster);
    let s = spec(&cluster, &t.flavor, &t.image);
    let p = (t.provider)(OpenStackSettings::default());
    assert!(p.inventory(&c).await.unwrap().is_empty());

    let made = apply(&p, &c, &s).await;
    check_cloud(&p, &c, &s, &made).await;
    let inv = p.inventory(&c).await.unwrap();
    let plan = Plan::compute(&s, None, &inv);
    assert!(!plan.has_changes(), "a plan right after apply changes nothing:\n{plan}");
    assert!(
        inv.iter().all(|r| r.attr(attr::REUSED).is_none()),
        "nothing is reused: {inv:#?}"
    );
    let before = kinds(&inv);
    let expected: BTreeMap<String, usize> = [
        ("instance", 7),
        ("public-ip", 1),
        ("volume", 2),
        ("volume-attachment", 2),
        ("network", 1),
        ("subnet", 1),
        ("router", 1),
        ("router-interface", 1),
        ("security-group", 1),
        ("key-pair", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // ports: one per server on the cluster network (no key, destroyed with the servers)
    let mut without_ports = before.clone();
    let ports = without_ports.remove("port").unwrap_or(0);
    assert_eq!(without_ports, expected, "{inv:#?}");
    assert_eq!(ports, 7);
    for r in inv.iter().filter(|r| r.kind == ResourceKind::Instance) {
        assert!(r.key.is_some(), "{r:?}");
    }

    // applying again makes nothing new: same ids, same inventory
    let again = apply(&p, &c, &s).await;
    for (k, r) in &made {
        assert_eq!(again[k].id, r.id, "{k} was made again");
    }
    assert_eq!(kinds(&p.inventory(&c).await.unwrap()), before);

    let deleted = destroy(&p, &c).await;
    assert_eq!(deleted, inv.len());
    assert!(p.inventory(&c).await.unwrap().is_empty());
    // nothing left, asked of the API itself
    let servers = get(
        &p,
        Service::Nova,
        &["servers", "detail"],
        &[("name", format!("^{}-", c.name))],
    )
    .await;
    assert!(
        servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| !x["name"].as_str().unwrap().starts_with(&format!("{}-", c.name)))
    );
    let net = get(
        &p,
        Service::Neutron,
        &["networks"],
        &[("name", format!("{}-net", c.name))],
    )
    .await;
    assert!(net["networks"].as_array().unwrap().is_empty());
    for i in 1..=2 {
        let id = &made[&ResourceKey::volume(Role::Storage, i)].id;
        let e = p
            .api()
            .await
            .unwrap()
            .send(Call::get(Service::Cinder, &["volumes", id], "show deleted volume"))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }
}

async fn post(p: &OpenStackProvider, path: &[&str], body: Value, singular: &str) -> Value {
    let v: Value = p
        .api()
        .await
        .unwrap()
        .json(Call::post(Service::Neutron, path, body, "test setup"))
        .await
        .unwrap();
    v[singular].clone()
}

async fn exists(p: &OpenStackProvider, resource: &str, id: &str) -> bool {
    match p
        .api()
        .await
        .unwrap()
        .send(Call::get(Service::Neutron, &[resource, id], "test read"))
        .await
    {
        Ok(()) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("reading {resource} {id}: {e}"),
    }
}

/// A network (with an IPv4 subnet) and a security group made outside vre,
/// named in `[openstack]`: the cluster's servers go on them, the inventory
/// reports them under their logical keys marked reused, a plan right after
/// apply changes nothing, and destroy (even a direct delete of them) leaves
/// them in place.
async fn reuse_check_destroy(t: Target) {
    let cluster = unique_cluster();
    let c = ClusterRef::new(&cluster);
    let mut s = spec(&cluster, &t.flavor, &t.image);
    s.nodes = vec![
        NodeGroup::new(Role::Master, 1, &t.flavor),
        NodeGroup::new(Role::Service, 2, &t.flavor),
    ];
    s.group_mut(Role::Master).public_ip = false;
    s.network.cidr = "10.43.0.0/24".parse().unwrap();

    // someone else's network and group: no vre tags
    let setup = (t.provider)(OpenStackSettings::default());
    let net_name = format!("{cluster}-shared-net");
    let sg_name = format!("{cluster}-shared-sg");
    let net = post(
        &setup,
        &["networks"],
        serde_json::json!({ "network": { "name": net_name, "admin_state_up": true } }),
        "network",
    )
    .await;
    let net_id = net["id"].as_str().unwrap().to_string();
    let subnet = post(
        &setup,
        &["subnets"],
        serde_json::json!({ "subnet": { "name": format!("{net_name}-v4"), "network_id": net_id, "ip_version": 4,
                                        "cidr": s.network.cidr.to_string(), "enable_dhcp": true } }),
        "subnet",
    )
    .await;
    let subnet_id = subnet["id"].as_str().unwrap().to_string();
    let sg = post(
        &setup,
        &["security-groups"],
        serde_json::json!({ "security_group": { "name": sg_name, "description": "made outside vre" } }),
        "security_group",
    )
    .await;
    let sg_id = sg["id"].as_str().unwrap().to_string();

    let settings = OpenStackSettings {
        network: Some(net_name.clone()),
        security_group: Some(sg_name.clone()),
        ..OpenStackSettings::default()
    };
    let p = (t.provider)(settings);
    // before apply the reused pair is all there is, and the plan keeps it
    let inv = p.inventory(&c).await.unwrap();
    assert_eq!(inv.len(), 2, "{inv:#?}");
    let plan = Plan::compute(&s, None, &inv);
    for key in [ResourceKey::network(), ResourceKey::security_group()] {
        assert_eq!(plan.item(&key).unwrap().action, Action::Keep, "{plan}");
    }
    assert_eq!(plan.item(&ResourceKey::key_pair()).unwrap().action, Action::Create);

    let made = apply(&p, &c, &s).await;
    assert_eq!(made[&ResourceKey::network()].id, net_id);
    assert_eq!(made[&ResourceKey::security_group()].id, sg_id);
    for g in &s.nodes {
        for i in 1..=g.count {
            let server = &made[&ResourceKey::server(g.role, i)];
            let ip: Ipv4Addr = server.attr(attr::PRIVATE_IP).unwrap().parse().unwrap();
            assert!(s.network.cidr.contains(ip), "{server:?} is on the reused subnet");
        }
    }

    let inv = p.inventory(&c).await.unwrap();
    let network = inv
        .iter()
        .find(|r| r.key == Some(ResourceKey::network()))
        .unwrap_or_else(|| panic!("the reused network is in the inventory: {inv:#?}"));
    assert_eq!(
        (network.kind.clone(), network.id.as_str(), network.name.as_str()),
        (ResourceKind::Network, net_id.as_str(), net_name.as_str())
    );
    assert_eq!(network.attr(attr::REUSED), Some("true"));
    assert_eq!(network.attr(attr::SUBNET_ID), Some(subnet_id.as_str()));
    assert_eq!(network.attr(attr::CIDR), Some(s.network.cidr.to_string().as_str()));
    let group = inv
        .iter()
        .find(|r| r.key == Some(ResourceKey::security_group()))
        .unwrap_or_else(|| panic!("the reused group is in the inventory: {inv:#?}"));
    assert_eq!(
        (group.kind.clone(), group.id.as_str(), group.attr(attr::REUSED)),
        (ResourceKind::SecurityGroup, sg_id.as_str(), Some("true"))
    );
    // nothing else of the reused network is listed: no subnet, router or DHCP port
    let mut k = kinds(&inv);
    assert_eq!(k.remove("port"), Some(3), "one port per server: {inv:#?}");
    let expected: BTreeMap<String, usize> = [("instance", 3), ("network", 1), ("security-group", 1), ("key-pair", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(k, expected, "{inv:#?}");

    let plan = Plan::compute(&s, None, &inv);
    assert!(!plan.has_changes(), "a plan right after apply changes nothing:\n{plan}");
    // applying again reuses the same pair
    let again = apply(&p, &c, &s).await;
    for (k, r) in &made {
        assert_eq!(again[k].id, r.id, "{k} was made again");
    }

    let deleted = destroy(&p, &c).await;
    assert_eq!(deleted, inv.len() - 2);
    // a caller that ignores the mark (or a state file written before it) cannot delete them either
    let unmarked = |r: &CloudResource| {
        let mut r = r.clone();
        r.attrs.remove(attr::REUSED);
        r
    };
    let reused_subnet = CloudResource::new(ResourceKind::Subnet, &subnet_id, format!("{net_name}-v4"));
    for r in [
        network.clone(),
        group.clone(),
        unmarked(network),
        unmarked(group),
        reused_subnet,
    ] {
        p.delete(&c, &r).await.unwrap();
    }
    assert!(
        exists(&p, "networks", &net_id).await,
        "the reused network is still there"
    );
    assert!(exists(&p, "subnets", &subnet_id).await, "its subnet is still there");
    assert!(
        exists(&p, "security-groups", &sg_id).await,
        "the reused group is still there"
    );
    let left = p.inventory(&c).await.unwrap();
    assert!(left.iter().all(|r| r.attr(attr::REUSED) == Some("true")), "{left:#?}");
    assert_eq!(left.len(), 2, "{left:#?}");

    // the test's own clean-up of what it made
    let api = setup.api().await.unwrap();
    for (resource, id) in [
        ("security-groups", &sg_id),
        ("subnets", &subnet_id),
        ("networks", &net_id),
    ] {
        api.send(Call::delete(Service::Neutron, &[resource, id], "test clean-up"))
            .await
            .unwrap();
    }
}

/// A started simulator and the provider builder pointing at it.
async fn start_sim() -> (vre_sim::cloud::CloudHandle, Target) {
    use vre_sim::cloud::{CloudOptions, CloudServer};
    struct Nobody;
    impl vre_sim::MachineEvents for Nobody {
        fn booted(&self, _: &vre_sim::Machine) {}
        fn addresses_changed(&self, _: &vre_sim::Machine) {}
        fn deleted(&self, _: &vre_sim::Machine) {}
    }
    let config = vre_sim::SimConfig {
        boot_jitter: Duration::from_secs(5),
        time_scale: 0.01,
        ..vre_sim::SimConfig::default()
    };
    let stats = Arc::new(vre_sim::SimStats::default());
    let opts = CloudOptions::default();
    let password = opts.password.clone();
    let cloud = CloudServer::start(opts, Arc::new(config), stats, Arc::new(Nobody))
        .await
        .unwrap();
    let auth_url = cloud.auth_url();
    let provider = move |settings| {
        OpenStackProvider::with_password(&auth_url, "admin", &password, "vre", "Default", settings).with_poll(
            PollPolicy {
                first: Duration::from_millis(100),
                max: Duration::from_millis(500),
            },
        )
    };
    let target = Target {
        provider: Box::new(provider),
        image: "ubuntu-24.04".into(),
        flavor: "m1.tiny".into(),
    };
    (cloud, target)
}

/// The provider builder for the cloud `OS_CLOUD` names.
fn real_openstack() -> Target {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    assert!(
        env.contains_key("OS_CLOUD"),
        "set OS_CLOUD (and OS_CLIENT_CONFIG_FILE) to a cloud in clouds.yaml; ci/openstack/openstack-services.sh start writes one (cloud \"vre\")"
    );
    let credentials = Credentials::resolve(&env, &std::env::current_dir().unwrap()).unwrap();
    let provider = move |settings| OpenStackProvider::new(credentials.clone(), settings);
    Target {
        provider: Box::new(provider),
        image: env.get("VRE_OS_IMAGE").cloned().unwrap_or_else(|| "cirros".into()),
        flavor: env.get("VRE_OS_FLAVOR").cloned().unwrap_or_else(|| "m1.tiny".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_vre_sim() {
    let (cloud, target) = start_sim().await;
    deploy_check_destroy(target).await;
    assert!(cloud.project_counts("vre").servers == 0 && cloud.project_counts("vre").volumes == 0);
    cloud.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real OpenStack: OS_CLOUD and OS_CLIENT_CONFIG_FILE (ci/openstack/openstack-services.sh start)"]
async fn against_real_openstack() {
    deploy_check_destroy(real_openstack()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_network_and_group_against_vre_sim() {
    let (cloud, target) = start_sim().await;
    reuse_check_destroy(target).await;
    assert_eq!(cloud.project_counts("vre").servers, 0);
    cloud.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real OpenStack: OS_CLOUD and OS_CLIENT_CONFIG_FILE (ci/openstack/openstack-services.sh start)"]
async fn reusing_a_network_and_group_against_real_openstack() {
    reuse_check_destroy(real_openstack()).await;
}
