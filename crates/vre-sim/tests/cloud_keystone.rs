//! Keystone v3 of the simulated cloud, over raw HTTP.

mod cloud_support;

use std::time::Duration;

use cloud_support::{PASSWORD, fast_config, password_auth, start, start_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vre_sim::cloud::{ApplicationCredential, CloudOptions};

#[tokio::test]
async fn version_discovery_needs_no_token() {
    let sim = start(fast_config()).await;
    let response = sim.http.get(sim.url("/identity/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::MULTIPLE_CHOICES);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["versions"]["values"][0]["id"], "v3.14");
    let body: Value = sim.discover(&sim.handle.auth_url()).await;
    assert_eq!(body["version"]["status"], "stable");
    assert_eq!(
        body["version"]["links"][0]["href"],
        format!("{}/", sim.handle.auth_url())
    );
}

#[tokio::test]
async fn password_auth_returns_a_scoped_token_with_the_catalog() {
    let sim = start(fast_config()).await;
    let response = sim.authenticate(&password_auth("admin", PASSWORD, "vre")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_string();
    assert!(!token.is_empty());
    let body: Value = response.json().await.unwrap();
    let t = &body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(t["project"]["name"], "vre");
    assert_eq!(t["project"]["id"], sim.project_id.as_str());
    assert_eq!(t["project"]["domain"]["name"], "Default");
    assert!(t["roles"].as_array().unwrap().iter().any(|r| r["name"] == "admin"));
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    let catalog = t["catalog"].as_array().unwrap();
    for kind in ["identity", "compute", "network", "volumev3", "block-storage", "image"] {
        let entry = catalog
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the catalog"));
        let interfaces: Vec<&str> = entry["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["interface"].as_str().unwrap())
            .collect();
        assert_eq!(interfaces, ["public", "internal", "admin"], "{kind}");
        assert!(
            entry["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["region"] == "RegionOne" && e["region_id"] == "RegionOne")
        );
    }
    let compute = catalog.iter().find(|c| c["type"] == "compute").unwrap();
    assert_eq!(
        compute["endpoints"][0]["url"],
        format!("{}/compute/v2.1", sim.handle.url())
    );
    let volume = catalog.iter().find(|c| c["type"] == "volumev3").unwrap();
    assert_eq!(
        volume["endpoints"][0]["url"],
        format!("{}/volume/v3/{}", sim.handle.url(), sim.project_id)
    );
    // The token works on the other services.
    let (status, _, _) = sim.call_full(Method::GET, "/compute/v2.1/flavors", None, &token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_get_401_with_keystones_body() {
    let sim = start(fast_config()).await;
    for body in [
        password_auth("admin", "wrong", "vre"),
        password_auth("nobody", PASSWORD, "vre"),
        password_auth("admin", PASSWORD, "elsewhere"),
    ] {
        let response = sim.authenticate(&body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Keystone uri=")
        );
        assert!(response.headers().get("x-subject-token").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})
        );
    }
    // A malformed request is a 400, not a 401.
    let response = sim.authenticate(&json!({"auth": {}})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Expecting to find identity in auth.")
    );
}

#[tokio::test]
async fn scoping_follows_the_request() {
    let sim = start(fast_config()).await;
    // By project id, and to the other project.
    let admin_project = sim.handle.project_id("admin").unwrap();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
        "scope": {"project": {"id": admin_project}},
    }});
    let response = sim.authenticate(&body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "admin");
    // `demo` has no role on `admin`.
    let response = sim.authenticate(&password_auth("demo", PASSWORD, "admin")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Without a scope: the default project.
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": PASSWORD}}}}});
    let response = sim.authenticate(&body).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "vre");
    assert!(
        !body["token"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "admin")
    );
}

#[tokio::test]
async fn application_credentials_by_id_and_by_name() {
    let options = CloudOptions {
        password: PASSWORD.into(),
        application_credentials: vec![ApplicationCredential {
            id: "0a1b2c".into(),
            name: "ci".into(),
            secret: "s3cret".into(),
            user: "admin".into(),
            project: "vre".into(),
        }],
        ..CloudOptions::default()
    };
    let sim = start_with(options, fast_config()).await;
    let by_id = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "0a1b2c", "secret": "s3cret"}}}});
    let response = sim.authenticate(&by_id).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"]["methods"], json!(["application_credential"]));
    assert_eq!(
        body["token"]["application_credential"],
        json!({"id": "0a1b2c", "name": "ci", "restricted": true})
    );
    assert_eq!(body["token"]["project"]["name"], "vre");
    let by_name = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "secret": "s3cret", "user": {"name": "admin", "domain": {"name": "Default"}}}}}});
    let response = sim.authenticate(&by_name).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let wrong = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "0a1b2c", "secret": "nope"}}}});
    let response = sim.authenticate(&wrong).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A credential for a user that does not exist is refused at start, by name.
    let bad = CloudOptions {
        application_credentials: vec![ApplicationCredential {
            id: "x".into(),
            name: "x".into(),
            secret: "y".into(),
            user: "bob".into(),
            project: "vre".into(),
        }],
        ..CloudOptions::default()
    };
    let error = vre_sim::cloud::CloudServer::start(
        bad,
        std::sync::Arc::new(fast_config()),
        std::sync::Arc::new(vre_sim::SimStats::default()),
        std::sync::Arc::new(cloud_support::Recorder::default()),
    )
    .await
    .expect_err("unknown user")
    .to_string();
    assert_eq!(
        error,
        "application_credentials[0].user: no seeded user `bob` (use `admin` or `demo`)"
    );
    // The secret never shows in Debug output.
    let shown = format!(
        "{:?}",
        CloudOptions {
            password: "pw".into(),
            ..CloudOptions::default()
        }
    );
    assert!(!shown.contains("\"pw\""), "{shown}");
}

