//! An in-memory Compute Engine v1 on 127.0.0.1: the OAuth2 token endpoint
//! (JWT-bearer grant, the assertion's RS256 signature verified) and the
//! handful of resources vre uses (networks, subnetworks, firewalls, images,
//! addresses, disks, instances with bulkInsert and their actions, zone /
//! region / global operations with `wait`), with the status codes, error
//! bodies and operation objects the API reference documents. Every request
//! is checked against the discovery document first; a request the document
//! does not allow is answered 400 and recorded in [`FakeCompute::problems`].
//!
//! Faults can be injected: a 429 with Retry-After on the next matching
//! request, and a bulkInsert whose operation finishes with an error.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::Regex;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

use super::discovery::Discovery;
use vre_testkit::fake_api::{ApiFront, json_body, query_pairs, serve_fake};

pub const PROJECT: &str = "vre-test-project";
pub const ZONE: &str = "europe-north1-a";
pub const REGION: &str = "europe-north1";

/// The collections the fake keeps.
const COLLECTIONS: &[&str] = &[
    "networks",
    "subnetworks",
    "firewalls",
    "images",
    "addresses",
    "disks",
    "instances",
];

/// A collection of resources: `projects/p/zones/z/instances` -> name -> resource.
type Collections = BTreeMap<String, BTreeMap<String, Value>>;

struct Operation {
    json: Value,
    /// Answers of `wait` still RUNNING before DONE.
    running_waits: u32,
}

struct FailedBulk {
    name_contains: String,
    code: String,
    message: String,
}

#[derive(Default)]
struct State {
    items: Collections,
    operations: BTreeMap<String, Operation>,
    next_id: u64,
    next_ip: u32,
    failed_bulks: Vec<FailedBulk>,
}

pub struct FakeCompute {
    state: Mutex<State>,
    discovery: Discovery,
    /// DER RSAPublicKey the token endpoint verifies assertions with.
    public_key: Mutex<Option<Vec<u8>>>,
    front: ApiFront,
    pub base: String,
}

