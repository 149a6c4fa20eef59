//! A whole VRE on the simulator with `RUST_LOG=trace` and `--output json`
//! (apply, status, destroy): the credentials and private keys it used must
//! appear in none of the logs (stderr), the JSON output (stdout) or the
//! state file (and its backup), not even base64-encoded inside a larger
//! blob (user data, a kubeconfig); and every file holding one is 0600.
//!
//! The secrets: the simulator's password (`.vre/sim/password`, the cloud
//! credential the provider logs in with), the SSH private key, the cluster
//! CA key and the join token (`.vre/pki/`), the admin client key (in the
//! kubeconfig) and the object storage keys (`.vre/secrets/`).
//!
//! Not checked: the simulator's own state (`.vre/sim/cloud.json`), which
//! keeps each server's user data (the master's holds the CA key and the
//! join token) as a real cloud's metadata service does; that is the cloud's
//! copy, not vre's.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A secret and the strings that would betray it.
struct Secret {
    what: String,
    needles: Vec<String>,
}

/// Substrings every base64 encoding of a blob holding `secret` contains,
/// whatever the secret's offset in the blob: the secret's full 3-byte
/// groups at each of the three alignments.
fn base64_needles(secret: &[u8]) -> Vec<String> {
    (0..3)
        .filter_map(|pad| {
            let mut buf = vec![0u8; pad];
            buf.extend_from_slice(secret);
            let e = STANDARD.encode(&buf);
            // the first group mixes in the padding, the last one what follows the secret
            let inner = e.get(4..e.len().saturating_sub(4))?;
            (inner.len() >= 16).then(|| inner.to_string())
        })
        .collect()
}

/// A plain secret (password, token): the text itself and its base64 forms
/// (also inside base64 user data).
fn plain(what: &str, value: &str) -> Secret {
    assert!(
        value.len() >= 8,
        "{what} is too short to look for: {} chars",
        value.len()
    );
    let mut needles = vec![value.to_string()];
    needles.extend(base64_needles(value.as_bytes()));
    Secret {
        what: what.to_string(),
        needles,
    }
}

