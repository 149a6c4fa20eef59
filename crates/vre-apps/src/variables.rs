//! The variables of app manifests, substituted before the YAML is parsed.
//!
//! | variable | value |
//! |---|---|
//! | `${VRE_CLUSTER}` | the cluster name |
//! | `${VRE_APP}` | the app name |
//! | `${VRE_NAMESPACE}` | the app's namespace |
//! | `${VRE_DOMAIN}` | the cluster domain (`mylab.example.org`, `192.0.2.7.nip.io`) |
//! | `${VRE_HOST}` | `<app>.<domain>` |
//! | `${VRE_URL}` | the app's URL (`https://<app>.<domain>`) |
//! | `${VRE_STORAGE_CLASS}` | the shared ReadWriteMany StorageClass |
//! | `${VRE_SECRET:<name>}` | a random 32-character token generated once and kept 0600 in `<dir>/.vre/secrets/app-<app>-<name>` |
//!
//! `$${` writes a literal `${`. Other `${...}` (not starting with `VRE_`)
//! are left alone, so shell snippets inside manifests keep working. An
//! unknown `VRE_` variable, or one without a value in this cluster, is an
//! error naming the spec field.

use vre_core::{ClusterFacts, Error, Result};
use vre_microservice_kit::{app_url, local_secret};

/// The shared ReadWriteMany StorageClass (vre-storage's `vre-shared`; named
/// here so apps do not depend on the storage crate).
pub const SHARED_STORAGE_CLASS: &str = "vre-shared";

/// Length of generated `${VRE_SECRET:...}` tokens.
pub const SECRET_LEN: usize = 32;

/// What variables resolve against.
pub struct Context<'a> {
    pub facts: &'a ClusterFacts,
    pub app: &'a str,
    pub namespace: &'a str,
    /// The spec field named in errors (`apps[0].manifest`).
    pub field: &'a str,
}

impl Context<'_> {
    fn missing(&self, var: &str, why: &str) -> Error {
        Error::input(self.field, format!("uses ${{{var}}} but {why}"))
    }

    /// The value of `var` (without `${` `}`).
    pub fn resolve(&self, var: &str) -> Result<String> {
        let facts = self.facts;
        let no_domain = "the cluster has no domain; set dns.provider to \"nip.io\" or \"cloudflare\"";
        Ok(match var {
            "VRE_CLUSTER" => facts.cluster().to_string(),
            "VRE_APP" => self.app.to_string(),
            "VRE_NAMESPACE" => self.namespace.to_string(),
            "VRE_DOMAIN" => facts.domain.clone().ok_or_else(|| self.missing(var, no_domain))?,
            "VRE_HOST" => facts.host_for(self.app).ok_or_else(|| self.missing(var, no_domain))?,
            "VRE_URL" => app_url(facts, self.app).ok_or_else(|| self.missing(var, "the edge has no address yet"))?,
            "VRE_STORAGE_CLASS" => {
                if !facts.spec.storage.enabled {
                    return Err(self.missing(var, "shared storage is disabled; set storage.enabled = true"));
                }
                SHARED_STORAGE_CLASS.to_string()
            }
            other => match other.strip_prefix("VRE_SECRET:") {
                Some(name) if valid_secret_name(name) => {
                    local_secret::load_or_create_token(&facts.dir, &format!("app-{}-{name}", self.app), SECRET_LEN)?
                }
                Some(name) => {
                    return Err(Error::input(
                        self.field,
                        format!(
                            "${{VRE_SECRET:{name}}}: a secret name may only hold lowercase letters, digits and '-'"
                        ),
                    ));
                }
                None => {
                    return Err(Error::input(
                        self.field,
                        format!(
                            "unknown variable ${{{other}}}; use VRE_CLUSTER, VRE_APP, VRE_NAMESPACE, VRE_DOMAIN, VRE_HOST, VRE_URL, VRE_STORAGE_CLASS or VRE_SECRET:<name> (write $${{ for a literal ${{)"
                        ),
                    ));
                }
            },
        })
    }
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `text` with every `${VRE_...}` replaced through `resolve`.
pub fn substitute(text: &str, resolve: impl Fn(&str) -> Result<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match after.find('}') {
                Some(end) if after[..end].starts_with("VRE_") => {
                    out.push_str(&resolve(&after[..end])?);
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(var: &str) -> Result<String> {
        match var {
            "VRE_DOMAIN" => Ok("lab.example.org".into()),
            other => Err(Error::input("apps[0].manifest", format!("unknown {other}"))),
        }
    }

    #[test]
    fn substitutes_vre_variables_only() {
        let s = substitute("host: x.${VRE_DOMAIN} sh: ${HOME} $$ lit: $${VRE_DOMAIN} $", fake).unwrap();
        assert_eq!(s, "host: x.lab.example.org sh: ${HOME} $$ lit: ${VRE_DOMAIN} $");
        assert!(substitute("${VRE_NOPE}", fake).is_err());
        assert_eq!(
            substitute("unterminated ${VRE_DOMAIN", fake).unwrap(),
            "unterminated ${VRE_DOMAIN"
        );
        assert_eq!(substitute("", fake).unwrap(), "");
    }
}
