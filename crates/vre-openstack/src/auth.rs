//! The Keystone v3 authentication that turns [`Credentials`] into a token
//! and a service catalog, as an `osauth` [`AuthType`] so the `osauth` session
//! (and through it every call of [`crate::api::Api`]) runs on it.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use osauth::{AuthType, EndpointFilters, ErrorKind, InterfaceType};
use reqwest::{Client, RequestBuilder, Url};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::error::{ErrorBody, OpenStackError};

pub use crate::credentials::{AuthMethod, Credentials, NO_CREDENTIALS, NameOrId, ProjectScope};

/// A Keystone v3 token with its catalog.
#[derive(Clone, Debug)]
pub struct Token {
    value: String,
    /// When to fetch a new one (a minute before Keystone's expiry).
    refresh_at: Instant,
    pub project_id: Option<String>,
    pub catalog: Vec<CatalogEntry>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CatalogEndpoint {
    pub interface: String,
    pub region: Option<String>,
    pub region_id: Option<String>,
    pub url: String,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    issued_at: Option<String>,
    project: Option<TokenProject>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct TokenProject {
    id: String,
}

impl Token {
    /// Reads Keystone's answer to `POST /v3/auth/tokens`: the token is the
    /// `X-Subject-Token` header, the rest is the body.
    pub fn parse(subject_token: &str, body: &str, now: Instant) -> Result<Token, OpenStackError> {
        let b: TokenBody =
            serde_json::from_str(body).map_err(|e| OpenStackError::decode("keystone", "issue token", e.to_string()))?;
        let lifetime = token_lifetime(&b.token.expires_at, b.token.issued_at.as_deref());
        let margin = Duration::from_secs(60).min(lifetime / 2);
        Ok(Token {
            value: subject_token.to_string(),
            refresh_at: now + lifetime - margin,
            project_id: b.token.project.map(|p| p.id),
            catalog: b.token.catalog,
        })
    }

    /// The endpoint of `service_type` matching the interface and region.
    pub fn endpoint(&self, service_type: &str, interface: InterfaceType, region: Option<&str>) -> Option<&str> {
        let wanted = match interface {
            InterfaceType::Public => "public",
            InterfaceType::Internal => "internal",
            InterfaceType::Admin => "admin",
        };
        let block_storage = ["block-storage", "volumev3", "block-store", "volume"];
        let aliases: &[&str] = match service_type {
            "block-storage" => &block_storage,
            _ => std::slice::from_ref(&service_type),
        };
        aliases.iter().find_map(|t| {
            self.catalog
                .iter()
                .filter(|c| c.service_type == *t)
                .flat_map(|c| c.endpoints.iter())
                .find(|e| {
                    e.interface == wanted
                        && region.is_none_or(|r| e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r))
                })
                .map(|e| e.url.as_str())
        })
    }
}

/// Keystone's token lifetime from `expires_at - issued_at` (both in the
/// server's clock, so skew does not matter); one hour when unreadable.
fn token_lifetime(expires_at: &str, issued_at: Option<&str>) -> Duration {
    use time::format_description::well_known::Rfc3339;
    let parse = |s: &str| time::OffsetDateTime::parse(s, &Rfc3339).ok();
    match (parse(expires_at), issued_at.and_then(parse)) {
        (Some(e), Some(i)) if e > i => {
            let secs = (e - i).whole_seconds().max(0) as u64;
            Duration::from_secs(secs)
        }
        _ => Duration::from_secs(3600),
    }
}

/// Keystone v3 authentication for `osauth` sessions: issues a token with
/// the resolved credentials, keeps it until shortly before it expires, and
/// finds endpoints in its catalog.
pub struct KeystoneAuth {
    credentials: Credentials,
    token_url: Url,
    interface: InterfaceType,
    token: RwLock<Option<Token>>,
}

impl fmt::Debug for KeystoneAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneAuth")
            .field("credentials", &self.credentials)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl KeystoneAuth {
    pub fn new(credentials: Credentials) -> Result<Self, OpenStackError> {
        let token_url = credentials.token_url()?;
        let interface = credentials.interface_type()?;
        Ok(KeystoneAuth {
            credentials,
            token_url,
            interface,
            token: RwLock::new(None),
        })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A valid token, issuing one when there is none or it is about to expire.
    pub async fn token(&self, client: &Client) -> Result<Token, OpenStackError> {
        if let Some(t) = self.token.read().await.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let mut slot = self.token.write().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let t = self.issue(client).await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Forgets the token (after a 401), so the next call issues a new one.
    pub async fn invalidate(&self) {
        *self.token.write().await = None;
    }

    async fn issue(&self, client: &Client) -> Result<Token, OpenStackError> {
        let op = "issue token";
        let resp = client
            .post(self.token_url.clone())
            .json(&self.credentials.token_request())
            .send()
            .await
            .map_err(|e| OpenStackError::Transport {
                service: "keystone",
                operation: format!("{op} at {}", self.token_url),
                source: Box::new(e),
            })?;
        let status = resp.status().as_u16();
        let subject = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| OpenStackError::Transport {
            service: "keystone",
            operation: op.into(),
            source: Box::new(e),
        })?;
        match status {
            200..=299 => {
                let subject = subject
                    .ok_or_else(|| OpenStackError::decode("keystone", op, "no X-Subject-Token header in the answer"))?;
                Token::parse(&subject, &body, Instant::now())
            }
            401 | 403 | 404 if status != 404 || !body.is_empty() => {
                let b = ErrorBody::parse(&body);
                Err(OpenStackError::Credentials(format!(
                    "Keystone at {} refused the credentials from {} (HTTP {status}: {}); check the user, password or application credential, the project and the domains",
                    self.credentials.auth_url, self.credentials.source, b.message
                )))
            }
            _ => {
                let b = ErrorBody::parse(&body);
                Err(OpenStackError::Api {
                    service: "keystone",
                    operation: op.into(),
                    status,
                    code: b.code,
                    message: b.message,
                    retry_after: crate::error::retry_after(retry.as_deref(), &body),
                })
            }
        }
    }
}

fn to_osauth(e: OpenStackError) -> osauth::Error {
    let kind = match &e {
        OpenStackError::Credentials(_) => ErrorKind::AuthenticationFailed,
        OpenStackError::Transport { .. } => ErrorKind::ProtocolError,
        OpenStackError::Api { status, .. } if *status >= 500 || *status == 429 => ErrorKind::InternalServerError,
        OpenStackError::Decode { .. } => ErrorKind::InvalidResponse,
        _ => ErrorKind::OperationFailed,
    };
    osauth::Error::new(kind, e.to_string())
}

#[async_trait]
impl AuthType for KeystoneAuth {
    async fn authenticate(&self, client: &Client, request: RequestBuilder) -> Result<RequestBuilder, osauth::Error> {
        let t = self.token(client).await.map_err(to_osauth)?;
        Ok(request.header("x-auth-token", t.value))
    }

    async fn get_endpoint(
        &self,
        client: &Client,
        service_type: &str,
        filters: &EndpointFilters,
    ) -> Result<Url, osauth::Error> {
        let t = self.token(client).await.map_err(to_osauth)?;
        let region = filters.region.as_deref().or(self.credentials.region.as_deref());
        let url = t.endpoint(service_type, self.interface, region).ok_or_else(|| {
            osauth::Error::new(
                ErrorKind::EndpointNotFound,
                format!(
                    "the cloud's service catalog has no {} endpoint for interface {}{}; check OS_REGION_NAME / region_name and OS_INTERFACE",
                    service_type,
                    self.credentials.interface,
                    region.map(|r| format!(" in region {r}")).unwrap_or_default()
                ),
            )
        })?;
        Url::parse(url).map_err(|e| {
            osauth::Error::new(
                ErrorKind::InvalidResponse,
                format!("the catalog's {service_type} endpoint \"{url}\" is not a URL: {e}"),
            )
        })
    }

    async fn refresh(&self, client: &Client) -> Result<(), osauth::Error> {
        self.invalidate().await;
        self.token(client).await.map(|_| ()).map_err(to_osauth)
    }
}

/// A [`KeystoneAuth`] shared between the `osauth` session and the provider
/// (which reads the token's project id for quota calls).
#[derive(Clone, Debug)]
pub struct SharedAuth(pub std::sync::Arc<KeystoneAuth>);

#[async_trait]
impl AuthType for SharedAuth {
    async fn authenticate(&self, client: &Client, request: RequestBuilder) -> Result<RequestBuilder, osauth::Error> {
        self.0.authenticate(client, request).await
    }

    async fn get_endpoint(
        &self,
        client: &Client,
        service_type: &str,
        filters: &EndpointFilters,
    ) -> Result<Url, osauth::Error> {
        self.0.get_endpoint(client, service_type, filters).await
    }

    async fn refresh(&self, client: &Client) -> Result<(), osauth::Error> {
        self.0.refresh(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example answer of Keystone's API reference ("Password
    /// authentication with scoped authorization"), catalog trimmed to two services.
    const TOKEN_BODY: &str = r#"{
        "token": {
            "methods": ["password"],
            "roles": [{"id": "51cc68287d524c759f47c811e6463340", "name": "admin"}],
            "expires_at": "2015-11-07T02:58:43.578887Z",
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "a6944d763bf64ee6a275f1263fae0352", "name": "admin"},
            "catalog": [
                {"endpoints": [
                    {"region_id": "RegionOne", "url": "http://example.com/identity", "region": "RegionOne", "interface": "public", "id": "068d1b359ee84b438266cb736d81de97"},
                    {"region_id": "RegionOne", "url": "http://example.com/identity_v2_admin", "region": "RegionOne", "interface": "admin", "id": "8bfc846841ab441ca38471be6d164ced"}
                 ], "type": "identity", "id": "050726f278654128aba89757ae25910c", "name": "keystone"},
                {"endpoints": [
                    {"region_id": "RegionOne", "url": "http://example.com/compute/v2.1", "region": "RegionOne", "interface": "public", "id": "2511589f262a407bb0071a814a480af4"},
                    {"region_id": "RegionTwo", "url": "http://two.example.com/compute/v2.1", "region": "RegionTwo", "interface": "public", "id": "2511589f262a407bb0071a814a480af5"}
                 ], "type": "compute", "id": "a226b3eeb5594f50bf8b6df94636ed28", "name": "nova"}
            ],
            "user": {"domain": {"id": "default", "name": "Default"}, "id": "ee4dfb6e5540447cb3741905149d9b6e", "name": "admin", "password_expires_at": "2016-11-06T15:32:17.000000"},
            "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
            "issued_at": "2015-11-07T01:58:43.578929Z"
        }
    }"#;

    #[test]
    fn token_answer_parses_with_catalog_and_lifetime() {
        let now = Instant::now();
        let t = Token::parse("gAAAAABWHAXl", TOKEN_BODY, now).unwrap();
        assert_eq!(t.project_id.as_deref(), Some("a6944d763bf64ee6a275f1263fae0352"));
        assert_eq!(t.refresh_at - now, Duration::from_secs(3599 - 60));
        assert_eq!(
            t.endpoint("compute", InterfaceType::Public, None),
            Some("http://example.com/compute/v2.1")
        );
        assert_eq!(
            t.endpoint("compute", InterfaceType::Public, Some("RegionTwo")),
            Some("http://two.example.com/compute/v2.1")
        );
        assert_eq!(t.endpoint("compute", InterfaceType::Internal, None), None);
        assert_eq!(t.endpoint("network", InterfaceType::Public, None), None);
    }
}
