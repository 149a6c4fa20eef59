//! Label selectors (the `labelSelector` query string and `LabelSelector`
//! objects), node selector terms, and field selectors, with the grammar and
//! matching rules of `k8s.io/apimachinery/pkg/labels` and `.../fields`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::catalog::GroupResource;
use super::status::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (v.and_then(|v| v.parse::<i64>().ok()), self.values.first()) else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else { return false };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    /// A `null` selector object: matches nothing.
    pub nothing: bool,
}

impl LabelSelector {
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object by its `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_everything() {
            return true;
        }
        self.matches(&labels_of(obj))
    }

    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).map_err(|e| {
                ApiError::bad_request(format!("unable to parse requirement: {e} (in labelSelector {s:?})"))
            })?);
        }
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    /// `None` (absent or null) matches nothing, as for a workload selector.
    pub fn from_object(selector: Option<&Value>) -> Result<Self, String> {
        let Some(sel) = selector.filter(|v| !v.is_null()) else {
            return Ok(LabelSelector {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                let v = v.as_str().ok_or_else(|| format!("matchLabels.{k}: must be a string"))?;
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Op::In,
                    values: vec![v.to_string()],
                });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for (i, e) in exprs.iter().enumerate() {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("matchExpressions[{i}].key: Required value"))?;
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Op::In,
                    Some("NotIn") => Op::NotIn,
                    Some("Exists") => Op::Exists,
                    Some("DoesNotExist") => Op::DoesNotExist,
                    other => {
                        return Err(format!("matchExpressions[{i}].operator: Unsupported value: {other:?}"));
                    }
                };
                match op {
                    Op::In | Op::NotIn if values.is_empty() => {
                        return Err(format!(
                            "matchExpressions[{i}].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
                        ));
                    }
                    Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                        return Err(format!(
                            "matchExpressions[{i}].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        ));
                    }
                    _ => {}
                }
                requirements.push(Requirement {
                    key: key.to_string(),
                    op,
                    values,
                });
            }
        }
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The query-string form (`app=web,tier in (a,b)`), as `status.selector`.
    pub fn to_query(&self) -> String {
        self.requirements
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values.join(",")),
                Op::In if r.values.len() == 1 => format!("{}={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotEquals => format!("{}!={}", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
                Op::GreaterThan => format!("{}>{}", r.key, r.values.join(",")),
                Op::LessThan => format!("{}<{}", r.key, r.values.join(",")),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `metadata.labels` as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
            values: Vec::new(),
        });
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    for (word, op) in [(" notin ", Op::NotIn), (" in ", Op::In)] {
        if let Some(idx) = part.find(word) {
            let key = part[..idx].trim();
            let rest = part[idx + word.len()..].trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("found '{rest}', expected: '(' values ')'"))?;
            check_key(key)?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            for v in &values {
                check_value(v)?;
            }
            if values.is_empty() && op == Op::In {
                return Err(format!("for 'in' operator, values set can't be empty (key {key})"));
            }
            return Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            });
        }
    }
    for (token, op) in [
        ("!=", Op::NotEquals),
        ("==", Op::Equals),
        ("=", Op::Equals),
        (">", Op::GreaterThan),
        ("<", Op::LessThan),
    ] {
        if let Some(idx) = part.find(token) {
            let key = part[..idx].trim();
            let value = part[idx + token.len()..].trim();
            check_key(key)?;
            if matches!(op, Op::GreaterThan | Op::LessThan) {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("for 'Gt', 'Lt' operators, the value must be an integer: {value}"))?;
            } else {
                check_value(value)?;
            }
            return Ok(Requirement {
                key: key.to_string(),
                op,
                values: vec![value.to_string()],
            });
        }
    }
    let key = part.trim();
    check_key(key)?;
    Ok(Requirement {
        key: key.to_string(),
        op: Op::Exists,
        values: Vec::new(),
    })
}

fn check_key(key: &str) -> Result<(), String> {
    super::admission::label_key_errors(key).map_or(Ok(()), |e| Err(format!("invalid label key \"{key}\": {e}")))
}

fn check_value(value: &str) -> Result<(), String> {
    super::admission::label_value_errors(value)
        .map_or(Ok(()), |e| Err(format!("invalid label value: \"{value}\": {e}")))
}

/// Whether a node matches a pod's `nodeSelector` map.
pub fn node_selector_matches(node_selector: Option<&Value>, node_labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = node_selector.and_then(Value::as_object) else {
        return true;
    };
    sel.iter()
        .all(|(k, v)| v.as_str().is_some_and(|v| node_labels.get(k).is_some_and(|l| l == v)))
}

/// Whether a node satisfies `requiredDuringSchedulingIgnoredDuringExecution`
/// of a pod's node affinity: the terms are ORed, each term's expressions and
/// fields are ANDed; no terms means no constraint.
pub fn node_affinity_matches(
    affinity: Option<&Value>,
    node_name: &str,
    node_labels: &BTreeMap<String, String>,
) -> bool {
    let Some(terms) = affinity
        .and_then(|a| a.pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"))
        .and_then(Value::as_array)
    else {
        return true;
    };
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let exprs = term.get("matchExpressions").and_then(Value::as_array);
        let fields = term.get("matchFields").and_then(Value::as_array);
        if exprs.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
            // An empty term matches no objects.
            return false;
        }
        let expr_ok = exprs
            .into_iter()
            .flatten()
            .all(|e| node_requirement(e).is_some_and(|r| r.matches(node_labels)));
        let field_ok = fields.into_iter().flatten().all(|e| {
            let Some(r) = node_requirement(e) else { return false };
            if r.key != "metadata.name" {
                return false;
            }
            let mut m = BTreeMap::new();
            m.insert("metadata.name".to_string(), node_name.to_string());
            r.matches(&m)
        });
        expr_ok && field_ok
    })
}

fn node_requirement(e: &Value) -> Option<Requirement> {
    let key = e.get("key")?.as_str()?.to_string();
    let values: Vec<String> = e
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let op = match e.get("operator")?.as_str()? {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::GreaterThan,
        "Lt" => Op::LessThan,
        _ => return None,
    };
    Some(Requirement { key, op, values })
}

/// One `field=value` / `field!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A `fieldSelector` query parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses and checks that every field is supported for the resource
    /// (`field label not supported: ...` otherwise, 400 like the real server).
    pub fn parse(s: &str, resource: &GroupResource, custom: bool) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !field_supported(resource, custom, field) {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let v = field_value(obj, &r.field);
            (v == r.value) != r.negated
        })
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

