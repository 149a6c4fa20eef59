//! The crate's error type, converted into [`vre_core::Error`] at the
//! [`vre_core::Orchestrator`] boundary.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong inside the Kubernetes orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A file under the deployment directory could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    File {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A file vre wrote earlier no longer parses (edited or truncated);
    /// the message says what to do about it.
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    /// Generating keys or certificates failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[source] rcgen::Error),

    /// The spec asks for something this orchestrator cannot do.
    #[error("{field}: {message}")]
    Spec { field: &'static str, message: String },

    /// The operating system's random generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),

    /// An API request failed.
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },

    /// An object given to `apply`/`delete` is not a valid Kubernetes object.
    #[error("{object}: {message}")]
    BadObject { object: String, message: String },

    /// The API server did not answer in time.
    #[error("the API server at {endpoint} did not answer within {}s ({last}); {hint}", after.as_secs())]
    ApiUnreachable {
        endpoint: String,
        after: Duration,
        last: String,
        hint: String,
    },

    /// `connect` has not been called and no kubeconfig exists yet.
    #[error("no kubeconfig at {}: the cluster has not been connected yet; run `vre apply` first", path.display())]
    NotConnected { path: PathBuf },

    /// A step of a longer operation gave up.
    #[error("{0}")]
    Failed(String),
}

impl KubeError {
    pub(crate) fn api(context: impl Into<String>, source: kube::Error) -> Self {
        KubeError::Api {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        KubeError::File {
            path: path.into(),
            action,
            source,
        }
    }

    /// The HTTP status of an API error answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }
}

/// The HTTP status of a kube error answer, if it is one.
pub(crate) fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A one-line description of a kube error: the API's own message when the
/// server answered, the transport failure and its causes otherwise (the
/// root cause, such as a certificate the server presented that vre does
/// not trust, is often several sources deep).
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => format!("HTTP {} {}: {}", s.code, s.reason, s.message),
        kube::Error::Api(s) => format!("HTTP {} {}", s.code, s.reason),
        other => with_causes(other),
    }
}

/// `error: cause: cause...`, skipping causes already in the text.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        cause = c.source();
    }
    text
}

impl From<rcgen::Error> for KubeError {
    fn from(e: rcgen::Error) -> Self {
        KubeError::Certificate(e)
    }
}

impl From<KubeError> for vre_core::Error {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::Spec { field, message } => vre_core::Error::input(field, message),
            KubeError::File { path, action, source } => {
                vre_core::Error::io(format!("{}: {action}", path.display()), source)
            }
            KubeError::Api { context, source } => vre_core::Error::Orchestrator {
                message: describe(&source),
                context,
                source: Some(Box::new(source)),
            },
            other => vre_core::Error::orchestrator("kubernetes", other.to_string()),
        }
    }
}

pub type Result<T, E = KubeError> = std::result::Result<T, E>;
