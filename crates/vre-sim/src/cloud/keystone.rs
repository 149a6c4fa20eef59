//! Keystone v3: the seeded identity (domain `Default`, projects `vre` and
//! `admin`, users `admin` and `demo`), password / application credential /
//! token authentication, the service catalog, and token validation for
//! every other service.
//!
//! Tokens are self-contained like Fernet tokens: the payload (user,
//! project, methods, expiry, audit id) is signed with HMAC-SHA256 under a
//! key derived from the configured password, so no token is stored
//! anywhere (not in the state file either), tokens stay valid across a
//! restart with the same password, and revocation keeps only audit ids.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{HeaderValue, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, Query, Service, header_str, json_response, render_error, request_json};
use super::app::Cloud;
use super::clock::Micros;

/// Keystone's default domain id.
pub(crate) const DEFAULT_DOMAIN_ID: &str = "default";
pub(crate) const REGION: &str = "RegionOne";

const UNAUTHORIZED: &str = "The request you have made requires authentication.";

/// A 32-hex-digit id derived from a name, stable across runs and seeds.
pub(crate) fn stable_hex_id(kind: &str, name: &str) -> String {
    let d = digest::digest(&digest::SHA256, format!("vre-sim/{kind}/{name}").as_bytes());
    hex::encode(&d.as_ref()[..16])
}

/// A version-4-shaped UUID derived from a name, stable across runs.
pub(crate) fn stable_uuid(kind: &str, name: &str) -> String {
    let h = stable_hex_id(kind, name);
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        8 | (u8::from_str_radix(&h[16..17], 16).unwrap_or(0) & 3),
        &h[17..20],
        &h[20..32]
    )
}

#[derive(Clone, Debug)]
pub(crate) struct Project {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub id: String,
    pub name: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: String,
    pub name: String,
    pub default_project_id: String,
    /// Role names by project id.
    pub roles: BTreeMap<String, Vec<&'static str>>,
}

/// An application credential the simulator accepts (see
/// [`crate::cloud::ApplicationCredential`]).
#[derive(Clone)]
pub(crate) struct AppCredential {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub user_id: String,
    pub project_id: String,
}

/// Who is calling, from a validated token.
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<&'static str>,
}

impl AuthContext {
    pub(crate) fn is_admin(&self) -> bool {
        self.roles.contains(&"admin")
    }
}

/// The seeded users, projects and roles, and the token signing key.
pub(crate) struct Identity {
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub app_credentials: Vec<AppCredential>,
    password: String,
    key: hmac::Key,
    pub token_ttl: Duration,
}

/// The signed content of a token.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenPayload {
    /// User id.
    u: String,
    /// Project id (absent: unscoped).
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    /// Authentication methods.
    m: Vec<String>,
    /// Issued at and expires at (micros).
    i: i64,
    e: i64,
    /// Audit id.
    a: String,
    /// Application credential id.
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<String>,
}

