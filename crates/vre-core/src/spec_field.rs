//! The spec fields a provider's finding can be about. Providers name a
//! [`SpecField`]; only vre-core turns it into the path a user reads
//! (`nodes.storage.volume_gb`), so the spec's layout is known in one place.

use std::fmt;

use crate::spec::Role;

/// A field of `vre.toml` a cloud's answer is about (an unknown flavor, a
/// quota too small for a role's count, a missing image).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecField {
    /// `nodes.<role>.flavor`
    Flavor(Role),
    /// `nodes.<role>.count`
    Count(Role),
    /// `nodes.<role>.root_disk_gb`
    RootDisk(Role),
    /// `nodes.<role>.volume_gb`
    Volume(Role),
    /// `nodes.<role>.public_ip`
    PublicIp(Role),
    /// The node groups as a whole (`nodes`), e.g. a quota for every node.
    Nodes,
    /// `image.name`
    Image,
    /// `image.source`
    ImageSource,
    /// `network.cidr`
    NetworkCidr,
    /// `network.master_ip`
    MasterIp,
    /// A key of the provider's own table: `<table>.<key>` (`aws.region`).
    Setting {
        /// The provider's table (`aws`, `openstack`).
        table: String,
        /// The key inside it.
        key: String,
    },
}

impl SpecField {
    /// A key of the provider's own table.
    pub fn setting(table: impl Into<String>, key: impl Into<String>) -> Self {
        SpecField::Setting {
            table: table.into(),
            key: key.into(),
        }
    }

    /// The dotted path of the field in `vre.toml`.
    pub fn path(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpecField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecField::Flavor(r) => write!(f, "nodes.{r}.flavor"),
            SpecField::Count(r) => write!(f, "nodes.{r}.count"),
            SpecField::RootDisk(r) => write!(f, "nodes.{r}.root_disk_gb"),
            SpecField::Volume(r) => write!(f, "nodes.{r}.volume_gb"),
            SpecField::PublicIp(r) => write!(f, "nodes.{r}.public_ip"),
            SpecField::Nodes => f.write_str("nodes"),
            SpecField::Image => f.write_str("image.name"),
            SpecField::ImageSource => f.write_str("image.source"),
            SpecField::NetworkCidr => f.write_str("network.cidr"),
            SpecField::MasterIp => f.write_str("network.master_ip"),
            SpecField::Setting { table, key } => write!(f, "{table}.{key}"),
        }
    }
}

/// One problem a provider found with the spec before anything was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightProblem {
    /// What it is about.
    pub field: SpecField,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl PreflightProblem {
    /// A problem with `field`.
    pub fn new(field: SpecField, message: impl Into<String>) -> Self {
        PreflightProblem {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_spec_layout() {
        assert_eq!(SpecField::Volume(Role::Storage).path(), "nodes.storage.volume_gb");
        assert_eq!(SpecField::Count(Role::Service).path(), "nodes.service.count");
        assert_eq!(SpecField::PublicIp(Role::Master).path(), "nodes.master.public_ip");
        assert_eq!(SpecField::ImageSource.path(), "image.source");
        assert_eq!(SpecField::setting("aws", "region").path(), "aws.region");
    }
}
