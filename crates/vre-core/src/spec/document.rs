//! A TOML document kept with the byte span of every key and value, so that
//! every problem found later can be reported as `vre.toml:LINE:COL`.
//!
//! Provider crates read their own table (`[openstack]`, `[aws]`, ...) through
//! [`TableReader`], which records type errors and unknown keys in
//! [`Diagnostics`] instead of stopping at the first one.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Byte range of a key or value in the source text.
pub type Span = Range<usize>;

/// A parsed TOML value with its position in the source (when it has one:
/// tables built in code have none).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Where it is in the source.
    pub span: Option<Span>,
    /// The value.
    pub value: Value,
}

/// A TOML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// A date-time, as written.
    Datetime(String),
    /// An array.
    Array(Vec<Item>),
    /// A table.
    Table(Table),
}

impl Value {
    /// The TOML type name, as used in messages (`expected a string, found an integer`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A key with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key.
    pub name: String,
    /// Where it is in the source.
    pub span: Option<Span>,
}

/// A TOML table, entries in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Where the table is in the source.
    pub span: Option<Span>,
    /// Its entries.
    pub entries: Vec<(Key, Item)>,
}

impl Table {
    /// The item under `key`.
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// Where `key` is in the source.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .and_then(|(k, _)| k.span.clone())
    }

    /// Inserts or replaces `key` (no span: values set in code).
    pub fn insert(&mut self, key: &str, value: Value) {
        let item = Item { span: None, value };
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| k.name == key) {
            slot.1 = item;
        } else {
            self.entries.push((
                Key {
                    name: key.to_string(),
                    span: None,
                },
                item,
            ));
        }
    }

    /// Builds a table from anything serde can turn into a JSON object: how a
    /// library user fills a provider table in code (`OpenStackSettings {..}`).
    /// `null` values are left out.
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Table, String> {
        let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
        match from_json(&json) {
            Some(Value::Table(t)) => Ok(t),
            _ => Err("a provider table must serialize to an object".into()),
        }
    }

    /// Converts to JSON (dropping spans), e.g. to hand a table to serde.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.entries {
            map.insert(k.name.clone(), v.value.to_json());
        }
        serde_json::Value::Object(map)
    }

    /// Writes the table back as TOML text (used to persist specs built in code).
    pub fn to_toml(&self) -> toml::Table {
        let mut t = toml::Table::new();
        for (k, v) in &self.entries {
            if let Some(value) = v.value.to_toml() {
                t.insert(k.name.clone(), value);
            }
        }
        t
    }
}

impl Value {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) | Value::Datetime(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(|i| i.value.to_json()).collect()),
            Value::Table(t) => t.to_json(),
        }
    }

    fn to_toml(&self) -> Option<toml::Value> {
        Some(match self {
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Datetime(s) => toml::Value::String(s.clone()),
            Value::Integer(i) => toml::Value::Integer(*i),
            Value::Float(f) => toml::Value::Float(*f),
            Value::Boolean(b) => toml::Value::Boolean(*b),
            Value::Array(a) => toml::Value::Array(a.iter().filter_map(|i| i.value.to_toml()).collect()),
            Value::Table(t) => toml::Value::Table(t.to_toml()),
        })
    }
}

fn from_json(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(
            a.iter()
                .filter_map(from_json)
                .map(|value| Item { span: None, value })
                .collect(),
        ),
        serde_json::Value::Object(o) => Value::Table(Table {
            span: None,
            entries: o
                .iter()
                .filter_map(|(k, v)| {
                    from_json(v).map(|value| {
                        (
                            Key {
                                name: k.clone(),
                                span: None,
                            },
                            Item { span: None, value },
                        )
                    })
                })
                .collect(),
        }),
    })
}

/// Maps byte offsets to 1-based line and column numbers.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    /// The file name, for messages.
    pub file: String,
    line_starts: Vec<usize>,
    text: String,
}

impl SourceMap {
    /// A map of `text`, read from `file`.
    pub fn new(file: impl Into<String>, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file: file.into(),
            line_starts,
            text: text.to_string(),
        }
    }

    /// 1-based (line, column); columns count characters, not bytes.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let end = offset.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map(|s| s.chars().count())
            .unwrap_or(end - start);
        (line + 1, col + 1)
    }
}

