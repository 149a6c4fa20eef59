//! Neutron of the simulated cloud, over raw HTTP.

mod cloud_support;

use cloud_support::{eventually, fast_config, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn neutron_error(body: &Value) -> (&str, &str) {
    (
        body["NeutronError"]["type"].as_str().unwrap_or_default(),
        body["NeutronError"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_fresh_cloud_has_the_public_network() {
    let sim = start(fast_config()).await;
    let body: Value = sim.discover(&sim.url("/networking/")).await;
    assert_eq!(body["versions"][0]["id"], "v2.0");
    let (status, body) = sim.get("/networking/v2.0/networks?router:external=true").await;
    assert_eq!(status, StatusCode::OK);
    let nets = body["networks"].as_array().unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0]["name"], "public");
    assert_eq!(nets[0]["status"], "ACTIVE");
    let (_, body) = sim
        .get(&format!(
            "/networking/v2.0/subnets?network_id={}",
            nets[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(body["subnets"][0]["cidr"], "172.24.4.0/24");
    assert_eq!(body["subnets"][0]["gateway_ip"], "172.24.4.1");
    // A member of the project sees it too (external), but may not make one.
    let demo = sim.login("demo", "vre").await;
    let (_, _, body) = sim
        .call_full(Method::GET, "/networking/v2.0/networks", None, &demo)
        .await;
    assert_eq!(body["networks"].as_array().unwrap().len(), 1);
    assert!(
        body["networks"][0].get("provider:network_type").is_none(),
        "provider attributes are for admins"
    );
    let (status, _, body) = sim
        .call_full(
            Method::POST,
            "/networking/v2.0/networks",
            Some(json!({"network": {"name": "x", "router:external": true}})),
            &demo,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(neutron_error(&body).0, "PolicyNotAuthorized");
}

#[tokio::test]
async fn networks_subnets_and_address_allocation() {
    let sim = start(fast_config()).await;
    let (status, body) = sim
        .post("/networking/v2.0/networks", json!({"network": {"name": "net"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let net = &body["network"];
    assert_eq!(net["mtu"], 1450);
    assert_eq!(net["router:external"], false);
    assert_eq!(net["revision_number"], 1);
    assert_eq!(net["project_id"], sim.project_id.as_str());
    let net = net["id"].as_str().unwrap().to_string();

    let subnet = |cidr: &str| json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}});
    let (status, body) = sim.post("/networking/v2.0/subnets", subnet("10.1.0.0/33")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        neutron_error(&body),
        (
            "InvalidInput",
            "Invalid input for operation: '10.1.0.0/33' is not a valid IP subnet."
        )
    );
    // Host bits are cleared, as Neutron does.
    let (status, body) = sim.post("/networking/v2.0/subnets", subnet("10.1.0.1/24")).await;
    assert_eq!(status, StatusCode::CREATED);
    let sub = &body["subnet"];
    assert_eq!(sub["cidr"], "10.1.0.0/24");
    assert_eq!(sub["gateway_ip"], "10.1.0.1");
    assert_eq!(
        sub["allocation_pools"],
        json!([{"start": "10.1.0.2", "end": "10.1.0.254"}])
    );
    assert_eq!(sub["enable_dhcp"], true);
    let sub = sub["id"].as_str().unwrap().to_string();
    let (status, body) = sim.post("/networking/v2.0/subnets", subnet("10.1.0.128/25")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(neutron_error(&body).1.contains("overlaps with another subnet"));
    let (status, body) = sim
        .post("/networking/v2.0/subnets", json!({"subnet": {"network_id": net, "cidr": "10.2.0.0/24", "ip_version": 4, "gateway_ip": "10.2.0.5", "allocation_pools": [{"start": "10.2.0.2", "end": "10.2.0.9"}]}}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(neutron_error(&body).0, "GatewayConflictWithAllocationPools");

    // Ports take the lowest free address; a taken address is a conflict.
    let (status, body) = sim
        .post(
            "/networking/v2.0/ports",
            json!({"port": {"network_id": net, "name": "a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["port"]["fixed_ips"][0]["ip_address"], "10.1.0.2");
    assert_eq!(body["port"]["status"], "DOWN");
    assert!(body["port"]["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(
        body["port"]["security_groups"].as_array().unwrap().len(),
        1,
        "the default group"
    );
    let (status, body) = sim
        .post(
            "/networking/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.2"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(neutron_error(&body).0, "IpAddressAlreadyAllocated");
    let (status, body) = sim
        .post(
            "/networking/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub, "ip_address": "10.1.0.77"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let port = body["port"]["id"].as_str().unwrap().to_string();
    let (_, body) = sim.get("/networking/v2.0/ports?fixed_ips=ip_address%3D10.1.0.77").await;
    assert_eq!(body["ports"][0]["id"], port.as_str());

    // In use: the subnet and the network stay until their ports go.
    let (status, body) = sim.delete(&format!("/networking/v2.0/subnets/{sub}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(neutron_error(&body).0, "SubnetInUse");
    let (status, body) = sim.delete(&format!("/networking/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, ports) = sim.get(&format!("/networking/v2.0/ports?network_id={net}")).await;
    let mut ids: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        neutron_error(&body),
        (
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {net}. There are one or more ports still in use on the network, id for these ports is: {}.",
                ids.join(",")
            )
            .as_str()
        )
    );
    for p in ports["ports"].as_array().unwrap() {
        let (status, _) = sim
            .delete(&format!("/networking/v2.0/ports/{}", p["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = sim.delete(&format!("/networking/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim.get(&format!("/networking/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        neutron_error(&body),
        ("NetworkNotFound", format!("Network {net} could not be found.").as_str())
    );
    let (status, _) = sim.get(&format!("/networking/v2.0/subnets/{sub}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "subnets go with their network");
}

#[tokio::test]
async fn security_groups_and_rules() {
    let sim = start(fast_config()).await;
    let (_, body) = sim.get("/networking/v2.0/security-groups?name=default").await;
    let default = &body["security_groups"][0];
    assert_eq!(
        default["security_group_rules"].as_array().unwrap().len(),
        4,
        "Neutron's default group"
    );
    let (status, body) = sim
        .post(
            "/networking/v2.0/security-groups",
            json!({"security_group": {"name": "vre-nodes", "description": "d"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let group = &body["security_group"];
    let rules = group["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert!(
        rules
            .iter()
            .all(|r| r["direction"] == "egress" && r["protocol"].is_null())
    );
    let gid = group["id"].as_str().unwrap().to_string();
    let rule = json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}});
    let (status, body) = sim.post("/networking/v2.0/security-group-rules", rule.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let rid = body["security_group_rule"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["security_group_rule"]["ethertype"], "IPv4");
    let (status, body) = sim.post("/networking/v2.0/security-group-rules", rule).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        neutron_error(&body),
        (
            "SecurityGroupRuleExists",
            format!("Security group rule already exists. Rule id is {rid}.").as_str()
        )
    );
    let self_rule =
        json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "remote_group_id": gid}});
    let (status, _) = sim.post("/networking/v2.0/security-group-rules", self_rule).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = sim
        .post("/networking/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(neutron_error(&body).0, "SecurityGroupInvalidPortRange");
    let (_, body) = sim
        .get(&format!(
            "/networking/v2.0/security-group-rules?security_group_id={gid}"
        ))
        .await;
    assert_eq!(body["security_group_rules"].as_array().unwrap().len(), 4);

    // In use by a port: 409 until the port goes.
    let (_, net) = sim
        .post("/networking/v2.0/networks", json!({"network": {"name": "n"}}))
        .await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    sim.post(
        "/networking/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.3.0.0/24", "ip_version": 4}}),
    )
    .await;
    let (_, port) = sim
        .post(
            "/networking/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": [gid]}}),
        )
        .await;
    let port = port["port"]["id"].as_str().unwrap().to_string();
    let (status, body) = sim.delete(&format!("/networking/v2.0/security-groups/{gid}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        neutron_error(&body),
        ("SecurityGroupInUse", format!("Security Group {gid} in use.").as_str())
    );
    sim.delete(&format!("/networking/v2.0/ports/{port}")).await;
    let (status, _) = sim.delete(&format!("/networking/v2.0/security-groups/{gid}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = sim
        .get(&format!(
            "/networking/v2.0/security-group-rules?security_group_id={gid}"
        ))
        .await;
    assert!(
        body["security_group_rules"].as_array().unwrap().is_empty(),
        "rules go with their group"
    );
}

#[tokio::test]
async fn routers_interfaces_and_floating_ips() {
    let sim = start(fast_config()).await;
    let public = sim.public_network().await;
    let (status, body) = sim
        .post("/networking/v2.0/networks", json!({"network": {"name": "private"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let net = body["network"]["id"].as_str().unwrap().to_string();
    let (_, body) = sim
        .post(
            "/networking/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}),
        )
        .await;
    let sub = body["subnet"]["id"].as_str().unwrap().to_string();

    // A server on the network, without a router yet.
    let server = sim.active_server("edge", &net).await;
    let (_, ports) = sim.get(&format!("/networking/v2.0/ports?device_id={server}")).await;
    let port = ports["ports"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ports["ports"][0]["status"], "ACTIVE");

    let (status, body) = sim
        .post(
            "/networking/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": public, "port_id": port}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no router connects the subnet: {body}");
    assert_eq!(neutron_error(&body).0, "ExternalGatewayForFloatingIPNotFound");
    let (status, body) = sim
        .post(
            "/networking/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": net}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        neutron_error(&body).1,
        format!("Bad floatingip request: Network {net} is not a valid external network.")
    );

    let (status, body) = sim
        .post(
            "/networking/v2.0/routers",
            json!({"router": {"name": "r", "external_gateway_info": {"network_id": public}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let gw = &body["router"]["external_gateway_info"];
    assert_eq!(gw["network_id"], public.as_str());
    assert!(
        gw["external_fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("172.24.4.")
    );
    let router = body["router"]["id"].as_str().unwrap().to_string();
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/routers/{router}/add_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subnet_id"], sub.as_str());
    assert_eq!(body["id"], router.as_str());
    let (_, iface) = sim
        .get(&format!("/networking/v2.0/ports/{}", body["port_id"].as_str().unwrap()))
        .await;
    assert_eq!(iface["port"]["device_owner"], "network:router_interface");
    assert_eq!(iface["port"]["fixed_ips"][0]["ip_address"], "10.0.0.1");
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/routers/{router}/add_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        neutron_error(&body).1,
        format!("Bad router request: Router already has a port on subnet {sub}.")
    );

    // Now the floating IP associates; the server shows it; the machine hears.
    let (status, body) = sim
        .post(
            "/networking/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": public}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["floatingip"]["status"], "DOWN");
    let fip = body["floatingip"]["id"].as_str().unwrap().to_string();
    let address = body["floatingip"]["floating_ip_address"].as_str().unwrap().to_string();
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/floatingips/{fip}"),
            json!({"floatingip": {"port_id": port}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["floatingip"]["status"], "ACTIVE");
    assert_eq!(body["floatingip"]["router_id"], router.as_str());
    assert_eq!(body["floatingip"]["port_details"]["device_id"], server.as_str());
    let (_, s) = sim.get(&format!("/compute/v2.1/servers/{server}")).await;
    let addresses = s["server"]["addresses"]["private"].as_array().unwrap();
    assert_eq!(addresses.len(), 2);
    assert_eq!(addresses[1]["OS-EXT-IPS:type"], "floating");
    assert_eq!(addresses[1]["addr"], address.as_str());
    let changed = eventually(|| async {
        let c = sim.events.of("addresses_changed");
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(changed[0].public_ips[0].to_string(), address);
    let (_, body) = sim.get(&format!("/networking/v2.0/floatingips?port_id={port}")).await;
    assert_eq!(body["floatingips"][0]["id"], fip.as_str());

    // The interface is needed by the floating IP, the router by its interface.
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/routers/{router}/remove_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(neutron_error(&body).0, "RouterInterfaceInUseByFloatingIP");
    let (status, body) = sim.delete(&format!("/networking/v2.0/routers/{router}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, iface) = sim
        .get(&format!(
            "/networking/v2.0/ports?device_id={router}&device_owner=network:router_interface"
        ))
        .await;
    let iface = iface["ports"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        neutron_error(&body),
        (
            "RouterInUse",
            format!("Router {router} has ports still attached: {iface}").as_str()
        )
    );

    // Unwind: disassociate, remove the interface, delete everything.
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/floatingips/{fip}"),
            json!({"floatingip": {"port_id": null}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["floatingip"]["port_id"], Value::Null);
    eventually(|| async { (sim.events.of("addresses_changed").len() == 2).then_some(()) }).await;
    assert!(sim.events.of("addresses_changed")[1].public_ips.is_empty());
    let (status, _) = sim
        .put(
            &format!("/networking/v2.0/routers/{router}/remove_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.delete(&format!("/networking/v2.0/floatingips/{fip}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.delete(&format!("/networking/v2.0/routers/{router}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.delete(&format!("/compute/v2.1/servers/{server}")).await.0,
        StatusCode::NO_CONTENT
    );
    eventually(|| async { (sim.handle.project_counts("vre").servers == 0).then_some(()) }).await;
    assert_eq!(
        sim.delete(&format!("/networking/v2.0/networks/{net}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(
        sim.handle.project_counts("vre").is_empty(),
        "{:?}",
        sim.handle.project_counts("vre")
    );
    // Back to the seeded state: only the router gateway port is gone, too.
    let (_, body) = sim.get(&format!("/networking/v2.0/ports?network_id={public}")).await;
    assert!(body["ports"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn tags_filters_fields_and_pages() {
    let sim = start(fast_config()).await;
    let mut ids = Vec::new();
    for (name, tags) in [("a", vec!["vre", "blue"]), ("b", vec!["vre"]), ("c", vec!["red"])] {
        let (_, body) = sim
            .post("/networking/v2.0/networks", json!({"network": {"name": name}}))
            .await;
        let id = body["network"]["id"].as_str().unwrap().to_string();
        for tag in tags {
            let (status, _) = sim
                .call(Method::PUT, &format!("/networking/v2.0/networks/{id}/tags/{tag}"), None)
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        ids.push(id);
    }
    let names = |body: &Value| -> Vec<String> {
        let mut n: Vec<String> = body["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let (_, body) = sim.get("/networking/v2.0/networks?tags=vre").await;
    assert_eq!(names(&body), ["a", "b"]);
    let (_, body) = sim.get("/networking/v2.0/networks?tags=vre,blue").await;
    assert_eq!(names(&body), ["a"]);
    let (_, body) = sim.get("/networking/v2.0/networks?tags-any=blue,red").await;
    assert_eq!(names(&body), ["a", "c"]);
    let (_, body) = sim
        .get("/networking/v2.0/networks?not-tags-any=vre&router:external=false")
        .await;
    assert_eq!(names(&body), ["c"]);
    let (_, body) = sim.get("/networking/v2.0/networks?name=b&name=c").await;
    assert_eq!(names(&body), ["b", "c"]);
    let (_, body) = sim.get(&format!("/networking/v2.0/networks/{}/tags", ids[0])).await;
    assert_eq!(body["tags"], json!(["vre", "blue"]));
    let (status, _) = sim
        .get(&format!("/networking/v2.0/networks/{}/tags/blue", ids[0]))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim
        .put(
            &format!("/networking/v2.0/networks/{}/tags", ids[2]),
            json!({"tags": ["x", "y"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tags"], json!(["x", "y"]));
    let (status, _) = sim
        .delete(&format!("/networking/v2.0/networks/{}/tags/nope", ids[2]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, body) = sim.get("/networking/v2.0/networks?name=a&fields=id&fields=name").await;
    let keys: Vec<&String> = body["networks"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2);
    let (status, body) = sim.get("/networking/v2.0/networks?colour=blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(neutron_error(&body).1, "['colour'] is invalid attribute for filtering");

    let mut seen = Vec::new();
    let mut path = "/networking/v2.0/networks?limit=2".to_string();
    loop {
        let (status, body) = sim.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            body["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string()),
        );
        let next = body["networks_links"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["rel"] == "next"))
            .cloned();
        match next {
            Some(link) => {
                path = link["href"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(&sim.handle.url())
                    .unwrap()
                    .to_string()
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "three networks and public");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages are in id order");
}
