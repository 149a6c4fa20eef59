//! Shared helpers of the Kubernetes-side tests: a cluster CA, kubeadm
//! user data as vre-kubernetes writes it, machines, and a running cluster
//! reached through the `kube` client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData};
use sha2::{Digest, Sha256};
use vre_sim::kube::{ClusterInfo, Clusters};
use vre_sim::{Machine, MachineEvents, SimConfig, SimStats};

pub const TOKEN: &str = "abcdef.0123456789abcdef";

/// A cluster CA as vre generates it.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    pub pin: String,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "kubernetes");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        // The pin: SHA-256 of the DER SubjectPublicKeyInfo, computed from the key.
        let pin = format!("sha256:{}", hex::encode(Sha256::digest(key.subject_public_key_info())));
        Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            pin,
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

fn extra_args(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "  kubeletExtraArgs:\n    - name: node-labels\n      value: \"{}\"\n",
        joined.join(",")
    )
}

fn taints_yaml(taints: Option<&[(&str, &str, &str)]>) -> String {
    match taints {
        None => String::new(),
        Some([]) => "  taints: []\n".into(),
        Some(list) => {
            let mut s = "  taints:\n".to_string();
            for (k, v, e) in list {
                s.push_str(&format!("    - key: {k}\n      value: \"{v}\"\n      effect: {e}\n"));
            }
            s
        }
    }
}

/// The master's `#cloud-config`: CA files, an Init/ClusterConfiguration,
/// and `kubeadm init --config`.
pub fn master_user_data(
    ca: &Ca,
    labels: &BTreeMap<String, String>,
    taints: Option<&[(&str, &str, &str)]>,
    public_ip: &str,
) -> String {
    let kubeadm = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n  - token: {TOKEN}\n    ttl: 2h0m0s\n    usages: [signing, authentication]\n    groups: [system:bootstrappers:kubeadm:default-node-token]\nnodeRegistration:\n{}{}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: testcluster\nkubernetesVersion: v1.33.1\nnetworking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\napiServer:\n  certSANs:\n    - {public_ip}\n",
        extra_args(labels),
        taints_yaml(taints),
    );
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/kubernetes/pki/ca.crt\n    permissions: \"0644\"\n    encoding: b64\n    content: {}\n  - path: /etc/kubernetes/pki/ca.key\n    permissions: \"0600\"\n    encoding: b64\n    content: {}\n  - path: /etc/kubernetes/vre/kubeadm.yaml\n    permissions: \"0600\"\n    content: |\n{}runcmd:\n  - [kubeadm, init, --config, /etc/kubernetes/vre/kubeadm.yaml, --skip-phases=addon/kube-proxy]\n",
        b64(&ca.cert_pem),
        b64(&ca.key_pem),
        indent(&kubeadm, 6),
    )
}

/// A worker's `#cloud-config` with a JoinConfiguration (kubeadm v1beta3:
/// kubeletExtraArgs as a map).
pub fn worker_user_data(
    endpoint: &str,
    token: &str,
    pin: &str,
    labels: &BTreeMap<String, String>,
    taints: Option<&[(&str, &str, &str)]>,
) -> String {
    let node_labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args = if labels.is_empty() {
        String::new()
    } else {
        format!("  kubeletExtraArgs:\n    node-labels: \"{}\"\n", node_labels.join(","))
    };
    let kubeadm = format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: {endpoint}\n    token: {token}\n    caCertHashes:\n      - {pin}\nnodeRegistration:\n{args}{}",
        taints_yaml(taints)
    );
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/kubernetes/vre/kubeadm.yaml\n    encoding: b64\n    content: {}\nruncmd:\n  - kubeadm join --config /etc/kubernetes/vre/kubeadm.yaml\n",
        b64(&kubeadm)
    )
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn machine(id: &str, name: &str, ip: Ipv4Addr, public: Option<Ipv4Addr>, user_data: String) -> Machine {
    Machine {
        id: id.to_string(),
        name: name.to_string(),
        project_id: "project-1".to_string(),
        private_ip: Some(ip),
        public_ips: public.map(IpAddr::V4).into_iter().collect(),
        user_data: Some(user_data),
        metadata: BTreeMap::new(),
    }
}

