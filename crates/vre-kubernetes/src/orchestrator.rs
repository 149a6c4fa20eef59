//! [`KubernetesOrchestrator`]: vre's [`Orchestrator`] on Kubernetes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use time::OffsetDateTime;
use tokio::sync::RwLock;
use tokio::time::Instant;
use vre_core::{
    BootstrapFacts, ClusterFacts, EventSink, ExpectedNode, Manifest, NodeState, Orchestrator, ReadinessCheck, Role,
};

use crate::apply::{self, Catalog};
use crate::backoff::Backoff;
use crate::cloud_init::{self, UserDataInputs};
use crate::error::{KubeError, Result, describe, status_of};
use crate::kubeadm::KubeadmInputs;
use crate::kubeconfig::{self, ADMIN_GROUP, ADMIN_USER};
use crate::pki::{self, ClusterCa};
use crate::token::{BootstrapToken, TOKEN_FILE};
use crate::version::KubernetesVersion;
use crate::{cni, drain, nodes, readiness, storage_class};

/// File name of the admin kubeconfig in the deployment directory.
pub const KUBECONFIG_FILE: &str = "kubeconfig";

/// Tunables of the bootstrap and of the waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// Lifetime of a new join token (never infinite).
    pub token_ttl: Duration,
    /// A token with less life left is replaced (nodes still have to boot and join).
    pub token_min_remaining: Duration,
    /// How long a node's `kubeadm join` retries discovery (the master may still be installing).
    pub discovery_timeout: Duration,
    /// `kubeadm join` attempts per node.
    pub join_attempts: u32,
    /// How long `kubeadm init` waits for the control plane to become healthy.
    pub control_plane_timeout: Duration,
    /// How long `connect` waits for the API server to answer `/readyz`.
    pub api_timeout: Duration,
    /// How long `install_base` waits for the CNI to roll out.
    pub cni_timeout: Duration,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            token_ttl: Duration::from_secs(24 * 3600),
            token_min_remaining: Duration::from_secs(2 * 3600),
            discovery_timeout: Duration::from_secs(30 * 60),
            join_attempts: 4,
            control_plane_timeout: Duration::from_secs(10 * 60),
            api_timeout: Duration::from_secs(20 * 60),
            cni_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// The API connection: a client, one without automatic 429 retries (for
/// evictions), and the discovery cache.
struct Connection {
    client: Client,
    eviction_client: Client,
    catalog: Catalog,
}

impl Connection {
    async fn from_kubeconfig(path: &Path) -> Result<Self> {
        let kc = kubeconfig::read(path)?;
        let client = kubeconfig::client(kc.clone(), path, true).await?;
        let eviction_client = kubeconfig::client(kc, path, false).await?;
        Ok(Connection {
            catalog: Catalog::new(client.clone()),
            client,
            eviction_client,
        })
    }
}

#[derive(Default)]
struct Bootstrap {
    ca: Option<Arc<ClusterCa>>,
    token: Option<BootstrapToken>,
    facts: Option<BootstrapFacts>,
}

/// vre's orchestrator on Kubernetes. Keeps its secrets (CA, join token) in
/// `<dir>/.vre/pki` and the admin kubeconfig in `<dir>/kubeconfig`, so a
/// new process (`vre status`, `vre scale`) picks up where the last left.
pub struct KubernetesOrchestrator {
    dir: PathBuf,
    options: KubernetesOptions,
    bootstrap: Mutex<Bootstrap>,
    connection: RwLock<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for KubernetesOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesOrchestrator")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubernetesOrchestrator {
    /// An orchestrator for the deployment in `dir`.
    pub fn new(dir: impl Into<PathBuf>, options: KubernetesOptions) -> Self {
        KubernetesOrchestrator {
            dir: dir.into(),
            options,
            bootstrap: Mutex::new(Bootstrap::default()),
            connection: RwLock::new(None),
        }
    }

    /// `<dir>/.vre/pki`.
    pub fn pki_dir(&self) -> PathBuf {
        pki::pki_dir(&self.dir)
    }

