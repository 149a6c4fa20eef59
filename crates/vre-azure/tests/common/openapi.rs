//! Checks requests against the Azure Resource Manager OpenAPI 2.0 files in
//! `specs/azure/` (compute 2025-04-01, disks 2025-01-02,
//! network 2026-01-01, resources 2025-04-01): the path template exists for
//! the api-version, the HTTP verb and operationId match, required path and
//! query parameters are present and no unknown query parameter is sent, and
//! the JSON body uses only properties of the body schema (following `$ref`s
//! across files and `allOf` inheritance, never writing `readOnly`
//! properties, with every `required` property present and every enum value
//! one the specification lists, `modelAsString` enums included, VM sizes
//! excepted: their enum is deprecated in favour of the sizes API).
//! `x-ms-client-flatten` needs no special case: it flattens SDK models only,
//! the JSON keeps its `properties` object.
//!
//! The shared folder lacks the `common-types` files the specifications
//! reference (see its README); [`COMMON_TYPES`] stands in for the few
//! definitions and parameters of them that requests use, as the upstream
//! files define them.
//!
//! Used by the unit tests (`src/lib.rs` includes this file) and by the
//! integration test's fake ARM, which checks every request it receives.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vre_testkit::path_template::match_template;

/// The folder of the specifications, relative to this crate.
pub fn specs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../specs/azure")
}

