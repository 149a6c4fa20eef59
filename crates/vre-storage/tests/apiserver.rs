//! Every object the microservices generate, applied to a real
//! kube-apiserver with server-side apply (field manager `vre`), twice, with
//! no warning; then DaemonSets and pinned pods land on the nodes their role
//! selects, as the real scheduler decides.
//!
//! Needs a running API server (v1.20+, with controller-manager and
//! scheduler) and `kubectl` on PATH: `VRE_TEST_KUBECONFIG=<kubeconfig>
//! cargo test -p vre-storage --test apiserver -- --include-ignored`
//! (`ci/k8s/k8s-apiserver.sh start` prints such a kubeconfig). The test
//! registers fake Node objects `lab-*` with role labels and taints, as
//! kubelets would.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vre_core::spec::{AppExpose, AppSource, AppSpec, HttpsMode};
use vre_core::{ClusterFacts, ClusterSpec, Manifest, Microservice, NodeFact, Role};
use vre_loadbalancer::Traefik;
use vre_microservice_kit::placement::taints_of;
use vre_microservice_kit::testing::cluster_facts;
use vre_storage::{ObjectStorage, SharedStorage};

fn kubeconfig() -> String {
    std::env::var("VRE_TEST_KUBECONFIG").expect("set VRE_TEST_KUBECONFIG to the kubeconfig of a test API server")
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn apply(objects: &[Manifest]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let (ok, out, err) = kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=vre",
            "--force-conflicts=false",
            "-f",
            "-",
        ],
        Some(&list.to_string()),
    );
    assert!(ok, "server-side apply failed:\n{out}\n{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("warning"))
        .collect();
    assert!(warnings.is_empty(), "API server warnings: {warnings:#?}");
}

/// `generation` (or `resourceVersion`) of every object controllers leave alone.
fn versions(objects: &[Manifest]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|m| !matches!(m.kind(), "PersistentVolumeClaim" | "ServiceAccount"))
        .map(|m| {
            let kind = m.kind().to_ascii_lowercase();
            let resource = match group_of(m.api_version()) {
                "" => format!("{kind}/{}", m.name()),
                group => format!("{kind}.{group}/{}", m.name()),
            };
            let mut args = vec!["get", resource.as_str(), "-o", "json"];
            if let Some(ns) = m.namespace() {
                args.extend(["-n", ns]);
            }
            let (ok, out, err) = kubectl(&args, None);
            assert!(ok, "{}: {err}", m.describe());
            let v: Value = serde_json::from_str(&out).unwrap();
            let meta = &v["metadata"];
            let version = match &meta["generation"] {
                Value::Null => meta["resourceVersion"].as_str().unwrap_or_default().to_string(),
                g => format!("generation {g}"),
            };
            (m.describe(), version)
        })
        .collect()
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Node objects as kubelets register them: role label, taints, Ready.
fn register_nodes(nodes: &[NodeFact]) {
    let items: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": n.name, "labels": {
                    "vre.io/role": n.role.as_str(),
                    "kubernetes.io/hostname": n.name,
                    "kubernetes.io/os": "linux",
                }},
                "spec": {"taints": taints_of(n.role, false)},
                "status": {
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                },
            })
        })
        .collect();
    let (ok, out, err) = kubectl(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()),
    );
    assert!(ok, "{out}{err}");
    mark_ready(nodes);
}

