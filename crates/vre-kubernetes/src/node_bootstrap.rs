//! Reading a node's user data back: what its kubeadm run will do (init or
//! join, with which token, CA pins, labels and taints). Simulators "run"
//! user data with it, and tests check what vre generated.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Taint;
use serde::Deserialize;
use serde_json::Value;

use crate::cloud_init::{CA_CERT_PATH, CA_KEY_PATH};
use crate::error::{KubeError, Result};
use crate::kubeadm::KUBEADM_CONFIG_PATH;

/// Which kubeadm command the node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeadmAction {
    /// `kubeadm init`: the master.
    Init,
    /// `kubeadm join`: every other node.
    Join,
}

/// What a node's user data makes kubeadm and the kubelet do.
#[derive(Clone, PartialEq)]
pub struct NodeBootstrap {
    pub action: KubeadmAction,
    /// `kubeadm.k8s.io/v1beta3` or `v1beta4`.
    pub kubeadm_api_version: String,
    /// The bootstrap token (secret): created by `init`, presented by `join`.
    token: String,
    /// `init`: the token's TTL (a Go duration).
    pub token_ttl: Option<String>,
    /// `join`: `sha256:<hex>` pins the cluster CA must match.
    pub ca_cert_hashes: Vec<String>,
    /// `join`: whether CA pinning is switched off (vre never does this).
    pub unsafe_skip_ca_verification: bool,
    /// `host:port` of the API server: joined (`join`) or advertised (`init`).
    pub api_server_endpoint: String,
    /// The labels the kubelet registers the node with (`--node-labels`).
    pub node_labels: BTreeMap<String, String>,
    /// The taints the node registers with.
    pub taints: Vec<Taint>,
    /// `init`: the CA the user data places for kubeadm.
    pub ca_cert_pem: Option<String>,
    ca_key_pem: Option<String>,
    /// `init`: the API server certificate's extra SANs.
    pub cert_sans: Vec<String>,
    /// `init`: the cluster's settings.
    pub kubernetes_version: Option<String>,
    pub pod_subnet: Option<String>,
    pub service_subnet: Option<String>,
}

