//! Credentials: where they come from (`clouds.yaml` with `OS_CLOUD`, or the
//! `OS_*` variables of an openrc file), resolved without any network call.
//! [`crate::auth`] turns them into a Keystone token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use osauth::InterfaceType;
use reqwest::{Client, Url};
use serde::Deserialize;
use serde_json::json;

use crate::error::OpenStackError;

/// How the user proves who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Keystone v3 password.
    Password {
        user: NameOrId,
        user_domain: Option<NameOrId>,
        password: String,
    },
    /// Keystone v3 application credential (already scoped to a project).
    ApplicationCredential {
        credential: NameOrId,
        /// Needed when the credential is given by name.
        user: Option<NameOrId>,
        user_domain: Option<NameOrId>,
        secret: String,
    },
}

/// A Keystone reference by name or by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

impl NameOrId {
    fn to_json(&self) -> serde_json::Value {
        match self {
            NameOrId::Name(n) => json!({ "name": n }),
            NameOrId::Id(i) => json!({ "id": i }),
        }
    }
}

/// The project a password token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectScope {
    pub project: NameOrId,
    pub domain: Option<NameOrId>,
}

/// Everything needed to talk to one cloud. Secrets are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Keystone's URL (with or without `/v3`).
    pub auth_url: String,
    pub method: AuthMethod,
    pub project: Option<ProjectScope>,
    pub region: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: String,
    /// A PEM bundle of CAs to trust in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// `verify: false` in clouds.yaml: TLS certificates are not checked.
    pub insecure: bool,
    /// Where these came from, for messages (`OS_* variables`, `clouds.yaml cloud "x"`).
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("method", &self.method)
            .field("project", &self.project)
            .field("region", &self.region)
            .field("interface", &self.interface)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::Password { user, user_domain, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("user_domain", user_domain)
                .field("password", &"<redacted>")
                .finish(),
            AuthMethod::ApplicationCredential {
                credential,
                user,
                user_domain,
                ..
            } => f
                .debug_struct("ApplicationCredential")
                .field("credential", credential)
                .field("user", user)
                .field("user_domain", user_domain)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

/// The message when nothing says which cloud to use.
pub const NO_CREDENTIALS: &str = "no OpenStack credentials: set OS_CLOUD to a cloud in clouds.yaml, or source your openrc file so that OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME are set";

impl Credentials {
    /// Password credentials given in code (the embedded simulator, tests).
    pub fn password(
        auth_url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        project: impl Into<String>,
        domain: impl Into<String>,
    ) -> Self {
        let domain = domain.into();
        Credentials {
            auth_url: auth_url.into(),
            method: AuthMethod::Password {
                user: NameOrId::Name(user.into()),
                user_domain: Some(NameOrId::Name(domain.clone())),
                password: password.into(),
            },
            project: Some(ProjectScope {
                project: NameOrId::Name(project.into()),
                domain: Some(NameOrId::Name(domain)),
            }),
            region: None,
            interface: "public".into(),
            ca_file: None,
            insecure: false,
            source: "credentials given in code".into(),
        }
    }

    /// Resolves credentials the way the OpenStack clients do: `OS_CLOUD`
    /// selects a cloud in `clouds.yaml` (`OS_CLIENT_CONFIG_FILE`, then the
    /// deployment directory, `~/.config/openstack/`, `/etc/openstack/`),
    /// merged with `secure.yaml`; otherwise the `OS_*` variables. Reads
    /// files only, never the network.
    pub fn resolve(env: &BTreeMap<String, String>, dir: &Path) -> Result<Credentials, OpenStackError> {
        let var = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if let Some(cloud) = var("OS_CLOUD") {
            let search = config_dirs(env, dir);
            return from_clouds_yaml(cloud, var("OS_CLIENT_CONFIG_FILE").map(PathBuf::from), &search, env);
        }
        if var("OS_AUTH_URL").is_some() {
            return from_env(env);
        }
        Err(OpenStackError::Credentials(NO_CREDENTIALS.to_string()))
    }

    /// The Keystone token request body (`POST /v3/auth/tokens`).
    pub fn token_request(&self) -> serde_json::Value {
        let identity = match &self.method {
            AuthMethod::Password {
                user,
                user_domain,
                password,
            } => {
                let mut u = user_json(user, user_domain.as_ref());
                u["password"] = json!(password);
                json!({ "methods": ["password"], "password": { "user": u } })
            }
            AuthMethod::ApplicationCredential {
                credential,
                user,
                user_domain,
                secret,
            } => {
                let mut c = credential.to_json();
                if let (NameOrId::Name(_), Some(user)) = (credential, user) {
                    c["user"] = user_json(user, user_domain.as_ref());
                }
                c["secret"] = json!(secret);
                json!({ "methods": ["application_credential"], "application_credential": c })
            }
        };
        let mut auth = json!({ "identity": identity });
        if let (Some(scope), AuthMethod::Password { .. }) = (&self.project, &self.method) {
            let mut p = scope.project.to_json();
            if let (NameOrId::Name(_), Some(d)) = (&scope.project, &scope.domain) {
                p["domain"] = d.to_json();
            }
            auth["scope"] = json!({ "project": p });
        }
        json!({ "auth": auth })
    }

    /// The token endpoint: `<auth_url>/v3/auth/tokens` (`/v3` added when absent).
    pub fn token_url(&self) -> Result<Url, OpenStackError> {
        let base = self.auth_url.trim_end_matches('/');
        let with_version = if base.ends_with("/v3") {
            base.to_string()
        } else {
            format!("{base}/v3")
        };
        Url::parse(&format!("{with_version}/auth/tokens")).map_err(|e| {
            OpenStackError::Credentials(format!(
                "auth_url \"{}\" ({}) is not a URL: {e}; set it to Keystone's address, e.g. https://keystone.example.org:5000/v3",
                self.auth_url, self.source
            ))
        })
    }

    /// The endpoint interface, as `osauth` names it.
    pub fn interface_type(&self) -> Result<InterfaceType, OpenStackError> {
        match self.interface.trim_end_matches("URL") {
            "public" => Ok(InterfaceType::Public),
            "internal" => Ok(InterfaceType::Internal),
            "admin" => Ok(InterfaceType::Admin),
            other => Err(OpenStackError::Credentials(format!(
                "interface \"{other}\" ({}) is not one of public, internal, admin",
                self.source
            ))),
        }
    }

    /// The HTTP client: the CA bundle added, timeouts set. Reads the CA
    /// file; no network.
    pub fn http_client(&self) -> Result<Client, OpenStackError> {
        let mut b = Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("vre-openstack/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                OpenStackError::Credentials(format!(
                    "cannot read the CA bundle {} ({}): {e}; point OS_CACERT / cacert at a PEM file",
                    ca.display(),
                    self.source
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                OpenStackError::Credentials(format!("{} is not a PEM certificate bundle: {e}", ca.display()))
            })?;
            if certs.is_empty() {
                return Err(OpenStackError::Credentials(format!(
                    "{} holds no PEM certificate; point OS_CACERT / cacert at the CA that signed the cloud's certificates",
                    ca.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if self.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build()
            .map_err(|e| OpenStackError::Credentials(format!("cannot set up the HTTP client: {e}")))
    }
}

fn config_dirs(env: &BTreeMap<String, String>, dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(home) = env.get("HOME").filter(|h| !h.is_empty()) {
        dirs.push(Path::new(home).join(".config/openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    dirs
}

fn from_env(env: &BTreeMap<String, String>) -> Result<Credentials, OpenStackError> {
    let var = |k: &str| {
        env.get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let missing = |what: &str| {
        OpenStackError::Credentials(format!(
            "OS_AUTH_URL is set but {what} is not; source the complete openrc file of your project (or set OS_CLOUD to use clouds.yaml)"
        ))
    };
    let auth_url = var("OS_AUTH_URL").ok_or_else(|| missing("OS_AUTH_URL"))?;
    let auth_type =
        var("OS_AUTH_TYPE").unwrap_or_else(|| default_auth_type(var("OS_APPLICATION_CREDENTIAL_SECRET").is_some()));
    let user = var("OS_USER_ID")
        .map(NameOrId::Id)
        .or_else(|| var("OS_USERNAME").map(NameOrId::Name));
    let user_domain = var("OS_USER_DOMAIN_ID")
        .map(NameOrId::Id)
        .or_else(|| var("OS_USER_DOMAIN_NAME").map(NameOrId::Name));
    let Some(kind) = normalize_auth_type(&auth_type) else {
        return Err(OpenStackError::Credentials(format!(
            "OS_AUTH_TYPE \"{auth_type}\" is not supported; use password or v3applicationcredential"
        )));
    };
    let user_domain = user_domain.or(Some(NameOrId::Name("Default".into())));
    let method = auth_method(kind, user, user_domain, &var, &ENV_KEYS, &missing)?;
    let project = project_scope(
        var("OS_PROJECT_ID").or_else(|| var("OS_TENANT_ID")),
        var("OS_PROJECT_NAME").or_else(|| var("OS_TENANT_NAME")),
        var("OS_PROJECT_DOMAIN_ID"),
        var("OS_PROJECT_DOMAIN_NAME").or_else(|| Some("Default".into())),
    );
    if project.is_none() && matches!(method, AuthMethod::Password { .. }) {
        return Err(missing("OS_PROJECT_NAME (or OS_PROJECT_ID)"));
    }
    Ok(Credentials {
        auth_url,
        method,
        project,
        region: var("OS_REGION_NAME"),
        interface: var("OS_INTERFACE")
            .or_else(|| var("OS_ENDPOINT_TYPE"))
            .unwrap_or_else(|| "public".into()),
        ca_file: var("OS_CACERT").map(PathBuf::from),
        insecure: var("OS_INSECURE").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
        source: "the OS_* environment variables".into(),
    })
}

fn project_scope(
    id: Option<String>,
    name: Option<String>,
    domain_id: Option<String>,
    domain_name: Option<String>,
) -> Option<ProjectScope> {
    let project = id.map(NameOrId::Id).or_else(|| name.map(NameOrId::Name))?;
    Some(ProjectScope {
        project,
        domain: domain_id.map(NameOrId::Id).or_else(|| domain_name.map(NameOrId::Name)),
    })
}

enum AuthKind {
    Password,
    ApplicationCredential,
}

fn normalize_auth_type(t: &str) -> Option<AuthKind> {
    match t.replace(['-', '_'], "").to_ascii_lowercase().as_str() {
        "password" | "v3password" => Some(AuthKind::Password),
        "v3applicationcredential" | "applicationcredential" => Some(AuthKind::ApplicationCredential),
        _ => None,
    }
}

/// A user reference of a token request: a user given by name carries its domain.
fn user_json(user: &NameOrId, domain: Option<&NameOrId>) -> serde_json::Value {
    let mut u = user.to_json();
    if let (NameOrId::Name(_), Some(d)) = (user, domain) {
        u["domain"] = d.to_json();
    }
    u
}

/// The names one credential source gives the values of an auth method, and
/// what its messages call a missing one.
struct MethodKeys {
    /// What a missing user is called.
    user: &'static str,
    password: &'static str,
    credential_id: &'static str,
    credential_name: &'static str,
    /// What a missing application credential is called.
    credential: &'static str,
    /// What is missing when a credential given by name comes without a user.
    user_of_named_credential: &'static str,
    secret: &'static str,
}

/// The `OS_*` variables of an openrc file.
const ENV_KEYS: MethodKeys = MethodKeys {
    user: "OS_USERNAME (or OS_USER_ID)",
    password: "OS_PASSWORD",
    credential_id: "OS_APPLICATION_CREDENTIAL_ID",
    credential_name: "OS_APPLICATION_CREDENTIAL_NAME",
    credential: "OS_APPLICATION_CREDENTIAL_ID (or _NAME)",
    user_of_named_credential: "OS_USERNAME (or OS_USER_ID), needed with OS_APPLICATION_CREDENTIAL_NAME",
    secret: "OS_APPLICATION_CREDENTIAL_SECRET",
};

/// The `auth` keys of a clouds.yaml entry.
const CLOUDS_YAML_KEYS: MethodKeys = MethodKeys {
    user: "username",
    password: "password",
    credential_id: "application_credential_id",
    credential_name: "application_credential_name",
    credential: "application_credential_id",
    user_of_named_credential: "username",
    secret: "application_credential_secret",
};

/// The auth type when none is given: application credentials when a secret is set.
fn default_auth_type(has_application_credential_secret: bool) -> String {
    if has_application_credential_secret {
        "v3applicationcredential".into()
    } else {
        "password".into()
    }
}

/// The auth method of kind `kind`, its values read with `get` under the names of `keys`.
fn auth_method(
    kind: AuthKind,
    user: Option<NameOrId>,
    user_domain: Option<NameOrId>,
    get: &dyn Fn(&str) -> Option<String>,
    keys: &MethodKeys,
    missing: &dyn Fn(&str) -> OpenStackError,
) -> Result<AuthMethod, OpenStackError> {
    Ok(match kind {
        AuthKind::Password => AuthMethod::Password {
            user: user.ok_or_else(|| missing(keys.user))?,
            user_domain,
            password: get(keys.password).ok_or_else(|| missing(keys.password))?,
        },
        AuthKind::ApplicationCredential => {
            let credential = get(keys.credential_id)
                .map(NameOrId::Id)
                .or_else(|| get(keys.credential_name).map(NameOrId::Name))
                .ok_or_else(|| missing(keys.credential))?;
            if matches!(credential, NameOrId::Name(_)) && user.is_none() {
                return Err(missing(keys.user_of_named_credential));
            }
            AuthMethod::ApplicationCredential {
                credential,
                user,
                user_domain,
                secret: get(keys.secret).ok_or_else(|| missing(keys.secret))?,
            }
        }
    })
}

/// One cloud entry of clouds.yaml (the keys vre understands).
#[derive(Debug, Default, Deserialize)]
struct CloudEntry {
    #[serde(default)]
    auth: BTreeMap<String, serde_yaml::Value>,
    auth_type: Option<String>,
    region_name: Option<String>,
    interface: Option<String>,
    cacert: Option<String>,
    verify: Option<bool>,
}

fn from_clouds_yaml(
    cloud: &str,
    explicit: Option<PathBuf>,
    search: &[PathBuf],
    env: &BTreeMap<String, String>,
) -> Result<Credentials, OpenStackError> {
    let candidates: Vec<PathBuf> = match &explicit {
        Some(p) => vec![p.clone()],
        None => search
            .iter()
            .flat_map(|d| [d.join("clouds.yaml"), d.join("clouds.yml")])
            .collect(),
    };
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(OpenStackError::Credentials(format!(
            "OS_CLOUD is \"{cloud}\" but no clouds.yaml was found (looked in {}); set OS_CLIENT_CONFIG_FILE to its path",
            looked.join(", ")
        )));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpenStackError::Credentials(format!("cannot read {}: {e}", path.display())))?;
    let mut root: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| OpenStackError::Credentials(format!("{} is not valid YAML: {e}", path.display())))?;
    // secure.yaml beside it carries the secrets of the same clouds
    let secure = path.with_file_name("secure.yaml");
    if secure.is_file() {
        let s = std::fs::read_to_string(&secure)
            .map_err(|e| OpenStackError::Credentials(format!("cannot read {}: {e}", secure.display())))?;
        let s: serde_yaml::Value = serde_yaml::from_str(&s)
            .map_err(|e| OpenStackError::Credentials(format!("{} is not valid YAML: {e}", secure.display())))?;
        merge_yaml(&mut root, s);
    }
    let clouds = root.get("clouds").and_then(|c| c.as_mapping());
    let Some(entry) = clouds.and_then(|c| c.get(serde_yaml::Value::String(cloud.to_string()))) else {
        let names: Vec<String> = clouds
            .map(|c| c.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        return Err(OpenStackError::Credentials(format!(
            "OS_CLOUD is \"{cloud}\" but {} has no such cloud (it has: {}); set OS_CLOUD to one of them",
            path.display(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    };
    let entry: CloudEntry = serde_yaml::from_value(entry.clone())
        .map_err(|e| OpenStackError::Credentials(format!("{} cloud \"{cloud}\": {e}", path.display())))?;
    let source = format!("cloud \"{cloud}\" in {}", path.display());
    let get = |k: &str| -> Option<String> {
        match entry.auth.get(k)? {
            serde_yaml::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let missing = |k: &str| {
        OpenStackError::Credentials(format!(
            "{source}: auth.{k} is missing; add it (secrets may go to secure.yaml)"
        ))
    };
    let auth_url = get("auth_url").ok_or_else(|| missing("auth_url"))?;
    let user = get("user_id")
        .map(NameOrId::Id)
        .or_else(|| get("username").map(NameOrId::Name));
    let user_domain = get("user_domain_id")
        .map(NameOrId::Id)
        .or_else(|| get("user_domain_name").map(NameOrId::Name))
        .or_else(|| get("domain_id").map(NameOrId::Id))
        .or_else(|| get("domain_name").map(NameOrId::Name))
        .or(Some(NameOrId::Name("Default".into())));
    let auth_type = entry
        .auth_type
        .clone()
        .unwrap_or_else(|| default_auth_type(get("application_credential_secret").is_some()));
    let Some(kind) = normalize_auth_type(&auth_type) else {
        return Err(OpenStackError::Credentials(format!(
            "{source}: auth_type \"{auth_type}\" is not supported; use password or v3applicationcredential"
        )));
    };
    let method = auth_method(kind, user, user_domain, &get, &CLOUDS_YAML_KEYS, &missing)?;
    let project = project_scope(
        get("project_id").or_else(|| get("tenant_id")),
        get("project_name").or_else(|| get("tenant_name")),
        get("project_domain_id").or_else(|| get("domain_id")),
        get("project_domain_name")
            .or_else(|| get("domain_name"))
            .or_else(|| Some("Default".into())),
    );
    if project.is_none() && matches!(method, AuthMethod::Password { .. }) {
        return Err(missing("project_name"));
    }
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Credentials {
        auth_url,
        method,
        project,
        region: entry.region_name.clone().or_else(|| var("OS_REGION_NAME")),
        interface: entry.interface.clone().unwrap_or_else(|| "public".into()),
        ca_file: entry.cacert.clone().or_else(|| var("OS_CACERT")).map(PathBuf::from),
        insecure: entry.verify == Some(false),
        source,
    })
}

fn merge_yaml(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_yaml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn nothing_set_names_os_cloud_and_os_auth_url() {
        let e = Credentials::resolve(&env(&[("HOME", "/nonexistent")]), Path::new("/nonexistent")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("OS_CLOUD") && msg.contains("OS_AUTH_URL"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn openrc_variables() {
        let c = Credentials::resolve(
            &env(&[
                ("OS_AUTH_URL", "https://keystone.example.org:5000/v3"),
                ("OS_USERNAME", "alice"),
                ("OS_PASSWORD", "s3cret"),
                ("OS_PROJECT_NAME", "lab"),
                ("OS_USER_DOMAIN_NAME", "Default"),
                ("OS_PROJECT_DOMAIN_ID", "default"),
                ("OS_REGION_NAME", "RegionTwo"),
                ("OS_INTERFACE", "internal"),
            ]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(c.region.as_deref(), Some("RegionTwo"));
        assert_eq!(c.interface_type().unwrap(), InterfaceType::Internal);
        assert_eq!(
            c.token_url().unwrap().as_str(),
            "https://keystone.example.org:5000/v3/auth/tokens"
        );
        assert_eq!(
            c.token_request(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "alice", "domain": {"name": "Default"}, "password": "s3cret"}}},
                "scope": {"project": {"name": "lab", "domain": {"id": "default"}}}
            }})
        );
        // the password never shows in Debug output
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn openrc_missing_password_names_it() {
        let e = Credentials::resolve(
            &env(&[
                ("OS_AUTH_URL", "http://k:5000"),
                ("OS_USERNAME", "a"),
                ("OS_PROJECT_NAME", "p"),
            ]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("OS_PASSWORD"), "{e}");
    }

    #[test]
    fn application_credentials_from_env() {
        let c = Credentials::resolve(
            &env(&[
                ("OS_AUTH_URL", "http://k:5000"),
                ("OS_AUTH_TYPE", "v3applicationcredential"),
                ("OS_APPLICATION_CREDENTIAL_ID", "21dced0fd20347869b93710d2b98aae0"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "topsecret"),
            ]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(c.token_url().unwrap().as_str(), "http://k:5000/v3/auth/tokens");
        assert_eq!(
            c.token_request(),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "21dced0fd20347869b93710d2b98aae0", "secret": "topsecret"}}}})
        );
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn clouds_yaml_with_secure_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clouds.yaml"),
            "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: admin\n      project_name: vre\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secure.yaml"),
            "clouds:\n  lab:\n    auth:\n      password: pw\n",
        )
        .unwrap();
        let c = Credentials::resolve(
            &env(&[
                ("OS_CLOUD", "lab"),
                (
                    "OS_CLIENT_CONFIG_FILE",
                    dir.path().join("clouds.yaml").to_str().unwrap(),
                ),
            ]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert!(matches!(&c.method, AuthMethod::Password { password, .. } if password == "pw"));
        assert!(c.source.contains("cloud \"lab\""));
        // found in the deployment directory too
        let c2 = Credentials::resolve(&env(&[("OS_CLOUD", "lab")]), dir.path()).unwrap();
        assert_eq!(c, c2);
        // an unknown cloud lists the known ones
        let e = Credentials::resolve(&env(&[("OS_CLOUD", "prod")]), dir.path()).unwrap_err();
        assert!(e.to_string().contains("it has: lab"), "{e}");
    }

    #[test]
    fn clouds_yaml_missing_file_says_where_it_looked() {
        let e = Credentials::resolve(
            &env(&[("OS_CLOUD", "lab"), ("HOME", "/nonexistent")]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("OS_CLIENT_CONFIG_FILE"), "{e}");
    }
}
