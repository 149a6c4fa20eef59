//! Service-account authentication: the OAuth2 JWT-bearer grant (RFC 7523)
//! with an RS256 assertion signed by the key's RSA private key, and a token
//! cache refreshed shortly before expiry (one refresh in flight at a time).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use vre_cloud_kit::{AccessToken, TokenCache, request_token};

use crate::error::GcpError;

/// Google's token endpoint, used when the key names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope vre asks for: Compute Engine and the Cloud Storage reads an image import needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The grant type of RFC 7523 section 2.1.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A cached token is renewed when less than this is left.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A service-account JSON key, as downloaded from the console. The private
/// key never leaves this type (its `Debug` shows the account only).
#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub project_id: Option<String>,
    pub token_uri: String,
    key_id: Option<String>,
    signer: Arc<RsaKeyPair>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Reads a key file (no network).
    pub fn from_file(path: &Path) -> Result<Self, GcpError> {
        let text = std::fs::read_to_string(path).map_err(|source| GcpError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses a key's JSON text; `path` is only used in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, GcpError> {
        let bad = |reason: String| GcpError::KeyFormat {
            path: path.to_path_buf(),
            reason,
        };
        let f: KeyFile = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        match f.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(bad(format!(
                    "\"type\" is \"{other}\", vre needs a \"service_account\" key (user credentials from `gcloud auth application-default login` cannot sign)"
                )));
            }
            None => return Err(bad("it has no \"type\" field".into())),
        }
        let client_email = f.client_email.ok_or_else(|| bad("it has no \"client_email\"".into()))?;
        let pem = f.private_key.ok_or_else(|| bad("it has no \"private_key\"".into()))?;
        let signer = rsa_key_from_pem(&pem).map_err(bad)?;
        Ok(ServiceAccountKey {
            client_email,
            project_id: f.project_id.filter(|p| !p.is_empty()),
            token_uri: f
                .token_uri
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            key_id: f.private_key_id.filter(|k| !k.is_empty()),
            signer: Arc::new(signer),
        })
    }

    /// The RS256-signed JWT of RFC 7523 section 2.1, issued at `now` (seconds since the epoch).
    pub fn assertion(&self, scope: &str, now: u64) -> Result<String, GcpError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| GcpError::KeyFormat {
                path: PathBuf::from(&self.client_email),
                reason: "the RSA key could not sign the token request".into(),
            })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The public half (DER `RSAPublicKey`), for checking signatures.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.signer.public().as_ref().to_vec()
    }
}

/// Decodes a PEM private key: PKCS#8 (`PRIVATE KEY`, what Google issues) or PKCS#1 (`RSA PRIVATE KEY`).
fn rsa_key_from_pem(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_body(pem).ok_or("\"private_key\" is not a PEM block")?;
    let der = STANDARD
        .decode(der)
        .map_err(|e| format!("\"private_key\" is not valid base64 ({e})"))?;
    match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => {
            return Err(format!(
                "\"private_key\" is a \"{other}\" PEM block, not an RSA private key"
            ));
        }
    }
    .map_err(|e| format!("\"private_key\" is not an RSA key ring accepts ({e})"))
}

/// The label and base64 body (whitespace removed) of the first PEM block.
fn pem_body(pem: &str) -> Option<(String, String)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = &rest[label_end + 5..];
    let end = body_start.find(&format!("-----END {label}-----"))?;
    let body: String = body_start[..end].chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, body))
}

