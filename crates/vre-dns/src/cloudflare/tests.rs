//! The client against a local fake of the Cloudflare API v4 (127.0.0.1, an
//! ephemeral port) whose bodies follow the examples of Cloudflare's API
//! documentation: the envelope, `result_info` paging, the error envelope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T";
const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
/// The fake serves at most this many records per page, whatever `per_page` says, to exercise paging.
const FAKE_PAGE: usize = 2;

#[derive(Default)]
struct Fake {
    records: Vec<Value>,
    next_id: u32,
    /// Answer the next N calls with 429.
    throttle: u32,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn envelope(result: Value) -> Value {
    json!({"errors": [], "messages": [], "success": true, "result": result})
}

fn failure(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "success": false,
            "result": null
        })),
    )
        .into_response()
}

/// Authentication and throttling, as Cloudflare answers them.
fn gate(fake: &mut Fake, headers: &HeaderMap, call: String) -> Option<Response> {
    fake.calls.push(call);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Some(failure(StatusCode::FORBIDDEN, 10000, "Authentication error"));
    }
    if fake.throttle > 0 {
        fake.throttle -= 1;
        let mut r = failure(
            StatusCode::TOO_MANY_REQUESTS,
            971,
            "Please wait and consider throttling your request speed",
        );
        r.headers_mut().insert("retry-after", "7".parse().unwrap());
        return Some(r);
    }
    None
}

async fn zones(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(&mut f, &headers, "GET /zones".into()) {
        return r;
    }
    let result = if q.get("name").map(String::as_str) == Some("example.org") {
        json!([{
            "id": ZONE_ID,
            "account": {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "Example Account Name"},
            "activated_on": "2014-01-02T00:01:00.12345Z",
            "created_on": "2014-01-01T05:20:00.12345Z",
            "development_mode": 7200,
            "meta": {"cdn_only": true, "custom_certificate_quota": 1, "dns_only": true, "foundation_dns": true, "page_rule_quota": 100, "phishing_detected": false, "step": 2},
            "modified_on": "2014-01-01T05:20:00.12345Z",
            "name": "example.org",
            "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"],
            "original_dnshost": "NameCheap",
            "original_name_servers": ["ns1.originaldnshost.com", "ns2.originaldnshost.com"],
            "original_registrar": "GoDaddy",
            "owner": {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "Example Org", "type": "organization"},
            "paused": false,
            "status": "active",
            "type": "full",
            "vanity_name_servers": []
        }])
    } else {
        json!([])
    };
    let n = result.as_array().map_or(0, Vec::len);
    let mut body = envelope(result);
    body["result_info"] = json!({"count": n, "page": 1, "per_page": 20, "total_count": n, "total_pages": 1});
    axum::Json(body).into_response()
}

async fn list_records(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(
        &mut f,
        &headers,
        format!("GET records page={}", q.get("page").cloned().unwrap_or_default()),
    ) {
        return r;
    }
    if zone != ZONE_ID {
        return failure(
            StatusCode::BAD_REQUEST,
            7003,
            "Could not route to /zones/x/dns_records, perhaps your object identifier is invalid?",
        );
    }
    let matching: Vec<Value> = f
        .records
        .iter()
        .filter(|r| {
            q.get("comment.exact")
                .is_none_or(|c| r["comment"].as_str() == Some(c.as_str()))
        })
        .cloned()
        .collect();
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .min(FAKE_PAGE);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let total_pages = matching.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut body = envelope(json!(items));
    body["result_info"] = json!({
        "count": items.len(), "page": page, "per_page": per_page,
        "total_count": matching.len(), "total_pages": total_pages
    });
    axum::Json(body).into_response()
}

fn record_body(id: &str, name: &str, kind: &str, content: &str, proxied: bool, comment: Option<&str>) -> Value {
    json!({
        "id": id,
        "name": name,
        "type": kind,
        "content": content,
        "proxiable": true,
        "proxied": proxied,
        "ttl": 1,
        "settings": {"ipv4_only": true, "ipv6_only": true},
        "meta": {},
        "comment": comment,
        "tags": [],
        "created_on": "2014-01-01T05:20:00.12345Z",
        "modified_on": "2014-01-01T05:20:00.12345Z",
        "comment_modified_on": "2024-01-01T05:20:00.12345Z"
    })
}

async fn create_record(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(_zone): Path<String>,
    body: String,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(&mut f, &headers, "POST record".into()) {
        return r;
    }
    let b: Value = serde_json::from_str(&body).unwrap();
    let (name, kind, content) = (
        b["name"].as_str().unwrap(),
        b["type"].as_str().unwrap(),
        b["content"].as_str().unwrap(),
    );
    assert_eq!(b["ttl"], 1);
    if f.records
        .iter()
        .any(|r| r["name"] == name && r["type"] == kind && r["content"] == content)
    {
        return failure(StatusCode::BAD_REQUEST, 81058, "An identical record already exists.");
    }
    f.next_id += 1;
    let id = format!("372e67954025e0ba6aaa6d586b9e0b{:02}", f.next_id);
    let rec = record_body(
        &id,
        name,
        kind,
        content,
        b["proxied"].as_bool().unwrap(),
        b["comment"].as_str(),
    );
    f.records.push(rec.clone());
    axum::Json(envelope(rec)).into_response()
}

