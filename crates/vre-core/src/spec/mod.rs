//! The cluster spec (`vre.toml`): reading with locations, typed model,
//! validation.

pub mod document;
mod model;
mod read;
mod validate;

pub use document::{Diagnostics, Item, Key, Location, Problem, SourceMap, Span, Spanned, Table, TableReader, Value};
pub use model::*;
pub use read::{ProviderTables, SpanIndex, read_spec};
pub use validate::{
    FieldProblem, MAX_NAME_LEN, MIN_KUBERNETES_MINOR, check_dns_label, is_public, parse_version, validate,
};

use std::path::{Path, PathBuf};

/// The file name of a spec inside a deployment directory.
pub const SPEC_FILE: &str = "vre.toml";

/// A spec read from a file, with what is needed to point at its lines.
#[derive(Clone, Debug)]
pub struct LoadedSpec {
    /// The parsed, validated spec.
    pub spec: ClusterSpec,
    /// The deployment directory (relative paths in the spec start here).
    pub dir: PathBuf,
    /// The text, for line and column numbers.
    pub source: SourceMap,
    /// Where each field is in the text.
    pub spans: SpanIndex,
}

impl LoadedSpec {
    /// A problem on `field`, located in the file when the field was written there.
    pub fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        let mut d = Diagnostics::new();
        d.error(field, self.spans.get(field), message);
        d.locate(&self.source);
        d.problems.remove(0)
    }

    /// The SSH public key's text (the file named by `ssh.public_key`).
    pub fn public_key(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join(&self.spec.ssh.public_key)).map(|s| s.trim().to_string())
    }
}

/// Parses and validates spec text. `check_provider_table` lets the provider's
/// factory read its own table into the same diagnostics. Returns every
/// problem at once, located as `file:line:col`.
pub fn parse_spec(
    text: &str,
    file: &str,
    dir: &Path,
    tables: &ProviderTables,
    check_provider_table: &dyn Fn(&ClusterSpec, &mut Diagnostics),
) -> Result<LoadedSpec, Diagnostics> {
    let source = SourceMap::new(file, text);
    let mut diags = Diagnostics::new();
    let root = document::parse_document(text, &mut diags);
    if !diags.is_empty() {
        // syntax errors make the rest unreliable
        diags.locate(&source);
        return Err(diags.sorted());
    }
    let (spec, spans) = read_spec(&root, tables, &mut diags);
    let type_errors: std::collections::BTreeSet<String> = diags.problems.iter().map(|p| p.field.clone()).collect();
    for (field, message) in validate(&spec) {
        // a field already reported as badly typed keeps its first message
        if type_errors.contains(&field) || type_errors.iter().any(|t| field.starts_with(&format!("{t}."))) {
            continue;
        }
        diags.error(&field, spans.get(&field), message);
    }
    if !spec.provider.is_empty() && !type_errors.contains("provider") {
        if tables.table_of(&spec.provider).is_none() {
            let known: Vec<&str> = tables.tables.iter().map(|(p, _)| p.as_str()).collect();
            let hint = match document::closest(&spec.provider, &known) {
                Some(c) => format!("did you mean \"{c}\"?"),
                None => format!("registered providers: {}", known.join(", ")),
            };
            diags.error(
                "provider",
                spans.get("provider"),
                format!("unknown provider \"{}\"; {hint}", spec.provider),
            );
        } else {
            check_provider_table(&spec, &mut diags);
        }
    }
    check_public_key(&spec, dir, &spans, &mut diags);
    diags.locate(&source);
    if diags.is_empty() {
        Ok(LoadedSpec {
            spec,
            dir: dir.to_path_buf(),
            source,
            spans,
        })
    } else {
        Err(diags.sorted())
    }
}

fn check_public_key(spec: &ClusterSpec, dir: &Path, spans: &SpanIndex, diags: &mut Diagnostics) {
    if spec.ssh.public_key.as_os_str().is_empty() {
        return;
    }
    let path = dir.join(&spec.ssh.public_key);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim_start().starts_with("ssh-") || text.trim_start().starts_with("ecdsa-") => {}
        Ok(_) => diags.error(
            "ssh.public_key",
            spans.get("ssh.public_key"),
            format!(
                "{} is not an OpenSSH public key; point it at a .pub file (`ssh-keygen -y -f KEY > KEY.pub`)",
                path.display()
            ),
        ),
        Err(e) => diags.error(
            "ssh.public_key",
            spans.get("ssh.public_key"),
            format!(
                "cannot read {}: {e}; point it at an existing .pub file (`vre init` writes ssh_key.pub)",
                path.display()
            ),
        ),
    }
}
