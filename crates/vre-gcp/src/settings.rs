//! The `[gcp]` table of vre.toml: where the cluster lives and how to reach the API.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vre_core::spec::{ClusterSpec, Diagnostics, Span, TableReader};

/// The table name in vre.toml.
pub const TABLE: &str = "gcp";

const KEYS: &[&str] = &[
    "project",
    "region",
    "zone",
    "credentials_file",
    "image_project",
    "network",
    "subnetwork",
    "subnet_mode",
    "disk_type",
    "endpoint",
];

/// How the cluster's own VPC network gets its subnet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetMode {
    /// One subnetwork in the region with `network.cidr` (the default).
    #[default]
    Custom,
    /// GCE creates a /20 per region; `network.cidr` is not used.
    Auto,
}

/// What `[gcp]` says, defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GcpSettings {
    /// The project; `None`: the service-account key's `project_id`.
    pub project: Option<String>,
    pub region: String,
    pub zone: String,
    /// The service-account key (relative paths start at the deployment directory).
    pub credentials_file: Option<PathBuf>,
    /// Where `image.name` is looked up (as an image, then as a family); default: the project.
    pub image_project: Option<String>,
    /// An existing VPC network to use instead of creating one.
    pub network: Option<String>,
    /// The subnetwork of `network` in the region (needed for custom-mode networks).
    pub subnetwork: Option<String>,
    pub subnet_mode: SubnetMode,
    /// Persistent disk type of the boot and data disks.
    pub disk_type: String,
    /// API root URL (tests point it at a local server).
    pub endpoint: String,
}

impl GcpSettings {
    /// Settings for a zone, everything else default.
    pub fn for_zone(zone: &str) -> Self {
        GcpSettings {
            project: None,
            region: region_of(zone).unwrap_or(zone).to_string(),
            zone: zone.to_string(),
            credentials_file: None,
            image_project: None,
            network: None,
            subnetwork: None,
            subnet_mode: SubnetMode::Custom,
            disk_type: DEFAULT_DISK_TYPE.to_string(),
            endpoint: crate::client::DEFAULT_ENDPOINT.to_string(),
        }
    }

    /// Reads `spec.provider_table`, reporting every problem into `diags`;
    /// `None` when there was one.
    pub fn read(spec: &ClusterSpec, diags: &mut Diagnostics) -> Option<GcpSettings> {
        let before = diags.len();
        let table = &spec.provider_table;
        let mut r = TableReader::new(table, TABLE);
        let field = |k: &str| format!("{TABLE}.{k}");

        let project = r.string(diags, "project", "\"my-project\"");
        if let Some(p) = &project
            && let Err(m) = check_project_id(&p.value)
        {
            diags.error(&field("project"), p.span.clone(), m);
        }
        let zone = r.required_string(diags, "zone", "\"europe-north1-a\"");
        let region = r.string(diags, "region", "\"europe-north1\"");
        let mut derived_region = None;
        if let Some(z) = &zone {
            match region_of(&z.value) {
                Some(reg) => derived_region = Some(reg.to_string()),
                None => diags.error(
                    &field("zone"),
                    z.span.clone(),
                    format!("\"{}\" is not a zone name; write a zone such as \"europe-north1-a\" (`gcloud compute zones list`)", z.value),
                ),
            }
        }
        if let (Some(reg), Some(d), Some(z)) = (&region, &derived_region, &zone)
            && &reg.value != d
        {
            diags.error(
                &field("region"),
                reg.span.clone(),
                format!(
                    "\"{}\" does not contain zone \"{}\" (its region is \"{d}\"); remove gcp.region or make them agree",
                    reg.value, z.value
                ),
            );
        }
        let credentials_file = r.string(diags, "credentials_file", "\"service-account.json\"");
        let image_project = r.string(diags, "image_project", "\"ubuntu-os-cloud\"");
        let network = r.string(diags, "network", "\"default\"");
        let subnetwork = r.string(diags, "subnetwork", "\"default\"");
        for (key, v) in [("network", &network), ("subnetwork", &subnetwork)] {
            if let Some(v) = v
                && let Err(m) = check_resource_name(&v.value)
            {
                diags.error(&field(key), v.span.clone(), m);
            }
        }
        if let (Some(s), None) = (&subnetwork, &network) {
            diags.error(
                &field("subnetwork"),
                s.span.clone(),
                "only applies with gcp.network (an existing network); add gcp.network or remove gcp.subnetwork",
            );
        }
        let subnet_mode = match r.string(diags, "subnet_mode", "\"custom\"") {
            None => SubnetMode::Custom,
            Some(m) => match m.value.as_str() {
                "custom" => SubnetMode::Custom,
                "auto" => SubnetMode::Auto,
                other => {
                    diags.error(
                        &field("subnet_mode"),
                        m.span.clone(),
                        format!("\"{other}\" is not a subnet mode; write \"custom\" (a subnetwork with network.cidr) or \"auto\""),
                    );
                    SubnetMode::Custom
                }
            },
        };
        if let (Some(n), Some(_)) = (&network, table.get("subnet_mode")) {
            diags.error(
                &field("subnet_mode"),
                table.key_span("subnet_mode"),
                format!("does not apply to the existing network \"{}\"; remove it", n.value),
            );
        }
        let disk_type = r.string(diags, "disk_type", "\"pd-balanced\"");
        if let Some(d) = &disk_type
            && let Err(m) = check_resource_name(&d.value)
        {
            diags.error(&field("disk_type"), d.span.clone(), m);
        }
        let endpoint = r.string(diags, "endpoint", "\"https://compute.googleapis.com/\"");
        if let Some(e) = &endpoint {
            check_url(diags, &field("endpoint"), e.span.clone(), &e.value);
        }
        r.finish(diags, KEYS);

        check_names(spec, diags);
        if diags.len() > before {
            return None;
        }
        Some(GcpSettings {
            project: project.map(|p| p.value),
            region: region.map(|r| r.value).or(derived_region).unwrap_or_default(),
            zone: zone.map(|z| z.value).unwrap_or_default(),
            credentials_file: credentials_file.map(|c| PathBuf::from(c.value)),
            image_project: image_project.map(|p| p.value),
            network: network.map(|n| n.value),
            subnetwork: subnetwork.map(|s| s.value),
            subnet_mode,
            disk_type: disk_type
                .map(|d| d.value)
                .unwrap_or_else(|| DEFAULT_DISK_TYPE.to_string()),
            endpoint: endpoint
                .map(|e| e.value)
                .unwrap_or_else(|| crate::client::DEFAULT_ENDPOINT.to_string()),
        })
    }
}

