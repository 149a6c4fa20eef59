//! The kubeadm configuration each role boots with: `InitConfiguration` +
//! `ClusterConfiguration` + `KubeletConfiguration` on the master,
//! `JoinConfiguration` on every other node. Roles become node labels and
//! taints at registration, through the kubelet.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use serde_json::{Value, json};
use vre_core::{BootstrapFacts, NODE_ROLE_LABEL, Role, STORAGE_TAINT_KEY, STORAGE_TAINT_VALUE};

use crate::error::{KubeError, Result};
use crate::token::{BOOTSTRAP_GROUP, BootstrapToken, go_duration};
use crate::version::KubernetesVersion;

/// Label on every node that runs the edge load balancer: edge nodes, and
/// the master when it doubles as the edge (`vre.io/edge=true`). Set by the
/// kubelet at registration.
pub const EDGE_LABEL: &str = "vre.io/edge";
/// The taint kubeadm (1.24+) puts on control-plane nodes.
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";
/// containerd's CRI socket.
pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// Where the user data writes the kubeadm config on every node.
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/vre/kubeadm.yaml";

/// What goes into a node's kubeadm config besides the facts.
#[derive(Clone, Debug)]
pub struct KubeadmInputs<'a> {
    pub facts: &'a BootstrapFacts,
    pub version: KubernetesVersion,
    pub token: &'a BootstrapToken,
    /// `sha256:<hex>` of the cluster CA.
    pub ca_hash: &'a str,
    /// Life left to the token when the master runs `kubeadm init`.
    pub token_ttl: Duration,
    /// How long a joining node retries discovery (the master may still be booting).
    pub discovery_timeout: Duration,
    /// How long `kubeadm init` waits for the control plane to be healthy.
    pub control_plane_timeout: Duration,
}

/// The labels the kubelet of a `role` node registers with.
pub fn node_labels(role: Role, facts: &BootstrapFacts) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(NODE_ROLE_LABEL.to_string(), role.as_str().to_string());
    if role == Role::Edge || (role == Role::Master && facts.master_as_edge) {
        labels.insert(EDGE_LABEL.to_string(), "true".to_string());
    }
    labels
}

/// The taints a `role` node registers with: storage nodes keep ordinary
/// pods off (`dedicated=storage:NoSchedule`), the master keeps workloads
/// off unless it is the only node.
pub fn node_taints(role: Role, facts: &BootstrapFacts) -> Vec<Taint> {
    role_taints(role, facts.single_node)
}

/// [`node_taints`] given only whether the cluster is a single node.
pub fn role_taints(role: Role, single_node: bool) -> Vec<Taint> {
    match role {
        Role::Master if !single_node => vec![Taint {
            key: CONTROL_PLANE_TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }],
        Role::Storage => vec![Taint {
            key: STORAGE_TAINT_KEY.into(),
            value: Some(STORAGE_TAINT_VALUE.into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }],
        _ => Vec::new(),
    }
}

/// `key=value,key=value` for the kubelet's `--node-labels`.
fn labels_flag(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// kubeadm's extra-args in the shape of its config version: a string map
/// (v1beta3) or a list of `{name, value}` (v1beta4).
fn extra_args(version: KubernetesVersion, args: &[(&str, String)]) -> Value {
    if version.structured_extra_args() {
        Value::Array(args.iter().map(|(n, v)| json!({"name": n, "value": v})).collect())
    } else {
        Value::Object(
            args.iter()
                .map(|(n, v)| ((*n).to_string(), Value::String(v.clone())))
                .collect(),
        )
    }
}

fn node_registration(role: Role, inputs: &KubeadmInputs<'_>) -> Value {
    let taints: Vec<Value> = node_taints(role, inputs.facts)
        .into_iter()
        .map(|t| {
            let mut v = json!({"key": t.key, "effect": t.effect});
            if let Some(value) = t.value {
                v["value"] = Value::String(value);
            }
            v
        })
        .collect();
    json!({
        "criSocket": CRI_SOCKET,
        "kubeletExtraArgs": extra_args(inputs.version, &[("node-labels", labels_flag(&node_labels(role, inputs.facts)))]),
        // an explicit list: `[]` keeps kubeadm from adding its default control-plane taint
        "taints": taints,
    })
}

/// The API server endpoint nodes join: the master's private address.
pub fn api_endpoint(facts: &BootstrapFacts) -> String {
    format!("{}:{}", facts.master_private_ip, facts.api_port)
}

/// The master's documents: init, cluster and kubelet configuration.
fn master_documents(inputs: &KubeadmInputs<'_>) -> Vec<Value> {
    let f = inputs.facts;
    let api_version = inputs.version.kubeadm_api_version();
    let mut init = json!({
        "apiVersion": api_version,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{
            "token": inputs.token.token(),
            "description": format!("vre join token of cluster {}", f.cluster),
            "ttl": go_duration(inputs.token_ttl),
            "usages": ["signing", "authentication"],
            "groups": [BOOTSTRAP_GROUP],
        }],
        "localAPIEndpoint": {
            "advertiseAddress": f.master_private_ip.to_string(),
            "bindPort": f.api_port,
        },
        "nodeRegistration": node_registration(Role::Master, inputs),
    });
    let mut sans = vec![f.master_private_ip.to_string()];
    if let Some(public) = f.master_public_ip {
        sans.push(public.to_string());
    }
    // vre may reach the API through a tunnel or port-forward on loopback
    sans.push("127.0.0.1".into());
    sans.push("localhost".into());
    sans.dedup();
    let mut cluster = json!({
        "apiVersion": api_version,
        "kind": "ClusterConfiguration",
        "clusterName": f.cluster,
        "kubernetesVersion": inputs.version.to_string(),
        "controlPlaneEndpoint": api_endpoint(f),
        "networking": {
            "podSubnet": f.pod_cidr,
            "serviceSubnet": f.service_cidr,
        },
        "apiServer": {
            "certSANs": sans,
        },
    });
    let cp_timeout = go_duration(inputs.control_plane_timeout);
    if inputs.version.structured_extra_args() {
        init["timeouts"] = json!({"controlPlaneComponentHealthCheck": cp_timeout});
    } else {
        cluster["apiServer"]["timeoutForControlPlane"] = Value::String(cp_timeout);
    }
    let kubelet = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    });
    vec![init, cluster, kubelet]
}

