//! vre's Azure provider: Azure Resource Manager REST with Entra ID client credentials.
//!
//! * Auth: a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_CLIENT_SECRET`) through the client-credentials flow, for the
//!   scope `https://management.azure.com/.default` ([`auth`]).
//! * Everything lives in a resource group owned by the cluster (`<name>-rg`,
//!   tagged `vre:cluster=<name>`): a virtual network and subnet, a network
//!   security group, Standard static public IPs for the master and edges,
//!   one NIC and one VM per node (cloud-init in `customData`, the SSH key in
//!   `osProfile`), managed data disks for storage nodes. Destroy deletes the
//!   group and checks that it is gone.
//! * Long-running operations follow ARM's `Azure-AsyncOperation` /
//!   `Location` protocol with `Retry-After` ([`client`]).
//! * Every request is a [`call::ArmCall`], checked by the unit tests against
//!   the ARM OpenAPI specifications.

mod addresses;
pub mod auth;
pub mod call;
pub mod client;
pub mod error;
mod image;
mod instances;
mod inventory;
mod network;
mod preflight;
pub mod provider;
pub mod settings;
mod volumes;

/// The OpenAPI checker, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/openapi.rs"]
mod openapi;
#[cfg(test)]
mod scripted;

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::{ClusterSpec, Diagnostics};
use vre_core::{CloudProvider, Error, ProviderContext, ProviderFactory, ProviderTemplate, Result};

pub use auth::{ClientCredentials, TokenSource};
pub use client::{ArmClient, PollPolicy};
pub use error::AzureError;
pub use provider::AzureProvider;
pub use settings::AzureSettings;

/// The registered provider name (and its table in the spec).
pub const PROVIDER: &str = "azure";

/// The directory (tenant) id of the service principal.
pub const TENANT_ENV: &str = "AZURE_TENANT_ID";
/// The application (client) id of the service principal.
pub const CLIENT_ENV: &str = "AZURE_CLIENT_ID";
/// The client secret of the service principal.
pub const SECRET_ENV: &str = "AZURE_CLIENT_SECRET";
/// The subscription, unless `[azure] subscription_id` names one.
pub const SUBSCRIPTION_ENV: &str = "AZURE_SUBSCRIPTION_ID";

/// Registers as `azure`.
#[derive(Clone, Debug, Default)]
pub struct AzureFactory;