    pub fn options(&self) -> &KubernetesOptions {
        &self.options
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bootstrap> {
        // a panic while holding this lock leaves only cached values behind
        self.bootstrap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CA and token, from memory or (a new process) from `<dir>/.vre/pki`.
    fn material(&self) -> Result<(Arc<ClusterCa>, BootstrapToken)> {
        let mut b = self.lock();
        if b.ca.is_none() {
            let dir = self.pki_dir();
            if !dir.join(pki::CA_CERT_FILE).exists() {
                return Err(KubeError::Failed(format!(
                    "no cluster CA in {}: prepare must run before user data is generated",
                    dir.display()
                )));
            }
            b.ca = Some(Arc::new(ClusterCa::load(&dir)?));
        }
        if b.token.is_none() {
            b.token = Some(BootstrapToken::load(&self.pki_dir().join(TOKEN_FILE))?);
        }
        match (&b.ca, &b.token) {
            (Some(ca), Some(token)) => Ok((ca.clone(), token.clone())),
            _ => Err(KubeError::Failed("the cluster CA or join token is missing".into())),
        }
    }

    /// The API connection, made from `<dir>/kubeconfig` if this process has not connected.
    async fn connection(&self) -> Result<Arc<Connection>> {
        if let Some(c) = self.connection.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut slot = self.connection.write().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::from_kubeconfig(&self.kubeconfig_path()).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A kube client for the cluster (for callers that need more than the trait).
    pub async fn client(&self) -> vre_core::Result<Client> {
        Ok(self.connection().await?.client.clone())
    }

    /// Makes the existing StorageClass `name` the only default class.
    pub async fn set_default_storage_class(&self, name: &str) -> vre_core::Result<()> {
        let c = self.connection().await?;
        storage_class::make_default(&c.client, name).await?;
        Ok(())
    }

    /// Creates the join token's Secret when the cluster lacks it (a token
    /// renewed after the one `kubeadm init` created expired).
    async fn ensure_token_secret(&self, client: &Client, token: &BootstrapToken) -> Result<bool> {
        let secret = token.secret();
        let name = secret.metadata.name.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
        match api.get_opt(&name).await {
            Ok(Some(_)) => Ok(false),
            Ok(None) => match api.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(true),
                Err(e) if status_of(&e) == Some(409) => Ok(false),
                Err(e) => Err(KubeError::api(format!("create join token Secret {name}"), e)),
            },
            Err(e) => Err(KubeError::api(format!("get join token Secret {name}"), e)),
        }
    }

    fn facts(&self) -> Option<BootstrapFacts> {
        self.lock().facts.clone()
    }
}

/// Waits until the API server answers `/readyz` with `ok`. A 401 means it
/// does not trust vre's certificate: no point waiting.
async fn wait_api_ready(client: &Client, endpoint: &str, timeout: Duration, pki_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    loop {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| KubeError::Failed(format!("readyz request: {e}")))?;
        let last = match tokio::time::timeout(Duration::from_secs(30), client.request_text(req)).await {
            Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
            Ok(Ok(body)) => format!("/readyz answered {}", body.lines().next().unwrap_or("")),
            Ok(Err(e)) if status_of(&e) == Some(401) => {
                return Err(KubeError::Failed(format!(
                    "the API server at {endpoint} rejects vre's admin certificate (HTTP 401): it does not trust the cluster CA in {}; was the master bootstrapped with another CA?",
                    pki_dir.display()
                )));
            }
            Ok(Err(e)) => describe(&e),
            Err(_) => "/readyz did not answer within 30s".into(),
        };
        if Instant::now() >= deadline {
            let hint = if last.contains("certificate") {
                format!(
                    "the server's certificate is not signed by the cluster CA in {} or does not name this address; is this the cluster's master?",
                    pki_dir.display()
                )
            } else {
                "on the master, check `/var/log/cloud-init-output.log` and `journalctl -u kubelet`".to_string()
            };
            return Err(KubeError::ApiUnreachable {
                endpoint: endpoint.to_string(),
                after: timeout,
                last,
                hint,
            });
        }
        tracing::debug!(%endpoint, %last, "API server not ready yet");
        backoff.sleep_until(deadline).await;
    }
}

#[async_trait]
impl Orchestrator for KubernetesOrchestrator {
    fn name(&self) -> &str {
        "kubernetes"
    }

    async fn prepare(&self, facts: &BootstrapFacts) -> vre_core::Result<()> {
        KubernetesVersion::parse(&facts.kubernetes_version)?;
        let dir = self.pki_dir();
        let (ca, created) = ClusterCa::load_or_create(&dir, &facts.cluster)?;
        if created {
            tracing::info!(hash = ca.cert_hash(), "created the cluster CA");
        }
        let (token, renewed) = BootstrapToken::load_or_create(
            &dir,
            self.options.token_ttl,
            self.options.token_min_remaining,
            OffsetDateTime::now_utc(),
        )?;
        if renewed {
            tracing::info!(id = token.id(), expires = %token.expires_rfc3339(), "new join token");
        }
        let mut b = self.lock();
        b.ca = Some(Arc::new(ca));
        b.token = Some(token);
        b.facts = Some(facts.clone());
        Ok(())
    }

    fn user_data(&self, role: Role, facts: &BootstrapFacts) -> vre_core::Result<String> {
        let version = KubernetesVersion::parse(&facts.kubernetes_version)?;
        let (ca, token) = self.material()?;
        let inputs = UserDataInputs {
            kubeadm: KubeadmInputs {
                facts,
                version,
                token: &token,
                ca_hash: ca.cert_hash(),
                token_ttl: token.remaining(OffsetDateTime::now_utc()),
                discovery_timeout: self.options.discovery_timeout,
                control_plane_timeout: self.options.control_plane_timeout,
            },
            ca: &ca,
            join_attempts: self.options.join_attempts,
        };
        Ok(cloud_init::user_data(role, &inputs)?)
    }