async fn patch_record(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((_z, id)): Path<(String, String)>,
    body: String,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(&mut f, &headers, format!("PATCH {id}")) {
        return r;
    }
    let b: Value = serde_json::from_str(&body).unwrap();
    match f.records.iter_mut().find(|r| r["id"] == id.as_str()) {
        Some(r) => {
            r["proxied"] = b["proxied"].clone();
            axum::Json(envelope(r.clone())).into_response()
        }
        None => failure(StatusCode::NOT_FOUND, 81044, "Record does not exist."),
    }
}

async fn delete_record(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((_z, id)): Path<(String, String)>,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(&mut f, &headers, format!("DELETE {id}")) {
        return r;
    }
    let before = f.records.len();
    f.records.retain(|r| r["id"] != id.as_str());
    if f.records.len() == before {
        return failure(StatusCode::NOT_FOUND, 81044, "Record does not exist.");
    }
    axum::Json(envelope(json!({"id": id}))).into_response()
}

async fn serve(fake: Fake) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(fake));
    let app = Router::new()
        .route("/client/v4/zones", get(zones))
        .route(
            "/client/v4/zones/{zone}/dns_records",
            get(list_records).post(create_record),
        )
        .route(
            "/client/v4/zones/{zone}/dns_records/{id}",
            patch(patch_record).delete(delete_record),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/client/v4"), shared)
}

fn others() -> Fake {
    Fake {
        records: vec![
            record_body(
                "aaaa0000000000000000000000000001",
                "www.example.org",
                "A",
                "198.51.100.4",
                true,
                None,
            ),
            record_body(
                "aaaa0000000000000000000000000002",
                "other.example.org",
                "A",
                "198.51.100.5",
                false,
                Some("vre:cluster=other"),
            ),
        ],
        ..Fake::default()
    }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn records_are_created_listed_updated_and_deleted_by_comment() {
    let (base, fake) = serve(others()).await;
    let dns = CloudflareDns::new(&base, TOKEN, "example.org", Some("mylab"), true).unwrap();
    let edges = ips(&["192.0.2.7", "192.0.2.8"]);
    assert_eq!(dns.domain("lab", &edges).as_deref(), Some("mylab.example.org"));
    let want = dns.records("lab", &edges);
    let names: Vec<(&str, String)> = want.iter().map(|r| (r.name.as_str(), r.address.to_string())).collect();
    assert_eq!(
        names,
        vec![
            ("mylab.example.org", "192.0.2.7".into()),
            ("mylab.example.org", "192.0.2.8".into()),
            ("*.mylab.example.org", "192.0.2.7".into()),
            ("*.mylab.example.org", "192.0.2.8".into()),
        ]
    );
    let made = dns.ensure_records("lab", &want).await.unwrap();
    assert_eq!(made.len(), 4);
    assert!(
        made.iter()
            .all(|r| r.kind == ResourceKind::DnsRecord && r.attr(ZONE_ID_ATTR) == Some(ZONE_ID))
    );
    {
        let f = fake.lock().unwrap();
        let ours: Vec<&Value> = f.records.iter().filter(|r| r["comment"] == "vre:cluster=lab").collect();
        assert_eq!(ours.len(), 4);
        assert!(ours.iter().all(|r| r["proxied"] == true && r["type"] == "A"));
        assert_eq!(f.calls.iter().filter(|c| c.starts_with("GET /zones")).count(), 1);
    }

    // listing pages through result_info (the fake serves 2 per page) and sees only ours
    let listed = dns.list_records("lab").await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(fake.lock().unwrap().calls.iter().any(|c| c == "GET records page=2"));
    let mut ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    let mut made_ids: Vec<&str> = made.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    made_ids.sort();
    assert_eq!(ids, made_ids);

    // ensuring again changes nothing; turning the proxy off patches in place
    let calls_before = fake.lock().unwrap().calls.len();
    let again = dns.ensure_records("lab", &want).await.unwrap();
    assert_eq!(
        again.iter().map(|r| &r.id).collect::<Vec<_>>(),
        made.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert!(
        fake.lock().unwrap().calls[calls_before..]
            .iter()
            .all(|c| c.starts_with("GET"))
    );
    let unproxied = CloudflareDns::new(&base, TOKEN, "example.org", Some("mylab"), false).unwrap();
    let want_off = unproxied.records("lab", &edges);
    let patched = unproxied.ensure_records("lab", &want_off).await.unwrap();
    assert!(patched.iter().all(|r| r.attr(PROXIED_ATTR) == Some("false")));
    assert_eq!(
        fake.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.starts_with("PATCH"))
            .count(),
        4
    );

    // destroy deletes exactly the cluster's records, and a second delete is fine
    for r in dns.list_records("lab").await.unwrap() {
        dns.delete_record(&r).await.unwrap();
        dns.delete_record(&r).await.unwrap();
    }
    let f = fake.lock().unwrap();
    let left: Vec<&str> = f.records.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(left, vec!["www.example.org", "other.example.org"]);
}

#[tokio::test]
async fn subdomain_defaults_to_the_cluster_name_and_ipv6_gets_aaaa() {
    let (base, fake) = serve(Fake::default()).await;
    let dns = CloudflareDns::new(&base, TOKEN, "Example.org.", None, false).unwrap();
    let edges = ips(&["2001:db8::7"]);
    assert_eq!(dns.domain("lab", &edges).as_deref(), Some("lab.example.org"));
    dns.ensure_records("lab", &dns.records("lab", &edges)).await.unwrap();
    let f = fake.lock().unwrap();
    assert!(
        f.records
            .iter()
            .all(|r| r["type"] == "AAAA" && r["content"] == "2001:db8::7")
    );
    assert_eq!(f.records.len(), 2);
}

#[tokio::test]
async fn error_envelopes_become_clear_cloud_errors() {
    let (base, fake) = serve(others()).await;
    // wrong token: Cloudflare's 10000 "Authentication error", not retriable
    let bad = CloudflareDns::new(&base, "wrong", "example.org", None, true).unwrap();
    let e = bad.list_records("lab").await.unwrap_err();
    assert!(e.retry().is_none());
    let Error::Cloud(c) = &e else { panic!("{e:?}") };
    assert_eq!(c.status, Some(403));
    assert_eq!(c.code.as_deref(), Some("10000"));
    assert_eq!(
        e.to_string(),
        "cloudflare look up zone: HTTP 403: Authentication error (code 10000)"
    );
    assert!(
        !format!("{bad:?}").contains("wrong"),
        "the token must not be in Debug output"
    );

    // throttled: retriable, with the server's Retry-After
    fake.lock().unwrap().throttle = 1;
    let dns = CloudflareDns::new(&base, TOKEN, "example.org", None, true).unwrap();
    let e = dns.list_records("lab").await.unwrap_err();
    assert_eq!(e.retry(), Some(Some(Duration::from_secs(7))));
    assert!(e.to_string().contains("code 971"), "{e}");
    // the retry succeeds
    assert!(dns.list_records("lab").await.unwrap().is_empty());

    // an unknown zone names the spec field
    let missing = CloudflareDns::new(&base, TOKEN, "nope.org", None, true).unwrap();
    let e = missing.list_records("lab").await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .starts_with("dns.zone: Cloudflare has no zone \"nope.org\""),
        "{e}"
    );

    // a conflicting record: the API's message and code, not retriable
    fake.lock().unwrap().records.push(record_body(
        "bbbb0000000000000000000000000001",
        "lab.example.org",
        "A",
        "192.0.2.9",
        true,
        Some("made by hand"),
    ));
    let e = dns
        .ensure_records("lab", &dns.records("lab", &ips(&["192.0.2.9"])))
        .await
        .unwrap_err();
    assert!(e.retry().is_none());
    assert!(
        e.to_string()
            .contains("An identical record already exists. (code 81058)"),
        "{e}"
    );
}

