//! Broken vre.toml files (tests/bad_input/*.toml) against `vre plan`,
//! `vre apply --auto-approve` and `vre destroy --auto-approve`: each must
//! exit with code 2, print one line per problem naming the field (or the
//! variable) at fault, and touch no cloud: the simulator is never started
//! (`.vre/sim` never appears) and an OpenStack URL that points at a
//! listener of this test gets no connection.
//!
//! A corpus file says what it expects in its leading comments:
//! `# expect: <field>` once per problem (the field a line must name, or a
//! located prefix such as `vre.toml:6:7: (syntax)`), and `# env: K=V` for
//! variables to set (`{listener}` becomes the listener's address).

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    file: PathBuf,
    text: String,
    expect: Vec<String>,
    env: Vec<(String, String)>,
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/bad_input exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("readable corpus file");
            let mut expect = Vec::new();
            let mut env = Vec::new();
            for line in text.lines().take_while(|l| l.starts_with('#')) {
                if let Some(e) = line.strip_prefix("# expect: ") {
                    expect.push(e.trim().to_string());
                } else if let Some(kv) = line.strip_prefix("# env: ") {
                    let (k, v) = kv.split_once('=').expect("# env: K=V");
                    env.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            assert!(!expect.is_empty(), "{} has no `# expect:` line", file.display());
            Case {
                file,
                text,
                expect,
                env,
            }
        })
        .collect()
}

/// `vre.toml:12:3: rest` -> `rest`
fn without_location(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("vre.toml:") else {
        return line;
    };
    let mut parts = rest.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(c), Some(rest))
            if l.chars().all(|x| x.is_ascii_digit()) && c.chars().all(|x| x.is_ascii_digit()) =>
        {
            rest.trim_start()
        }
        _ => line,
    }
}

/// Does `line` report a problem with `expected` (a spec field, a variable,
/// or a located prefix)?
fn names(line: &str, expected: &str) -> bool {
    if expected.starts_with("vre.toml:") {
        return line.starts_with(expected);
    }
    let rest = without_location(line);
    let rest = rest.strip_prefix("error: ").unwrap_or(rest);
    if rest.starts_with(&format!("{expected}: ")) {
        return true;
    }
    let is_variable = expected
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_variable
        && rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == expected)
}

/// Connections the listener got so far.
fn accepted(listener: &TcpListener) -> usize {
    let mut n = 0;
    loop {
        match listener.accept() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("listener failed: {e}"),
        }
    }
}

/// What is wrong with one command on one case, if anything.
fn check(case: &Case, command: &[&str], public_key: &str, listener: &TcpListener) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("lab");
    std::fs::create_dir(&dir).expect("deployment dir");
    std::fs::write(dir.join("vre.toml"), &case.text).expect("vre.toml");
    std::fs::write(dir.join("ssh_key.pub"), public_key).expect("ssh_key.pub");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let address = listener.local_addr().expect("bound").to_string();
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(["-C".to_string(), dir.display().to_string()]);
    // nothing from the environment running the tests: no credentials, no clouds.yaml
    let out = Command::new(support::VRE)
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .envs(
            case.env
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{listener}", &address))),
        )
        .output()
        .expect("vre runs");
    let name = format!(
        "{} (vre {})",
        case.file.file_name().unwrap_or_default().to_string_lossy(),
        command.join(" ")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("{name}: exit code {:?}, want 2", out.status.code()));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push(format!("{name}: panicked: {stderr}"));
    }
    if !stdout.trim().is_empty() {
        problems.push(format!("{name}: printed on stdout: {stdout}"));
    }
    for e in &case.expect {
        let hits = lines.iter().filter(|l| names(l, e)).count();
        if hits != 1 {
            problems.push(format!("{name}: {hits} lines name `{e}`, want 1; stderr:\n{stderr}"));
        }
    }
    for l in &lines {
        if !case.expect.iter().any(|e| names(l, e)) {
            problems.push(format!("{name}: a line names nothing expected: {l}"));
        }
    }
    if dir.join(".vre").join("sim").exists() {
        problems.push(format!("{name}: the simulator was started (.vre/sim exists)"));
    }
    let connections = accepted(listener);
    if connections > 0 {
        problems.push(format!("{name}: {connections} connection(s) to the cloud URL"));
    }
    problems
}

#[test]
fn every_broken_spec_exits_2_with_one_line_per_problem_and_no_cloud_call() {
    let cases = corpus();
    assert!(cases.len() >= 15, "the corpus shrank to {} files", cases.len());
    // a real public key, so that only the broken part of each spec is at fault
    let keys = tempfile::tempdir().expect("temp dir");
    let init = support::vre_command(&["init", "local", &keys.path().join("k").display().to_string()])
        .output()
        .expect("vre init runs");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let public_key = std::fs::read_to_string(keys.path().join("k/ssh_key.pub")).expect("ssh_key.pub");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let mut problems = Vec::new();
    for case in &cases {
        for command in [
            &["plan"][..],
            &["apply", "--auto-approve"],
            &["destroy", "--auto-approve"],
        ] {
            problems.extend(check(case, command, &public_key, &listener));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_matcher_tells_fields_apart() {
    let line = "vre.toml:13:1: nodes.service.flavour: unknown key; did you mean `flavor`?";
    assert!(names(line, "nodes.service.flavour"));
    assert!(!names(line, "nodes.service.flavor"));
    assert!(names(
        "error: VRE_SIM_ERROR_RATE: \"often\" is not a number",
        "VRE_SIM_ERROR_RATE"
    ));
    assert!(names(
        "error: no OpenStack credentials: set OS_CLOUD to a cloud in clouds.yaml",
        "OS_CLOUD"
    ));
    assert!(!names("error: set OS_CLOUDS", "OS_CLOUD"));
    assert!(names(
        "vre.toml:6:7: (syntax): unclosed table",
        "vre.toml:6:7: (syntax)"
    ));
}
