//! The front every in-memory cloud API of the provider tests shares: it
//! serves a handler on an ephemeral 127.0.0.1 port, logs each request,
//! knows the bearer tokens its token endpoint issued, serves injected
//! throttling once per fault, keeps what the API specification refused,
//! and parses a request's query and JSON body. The cloud's own resources,
//! error bodies and operations stay in the fake that uses it.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::Value;

/// Binds an ephemeral 127.0.0.1 port, builds the fake from its base URL
/// (`http://127.0.0.1:PORT/`) and serves every request through `handle`.
pub async fn serve_fake<T>(
    make: impl FnOnce(String) -> T,
    handle: fn(&T, Method, Uri, HeaderMap, Bytes) -> Response,
) -> Arc<T>
where
    T: Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("addr");
    let fake = Arc::new(make(format!("http://{addr}/")));
    let f = fake.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let f = f.clone();
        async move { handle(&f, method, uri, headers, body) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    fake
}

/// One injected 429: the next `method` request whose path contains `path_contains`.
struct Throttle {
    method: String,
    path_contains: String,
}

#[derive(Default)]
struct FrontState {
    /// `(method, path)` of every request.
    log: Vec<(String, String)>,
    tokens: Vec<String>,
    throttles: Vec<Throttle>,
    problems: Vec<String>,
}

/// The request log, issued tokens, injected throttling and refused requests of a fake API.
#[derive(Default)]
pub struct ApiFront {
    state: Mutex<FrontState>,
}

impl ApiFront {
    fn lock(&self) -> MutexGuard<'_, FrontState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a request.
    pub fn record(&self, method: &Method, path: &str) {
        self.lock().log.push((method.to_string(), path.to_string()));
    }

    /// All requests so far, `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.iter().map(|(m, p)| format!("{m} {p}")).collect()
    }

    /// Requests with `method` whose path satisfies `path_matches`.
    pub fn count(&self, method: &str, path_matches: impl Fn(&str) -> bool) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|(m, p)| m == method && path_matches(p))
            .count()
    }

    /// Issues a new token: `prefix` followed by its number.
    pub fn issue_token(&self, prefix: &str) -> String {
        let mut s = self.lock();
        let token = format!("{prefix}{}", s.tokens.len() + 1);
        s.tokens.push(token.clone());
        token
    }

    /// Whether the request carries `Authorization: Bearer <a token this front issued>`.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.lock().tokens.iter().any(|t| t == token)
    }

    /// The next `method` request whose path contains `path_contains` gets 429.
    pub fn throttle_once(&self, method: &str, path_contains: &str) {
        self.lock().throttles.push(Throttle {
            method: method.into(),
            path_contains: path_contains.into(),
        });
    }

    /// Whether this request is to be throttled (the fault is used up).
    pub fn take_throttle(&self, method: &Method, path: &str) -> bool {
        let mut s = self.lock();
        match s
            .throttles
            .iter()
            .position(|t| t.method == method.as_str() && path.contains(&t.path_contains))
        {
            Some(i) => {
                s.throttles.remove(i);
                true
            }
            None => false,
        }
    }

    /// Injected throttles not yet served.
    pub fn throttles_left(&self) -> usize {
        self.lock().throttles.len()
    }

    /// Keeps what the API specification refused in a request.
    pub fn refuse(&self, problems: &[String]) {
        self.lock().problems.extend(problems.iter().cloned());
    }

    /// Everything refused so far.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }
}

/// The query's `(name, value)` pairs, decoded.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The body as JSON; `None` when it is empty.
pub fn json_body(body: &Bytes) -> Result<Option<Value>, serde_json::Error> {
    if body.is_empty() {
        Ok(None)
    } else {
        serde_json::from_slice(body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_is_served_once_and_tokens_authorize() {
        let front = ApiFront::default();
        front.throttle_once("GET", "/disks");
        assert!(!front.take_throttle(&Method::POST, "/x/disks/a"));
        assert!(front.take_throttle(&Method::GET, "/x/disks/a"));
        assert!(!front.take_throttle(&Method::GET, "/x/disks/a"));
        assert_eq!(front.throttles_left(), 0);
        let t = front.issue_token("tok-");
        assert_eq!(t, "tok-1");
        let mut h = HeaderMap::new();
        assert!(!front.authorized(&h));
        h.insert("authorization", "Bearer tok-1".parse().unwrap());
        assert!(front.authorized(&h));
        front.record(&Method::GET, "/a/b");
        assert_eq!(front.log(), vec!["GET /a/b".to_string()]);
        assert_eq!(front.count("GET", |p| p.ends_with("/b")), 1);
        assert_eq!(json_body(&Bytes::new()).unwrap(), None);
        assert_eq!(query_pairs(&"/p?a=1&b=x%20y".parse().unwrap())[1].1, "x y");
    }
}
