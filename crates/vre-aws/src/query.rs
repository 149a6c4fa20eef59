//! One EC2 Query API request: `Action`, `Version` and the flattened
//! parameters of the ec2 protocol (`Filter.1.Name`, `Filter.1.Value.1`,
//! `TagSpecification.1.Tag.2.Key`, ...), form-encoded into a POST body.

use std::fmt;

/// The EC2 API version every request names.
pub const API_VERSION: &str = "2016-11-15";

/// A tag key and value.
pub type Tag = (String, String);

/// An EC2 Query API request.
#[derive(Clone, PartialEq, Eq)]
pub struct Query {
    action: &'static str,
    params: Vec<(String, String)>,
    /// Parameter names whose values must never be shown (user data).
    redacted: Vec<String>,
}

impl fmt::Debug for Query {
    /// Parameter values can be large (user data) or carry node bootstrap
    /// secrets (the join token in user data): only names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("action", &self.action)
            .field(
                "params",
                &self.params.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Query {
    pub fn new(action: &'static str) -> Self {
        Query {
            action,
            params: Vec::new(),
            redacted: Vec::new(),
        }
    }

    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The parameters in the order they were added (without Action and Version).
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The value of parameter `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Sets `name` (replacing an earlier value).
    pub fn param(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` when `value` is `Some`.
    pub fn param_opt(self, name: impl Into<String>, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(v) => self.param(name, v),
            None => self,
        }
    }

    /// Sets a parameter whose value must not show up in logs.
    pub fn secret_param(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        let name = name.into();
        self.redacted.push(name.clone());
        self.set(name, value);
        self
    }

    fn set(&mut self, name: impl Into<String>, value: impl fmt::Display) {
        let name = name.into();
        let value = value.to_string();
        match self.params.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name, value)),
        }
    }

    /// A list of scalars: `Prefix.1`, `Prefix.2`, ...
    pub fn list<I, V>(mut self, prefix: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: fmt::Display,
    {
        let start = self.next_index(prefix);
        for (i, v) in values.into_iter().enumerate() {
            self.set(format!("{prefix}.{}", start + i), v);
        }
        self
    }

    /// One filter (`Filter.N.Name`, `Filter.N.Value.M`); several filters AND
    /// together, several values of one filter OR together.
    pub fn filter<I, V>(self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: fmt::Display,
    {
        self.filter_as("Filter", name, values)
    }

    /// A filter under another list name (`DescribeImportImageTasks` names its list `Filters`).
    pub fn filter_as<I, V>(mut self, list: &str, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: fmt::Display,
    {
        let n = self.next_index(list);
        self.set(format!("{list}.{n}.Name"), name);
        self.list(&format!("{list}.{n}.Value"), values)
    }

    /// Matches resources whose tag `key` has `value`.
    pub fn tag_filter(self, key: &str, value: &str) -> Self {
        self.filter(&format!("tag:{key}"), [value])
    }

    /// Tags the resource `resource_type` (`vpc`, `instance`, `volume`,
    /// `elastic-ip`, ...) at creation.
    pub fn tag_specification(mut self, resource_type: &str, tags: &[Tag]) -> Self {
        let n = self.next_index("TagSpecification");
        self.set(format!("TagSpecification.{n}.ResourceType"), resource_type);
        self.tag_list(&format!("TagSpecification.{n}.Tag"), tags)
    }

    /// `Prefix.N.Key` / `Prefix.N.Value` (CreateTags uses `Tag`).
    pub fn tag_list(mut self, prefix: &str, tags: &[Tag]) -> Self {
        let start = self.next_index(prefix);
        for (i, (k, v)) in tags.iter().enumerate() {
            self.set(format!("{prefix}.{}.Key", start + i), k);
            self.set(format!("{prefix}.{}.Value", start + i), v);
        }
        self
    }

    /// The first unused index of list `prefix`.
    fn next_index(&self, prefix: &str) -> usize {
        let p = format!("{prefix}.");
        self.params
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&p))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(1, |n| n + 1)
    }

    /// The `application/x-www-form-urlencoded` body.
    pub fn encode(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("Action", self.action);
        s.append_pair("Version", API_VERSION);
        for (k, v) in &self.params {
            s.append_pair(k, v);
        }
        s.finish()
    }

    /// `Action k=v ...` for logs, with secret values replaced.
    pub fn describe(&self) -> String {
        let mut out = self.action.to_string();
        for (k, v) in &self.params {
            let shown = if self.redacted.contains(k) {
                format!("<{} bytes>", v.len())
            } else if v.len() > 80 {
                format!("{}...", v.chars().take(77).collect::<String>())
            } else {
                v.clone()
            };
            out.push_str(&format!(" {k}={shown}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_filters_lists_and_tags_with_one_based_indexes() {
        let q = Query::new("DescribeInstances")
            .filter("tag:vre:cluster", ["lab"])
            .filter("instance-state-name", ["pending", "running"])
            .list("InstanceId", ["i-1", "i-2"]);
        assert_eq!(q.get("Filter.1.Name"), Some("tag:vre:cluster"));
        assert_eq!(q.get("Filter.1.Value.1"), Some("lab"));
        assert_eq!(q.get("Filter.2.Name"), Some("instance-state-name"));
        assert_eq!(q.get("Filter.2.Value.2"), Some("running"));
        assert_eq!(q.get("InstanceId.2"), Some("i-2"));

        let tags = vec![
            ("vre:cluster".to_string(), "lab".to_string()),
            ("Name".to_string(), "lab-net".to_string()),
        ];
        let q = Query::new("RunInstances")
            .tag_specification("instance", &tags)
            .tag_specification("volume", &tags[..1]);
        assert_eq!(q.get("TagSpecification.1.ResourceType"), Some("instance"));
        assert_eq!(q.get("TagSpecification.1.Tag.2.Value"), Some("lab-net"));
        assert_eq!(q.get("TagSpecification.2.ResourceType"), Some("volume"));
        assert_eq!(q.get("TagSpecification.2.Tag.1.Key"), Some("vre:cluster"));
        assert_eq!(q.get("TagSpecification.2.Tag.2.Key"), None);
    }

    #[test]
    fn encodes_a_form_body_with_action_and_version_first() {
        let q = Query::new("CreateTags")
            .list("ResourceId", ["i-1"])
            .tag_list("Tag", &[("vre:key".into(), "server/master-1".into())]);
        assert_eq!(
            q.encode(),
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1&Tag.1.Key=vre%3Akey&Tag.1.Value=server%2Fmaster-1"
        );
    }

    #[test]
    fn secret_values_stay_out_of_debug_and_descriptions() {
        let q = Query::new("RunInstances")
            .secret_param("UserData", "dG9rZW4=")
            .param("MinCount", 1);
        assert!(!format!("{q:?}").contains("dG9rZW4="));
        assert_eq!(q.describe(), "RunInstances UserData=<8 bytes> MinCount=1");
        assert!(q.encode().contains("UserData=dG9rZW4%3D"));
    }
}
