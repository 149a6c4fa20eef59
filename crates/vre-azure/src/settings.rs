//! The `[azure]` table of vre.toml.

use serde::{Deserialize, Serialize};
use vre_core::spec::{ClusterSpec, Diagnostics, ImageSpec, Span, TableReader};

use crate::call::ImageRef;

/// The table name in vre.toml.
pub const TABLE: &str = "azure";

const KEYS: &[&str] = &[
    "subscription_id",
    "location",
    "resource_group",
    "image_publisher",
    "image_offer",
    "image_sku",
    "image_version",
    "image_id",
    "disk_sku",
    "authority",
    "endpoint",
];

/// Disk SKUs the managed disks API accepts (`DiskStorageAccountTypes`).
const DISK_SKUS: &[&str] = &[
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
    "PremiumV2_LRS",
];

/// What `[azure]` says, defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AzureSettings {
    /// `None`: `AZURE_SUBSCRIPTION_ID`.
    pub subscription_id: Option<String>,
    pub location: String,
    /// `None`: `<name>-rg`, created and deleted with the cluster.
    pub resource_group: Option<String>,
    /// The image from the table; `None`: `image.name` is a URN or an image id.
    pub image: Option<ImageRef>,
    pub disk_sku: String,
    pub authority: String,
    pub endpoint: String,
}

/// OS and data disks: Standard SSD works with every VM size.
pub const DEFAULT_DISK_SKU: &str = "StandardSSD_LRS";

impl AzureSettings {
    pub fn for_location(location: &str) -> Self {
        AzureSettings {
            subscription_id: None,
            location: location.to_string(),
            resource_group: None,
            image: None,
            disk_sku: DEFAULT_DISK_SKU.into(),
            authority: crate::auth::DEFAULT_AUTHORITY.into(),
            endpoint: crate::client::DEFAULT_ENDPOINT.into(),
        }
    }

    /// The resource group of `cluster`.
    pub fn resource_group_of(&self, cluster: &str) -> String {
        self.resource_group.clone().unwrap_or_else(|| format!("{cluster}-rg"))
    }

    /// The image nodes boot from: the table's, else `image.name` read as a URN or id.
    pub fn image_for(&self, image: &ImageSpec) -> Option<ImageRef> {
        self.image.clone().or_else(|| ImageRef::parse(&image.name))
    }

