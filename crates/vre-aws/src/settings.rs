//! The `[aws]` table of vre.toml, read with located errors, and the
//! AWS-specific rules on the rest of the spec (subnet sizes, reserved
//! addresses, EBS sizes, importable image sources) checked before any call.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use vre_core::spec::{Diagnostics, TableReader, Value};
use vre_core::{ClusterSpec, Error, Role, SpecField};

use crate::credentials::parse_endpoint;
use crate::image::ImportSource;

/// Keys of the `[aws]` table.
pub const KEYS: &[&str] = &[
    "region",
    "profile",
    "endpoint",
    "vpc_id",
    "subnet_id",
    "availability_zone",
    "image_owners",
    "image_id",
    "volume_type",
    "public_egress",
    "import_role",
    "import_timeout_minutes",
    "tags",
];

/// Canonical's account, which publishes the official Ubuntu AMIs.
pub const CANONICAL_OWNER: &str = "099720109477";

const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"];

/// Tags EC2 allows per resource, minus those vre sets itself.
const MAX_EXTRA_TAGS: usize = 50 - 4;

/// The `[aws]` table. Every key is optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AwsSettings {
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A profile of the shared credentials files (default: `AWS_PROFILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// An EC2-compatible endpoint (moto, LocalStack) instead of AWS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Reuse this VPC instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Reuse this subnet (and its VPC) instead of creating a network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Zone of the subnet and volumes (default: the reused subnet's, else the region's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Accounts whose AMIs `image.name` may match.
    pub image_owners: Vec<String>,
    /// Boot this AMI; skips the lookup by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// EBS type of root and data volumes.
    pub volume_type: String,
    /// Every node gets a public IPv4 address for outbound traffic (no NAT
    /// gateway needed); edge and master keep an Elastic IP on top.
    pub public_egress: bool,
    /// The IAM role VM Import uses to read `image.source` from S3.
    pub import_role: String,
    /// How long an image import may take.
    pub import_timeout_minutes: u32,
    /// Extra tags on every resource (cost allocation, ownership).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            profile: None,
            endpoint: None,
            vpc_id: None,
            subnet_id: None,
            availability_zone: None,
            image_owners: vec!["self".into(), "amazon".into(), CANONICAL_OWNER.into()],
            image_id: None,
            volume_type: "gp3".into(),
            public_egress: true,
            import_role: "vmimport".into(),
            import_timeout_minutes: 120,
            tags: BTreeMap::new(),
        }
    }
}

impl AwsSettings {
    /// Reads `spec.provider_table` and checks the spec's AWS-specific rules;
    /// every problem goes to `diags`, the result holds defaults where a value was bad.
    pub fn read(spec: &ClusterSpec, diags: &mut Diagnostics) -> AwsSettings {
        let mut s = AwsSettings::default();
        let mut r = TableReader::new(&spec.provider_table, "aws");
        s.vpc_id = read_id(&mut r, diags, "vpc_id", "vpc-", "vpc-0123456789abcdef0");
        s.subnet_id = read_id(&mut r, diags, "subnet_id", "subnet-", "subnet-0123456789abcdef0");
        s.image_id = read_id(&mut r, diags, "image_id", "ami-", "ami-0123456789abcdef0");

        if let Some(v) = r.string(diags, "region", "\"eu-north-1\"") {
            if is_region(&v.value) {
                s.region = Some(v.value);
            } else {
                diags.error(
                    &r.field("region"),
                    v.span,
                    format!(
                        "\"{}\" is not an AWS region name; write one such as \"eu-north-1\" or \"us-east-1\"",
                        v.value
                    ),
                );
            }
        }
        if let Some(v) = r.string(diags, "profile", "\"default\"") {
            if v.value.trim().is_empty() || v.value.contains([']', '[', '\n']) {
                diags.error(
                    &r.field("profile"),
                    v.span,
                    "is not a profile name; write the name of a section of ~/.aws/credentials",
                );
            } else {
                s.profile = Some(v.value);
            }
        }
        if let Some(v) = r.string(diags, "endpoint", "\"http://127.0.0.1:5000\"") {
            match parse_endpoint(&v.value, "endpoint") {
                Ok(_) => s.endpoint = Some(v.value),
                Err(e) => diags.error(&r.field("endpoint"), v.span, e.to_string()),
            }
        }
        if let Some(v) = r.string(diags, "availability_zone", "\"eu-north-1a\"") {
            let region_ok = s.region.as_ref().is_none_or(|reg| v.value.starts_with(reg.as_str()));
            let shape_ok = v
                .value
                .char_indices()
                .last()
                .is_some_and(|(i, c)| c.is_ascii_lowercase() && is_region(&v.value[..i]));
            if !shape_ok {
                diags.error(
                    &r.field("availability_zone"),
                    v.span,
                    format!(
                        "\"{}\" is not an availability zone name; write one such as \"eu-north-1a\"",
                        v.value
                    ),
                );
            } else if !region_ok {
                diags.error(
                    &r.field("availability_zone"),
                    v.span,
                    format!(
                        "\"{}\" is not in region \"{}\"; pick a zone of that region, such as \"{}a\"",
                        v.value,
                        s.region.as_deref().unwrap_or_default(),
                        s.region.as_deref().unwrap_or_default()
                    ),
                );
            } else {
                s.availability_zone = Some(v.value);
            }
        }
        if let Some(owners) = r.string_array(diags, "image_owners", "[\"099720109477\", \"self\"]") {
            let mut good = Vec::new();
            for (i, o) in owners.into_iter().enumerate() {
                let ok = matches!(o.value.as_str(), "self" | "amazon" | "aws-marketplace")
                    || (o.value.len() == 12 && o.value.chars().all(|c| c.is_ascii_digit()));
                if ok {
                    good.push(o.value);
                } else {
                    diags.error(
                        &format!("{}[{i}]", r.field("image_owners")),
                        o.span,
                        format!(
                            "\"{}\" is not an AMI owner; write \"self\", \"amazon\", \"aws-marketplace\" or a 12-digit account id (Canonical: \"{CANONICAL_OWNER}\")",
                            o.value
                        ),
                    );
                }
            }
            if good.is_empty() && diags.problems.iter().all(|p| !p.field.starts_with("aws.image_owners")) {
                diags.error(
                    &r.field("image_owners"),
                    r.table().get("image_owners").and_then(|i| i.span.clone()),
                    format!(
                        "is empty; name whose AMIs image.name may match, such as [\"{CANONICAL_OWNER}\", \"self\"] (searching every public AMI would trust anyone's image)"
                    ),
                );
            }
            if !good.is_empty() {
                s.image_owners = good;
            }
        }
        if let Some(v) = r.string(diags, "volume_type", "\"gp3\"") {
            if VOLUME_TYPES.contains(&v.value.as_str()) {
                s.volume_type = v.value;
            } else {
                diags.error(
                    &r.field("volume_type"),
                    v.span,
                    format!(
                        "\"{}\" is not an EBS volume type; write one of {}",
                        v.value,
                        VOLUME_TYPES.join(", ")
                    ),
                );
            }
        }
        if let Some(b) = r.bool(diags, "public_egress") {
            s.public_egress = b.value;
        }
        if let Some(v) = r.string(diags, "import_role", "\"vmimport\"") {
            if v.value.is_empty() || v.value.len() > 64 {
                diags.error(
                    &r.field("import_role"),
                    v.span,
                    "is not an IAM role name; write one such as \"vmimport\"",
                );
            } else {
                s.import_role = v.value;
            }
        }
        if let Some(n) = r.integer(diags, "import_timeout_minutes", 1, 1440, 120) {
            s.import_timeout_minutes = n.value as u32;
        }
        if let Some(t) = r.table_reader(diags, "tags") {
            s.tags = read_tags(t, diags);
        }
        r.finish(diags, KEYS);

        check_spec(spec, &s, diags);
        s
    }

    /// The settings of a spec, or every problem with them.
    pub fn from_spec(spec: &ClusterSpec) -> Result<AwsSettings, Error> {
        let mut diags = Diagnostics::new();
        let s = AwsSettings::read(spec, &mut diags);
        if diags.is_empty() {
            Ok(s)
        } else {
            Err(Error::Spec(diags))
        }
    }

    /// Whether vre creates the network (VPC or subnet) itself.
    pub fn reuses_subnet(&self) -> bool {
        self.subnet_id.is_some()
    }
}

/// An EC2 id (`vpc-0123abcd`, 8 or 17 hex digits after the prefix).
fn read_id(r: &mut TableReader<'_>, diags: &mut Diagnostics, key: &str, prefix: &str, example: &str) -> Option<String> {
    let v = r.string(diags, key, &format!("\"{example}\""))?;
    let ok = v
        .value
        .strip_prefix(prefix)
        .is_some_and(|rest| (8..=17).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Some(v.value)
    } else {
        diags.error(
            &r.field(key),
            v.span,
            format!(
                "\"{}\" is not a {prefix}... id; write it as EC2 shows it, such as \"{example}\"",
                v.value
            ),
        );
        None
    }
}

fn read_tags(mut t: TableReader<'_>, diags: &mut Diagnostics) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let path = t.path().to_string();
    let table = t.table();
    for (k, item) in &table.entries {
        // every key is a tag: mark it read
        t.item(&k.name);
        let field = format!("{path}.{}", k.name);
        let span = k.span.clone().or_else(|| item.span.clone());
        let Value::String(v) = &item.value else {
            diags.error(
                &field,
                item.span.clone(),
                format!(
                    "expected a string, found {}; write for example `{} = \"my-lab\"`",
                    item.value.type_name(),
                    k.name
                ),
            );
            continue;
        };
        let lower = k.name.to_ascii_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("vre:") || k.name == "Name" {
            diags.error(
                &field,
                span,
                "is reserved (aws:* belongs to AWS, vre:* and Name are set by vre); pick another tag key",
            );
        } else if k.name.is_empty() || k.name.chars().count() > 128 || v.chars().count() > 256 {
            diags.error(
                &field,
                span,
                "EC2 tags have keys of 1 to 128 and values of up to 256 characters; shorten it",
            );
        } else {
            tags.insert(k.name.clone(), v.clone());
        }
    }
    if tags.len() > MAX_EXTRA_TAGS {
        diags.error(
            &path,
            t.span(),
            format!(
                "has {} tags; EC2 allows 50 per resource and vre uses 4, so write at most {MAX_EXTRA_TAGS}",
                tags.len()
            ),
        );
    }
    t.finish(diags, &[]);
    tags
}

