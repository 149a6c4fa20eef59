//! Constructors that turn a cloud's answer into vre-core's error kinds, so
//! every provider classifies the same answer the same way: whether the
//! engine may retry, after how long, and whether the user (credentials,
//! spec input) must act.

use std::time::Duration;

use vre_core::{CloudError, Error, Retry};

/// The `Retry-After` header in seconds, when the server sent one (an
/// HTTP-date or garbage counts as none).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An HTTP error answer classified by its status alone: 408, 425, 429 and
/// 5xx are retriable after `retry_after`, the rest not; `code` is the
/// cloud's own error code when it sent one.
pub fn http(
    service: &str,
    operation: impl Into<String>,
    status: u16,
    code: Option<String>,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> CloudError {
    let c = CloudError::http(service, operation, status, message, retry_after);
    match code {
        Some(code) => c.with_code(code),
        None => c,
    }
}

/// The resource the request named does not exist (HTTP 404).
pub fn not_found(service: &str, operation: impl Into<String>, message: impl Into<String>) -> CloudError {
    CloudError::http(service, operation, 404, message, None)
}

/// The cloud throttled the request (whatever the status it used, e.g.
/// Google's 403 `rateLimitExceeded`): retriable after `retry_after`.
pub fn throttled(
    service: &str,
    operation: impl Into<String>,
    status: u16,
    code: impl Into<String>,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> CloudError {
    CloudError::http(service, operation, status, message, retry_after)
        .with_code(code)
        .with_retry(Retry::After(retry_after))
}

/// A quota or limit is exhausted: retrying cannot help until the user
/// raises it or asks for less.
pub fn quota(
    service: &str,
    operation: impl Into<String>,
    status: Option<u16>,
    code: impl Into<String>,
    message: impl Into<String>,
) -> CloudError {
    failed(service, operation, status, Some(code.into()), message, false)
}

/// A failure reported in an answer's body rather than its status (a
/// long-running operation that ended in error, an error document):
/// retriable without a named delay when `transient`.
pub fn failed(
    service: &str,
    operation: impl Into<String>,
    status: Option<u16>,
    code: Option<String>,
    message: impl Into<String>,
    transient: bool,
) -> CloudError {
    CloudError {
        service: service.to_string(),
        operation: operation.into(),
        status,
        code,
        message: message.into(),
        retry: if transient { Retry::After(None) } else { Retry::Never },
        source: None,
    }
}

/// An answer that does not have the documented shape: not retriable.
pub fn unexpected_answer(service: &str, operation: impl Into<String>, message: impl std::fmt::Display) -> CloudError {
    failed(
        service,
        operation,
        None,
        None,
        format!("unexpected answer: {message}"),
        false,
    )
}

/// Credentials are missing, refused or unusable; `message` says which
/// variable or file to set.
pub fn credentials(message: impl Into<String>) -> Error {
    Error::Credentials {
        message: message.into(),
    }
}

/// Spec input that only the cloud could reject (an unknown machine type,
/// an image that does not exist): names the spec `field` to change.
pub fn input(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::input(field, message)
}

/// A long-running operation that is still going after `after`; the hint
/// says how to pick it up.
pub fn still_running(what: impl Into<String>, after: Duration, hint: impl Into<String>) -> Error {
    Error::Timeout {
        what: what.into(),
        after,
        hint: hint.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(" 12 ")), Some(Duration::from_secs(12)));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&headers("-3")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn kinds_say_whether_and_when_to_retry() {
        let t = throttled(
            "compute",
            "list",
            403,
            "rateLimitExceeded",
            "slow down",
            Some(Duration::from_secs(3)),
        );
        assert_eq!(t.retry, Retry::After(Some(Duration::from_secs(3))));
        assert_eq!(t.code.as_deref(), Some("rateLimitExceeded"));
        assert!(not_found("arm", "read vm", "gone").is_not_found());
        assert_eq!(
            quota("ec2", "run", Some(400), "InstanceLimitExceeded", "m").retry,
            Retry::Never
        );
        assert_eq!(failed("compute", "op", None, None, "m", true).retry, Retry::After(None));
        let h = http(
            "arm",
            "put",
            503,
            Some("ServerBusy".into()),
            "busy",
            Some(Duration::from_secs(9)),
        );
        assert_eq!(h.retry, Retry::After(Some(Duration::from_secs(9))));
        assert_eq!(http("arm", "put", 400, None, "bad", None).retry, Retry::Never);
        let u = unexpected_answer("arm", "read vm", "no id");
        assert_eq!(u.to_string(), "arm read vm: unexpected answer: no id");
        assert_eq!(u.retry, Retry::Never);
    }

    #[test]
    fn user_kinds_exit_with_code_two() {
        assert_eq!(credentials("set AZURE_CLIENT_SECRET").exit_code(), 2);
        let e = input("nodes.master.flavor", "unknown machine type");
        assert_eq!(e.to_string(), "nodes.master.flavor: unknown machine type");
        let t = still_running("operation op-1", Duration::from_secs(60), "run again");
        assert_eq!(t.retry(), None);
    }
}
