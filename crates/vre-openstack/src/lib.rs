//! vre's OpenStack provider: Keystone v3 (password and application
//! credentials, from `clouds.yaml` or `OS_*`), Nova (multiple create), Neutron
//! (network, router, security group, floating IPs, all tagged
//! `vre:cluster=<name>`), Cinder (data volumes) and Glance (interoperable
//! image import with `web-download`).
//!
//! Register [`OpenStackFactory`] in a [`vre_core::ProviderRegistry`], or build
//! an [`OpenStackProvider`] in code with [`OpenStackProvider::with_password`].
//!
//! The crate has the shape of every vre cloud crate: this file (the factory
//! and [`PROVIDER`]), [`settings`] (the `[openstack]` table), [`credentials`]
//! and [`auth`] (where credentials come from, the Keystone token), [`error`],
//! [`requests`] (every request, built without I/O), [`wire`] (the answers),
//! one file per resource family (servers, flavors, networks, security groups,
//! volumes, images, floating IPs, key pairs; preflight, inventory, delete),
//! and [`provider`], which implements [`CloudProvider`] by delegating to them.

pub mod api;
pub mod auth;
pub mod credentials;
mod delete;
pub mod error;
mod flavors;
mod floating_ips;
mod images;
mod inventory;
mod key_pairs;
mod networks;
mod neutron;
#[cfg(test)]
mod nova_stub;
mod paging;
mod preflight;
pub mod provider;
pub mod requests;
mod security_groups;
mod servers;
pub mod settings;
mod volumes;
pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::{ClusterSpec, Diagnostics};
use vre_core::{CloudProvider, ProviderContext, ProviderFactory, ProviderTemplate, Result};

pub use credentials::{AuthMethod, Credentials, NameOrId, ProjectScope};
pub use error::OpenStackError;
pub use provider::{OpenStackProvider, PollPolicy};
pub use settings::OpenStackSettings;

/// The registered provider name (`provider = "openstack"`).
pub const PROVIDER: &str = "openstack";

/// Makes [`OpenStackProvider`]s from specs whose `provider = "openstack"`.
#[derive(Clone, Debug, Default)]
pub struct OpenStackFactory;

impl OpenStackFactory {
    pub fn new() -> Self {
        OpenStackFactory
    }
}

#[async_trait]
impl ProviderFactory for OpenStackFactory {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn description(&self) -> &str {
        "OpenStack (Nova, Neutron, Cinder, Glance): EMBL-EBI, SNIC, de.NBI, CSC, CityCloud and your own"
    }

    fn table(&self) -> &str {
        settings::TABLE
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: settings::TEMPLATE_CREDENTIALS.into(),
            image: "ubuntu-24.04".into(),
            image_source: Some("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img".into()),
            image_preinstalled: false,
            ssh_user: "ubuntu".into(),
            master_flavor: "m1.medium".into(),
            worker_flavor: "m1.medium".into(),
            storage_flavor: "m1.medium".into(),
            edge_flavor: "m1.small".into(),
            table: settings::TEMPLATE_TABLE.into(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        OpenStackSettings::read(&spec.provider_table, diags);
    }

    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        let mut diags = Diagnostics::new();
        let settings = OpenStackSettings::read(&ctx.spec.provider_table, &mut diags);
        if !diags.is_empty() {
            return Err(vre_core::Error::Spec(diags));
        }
        let credentials = Credentials::resolve(&ctx.env, &ctx.dir)?;
        // the CA bundle and interface are checked now, still without a network call
        credentials.http_client()?;
        credentials.interface_type()?;
        credentials.token_url()?;
        Ok(Arc::new(OpenStackProvider::new(credentials, settings)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx(env: &[(&str, &str)]) -> ProviderContext {
        let spec = Arc::new(ClusterSpec::new("lab", PROVIDER));
        let mut c = ProviderContext::new(spec, std::path::PathBuf::from("/nonexistent"));
        c.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        c
    }

    #[tokio::test]
    async fn build_without_credentials_fails_in_one_line_without_network() {
        let err = match OpenStackFactory.build(ctx(&[])).await {
            Ok(_) => panic!("built without credentials"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(matches!(err, vre_core::Error::Credentials { .. }));
        assert!(msg.contains("OS_CLOUD") && msg.contains("OS_AUTH_URL"), "{msg}");
        assert_eq!(msg.lines().count(), 1);
        assert_eq!(err.exit_code(), 2);
    }

    #[tokio::test]
    async fn build_with_credentials_makes_no_call() {
        // port 9 (discard) on loopback: any connection attempt would fail the test below
        let p = OpenStackFactory
            .build(ctx(&[
                ("OS_AUTH_URL", "http://127.0.0.1:9/v3"),
                ("OS_USERNAME", "admin"),
                ("OS_PASSWORD", "pw"),
                ("OS_PROJECT_NAME", "vre"),
            ]))
            .await
            .unwrap();
        assert_eq!(p.name(), "openstack");
        assert!(p.capabilities().multi_create);
    }

    #[test]
    fn factory_checks_its_table() {
        let mut spec = ClusterSpec::new("lab", PROVIDER);
        spec.provider_table
            .insert("externl_network", vre_core::spec::Value::String("x".into()));
        let mut d = Diagnostics::new();
        OpenStackFactory.check_table(&spec, &mut d);
        assert!(d.to_string().contains("did you mean `external_network`?"), "{d}");
    }

    #[test]
    fn template_mentions_both_credential_sources() {
        let t = OpenStackFactory.template();
        assert!(t.credentials.contains("OS_CLOUD") && t.credentials.contains("openrc"));
        assert!(t.table.starts_with("[openstack]"));
    }
}
