//! Field sets of server-side apply (the structured-merge-diff model): which
//! fields of an object a manager owns, their `fieldsV1` encoding in
//! `metadata.managedFields`, and the schema-aware walks apply needs: the
//! set of fields a configuration specifies, the comparison of two objects,
//! the merge of a configuration into a live object, and field removal.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{ITEM, ListType, Schema, key_default};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:<name>`: a field of a map or struct.
    Field(String),
    /// `k:<json>`: the item of an associative list with these key values
    /// (canonical JSON object, keys sorted).
    Key(String),
    /// `v:<json>`: a value of a set.
    Value(String),
    /// `i:<n>`: an item of a list by position.
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(PathElement::Field(rest.to_string())),
            "k:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                v.is_object().then(|| PathElement::Key(canonical_json(&v)))
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                Some(PathElement::Value(canonical_json(&v)))
            }
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }

    /// The human form used in conflict messages (`.spec`, `[name="web"]`).
    fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = v
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={}", canonical_json(v))).collect())
                    .unwrap_or_default();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// JSON with object keys sorted, so equal values encode equally.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A set of field paths, as a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

pub type Path = Vec<PathElement>;

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether the path or anything below it is in the set.
    pub fn touches(&self, path: &[PathElement]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(pe) {
                Some(n) => node = n,
                None => return false,
            }
        }
        !node.is_empty()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in(other);
        out
    }

    fn union_in(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, c) in &other.children {
            self.children.entry(pe.clone()).or_default().union_in(c);
        }
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// Every member path, depth first.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, c) in &self.children {
            if c.is_empty() {
                continue;
            }
            m.insert(pe.encode(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parses `fieldsV1`; `None` when it is not a valid encoding.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        let m = v.as_object()?;
        let mut out = FieldSet::default();
        for (k, c) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::decode(k)?;
            let mut child = FieldSet::from_fields_v1(c)?;
            let cm = c.as_object()?;
            // A leaf (`{}`) or an explicit `.` marks the path itself.
            if cm.is_empty() || cm.contains_key(".") {
                child.member = true;
            }
            out.children.insert(pe, child);
        }
        Some(out)
    }
}

/// The human form of a path (`.spec.containers[name="web"].image`).
pub fn display_path(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// The key path element of an item of an associative list, or `None` when
/// the item lacks a key field.
fn item_key(item: &Value, keys: &[String]) -> Option<PathElement> {
    let obj = item.as_object()?;
    let mut m = Map::new();
    for k in keys {
        match obj.get(k).cloned().or_else(|| key_default(k)) {
            Some(v) => {
                m.insert(k.clone(), v);
            }
            None => return None,
        }
    }
    Some(PathElement::Key(canonical_json(&Value::Object(m))))
}

/// The path elements of a list's items per its list type; `None` if the
/// list cannot be keyed (missing or duplicate keys): it is then atomic.
fn list_elements(list: &[Value], lt: &ListType) -> Option<Vec<PathElement>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let pe = match lt {
            ListType::Atomic => return None,
            ListType::Set => {
                if item.is_object() || item.is_array() {
                    return None;
                }
                PathElement::Value(canonical_json(item))
            }
            ListType::Map(keys) => item_key(item, keys)?,
        };
        if !seen.insert(pe.clone()) {
            return None;
        }
        out.push(pe);
    }
    Some(out)
}

/// Walks values with their schema path (`names`, for list/map semantics)
/// and their field path (`path`, for the set).
struct Walk<'s> {
    schema: Schema<'s>,
    names: Vec<String>,
    path: Path,
}