impl Identity {
    pub(crate) fn new(
        password: &str,
        token_ttl: Duration,
        app_credentials: &[super::ApplicationCredential],
    ) -> Result<Identity, crate::SimError> {
        let project = |name: &str| Project {
            id: stable_hex_id("project", name),
            name: name.to_string(),
        };
        let projects = vec![project("vre"), project("admin")];
        let roles = ["admin", "member", "reader"]
            .into_iter()
            .map(|name| Role {
                id: stable_hex_id("role", name),
                name,
            })
            .collect::<Vec<_>>();
        let all_roles = vec!["admin", "member", "reader"];
        let admin = User {
            id: stable_hex_id("user", "admin"),
            name: "admin".into(),
            default_project_id: projects[0].id.clone(),
            roles: projects.iter().map(|p| (p.id.clone(), all_roles.clone())).collect(),
        };
        let demo = User {
            id: stable_hex_id("user", "demo"),
            name: "demo".into(),
            default_project_id: projects[0].id.clone(),
            roles: BTreeMap::from([(projects[0].id.clone(), vec!["member", "reader"])]),
        };
        let users = vec![admin, demo];
        let mut credentials = Vec::new();
        for (i, c) in app_credentials.iter().enumerate() {
            let invalid = |field: &str, reason: String| crate::SimError::InvalidOption {
                option: format!("application_credentials[{i}].{field}"),
                reason,
            };
            let user = users
                .iter()
                .find(|u| u.name == c.user)
                .ok_or_else(|| invalid("user", format!("no seeded user `{}` (use `admin` or `demo`)", c.user)))?;
            let project = projects.iter().find(|p| p.name == c.project).ok_or_else(|| {
                invalid(
                    "project",
                    format!("no seeded project `{}` (use `vre` or `admin`)", c.project),
                )
            })?;
            if !user.roles.contains_key(&project.id) {
                return Err(invalid(
                    "project",
                    format!("user `{}` has no role on project `{}`", c.user, c.project),
                ));
            }
            if c.id.is_empty() || c.secret.is_empty() {
                return Err(invalid("secret", "the id and the secret must not be empty".into()));
            }
            credentials.push(AppCredential {
                id: c.id.clone(),
                name: c.name.clone(),
                secret: c.secret.clone(),
                user_id: user.id.clone(),
                project_id: project.id.clone(),
            });
        }
        let key_material = digest::digest(
            &digest::SHA256,
            format!("vre-sim keystone token key\0{password}").as_bytes(),
        );
        Ok(Identity {
            projects,
            users,
            roles,
            app_credentials: credentials,
            password: password.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key_material.as_ref()),
            token_ttl,
        })
    }

    pub(crate) fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    pub(crate) fn project_by_name(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    fn role_id(&self, name: &str) -> String {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    fn sign(&self, payload: &TokenPayload) -> String {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let tag = hmac::sign(&self.key, &body);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The payload of a token this identity signed, if the signature holds
    /// and it has not expired.
    fn verify(&self, token: &str, now: Micros) -> Option<TokenPayload> {
        let (body, tag) = token.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &body, &tag).ok()?;
        let payload: TokenPayload = serde_json::from_slice(&body).ok()?;
        (payload.e > now.0).then_some(payload)
    }

    fn check_password(&self, password: &str) -> bool {
        // Constant time: a simulator, but no reason to leak.
        same_secret(password, &self.password)
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates `X-Auth-Token` for the services behind Keystone (what
/// keystonemiddleware does): 401 with Keystone's error body otherwise.
pub(crate) async fn require_token(State(cloud): State<Arc<Cloud>>, mut req: Request, next: Next) -> Response {
    match authenticate(&cloud, req.headers()) {
        Some(auth) => {
            req.extensions_mut().insert(auth);
            next.run(req).await
        }
        None => unauthorized(&cloud),
    }
}

/// The caller of a request, from its `X-Auth-Token`.
pub(crate) fn authenticate(cloud: &Cloud, headers: &HeaderMap) -> Option<AuthContext> {
    let token = header_str(headers, "x-auth-token")?;
    let payload = cloud.identity.verify(token, Micros::now())?;
    if cloud.read(|s| s.revoked_tokens.contains_key(&payload.a)) {
        return None;
    }
    let project_id = payload.p?;
    let user = cloud.identity.user(&payload.u)?;
    let roles = user.roles.get(&project_id)?.clone();
    Some(AuthContext {
        user_id: payload.u,
        project_id,
        roles,
    })
}

fn unauthorized(cloud: &Cloud) -> Response {
    let mut response = render_error(
        Service::Keystone,
        &ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}/identity\"", cloud.base_url)) {
        response.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    response
}

fn version_document(cloud: &Cloud) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", cloud.base_url)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

/// `GET /identity/`: 300 Multiple Choices with the one version.
pub(crate) async fn versions(State(cloud): State<Arc<Cloud>>) -> Response {
    let mut response = json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": {"values": [version_document(&cloud)]}}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{}/identity/v3/", cloud.base_url)) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
}

/// `GET /identity/v3`.
pub(crate) async fn version(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(StatusCode::OK, &json!({"version": version_document(&cloud)}))
}

fn validation_error(attribute: &str, target: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Expecting to find {attribute} in {target}. The server could not comply with the request since it is \
         either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

fn auth_failed() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
}

/// Finds a user from `{"id": ..}` or `{"name": .., "domain": {"id"|"name": ..}}`.
fn find_user<'a>(identity: &'a Identity, user: &Value) -> ApiResult<&'a User> {
    if let Some(id) = user.get("id").and_then(Value::as_str) {
        return identity.user(id).ok_or_else(auth_failed);
    }
    let name = user
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| validation_error("id or name", "user"))?;
    let domain = user.get("domain").ok_or_else(|| validation_error("domain", "user"))?;
    if !domain_is_default(domain) {
        return Err(auth_failed());
    }
    identity.users.iter().find(|u| u.name == name).ok_or_else(auth_failed)
}

