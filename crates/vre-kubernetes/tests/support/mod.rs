//! A stand-in for the machines of a cluster, against a real control plane
//! that has no kubelet: it "runs" a node's user data as kubeadm would
//! (`kubeadm init` checks the pre-placed CA; `kubeadm join` does token
//! discovery: reads `kube-public/cluster-info`, checks the JWS signature
//! the bootstrapsigner controller made with the token, and pins the CA by
//! the hash in the JoinConfiguration), registers the Node with the labels
//! and taints of its kubelet flags, and then acts as the kubelet: Lease and
//! Ready heartbeats, pods bound to its nodes reported Running and Ready,
//! deleted pods removed once terminated.
//!
//! The target is a kubeconfig path (`VRE_TEST_KUBECONFIG`, a cluster
//! admin) and the cluster CA (`VRE_TEST_CA_DIR` with `ca.crt` and
//! `ca.key`): `ci/k8s/k8s-apiserver.sh env` prints both.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use vre_kubernetes::kubeadm::KUBEADM_CONFIG_PATH;
use vre_kubernetes::node_bootstrap::{KubeadmAction, NodeBootstrap};

/// The label every node this harness registers carries (for clean-up).
pub const HARNESS_LABEL: &str = "vre.io/test-harness";
const KUBELET_MANAGER: &str = "fake-kubelet";

/// Where the tests point: a kubeconfig and the cluster CA.
pub struct Target {
    pub kubeconfig: PathBuf,
    pub ca_dir: PathBuf,
}

impl Target {
    /// From `VRE_TEST_KUBECONFIG` and `VRE_TEST_CA_DIR`.
    pub fn from_env() -> Target {
        let var = |name: &str| {
            std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
                panic!("{name} is not set: start a control plane with `ci/k8s/k8s-apiserver.sh start` and `eval \"$(ci/k8s/k8s-apiserver.sh env)\"`")
            })
        };
        Target {
            kubeconfig: var("VRE_TEST_KUBECONFIG"),
            ca_dir: var("VRE_TEST_CA_DIR"),
        }
    }

    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("VRE_TEST_KUBECONFIG is a kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("usable kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// The API server address (`host:port`) from the kubeconfig.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let server = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .expect("server");
        let hostport = server.trim_start_matches("https://").trim_end_matches('/');
        hostport
            .parse()
            .expect("the test kubeconfig's server is https://IP:PORT")
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_dir.join("ca.crt")).expect("ca.crt")
    }

    /// Puts the cluster CA where vre keeps its own (`<dir>/.vre/pki`), as
    /// if vre had generated it: vre then reuses it.
    pub fn install_ca(&self, deployment_dir: &Path) {
        let pki = vre_kubernetes::pki::pki_dir(deployment_dir);
        std::fs::create_dir_all(&pki).unwrap();
        for f in ["ca.crt", "ca.key"] {
            std::fs::copy(self.ca_dir.join(f), pki.join(f)).unwrap();
        }
    }
}

/// What `kubeadm init` leaves behind that joining nodes read: the
/// `cluster-info` ConfigMap in `kube-public` with the cluster CA.
pub async fn publish_cluster_info(client: &Client, target: &Target) {
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "",
            "cluster": {
                "server": format!("https://{}", target.api_addr()),
                "certificate-authority-data": STANDARD.encode(target.ca_pem()),
            },
        }],
        "contexts": [],
        "users": [],
        "current-context": "",
        "preferences": {},
    });
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": serde_yaml::to_string(&kubeconfig).unwrap()},
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    api.patch(
        "cluster-info",
        &PatchParams::apply("kubeadm").force(),
        &Patch::Apply(&cm),
    )
    .await
    .expect("publish cluster-info");
}

