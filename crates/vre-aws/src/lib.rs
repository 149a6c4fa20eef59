//! vre's AWS provider: the EC2 Query API (`Version=2016-11-15`) signed with
//! SigV4 (`aws-sigv4`), sent with reqwest, answered in XML read with
//! quick-xml + serde. No AWS SDK.
//!
//! A VRE on AWS is a VPC (or a reused subnet / VPC) with one subnet, an
//! internet gateway and a route table; a security group; an imported key
//! pair; one `RunInstances` call per node group; Elastic IPs for the edge
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
pub mod factory;
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
mod scripted;

pub use access::{current_rules, rule_changes};
pub use client::Ec2Client;
pub use credentials::{AwsCredentials, ChainInput, CredentialSource, ProfileFile, Resolved, resolve};
pub use error::{AwsError, Blame};
pub use factory::{AwsFactory, NAME, register};
pub use image::ImportSource;
pub use instances::{Phase, encode_user_data, instance_resource, phase};
pub use provider::{AwsProvider, WaitPolicy};
pub use query::Query;
pub use settings::AwsSettings;
pub use volumes::os_device;

#[cfg(test)]
impl ec2_model::Ec2Model {
    /// Checks one request built by this crate.
    pub fn check(&self, q: &Query) -> Result<(), Vec<String>> {
        self.check_params(q.action(), q.params())
    }
}
