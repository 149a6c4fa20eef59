//! The user data (`#cloud-config`) every node boots with. It is identical
//! for every node of a role, so one multi-create call boots them all; the
//! node name is the hostname the cloud gives (the server name).

use serde_json::{Value, json};
use vre_core::Role;

use crate::error::{KubeError, Result};
use crate::kubeadm::{self, KUBEADM_CONFIG_PATH, KubeadmInputs};
use crate::pki::ClusterCa;

/// Where the master's user data puts the CA: where `kubeadm init` finds
/// a pre-placed CA and uses it instead of generating one.
pub const CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";
pub const CA_KEY_PATH: &str = "/etc/kubernetes/pki/ca.key";
/// The bootstrap script every node runs once: it prepares the node, then
/// runs the kubeadm command `runcmd` gives it, with retries.
pub const BOOTSTRAP_SCRIPT_PATH: &str = "/etc/kubernetes/vre/bootstrap.sh";

/// The script body; [`bootstrap_script`] puts the role's variables above it.
const SCRIPT_BODY: &str = include_str!("../scripts/node-bootstrap.sh");

/// Cloud user data size limit of the strictest cloud vre targets (EC2: 16 KiB).
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// Everything a role's user data is made from.
#[derive(Clone, Debug)]
pub struct UserDataInputs<'a> {
    pub kubeadm: KubeadmInputs<'a>,
    pub ca: &'a ClusterCa,
    /// `kubeadm join` attempts (each one retries discovery for the discovery timeout).
    pub join_attempts: u32,
}