/// Rewrites the kubeadm config inside a node's user data (to break it on purpose).
pub fn edit_kubeadm_config(user_data: &str, edit: impl Fn(&mut Value)) -> String {
    let mut doc: Value = serde_yaml::from_str(user_data).unwrap();
    let files = doc["write_files"].as_array_mut().unwrap();
    let file = files.iter_mut().find(|f| f["path"] == KUBEADM_CONFIG_PATH).unwrap();
    let mut docs: Vec<Value> = serde_yaml::Deserializer::from_str(file["content"].as_str().unwrap())
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    for d in &mut docs {
        edit(d);
    }
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    file["content"] = Value::String(text);
    format!("#cloud-config\n{}", serde_yaml::to_string(&doc).unwrap())
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

/// kubeadm's token discovery: the cluster-info kubeconfig, signed (JWS,
/// HS256 with the token secret, detached payload) by the bootstrapsigner
/// for this token id, whose CA must match one of the pinned hashes.
pub async fn discover(client: &Client, token: &str, ca_hashes: &[String]) -> Result<(), String> {
    let (id, secret) = token.split_once('.').ok_or("malformed token")?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let cm = api
        .get("cluster-info")
        .await
        .map_err(|e| format!("cluster-info: {e}"))?;
    let data = cm.data.unwrap_or_default();
    let kubeconfig = data.get("kubeconfig").ok_or("cluster-info has no kubeconfig")?;
    let jws = data.get(&format!("jws-kubeconfig-{id}")).ok_or_else(|| {
        format!("there is no JWS signature for token id {id} in cluster-info: the token is not known to the cluster")
    })?;
    let (header, sig) = jws.split_once("..").ok_or("malformed detached JWS")?;
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(kubeconfig));
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| format!("JWS signature: {e}"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, signing_input.as_bytes(), &sig)
        .map_err(|_| "the cluster-info JWS does not verify with this token's secret".to_string())?;
    let kc: Value = serde_yaml::from_str(kubeconfig).map_err(|e| format!("cluster-info kubeconfig: {e}"))?;
    let ca_b64 = kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .ok_or("no CA in cluster-info")?;
    let ca_pem = String::from_utf8(STANDARD.decode(ca_b64).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let hash = vre_kubernetes::pki::spki_sha256(&pem_to_der(&ca_pem)).map_err(|e| e.to_string())?;
    if !ca_hashes.contains(&hash) {
        return Err(format!(
            "cluster CA {hash} matches none of the pinned hashes {ca_hashes:?}"
        ));
    }
    Ok(())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// The machines: registered node names and the kubelet loop.
pub struct Machines {
    client: Client,
    nodes: Arc<Mutex<BTreeSet<String>>>,
    kubelet: JoinHandle<()>,
    discovery_timeout: Duration,
}

impl Machines {
    /// Starts the kubelet loop. Joins retry discovery for `discovery_timeout`.
    pub fn start(client: Client, discovery_timeout: Duration) -> Machines {
        let nodes: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let kubelet = tokio::spawn(kubelet_loop(client.clone(), nodes.clone()));
        Machines {
            client,
            nodes,
            kubelet,
            discovery_timeout,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.lock().unwrap().iter().cloned().collect()
    }

    /// "Boots" a machine called `name` with `user_data`: runs kubeadm init
    /// or join as the user data says, then registers its Node.
    pub async fn boot(&self, name: &str, user_data: &str, cluster_ca_pem: &str) -> Result<(), String> {
        let plan = NodeBootstrap::parse(user_data).map_err(|e| e.to_string())?;
        match plan.action {
            KubeadmAction::Init => {
                // kubeadm init uses the CA the user data placed
                let placed = plan.ca_cert_pem.as_deref().ok_or("the master's user data has no CA")?;
                if placed.trim() != cluster_ca_pem.trim() || plan.ca_key_pem().is_none() {
                    return Err("the master's user data does not carry the cluster's CA and key".into());
                }
            }
            KubeadmAction::Join => {
                if plan.unsafe_skip_ca_verification {
                    return Err("refusing unsafeSkipCAVerification".into());
                }
                let deadline = tokio::time::Instant::now() + self.discovery_timeout;
                loop {
                    match discover(&self.client, plan.token(), &plan.ca_cert_hashes).await {
                        Ok(()) => break,
                        Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
            }
        }
        self.register(name, &plan)
            .await
            .map_err(|e| format!("register {name}: {e}"))?;
        self.nodes.lock().unwrap().insert(name.to_string());
        Ok(())
    }

    async fn register(&self, name: &str, plan: &NodeBootstrap) -> Result<(), kube::Error> {
        let mut labels = plan.node_labels.clone();
        labels.insert("kubernetes.io/hostname".into(), name.into());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        labels.insert(HARNESS_LABEL.into(), "true".into());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": plan.taints},
        }))
        .expect("node");
        let api: Api<Node> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &node).await?;
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&node_status(name)))
            .await?;
        renew_lease(&self.client, name).await?;
        Ok(())
    }

    /// Stops the kubelets and deletes their Node objects.
    pub async fn shutdown(self) {
        self.kubelet.abort();
        let api: Api<Node> = Api::all(self.client.clone());
        for n in self.names() {
            let _ = api.delete(&n, &DeleteParams::default()).await;
        }
    }
}

