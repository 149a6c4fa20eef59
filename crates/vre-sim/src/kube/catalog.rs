//! The resource kinds a simulated API server serves: the built-in kinds
//! (as Kubernetes 1.33 lists them in discovery) plus every kind an
//! established CustomResourceDefinition adds.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// The verbs of an ordinary collection resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The `scale` subresource of a kind (JSON paths in dotted form).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleSubresource {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// A `kubectl get` column a CRD declares (`additionalPrinterColumns`).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served version of a kind.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionInfo {
    pub name: String,
    /// The version objects are stored in (built-ins: their only version).
    pub storage: bool,
    pub status: bool,
    pub scale: Option<ScaleSubresource>,
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD's `openAPIV3Schema`, used for list semantics in apply.
    pub schema: Option<Value>,
}

/// A resource kind the server serves.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    pub versions: Vec<VersionInfo>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Pods: `pods/eviction` (policy/v1 Eviction).
    pub eviction: bool,
    /// Virtual kinds answered on create only (SelfSubjectAccessReview).
    pub create_only: bool,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
}

impl ResourceType {
    /// The version objects are stored in.
    pub fn storage_version(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.storage)
            .or(self.versions.first())
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// `apps/v1` or `v1` for the given version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }

    /// The group/resource key objects are stored under.
    pub fn key(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }
}

/// Identifies a collection independent of its version (`apps`, `deployments`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::status::qualified(&self.group, &self.resource))
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    scale: bool,
    all: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status: false,
        scale: false,
        all: false,
    }
}

const fn with_status(mut x: Builtin) -> Builtin {
    x.status = true;
    x
}

const fn with_scale(mut x: Builtin) -> Builtin {
    x.status = true;
    x.scale = true;
    x
}

const fn in_all(mut x: Builtin) -> Builtin {
    x.all = true;
    x
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"]),
    b("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"]),
    b("", "v1", "events", "event", "Event", true, &["ev"]),
    b("", "v1", "limitranges", "limitrange", "LimitRange", true, &["limits"]),
    with_status(b("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"])),
    with_status(b("", "v1", "nodes", "node", "Node", false, &["no"])),
    with_status(b(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    )),
    with_status(b(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
    )),
    in_all(with_status(b("", "v1", "pods", "pod", "Pod", true, &["po"]))),
    b("", "v1", "podtemplates", "podtemplate", "PodTemplate", true, &[]),
    in_all(with_scale(b(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        &["rc"],
    ))),
    with_status(b(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        &["quota"],
    )),
    b("", "v1", "secrets", "secret", "Secret", true, &[]),
    b(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
    ),
    in_all(with_status(b(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
    ))),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        &[],
    ),
    with_status(b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )),
    b(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        &[],
    ),
    in_all(with_status(b(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
    ))),
    in_all(with_scale(b(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
    ))),
    in_all(with_scale(b(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
    ))),
    in_all(with_scale(b(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
    ))),
    in_all(with_status(b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    ))),
    in_all(with_status(b(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
    ))),
    in_all(with_status(b("batch", "v1", "jobs", "job", "Job", true, &[]))),
    b("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[]),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        &[],
    ),
    with_status(b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
    )),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
    ),
    with_status(b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    )),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
    ),
    b("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[]),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        &["pc"],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        &[],
    ),
    b("storage.k8s.io", "v1", "csinodes", "csinode", "CSINode", false, &[]),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
    ),
    with_status(b(
        "storage.k8s.io",
        "v1",
        "volumeattachments",
        "volumeattachment",
        "VolumeAttachment",
        false,
        &[],
    )),
];

/// Create-only review kinds answered from the authorizer.
const REVIEWS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
    ),
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
    ),
];

