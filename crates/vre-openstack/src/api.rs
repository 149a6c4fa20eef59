//! The HTTP layer: requests through an `osauth` session (Keystone token,
//! catalog endpoints, version discovery), answers read as JSON or as
//! OpenStack error bodies, a 401 answered by one fresh token.

use std::sync::Arc;

use osauth::services::{BLOCK_STORAGE, COMPUTE, IMAGE, NETWORK};
use osauth::{ErrorKind, Session};
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::KeystoneAuth;
use crate::error::{ErrorBody, OpenStackError, retry_after};
use crate::wire::NOVA_MICROVERSION;

/// The OpenStack services vre calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Nova,
    Neutron,
    Cinder,
    Glance,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Nova => "nova",
            Service::Neutron => "neutron",
            Service::Cinder => "cinder",
            Service::Glance => "glance",
        }
    }
}

/// One request: service, method, path segments, query, body.
#[derive(Clone, Debug)]
pub struct Call<'a> {
    pub service: Service,
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(&'a str, String)>,
    pub body: Option<Value>,
    /// Nova microversion (default [`NOVA_MICROVERSION`]).
    pub microversion: Option<&'static str>,
    /// What vre is doing, for messages (`create servers`).
    pub operation: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(service: Service, method: Method, path: &[&str], operation: &'a str) -> Self {
        Call {
            service,
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            microversion: None,
            operation,
        }
    }

    pub fn get(service: Service, path: &[&str], operation: &'a str) -> Self {
        Call::new(service, Method::GET, path, operation)
    }

    pub fn post(service: Service, path: &[&str], body: Value, operation: &'a str) -> Self {
        Call::new(service, Method::POST, path, operation).body(body)
    }

    pub fn put(service: Service, path: &[&str], body: Value, operation: &'a str) -> Self {
        Call::new(service, Method::PUT, path, operation).body(body)
    }

    pub fn delete(service: Service, path: &[&str], operation: &'a str) -> Self {
        Call::new(service, Method::DELETE, path, operation)
    }

    pub fn query(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }

    pub fn body(mut self, b: Value) -> Self {
        self.body = Some(b);
        self
    }

    pub fn microversion(mut self, v: &'static str) -> Self {
        self.microversion = Some(v);
        self
    }
}

/// An authenticated connection to one cloud.
#[derive(Clone)]
pub struct Api {
    session: Session,
    auth: Arc<KeystoneAuth>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("auth", &self.auth).finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(session: Session, auth: Arc<KeystoneAuth>) -> Self {
        Api { session, auth }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The project the token is scoped to.
    pub async fn project_id(&self) -> Result<String, OpenStackError> {
        let t = self.auth.token(self.session.client().inner()).await?;
        t.project_id.ok_or_else(|| {
            OpenStackError::Credentials(
                "the token is not scoped to a project; set OS_PROJECT_NAME (or project_name in clouds.yaml)".into(),
            )
        })
    }

    /// Sends `call` and reads the JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, OpenStackError> {
        let (service, op) = (call.service.name(), call.operation.to_string());
        let text = self.text(call).await?;
        serde_json::from_str(&text).map_err(|e| OpenStackError::decode(service, &op, e.to_string()))
    }

    /// Sends `call`; the answer body is ignored.
    pub async fn send(&self, call: Call<'_>) -> Result<(), OpenStackError> {
        self.text(call).await.map(|_| ())
    }

    /// Sends `call`, returning the answer body of a success.
    pub async fn text(&self, call: Call<'_>) -> Result<String, OpenStackError> {
        let mut resp = self.raw(&call).await?;
        if resp.status().as_u16() == 401 {
            // the token expired or was revoked: one fresh token, one more try
            self.auth.invalidate().await;
            resp = self.raw(&call).await?;
        }
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let service = call.service.name();
        let body = resp.text().await.map_err(|e| OpenStackError::Transport {
            service,
            operation: call.operation.to_string(),
            source: Box::new(e),
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let b = ErrorBody::parse(&body);
        tracing::debug!(service, operation = call.operation, status, message = %b.message, "OpenStack error");
        Err(OpenStackError::Api {
            service,
            operation: call.operation.to_string(),
            status,
            code: b.code,
            message: if b.message.is_empty() {
                format!("HTTP {status} with no message")
            } else {
                b.message
            },
            retry_after: retry_after(retry.as_deref(), &body),
        })
    }

    async fn raw(&self, call: &Call<'_>) -> Result<Response, OpenStackError> {
        let path: Vec<&str> = call.path.iter().map(String::as_str).collect();
        let s = &self.session;
        let result = match call.service {
            Service::Nova => {
                let v = call.microversion.unwrap_or(NOVA_MICROVERSION);
                let mut b = s
                    .request(COMPUTE, call.method.clone(), &path)
                    .header("OpenStack-API-Version", format!("compute {v}"))
                    .header("X-OpenStack-Nova-API-Version", v);
                if !call.query.is_empty() {
                    b = b.query(&call.query);
                }
                if let Some(body) = &call.body {
                    b = b.json(body);
                }
                b.send_unchecked().await
            }
            Service::Neutron => {
                let mut b = s.request(NETWORK, call.method.clone(), &path);
                if !call.query.is_empty() {
                    b = b.query(&call.query);
                }
                if let Some(body) = &call.body {
                    b = b.json(body);
                }
                b.send_unchecked().await
            }
            Service::Cinder => {
                let mut b = s.request(BLOCK_STORAGE, call.method.clone(), &path);
                if !call.query.is_empty() {
                    b = b.query(&call.query);
                }
                if let Some(body) = &call.body {
                    b = b.json(body);
                }
                b.send_unchecked().await
            }
            Service::Glance => {
                let mut b = s.request(IMAGE, call.method.clone(), &path);
                if !call.query.is_empty() {
                    b = b.query(&call.query);
                }
                if let Some(body) = &call.body {
                    b = b.json(body);
                }
                b.send_unchecked().await
            }
        };
        result.map_err(|e| from_osauth(call.service.name(), call.operation, e))
    }
}

/// Maps an `osauth` error: authentication and catalog problems are the
/// user's to fix; transport problems are retried. What comes here are errors
/// of authentication, catalog and version discovery, or of a request that got
/// no answer: the answers to vre's own requests, whatever their status, are
/// read by [`Api::text`].
pub fn from_osauth(service: &'static str, operation: &str, e: osauth::Error) -> OpenStackError {
    let status = match e.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::EndpointNotFound | ErrorKind::InvalidConfig => {
            return OpenStackError::Credentials(e.to_string());
        }
        ErrorKind::ProtocolError | ErrorKind::OperationTimedOut => {
            return OpenStackError::Transport {
                service,
                operation: operation.to_string(),
                source: Box::new(e),
            };
        }
        ErrorKind::ResourceNotFound => 404,
        ErrorKind::AccessDenied => 403,
        ErrorKind::Conflict => 409,
        ErrorKind::InternalServerError => 503,
        ErrorKind::IncompatibleApiVersion => 406,
        ErrorKind::InvalidResponse => {
            return OpenStackError::decode(service, operation, e.to_string());
        }
        _ => 400,
    };
    OpenStackError::Api {
        service,
        operation: operation.to_string(),
        status,
        code: None,
        message: e.to_string(),
        retry_after: None,
    }
}