/// One problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Dotted path of the field, e.g. `nodes.service.count`.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
    /// `file:line:col`, when the field came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{}:{}:{}: ", loc.file, loc.line, loc.column)?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found while reading and validating a spec; reported all at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
    #[serde(skip)]
    pending: Vec<(Option<Span>, usize)>,
}

impl Diagnostics {
    /// No problems.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem at `span` (if known).
    pub fn error(&mut self, field: &str, span: Option<Span>, message: impl Into<String>) {
        self.pending.push((span, self.problems.len()));
        self.problems.push(Problem {
            field: field.to_string(),
            message: message.into(),
            location: None,
        });
    }

    /// No problems were found.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Resolves spans to `file:line:col` once the source is known.
    pub fn locate(&mut self, source: &SourceMap) {
        for (span, index) in self.pending.drain(..) {
            if let Some(span) = span {
                let (line, column) = source.locate(span.start);
                self.problems[index].location = Some(Location {
                    file: source.file.clone(),
                    line,
                    column,
                });
            }
        }
    }

    /// Problems sorted by position, then field (stable, for display and tests).
    pub fn sorted(mut self) -> Self {
        self.problems.sort_by(|a, b| {
            let ka = a.location.as_ref().map(|l| (l.line, l.column));
            let kb = b.location.as_ref().map(|l| (l.line, l.column));
            ka.cmp(&kb).then_with(|| a.field.cmp(&b.field))
        });
        self
    }

    /// Adds every problem of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        let offset = self.problems.len();
        self.pending
            .extend(other.pending.into_iter().map(|(s, i)| (s, i + offset)));
        self.problems.extend(other.problems);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Parses TOML text into a spanned [`Table`]. Syntax errors become problems
/// with their location; parsing recovers where it can so that several syntax
/// errors are reported together.
pub fn parse_document(text: &str, diags: &mut Diagnostics) -> Table {
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    for e in errors {
        let message = e.message().trim().replace('\n', " ");
        diags.error("(syntax)", e.span(), format!("{message}; fix the TOML syntax here"));
    }
    let span = root.span();
    convert_table(root.get_ref(), Some(span))
}

fn convert_table(t: &toml::de::DeTable<'_>, span: Option<Span>) -> Table {
    Table {
        span,
        entries: t
            .iter()
            .map(|(k, v)| {
                (
                    Key {
                        name: k.get_ref().to_string(),
                        span: Some(k.span()),
                    },
                    convert_item(v),
                )
            })
            .collect(),
    }
}

fn convert_item(v: &toml::Spanned<toml::de::DeValue<'_>>) -> Item {
    use toml::de::DeValue;
    let span = Some(v.span());
    let value = match v.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(digits.trim_start_matches('+'), i.radix()) {
                Ok(n) => Value::Integer(n),
                // keeps the item but as a float marker; readers report it as out of range
                Err(_) => Value::Float(f64::INFINITY),
            }
        }
        DeValue::Float(f) => Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Boolean(*b),
        DeValue::Datetime(d) => Value::Datetime(d.to_string()),
        DeValue::Array(a) => Value::Array(a.iter().map(convert_item).collect()),
        DeValue::Table(t) => Value::Table(convert_table(t, span.clone())),
    };
    Item { span, value }
}

/// Reads a table field by field, collecting type errors, and reports the keys
/// nobody asked for as unknown (with a suggestion) when [`TableReader::finish`]
/// is called.
pub struct TableReader<'a> {
    table: &'a Table,
    path: String,
    seen: BTreeSet<&'a str>,
}

/// A value read from a spec, with the span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub span: Option<Span>,
}

impl<'a> TableReader<'a> {
    /// `path` is the dotted prefix of this table (`""` for the root).
    pub fn new(table: &'a Table, path: impl Into<String>) -> Self {
        TableReader {
            table,
            path: path.into(),
            seen: BTreeSet::new(),
        }
    }

