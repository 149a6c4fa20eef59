//! How lists and maps merge, per field: the `+listType`/`+listMapKey`/
//! `+mapType`/`+structType` markers of the Kubernetes API types (used by
//! server-side apply) and their `patchStrategy`/`patchMergeKey` tags (used
//! by strategic merge patch). Custom resources follow their CRD schema's
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
//! `x-kubernetes-map-type` (lists are atomic unless the schema says otherwise).
//!
//! A path is the field names from the object root, with `"[]"` for "an item
//! of the list" (`spec`, `template`, `spec`, `containers`, `[]`, `ports`).

use serde_json::Value;

use super::catalog::GroupResource;

/// Marks "an item of the list" in a path.
pub const ITEM: &str = "[]";

/// How server-side apply treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars; each value is owned separately.
    Set,
    /// Items identified by these key fields; each item is owned separately.
    Map(Vec<String>),
}

/// How strategic merge patch treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchStrategy {
    Replace,
    /// A list of scalars merged as a set.
    MergePrimitives,
    /// Items merged by this key.
    MergeByKey(String),
}

/// The schema context of one object: its resource and, for custom
/// resources, the CRD's structural schema of the version in use.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    pub resource: &'a GroupResource,
    pub crd: Option<&'a Value>,
    pub custom: bool,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

impl<'a> Schema<'a> {
    #[cfg(test)]
    pub fn builtin(resource: &'a GroupResource) -> Self {
        Schema {
            resource,
            crd: None,
            custom: false,
        }
    }

    /// Server-side apply semantics of the list at `path`.
    pub fn list_type(&self, path: &[&str]) -> ListType {
        if let Some(t) = metadata_list_type(path) {
            return t;
        }
        if self.custom {
            return crd_node(self.crd, path).map(crd_list_type).unwrap_or(ListType::Atomic);
        }
        let Some((&last, parents)) = path.split_last() else {
            return ListType::Atomic;
        };
        let parent_field = parents.iter().rev().find(|s| **s != ITEM).copied().unwrap_or("");
        let in_container = parents.len() >= 2
            && parents[parents.len() - 1] == ITEM
            && CONTAINER_LISTS.contains(&parents[parents.len() - 2]);
        let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
        match last {
            l if CONTAINER_LISTS.contains(&l) && parent_field == "spec" => keys(&["name"]),
            "ports" if in_container => keys(&["containerPort", "protocol"]),
            "ports" if self.is(("", "services")) && path == ["spec", "ports"] => keys(&["port", "protocol"]),
            "env" if in_container => keys(&["name"]),
            "volumeMounts" if in_container => keys(&["mountPath"]),
            "volumeDevices" if in_container => keys(&["devicePath"]),
            "resizePolicy" if in_container => ListType::Atomic,
            "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" if parent_field == "spec" => {
                keys(&["name"])
            }
            "hostAliases" if parent_field == "spec" => keys(&["ip"]),
            "topologySpreadConstraints" if parent_field == "spec" => keys(&["topologyKey", "whenUnsatisfiable"]),
            "conditions" if parent_field == "status" => keys(&["type"]),
            _ => ListType::Atomic,
        }
    }

    /// Whether the map or struct at `path` is owned as a whole by apply.
    pub fn map_is_atomic(&self, path: &[&str]) -> bool {
        if path.first() == Some(&"metadata") {
            return false;
        }
        if self.custom {
            return crd_node(self.crd, path)
                .and_then(|n| n.get("x-kubernetes-map-type"))
                .and_then(Value::as_str)
                == Some("atomic");
        }
        let Some(&last) = path.last() else { return false };
        match last {
            "nodeSelector" | "labelSelector" | "namespaceSelector" | "podSelector" | "secretKeyRef"
            | "configMapKeyRef" | "fieldRef" | "resourceFieldRef" | "claimRef" | "roleRef" | "scaleTargetRef"
            | "dataSource" | "dataSourceRef" => true,
            // Workload and Service selectors (LabelSelector / map, both atomic).
            "selector" => path.len() == 2 && path[0] == "spec",
            _ => false,
        }
    }

