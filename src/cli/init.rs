//! `vre init`: a commented vre.toml for a provider, an ed25519 SSH key
//! pair, and a community preset's files; and the spec edit `vre scale` makes.

use std::path::Path;

use vre_core::spec::{LoadedSpec, SPEC_FILE, check_dns_label};
use vre_core::state::write_atomic;
use vre_core::{Error, ProviderRegistry, ProviderTemplate, Result, Role};

include!(concat!(env!("OUT_DIR"), "/presets.rs"));

/// Names of the embedded presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// Writes the deployment directory; returns the files written.
pub fn init(
    registry: &ProviderRegistry,
    provider: &str,
    dir: &Path,
    preset: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<String>> {
    let factory = registry.get(provider).ok_or_else(|| {
        Error::input(
            "provider",
            format!(
                "unknown provider \"{provider}\"; registered: {}",
                registry.names().join(", ")
            ),
        )
    })?;
    let preset_files = match preset {
        None => None,
        Some(p) => Some(PRESETS.iter().find(|(n, _)| *n == p).map(|(_, f)| *f).ok_or_else(|| {
            Error::input(
                "--preset",
                format!("unknown preset \"{p}\"; available: {}", preset_names().join(", ")),
            )
        })?),
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(Error::input(
                "dir",
                format!(
                    "{} is not empty; vre init only writes into a new or empty directory",
                    dir.display()
                ),
            ));
        }
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => default_name(dir),
    };
    if let Err(e) = check_dns_label(&name, vre_core::spec::MAX_NAME_LEN) {
        return Err(Error::input(
            "--name",
            format!("\"{name}\" {e}; pass a DNS-safe name with --name, such as --name mylab"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;

    let preset_toml = preset_files.and_then(|f| f.iter().find(|(p, _)| *p == "preset.toml").map(|(_, t)| *t));
    let text = spec_text(&name, provider, &factory.template(), preset, preset_toml)?;
    let mut written = Vec::new();
    write_atomic(&dir.join(SPEC_FILE), text.as_bytes(), false)?;
    written.push(SPEC_FILE.to_string());

    crate::keys::write_ssh_key_pair(dir, &format!("vre-{name}"))?;
    written.push("ssh_key".into());
    written.push("ssh_key.pub".into());

    for rel in listed_files(preset_toml)? {
        let contents = preset_files
            .unwrap_or_default()
            .iter()
            .find(|(p, _)| *p == rel)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                Error::component(
                    "init",
                    format!("preset {} lists {rel}, which it does not contain", preset.unwrap_or("")),
                )
            })?;
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        write_atomic(&path, contents.as_bytes(), false)?;
        written.push(rel.to_string());
    }
    // a deployment directory holds keys and state: keep it out of git by default
    write_atomic(&dir.join(".gitignore"), b"ssh_key\nkubeconfig\n.vre/\n", false)?;
    written.push(".gitignore".into());

    // the template must be valid as written
    registry.load_spec(dir).map_err(|e| {
        Error::component(
            "init",
            format!("the generated {SPEC_FILE} does not validate (a bug in vre or the preset): {e}"),
        )
    })?;
    Ok(written)
}

/// The `files = [...]` a preset copies into the deployment directory.
fn listed_files(preset_toml: Option<&str>) -> Result<Vec<String>> {
    let Some(text) = preset_toml else { return Ok(Vec::new()) };
    let t: toml::Table = text
        .parse()
        .map_err(|e| Error::component("init", format!("a preset's preset.toml is not valid TOML: {e}")))?;
    Ok(t.get("files")
        .and_then(|f| f.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}

fn default_name(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .as_deref()
        .and_then(|p| p.file_name())
        .or_else(|| dir.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("vre")
        .to_ascii_lowercase();
    let mut s: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("vre-{s}")
    };
    s.chars()
        .take(vre_core::spec::MAX_NAME_LEN)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The sections of a preset file, by header (`""` for the top).
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            let header = t.split('#').next().unwrap_or(t).trim().to_string();
            out.push((header, String::new()));
        }
        let last = out.last_mut().expect("never empty");
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

fn spec_text(
    name: &str,
    provider: &str,
    t: &ProviderTemplate,
    preset: Option<&str>,
    preset_toml: Option<&str>,
) -> Result<String> {
    let preset_sections = preset_toml.map(sections).unwrap_or_default();
    let preset_values: toml::Table = match preset_toml {
        Some(text) => text.parse().map_err(|e| {
            Error::component(
                "init",
                format!("preset {} is not valid TOML: {e}", preset.unwrap_or("")),
            )
        })?,
        None => toml::Table::new(),
    };
    let count = |role: &str, default: i64| -> i64 {
        preset_values
            .get("nodes")
            .and_then(|n| n.get(role))
            .and_then(|g| g.get("count"))
            .and_then(|c| c.as_integer())
            .unwrap_or(default)
    };
    let volume = preset_values
        .get("nodes")
        .and_then(|n| n.get("storage"))
        .and_then(|g| g.get("volume_gb"))
        .and_then(|c| c.as_integer())
        .unwrap_or(100);
    let preset_section = |header: &str| -> Option<&str> {
        preset_sections
            .iter()
            .find(|(h, _)| h == header)
            .map(|(_, body)| body.as_str())
    };

    let mut s = String::new();
    s.push_str("# vre.toml: one Virtual Research Environment.\n");
    s.push_str("# Check it with `vre plan`, build it with `vre apply`, remove it with `vre destroy`.\n");
    s.push_str("# Every key is described in vre's README (\"Spec reference\"); unknown keys are errors.\n");
    if let Some(p) = preset {
        s.push_str(&format!("# Preset: {p}.\n"));
    }
    for line in t.credentials.lines() {
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&format!(
        "name = \"{name}\"              # DNS-safe; prefix of every resource and value of the cluster tag\n"
    ));
    s.push_str(&format!("provider = \"{provider}\"\n"));
    s.push_str("# master_as_edge = true       # the master runs the edge load balancer (default: when there are no edge nodes)\n\n");

    s.push_str("[kubernetes]\nversion = \"1.30.2\"           # MAJOR.MINOR.PATCH\n");
    s.push_str("# pod_cidr = \"10.244.0.0/16\"\n# service_cidr = \"10.96.0.0/12\"\n# cni = \"flannel\"\n\n");

    s.push_str(&format!("[image]\nname = \"{}\"\n", t.image));
    match &t.image_source {
        Some(src) => s.push_str(&format!(
            "source = \"{src}\"  # imported when the cloud lacks the image\n"
        )),
        None => s.push_str("# source = \"https://...\"     # imported when the cloud lacks the image\n"),
    }
    s.push_str(&format!(
        "preinstalled = {}           # kubeadm, kubelet and containerd are already on the image\n\n",
        t.image_preinstalled
    ));

    s.push_str(&format!(
        "[ssh]\nuser = \"{}\"\npublic_key = \"ssh_key.pub\"   # written by `vre init`; the private half is ssh_key (0600)\n\n",
        t.ssh_user
    ));

    s.push_str("[network]\ncidr = \"10.0.0.0/24\"\n");
    s.push_str("# dns_servers = [\"1.1.1.1\", \"8.8.8.8\"]\n");
    s.push_str(
        "# ingress_ports = [22, 80, 443, 6443]   # open to the world; traffic inside the cluster is always open\n",
    );
    s.push_str("# master_ip = \"10.0.0.10\"              # the master's fixed address (default: host 10 of cidr)\n\n");

    s.push_str(&format!(
        "[nodes.master]\nflavor = \"{}\"\n# root_disk_gb = 40\n# public_ip = true\n\n",
        t.master_flavor
    ));
    s.push_str(&format!(
        "[nodes.service]\ncount = {}\nflavor = \"{}\"\n\n",
        count("service", 2),
        t.worker_flavor
    ));
    let storage = count("storage", 1);
    s.push_str(&format!(
        "[nodes.storage]                  # hold the shared volume; tainted so only storage pods run there\ncount = {storage}\nflavor = \"{}\"\nvolume_gb = {volume}\n\n",
        t.storage_flavor
    ));
    s.push_str(&format!(
        "[nodes.edge]                     # public IP, run the load balancer\ncount = {}\nflavor = \"{}\"\n\n",
        count("edge", 0),
        t.edge_flavor
    ));

    match preset_section("[storage]") {
        Some(body) => s.push_str(body),
        None => s.push_str(&format!(
            "[storage]\nenabled = {on}                   # shared POSIX storage on the storage nodes (false: the cloud's own)\nobject_storage = {on}            # S3 on top of it\n",
            on = storage > 0
        )),
    }
    s.push('\n');
    match preset_section("[loadbalancer]") {
        Some(body) => s.push_str(body),
        None => s.push_str(
            "[loadbalancer]\nenabled = true\nhttps = \"none\"                   # \"none\", \"cloudflare\" (with Cloudflare DNS) or \"acme\" (Let's Encrypt)\n# acme_email = \"you@example.org\"\n# dashboard = false\n",
        ),
    }
    s.push('\n');
    match preset_section("[dns]") {
        Some(body) => s.push_str(body),
        None => s.push_str(
            "[dns]\nprovider = \"nip.io\"              # \"nip.io\" (no account), \"cloudflare\" (CLOUDFLARE_API_TOKEN) or \"none\"\n# zone = \"example.org\"\n# subdomain = \"mylab\"\n",
        ),
    }
    s.push('\n');
    let mut apps = false;
    for (h, body) in &preset_sections {
        if h == "[[apps]]" {
            s.push_str(body);
            apps = true;
        }
    }
    if !apps {
        s.push_str("# [[apps]]                       # Helm charts or manifests installed after the microservices\n# name = \"jupyter\"\n# manifest = \"apps/jupyter.yaml\"\n# expose_service = \"jupyter\"\n# expose_port = 8888\n");
    }
    s.push('\n');
    s.push_str(&t.table);
    if !t.table.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// Sets `nodes.<role>.count` in vre.toml, preserving everything else.
pub fn set_count(loaded: &LoadedSpec, role: Role, count: u32) -> Result<()> {
    let path = loaded.dir.join(SPEC_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let field = format!("nodes.{role}.count");
    let new = match loaded.spans.exact(&field) {
        Some(span) if text.get(span.clone()).is_some_and(|v| v.trim().parse::<i64>().is_ok()) => {
            format!("{}{count}{}", &text[..span.start], &text[span.end..])
        }
        _ => {
            let header = format!("[nodes.{role}]");
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let Some(i) = lines
                .iter()
                .position(|l| l.split('#').next().unwrap_or("").trim() == header)
            else {
                return Err(Error::input(
                    &field,
                    format!(
                        "{} has no {header} section; add one with `count` and `flavor`, then run `vre apply`",
                        path.display()
                    ),
                ));
            };
            lines.insert(i + 1, format!("count = {count}"));
            lines.join("\n") + "\n"
        }
    };
    write_atomic(&path, new.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_dns_safe() {
        assert_eq!(default_name(Path::new("/tmp/My Lab")), "my-lab");
        assert_eq!(default_name(Path::new("/tmp/2024_run")), "vre-2024-run");
        assert_eq!(default_name(Path::new("/tmp/x")), "x");
    }

    #[test]
    fn preset_sections_split_on_headers() {
        let s = sections("# top\n[storage]\nenabled = true\n[[apps]]\nname = \"a\"\n[[apps]]\nname = \"b\"\n");
        let heads: Vec<&str> = s.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(heads, ["", "[storage]", "[[apps]]", "[[apps]]"]);
        assert_eq!(s[3].1, "[[apps]]\nname = \"b\"\n");
    }
}
