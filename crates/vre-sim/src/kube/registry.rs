//! The generic REST registry of a cluster: get, list, create, update,
//! patch, server-side apply, delete (with finalizers, propagation and
//! graceful pod deletion), deletecollection, the `status` and `scale`
//! subresources and pod eviction, with the semantics and the error bodies
//! of the real API server.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::admission;
use super::apply::{self, Scope};
use super::catalog::{GroupResource, ResourceType};
use super::clock;
use super::cluster::{
    CORE, Cluster, State, allocate_node_port, allocate_service_ip, gr, new_uid, random_suffix, refresh_catalog,
};
use super::patch;
use super::schema::Schema;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, Cause};
use super::store::{ObjectKey, Since};

/// Kinds whose DELETE answers with the deleted object instead of a Status.
const RETURNS_DELETED_OBJECT: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "services"),
    ("", "serviceaccounts"),
    ("storage.k8s.io", "storageclasses"),
];

/// Who writes, and how.
#[derive(Clone, Debug)]
pub struct WriteContext {
    /// The field manager recorded in managedFields.
    pub manager: String,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: undeclared fields are an error instead of
    /// being dropped.
    pub strict: bool,
}

impl WriteContext {
    pub fn new(manager: &str) -> Self {
        WriteContext {
            manager: manager.to_string(),
            dry_run: false,
            strict: false,
        }
    }
}

/// The 400 of `fieldValidation=Strict` for undeclared fields.
fn strict_error(unknown: &[String]) -> ApiError {
    let fields: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
        .collect();
    ApiError::bad_request(format!("strict decoding error: {}", fields.join(", ")))
}

/// The object a request addresses: its kind and version, namespace
/// (empty for cluster-scoped kinds) and name.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub rt: &'a ResourceType,
    pub version: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Query options of a list (or of the initial state of a watch).
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// A page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The patch formats of `PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// `DeleteOptions` that change what a delete does.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (and query parameters, applied by the caller).
    pub fn from_body(body: &Value) -> Self {
        let mut o = DeleteOptions {
            propagation: body
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
            grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run: body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All")),
        };
        if o.propagation.is_none()
            && let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool)
        {
            o.propagation = Some(if orphan { "Orphan" } else { "Background" }.to_string());
        }
        o
    }
}

/// The result of a delete.
pub enum Deleted {
    /// Gone now; the body is the object or a Success Status per kind.
    Now(Value),
    /// Waiting for finalizers or graceful termination: the updated object.
    Pending(Arc<Value>),
}

/// The result of a write.
pub struct Written {
    pub object: Arc<Value>,
    pub created: bool,
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The schema context of a kind in a version.
pub fn schema_of<'a>(rt: &'a ResourceType, gr: &'a GroupResource) -> Schema<'a> {
    Schema {
        resource: gr,
        crd: rt.version(rt.storage_version()).and_then(|v| v.schema.as_ref()),
        custom: rt.custom,
    }
}

/// The object as a client of `version` sees it (CRDs without conversion
/// webhooks only change `apiVersion`).
pub fn present(obj: &Arc<Value>, rt: &ResourceType, version: &str) -> Arc<Value> {
    let want = rt.api_version(version);
    if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return obj.clone();
    }
    let mut v = (**obj).clone();
    v["apiVersion"] = json!(want);
    Arc::new(v)
}

/// A JSON object body, or 400.
fn object_body(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!(
            "the body of the request must be a JSON or YAML object, not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Null => "null",
                _ => "a scalar",
            }
        ))),
    }
}

/// Checks `apiVersion`/`kind` in a body against the URL (missing ones are
/// defaulted from the URL, as the decoder does).
fn check_type(body: &mut Map<String, Value>, rt: &ResourceType, version: &str, require: bool) -> ApiResult<()> {
    let want_av = rt.api_version(version);
    match body.get("apiVersion").and_then(Value::as_str) {
        Some(av) if av == want_av => {}
        Some(av) => {
            // Another served version of the same group is fine (stored as-is).
            let same_group = rt.versions.iter().any(|v| rt.api_version(&v.name) == av);
            if !same_group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
        }
        None if require => {
            return Err(ApiError::bad_request(
                "apiVersion must be set in the applied configuration",
            ));
        }
        None => {}
    }
    match body.get("kind").and_then(Value::as_str) {
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) for {}",
                rt.kind,
                rt.key()
            )));
        }
        None if require => return Err(ApiError::bad_request("kind must be set in the applied configuration")),
        None => {}
    }
    body.insert("apiVersion".into(), json!(rt.api_version(rt.storage_version())));
    body.insert("kind".into(), json!(rt.kind));
    Ok(())
}

