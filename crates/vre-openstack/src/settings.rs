//! The `[openstack]` table of vre.toml.

use serde::{Deserialize, Serialize};
use vre_core::spec::{Diagnostics, Table, TableReader};

/// The table's name.
pub const TABLE: &str = "openstack";

/// Disk formats Glance accepts for an imported image.
pub const DISK_FORMATS: &[&str] = &["qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "ploop"];

/// What the `[openstack]` table says; every key is optional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenStackSettings {
    /// The external network the router's gateway goes to.
    pub external_network: String,
    /// The network floating IPs come from (default: `external_network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ip_pool: Option<String>,
    /// Reuse this existing network (by name) instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Reuse this existing security group (by name) instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    /// Availability zone of servers and volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Boot servers from a Cinder volume made from the image.
    #[serde(default)]
    pub boot_from_volume: bool,
    /// Cinder volume type of data and boot volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Glance disk format of an image imported from `image.source`
    /// (default: from the URL's extension, else qcow2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_disk_format: Option<String>,
}

impl Default for OpenStackSettings {
    fn default() -> Self {
        OpenStackSettings {
            external_network: "public".into(),
            floating_ip_pool: None,
            network: None,
            security_group: None,
            availability_zone: None,
            boot_from_volume: false,
            volume_type: None,
            image_disk_format: None,
        }
    }
}

const KEYS: &[&str] = &[
    "external_network",
    "floating_ip_pool",
    "network",
    "security_group",
    "availability_zone",
    "boot_from_volume",
    "volume_type",
    "image_disk_format",
];

impl OpenStackSettings {
    /// The pool floating IPs are allocated from.
    pub fn pool(&self) -> &str {
        self.floating_ip_pool.as_deref().unwrap_or(&self.external_network)
    }

    /// The `[openstack]` key that names the floating IP pool ([`Self::pool`]).
    pub fn pool_key(&self) -> &'static str {
        if self.floating_ip_pool.is_some() {
            "floating_ip_pool"
        } else {
            "external_network"
        }
    }

    /// Reads the table, reporting every problem into `diags`.
    pub fn read(table: &Table, diags: &mut Diagnostics) -> OpenStackSettings {
        let mut r = TableReader::new(table, TABLE);
        let mut s = OpenStackSettings::default();
        let name = |r: &mut TableReader<'_>, diags: &mut Diagnostics, key: &str, example: &str| {
            let v = r.string(diags, key, example)?;
            if v.value.trim().is_empty() {
                diags.error(
                    &r.field(key),
                    v.span,
                    format!("is empty; name an existing resource, e.g. `{key} = {example}`, or remove the key"),
                );
                return None;
            }
            Some(v.value)
        };
        if let Some(v) = name(&mut r, diags, "external_network", "\"public\"") {
            s.external_network = v;
        }
        s.floating_ip_pool = name(&mut r, diags, "floating_ip_pool", "\"public\"");
        s.network = name(&mut r, diags, "network", "\"my-project-net\"");
        s.security_group = name(&mut r, diags, "security_group", "\"my-group\"");
        s.availability_zone = name(&mut r, diags, "availability_zone", "\"nova\"");
        s.volume_type = name(&mut r, diags, "volume_type", "\"ssd\"");
        if let Some(b) = r.bool(diags, "boot_from_volume") {
            s.boot_from_volume = b.value;
        }
        if let Some(f) = r.string(diags, "image_disk_format", "\"qcow2\"") {
            if DISK_FORMATS.contains(&f.value.as_str()) {
                s.image_disk_format = Some(f.value);
            } else {
                diags.error(
                    &r.field("image_disk_format"),
                    f.span,
                    format!(
                        "\"{}\" is not a Glance disk format; use one of {}",
                        f.value,
                        DISK_FORMATS.join(", ")
                    ),
                );
            }
        }
        r.finish(diags, KEYS);
        s
    }

    /// The table as a library user would build it in code.
    pub fn to_table(&self) -> Table {
        Table::from_serialize(self).expect("settings serialize to an object")
    }
}

