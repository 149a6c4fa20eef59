//! What every simulated service shares on the wire: which service answers,
//! its error bodies, query strings and JSON request bodies.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

/// The OpenStack services the simulator serves, each under its own path
/// prefix on the one listening port (as devstack lays them out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Service {
    Keystone,
    Nova,
    Neutron,
    Cinder,
    Glance,
}

impl Service {
    pub(crate) const ALL: [Service; 5] = [
        Service::Keystone,
        Service::Nova,
        Service::Neutron,
        Service::Cinder,
        Service::Glance,
    ];

    /// The path prefix the service is served under.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Service::Keystone => "/identity",
            Service::Nova => "/compute",
            Service::Neutron => "/networking",
            Service::Cinder => "/volume",
            Service::Glance => "/image",
        }
    }

    /// The service a request path belongs to.
    pub(crate) fn for_path(path: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| {
            let p = s.prefix();
            path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// An error answer, rendered in the body format of the service that gives
/// it (see [`render_error`]).
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Neutron's exception class name (`NetworkNotFound`, `InUse`, ...);
    /// the HTTP class name when absent.
    pub kind: Option<&'static str>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// Sets Neutron's exception type name.
    pub(crate) fn kind(mut self, kind: &'static str) -> ApiError {
        self.kind = Some(kind);
        self
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }
}

/// Handlers return errors without knowing how their service words them;
/// the service layer renders them (see `faults::service_layer`).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status;
        response.extensions_mut().insert(self);
        response
    }
}

/// The error body `service` gives for `error`. Glance (webob) negotiates
/// the format with the `Accept` header.
pub(crate) fn render_error(service: Service, error: &ApiError, accept: Option<&HeaderValue>) -> Response {
    let code = error.status.as_u16();
    let reason = error.status.canonical_reason().unwrap_or("Error");
    let (content_type, body) = match service {
        Service::Keystone => (
            "application/json",
            json!({"error": {"code": code, "message": error.message, "title": reason}}).to_string(),
        ),
        Service::Nova | Service::Cinder => {
            let mut fault = Map::new();
            fault.insert("code".into(), json!(code));
            fault.insert("message".into(), json!(error.message));
            if matches!(code, 413 | 429)
                && let Some((_, v)) = error.headers.iter().find(|(n, _)| n == http::header::RETRY_AFTER)
            {
                fault.insert("retryAfter".into(), json!(v.to_str().unwrap_or_default()));
            }
            // Cinder has no name for 429.
            let name = if service == Service::Cinder && code == 429 {
                "computeFault"
            } else {
                compute_fault_name(error.status)
            };
            ("application/json", json!({ name: fault }).to_string())
        }
        Service::Neutron => {
            let kind = error.kind.unwrap_or_else(|| neutron_http_type(error.status));
            (
                "application/json",
                json!({"NeutronError": {"type": kind, "message": error.message, "detail": ""}}).to_string(),
            )
        }
        Service::Glance => webob_body(error, accept),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = error.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in &error.headers {
        response.headers_mut().append(name.clone(), value.clone());
    }
    response
}

/// Nova's and Cinder's `Fault._fault_names`.
fn compute_fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// The `type` Neutron gives webob exceptions it did not raise itself.
fn neutron_http_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "HTTPBadRequest",
        401 => "HTTPUnauthorized",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        409 => "HTTPConflict",
        413 => "HTTPRequestEntityTooLarge",
        429 => "HTTPTooManyRequests",
        503 => "HTTPServiceUnavailable",
        _ => "HTTPInternalServerError",
    }
}

/// webob's `HTTPException` body: HTML unless the client prefers JSON or
/// plain text (Glance answers errors this way).
fn webob_body(error: &ApiError, accept: Option<&HeaderValue>) -> (&'static str, String) {
    let status = format!(
        "{} {}",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or("Error")
    );
    let title = error.status.canonical_reason().unwrap_or("Error");
    let accept = accept.and_then(|v| v.to_str().ok()).unwrap_or("");
    let html_ok = accept.is_empty() || accept.contains("text/html") || accept.contains("*/*");
    let json_ok = accept.contains("application/json");
    if json_ok && (!html_ok || position(accept, "application/json") < position(accept, "text/html")) {
        let body = json!({"message": format!("{}<br /><br />\n\n\n", error.message), "code": status, "title": title});
        ("application/json", body.to_string())
    } else if html_ok {
        let body = format!(
            "<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n  <h1>{status}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
            html_escape(&error.message)
        );
        ("text/html; charset=UTF-8", body)
    } else {
        (
            "text/plain; charset=UTF-8",
            format!("{status}\n\n{}\n\n   ", error.message),
        )
    }
}