/// Reports the nodes Ready now (the node lifecycle controller would mark
/// them Unknown ~40 s after the last heartbeat).
fn mark_ready(nodes: &[NodeFact]) {
    let now = chrono_now();
    for n in nodes {
        let patch = json!({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test kubelet",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}});
        let (ok, out, err) = kubectl(
            &[
                "patch",
                "node",
                &n.name,
                "--subresource=status",
                "--type=strategic",
                "-p",
                &patch.to_string(),
            ],
            None,
        );
        assert!(ok, "{out}{err}");
    }
}

fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn facts(dir: &Path, edges: u32) -> ClusterFacts {
    let mut spec = ClusterSpec::new("lab", "sim");
    spec.group_mut(Role::Service).count = 1;
    spec.group_mut(Role::Storage).count = 3;
    spec.group_mut(Role::Edge).count = edges;
    spec.master_as_edge = edges == 0;
    spec.storage.enabled = true;
    spec.storage.object_storage = true;
    spec.loadbalancer.https = HttpsMode::Acme {
        email: "ops@example.org".into(),
        staging: true,
    };
    spec.loadbalancer.dashboard = true;
    cluster_facts(spec, dir, |n, _, _| {
        n.volume_device = (n.role == Role::Storage).then(|| "/dev/vdb".to_string());
    })
}

/// Names of this test's nodes (`lab-*`) the pods matching `selector` in
/// `ns` are bound to, once `expected` of them are bound (or the deadline
/// passes). Nodes of other suites on the same API server get pods of these
/// DaemonSets too while they exist; they are not this test's subject.
fn bound_nodes(ns: &str, selector: &str, expected: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = kubectl(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"], None);
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let nodes: BTreeSet<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .filter(|n| n.starts_with("lab-"))
            .collect();
        if nodes.len() >= expected || Instant::now() > deadline {
            return nodes;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deletes Traefik's pods at once: without kubelets nothing confirms a
/// graceful deletion, so the DaemonSet controller would wait forever for the
/// old pods (a kubelet would stop them in seconds).
fn force_delete_traefik_pods() {
    let (ok, out, err) = kubectl(
        &[
            "delete",
            "pods",
            "-n",
            "vre-edge",
            "-l",
            "app.kubernetes.io/name=traefik",
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
        ],
        None,
    );
    assert!(
        ok || err.contains("NotFound") || err.contains("not found"),
        "{out}{err}"
    );
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn preset_app(dir: &Path, preset: &str, name: &str, file: &str, service: &str) -> AppSpec {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../presets")
        .join(preset)
        .join(file);
    let to = dir.join(file);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(src, &to).unwrap();
    AppSpec {
        name: name.into(),
        namespace: name.into(),
        source: AppSource::Manifest { path: file.into() },
        expose: Some(AppExpose {
            service: service.into(),
            port: 8888,
        }),
    }
}

/// Deletes cluster-scoped objects of the test when it ends, passed or
/// failed. Its Nodes: no kubelet runs on them, so DaemonSets applied later
/// to the same API server (another suite's CNI) would wait forever for pods
/// placed there. Its StorageClasses: another suite choosing the default class
/// would otherwise take over their default marking.
struct Remove {
    kind: &'static str,
    names: Vec<String>,
}

impl Drop for Remove {
    fn drop(&mut self) {
        let mut args = vec!["delete", self.kind, "--ignore-not-found", "--wait=false"];
        args.extend(self.names.iter().map(String::as_str));
        let (ok, out, err) = kubectl(&args, None);
        if !ok {
            eprintln!("could not delete the test's {} {:?}: {out}{err}", self.kind, self.names);
        }
    }
}

#[test]
#[ignore = "needs a kube-apiserver: set VRE_TEST_KUBECONFIG"]
fn objects_are_accepted_and_land_on_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts(dir.path(), 1);
    let _nodes = Remove {
        kind: "node",
        names: f.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    register_nodes(&f.nodes);
    // pods of an earlier run on these fake nodes never finish terminating
    force_delete_traefik_pods();

    let mut objects = Traefik::new().objects(&f).unwrap();
    objects.extend(SharedStorage::new().objects(&f).unwrap());
    objects.extend(ObjectStorage::new().objects(&f).unwrap());
    let apps = [
        preset_app(dir.path(), "jupyter", "jupyter", "apps/jupyter.yaml", "jupyter"),
        preset_app(dir.path(), "luigi", "workflows", "apps/luigi.yaml", "jupyter"),
    ];
    for (i, a) in apps.iter().enumerate() {
        objects.extend(vre_apps::App::new(i, a.clone(), &f.spec).objects(&f).unwrap());
    }
    let _classes = Remove {
        kind: "storageclass",
        names: objects
            .iter()
            .filter(|m| m.kind() == "StorageClass")
            .map(|m| m.name().to_string())
            .collect(),
    };
    apply(&objects);
    // idempotent: the same objects again change nothing (generation, or the
    // resourceVersion of objects without one; PVCs and ServiceAccounts are
    // updated by controllers in between and left out)
    let before = versions(&objects);
    apply(&objects);
    assert_eq!(versions(&objects), before, "re-applying changed objects");

    let all: BTreeSet<String> = f.nodes.iter().map(|n| n.name.clone()).collect();
    let storage = set(&["lab-storage-1", "lab-storage-2", "lab-storage-3"]);
    mark_ready(&f.nodes);
    assert_eq!(
        bound_nodes("vre-edge", "app.kubernetes.io/name=traefik", 1),
        set(&["lab-edge-1"])
    );
    assert_eq!(
        bound_nodes("vre-storage", "app.kubernetes.io/component=volume", 3),
        storage
    );
    assert_eq!(
        bound_nodes("vre-storage", "app.kubernetes.io/component=csi-node", all.len()),
        all
    );
    assert_eq!(
        bound_nodes("vre-storage", "app.kubernetes.io/component=csi-mount", all.len()),
        all
    );
    assert_eq!(
        bound_nodes("vre-storage", "app.kubernetes.io/component=master", 1),
        set(&["lab-storage-1"])
    );
    assert_eq!(
        bound_nodes("vre-storage", "app.kubernetes.io/component=filer", 1),
        set(&["lab-storage-1"])
    );
    let s3 = bound_nodes("vre-storage", "app.kubernetes.io/component=s3", 1);
    assert!(s3.len() == 1 && s3.is_subset(&storage), "S3 gateway on {s3:?}");

    // the same cluster with the master as its edge: Traefik moves to the master
    let g = facts(dir.path(), 0);
    let edge_node: Vec<NodeFact> = f.nodes.iter().filter(|n| n.role == Role::Edge).cloned().collect();
    for n in &edge_node {
        let (ok, out, err) = kubectl(&["delete", "node", &n.name, "--wait=false"], None);
        assert!(ok, "{out}{err}");
    }
    mark_ready(&g.nodes);
    apply(&Traefik::new().objects(&g).unwrap());
    force_delete_traefik_pods();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let on = bound_nodes("vre-edge", "app.kubernetes.io/name=traefik", 1);
        if on == set(&["lab-master-1"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Traefik should run on the master as edge, runs on {on:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