/// Hands out bearer tokens for one service account, cached until shortly
/// before they expire. Concurrent callers share one refresh.
pub struct TokenSource {
    key: ServiceAccountKey,
    scope: String,
    http: reqwest::Client,
    cache: TokenCache,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.key.client_email)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Tokens for `key` with `scope`, granted over `http`.
    pub fn new(key: ServiceAccountKey, scope: impl Into<String>, http: reqwest::Client) -> Self {
        TokenSource {
            key,
            scope: scope.into(),
            http,
            cache: TokenCache::new(REFRESH_MARGIN),
        }
    }

    /// The service-account key the tokens are granted for.
    pub fn key(&self) -> &ServiceAccountKey {
        &self.key
    }

    /// A valid bearer token, from the cache or freshly granted.
    pub async fn token(&self) -> Result<String, GcpError> {
        self.cache.get(|| self.grant()).await
    }

    /// Forgets the cached token (after the API answered 401).
    pub async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn grant(&self) -> Result<AccessToken, GcpError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let assertion = self.key.assertion(&self.scope, now)?;
        let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())];
        request_token(&self.http, &self.key.token_uri, &form, Duration::from_secs(3600))
            .await
            .map_err(GcpError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{Reply, Script, key_for, serve, token_reply};
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use std::sync::Arc;

    fn decode_part(s: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_the_public_key_verifies() {
        let key = key_for("https://oauth2.example.test/");
        let jwt = key.assertion(CLOUD_PLATFORM_SCOPE, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "0123456789abcdef0123456789abcdef01234567");
        let claims = decode_part(parts[1]);
        assert_eq!(claims["iss"], "vre@vre-test-project.iam.gserviceaccount.com");
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);
        assert_eq!(claims["aud"], "https://oauth2.example.test/token");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key_der())
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies with the key's public half");
        // a changed claim breaks it
        let forged = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(b"{\"iss\":\"x\"}"));
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key_der())
                .verify(forged.as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let key = key_for("https://oauth2.example.test/");
        let shown = format!("{key:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        let p = Path::new("k.json");
        let user = r#"{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}"#;
        let e = ServiceAccountKey::from_json(user, p).unwrap_err().to_string();
        assert!(e.contains("authorized_user") && e.contains("service_account"), "{e}");
        let no_key = r#"{"type": "service_account", "client_email": "a@b"}"#;
        assert!(
            ServiceAccountKey::from_json(no_key, p)
                .unwrap_err()
                .to_string()
                .contains("private_key")
        );
        let bad_pem = r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#;
        assert!(
            ServiceAccountKey::from_json(bad_pem, p)
                .unwrap_err()
                .to_string()
                .contains("not an RSA key")
        );
        assert!(
            ServiceAccountKey::from_json("{", p)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        let missing = ServiceAccountKey::from_file(Path::new("/nonexistent/key.json")).unwrap_err();
        assert!(missing.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"));
    }

    #[tokio::test]
    async fn the_token_request_is_a_jwt_bearer_grant() {
        let script = Script::new();
        script.on("POST", "/token", vec![token_reply("ya29.first", 3599)]);
        let base = serve(script.clone()).await;
        let key = key_for(&base);
        let public = key.public_key_der();
        let tokens = TokenSource::new(key, CLOUD_PLATFORM_SCOPE, reqwest::Client::new());
        assert_eq!(tokens.token().await.unwrap(), "ya29.first");

        let seen = script.seen();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.headers["content-type"], "application/x-www-form-urlencoded");
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(req.body.as_bytes()).into_owned().collect();
        assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
        assert_eq!(form.len(), 2, "{form:?}");
        let parts: Vec<&str> = form["assertion"].split('.').collect();
        let claims = decode_part(parts[1]);
        assert_eq!(claims["aud"], format!("{base}token"));
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .expect("signature");
    }

    #[tokio::test]
    async fn tokens_are_cached_and_refreshed_once_for_concurrent_callers() {
        let script = Script::new();
        script.on(
            "POST",
            "/token",
            vec![token_reply("ya29.a", 3599), token_reply("ya29.b", 3599)],
        );
        let base = serve(script.clone()).await;
        let tokens = Arc::new(TokenSource::new(
            key_for(&base),
            CLOUD_PLATFORM_SCOPE,
            reqwest::Client::new(),
        ));
        let all = futures::future::join_all((0..8).map(|_| {
            let t = tokens.clone();
            async move { t.token().await.unwrap() }
        }))
        .await;
        assert!(all.iter().all(|t| t == "ya29.a"), "{all:?}");
        assert_eq!(tokens.token().await.unwrap(), "ya29.a");
        assert_eq!(script.count("POST", "/token"), 1);
        // after a 401 the cache is dropped and a new token granted
        tokens.invalidate().await;
        assert_eq!(tokens.token().await.unwrap(), "ya29.b");
        assert_eq!(script.count("POST", "/token"), 2);
    }

    #[tokio::test]
    async fn tokens_close_to_expiry_are_renewed() {
        let script = Script::new();
        // 120 s left is inside the refresh margin: every call renews
        script.on("POST", "/token", vec![token_reply("ya29.short", 120)]);
        let base = serve(script.clone()).await;
        let tokens = TokenSource::new(key_for(&base), CLOUD_PLATFORM_SCOPE, reqwest::Client::new());
        tokens.token().await.unwrap();
        tokens.token().await.unwrap();
        assert_eq!(script.count("POST", "/token"), 2);
    }

    #[tokio::test]
    async fn refused_grants_report_the_oauth_error() {
        let script = Script::new();
        script.on(
            "POST",
            "/token",
            vec![Reply::json(
                400,
                serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            )],
        );
        let base = serve(script.clone()).await;
        let tokens = TokenSource::new(key_for(&base), CLOUD_PLATFORM_SCOPE, reqwest::Client::new());
        let e = vre_core::Error::from(tokens.token().await.unwrap_err());
        let text = e.to_string();
        assert!(text.contains("invalid_grant: Invalid JWT Signature."), "{text}");
        assert!(text.contains("service-account key"), "{text}");
        assert!(e.retry().is_none());
    }
}
