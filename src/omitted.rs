//! Built-in providers this build of vre leaves out (their cargo feature is
//! off). Each is registered as a stand-in that accepts its table, so that a
//! spec naming it fails with one exit-2 line saying which feature to turn on,
//! instead of "unknown provider". A downstream crate that registers its own
//! provider under the same name replaces the stand-in.

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::Diagnostics;
use vre_core::{CloudProvider, ClusterSpec, Error, ProviderContext, ProviderFactory, ProviderTemplate, Result};

/// `(provider, its vre.toml table, whether its cargo feature is on)` of
/// every built-in provider; each provider's feature has its name.
const BUILT_IN: &[(&str, &str, bool)] = &[
    ("local", "sim", cfg!(feature = "local")),
    ("openstack", "openstack", cfg!(feature = "openstack")),
    ("aws", "aws", cfg!(feature = "aws")),
    ("gcp", "gcp", cfg!(feature = "gcp")),
    ("azure", "azure", cfg!(feature = "azure")),
];

/// The stand-ins for the built-in providers this build leaves out.
pub(crate) fn omitted_providers() -> Vec<Arc<OmittedProvider>> {
    BUILT_IN
        .iter()
        .filter(|(_, _, compiled_in)| !compiled_in)
        .map(|&(name, table, _)| {
            Arc::new(OmittedProvider {
                name,
                table,
                feature: name,
                description: format!("(not in this build: rebuild vre with the cargo feature \"{name}\")"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Components;

    #[test]
    fn a_spec_naming_a_left_out_provider_gets_one_problem_naming_the_feature() {
        let aws = OmittedProvider {
            name: "aws",
            table: "aws",
            feature: "aws",
            description: String::new(),
        };
        let mut diags = Diagnostics::new();
        aws.check_table(&ClusterSpec::new("lab", "aws"), &mut diags);
        assert_eq!(diags.problems.len(), 1, "{diags}");
        assert_eq!(diags.problems[0].field, "provider");
        assert_eq!(
            diags.problems[0].message,
            "the \"aws\" provider is not in this build of vre, which was built without the cargo feature \"aws\"; \
             rebuild vre with `--features aws`"
        );
    }

    #[test]
    fn only_the_providers_left_out_get_stand_ins() {
        let components = Components::standard();
        for &(name, table, compiled_in) in BUILT_IN {
            let registered = components
                .providers()
                .get(name)
                .expect("every built-in name is registered");
            assert_eq!(registered.table(), table);
            assert_eq!(
                components.missing_feature(name),
                (!compiled_in).then_some(name),
                "{name}"
            );
        }
        assert_eq!(
            omitted_providers().len(),
            BUILT_IN.iter().filter(|(_, _, compiled_in)| !compiled_in).count()
        );
    }
}
