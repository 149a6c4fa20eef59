//! Rate limits, injected faults, call counting and determinism of the
//! simulated cloud.

mod cloud_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cloud_support::{PASSWORD, Recorder, fast_config, password_auth, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vre_sim::cloud::{CloudHandle, CloudOptions, CloudServer, CloudTimings};
use vre_sim::{RateLimit, SimConfig, SimStats};

/// A cloud without the fixture's login (which faults would break).
async fn bare(config: SimConfig) -> (CloudHandle, Arc<SimStats>) {
    let stats = Arc::new(SimStats::default());
    let options = CloudOptions {
        password: PASSWORD.into(),
        // Held 100 s at time_scale 0.001: dropped after 0.1 s.
        timings: CloudTimings {
            fault_hold: Duration::from_secs(100),
            ..CloudTimings::default()
        },
        ..CloudOptions::default()
    };
    let handle = CloudServer::start(options, Arc::new(config), stats.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    (handle, stats)
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let config = SimConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.5,
            burst: 3,
        }),
        ..fast_config()
    };
    let sim = start(config).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let (status, headers, body) = sim
            .call_full(Method::GET, "/compute/v2.1/flavors", None, &sim.token)
            .await;
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((headers, body));
        }
    }
    assert_eq!(&statuses[..3], [StatusCode::OK; 3], "the burst passes");
    assert_eq!(&statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    let (headers, body) = limited.unwrap();
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(
        body,
        json!({"overLimit": {"code": 429, "message": "This request was rate-limited.", "retryAfter": "2"}})
    );
    // Neutron has its own bucket, and its own error body.
    for _ in 0..3 {
        let (status, _) = sim.get("/networking/v2.0/networks").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = sim.get("/networking/v2.0/networks").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["NeutronError"]["type"], "HTTPTooManyRequests");
    assert_eq!(sim.stats.rate_limited.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn injected_errors_use_each_services_body() {
    let (cloud, stats) = bare(SimConfig {
        error_rate: 1.0,
        ..fast_config()
    })
    .await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/identity/v3/auth/tokens", cloud.url()))
        .json(&password_auth("admin", PASSWORD, "vre"))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_server_error());
    let status = login.status();
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["error"]["code"], status.as_u16());
    let project = cloud.project_id("vre").unwrap();
    for (path, check) in [
        ("/compute/v2.1/servers".to_string(), "nova"),
        ("/networking/v2.0/networks".to_string(), "neutron"),
        (format!("/volume/v3/{project}/volumes"), "cinder"),
    ] {
        let response = http.get(format!("{}{path}", cloud.url())).send().await.unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {status}"
        );
        let body: Value = response.json().await.unwrap();
        match check {
            "neutron" => {
                let kind = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    "HTTPInternalServerError"
                } else {
                    "HTTPServiceUnavailable"
                };
                assert_eq!(body["NeutronError"]["type"], kind);
            }
            _ => {
                let name = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    "computeFault"
                } else {
                    "serviceUnavailable"
                };
                assert_eq!(body[name]["code"], status.as_u16(), "{path}: {body}");
            }
        }
    }
    assert_eq!(stats.injected_faults.load(Ordering::Relaxed), 4);
    assert_eq!(stats.cloud_calls(), 4);
}