/// `'text'` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A login name a shell script may use (`useradd`'s default rule).
fn valid_user(u: &str) -> bool {
    let mut b = u.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && u.len() <= 32
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// The bash script a `role` node runs from `runcmd`.
pub fn bootstrap_script(role: Role, inputs: &UserDataInputs<'_>) -> Result<String> {
    let facts = inputs.kubeadm.facts;
    if !valid_user(&facts.ssh_user) {
        return Err(KubeError::Spec {
            field: "ssh.user",
            message: format!(
                "\"{}\" is not a login name; use lower-case letters, digits, `_` and `-`, starting with a letter",
                facts.ssh_user
            ),
        });
    }
    let v = inputs.kubeadm.version;
    let vars = [
        ("ROLE", role.as_str().to_string()),
        ("CLUSTER", facts.cluster.clone()),
        ("K8S_VERSION", v.package_prefix()),
        ("K8S_MINOR", v.repo_minor()),
        ("INSTALL_PACKAGES", (!facts.image_preinstalled).to_string()),
        ("JOIN_ATTEMPTS", inputs.join_attempts.max(1).to_string()),
        ("SSH_USER", facts.ssh_user.clone()),
    ];
    let mut script = String::from("#!/bin/bash\n");
    script.push_str(&format!(
        "# vre: bootstrap of the {role} nodes of cluster {} (generated; do not edit)\n",
        facts.cluster.replace('\n', " ")
    ));
    script.push_str("set -euo pipefail\n");
    for (name, value) in vars {
        script.push_str(&format!("{name}={}\n", sh_quote(&value)));
    }
    script.push('\n');
    script.push_str(SCRIPT_BODY);
    Ok(script)
}

/// The kubeadm command a `role` node runs (`runcmd` hands it to the bootstrap script).
pub fn kubeadm_command(role: Role) -> [&'static str; 4] {
    let verb = if role == Role::Master { "init" } else { "join" };
    ["kubeadm", verb, "--config", KUBEADM_CONFIG_PATH]
}

/// The user data of a `role` node: a `#cloud-config` document whose
/// `write_files` carry the kubeadm config (0600), the bootstrap script and,
/// on the master only, the cluster CA (key 0600); `runcmd` runs the script
/// with the node's kubeadm command (`kubeadm init|join --config ...`).
pub fn user_data(role: Role, inputs: &UserDataInputs<'_>) -> Result<String> {
    let file = |path: &str, permissions: &str, content: String| json!({"path": path, "owner": "root:root", "permissions": permissions, "content": content});
    let mut files = Vec::new();
    if role == Role::Master {
        files.push(file(CA_CERT_PATH, "0644", inputs.ca.cert_pem().to_string()));
        files.push(file(CA_KEY_PATH, "0600", inputs.ca.key_pem()));
    }
    files.push(file(
        KUBEADM_CONFIG_PATH,
        "0600",
        kubeadm::config_yaml(role, &inputs.kubeadm)?,
    ));
    files.push(file(BOOTSTRAP_SCRIPT_PATH, "0700", bootstrap_script(role, inputs)?));
    let mut command = vec!["/bin/bash", BOOTSTRAP_SCRIPT_PATH];
    command.extend(kubeadm_command(role));
    let doc = json!({
        "write_files": Value::Array(files),
        "runcmd": [command],
    });
    let body = serde_yaml::to_string(&doc).map_err(|e| KubeError::Failed(format!("user data: {e}")))?;
    let text = format!("#cloud-config\n{body}");
    if text.len() > USER_DATA_LIMIT {
        return Err(KubeError::Failed(format!(
            "the {role} user data is {} bytes, over the {USER_DATA_LIMIT}-byte limit of some clouds",
            text.len()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;
    use time::OffsetDateTime;
    use vre_core::BootstrapFacts;

    use super::*;
    use crate::test_facts::{lab_facts, lab_inputs};
    use crate::token::BootstrapToken;
    use crate::version::KubernetesVersion;

    fn facts() -> BootstrapFacts {
        BootstrapFacts {
            master_as_edge: false,
            ..lab_facts()
        }
    }

    struct Rendered {
        doc: serde_yaml::Value,
        text: String,
        token: BootstrapToken,
        ca: ClusterCa,
    }

    fn render(role: Role, facts: &BootstrapFacts) -> Rendered {
        let ca = ClusterCa::generate("lab").unwrap();
        let token = BootstrapToken::generate(Duration::from_secs(86400), OffsetDateTime::now_utc()).unwrap();
        let text = user_data(role, &lab_inputs(facts, &token, &ca, 5)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        Rendered { doc, text, token, ca }
    }

    fn file<'a>(doc: &'a serde_yaml::Value, path: &str) -> Option<&'a serde_yaml::Value> {
        doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str() == Some(path))
    }

    #[test]
    fn master_carries_the_ca_with_a_private_key_mode() {
        let r = render(Role::Master, &facts());
        assert!(r.text.starts_with("#cloud-config\n"));
        let key = file(&r.doc, CA_KEY_PATH).expect("CA key on the master");
        assert_eq!(key["permissions"].as_str(), Some("0600"));
        assert_eq!(key["content"].as_str(), Some(r.ca.key_pem().as_str()));
        let cert = file(&r.doc, CA_CERT_PATH).unwrap();
        assert_eq!(cert["content"].as_str(), Some(r.ca.cert_pem()));
        let cfg = file(&r.doc, KUBEADM_CONFIG_PATH).unwrap();
        assert_eq!(cfg["permissions"].as_str(), Some("0600"));
        let cfg_docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(cfg["content"].as_str().unwrap())
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(cfg_docs[0]["kind"].as_str(), Some("InitConfiguration"));
        let ttl = cfg_docs[0]["bootstrapTokens"][0]["ttl"].as_str().unwrap();
        assert!(ttl != "0s" && ttl.ends_with('s'), "the token has a TTL: {ttl}");
        assert_eq!(
            cfg_docs[0]["bootstrapTokens"][0]["token"].as_str(),
            Some(r.token.token().as_str())
        );
        let script = file(&r.doc, BOOTSTRAP_SCRIPT_PATH).unwrap();
        assert_eq!(script["permissions"].as_str(), Some("0700"));
        let script = script["content"].as_str().unwrap();
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script.contains("ROLE='master'") && script.contains("INSTALL_PACKAGES='true'"));
        assert!(script.contains("K8S_MINOR='v1.30'") && script.contains("K8S_VERSION='1.30.2'"));
        let runcmd: Vec<&str> = r.doc["runcmd"][0]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            runcmd,
            [
                "/bin/bash",
                BOOTSTRAP_SCRIPT_PATH,
                "kubeadm",
                "init",
                "--config",
                KUBEADM_CONFIG_PATH
            ]
        );
        assert!(!r.text.contains("token-ttl"));
    }

    #[test]
    fn workers_pin_the_ca_and_never_see_its_key() {
        for role in [Role::Service, Role::Storage, Role::Edge] {
            let r = render(role, &facts());
            assert!(file(&r.doc, CA_KEY_PATH).is_none(), "{role}");
            assert!(
                file(&r.doc, CA_CERT_PATH).is_none(),
                "{role}: kubeadm join refuses a pre-existing ca.crt"
            );
            assert!(!r.text.contains("PRIVATE KEY"), "{role}");
            assert!(
                !r.text.contains("unsafe-skip") && !r.text.to_lowercase().contains("unsafeskip"),
                "{role}"
            );
            let cfg = file(&r.doc, KUBEADM_CONFIG_PATH).unwrap();
            let join: serde_yaml::Value = serde_yaml::from_str(cfg["content"].as_str().unwrap()).unwrap();
            assert_eq!(join["kind"].as_str(), Some("JoinConfiguration"));
            assert_eq!(
                join["discovery"]["bootstrapToken"]["caCertHashes"][0].as_str(),
                Some(r.ca.cert_hash())
            );
            assert_eq!(
                join["discovery"]["bootstrapToken"]["token"].as_str(),
                Some(r.token.token().as_str())
            );
            let script = file(&r.doc, BOOTSTRAP_SCRIPT_PATH).unwrap()["content"]
                .as_str()
                .unwrap();
            assert!(script.contains(&format!("ROLE='{role}'")));
        }
    }

    #[test]
    fn preinstalled_images_skip_installs() {
        let mut f = facts();
        f.image_preinstalled = true;
        let r = render(Role::Service, &f);
        let script = file(&r.doc, BOOTSTRAP_SCRIPT_PATH).unwrap()["content"]
            .as_str()
            .unwrap();
        assert!(script.contains("INSTALL_PACKAGES='false'"));
    }

    #[test]
    fn identical_for_every_node_of_a_role() {
        // nothing node-specific: the role's user data is one string for all its nodes
        let r = render(Role::Service, &facts());
        assert!(!r.text.contains("lab-service-1"));
        assert!(!r.text.contains("name:"), "no node name in the kubeadm config");
    }

    #[test]
    fn fits_the_user_data_limit() {
        for role in Role::ALL {
            assert!(render(role, &facts()).text.len() < USER_DATA_LIMIT, "{role}");
        }
    }

    #[test]
    fn bad_ssh_user_names_the_field() {
        let mut f = facts();
        f.ssh_user = "root; rm -rf /".into();
        let ca = ClusterCa::generate("lab").unwrap();
        let token = BootstrapToken::generate(Duration::from_secs(60), OffsetDateTime::now_utc()).unwrap();
        let inputs = UserDataInputs {
            kubeadm: KubeadmInputs {
                facts: &f,
                version: KubernetesVersion::parse("1.30.2").unwrap(),
                token: &token,
                ca_hash: ca.cert_hash(),
                token_ttl: Duration::from_secs(60),
                discovery_timeout: Duration::from_secs(60),
                control_plane_timeout: Duration::from_secs(60),
            },
            ca: &ca,
            join_attempts: 1,
        };
        let e = user_data(Role::Master, &inputs).unwrap_err().to_string();
        assert!(e.starts_with("ssh.user: "), "{e}");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert!(valid_user("ubuntu") && valid_user("cloud-user") && !valid_user("Ubuntu") && !valid_user("1x"));
    }
}
