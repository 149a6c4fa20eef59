//! Field ownership: `metadata.managedFields` kept on every write (operation
//! `Update` for create/update/patch, `Apply` for server-side apply), and the
//! server-side apply algorithm of structured-merge-diff: merge the applied
//! configuration into the live object, drop fields the manager applied
//! before but no longer does, and refuse (409) to change fields another
//! manager owns unless forced, which transfers their ownership.

use serde_json::{Map, Value, json};

use super::clock;
use super::fieldset::{self, FieldSet, Path, compare, display_path, fields_of};
use super::schema::Schema;
use super::status::{ApiError, Cause};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Which part of an object a request writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` is reset when the kind has a status
    /// subresource.
    Main { status_subresource: bool },
    /// The `/status` subresource: only `status` changes.
    Status,
}

impl Scope {
    fn subresource(self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: String,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn same_identity(&self, manager: &str, op: Operation, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == subresource
            && (op == Operation::Apply || self.api_version == api_version)
    }

    /// How conflict messages name a manager (`"kubectl" using apps/v1`).
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

fn entries_of(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            Some(Entry {
                manager: e.get("manager").and_then(Value::as_str).unwrap_or("").to_string(),
                operation,
                api_version: e.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string(),
                time: e.get("time").and_then(Value::as_str).unwrap_or("").to_string(),
                subresource: e.get("subresource").and_then(Value::as_str).unwrap_or("").to_string(),
                set: e.get("fieldsV1").and_then(FieldSet::from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation.as_str(),
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The part of an object whose fields are tracked: without identity and
/// server-set metadata, and without the fields the scope resets.
fn tracked(obj: &Value, scope: Scope) -> Value {
    let mut v = obj.clone();
    let Some(m) = v.as_object_mut() else {
        return Value::Object(Map::new());
    };
    m.remove("apiVersion");
    m.remove("kind");
    match scope {
        Scope::Main {
            status_subresource: true,
        } => {
            m.remove("status");
        }
        Scope::Main {
            status_subresource: false,
        } => {}
        Scope::Status => {
            m.retain(|k, _| k == "status" || k == "metadata");
        }
    }
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if scope == Scope::Status {
            meta.clear();
        }
        if meta.is_empty() {
            m.remove("metadata");
        }
    }
    v
}

/// Records an `Update` operation (create, update, patch) by `manager` in
/// `new`'s managedFields: the manager takes the fields it changed, other
/// managers lose them, removed fields leave every set.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    schema: Schema<'_>,
) {
    // A client that sends managedFields different from the live ones
    // replaces them (an empty list clears them), as the real server allows.
    let requested = new.pointer("/metadata/managedFields").cloned();
    let live_mf = old.and_then(|o| o.pointer("/metadata/managedFields").cloned());
    let mut entries = match (&requested, &live_mf) {
        (Some(r), l) if Some(r) != l.as_ref() => entries_of(new),
        _ => old.map(entries_of).unwrap_or_default(),
    };
    let empty = Value::Object(Map::new());
    let old_t = old.map(|o| tracked(o, scope)).unwrap_or(empty);
    let new_t = tracked(new, scope);
    let c = compare(&old_t, &new_t, schema);
    let changed = c.changed();
    if changed.is_empty() && c.removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    let sub = scope.subresource();
    for e in entries.iter_mut() {
        if !e.same_identity(manager, Operation::Update, api_version, sub) {
            e.set = e.set.difference(&changed).difference(&c.removed);
        }
    }
    let now = clock::now_rfc3339();
    match entries
        .iter_mut()
        .find(|e| e.same_identity(manager, Operation::Update, api_version, sub))
    {
        Some(e) => {
            e.set = e.set.union(&changed).difference(&c.removed);
            e.time = now;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            time: now,
            subresource: sub.to_string(),
            set: changed.difference(&c.removed),
        }),
    }
    write_entries(new, &entries);
}

/// The outcome of an apply.
pub struct Applied {
    /// The new object, managedFields included.
    pub object: Value,
    /// False when the apply changed nothing (no write, no new resourceVersion).
    pub changed: bool,
}

/// Server-side apply of `config` over `live` (`live` is the object to start
/// from; for a create, a skeleton with only identity fields).
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    schema: Schema<'_>,
    force: bool,
) -> Result<Applied, ApiError> {
    let mut entries = entries_of(live);
    let sub = scope.subresource();
    let config_t = tracked(config, scope);
    let applied_set = fields_of(&config_t, schema);

    // The tracked configuration merged in: identity fields stay the live ones.
    let mut merged = fieldset::merge(live, &config_t, schema);

    let pos = entries
        .iter()
        .position(|e| e.same_identity(manager, Operation::Apply, api_version, sub));
    let last_set = pos.map(|i| entries[i].set.clone()).unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != pos)
        .fold(FieldSet::new(), |acc, (_, e)| acc.union(&e.set));

    // Fields this manager stopped applying go away unless someone else owns them.
    let to_remove = last_set.difference(&applied_set);
    if !to_remove.is_empty() {
        fieldset::remove_fields(&mut merged, &to_remove, &others.union(&applied_set), schema);
    }

    let live_t = tracked(live, scope);
    let merged_t = tracked(&merged, scope);
    let c = compare(&live_t, &merged_t, schema);
    let changed = c.changed();

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == pos {
            continue;
        }
        for p in e.set.intersection(&changed).paths() {
            conflicts.push((e.describe(), p));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    let before: Vec<FieldSet> = entries.iter().map(|e| e.set.clone()).collect();
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != pos {
            e.set = e.set.difference(&changed).difference(&c.removed);
        }
    }
    let now = clock::now_rfc3339();
    let sets_changed = match pos {
        Some(i) => {
            let differs = entries[i].set != applied_set || entries[i].api_version != api_version;
            entries[i].set = applied_set;
            entries[i].api_version = api_version.to_string();
            differs
        }
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                operation: Operation::Apply,
                api_version: api_version.to_string(),
                time: now.clone(),
                subresource: sub.to_string(),
                set: applied_set,
            });
            true
        }
    } || entries.iter().zip(&before).any(|(e, b)| e.set != *b);

    let object_changed = !changed.is_empty() || !c.removed.is_empty();
    if !object_changed && !sets_changed {
        return Ok(Applied {
            object: live.clone(),
            changed: false,
        });
    }
    if let Some(i) = entries
        .iter()
        .position(|e| e.same_identity(manager, Operation::Apply, api_version, sub))
    {
        entries[i].time = now;
    }
    write_entries(&mut merged, &entries);
    Ok(Applied {
        object: merged,
        changed: true,
    })
}

fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0,
            display_path(&conflicts[0].1)
        )
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in conflicts.iter().filter(|(x, _)| x == m) {
                lines.push(format!("- {}", display_path(p)));
            }
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    let mut e = ApiError::new(409, "Conflict", message);
    e.causes = conflicts
        .iter()
        .map(|(m, p)| Cause::new("FieldManagerConflict", display_path(p), format!("conflict with {m}")))
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::GroupResource;

    fn gr() -> GroupResource {
        GroupResource::new("apps", "deployments")
    }

    /// Applies `config` over `live` as `manager` to a Deployment (which has a
    /// status subresource).
    fn apply_deployment(live: &Value, config: &Value, manager: &str, force: bool) -> Result<Applied, ApiError> {
        let g = gr();
        apply(live, config, manager, "apps/v1", MAIN, Schema::builtin(&g), force)
    }

    /// Records an update of a Deployment from `old` to `new` by `manager`.
    fn update_deployment(old: Option<&Value>, new: &mut Value, manager: &str) {
        let g = gr();
        record_update(old, new, manager, "apps/v1", MAIN, Schema::builtin(&g));
    }

    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    fn base() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "u1"}})
    }

    fn cfg(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn apply_is_idempotent_and_tracks_ownership() {
        let a = apply_deployment(&base(), &cfg(2, "nginx"), "vre", false).unwrap();
        assert!(a.changed);
        assert_eq!(a.object["spec"]["replicas"], 2);
        assert_eq!(a.object["metadata"]["uid"], "u1");
        let mf = &a.object["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "vre");
        assert_eq!(mf["operation"], "Apply");
        assert!(mf["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        assert!(mf["fieldsV1"].get("f:metadata").is_none());
        let again = apply_deployment(&a.object, &cfg(2, "nginx"), "vre", false).unwrap();
        assert!(!again.changed);
    }

    #[test]
    fn conflicting_manager_gets_409_unless_forced() {
        let a = apply_deployment(&base(), &cfg(2, "nginx"), "vre", false)
            .unwrap()
            .object;
        let e = apply_deployment(&a, &cfg(3, "nginx"), "other", false).err().unwrap();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"vre\": .spec.replicas"
        );
        assert_eq!(e.causes[0].field, ".spec.replicas");
        // Same values: shared ownership, no conflict.
        let shared = apply_deployment(&a, &cfg(2, "nginx"), "other", false).unwrap().object;
        assert_eq!(shared["metadata"]["managedFields"].as_array().unwrap().len(), 2);
        let forced = apply_deployment(&a, &cfg(3, "nginx"), "other", true).unwrap().object;
        assert_eq!(forced["spec"]["replicas"], 3);
        let vre = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["manager"] == "vre")
            .unwrap();
        assert!(vre["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    }

    #[test]
    fn dropped_fields_are_removed() {
        let mut with_label = cfg(2, "nginx");
        with_label["metadata"]["labels"] = json!({"a": "1", "b": "2"});
        let a = apply_deployment(&base(), &with_label, "vre", false).unwrap().object;
        let mut fewer = cfg(2, "nginx");
        fewer["metadata"]["labels"] = json!({"a": "1"});
        let b = apply_deployment(&a, &fewer, "vre", false).unwrap().object;
        assert_eq!(b["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn an_emptied_atomic_list_settles_in_one_apply() {
        let with = |tolerations: Value| {
            let mut c = cfg(2, "nginx");
            c["spec"]["template"]["spec"]["tolerations"] = tolerations;
            c
        };
        let a = apply_deployment(
            &base(),
            &with(json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}])),
            "vre",
            false,
        )
        .unwrap()
        .object;
        let b = apply_deployment(&a, &with(json!([])), "vre", false).unwrap();
        assert!(b.changed);
        let again = apply_deployment(&b.object, &with(json!([])), "vre", false).unwrap();
        assert_eq!(b.object["spec"]["template"]["spec"]["tolerations"], json!([]));
        assert!(!again.changed, "{:#}\n{:#}", b.object, again.object);
    }

    #[test]
    fn updates_take_ownership_from_appliers() {
        let a = apply_deployment(&base(), &cfg(2, "nginx"), "vre", false)
            .unwrap()
            .object;
        let mut b = a.clone();
        b["spec"]["replicas"] = json!(5);
        update_deployment(Some(&a), &mut b, "kubectl-scale");
        let mf = b["metadata"]["managedFields"].as_array().unwrap();
        let upd = mf.iter().find(|m| m["manager"] == "kubectl-scale").unwrap();
        assert_eq!(upd["operation"], "Update");
        assert!(upd["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        // The applier now conflicts with the updater on replicas.
        let e = apply_deployment(&b, &cfg(2, "nginx"), "vre", false).err().unwrap();
        assert!(e.message.contains("\"kubectl-scale\" using apps/v1"));
    }

    #[test]
    fn status_is_ignored_on_the_main_resource() {
        let mut c = cfg(1, "nginx");
        c["status"] = json!({"replicas": 9});
        let a = apply_deployment(&base(), &c, "vre", false).unwrap().object;
        assert!(a.get("status").is_none());
    }
}