/// The `[openstack]` table `vre init openstack` writes.
pub const TEMPLATE_TABLE: &str = r#"[openstack]
# The external network the cluster's router connects to.
external_network = "public"
# Floating IPs (nodes with public_ip = true) come from this network.
# floating_ip_pool = "public"
# Reuse an existing network instead of creating <name>-net (the cluster then
# uses that network's first IPv4 subnet, and network.cidr is ignored).
# network = "my-project-net"
# Reuse an existing security group instead of creating <name>-sg.
# security_group = "my-group"
# availability_zone = "nova"
# Boot from a Cinder volume of nodes.<role>.root_disk_gb GB.
# boot_from_volume = false
# volume_type = "ssd"
# Glance disk format of an image imported from image.source (default: from the URL).
# image_disk_format = "qcow2"
"#;

/// The credential comment of the template.
pub const TEMPLATE_CREDENTIALS: &str = "# Credentials come from clouds.yaml (export OS_CLOUD=<cloud>) or from your\n# project's openrc file (source it: OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,\n# OS_PROJECT_NAME, ...). Application credentials work as well.\n";

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::spec::{SourceMap, document::parse_document};

    fn read(src: &str) -> (OpenStackSettings, String) {
        let mut d = Diagnostics::new();
        let root = parse_document(src, &mut d);
        assert!(d.is_empty(), "{d}");
        let table = match root.get("openstack").map(|i| &i.value) {
            Some(vre_core::spec::Value::Table(t)) => t.clone(),
            _ => Table::default(),
        };
        let s = OpenStackSettings::read(&table, &mut d);
        d.locate(&SourceMap::new("vre.toml", src));
        (s, d.to_string())
    }

    #[test]
    fn defaults_when_empty() {
        let (s, d) = read("");
        assert!(d.is_empty());
        assert_eq!(s, OpenStackSettings::default());
        assert_eq!(s.pool(), "public");
    }

    #[test]
    fn reads_every_key() {
        let (s, d) = read(
            "[openstack]\nexternal_network = \"ext\"\nfloating_ip_pool = \"fip\"\nnetwork = \"n\"\nsecurity_group = \"g\"\navailability_zone = \"az1\"\nboot_from_volume = true\nvolume_type = \"ssd\"\nimage_disk_format = \"raw\"\n",
        );
        assert!(d.is_empty(), "{d}");
        assert_eq!(s.pool(), "fip");
        assert_eq!(s.network.as_deref(), Some("n"));
        assert!(s.boot_from_volume);
        assert_eq!(s.image_disk_format.as_deref(), Some("raw"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        let (_, d) = read(
            "[openstack]\nexternal_netwrk = \"ext\"\nboot_from_volume = \"true\"\nimage_disk_format = \"qcow3\"\nnetwork = \"\"\n",
        );
        assert!(
            d.contains("vre.toml:2:1: openstack.external_netwrk: unknown key; did you mean `external_network`?"),
            "{d}"
        );
        assert!(d.contains("openstack.boot_from_volume: expected a boolean"), "{d}");
        assert!(
            d.contains("openstack.image_disk_format: \"qcow3\" is not a Glance disk format"),
            "{d}"
        );
        assert!(d.contains("vre.toml:5:11: openstack.network: is empty"), "{d}");
    }

    #[test]
    fn template_table_is_valid() {
        let (s, d) = read(TEMPLATE_TABLE);
        assert!(d.is_empty(), "{d}");
        assert_eq!(s, OpenStackSettings::default());
    }

    #[test]
    fn table_round_trips() {
        let s = OpenStackSettings {
            network: Some("shared".into()),
            boot_from_volume: true,
            ..OpenStackSettings::default()
        };
        let mut d = Diagnostics::new();
        assert_eq!(OpenStackSettings::read(&s.to_table(), &mut d), s);
        assert!(d.is_empty(), "{d}");
    }
}
