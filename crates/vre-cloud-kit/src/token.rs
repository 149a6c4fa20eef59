//! OAuth2 bearer tokens: one grant at a token endpoint
//! ([`request_token`]), and a cache that hands the token out until shortly
//! before it expires ([`TokenCache`]), one refresh in flight at a time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use vre_core::{CloudError, Error};

use crate::answer::{retry_after, unexpected_answer};

/// An access token and when it expires; its text is never printed.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    expires_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// A token valid until `expires_at`.
    pub fn new(secret: impl Into<String>, expires_at: Instant) -> Self {
        AccessToken {
            secret: secret.into(),
            expires_at,
        }
    }

    /// The bearer token's text.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

/// Caches one bearer token, renewing it when less than `margin` of its
/// lifetime is left. The lock is held across a refresh, so concurrent
/// callers wait for one grant instead of each asking the endpoint.
pub struct TokenCache {
    margin: Duration,
    slot: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// An empty cache renewing tokens `margin` before they expire.
    pub fn new(margin: Duration) -> Self {
        TokenCache {
            margin,
            slot: Mutex::new(None),
        }
    }

    /// The cached token while it has more than the margin left; otherwise
    /// runs `grant`, caches what it returns and hands that out.
    pub async fn get<E, F, Fut>(&self, grant: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref()
            && t.expires_at.saturating_duration_since(Instant::now()) > self.margin
        {
            return Ok(t.secret.clone());
        }
        let fresh = grant().await?;
        let secret = fresh.secret.clone();
        *slot = Some(fresh);
        Ok(secret)
    }

    /// Forgets the cached token (after the API answered 401).
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }
}

/// A token endpoint's refusal (RFC 6749 section 5.2), as the provider's
/// error type carries it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("token endpoint {uri}: HTTP {status}: {error}{}", description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct TokenRefused {
    /// The token endpoint.
    pub uri: String,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The OAuth2 `error` (`invalid_grant`), or the start of the body without one.
    pub error: String,
    /// The OAuth2 `error_description`, when the endpoint sent one.
    pub description: Option<String>,
    /// The endpoint's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl TokenRefused {
    /// `error: description`, or the error alone.
    pub fn text(&self) -> String {
        match &self.description {
            Some(d) => format!("{}: {d}", self.error),
            None => self.error.clone(),
        }
    }
}

/// Why [`request_token`] got no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request got no answer.
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The endpoint refused the grant.
    #[error(transparent)]
    Refused(TokenRefused),
    /// The endpoint's answer is not a bearer token.
    #[error("{0}")]
    Decode(String),
}

impl TokenError {
    /// Into vre-core's error for `service`'s token request: a transport
    /// failure is retriable, an answer that is no bearer token is not, and
    /// `refused` says what a refusal means for this cloud (credentials to
    /// fix, or an HTTP error of the endpoint).
    pub fn into_error(self, service: &str, refused: impl FnOnce(TokenRefused) -> Error) -> Error {
        match self {
            TokenError::Transport(source) => CloudError::transport(service, TOKEN_REQUEST, source).into(),
            TokenError::Refused(r) => refused(r),
            TokenError::Decode(message) => unexpected_answer(service, TOKEN_REQUEST, message).into(),
        }
    }
}

/// The operation name of a token request in errors.
pub const TOKEN_REQUEST: &str = "token request";

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// POSTs the grant `form` to the token endpoint `uri` and returns the
/// bearer token it grants, valid for its `expires_in` (counted from when
/// the request started) or `default_lifetime` when the answer names none.
pub async fn request_token(
    http: &reqwest::Client,
    uri: &str,
    form: &[(&str, &str)],
    default_lifetime: Duration,
) -> Result<AccessToken, TokenError> {
    let started = Instant::now();
    let resp = http.post(uri).form(form).send().await.map_err(TokenError::Transport)?;
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = resp.bytes().await.map_err(TokenError::Transport)?;
    if !(200..300).contains(&status) {
        let e: Option<TokenErrorAnswer> = serde_json::from_slice(&body).ok();
        return Err(TokenError::Refused(TokenRefused {
            uri: uri.to_string(),
            status,
            error: e
                .as_ref()
                .and_then(|e| e.error.clone())
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
            description: e.and_then(|e| e.error_description),
            retry_after,
        }));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|e| TokenError::Decode(format!("the token endpoint's answer has no access_token ({e})")))?;
    if let Some(t) = &answer.token_type
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Decode(format!(
            "token_type is \"{t}\", expected \"Bearer\""
        )));
    }
    let lifetime = answer.expires_in.map_or(default_lifetime, Duration::from_secs);
    Ok(AccessToken::new(answer.access_token, started + lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn granting(count: &Arc<AtomicUsize>, lifetime: Duration) -> impl Future<Output = Result<AccessToken, String>> {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("t{n}"), Instant::now() + lifetime)) }
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_renewed_only_inside_the_margin() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let grants = Arc::new(AtomicUsize::new(0));
        let hour = Duration::from_secs(3600);
        assert_eq!(cache.get(|| granting(&grants, hour)).await.unwrap(), "t1");
        tokio::time::advance(Duration::from_secs(3299)).await;
        assert_eq!(cache.get(|| granting(&grants, hour)).await.unwrap(), "t1");
        tokio::time::advance(Duration::from_secs(1)).await;
        // exactly the margin left: renewed
        assert_eq!(cache.get(|| granting(&grants, hour)).await.unwrap(), "t2");
        assert_eq!(grants.load(Ordering::SeqCst), 2);
        cache.invalidate().await;
        assert_eq!(cache.get(|| granting(&grants, hour)).await.unwrap(), "t3");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_grant_and_failures_are_not_cached() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let grants = Arc::new(AtomicUsize::new(0));
        let e = cache
            .get(|| async { Err::<AccessToken, _>("refused".to_string()) })
            .await
            .unwrap_err();
        assert_eq!(e, "refused");
        let all: Vec<String> = futures_join((0..5).map(|_| {
            let (cache, grants) = (cache.clone(), grants.clone());
            tokio::spawn(async move {
                cache
                    .get(|| async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        granting(&grants, Duration::from_secs(3600)).await
                    })
                    .await
                    .unwrap()
            })
        }))
        .await;
        assert!(all.iter().all(|t| t == "t1"), "{all:?}");
        assert_eq!(grants.load(Ordering::SeqCst), 1);
    }

    async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<String>>) -> Vec<String> {
        let mut out = Vec::new();
        for h in handles.collect::<Vec<_>>() {
            out.push(h.await.unwrap());
        }
        out
    }

    #[test]
    fn refusals_read_as_error_and_description() {
        let r = TokenRefused {
            uri: "https://t/token".into(),
            status: 400,
            error: "invalid_grant".into(),
            description: Some("Invalid JWT".into()),
            retry_after: None,
        };
        assert_eq!(r.text(), "invalid_grant: Invalid JWT");
        assert_eq!(
            r.to_string(),
            "token endpoint https://t/token: HTTP 400: invalid_grant: Invalid JWT"
        );
        assert!(!format!("{:?}", AccessToken::new("s3cr3t", Instant::now())).contains("s3cr3t"));
        let e = TokenError::Refused(r).into_error("arm", |r| Error::Credentials { message: r.text() });
        assert_eq!(e.exit_code(), 2);
        let e = TokenError::Decode("no access_token".into()).into_error("arm", |_| unreachable!());
        assert_eq!(e.to_string(), "arm token request: unexpected answer: no access_token");
        assert_eq!(e.retry(), None);
    }
}
