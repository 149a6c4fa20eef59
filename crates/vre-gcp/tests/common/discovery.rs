//! Checks requests against Google's official Compute Engine v1 discovery
//! document (`specs/gcp-compute-v1.discovery.json.gz`): the
//! method exists, verb and path template match, required parameters are
//! present and match their patterns, query parameters are known, and the
//! JSON body only uses properties of the method's request schema
//! (recursively through `$ref`s, enums and per-method required fields
//! included). Used by the unit tests (`src/discovery.rs` includes this file)
//! and by the integration test's fake server, which checks every request it
//! receives.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use regex::Regex;
use serde_json::{Map, Value};
use vre_testkit::path_template::match_template;

/// Where the document lives, relative to this crate.
pub fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../specs/gcp-compute-v1.discovery.json.gz")
}

/// One method of the document.
#[derive(Clone, Debug)]
pub struct Method {
    pub id: String,
    pub verb: String,
    pub path: String,
    pub parameters: Map<String, Value>,
    pub request: Option<String>,
}

/// A method matching a path: literal segments matched, the method, path parameter values.
type Candidate<'a> = (usize, &'a Method, Vec<(String, String)>);

/// The discovery document, indexed.
pub struct Discovery {
    methods: BTreeMap<String, Method>,
    schemas: Map<String, Value>,
    global_parameters: Map<String, Value>,
    /// The service path requests are made under (`compute/v1/`).
    pub service_path: String,
}

impl Discovery {
    pub fn load() -> Discovery {
        let path = document_path();
        let file = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("cannot open the discovery document {}: {e}", path.display()));
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("cannot gunzip {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text).expect("the discovery document is JSON");
        let mut methods = BTreeMap::new();
        collect_methods(doc.get("resources").expect("resources"), &mut methods);
        Discovery {
            methods,
            schemas: doc["schemas"].as_object().cloned().unwrap_or_default(),
            global_parameters: doc["parameters"].as_object().cloned().unwrap_or_default(),
            service_path: doc["servicePath"].as_str().unwrap_or("compute/v1/").to_string(),
        }
    }

    pub fn method(&self, id: &str) -> Option<&Method> {
        self.methods.get(id)
    }