fn google_error(status: u16, reason: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }});
    (StatusCode::from_u16(status).expect("status"), axum::Json(body)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn last(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl FakeCompute {
    /// Starts the server on an ephemeral port.
    pub async fn start() -> Arc<FakeCompute> {
        let make = |base| FakeCompute {
            state: Mutex::new(State {
                next_id: 1_000_000,
                ..State::default()
            }),
            discovery: Discovery::load(),
            public_key: Mutex::new(None),
            front: ApiFront::default(),
            base,
        };
        let fake = serve_fake(make, FakeCompute::handle).await;
        fake.seed();
        fake
    }

    /// The key whose signatures the token endpoint accepts.
    pub fn trust(&self, public_key_der: Vec<u8>) {
        *self.public_key.lock().unwrap() = Some(public_key_der);
    }

    /// The next `method` request whose path contains `path_contains` gets 429.
    pub fn throttle_once(&self, method: &str, path_contains: &str) {
        self.front.throttle_once(method, path_contains);
    }

    /// The next bulkInsert of an instance whose name contains `name_contains` fails in its operation.
    pub fn fail_next_bulk_insert(&self, name_contains: &str, code: &str, message: &str) {
        self.state.lock().unwrap().failed_bulks.push(FailedBulk {
            name_contains: name_contains.into(),
            code: code.into(),
            message: message.into(),
        });
    }

    /// Injected faults not yet served.
    pub fn faults_left(&self) -> usize {
        self.front.throttles_left() + self.state.lock().unwrap().failed_bulks.len()
    }

    /// What the discovery document refused.
    pub fn problems(&self) -> Vec<String> {
        self.front.problems()
    }

    /// Requests with `method` whose path ends with `path_suffix`.
    pub fn requests(&self, method: &str, path_suffix: &str) -> usize {
        self.front.count(method, |p| p.ends_with(path_suffix))
    }

    /// All requests so far, `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.front.log()
    }

    /// The resources of a collection (`zones/europe-north1-a/instances`, `global/networks`, ...).
    pub fn items(&self, collection: &str) -> BTreeMap<String, Value> {
        let key = format!("projects/{PROJECT}/{collection}");
        self.state.lock().unwrap().items.get(&key).cloned().unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}compute/v1/{path}", self.base)
    }

    /// The public catalogue: an Ubuntu image family in ubuntu-os-cloud.
    fn seed(&self) {
        let mut s = self.state.lock().unwrap();
        let img = "ubuntu-2404-noble-amd64-v20250101";
        let coll = "projects/ubuntu-os-cloud/global/images".to_string();
        let v = json!({
            "kind": "compute#image",
            "id": "1111",
            "name": img,
            "family": "ubuntu-2404-lts-amd64",
            "status": "READY",
            "selfLink": self.url(&format!("{coll}/{img}")),
        });
        s.items.entry(coll).or_default().insert(img.into(), v);
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_string();
        self.front.record(&method, &path);
        if method == Method::POST && path == "/token" {
            return self.token(&headers, &body);
        }
        let Some(rel) = path.strip_prefix("/compute/v1/") else {
            return google_error(404, "notFound", &format!("no API at {path}"));
        };
        if !self.front.authorized(&headers) {
            return google_error(401, "authError", "Request had invalid authentication credentials.");
        }
        // the document's verdict
        let query = query_pairs(&uri);
        let body = match json_body(&body) {
            Ok(b) => b,
            Err(e) => return google_error(400, "parseError", &format!("body is not JSON: {e}")),
        };
        let problems = self
            .discovery
            .check_request(method.as_str(), &path, &query, body.as_ref());
        if !problems.is_empty() {
            self.front.refuse(&problems);
            return google_error(400, "invalid", &problems.join("; "));
        }
        // injected throttling
        if self.front.take_throttle(&method, &path) {
            let mut r = google_error(429, "rateLimitExceeded", "Rate Limit Exceeded");
            r.headers_mut().insert("retry-after", "1".parse().expect("header"));
            return r;
        }
        let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let segs: Vec<&str> = rel.split('/').collect();
        self.route(&method, &segs, &q, body.unwrap_or(Value::Null))
    }

    fn token(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        let oauth_error = |e: &str, d: &str| {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": e, "error_description": d})),
            )
                .into_response()
        };
        if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
            return oauth_error("invalid_request", "expected a form body");
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return oauth_error("unsupported_grant_type", "Invalid grant_type");
        }
        let Some(jwt) = form.get("assertion") else {
            return oauth_error("invalid_request", "Missing required parameter: assertion");
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return oauth_error("invalid_grant", "Invalid JWT");
        }
        let key = self.public_key.lock().unwrap().clone();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
        let signed = format!("{}.{}", parts[0], parts[1]);
        let verified = key.is_some_and(|k| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
        });
        if !verified {
            return oauth_error("invalid_grant", "Invalid JWT Signature.");
        }
        let claims: Value = URL_SAFE_NO_PAD
            .decode(parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if claims["aud"] != format!("{}token", self.base) || claims["scope"].as_str().is_none() {
            return oauth_error("invalid_grant", "Invalid JWT: aud or scope");
        }
        let token = self.front.issue_token("ya29.fake-");
        ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
    }

    fn route(&self, method: &Method, segs: &[&str], q: &dyn Fn(&str) -> Option<String>, body: Value) -> Response {
        let m = method.as_str();
        match segs {
            ["projects", p, "zones", z] if m == "GET" => {
                if *z == ZONE {
                    ok(json!({"kind": "compute#zone", "name": z, "status": "UP",
                              "region": self.url(&format!("projects/{p}/regions/{REGION}"))}))
                } else {
                    google_error(
                        404,
                        "notFound",
                        &format!("The resource 'projects/{p}/zones/{z}' was not found"),
                    )
                }
            }
            ["projects", p, "regions", r] if m == "GET" => ok(json!({
                "kind": "compute#region", "name": r, "status": "UP",
                "quotas": [{"metric": "CPUS", "limit": 24.0, "usage": 0.0},
                           {"metric": "STATIC_ADDRESSES", "limit": 8.0, "usage": 0.0}],
                "selfLink": self.url(&format!("projects/{p}/regions/{r}")),
            })),
            ["projects", p, "zones", z, "machineTypes", t] if m == "GET" => {
                let cpus = match *t {
                    "e2-standard-2" | "e2-medium" => 2,
                    "e2-standard-4" => 4,
                    _ => {
                        return google_error(
                            404,
                            "notFound",
                            &format!("The resource 'projects/{p}/zones/{z}/machineTypes/{t}' was not found"),
                        );
                    }
                };
                ok(json!({"kind": "compute#machineType", "name": t, "guestCpus": cpus, "zone": z}))
            }
            ["projects", p, "global", "images", "family", f] if m == "GET" => {
                let s = self.state.lock().unwrap();
                let coll = format!("projects/{p}/global/images");
                let found = s
                    .items
                    .get(&coll)
                    .and_then(|c| c.values().find(|i| i["family"] == *f).cloned());
                match found {
                    Some(v) => ok(v),
                    None => google_error(
                        404,
                        "notFound",
                        &format!("The resource 'projects/{p}/global/images/family/{f}' was not found"),
                    ),
                }
            }
            [.., "operations", op, "wait"] if m == "POST" => self.wait(op),
            ["projects", p, "zones", z, "instances", "bulkInsert"] if m == "POST" => self.bulk_insert(p, z, body),
            ["projects", p, "zones", z, "instances", i, action] if m == "POST" => {
                self.instance_action(p, z, i, action, q, body)
            }
            [.., coll] if COLLECTIONS.contains(coll) => {
                // a collection: list or insert
                let coll = segs.join("/");
                match m {
                    "GET" => self.list(&coll, q("filter")),
                    "POST" => self.insert(&coll, body),
                    _ => google_error(405, "badRequest", "method not allowed"),
                }
            }
            [..] => {
                let (coll, name) = segs.split_at(segs.len() - 1);
                let coll = coll.join("/");
                match m {
                    "GET" => self.get(&coll, name[0]),
                    "DELETE" => self.delete(&coll, name[0]),
                    "PATCH" => self.patch(&coll, name[0], body),
                    _ => google_error(405, "badRequest", "method not allowed"),
                }
            }
        }
    }

    fn get(&self, coll: &str, name: &str) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(v) = s.items.get_mut(coll).and_then(|c| c.get_mut(name)) else {
            return google_error(404, "notFound", &format!("The resource '{coll}/{name}' was not found"));
        };
        let out = v.clone();
        // instances boot: STAGING is reported once, then RUNNING
        if v["status"] == "STAGING" {
            v["status"] = json!("RUNNING");
        }
        ok(out)
    }

    fn list(&self, coll: &str, filter: Option<String>) -> Response {
        let mut s = self.state.lock().unwrap();
        let mut items = Vec::new();
        if let Some(c) = s.items.get_mut(coll) {
            for v in c.values_mut() {
                if filter.as_deref().is_none_or(|f| matches_filter(v, f)) {
                    items.push(v.clone());
                    if v["status"] == "STAGING" {
                        v["status"] = json!("RUNNING");
                    }
                }
            }
        }
        let kind = format!("compute#{}List", last(coll).trim_end_matches('s'));
        ok(json!({"kind": kind, "id": coll, "items": items, "selfLink": self.url(coll)}))
    }

    fn new_op(
        &self,
        s: &mut State,
        scope: &str,
        op_type: &str,
        target: &str,
        error: Option<(String, String)>,
    ) -> Response {
        s.next_id += 1;
        let name = format!("operation-{}-{}", s.next_id, op_type.to_lowercase());
        let mut op = json!({
            "kind": "compute#operation",
            "id": s.next_id.to_string(),
            "name": name,
            "operationType": op_type,
            "targetLink": self.url(target),
            "status": "RUNNING",
            "progress": 0,
            "user": "vre@vre-test-project.iam.gserviceaccount.com",
            "insertTime": "2025-01-01T10:00:00.000-08:00",
            "selfLink": self.url(&format!("{scope}/operations/{name}")),
        });
        if let Some(z) = scope.split("/zones/").nth(1) {
            op["zone"] = json!(self.url(&format!("projects/{PROJECT}/zones/{z}")));
        } else if let Some(r) = scope.split("/regions/").nth(1) {
            op["region"] = json!(self.url(&format!("projects/{PROJECT}/regions/{r}")));
        }
        let mut done = op.clone();
        done["status"] = json!("DONE");
        done["progress"] = json!(100);
        if let Some((code, message)) = error {
            done["error"] = json!({"errors": [{"code": code, "message": message}]});
            done["httpErrorStatusCode"] = json!(503);
            done["httpErrorMessage"] = json!("SERVICE UNAVAILABLE");
        }
        s.operations.insert(
            name,
            Operation {
                json: done,
                running_waits: 1,
            },
        );
        ok(op)
    }

    fn wait(&self, name: &str) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(op) = s.operations.get_mut(name) else {
            return google_error(
                404,
                "notFound",
                &format!("The resource 'operations/{name}' was not found"),
            );
        };
        if op.running_waits > 0 {
            op.running_waits -= 1;
            let mut running = op.json.clone();
            running["status"] = json!("RUNNING");
            running.as_object_mut().expect("object").remove("error");
            return ok(running);
        }
        ok(op.json.clone())
    }

    fn scope_of(coll: &str) -> String {
        // projects/p/zones/z/instances -> projects/p/zones/z ; projects/p/global/x -> projects/p/global
        let segs: Vec<&str> = coll.split('/').collect();
        segs[..segs.len() - 1].join("/")
    }

    fn insert(&self, coll: &str, mut v: Value) -> Response {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let mut s = self.state.lock().unwrap();
        if s.items.get(coll).is_some_and(|c| c.contains_key(&name)) {
            return google_error(
                409,
                "alreadyExists",
                &format!("The resource '{coll}/{name}' already exists"),
            );
        }
        s.next_id += 1;
        v["id"] = json!(s.next_id.to_string());
        v["selfLink"] = json!(self.url(&format!("{coll}/{name}")));
        v["creationTimestamp"] = json!("2025-01-01T10:00:00.000-08:00");
        let scope = Self::scope_of(coll);
        if let Some(z) = scope.split("/zones/").nth(1) {
            v["zone"] = json!(self.url(&format!("projects/{PROJECT}/zones/{z}")));
        }
        if let Some(r) = scope.split("/regions/").nth(1) {
            v["region"] = json!(self.url(&format!("projects/{PROJECT}/regions/{r}")));
        }
        match last(coll) {
            "networks" => {
                v["kind"] = json!("compute#network");
                if v["autoCreateSubnetworks"] == true {
                    let sub = json!({
                        "kind": "compute#subnetwork", "name": name, "network": self.url(&format!("{coll}/{name}")),
                        "ipCidrRange": "10.166.0.0/20", "region": self.url(&format!("projects/{PROJECT}/regions/{REGION}")),
                        "selfLink": self.url(&format!("projects/{PROJECT}/regions/{REGION}/subnetworks/{name}")),
                    });
                    s.items
                        .entry(format!("projects/{PROJECT}/regions/{REGION}/subnetworks"))
                        .or_default()
                        .insert(name.clone(), sub);
                }
            }
            "subnetworks" => {
                v["kind"] = json!("compute#subnetwork");
                let range: vre_core::spec::Ipv4Cidr = match v["ipCidrRange"].as_str().unwrap_or("").parse() {
                    Ok(r) => r,
                    Err(e) => {
                        return google_error(
                            400,
                            "invalid",
                            &format!("Invalid value for field 'resource.ipCidrRange': {e}"),
                        );
                    }
                };
                v["gatewayAddress"] = json!(range.host(1).map(|h| h.to_string()));
            }
            "firewalls" => v["kind"] = json!("compute#firewall"),
            "images" => {
                v["kind"] = json!("compute#image");
                v["status"] = json!("READY");
            }
            "addresses" => {
                v["kind"] = json!("compute#address");
                v["status"] = json!("RESERVED");
                if v["addressType"] != "INTERNAL" {
                    s.next_ip += 1;
                    v["address"] = json!(format!("34.88.0.{}", s.next_ip));
                }
            }
            "disks" => {
                v["kind"] = json!("compute#disk");
                v["status"] = json!("READY");
            }
            other => return google_error(400, "invalid", &format!("the fake has no insert for {other}")),
        }
        s.items.entry(coll.to_string()).or_default().insert(name.clone(), v);
        let target = format!("{coll}/{name}");
        self.new_op(&mut s, &scope, "insert", &target, None)
    }

    fn patch(&self, coll: &str, name: &str, body: Value) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(v) = s.items.get_mut(coll).and_then(|c| c.get_mut(name)) else {
            return google_error(404, "notFound", &format!("The resource '{coll}/{name}' was not found"));
        };
        for (k, x) in body.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        let target = format!("{coll}/{name}");
        self.new_op(&mut s, &Self::scope_of(coll), "patch", &target, None)
    }

    fn delete(&self, coll: &str, name: &str) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(v) = s.items.get(coll).and_then(|c| c.get(name)).cloned() else {
            return google_error(404, "notFound", &format!("The resource '{coll}/{name}' was not found"));
        };
        let url = self.url(&format!("{coll}/{name}"));
        let in_use = |by: &str| {
            google_error(
                400,
                "resourceInUseByAnotherResource",
                &format!(
                    "The {} resource '{coll}/{name}' is already being used by '{by}'",
                    last(coll).trim_end_matches('s')
                ),
            )
        };
        match last(coll) {
            "networks" => {
                let users = s
                    .items
                    .iter()
                    .filter(|(c, _)| c.ends_with("/subnetworks") || c.ends_with("/firewalls"));
                for (_, items) in users {
                    if let Some(u) = items.values().find(|x| {
                        x["network"]
                            .as_str()
                            .is_some_and(|n| n.ends_with(&format!("global/networks/{name}")))
                    }) && !(u["name"] == name && v["autoCreateSubnetworks"] == true)
                    {
                        return in_use(u["selfLink"].as_str().unwrap_or(""));
                    }
                }
                // auto subnetworks go with their network
                if v["autoCreateSubnetworks"] == true
                    && let Some(c) = s
                        .items
                        .get_mut(&format!("projects/{PROJECT}/regions/{REGION}/subnetworks"))
                {
                    c.remove(name);
                }
            }
            "subnetworks" => {
                let instances = s
                    .items
                    .iter()
                    .filter(|(c, _)| c.ends_with("/instances"))
                    .flat_map(|(_, i)| i.values());
                for i in instances {
                    if i.pointer("/networkInterfaces/0/subnetwork")
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.ends_with(&format!("subnetworks/{name}")))
                    {
                        return in_use(i["selfLink"].as_str().unwrap_or(""));
                    }
                }
            }
            "addresses" | "disks" => {
                if let Some(u) = v["users"].as_array().and_then(|u| u.first()) {
                    return in_use(u.as_str().unwrap_or(""));
                }
            }
            "instances" => {
                let disks_coll = format!("{}/disks", Self::scope_of(coll));
                for d in v["disks"].as_array().into_iter().flatten() {
                    let dname = last(d["source"].as_str().unwrap_or("")).to_string();
                    if let Some(disk) = s.items.get_mut(&disks_coll).and_then(|c| c.get_mut(&dname)) {
                        disk["users"] = json!([]);
                    }
                    if d["autoDelete"] == true
                        && let Some(c) = s.items.get_mut(&disks_coll)
                    {
                        c.remove(&dname);
                    }
                }
                for nat in v
                    .pointer("/networkInterfaces/0/accessConfigs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    release_address(&mut s, nat["natIP"].as_str().unwrap_or(""));
                }
                release_address(
                    &mut s,
                    v.pointer("/networkInterfaces/0/networkIP")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
            }
            _ => {}
        }
        let _ = url;
        s.items.get_mut(coll).expect("found above").remove(name);
        let target = format!("{coll}/{name}");
        self.new_op(&mut s, &Self::scope_of(coll), "delete", &target, None)
    }

    fn bulk_insert(&self, p: &str, z: &str, body: Value) -> Response {
        let names: Vec<String> = body["perInstanceProperties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        if body["count"].as_str() != Some(names.len().to_string().as_str()) {
            return google_error(400, "invalid", "count must equal the number of perInstanceProperties");
        }
        let coll = format!("projects/{p}/zones/{z}/instances");
        let scope = format!("projects/{p}/zones/{z}");
        let mut s = self.state.lock().unwrap();
        if let Some(i) = s
            .failed_bulks
            .iter()
            .position(|f| names.iter().any(|n| n.contains(&f.name_contains)))
        {
            let f = s.failed_bulks.remove(i);
            return self.new_op(&mut s, &scope, "bulkInsert", &coll, Some((f.code, f.message)));
        }
        for n in &names {
            if s.items.get(&coll).is_some_and(|c| c.contains_key(n)) {
                return google_error(
                    409,
                    "alreadyExists",
                    &format!("The resource '{coll}/{n}' already exists"),
                );
            }
        }
        let props = &body["instanceProperties"];
        for n in &names {
            s.next_id += 1;
            let id = s.next_id;
            let subnet_url = props
                .pointer("/networkInterfaces/0/subnetwork")
                .and_then(Value::as_str)
                .unwrap_or("");
            let sub_name = last(subnet_url).to_string();
            let range = s
                .items
                .get(&format!("projects/{p}/regions/{REGION}/subnetworks"))
                .and_then(|c| c.get(&sub_name))
                .and_then(|x| x["ipCidrRange"].as_str())
                .and_then(|r| r.parse::<vre_core::spec::Ipv4Cidr>().ok());
            let Some(range) = range else {
                return google_error(
                    400,
                    "invalid",
                    &format!("Invalid value for field 'subnetwork': '{subnet_url}'"),
                );
            };
            let ip = match props.pointer("/networkInterfaces/0/networkIP").and_then(Value::as_str) {
                Some(ip) => ip.to_string(),
                None => match free_internal_ip(&s, &range) {
                    Some(ip) => ip,
                    None => return google_error(400, "invalid", "the subnetwork is full"),
                },
            };
            let mut access = props
                .pointer("/networkInterfaces/0/accessConfigs/0")
                .cloned()
                .unwrap_or(Value::Null);
            if !access.is_null() {
                match access["natIP"].as_str().map(str::to_string) {
                    Some(nat) => {
                        if !use_address(&mut s, &nat, &self.url(&format!("{coll}/{n}"))) {
                            return google_error(
                                400,
                                "invalid",
                                &format!("IP address {nat} is not reserved or already in use"),
                            );
                        }
                    }
                    None => {
                        s.next_ip += 1;
                        access["natIP"] = json!(format!("35.228.1.{}", s.next_ip));
                    }
                }
            }
            use_address(&mut s, &ip, &self.url(&format!("{coll}/{n}")));
            // the boot disk
            let init = props
                .pointer("/disks/0/initializeParams")
                .cloned()
                .unwrap_or(Value::Null);
            let disk = json!({
                "kind": "compute#disk", "name": n, "status": "READY",
                "sizeGb": init["diskSizeGb"].as_str().unwrap_or("10"),
                "sourceImage": init["sourceImage"], "labels": init["labels"],
                "zone": self.url(&scope), "users": [self.url(&format!("{coll}/{n}"))],
                "selfLink": self.url(&format!("{scope}/disks/{n}")),
            });
            s.items
                .entry(format!("{scope}/disks"))
                .or_default()
                .insert(n.clone(), disk);
            let mut nic = props.pointer("/networkInterfaces/0").cloned().unwrap_or(json!({}));
            nic["name"] = json!("nic0");
            nic["networkIP"] = json!(ip);
            nic["network"] = json!(self.url(nic["network"].as_str().unwrap_or("")));
            nic["subnetwork"] = json!(self.url(subnet_url));
            nic["accessConfigs"] = if access.is_null() { json!([]) } else { json!([access]) };
            let instance = json!({
                "kind": "compute#instance", "id": id.to_string(), "name": n,
                "status": "STAGING",
                "machineType": self.url(&format!("{scope}/machineTypes/{}", props["machineType"].as_str().unwrap_or(""))),
                "zone": self.url(&scope),
                "labels": props["labels"], "tags": props["tags"],
                "metadata": {"kind": "compute#metadata", "fingerprint": "abc=", "items": props.pointer("/metadata/items")},
                "disks": [{"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "boot": true,
                           "autoDelete": true, "deviceName": "persistent-disk-0", "index": 0,
                           "source": self.url(&format!("{scope}/disks/{n}"))}],
                "networkInterfaces": [nic],
                "selfLink": self.url(&format!("{coll}/{n}")),
            });
            s.items.entry(coll.clone()).or_default().insert(n.clone(), instance);
        }
        self.new_op(&mut s, &scope, "bulkInsert", &coll, None)
    }

    fn instance_action(
        &self,
        p: &str,
        z: &str,
        name: &str,
        action: &str,
        q: &dyn Fn(&str) -> Option<String>,
        body: Value,
    ) -> Response {
        let coll = format!("projects/{p}/zones/{z}/instances");
        let scope = format!("projects/{p}/zones/{z}");
        let mut s = self.state.lock().unwrap();
        let Some(mut inst) = s.items.get(&coll).and_then(|c| c.get(name)).cloned() else {
            return google_error(404, "notFound", &format!("The resource '{coll}/{name}' was not found"));
        };
        let inst_url = self.url(&format!("{coll}/{name}"));
        match action {
            "attachDisk" => {
                let dname = last(body["source"].as_str().unwrap_or("")).to_string();
                let Some(disk) = s
                    .items
                    .get_mut(&format!("{scope}/disks"))
                    .and_then(|c| c.get_mut(&dname))
                else {
                    return google_error(
                        404,
                        "notFound",
                        &format!("The resource '{scope}/disks/{dname}' was not found"),
                    );
                };
                if disk["users"].as_array().is_some_and(|u| !u.is_empty()) {
                    return google_error(
                        400,
                        "resourceInUseByAnotherResource",
                        &format!("The disk resource '{dname}' is already being used"),
                    );
                }
                disk["users"] = json!([inst_url]);
                let disks = inst["disks"].as_array_mut().expect("disks");
                let index = disks.len();
                disks.push(json!({"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": body["mode"],
                                  "deviceName": body["deviceName"], "index": index, "boot": false, "autoDelete": body["autoDelete"],
                                  "source": self.url(&format!("{scope}/disks/{dname}"))}));
            }
            "detachDisk" => {
                let device = q("deviceName").unwrap_or_default();
                let disks = inst["disks"].as_array_mut().expect("disks");
                let Some(i) = disks.iter().position(|d| d["deviceName"] == device.as_str()) else {
                    return google_error(
                        400,
                        "invalid",
                        &format!(
                            "Invalid value for field 'deviceName': '{device}'. No attached disk found with device name '{device}'"
                        ),
                    );
                };
                let d = disks.remove(i);
                let dname = last(d["source"].as_str().unwrap_or("")).to_string();
                if let Some(disk) = s
                    .items
                    .get_mut(&format!("{scope}/disks"))
                    .and_then(|c| c.get_mut(&dname))
                {
                    disk["users"] = json!([]);
                }
            }
            "addAccessConfig" => {
                let configs = inst
                    .pointer("/networkInterfaces/0/accessConfigs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !configs.is_empty() {
                    return google_error(400, "invalid", "At most one access config currently supported.");
                }
                let nat = body["natIP"].as_str().unwrap_or("").to_string();
                if !use_address(&mut s, &nat, &inst_url) {
                    return google_error(
                        400,
                        "invalid",
                        &format!("IP address {nat} is not reserved or already in use"),
                    );
                }
                inst["networkInterfaces"][0]["accessConfigs"] = json!([body]);
            }
            "deleteAccessConfig" => {
                let cfg = q("accessConfig").unwrap_or_default();
                let configs = inst["networkInterfaces"][0]["accessConfigs"]
                    .as_array_mut()
                    .expect("configs");
                let Some(i) = configs.iter().position(|c| c["name"] == cfg.as_str()) else {
                    return google_error(400, "invalid", &format!("No access config named '{cfg}'"));
                };
                let removed = configs.remove(i);
                release_address(&mut s, removed["natIP"].as_str().unwrap_or(""));
            }
            other => return google_error(400, "invalid", &format!("the fake has no instance action {other}")),
        }
        s.items.get_mut(&coll).expect("exists").insert(name.to_string(), inst);
        let target = format!("{coll}/{name}");
        self.new_op(&mut s, &scope, action, &target, None)
    }
}