/// A worker's document: join through the master, pinning the CA.
fn join_document(role: Role, inputs: &KubeadmInputs<'_>) -> Value {
    let timeout = go_duration(inputs.discovery_timeout);
    let mut join = json!({
        "apiVersion": inputs.version.kubeadm_api_version(),
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "token": inputs.token.token(),
                "apiServerEndpoint": api_endpoint(inputs.facts),
                "caCertHashes": [inputs.ca_hash],
            },
        },
        "nodeRegistration": node_registration(role, inputs),
    });
    if inputs.version.structured_extra_args() {
        join["timeouts"] = json!({"discovery": timeout});
    } else {
        join["discovery"]["timeout"] = Value::String(timeout);
    }
    join
}

/// The kubeadm config documents for a `role` node.
pub fn documents(role: Role, inputs: &KubeadmInputs<'_>) -> Vec<Value> {
    match role {
        Role::Master => master_documents(inputs),
        _ => vec![join_document(role, inputs)],
    }
}

/// The kubeadm config file (multi-document YAML) for a `role` node.
pub fn config_yaml(role: Role, inputs: &KubeadmInputs<'_>) -> Result<String> {
    let mut out = String::new();
    for doc in documents(role, inputs) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc).map_err(|e| KubeError::Failed(format!("kubeadm config: {e}")))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    use serde::Deserialize;
    use time::OffsetDateTime;

    use super::*;
    use crate::test_facts::lab_facts as facts;

    fn parse(yaml: &str) -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect()
    }

    fn render(role: Role, facts: &BootstrapFacts, version: &str) -> (Vec<serde_yaml::Value>, BootstrapToken) {
        let token = BootstrapToken::generate(Duration::from_secs(86400), OffsetDateTime::now_utc()).unwrap();
        let inputs = KubeadmInputs {
            facts,
            version: KubernetesVersion::parse(version).unwrap(),
            token: &token,
            ca_hash: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            token_ttl: Duration::from_secs(86400),
            discovery_timeout: Duration::from_secs(1800),
            control_plane_timeout: Duration::from_secs(600),
        };
        (parse(&config_yaml(role, &inputs).unwrap()), token)
    }

    fn kind(d: &serde_yaml::Value) -> &str {
        d["kind"].as_str().unwrap()
    }

    #[test]
    fn master_v1beta3() {
        let f = facts();
        let (docs, token) = render(Role::Master, &f, "1.30.2");
        assert_eq!(
            docs.iter().map(kind).collect::<Vec<_>>(),
            ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
        );
        let init = &docs[0];
        assert_eq!(init["apiVersion"].as_str(), Some("kubeadm.k8s.io/v1beta3"));
        let bt = &init["bootstrapTokens"][0];
        assert_eq!(bt["token"].as_str(), Some(token.token().as_str()));
        assert_eq!(bt["ttl"].as_str(), Some("24h0m0s"));
        assert_eq!(bt["groups"][0].as_str(), Some(BOOTSTRAP_GROUP));
        assert_eq!(bt["usages"].as_sequence().unwrap().len(), 2);
        let nr = &init["nodeRegistration"];
        assert_eq!(
            nr["kubeletExtraArgs"]["node-labels"].as_str(),
            Some("vre.io/edge=true,vre.io/role=master")
        );
        assert_eq!(nr["taints"][0]["key"].as_str(), Some(CONTROL_PLANE_TAINT_KEY));
        assert_eq!(nr["taints"][0]["effect"].as_str(), Some("NoSchedule"));
        assert_eq!(init["localAPIEndpoint"]["advertiseAddress"].as_str(), Some("10.0.0.10"));
        let cluster = &docs[1];
        assert_eq!(cluster["kubernetesVersion"].as_str(), Some("v1.30.2"));
        assert_eq!(cluster["controlPlaneEndpoint"].as_str(), Some("10.0.0.10:6443"));
        assert_eq!(cluster["networking"]["podSubnet"].as_str(), Some("10.244.0.0/16"));
        assert_eq!(cluster["networking"]["serviceSubnet"].as_str(), Some("10.96.0.0/12"));
        let sans: Vec<&str> = cluster["apiServer"]["certSANs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(sans.contains(&"10.0.0.10") && sans.contains(&"203.0.113.7"), "{sans:?}");
        assert_eq!(cluster["apiServer"]["timeoutForControlPlane"].as_str(), Some("10m0s"));
        assert_eq!(docs[2]["cgroupDriver"].as_str(), Some("systemd"));
        // kubelets may not label themselves node-role.kubernetes.io/*
        assert!(
            !nr["kubeletExtraArgs"]["node-labels"]
                .as_str()
                .unwrap()
                .contains("node-role.kubernetes.io")
        );
    }

    #[test]
    fn master_v1beta4_uses_structured_args_and_timeouts() {
        let f = facts();
        let (docs, _) = render(Role::Master, &f, "1.31.1");
        let init = &docs[0];
        assert_eq!(init["apiVersion"].as_str(), Some("kubeadm.k8s.io/v1beta4"));
        let args = init["nodeRegistration"]["kubeletExtraArgs"].as_sequence().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0]["name"].as_str(), Some("node-labels"));
        assert_eq!(args[0]["value"].as_str(), Some("vre.io/edge=true,vre.io/role=master"));
        assert_eq!(
            init["timeouts"]["controlPlaneComponentHealthCheck"].as_str(),
            Some("10m0s")
        );
        assert!(docs[1]["apiServer"].get("timeoutForControlPlane").is_none());
    }

    #[test]
    fn single_node_master_is_untainted() {
        let mut f = facts();
        f.single_node = true;
        let (docs, _) = render(Role::Master, &f, "1.30.2");
        assert_eq!(
            docs[0]["nodeRegistration"]["taints"].as_sequence().map(Vec::len),
            Some(0)
        );
    }

    #[test]
    fn workers_join_with_pinned_ca() {
        let f = facts();
        for (version, api) in [
            ("1.29.4", "kubeadm.k8s.io/v1beta3"),
            ("1.32.0", "kubeadm.k8s.io/v1beta4"),
        ] {
            let (docs, token) = render(Role::Storage, &f, version);
            assert_eq!(docs.len(), 1);
            let join = &docs[0];
            assert_eq!(kind(join), "JoinConfiguration");
            assert_eq!(join["apiVersion"].as_str(), Some(api));
            let bt = &join["discovery"]["bootstrapToken"];
            assert_eq!(bt["token"].as_str(), Some(token.token().as_str()));
            assert_eq!(bt["apiServerEndpoint"].as_str(), Some("10.0.0.10:6443"));
            assert!(bt["caCertHashes"][0].as_str().unwrap().starts_with("sha256:"));
            assert!(bt.get("unsafeSkipCAVerification").is_none());
            let timeout = if api.ends_with("v1beta3") {
                &join["discovery"]["timeout"]
            } else {
                &join["timeouts"]["discovery"]
            };
            assert_eq!(timeout.as_str(), Some("30m0s"));
            let taint = &join["nodeRegistration"]["taints"][0];
            assert_eq!(
                (taint["key"].as_str(), taint["value"].as_str(), taint["effect"].as_str()),
                (Some("dedicated"), Some("storage"), Some("NoSchedule"))
            );
        }
        let (docs, _) = render(Role::Service, &f, "1.30.2");
        assert_eq!(
            docs[0]["nodeRegistration"]["kubeletExtraArgs"]["node-labels"].as_str(),
            Some("vre.io/role=service")
        );
        assert_eq!(
            docs[0]["nodeRegistration"]["taints"].as_sequence().map(Vec::len),
            Some(0)
        );
        let (docs, _) = render(Role::Edge, &f, "1.30.2");
        assert_eq!(
            docs[0]["nodeRegistration"]["kubeletExtraArgs"]["node-labels"].as_str(),
            Some("vre.io/edge=true,vre.io/role=edge")
        );
    }
}