/// `xx-name-N` (`us-east-1`, `us-gov-west-1`, `ap-southeast-4`).
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// EC2's limits on the generic parts of the spec.
fn check_spec(spec: &ClusterSpec, s: &AwsSettings, diags: &mut Diagnostics) {
    let cidr = spec.network.cidr;
    if !s.reuses_subnet() {
        if !(16..=28).contains(&cidr.prefix) {
            diags.error(
                &SpecField::NetworkCidr.path(),
                None,
                format!(
                    "{cidr} cannot be an AWS VPC subnet (prefix lengths /16 to /28 only); write for example \"10.0.0.0/24\""
                ),
            );
        } else {
            // AWS reserves the first four addresses and the last one of every subnet
            let master = spec.network.master_address(&cidr);
            let base = u32::from(cidr.network());
            let last = base + (1u32 << (32 - u32::from(cidr.prefix))) - 1;
            if let Some(ip) = master.filter(|ip| {
                let n = u32::from(*ip);
                n < base + 4 || n == last
            }) {
                diags.error(
                    &SpecField::MasterIp.path(),
                    None,
                    format!(
                        "{ip} is reserved by AWS (the first four and the last address of a subnet); pick another, such as {}",
                        Ipv4Addr::from(base + 10)
                    ),
                );
            }
        }
    }
    if let Some(src) = &spec.image.source
        && s.image_id.is_none()
        && let Err(e) = ImportSource::parse(src)
    {
        diags.error(&SpecField::ImageSource.path(), None, e);
    }
    let max_gb = if s.volume_type == "standard" { 1024 } else { 16384 };
    for g in spec.nodes.iter().filter(|g| g.count > 0) {
        let role = g.role;
        if let Some(gb) = g.root_disk_gb
            && (gb == 0 || gb > max_gb)
        {
            diags.error(
                &SpecField::RootDisk(role).path(),
                None,
                format!(
                    "{gb} GB is not a valid {} volume size; write 1 to {max_gb}",
                    s.volume_type
                ),
            );
        }
        if let (Role::Storage, Some(gb)) = (role, g.volume_gb) {
            let min = match s.volume_type.as_str() {
                "st1" | "sc1" => 125,
                "io1" | "io2" => 4,
                _ => 1,
            };
            if gb < min || gb > max_gb {
                diags.error(
                    &SpecField::Volume(role).path(),
                    None,
                    format!(
                        "{gb} GB is not a valid {} volume size; write {min} to {max_gb}",
                        s.volume_type
                    ),
                );
            }
        }
    }
}

