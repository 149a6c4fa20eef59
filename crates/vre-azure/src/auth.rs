//! Microsoft Entra ID client-credentials flow (OAuth 2.0, RFC 6749 section
//! 4.4) for a service principal, with a token cache refreshed shortly before
//! expiry (one refresh in flight at a time).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::AzureError;

/// The public-cloud authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
/// The scope of Azure Resource Manager for the client-credentials flow.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// A cached token is renewed when less than this is left.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A service principal's credentials. The secret never appears in `Debug`.
#[derive(Clone)]
pub struct ClientCredentials {
    pub tenant_id: String,
    pub client_id: String,
    client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl ClientCredentials {
    pub fn new(tenant_id: impl Into<String>, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        ClientCredentials {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

#[derive(Clone)]
struct AccessToken {
    secret: String,
    expires_at: Instant,
}

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

/// Bearer tokens for Azure Resource Manager, cached.
pub struct TokenSource {
    credentials: ClientCredentials,
    /// `<authority><tenant>/oauth2/v2.0/token`.
    token_uri: String,
    scope: String,
    http: reqwest::Client,
    cache: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// `authority` is the Entra ID root (`https://login.microsoftonline.com/`).
    pub fn new(credentials: ClientCredentials, authority: &str, scope: &str, http: reqwest::Client) -> Self {
        let mut authority = authority.to_string();
        if !authority.ends_with('/') {
            authority.push('/');
        }
        TokenSource {
            token_uri: format!("{authority}{}/oauth2/v2.0/token", credentials.tenant_id),
            credentials,
            scope: scope.to_string(),
            http,
            cache: Mutex::new(None),
        }
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// A valid bearer token, from the cache or freshly granted.
    pub async fn token(&self) -> Result<String, AzureError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref()
            && t.expires_at.saturating_duration_since(Instant::now()) > REFRESH_MARGIN
        {
            return Ok(t.secret.clone());
        }
        let fresh = self.grant().await?;
        let secret = fresh.secret.clone();
        *cache = Some(fresh);
        Ok(secret)
    }

    /// Forgets the cached token (after ARM answered 401).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn grant(&self) -> Result<AccessToken, AzureError> {
        let started = Instant::now();
        let transport = |source| AzureError::Transport {
            operation: "token request".into(),
            source,
        };
        let resp = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("client_id", self.credentials.client_id.as_str()),
                ("client_secret", self.credentials.client_secret.as_str()),
                ("scope", self.scope.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = crate::client::retry_after(resp.headers());
        let body = resp.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            let e: Option<TokenErrorAnswer> = serde_json::from_slice(&body).ok();
            return Err(AzureError::Token {
                uri: self.token_uri.clone(),
                status,
                error: e
                    .as_ref()
                    .and_then(|e| e.error.clone())
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
                description: e.and_then(|e| e.error_description).map(|d| first_line(&d)),
                retry_after,
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| AzureError::Decode {
            operation: "token request".into(),
            message: format!("the token endpoint's answer has no access_token ({e})"),
        })?;
        if let Some(t) = &answer.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(AzureError::Decode {
                operation: "token request".into(),
                message: format!("token_type is \"{t}\", expected \"Bearer\""),
            });
        }
        Ok(AccessToken {
            secret: answer.access_token,
            expires_at: started + Duration::from_secs(answer.expires_in.unwrap_or(3599)),
        })
    }
}

/// Entra ID descriptions carry trace and correlation ids on later lines.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{Reply, Script, TENANT, serve, token_reply, tokens_for};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn token_path() -> String {
        format!("/{TENANT}/oauth2/v2.0/token")
    }

    #[tokio::test]
    async fn the_token_request_is_a_client_credentials_grant() {
        let script = Script::new();
        script.on("POST", &token_path(), vec![token_reply("eyJ0.first", 3599)]);
        let base = serve(script.clone()).await;
        let tokens = tokens_for(&base);
        assert_eq!(tokens.token_uri(), format!("{base}{TENANT}/oauth2/v2.0/token"));
        assert_eq!(tokens.token().await.unwrap(), "eyJ0.first");
        let seen = script.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].headers["content-type"], "application/x-www-form-urlencoded");
        let form: HashMap<String, String> = url::form_urlencoded::parse(seen[0].body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "https://management.azure.com/.default");
        assert_eq!(form["client_id"], "66666666-7777-4888-9999-000000000000");
        assert_eq!(form["client_secret"], "test-secret-value");
        assert_eq!(form.len(), 4);
    }

    #[tokio::test]
    async fn tokens_are_cached_and_shared_by_concurrent_callers() {
        let script = Script::new();
        script.on(
            "POST",
            &token_path(),
            vec![token_reply("eyJ0.a", 3599), token_reply("eyJ0.b", 3599)],
        );
        let base = serve(script.clone()).await;
        let tokens = Arc::new(tokens_for(&base));
        let all = futures::future::join_all((0..6).map(|_| {
            let t = tokens.clone();
            async move { t.token().await.unwrap() }
        }))
        .await;
        assert!(all.iter().all(|t| t == "eyJ0.a"), "{all:?}");
        assert_eq!(script.count("POST", &token_path()), 1);
        tokens.invalidate().await;
        assert_eq!(tokens.token().await.unwrap(), "eyJ0.b");
        assert_eq!(script.count("POST", &token_path()), 2);
    }

    #[tokio::test]
    async fn tokens_close_to_expiry_are_renewed() {
        let script = Script::new();
        script.on("POST", &token_path(), vec![token_reply("eyJ0.short", 60)]);
        let base = serve(script.clone()).await;
        let tokens = tokens_for(&base);
        tokens.token().await.unwrap();
        tokens.token().await.unwrap();
        assert_eq!(script.count("POST", &token_path()), 2);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_a_credentials_error_without_the_secret() {
        let script = Script::new();
        script.on(
            "POST",
            &token_path(),
            vec![Reply::json(
                401,
                serde_json::json!({
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 0000\r\nCorrelation ID: 1111",
                    "error_codes": [7000215],
                }),
            )],
        );
        let base = serve(script.clone()).await;
        let e = vre_core::Error::from(tokens_for(&base).token().await.unwrap_err());
        let text = e.to_string();
        assert_eq!(e.exit_code(), 2);
        assert!(
            text.contains("AADSTS7000215: Invalid client secret provided."),
            "{text}"
        );
        assert!(
            !text.contains("Trace ID") && !text.contains("test-secret-value"),
            "{text}"
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = ClientCredentials::new("t", "c", "s3cr3t");
        let shown = format!("{c:?}");
        assert!(shown.contains("<redacted>") && !shown.contains("s3cr3t"), "{shown}");
    }
}
