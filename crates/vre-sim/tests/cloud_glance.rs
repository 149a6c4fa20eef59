//! Glance of the simulated cloud, over raw HTTP.

mod cloud_support;

use cloud_support::{eventually, fast_config, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn seeded_images_and_filters() {
    let sim = start(fast_config()).await;
    let response = sim.http.get(sim.url("/image/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::MULTIPLE_CHOICES);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["status"] == "CURRENT")
    );

    let (status, body) = sim.get("/image/v2/images").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["schema"], "/v2/schemas/images");
    let mut names: Vec<&str> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["kubenow-ubuntu-24.04", "ubuntu-24.04"]);
    let (_, body) = sim.get("/image/v2/images?name=ubuntu-24.04").await;
    let image = &body["images"][0];
    assert_eq!(image["status"], "active");
    assert_eq!(image["visibility"], "public");
    assert_eq!(image["disk_format"], "qcow2");
    assert!(image["size"].as_u64().unwrap() > 0);
    assert_eq!(image["os_hash_algo"], "sha512");
    let (_, body) = sim.get("/image/v2/images?status=queued").await;
    assert!(body["images"].as_array().unwrap().is_empty());
    let (_, body) = sim.get("/image/v2/images?limit=1").await;
    assert_eq!(body["images"].as_array().unwrap().len(), 1);
    assert!(body["next"].as_str().unwrap().starts_with("/v2/images?limit=1&marker="));

    let (status, _) = sim.get("/image/v2/images/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = sim
        .http
        .get(sim.url("/image/v2/images/00000000-0000-4000-8000-000000000000"))
        .header("X-Auth-Token", &sim.token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "404 Not Found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("No image found with ID 00000000-0000-4000-8000-000000000000")
    );
}

#[tokio::test]
async fn web_download_import_goes_queued_importing_active() {
    let sim = start(fast_config()).await;
    let (status, body) = sim
        .post("/image/v2/images", json!({"name": "custom", "disk_format": "qcow2", "container_format": "bare", "tags": ["vre"], "vre_role": "node"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["visibility"], "shared");
    assert_eq!(body["size"], Value::Null);
    assert_eq!(body["vre_role"], "node");
    let id = body["id"].as_str().unwrap().to_string();
    let import = format!("/image/v2/images/{id}/import");

    let (status, _) = sim
        .post(
            &import,
            json!({"method": {"name": "web-download", "uri": "file:///etc/passwd"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = sim.post(&import, json!({"method": {"name": "teleport"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = sim.post(&import, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = sim.post(&import, json!({"method": {"name": "web-download", "uri": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = sim.get(&format!("/image/v2/images/{id}")).await;
    assert!(
        matches!(body["status"].as_str(), Some("importing" | "active")),
        "{body}"
    );
    let body = eventually(|| async {
        let (_, b) = sim.get(&format!("/image/v2/images/{id}")).await;
        (b["status"] == "active").then_some(b)
    })
    .await;
    assert!(body["size"].as_u64().unwrap() > 0);
    assert!(body["checksum"].is_string());
    let (status, _) = sim
        .post(
            &import,
            json!({"method": {"name": "web-download", "uri": "https://example.org/x.img"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "active images are no import target");
    let (_, body) = sim.get("/image/v2/images?tag=vre").await;
    assert_eq!(body["images"][0]["id"], id.as_str());
    assert_eq!(sim.handle.project_counts("vre").images, 1);

    let (status, _) = sim.delete(&format!("/image/v2/images/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.handle.project_counts("vre").images, 0);
}

#[tokio::test]
async fn updates_are_json_patches() {
    let sim = start(fast_config()).await;
    let (_, body) = sim
        .post(
            "/image/v2/images",
            json!({"name": "p", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = body["id"].as_str().unwrap().to_string();
    let response = sim
        .http
        .patch(sim.url(&format!("/image/v2/images/{id}")))
        .header("X-Auth-Token", &sim.token)
        .header("Content-Type", "application/openstack-images-v2.1-json-patch")
        .body(json!([{"op": "replace", "path": "/name", "value": "q"}, {"op": "add", "path": "/owner_note", "value": "x"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "q");
    assert_eq!(body["owner_note"], "x");
    let response = sim
        .http
        .patch(sim.url(&format!("/image/v2/images/{id}")))
        .header("X-Auth-Token", &sim.token)
        .header("Content-Type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
