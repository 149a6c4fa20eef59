//! The admin kubeconfig: generated locally from the cluster CA (a client
//! certificate vre signs itself, so no SSH to the master is needed) and the
//! kube `Client` built from it.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use kube::{Client, Config};

use crate::error::{KubeError, Result};
use crate::pki::{ClientIdentity, write_file};

/// The user name of vre's admin client certificate.
pub const ADMIN_USER: &str = "vre-admin";
/// The group that makes it a cluster administrator.
pub const ADMIN_GROUP: &str = "system:masters";

/// A kubeconfig with one cluster (`server`, CA embedded), one user (client
/// certificate and key embedded) and one context, all named after the cluster.
pub fn admin_kubeconfig(cluster: &str, server: &str, ca_pem: &str, identity: &ClientIdentity) -> Kubeconfig {
    let user = format!("{ADMIN_USER}@{cluster}");
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: cluster.to_string(),
            cluster: Some(Cluster {
                server: Some(server.to_string()),
                certificate_authority_data: Some(STANDARD.encode(ca_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(&identity.cert_pem)),
                client_key_data: Some(STANDARD.encode(identity.key_pem()).into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: cluster.to_string(),
            context: Some(Context {
                cluster: cluster.to_string(),
                user: Some(user),
                namespace: Some("default".into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(cluster.to_string()),
        ..Kubeconfig::default()
    }
}

/// Writes `kubeconfig` as YAML to `path`, mode 0600 (it holds a private key).
pub fn write(path: &Path, kubeconfig: &Kubeconfig) -> Result<()> {
    let yaml = serde_yaml::to_string(kubeconfig).map_err(|e| KubeError::Failed(format!("kubeconfig: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| KubeError::file(dir, "create directory", e))?;
    }
    write_file(path, yaml.as_bytes(), 0o600)
}

/// Reads the kubeconfig at `path`.
pub fn read(path: &Path) -> Result<Kubeconfig> {
    if !path.exists() {
        return Err(KubeError::NotConnected {
            path: path.to_path_buf(),
        });
    }
    Kubeconfig::read_from(path).map_err(|e| KubeError::Corrupt {
        path: path.to_path_buf(),
        message: format!("{e}; run `vre apply` to write it again"),
    })
}

/// A client for the current context of `kubeconfig`. `server_retries`
/// keeps kube's retry of 429/503/504 answers (on for everything except
/// evictions, whose 429s vre handles itself).
pub async fn client(kubeconfig: Kubeconfig, origin: &Path, server_retries: bool) -> Result<Client> {
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeError::Corrupt {
            path: origin.to_path_buf(),
            message: format!("{e}; run `vre apply` to write it again"),
        })?;
    config.default_retry = server_retries;
    Client::try_from(config).map_err(|e| KubeError::Corrupt {
        path: origin.to_path_buf(),
        message: format!("cannot build a client from it ({e}); run `vre apply` to write it again"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ClusterCa;

    #[test]
    fn kubeconfig_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("lab").unwrap();
        let id = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP]).unwrap();
        let kc = admin_kubeconfig("lab", "https://203.0.113.7:6443", ca.cert_pem(), &id);
        let path = dir.path().join("kubeconfig");
        write(&path, &kc).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // kubectl's view of the file: plain YAML with the usual keys
        let raw: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(raw["apiVersion"].as_str(), Some("v1"));
        assert_eq!(raw["kind"].as_str(), Some("Config"));
        assert_eq!(raw["current-context"].as_str(), Some("lab"));
        assert_eq!(raw["contexts"][0]["name"].as_str(), Some("lab"));
        assert_eq!(
            raw["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://203.0.113.7:6443")
        );
        let ca_data = raw["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        assert_eq!(STANDARD.decode(ca_data).unwrap(), ca.cert_pem().as_bytes());
        let user = &raw["users"][0]["user"];
        assert_eq!(
            STANDARD
                .decode(user["client-certificate-data"].as_str().unwrap())
                .unwrap(),
            id.cert_pem.as_bytes()
        );
        assert_eq!(
            STANDARD.decode(user["client-key-data"].as_str().unwrap()).unwrap(),
            id.key_pem().as_bytes()
        );
        assert!(raw["clusters"][0]["cluster"].get("insecure-skip-tls-verify").is_none());

        let back = read(&path).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("lab"));
        assert_eq!(back.auth_infos[0].name, "vre-admin@lab");
    }

    #[tokio::test]
    async fn client_builds_from_the_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("lab").unwrap();
        let id = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP]).unwrap();
        let path = dir.path().join("kubeconfig");
        write(
            &path,
            &admin_kubeconfig("lab", "https://127.0.0.1:6443", ca.cert_pem(), &id),
        )
        .unwrap();
        let client = client(read(&path).unwrap(), &path, true).await.unwrap();
        assert_eq!(client.default_namespace(), "default");
    }

    #[test]
    fn missing_kubeconfig_says_connect_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(&dir.path().join("kubeconfig")).unwrap_err().to_string();
        assert!(e.contains("not been connected"), "{e}");
    }
}