fn node_status(name: &str) -> Value {
    let t = now();
    let cond = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": reason,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady"),
        ],
        "addresses": [{"type": "Hostname", "address": name}],
        "nodeInfo": {
            "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
            "containerRuntimeVersion": "containerd://1.7.12", "operatingSystem": "linux",
            "architecture": "amd64", "osImage": "Ubuntu 24.04 LTS", "kernelVersion": "6.8.0",
            "machineID": name, "systemUUID": name, "bootID": name,
        },
    }})
}

async fn renew_lease(client: &Client, node: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    });
    api.patch(
        node,
        &PatchParams::apply(KUBELET_MANAGER).force(),
        &Patch::Apply(&lease),
    )
    .await?;
    Ok(())
}

fn pod_running_status(pod: &Pod) -> Value {
    let t = now();
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            json!({"name": c.name, "ready": true, "started": true, "restartCount": 0,
                   "image": c.image.clone().unwrap_or_default(), "imageID": "",
                   "state": {"running": {"startedAt": t}}})
        })
        .collect();
    let cond = |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": t});
    json!({"status": {
        "phase": "Running",
        "startTime": t,
        "hostIP": "10.0.0.20",
        "podIP": "10.244.1.10",
        "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "containerStatuses": containers,
    }})
}

fn is_running_ready(pod: &Pod) -> bool {
    let st = pod.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The kubelets of every registered node: heartbeats every 10 s, pod sync every 500 ms.
async fn kubelet_loop(client: Client, nodes: Arc<Mutex<BTreeSet<String>>>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let node_api: Api<Node> = Api::all(client.clone());
    let mut last_heartbeat = tokio::time::Instant::now();
    loop {
        let ours = nodes.lock().unwrap().clone();
        if last_heartbeat.elapsed() >= Duration::from_secs(10) {
            last_heartbeat = tokio::time::Instant::now();
            for n in &ours {
                let _ = renew_lease(&client, n).await;
                let _ = node_api
                    .patch_status(n, &PatchParams::default(), &Patch::Merge(&node_status(n)))
                    .await;
            }
        }
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in list.items {
                let on_ours = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| ours.contains(n));
                if !on_ours {
                    continue;
                }
                let ns = pod.namespace().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                if pod.metadata.deletion_timestamp.is_some() {
                    // the containers stopped: the kubelet confirms the deletion
                    let _ = api
                        .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                        .await;
                } else if !is_running_ready(&pod) {
                    let _ = api
                        .patch_status(
                            &pod.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&pod_running_status(&pod)),
                        )
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes nodes an interrupted earlier run left behind.
pub async fn remove_stale_nodes(client: &Client) {
    let api: Api<Node> = Api::all(client.clone());
    let stale = api
        .list(&ListParams::default().labels(&format!("{HARNESS_LABEL}=true")))
        .await
        .expect("list nodes");
    for n in stale.items {
        let _ = api.delete(&n.name_any(), &DeleteParams::default()).await;
    }
}