impl AzureFactory {
    /// Resolves credentials and settings (no network) and builds the concrete provider.
    pub fn build_provider(&self, ctx: &ProviderContext) -> Result<AzureProvider> {
        let mut diags = Diagnostics::new();
        let settings = AzureSettings::read(&ctx.spec, &mut diags).ok_or(Error::Spec(diags))?;
        let missing: Vec<&str> = [TENANT_ENV, CLIENT_ENV, SECRET_ENV]
            .into_iter()
            .filter(|v| ctx.var(v).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Credentials {
                message: format!(
                    "no Azure service principal: set {} (create one with `az ad sp create-for-rbac --role Contributor --scopes /subscriptions/<id>`)",
                    missing.join(", ")
                ),
            });
        }
        let subscription = settings
            .subscription_id
            .clone()
            .or_else(|| ctx.var(SUBSCRIPTION_ENV).map(str::to_string))
            .ok_or_else(|| Error::Credentials {
                message: format!("no Azure subscription: set {SUBSCRIPTION_ENV} or azure.subscription_id in vre.toml"),
            })?;
        let credentials = ClientCredentials::new(
            ctx.var(TENANT_ENV).unwrap_or_default(),
            ctx.var(CLIENT_ENV).unwrap_or_default(),
            ctx.var(SECRET_ENV).unwrap_or_default(),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("vre/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| Error::component("azure", format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenSource::new(credentials, &settings.authority, auth::ARM_SCOPE, http.clone());
        let client = ArmClient::new(http, &settings.endpoint, tokens).map_err(|m| Error::input("azure.endpoint", m))?;
        Ok(AzureProvider::new(client, subscription, settings, &ctx.spec.name))
    }
}

#[async_trait]
impl ProviderFactory for AzureFactory {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn description(&self) -> &str {
        "Microsoft Azure Resource Manager (service principal in AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET)"
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: format!(
                "# Credentials: a service principal with the Contributor role on the subscription;\n# export {TENANT_ENV}, {CLIENT_ENV}, {SECRET_ENV} and {SUBSCRIPTION_ENV}\n# (`az ad sp create-for-rbac --role Contributor --scopes /subscriptions/<id>`)."
            ),
            image: "Canonical:ubuntu-24_04-lts:server:latest".into(),
            image_source: None,
            image_preinstalled: false,
            ssh_user: "ubuntu".into(),
            master_flavor: "Standard_D2s_v5".into(),
            worker_flavor: "Standard_D2s_v5".into(),
            storage_flavor: "Standard_D2s_v5".into(),
            edge_flavor: "Standard_B2s".into(),
            table: settings::template_table(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        AzureSettings::read(spec, diags);
    }

    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        Ok(Arc::new(self.build_provider(&ctx)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vre_core::spec::{Table, Value};

    fn ctx(table: &[(&str, &str)], env: &[(&str, &str)]) -> ProviderContext {
        let mut spec = ClusterSpec::new("lab", "azure");
        spec.image.name = "Canonical:ubuntu-24_04-lts:server:latest".into();
        let mut t = Table::default();
        for (k, v) in table {
            t.insert(k, Value::String(v.to_string()));
        }
        spec.provider_table = t;
        let mut c = ProviderContext::new(Arc::new(spec), std::env::temp_dir());
        c.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        c
    }

    const SP: [(&str, &str); 3] = [
        (TENANT_ENV, "11111111-2222-4333-8444-555555555555"),
        (CLIENT_ENV, "66666666-7777-4888-9999-000000000000"),
        (SECRET_ENV, "s3cr3t"),
    ];

    #[tokio::test]
    async fn missing_credentials_name_every_missing_variable() {
        let e = AzureFactory
            .build(ctx(&[("location", "westeurope")], &[(CLIENT_ENV, "x")]))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::Credentials { .. }));
        let text = e.to_string();
        assert!(text.contains("AZURE_TENANT_ID, AZURE_CLIENT_SECRET"), "{text}");
        assert!(!text.contains("AZURE_CLIENT_ID,"), "{text}");
    }

    #[tokio::test]
    async fn the_subscription_comes_from_the_environment_or_the_table() {
        let e = AzureFactory
            .build(ctx(&[("location", "westeurope")], &SP))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("AZURE_SUBSCRIPTION_ID"), "{e}");
        let mut env = SP.to_vec();
        env.push((SUBSCRIPTION_ENV, "00000000-1111-4222-8333-444444444444"));
        let p = AzureFactory
            .build_provider(&ctx(&[("location", "westeurope")], &env))
            .unwrap();
        assert_eq!(p.scope().subscription, "00000000-1111-4222-8333-444444444444");
        assert_eq!(p.scope().resource_group, "lab-rg");
        let p = AzureFactory
            .build_provider(&ctx(
                &[
                    ("location", "northeurope"),
                    ("subscription_id", "aaaaaaaa-1111-4222-8333-444444444444"),
                    ("resource_group", "vre-lab"),
                ],
                &env,
            ))
            .unwrap();
        assert_eq!(p.scope().subscription, "aaaaaaaa-1111-4222-8333-444444444444");
        assert_eq!(p.scope().resource_group, "vre-lab");
        assert_eq!(p.scope().location, "northeurope");
    }

    #[test]
    fn the_template_describes_azure() {
        let t = AzureFactory.template();
        assert!(t.table.starts_with("[azure]\n"));
        assert!(t.credentials.lines().all(|l| l.starts_with('#')));
        assert!(call::ImageRef::parse(&t.image).is_some());
    }
}
