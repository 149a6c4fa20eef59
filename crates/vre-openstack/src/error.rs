//! The crate's error type, and how OpenStack error bodies are read.
//!
//! Every OpenStack service wraps its errors differently: Nova and Cinder as
//! `{"itemNotFound": {"message": .., "code": 404}}` (the key names the
//! fault), Neutron as `{"NeutronError": {"type": .., "message": .., "detail": ..}}`,
//! Keystone as `{"error": {"code": .., "title": .., "message": ..}}`, Glance as
//! plain text or a small HTML page. [`ErrorBody::parse`] turns each into a
//! code and one line of message.

use std::time::Duration;

use vre_core::{CloudError, Error, Retry, SpecField};

/// What can go wrong talking to OpenStack.
#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    /// The service answered with an HTTP error.
    #[error("{service} {operation}: HTTP {status}: {message}")]
    Api {
        service: &'static str,
        operation: String,
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request never got an answer (connection refused, reset, timeout).
    #[error("{service} {operation}: request failed: {source}")]
    Transport {
        service: &'static str,
        operation: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer was not the JSON the API reference documents.
    #[error("{service} {operation}: unexpected answer: {message}")]
    Decode {
        service: &'static str,
        operation: String,
        message: String,
    },
    /// Keystone refused the credentials, or they are incomplete.
    #[error("{0}")]
    Credentials(String),
    /// The cloud refuses a value of vre.toml outside the spec's fields the
    /// engine names (`ssh.public_key`).
    #[error("{field}: {message}")]
    Input { field: String, message: String },
    /// The cloud lacks something a spec field names (flavor, image, network,
    /// import method) or its quota is too small for it.
    #[error("{field}: {message}")]
    Rejected { field: SpecField, message: String },
    /// The cloud put a resource in an error state.
    #[error("{service} {operation}: {message}")]
    Failed {
        service: &'static str,
        operation: String,
        message: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {}s waiting for {what}", after.as_secs())]
    Timeout { what: String, after: Duration },
}

impl OpenStackError {
    pub fn status(&self) -> Option<u16> {
        match self {
            OpenStackError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub(crate) fn decode(service: &'static str, operation: &str, message: impl Into<String>) -> Self {
        OpenStackError::Decode {
            service,
            operation: operation.to_string(),
            message: message.into(),
        }
    }
}

/// A cloud error that carries no HTTP status and is not retried.
fn final_error(service: &str, operation: String, message: String) -> Error {
    CloudError {
        service: service.to_string(),
        operation,
        status: None,
        code: None,
        message,
        retry: Retry::Never,
        source: None,
    }
    .into()
}

/// `Ok(())` when `result` failed only because the resource is already gone.
pub(crate) fn ok_if_gone(result: Result<(), OpenStackError>) -> Result<(), OpenStackError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl From<OpenStackError> for Error {
    fn from(e: OpenStackError) -> Error {
        match e {
            OpenStackError::Api {
                service,
                operation,
                status,
                code,
                message,
                retry_after,
            } => {
                if status == 401 {
                    return Error::Credentials {
                        message: format!(
                            "{service} {operation}: the cloud rejected the token (HTTP 401: {message}); check the credentials in OS_* or clouds.yaml"
                        ),
                    };
                }
                let mut c = CloudError::http(service, operation, status, message, retry_after);
                if let Some(code) = code {
                    c = c.with_code(code);
                }
                c.into()
            }
            OpenStackError::Transport {
                service,
                operation,
                source,
            } => CloudError::transport(service, operation, source).into(),
            OpenStackError::Decode {
                service,
                operation,
                message,
            } => final_error(service, operation, format!("unexpected answer: {message}")),
            OpenStackError::Credentials(message) => Error::Credentials { message },
            OpenStackError::Input { field, message } => Error::Input { field, message },
            OpenStackError::Rejected { field, message } => Error::Rejected { field, message },
            OpenStackError::Failed {
                service,
                operation,
                message,
            } => final_error(service, operation, message),
            OpenStackError::Timeout { what, after } => Error::Timeout {
                what,
                after,
                hint: "the cloud is slow or stuck; look at the resource in the cloud's dashboard, then run the command again".into(),
            },
        }
    }
}

/// The parts of an OpenStack error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    /// The fault name (`itemNotFound`, `overLimit`) or Neutron's `type`
    /// (`NetworkNotFound`, `OverQuota`).
    pub code: Option<String>,
    /// One line.
    pub message: String,
}

impl ErrorBody {
    /// Reads an error answer of any OpenStack service.
    pub fn parse(text: &str) -> ErrorBody {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
            // Neutron: {"NeutronError": {"type", "message", "detail"}}
            if let Some(serde_json::Value::Object(n)) = map.get("NeutronError") {
                return ErrorBody {
                    code: n.get("type").and_then(|v| v.as_str()).map(str::to_string),
                    message: one_line(n.get("message").and_then(|v| v.as_str()).unwrap_or("")),
                };
            }
            // Keystone: {"error": {"code", "title", "message"}}
            if let Some(serde_json::Value::Object(k)) = map.get("error") {
                return ErrorBody {
                    code: k.get("title").and_then(|v| v.as_str()).map(str::to_string),
                    message: one_line(k.get("message").and_then(|v| v.as_str()).unwrap_or("")),
                };
            }
            // Flat: {"message": ..} (Neutron, Placement, newer Nova paths)
            if let Some(m) = map.get("message").and_then(|v| v.as_str()) {
                return ErrorBody {
                    code: map.get("type").and_then(|v| v.as_str()).map(str::to_string),
                    message: one_line(m),
                };
            }
            // Nova / Cinder: {"<faultName>": {"message", "code"}}
            if map.len() == 1
                && let Some((fault, serde_json::Value::Object(inner))) = map.iter().next()
                && let Some(m) = inner.get("message").and_then(|v| v.as_str())
            {
                return ErrorBody {
                    code: Some(fault.clone()),
                    message: one_line(m),
                };
            }
            // Placement / newer APIs: {"errors": [{"title", "detail"}]}
            if let Some(serde_json::Value::Array(errors)) = map.get("errors")
                && let Some(first) = errors.first()
            {
                let detail = first.get("detail").and_then(|v| v.as_str()).unwrap_or("");
                return ErrorBody {
                    code: first.get("code").and_then(|v| v.as_str()).map(str::to_string),
                    message: one_line(detail),
                };
            }
        }
        // Glance and webob: plain text or an HTML page
        ErrorBody {
            code: None,
            message: one_line(&strip_html(text)),
        }
    }
}

fn strip_html(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_string();
    }
    let mut out = String::new();
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Collapses whitespace and cuts long messages so errors stay on one line.
pub(crate) fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 400 {
        let cut: String = joined.chars().take(400).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

/// `Retry-After` in seconds (Nova's overLimit also carries `retryAfter` in the body).
pub(crate) fn retry_after(header: Option<&str>, body: &str) -> Option<Duration> {
    if let Some(secs) = header.and_then(|h| h.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let inner = v.get("overLimit").or_else(|| v.get("rateLimit"))?;
    match inner.get("retryAfter")? {
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
        serde_json::Value::Number(n) => n.as_u64().map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_fault_bodies() {
        let b = ErrorBody::parse(r#"{"itemNotFound": {"message": "Flavor m1.huge could not be found.", "code": 404}}"#);
        assert_eq!(b.code.as_deref(), Some("itemNotFound"));
        assert_eq!(b.message, "Flavor m1.huge could not be found.");
        let b = ErrorBody::parse(
            r#"{"forbidden": {"message": "Quota exceeded for instances: Requested 3, but already used 8 of 10 instances", "code": 403}}"#,
        );
        assert_eq!(b.code.as_deref(), Some("forbidden"));
        assert!(b.message.starts_with("Quota exceeded for instances"));
    }

    #[test]
    fn neutron_bodies() {
        let b = ErrorBody::parse(
            r#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['floatingip'].", "detail": ""}}"#,
        );
        assert_eq!(b.code.as_deref(), Some("OverQuota"));
        assert_eq!(b.message, "Quota exceeded for resources: ['floatingip'].");
    }

    #[test]
    fn keystone_and_glance_bodies() {
        let b = ErrorBody::parse(
            r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#,
        );
        assert_eq!(b.code.as_deref(), Some("Unauthorized"));
        assert_eq!(b.message, "The request you have made requires authentication.");
        let b = ErrorBody::parse(
            "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID abc<br /><br />\n </body>\n</html>",
        );
        assert_eq!(b.message, "404 Not Found 404 Not Found No image found with ID abc");
        assert_eq!(ErrorBody::parse("plain\ntext").message, "plain text");
    }

    #[test]
    fn over_limit_retry_after() {
        let body = r#"{"overLimit": {"code": 413, "message": "This request was rate-limited.", "retryAfter": "7"}}"#;
        assert_eq!(retry_after(None, body), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("3"), body), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(None, "{}"), None);
        let b = ErrorBody::parse(body);
        assert_eq!(b.code.as_deref(), Some("overLimit"));
    }

    fn api_error(service: &'static str, operation: &str, status: u16, code: Option<&str>, message: &str) -> Error {
        OpenStackError::Api {
            service,
            operation: operation.into(),
            status,
            code: code.map(str::to_string),
            message: message.into(),
            retry_after: None,
        }
        .into()
    }

    #[test]
    fn conversion_keeps_retry_semantics() {
        let e = api_error("nova", "create servers", 503, None, "busy");
        assert!(e.retry().is_some());
        let e = api_error("nova", "create servers", 400, Some("badRequest"), "Invalid flavorRef");
        assert!(e.retry().is_none());
        let e = api_error("neutron", "list networks", 401, None, "auth");
        assert_eq!(e.exit_code(), 2);
    }
}
