//! Nova of the simulated cloud, over raw HTTP.

mod cloud_support;

use std::time::Duration;

use base64::Engine;
use cloud_support::{eventually, fast_config, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vre_sim::{Quotas, SimConfig};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl vre@test";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn versions_and_microversion_negotiation() {
    let sim = start(fast_config()).await;
    let body: Value = sim.discover(&sim.url("/compute/")).await;
    let current = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["status"] == "CURRENT")
        .unwrap();
    assert_eq!(current["id"], "v2.1");
    assert_eq!(current["min_version"], "2.1");
    assert_eq!(current["version"], "2.104");
    let body: Value = sim.discover(&sim.url("/compute/v2.1")).await;
    assert_eq!(body["version"]["version"], "2.104");

    let ask = |header: &'static str, value: &'static str| {
        sim.http
            .get(sim.url("/compute/v2.1/flavors"))
            .header("X-Auth-Token", &sim.token)
            .header(header, value)
            .send()
    };
    let response = ask("OpenStack-API-Version", "compute 2.60").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["openstack-api-version"], "compute 2.60");
    assert_eq!(response.headers()["x-openstack-nova-api-version"], "2.60");
    let response = ask("X-OpenStack-Nova-API-Version", "2.12").await.unwrap();
    assert_eq!(response.headers()["openstack-api-version"], "compute 2.12");
    let response = ask("OpenStack-API-Version", "compute latest").await.unwrap();
    assert_eq!(response.headers()["openstack-api-version"], "compute 2.104");
    let response = ask("OpenStack-API-Version", "compute 2.500").await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["computeFault"]["message"],
        "Version 2.500 is not supported by the API. Minimum is 2.1 and maximum is 2.104."
    );
    let response = ask("OpenStack-API-Version", "compute 2.x").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("is of invalid format")
    );
}

