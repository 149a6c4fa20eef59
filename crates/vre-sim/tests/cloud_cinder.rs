//! Cinder of the simulated cloud, over raw HTTP.

mod cloud_support;

use cloud_support::{eventually, fast_config, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vre_sim::{Quotas, SimConfig};

#[tokio::test]
async fn version_discovery() {
    let sim = start(fast_config()).await;
    let response = sim.http.get(sim.url("/volume/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::MULTIPLE_CHOICES);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["versions"][0]["id"], "v3.0");
    assert_eq!(body["versions"][0]["version"], "3.71");
    // The catalog URL (with the project) is no resource: clients go one level
    // up, which needs a token.
    let response = sim
        .http
        .get(sim.url(&format!("/volume/v3/{}", sim.project_id)))
        .header("X-Auth-Token", &sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = sim.http.get(sim.url("/volume/v3/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = sim.get("/volume/v3/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["versions"][0]["links"][1]["href"],
        format!("{}/volume/v3/", sim.handle.url())
    );
}

#[tokio::test]
async fn volumes_are_created_listed_and_deleted() {
    let sim = start(fast_config()).await;
    let base = format!("/volume/v3/{}/volumes", sim.project_id);
    let (status, body) = sim
        .post(
            &base,
            json!({"volume": {"size": 10, "name": "data-1", "metadata": {"vre-role": "storage"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let v = &body["volume"];
    assert_eq!(v["status"], "creating");
    assert_eq!(v["size"], 10);
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["attachments"], json!([]));
    assert_eq!(v["volume_type"], "__DEFAULT__");
    assert!(v.get("volume_type_id").is_none(), "3.0 has no volume_type_id");
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("{base}/{id}");
    eventually(|| async { (sim.get(&path).await.1["volume"]["status"] == "available").then_some(()) }).await;
    sim.post(&base, json!({"volume": {"size": 1, "name": "other"}})).await;

    let (_, body) = sim.get(&format!("{base}?name=data-1")).await;
    assert_eq!(body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(body["volumes"][0]["id"], id.as_str());
    assert!(
        body["volumes"][0].get("size").is_none(),
        "the summary list has id, name, links"
    );
    let (_, body) = sim
        .get(&format!("{base}/detail?metadata=%7B%22vre-role%22%3A%22storage%22%7D"))
        .await;
    assert_eq!(body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(body["volumes"][0]["metadata"]["vre-role"], "storage");
    let (_, body) = sim.get(&format!("{base}/detail?limit=1")).await;
    assert_eq!(body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(body["volumes_links"][0]["rel"], "next");

    // Microversions add fields.
    let response = sim
        .http
        .get(sim.url(&path))
        .header("X-Auth-Token", &sim.token)
        .header("OpenStack-API-Version", "volume 3.65")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["openstack-api-version"], "volume 3.65");
    let body: Value = response.json().await.unwrap();
    assert!(body["volume"]["volume_type_id"].is_string());
    assert_eq!(body["volume"]["consumes_quota"], true);

    let (status, body) = sim.put(&path, json!({"volume": {"name": "renamed"}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["volume"]["name"], "renamed");
    let (status, body) = sim
        .post(&format!("{path}/metadata"), json!({"metadata": {"k": "v"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["metadata"], json!({"vre-role": "storage", "k": "v"}));

    let (status, _) = sim.delete(&path).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // at this time scale the deletion may already be over (404); until
    // then the volume shows as deleting
    let (status, body) = sim.get(&path).await;
    if status == StatusCode::OK {
        assert_eq!(body["volume"]["status"], "deleting");
    } else {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    eventually(|| async { (sim.get(&path).await.0 == StatusCode::NOT_FOUND).then_some(()) }).await;
    let (_, body) = sim.get(&path).await;
    assert_eq!(
        body,
        json!({"itemNotFound": {"code": 404, "message": format!("Volume {id} could not be found.")}})
    );
}

#[tokio::test]
async fn quota_answers_413_over_limit() {
    let config = SimConfig {
        quotas: Quotas {
            gigabytes: 100,
            volumes: 2,
            ..Quotas::default()
        },
        ..fast_config()
    };
    let sim = start(config).await;
    let base = format!("/volume/v3/{}/volumes", sim.project_id);
    let (status, headers, body) = sim
        .call_full(Method::POST, &base, Some(json!({"volume": {"size": 101}})), &sim.token)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["retry-after"], "0");
    assert_eq!(body["overLimit"]["code"], 413);
    assert_eq!(
        body["overLimit"]["message"],
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 101G, quota is 100G and 0G has been consumed."
    );
    assert_eq!(body["overLimit"]["retryAfter"], "0");
    sim.post(&base, json!({"volume": {"size": 1}})).await;
    sim.post(&base, json!({"volume": {"size": 1}})).await;
    let (status, body) = sim.post(&base, json!({"volume": {"size": 1}})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["overLimit"]["message"]
            .as_str()
            .unwrap()
            .contains("Maximum number of volumes allowed (2) exceeded")
    );
    let (status, body) = sim.post(&base, json!({"volume": {"name": "no size"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["code"], 400);
}

#[tokio::test]
async fn urls_with_and_without_the_project() {
    let sim = start(fast_config()).await;
    let (status, body) = sim.post("/volume/v3/volumes", json!({"volume": {"size": 1}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "project-less URLs (3.67): {body}");
    let other = sim.handle.project_id("admin").unwrap();
    let (status, body) = sim.get(&format!("/volume/v3/{other}/volumes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Malformed request url");
}
