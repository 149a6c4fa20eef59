//! `kubectl` (the real binary) against a simulated cluster: `get nodes`,
//! client-side and server-side `apply -f`. Skipped, with a message, when
//! `/usr/bin/kubectl` is absent.

mod kube_support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;

use kube_support::*;

const KUBECTL: &str = "/usr/bin/kubectl";

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn new(dir: &Path, kubeconfig: &str) -> Kubectl {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig).unwrap();
        Kubectl {
            kubeconfig: path,
            cache: dir.join("cache"),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        cmd.env("HOME", self.cache.parent().unwrap()).env_remove("KUBECONFIG");
        tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .expect("kubectl timed out")
            .expect("run kubectl")
    }

    /// Runs kubectl and returns its stdout, failing the test on a non-zero exit.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_nodes_and_applies_manifests() {
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipping: {KUBECTL} is not installed");
        return;
    }
    let tc = TestCluster::start(fast_config()).await;
    tc.join(
        "w-1",
        "worker-1",
        Ipv4Addr::new(10, 0, 0, 21),
        &labels(&[("vre.io/role", "service")]),
        None,
    );
    tc.wait_ready(&["master", "worker-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::new(dir.path(), &tc.info.admin_kubeconfig());

    let nodes = k.ok(&["get", "nodes"]).await;
    println!("{nodes}");
    let mut lines = nodes.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][..3], ["master", "Ready", "control-plane"]);
    assert_eq!(rows[0][4], "v1.33.1");
    assert_eq!(rows[1][..3], ["worker-1", "Ready", "<none>"]);

    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          ports:\n            - containerPort: 80\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let out = k.ok(&["apply", "-f", m]).await;
    println!("{out}");
    assert!(out.contains("configmap/settings created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = k.ok(&["apply", "-f", m]).await;
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("replicas: 2", "replicas: 3")
            .replace("mode: fast", "mode: safe"),
    )
    .unwrap();
    let out = k.ok(&["apply", "-f", m]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/settings configured"), "{out}");
    let replicas = k
        .ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(replicas, "3");

    // Server-side apply, by another manager: conflicts with the client-side owner, then forced.
    let ssa = dir.path().join("ssa.yaml");
    std::fs::write(
        &ssa,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: server\n",
    )
    .unwrap();
    let s = ssa.to_str().unwrap();
    let conflict = k.run(&["apply", "--server-side", "--field-manager=ops", "-f", s]).await;
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(err.contains("conflict"), "{err}");
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "--force-conflicts",
            "-f",
            s,
        ])
        .await;
    assert!(out.contains("configmap/settings serverside-applied"), "{out}");
    let mode = k
        .ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"])
        .await;
    assert_eq!(mode, "server");

    // A `kind: List`: kubectl validates its items on the client with the
    // OpenAPI v2 document (protobuf), then creates them one by one.
    let list = dir.path().join("list.json");
    std::fs::write(
        &list,
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"n": "1"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}, "data": {"n": "2"}}]}"#,
    )
    .unwrap();
    let l = list.to_str().unwrap();
    let out = k.ok(&["apply", "-f", l]).await;
    assert!(
        out.contains("configmap/one created") && out.contains("configmap/two created"),
        "{out}"
    );
    let out = k.ok(&["apply", "--server-side", "-f", l]).await;
    assert!(out.contains("configmap/two serverside-applied"), "{out}");
    k.ok(&["delete", "-f", l]).await;

    // Other everyday commands.
    let pods = k.ok(&["get", "pods", "-o", "wide"]).await;
    println!("{pods}");
    assert!(pods.contains("READY") && pods.contains("NODE"), "{pods}");
    let out = k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = k.ok(&["scale", "deployment/web", "--replicas=2"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    let out = k.ok(&["auth", "can-i", "delete", "nodes"]).await;
    assert_eq!(out.trim(), "yes");
    let out = k.ok(&["get", "all", "-A"]).await;
    assert!(
        out.contains("service/kubernetes") && out.contains("deployment.apps/web"),
        "{out}"
    );
    let out = k.ok(&["describe", "node", "worker-1"]).await;
    assert!(out.contains("Taints:") && out.contains("vre.io/role=service"), "{out}");
    // Drain: cordon, evict, wait for the pods to go.
    let out = k
        .ok(&[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=60s",
        ])
        .await;
    assert!(out.contains("node/worker-1 drained"), "{out}");
    let nodes = k.ok(&["get", "nodes"]).await;
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    let left = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=worker-1",
            "-o",
            "name",
        ])
        .await;
    assert!(left.lines().all(|l| !l.contains("web-")), "{left}");

    let out = k.ok(&["delete", "configmap", "settings"]).await;
    assert!(out.contains("configmap \"settings\" deleted"), "{out}");
    tc.clusters.shutdown().await;
}