impl fmt::Debug for NodeBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeBootstrap")
            .field("action", &self.action)
            .field("kubeadm_api_version", &self.kubeadm_api_version)
            .field("token", &"<redacted>")
            .field("ca_cert_hashes", &self.ca_cert_hashes)
            .field("api_server_endpoint", &self.api_server_endpoint)
            .field("node_labels", &self.node_labels)
            .field("taints", &self.taints)
            .field("ca_key", &self.ca_key_pem.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn bad(message: impl Into<String>) -> KubeError {
    KubeError::BadObject {
        object: "user data".into(),
        message: message.into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, p| v.get(p)).and_then(Value::as_str)
}

/// `--node-labels` from kubeletExtraArgs: a map (v1beta3) or `[{name, value}]` (v1beta4).
fn node_labels(registration: &Value) -> BTreeMap<String, String> {
    let flag = match registration.get("kubeletExtraArgs") {
        Some(Value::Array(args)) => args
            .iter()
            .filter(|a| a.get("name").and_then(Value::as_str) == Some("node-labels"))
            .filter_map(|a| a.get("value").and_then(Value::as_str))
            .next_back(),
        Some(Value::Object(args)) => args.get("node-labels").and_then(Value::as_str),
        _ => None,
    };
    flag.unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl NodeBootstrap {
    /// Reads a `#cloud-config` user data as vre generates it.
    pub fn parse(user_data: &str) -> Result<Self> {
        if !user_data.starts_with("#cloud-config") {
            return Err(bad("does not start with #cloud-config"));
        }
        let doc: Value = serde_yaml::from_str(user_data).map_err(|e| bad(format!("is not YAML: {e}")))?;
        let files = doc
            .get("write_files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("has no write_files"))?;
        let file = |path: &str| {
            files
                .iter()
                .find(|f| f.get("path").and_then(Value::as_str) == Some(path))
                .and_then(|f| f.get("content").and_then(Value::as_str))
                .map(str::to_string)
        };
        let config = file(KUBEADM_CONFIG_PATH).ok_or_else(|| bad(format!("writes no {KUBEADM_CONFIG_PATH}")))?;
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&config)
            .map(|d| Value::deserialize(d).map_err(|e| bad(format!("kubeadm config: {e}"))))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let kind = |k: &str| docs.iter().find(|d| d.get("kind").and_then(Value::as_str) == Some(k));
        let taints = |registration: &Value| -> Result<Vec<Taint>> {
            match registration.get("taints") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(t) => serde_json::from_value(t.clone()).map_err(|e| bad(format!("taints: {e}"))),
            }
        };
        if let Some(init) = kind("InitConfiguration") {
            let cluster = kind("ClusterConfiguration").cloned().unwrap_or(Value::Null);
            let token = &init["bootstrapTokens"][0];
            let registration = &init["nodeRegistration"];
            let endpoint = str_at(&cluster, &["controlPlaneEndpoint"])
                .map(str::to_string)
                .or_else(|| {
                    let addr = str_at(init, &["localAPIEndpoint", "advertiseAddress"])?;
                    let port = init["localAPIEndpoint"]["bindPort"].as_u64().unwrap_or(6443);
                    Some(format!("{addr}:{port}"))
                })
                .unwrap_or_default();
            Ok(NodeBootstrap {
                action: KubeadmAction::Init,
                kubeadm_api_version: str_at(init, &["apiVersion"]).unwrap_or_default().to_string(),
                token: str_at(token, &["token"]).unwrap_or_default().to_string(),
                token_ttl: str_at(token, &["ttl"]).map(str::to_string),
                ca_cert_hashes: Vec::new(),
                unsafe_skip_ca_verification: false,
                api_server_endpoint: endpoint,
                node_labels: node_labels(registration),
                taints: taints(registration)?,
                ca_cert_pem: file(CA_CERT_PATH),
                ca_key_pem: file(CA_KEY_PATH),
                cert_sans: cluster["apiServer"]["certSANs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                kubernetes_version: str_at(&cluster, &["kubernetesVersion"]).map(str::to_string),
                pod_subnet: str_at(&cluster, &["networking", "podSubnet"]).map(str::to_string),
                service_subnet: str_at(&cluster, &["networking", "serviceSubnet"]).map(str::to_string),
            })
        } else if let Some(join) = kind("JoinConfiguration") {
            let bt = &join["discovery"]["bootstrapToken"];
            let registration = &join["nodeRegistration"];
            Ok(NodeBootstrap {
                action: KubeadmAction::Join,
                kubeadm_api_version: str_at(join, &["apiVersion"]).unwrap_or_default().to_string(),
                token: str_at(bt, &["token"])
                    .ok_or_else(|| bad("the JoinConfiguration has no token"))?
                    .to_string(),
                token_ttl: None,
                ca_cert_hashes: bt["caCertHashes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                unsafe_skip_ca_verification: bt["unsafeSkipCAVerification"].as_bool().unwrap_or(false),
                api_server_endpoint: str_at(bt, &["apiServerEndpoint"]).unwrap_or_default().to_string(),
                node_labels: node_labels(registration),
                taints: taints(registration)?,
                ca_cert_pem: None,
                ca_key_pem: None,
                cert_sans: Vec::new(),
                kubernetes_version: None,
                pod_subnet: None,
                service_subnet: None,
            })
        } else {
            Err(bad(
                "the kubeadm config has neither an InitConfiguration nor a JoinConfiguration",
            ))
        }
    }

    /// The bootstrap token, `id.secret`. Secret.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `init`: the CA private key the user data places (PEM). Secret.
    pub fn ca_key_pem(&self) -> Option<&str> {
        self.ca_key_pem.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;
    use vre_core::{BootstrapFacts, Role};

    use super::*;
    use crate::cloud_init::user_data;
    use crate::pki::ClusterCa;
    use crate::test_facts::{lab_facts, lab_inputs};
    use crate::token::BootstrapToken;

    fn facts(version: &str) -> BootstrapFacts {
        BootstrapFacts {
            master_public_ip: Some("198.51.100.4".parse().unwrap()),
            kubernetes_version: version.into(),
            ..lab_facts()
        }
    }

    #[test]
    fn reads_back_what_vre_generates() {
        let ca = ClusterCa::generate("lab").unwrap();
        let token = BootstrapToken::generate(Duration::from_secs(86400), OffsetDateTime::now_utc()).unwrap();
        for version in ["1.30.2", "1.33.1"] {
            let f = facts(version);
            let inputs = lab_inputs(&f, &token, &ca, 3);
            let master = NodeBootstrap::parse(&user_data(Role::Master, &inputs).unwrap()).unwrap();
            assert_eq!(master.action, KubeadmAction::Init);
            assert_eq!(master.token(), token.token());
            assert_eq!(master.token_ttl.as_deref(), Some("24h0m0s"));
            assert_eq!(master.api_server_endpoint, "10.0.0.10:6443");
            assert_eq!(master.ca_cert_pem.as_deref(), Some(ca.cert_pem()));
            assert_eq!(master.ca_key_pem(), Some(ca.key_pem().as_str()));
            assert!(master.cert_sans.contains(&"198.51.100.4".to_string()));
            assert_eq!(
                master.node_labels.get("vre.io/role").map(String::as_str),
                Some("master")
            );
            assert_eq!(master.node_labels.get("vre.io/edge").map(String::as_str), Some("true"));
            assert_eq!(master.taints.len(), 1);
            assert_eq!(master.pod_subnet.as_deref(), Some("10.244.0.0/16"));
            assert_eq!(
                master.kubernetes_version.as_deref(),
                Some(format!("v{version}").as_str())
            );
            assert!(!format!("{master:?}").contains(&token.token()));
            assert!(!format!("{master:?}").contains("PRIVATE KEY"));

            let storage = NodeBootstrap::parse(&user_data(Role::Storage, &inputs).unwrap()).unwrap();
            assert_eq!(storage.action, KubeadmAction::Join);
            assert_eq!(storage.token(), token.token());
            assert_eq!(storage.ca_cert_hashes, [ca.cert_hash().to_string()]);
            assert!(!storage.unsafe_skip_ca_verification);
            assert_eq!(storage.api_server_endpoint, "10.0.0.10:6443");
            assert_eq!(
                storage.node_labels.get("vre.io/role").map(String::as_str),
                Some("storage")
            );
            assert_eq!(storage.taints[0].key, "dedicated");
            assert_eq!(storage.taints[0].value.as_deref(), Some("storage"));
            assert!(storage.ca_key_pem().is_none());
        }
    }

    #[test]
    fn rejects_what_is_not_vre_user_data() {
        assert!(NodeBootstrap::parse("#!/bin/sh\necho hi\n").is_err());
        assert!(NodeBootstrap::parse("#cloud-config\nruncmd: [ls]\n").is_err());
        let e = NodeBootstrap::parse(&format!(
            "#cloud-config\nwrite_files:\n- path: {KUBEADM_CONFIG_PATH}\n  content: 'kind: KubeletConfiguration'\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("neither an InitConfiguration nor a JoinConfiguration"),
            "{e}"
        );
    }
}
