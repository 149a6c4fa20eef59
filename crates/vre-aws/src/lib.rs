//! vre's AWS provider: the EC2 Query API (`Version=2016-11-15`) signed with
//! SigV4 (`aws-sigv4`), sent with reqwest, answered in XML read with
//! quick-xml + serde. No AWS SDK.
//!
//! A VRE on AWS is a VPC (or a reused subnet / VPC) with one subnet, an
//! internet gateway and a route table; a security group; an imported key
//! pair; one `RunInstances` call per node group (per `max_batch` chunk); Elastic IPs for the edge
//! nodes and the master; EBS volumes for storage nodes. Everything carries
//! the tag `vre:cluster = <name>`, which is how `inventory` and `destroy`
//! find it again without the state file.
//!
//! ```no_run
//! let mut registry = vre_core::ProviderRegistry::new();
//! vre_aws::register(&mut registry);
//! ```

mod access;
mod addresses;
pub mod client;
pub mod credentials;
pub mod error;
pub mod image;
mod instances;
mod inventory;
mod network;
mod preflight;
pub mod provider;
pub mod query;
pub mod requests;
pub mod settings;
mod volumes;
pub mod wire;

#[cfg(test)]
#[path = "../tests/support/ec2_model.rs"]
mod ec2_model;
#[cfg(test)]
#[path = "../tests/support/scripted.rs"]
mod scripted;

pub use access::{current_rules, rule_changes};
pub use client::Ec2Client;
pub use credentials::{AwsCredentials, ChainInput, CredentialSource, ProfileFile, Resolved, resolve};
pub use error::{AwsError, Blame};
pub use image::ImportSource;
pub use instances::{Phase, encode_user_data, instance_resource, phase};
pub use provider::AwsProvider;
pub use query::Query;
pub use settings::AwsSettings;
pub use volumes::os_device;
pub use vre_cloud_kit::PollPolicy;

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::Diagnostics;
use vre_core::{
    CloudProvider, ClusterSpec, Error, ProviderContext, ProviderFactory, ProviderRegistry, ProviderTemplate, Result,
};

/// The registered name (and table) of the provider.
pub const PROVIDER: &str = "aws";

/// Makes [`AwsProvider`]s.
#[derive(Clone, Debug, Default)]
pub struct AwsFactory;

impl AwsFactory {
    /// The concrete provider (for callers that want its client, e.g. to count requests).
    pub fn provider(&self, ctx: &ProviderContext) -> Result<AwsProvider> {
        let settings = AwsSettings::from_spec(&ctx.spec)?;
        let input = ChainInput {
            profile: settings.profile.as_deref(),
            region: settings.region.as_deref(),
            endpoint: settings.endpoint.as_deref(),
        };
        let resolved = credentials::resolve(&ctx.env, &input).map_err(|e| match e {
            AwsError::NoRegion { .. } => Error::input("aws.region", e.to_string()),
            AwsError::BadEndpoint { .. } => Error::input("aws.endpoint", e.to_string()),
            other => Error::Credentials {
                message: other.to_string(),
            },
        })?;
        let client = Ec2Client::new(resolved).map_err(|e| Error::input("aws.endpoint", e.to_string()))?;
        Ok(AwsProvider::new(Arc::new(client), settings, ctx.events.clone()))
    }
}

#[async_trait]
impl ProviderFactory for AwsFactory {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn description(&self) -> &str {
        "Amazon EC2: a VPC, one RunInstances per node group, EBS data volumes and Elastic IPs (EC2 Query API, SigV4)"
    }

    fn template(&self) -> ProviderTemplate {
        ProviderTemplate {
            credentials: [
                "# Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),",
                "# or a profile of ~/.aws/credentials named by AWS_PROFILE or [aws] profile.",
                "# SSO and assume-role profiles: `eval \"$(aws configure export-credentials --format env)\"` first.",
            ]
            .join("\n"),
            image: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*".into(),
            image_source: None,
            image_preinstalled: false,
            ssh_user: "ubuntu".into(),
            master_flavor: "t3.large".into(),
            worker_flavor: "t3.medium".into(),
            storage_flavor: "t3.medium".into(),
            edge_flavor: "t3.small".into(),
            table: settings::template_table(),
        }
    }

    fn check_table(&self, spec: &ClusterSpec, diags: &mut Diagnostics) {
        AwsSettings::read(spec, diags);
    }

    async fn build(&self, ctx: ProviderContext) -> Result<Arc<dyn CloudProvider>> {
        Ok(Arc::new(self.provider(&ctx)?))
    }
}

/// Adds the AWS provider to a registry.
pub fn register(registry: &mut ProviderRegistry) {
    registry.register(Arc::new(AwsFactory));
}

#[cfg(test)]
impl ec2_model::Ec2Model {
    /// Checks one request built by this crate.
    pub fn check(&self, q: &Query) -> Result<(), Vec<String>> {
        self.check_params(q.action(), q.params())
    }
}
