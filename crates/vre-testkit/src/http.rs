//! A scripted HTTP server on 127.0.0.1: each route answers its recorded
//! responses in order (the last one repeats), and every request is logged
//! for assertions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    /// The same answer with one more header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
}

struct Route {
    method: String,
    path: String,
    replies: VecDeque<Reply>,
}

/// The routes and what was asked of them.
#[derive(Default)]
pub struct Script {
    routes: Mutex<Vec<Route>>,
    seen: Mutex<Vec<Seen>>,
}

/// A failed assertion in another test thread must not hide this test's own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Script {
    pub fn new() -> Arc<Script> {
        Arc::new(Script::default())
    }

    /// Adds answers for `method path` (path without the query). A route
    /// needs at least one reply.
    pub fn on(&self, method: &str, path: &str, replies: Vec<Reply>) -> &Self {
        assert!(!replies.is_empty(), "route {method} {path} needs at least one reply");
        lock(&self.routes).push(Route {
            method: method.to_string(),
            path: path.to_string(),
            replies: replies.into(),
        });
        self
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// How many `method path` requests came.
    pub fn count(&self, method: &str, path: &str) -> usize {
        lock(&self.seen)
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    fn answer(&self, method: &Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Response {
        lock(&self.seen).push(Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let mut routes = lock(&self.routes);
        let Some(route) = routes
            .iter_mut()
            .find(|r| r.method == method.as_str() && r.path == uri.path())
        else {
            return (
                StatusCode::NOT_IMPLEMENTED,
                format!("no script for {method} {}", uri.path()),
            )
                .into_response();
        };
        let reply = match route.replies.len() {
            0 | 1 => route.replies.front().cloned(),
            _ => route.replies.pop_front(),
        };
        let Some(reply) = reply else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "route without replies").into_response();
        };
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, reply.body).into_response();
        for (name, value) in reply.headers {
            match value.parse() {
                Ok(v) => {
                    resp.headers_mut().insert(name, v);
                }
                Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("bad header {name}")).into_response(),
            }
        }
        resp
    }
}

/// Serves `script` on an ephemeral 127.0.0.1 port; returns `http://127.0.0.1:PORT/`.
pub async fn serve(script: Arc<Script>) -> String {
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let s = script.clone();
        async move { s.answer(&method, &uri, headers, body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_come_in_order_and_the_last_repeats() {
        let script = Script::new();
        script.on(
            "GET",
            "/op",
            vec![
                Reply::json(200, serde_json::json!({"status": "RUNNING"})),
                Reply::json(200, serde_json::json!({"status": "DONE"})).header("x-n", "2"),
            ],
        );
        let base = serve(script.clone()).await;
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let body = raw_get(&format!("{base}op?x=1")).await;
            bodies.push(body);
        }
        assert!(bodies[0].contains("RUNNING"), "{bodies:?}");
        assert!(bodies[1].contains("DONE") && bodies[1].contains("x-n: 2"), "{bodies:?}");
        assert!(bodies[2].contains("DONE"), "{bodies:?}");
        assert_eq!(script.count("GET", "/op"), 3);
        assert_eq!(script.seen()[0].query.as_deref(), Some("x=1"));
        let missing = raw_get(&format!("{base}nope")).await;
        assert!(missing.starts_with("HTTP/1.1 501"), "{missing}");
    }

    /// A bare HTTP/1.1 GET over a TCP stream: the kit has no HTTP client.
    async fn raw_get(url: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_once('/').expect("a path");
        let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
        s.write_all(format!("GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }
}