impl<'s> Walk<'s> {
    fn new(schema: Schema<'s>) -> Self {
        Walk {
            schema,
            names: Vec::new(),
            path: Vec::new(),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    fn list_type(&self) -> ListType {
        self.schema.list_type(&self.names())
    }

    fn map_atomic(&self) -> bool {
        self.schema.map_is_atomic(&self.names())
    }

    fn push_field(&mut self, f: &str) {
        self.names.push(f.to_string());
        self.path.push(PathElement::Field(f.to_string()));
    }

    fn push_item(&mut self, pe: PathElement) {
        self.names.push(ITEM.to_string());
        self.path.push(pe);
    }

    fn pop(&mut self) {
        self.names.pop();
        self.path.pop();
    }
}

/// The fields a configuration specifies (what an applier owns).
pub fn fields_of(value: &Value, schema: Schema<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    let mut w = Walk::new(schema);
    if let Some(m) = value.as_object() {
        to_set_map(m, &mut w, &mut set);
    }
    set
}

fn to_set_value(v: &Value, w: &mut Walk<'_>, set: &mut FieldSet) {
    match v {
        Value::Object(m) => {
            if m.is_empty() || w.map_atomic() {
                set.insert(&w.path);
            } else {
                to_set_map(m, w, set);
            }
        }
        // an applied empty list is a field of its own, as an empty map is
        // (`is_leaf`): else applying `[]` would drop the field, and the
        // next identical apply would add it back
        Value::Array(items) if items.is_empty() => set.insert(&w.path),
        Value::Array(items) => {
            let lt = w.list_type();
            match list_elements(items, &lt) {
                None => set.insert(&w.path),
                Some(pes) => {
                    for (item, pe) in items.iter().zip(pes) {
                        w.push_item(pe);
                        set.insert(&w.path);
                        if let Value::Object(m) = item {
                            to_set_map(m, w, set);
                        }
                        w.pop();
                    }
                }
            }
        }
        _ => set.insert(&w.path),
    }
}

fn to_set_map(m: &Map<String, Value>, w: &mut Walk<'_>, set: &mut FieldSet) {
    for (k, v) in m {
        w.push_field(k);
        to_set_value(v, w, set);
        w.pop();
    }
}

/// The difference between two objects, as structured-merge-diff computes
/// it: leaves added/modified/removed, plus maps and list items that
/// appeared or disappeared as a whole.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

pub fn compare(old: &Value, new: &Value, schema: Schema<'_>) -> Comparison {
    let mut c = Comparison::default();
    let mut w = Walk::new(schema);
    compare_maps(old.as_object(), new.as_object(), &mut w, &mut c);
    c
}

fn is_leaf(v: &Value, w: &Walk<'_>) -> bool {
    match v {
        Value::Object(m) => m.is_empty() || w.map_atomic(),
        Value::Array(items) => items.is_empty() || list_elements(items, &w.list_type()).is_none(),
        _ => true,
    }
}

fn compare_values(old: Option<&Value>, new: Option<&Value>, w: &mut Walk<'_>, c: &mut Comparison) {
    let (o, n) = (old, new);
    let leaf = o.is_none_or(|o| is_leaf(o, w)) && n.is_none_or(|n| is_leaf(n, w));
    let same_shape = match (o, n) {
        (Some(Value::Object(_)), Some(Value::Object(_))) | (Some(Value::Array(_)), Some(Value::Array(_))) => true,
        (Some(_), Some(_)) => false,
        _ => true,
    };
    if leaf || !same_shape {
        match (o, n) {
            (None, Some(_)) => c.added.insert(&w.path),
            (Some(_), None) => c.removed.insert(&w.path),
            (Some(a), Some(b)) if a != b => c.modified.insert(&w.path),
            _ => {}
        }
        return;
    }
    match (o, n) {
        (None, Some(_)) => c.added.insert(&w.path),
        (Some(_), None) => c.removed.insert(&w.path),
        _ => {}
    }
    match (o.or(n), n.or(o)) {
        (Some(Value::Object(_)), _) => compare_maps(o.and_then(Value::as_object), n.and_then(Value::as_object), w, c),
        (Some(Value::Array(_)), _) => {
            let lt = w.list_type();
            let empty = Vec::new();
            let oi = o.and_then(Value::as_array).unwrap_or(&empty);
            let ni = n.and_then(Value::as_array).unwrap_or(&empty);
            let (Some(ope), Some(npe)) = (list_elements(oi, &lt), list_elements(ni, &lt)) else {
                // Unkeyable on one side: the list changes as a whole.
                if o != n {
                    c.modified.insert(&w.path);
                }
                return;
            };
            let old_items: BTreeMap<&PathElement, &Value> = ope.iter().zip(oi).collect();
            let new_items: BTreeMap<&PathElement, &Value> = npe.iter().zip(ni).collect();
            let mut all: Vec<&PathElement> = ope.iter().collect();
            all.extend(npe.iter().filter(|pe| !old_items.contains_key(pe)));
            for pe in all {
                w.push_item(pe.clone());
                let (a, b) = (old_items.get(pe).copied(), new_items.get(pe).copied());
                match (a, b) {
                    (None, Some(_)) => c.added.insert(&w.path),
                    (Some(_), None) => c.removed.insert(&w.path),
                    _ => {}
                }
                if matches!(lt, ListType::Map(_)) {
                    compare_maps(a.and_then(Value::as_object), b.and_then(Value::as_object), w, c);
                }
                w.pop();
            }
        }
        _ => {}
    }
}

fn compare_maps(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    w: &mut Walk<'_>,
    c: &mut Comparison,
) {
    let mut keys: Vec<&String> = old.map(|m| m.keys().collect()).unwrap_or_default();
    if let Some(n) = new {
        keys.extend(n.keys().filter(|k| old.is_none_or(|o| !o.contains_key(*k))));
    }
    for k in keys {
        w.push_field(k);
        compare_values(old.and_then(|m| m.get(k)), new.and_then(|m| m.get(k)), w, c);
        w.pop();
    }
}

/// Merges an applied configuration into a live object: maps merge field by
/// field, associative lists item by item (in the configuration's order,
/// live-only items keeping their place), atomic values are replaced.
pub fn merge(live: &Value, config: &Value, schema: Schema<'_>) -> Value {
    let mut w = Walk::new(schema);
    merge_values(Some(live), config, &mut w)
}

fn merge_values(live: Option<&Value>, config: &Value, w: &mut Walk<'_>) -> Value {
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(c)) if !w.map_atomic() => {
            let mut out = l.clone();
            for (k, v) in c {
                w.push_field(k);
                let merged = merge_values(l.get(k), v, w);
                w.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(l)), Value::Array(c)) => {
            let lt = w.list_type();
            let (Some(lpe), Some(cpe)) = (list_elements(l, &lt), list_elements(c, &lt)) else {
                return config.clone();
            };
            merge_lists(l, &lpe, c, &cpe, &lt, w)
        }
        _ => config.clone(),
    }
}