/// The commented `[aws]` table `vre init aws` writes.
pub fn template_table() -> String {
    format!(
        r#"[aws]
# Region of the VRE. Default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`.
# region = "eu-north-1"
# A profile of ~/.aws/credentials. Default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
# then the profile AWS_PROFILE names, then "default".
# profile = "default"
# Accounts whose AMIs image.name may match: "self", "amazon", or an account id
# ({CANONICAL_OWNER} is Canonical, which publishes the Ubuntu images).
image_owners = ["{CANONICAL_OWNER}", "self"]
# Boot this AMI instead of looking image.name up.
# image_id = "ami-0123456789abcdef0"
# Reuse an existing network instead of creating a VPC, subnet, internet
# gateway and route table (a subnet alone is enough; a VPC alone gets a new subnet).
# vpc_id = "vpc-0123456789abcdef0"
# subnet_id = "subnet-0123456789abcdef0"
# Zone of the subnet and the storage volumes. Default: the region's first zone.
# availability_zone = "eu-north-1a"
# EBS type of root and data volumes.
# volume_type = "gp3"
# Give every node a public IPv4 address for outbound traffic (package downloads)
# instead of requiring a NAT gateway; edge and master get an Elastic IP either way.
# public_egress = true
# Importing image.source (an s3:// URL of a RAW, VHD, VHDX, VMDK or OVA disk) uses
# this IAM service role (see "VM Import/Export required permissions").
# import_role = "vmimport"
# import_timeout_minutes = 120
# An EC2-compatible endpoint (moto, LocalStack) instead of AWS's.
# endpoint = "http://127.0.0.1:5000"

# Extra tags on every resource vre creates.
# [aws.tags]
# project = "my-lab"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::spec::SourceMap;
    use vre_core::spec::document::parse_document;

    fn spec_with(table: &str) -> (ClusterSpec, SourceMap) {
        let text = format!("{table}\n");
        let mut d = Diagnostics::new();
        let root = parse_document(&text, &mut d);
        assert!(d.is_empty(), "{d}");
        let mut spec = ClusterSpec::new("lab", "aws");
        if let Some(item) = root.get("aws")
            && let Value::Table(t) = &item.value
        {
            spec.provider_table = t.clone();
        }
        (spec, SourceMap::new("vre.toml", &text))
    }

    fn problems(table: &str, tweak: impl FnOnce(&mut ClusterSpec)) -> Vec<String> {
        let (mut spec, source) = spec_with(table);
        tweak(&mut spec);
        let mut d = Diagnostics::new();
        AwsSettings::read(&spec, &mut d);
        d.locate(&source);
        d.problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn defaults_apply_when_the_table_is_absent() {
        let (spec, _) = spec_with("");
        let s = AwsSettings::from_spec(&spec).unwrap();
        assert_eq!(s, AwsSettings::default());
        assert!(s.public_egress);
        assert_eq!(s.volume_type, "gp3");
        assert!(s.image_owners.contains(&CANONICAL_OWNER.to_string()));
    }

    #[test]
    fn reads_every_key() {
        let (spec, _) = spec_with(
            r#"[aws]
region = "eu-north-1"
profile = "lab"
endpoint = "http://127.0.0.1:5000"
subnet_id = "subnet-0123456789abcdef0"
vpc_id = "vpc-0a1b2c3d"
availability_zone = "eu-north-1b"
image_owners = ["self", "123456789012"]
image_id = "ami-785db401"
volume_type = "gp2"
public_egress = false
import_role = "importer"
import_timeout_minutes = 30
[aws.tags]
project = "genomics"
"#,
        );
        let s = AwsSettings::from_spec(&spec).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-north-1"));
        assert_eq!(s.profile.as_deref(), Some("lab"));
        assert_eq!(s.subnet_id.as_deref(), Some("subnet-0123456789abcdef0"));
        assert_eq!(s.vpc_id.as_deref(), Some("vpc-0a1b2c3d"));
        assert_eq!(s.availability_zone.as_deref(), Some("eu-north-1b"));
        assert_eq!(s.image_owners, vec!["self", "123456789012"]);
        assert_eq!(s.image_id.as_deref(), Some("ami-785db401"));
        assert_eq!(s.volume_type, "gp2");
        assert!(!s.public_egress);
        assert_eq!(s.import_role, "importer");
        assert_eq!(s.import_timeout_minutes, 30);
        assert_eq!(s.tags.get("project").map(String::as_str), Some("genomics"));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_located() {
        let p = problems(
            "[aws]\nregion = \"Europe\"\nsubnet = \"subnet-1\"\nvpc_id = \"vpc-xyz\"\nimage_owners = [\"canonical\"]\nvolume_type = \"ssd\"\n",
            |_| {},
        );
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("vre.toml:2:10: aws.region: \"Europe\" is not an AWS region name")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("vre.toml:3:1: aws.subnet: unknown key; did you mean `subnet_id`?")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("vre.toml:4:10: aws.vpc_id: \"vpc-xyz\" is not a vpc-... id")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("aws.image_owners[0]: \"canonical\" is not an AMI owner")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("aws.volume_type: \"ssd\" is not an EBS volume type")),
            "{p:#?}"
        );
    }

    #[test]
    fn zones_must_belong_to_the_region_and_tags_must_not_be_reserved() {
        let p = problems(
            "[aws]\nregion = \"us-east-1\"\navailability_zone = \"eu-north-1a\"\n[aws.tags]\n\"vre:cluster\" = \"x\"\nteam = 3\n",
            |_| {},
        );
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(
            p.iter()
                .any(|m| m.contains("aws.availability_zone: \"eu-north-1a\" is not in region \"us-east-1\"")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("aws.tags.vre:cluster: is reserved")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("aws.tags.team: expected a string, found an integer")),
            "{p:#?}"
        );
    }

    #[test]
    fn spec_values_ec2_cannot_take_are_reported() {
        let p = problems("", |s| {
            s.network.cidr = "10.0.0.0/8".parse().unwrap();
        });
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("network.cidr: 10.0.0.0/8 cannot be an AWS VPC subnet"),
            "{}",
            p[0]
        );

        let p = problems("", |s| s.network.master_ip = Some("10.0.0.2".parse().unwrap()));
        assert!(
            p[0].starts_with("network.master_ip: 10.0.0.2 is reserved by AWS"),
            "{p:#?}"
        );

        let p = problems("", |s| {
            s.image.source = Some("https://cloud-images.ubuntu.com/noble/current/noble.img".into())
        });
        assert!(p[0].starts_with("image.source: "), "{p:#?}");

        let p = problems("[aws]\nvolume_type = \"st1\"\n", |s| {
            let g = s.group_mut(Role::Storage);
            g.count = 1;
            g.volume_gb = Some(20);
        });
        assert!(
            p[0].starts_with(&format!(
                "{}: 20 GB is not a valid st1 volume size; write 125 to 16384",
                SpecField::Volume(Role::Storage)
            )),
            "{p:#?}"
        );

        // a reused subnet brings its own CIDR
        let p = problems("[aws]\nsubnet_id = \"subnet-0123abcd\"\n", |s| {
            s.network.cidr = "10.0.0.0/8".parse().unwrap()
        });
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn the_template_reads_back_without_problems() {
        let (spec, _) = spec_with(&template_table());
        let s = AwsSettings::from_spec(&spec).unwrap();
        assert_eq!(s.image_owners, vec![CANONICAL_OWNER, "self"]);
        // every key the reader knows is documented in the template
        let text = template_table();
        for k in KEYS {
            assert!(
                text.contains(&format!("{k} =")) || text.contains(&format!("[aws.{k}]")),
                "{k} undocumented"
            );
        }
    }
}
