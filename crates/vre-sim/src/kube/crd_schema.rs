//! Custom resources against their CRD's structural schema, as the API
//! server treats them: defaults are applied, fields the schema does not
//! declare are pruned (or refused under `fieldValidation=Strict`), and
//! types, required fields and enums are checked (422 with one cause per
//! field). Not covered: patterns, bounds, formats, `oneOf`/`anyOf`, CEL rules.

use serde_json::{Map, Value};

use super::status::Cause;

/// What admitting an object against a schema found.
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    /// Paths of undeclared fields (pruned from the object).
    pub unknown: Vec<String>,
    pub causes: Vec<Cause>,
    defaults: bool,
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(schema: &Value, v: &Value) -> Result<(), String> {
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return if matches!(type_name(v), "integer" | "string") {
            Ok(())
        } else {
            Err("integer or string".into())
        };
    }
    let Some(want) = schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let have = type_name(v);
    let ok = have == want || (want == "number" && have == "integer");
    if ok { Ok(()) } else { Err(want.to_string()) }
}

/// Checks and prunes a custom resource (`obj`, the whole object) against
/// the `openAPIV3Schema` of its version; `defaults` also fills schema
/// defaults in (not for an apply configuration: defaults are nobody's).
pub fn check(obj: &mut Value, schema: &Value, defaults: bool) -> Checked {
    let mut out = Checked {
        defaults,
        ..Checked::default()
    };
    let Some(m) = obj.as_object_mut() else { return out };
    // apiVersion, kind and metadata are the API server's, not the schema's.
    let props = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => {
                let drop = match m.get_mut(&k) {
                    Some(v) => {
                        walk(v, s, &k, &mut out);
                        v.is_null() && s.get("nullable").and_then(Value::as_bool) != Some(true)
                    }
                    None => false,
                };
                if drop {
                    m.remove(&k);
                }
            }
            None if preserves_unknown(schema) => {}
            None => {
                m.remove(&k);
                out.unknown.push(format!(".{k}"));
            }
        }
    }
    apply_defaults_and_required(m, schema, "", &mut out);
    out
}

fn apply_defaults_and_required(m: &mut Map<String, Value>, schema: &Value, path: &str, out: &mut Checked) {
    if !out.defaults {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if !m.contains_key(k)
                && let Some(d) = s.get("default")
            {
                m.insert(k.clone(), d.clone());
            }
        }
    }
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !m.contains_key(r) {
            let field = if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            };
            out.causes.push(Cause::required(field));
        }
    }
}

fn walk(v: &mut Value, schema: &Value, path: &str, out: &mut Checked) {
    if v.is_null() {
        // A null is kept where the schema allows it; the caller drops it otherwise.
        return;
    }
    if let Err(want) = type_ok(schema, v) {
        out.causes.push(Cause::invalid(
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {want}: {}",
                type_name(v),
                shown(&json_short(v))
            ),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(shown).collect();
        out.causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {}: supported values: {}", shown(v), list.join(", ")),
        ));
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = preserves_unknown(schema);
            let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = format!("{path}.{k}");
                let child_schema = props.and_then(|p| p.get(&k)).or(additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(s) => {
                        let drop = match m.get_mut(&k) {
                            Some(c) => {
                                walk(c, s, &child_path, out);
                                c.is_null() && s.get("nullable").and_then(Value::as_bool) != Some(true)
                            }
                            None => false,
                        };
                        if drop {
                            m.remove(&k);
                        }
                    }
                    None if preserve || additional == Some(&Value::Bool(true)) => {}
                    None if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    None => {
                        m.remove(&k);
                        out.unknown.push(format!(".{}", child_path.trim_start_matches('.')));
                    }
                }
            }
            apply_defaults_and_required(m, schema, path, out);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// A value as the real server quotes it in type errors (scalars in full).
fn json_short(v: &Value) -> Value {
    match v {
        Value::Object(_) => Value::String("object".into()),
        Value::Array(_) => Value::String("array".into()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["entryPoints"], "properties": {
                "entryPoints": {"type": "array", "items": {"type": "string"}},
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "port": {"x-kubernetes-int-or-string": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }})
    }

    #[test]
    fn prunes_defaults_and_checks() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"entryPoints": ["web"], "bogus": 1, "port": "http", "extra": {"anything": true}, "labels": {"a": "b"}},
            "junk": {}});
        let c = check(&mut obj, &schema(), true);
        assert!(c.causes.is_empty(), "{:?}", c.causes);
        assert_eq!(c.unknown, vec![".junk".to_string(), ".spec.bogus".to_string()]);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(obj.get("junk").is_none());
        assert_eq!(obj["spec"]["extra"]["anything"], true);
    }

    #[test]
    fn type_required_and_enum_errors() {
        let mut obj = json!({"spec": {"replicas": "three", "mode": "c", "labels": {"a": 1}}});
        let c = check(&mut obj, &schema(), true);
        let fields: Vec<&str> = c.causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.replicas"), "{fields:?}");
        assert!(fields.contains(&"spec.mode"));
        assert!(fields.contains(&"spec.entryPoints"));
        assert!(fields.contains(&"spec.labels.a"));
        let t = c.causes.iter().find(|c| c.field == "spec.replicas").unwrap();
        assert!(t.message.contains("must be of type integer"), "{}", t.message);
    }
}