fn merge_lists(
    l: &[Value],
    lpe: &[PathElement],
    r: &[Value],
    rpe: &[PathElement],
    lt: &ListType,
    w: &mut Walk<'_>,
) -> Value {
    let lmap: BTreeMap<&PathElement, &Value> = lpe.iter().zip(l).collect();
    let rmap: BTreeMap<&PathElement, &Value> = rpe.iter().zip(r).collect();
    let mut shared = rpe.iter().filter(|pe| lmap.contains_key(pe));
    let mut next_shared = shared.next();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let merge_item = |pe: &PathElement, w: &mut Walk<'_>| -> Value {
        let rv = rmap[pe];
        if matches!(lt, ListType::Map(_)) {
            w.push_item(pe.clone());
            let v = merge_values(lmap.get(pe).copied(), rv, w);
            w.pop();
            v
        } else {
            rv.clone()
        }
    };
    let (mut li, mut ri) = (0, 0);
    while li < lpe.len() || ri < rpe.len() {
        if li < lpe.len() && ri < rpe.len() {
            if lpe[li] == rpe[ri] {
                out.push(merge_item(&rpe[ri], w));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if rmap.contains_key(&lpe[li]) && next_shared.is_some_and(|n| *n != lpe[li]) {
                li += 1;
                continue;
            }
        }
        if li < lpe.len() && !rmap.contains_key(&lpe[li]) {
            out.push(l[li].clone());
            li += 1;
            continue;
        }
        if ri < rpe.len() {
            out.push(merge_item(&rpe[ri], w));
            if next_shared.is_some_and(|n| *n == rpe[ri]) {
                next_shared = shared.next();
            }
            ri += 1;
            continue;
        }
        // A shared live item already emitted from the configuration.
        li += 1;
    }
    Value::Array(out)
}