    async fn connect(&self, api: SocketAddr, facts: &BootstrapFacts) -> vre_core::Result<PathBuf> {
        let (ca, token) = self.material()?;
        let server = format!("https://{api}");
        let identity = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP])?;
        let kc = kubeconfig::admin_kubeconfig(&facts.cluster, &server, ca.cert_pem(), &identity);
        let path = self.kubeconfig_path();
        kubeconfig::write(&path, &kc)?;
        let conn = Arc::new(Connection::from_kubeconfig(&path).await?);
        wait_api_ready(&conn.client, &server, self.options.api_timeout, &self.pki_dir()).await?;
        if self.ensure_token_secret(&conn.client, &token).await? {
            tracing::info!(id = token.id(), "created the join token Secret");
        }
        *self.connection.write().await = Some(conn);
        self.lock().facts = Some(facts.clone());
        Ok(path)
    }

    async fn wait_nodes(
        &self,
        expected: &[ExpectedNode],
        timeout: Duration,
        events: &EventSink,
    ) -> vre_core::Result<Vec<NodeState>> {
        let c = self.connection().await?;
        let facts = self.facts();
        let port = facts.as_ref().map_or(vre_core::API_PORT, |f| f.api_port);
        let registered = nodes::wait_registered(&c.client, expected, timeout, events, port).await?;
        Ok(nodes::finish_roles(&c.client, expected, &registered, facts.as_ref(), events).await?)
    }

    async fn install_base(&self, facts: &ClusterFacts) -> vre_core::Result<()> {
        let k = &facts.spec.kubernetes;
        let (objects, checks) = cni::cni(&k.cni, &k.pod_cidr.to_string())?;
        let c = self.connection().await?;
        apply::apply(&c.catalog, &objects).await?;
        readiness::wait_ready(&c.client, &c.catalog, &checks, self.options.cni_timeout).await
    }

    async fn apply(&self, objects: &[Manifest]) -> vre_core::Result<()> {
        let c = self.connection().await?;
        Ok(apply::apply(&c.catalog, objects).await?)
    }

    async fn wait_ready(&self, checks: &[ReadinessCheck], timeout: Duration) -> vre_core::Result<()> {
        let c = self.connection().await?;
        readiness::wait_ready(&c.client, &c.catalog, checks, timeout).await
    }

    async fn delete(&self, objects: &[Manifest]) -> vre_core::Result<()> {
        let c = self.connection().await?;
        Ok(apply::delete(&c.catalog, objects).await?)
    }

    async fn drain(&self, node: &str, timeout: Duration) -> vre_core::Result<()> {
        let c = self.connection().await?;
        drain::drain(&c.client, &c.eviction_client, node, timeout).await
    }

    async fn remove_node(&self, node: &str) -> vre_core::Result<()> {
        let c = self.connection().await?;
        Ok(nodes::remove(&c.client, node).await?)
    }

    async fn nodes(&self) -> vre_core::Result<Vec<NodeState>> {
        let c = self.connection().await?;
        Ok(nodes::list(&c.client).await?)
    }

    fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join(KUBECONFIG_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_facts::lab_facts;

    fn facts() -> BootstrapFacts {
        BootstrapFacts {
            master_public_ip: None,
            image_preinstalled: true,
            single_node: true,
            ..lab_facts()
        }
    }

    #[tokio::test]
    async fn prepare_then_user_data_in_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let o = KubernetesOrchestrator::new(dir.path(), KubernetesOptions::default());
        o.prepare(&facts()).await.unwrap();
        let master = o.user_data(Role::Master, &facts()).unwrap();
        // a second process reads the same CA and token from the directory
        let o2 = KubernetesOrchestrator::new(dir.path(), KubernetesOptions::default());
        let again = o2.user_data(Role::Master, &facts()).unwrap();
        let strip = |s: &str| s.lines().filter(|l| !l.contains("ttl:")).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&master), strip(&again));
        assert_eq!(o.kubeconfig_path(), dir.path().join("kubeconfig"));
    }

    #[tokio::test]
    async fn user_data_before_prepare_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let o = KubernetesOrchestrator::new(dir.path(), KubernetesOptions::default());
        let e = o.user_data(Role::Service, &facts()).unwrap_err().to_string();
        assert!(e.contains("prepare"), "{e}");
    }

    #[tokio::test]
    async fn bad_version_is_a_spec_error() {
        let dir = tempfile::tempdir().unwrap();
        let o = KubernetesOrchestrator::new(dir.path(), KubernetesOptions::default());
        let mut f = facts();
        f.kubernetes_version = "1.19.0".into();
        let e = o.prepare(&f).await.unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("kubernetes.version: "), "{e}");
    }

    #[tokio::test]
    async fn nodes_before_connect_asks_for_apply() {
        let dir = tempfile::tempdir().unwrap();
        let o = KubernetesOrchestrator::new(dir.path(), KubernetesOptions::default());
        let e = o.nodes().await.unwrap_err().to_string();
        assert!(e.contains("not been connected"), "{e}");
    }
}
