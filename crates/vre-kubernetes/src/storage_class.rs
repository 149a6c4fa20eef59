//! StorageClass management for the volume layer: one default class only.

use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use vre_core::FIELD_MANAGER;

use crate::error::{KubeError, Result};

/// The annotation that makes a StorageClass the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its pre-GA spelling, still honoured by the API server.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn marked(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether a StorageClass object (JSON) carries the default annotation.
pub fn is_marked_default(object: &Value) -> bool {
    let ann = object.get("metadata").and_then(|m| m.get("annotations"));
    [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
        .iter()
        .any(|k| marked(ann.and_then(|a| a.get(*k)).and_then(Value::as_str)))
}

/// The annotation patches that leave `name` as the only default class:
/// `(class, merge patch)` for every class whose marking must change.
pub fn default_class_patches(classes: &[StorageClass], name: &str) -> Vec<(String, Value)> {
    let mut patches = Vec::new();
    for sc in classes {
        let ann = sc.annotations();
        let is_default = [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
            .iter()
            .any(|k| marked(ann.get(*k).map(String::as_str)));
        let sc_name = sc.name_any();
        if sc_name == name && !marked(ann.get(DEFAULT_CLASS_ANNOTATION).map(String::as_str)) {
            patches.push((
                sc_name,
                json!({"metadata": {"annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}}),
            ));
        } else if sc_name != name && is_default {
            let mut annotations = serde_json::Map::new();
            for k in [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION] {
                if ann.contains_key(k) {
                    annotations.insert(k.to_string(), Value::String("false".into()));
                }
            }
            patches.push((sc_name, json!({"metadata": {"annotations": annotations}})));
        }
    }
    patches
}

/// Makes the existing StorageClass `name` the cluster default and removes
/// the default marking from every other class.
pub async fn make_default(client: &Client, name: &str) -> Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let classes = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::api("list StorageClasses", e))?;
    if !classes.items.iter().any(|sc| sc.name_any() == name) {
        return Err(KubeError::Failed(format!(
            "StorageClass {name} does not exist; apply it before making it the default"
        )));
    }
    // unmark the others first, so there is never a moment with two defaults
    let mut patches = default_class_patches(&classes.items, name);
    patches.sort_by_key(|(n, _)| n == name);
    // attributed to vre in managedFields, as its server-side applies are
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    for (class, patch) in patches {
        api.patch(&class, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| KubeError::api(format!("mark StorageClass {class}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn sc(name: &str, annotations: &[(&str, &str)]) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            provisioner: "example.org/x".into(),
            ..StorageClass::default()
        }
    }

    #[test]
    fn only_one_default_remains() {
        let classes = [
            sc("old", &[(DEFAULT_CLASS_ANNOTATION, "true")]),
            sc("legacy", &[(BETA_DEFAULT_CLASS_ANNOTATION, "true")]),
            sc("plain", &[]),
            sc("glusterfs", &[]),
        ];
        let patches = default_class_patches(&classes, "glusterfs");
        let by_name: std::collections::BTreeMap<_, _> = patches.into_iter().collect();
        assert_eq!(by_name.len(), 3, "{by_name:?}");
        assert_eq!(
            by_name["old"]["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION],
            "false"
        );
        assert_eq!(
            by_name["legacy"]["metadata"]["annotations"][BETA_DEFAULT_CLASS_ANNOTATION],
            "false"
        );
        assert!(
            by_name["legacy"]["metadata"]["annotations"]
                .get(DEFAULT_CLASS_ANNOTATION)
                .is_none()
        );
        assert_eq!(
            by_name["glusterfs"]["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION],
            "true"
        );
        assert!(!by_name.contains_key("plain"));
    }

    #[test]
    fn already_the_only_default_needs_nothing() {
        let classes = [
            sc("a", &[(DEFAULT_CLASS_ANNOTATION, "true")]),
            sc("b", &[(DEFAULT_CLASS_ANNOTATION, "false")]),
        ];
        assert!(default_class_patches(&classes, "a").is_empty());
        assert!(is_marked_default(
            &json!({"metadata": {"annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}})
        ));
        assert!(!is_marked_default(&json!({"metadata": {"name": "x"}})));
    }
}