fn domain_is_default(domain: &Value) -> bool {
    domain.get("id").and_then(Value::as_str) == Some(DEFAULT_DOMAIN_ID)
        || domain.get("name").and_then(Value::as_str) == Some("Default")
}

/// The project a `scope` asks for (`None` for an unscoped request).
fn requested_project<'a>(identity: &'a Identity, scope: Option<&Value>) -> ApiResult<Option<&'a Project>> {
    let Some(scope) = scope else { return Ok(None) };
    if scope.as_str() == Some("unscoped") {
        return Ok(None);
    }
    let Some(project) = scope.get("project") else {
        // Domain and system scopes: no role assignments on them here.
        return Err(auth_failed());
    };
    if let Some(id) = project.get("id").and_then(Value::as_str) {
        return identity.project(id).map(Some).ok_or_else(auth_failed);
    }
    let name = project
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| validation_error("id or name", "project"))?;
    let domain = project
        .get("domain")
        .ok_or_else(|| validation_error("domain", "project"))?;
    if !domain_is_default(domain) {
        return Err(auth_failed());
    }
    identity.project_by_name(name).map(Some).ok_or_else(auth_failed)
}

/// `POST /identity/v3/auth/tokens`.
pub(crate) async fn issue_token(
    State(cloud): State<Arc<Cloud>>,
    query: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let query = Query::parse(query.0.as_deref());
    match issue(&cloud, &body) {
        Ok((token, payload)) => {
            let body = token_body(&cloud, &payload, !query.has("nocatalog"));
            let mut response = json_response(StatusCode::CREATED, &body);
            if let Ok(v) = HeaderValue::from_str(&token) {
                response.headers_mut().insert("x-subject-token", v);
            }
            response
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => unauthorized(&cloud),
        Err(e) => e.into_response(),
    }
}

fn issue(cloud: &Cloud, body: &[u8]) -> ApiResult<(String, TokenPayload)> {
    let identity = &cloud.identity;
    let body = request_json(body)?;
    let auth = body
        .get("auth")
        .ok_or_else(|| validation_error("auth", "request body"))?;
    let ident = auth
        .get("identity")
        .ok_or_else(|| validation_error("identity", "auth"))?;
    let methods: Vec<String> = ident
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| validation_error("methods", "identity"))?
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let scope = auth.get("scope");
    let now = Micros::now();
    let ttl = identity.token_ttl;
    let audit = cloud.write(|s| s.random_audit_id());
    let (user_id, project_id, expires, app_cred) = match methods.first().map(String::as_str) {
        Some("password") => {
            let password = ident
                .get("password")
                .ok_or_else(|| validation_error("password", "identity"))?;
            let user = password
                .get("user")
                .ok_or_else(|| validation_error("user", "password"))?;
            let user = find_user(identity, user)?;
            let given = user_password(password)?;
            if !identity.check_password(given) {
                return Err(auth_failed());
            }
            let project = match requested_project(identity, scope)? {
                Some(p) => Some(p.id.clone()),
                None if scope.is_none() => Some(user.default_project_id.clone()),
                None => None,
            };
            (user.id.clone(), project, now.plus(ttl), None)
        }
        Some("application_credential") => {
            if scope.is_some() {
                return Err(auth_failed());
            }
            let cred = ident
                .get("application_credential")
                .ok_or_else(|| validation_error("application_credential", "identity"))?;
            let secret = cred
                .get("secret")
                .and_then(Value::as_str)
                .ok_or_else(|| validation_error("secret", "application_credential"))?;
            let found = if let Some(id) = cred.get("id").and_then(Value::as_str) {
                identity.app_credentials.iter().find(|c| c.id == id)
            } else {
                let name = cred
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| validation_error("id or name", "application_credential"))?;
                let user = cred
                    .get("user")
                    .ok_or_else(|| validation_error("user", "application_credential"))?;
                let user = find_user(identity, user)?;
                identity
                    .app_credentials
                    .iter()
                    .find(|c| c.name == name && c.user_id == user.id)
            };
            let cred = found.ok_or_else(auth_failed)?;
            if !same_secret(secret, &cred.secret) {
                return Err(auth_failed());
            }
            (
                cred.user_id.clone(),
                Some(cred.project_id.clone()),
                now.plus(ttl),
                Some(cred.id.clone()),
            )
        }
        Some("token") => {
            let id = ident
                .get("token")
                .and_then(|t| t.get("id"))
                .and_then(Value::as_str)
                .ok_or_else(|| validation_error("id", "token"))?;
            let old = identity.verify(id, now).ok_or_else(auth_failed)?;
            if cloud.read(|s| s.revoked_tokens.contains_key(&old.a)) || old.c.is_some() {
                return Err(auth_failed());
            }
            let project = requested_project(identity, scope)?
                .map(|p| p.id.clone())
                .or(old.p.clone());
            (old.u, project, Micros(old.e), None)
        }
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("Attempted to authenticate with an unsupported method: {other}"),
            ));
        }
        None => return Err(validation_error("methods", "identity")),
    };
    if let Some(project) = &project_id {
        let user = identity.user(&user_id).ok_or_else(auth_failed)?;
        if !user.roles.contains_key(project) {
            return Err(auth_failed());
        }
    }
    let payload = TokenPayload {
        u: user_id,
        p: project_id,
        m: methods,
        i: now.0,
        e: expires.0,
        a: audit,
        c: app_cred,
    };
    Ok((identity.sign(&payload), payload))
}

