//! Keystone and Nova stand-ins on 127.0.0.1 for the unit tests: the first
//! call of every method and path is refused (the flavor listing with 503,
//! the rest with 429 and `Retry-After: 3`, as a rate-limiting front end
//! answers), the next ones are served as Nova documents them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

use crate::provider::OpenStackProvider;
use crate::settings::OpenStackSettings;

/// What the stand-in Nova saw and holds.
#[derive(Default)]
pub struct Nova {
    /// How many calls each `METHOD /path` got.
    pub calls: BTreeMap<String, u32>,
    /// Bodies of `POST /os-keypairs`.
    pub imports: Vec<Value>,
    keypair: Option<Value>,
}

/// A running stand-in.
pub struct Stub {
    /// Keystone's address (`http://127.0.0.1:<port>/v3`).
    pub auth_url: String,
    /// The stand-in Nova's record.
    pub nova: Arc<Mutex<Nova>>,
}

impl Stub {
    /// A provider logged in to this stand-in as `admin`.
    pub fn provider(&self) -> OpenStackProvider {
        OpenStackProvider::with_password(
            &self.auth_url,
            "admin",
            "pw",
            "vre",
            "Default",
            OpenStackSettings::default(),
        )
    }
}

fn answer(status: u16, headers: &[(&'static str, String)], body: Value) -> (StatusCode, HeaderMap, String) {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in headers {
        h.insert(*k, v.parse().unwrap());
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    (StatusCode::from_u16(status).unwrap(), h, body)
}

/// Starts a stand-in on a free port of 127.0.0.1.
pub async fn start() -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let nova: Arc<Mutex<Nova>> = Arc::default();
    let (state, root) = (nova.clone(), base.clone());
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: String| {
        let (state, root) = (state.clone(), root.clone());
        async move {
            let path = uri.path().trim_end_matches('/').to_string();
            let compute = format!("{root}/compute/v2.1");
            if method == Method::POST && path == "/v3/auth/tokens" {
                return answer(
                    201,
                    &[("x-subject-token", "gAAAAABWHAXl".into())],
                    json!({"token": {
                        "methods": ["password"], "expires_at": "2031-01-01T01:00:00.000000Z",
                        "issued_at": "2031-01-01T00:00:00.000000Z",
                        "project": {"id": "a6944d763bf64ee6a275f1263fae0352", "name": "vre", "domain": {"id": "default"}},
                        "catalog": [{"type": "compute", "name": "nova", "endpoints": [
                            {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": compute}]}]
                    }}),
                );
            }
            if method == Method::GET && path == "/compute/v2.1" {
                return answer(
                    200,
                    &[],
                    json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
                        "links": [{"rel": "self", "href": format!("{compute}/")}]}}),
                );
            }
            let mut nova = state.lock().unwrap();
            let seen = nova.calls.entry(format!("{method} {path}")).or_insert(0);
            *seen += 1;
            let first = *seen == 1;
            let keypair = "/compute/v2.1/os-keypairs/lab-key";
            match (method.as_str(), path.as_str()) {
                ("GET", "/compute/v2.1/flavors/detail") if first => answer(
                    503,
                    &[],
                    json!({"computeFault": {"code": 503, "message": "The server is currently unavailable. Please try again at a later time."}}),
                ),
                (_, _) if first => answer(
                    429,
                    &[("retry-after", "3".into())],
                    json!({"overLimit": {"code": 429, "message": "This request was rate-limited.", "retryAfter": "3"}}),
                ),
                ("GET", "/compute/v2.1/flavors/detail") => {
                    let flavor = |id: &str, name: &str, vcpus: u64, ram: u64, disk: u64| {
                        json!({"id": id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "swap": 0,
                               "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true,
                               "links": [{"rel": "self", "href": format!("{compute}/flavors/{id}")}]})
                    };
                    if uri.query().is_some_and(|q| q.contains("marker=2")) {
                        answer(200, &[], json!({"flavors": [flavor("3", "m1.medium", 2, 4096, 40)]}))
                    } else {
                        answer(
                            200,
                            &[],
                            json!({"flavors": [flavor("1", "m1.tiny", 1, 512, 1), flavor("2", "m1.small", 1, 2048, 20)],
                                   "flavors_links": [{"rel": "next", "href": format!("{compute}/flavors/detail?limit=2&marker=2")}]}),
                        )
                    }
                }
                ("GET", p) if p == keypair => match &nova.keypair {
                    Some(k) => answer(200, &[], json!({ "keypair": k })),
                    None => answer(
                        404,
                        &[],
                        json!({"itemNotFound": {"code": 404, "message": "Keypair lab-key not found for user ee4dfb6e5540447cb3741905149d9b6e"}}),
                    ),
                },
                ("POST", "/compute/v2.1/os-keypairs") => {
                    let sent: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    nova.imports.push(sent.clone());
                    let k = json!({"name": sent["keypair"]["name"], "public_key": sent["keypair"]["public_key"],
                                   "fingerprint": "7e:eb:ab:24:ba:d1:e1:88:ae:9a:fb:66:53:df:d3:bd", "type": "ssh",
                                   "user_id": "ee4dfb6e5540447cb3741905149d9b6e"});
                    nova.keypair = Some(k.clone());
                    answer(201, &[], json!({ "keypair": k }))
                }
                ("DELETE", p) if p == keypair => match nova.keypair.take() {
                    Some(_) => answer(204, &[], Value::Null),
                    None => answer(404, &[], json!({"itemNotFound": {"code": 404, "message": "Keypair lab-key not found"}})),
                },
                _ => answer(404, &[], json!({"itemNotFound": {"code": 404, "message": format!("no route {path}")}})),
            }
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Stub {
        auth_url: format!("{base}/v3"),
        nova,
    }
}
