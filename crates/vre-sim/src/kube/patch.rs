//! The three client-side patch formats: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902) and Kubernetes' strategic merge patch (lists merged by
//! their `patchMergeKey`, the `$patch`, `$retainKeys`, `$setElementOrder`
//! and `$deleteFromPrimitiveList` directives).

use serde_json::{Map, Value};

use super::fieldset::canonical_json;
use super::schema::{ITEM, PatchStrategy, Schema};
use super::status::ApiError;

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// RFC 6902 (`add`, `remove`, `replace`, `move`, `copy`, `test`).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(doc, &ops.0).map_err(|e| {
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        );
        err.causes.push(super::status::Cause::invalid("", e.to_string()));
        err
    })
}

/// Applies a strategic merge patch to `doc` (the object, as stored).
pub fn strategic_merge_patch(doc: &mut Value, patch: &Value, schema: Schema<'_>) -> Result<(), ApiError> {
    let Some(p) = patch.as_object() else {
        return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
    };
    let mut names: Vec<String> = Vec::new();
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Some(d) = doc.as_object_mut() else { return Ok(()) };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *d = strip_directives(p);
            Ok(())
        }
        Some("delete") => Err(ApiError::bad_request(
            "a strategic merge patch may not delete the whole object",
        )),
        _ => patch_map(d, p, &schema, &mut names),
    }
}

fn name_refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

fn patch_map(
    doc: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    schema: &Schema<'_>,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    let mut orders: Vec<(String, &Vec<Value>)> = Vec::new();
    let mut deletions: Vec<(String, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(order) = v.as_array() {
                orders.push((field.to_string(), order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let Some(values) = v.as_array() {
                deletions.push((field.to_string(), values));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(ApiError::bad_request(format!(
                "unknown strategic merge patch directive {k:?}"
            )));
        }
        names.push(k.clone());
        let result = patch_field(doc, k, v, schema, names);
        names.pop();
        result?;
    }
    for (field, values) in deletions {
        if let Some(Value::Array(items)) = doc.get_mut(&field) {
            items.retain(|x| !values.contains(x));
        }
    }
    for (field, order) in orders {
        names.push(field.clone());
        let strategy = schema.patch_strategy(&name_refs(names));
        names.pop();
        if let Some(Value::Array(items)) = doc.get_mut(&field) {
            reorder(items, order, &strategy);
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        doc.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn patch_field(
    doc: &mut Map<String, Value>,
    k: &str,
    v: &Value,
    schema: &Schema<'_>,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    match v {
        Value::Null => {
            doc.remove(k);
        }
        Value::Object(pv) => match pv.get("$patch").and_then(Value::as_str) {
            Some("delete") => {
                doc.remove(k);
            }
            Some("replace") => {
                doc.insert(k.to_string(), Value::Object(strip_directives(pv)));
            }
            _ => match doc.get_mut(k) {
                Some(Value::Object(existing)) => patch_map(existing, pv, schema, names)?,
                _ => {
                    let mut fresh = Map::new();
                    patch_map(&mut fresh, pv, schema, names)?;
                    doc.insert(k.to_string(), Value::Object(fresh));
                }
            },
        },
        Value::Array(items) => {
            let strategy = schema.patch_strategy(&name_refs(names));
            let existing = match doc.remove(k) {
                Some(Value::Array(e)) => e,
                _ => Vec::new(),
            };
            let merged = patch_list(existing, items, &strategy, schema, names)?;
            doc.insert(k.to_string(), Value::Array(merged));
        }
        scalar => {
            doc.insert(k.to_string(), scalar.clone());
        }
    }
    Ok(())
}

fn patch_list(
    mut existing: Vec<Value>,
    patch: &[Value],
    strategy: &PatchStrategy,
    schema: &Schema<'_>,
    names: &mut Vec<String>,
) -> Result<Vec<Value>, ApiError> {
    // `{"$patch": "replace"}` as an item: the rest of the patch list replaces the list.
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_value)
            .collect());
    }
    match strategy {
        PatchStrategy::Replace => Ok(patch.iter().map(strip_value).collect()),
        PatchStrategy::MergePrimitives => {
            for item in patch {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
            Ok(existing)
        }
        PatchStrategy::MergeByKey(key) => {
            for item in patch {
                let Some(obj) = item.as_object() else {
                    return Err(ApiError::bad_request(format!(
                        "strategic merge patch: an item of a list merged by {key:?} must be an object"
                    )));
                };
                let Some(kv) = obj.get(key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {} does not contain declared merge key: {key}",
                        canonical_json(item)
                    )));
                };
                let pos = existing.iter().position(|e| e.get(key) == Some(kv));
                match obj.get("$patch").and_then(Value::as_str) {
                    Some("delete") => {
                        existing.retain(|e| e.get(key) != Some(kv));
                    }
                    Some("replace") => {
                        let fresh = Value::Object(strip_directives(obj));
                        match pos {
                            Some(i) => existing[i] = fresh,
                            None => existing.push(fresh),
                        }
                    }
                    _ => {
                        names.push(ITEM.to_string());
                        let result = match pos {
                            Some(i) => match existing[i].as_object_mut() {
                                Some(e) => patch_map(e, obj, schema, names),
                                None => Ok(()),
                            },
                            None => {
                                let mut fresh = Map::new();
                                let r = patch_map(&mut fresh, obj, schema, names);
                                existing.push(Value::Object(fresh));
                                r
                            }
                        };
                        names.pop();
                        result?;
                    }
                }
            }
            Ok(existing)
        }
    }
}

