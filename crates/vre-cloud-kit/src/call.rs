//! One REST request as data, and path templating.
//!
//! Providers build their whole request catalogue as [`RestCall`] values
//! with no I/O, so unit tests can check each request against the cloud's
//! published API description before anything is sent.

use serde_json::Value;

/// One REST API request, described before it is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct RestCall {
    /// The API's own id for the operation (a discovery method id such as
    /// `compute.instances.bulkInsert`, an OpenAPI operationId such as
    /// `VirtualMachines_Get`).
    pub operation: &'static str,
    /// The HTTP verb (`GET`, `PUT`, ...).
    pub verb: &'static str,
    /// The path template with `{parameter}` placeholders, as the API
    /// description writes it.
    pub template: &'static str,
    /// The API version, for APIs that take it apart from the path (ARM's
    /// `api-version` query parameter); empty when the path carries it.
    pub version: &'static str,
    /// Values of the template's `{parameters}`, unencoded.
    pub params: Vec<(&'static str, String)>,
    /// Query parameters (besides a version the client adds from `version`).
    pub query: Vec<(&'static str, String)>,
    /// The JSON body, if the request has one.
    pub body: Option<Value>,
    /// What vre is doing, for messages (`create network lab-net`).
    pub purpose: String,
}

impl RestCall {
    /// A call without version, query or body.
    pub fn new(
        operation: &'static str,
        verb: &'static str,
        template: &'static str,
        params: Vec<(&'static str, String)>,
        purpose: impl Into<String>,
    ) -> Self {
        RestCall {
            operation,
            verb,
            template,
            version: "",
            params,
            query: Vec::new(),
            body: None,
            purpose: purpose.into(),
        }
    }

    /// The same call with an API version.
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// The same call with a JSON body.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The same call with one more query parameter.
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// Every query parameter; with a `version`, that first, named
    /// `version_name` (ARM: `api-version`).
    pub fn query_pairs(&self, version_name: &'static str) -> Vec<(&str, &str)> {
        let version = (!self.version.is_empty()).then_some((version_name, self.version));
        version
            .into_iter()
            .chain(self.query.iter().map(|(k, v)| (*k, v.as_str())))
            .collect()
    }

    /// The path with every parameter substituted (see [`fill_template`]).
    pub fn path(&self) -> String {
        fill_template(self.template, &self.params)
    }
}

/// Fills every `{name}` of `template` with its value from `params`,
/// percent-encoded as one path segment; a parameter without a value becomes
/// empty, an unclosed `{` takes the rest of the template as its name.
pub fn fill_template(template: &str, params: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let name = &rest[open + 1..close];
        let value = params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str());
        out.push_str(&encode_segment(value));
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_substituted_and_encoded() {
        let c = RestCall::new(
            "compute.networks.get",
            "GET",
            "projects/{project}/global/networks/{network}",
            vec![("project", "p-1".into()), ("network", "a b/c".into())],
            "read network",
        );
        assert_eq!(c.path(), "projects/p-1/global/networks/a%20b%2Fc");
    }

    #[test]
    fn missing_and_unclosed_parameters() {
        assert_eq!(fill_template("/a/{x}/b", &[]), "/a//b");
        assert_eq!(fill_template("/a/{x", &[("x", "v".into())]), "/a/v");
        assert_eq!(fill_template("/plain", &[]), "/plain");
        assert_eq!(encode_segment("Az09-._~é"), "Az09-._~%C3%A9");
    }

    #[test]
    fn builders_fill_version_query_and_body() {
        let c = RestCall::new("Op", "PUT", "/{a}", vec![("a", "x".into())], "do it")
            .version("2025-01-01")
            .query("$expand", "state")
            .body(json!({"k": 1}));
        assert_eq!(c.version, "2025-01-01");
        assert_eq!(c.query, vec![("$expand", "state".to_string())]);
        assert_eq!(c.body, Some(json!({"k": 1})));
        assert_eq!(c.purpose, "do it");
        assert_eq!(
            c.query_pairs("api-version"),
            [("api-version", "2025-01-01"), ("$expand", "state")]
        );
        let unversioned = RestCall::new("Op", "GET", "/", vec![], "read").query("filter", "x");
        assert_eq!(unversioned.query_pairs("api-version"), [("filter", "x")]);
    }
}
