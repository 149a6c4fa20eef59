//! A cluster's Kubernetes API through the admin kubeconfig vre wrote
//! (the cluster's CA, the admin client certificate), with plain HTTP calls.

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use super::http::Http;

pub struct KubeApi {
    pub http: Http,
    pub server: String,
}

impl KubeApi {
    /// Reads `clusters[0]` and `users[0]` of the kubeconfig.
    pub fn from_kubeconfig(path: &Path) -> Result<KubeApi, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let config: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let b64 = |v: &serde_yaml::Value, what: &str| -> Result<Vec<u8>, String> {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().ok_or_else(|| format!("{}: no {what}", path.display()))?)
                .map_err(|e| format!("{}: {what}: {e}", path.display()))
        };
        let cluster = &config["clusters"][0]["cluster"];
        let user = &config["users"][0]["user"];
        let mut identity = b64(&user["client-certificate-data"], "client-certificate-data")?;
        identity.extend(b64(&user["client-key-data"], "client-key-data")?);
        let ca = reqwest::Certificate::from_pem(&b64(
            &cluster["certificate-authority-data"],
            "certificate-authority-data",
        )?)
        .map_err(|e| format!("the kubeconfig's CA: {e}"))?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .identity(reqwest::Identity::from_pem(&identity).map_err(|e| format!("the kubeconfig's client key: {e}"))?)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let server = cluster["server"]
            .as_str()
            .ok_or_else(|| format!("{}: no server", path.display()))?
            .trim_end_matches('/')
            .to_string();
        Ok(KubeApi {
            http: Http::with_client(client),
            server,
        })
    }

    /// GET `path` (e.g. `/api/v1/nodes`) as JSON.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        let text = self.http.get_text(&format!("{}{path}", self.server))?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }

    /// Names of the registered Nodes.
    pub fn node_names(&self) -> Result<Vec<String>, String> {
        let v = self.get("/api/v1/nodes")?;
        Ok(v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect())
    }
}