/// Removes the member paths of `remove` from a value, except paths that
/// `keep` owns (or owns something below).
pub fn remove_fields(value: &mut Value, remove: &FieldSet, keep: &FieldSet, schema: Schema<'_>) {
    let mut w = Walk::new(schema);
    remove_in(value, remove, keep, &mut w);
}

fn remove_in(value: &mut Value, remove: &FieldSet, keep: &FieldSet, w: &mut Walk<'_>) {
    match value {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let pe = PathElement::Field(k.clone());
                let Some(sub) = remove.children.get(&pe) else { continue };
                w.push_field(&k);
                if sub.member && !keep.touches(&w.path) {
                    m.remove(&k);
                } else if let Some(child) = m.get_mut(&k) {
                    remove_in(child, sub, keep, w);
                }
                w.pop();
            }
        }
        Value::Array(items) => {
            let lt = w.list_type();
            let Some(pes) = list_elements(items, &lt) else { return };
            let mut kept = Vec::with_capacity(items.len());
            for (mut item, pe) in std::mem::take(items).into_iter().zip(pes) {
                let Some(sub) = remove.children.get(&pe) else {
                    kept.push(item);
                    continue;
                };
                w.push_item(pe);
                if sub.member && !keep.touches(&w.path) {
                    w.pop();
                    continue;
                }
                remove_in(&mut item, sub, keep, w);
                w.pop();
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::GroupResource;
    use serde_json::json;

    fn deploy() -> GroupResource {
        GroupResource::new("apps", "deployments")
    }

    #[test]
    fn applied_fields_and_encoding() {
        let gr = deploy();
        let cfg = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let set = fields_of(&cfg, Schema::builtin(&gr));
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        assert_eq!(v1["f:spec"]["f:selector"], json!({}));
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert!(c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"].is_object());
        assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), set);
        let p = set
            .paths()
            .into_iter()
            .find(|p| p.last() == Some(&PathElement::Field("image".into())))
            .unwrap();
        assert_eq!(display_path(&p), ".spec.template.spec.containers[name=\"web\"].image");
    }

    #[test]
    fn compare_reports_added_containers() {
        let gr = deploy();
        let old = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
        let c = compare(&old, &new, Schema::builtin(&gr));
        assert_eq!(c.modified.paths().len(), 1);
        let added: Vec<String> = c.added.paths().iter().map(|p| display_path(p)).collect();
        assert!(added.contains(&".spec.template.spec.containers[name=\"b\"]".to_string()));
        assert!(added.contains(&".spec.template.spec.containers[name=\"b\"].image".to_string()));
        assert!(c.removed.is_empty());
    }

    #[test]
    fn merge_keeps_live_items_and_replaces_atomic_lists() {
        let gr = deploy();
        let live = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "side", "image": "s"}],
            "tolerations": [{"key": "k"}]}}}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "z", "args": ["2"]}], "tolerations": []}}}});
        let m = merge(&live, &cfg, Schema::builtin(&gr));
        let cs = m["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["image"], "z");
        assert_eq!(cs[0]["args"], json!(["2"]));
        assert_eq!(cs[1]["name"], "side");
        assert_eq!(m["spec"]["template"]["spec"]["tolerations"], json!([]));
    }

    #[test]
    fn merge_orders_shared_items_like_the_configuration() {
        let gr = deploy();
        let live =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "x"}, {"name": "a"}, {"name": "y"}]}}}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"name": "y"}, {"name": "x"}]}}}});
        let m = merge(&live, &cfg, Schema::builtin(&gr));
        let names: Vec<&str> = m["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "y", "x"]);
    }

    #[test]
    fn remove_spares_fields_others_own() {
        let gr = deploy();
        let mut v = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 3}});
        let mut remove = FieldSet::new();
        remove.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into()),
            PathElement::Field("a".into()),
        ]);
        remove.insert(&[PathElement::Field("spec".into()), PathElement::Field("replicas".into())]);
        let mut keep = FieldSet::new();
        keep.insert(&[PathElement::Field("spec".into()), PathElement::Field("replicas".into())]);
        remove_fields(&mut v, &remove, &keep, Schema::builtin(&gr));
        assert_eq!(v, json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3}}));
    }
}
