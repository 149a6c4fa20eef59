//! The orchestrator against a real Kubernetes control plane (kube-apiserver,
//! controller-manager with the bootstrap-token controllers, scheduler).
//! Nodes are "booted" by the harness in `support` from the user data the
//! orchestrator generates. Ignored by default; run them with a control
//! plane up:
//!
//! ```sh
//! ci/k8s/k8s-apiserver.sh build && ci/k8s/k8s-apiserver.sh start
//! eval "$(ci/k8s/k8s-apiserver.sh env)"   # VRE_TEST_KUBECONFIG, VRE_TEST_CA_DIR
//! cargo test -p vre-kubernetes --test control_plane -- --include-ignored
//! ```
//!
//! The tests share the cluster and run one at a time (a lock), since
//! DaemonSets see every node.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::{Machines, Target};
use tempfile::TempDir;
use tokio::sync::Mutex;
use vre_core::spec::{Ipv4Cidr, KubernetesSpec};
use vre_core::{
    BootstrapFacts, ClusterFacts, ClusterSpec, Event, EventSink, ExpectedNode, Manifest, NODE_ROLE_LABEL, Orchestrator,
    ReadinessCheck, Role,
};
use vre_kubernetes::storage_class::DEFAULT_CLASS_ANNOTATION;
use vre_kubernetes::{KubernetesOptions, KubernetesOrchestrator};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// A deployment directory whose CA is the test cluster's, prepared and connected.
struct Cluster {
    dir: TempDir,
    name: String,
    target: Target,
    admin: Client,
    orchestrator: Arc<KubernetesOrchestrator>,
    facts: BootstrapFacts,
}

fn random_suffix() -> String {
    let n: u32 = rand::random();
    format!("{:06x}", n & 0xff_ffff)
}

fn options() -> KubernetesOptions {
    KubernetesOptions {
        api_timeout: Duration::from_secs(60),
        cni_timeout: Duration::from_secs(120),
        ..KubernetesOptions::default()
    }
}

/// Cluster `name` on the test control plane: master at 10.0.0.10 with no
/// public address, Kubernetes 1.30.2 preinstalled, separate worker nodes.
fn facts(name: &str, target: &Target) -> BootstrapFacts {
    BootstrapFacts {
        cluster: name.into(),
        master_private_ip: "10.0.0.10".parse().unwrap(),
        master_public_ip: None,
        api_port: target.api_addr().port(),
        kubernetes_version: "1.30.2".into(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        image_preinstalled: true,
        ssh_user: "ubuntu".into(),
        master_as_edge: false,
        single_node: false,
    }
}

/// The rollout of Deployment `namespace/name`.
fn deployment_rollout(namespace: &str, name: &str) -> ReadinessCheck {
    ReadinessCheck::Rollout {
        kind: "Deployment".into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

impl Cluster {
    async fn up() -> Cluster {
        let target = Target::from_env();
        let admin = target.client().await;
        support::remove_stale_nodes(&admin).await;
        support::publish_cluster_info(&admin, &target).await;
        let dir = tempfile::tempdir().unwrap();
        target.install_ca(dir.path());
        let name = format!("it-{}", random_suffix());
        let facts = facts(&name, &target);
        let orchestrator = Arc::new(KubernetesOrchestrator::new(dir.path(), options()));
        orchestrator.prepare(&facts).await.expect("prepare");
        let path = orchestrator.connect(target.api_addr(), &facts).await.expect("connect");
        assert_eq!(path, dir.path().join("kubeconfig"));
        Cluster {
            dir,
            name,
            target,
            admin,
            orchestrator,
            facts,
        }
    }

    fn node(&self, role: Role, i: u32) -> String {
        format!("{}-{role}-{i}", self.name)
    }

    fn expected(&self, nodes: &[(Role, u32)]) -> Vec<ExpectedNode> {
        nodes
            .iter()
            .map(|(role, i)| ExpectedNode {
                name: self.node(*role, *i),
                role: *role,
                private_ip: None,
            })
            .collect()
    }

    /// Boots every node in the background, as the cloud would, each with its role's user data.
    fn boot(
        &self,
        machines: &Arc<Machines>,
        nodes: &[(Role, u32)],
    ) -> tokio::task::JoinHandle<Vec<Result<(), String>>> {
        let jobs: Vec<(String, String)> = nodes
            .iter()
            .map(|(role, i)| {
                (
                    self.node(*role, *i),
                    self.orchestrator.user_data(*role, &self.facts).expect("user data"),
                )
            })
            .collect();
        let machines = machines.clone();
        let ca = self.target.ca_pem();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for (name, user_data) in jobs {
                results.push(machines.boot(&name, &user_data, &ca).await);
            }
            results
        })
    }

    fn cluster_facts(&self) -> ClusterFacts {
        let mut spec = ClusterSpec::new(&self.name, "local");
        spec.kubernetes = KubernetesSpec {
            pod_cidr: "10.244.0.0/16".parse::<Ipv4Cidr>().unwrap(),
            ..KubernetesSpec::default()
        };
        ClusterFacts {
            spec: Arc::new(spec),
            nodes: Vec::new(),
            edge_ips: Vec::new(),
            domain: None,
            api_endpoint: format!("https://{}", self.target.api_addr()),
            dir: self.dir.path().to_path_buf(),
        }
    }
}

fn m(v: Value) -> Manifest {
    Manifest::new(v)
}

/// A microservice shaped like the storage layer: its own namespace, a
/// ConfigMap, a Secret, a Service (protocol set: 1.20 needs it for apply)
/// and a DaemonSet on the storage nodes, tolerating their taint.
fn storage_like(ns: &str) -> Vec<Manifest> {
    vec![
        m(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        m(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": ns},
                 "data": {"volume": "/dev/vdb"}}),
        ),
        m(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": ns},
                 "type": "Opaque", "stringData": {"access": "generated-elsewhere"}}),
        ),
        m(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "store", "namespace": ns},
                 "spec": {"selector": {"app": "store"}, "ports": [{"name": "s3", "port": 8333, "protocol": "TCP"}]}}),
        ),
        m(
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "store", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app": "store"}},
                "template": {
                    "metadata": {"labels": {"app": "store"}},
                    "spec": {
                        "nodeSelector": {NODE_ROLE_LABEL: "storage"},
                        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoSchedule"}],
                        "containers": [{"name": "store", "image": "registry.example/store:1",
                                        "ports": [{"containerPort": 8333, "protocol": "TCP"}]}],
                    },
                },
            }}),
        ),
    ]
}

