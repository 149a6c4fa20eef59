//! The EC2 Query API over HTTP: a form-encoded POST signed with SigV4
//! (aws-sigv4), sent with reqwest, answered in XML. Counts every request by
//! action so callers and tests can see how many calls an operation made.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::de::DeserializeOwned;

use crate::credentials::{AwsCredentials, CredentialSource, Resolved};
use crate::error::AwsError;
use crate::query::Query;
use crate::wire::{self, ErrorResponse, Paged};

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The signing name of EC2.
const SERVICE: &str = "ec2";

/// A signed-request client for one region's EC2 endpoint.
pub struct Ec2Client {
    http: reqwest::Client,
    endpoint: url::Url,
    /// `host[:port]` as signed.
    host: String,
    region: String,
    credentials: AwsCredentials,
    counts: Mutex<BTreeMap<String, u64>>,
    /// Every request sent, kept when [`Ec2Client::record_requests`] was called.
    log: Mutex<Option<Vec<Query>>>,
}

impl std::fmt::Debug for Ec2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Client")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Ec2Client {
    pub fn new(resolved: Resolved) -> Result<Self, AwsError> {
        let host = match (resolved.endpoint.host_str(), resolved.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(AwsError::BadEndpoint {
                    origin: "endpoint".into(),
                    url: resolved.endpoint.to_string(),
                });
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("vre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| AwsError::Transport {
                action: "client".into(),
                source,
            })?;
        Ok(Ec2Client {
            http,
            endpoint: resolved.endpoint,
            host,
            region: resolved.region,
            credentials: resolved.credentials,
            counts: Mutex::new(BTreeMap::new()),
            log: Mutex::new(None),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    pub fn credential_source(&self) -> &CredentialSource {
        &self.credentials.source
    }

    /// Keeps every request from now on (for tests that check what was sent).
    pub fn record_requests(&self) {
        let mut log = self.log.lock().expect("poisoned");
        if log.is_none() {
            *log = Some(Vec::new());
        }
    }

    /// The requests sent since [`Ec2Client::record_requests`].
    pub fn recorded_requests(&self) -> Vec<Query> {
        self.log.lock().expect("poisoned").clone().unwrap_or_default()
    }

    /// Requests sent so far, by action.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("poisoned").clone()
    }

    /// How many `action` requests were sent.
    pub fn count(&self, action: &str) -> u64 {
        self.counts.lock().expect("poisoned").get(action).copied().unwrap_or(0)
    }

    /// The signed HTTP request for `q`.
    pub fn signed_request(&self, q: &Query, time: SystemTime) -> Result<http::Request<String>, AwsError> {
        let body = q.encode();
        let signing_error = |reason: String| AwsError::Signing {
            action: q.action().to_string(),
            reason,
        };
        let identity: Identity = self.credentials.to_sdk().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(e.to_string()))?
            .into();
        let headers = [("host", self.host.as_str()), ("content-type", CONTENT_TYPE)];
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| signing_error(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_error(e.to_string()))?
            .into_parts();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(self.endpoint.as_str())
            .header("host", &self.host)
            .header("content-type", CONTENT_TYPE)
            .body(body)
            .map_err(|e| signing_error(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Sends `q`; returns the answer body, or the EC2 error it carried.
    pub async fn send(&self, q: &Query) -> Result<String, AwsError> {
        let action = q.action();
        *self
            .counts
            .lock()
            .expect("poisoned")
            .entry(action.to_string())
            .or_default() += 1;
        if let Some(log) = self.log.lock().expect("poisoned").as_mut() {
            log.push(q.clone());
        }
        tracing::debug!(request = %q.describe(), "ec2");
        let req = self.signed_request(q, SystemTime::now())?;
        let req = reqwest::Request::try_from(req).map_err(|source| AwsError::Transport {
            action: action.to_string(),
            source,
        })?;
        let transport = |source: reqwest::Error| AwsError::Transport {
            action: action.to_string(),
            source,
        };
        let resp = self.http.execute(req).await.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(self.error_from(action, status, &text))
    }

    fn error_from(&self, action: &str, status: u16, text: &str) -> AwsError {
        let doc: Option<ErrorResponse> = wire::parse(text).ok();
        let Some((detail, request_id)) = doc.and_then(|d| {
            let id = d.request_id;
            d.errors.error.into_iter().next().map(|e| (e, id))
        }) else {
            return AwsError::Http {
                action: action.to_string(),
                status,
                snippet: snippet(text),
            };
        };
        let source_desc = self.credentials.source.to_string();
        if AwsError::is_credential_code(&detail.code) {
            return AwsError::Rejected {
                action: action.to_string(),
                code: detail.code,
                message: detail.message,
                source_desc,
            };
        }
        if detail.code == "UnauthorizedOperation" {
            return AwsError::Unauthorized {
                action: action.to_string(),
                message: detail.message,
                source_desc,
            };
        }
        AwsError::Api {
            action: action.to_string(),
            status,
            code: detail.code,
            message: detail.message,
            request_id,
        }
    }

    /// Sends `q` and parses the answer.
    pub async fn call<T: DeserializeOwned>(&self, q: &Query) -> Result<T, AwsError> {
        let text = self.send(q).await?;
        wire::parse(&text).map_err(|e| AwsError::Decode {
            action: q.action().to_string(),
            reason: e.to_string(),
            snippet: snippet(&text),
        })
    }

    /// Sends `q` and follows `nextToken` until the last page.
    pub async fn call_pages<T: DeserializeOwned + Paged>(&self, q: Query) -> Result<Vec<T>, AwsError> {
        let mut pages = Vec::new();
        let mut q = q;
        loop {
            let page: T = self.call(&q).await?;
            let next = page.next_token().map(str::to_string);
            pages.push(page);
            match next {
                Some(token) if pages.len() < 1000 => q = q.param("NextToken", token),
                _ => return Ok(pages),
            }
        }
    }
}

/// The start of a body, on one line, for messages.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}...", one_line.chars().take(200).collect::<String>())
    } else if one_line.is_empty() {
        "(empty body)".to_string()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::AwsCredentials;

    fn client(token: Option<&str>) -> Ec2Client {
        Ec2Client::new(Resolved {
            credentials: AwsCredentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                token.map(str::to_string),
                CredentialSource::Environment,
            ),
            region: "us-east-1".into(),
            endpoint: url::Url::parse("https://ec2.us-east-1.amazonaws.com/").unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn requests_are_signed_for_ec2_in_the_region() {
        let c = client(None);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let req = c.signed_request(&Query::new("DescribeRegions"), t).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders="
            ),
            "{auth}"
        );
        let signed: Vec<&str> = auth
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .split(';')
            .collect();
        for h in ["content-type", "host", "x-amz-date"] {
            assert!(signed.contains(&h), "{h} not signed: {auth}");
        }
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers().get("x-amz-security-token").is_none());
        assert_eq!(req.body(), "Action=DescribeRegions&Version=2016-11-15");
        // same input, same signature; another body, another signature
        let again = c.signed_request(&Query::new("DescribeRegions"), t).unwrap();
        assert_eq!(again.headers()["authorization"], req.headers()["authorization"]);
        let other = c.signed_request(&Query::new("DescribeVpcs"), t).unwrap();
        assert_ne!(other.headers()["authorization"], req.headers()["authorization"]);
    }

    #[test]
    fn session_tokens_travel_in_their_header() {
        let c = client(Some("FQoGZXIvYXdzEXAMPLE"));
        let req = c
            .signed_request(&Query::new("DescribeVpcs"), SystemTime::now())
            .unwrap();
        assert_eq!(req.headers()["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLE");
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("x-amz-security-token"), "{auth}");
    }

    #[test]
    fn errors_are_classified_by_code() {
        let c = client(None);
        let doc = |code: &str| {
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>"
            )
        };
        assert!(matches!(
            c.error_from("RunInstances", 401, &doc("AuthFailure")),
            AwsError::Rejected { .. }
        ));
        assert!(matches!(
            c.error_from("RunInstances", 403, &doc("UnauthorizedOperation")),
            AwsError::Unauthorized { .. }
        ));
        let e = c.error_from("RunInstances", 503, &doc("RequestLimitExceeded"));
        assert!(e.is_retriable(), "{e}");
        let e = c.error_from(
            "ImportImage",
            500,
            "<!doctype html><title>500 Internal Server Error</title>",
        );
        assert!(matches!(&e, AwsError::Http { status: 500, .. }), "{e}");
        assert!(e.is_retriable());
    }
}