    /// Dotted path of `key` inside this table.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    /// The dotted path of the table.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The table read.
    pub fn table(&self) -> &'a Table {
        self.table
    }

    /// The span of the table itself (for "missing key" problems).
    pub fn span(&self) -> Option<Span> {
        self.table.span.clone()
    }

    /// Marks `key` as known and returns its item.
    pub fn item(&mut self, key: &str) -> Option<&'a Item> {
        let (k, item) = self.table.entries.iter().find(|(k, _)| k.name == key)?;
        self.seen.insert(k.name.as_str());
        Some(item)
    }

    fn wrong_type(&self, diags: &mut Diagnostics, key: &str, item: &Item, expected: &str, example: &str) {
        diags.error(
            &self.field(key),
            item.span.clone(),
            format!(
                "expected {expected}, found {}; write for example `{key} = {example}`",
                item.value.type_name()
            ),
        );
    }

    fn missing(&self, diags: &mut Diagnostics, key: &str, example: &str) {
        let table = if self.path.is_empty() {
            "the top of the file".to_string()
        } else {
            format!("[{}]", self.path)
        };
        diags.error(
            &self.field(key),
            self.table.span.clone().map(|s| s.start..s.start),
            format!("is required; add `{key} = {example}` to {table}"),
        );
    }

    /// The string at `key`, if present; a wrong type is reported with `example`.
    pub fn string(&mut self, diags: &mut Diagnostics, key: &str, example: &str) -> Option<Spanned<String>> {
        let item = self.item(key)?;
        match &item.value {
            Value::String(s) => Some(Spanned {
                value: s.clone(),
                span: item.span.clone(),
            }),
            _ => {
                self.wrong_type(diags, key, item, "a string", example);
                None
            }
        }
    }

    /// Like [`TableReader::string`], reporting a missing key.
    pub fn required_string(&mut self, diags: &mut Diagnostics, key: &str, example: &str) -> Option<Spanned<String>> {
        if self.table.get(key).is_none() {
            self.missing(diags, key, example);
            return None;
        }
        self.string(diags, key, example)
    }

    /// The boolean at `key`, if present; a wrong type is reported.
    pub fn bool(&mut self, diags: &mut Diagnostics, key: &str) -> Option<Spanned<bool>> {
        let item = self.item(key)?;
        match &item.value {
            Value::Boolean(b) => Some(Spanned {
                value: *b,
                span: item.span.clone(),
            }),
            Value::String(s) if s == "true" || s == "false" => {
                diags.error(
                    &self.field(key),
                    item.span.clone(),
                    format!("expected a boolean, found the string \"{s}\"; write `{key} = {s}` without quotes"),
                );
                None
            }
            _ => {
                self.wrong_type(diags, key, item, "a boolean", "true");
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn integer(
        &mut self,
        diags: &mut Diagnostics,
        key: &str,
        min: i64,
        max: i64,
        example: i64,
    ) -> Option<Spanned<i64>> {
        let item = self.item(key)?;
        match &item.value {
            Value::Integer(n) if *n >= min && *n <= max => Some(Spanned {
                value: *n,
                span: item.span.clone(),
            }),
            Value::Integer(n) => {
                let bound = if *n < min {
                    format!("must be {min} or more")
                } else {
                    format!("must be {max} or less")
                };
                diags.error(
                    &self.field(key),
                    item.span.clone(),
                    format!("{bound}, got {n}; write a whole number from {min} to {max}, such as `{key} = {example}`"),
                );
                None
            }
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                diags.error(
                    &self.field(key),
                    item.span.clone(),
                    format!(
                        "expected an integer, found the string \"{s}\"; write `{key} = {}` without quotes",
                        s.trim()
                    ),
                );
                None
            }
            _ => {
                self.wrong_type(diags, key, item, "an integer", &example.to_string());
                None
            }
        }
    }

    /// A number (integer or float) in `min..=max`.
    pub fn float(
        &mut self,
        diags: &mut Diagnostics,
        key: &str,
        min: f64,
        max: f64,
        example: f64,
    ) -> Option<Spanned<f64>> {
        let item = self.item(key)?;
        let v = match &item.value {
            Value::Float(f) => *f,
            Value::Integer(i) => *i as f64,
            _ => {
                self.wrong_type(diags, key, item, "a number", &example.to_string());
                return None;
            }
        };
        if v.is_nan() || v < min || v > max {
            diags.error(
                &self.field(key),
                item.span.clone(),
                format!("{v} is out of range; write a number from {min} to {max}, such as `{key} = {example}`"),
            );
            return None;
        }
        Some(Spanned {
            value: v,
            span: item.span.clone(),
        })
    }

    /// The array of strings at `key`, if present; a wrong type is reported with `example`.
    pub fn string_array(&mut self, diags: &mut Diagnostics, key: &str, example: &str) -> Option<Vec<Spanned<String>>> {
        let item = self.item(key)?;
        let Value::Array(items) = &item.value else {
            self.wrong_type(diags, key, item, "an array of strings", example);
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            match &it.value {
                Value::String(s) => out.push(Spanned {
                    value: s.clone(),
                    span: it.span.clone(),
                }),
                other => diags.error(
                    &format!("{}[{i}]", self.field(key)),
                    it.span.clone(),
                    format!(
                        "expected a string, found {}; write for example `{key} = {example}`",
                        other.type_name()
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table; `None` when absent or not a table (the latter is reported).
    pub fn table_reader(&mut self, diags: &mut Diagnostics, key: &str) -> Option<TableReader<'a>> {
        let field = self.field(key);
        let item = self.item(key)?;
        match &item.value {
            Value::Table(t) => Some(TableReader::new(t, field)),
            other => {
                diags.error(
                    &field,
                    item.span.clone(),
                    format!(
                        "expected a table, found {}; write it as a `[{field}]` section",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }

    /// An array of tables (`[[apps]]`).
    pub fn table_array(&mut self, diags: &mut Diagnostics, key: &str) -> Vec<TableReader<'a>> {
        let field = self.field(key);
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        match &item.value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| match &it.value {
                    Value::Table(t) => Some(TableReader::new(t, format!("{field}[{i}]"))),
                    other => {
                        diags.error(
                            &format!("{field}[{i}]"),
                            it.span.clone(),
                            format!(
                                "expected a table, found {}; write each entry as a `[[{field}]]` section",
                                other.type_name()
                            ),
                        );
                        None
                    }
                })
                .collect(),
            other => {
                diags.error(
                    &field,
                    item.span.clone(),
                    format!(
                        "expected an array of tables, found {}; write each entry as a `[[{field}]]` section",
                        other.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key that was not read, suggesting the closest known one.
    pub fn finish(self, diags: &mut Diagnostics, known: &[&str]) {
        for (k, item) in &self.table.entries {
            if self.seen.contains(k.name.as_str()) {
                continue;
            }
            let field = self.field(&k.name);
            let hint = match closest(&k.name, known) {
                Some(c) => format!("did you mean `{c}`?"),
                None if known.is_empty() => "remove it".to_string(),
                None => format!("known keys here: {}", known.join(", ")),
            };
            diags.error(
                &field,
                k.span.clone().or_else(|| item.span.clone()),
                format!("unknown key; {hint}"),
            );
        }
    }
}

/// The known word closest to `word` when it is plausibly a typo of it.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let src = "a = 1\nbb = \"x\"\n";
        let map = SourceMap::new("vre.toml", src);
        assert_eq!(map.locate(0), (1, 1));
        assert_eq!(map.locate(6), (2, 1));
        assert_eq!(map.locate(11), (2, 6));
    }

    #[test]
    fn reader_reports_unknown_keys_with_suggestion() {
        let mut d = Diagnostics::new();
        let t = parse_document("flavour = \"m1\"\ncount = 2\n", &mut d);
        let mut r = TableReader::new(&t, "nodes.service");
        let c = r.integer(&mut d, "count", 0, 10, 2).map(|s| s.value);
        assert_eq!(c, Some(2));
        r.finish(&mut d, &["count", "flavor"]);
        d.locate(&SourceMap::new("vre.toml", "flavour = \"m1\"\ncount = 2\n"));
        assert_eq!(
            d.to_string(),
            "vre.toml:1:1: nodes.service.flavour: unknown key; did you mean `flavor`?"
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let mut d = Diagnostics::new();
        let src = "name = \n";
        parse_document(src, &mut d);
        d.locate(&SourceMap::new("vre.toml", src));
        assert_eq!(d.len(), 1);
        assert!(d.to_string().starts_with("vre.toml:1:"), "{d}");
    }

    #[test]
    fn from_serialize_round_trips() {
        #[derive(Serialize)]
        struct S {
            a: String,
            b: Option<u32>,
            c: Vec<u16>,
        }
        let t = Table::from_serialize(&S {
            a: "x".into(),
            b: None,
            c: vec![1, 2],
        })
        .unwrap();
        assert_eq!(t.get("a").unwrap().value, Value::String("x".into()));
        assert!(t.get("b").is_none());
        assert_eq!(t.to_json(), serde_json::json!({"a": "x", "c": [1, 2]}));
    }

    #[test]
    fn closest_matches_typos_only() {
        assert_eq!(closest("flavour", &["flavor", "count"]), Some("flavor"));
        assert_eq!(closest("zzzzzz", &["flavor", "count"]), None);
    }
}
