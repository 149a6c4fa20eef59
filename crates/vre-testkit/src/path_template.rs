//! Matching a request path against the `{name}` path templates of an API
//! description (a discovery document, an OpenAPI file), for the request
//! checkers of the fake cloud APIs.

/// How a concrete path matched a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateMatch {
    /// How many segments matched literally (the most literal match is the best).
    pub literal: usize,
    /// `(name, raw value)` of each `{name}` segment, in order, the name as written.
    pub values: Vec<(String, String)>,
}

/// Matches `path` against `template` segment by segment: `{name}` takes any
/// segment, a literal one must satisfy `literal_eq(template, path)`; `None`
/// when the segment counts differ or a literal does not match.
pub fn match_template(
    template: &[&str],
    path: &[&str],
    literal_eq: impl Fn(&str, &str) -> bool,
) -> Option<TemplateMatch> {
    if template.len() != path.len() {
        return None;
    }
    let mut found = TemplateMatch {
        literal: 0,
        values: Vec::new(),
    };
    for (t, s) in template.iter().zip(path) {
        if let Some(name) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            found.values.push((name.to_string(), s.to_string()));
        } else if literal_eq(t, s) {
            found.literal += 1;
        } else {
            return None;
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_take_any_segment_and_literals_must_match() {
        let t = ["projects", "{project}", "zones", "{zone}"];
        let m = match_template(&t, &["projects", "p", "zones", "z"], |a, b| a == b).unwrap();
        assert_eq!(m.literal, 2);
        assert_eq!(m.values[1], ("zone".to_string(), "z".to_string()));
        assert_eq!(
            match_template(&t, &["projects", "p", "regions", "z"], |a, b| a == b),
            None
        );
        assert_eq!(match_template(&t, &["projects", "p"], |a, b| a == b), None);
        assert!(match_template(&t, &["PROJECTS", "p", "Zones", "z"], |a, b| a.eq_ignore_ascii_case(b)).is_some());
    }
}
