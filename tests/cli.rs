//! The `vre` command as users run it: exit codes, messages, files, and a
//! whole VRE on the embedded simulator.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use vre::Components;
use vre_core::testing::{FakeCloud, FakeCloudFactory, FakeOrchestrator};

fn vre(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vre"));
    c.args(args);
    // no cloud credentials leak in from the environment running the tests
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_LOG");
    c.output().expect("vre runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_a_valid_spec_and_a_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mylab");
    let out = vre(&["init", "openstack", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&dir.join("ssh_key")), 0o600);
    assert!(
        std::fs::read_to_string(dir.join("ssh_key"))
            .unwrap()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
    );
    assert!(
        std::fs::read_to_string(dir.join("ssh_key.pub"))
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    let spec = std::fs::read_to_string(dir.join("vre.toml")).unwrap();
    assert!(spec.contains("name = \"mylab\""));
    assert!(spec.contains("[openstack]"));
    // refuses a directory that is not empty
    let again = vre(&["init", "openstack", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("is not empty"), "{}", text(&again.stderr));
}

#[test]
fn plan_without_openstack_credentials_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    assert!(vre(&["init", "openstack", dir.to_str().unwrap()]).status.success());
    let out = vre(&["plan", "-C", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("OS_CLOUD") && lines[0].contains("OS_AUTH_URL"),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn every_provider_template_validates() {
    for p in ["local", "openstack", "aws", "gcp", "azure"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lab");
        let out = vre(&["init", p, dir.to_str().unwrap()]);
        assert!(out.status.success(), "{p}: {}", text(&out.stderr));
    }
    let out = vre(&["providers"]);
    let listed = text(&out.stdout);
    for p in ["local", "openstack", "aws", "gcp", "azure"] {
        assert!(listed.lines().any(|l| l.starts_with(p)), "{listed}");
    }
}

#[test]
fn bad_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vre(&["init", "nimbus", tmp.path().join("a").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown provider \"nimbus\""));
    let out = vre(&["scale", "boss=3", "-C", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown role `boss`"),
        "{}",
        text(&out.stderr)
    );
    let out = vre(&["plan", "-C", tmp.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("vre.toml not found"),
        "{}",
        text(&out.stderr)
    );
    let out = vre(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = vre(&[
        "init",
        "local",
        tmp.path().join("p").to_str().unwrap(),
        "--preset",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("available: jupyter, luigi"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_provider_registered_by_a_test_plans_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let mut components = Components::standard();
    components.register_provider(Arc::new(FakeCloudFactory {
        cloud: FakeCloud::new(),
    }));
    let d = dir.clone();
    components.orchestrator(move |_| Ok(Arc::new(FakeOrchestrator::new(d.clone()))));
    components.microservices(|_| Ok(Vec::new()));
    components.dns(|_, _| Ok(None));
    let mut out = Vec::new();
    let code = vre::cli::run_with_output(["vre", "init", "fake", dir.to_str().unwrap()], &components, &mut out);
    assert_eq!(code, 0, "{}", text(&out));
    let mut out = Vec::new();
    let code = vre::cli::run_with_output(["vre", "plan", "-C", dir.to_str().unwrap()], &components, &mut out);
    assert_eq!(code, 0, "{}", text(&out));
    let plan = text(&out);
    assert!(plan.starts_with("Plan for cluster \"lab\" on fake:"), "{plan}");
    assert!(plan.contains("+ create  server/service-[1..2]"), "{plan}");
    assert!(plan.contains("+ create  volume/storage-1"), "{plan}");
    assert!(
        plan.contains("Summary: 10 to create, 1 to keep, 0 to replace, 0 to delete."),
        "{plan}"
    );
}

/// init, apply, scale, status, destroy on the simulator, as the README says.
#[test]
fn a_whole_vre_on_the_simulator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    assert!(vre(&["init", "local", d]).status.success());
    let out = vre(&["apply", "-C", d, "--auto-approve"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Applied in"), "{stdout}");
    assert!(stdout.contains("kubeconfig:"), "{stdout}");
    assert_eq!(mode(&dir.join("kubeconfig")), 0o600);
    assert_eq!(mode(&dir.join(".vre/pki/ca.key")), 0o600);

    // scale-up rewrites the spec and adds exactly the missing node
    let out = vre(&["scale", "service=3", "-C", d, "--auto-approve"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("+ create  server/service-3"),
        "{}",
        text(&out.stdout)
    );
    let spec = std::fs::read_to_string(dir.join("vre.toml")).unwrap();
    assert!(spec.contains("[nodes.service]\ncount = 3\n"), "{spec}");

    let out = vre(&["--output", "json", "status", "-C", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "status")
        .expect("a status line");
    let nodes = status["status"]["nodes"]["Ok"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().all(|n| n["ready"] == true));

    let out = vre(&["destroy", "-C", d, "--auto-approve"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".vre/state.json")).unwrap()).unwrap();
    assert_eq!(state["resources"].as_object().map(|m| m.len()), Some(0));
}