fn metadata_mut(body: &mut Map<String, Value>) -> ApiResult<&mut Map<String, Value>> {
    let meta = body.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Checks `metadata.namespace` against the URL and fills it in.
fn check_namespace(meta: &mut Map<String, Value>, rt: &ResourceType, ns: &str) -> ApiResult<()> {
    if rt.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn check_name_matches(meta: &Map<String, Value>, name: &str) -> ApiResult<()> {
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// Whether objects of this kind carry `metadata.generation`.
fn has_generation(rt: &ResourceType, obj: &Value) -> bool {
    rt.custom || obj.get("spec").is_some()
}

/// The part of an object whose change bumps `metadata.generation`.
fn generation_payload(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

impl Cluster {
    fn namespace_admits(&self, st: &State, rt: &ResourceType, ns: &str) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        match st.store.get(&gr(CORE, "namespaces"), "", ns) {
            None => Err(ApiError::not_found(CORE, "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                let mut e = ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural, ""
                ));
                e.message = format!("unable to create new content in namespace {ns} because it is being terminated");
                e.causes.push(Cause::new(
                    "NamespaceTerminating",
                    "metadata.namespace",
                    format!("namespace {ns} is being terminated"),
                ));
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// GET of one object.
    pub fn get(&self, rt: &ResourceType, version: &str, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        let st = self.lock();
        let obj = st
            .store
            .get(&rt.key(), ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        drop(st);
        Ok(present(&obj, rt, version))
    }

    /// LIST with selectors and pagination.
    pub fn list(&self, rt: &ResourceType, version: &str, ns: Option<&str>, opts: &ListOptions) -> ApiResult<ListPage> {
        let key = rt.key();
        let st = self.lock();
        let rv = st.store.resource_version();
        let start = match &opts.continue_token {
            Some(tok) => {
                let (token_rv, after) = decode_continue(tok)?;
                if let Since::Expired { .. } = st.store.since(token_rv) {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                Some(after)
            }
            None => None,
        };
        let iter = match &start {
            Some(after) => st.store.list_after(&key, ns, after),
            None => st.store.list(&key, ns),
        };
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<ObjectKey> = None;
        let mut more = false;
        let mut remaining = 0u64;
        for (k, obj) in iter {
            if !opts.labels.matches_object(obj) || !opts.fields.matches(obj) {
                continue;
            }
            if let Some(l) = limit
                && items.len() >= l
            {
                more = true;
                remaining += 1;
                continue;
            }
            last_key = Some(k.clone());
            items.push(obj.clone());
        }
        drop(st);
        let items = items.iter().map(|o| present(o, rt, version)).collect();
        let continue_token = (more).then(|| last_key.map(|k| encode_continue(rv, &k))).flatten();
        Ok(ListPage {
            items,
            resource_version: rv,
            continue_token,
            remaining: (more && opts.labels.is_everything() && opts.fields.is_empty()).then_some(remaining),
        })
    }

    /// POST: creates an object (201).
    pub fn create(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        body: Value,
        ctx: &WriteContext,
    ) -> ApiResult<Arc<Value>> {
        if rt.create_only {
            return Err(ApiError::method_not_allowed("POST"));
        }
        let mut body = object_body(body)?;
        check_type(&mut body, rt, version, false)?;
        let meta = metadata_mut(&mut body)?;
        check_namespace(meta, rt, ns)?;
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let mut st = self.lock();
        self.namespace_admits(&st, rt, ns)?;
        let name = if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    // Retry like the real server does on a name collision.
                    let mut candidate = format!("{prefix}{}", random_suffix());
                    for _ in 0..8 {
                        if st.store.get(&rt.key(), ns, &candidate).is_none() {
                            break;
                        }
                        candidate = format!("{prefix}{}", random_suffix());
                    }
                    candidate
                }
                _ => String::new(),
            }
        } else {
            name
        };
        meta.insert("name".into(), json!(name));

        let written = self.write(
            &mut st,
            rt,
            version,
            None,
            Value::Object(body),
            Scope::Main {
                status_subresource: rt.has_status(rt.storage_version()),
            },
            ctx,
            false,
        )?;
        drop(st);
        Ok(present(&written.object, rt, version))
    }

    /// PUT of the main resource or of `/status`.
    pub fn replace(&self, t: Target<'_>, body: Value, status: bool, ctx: &WriteContext) -> ApiResult<Arc<Value>> {
        let Target {
            rt,
            version,
            namespace: ns,
            name,
        } = t;
        let mut body = object_body(body)?;
        check_type(&mut body, rt, version, false)?;
        let meta = metadata_mut(&mut body)?;
        check_namespace(meta, rt, ns)?;
        check_name_matches(meta, name)?;
        meta.insert("name".into(), json!(name));
        let requested_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut st = self.lock();
        let Some(old) = st.store.get(&rt.key(), ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if !requested_rv.is_empty() && requested_rv != rv_of(&old) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let scope = if status {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.has_status(rt.storage_version()),
            }
        };
        let written = self.write(&mut st, rt, version, Some(&old), Value::Object(body), scope, ctx, false)?;
        drop(st);
        Ok(present(&written.object, rt, version))
    }

    /// PATCH (merge, JSON, strategic, or server-side apply).
    pub fn patch(
        &self,
        t: Target<'_>,
        kind: PatchKind,
        body: Value,
        status: bool,
        force: bool,
        ctx: &WriteContext,
    ) -> ApiResult<Written> {
        let Target {
            rt,
            version,
            namespace: ns,
            name,
        } = t;
        let key = rt.key();
        let scope = if status {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.has_status(rt.storage_version()),
            }
        };
        if kind == PatchKind::Strategic && rt.custom {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
        let mut st = self.lock();
        let old = st.store.get(&key, ns, name).cloned();
        if kind != PatchKind::Apply {
            let Some(old) = old else {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            };
            let mut doc = (*old).clone();
            match kind {
                PatchKind::Merge => patch::merge_patch(&mut doc, &body),
                PatchKind::Json => patch::json_patch(&mut doc, &body)?,
                PatchKind::Strategic => patch::strategic_merge_patch(&mut doc, &body, schema_of(rt, &key))?,
                PatchKind::Apply => {
                    return Err(ApiError::internal("an apply patch reached the client-side patch path"));
                }
            }
            let Value::Object(mut m) = doc else {
                return Err(ApiError::bad_request(
                    "the patch turned the object into something that is not an object",
                ));
            };
            let meta = metadata_mut(&mut m)?;
            check_name_matches(meta, name)?;
            meta.insert("name".into(), json!(name));
            if let Some(r) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str)
                && r != rv_of(&old)
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let written = self.write(&mut st, rt, version, Some(&old), Value::Object(m), scope, ctx, false)?;
            drop(st);
            return Ok(Written {
                object: present(&written.object, rt, version),
                created: false,
            });
        }

        // Server-side apply.
        let mut config = object_body(body)?;
        check_type(&mut config, rt, version, true)?;
        let meta = metadata_mut(&mut config)?;
        check_namespace(meta, rt, ns)?;
        check_name_matches(meta, name)?;
        meta.insert("name".into(), json!(name));
        if let Some(r) = meta.get("resourceVersion").and_then(Value::as_str)
            && old.as_ref().is_none_or(|o| rv_of(o) != r)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if let Some(mf) = meta.get("managedFields")
            && !mf.is_null()
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut config = Value::Object(config);
        // Undeclared fields of a custom resource never become anyone's.
        if let Some(schema) = rt
            .version(version)
            .and_then(|v| v.schema.as_ref())
            .filter(|_| rt.custom)
        {
            let checked = super::crd_schema::check(&mut config, schema, false);
            if ctx.strict && !checked.unknown.is_empty() {
                return Err(strict_error(&checked.unknown));
            }
        }
        let api_version = rt.api_version(version);
        let schema = schema_of(rt, &key);
        let created = old.is_none();
        let live = match &old {
            Some(o) => (**o).clone(),
            None => {
                if status {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                self.namespace_admits(&st, rt, ns)?;
                let mut skeleton = json!({"apiVersion": rt.api_version(rt.storage_version()), "kind": rt.kind, "metadata": {"name": name}});
                if rt.namespaced {
                    skeleton["metadata"]["namespace"] = json!(ns);
                }
                skeleton
            }
        };
        let applied = apply::apply(&live, &config, &ctx.manager, &api_version, scope, schema, force)?;
        if !applied.changed
            && let Some(o) = &old
        {
            return Ok(Written {
                object: present(o, rt, version),
                created: false,
            });
        }
        let written = self.write(&mut st, rt, version, old.as_ref(), applied.object, scope, ctx, true)?;
        drop(st);
        Ok(Written {
            object: present(&written.object, rt, version),
            created,
        })
    }

    /// The write pipeline shared by create, update, patch and apply:
    /// identity, defaults, admission, validation, generation, managedFields,
    /// finalizer completion, no-op detection, store.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        &self,
        st: &mut State,
        rt: &ResourceType,
        version: &str,
        old: Option<&Arc<Value>>,
        new: Value,
        scope: Scope,
        ctx: &WriteContext,
        applied: bool,
    ) -> ApiResult<Written> {
        let key = rt.key();
        let Value::Object(mut m) = new else {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        };
        m.insert("apiVersion".into(), json!(rt.api_version(rt.storage_version())));
        m.insert("kind".into(), json!(rt.kind));
        let mut new = Value::Object(m);
        let name = name_of(&new).to_string();
        let has_status = rt.has_status(rt.storage_version());
        match old {
            Some(old) => {
                if scope == Scope::Status {
                    let mut merged = (**old).clone();
                    let status = new.get("status").cloned().unwrap_or(Value::Null);
                    merged["status"] = status;
                    // The status writer's managedFields request (if any) is honoured.
                    if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                        merged["metadata"]["managedFields"] = mf;
                    }
                    new = merged;
                } else if has_status && !applied {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                let meta = new["metadata"]
                    .as_object_mut()
                    .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "namespace",
                ] {
                    match old.pointer(&format!("/metadata/{f}")) {
                        Some(v) => meta.insert(f.into(), v.clone()),
                        None => meta.remove(f),
                    };
                }
                meta.insert("resourceVersion".into(), json!(rv_of(old)));
                if old.pointer("/metadata/deletionTimestamp").is_some() {
                    let before: HashSet<String> = finalizers_of(old).into_iter().collect();
                    if finalizers_of(&new).iter().any(|f| !before.contains(f)) {
                        return Err(ApiError::invalid(
                            &rt.group,
                            &rt.kind,
                            &name,
                            vec![Cause::new(
                                "FieldValueForbidden",
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if the object is being deleted",
                            )],
                        ));
                    }
                }
            }
            None => {
                if has_status && rt.plural != "nodes" && !(rt.group.is_empty() && rt.plural == "namespaces") && !applied
                {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                } else if has_status && applied && rt.plural != "nodes" {
                    // Apply keeps only what it owns; status of a new object starts empty.
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
                let meta = new["metadata"]
                    .as_object_mut()
                    .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
                meta.insert("uid".into(), json!(new_uid()));
                meta.insert("creationTimestamp".into(), json!(clock::now_rfc3339()));
                for f in [
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "resourceVersion",
                    "selfLink",
                ] {
                    meta.remove(f);
                }
            }
        }

        admission::apply_defaults(&key, &mut new);
        self.admit(st, rt, old.map(|o| &**o), &mut new)?;

        let mut schema_causes = Vec::new();
        if let Some(schema) = rt
            .version(version)
            .and_then(|v| v.schema.as_ref())
            .filter(|_| rt.custom)
        {
            let checked = super::crd_schema::check(&mut new, schema, true);
            if ctx.strict && !checked.unknown.is_empty() {
                return Err(strict_error(&checked.unknown));
            }
            schema_causes = checked.causes;
        }

        let mut causes = schema_causes;
        causes.extend(admission::validate_metadata(&key, &new, rt.namespaced));
        causes.extend(admission::validate(&key, &new));
        if let Some(old) = old {
            causes.extend(admission::validate_update(&key, old, &new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }

        if has_generation(rt, &new) {
            let generation = match old {
                Some(o) => {
                    let prev = o.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    let deleting_now = o.pointer("/metadata/deletionTimestamp").is_none()
                        && new.pointer("/metadata/deletionTimestamp").is_some();
                    if generation_payload(o) != generation_payload(&new) || deleting_now {
                        prev + 1
                    } else {
                        prev
                    }
                }
                None => 1,
            };
            new["metadata"]["generation"] = json!(generation);
        }

        if !applied {
            apply::record_update(
                old.map(|o| &**o),
                &mut new,
                &ctx.manager,
                &rt.api_version(version),
                scope,
                schema_of(rt, &key),
            );
        }

        if let Some(o) = old
            && **o == new
        {
            return Ok(Written {
                object: o.clone(),
                created: false,
            });
        }

        let ns = new
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Last finalizer removed from an object being deleted: it goes now.
        if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_of(&new).is_empty() {
            if ctx.dry_run {
                return Ok(Written {
                    object: Arc::new(new),
                    created: false,
                });
            }
            let gone = st
                .store
                .remove(&key, &ns, &name)
                .unwrap_or_else(|| Arc::new(new.clone()));
            self.after_delete(st, rt, &gone);
            return Ok(Written {
                object: gone,
                created: false,
            });
        }
        // As the real server: validation first, then the store says it exists.
        if old.is_none() && st.store.get(&key, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if ctx.dry_run {
            return Ok(Written {
                object: Arc::new(new),
                created: old.is_none(),
            });
        }
        let stored = st.store.put(&key, new);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            refresh_catalog(st);
        }
        Ok(Written {
            object: stored,
            created: old.is_none(),
        })
    }

    /// Kind-specific admission (what admission plugins and registry
    /// strategies do): service IPs and node ports, CRD status.
    fn admit(&self, st: &State, rt: &ResourceType, old: Option<&Value>, new: &mut Value) -> ApiResult<()> {
        let name = name_of(new).to_string();
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "services") => {
                let ty = new
                    .pointer("/spec/type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                let spec = new.get_mut("spec").and_then(Value::as_object_mut);
                let Some(spec) = spec else { return Ok(()) };
                if ty == "ExternalName" {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                    return Ok(());
                }
                // Allocated values survive updates that omit them (kubectl apply).
                if let Some(old) = old {
                    for f in ["clusterIP", "clusterIPs", "healthCheckNodePort"] {
                        if spec.get(f).is_none_or(|v| v.is_null() || v == "")
                            && let Some(v) = old.pointer(&format!("/spec/{f}"))
                        {
                            spec.insert(f.into(), v.clone());
                        }
                    }
                    let old_ports = old
                        .pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for p in spec
                        .get_mut("ports")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if p.get("nodePort").is_none()
                            && let Some(np) = old_ports
                                .iter()
                                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"))
                                .and_then(|o| o.get("nodePort"))
                        {
                            set_at(p, &["nodePort"], np.clone());
                        }
                    }
                }
                let current = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
                if current.is_empty() {
                    let ip = allocate_service_ip(st, self.service_cidr())
                        .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?;
                    spec.insert("clusterIP".into(), json!(ip.to_string()));
                    spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                } else if current != "None" {
                    let ip: std::net::Ipv4Addr = current.parse().map_err(|_| {
                        ApiError::invalid(
                            CORE,
                            "Service",
                            &name,
                            vec![Cause::invalid(
                                "spec.clusterIPs[0]",
                                format!("Invalid value: {current:?}: must be a valid IP address"),
                            )],
                        )
                    })?;
                    if !self.service_cidr().contains(ip) {
                        return Err(ApiError::invalid(
                            CORE,
                            "Service",
                            &name,
                            vec![Cause::invalid(
                                "spec.clusterIPs",
                                format!(
                                    "Invalid value: [{current:?}]: failed to allocate IP {current}: the provided IP ({current}) is not in the valid range. The range of valid IPs is {}",
                                    self.service_cidr()
                                ),
                            )],
                        ));
                    }
                    let taken = old.is_none()
                        && st.store.list(&gr(CORE, "services"), None).any(|(_, s)| {
                            s.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(current.as_str())
                        });
                    if taken {
                        return Err(ApiError::invalid(
                            CORE,
                            "Service",
                            &name,
                            vec![Cause::invalid(
                                "spec.clusterIPs",
                                format!(
                                    "Invalid value: [{current:?}]: failed to allocate IP {current}: provided IP is already allocated"
                                ),
                            )],
                        ));
                    }
                    spec.insert("clusterIPs".into(), json!([current]));
                } else {
                    spec.insert("clusterIPs".into(), json!(["None"]));
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    let mut taken_now = HashSet::new();
                    let own: Vec<i64> = old
                        .and_then(|o| o.pointer("/spec/ports"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                        .collect();
                    for p in spec
                        .get_mut("ports")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        match p.get("nodePort").and_then(Value::as_i64) {
                            Some(np) => {
                                taken_now.insert(np);
                            }
                            None => {
                                let mut used = taken_now.clone();
                                used.retain(|x| !own.contains(x));
                                let np = allocate_node_port(st, &used).ok_or_else(|| {
                                    ApiError::internal("failed to allocate a nodePort: range is full")
                                })?;
                                taken_now.insert(np);
                                set_at(p, &["nodePort"], json!(np));
                            }
                        }
                    }
                } else {
                    for p in spec
                        .get_mut("ports")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(p) = p.as_object_mut() {
                            p.remove("nodePort");
                        }
                    }
                }
            }
            ("", "persistentvolumeclaims" | "persistentvolumes") if old.is_none() => {
                // StorageObjectInUseProtection; DefaultStorageClass for claims.
                let fin = if rt.plural == "persistentvolumes" {
                    super::controllers::PV_PROTECTION
                } else {
                    super::controllers::PVC_PROTECTION
                };
                let meta = &mut new["metadata"];
                let mut fins: Vec<Value> = meta
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !fins.iter().any(|f| f == fin) {
                    fins.push(json!(fin));
                }
                meta["finalizers"] = json!(fins);
                if rt.plural == "persistentvolumeclaims" && new.pointer("/spec/storageClassName").is_none() {
                    let classes: Vec<Arc<Value>> = st
                        .store
                        .list(&gr("storage.k8s.io", "storageclasses"), None)
                        .map(|(_, c)| c.clone())
                        .collect();
                    if let Some(d) = super::controllers::default_class(&classes) {
                        set_at(new, &["spec", "storageClassName"], d["metadata"]["name"].clone());
                    }
                }
            }
            ("batch", "jobs") if old.is_none() => {
                // The job controller's selector and template labels.
                let uid = new.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
                let job_name = json!(name);
                if new.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true)
                    && new.pointer("/spec/selector").is_none()
                {
                    set_at(
                        new,
                        &["spec", "selector"],
                        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                    );
                }
                let labels = ["spec", "template", "metadata", "labels"];
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", job_name.clone()),
                    ("controller-uid", uid),
                    ("job-name", job_name),
                ] {
                    set_at(new, &[&labels[..], &[k]].concat(), v);
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let names = new.pointer("/spec/names").cloned().unwrap_or(json!({}));
                let storage: Vec<Value> = new
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect();
                let mut stored: Vec<Value> = old
                    .and_then(|o| o.pointer("/status/storedVersions"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for s in storage {
                    if !stored.contains(&s) {
                        stored.push(s);
                    }
                }
                let since = old
                    .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
                    .cloned()
                    .unwrap_or_else(|| json!(clock::now_rfc3339()));
                // A name already served by another CRD or a built-in is not accepted.
                let group = new.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
                let plural = names.get("plural").and_then(Value::as_str).unwrap_or("");
                let conflict = st.catalog.by_group_resource(group, plural).is_some_and(|t| !t.custom);
                let accepted = if conflict { "False" } else { "True" };
                new["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": accepted, "reason": if conflict { "NameConflict" } else { "NoConflicts" },
                            "message": if conflict { "the name is already served by a built-in resource" } else { "no conflicts found" },
                            "lastTransitionTime": since},
                        {"type": "Established", "status": accepted, "reason": if conflict { "NotAccepted" } else { "InitialNamesAccepted" },
                            "message": if conflict { "not all names are accepted" } else { "the initial names have been accepted" },
                            "lastTransitionTime": since},
                    ],
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// DELETE of one object.
    pub fn delete(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let mut st = self.lock();
        self.delete_locked(&mut st, rt, version, ns, name, opts)
    }

    pub(crate) fn delete_locked(
        &self,
        st: &mut State,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let key = rt.key();
        let Some(old) = st.store.get(&key, ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if let Some(uid) = &opts.precondition_uid {
            let actual = old.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != rv_of(&old)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    rv_of(&old)
                ),
            ));
        }
        let ctx = WriteContext {
            manager: "kube-apiserver".into(),
            dry_run: opts.dry_run,
            strict: false,
        };
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let mut finalizers = finalizers_of(&old);
        if opts.propagation.as_deref() == Some("Foreground") && !finalizers.iter().any(|f| f == "foregroundDeletion") {
            finalizers.push("foregroundDeletion".into());
        }
        if opts.propagation.as_deref() == Some("Orphan") && !opts.dry_run {
            self.orphan_dependents(st, &old);
        }
        let graceful_pod = rt.group.is_empty()
            && rt.plural == "pods"
            && opts.grace_period_seconds != Some(0)
            && self.pod_needs_graceful_termination(st, &old);
        if is_namespace || !finalizers.is_empty() || graceful_pod {
            if old.pointer("/metadata/deletionTimestamp").is_some() && finalizers == finalizers_of(&old) {
                return Ok(Deleted::Pending(present(&old, rt, version)));
            }
            let mut new = (*old).clone();
            let now = clock::now_rfc3339();
            let meta = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
            if !meta.contains_key("deletionTimestamp") {
                meta.insert("deletionTimestamp".into(), json!(now));
                let grace = if graceful_pod {
                    opts.grace_period_seconds
                        .or_else(|| {
                            old.pointer("/spec/terminationGracePeriodSeconds")
                                .and_then(Value::as_i64)
                        })
                        .unwrap_or(30)
                } else {
                    0
                };
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if !finalizers.is_empty() {
                meta.insert("finalizers".into(), json!(finalizers));
            }
            if is_namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(Deleted::Pending(Arc::new(new)));
            }
            let mut counted = new.clone();
            if has_generation(rt, &counted) {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1) + 1;
                counted["metadata"]["generation"] = json!(g);
            }
            apply::record_update(
                Some(&old),
                &mut counted,
                &ctx.manager,
                &rt.api_version(version),
                Scope::Main {
                    status_subresource: false,
                },
                schema_of(rt, &key),
            );
            let stored = st.store.put(&key, counted);
            return Ok(Deleted::Pending(present(&stored, rt, version)));
        }
        if opts.dry_run {
            return Ok(Deleted::Now(self.deleted_body(rt, version, &old)));
        }
        let gone = st.store.remove(&key, ns, name).unwrap_or(old);
        self.after_delete(st, rt, &gone);
        Ok(Deleted::Now(self.deleted_body(rt, version, &gone)))
    }

    fn deleted_body(&self, rt: &ResourceType, version: &str, gone: &Arc<Value>) -> Value {
        if RETURNS_DELETED_OBJECT.contains(&(rt.group.as_str(), rt.plural.as_str())) {
            return (*present(gone, rt, version)).clone();
        }
        let uid = gone.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        super::status::success_status(&rt.group, &rt.plural, name_of(gone), uid)
    }

    /// Cleanup that happens with the object (CRDs take their objects along).
    fn after_delete(&self, st: &mut State, rt: &ResourceType, gone: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let group = gone.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
            let plural = gone.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
            let target = GroupResource::new(group, plural);
            let keys: Vec<ObjectKey> = st.store.list(&target, None).map(|(k, _)| k.clone()).collect();
            for k in keys {
                st.store.remove(&target, &k.namespace, &k.name);
            }
            refresh_catalog(st);
        }
    }

    /// A pod on a node whose kubelet is alive is deleted at once (the
    /// kubelet confirms); on a node that stopped reporting it stays
    /// Terminating until force-deleted, as in a real cluster.
    fn pod_needs_graceful_termination(&self, st: &State, pod: &Value) -> bool {
        let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
            return false;
        };
        let Some(node) = st.store.get(&gr(CORE, "nodes"), "", node) else {
            return false;
        };
        super::controllers::node_condition(node, "Ready") == Some("Unknown")
    }

    /// Removes ownerReferences to `owner` from every object (Orphan).
    fn orphan_dependents(&self, st: &mut State, owner: &Value) {
        let Some(uid) = owner.pointer("/metadata/uid").and_then(Value::as_str) else {
            return;
        };
        let uid = uid.to_string();
        let types: Vec<GroupResource> = st.catalog.types().map(|t| t.key()).collect();
        for key in types {
            let dependents: Vec<Arc<Value>> = st
                .store
                .list(&key, None)
                .filter(|(_, o)| owner_uids(o).any(|u| u == uid))
                .map(|(_, o)| o.clone())
                .collect();
            for d in dependents {
                let mut nd = (*d).clone();
                if let Some(refs) = nd
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    if refs.is_empty()
                        && let Some(meta) = nd["metadata"].as_object_mut()
                    {
                        meta.remove("ownerReferences");
                    }
                }
                st.store.put(&key, nd);
            }
        }
    }

    /// DELETE of a collection: every matching object, as a list of what was deleted.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let mut st = self.lock();
        let targets: Vec<ObjectKey> = st
            .store
            .list(&rt.key(), ns)
            .filter(|(_, o)| list.labels.matches_object(o) && list.fields.matches(o))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in targets {
            match self.delete_locked(&mut st, rt, version, &k.namespace, &k.name, opts)? {
                Deleted::Now(_) => {
                    // deletecollection lists the objects as they were.
                    out.push(json!({"apiVersion": rt.api_version(version), "kind": rt.kind, "metadata": {"name": k.name, "namespace": k.namespace}}));
                }
                Deleted::Pending(o) => out.push((*o).clone()),
            }
        }
        Ok(out)
    }

    /// `POST pods/{name}/eviction`: deletes the pod unless a
    /// PodDisruptionBudget forbids it (429).
    pub fn evict(&self, ns: &str, name: &str, body: &Value) -> ApiResult<Value> {
        let pods = gr(CORE, "pods");
        let mut st = self.lock();
        let Some(pod) = st.store.get(&pods, ns, name).cloned() else {
            return Err(ApiError::not_found(CORE, "pods", name));
        };
        if let Some(n) = body.pointer("/metadata/name").and_then(Value::as_str)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object ({n} vs {name})"
            )));
        }
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        let terminal = matches!(phase, "Succeeded" | "Failed" | "Pending");
        if !terminal && pod.pointer("/metadata/deletionTimestamp").is_none() {
            let labels = super::selector::labels_of(&pod);
            let pdbs: Vec<Arc<Value>> = st
                .store
                .list(&gr("policy", "poddisruptionbudgets"), Some(ns))
                .filter(|(_, p)| {
                    LabelSelector::from_object(p.pointer("/spec/selector"))
                        .is_ok_and(|s| !s.nothing && s.matches(&labels))
                })
                .map(|(_, p)| p.clone())
                .collect();
            if pdbs.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = pdbs.first() {
                let budget = super::controllers::disruption_budget(&st, pdb);
                let pod_ready = super::controllers::pod_is_ready(&pod);
                let unhealthy_ok = !pod_ready && budget.current_healthy >= budget.desired_healthy;
                if budget.disruptions_allowed <= 0 && !unhealthy_ok {
                    let mut e = ApiError::too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        10,
                    );
                    e.details.retry_after = None;
                    e.causes.push(Cause::new(
                        "DisruptionBudget",
                        "",
                        format!(
                            "The disruption budget {} needs {} healthy pods and has {} currently",
                            name_of(pdb),
                            budget.desired_healthy,
                            budget.current_healthy
                        ),
                    ));
                    return Err(e);
                }
            }
        }
        let opts = body
            .get("deleteOptions")
            .map(DeleteOptions::from_body)
            .unwrap_or_default();
        let rt = st
            .catalog
            .by_group_resource(CORE, "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        self.delete_locked(&mut st, &rt, "v1", ns, name, &opts)?;
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
    }

    /// GET of the `scale` subresource (autoscaling/v1 Scale).
    pub fn get_scale(&self, rt: &ResourceType, version: &str, ns: &str, name: &str) -> ApiResult<Value> {
        let obj = self.get(rt, version, ns, name)?;
        scale_of(rt, version, &obj)
    }

    /// PUT or PATCH of the `scale` subresource: writes the replicas.
    pub fn set_scale(
        &self,
        t: Target<'_>,
        body: Value,
        kind: Option<PatchKind>,
        ctx: &WriteContext,
    ) -> ApiResult<Value> {
        let Target {
            rt,
            version,
            namespace: ns,
            name,
        } = t;
        let v = rt
            .version(version)
            .and_then(|v| v.scale.clone())
            .ok_or_else(ApiError::no_route)?;
        let mut st = self.lock();
        let Some(old) = st.store.get(&rt.key(), ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let current = scale_of(rt, version, &old)?;
        let desired = match kind {
            None => body,
            Some(PatchKind::Merge) | Some(PatchKind::Strategic) => {
                let mut s = current.clone();
                patch::merge_patch(&mut s, &body);
                s
            }
            Some(PatchKind::Json) => {
                let mut s = current.clone();
                patch::json_patch(&mut s, &body)?;
                s
            }
            Some(PatchKind::Apply) => {
                let mut s = current.clone();
                patch::merge_patch(&mut s, &body);
                s
            }
        };
        if let Some(r) = desired.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && kind.is_none()
            && !r.is_empty()
            && r != rv_of(&old)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let replicas = desired.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )],
            ));
        }
        let mut new = (*old).clone();
        set_path(&mut new, &v.spec_replicas_path, json!(replicas));
        let written = self.write(
            &mut st,
            rt,
            version,
            Some(&old),
            new,
            Scope::Main {
                status_subresource: rt.has_status(version),
            },
            ctx,
            false,
        )?;
        drop(st);
        scale_of(rt, version, &written.object)
    }

    /// Controllers' read-modify-write of one object under the lock.
    pub fn mutate(
        &self,
        resource: (&str, &str),
        ns: &str,
        name: &str,
        status: bool,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> ApiResult<Option<Arc<Value>>> {
        let mut st = self.lock();
        let Some(rt) = st.catalog.by_group_resource(resource.0, resource.1) else {
            return Ok(None);
        };
        let Some(old) = st.store.get(&rt.key(), ns, name).cloned() else {
            return Ok(None);
        };
        let mut new = (*old).clone();
        f(&mut new);
        if new == *old {
            return Ok(Some(old));
        }
        let scope = if status {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.has_status(rt.storage_version()),
            }
        };
        let version = rt.storage_version().to_string();
        let written = self.write(
            &mut st,
            &rt,
            &version,
            Some(&old),
            new,
            scope,
            &WriteContext::new(manager),
            false,
        )?;
        Ok(Some(written.object))
    }

    /// Controllers' create (no error if it already exists).
    pub fn create_system(&self, resource: (&str, &str), obj: Value, manager: &str) -> ApiResult<Option<Arc<Value>>> {
        let rt = self.lock().catalog.by_group_resource(resource.0, resource.1);
        let Some(rt) = rt else { return Ok(None) };
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let version = rt.storage_version().to_string();
        match self.create(&rt, &version, &ns, obj, &WriteContext::new(manager)) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.code == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Controllers' delete (no error if already gone).
    pub fn delete_system(&self, resource: (&str, &str), ns: &str, name: &str, opts: &DeleteOptions) -> ApiResult<()> {
        let rt = self.lock().catalog.by_group_resource(resource.0, resource.1);
        let Some(rt) = rt else { return Ok(()) };
        let version = rt.storage_version().to_string();
        match self.delete(&rt, &version, ns, name, opts) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Sets a value at a path of object fields, turning whatever is in the
/// way (absent, null, or not an object) into objects: user input never
/// makes it panic.
pub fn set_at(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return;
    };
    let mut cur = v;
    for p in parents {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(m) = cur.as_object_mut() else { return };
        cur = m.entry(p.to_string()).or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(last.to_string(), value);
    }
}

/// The uids an object's ownerReferences point at.
pub fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

fn get_path<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    obj.pointer(&dotted.replace('.', "/"))
}

