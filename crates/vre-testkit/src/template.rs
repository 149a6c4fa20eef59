//! The checks every provider's `vre init` template must pass, for a
//! provider crate's own tests (the CLI's tests run the real `vre init`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use vre_core::{Error, ProviderContext, ProviderFactory, ProviderRegistry};

/// A vre.toml laid out as `vre init` writes it, from the factory's
/// template, with the provider's table last.
pub fn spec_text(f: &dyn ProviderFactory) -> String {
    let t = f.template();
    let mut s = String::new();
    s.push_str(&t.credentials);
    s.push_str(&format!("\nname = \"lab\"\nprovider = \"{}\"\n\n", f.name()));
    s.push_str(&format!(
        "[image]\nname = \"{}\"\npreinstalled = {}\n\n",
        t.image, t.image_preinstalled
    ));
    s.push_str(&format!(
        "[ssh]\nuser = \"{}\"\npublic_key = \"ssh_key.pub\"\n\n",
        t.ssh_user
    ));
    s.push_str(&format!("[nodes.master]\nflavor = \"{}\"\n\n", t.master_flavor));
    s.push_str(&format!(
        "[nodes.service]\ncount = 2\nflavor = \"{}\"\n\n",
        t.worker_flavor
    ));
    s.push_str(&format!(
        "[nodes.storage]\ncount = 1\nflavor = \"{}\"\nvolume_gb = 100\n\n",
        t.storage_flavor
    ));
    s.push_str(&format!("[nodes.edge]\ncount = 1\nflavor = \"{}\"\n\n", t.edge_flavor));
    s.push_str(&t.table);
    s
}

/// A deployment directory holding the public key the spec names.
fn deployment_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("ssh_key.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZyZQ vre-lab\n",
    )
    .expect("write ssh_key.pub");
    dir
}

fn registry_of(f: Arc<dyn ProviderFactory>) -> ProviderRegistry {
    let mut registry = ProviderRegistry::new();
    registry.register(f);
    registry
}

/// The template's spec validates, the provider's table included; with an
/// empty environment, building the provider fails with
/// [`Error::Credentials`] whose message names `credential_hint` (the
/// variable or file the user must provide).
pub async fn assert_template_validates_and_asks_for(f: Arc<dyn ProviderFactory>, credential_hint: &str) {
    let dir = deployment_dir();
    let text = spec_text(f.as_ref());
    let registry = registry_of(f);
    let loaded = registry
        .parse_spec(&text, "vre.toml", dir.path())
        .unwrap_or_else(|e| panic!("the template does not validate:\n{e}\n---\n{text}"));
    let mut ctx = ProviderContext::new(Arc::new(loaded.spec), dir.path().to_path_buf());
    ctx.env = BTreeMap::new();
    let e = registry
        .build(ctx)
        .await
        .err()
        .expect("no credentials in the environment, yet the provider was built");
    assert!(matches!(e, Error::Credentials { .. }), "{e}");
    assert!(e.to_string().contains(credential_hint), "{e}");
}

/// An unknown key at the end of the provider's table is an error that
/// names the file, the line and the key.
pub fn assert_table_typo_is_located(f: Arc<dyn ProviderFactory>) {
    let dir = deployment_dir();
    let table = f.table().to_string();
    let text = format!("{}zonee = \"x\"\n", spec_text(f.as_ref()));
    let e = registry_of(f)
        .parse_spec(&text, "vre.toml", Path::new(dir.path()))
        .expect_err("an unknown key is an error")
        .to_string();
    let line = text.lines().count();
    let want = format!("vre.toml:{line}:1: {table}.zonee: unknown key");
    assert!(e.contains(&want), "expected `{want}` in:\n{e}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::testing::{FakeCloud, FakeCloudFactory};

    fn fake() -> Arc<dyn ProviderFactory> {
        Arc::new(FakeCloudFactory {
            cloud: FakeCloud::new(),
        })
    }

    #[test]
    fn the_spec_validates_and_ends_with_the_provider_table() {
        let f = fake();
        let text = spec_text(f.as_ref());
        assert!(text.contains("provider = \"fake\""), "{text}");
        assert!(text.ends_with(&f.template().table), "{text}");
        let dir = deployment_dir();
        registry_of(f)
            .parse_spec(&text, "vre.toml", dir.path())
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    }

    #[test]
    fn a_typo_is_located_in_the_fake_table() {
        assert_table_typo_is_located(fake());
    }
}