fn position(haystack: &str, needle: &str) -> usize {
    haystack.find(needle).unwrap_or(usize::MAX)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A query string with its repeated keys (`status=ACTIVE&status=ERROR`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The last value of `key` (webob's `GET[key]`).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The query string with `marker` replaced, for `next` links.
    pub(crate) fn with_marker(&self, marker: &str) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            if k != "marker" {
                out.append_pair(k, v);
            }
        }
        out.append_pair("marker", marker);
        out.finish()
    }
}

/// Parses a JSON request body; `None` when it is not JSON (each service
/// words that differently).
pub(crate) fn json_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// Parses a JSON request body, or answers the 400 `Malformed request body`
/// (as Nova, Cinder, Glance and Keystone word it).
pub(crate) fn request_json(body: &[u8]) -> ApiResult<Value> {
    json_body(body).ok_or_else(|| ApiError::bad_request("Malformed request body"))
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An empty response (204, 202).
pub(crate) fn empty_response(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// The value of a header as text.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON value as Python's `repr()` prints it: how Nova's and Cinder's
/// JSON-schema errors quote the value they refuse.
pub(crate) fn python_repr(value: &Value) -> String {
    fn quote(s: &str) -> String {
        let q = if s.contains('\'') && !s.contains('"') {
            '"'
        } else {
            '\''
        };
        let mut out = String::with_capacity(s.len() + 2);
        out.push(q);
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c == q => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out.push(q);
        out
    }
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), python_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A JSON value shortened for an error message (clients echo them).
pub(crate) fn brief(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    }

    #[test]
    fn each_service_words_errors_its_own_way() {
        let e = ApiError::not_found("Instance x could not be found.");
        let nova: Value = serde_json::from_str(&body_of(render_error(Service::Nova, &e, None))).unwrap();
        assert_eq!(
            nova,
            json!({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}})
        );
        let e = ApiError::not_found("Network x could not be found.").kind("NetworkNotFound");
        let neutron: Value = serde_json::from_str(&body_of(render_error(Service::Neutron, &e, None))).unwrap();
        assert_eq!(neutron["NeutronError"]["type"], "NetworkNotFound");
        assert_eq!(neutron["NeutronError"]["detail"], "");
        let keystone: Value = serde_json::from_str(&body_of(render_error(
            Service::Keystone,
            &ApiError::new(StatusCode::UNAUTHORIZED, "m"),
            None,
        )))
        .unwrap();
        assert_eq!(
            keystone,
            json!({"error": {"code": 401, "message": "m", "title": "Unauthorized"}})
        );
    }

    #[test]
    fn rate_limits_carry_retry_after_in_the_body() {
        let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .header(http::header::RETRY_AFTER, HeaderValue::from_static("3"));
        let response = render_error(Service::Nova, &e, None);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = serde_json::from_str(&body_of(response)).unwrap();
        assert_eq!(body["overLimit"]["retryAfter"], "3");
    }

    #[test]
    fn glance_negotiates_like_webob() {
        let e = ApiError::not_found("No image found with ID x");
        let html = render_error(Service::Glance, &e, None);
        assert!(html.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let json = render_error(Service::Glance, &e, Some(&HeaderValue::from_static("application/json")));
        let body: Value = serde_json::from_str(&body_of(json)).unwrap();
        assert_eq!(body["code"], "404 Not Found");
        let plain = render_error(Service::Glance, &e, Some(&HeaderValue::from_static("text/plain")));
        assert!(body_of(plain).starts_with("404 Not Found\n\nNo image found with ID x"));
    }

    #[test]
    fn queries_keep_repeated_keys_and_rebuild_next_links() {
        let q = Query::parse(Some("status=ACTIVE&status=ERROR&limit=2&marker=a"));
        assert_eq!(q.all("status"), vec!["ACTIVE", "ERROR"]);
        assert_eq!(q.get("limit"), Some("2"));
        assert_eq!(q.with_marker("b"), "status=ACTIVE&status=ERROR&limit=2&marker=b");
    }

    #[test]
    fn values_print_like_python() {
        let v = json!({"name": "it's", "n": 1, "ok": true, "none": null, "list": ["a\nb"]});
        assert_eq!(
            python_repr(&v),
            r#"{'list': ['a\nb'], 'n': 1, 'name': "it's", 'none': None, 'ok': True}"#
        );
    }

    #[test]
    fn services_are_found_by_path_prefix() {
        assert_eq!(Service::for_path("/compute/v2.1/servers"), Some(Service::Nova));
        assert_eq!(Service::for_path("/compute"), Some(Service::Nova));
        assert_eq!(Service::for_path("/computer"), None);
        assert_eq!(Service::for_path("/volume/v3/p/volumes"), Some(Service::Cinder));
    }
}