fn set_path(obj: &mut Value, dotted: &str, v: Value) {
    let parts: Vec<&str> = dotted.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            if let Some(m) = cur.as_object_mut() {
                m.insert(p.to_string(), v);
            }
            return;
        }
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
}

fn scale_of(rt: &ResourceType, version: &str, obj: &Value) -> ApiResult<Value> {
    let v = rt
        .version(version)
        .and_then(|v| v.scale.clone())
        .ok_or_else(ApiError::no_route)?;
    let spec = get_path(obj, &v.spec_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = get_path(obj, &v.status_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status_obj = json!({"replicas": status});
    let selector = v
        .label_selector_path
        .as_deref()
        .and_then(|p| get_path(obj, p))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            LabelSelector::from_object(obj.pointer("/spec/selector"))
                .ok()
                .filter(|s| !s.nothing)
                .map(|s| s.to_query())
        });
    if let Some(sel) = selector {
        status_obj["selector"] = json!(sel);
    }
    let meta = &obj["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": spec},
        "status": status_obj,
    }))
}

fn encode_continue(rv: u64, after: &ObjectKey) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}", after.namespace, after.name)});
    base64::engine::general_purpose::URL_SAFE.encode(raw.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, ObjectKey)> {
    let bad = || ApiError::bad_request(format!("invalid continue token: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token.trim())
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ObjectKey::new(ns, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, &ObjectKey::new("ns", "x"));
        let (rv, k) = decode_continue(&t).unwrap();
        assert_eq!(rv, 42);
        assert_eq!(k, ObjectKey::new("ns", "x"));
        assert_eq!(decode_continue("%%%").unwrap_err().code, 400);
    }

    #[test]
    fn set_at_replaces_what_is_in_the_way() {
        let mut v = json!({"spec": "oops"});
        set_at(&mut v, &["spec", "template", "labels", "a"], json!("b"));
        assert_eq!(v, json!({"spec": {"template": {"labels": {"a": "b"}}}}));
        let mut p = json!(80);
        set_at(&mut p, &["nodePort"], json!(30000));
        assert_eq!(p, json!({"nodePort": 30000}));
    }

    #[test]
    fn set_path_creates_parents() {
        let mut v = json!({});
        set_path(&mut v, ".spec.replicas", json!(3));
        assert_eq!(v, json!({"spec": {"replicas": 3}}));
    }
}
