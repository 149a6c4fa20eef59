//! Built-in providers this build of vre leaves out (their cargo feature is
//! off). Each is registered as a stand-in that accepts its table, so that a
//! spec naming it fails with one exit-2 line saying which feature to turn on,
//! instead of "unknown provider". A downstream crate that registers its own
//! provider under the same name replaces the stand-in.

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::Diagnostics;
use vre_core::{CloudProvider, ClusterSpec, Error, ProviderContext, ProviderFactory, ProviderTemplate, Result};

/// `(provider, its vre.toml table, the cargo feature that compiles it in)`
/// of every built-in provider.
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("local", "sim", "local"),
    ("openstack", "openstack", "openstack"),
    ("aws", "aws", "aws"),
    ("gcp", "gcp", "gcp"),
    ("azure", "azure", "azure"),
];

/// Whether the cargo feature of a built-in provider is on in this build.
fn compiled_in(feature: &str) -> bool {
    match feature {
        "local" => cfg!(feature = "local"),
        "openstack" => cfg!(feature = "openstack"),
        "aws" => cfg!(feature = "aws"),
        "gcp" => cfg!(feature = "gcp"),
        "azure" => cfg!(feature = "azure"),
        _ => false,
    }
}

/// The stand-ins for the built-in providers this build leaves out.
pub(crate) fn omitted_providers() -> Vec<Arc<OmittedProvider>> {
    BUILT_IN
        .iter()
        .filter(|(_, _, feature)| !compiled_in(feature))
        .map(|&(name, table, feature)| {
            Arc::new(OmittedProvider {
                name,
                table,
                feature,
                description: format!("(not in this build: rebuild vre with the cargo feature \"{feature}\")"),
            })
        })
        .collect()
}

/// A built-in provider this build does not contain, standing in for it.
pub(crate) struct OmittedProvider {
    name: &'static str,
    table: &'static str,
    feature: &'static str,
    /// What `vre providers` prints for it.
    description: String,
}

impl OmittedProvider {
    /// The cargo feature that compiles the provider in.
    pub(crate) fn feature(&self) -> &'static str {
        self.feature
    }

    /// What the user reads: the provider is left out, and how to get it.
    fn message(&self) -> String {
        missing_feature_message(&format!("the \"{}\" provider", self.name), self.feature)
    }
}

/// "`what` is not in this build of vre", naming the cargo feature to turn on.
pub(crate) fn missing_feature_message(what: &str, feature: &str) -> String {
    format!(
        "{what} is not in this build of vre, which was built without the cargo feature \"{feature}\"; \
         rebuild vre with `--features {feature}`"
    )
}

#[async_trait]
impl ProviderFactory for OmittedProvider {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn table(&self) -> &str {
        self.table
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate::default()
    }

    fn check_table(&self, _spec: &ClusterSpec, diags: &mut Diagnostics) {
        diags.error("provider", None, self.message());
    }

    async fn build(&self, _ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        Err(Error::input("provider", self.message()))
    }
}