#[tokio::test]
async fn injected_timeouts_drop_the_connection() {
    let (cloud, stats) = bare(SimConfig {
        timeout_rate: 1.0,
        ..fast_config()
    })
    .await;
    let result = reqwest::Client::new()
        .post(format!("{}/identity/v3/auth/tokens", cloud.url()))
        .json(&password_auth("admin", PASSWORD, "vre"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let error = result.expect_err("no answer: the connection is dropped");
    assert!(
        !error.is_timeout(),
        "dropped by the server, not timed out by the client: {error}"
    );
    assert_eq!(stats.injected_faults.load(Ordering::Relaxed), 1);
    assert_eq!(stats.keystone.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn calls_are_counted_per_service() {
    let sim = start(fast_config()).await;
    sim.get("/compute/v2.1/flavors").await;
    sim.get("/compute/v2.1/servers").await;
    sim.get("/networking/v2.0/networks").await;
    sim.get("/image/v2/images").await;
    sim.get(&format!("/volume/v3/{}/volumes", sim.project_id)).await;
    let s = &sim.stats;
    assert_eq!(s.keystone.load(Ordering::Relaxed), 1, "the login");
    assert_eq!(s.nova.load(Ordering::Relaxed), 2);
    assert_eq!(s.neutron.load(Ordering::Relaxed), 1);
    assert_eq!(s.glance.load(Ordering::Relaxed), 1);
    assert_eq!(s.cinder.load(Ordering::Relaxed), 1);
    assert_eq!(s.cloud_calls(), 6);
    assert_eq!(s.injected_faults.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn answers_carry_request_ids_and_wrong_methods_get_service_bodies() {
    let sim = start(fast_config()).await;
    let (_, headers, _) = sim
        .call_full(Method::GET, "/compute/v2.1/flavors", None, &sim.token)
        .await;
    let id = headers["x-openstack-request-id"].to_str().unwrap().to_string();
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
    assert_eq!(headers["x-compute-request-id"], id.as_str());
    let (_, headers, _) = sim
        .call_full(Method::GET, "/networking/v2.0/networks", None, &sim.token)
        .await;
    assert_ne!(headers["x-openstack-request-id"], id.as_str(), "one id per request");
    let (status, _, body) = sim
        .call_full(Method::PATCH, "/compute/v2.1/flavors", None, &sim.token)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["badMethod"]["code"], 405);
    let (status, _, body) = sim
        .call_full(Method::GET, "/networking/v2.0/frobnicators", None, &sim.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["NeutronError"]["type"], "HTTPNotFound");
}

/// What a sequential client that retries failed calls sees from a cloud
/// with `seed`: every status, every id, every final server status.
async fn scripted_run(seed: u64) -> Vec<String> {
    let config = SimConfig {
        seed,
        server_error_rate: 0.5,
        error_rate: 0.3,
        ..fast_config()
    };
    let (cloud, _) = bare(config).await;
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut call = async |method: Method,
                          path: String,
                          token: &str,
                          body: Option<Value>|
           -> (StatusCode, reqwest::header::HeaderMap, Value) {
        loop {
            let mut request = http
                .request(method.clone(), format!("{}{path}", cloud.url()))
                .header("X-Auth-Token", token);
            if let Some(b) = &body {
                request = request.json(b);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            seen.push(format!("{method} {path} {status}"));
            if !status.is_server_error() {
                return (status, headers, value);
            }
        }
    };
    let (_, headers, _) = call(
        Method::POST,
        "/identity/v3/auth/tokens".into(),
        "",
        Some(password_auth("admin", PASSWORD, "vre")),
    )
    .await;
    let token = headers["x-subject-token"].to_str().unwrap().to_string();
    let (_, _, images) = call(Method::GET, "/image/v2/images?name=ubuntu-24.04".into(), &token, None).await;
    let image = images["images"][0]["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..6 {
        let body = json!({"server": {"name": format!("s{i}"), "flavorRef": "1", "imageRef": image}});
        let (_, _, created) = call(Method::POST, "/compute/v2.1/servers".into(), &token, Some(body)).await;
        ids.push(created["server"]["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut outcome = Vec::new();
    for id in &ids {
        let (_, _, server) = call(Method::GET, format!("/compute/v2.1/servers/{id}"), &token, None).await;
        outcome.push(format!(
            "{id} {}",
            server["server"]["status"].as_str().unwrap_or_default()
        ));
    }
    seen.extend(outcome);
    seen
}

#[tokio::test]
async fn the_same_seed_gives_the_same_run() {
    let a = scripted_run(7).await;
    let b = scripted_run(7).await;
    assert_eq!(a, b);
    assert!(
        a.iter()
            .any(|s| s.ends_with(" 500 Internal Server Error") || s.ends_with(" 503 Service Unavailable")),
        "{a:?}"
    );
    assert!(
        a.iter().any(|s| s.ends_with(" ERROR")) && a.iter().any(|s| s.ends_with(" ACTIVE")),
        "{a:?}"
    );
    let c = scripted_run(8).await;
    assert_ne!(a, c, "another seed, another run");
}