fn builtin_types() -> Vec<ResourceType> {
    let mut out: Vec<ResourceType> = BUILTINS
        .iter()
        .map(|x| {
            let mut verbs: Vec<String> = STANDARD_VERBS.iter().map(|v| v.to_string()).collect();
            if x.plural == "namespaces" {
                verbs.retain(|v| v != "deletecollection");
            }
            ResourceType {
                group: x.group.to_string(),
                versions: vec![VersionInfo {
                    name: x.version.to_string(),
                    storage: true,
                    status: x.status,
                    scale: x.scale.then(|| ScaleSubresource {
                        spec_replicas_path: ".spec.replicas".into(),
                        status_replicas_path: ".status.replicas".into(),
                        label_selector_path: Some(".status.selector".into()),
                    }),
                    printer_columns: Vec::new(),
                    schema: None,
                }],
                plural: x.plural.to_string(),
                singular: x.singular.to_string(),
                kind: x.kind.to_string(),
                list_kind: format!("{}List", x.kind),
                namespaced: x.namespaced,
                verbs,
                short_names: x.short_names.iter().map(|s| s.to_string()).collect(),
                categories: if x.all { vec!["all".to_string()] } else { Vec::new() },
                eviction: x.plural == "pods",
                create_only: false,
                custom: false,
            }
        })
        .collect();
    // HorizontalPodAutoscalers are also served as autoscaling/v1 (the
    // group's older version).
    if let Some(hpa) = out
        .iter_mut()
        .find(|t| t.group == "autoscaling" && t.plural == "horizontalpodautoscalers")
    {
        hpa.versions.push(VersionInfo {
            name: "v1".into(),
            storage: false,
            status: true,
            scale: None,
            printer_columns: Vec::new(),
            schema: None,
        });
    }
    for (group, plural, singular, kind, namespaced) in REVIEWS {
        out.push(ResourceType {
            group: group.to_string(),
            versions: vec![VersionInfo {
                name: "v1".into(),
                storage: true,
                status: false,
                scale: None,
                printer_columns: Vec::new(),
                schema: None,
            }],
            plural: plural.to_string(),
            singular: singular.to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            namespaced: *namespaced,
            verbs: vec!["create".to_string()],
            short_names: Vec::new(),
            categories: Vec::new(),
            eviction: false,
            create_only: true,
            custom: false,
        });
    }
    out
}

/// Every kind a cluster serves, looked up by URL or by kind.
#[derive(Clone, Debug)]
pub struct Catalog {
    types: Vec<Arc<ResourceType>>,
    by_resource: HashMap<(String, String), usize>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// The built-in kinds only.
    pub fn new() -> Self {
        let mut c = Catalog {
            types: Vec::new(),
            by_resource: HashMap::new(),
        };
        for t in builtin_types() {
            c.insert(t);
        }
        c
    }

    fn insert(&mut self, t: ResourceType) {
        let key = (t.group.clone(), t.plural.clone());
        if let Some(&i) = self.by_resource.get(&key) {
            self.types[i] = Arc::new(t);
        } else {
            self.types.push(Arc::new(t));
            self.by_resource.insert(key, self.types.len() - 1);
        }
    }

    fn rebuild(&mut self, types: Vec<Arc<ResourceType>>) {
        self.types = types;
        self.by_resource.clear();
        for (i, t) in self.types.iter().enumerate() {
            self.by_resource.insert((t.group.clone(), t.plural.clone()), i);
        }
    }

    /// The kind served at `/apis/{group}/{version}/{plural}`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let t = self.by_group_resource(group, plural)?;
        t.version(version).is_some().then_some(t)
    }

    pub fn by_group_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.by_resource
            .get(&(group.to_string(), plural.to_string()))
            .map(|&i| self.types[i].clone())
    }

    pub fn types(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.iter()
    }

    /// Replaces the custom kinds by the ones the given established CRDs define.
    pub fn set_custom(&mut self, custom: Vec<ResourceType>) {
        let mut types: Vec<Arc<ResourceType>> = self.types.iter().filter(|t| !t.custom).cloned().collect();
        for t in custom {
            // A CRD may not shadow a built-in kind.
            if types.iter().any(|x| x.group == t.group && x.plural == t.plural) {
                continue;
            }
            types.push(Arc::new(t));
        }
        self.rebuild(types);
    }

    /// The group versions served, each group's preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            let idx = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(i) => i,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            let entry = &mut groups[idx];
            for v in &t.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in groups.iter_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    /// Whether `/apis/{group}/{version}` exists.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.groups()
            .iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
    }

    /// `/api` (APIVersions).
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    /// `/apis` (APIGroupList), without the legacy core group.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(g, vs)| group_doc(&g, &vs))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/{group}` (APIGroup).
    pub fn api_group(&self, group: &str) -> Option<Value> {
        self.groups()
            .into_iter()
            .find(|(g, _)| g == group && !g.is_empty())
            .map(|(g, vs)| {
                let mut doc = group_doc(&g, &vs);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                doc
            })
    }

    /// `/api/v1` or `/apis/{group}/{version}` (APIResourceList).
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves_group_version(group, version) {
            return None;
        }
        let mut resources = Vec::new();
        let mut types: Vec<&Arc<ResourceType>> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version(version).is_some())
            .collect();
        types.sort_by(|a, b| a.plural.cmp(&b.plural));
        for (t, v) in types.into_iter().filter_map(|t| Some((t, t.version(version)?))) {
            let mut r = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": t.verbs,
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if v.status {
                resources.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if v.scale.is_some() {
                resources.push(json!({
                    "name": format!("{}/scale", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if t.eviction {
                resources.push(json!({
                    "name": format!("{}/eviction", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "group": "policy",
                    "version": "v1",
                    "kind": "Eviction",
                    "verbs": ["create"],
                }));
            }
            if t.plural == "namespaces" && t.group.is_empty() {
                resources.push(json!({
                    "name": "namespaces/finalize",
                    "singularName": "",
                    "namespaced": false,
                    "kind": "Namespace",
                    "verbs": ["update"],
                }));
            }
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
            "resources": resources,
        }))
    }
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let preferred = versions.first().map(String::as_str).unwrap_or("v1");
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    })
}

/// Kubernetes version priority: GA > beta > alpha, then by number
/// (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > anything else).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    for (prefix, rank) in [("beta", 2u8), ("alpha", 1u8)] {
        if let Some(n) = tail.strip_prefix(prefix)
            && let Ok(minor) = n.parse::<u32>()
        {
            return (rank, major, minor);
        }
    }
    (0, 0, 0)
}

