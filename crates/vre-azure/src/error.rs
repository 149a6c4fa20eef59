//! vre-azure's error type, converted into [`vre_core::Error`] at the trait boundary.

use std::time::Duration;

use vre_cloud_kit::{TOKEN_REQUEST, TokenError, answer};
use vre_core::Error;

/// The API name reported in every cloud error of this crate.
pub(crate) const SERVICE: &str = "arm";

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// Microsoft Entra ID refused the client credentials or failed.
    #[error("token request: {0}")]
    Token(#[from] TokenError),

    /// The request did not get an answer (connection refused, reset, timeout).
    #[error("{operation}: request failed: {source}")]
    Transport {
        operation: String,
        #[source]
        source: reqwest::Error,
    },

    /// Azure Resource Manager answered with an error status.
    #[error("{operation}: HTTP {status}: {code}: {message}")]
    Api {
        operation: String,
        status: u16,
        /// ARM's `error.code` (`ResourceGroupNotFound`, `SubscriptionRequestsThrottled`, ...).
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },

    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("{operation}: {status}: {code}: {message}")]
    Operation {
        operation: String,
        /// `Failed` or `Canceled`.
        status: String,
        code: String,
        message: String,
    },

    /// A long-running operation did not finish in time.
    #[error("{operation}: still running after {}s", after.as_secs())]
    OperationTimeout { operation: String, after: Duration },

    /// An answer that does not have the documented shape.
    #[error("{operation}: unexpected answer: {message}")]
    Decode { operation: String, message: String },
}

/// Operation error codes after which trying again can succeed.
const TRANSIENT_OPERATION_CODES: &[&str] = &[
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "InternalServerError",
    "InternalExecutionError",
    "RetryableError",
    "OperationPreempted",
    "TooManyRequests",
];

impl AzureError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, AzureError::Api { status: 404, .. })
    }

    /// ARM's error code, when the answer had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Api { code, .. } | AzureError::Operation { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<AzureError> for Error {
    fn from(e: AzureError) -> Self {
        let message = e.to_string();
        match e {
            AzureError::Token(e) => e.into_error(SERVICE, |refused| {
                let text = refused.text();
                if refused.status == 400 || refused.status == 401 {
                    answer::credentials(format!(
                        "Microsoft Entra ID refused the service principal ({text}); check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                    ))
                } else {
                    answer::http(
                        "entra-id",
                        TOKEN_REQUEST,
                        refused.status,
                        Some(refused.error),
                        text,
                        refused.retry_after,
                    )
                    .into()
                }
            }),
            AzureError::Transport { operation, source } => {
                vre_core::CloudError::transport(SERVICE, operation, source).into()
            }
            AzureError::Api {
                operation,
                status,
                code,
                message,
                retry_after,
            } => answer::http(
                SERVICE,
                operation,
                status,
                Some(code.clone()),
                format!("{code}: {message}"),
                retry_after,
            )
            .into(),
            AzureError::Operation {
                operation,
                status,
                code,
                ..
            } => {
                let transient = status == "Failed" && TRANSIENT_OPERATION_CODES.contains(&code.as_str());
                let text = message
                    .strip_prefix(&format!("{operation}: "))
                    .unwrap_or(&message)
                    .to_string();
                answer::failed(SERVICE, operation, None, Some(code), text, transient).into()
            }
            AzureError::OperationTimeout { operation, after } => answer::still_running(
                operation,
                after,
                "the operation continues in Azure; run the same command again to pick it up",
            ),
            AzureError::Decode { operation, message } => answer::unexpected_answer(SERVICE, operation, message).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_retried_after_the_servers_delay() {
        let e = Error::from(AzureError::Api {
            operation: "create virtual network lab-net".into(),
            status: 429,
            code: "SubscriptionRequestsThrottled".into(),
            message: "Number of 'write' requests for subscription exceeded the limit".into(),
            retry_after: Some(Duration::from_secs(17)),
        });
        assert_eq!(e.retry(), Some(Some(Duration::from_secs(17))));
        assert!(e.to_string().contains("SubscriptionRequestsThrottled"), "{e}");
    }

    #[test]
    fn failed_operations_say_why_and_retry_only_transient_ones() {
        let op = |code: &str| AzureError::Operation {
            operation: "create virtual machine lab-service-1".into(),
            status: "Failed".into(),
            code: code.into(),
            message: "details".into(),
        };
        let e = Error::from(op("AllocationFailed"));
        assert!(e.retry().is_some());
        assert_eq!(
            e.to_string(),
            "arm create virtual machine lab-service-1: Failed: AllocationFailed: details"
        );
        assert!(Error::from(op("OperationNotAllowed")).retry().is_none());
    }

    #[test]
    fn refused_credentials_are_credential_errors() {
        let e = Error::from(AzureError::Token(TokenError::Refused(vre_cloud_kit::TokenRefused {
            uri: "https://login.microsoftonline.com/t/oauth2/v2.0/token".into(),
            status: 401,
            error: "invalid_client".into(),
            description: Some("AADSTS7000215: Invalid client secret provided.".into()),
            retry_after: None,
        })));
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("AZURE_CLIENT_SECRET"), "{e}");
    }
}