async fn resource_versions(client: &Client, objects: &[Manifest]) -> BTreeMap<String, String> {
    let catalog = vre_kubernetes::apply::Catalog::new(client.clone());
    let mut out = BTreeMap::new();
    for o in objects {
        let t = catalog.resolve(o.api_version(), o.kind(), None).await.unwrap();
        let obj = catalog.api(&t, o.namespace()).get(o.name()).await.unwrap();
        out.insert(o.describe(), obj.resource_version().unwrap());
    }
    out
}

/// Whether kube-system holds the Secret of bootstrap token `id`.
async fn has_token_secret(admin: &Client, id: &str) -> bool {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .get_opt(&format!("bootstrap-token-{id}"))
        .await
        .unwrap()
        .is_some()
}

async fn pods_of(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

/// The whole life of a cluster: nodes join with the generated user data and
/// are waited on (one watch) and labelled; the CNI and a microservice apply
/// cleanly and re-apply as no-ops; the scheduler puts the DaemonSet on
/// exactly the storage nodes; a default StorageClass stays unique; drain
/// evicts what it should; nodes are removed.
#[tokio::test]
#[ignore = "needs a control plane: VRE_TEST_KUBECONFIG and VRE_TEST_CA_DIR (ci/k8s/k8s-apiserver.sh env)"]
async fn cluster_lifecycle() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::up().await;
    let o = c.orchestrator.clone();

    // the kubeconfig vre wrote is private and works in a new process
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(o.kubeconfig_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let fresh = KubernetesOrchestrator::new(c.dir.path(), options());
    fresh.nodes().await.expect("nodes() from the kubeconfig alone");
    // connect created the join token's Secret (the cluster had none for it)
    let token = vre_kubernetes::token::BootstrapToken::load(&o.pki_dir().join("bootstrap-token.json")).unwrap();
    assert!(has_token_secret(&c.admin, token.id()).await);

    let layout = [
        (Role::Master, 1),
        (Role::Service, 1),
        (Role::Storage, 1),
        (Role::Storage, 2),
        (Role::Edge, 1),
    ];
    let machines = Arc::new(Machines::start(c.admin.clone(), Duration::from_secs(60)));
    let booting = c.boot(&machines, &layout);

    let (events, mut rx) = EventSink::channel();
    let states = o
        .wait_nodes(&c.expected(&layout), Duration::from_secs(120), &events)
        .await
        .expect("all nodes join");
    for r in booting.await.unwrap() {
        r.expect("boot");
    }
    assert_eq!(states.len(), layout.len());
    assert!(states.iter().all(|s| s.ready));
    let mut last_ready = None;
    while let Ok(ev) = rx.try_recv() {
        if let Event::NodesReady { ready, expected } = ev {
            assert_eq!(expected, layout.len());
            last_ready = Some(ready);
        }
    }
    assert_eq!(last_ready, Some(layout.len()));

    // role labels and taints
    let nodes: Api<Node> = Api::all(c.admin.clone());
    for (role, i) in layout {
        let n = nodes.get(&c.node(role, i)).await.unwrap();
        assert_eq!(
            n.labels()
                .get(&format!("node-role.kubernetes.io/{role}"))
                .map(String::as_str),
            Some("")
        );
        assert_eq!(n.labels().get(NODE_ROLE_LABEL).map(String::as_str), Some(role.as_str()));
        let taints: Vec<String> = n
            .spec
            .unwrap_or_default()
            .taints
            .unwrap_or_default()
            .iter()
            .filter(|t| !t.key.starts_with("node.kubernetes.io/"))
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect();
        let want: Vec<&str> = match role {
            Role::Storage => vec!["dedicated=storage:NoSchedule"],
            Role::Master => vec!["node-role.kubernetes.io/control-plane=:NoSchedule"],
            _ => vec![],
        };
        assert_eq!(taints, want, "{role}-{i}");
    }

    // the CNI: applied, rolled out on every node, re-applied as a no-op
    o.install_base(&c.cluster_facts()).await.expect("flannel");
    let flannel = vre_kubernetes::cni::flannel_manifests("10.244.0.0/16").unwrap();
    let before = resource_versions(&c.admin, &flannel).await;
    o.install_base(&c.cluster_facts()).await.expect("flannel again");
    assert_eq!(
        resource_versions(&c.admin, &flannel).await,
        before,
        "re-applying flannel changed objects"
    );
    let ds: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "kube-flannel");
    let fds = ds.get("kube-flannel-ds").await.unwrap();
    assert!(fds.status.unwrap().desired_number_scheduled >= layout.len() as i32);

    // a microservice: applied, ready, on exactly the storage nodes, idempotent
    let ns = format!("{}-store", c.name);
    let objects = storage_like(&ns);
    o.apply(&objects).await.expect("apply");
    let rollout = ReadinessCheck::Rollout {
        kind: "DaemonSet".into(),
        namespace: ns.clone(),
        name: "store".into(),
    };
    o.wait_ready(std::slice::from_ref(&rollout), Duration::from_secs(60))
        .await
        .expect("rolled out");
    let placed: BTreeSet<String> = pods_of(&c.admin, &ns, "app=store")
        .await
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    let storage: BTreeSet<String> = [c.node(Role::Storage, 1), c.node(Role::Storage, 2)].into();
    assert_eq!(placed, storage, "the scheduler put the storage DaemonSet elsewhere");
    let before = resource_versions(&c.admin, &objects).await;
    o.apply(&objects).await.expect("re-apply");
    assert_eq!(
        resource_versions(&c.admin, &objects).await,
        before,
        "re-applying changed objects"
    );

    // a CRD and an object of its kind in one batch: discovery is refreshed once the CRD is served
    let group = format!("{}.it.vre.io", c.name);
    let crd_batch = vec![
        m(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": format!("widgets.{group}")},
                 "spec": {"group": group, "scope": "Namespaced",
                          "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                          "versions": [{"name": "v1", "served": true, "storage": true,
                                        "schema": {"openAPIV3Schema": {"type": "object",
                                            "properties": {"spec": {"type": "object",
                                                "properties": {"size": {"type": "integer"}}}}}}}]}}),
        ),
        m(json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                 "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}})),
    ];
    o.apply(&crd_batch).await.expect("CRD and its object in one batch");
    o.wait_ready(
        &[ReadinessCheck::Exists {
            api_version: format!("{group}/v1"),
            kind: "Widget".into(),
            namespace: Some(ns.clone()),
            name: "w".into(),
        }],
        Duration::from_secs(10),
    )
    .await
    .expect("the Widget exists");
    let mut crd_reversed = crd_batch.clone();
    crd_reversed.reverse();
    o.delete(&crd_reversed).await.unwrap();

    // readiness that cannot be reached names the object and its status
    let stuck = vec![m(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "stuck", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "stuck"}},
                 "template": {"metadata": {"labels": {"app": "stuck"}},
                              "spec": {"nodeSelector": {"no-such": "label"},
                                       "containers": [{"name": "c", "image": "registry.example/c:1"}]}}}}))];
    o.apply(&stuck).await.unwrap();
    let err = o
        .wait_ready(&[deployment_rollout(&ns, "stuck")], Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timed out") && err.contains(&format!("Deployment {ns}/stuck")),
        "{err}"
    );
    assert!(
        err.contains("0 of 1 replicas updated") || err.contains("not Available") || err.contains("available"),
        "{err}"
    );
    o.delete(&stuck).await.unwrap();

    // only one default StorageClass
    let sc = |name: &str, default: bool| {
        m(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                 "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: default.to_string()}},
                 "provisioner": "example.org/none"}))
    };
    let (sc_a, sc_b) = (format!("{}-a", c.name), format!("{}-b", c.name));
    o.apply(&[sc(&sc_a, true)]).await.unwrap();
    o.apply(&[sc(&sc_b, true)]).await.unwrap();
    let classes: Api<StorageClass> = Api::all(c.admin.clone());
    let defaults: Vec<String> = classes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.annotations().get(DEFAULT_CLASS_ANNOTATION).map(String::as_str) == Some("true"))
        .map(|s| s.name_any())
        .collect();
    assert_eq!(defaults, std::slice::from_ref(&sc_b));
    o.delete(&[sc(&sc_a, false), sc(&sc_b, true)]).await.unwrap();

    // drain: a Deployment pod on storage-1 is evicted, the DaemonSet pod stays
    let victim_node = c.node(Role::Storage, 1);
    let web = vec![m(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": victim_node},
                                       "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                                       "containers": [{"name": "c", "image": "registry.example/web:1"}]}}}}))];
    o.apply(&web).await.unwrap();
    o.wait_ready(&[deployment_rollout(&ns, "web")], Duration::from_secs(60))
        .await
        .expect("web ready");
    let web_pod = pods_of(&c.admin, &ns, "app=web").await.remove(0);
    assert_eq!(
        web_pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(victim_node.as_str())
    );
    let store_pod_uid = pods_of(&c.admin, &ns, "app=store")
        .await
        .into_iter()
        .find(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(victim_node.as_str()))
        .and_then(|p| p.uid())
        .unwrap();
    o.drain(&victim_node, Duration::from_secs(60)).await.expect("drain");
    let drained = nodes.get(&victim_node).await.unwrap();
    assert_eq!(drained.spec.unwrap().unschedulable, Some(true));
    let on_victim: Vec<Pod> = Api::<Pod>::all(c.admin.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={victim_node}")))
        .await
        .unwrap()
        .items;
    assert!(
        !on_victim.iter().any(|p| p.uid() == web_pod.uid()),
        "the Deployment pod was not evicted"
    );
    assert!(
        on_victim
            .iter()
            .any(|p| p.uid().as_deref() == Some(store_pod_uid.as_str())),
        "the DaemonSet pod was evicted"
    );

    // removing a node, then the microservice
    o.remove_node(&victim_node).await.unwrap();
    o.remove_node(&victim_node)
        .await
        .expect("removing an absent node is fine");
    assert!(!o.nodes().await.unwrap().iter().any(|n| n.name == victim_node));
    let mut reversed = objects.clone();
    reversed.reverse();
    o.delete(&web).await.unwrap();
    o.delete(&reversed).await.unwrap();
    o.delete(&reversed).await.expect("deleting absent objects is fine");

    Arc::try_unwrap(machines).ok().expect("boot task done").shutdown().await;
}

/// A node whose user data pins another CA, and one with a token the
/// cluster does not know, never join: `wait_nodes` times out naming them
/// (and not the good node) with the likely cause.
#[tokio::test]
#[ignore = "needs a control plane: VRE_TEST_KUBECONFIG and VRE_TEST_CA_DIR (ci/k8s/k8s-apiserver.sh env)"]
async fn wrong_ca_hash_or_token_is_reported() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::up().await;
    let machines = Machines::start(c.admin.clone(), Duration::from_secs(5));
    let good = c.orchestrator.user_data(Role::Service, &c.facts).unwrap();
    let wrong_hash = support::edit_kubeadm_config(&good, |d| {
        d["discovery"]["bootstrapToken"]["caCertHashes"] =
            json!(["sha256:0000000000000000000000000000000000000000000000000000000000000000"]);
    });
    let wrong_token = support::edit_kubeadm_config(&good, |d| {
        d["discovery"]["bootstrapToken"]["token"] = json!("abcdef.0123456789abcdef");
    });
    let ca = c.target.ca_pem();
    let err = machines
        .boot(&c.node(Role::Service, 2), &wrong_hash, &ca)
        .await
        .unwrap_err();
    assert!(err.contains("matches none of the pinned hashes"), "{err}");
    let err = machines
        .boot(&c.node(Role::Service, 3), &wrong_token, &ca)
        .await
        .unwrap_err();
    assert!(err.contains("no JWS signature for token id abcdef"), "{err}");
    machines
        .boot(&c.node(Role::Service, 1), &good, &ca)
        .await
        .expect("the good node joins");

    let expected = c.expected(&[(Role::Service, 1), (Role::Service, 2), (Role::Service, 3)]);
    let err = c
        .orchestrator
        .wait_nodes(&expected, Duration::from_secs(5), &EventSink::none())
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("wait_nodes: {text}");
    assert!(matches!(err, vre_core::Error::Timeout { .. }), "{text}");
    assert!(text.contains("2 of 3 nodes"), "{text}");
    assert!(
        text.contains(&c.node(Role::Service, 2)) && text.contains(&c.node(Role::Service, 3)),
        "{text}"
    );
    assert!(!text.contains(&format!("{},", c.node(Role::Service, 1))), "{text}");
    assert!(
        text.contains("never registered") && text.contains("join token and CA hash"),
        "{text}"
    );
    machines.shutdown().await;
}

/// A join token past its renewal point is replaced by `prepare`, and
/// `connect` creates the new token in the cluster, so nodes added later
/// (scale-up after the TTL) can still join.
#[tokio::test]
#[ignore = "needs a control plane: VRE_TEST_KUBECONFIG and VRE_TEST_CA_DIR (ci/k8s/k8s-apiserver.sh env)"]
async fn expired_token_is_renewed_and_joins_work() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::up().await;
    let pki = c.orchestrator.pki_dir();
    let old = vre_kubernetes::token::BootstrapToken::load(&pki.join("bootstrap-token.json")).unwrap();
    // the stored token expired an hour ago
    let expired = serde_json::json!({"token": old.token(), "expires": "2000-01-01T00:00:00Z"});
    std::fs::write(pki.join("bootstrap-token.json"), expired.to_string()).unwrap();
    let again = KubernetesOrchestrator::new(c.dir.path(), options());
    again.prepare(&c.facts).await.unwrap();
    let new = vre_kubernetes::token::BootstrapToken::load(&pki.join("bootstrap-token.json")).unwrap();
    assert_ne!(new.id(), old.id());
    again.connect(c.target.api_addr(), &c.facts).await.unwrap();
    assert!(has_token_secret(&c.admin, new.id()).await);
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "kube-system");

    let machines = Machines::start(c.admin.clone(), Duration::from_secs(30));
    let user_data = again.user_data(Role::Edge, &c.facts).unwrap();
    machines
        .boot(&c.node(Role::Edge, 1), &user_data, &c.target.ca_pem())
        .await
        .expect("a node with the renewed token joins");
    let states = again
        .wait_nodes(
            &c.expected(&[(Role::Edge, 1)]),
            Duration::from_secs(30),
            &EventSink::none(),
        )
        .await
        .unwrap();
    assert_eq!(states[0].role, Some(Role::Edge));
    for id in [old.id(), new.id()] {
        let _ = secrets
            .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
            .await;
    }
    machines.shutdown().await;
}

/// `connect` with a CA the API server does not use fails with a message
/// naming the certificate problem instead of hanging.
#[tokio::test]
#[ignore = "needs a control plane: VRE_TEST_KUBECONFIG and VRE_TEST_CA_DIR (ci/k8s/k8s-apiserver.sh env)"]
async fn connect_with_a_foreign_ca_fails_clearly() {
    let _serial = SERIAL.lock().await;
    let target = Target::from_env();
    let dir = tempfile::tempdir().unwrap();
    let facts = BootstrapFacts {
        master_as_edge: true,
        single_node: true,
        ..facts("foreign", &target)
    };
    let o = KubernetesOrchestrator::new(
        dir.path(),
        KubernetesOptions {
            api_timeout: Duration::from_secs(3),
            ..KubernetesOptions::default()
        },
    );
    o.prepare(&facts).await.unwrap();
    let err = o.connect(target.api_addr(), &facts).await.unwrap_err().to_string();
    eprintln!("connect with a foreign CA: {err}");
    assert!(
        err.contains("did not answer") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}