    /// Reads `spec.provider_table`, reporting every problem into `diags`; `None` when there was one.
    pub fn read(spec: &ClusterSpec, diags: &mut Diagnostics) -> Option<AzureSettings> {
        let before = diags.len();
        let mut r = TableReader::new(&spec.provider_table, TABLE);
        let field = |k: &str| format!("{TABLE}.{k}");

        let subscription_id = r.string(diags, "subscription_id", "\"00000000-0000-0000-0000-000000000000\"");
        if let Some(s) = &subscription_id
            && !is_guid(&s.value)
        {
            diags.error(
                &field("subscription_id"),
                s.span.clone(),
                format!(
                    "\"{}\" is not a subscription id (a GUID); copy it from `az account show --query id`",
                    s.value
                ),
            );
        }
        let location = r.required_string(diags, "location", "\"westeurope\"");
        if let Some(l) = &location
            && (l.value.is_empty() || !l.value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        {
            diags.error(
                &field("location"),
                l.span.clone(),
                format!("\"{}\" is not a location name; write one such as \"westeurope\" (`az account list-locations -o table`)", l.value),
            );
        }
        let resource_group = r.string(diags, "resource_group", "\"lab-rg\"");
        if let Some(g) = &resource_group
            && let Err(m) = check_resource_group(&g.value)
        {
            diags.error(&field("resource_group"), g.span.clone(), m);
        }
        let publisher = r.string(diags, "image_publisher", "\"Canonical\"");
        let offer = r.string(diags, "image_offer", "\"ubuntu-24_04-lts\"");
        let sku = r.string(diags, "image_sku", "\"server\"");
        let version = r.string(diags, "image_version", "\"latest\"");
        let image_id = r.string(diags, "image_id", "\"/subscriptions/.../images/kubenow\"");
        let image = read_image(diags, spec, [&publisher, &offer, &sku, &version], &image_id, r.span());
        let disk_sku = r.string(diags, "disk_sku", "\"StandardSSD_LRS\"");
        if let Some(d) = &disk_sku
            && !DISK_SKUS.contains(&d.value.as_str())
        {
            diags.error(
                &field("disk_sku"),
                d.span.clone(),
                format!(
                    "\"{}\" is not a disk SKU; write one of {}",
                    d.value,
                    DISK_SKUS.join(", ")
                ),
            );
        }
        let authority = r.string(diags, "authority", "\"https://login.microsoftonline.com/\"");
        let endpoint = r.string(diags, "endpoint", "\"https://management.azure.com/\"");
        for (key, v) in [("authority", &authority), ("endpoint", &endpoint)] {
            if let Some(v) = v {
                check_url(diags, &field(key), v.span.clone(), &v.value);
            }
        }
        r.finish(diags, KEYS);
        if let Some(src) = &spec.image.source {
            diags.error(
                "image.source",
                None,
                format!("vre cannot import \"{src}\" on Azure; upload the image as a managed image or Compute Gallery version and set azure.image_id"),
            );
        }
        if diags.len() > before {
            return None;
        }
        Some(AzureSettings {
            subscription_id: subscription_id.map(|s| s.value),
            location: location.map(|l| l.value).unwrap_or_default(),
            resource_group: resource_group.map(|g| g.value),
            image,
            disk_sku: disk_sku.map(|d| d.value).unwrap_or_else(|| DEFAULT_DISK_SKU.into()),
            authority: authority
                .map(|a| a.value)
                .unwrap_or_else(|| crate::auth::DEFAULT_AUTHORITY.into()),
            endpoint: endpoint
                .map(|e| e.value)
                .unwrap_or_else(|| crate::client::DEFAULT_ENDPOINT.into()),
        })
    }
}

type Field = Option<vre_core::spec::Spanned<String>>;

fn read_image(
    diags: &mut Diagnostics,
    spec: &ClusterSpec,
    urn: [&Field; 4],
    id: &Field,
    table: Option<Span>,
) -> Option<ImageRef> {
    let [publisher, offer, sku, version] = urn;
    let field = |k: &str| format!("{TABLE}.{k}");
    let any_urn = publisher.is_some() || offer.is_some() || sku.is_some();
    match (any_urn, id) {
        (true, Some(i)) => {
            diags.error(
                &field("image_id"),
                i.span.clone(),
                "set either azure.image_id or azure.image_publisher/offer/sku, not both",
            );
            None
        }
        (false, Some(i)) => {
            if !i.value.starts_with("/subscriptions/") {
                diags.error(
                    &field("image_id"),
                    i.span.clone(),
                    format!("\"{}\" is not an ARM resource id; write \"/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/images/<name>\"", i.value),
                );
                return None;
            }
            Some(ImageRef::Id(i.value.clone()))
        }
        (true, None) => {
            let mut missing = Vec::new();
            for (k, v) in [
                ("image_publisher", publisher),
                ("image_offer", offer),
                ("image_sku", sku),
            ] {
                if v.is_none() {
                    missing.push(k);
                }
            }
            if !missing.is_empty() {
                diags.error(
                    &field(missing[0]),
                    table.map(|s| s.start..s.start),
                    format!("is required with the other image_* keys; add {}", missing.join(", ")),
                );
                return None;
            }
            Some(ImageRef::Platform {
                publisher: publisher.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                offer: offer.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                sku: sku.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                version: version
                    .as_ref()
                    .map_or_else(|| "latest".to_string(), |v| v.value.clone()),
            })
        }
        (false, None) => {
            if version.is_some() {
                diags.error(
                    &field("image_version"),
                    version.as_ref().and_then(|v| v.span.clone()),
                    "only applies with azure.image_publisher/offer/sku",
                );
            }
            if ImageRef::parse(&spec.image.name).is_none() && !spec.image.name.is_empty() {
                diags.error(
                    "image.name",
                    None,
                    format!(
                        "\"{}\" is not an Azure image: write publisher:offer:sku:version (`az vm image list`), such as \"Canonical:ubuntu-24_04-lts:server:latest\", or an image resource id",
                        spec.image.name
                    ),
                );
            }
            None
        }
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Resource group names: 1-90 letters, digits, `-_.()`, not ending in `.`.
fn check_resource_group(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a resource group name: 1-90 letters, digits, - _ . ( ), not ending in ."
        ))
    }
}

fn check_url(diags: &mut Diagnostics, field: &str, span: Option<Span>, v: &str) {
    match url::Url::parse(v) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => diags.error(field, span, format!("\"{v}\" is not an http(s) URL")),
    }
}