/// Boot and data disks: SSD-backed, the default of the console.
pub const DEFAULT_DISK_TYPE: &str = "pd-balanced";

/// `europe-north1-a` -> `europe-north1`.
pub fn region_of(zone: &str) -> Option<&str> {
    let (region, suffix) = zone.rsplit_once('-')?;
    (region.contains('-') && !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_lowercase())).then_some(region)
}

/// GCE resource names: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn check_resource_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a Compute Engine name: use 1-63 lowercase letters, digits and hyphens, starting with a letter"
        ))
    }
}

fn check_project_id(p: &str) -> Result<(), String> {
    // project ids are 6-30 characters; "domain.com:name" ids exist for old projects
    let id = p.rsplit(':').next().unwrap_or(p);
    let ok = (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{p}\" is not a project id (6-30 lowercase letters, digits, hyphens); copy it from `gcloud projects list`"
        ))
    }
}

fn check_url(diags: &mut Diagnostics, field: &str, span: Option<Span>, v: &str) {
    match url::Url::parse(v) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => diags.error(
            field,
            span,
            format!("\"{v}\" is not an http(s) URL; write for example \"https://compute.googleapis.com/\""),
        ),
    }
}

/// Names vre derives from the cluster name must be valid GCE names.
fn check_names(spec: &ClusterSpec, diags: &mut Diagnostics) {
    // the longest names vre derives: a node's address and data disk, the
    // master's internal address reservation
    let longest = spec
        .nodes
        .iter()
        .filter(|g| g.count > 0)
        .flat_map(|g| {
            let node = spec.node_name(g.role, g.count);
            [
                vre_core::plan::public_ip_name(&node),
                vre_core::plan::volume_name(&node),
                format!("{node}-internal-ip"),
            ]
        })
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    if longest > 63 {
        diags.error(
            "name",
            None,
            format!(
                "\"{}\" makes resource names of {longest} characters, Compute Engine allows 63; use a shorter name",
                spec.name
            ),
        );
    }
    if !spec.name.is_empty() && check_resource_name(&spec.name).is_err() {
        diags.error(
            "name",
            None,
            format!("\"{}\" must start with a lowercase letter and use only lowercase letters, digits and hyphens on Google Cloud", spec.name),
        );
    }
    if let Some(src) = &spec.image.source {
        if crate::image::storage_url(src).is_none() {
            diags.error(
                "image.source",
                None,
                format!("\"{src}\" is not in Cloud Storage; Compute Engine imports images from gs://BUCKET/OBJECT.tar.gz or https://storage.googleapis.com/BUCKET/OBJECT.tar.gz"),
            );
        }
        if check_resource_name(&spec.image.name).is_err() {
            diags.error(
                "image.name",
                None,
                format!("\"{}\" cannot name an imported image: use lowercase letters, digits and hyphens, starting with a letter", spec.image.name),
            );
        }
    }
}