#[tokio::test]
async fn non_envelope_answers_and_dead_servers() {
    let app = Router::new().route(
        "/client/v4/zones",
        get(|| async { (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dns = CloudflareDns::new(&format!("http://{addr}/client/v4"), TOKEN, "example.org", None, true).unwrap();
    let e = dns.list_records("lab").await.unwrap_err();
    assert!(e.retry().is_some(), "502 is retriable");
    assert!(e.to_string().contains("502 Bad Gateway"), "{e}");

    // nothing listens: a transport error, retriable
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dns = CloudflareDns::new(
        &format!("http://127.0.0.1:{port}/client/v4"),
        TOKEN,
        "example.org",
        None,
        true,
    )
    .unwrap();
    assert!(dns.list_records("lab").await.unwrap_err().retry().is_some());
}

#[test]
fn a_missing_token_names_the_variable_without_any_call() {
    let e = CloudflareDns::from_lookup(|_| None, "example.org", None, true).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.starts_with("CLOUDFLARE_API_TOKEN is not set"), "{msg}");
    let e = CloudflareDns::from_lookup(
        |k| match k {
            TOKEN_ENV => Some(TOKEN.into()),
            _ => Some("ftp://x".into()),
        },
        "example.org",
        None,
        true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("CLOUDFLARE_API_URL"), "{e}");
    let ok = CloudflareDns::from_lookup(
        |k| (k == TOKEN_ENV).then(|| TOKEN.to_string()),
        "example.org",
        None,
        true,
    )
    .unwrap();
    assert_eq!(ok.base, DEFAULT_API_URL);
    assert!(!format!("{ok:?}").contains(TOKEN));
    assert!(matches!(crate::from_spec(&vre_core::spec::DnsSpec::None), Ok(None)));
    assert!(crate::from_spec(&vre_core::spec::DnsSpec::NipIo).unwrap().is_some());
}
