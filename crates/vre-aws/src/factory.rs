//! `AwsFactory`: registers the provider as `aws`, reads the `[aws]` table,
//! writes `vre init aws`'s template, and builds the provider from the
//! standard credential chain without any network call.

use std::sync::Arc;

use async_trait::async_trait;
use vre_core::spec::Diagnostics;
use vre_core::{
    CloudProvider, ClusterSpec, Error, ProviderContext, ProviderFactory, ProviderRegistry, ProviderTemplate, Result,
};

use crate::client::Ec2Client;
use crate::credentials::{ChainInput, resolve};
use crate::error::AwsError;
use crate::provider::AwsProvider;
use crate::settings::{AwsSettings, template_table};

/// The registered name (and table) of the provider.
pub const NAME: &str = "aws";

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
        let resolved = resolve(&ctx.env, &input).map_err(|e| match e {
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
        NAME
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
            table: template_table(),
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
