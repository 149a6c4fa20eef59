//! vre-core's error type. User mistakes (exit code 2) are kept apart from
//! runtime failures (exit code 1), and every cloud error says whether a retry
//! can help.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::Diagnostics;
use crate::spec_field::SpecField;

/// vre-core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed cause (transport errors, parse errors) kept for `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether an operation that failed may succeed when tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retrying cannot help (bad request, permission, not found, quota).
    Never,
    /// Transient (timeout, 429, 5xx); wait at least this long when the server said so.
    After(Option<Duration>),
}

/// An error reported by a cloud API (or the transport to it).
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation}: {}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct CloudError {
    /// The API that answered (`nova`, `ec2`, `compute`, `arm`, ...).
    pub service: String,
    /// What vre was doing (`create servers`, `RunInstances`, ...).
    pub operation: String,
    /// The HTTP status, when the error came over HTTP.
    pub status: Option<u16>,
    /// The cloud's own error code (`InstanceLimitExceeded`, `itemNotFound`), when it gave one.
    pub code: Option<String>,
    /// The cloud's message, verbatim.
    pub message: String,
    /// Whether (and when) trying again may help.
    pub retry: Retry,
    /// The underlying transport or parse error, if any.
    #[source]
    pub source: Option<BoxError>,
}

impl CloudError {
    /// An HTTP error answer; 408, 429 and 5xx are retriable.
    pub fn http(
        service: impl Into<String>,
        operation: impl Into<String>,
        status: u16,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let retry = match status {
            408 | 425 | 429 | 500 | 502 | 503 | 504 => Retry::After(retry_after),
            _ => Retry::Never,
        };
        CloudError {
            service: service.into(),
            operation: operation.into(),
            status: Some(status),
            code: None,
            message: message.into(),
            retry,
            source: None,
        }
    }

    /// A transport failure (connection refused or reset, timeout): retriable.
    pub fn transport(service: impl Into<String>, operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        CloudError {
            service: service.into(),
            operation: operation.into(),
            status: None,
            code: None,
            message: format!("request failed: {source}"),
            retry: Retry::After(None),
            source: Some(source),
        }
    }

    /// Sets the cloud's own error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Overrides whether the error is retriable.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// HTTP 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// Everything that can go wrong in vre-core, split by who can fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec has problems (all of them, located).
    #[error("{0}")]
    Spec(Diagnostics),

    /// Input the user controls is wrong in a way only the cloud could tell
    /// (unknown flavor, quota): names the spec field.
    #[error("{field}: {message}")]
    Input {
        /// The spec field (`nodes.service.flavor`).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The cloud rejects a spec field (unknown flavor for a role, a quota
    /// too small for a role's count, a missing image). Providers name the
    /// [`SpecField`]; vre-core alone spells its path.
    #[error("{field}: {message}")]
    Rejected {
        /// The field the cloud rejects.
        field: SpecField,
        /// Why, and what to write instead.
        message: String,
    },

    /// Credentials are missing or unusable; says which variable or file to set.
    #[error("{message}")]
    Credentials {
        /// What to set, and where.
        message: String,
    },

    /// A cloud API's answer (boxed: it is large and errors travel far).
    #[error(transparent)]
    Cloud(Box<CloudError>),

    /// Waiting for something exceeded its timeout.
    #[error("timed out after {}s waiting for {what}; {hint}", after.as_secs())]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long vre waited.
        after: Duration,
        /// What to check or do about it.
        hint: String,
    },

    /// The orchestrator (Kubernetes) failed.
    #[error("{context}: {message}")]
    Orchestrator {
        /// What vre was doing.
        context: String,
        /// The orchestrator's message.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A microservice or DNS step failed.
    #[error("{component}: {message}")]
    Component {
        /// The microservice (or `dns`, `destroy`, ...) that failed.
        component: String,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The state file cannot be read or written, or belongs to another deployment.
    #[error("state file {}: {message}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },

    /// Another vre process holds the deployment's lock.
    #[error("{} is locked by another vre process; wait for it to finish (or remove the lock file if no vre is running)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// A local I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What vre was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Several independent steps failed.
    #[error("{} steps failed:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),

    /// Cancelled (Ctrl-C) between steps; the state is saved.
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
}

impl From<CloudError> for Error {
    fn from(e: CloudError) -> Self {
        Error::Cloud(Box::new(e))
    }
}

impl Error {
    /// Process exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Input { .. } | Error::Rejected { .. } | Error::Credentials { .. } => 2,
            Error::Many(errors) if errors.iter().all(|e| e.exit_code() == 2) => 2,
            _ => 1,
        }
    }

    /// `Some` when a retry may help, with the delay the server asked for.
    pub fn retry(&self) -> Option<Option<Duration>> {
        match self {
            Error::Cloud(c) => match c.retry {
                Retry::After(d) => Some(d),
                Retry::Never => None,
            },
            _ => None,
        }
    }

    /// A cloud error with HTTP 404 (something already gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Cloud(c) if c.is_not_found())
    }

    /// An [`Error::Io`] with what vre was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Input`] naming the spec field.
    pub fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The cloud rejects `field` of the spec.
    pub fn rejected(field: SpecField, message: impl Into<String>) -> Self {
        Error::Rejected {
            field,
            message: message.into(),
        }
    }

    /// An [`Error::Orchestrator`] without a source.
    pub fn orchestrator(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Orchestrator {
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Component`] without a source.
    pub fn component(component: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Component {
            component: component.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Folds several errors: none -> Ok, one -> itself, more -> `Many`.
    pub fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                Error::from(CloudError::http("nova", "x", s, "m", None))
                    .retry()
                    .is_some(),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                Error::from(CloudError::http("nova", "x", s, "m", None))
                    .retry()
                    .is_none(),
                "{s}"
            );
        }
        let e = Error::from(CloudError::http(
            "nova",
            "x",
            429,
            "slow down",
            Some(Duration::from_secs(3)),
        ));
        assert_eq!(e.retry(), Some(Some(Duration::from_secs(3))));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::input("nodes.service.flavor", "no such flavor").exit_code(), 2);
        assert_eq!(Error::Credentials { message: "x".into() }.exit_code(), 2);
        assert_eq!(Error::Interrupted.exit_code(), 1);
        assert_eq!(
            Error::from(CloudError::http("nova", "create servers", 500, "boom", None)).to_string(),
            "nova create servers: HTTP 500: boom"
        );
    }
}
