//! Apps: manifests with variables, Helm through a stand-in `helm`, the
//! presets shipped in `presets/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use vre_core::spec::{AppExpose, AppSource, AppSpec, ClusterSpec, ProviderTables, parse_spec};
use vre_core::testing::FakeOrchestrator;
use vre_core::{ClusterFacts, Microservice, ReadinessCheck, Role};
use vre_microservice_kit::manifest_lint::problems;
use vre_microservice_kit::testing::cluster_facts;

use super::*;

fn facts_for(spec: ClusterSpec, dir: &Path) -> ClusterFacts {
    cluster_facts(spec, dir, |_, _, _| {})
}

fn cluster(storage: bool) -> ClusterSpec {
    let mut spec = ClusterSpec::new("lab", "sim");
    spec.group_mut(Role::Storage).count = u32::from(storage);
    spec.storage.enabled = storage;
    spec
}

/// The error app `index`, installing manifest `path`, reports for `spec`.
fn manifest_error(index: usize, path: &str, spec: &ClusterSpec, f: &ClusterFacts) -> String {
    App::new(index, manifest_app(path), spec)
        .objects(f)
        .unwrap_err()
        .to_string()
}

fn manifest_app(path: &str) -> AppSpec {
    AppSpec {
        name: "notebook".into(),
        namespace: "science".into(),
        source: AppSource::Manifest { path: path.into() },
        expose: Some(AppExpose {
            service: "web".into(),
            port: 8080,
        }),
    }
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {token: "${VRE_SECRET:token}"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: "${VRE_STORAGE_CLASS}"
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: other}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27.3
          args: ["--url=${VRE_URL}", "--shell=${HOME}", "--literal=$${VRE_HOST}"]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080}]
"#;

#[test]
fn manifests_get_variables_namespaces_protocols_and_a_route() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("apps")).unwrap();
    fs::write(dir.path().join("apps/web.yaml"), MANIFEST).unwrap();
    let spec = cluster(true);
    let app = App::new(0, manifest_app("apps/web.yaml"), &spec);
    let f = facts_for(spec, dir.path());
    let objects = app.objects(&f).unwrap();
    assert!(problems(&objects).is_empty(), "{:#?}", problems(&objects));
    let described: Vec<String> = objects.iter().map(|m| m.describe()).collect();
    assert_eq!(
        described,
        vec![
            "Namespace/science",
            "Secret/science/token",
            "PersistentVolumeClaim/science/data",
            "Deployment/other/web",
            "Service/science/web",
            "Ingress/science/notebook",
        ]
    );
    assert!(
        objects[1].0.get("stringData").is_none(),
        "stringData is folded into data"
    );
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD
        .decode(objects[1].0["data"]["token"].as_str().unwrap())
        .unwrap();
    let token = String::from_utf8(token).unwrap();
    assert_eq!(token.len(), 32);
    assert_eq!(
        fs::read_to_string(dir.path().join(".vre/secrets/app-notebook-token"))
            .unwrap()
            .trim(),
        token
    );
    assert_eq!(objects[2].0["spec"]["storageClassName"], "vre-shared");
    let args = &objects[3].0["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &json!([
            "--url=http://notebook.192.0.2.7.nip.io",
            "--shell=${HOME}",
            "--literal=${VRE_HOST}"
        ])
    );
    assert_eq!(
        objects[3].0["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(objects[4].0["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(objects[5].0["spec"]["rules"][0]["host"], "notebook.192.0.2.7.nip.io");
    // the same objects again: the token is not rotated
    assert_eq!(app.objects(&f).unwrap(), objects);
    assert_eq!(
        app.readiness(&f),
        vec![
            ReadinessCheck::PvcBound {
                namespace: "science".into(),
                name: "data".into()
            },
            ReadinessCheck::Rollout {
                kind: "Deployment".into(),
                namespace: "other".into(),
                name: "web".into()
            },
        ]
    );
    assert_eq!(app.endpoints(&f)[0].url, "http://notebook.192.0.2.7.nip.io");
    assert_eq!(app.name(), "apps:notebook");
    assert_eq!(
        app.depends_on(),
        vec!["storage".to_string(), "loadbalancer".to_string()]
    );
}

#[test]
fn manifest_mistakes_name_the_app_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = cluster(true);
    let f = facts_for(spec.clone(), dir.path());
    let e = manifest_error(2, "missing.yaml", &spec, &f);
    assert!(e.starts_with("apps[2].manifest: cannot read "), "{e}");
    for (text, want) in [
        ("kind: Service\n", "needs apiVersion, kind and metadata.name"),
        ("- a\n- b\n", "is not a Kubernetes object"),
        (
            "metadata: {name: x}\nvalue: ${VRE_BOGUS}\n",
            "unknown variable ${VRE_BOGUS}",
        ),
        ("---\n", "holds no Kubernetes object"),
        ("a: [unclosed\n", "document 1"),
    ] {
        fs::write(dir.path().join("bad.yaml"), text).unwrap();
        let e = manifest_error(0, "bad.yaml", &spec, &f);
        assert!(e.starts_with("apps[0].manifest: ") && e.contains(want), "{text:?}: {e}");
    }
    fs::write(dir.path().join("pvc.yaml"), MANIFEST).unwrap();
    let no_storage = cluster(false);
    let f = facts_for(no_storage.clone(), dir.path());
    let e = manifest_error(0, "pvc.yaml", &no_storage, &f);
    assert!(e.contains("${VRE_STORAGE_CLASS} but shared storage is disabled"), "{e}");
}