/// The commented `[gcp]` table `vre init gcp` writes.
pub fn template_table() -> String {
    r#"[gcp]
# Google Cloud project. Default: "project_id" of the service-account key.
# project = "my-project"
# Zone the nodes run in (`gcloud compute zones list`); the region is derived from it.
zone = "europe-north1-a"
# Service-account JSON key, relative to this directory.
# Default: the file $GOOGLE_APPLICATION_CREDENTIALS names.
# credentials_file = "service-account.json"
# Project holding image.name, looked up as an image and then as an image family.
image_project = "ubuntu-os-cloud"
# Reuse an existing VPC network (and, for custom-mode networks, its subnetwork
# in the region) instead of creating <name>-net; network.cidr is then ignored.
# network = "default"
# subnetwork = "default"
# Subnets of the network vre creates: "custom" (network.cidr) or "auto".
# subnet_mode = "custom"
# Persistent disk type of boot and data disks (pd-standard, pd-balanced, pd-ssd).
# disk_type = "pd-balanced"
# API root URL, for tests against a local server.
# endpoint = "https://compute.googleapis.com/"
"#
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::spec::document::parse_document;
    use vre_core::spec::{SourceMap, Value};

    fn read(table: &str) -> (Option<GcpSettings>, String) {
        let mut d = Diagnostics::new();
        let t = parse_document(table, &mut d);
        assert!(d.is_empty(), "{d}");
        let mut spec = ClusterSpec::new("lab", "gcp");
        if let Some(vre_core::spec::Item {
            value: Value::Table(g), ..
        }) = t.get("gcp")
        {
            spec.provider_table = g.clone();
        }
        let s = GcpSettings::read(&spec, &mut d);
        d.locate(&SourceMap::new("vre.toml", table));
        (s, d.to_string())
    }

    #[test]
    fn the_template_is_accepted() {
        let (s, d) = read(&template_table());
        let s = s.unwrap_or_else(|| panic!("{d}"));
        assert_eq!(s.zone, "europe-north1-a");
        assert_eq!(s.region, "europe-north1");
        assert_eq!(s.image_project.as_deref(), Some("ubuntu-os-cloud"));
        assert_eq!(s.subnet_mode, SubnetMode::Custom);
        assert_eq!(s.disk_type, "pd-balanced");
    }

    #[test]
    fn problems_name_the_field_and_line() {
        let (s, d) = read(
            "[gcp]\nzone = \"europe-north1-a\"\nregion = \"us-east1\"\nsubnet_mode = \"manual\"\nprojekt = \"x\"\n",
        );
        assert!(s.is_none());
        assert!(d.contains("vre.toml:3:") && d.contains("gcp.region"), "{d}");
        assert!(d.contains("gcp.subnet_mode") && d.contains("\"manual\""), "{d}");
        assert!(d.contains("gcp.projekt: unknown key; did you mean `project`?"), "{d}");
    }

    #[test]
    fn zone_is_required() {
        let (s, d) = read("[gcp]\nproject = \"my-project\"\n");
        assert!(s.is_none());
        assert!(
            d.contains("gcp.zone: is required; add `zone = \"europe-north1-a\"` to [gcp]"),
            "{d}"
        );
    }

    #[test]
    fn subnetwork_needs_network() {
        let (_, d) = read("[gcp]\nzone = \"us-east1-b\"\nsubnetwork = \"sub\"\n");
        assert!(d.contains("gcp.subnetwork") && d.contains("gcp.network"), "{d}");
    }

    #[test]
    fn derived_names_must_fit_compute_engine() {
        let mut spec = ClusterSpec::new("a-very-long-cluster-name-of-forty-chars", "gcp");
        spec.group_mut(vre_core::Role::Service).count = 100;
        let mut d = Diagnostics::new();
        check_names(&spec, &mut d);
        assert!(d.is_empty(), "{d}");
        spec.name = "Lab".into();
        check_names(&spec, &mut d);
        assert!(d.to_string().contains("lowercase"), "{d}");
    }

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of("europe-north1-a"), Some("europe-north1"));
        assert_eq!(region_of("us-central1-f"), Some("us-central1"));
        assert_eq!(region_of("nozone"), None);
        assert_eq!(region_of("us-central1-"), None);
    }
}