fn extra_fields(resource: &GroupResource) -> &'static [&'static str] {
    match (resource.group.as_str(), resource.resource.as_str()) {
        ("", "pods") => POD_FIELDS,
        ("", "nodes") => &["spec.unschedulable"],
        ("", "events") => EVENT_FIELDS,
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

fn field_supported(resource: &GroupResource, _custom: bool, field: &str) -> bool {
    field == "metadata.name" || field == "metadata.namespace" || extra_fields(resource).contains(&field)
}

/// The string value of a selectable field (missing fields read as `""`,
/// booleans and numbers as their text, as the real field sets do).
fn field_value(obj: &Value, field: &str) -> String {
    let pointer = if field == "source" {
        "/source/component".to_string()
    } else {
        format!("/{}", field.replace('.', "/"))
    };
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if field == "spec.unschedulable" || field == "spec.hostNetwork" => "false".to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse("app=web,tier!=db,env in (prod, staging),zone notin (a),ready,!legacy").unwrap();
        assert_eq!(s.requirements.len(), 6);
        let l = labels(&[("app", "web"), ("env", "prod"), ("zone", "b"), ("ready", "")]);
        assert!(s.matches(&l));
        let mut l2 = l.clone();
        l2.insert("legacy".into(), "1".into());
        assert!(!s.matches(&l2));
        let mut l3 = l.clone();
        l3.insert("tier".into(), "db".into());
        assert!(!s.matches(&l3));
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
        assert!(LabelSelector::parse("n>3").unwrap().matches(&labels(&[("n", "4")])));
    }

    #[test]
    fn selector_objects_and_nothing() {
        let s = LabelSelector::from_object(Some(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        })))
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!LabelSelector::from_object(None).unwrap().matches(&labels(&[])));
        assert!(
            LabelSelector::from_object(Some(&json!({})))
                .unwrap()
                .matches(&labels(&[]))
        );
        assert!(
            LabelSelector::from_object(Some(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))).is_err()
        );
    }

    #[test]
    fn node_affinity_terms_are_ored() {
        let aff = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "vre.io/role", "operator": "In", "values": ["storage"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
        ]}}});
        assert!(node_affinity_matches(
            Some(&aff),
            "x",
            &labels(&[("vre.io/role", "storage")])
        ));
        assert!(node_affinity_matches(Some(&aff), "n1", &labels(&[])));
        assert!(!node_affinity_matches(
            Some(&aff),
            "n2",
            &labels(&[("vre.io/role", "edge")])
        ));
        assert!(node_affinity_matches(None, "n2", &labels(&[])));
    }

    #[test]
    fn field_selectors_check_support() {
        let pods = GroupResource::new("", "pods");
        let f = FieldSelector::parse("spec.nodeName=n1,metadata.namespace!=kube-system", &pods, false).unwrap();
        assert!(f.matches(&json!({"metadata": {"namespace": "default"}, "spec": {"nodeName": "n1"}})));
        assert!(!f.matches(&json!({"metadata": {"namespace": "kube-system"}, "spec": {"nodeName": "n1"}})));
        let cms = GroupResource::new("", "configmaps");
        let e = FieldSelector::parse("spec.nodeName=n1", &cms, false).unwrap_err();
        assert_eq!(e.code, 400);
        let nodes = GroupResource::new("", "nodes");
        let f = FieldSelector::parse("spec.unschedulable=false", &nodes, false).unwrap();
        assert!(f.matches(&json!({"spec": {}})));
    }
}
