//! Shared by the `cloud_*` tests: a started cloud, a raw HTTP client with a
//! token, and a recording [`MachineEvents`].

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vre_sim::cloud::{CloudHandle, CloudOptions, CloudServer};
use vre_sim::{Machine, MachineEvents, SimConfig, SimStats};

pub const PASSWORD: &str = "test-password";

/// What the cloud told the machine side, in order.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(&'static str, Machine)>>,
}

impl Recorder {
    pub fn of(&self, kind: &str) -> Vec<Machine> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl MachineEvents for Recorder {
    fn booted(&self, machine: &Machine) {
        self.events.lock().unwrap().push(("booted", machine.clone()));
    }
    fn addresses_changed(&self, machine: &Machine) {
        self.events.lock().unwrap().push(("addresses_changed", machine.clone()));
    }
    fn deleted(&self, machine: &Machine) {
        self.events.lock().unwrap().push(("deleted", machine.clone()));
    }
}

/// Quick simulated time: a 30 s boot takes 30 ms.
pub fn fast_config() -> SimConfig {
    SimConfig {
        time_scale: 0.001,
        boot_jitter: Duration::ZERO,
        ..SimConfig::default()
    }
}

pub struct Sim {
    pub handle: CloudHandle,
    pub http: reqwest::Client,
    pub token: String,
    pub project_id: String,
    pub events: Arc<Recorder>,
    pub stats: Arc<SimStats>,
    /// Sent as `OpenStack-API-Version: compute X` on Nova calls, if set.
    pub compute_version: Option<String>,
}

pub async fn start(config: SimConfig) -> Sim {
    start_with(
        CloudOptions {
            password: PASSWORD.into(),
            ..CloudOptions::default()
        },
        config,
    )
    .await
}

pub async fn start_with(options: CloudOptions, config: SimConfig) -> Sim {
    let events = Arc::new(Recorder::default());
    let stats = Arc::new(SimStats::default());
    let handle = CloudServer::start(options, Arc::new(config), stats.clone(), events.clone())
        .await
        .expect("the cloud starts");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let project_id = handle.project_id("vre").expect("project vre is seeded");
    let mut sim = Sim {
        handle,
        http,
        token: String::new(),
        project_id,
        events,
        stats,
        compute_version: None,
    };
    sim.token = sim.login("admin", "vre").await;
    sim
}

pub fn password_auth(user: &str, password: &str, project: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}},
    }})
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    /// Keystone's answer to `POST /identity/v3/auth/tokens` with `body`
    /// (no token sent).
    pub async fn authenticate(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/identity/v3/auth/tokens"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The JSON document at `url`, fetched with no token (version discovery).
    pub async fn discover(&self, url: &str) -> Value {
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// A token for `user` scoped to `project`.
    pub async fn login(&self, user: &str, project: &str) -> String {
        let response = self.authenticate(&password_auth(user, PASSWORD, project)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "login as {user}");
        response.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    /// A call with the sim's token; returns the status and the JSON body
    /// (`Null` when empty or not JSON).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, body) = self.call_full(method, path, body, &self.token).await;
        (status, body)
    }

    pub async fn call_full(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path)).header("X-Auth-Token", token);
        if let (Some(v), true) = (&self.compute_version, path.starts_with("/compute")) {
            request = request.header("OpenStack-API-Version", format!("compute {v}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// The id of the seeded external network.
    pub async fn public_network(&self) -> String {
        let (_, body) = self.get("/networking/v2.0/networks?name=public").await;
        body["networks"][0]["id"].as_str().unwrap().to_string()
    }

    pub async fn image_id(&self, name: &str) -> String {
        let (_, body) = self.get(&format!("/image/v2/images?name={name}")).await;
        body["images"][0]["id"].as_str().unwrap().to_string()
    }

    /// A network with a subnet `cidr`, its router to `public`; returns
    /// (network, subnet, router).
    pub async fn private_network(&self, name: &str, cidr: &str) -> (String, String, String) {
        let (status, net) = self
            .post("/networking/v2.0/networks", json!({"network": {"name": name}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{net}");
        let net = net["network"]["id"].as_str().unwrap().to_string();
        let (status, sub) = self
            .post(
                "/networking/v2.0/subnets",
                json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4, "name": format!("{name}-subnet")}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        let sub = sub["subnet"]["id"].as_str().unwrap().to_string();
        let public = self.public_network().await;
        let (status, router) = self
            .post(
                "/networking/v2.0/routers",
                json!({"router": {"name": format!("{name}-router"), "external_gateway_info": {"network_id": public}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{router}");
        let router = router["router"]["id"].as_str().unwrap().to_string();
        let (status, body) = self
            .put(
                &format!("/networking/v2.0/routers/{router}/add_router_interface"),
                json!({"subnet_id": sub}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (net, sub, router)
    }

    /// Boots one server on `network` and waits until it is ACTIVE; returns its id.
    pub async fn active_server(&self, name: &str, network: &str) -> String {
        let image = self.image_id("ubuntu-24.04").await;
        let (status, body) = self
            .post(
                "/compute/v2.1/servers",
                json!({"server": {"name": name, "flavorRef": "2", "imageRef": image, "networks": [{"uuid": network}]}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["server"]["id"].as_str().unwrap().to_string();
        self.wait_server_status(&id, "ACTIVE").await;
        id
    }

    pub async fn wait_server_status(&self, id: &str, status: &str) -> Value {
        let path = format!("/compute/v2.1/servers/{id}");
        eventually(|| async {
            let (_, body) = self.get(&path).await;
            (body["server"]["status"] == status).then_some(body)
        })
        .await
    }
}

/// Polls `f` until it yields something (at most 10 s of wall time).
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