/// The commented `[azure]` table `vre init azure` writes.
pub fn template_table() -> String {
    r#"[azure]
# Azure region (`az account list-locations -o table`).
location = "westeurope"
# Subscription. Default: $AZURE_SUBSCRIPTION_ID.
# subscription_id = "00000000-0000-0000-0000-000000000000"
# Resource group owned by the cluster: created by `vre apply`, deleted
# (with everything in it) by `vre destroy`. Default: "<name>-rg".
# resource_group = "mylab-rg"
# The image: image.name as publisher:offer:sku:version, or these keys,
# or a managed image / gallery image version by id.
# image_publisher = "Canonical"
# image_offer = "ubuntu-24_04-lts"
# image_sku = "server"
# image_version = "latest"
# image_id = "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/images/<name>"
# Managed disk SKU of OS and data disks.
# disk_sku = "StandardSSD_LRS"
# Microsoft Entra ID and Resource Manager endpoints (sovereign clouds, tests).
# authority = "https://login.microsoftonline.com/"
# endpoint = "https://management.azure.com/"
"#
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::spec::document::parse_document;
    use vre_core::spec::{Item, SourceMap, Value};

    fn read(table: &str, image: &str) -> (Option<AzureSettings>, String) {
        let mut d = Diagnostics::new();
        let t = parse_document(table, &mut d);
        assert!(d.is_empty(), "{d}");
        let mut spec = ClusterSpec::new("lab", "azure");
        spec.image.name = image.into();
        if let Some(Item {
            value: Value::Table(g), ..
        }) = t.get("azure")
        {
            spec.provider_table = g.clone();
        }
        let s = AzureSettings::read(&spec, &mut d);
        d.locate(&SourceMap::new("vre.toml", table));
        (s, d.to_string())
    }

    #[test]
    fn the_template_is_accepted() {
        let (s, d) = read(&template_table(), "Canonical:ubuntu-24_04-lts:server:latest");
        let s = s.unwrap_or_else(|| panic!("{d}"));
        assert_eq!(s.location, "westeurope");
        assert_eq!(s.resource_group_of("lab"), "lab-rg");
        assert_eq!(s.disk_sku, "StandardSSD_LRS");
        assert!(s.image.is_none());
    }

    #[test]
    fn images_come_from_the_table_or_the_image_name() {
        let (s, _) = read(
            "[azure]\nlocation = \"westeurope\"\nimage_publisher = \"Canonical\"\nimage_offer = \"o\"\nimage_sku = \"s\"\n",
            "x",
        );
        assert_eq!(s.unwrap().image.unwrap().describe(), "Canonical:o:s:latest");
        let (_, d) = read(
            "[azure]\nlocation = \"westeurope\"\nimage_publisher = \"Canonical\"\n",
            "x",
        );
        assert!(
            d.contains("azure.image_offer: is required with the other image_* keys"),
            "{d}"
        );
        let (_, d) = read("[azure]\nlocation = \"westeurope\"\n", "ubuntu-24.04");
        assert!(
            d.contains("image.name") && d.contains("publisher:offer:sku:version"),
            "{d}"
        );
    }

    #[test]
    fn problems_name_the_field_and_line() {
        let (s, d) = read(
            "[azure]\nlocation = \"West Europe\"\nsubscription_id = \"abc\"\ndisk_sku = \"SSD\"\nregion = \"x\"\n",
            "Canonical:ubuntu-24_04-lts:server:latest",
        );
        assert!(s.is_none());
        assert!(d.contains("vre.toml:2:") && d.contains("azure.location"), "{d}");
        assert!(d.contains("azure.subscription_id") && d.contains("GUID"), "{d}");
        assert!(d.contains("azure.disk_sku"), "{d}");
        assert!(d.contains("azure.region: unknown key"), "{d}");
    }

    #[test]
    fn location_is_required() {
        let (_, d) = read("[azure]\n", "Canonical:ubuntu-24_04-lts:server:latest");
        assert!(
            d.contains("azure.location: is required; add `location = \"westeurope\"` to [azure]"),
            "{d}"
        );
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("0b1f6471-1bf0-4dda-aec3-cb9272f09590"));
        assert!(!is_guid("0b1f6471-1bf0-4dda-aec3"));
        assert!(!is_guid("zb1f6471-1bf0-4dda-aec3-cb9272f09590"));
    }
}