#[tokio::test]
async fn every_service_checks_the_token() {
    let sim = start(fast_config()).await;
    for path in [
        "/compute/v2.1/servers",
        "/networking/v2.0/networks",
        &format!("/volume/v3/{}/volumes", sim.project_id),
        "/image/v2/images",
    ] {
        for token in ["", "garbage", "e30.e30"] {
            let (status, headers, body) = sim.call_full(Method::GET, path, None, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            assert!(headers.contains_key("www-authenticate"));
            assert_eq!(body["error"]["title"], "Unauthorized", "{path}");
        }
    }
}

#[tokio::test]
async fn tokens_expire_and_can_be_revoked() {
    let options = CloudOptions {
        password: PASSWORD.into(),
        token_ttl: Duration::from_millis(300),
        ..CloudOptions::default()
    };
    let sim = start_with(options, fast_config()).await;
    let (status, _) = sim.get("/compute/v2.1/flavors").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _) = sim.get("/compute/v2.1/flavors").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");

    let sim = start(fast_config()).await;
    let victim = sim.login("admin", "vre").await;
    let check = |subject: String| {
        sim.http
            .get(sim.url("/identity/v3/auth/tokens"))
            .header("X-Auth-Token", &sim.token)
            .header("X-Subject-Token", subject)
            .send()
    };
    let response = check(victim.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-subject-token"], victim.as_str());
    let response = sim
        .http
        .delete(sim.url("/identity/v3/auth/tokens"))
        .header("X-Auth-Token", &sim.token)
        .header("X-Subject-Token", &victim)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(check(victim.clone()).await.unwrap().status(), StatusCode::NOT_FOUND);
    let (status, _, _) = sim.call_full(Method::GET, "/compute/v2.1/flavors", None, &victim).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
}

#[tokio::test]
async fn project_listing_respects_roles() {
    let sim = start(fast_config()).await;
    let (status, body) = sim.get("/identity/v3/auth/projects").await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<&str> = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin", "vre"]);
    let demo = sim.login("demo", "vre").await;
    let (_, _, body) = sim
        .call_full(Method::GET, "/identity/v3/auth/projects", None, &demo)
        .await;
    assert_eq!(body["projects"].as_array().unwrap().len(), 1);
    let (status, _, body) = sim
        .call_full(
            Method::GET,
            &format!("/identity/v3/projects/{}", sim.handle.project_id("admin").unwrap()),
            None,
            &demo,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], 404);
}