    /// Problems of a request described by its method id and template.
    pub fn check_call(
        &self,
        id: &str,
        verb: &str,
        template: &str,
        params: &[(&str, String)],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let Some(m) = self.method(id) else {
            return vec![format!("{id}: no such method in the discovery document")];
        };
        let mut p = Vec::new();
        if m.verb != verb {
            p.push(format!("{id}: HTTP verb {verb}, the document says {}", m.verb));
        }
        if m.path != template {
            p.push(format!("{id}: path template {template}, the document says {}", m.path));
        }
        for name in template_params(template) {
            match m.parameters.get(&name) {
                Some(d) if d["location"] == "path" => {}
                _ => p.push(format!("{id}: {{{name}}} is not a path parameter of the method")),
            }
        }
        let mut values: Vec<(String, String, &'static str)> =
            params.iter().map(|(n, v)| (n.to_string(), v.clone(), "path")).collect();
        values.extend(query.iter().map(|(n, v)| (n.to_string(), v.clone(), "query")));
        p.extend(self.check_parameters(m, &values));
        p.extend(self.check_body(m, body));
        p
    }

    /// Problems of a raw request as a server receives it: finds the method
    /// by verb and path (`compute/v1/...`), then checks it.
    pub fn check_request(
        &self,
        verb: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let rel = path.trim_start_matches('/');
        let Some(rel) = rel.strip_prefix(self.service_path.as_str()) else {
            return vec![format!("{verb} {path}: not under /{}", self.service_path)];
        };
        let Some((m, values)) = self.find(verb, rel) else {
            return vec![format!(
                "{verb} {path}: no method of the discovery document has this verb and path"
            )];
        };
        let mut all: Vec<(String, String, &'static str)> = values.into_iter().map(|(n, v)| (n, v, "path")).collect();
        all.extend(query.iter().map(|(n, v)| (n.clone(), v.clone(), "query")));
        let mut p = self.check_parameters(m, &all);
        p.extend(self.check_body(m, body));
        p.into_iter().map(|x| format!("{verb} {path}: {x}")).collect()
    }

    /// The method whose template matches `rel` (most literal segments wins).
    pub fn find(&self, verb: &str, rel: &str) -> Option<(&Method, Vec<(String, String)>)> {
        let segs: Vec<&str> = rel.split('/').collect();
        let mut best: Option<Candidate<'_>> = None;
        for m in self.methods.values().filter(|m| m.verb == verb) {
            let tsegs: Vec<&str> = m.path.split('/').collect();
            let Some(found) = match_template(&tsegs, &segs, |t, s| t == s) else {
                continue;
            };
            if best.as_ref().is_none_or(|(l, _, _)| found.literal > *l) {
                let values = found
                    .values
                    .into_iter()
                    .map(|(n, v)| (n.trim_start_matches('+').to_string(), percent_decode(&v)))
                    .collect();
                best = Some((found.literal, m, values));
            }
        }
        best.map(|(_, m, v)| (m, v))
    }

    fn check_parameters(&self, m: &Method, values: &[(String, String, &'static str)]) -> Vec<String> {
        let mut p = Vec::new();
        for (name, def) in &m.parameters {
            if def["required"] == true && !values.iter().any(|(n, _, _)| n == name) {
                p.push(format!("{}: required parameter {name} is missing", m.id));
            }
        }
        for (name, value, location) in values {
            let def = m.parameters.get(name).or_else(|| self.global_parameters.get(name));
            let Some(def) = def else {
                p.push(format!("{}: unknown {location} parameter {name}", m.id));
                continue;
            };
            if def["location"] != *location {
                p.push(format!(
                    "{}: {name} is a {} parameter, sent in the {location}",
                    m.id, def["location"]
                ));
            }
            if let Some(pat) = def["pattern"].as_str() {
                let re = Regex::new(&format!("^(?:{pat})$")).expect("patterns are RE2");
                if !re.is_match(value) {
                    p.push(format!("{}: {name} = \"{value}\" does not match {pat}", m.id));
                }
            }
            if let Some(e) = def["enum"].as_array()
                && !e.iter().any(|x| x == value.as_str())
            {
                p.push(format!("{}: {name} = \"{value}\" is not one of {e:?}", m.id));
            }
        }
        p
    }

    fn check_body(&self, m: &Method, body: Option<&Value>) -> Vec<String> {
        let mut p = Vec::new();
        match (&m.request, body) {
            (None, None) => {}
            (None, Some(Value::Null)) => {}
            (None, Some(_)) => p.push(format!("{}: the method takes no body, one was sent", m.id)),
            (Some(r), None) => p.push(format!("{}: the method needs a {r} body, none was sent", m.id)),
            (Some(r), Some(b)) => {
                let schema = serde_json::json!({"$ref": r});
                self.check_value(&m.id, &schema, b, r, &mut p);
            }
        }
        p
    }

    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .schemas
                .get(r)
                .unwrap_or_else(|| panic!("$ref {r} is not in the document")),
            None => schema,
        }
    }

    fn check_value(&self, method: &str, schema: &Value, v: &Value, at: &str, p: &mut Vec<String>) {
        let s = self.resolve(schema);
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("object");
        match (ty, v) {
            ("object", Value::Object(o)) => {
                let props = s.get("properties").and_then(Value::as_object);
                for (k, x) in o {
                    match (props.and_then(|ps| ps.get(k)), s.get("additionalProperties")) {
                        (Some(ps), _) => self.check_value(method, ps, x, &format!("{at}.{k}"), p),
                        (None, Some(ap)) => self.check_value(method, ap, x, &format!("{at}[{k}]"), p),
                        (None, None) => p.push(format!("{method}: {at}.{k} is not a property of the schema")),
                    }
                }
                for (k, ps) in props.into_iter().flatten() {
                    let required = ps
                        .pointer("/annotations/required")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| ids.iter().any(|i| i == method));
                    if required && !o.contains_key(k) {
                        p.push(format!("{method}: {at}.{k} is required for this method"));
                    }
                }
            }
            ("array", Value::Array(items)) => {
                let item = s.get("items").cloned().unwrap_or(Value::Null);
                for (i, x) in items.iter().enumerate() {
                    self.check_value(method, &item, x, &format!("{at}[{i}]"), p);
                }
            }
            ("string", Value::String(x)) => {
                if let Some(e) = s.get("enum").and_then(Value::as_array)
                    && !e.iter().any(|y| y == x.as_str())
                {
                    p.push(format!("{method}: {at} = \"{x}\" is not one of the enum values"));
                }
                if let Some(pat) = s.get("pattern").and_then(Value::as_str)
                    && let Ok(re) = Regex::new(&format!("^(?:{pat})$"))
                    && !re.is_match(x)
                {
                    p.push(format!("{method}: {at} = \"{x}\" does not match {pat}"));
                }
            }
            ("boolean", Value::Bool(_)) => {}
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            ("number", Value::Number(_)) => {}
            ("any", _) => {}
            (_, Value::Null) => {}
            (ty, other) => p.push(format!("{method}: {at} should be {ty}, is {other}")),
        }
    }
}

fn collect_methods(resources: &Value, out: &mut BTreeMap<String, Method>) {
    for r in resources.as_object().into_iter().flat_map(|o| o.values()) {
        for m in r
            .get("methods")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|o| o.values())
        {
            let id = m["id"].as_str().unwrap_or_default().to_string();
            out.insert(
                id.clone(),
                Method {
                    id,
                    verb: m["httpMethod"].as_str().unwrap_or_default().to_string(),
                    path: m["path"].as_str().unwrap_or_default().to_string(),
                    parameters: m
                        .get("parameters")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                    request: m.pointer("/request/$ref").and_then(Value::as_str).map(str::to_string),
                },
            );
        }
        if let Some(sub) = r.get("resources") {
            collect_methods(sub, out);
        }
    }
}

fn template_params(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|x| x.strip_suffix('}')))
        .map(|s| s.trim_start_matches('+').to_string())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
