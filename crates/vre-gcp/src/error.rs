//! vre-gcp's error type, converted into [`vre_core::Error`] at the trait boundary.

use std::path::PathBuf;
use std::time::Duration;

use vre_cloud_kit::{TOKEN_REQUEST, TokenError, answer};
use vre_core::Error;

/// The API name reported in every cloud error of this crate.
pub(crate) const SERVICE: &str = "compute";

#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// The service-account key file cannot be read.
    #[error("cannot read the service-account key {}: {source}; point GOOGLE_APPLICATION_CREDENTIALS (or gcp.credentials_file) at the JSON key downloaded from the console", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The key file is not a usable service-account key.
    #[error("{} is not a usable service-account key: {reason}; download a JSON key for a service account (IAM > Service accounts > Keys)", path.display())]
    KeyFormat { path: PathBuf, reason: String },

    /// The OAuth2 token endpoint refused the assertion or failed.
    #[error("token request: {0}")]
    Token(#[from] TokenError),

    /// The request did not get an answer (connection refused, reset, timeout).
    #[error("{operation}: request failed: {source}")]
    Transport {
        operation: String,
        #[source]
        source: reqwest::Error,
    },

    /// The API answered with an error status.
    #[error("{operation}: HTTP {status}: {message}")]
    Api {
        operation: String,
        status: u16,
        /// Google's error reason (`notFound`, `quotaExceeded`, ...).
        reason: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },

    /// A long-running operation finished with `error.errors[]`.
    #[error("{operation}: operation {name} failed: {}", errors.iter().map(|(c, m)| format!("{c}: {m}")).collect::<Vec<_>>().join("; "))]
    Operation {
        operation: String,
        name: String,
        /// `(code, message)` of every error the operation reported.
        errors: Vec<(String, String)>,
        http_status: Option<u16>,
    },

    /// A long-running operation did not finish in time.
    #[error("{operation}: operation {name} still {status} after {}s", after.as_secs())]
    OperationTimeout {
        operation: String,
        name: String,
        status: String,
        after: Duration,
    },

    /// An answer that does not have the documented shape.
    #[error("{operation}: unexpected answer: {message}")]
    Decode { operation: String, message: String },
}

/// Operation error codes after which trying again can succeed: capacity
/// that frees up, rate limits, resources still settling.
const TRANSIENT_OPERATION_CODES: &[&str] = &[
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_NOT_READY",
    "RESOURCE_OPERATION_RATE_EXCEEDED",
    "RATE_LIMIT_EXCEEDED",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
];

/// Reasons Google uses for rate limiting on 403 answers.
const RATE_LIMIT_REASONS: &[&str] = &["rateLimitExceeded", "userRateLimitExceeded"];

impl GcpError {
    /// Whether the resource the request named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GcpError::Api { status: 404, .. })
    }

    /// Whether the resource the request tried to create exists already.
    pub fn is_already_exists(&self) -> bool {
        match self {
            GcpError::Api { status: 409, .. } => true,
            GcpError::Operation { errors, .. } => errors.iter().any(|(c, _)| c == "RESOURCE_ALREADY_EXISTS"),
            _ => false,
        }
    }
}

impl From<GcpError> for Error {
    fn from(e: GcpError) -> Self {
        let message = e.to_string();
        match e {
            GcpError::KeyFile { .. } | GcpError::KeyFormat { .. } => answer::credentials(message),
            GcpError::Token(e) => e.into_error(SERVICE, |refused| {
                let hint = if refused.status == 400 || refused.status == 401 {
                    "; check that the service-account key is current (not deleted or disabled)"
                } else {
                    ""
                };
                answer::http(
                    "oauth2",
                    TOKEN_REQUEST,
                    refused.status,
                    Some(refused.error.clone()),
                    format!("{}{hint}", refused.text()),
                    refused.retry_after,
                )
                .into()
            }),
            GcpError::Transport { operation, source } => {
                vre_core::CloudError::transport(SERVICE, operation, source).into()
            }
            GcpError::Api {
                operation,
                status,
                reason,
                message,
                retry_after,
            } => match reason {
                Some(r) if status == 403 && RATE_LIMIT_REASONS.contains(&r.as_str()) => {
                    answer::throttled(SERVICE, operation, status, r, message, retry_after).into()
                }
                reason => answer::http(SERVICE, operation, status, reason, message, retry_after).into(),
            },
            GcpError::Operation {
                operation,
                name,
                errors,
                http_status,
            } => {
                let transient = errors
                    .iter()
                    .any(|(c, _)| TRANSIENT_OPERATION_CODES.contains(&c.as_str()));
                let text = errors
                    .iter()
                    .map(|(c, m)| format!("{c}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                answer::failed(
                    SERVICE,
                    operation,
                    http_status,
                    errors.first().map(|(c, _)| c.clone()),
                    format!("operation {name} failed: {text}"),
                    transient,
                )
                .into()
            }
            GcpError::OperationTimeout {
                operation, name, after, ..
            } => answer::still_running(
                format!("{operation} (operation {name})"),
                after,
                "the operation continues in the cloud; run the same command again to pick it up",
            ),
            GcpError::Decode { operation, message } => answer::unexpected_answer(SERVICE, operation, message).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_errors_are_retried_only_when_transient() {
        let op = |code: &str| GcpError::Operation {
            operation: "create service instances".into(),
            name: "operation-1".into(),
            errors: vec![(code.into(), "details".into())],
            http_status: Some(503),
        };
        let e = Error::from(op("ZONE_RESOURCE_POOL_EXHAUSTED"));
        assert!(e.retry().is_some());
        assert!(e.to_string().contains("ZONE_RESOURCE_POOL_EXHAUSTED: details"), "{e}");
        let e = Error::from(op("QUOTA_EXCEEDED"));
        assert!(e.retry().is_none());
    }

    #[test]
    fn rate_limit_reasons_on_403_are_retriable() {
        let api = |reason: &str| GcpError::Api {
            operation: "list instances".into(),
            status: 403,
            reason: Some(reason.into()),
            message: "m".into(),
            retry_after: None,
        };
        assert!(Error::from(api("rateLimitExceeded")).retry().is_some());
        assert!(Error::from(api("forbidden")).retry().is_none());
    }

    #[test]
    fn key_problems_are_credential_errors() {
        let e = Error::from(GcpError::KeyFormat {
            path: "/k.json".into(),
            reason: "\"type\" is \"authorized_user\"".into(),
        });
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("/k.json"));
    }
}