/// A stand-in for `helm` that records its arguments and fails when asked to.
fn fake_helm(dir: &Path, fail: bool) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let path = bin.join("helm");
    let body = if fail {
        "echo 'Error: INSTALLATION FAILED: chart \"nope\" version \"9.9.9\" not found' >&2\nexit 1\n".to_string()
    } else {
        format!("printf '%s\\n' \"$@\" >> {}\n", dir.join("helm-args").display())
    };
    write_executable(&path, &format!("#!/bin/sh\n{body}"));
    path
}

/// Writes a script and makes it executable, through a `sh` child: were
/// this process to hold the file open for writing, another test's thread
/// forking at that moment would keep the descriptor until its exec, and
/// running the script would fail with ETXTBSY ("Text file busy").
#[cfg(unix)]
fn write_executable(path: &Path, text: &str) {
    use std::io::Write;
    let mut sh = std::process::Command::new("sh")
        .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sh.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success(), "writing {}", path.display());
}

#[cfg(not(unix))]
fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

fn chart_app(values: Option<&str>) -> AppSpec {
    AppSpec {
        name: "hub".into(),
        namespace: "hub".into(),
        source: AppSource::Chart {
            repo: "https://hub.jupyter.org/helm-chart/".into(),
            chart: "jupyterhub".into(),
            version: "4.1.0".into(),
            values: values.map(PathBuf::from),
        },
        expose: Some(AppExpose {
            service: "proxy-public".into(),
            port: 80,
        }),
    }
}

#[test]
fn helm_is_found_on_path_or_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let helm = fake_helm(dir.path(), false);
    let path = std::env::join_paths([dir.path().join("nothing-here"), dir.path().join("bin")]).unwrap();
    assert_eq!(Helm::find(Some(&path), "apps[0].chart").unwrap().program, helm);
    let e = Helm::find(Some(std::ffi::OsStr::new("/nonexistent")), "apps[1].chart").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(
        msg.starts_with("apps[1].chart: is a Helm chart but no `helm` binary is on PATH"),
        "{msg}"
    );
    assert!(Helm::find(None, "apps[0].chart").is_err());
}

#[tokio::test]
async fn charts_install_with_helm_then_apply_the_route() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hub-values.yaml"), "singleuser: {}\n").unwrap();
    let helm = Helm {
        program: fake_helm(dir.path(), false),
    };
    let spec = cluster(false);
    let app = App::new(0, chart_app(Some("hub-values.yaml")), &spec).with_helm(helm);
    let f = facts_for(spec, dir.path());
    let orch = FakeOrchestrator::new(dir.path());
    app.install(&orch, &f, Duration::from_secs(600)).await.unwrap();
    let args: Vec<String> = fs::read_to_string(dir.path().join("helm-args"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let kubeconfig = orch.kubeconfig_path().display().to_string();
    let values = dir.path().join("hub-values.yaml").display().to_string();
    assert_eq!(
        args,
        vec![
            "upgrade",
            "--install",
            "hub",
            "jupyterhub",
            "--repo",
            "https://hub.jupyter.org/helm-chart/",
            "--version",
            "4.1.0",
            "--namespace",
            "hub",
            "--create-namespace",
            "--wait",
            "--timeout",
            "600s",
            "--kubeconfig",
            &kubeconfig,
            "--values",
            &values,
        ]
    );
    let applied = orch.applied.lock().unwrap().clone();
    assert_eq!(
        applied.iter().map(|m| m.describe()).collect::<Vec<_>>(),
        vec!["Ingress/hub/hub"]
    );
    assert!(app.readiness(&f).is_empty(), "helm --wait did the waiting");
}

#[tokio::test]
async fn helm_failures_and_missing_values_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let spec = cluster(false);
    let f = facts_for(spec.clone(), dir.path());
    let orch = FakeOrchestrator::new(dir.path());
    let failing = App::new(0, chart_app(None), &spec).with_helm(Helm {
        program: fake_helm(dir.path(), true),
    });
    let e = failing
        .install(&orch, &f, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("helm: installing chart jupyterhub 4.1.0 failed (exit status: 1): Error: INSTALLATION FAILED"),
        "{e}"
    );
    let no_values = App::new(3, chart_app(Some("absent.yaml")), &spec).with_helm(Helm {
        program: fake_helm(dir.path(), false),
    });
    let e = no_values
        .install(&orch, &f, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("apps[3].values: "), "{e}");
    assert!(
        orch.applied.lock().unwrap().is_empty(),
        "nothing applied after a failed install"
    );
}