#[tokio::test]
async fn flavors_follow_the_microversion() {
    let mut sim = start(fast_config()).await;
    let (status, body) = sim.get("/compute/v2.1/flavors").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]);
    let (_, body) = sim.get("/compute/v2.1/flavors/3").await;
    assert_eq!(body["flavor"]["vcpus"], 2);
    assert_eq!(body["flavor"]["ram"], 4096);
    assert_eq!(body["flavor"]["disk"], 40);
    assert_eq!(body["flavor"]["swap"], "", "before 2.75 no swap is an empty string");
    assert_eq!(body["flavor"]["OS-FLV-DISABLED:disabled"], false);
    sim.compute_version = Some("2.102".into());
    let (_, body) = sim.get("/compute/v2.1/flavors/3").await;
    assert_eq!(body["flavor"]["swap"], 0);
    assert!(body["flavor"].get("OS-FLV-DISABLED:disabled").is_none());
    assert_eq!(body["flavor"]["extra_specs"], json!({}));
    let (status, body) = sim.get("/compute/v2.1/flavors/42").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"itemNotFound": {"code": 404, "message": "Flavor 42 could not be found."}})
    );
    let (_, body) = sim.get("/compute/v2.1/flavors/detail?minRam=8192").await;
    assert_eq!(body["flavors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn key_pairs_import_list_show_delete() {
    let mut sim = start(fast_config()).await;
    sim.compute_version = Some("2.92".into());
    let (status, body) = sim
        .post(
            "/compute/v2.1/os-keypairs",
            json!({"keypair": {"name": "vre", "public_key": KEY}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["keypair"]["name"], "vre");
    assert_eq!(body["keypair"]["type"], "ssh");
    assert_eq!(body["keypair"]["fingerprint"].as_str().unwrap().split(':').count(), 16);
    assert!(body["keypair"].get("private_key").is_none());
    let (status, body) = sim
        .post(
            "/compute/v2.1/os-keypairs",
            json!({"keypair": {"name": "vre", "public_key": KEY}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["conflictingRequest"]["message"], "Key pair 'vre' already exists.");
    let (status, body) = sim
        .post("/compute/v2.1/os-keypairs", json!({"keypair": {"name": "gen"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "2.92 requires public_key: {body}");
    let (status, body) = sim
        .post(
            "/compute/v2.1/os-keypairs",
            json!({"keypair": {"name": "bad", "public_key": "ssh-rsa nope"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["badRequest"]["message"],
        "Keypair data is invalid: failed to generate fingerprint"
    );
    let (_, body) = sim.get("/compute/v2.1/os-keypairs").await;
    assert_eq!(body["keypairs"][0]["keypair"]["name"], "vre");
    let (status, body) = sim.get("/compute/v2.1/os-keypairs/vre").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keypair"]["public_key"], KEY);
    assert_eq!(body["keypair"]["deleted"], false);
    let (status, _) = sim.delete("/compute/v2.1/os-keypairs/vre").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim.get("/compute/v2.1/os-keypairs/vre").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["itemNotFound"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Keypair vre not found for user ")
    );
    // Before 2.92 Nova generates the key and returns its private half once.
    sim.compute_version = Some("2.10".into());
    let (status, body) = sim
        .post("/compute/v2.1/os-keypairs", json!({"keypair": {"name": "gen"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["keypair"]["private_key"].as_str().unwrap().contains("PRIVATE KEY"));
    sim.compute_version = None;
    let (status, _) = sim.delete("/compute/v2.1/os-keypairs/gen").await;
    assert_eq!(status, StatusCode::ACCEPTED, "2.1 answers 202");
}

#[tokio::test]
async fn multiple_create_builds_named_servers_that_boot() {
    let mut sim = start(fast_config()).await;
    sim.compute_version = Some("2.90".into());
    let (net, _, _) = sim.private_network("private", "10.0.0.0/24").await;
    sim.post(
        "/compute/v2.1/os-keypairs",
        json!({"keypair": {"name": "vre", "public_key": KEY}}),
    )
    .await;
    let image = sim.image_id("kubenow-ubuntu-24.04").await;
    let user_data = "#cloud-config\nruncmd: [kubeadm join]\n";
    let (status, body) = sim
        .post(
            "/compute/v2.1/servers",
            json!({"server": {
                "name": "node", "flavorRef": "2", "imageRef": image, "key_name": "vre",
                "networks": [{"uuid": net}], "user_data": b64(user_data),
                "metadata": {"vre-role": "service"}, "min_count": 3, "max_count": 3,
                "return_reservation_id": true,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let reservation = body["reservation_id"].as_str().unwrap().to_string();
    assert!(reservation.starts_with("r-"), "{reservation}");
    let (_, body) = sim
        .get(&format!("/compute/v2.1/servers?reservation_id={reservation}"))
        .await;
    let mut names: Vec<&str> = body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["node-1", "node-2", "node-3"]);
    let (_, detail) = sim
        .get(&format!("/compute/v2.1/servers/detail?reservation_id={reservation}"))
        .await;
    for server in detail["servers"].as_array().unwrap() {
        assert_eq!(server["status"], "BUILD");
        assert_eq!(server["OS-EXT-STS:vm_state"], "building");
        assert_eq!(server["addresses"], json!({}), "hidden while building");
    }
    let ids: Vec<String> = detail["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let body = sim.wait_server_status(id, "ACTIVE").await;
        let s = &body["server"];
        assert_eq!(s["OS-EXT-STS:power_state"], 1);
        assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
        assert_eq!(s["OS-EXT-SRV-ATTR:reservation_id"], reservation.as_str());
        assert_eq!(s["OS-EXT-SRV-ATTR:hostname"], s["name"]);
        assert_eq!(s["key_name"], "vre");
        assert_eq!(s["metadata"]["vre-role"], "service");
        assert_eq!(s["security_groups"], json!([{"name": "default"}]));
        let addr = &s["addresses"]["private"][0];
        assert_eq!(addr["OS-EXT-IPS:type"], "fixed");
        assert_eq!(addr["version"], 4);
        assert!(addr["addr"].as_str().unwrap().starts_with("10.0.0."));
        assert!(s["OS-SRV-USG:launched_at"].is_string());
        assert!(!s["hostId"].as_str().unwrap().is_empty());
    }
    // Every machine booted with its decoded user data and address.
    let booted = eventually(|| async {
        let b = sim.events.of("booted");
        (b.len() == 3).then_some(b)
    })
    .await;
    for m in &booted {
        assert_eq!(m.user_data.as_deref(), Some(user_data));
        assert!(m.private_ip.is_some());
        assert!(m.public_ips.is_empty());
        assert_eq!(m.metadata.get("vre-role").map(String::as_str), Some("service"));
        assert_eq!(m.project_id, sim.project_id);
    }
    // Nova made a port per server.
    let (_, ports) = sim.get(&format!("/networking/v2.0/ports?device_id={}", ids[0])).await;
    assert_eq!(ports["ports"][0]["device_owner"], "compute:nova");
    assert_eq!(sim.handle.project_counts("vre").servers, 3);
}

#[tokio::test]
async fn create_answers_with_the_documented_body() {
    let sim = start(fast_config()).await;
    let (net, _, _) = sim.private_network("private", "10.0.0.0/24").await;
    let image = sim.image_id("ubuntu-24.04").await;
    let (status, headers, body) = sim
        .call_full(
            Method::POST,
            "/compute/v2.1/servers",
            Some(json!({"server": {"name": "one", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": net}]}})),
            &sim.token,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let server = &body["server"];
    let id = server["id"].as_str().unwrap();
    assert_eq!(server["adminPass"].as_str().unwrap().len(), 12);
    assert_eq!(server["OS-DCF:diskConfig"], "MANUAL");
    assert_eq!(server["security_groups"], json!([{"name": "default"}]));
    assert_eq!(server["links"][0]["rel"], "self");
    assert_eq!(
        server["links"][0]["href"],
        format!("{}/compute/v2.1/servers/{id}", sim.handle.url())
    );
    assert_eq!(server["links"][1]["rel"], "bookmark");
    assert_eq!(
        headers["location"],
        format!("{}/compute/v2.1/servers/{id}", sim.handle.url()).as_str()
    );
    // Without min/max the name is kept as is.
    let (_, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(body["server"]["name"], "one");
}

#[tokio::test]
async fn bad_requests_are_refused_with_novas_words() {
    let mut sim = start(fast_config()).await;
    let image = sim.image_id("ubuntu-24.04").await;
    let create = |server: Value| json!({ "server": server });
    let cases = [
        (
            json!({"name": "x", "flavorRef": "99", "imageRef": image, "networks": "none"}),
            StatusCode::BAD_REQUEST,
            "Flavor 99 could not be found.",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": "nope", "networks": "none"}),
            StatusCode::BAD_REQUEST,
            "Can not find requested image",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "key_name": "missing"}),
            StatusCode::BAD_REQUEST,
            "Invalid key_name provided.",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": "11111111-2222-4333-8444-555555555555"}]}),
            StatusCode::BAD_REQUEST,
            "Network 11111111-2222-4333-8444-555555555555 could not be found.",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "security_groups": [{"name": "ghost"}]}),
            StatusCode::BAD_REQUEST,
            "Unable to find security_group with name or id 'ghost'",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "user_data": "not base64!"}),
            StatusCode::BAD_REQUEST,
            "is not a 'base64'",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "user_data": b64(&"x".repeat(50_000))}),
            StatusCode::BAD_REQUEST,
            "is too long",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "bogus": 1}),
            StatusCode::BAD_REQUEST,
            "'bogus' was unexpected",
        ),
        (
            json!({"name": "x", "flavorRef": "1", "imageRef": image}),
            StatusCode::BAD_REQUEST,
            "'networks' is a required property",
        ),
    ];
    sim.compute_version = Some("2.60".into());
    for (server, status, message) in cases {
        let (got, body) = sim.post("/compute/v2.1/servers", create(server.clone())).await;
        assert_eq!(got, status, "{server}: {body}");
        let text = body["badRequest"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{server}: {text}");
    }
    let public = sim.public_network().await;
    let (status, body) = sim
        .post(
            "/compute/v2.1/servers",
            create(json!({"name": "x", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": public}]})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "admins may attach to external networks: {body}"
    );
    let (status, body) = sim
        .get("/compute/v2.1/servers/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["itemNotFound"]["message"],
        "Instance 00000000-0000-4000-8000-000000000000 could not be found."
    );
}

#[tokio::test]
async fn quota_refuses_with_novas_message() {
    let config = SimConfig {
        quotas: Quotas {
            instances: 4,
            ..Quotas::default()
        },
        ..fast_config()
    };
    let sim = start(config).await;
    let image = sim.image_id("ubuntu-24.04").await;
    let make = |min: u32, max: u32| json!({"server": {"name": "q", "flavorRef": "1", "imageRef": image, "min_count": min, "max_count": max}});
    let (status, _) = sim.post("/compute/v2.1/servers", make(3, 3)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = sim.post("/compute/v2.1/servers", make(2, 2)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 2, but already used 3 of 4 instances"}})
    );
    // min_count..max_count: Nova builds as many as fit.
    let (status, body) = sim.post("/compute/v2.1/servers", json!({"server": {"name": "r", "flavorRef": "1", "imageRef": image, "min_count": 1, "max_count": 5, "return_reservation_id": "True"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, list) = sim
        .get(&format!(
            "/compute/v2.1/servers?reservation_id={}",
            body["reservation_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);
    let (_, limits) = sim.get("/compute/v2.1/limits").await;
    assert_eq!(limits["limits"]["absolute"]["totalInstancesUsed"], 4);
}

#[tokio::test]
async fn servers_land_in_error_with_a_fault() {
    let config = SimConfig {
        server_error_rate: 1.0,
        ..fast_config()
    };
    let sim = start(config).await;
    let image = sim.image_id("ubuntu-24.04").await;
    let (status, body) = sim
        .post(
            "/compute/v2.1/servers",
            json!({"server": {"name": "doomed", "flavorRef": "1", "imageRef": image}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["server"]["id"].as_str().unwrap().to_string();
    let body = sim.wait_server_status(&id, "ERROR").await;
    let s = &body["server"];
    assert_eq!(s["OS-EXT-STS:vm_state"], "error");
    assert_eq!(s["fault"]["code"], 500);
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host was found.")
    );
    assert!(
        s["fault"]["details"].as_str().unwrap().contains("NoValidHost"),
        "admins see the details"
    );
    assert_eq!(s["hostId"], "");
    assert!(sim.events.of("booted").is_empty());
    let (_, list) = sim.get("/compute/v2.1/servers?status=ERROR").await;
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);
    let (status, _) = sim.delete(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn list_filters_and_pagination() {
    let mut sim = start(fast_config()).await;
    sim.compute_version = Some("2.26".into());
    let image = sim.image_id("ubuntu-24.04").await;
    for name in ["web-1", "web-2", "db-1", "db-2", "cache"] {
        let (status, body) = sim
            .post(
                "/compute/v2.1/servers",
                json!({"server": {"name": name, "flavorRef": "1", "imageRef": image}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["server"]["id"].as_str().unwrap().to_string();
        sim.wait_server_status(&id, "ACTIVE").await;
        let tag = if name.starts_with("db") { "db" } else { "front" };
        let (status, _) = sim
            .put(
                &format!("/compute/v2.1/servers/{id}/tags"),
                json!({"tags": [tag, "vre"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let names = |body: &Value| -> Vec<String> {
        let mut n: Vec<String> = body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let (_, body) = sim.get("/compute/v2.1/servers?name=^web").await;
    assert_eq!(names(&body), ["web-1", "web-2"], "name is a regular expression");
    let (_, body) = sim.get("/compute/v2.1/servers?name=WEB").await;
    assert_eq!(names(&body), ["web-1", "web-2"], "MySQL's REGEXP ignores case");
    let (_, body) = sim.get("/compute/v2.1/servers?name=-1").await;
    assert_eq!(names(&body), ["db-1", "web-1"]);
    let (_, body) = sim.get("/compute/v2.1/servers?tags=db,vre").await;
    assert_eq!(names(&body), ["db-1", "db-2"]);
    let (_, body) = sim.get("/compute/v2.1/servers?tags-any=db,nothing").await;
    assert_eq!(names(&body).len(), 2);
    let (_, body) = sim.get("/compute/v2.1/servers?not-tags=db").await;
    assert_eq!(names(&body).len(), 3);
    let (_, body) = sim.get("/compute/v2.1/servers?status=ACTIVE").await;
    assert_eq!(names(&body).len(), 5);
    let (_, body) = sim
        .get("/compute/v2.1/servers?changes-since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(names(&body).len(), 5);
    let (_, body) = sim
        .get("/compute/v2.1/servers?changes-since=2999-01-01T00:00:00Z")
        .await;
    assert!(names(&body).is_empty());
    let (status, body) = sim.get("/compute/v2.1/servers?status=SLEEPING").await;
    assert_eq!(
        (status, names(&body).len()),
        (StatusCode::OK, 0),
        "before 2.38 an unknown status matches nothing"
    );
    sim.compute_version = Some("2.38".into());
    let (status, body) = sim.get("/compute/v2.1/servers?status=SLEEPING").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Invalid status value");

    // Pages of two, newest first, linked by `servers_links`.
    let mut seen = Vec::new();
    let mut path = "/compute/v2.1/servers/detail?limit=2".to_string();
    loop {
        let (status, body) = sim.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        let page = body["servers"].as_array().unwrap();
        seen.extend(
            page.iter()
                .map(|s| s["created"].as_str().unwrap().to_string() + s["id"].as_str().unwrap()),
        );
        match body.get("servers_links") {
            Some(links) => {
                assert_eq!(links[0]["rel"], "next");
                let href = links[0]["href"].as_str().unwrap();
                assert!(href.contains("limit=2") && href.contains("marker="), "{href}");
                path = href.strip_prefix(&sim.handle.url()).unwrap().to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(
        seen.iter().map(|s| &s[..20]).collect::<Vec<_>>(),
        sorted.iter().map(|s| &s[..20]).collect::<Vec<_>>()
    );
    let (status, body) = sim.get("/compute/v2.1/servers?marker=not-a-server").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "marker [not-a-server] not found");
}

#[tokio::test]
async fn metadata_tags_rename_and_delete() {
    let mut sim = start(fast_config()).await;
    sim.compute_version = Some("2.26".into());
    let image = sim.image_id("ubuntu-24.04").await;
    let (_, body) = sim
        .post(
            "/compute/v2.1/servers",
            json!({"server": {"name": "m", "flavorRef": "1", "imageRef": image, "metadata": {"a": "1"}}}),
        )
        .await;
    let id = body["server"]["id"].as_str().unwrap().to_string();
    // Nova refuses changes while the server builds.
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/metadata"),
            json!({"metadata": {"b": "2"}}),
        )
        .await;
    if status == StatusCode::CONFLICT {
        assert!(
            body["conflictingRequest"]["message"]
                .as_str()
                .unwrap()
                .contains("while it is in vm_state building")
        );
    }
    sim.wait_server_status(&id, "ACTIVE").await;
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/metadata"),
            json!({"metadata": {"b": "2"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["metadata"], json!({"a": "1", "b": "2"}));
    let (_, body) = sim
        .put(
            &format!("/compute/v2.1/servers/{id}/metadata/c"),
            json!({"meta": {"c": "3"}}),
        )
        .await;
    assert_eq!(body, json!({"meta": {"c": "3"}}));
    let (status, body) = sim
        .put(
            &format!("/compute/v2.1/servers/{id}/metadata/c"),
            json!({"meta": {"d": "3"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Request body and URI mismatch");
    let (status, _) = sim.delete(&format!("/compute/v2.1/servers/{id}/metadata/a")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = sim
        .put(
            &format!("/compute/v2.1/servers/{id}/metadata"),
            json!({"metadata": {"only": "this"}}),
        )
        .await;
    assert_eq!(body["metadata"], json!({"only": "this"}));
    let (status, body) = sim.get(&format!("/compute/v2.1/servers/{id}/metadata/a")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["itemNotFound"]["message"], "Metadata item was not found");

    let (status, _) = sim
        .call(Method::PUT, &format!("/compute/v2.1/servers/{id}/tags/blue"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = sim
        .call(Method::PUT, &format!("/compute/v2.1/servers/{id}/tags/blue"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "already there");
    let (status, _) = sim.get(&format!("/compute/v2.1/servers/{id}/tags/blue")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = sim.get(&format!("/compute/v2.1/servers/{id}/tags/red")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(body["server"]["tags"], json!(["blue"]));
    sim.compute_version = Some("2.25".into());
    let (status, _) = sim.get(&format!("/compute/v2.1/servers/{id}/tags")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "tags need 2.26");
    let (_, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    assert!(body["server"].get("tags").is_none());

    sim.compute_version = Some("2.75".into());
    let (status, body) = sim
        .put(
            &format!("/compute/v2.1/servers/{id}"),
            json!({"server": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["server"]["name"], "renamed");
    assert_eq!(body["server"]["status"], "ACTIVE");

    let (status, _) = sim.delete(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    if status == StatusCode::OK {
        assert_eq!(body["server"]["OS-EXT-STS:task_state"], "deleting");
    }
    eventually(|| async {
        (sim.get(&format!("/compute/v2.1/servers/{id}")).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let deleted = eventually(|| async {
        let d = sim.events.of("deleted");
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(deleted[0].id, id);
    assert!(sim.handle.project_counts("vre").servers == 0);
}

#[tokio::test]
async fn boot_from_volume_and_volume_attachments() {
    let mut sim = start(fast_config()).await;
    sim.compute_version = Some("2.79".into());
    let (net, _, _) = sim.private_network("private", "10.0.0.0/24").await;
    let image = sim.image_id("ubuntu-24.04").await;
    let (status, body) = sim
        .post(
            "/compute/v2.1/servers",
            json!({"server": {"name": "bfv", "flavorRef": "2", "networks": [{"uuid": net}],
                "block_device_mapping_v2": [{"boot_index": 0, "uuid": image, "source_type": "image", "destination_type": "volume", "volume_size": 20, "delete_on_termination": true}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    let body = sim.wait_server_status(&id, "ACTIVE").await;
    assert_eq!(body["server"]["image"], "", "boot from volume has no image");
    let root = body["server"]["os-extended-volumes:volumes_attached"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vpath = format!("/volume/v3/{}/volumes/{root}", sim.project_id);
    let (_, vol) = sim.get(&vpath).await;
    assert_eq!(vol["volume"]["status"], "in-use");
    assert_eq!(vol["volume"]["bootable"], "true");
    assert_eq!(vol["volume"]["attachments"][0]["device"], "/dev/vda");

    // A data volume: attach, list, show, detach.
    let (status, body) = sim
        .post(
            &format!("/volume/v3/{}/volumes", sim.project_id),
            json!({"volume": {"size": 10, "name": "data"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let data = body["volume"]["id"].as_str().unwrap().to_string();
    let dpath = format!("/volume/v3/{}/volumes/{data}", sim.project_id);
    eventually(|| async { (sim.get(&dpath).await.1["volume"]["status"] == "available").then_some(()) }).await;
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/os-volume_attachments"),
            json!({"volumeAttachment": {"volumeId": data}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["volumeAttachment"]["device"], "/dev/vdb");
    assert_eq!(body["volumeAttachment"]["delete_on_termination"], false);
    let (_, vol) = sim.get(&dpath).await;
    assert!(matches!(vol["volume"]["status"].as_str(), Some("attaching" | "in-use")));
    let vol = eventually(|| async {
        let (_, v) = sim.get(&dpath).await;
        (v["volume"]["status"] == "in-use").then_some(v)
    })
    .await;
    assert_eq!(vol["volume"]["attachments"][0]["server_id"], id.as_str());
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/os-volume_attachments"),
            json!({"volumeAttachment": {"volumeId": data}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already attached: {body}");
    let (_, list) = sim
        .get(&format!("/compute/v2.1/servers/{id}/os-volume_attachments"))
        .await;
    assert_eq!(list["volumeAttachments"].as_array().unwrap().len(), 2);
    // In use: Cinder refuses to delete it.
    let (status, body) = sim.delete(&dpath).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid volume: Volume status must be available")
    );
    let (status, _) = sim
        .delete(&format!("/compute/v2.1/servers/{id}/os-volume_attachments/{data}"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(|| async { (sim.get(&dpath).await.1["volume"]["status"] == "available").then_some(()) }).await;
    let (status, body) = sim
        .delete(&format!("/compute/v2.1/servers/{id}/os-volume_attachments/{root}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Cannot detach a root device volume");
    // Deleting the server deletes its delete_on_termination root volume.
    sim.delete(&format!("/compute/v2.1/servers/{id}")).await;
    eventually(|| async { (sim.get(&vpath).await.0 == StatusCode::NOT_FOUND).then_some(()) }).await;
    let (status, _) = sim.get(&dpath).await;
    assert_eq!(status, StatusCode::OK, "the data volume stays");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn actions_take_a_moment_shown_in_task_state() {
    // 500 simulated seconds at time_scale 0.001: half a second to look.
    let options = vre_sim::cloud::CloudOptions {
        password: cloud_support::PASSWORD.into(),
        timings: vre_sim::cloud::CloudTimings {
            server_action: Duration::from_secs(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = cloud_support::start_with(options, fast_config()).await;
    let (net, _, _) = sim.private_network("private", "10.0.0.0/24").await;
    let id = sim.active_server("act", &net).await;
    let (status, _) = sim
        .post(&format!("/compute/v2.1/servers/{id}/action"), json!({"os-stop": null}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(body["server"]["status"], "ACTIVE");
    assert_eq!(body["server"]["OS-EXT-STS:task_state"], "powering-off");
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/os-volume_attachments"),
            json!({"volumeAttachment": {"volumeId": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'attach_volume' instance {id} while it is in task_state powering-off")
    );
    let body = sim.wait_server_status(&id, "SHUTOFF").await;
    assert_eq!(body["server"]["OS-EXT-STS:power_state"], 4);
    assert_eq!(body["server"]["OS-EXT-STS:task_state"], Value::Null);
    let (status, body) = sim
        .post(&format!("/compute/v2.1/servers/{id}/action"), json!({"os-stop": null}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'stop' instance {id} while it is in vm_state stopped")
    );
    sim.post(&format!("/compute/v2.1/servers/{id}/action"), json!({"os-start": null}))
        .await;
    sim.wait_server_status(&id, "ACTIVE").await;
    let (status, body) = sim
        .post(
            &format!("/compute/v2.1/servers/{id}/action"),
            json!({"hibernate": null}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "There is no such action: hibernate");
}
