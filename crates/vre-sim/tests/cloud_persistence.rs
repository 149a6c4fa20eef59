//! The simulated cloud keeps its state across a restart.

mod cloud_support;

use std::time::Duration;

use cloud_support::{PASSWORD, eventually, fast_config, start_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use vre_sim::SimConfig;
use vre_sim::cloud::CloudOptions;

fn options(file: &std::path::Path, port: u16) -> CloudOptions {
    CloudOptions {
        password: PASSWORD.into(),
        state_file: Some(file.to_path_buf()),
        port,
        ..CloudOptions::default()
    }
}

#[tokio::test]
async fn resources_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    let sim = start_with(options(&file, 0), fast_config()).await;
    let port = sim.handle.addr().port();
    let (net, _, router) = sim.private_network("private", "10.0.0.0/24").await;
    let server = sim.active_server("keep", &net).await;
    let (_, volume) = sim
        .post(
            &format!("/volume/v3/{}/volumes", sim.project_id),
            json!({"volume": {"size": 3, "name": "v"}}),
        )
        .await;
    let volume = volume["volume"]["id"].as_str().unwrap().to_string();
    let before = sim.handle.counts();
    let token = sim.token.clone();
    sim.handle.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(PASSWORD), "no password in the state");
    assert!(!text.contains(&token), "no token in the state");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Same file, same port: everything is there, and the old token works.
    let sim = start_with(options(&file, port), fast_config()).await;
    assert_eq!(sim.handle.counts(), before);
    let (status, _, body) = sim
        .call_full(Method::GET, &format!("/compute/v2.1/servers/{server}"), None, &token)
        .await;
    assert_eq!(status, StatusCode::OK, "tokens outlive restarts: {body}");
    assert_eq!(body["server"]["status"], "ACTIVE");
    let server_ip = body["server"]["addresses"]["private"][0]["addr"].clone();
    assert!(server_ip.as_str().unwrap().starts_with("10.0.0."));
    let (status, _) = sim.get(&format!("/networking/v2.0/routers/{router}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = sim
        .get(&format!("/volume/v3/{}/volumes/{volume}", sim.project_id))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The restarted cloud knows which addresses and ids are taken.
    let (status, port) = sim
        .post("/networking/v2.0/ports", json!({"port": {"network_id": net}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(port["port"]["fixed_ips"][0]["ip_address"], server_ip);
    let (_, ports) = sim.get("/networking/v2.0/ports").await;
    let mut ids: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count);
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_build_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    // 30 s boots at time_scale 0.01: 300 ms; the restart comes first.
    let slow = SimConfig {
        time_scale: 0.01,
        boot_jitter: Duration::ZERO,
        ..SimConfig::default()
    };
    let sim = start_with(options(&file, 0), slow.clone()).await;
    let image = sim.image_id("ubuntu-24.04").await;
    let (status, body) = sim
        .post(
            "/compute/v2.1/servers",
            json!({"server": {"name": "slow", "flavorRef": "1", "imageRef": image}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["server"]["id"].as_str().unwrap().to_string();
    sim.handle.shutdown().await.unwrap();
    assert!(sim.events.of("booted").is_empty());

    let sim = start_with(options(&file, 0), slow).await;
    let (_, body) = sim.get(&format!("/compute/v2.1/servers/{id}")).await;
    assert_eq!(body["server"]["status"], "BUILD");
    sim.wait_server_status(&id, "ACTIVE").await;
    let booted = eventually(|| async {
        let b = sim.events.of("booted");
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(booted[0].id, id);
}

#[tokio::test]
async fn a_broken_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    std::fs::write(&file, "{ not json").unwrap();
    let result = vre_sim::cloud::CloudServer::start(
        options(&file, 0),
        std::sync::Arc::new(fast_config()),
        std::sync::Arc::new(vre_sim::SimStats::default()),
        std::sync::Arc::new(cloud_support::Recorder::default()),
    )
    .await;
    let error = result.expect_err("a broken state file fails the start").to_string();
    assert!(error.contains("cloud.json") && error.contains("not valid"), "{error}");
}

#[tokio::test]
async fn a_restart_tells_the_machine_side_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    let sim = start_with(options(&file, 0), fast_config()).await;
    let (net, _, _) = sim.private_network("private", "10.0.0.0/24").await;
    let kept = sim.active_server("kept", &net).await;
    let gone = sim.active_server("gone", &net).await;
    let (status, _) = sim.delete(&format!("/compute/v2.1/servers/{gone}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(|| async {
        let (status, _) = sim.get(&format!("/compute/v2.1/servers/{gone}")).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    sim.handle.shutdown().await.unwrap();

    // events around a shutdown can be lost: the restarted cloud lists every
    // booted machine first, with its addresses and user data
    let sim = start_with(options(&file, 0), fast_config()).await;
    let booted = eventually(|| async {
        let b = sim.events.of("booted");
        (!b.is_empty()).then_some(b)
    })
    .await;
    let ids: Vec<&str> = booted.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [kept.as_str()]);
    assert_eq!(booted[0].name, "kept");
    assert!(booted[0].private_ip.is_some_and(|ip| ip.octets()[..3] == [10, 0, 0]));
    sim.handle.shutdown().await.unwrap();

    // a fresh cloud has nothing to tell
    let fresh = start_with(options(&dir.path().join("other.json"), 0), fast_config()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fresh.events.events.lock().unwrap().is_empty());
    fresh.handle.shutdown().await.unwrap();
}
