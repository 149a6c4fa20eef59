//! vre's Google Cloud provider: Compute Engine v1 REST with service-account JWT auth.
//!
//! * Auth: a service-account JSON key (`GOOGLE_APPLICATION_CREDENTIALS` or
//!   `[gcp] credentials_file`), exchanged for an access token with the
//!   OAuth2 JWT-bearer grant (RFC 7523), the assertion signed RS256 with the
//!   key's private key ([`auth`]).
//! * Resources carry the label `vre-cluster=<name>` (and `vre-key`,
//!   `vre-role`); networks, subnetworks and firewalls, which have no labels,
//!   carry the same words in their description.
//! * Each role group (per `max_batch` chunk) boots with one `instances.bulkInsert`; cloud-init reads
//!   the `user-data` metadata key.
//! * Every request is a [`call::ComputeCall`], checked by the unit tests
//!   against Google's discovery document.

mod addresses;
pub mod auth;
pub mod call;
pub mod client;
pub mod error;
pub mod image;
mod instances;
mod inventory;
mod network;
pub mod ownership;
mod preflight;
pub mod provider;
pub mod settings;
mod volumes;

/// The discovery-document checker, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/discovery.rs"]
mod discovery;
#[cfg(test)]
mod scripted;
/// Test service-account keys, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/keys.rs"]
mod test_keys;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::{ClusterSpec, Diagnostics};
use vre_core::{CloudProvider, Error, ProviderContext, ProviderFactory, ProviderTemplate, Result};

pub use auth::{ServiceAccountKey, TokenSource};
pub use client::{ComputeClient, PollPolicy};
pub use error::GcpError;
pub use provider::GcpProvider;
pub use settings::{GcpSettings, SubnetMode};

/// The registered provider name (and its table in the spec).
pub const PROVIDER: &str = "gcp";

/// The environment variable naming the service-account key file.
pub const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Registers as `gcp`.
#[derive(Clone, Debug, Default)]
pub struct GcpFactory;

impl GcpFactory {
    /// Resolves credentials and settings (no network) and builds the concrete provider.
    pub fn build_provider(&self, ctx: &ProviderContext) -> Result<GcpProvider> {
        let mut diags = Diagnostics::new();
        let settings = GcpSettings::read(&ctx.spec, &mut diags).ok_or(Error::Spec(diags))?;
        let key_path: PathBuf = match (&settings.credentials_file, ctx.var(CREDENTIALS_ENV)) {
            (Some(f), _) => ctx.dir.join(f),
            (None, Some(env)) => PathBuf::from(env),
            (None, None) => {
                return Err(Error::Credentials {
                    message: format!(
                        "no Google Cloud credentials: set {CREDENTIALS_ENV} to a service-account JSON key file (or gcp.credentials_file in vre.toml)"
                    ),
                });
            }
        };
        let key = ServiceAccountKey::from_file(&key_path)?;
        let project = settings
            .project
            .clone()
            .or_else(|| key.project_id.clone())
            .ok_or_else(|| {
                Error::input(
                    "gcp.project",
                    format!(
                        "is required: the key {} names no project_id; add `project = \"my-project\"` to [gcp]",
                        key_path.display()
                    ),
                )
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("vre/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| Error::component("gcp", format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenSource::new(key, auth::CLOUD_PLATFORM_SCOPE, http.clone());
        let client = ComputeClient::new(http, &settings.endpoint, tokens);
        Ok(GcpProvider::new(client, project, settings))
    }
}

#[async_trait]
impl ProviderFactory for GcpFactory {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn description(&self) -> &str {
        "Google Cloud Compute Engine (service-account key in GOOGLE_APPLICATION_CREDENTIALS)"
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: format!(
                "# Credentials: a service-account JSON key; export {CREDENTIALS_ENV}=/path/to/key.json\n# (or set credentials_file in [gcp]). The account needs roles/compute.admin."
            ),
            image: "ubuntu-2404-lts-amd64".into(),
            image_source: None,
            image_preinstalled: false,
            ssh_user: "ubuntu".into(),
            master_flavor: "e2-standard-2".into(),
            worker_flavor: "e2-standard-2".into(),
            storage_flavor: "e2-standard-2".into(),
            edge_flavor: "e2-medium".into(),
            table: settings::template_table(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        GcpSettings::read(spec, diags);
    }

    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        Ok(Arc::new(self.build_provider(&ctx)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vre_core::ClusterSpec;
    use vre_core::spec::Table;

    fn ctx(table: &[(&str, &str)], env: &[(&str, &str)], dir: &std::path::Path) -> ProviderContext {
        let mut spec = ClusterSpec::new("lab", "gcp");
        let mut t = Table::default();
        for (k, v) in table {
            t.insert(k, vre_core::spec::Value::String(v.to_string()));
        }
        spec.provider_table = t;
        let mut c = ProviderContext::new(Arc::new(spec), dir.to_path_buf());
        c.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        c
    }

    #[tokio::test]
    async fn missing_credentials_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let e = GcpFactory
            .build(ctx(&[("zone", "europe-north1-a")], &[], dir.path()))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::Credentials { .. }));
        assert!(e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"), "{e}");
    }

    #[tokio::test]
    async fn credentials_come_from_the_environment_or_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let key = test_keys::service_account_json(
            "key-project",
            "vre@key-project.iam.gserviceaccount.com",
            "http://127.0.0.1:9/token",
        );
        std::fs::write(dir.path().join("sa.json"), key).unwrap();
        let env_path = dir.path().join("sa.json").display().to_string();
        let p = GcpFactory
            .build_provider(&ctx(
                &[("zone", "europe-north1-a")],
                &[(CREDENTIALS_ENV, &env_path)],
                dir.path(),
            ))
            .unwrap();
        assert_eq!(p.project(), "key-project");
        let p = GcpFactory
            .build_provider(&ctx(
                &[
                    ("zone", "europe-north1-a"),
                    ("credentials_file", "sa.json"),
                    ("project", "other-project"),
                ],
                &[],
                dir.path(),
            ))
            .unwrap();
        assert_eq!(p.project(), "other-project");
        assert_eq!(p.settings().region, "europe-north1");
    }

    #[tokio::test]
    async fn a_key_without_project_needs_the_table_to_name_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut key: serde_json::Value = serde_json::from_str(&test_keys::service_account_json(
            "x-project",
            "a@b",
            "http://127.0.0.1:9/token",
        ))
        .unwrap();
        key.as_object_mut().unwrap().remove("project_id");
        std::fs::write(dir.path().join("sa.json"), key.to_string()).unwrap();
        let e = GcpFactory
            .build_provider(&ctx(
                &[("zone", "europe-north1-a"), ("credentials_file", "sa.json")],
                &[],
                dir.path(),
            ))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("gcp.project: is required"), "{e}");
    }

    #[test]
    fn the_template_describes_gcp() {
        let t = GcpFactory.template();
        assert!(t.table.starts_with("[gcp]\n"));
        assert!(t.credentials.lines().all(|l| l.starts_with('#')));
        assert_eq!(t.master_flavor, "e2-standard-2");
    }
}