fn user_password(password: &Value) -> ApiResult<&str> {
    password
        .get("user")
        .and_then(|u| u.get("password"))
        .and_then(Value::as_str)
        .ok_or_else(|| validation_error("password", "user"))
}

fn token_body(cloud: &Cloud, payload: &TokenPayload, with_catalog: bool) -> Value {
    let identity = &cloud.identity;
    let user = identity.user(&payload.u);
    let mut token = json!({
        "methods": payload.m,
        "user": {
            "domain": {"id": DEFAULT_DOMAIN_ID, "name": "Default"},
            "id": payload.u,
            "name": user.map(|u| u.name.as_str()).unwrap_or_default(),
            "password_expires_at": null,
        },
        "audit_ids": [payload.a],
        "expires_at": Micros(payload.e).iso_micros_z(),
        "issued_at": Micros(payload.i).iso_micros_z(),
    });
    if let Some(project) = payload.p.as_deref().and_then(|p| identity.project(p)) {
        let roles = user
            .and_then(|u| u.roles.get(&project.id))
            .map(|names| {
                names
                    .iter()
                    .map(|n| json!({"id": identity.role_id(n), "name": n}))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        token["project"] =
            json!({"domain": {"id": DEFAULT_DOMAIN_ID, "name": "Default"}, "id": project.id, "name": project.name});
        token["is_domain"] = json!(false);
        token["roles"] = json!(roles);
        if with_catalog {
            token["catalog"] = catalog(cloud, &project.id);
        }
    }
    if let Some(cred) = payload
        .c
        .as_deref()
        .and_then(|c| identity.app_credentials.iter().find(|a| a.id == c))
    {
        token["application_credential"] = json!({"id": cred.id, "name": cred.name, "restricted": true});
    }
    json!({ "token": token })
}

/// The service catalog for a project: identity, compute, network,
/// block-storage (also as `volumev3`) and image, each with public, internal
/// and admin endpoints in `RegionOne`.
fn catalog(cloud: &Cloud, project_id: &str) -> Value {
    let base = &cloud.base_url;
    let services = [
        ("identity", "keystone", format!("{base}/identity")),
        ("compute", "nova", format!("{base}/compute/v2.1")),
        ("network", "neutron", format!("{base}/networking")),
        ("block-storage", "cinder", format!("{base}/volume/v3/{project_id}")),
        ("volumev3", "cinderv3", format!("{base}/volume/v3/{project_id}")),
        ("image", "glance", format!("{base}/image")),
    ];
    let entries: Vec<Value> = services
        .iter()
        .map(|(kind, name, url)| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .map(|interface| {
                    json!({
                        "id": stable_hex_id("endpoint", &format!("{kind}/{interface}")),
                        "interface": interface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    })
                })
                .collect();
            json!({"endpoints": endpoints, "id": stable_hex_id("service", kind), "type": kind, "name": name})
        })
        .collect();
    json!(entries)
}

fn subject(cloud: &Cloud, headers: &HeaderMap) -> ApiResult<TokenPayload> {
    let token =
        header_str(headers, "x-subject-token").ok_or_else(|| validation_error("X-Subject-Token", "request headers"))?;
    let payload = cloud.identity.verify(token, Micros::now());
    match payload {
        Some(p) if !cloud.read(|s| s.revoked_tokens.contains_key(&p.a)) => Ok(p),
        _ => Err(ApiError::not_found("Could not find token.")),
    }
}

/// `GET /identity/v3/auth/tokens`: validates `X-Subject-Token`.
pub(crate) async fn validate_token(
    State(cloud): State<Arc<Cloud>>,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let query = Query::parse(query.0.as_deref());
    let payload = subject(&cloud, &headers)?;
    let mut response = json_response(StatusCode::OK, &token_body(&cloud, &payload, !query.has("nocatalog")));
    if let Some(v) = headers.get("x-subject-token") {
        response.headers_mut().insert("x-subject-token", v.clone());
    }
    Ok(response)
}

/// `HEAD /identity/v3/auth/tokens`.
pub(crate) async fn check_token(State(cloud): State<Arc<Cloud>>, headers: HeaderMap) -> ApiResult {
    subject(&cloud, &headers)?;
    Ok(super::api::empty_response(StatusCode::OK))
}

/// `DELETE /identity/v3/auth/tokens`: revokes `X-Subject-Token`.
pub(crate) async fn revoke_token(State(cloud): State<Arc<Cloud>>, headers: HeaderMap) -> ApiResult {
    let payload = subject(&cloud, &headers)?;
    let now = Micros::now();
    cloud.write(|s| {
        s.revoked_tokens.retain(|_, expires| *expires > now);
        s.revoked_tokens.insert(payload.a.clone(), Micros(payload.e));
    });
    Ok(super::api::empty_response(StatusCode::NO_CONTENT))
}

/// `GET /identity/v3/auth/catalog`.
pub(crate) async fn auth_catalog(
    State(cloud): State<Arc<Cloud>>,
    axum::Extension(auth): axum::Extension<AuthContext>,
) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"catalog": catalog(&cloud, &auth.project_id), "links": {"self": format!("{}/identity/v3/auth/catalog", cloud.base_url), "previous": null, "next": null}}),
    )
}