/// A PEM private key: each full body line, the body joined, and the base64
/// forms of the whole PEM text, encoded once or twice.
fn pem(what: &str, text: &str) -> Secret {
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    assert!(!body.is_empty(), "{what} is not PEM");
    let mut needles: Vec<String> = body.iter().filter(|l| l.len() >= 40).map(|l| l.to_string()).collect();
    needles.push(body.concat());
    // once encoded (a kubeconfig, `encoding: b64` in cloud-init), and twice
    // (such cloud-init inside base64 user data)
    let mut once = base64_needles(text.as_bytes());
    // a YAML block indents each line: each line on its own
    for l in body.iter().filter(|l| l.len() >= 40) {
        once.extend(base64_needles(l.as_bytes()));
    }
    let twice: Vec<String> = once.iter().flat_map(|n| base64_needles(n.as_bytes())).collect();
    needles.extend(once);
    needles.extend(twice);
    Secret {
        what: what.to_string(),
        needles,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `vre <args> -C dir --output json` with every log on.
fn traced(dir: &Path, args: &[&str]) -> (String, String) {
    let d = dir.display().to_string();
    let mut all = args.to_vec();
    all.extend(["-C", &d, "--output", "json"]);
    let out = support::vre_command(&all)
        .env("RUST_LOG", "trace")
        .output()
        .expect("vre runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "vre {} failed: {}\n{}",
        args.join(" "),
        stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n"),
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    (stdout, stderr)
}

#[test]
fn a_traced_run_leaks_no_secret_and_key_files_are_private() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("secretlab");
    let init = support::vre_command(&["init", "local", &dir.display().to_string()])
        .output()
        .expect("vre init runs");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let mut outputs: Vec<(String, String)> = Vec::new();
    let (out, err) = traced(&dir, &["apply", "--auto-approve"]);
    assert!(
        err.lines().count() > 100,
        "RUST_LOG=trace produced only {} log lines",
        err.lines().count()
    );
    outputs.push(("apply stdout".into(), out));
    outputs.push(("apply stderr".into(), err));
    let (out, err) = traced(&dir, &["status"]);
    outputs.push(("status stdout".into(), out));
    outputs.push(("status stderr".into(), err));

    // the secrets this VRE used, read while they exist
    let kubeconfig = read(&dir.join("kubeconfig"));
    let client_key_data = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data:"))
        .expect("the kubeconfig holds the admin client key")
        .trim()
        .to_string();
    let client_key = String::from_utf8(STANDARD.decode(&client_key_data).expect("base64 key")).expect("PEM text");
    let token: serde_json::Value =
        serde_json::from_str(&read(&dir.join(".vre/pki/bootstrap-token.json"))).expect("token file is JSON");
    let token = token["token"].as_str().expect("a token").to_string();
    let (_, token_secret) = token.split_once('.').expect("token is <id>.<secret>");
    let mut secrets = vec![
        plain("the simulator password", read(&dir.join(".vre/sim/password")).trim()),
        pem("the SSH private key", &read(&dir.join("ssh_key"))),
        pem("the cluster CA key", &read(&dir.join(".vre/pki/ca.key"))),
        plain("the join token", &token),
        plain("the join token's secret", token_secret),
        pem("the admin client key", &client_key),
        plain("the admin client key (kubeconfig data)", &client_key_data),
    ];
    for entry in std::fs::read_dir(dir.join(".vre/secrets")).expect(".vre/secrets exists") {
        let path = entry.expect("entry").path();
        let value = read(&path);
        secrets.push(plain(
            &format!(
                "the secret in {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            value.trim(),
        ));
    }

    // files holding them: 0600, in 0700 directories
    let mut private = vec![
        dir.join("ssh_key"),
        dir.join("kubeconfig"),
        dir.join(".vre/pki/ca.key"),
        dir.join(".vre/pki/bootstrap-token.json"),
        dir.join(".vre/sim/password"),
    ];
    for entry in std::fs::read_dir(dir.join(".vre/secrets")).expect(".vre/secrets exists") {
        private.push(entry.expect("entry").path());
    }
    let mut problems = Vec::new();
    for p in &private {
        if mode(p) != 0o600 {
            problems.push(format!("{} is {:o}, want 600", p.display(), mode(p)));
        }
    }
    for d in [dir.join(".vre/pki"), dir.join(".vre/secrets")] {
        if mode(&d) & 0o077 != 0 {
            problems.push(format!("{} is {:o}: others can list it", d.display(), mode(&d)));
        }
    }

    let state_files = |outputs: &mut Vec<(String, String)>, when: &str| {
        for f in ["state.json", "state.json.bak"] {
            let p = dir.join(".vre").join(f);
            if p.exists() {
                outputs.push((format!("{f} after {when}"), read(&p)));
            }
        }
    };
    state_files(&mut outputs, "apply");
    let (out, err) = traced(&dir, &["destroy", "--auto-approve"]);
    outputs.push(("destroy stdout".into(), out));
    outputs.push(("destroy stderr".into(), err));
    state_files(&mut outputs, "destroy");

    for (name, text) in &outputs {
        for s in &secrets {
            if let Some(n) = s.needles.iter().find(|n| text.contains(n.as_str())) {
                let at = text.find(n.as_str()).unwrap_or(0);
                let line = text[..at].lines().count() + 1;
                problems.push(format!("{} appears in {name} (line {line})", s.what));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn needles_find_a_secret_inside_any_base64_blob() {
    let secret = b"0123456789abcdef-the-secret";
    for prefix in ["", "a", "ab", "abc", "#cloud-config\n"] {
        let mut blob = prefix.as_bytes().to_vec();
        blob.extend_from_slice(secret);
        blob.extend_from_slice(b" and more after it");
        let encoded = STANDARD.encode(&blob);
        assert!(
            base64_needles(secret).iter().any(|n| encoded.contains(n.as_str())),
            "missed with prefix {prefix:?}"
        );
    }
    assert!(
        !base64_needles(secret)
            .iter()
            .any(|n| STANDARD.encode(b"unrelated text of some length").contains(n.as_str()))
    );
}
