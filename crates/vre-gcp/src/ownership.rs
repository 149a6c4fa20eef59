//! How a Compute Engine resource is marked as a cluster's: labels where the
//! resource has them (instances, disks, addresses), and `key=value` words in
//! the description where it does not (networks, subnetworks, firewalls).

use serde_json::{Map, Value, json};
use vre_core::{CLUSTER_LABEL, KEY_LABEL, ROLE_LABEL, ResourceKey, Role};

/// Labels of a resource of `cluster`.
pub fn labels(cluster: &str, key: Option<&ResourceKey>, role: Option<Role>) -> Value {
    let mut m = Map::new();
    m.insert(CLUSTER_LABEL.into(), json!(cluster));
    if let Some(k) = key {
        m.insert(KEY_LABEL.into(), json!(key_label(k)));
    }
    if let Some(r) = role {
        m.insert(ROLE_LABEL.into(), json!(r.as_str()));
    }
    Value::Object(m)
}

/// A key as a label value (`[a-z0-9_-]` only): `volume/storage-1` -> `volume_storage-1`.
pub fn key_label(key: &ResourceKey) -> String {
    key.as_str().replacen('/', "_", 1)
}

/// The inverse of [`key_label`].
pub fn key_from_label(value: &str) -> Option<ResourceKey> {
    ResourceKey::parse(&value.replacen('_', "/", 1))
}

/// The list filter selecting a cluster's labelled resources.
pub fn label_filter(cluster: &str) -> String {
    format!("labels.{CLUSTER_LABEL} = \"{cluster}\"")
}

/// The list filter selecting resources whose name starts with the cluster's prefix.
pub fn name_prefix_filter(cluster: &str) -> String {
    format!("name eq {cluster}-.*")
}

/// The description of an unlabelled resource: `vre-cluster=lab vre-key=network (managed by vre)`.
pub fn description(cluster: &str, key: &str) -> String {
    format!("{CLUSTER_LABEL}={cluster} {KEY_LABEL}={key} (managed by vre)")
}

/// `(cluster, key)` from a description written by [`description`].
pub fn from_description(description: &str) -> (Option<&str>, Option<&str>) {
    let word = |name: &str| {
        description
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    };
    (word(CLUSTER_LABEL), word(KEY_LABEL))
}

/// Whether `resource` (any Compute Engine JSON resource) belongs to `cluster`.
pub fn is_owned(resource: &Value, cluster: &str) -> bool {
    if let Some(c) = resource
        .pointer(&format!("/labels/{CLUSTER_LABEL}"))
        .and_then(Value::as_str)
    {
        return c == cluster;
    }
    let d = resource.get("description").and_then(Value::as_str).unwrap_or("");
    from_description(d).0 == Some(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_label_encoding() {
        for k in [
            ResourceKey::volume(Role::Storage, 2),
            ResourceKey::public_ip(Role::Edge, 1),
            ResourceKey::network(),
        ] {
            let l = key_label(&k);
            assert!(
                l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
                "{l}"
            );
            assert_eq!(key_from_label(&l), Some(k));
        }
    }

    #[test]
    fn descriptions_mark_the_cluster() {
        let d = description("lab", "network");
        assert_eq!(from_description(&d), (Some("lab"), Some("network")));
        assert!(is_owned(&json!({"description": d}), "lab"));
        assert!(!is_owned(
            &json!({"description": description("lab2", "network")}),
            "lab"
        ));
        assert!(!is_owned(&json!({"description": "someone else's"}), "lab"));
        assert!(is_owned(&json!({"labels": {"vre-cluster": "lab"}}), "lab"));
        assert!(!is_owned(&json!({"labels": {"vre-cluster": "lab-x"}}), "lab"));
    }
}