fn project_json(cloud: &Cloud, p: &Project) -> Value {
    json!({
        "id": p.id, "name": p.name, "domain_id": DEFAULT_DOMAIN_ID, "description": "", "enabled": true,
        "is_domain": false, "parent_id": DEFAULT_DOMAIN_ID, "tags": [], "options": {},
        "links": {"self": format!("{}/identity/v3/projects/{}", cloud.base_url, p.id)},
    })
}

/// `GET /identity/v3/auth/projects`: the projects the caller has roles on.
pub(crate) async fn auth_projects(
    State(cloud): State<Arc<Cloud>>,
    axum::Extension(auth): axum::Extension<AuthContext>,
) -> Response {
    let user = cloud.identity.user(&auth.user_id);
    let projects: Vec<Value> = cloud
        .identity
        .projects
        .iter()
        .filter(|p| user.is_some_and(|u| u.roles.contains_key(&p.id)))
        .map(|p| project_json(&cloud, p))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"projects": projects, "links": {"self": format!("{}/identity/v3/auth/projects", cloud.base_url), "previous": null, "next": null}}),
    )
}

/// `GET /identity/v3/projects` (admin: all, others: their own), `?name=`.
pub(crate) async fn list_projects(
    State(cloud): State<Arc<Cloud>>,
    axum::Extension(auth): axum::Extension<AuthContext>,
    query: axum::extract::RawQuery,
) -> Response {
    let query = Query::parse(query.0.as_deref());
    let projects: Vec<Value> = cloud
        .identity
        .projects
        .iter()
        .filter(|p| auth.is_admin() || p.id == auth.project_id)
        .filter(|p| query.get("name").is_none_or(|n| n == p.name))
        .map(|p| project_json(&cloud, p))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"projects": projects, "links": {"self": format!("{}/identity/v3/projects", cloud.base_url), "previous": null, "next": null}}),
    )
}

