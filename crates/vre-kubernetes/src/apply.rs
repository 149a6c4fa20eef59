//! Server-side apply of arbitrary objects (field manager `vre`, forced: vre
//! owns what it applies), with API discovery to map `apiVersion`/`kind` to
//! a resource path.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersion};
use kube::{Api, Client};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;
use vre_core::{FIELD_MANAGER, Manifest};

use crate::backoff::Backoff;
use crate::error::{KubeError, Result, describe, status_of};
use crate::storage_class;

/// How long to wait for the kinds of a CRD applied in the same batch to be served.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A resource the API server serves.
#[derive(Clone, Debug)]
pub struct Target {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Discovery results, cached per group-version; a group-version is read
/// again when a kind is missing from it (a CRD created since).
pub struct Catalog {
    client: Client,
    lists: Mutex<HashMap<String, Arc<APIResourceList>>>,
}

impl Catalog {
    pub fn new(client: Client) -> Self {
        Catalog {
            client,
            lists: Mutex::new(HashMap::new()),
        }
    }

    /// The resource list of `api_version`, `None` when the server does not serve it.
    pub async fn resource_list(&self, api_version: &str, refresh: bool) -> Result<Option<Arc<APIResourceList>>> {
        if !refresh && let Some(l) = self.lists.lock().await.get(api_version) {
            return Ok(Some(l.clone()));
        }
        let gv: GroupVersion = api_version.parse().map_err(|_| KubeError::BadObject {
            object: api_version.to_string(),
            message: "apiVersion is not `version` or `group/version`".into(),
        })?;
        let answer = if gv.group.is_empty() {
            self.client.list_core_api_resources(&gv.version).await
        } else {
            self.client.list_api_group_resources(api_version).await
        };
        match answer {
            Ok(list) => {
                let list = Arc::new(list);
                self.lists.lock().await.insert(api_version.to_string(), list.clone());
                Ok(Some(list))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(KubeError::api(format!("discovery of {api_version}"), e)),
        }
    }

    async fn find(&self, api_version: &str, kind: &str, refresh: bool) -> Result<Option<Target>> {
        let Some(list) = self.resource_list(api_version, refresh).await? else {
            return Ok(None);
        };
        let gv: GroupVersion = api_version.parse().map_err(|_| KubeError::BadObject {
            object: api_version.to_string(),
            message: "apiVersion is not `version` or `group/version`".into(),
        })?;
        Ok(list
            .resources
            .iter()
            .find(|r| r.kind == kind && !r.name.contains('/'))
            .map(|r| Target {
                resource: ApiResource {
                    group: gv.group.clone(),
                    version: gv.version.clone(),
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    plural: r.name.clone(),
                },
                namespaced: r.namespaced,
            }))
    }

    /// The resource serving `kind` in `api_version`. With `wait`, keeps
    /// looking (a CRD applied just before is being established) until then.
    pub async fn resolve(&self, api_version: &str, kind: &str, wait: Option<Duration>) -> Result<Target> {
        if let Some(t) = self.find(api_version, kind, false).await? {
            return Ok(t);
        }
        let deadline = Instant::now() + wait.unwrap_or(Duration::ZERO);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
        loop {
            if let Some(t) = self.find(api_version, kind, true).await? {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return Err(KubeError::BadObject {
                    object: format!("{kind} ({api_version})"),
                    message:
                        "the API server does not serve this kind; check apiVersion and kind, or install its CRD first"
                            .into(),
                });
            }
            backoff.sleep_until(deadline).await;
        }
    }

    /// The API of `target` for an object in `namespace` (ignored when cluster-scoped).
    pub fn api(&self, target: &Target, namespace: Option<&str>) -> Api<DynamicObject> {
        if target.namespaced {
            Api::namespaced_with(self.client.clone(), namespace.unwrap_or("default"), &target.resource)
        } else {
            Api::all_with(self.client.clone(), &target.resource)
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Checks that an object can be applied: apiVersion, kind, a name.
fn validate(m: &Manifest) -> Result<()> {
    let bad = |message: &str| KubeError::BadObject {
        object: m.describe(),
        message: message.to_string(),
    };
    if !m.0.is_object() {
        return Err(bad("is not a JSON object"));
    }
    if m.api_version().is_empty() {
        return Err(bad("has no apiVersion"));
    }
    if m.kind().is_empty() {
        return Err(bad("has no kind"));
    }
    if m.name().is_empty() {
        return Err(bad("has no metadata.name"));
    }
    Ok(())
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// `(group, kind)` of the resources defined by the CRDs in `objects`.
fn crd_kinds(objects: &[Manifest]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
        .filter_map(|m| {
            let spec = m.0.get("spec")?;
            let group = spec.get("group")?.as_str()?;
            let kind = spec.get("names")?.get("kind")?.as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

/// Namespaces first, then CRDs, then everything else in the given order.
pub fn apply_order(objects: &[Manifest]) -> Vec<&Manifest> {
    let rank = |m: &Manifest| match (m.api_version(), m.kind()) {
        ("v1", "Namespace") => 0,
        (_, "CustomResourceDefinition") => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Manifest> = objects.iter().collect();
    ordered.sort_by_key(|m| rank(m));
    ordered
}

/// The label vre puts on every object it applies (unless the object sets
/// it): it marks what vre manages, and it makes vre own at least one field
/// of every object, which keeps re-applies of field-less objects (a bare
/// Namespace) from rewriting the object's managed fields.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The object as vre sends it: the managed-by label added, and a Secret's
/// `stringData` folded into `data` (the API server stores only `data`, so
/// applying `stringData` would count as a change on every apply).
pub fn prepared(m: &Manifest) -> Value {
    let mut v = m.0.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels
                .entry(MANAGED_BY_LABEL)
                .or_insert_with(|| Value::String(FIELD_MANAGER.to_string()));
        }
    }
    if m.api_version() == "v1"
        && m.kind() == "Secret"
        && let Some(obj) = v.as_object_mut()
        && let Some(Value::Object(string_data)) = obj.remove("stringData")
    {
        let data = obj.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (k, val) in string_data {
                let text = match val {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                data.insert(k, Value::String(STANDARD.encode(text)));
            }
        }
    }
    v
}

/// Server-side applies `objects` (field manager `vre`, forced). Re-applying
/// the same objects changes nothing (the server sees no difference).
pub async fn apply(catalog: &Catalog, objects: &[Manifest]) -> Result<()> {
    for m in objects {
        validate(m)?;
    }
    let defined = crd_kinds(objects);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for m in apply_order(objects) {
        let wait = defined
            .contains(&(group_of(m.api_version()).to_string(), m.kind().to_string()))
            .then_some(CRD_ESTABLISH_TIMEOUT);
        let target = catalog.resolve(m.api_version(), m.kind(), wait).await?;
        if !target.namespaced && m.namespace().is_some() {
            return Err(KubeError::BadObject {
                object: m.describe(),
                message: format!("{} is cluster-scoped; remove metadata.namespace", m.kind()),
            });
        }
        let api = catalog.api(&target, m.namespace());
        api.patch(m.name(), &params, &Patch::Apply(&prepared(m)))
            .await
            .map_err(|e| KubeError::api(format!("apply {}", m.describe()), e))?;
        if m.kind() == "StorageClass" && storage_class::is_marked_default(&m.0) {
            storage_class::make_default(catalog.client(), m.name()).await?;
        }
    }
    Ok(())
}

/// Deletes `objects` in the given order (background propagation). Objects
/// that are absent, or whose kind the server no longer serves, are fine.
pub async fn delete(catalog: &Catalog, objects: &[Manifest]) -> Result<()> {
    for m in objects {
        validate(m)?;
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for m in objects {
        let target = match catalog.resolve(m.api_version(), m.kind(), None).await {
            Ok(t) => t,
            Err(KubeError::BadObject { .. }) => continue,
            Err(e) => return Err(e),
        };
        match catalog.api(&target, m.namespace()).delete(m.name(), &params).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                return Err(KubeError::Failed(format!("delete {}: {}", m.describe(), describe(&e))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn namespaces_then_crds_then_the_rest_in_order() {
        let objs: Vec<Manifest> = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "x"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "bs.example.org"},
                   "spec": {"group": "example.org", "names": {"kind": "B", "plural": "bs"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
            json!({"apiVersion": "example.org/v1", "kind": "B", "metadata": {"name": "b"}}),
        ]
        .into_iter()
        .map(Manifest::new)
        .collect();
        let order: Vec<&str> = apply_order(&objs).iter().map(|m| m.name()).collect();
        assert_eq!(order, ["x", "bs.example.org", "a", "c", "b"]);
        let kinds = crd_kinds(&objs);
        assert!(kinds.contains(&("example.org".to_string(), "B".to_string())));
        assert_eq!(group_of("example.org/v1"), "example.org");
        assert_eq!(group_of("v1"), "");
    }

    #[test]
    fn prepared_objects_carry_the_label_and_no_string_data() {
        let s = Manifest::new(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "x", "labels": {"a": "b"}},
            "data": {"old": "eA=="}, "stringData": {"key": "secret value", "old": "y"}}));
        let p = prepared(&s);
        assert!(p.get("stringData").is_none());
        assert_eq!(p["data"]["key"], STANDARD.encode("secret value"));
        assert_eq!(p["data"]["old"], STANDARD.encode("y"), "stringData wins, as in the API");
        assert_eq!(p["metadata"]["labels"][MANAGED_BY_LABEL], "vre");
        assert_eq!(p["metadata"]["labels"]["a"], "b");
        let ns = Manifest::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "n", "labels": {MANAGED_BY_LABEL: "helm"}}}));
        assert_eq!(
            prepared(&ns)["metadata"]["labels"][MANAGED_BY_LABEL],
            "helm",
            "an explicit value is kept"
        );
        let cm = Manifest::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "stringData": {"k": "v"}}),
        );
        assert_eq!(prepared(&cm)["stringData"]["k"], "v", "only Secrets are rewritten");
    }

    #[test]
    fn objects_without_identity_are_rejected() {
        for (v, why) in [
            (json!({"kind": "ConfigMap", "metadata": {"name": "a"}}), "apiVersion"),
            (json!({"apiVersion": "v1", "metadata": {"name": "a"}}), "kind"),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
                "metadata.name",
            ),
            (json!([1, 2]), "JSON object"),
        ] {
            let e = validate(&Manifest::new(v)).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