/// Orders a list per `$setElementOrder`: listed items first in the given
/// order, items the patch did not list after them in their current order.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: &PatchStrategy) {
    let position = |item: &Value| -> Option<usize> {
        match strategy {
            PatchStrategy::MergeByKey(key) => {
                let kv = item.get(key)?;
                order.iter().position(|o| o.get(key) == Some(kv))
            }
            _ => order.iter().position(|o| o == item),
        }
    };
    let mut indexed: Vec<(usize, usize, Value)> = std::mem::take(items)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (position(&v).unwrap_or(usize::MAX), i, v))
        .collect();
    indexed.sort_by_key(|(p, i, _)| (*p, *i));
    *items = indexed.into_iter().map(|(_, _, v)| v).collect();
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::GroupResource;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "busybox"}
            ], "tolerations": [{"key": "x"}]}}}})
    }

    #[test]
    fn merges_containers_by_name_and_replaces_tolerations() {
        let gr = GroupResource::new("apps", "deployments");
        let mut d = deployment();
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
            "containers": [{"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}],
            "tolerations": [{"key": "y"}]}}}});
        strategic_merge_patch(&mut d, &patch, Schema::builtin(&gr)).unwrap();
        let cs = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["image"], "nginx:2");
        assert_eq!(cs[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(d["spec"]["template"]["spec"]["tolerations"], json!([{"key": "y"}]));
        assert_eq!(d["spec"]["replicas"], 3);
    }

    #[test]
    fn directives() {
        let gr = GroupResource::new("apps", "deployments");
        let mut d = deployment();
        let patch = json!({
        "metadata": {"labels": {"app": null, "tier": "a"}, "$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [{"name": "web", "$patch": "delete"}, {"name": "side", "image": "alpine"}, {"name": "new", "image": "x"}]
        }}}});
        strategic_merge_patch(&mut d, &patch, Schema::builtin(&gr)).unwrap();
        assert_eq!(d["metadata"]["labels"], json!({"tier": "a"}));
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["side", "new"]);
        let mut d2 = deployment();
        strategic_merge_patch(
            &mut d2,
            &json!({"spec": {"template": {"$patch": "replace", "spec": {}}}}),
            Schema::builtin(&gr),
        )
        .unwrap();
        assert_eq!(d2["spec"]["template"], json!({"spec": {}}));
        let mut d3 = deployment();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}}});
        strategic_merge_patch(&mut d3, &patch, Schema::builtin(&gr)).unwrap();
        assert_eq!(
            d3["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
    }

    #[test]
    fn retain_keys_clears_other_union_members() {
        let gr = GroupResource::new("apps", "deployments");
        let mut d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        strategic_merge_patch(&mut d, &patch, Schema::builtin(&gr)).unwrap();
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn json_and_merge_patches() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut d, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(d["a"], json!({"c": 2, "d": 3}));
        json_patch(
            &mut d,
            &json!([{"op": "add", "path": "/l/-", "value": 3}, {"op": "replace", "path": "/a/c", "value": 9}]),
        )
        .unwrap();
        assert_eq!(d["l"], json!([1, 2, 3]));
        assert_eq!(d["a"]["c"], 9);
        let e = json_patch(&mut d, &json!([{"op": "test", "path": "/a/c", "value": 1}])).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(json_patch(&mut d, &json!({"op": "bogus"})).unwrap_err().code, 400);
    }
}