/// `GET /identity/v3/projects/{id}`.
pub(crate) async fn show_project(
    State(cloud): State<Arc<Cloud>>,
    axum::Extension(auth): axum::Extension<AuthContext>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult {
    let project = cloud
        .identity
        .project(&id)
        .filter(|p| auth.is_admin() || p.id == auth.project_id)
        .ok_or_else(|| ApiError::not_found(format!("Could not find project: {id}.")))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"project": project_json(&cloud, project)}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity::new("secret", Duration::from_secs(3600), &[]).unwrap()
    }

    #[test]
    fn tokens_verify_only_with_the_same_key_and_before_expiry() {
        let id = identity();
        let now = Micros::now();
        let payload = TokenPayload {
            u: id.users[0].id.clone(),
            p: Some(id.projects[0].id.clone()),
            m: vec!["password".into()],
            i: now.0,
            e: now.plus(Duration::from_secs(60)).0,
            a: "audit".into(),
            c: None,
        };
        let token = id.sign(&payload);
        assert!(id.verify(&token, now).is_some());
        assert!(
            id.verify(&token, now.plus(Duration::from_secs(61))).is_none(),
            "expired"
        );
        let other = Identity::new("other", Duration::from_secs(3600), &[]).unwrap();
        assert!(
            other.verify(&token, now).is_none(),
            "another password signs other tokens"
        );
        let mut forged = token.clone();
        forged.insert(3, 'x');
        assert!(id.verify(&forged, now).is_none());
    }

    #[test]
    fn seeded_ids_are_stable() {
        assert_eq!(identity().projects[0].id, identity().projects[0].id);
        assert_eq!(identity().projects[0].id.len(), 32);
        assert_ne!(identity().projects[0].id, identity().projects[1].id);
    }
}
