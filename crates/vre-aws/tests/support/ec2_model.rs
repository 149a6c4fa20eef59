//! Checks EC2 Query API requests against botocore's EC2 model
//! (`specs/aws-ec2-2016-11-15.service-2.json.gz`, or the file
//! `VRE_EC2_MODEL` names), following the ec2 protocol's serialisation rules:
//! a member is named by its `queryName`, else its `locationName` with the
//! first letter upper-cased, else its member name; lists are always
//! flattened as `Name.1`, `Name.2`, ...; nested members join with dots.
//!
//! Shared by the crate's unit tests and its integration tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde_json::Value;

pub struct Ec2Model {
    operations: serde_json::Map<String, Value>,
    shapes: serde_json::Map<String, Value>,
}

impl Ec2Model {
    /// Loads the model; a missing file fails the calling test with where to put it.
    pub fn load() -> Self {
        let path = std::env::var("VRE_EC2_MODEL").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../specs/aws-ec2-2016-11-15.service-2.json.gz"
            )
            .to_string()
        });
        let file = std::fs::File::open(&path).unwrap_or_else(|e| {
            panic!("cannot open the EC2 model {path}: {e}; set VRE_EC2_MODEL to botocore's ec2 service-2.json.gz")
        });
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("cannot decompress {path}: {e}"));
        let mut model: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        assert_eq!(model["metadata"]["protocol"], "ec2", "{path} is not the EC2 model");
        let take = |v: &mut Value, k: &str| match v[k].take() {
            Value::Object(m) => m,
            _ => panic!("{path} has no {k}"),
        };
        Ec2Model {
            operations: take(&mut model, "operations"),
            shapes: take(&mut model, "shapes"),
        }
    }

    fn shape(&self, name: &str) -> &Value {
        &self.shapes[name]
    }

    /// The serialized name of a structure member.
    fn query_name(member_name: &str, member: &Value) -> String {
        if let Some(q) = member["queryName"].as_str() {
            return q.to_string();
        }
        if let Some(l) = member["locationName"].as_str() {
            let mut c = l.chars();
            return match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => String::new(),
            };
        }
        member_name.to_string()
    }

    /// Every problem with a request: an unknown operation, a parameter that
    /// names no member, a value of the wrong type or outside the enum, a
    /// required member missing, list indexes that do not run 1, 2, ...
    pub fn check_params(&self, action: &str, params: &[(String, String)]) -> Result<(), Vec<String>> {
        let Some(op) = self.operations.get(action) else {
            return Err(vec![format!("no operation {action} in the EC2 model")]);
        };
        let input = op["input"]["shape"].as_str().unwrap_or_default().to_string();
        let mut problems = Vec::new();
        // structure path -> members present (for required checks)
        let mut present: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        // list path -> indexes used
        let mut indexes: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        present.insert(String::new(), (input.clone(), BTreeSet::new()));
        for (name, value) in params {
            if let Err(p) = self.walk(&input, name, value, &mut present, &mut indexes) {
                problems.push(format!("{name}={value}: {p}"));
            }
        }
        for (path, (shape, members)) in &present {
            let required = self.shape(shape)["required"].as_array().cloned().unwrap_or_default();
            for r in required {
                let r = r.as_str().unwrap_or_default();
                let member = &self.shape(shape)["members"][r];
                let qn = Self::query_name(r, member);
                if !members.contains(&qn) {
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path}.")
                    };
                    problems.push(format!("required member {at}{qn} missing"));
                }
            }
        }
        for (list, idx) in indexes {
            let expected: BTreeSet<usize> = (1..=idx.len()).collect();
            if idx != expected {
                problems.push(format!("{list} indexes {idx:?} do not run 1..{}", idx.len()));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn walk(
        &self,
        input: &str,
        name: &str,
        value: &str,
        present: &mut BTreeMap<String, (String, BTreeSet<String>)>,
        indexes: &mut BTreeMap<String, BTreeSet<usize>>,
    ) -> Result<(), String> {
        let segments: Vec<&str> = name.split('.').collect();
        let mut shape = input.to_string();
        let mut path = String::new();
        let mut i = 0;
        while i < segments.len() {
            let seg = segments[i];
            let s = self.shape(&shape);
            match s["type"].as_str() {
                Some("structure") => {
                    let members = s["members"].as_object().ok_or("structure without members")?;
                    let Some((_, member)) = members.iter().find(|(k, m)| Self::query_name(k, m) == seg) else {
                        let known: Vec<String> = members.iter().map(|(k, m)| Self::query_name(k, m)).collect();
                        return Err(format!(
                            "{shape} has no member \"{seg}\" (members: {})",
                            known.join(", ")
                        ));
                    };
                    present
                        .entry(path.clone())
                        .or_insert_with(|| (shape.clone(), BTreeSet::new()))
                        .1
                        .insert(seg.to_string());
                    shape = member["shape"].as_str().unwrap_or_default().to_string();
                    path = if path.is_empty() {
                        seg.to_string()
                    } else {
                        format!("{path}.{seg}")
                    };
                    i += 1;
                    if self.shape(&shape)["type"] == "structure" {
                        present
                            .entry(path.clone())
                            .or_insert_with(|| (shape.clone(), BTreeSet::new()));
                    }
                }
                Some("list") => {
                    let n: usize = seg
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("{path} is a list: expected an index from 1, found \"{seg}\""))?;
                    indexes.entry(path.clone()).or_default().insert(n);
                    shape = s["member"]["shape"].as_str().unwrap_or_default().to_string();
                    path = format!("{path}.{n}");
                    i += 1;
                    if self.shape(&shape)["type"] == "structure" {
                        present
                            .entry(path.clone())
                            .or_insert_with(|| (shape.clone(), BTreeSet::new()));
                    }
                }
                Some(t) => return Err(format!("{path} is a {t}, it has no member \"{seg}\"")),
                None => return Err(format!("unknown shape {shape}")),
            }
        }
        let s = self.shape(&shape);
        match s["type"].as_str() {
            Some("integer") | Some("long") => {
                value.parse::<i64>().map_err(|_| format!("{path} is an integer"))?;
            }
            Some("float") | Some("double") => {
                value.parse::<f64>().map_err(|_| format!("{path} is a number"))?;
            }
            Some("boolean") if value != "true" && value != "false" => return Err(format!("{path} is a boolean")),
            Some("string") => {
                if let Some(allowed) = s["enum"].as_array()
                    && !allowed.iter().any(|a| a == value)
                {
                    return Err(format!("{path} must be one of the {shape} values"));
                }
            }
            Some("structure") | Some("list") => return Err(format!("{path} is a {} and takes no value", s["type"])),
            _ => {}
        }
        Ok(())
    }
}