/// Fast simulated time: a 1 s join takes 10 ms.
pub fn fast_config() -> SimConfig {
    SimConfig {
        join_time: Duration::from_secs(1),
        ready_time: Duration::from_secs(1),
        time_scale: 0.01,
        ..SimConfig::default()
    }
}

/// Polls `f` every 10 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An async poll: `f` is awaited until it yields `Some`.
pub async fn eventually_async<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cluster with a master (10.0.0.10, public 203.0.113.10) up and Ready.
pub struct TestCluster {
    pub clusters: Arc<Clusters>,
    pub stats: Arc<SimStats>,
    pub ca: Ca,
    pub info: ClusterInfo,
    pub master: Machine,
}

pub const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
pub const MASTER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

impl TestCluster {
    pub async fn start(config: SimConfig) -> TestCluster {
        Self::start_with(config, None, &labels(&[("vre.io/role", "master")]), Some(&[])).await
    }

    pub async fn start_with(
        config: SimConfig,
        state_dir: Option<std::path::PathBuf>,
        master_labels: &BTreeMap<String, String>,
        taints: Option<&[(&str, &str, &str)]>,
    ) -> TestCluster {
        let stats = Arc::new(SimStats::default());
        let clusters = Clusters::new(Arc::new(config), stats.clone(), state_dir);
        let ca = Ca::new();
        let master = machine(
            "m-1",
            "master",
            MASTER_IP,
            Some(MASTER_PUBLIC),
            master_user_data(&ca, master_labels, taints, "203.0.113.10"),
        );
        clusters.booted(&master);
        let info = eventually(10, "the master's API server", || {
            clusters.cluster_for(IpAddr::V4(MASTER_IP))
        })
        .await;
        TestCluster {
            clusters,
            stats,
            ca,
            info,
            master,
        }
    }

    /// A client with the admin token that reports 429/503 answers instead
    /// of retrying them (the tests look at those answers).
    pub async fn client(&self) -> kube::Client {
        let mut config = self.config().await;
        config.default_retry = false;
        kube::Client::try_from(config).expect("a kube client")
    }

    /// A client as kube builds it by default: it retries 429s, honouring
    /// `Retry-After`.
    pub async fn retrying_client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("a kube client")
    }

    async fn config(&self) -> kube::Config {
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&self.info.admin_kubeconfig()).expect("parse the admin kubeconfig");
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a kube config from the admin kubeconfig")
    }

    /// Boots a worker that joins this cluster with the right token and pin.
    pub fn join(
        &self,
        id: &str,
        name: &str,
        ip: Ipv4Addr,
        node_labels: &BTreeMap<String, String>,
        taints: Option<&[(&str, &str, &str)]>,
    ) -> Machine {
        let ud = worker_user_data(&format!("{MASTER_IP}:6443"), TOKEN, &self.ca.pin, node_labels, taints);
        let m = machine(id, name, ip, None, ud);
        self.clusters.booted(&m);
        m
    }

    /// Waits until the named nodes exist and are Ready.
    pub async fn wait_ready(&self, nodes: &[&str]) {
        for n in nodes {
            eventually(10, &format!("node {n} Ready"), || {
                (ready_status(&self.clusters, &self.info.id, n)? == "True").then_some(())
            })
            .await;
        }
    }
}

/// The status of a node's Ready condition (`True`, `False`, `Unknown`),
/// if the node exists and has one.
pub fn ready_status(clusters: &Clusters, cluster: &str, node: &str) -> Option<String> {
    let n = clusters.object(cluster, "", "nodes", "", node)?;
    n["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}