/// The vre.toml a preset turns into: a minimal provider template plus the
/// preset's sections (what `vre init --preset` merges).
fn spec_text(preset: &toml::Table) -> String {
    let mut root: toml::Table = toml::from_str(
        r#"
        name = "lab"
        provider = "sim"
        [image]
        name = "ubuntu-24.04"
        [ssh]
        public_key = "ssh_key.pub"
        [nodes.master]
        flavor = "m1.medium"
        "#,
    )
    .unwrap();
    for (k, v) in preset {
        match k.as_str() {
            "description" | "files" => {}
            "nodes" => {
                let nodes = root["nodes"].as_table_mut().unwrap();
                for (role, group) in v.as_table().unwrap() {
                    let mut g = group.as_table().unwrap().clone();
                    g.entry("flavor").or_insert_with(|| "m1.medium".into());
                    nodes.insert(role.clone(), toml::Value::Table(g));
                }
            }
            _ => {
                root.insert(k.clone(), v.clone());
            }
        }
    }
    toml::to_string(&root).unwrap()
}

#[test]
fn presets_are_valid() {
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presets");
    let mut seen = Vec::new();
    for entry in fs::read_dir(&presets).unwrap() {
        let pdir = entry.unwrap().path();
        if !pdir.join("preset.toml").is_file() {
            continue;
        }
        let name = pdir.file_name().unwrap().to_string_lossy().to_string();
        let preset: toml::Table = toml::from_str(&fs::read_to_string(pdir.join("preset.toml")).unwrap()).unwrap();
        assert!(
            preset["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: description"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("ssh_key.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE vre\n",
        )
        .unwrap();
        for file in preset["files"].as_array().unwrap() {
            let rel = file.as_str().unwrap();
            let to = dir.path().join(rel);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(pdir.join(rel), &to).unwrap_or_else(|e| panic!("{name}: {rel}: {e}"));
        }
        let tables = ProviderTables {
            tables: vec![("sim".into(), "sim".into())],
        };
        let loaded = parse_spec(&spec_text(&preset), "vre.toml", dir.path(), &tables, &|_, _| {})
            .unwrap_or_else(|d| panic!("{name}: {d}"));
        let spec = loaded.spec;
        assert!(!spec.apps.is_empty(), "{name}: no apps");
        let f = facts_for(spec.clone(), dir.path());
        for (i, app) in spec.apps.iter().enumerate() {
            let ms = App::new(i, app.clone(), &spec);
            let objects = ms.objects(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
            let p = problems(&objects);
            assert!(p.is_empty(), "{name}: {p:#?}");
            assert!(
                objects.iter().any(|m| m.kind() == "PersistentVolumeClaim"
                    && m.0["spec"]["storageClassName"] == "vre-shared"
                    && m.0["spec"]["accessModes"][0] == "ReadWriteMany"),
                "{name}: the app must live on the shared volume"
            );
            assert!(
                objects.iter().any(|m| m.kind() == "Ingress"),
                "{name}: exposed through the edge"
            );
            assert!(!ms.endpoints(&f).is_empty(), "{name}: prints a URL");
            assert!(!ms.readiness(&f).is_empty(), "{name}: waited on");
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, vec!["jupyter", "luigi"]);
}

#[test]
fn settings_check_names_missing_files_before_any_cloud_call() {
    let dir = tempfile::tempdir().unwrap();
    let spec = cluster(false);
    let check = |app: App| {
        let mut d = vre_core::spec::Diagnostics::new();
        app.check_settings(&spec, dir.path(), &mut d);
        d.problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
    };
    let missing = check(App::new(2, manifest_app("missing.yaml"), &spec));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].starts_with("apps[2].manifest: cannot read "), "{missing:?}");
    let no_values = check(App::new(3, chart_app(Some("absent.yaml")), &spec));
    assert_eq!(no_values.len(), 1, "{no_values:?}");
    assert!(no_values[0].starts_with("apps[3].values: "), "{no_values:?}");
    assert!(no_values[0].ends_with("does not exist; the path is relative to the deployment directory"));

    fs::write(dir.path().join("present.yaml"), MANIFEST).unwrap();
    fs::write(dir.path().join("hub-values.yaml"), "singleuser: {}\n").unwrap();
    assert_eq!(
        check(App::new(0, manifest_app("present.yaml"), &spec)),
        Vec::<String>::new()
    );
    assert_eq!(
        check(App::new(1, chart_app(Some("hub-values.yaml")), &spec)),
        Vec::<String>::new()
    );
    assert_eq!(check(App::new(1, chart_app(None), &spec)), Vec::<String>::new());
}