/// Marks a reserved address (external or internal) as used by `user`; false when it is not reservable.
fn use_address(s: &mut State, ip: &str, user: &str) -> bool {
    for (c, items) in s.items.iter_mut() {
        if !c.ends_with("/addresses") {
            continue;
        }
        if let Some(a) = items.values_mut().find(|a| a["address"] == ip) {
            if a["status"] == "IN_USE" {
                return false;
            }
            a["status"] = json!("IN_USE");
            a["users"] = json!([user]);
            return true;
        }
    }
    // an address nobody reserved: fine for internal (ephemeral) ones
    !ip.starts_with("34.88.")
}

fn release_address(s: &mut State, ip: &str) {
    for (c, items) in s.items.iter_mut() {
        if !c.ends_with("/addresses") {
            continue;
        }
        if let Some(a) = items.values_mut().find(|a| a["address"] == ip) {
            a["status"] = json!("RESERVED");
            a["users"] = json!([]);
        }
    }
}

/// The lowest host address of `range` (from .2) no instance has and no reservation holds.
fn free_internal_ip(s: &State, range: &vre_core::spec::Ipv4Cidr) -> Option<String> {
    let taken: Vec<String> = s
        .items
        .iter()
        .filter(|(c, _)| c.ends_with("/instances") || c.ends_with("/addresses"))
        .flat_map(|(_, i)| i.values())
        .filter_map(|v| {
            v.pointer("/networkInterfaces/0/networkIP")
                .or_else(|| v.get("address"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    (2..)
        .map_while(|n| range.host(n))
        .map(|h| h.to_string())
        .find(|h| !taken.contains(h))
}

/// The two filter forms vre sends: `labels.KEY = "VALUE"` and `name eq REGEX`.
fn matches_filter(v: &Value, filter: &str) -> bool {
    if let Some(rest) = filter.strip_prefix("labels.") {
        let Some((k, val)) = rest.split_once(" = ") else {
            return false;
        };
        return v["labels"][k] == val.trim_matches('"');
    }
    if let Some(pattern) = filter.strip_prefix("name eq ") {
        let re = Regex::new(&format!("^(?:{})$", pattern.trim_matches('"'))).expect("regex");
        return re.is_match(v["name"].as_str().unwrap_or(""));
    }
    panic!("the fake does not understand the filter {filter:?}")
}