    /// Strategic-merge-patch semantics of the list at `path`.
    pub fn patch_strategy(&self, path: &[&str]) -> PatchStrategy {
        if path == ["metadata", "finalizers"] {
            return PatchStrategy::MergePrimitives;
        }
        if path == ["metadata", "ownerReferences"] {
            return PatchStrategy::MergeByKey("uid".into());
        }
        let Some((&last, parents)) = path.split_last() else {
            return PatchStrategy::Replace;
        };
        let parent_field = parents.iter().rev().find(|s| **s != ITEM).copied().unwrap_or("");
        let in_container = parents.len() >= 2
            && parents[parents.len() - 1] == ITEM
            && CONTAINER_LISTS.contains(&parents[parents.len() - 2]);
        let key = |k: &str| PatchStrategy::MergeByKey(k.to_string());
        match last {
            l if CONTAINER_LISTS.contains(&l) && parent_field == "spec" => key("name"),
            "ports" if in_container => key("containerPort"),
            "ports" if self.is(("", "services")) && path == ["spec", "ports"] => key("port"),
            "env" if in_container => key("name"),
            "volumeMounts" if in_container => key("mountPath"),
            "volumeDevices" if in_container => key("devicePath"),
            "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" if parent_field == "spec" => {
                key("name")
            }
            "hostAliases" if parent_field == "spec" => key("ip"),
            "topologySpreadConstraints" if parent_field == "spec" => key("topologyKey"),
            "conditions" | "addresses" if parent_field == "status" => key("type"),
            "secrets" if self.is(("", "serviceaccounts")) => key("name"),
            _ => PatchStrategy::Replace,
        }
    }

    fn is(&self, (group, resource): (&str, &str)) -> bool {
        self.resource.group == group && self.resource.resource == resource
    }
}

fn metadata_list_type(path: &[&str]) -> Option<ListType> {
    match path {
        ["metadata", "finalizers"] => Some(ListType::Set),
        ["metadata", "ownerReferences"] => Some(ListType::Map(vec!["uid".into()])),
        ["metadata", ..] => Some(ListType::Atomic),
        _ => None,
    }
}

fn crd_list_type(node: &Value) -> ListType {
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys: Vec<String> = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                ListType::Atomic
            } else {
                ListType::Map(keys)
            }
        }
        _ => ListType::Atomic,
    }
}

/// The schema node at `path` in a CRD's openAPIV3Schema.
fn crd_node<'a>(root: Option<&'a Value>, path: &[&str]) -> Option<&'a Value> {
    let mut node = root?;
    for seg in path {
        node = if *seg == ITEM {
            node.get("items")?
        } else if let Some(p) = node.get("properties").and_then(|p| p.get(*seg)) {
            p
        } else {
            node.get("additionalProperties").filter(|a| a.is_object())?
        };
    }
    Some(node)
}

/// The default of the key field `key` when an item omits it (apply uses
/// the defaulted value: container and service ports default to TCP).
pub fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_lists() {
        let deploy = GroupResource::new("apps", "deployments");
        let s = Schema::builtin(&deploy);
        let containers = ["spec", "template", "spec", "containers"];
        assert_eq!(s.list_type(&containers), ListType::Map(vec!["name".into()]));
        assert_eq!(
            s.list_type(&["spec", "template", "spec", "containers", ITEM, "ports"]),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            s.list_type(&["spec", "template", "spec", "containers", ITEM, "args"]),
            ListType::Atomic
        );
        assert_eq!(
            s.list_type(&["spec", "template", "spec", "tolerations"]),
            ListType::Atomic
        );
        assert_eq!(s.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert!(s.map_is_atomic(&["spec", "selector"]));
        assert!(!s.map_is_atomic(&["spec", "template", "metadata", "labels"]));
        assert_eq!(
            s.patch_strategy(&["spec", "template", "spec", "containers", ITEM, "ports"]),
            PatchStrategy::MergeByKey("containerPort".into())
        );
        let svc = GroupResource::new("", "services");
        assert_eq!(
            Schema::builtin(&svc).patch_strategy(&["spec", "ports"]),
            PatchStrategy::MergeByKey("port".into())
        );
    }

    #[test]
    fn crd_lists_follow_the_schema() {
        let gr = GroupResource::new("example.com", "widgets");
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "routes": {"type": "array", "items": {"type": "object"}},
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "rules": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
            "labels": {"type": "object", "x-kubernetes-map-type": "atomic"}
        }}}});
        let s = Schema {
            resource: &gr,
            crd: Some(&schema),
            custom: true,
        };
        assert_eq!(s.list_type(&["spec", "routes"]), ListType::Atomic);
        assert_eq!(s.list_type(&["spec", "hosts"]), ListType::Set);
        assert_eq!(s.list_type(&["spec", "rules"]), ListType::Map(vec!["name".into()]));
        assert!(s.map_is_atomic(&["spec", "labels"]));
        assert_eq!(s.list_type(&["metadata", "finalizers"]), ListType::Set);
    }
}