/// The kinds an established CRD object defines, or why it defines none.
pub fn custom_type_from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names
        .get("listKind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let sub = v.get("subresources");
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScaleSubresource {
            spec_replicas_path: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas_path: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector_path: s.get("labelSelectorPath").and_then(Value::as_str).map(str::to_string),
        });
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c.get("type").and_then(Value::as_str).unwrap_or("string").to_string(),
                            format: c.get("format").and_then(Value::as_str).unwrap_or("").to_string(),
                            description: c.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.push(VersionInfo {
            name: name.to_string(),
            storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
            status: sub.and_then(|s| s.get("status")).is_some(),
            scale,
            printer_columns,
            schema: v.get("schema").and_then(|s| s.get("openAPIV3Schema")).cloned(),
        });
    }
    if versions.is_empty() {
        return None;
    }
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
    Some(ResourceType {
        group,
        versions,
        plural,
        singular,
        kind,
        list_kind,
        namespaced,
        verbs: STANDARD_VERBS.iter().map(|v| v.to_string()).collect(),
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        eviction: false,
        create_only: false,
        custom: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_discovery_lists_pods_with_subresources() {
        let c = Catalog::new();
        let list = c.resource_list("", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/eviction",
            "nodes",
            "namespaces",
            "namespaces/finalize",
            "services",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let eviction = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        let ns = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "namespaces")
            .unwrap();
        assert_eq!(ns["namespaced"], false);
        assert!(!ns["verbs"].as_array().unwrap().contains(&json!("deletecollection")));
    }

    #[test]
    fn groups_list_preferred_versions() {
        let c = Catalog::new();
        let groups = c.api_group_list();
        let apps = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(
            c.api_group("autoscaling").unwrap()["versions"]
                .as_array()
                .unwrap()
                .len()
                == 2
        );
        assert!(c.api_group("").is_none());
    }

    #[test]
    fn crd_adds_its_kind_and_versions() {
        let crd = json!({
            "spec": {
                "group": "traefik.io",
                "names": {"plural": "ingressroutes", "singular": "ingressroute", "kind": "IngressRoute", "listKind": "IngressRouteList"},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": false, "subresources": {"status": {}}},
                ]
            }
        });
        let t = custom_type_from_crd(&crd).unwrap();
        assert_eq!(t.versions[0].name, "v1");
        assert_eq!(t.storage_version(), "v1alpha1");
        let mut c = Catalog::new();
        c.set_custom(vec![t]);
        assert!(c.resolve("traefik.io", "v1alpha1", "ingressroutes").is_some());
        assert!(c.resolve("traefik.io", "v2", "ingressroutes").is_none());
        assert_eq!(c.api_group("traefik.io").unwrap()["preferredVersion"]["version"], "v1");
    }

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "foo", "v2"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }
}