/// Stand-ins for `common-types/v1/common.json` (compute) and
/// `common-types/resource-management/v1/types.json` (resources): `Resource`
/// (`location` required, `id`/`name`/`type` read-only, `tags`),
/// `SubResource` (`id`), `ExtendedLocation`, and the `api-version`,
/// `subscriptionId` and `resourceGroupName` parameters.
fn common_types() -> Value {
    json!({
        "definitions": {
            "Resource": {
                "properties": {
                    "id": {"type": "string", "readOnly": true},
                    "name": {"type": "string", "readOnly": true},
                    "type": {"type": "string", "readOnly": true},
                    "location": {"type": "string", "x-ms-mutability": ["read", "create"]},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "required": ["location"],
            },
            "ResourceWithOptionalLocation": {
                "properties": {
                    "location": {"type": "string"},
                    "id": {"type": "string", "readOnly": true},
                    "name": {"type": "string", "readOnly": true},
                    "type": {"type": "string", "readOnly": true},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "SubResource": {"properties": {"id": {"type": "string"}}},
            "ExtendedLocation": {"properties": {"name": {"type": "string"}, "type": {"type": "string"}}},
        },
        "parameters": {
            "ApiVersionParameter": {"name": "api-version", "in": "query", "required": true, "type": "string"},
            "SubscriptionIdParameter": {"name": "subscriptionId", "in": "path", "required": true, "type": "string"},
            "ResourceGroupNameParameter": {"name": "resourceGroupName", "in": "path", "required": true, "type": "string"},
        },
    })
}

/// A match: literal segments, the operation, path parameter values.
type Candidate<'a> = (usize, Operation<'a>, Vec<(String, String)>);

/// The specifications, loaded.
pub struct ArmSpecs {
    docs: BTreeMap<PathBuf, Value>,
    common: Value,
}

/// An operation found for a request.
pub struct Operation<'a> {
    pub file: &'a Path,
    pub template: &'a str,
    pub op: &'a Value,
    pub path_item: &'a Value,
}

impl ArmSpecs {
    pub fn load() -> ArmSpecs {
        let mut docs = BTreeMap::new();
        let mut stack = vec![specs_dir()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p.file_name().is_some_and(|n| n != "examples") {
                        stack.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "json") {
                    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    docs.insert(normalize(&p), v);
                }
            }
        }
        assert!(
            docs.len() >= 9,
            "expected the ARM specifications under {}",
            specs_dir().display()
        );
        ArmSpecs {
            docs,
            common: common_types(),
        }
    }

    /// The operation of `verb` at exactly `template` in a file of `api_version`.
    pub fn operation(&self, api_version: &str, template: &str, verb: &str) -> Option<Operation<'_>> {
        self.docs.iter().find_map(|(file, doc)| {
            if doc.pointer("/info/version").and_then(Value::as_str) != Some(api_version) {
                return None;
            }
            let (t, item) = doc["paths"].as_object()?.iter().find(|(t, _)| t.as_str() == template)?;
            let op = item.get(verb.to_ascii_lowercase())?;
            Some(Operation {
                file,
                template: t,
                op,
                path_item: item,
            })
        })
    }

    /// The operation whose template matches a concrete path (literal
    /// segments compared case-insensitively, as ARM does; the most literal
    /// match wins), with the path parameters' values.
    pub fn find(&self, api_version: &str, verb: &str, path: &str) -> Option<(Operation<'_>, Vec<(String, String)>)> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<Candidate<'_>> = None;
        for (file, doc) in &self.docs {
            if doc.pointer("/info/version").and_then(Value::as_str) != Some(api_version) {
                continue;
            }
            for (t, item) in doc["paths"].as_object().into_iter().flatten() {
                let Some(op) = item.get(verb.to_ascii_lowercase()) else {
                    continue;
                };
                let tsegs: Vec<&str> = t.trim_start_matches('/').split('/').collect();
                let Some(found) = match_template(&tsegs, &segs, |t, s| t.eq_ignore_ascii_case(s)) else {
                    continue;
                };
                if found.values.iter().any(|(_, v)| v.is_empty()) {
                    continue;
                }
                if best.as_ref().is_none_or(|(l, _, _)| found.literal > *l) {
                    best = Some((
                        found.literal,
                        Operation {
                            file,
                            template: t,
                            op,
                            path_item: item,
                        },
                        found.values,
                    ));
                }
            }
        }
        best.map(|(_, o, v)| (o, v))
    }

    /// Problems of a request described by its operationId and template.
    #[allow(clippy::too_many_arguments)]
    pub fn check_call(
        &self,
        operation_id: &str,
        verb: &str,
        template: &str,
        api_version: &str,
        params: &[(&str, String)],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let Some(op) = self.operation(api_version, template, verb) else {
            return vec![format!(
                "{operation_id}: no {verb} {template} in the api-version {api_version} specifications"
            )];
        };
        let mut p = Vec::new();
        let found = op.op["operationId"].as_str().unwrap_or_default();
        if found != operation_id {
            p.push(format!(
                "{operation_id}: the specification calls {verb} {template} \"{found}\""
            ));
        }
        let mut values: Vec<(String, String, &str)> =
            params.iter().map(|(n, v)| (n.to_string(), v.clone(), "path")).collect();
        values.push(("api-version".into(), api_version.to_string(), "query"));
        values.extend(query.iter().map(|(n, v)| (n.to_string(), v.clone(), "query")));
        p.extend(self.check_operation(&op, &values, body));
        p.into_iter().map(|x| format!("{operation_id}: {x}")).collect()
    }

    /// Problems of a raw request, as a server receives it.
    pub fn check_request(
        &self,
        verb: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let Some(version) = query.iter().find(|(k, _)| k == "api-version").map(|(_, v)| v.as_str()) else {
            return vec![format!("{verb} {path}: no api-version query parameter")];
        };
        let Some((op, values)) = self.find(version, verb, path) else {
            return vec![format!(
                "{verb} {path}: no operation for this verb and path in api-version {version}"
            )];
        };
        let mut all: Vec<(String, String, &str)> = values.into_iter().map(|(n, v)| (n, v, "path")).collect();
        all.extend(query.iter().map(|(n, v)| (n.clone(), v.clone(), "query")));
        let id = op.op["operationId"].as_str().unwrap_or("?").to_string();
        self.check_operation(&op, &all, body)
            .into_iter()
            .map(|x| format!("{verb} {path} ({id}): {x}"))
            .collect()
    }

    fn parameters(&self, op: &Operation<'_>) -> Vec<(PathBuf, Value)> {
        let mut out = Vec::new();
        for list in [op.path_item.get("parameters"), op.op.get("parameters")] {
            for prm in list.and_then(Value::as_array).into_iter().flatten() {
                out.push(self.deref(op.file, prm));
            }
        }
        out
    }

    fn check_operation(
        &self,
        op: &Operation<'_>,
        values: &[(String, String, &str)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut p = Vec::new();
        let params = self.parameters(op);
        let mut body_schema = None;
        for (file, prm) in &params {
            let name = prm["name"].as_str().unwrap_or_default();
            match prm["in"].as_str() {
                Some("body") => body_schema = Some((file.clone(), prm.clone())),
                Some(loc @ ("path" | "query")) => {
                    let given = values.iter().find(|(n, _, l)| n == name && *l == loc);
                    if prm["required"] == true && given.is_none_or(|(_, v, _)| v.is_empty()) {
                        p.push(format!("required {loc} parameter {name} is missing"));
                    }
                    if let (Some((_, v, _)), Some(e)) = (given, prm["enum"].as_array())
                        && !e.iter().any(|x| x == v.as_str())
                    {
                        p.push(format!("{name} = \"{v}\" is not one of {e:?}"));
                    }
                }
                _ => {}
            }
        }
        for (n, _, loc) in values {
            let declared = params
                .iter()
                .any(|(_, prm)| prm["name"] == n.as_str() && prm["in"] == *loc);
            if !declared {
                p.push(format!("{loc} parameter {n} is not declared by the operation"));
            }
        }
        match (body_schema, body) {
            (None, None | Some(Value::Null)) => {}
            (None, Some(_)) => p.push("the operation takes no body, one was sent".into()),
            (Some((_, prm)), None) if prm["required"] == true => {
                p.push("the operation requires a body, none was sent".into())
            }
            (Some(_), None) => {}
            (Some((file, prm)), Some(b)) => self.check_schema(&file, &prm["schema"], b, "body", &mut p),
        }
        p
    }

    /// Follows `$ref`s (to other files, or to the stand-in common types).
    fn deref(&self, file: &Path, v: &Value) -> (PathBuf, Value) {
        let mut file = file.to_path_buf();
        let mut v = v.clone();
        while let Some(r) = v.get("$ref").and_then(Value::as_str).map(str::to_string) {
            let (f, frag) = r.split_once('#').unwrap_or((r.as_str(), ""));
            let target = if f.is_empty() {
                file.clone()
            } else {
                normalize(&file.parent().expect("a file has a folder").join(f))
            };
            let doc = match self.docs.get(&target) {
                Some(d) => d,
                None if f.contains("common-types") => &self.common,
                None => panic!(
                    "$ref {r} from {} points at a file that is not in the specifications",
                    file.display()
                ),
            };
            v = doc
                .pointer(frag)
                .cloned()
                .unwrap_or_else(|| panic!("$ref {r} from {} does not resolve", file.display()));
            if !std::ptr::eq(doc, &self.common) {
                file = target;
            }
        }
        (file, v)
    }

    /// Properties (with the file their schema is in), required names and
    /// additionalProperties of an object schema, `allOf` parents included.
    fn shape(&self, file: &Path, s: &Value) -> Shape {
        let mut shape = Shape::default();
        for parent in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            let (pf, ps) = self.deref(file, parent);
            let sub = self.shape(&pf, &ps);
            shape.properties.extend(sub.properties);
            shape.required.extend(sub.required);
            if sub.additional.is_some() {
                shape.additional = sub.additional;
            }
        }
        for (k, v) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
            shape.properties.insert(k.clone(), (file.to_path_buf(), v.clone()));
        }
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = r.as_str() {
                shape.required.push(r.to_string());
            }
        }
        if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
            shape.additional = Some((file.to_path_buf(), a.clone()));
        }
        shape
    }

    fn check_schema(&self, file: &Path, schema: &Value, v: &Value, at: &str, p: &mut Vec<String>) {
        let (file, s) = self.deref(file, schema);
        let ty = s.get("type").and_then(Value::as_str);
        match v {
            Value::Object(o) => {
                if ty.is_some_and(|t| t != "object") {
                    p.push(format!("{at} should be {}, is an object", ty.unwrap_or_default()));
                    return;
                }
                let shape = self.shape(&file, &s);
                for (k, x) in o {
                    match (shape.properties.get(k), &shape.additional) {
                        (Some((pf, ps)), _) => {
                            let (_, resolved) = self.deref(pf, ps);
                            if ps.get("readOnly") == Some(&Value::Bool(true))
                                || resolved.get("readOnly") == Some(&Value::Bool(true))
                            {
                                p.push(format!("{at}.{k} is read-only"));
                            }
                            self.check_schema(pf, ps, x, &format!("{at}.{k}"), p);
                        }
                        (None, Some((af, a))) => self.check_schema(af, a, x, &format!("{at}[{k}]"), p),
                        (None, None) => p.push(format!("{at}.{k} is not a property of the schema")),
                    }
                }
                for r in &shape.required {
                    if !o.contains_key(r) {
                        p.push(format!("{at}.{r} is required"));
                    }
                }
            }
            Value::Array(items) => {
                if ty != Some("array") {
                    p.push(format!("{at} should be {}, is an array", ty.unwrap_or("an object")));
                    return;
                }
                let item = s.get("items").cloned().unwrap_or(Value::Null);
                for (i, x) in items.iter().enumerate() {
                    self.check_schema(&file, &item, x, &format!("{at}[{i}]"), p);
                }
            }
            Value::String(x) => {
                if ty.is_some_and(|t| t != "string") {
                    p.push(format!("{at} should be {}, is a string", ty.unwrap_or_default()));
                }
                // every documented enum is enforced, open (`modelAsString`) ones
                // included: vre sends only documented values. VM sizes are the
                // exception: their enum is deprecated in favour of the sizes API.
                let open = s.pointer("/x-ms-enum/name").and_then(Value::as_str) == Some("VirtualMachineSizeTypes");
                if let Some(e) = s.get("enum").and_then(Value::as_array)
                    && !open
                    && !e.iter().any(|y| y == x.as_str())
                {
                    p.push(format!("{at} = \"{x}\" is not one of {e:?}"));
                }
            }
            Value::Number(n) => match ty {
                Some("integer") if n.is_i64() || n.is_u64() => {}
                Some("number") => {}
                other => p.push(format!("{at} should be {}, is a number", other.unwrap_or("an object"))),
            },
            Value::Bool(_) => {
                if ty != Some("boolean") {
                    p.push(format!("{at} should be {}, is a boolean", ty.unwrap_or("an object")));
                }
            }
            Value::Null => {}
        }
    }
}

#[derive(Default)]
struct Shape {
    properties: BTreeMap<String, (PathBuf, Value)>,
    required: Vec<String>,
    additional: Option<(PathBuf, Value)>,
}

/// `a/b/../c` -> `a/c` (without touching the file system).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
