//! Microsoft Entra ID client-credentials flow (OAuth 2.0, RFC 6749 section
//! 4.4) for a service principal, with a token cache refreshed shortly before
//! expiry (one refresh in flight at a time).

use std::fmt;
use std::time::Duration;

use vre_cloud_kit::{AccessToken, TokenCache, TokenError, request_token};

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

/// Bearer tokens for Azure Resource Manager, cached.
pub struct TokenSource {
    credentials: ClientCredentials,
    /// `<authority><tenant>/oauth2/v2.0/token`.
    token_uri: String,
    scope: String,
    http: reqwest::Client,
    cache: TokenCache,
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
            cache: TokenCache::new(REFRESH_MARGIN),
        }
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// A valid bearer token, from the cache or freshly granted.
    pub async fn token(&self) -> Result<String, AzureError> {
        self.cache.get(|| self.grant()).await
    }

    /// Forgets the cached token (after ARM answered 401).
    pub async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn grant(&self) -> Result<AccessToken, AzureError> {
        let form = [
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.client_secret.as_str()),
            ("scope", self.scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        request_token(&self.http, &self.token_uri, &form, Duration::from_secs(3599))
            .await
            .map_err(|e| match e {
                TokenError::Refused(mut r) => {
                    r.description = r.description.map(|d| first_line(&d));
                    TokenError::Refused(r).into()
                }
                other => other.into(),
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
