//! What a machine's cloud-init user data makes it do: the `#cloud-config`
//! `write_files` (the cluster CA, the kubeadm configuration, kubelet flags)
//! and the `runcmd` that runs `kubeadm init` or `kubeadm join`, read the way
//! cloud-init and kubeadm read them.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_yaml::Value as Yaml;

/// A file cloud-init writes.
#[derive(Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: String,
    pub content: String,
}

impl std::fmt::Debug for WrittenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrittenFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// `nodeRegistration` of an Init/JoinConfiguration, plus kubelet flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRegistration {
    pub name: Option<String>,
    /// `--node-labels`.
    pub labels: BTreeMap<String, String>,
    /// `taints`: `None` when absent (kubeadm then taints control planes),
    /// `Some([])` for an explicit empty list.
    pub taints: Option<Vec<serde_json::Value>>,
}

/// A bootstrap token from `InitConfiguration.bootstrapTokens`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
    pub ttl: Option<Duration>,
    pub expires: Option<String>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
    pub description: Option<String>,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A master's `kubeadm init` configuration.
#[derive(Clone)]
pub struct InitPlan {
    pub tokens: Vec<BootstrapToken>,
    pub node: NodeRegistration,
    pub advertise_address: Option<String>,
    pub bind_port: u16,
    pub cluster_name: String,
    pub kubernetes_version: String,
    pub pod_subnet: Option<String>,
    pub service_subnet: String,
    pub dns_domain: String,
    pub cert_sans: Vec<String>,
    pub control_plane_endpoint: Option<String>,
    pub max_pods: Option<u64>,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// The raw ClusterConfiguration document (for the kubeadm-config ConfigMap).
    pub cluster_configuration: serde_json::Value,
    /// `--skip-phases` of `kubeadm init` (`addon/kube-proxy`, `addon/coredns`, ...).
    pub skip_phases: Vec<String>,
}

/// A worker's `kubeadm join` configuration.
#[derive(Clone)]
pub struct JoinPlan {
    pub api_server_endpoint: String,
    pub token: String,
    pub tls_bootstrap_token: String,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
    pub node: NodeRegistration,
    pub control_plane: bool,
    pub max_pods: Option<u64>,
    /// `discovery.timeout` (v1beta3) or `timeouts.discovery` (v1beta4).
    pub discovery_timeout: Option<Duration>,
}

impl std::fmt::Debug for InitPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitPlan")
            .field("tokens", &self.tokens)
            .field("node", &self.node)
            .field("cluster_name", &self.cluster_name)
            .field("kubernetes_version", &self.kubernetes_version)
            .field("pod_subnet", &self.pod_subnet)
            .field("service_subnet", &self.service_subnet)
            .field("ca_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for JoinPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinPlan")
            .field("api_server_endpoint", &self.api_server_endpoint)
            .field("token", &redact(&self.token))
            .field("ca_cert_hashes", &self.ca_cert_hashes)
            .field("node", &self.node)
            .field("control_plane", &self.control_plane)
            .finish_non_exhaustive()
    }
}

/// What the user data asks for.
#[derive(Clone, Debug)]
pub enum Plan {
    Init(Box<InitPlan>),
    Join(Box<JoinPlan>),
}

/// Reads user data into a plan. `Ok(None)`: the machine runs no kubeadm
/// (not part of a cluster). `Err`: kubeadm (or cloud-init) would fail, with
/// the reason.
pub fn plan(user_data: &str) -> Result<Option<Plan>, String> {
    let body = user_data.trim_start_matches('\u{feff}');
    if !body.trim_start().starts_with("#cloud-config") {
        // A shell script or another format: look for kubeadm only in text.
        if body.contains("kubeadm init") || body.contains("kubeadm join") {
            return Err("the user data runs kubeadm but is not #cloud-config; the simulator reads kubeadm configuration from cloud-config write_files".into());
        }
        return Ok(None);
    }
    let doc: Yaml =
        serde_yaml::from_str(body).map_err(|e| format!("cloud-init cannot parse the #cloud-config YAML: {e}"))?;
    let files = written_files(&doc)?;
    let commands = run_commands(&doc);
    let joined = commands.join("\n");
    let (is_init, is_join) = (joined.contains("kubeadm init"), joined.contains("kubeadm join"));
    if !is_init && !is_join {
        return Ok(None);
    }
    let config_path = config_flag(&commands, if is_init { "init" } else { "join" }).ok_or_else(|| {
        format!(
            "`kubeadm {}` runs without --config; the simulator needs the kubeadm configuration file",
            if is_init { "init" } else { "join" }
        )
    })?;
    let config = files
        .iter()
        .find(|f| f.path == config_path)
        .ok_or_else(|| format!("kubeadm --config {config_path}: no such file in write_files"))?;
    let docs = kubeadm_documents(&config.content)?;
    let kubelet_flags = files
        .iter()
        .filter(|f| f.path == "/etc/default/kubelet" || f.path == "/etc/sysconfig/kubelet")
        .map(|f| f.content.clone())
        .collect::<Vec<_>>()
        .join("\n");
    if is_init {
        let mut p = init_plan(&docs, &files, &kubelet_flags)?;
        p.skip_phases = flag_values(&commands, "init", "--skip-phases");
        Ok(Some(Plan::Init(Box::new(p))))
    } else {
        join_plan(&docs, &kubelet_flags).map(|p| Some(Plan::Join(Box::new(p))))
    }
}

fn written_files(doc: &Yaml) -> Result<Vec<WrittenFile>, String> {
    let mut out = Vec::new();
    let Some(list) = doc.get("write_files") else {
        return Ok(out);
    };
    let list = list.as_sequence().ok_or("write_files must be a list")?;
    for (i, f) in list.iter().enumerate() {
        let path = f
            .get("path")
            .and_then(Yaml::as_str)
            .ok_or_else(|| format!("write_files[{i}].path is missing"))?;
        let raw = f.get("content").and_then(Yaml::as_str).unwrap_or("");
        let content = match f.get("encoding").and_then(Yaml::as_str).unwrap_or("text/plain") {
            "b64" | "base64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw.split_whitespace().collect::<String>())
                    .map_err(|e| format!("write_files[{i}] ({path}): content is not valid base64: {e}"))?;
                String::from_utf8(bytes).map_err(|_| format!("write_files[{i}] ({path}): content is not UTF-8 text"))?
            }
            "text/plain" => raw.to_string(),
            other => {
                return Err(format!(
                    "write_files[{i}] ({path}): encoding {other:?} is not supported by the simulator (use b64 or plain text)"
                ));
            }
        };
        out.push(WrittenFile {
            path: path.to_string(),
            content,
        });
    }
    Ok(out)
}

/// `runcmd` entries as shell lines (list entries joined with spaces).
fn run_commands(doc: &Yaml) -> Vec<String> {
    doc.get("runcmd")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|c| match c {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Sequence(parts) => Some(parts.iter().filter_map(scalar_string).collect::<Vec<_>>().join(" ")),
            _ => None,
        })
        .collect()
}

fn scalar_string(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The `--config` value of the `kubeadm <verb>` command.
fn config_flag(commands: &[String], verb: &str) -> Option<String> {
    let needle = format!("kubeadm {verb}");
    for c in commands {
        let Some(idx) = c.find(&needle) else { continue };
        let words: Vec<&str> = c[idx..].split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_matches(|c| c == '\'' || c == '"' || c == ';');
            if let Some(v) = w.strip_prefix("--config=") {
                return Some(v.trim_matches(|c| c == '\'' || c == '"').to_string());
            }
            if w == "--config" {
                return words
                    .get(i + 1)
                    .map(|v| v.trim_matches(|c| c == '\'' || c == '"' || c == ';').to_string());
            }
        }
    }
    None
}

/// The comma-separated values of a flag of `kubeadm <verb>`.
fn flag_values(commands: &[String], verb: &str, flag: &str) -> Vec<String> {
    let needle = format!("kubeadm {verb}");
    let mut out = Vec::new();
    for c in commands {
        let Some(idx) = c.find(&needle) else { continue };
        let words: Vec<&str> = c[idx..].split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_matches(|c| c == '\'' || c == '"' || c == ';');
            let value = if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
                Some(v.to_string())
            } else if w == flag {
                words
                    .get(i + 1)
                    .map(|v| v.trim_matches(|c| c == '\'' || c == '"' || c == ';').to_string())
            } else {
                None
            };
            if let Some(v) = value {
                out.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
            }
        }
    }
    out
}

/// A kubeadm configuration document, as JSON, with its kind.
struct KubeadmDoc {
    kind: String,
    api_version: String,
    body: serde_json::Value,
}

fn kubeadm_documents(content: &str) -> Result<Vec<KubeadmDoc>, String> {
    let mut docs = Vec::new();
    for (i, d) in serde_yaml::Deserializer::from_str(content).enumerate() {
        let v = <Yaml as serde::Deserialize>::deserialize(d)
            .map_err(|e| format!("kubeadm config document {}: invalid YAML: {e}", i + 1))?;
        if v.is_null() {
            continue;
        }
        let body: serde_json::Value = serde_json::to_value(&v)
            .map_err(|e| format!("kubeadm config document {}: not representable as JSON: {e}", i + 1))?;
        let kind = body
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        let api_version = body
            .get("apiVersion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind.is_empty() || api_version.is_empty() {
            return Err(format!(
                "kubeadm config document {}: apiVersion and kind are required",
                i + 1
            ));
        }
        if matches!(
            kind.as_str(),
            "InitConfiguration" | "ClusterConfiguration" | "JoinConfiguration"
        ) && !matches!(
            api_version.as_str(),
            "kubeadm.k8s.io/v1beta3" | "kubeadm.k8s.io/v1beta4"
        ) {
            return Err(format!(
                "kubeadm config document {}: {kind} apiVersion {api_version:?} is not supported (use kubeadm.k8s.io/v1beta3 or v1beta4)",
                i + 1
            ));
        }
        docs.push(KubeadmDoc {
            kind,
            api_version,
            body,
        });
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [KubeadmDoc], kind: &str) -> Option<&'a KubeadmDoc> {
    docs.iter().find(|d| d.kind == kind)
}

fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// kubeletExtraArgs: a map in v1beta3, a list of `{name, value}` in v1beta4.
fn kubelet_extra_args(nr: &serde_json::Value) -> Vec<(String, String)> {
    match nr.get("kubeletExtraArgs") {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|e| {
                let name = e.get("name")?.as_str()?.to_string();
                let value = e
                    .get("value")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string();
                Some((name, value))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Parses `a=b,c=d` (the `--node-labels` syntax).
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    for (k, v) in &out {
        if let Some(e) = super::admission::label_key_errors(k) {
            return Err(format!("invalid node label key {k:?}: {e}"));
        }
        if let Some(e) = super::admission::label_value_errors(v) {
            return Err(format!("invalid node label value {v:?} for {k:?}: {e}"));
        }
    }
    Ok(out)
}

/// `--node-labels` from KUBELET_EXTRA_ARGS in /etc/default/kubelet.
fn labels_from_kubelet_flags(flags: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for word in flags.split_whitespace() {
        let word = word.trim_matches(|c| c == '"' || c == '\'');
        let word = word
            .strip_prefix("KUBELET_EXTRA_ARGS=")
            .unwrap_or(word)
            .trim_matches(|c| c == '"' || c == '\'');
        if let Some(v) = word.strip_prefix("--node-labels=") {
            out.extend(parse_labels(v)?);
        }
    }
    Ok(out)
}

fn node_registration(doc: &serde_json::Value, kubelet_flags: &str) -> Result<NodeRegistration, String> {
    let nr = doc.get("nodeRegistration").cloned().unwrap_or(serde_json::Value::Null);
    let mut labels = labels_from_kubelet_flags(kubelet_flags)?;
    for (k, v) in kubelet_extra_args(&nr) {
        if k == "node-labels" {
            labels.extend(parse_labels(&v)?);
        }
    }
    let taints = match nr.get("taints") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                let key = t.get("key").and_then(serde_json::Value::as_str).unwrap_or("");
                if key.is_empty() {
                    return Err(format!("nodeRegistration.taints[{i}].key is required"));
                }
                match t.get("effect").and_then(serde_json::Value::as_str) {
                    Some("NoSchedule" | "PreferNoSchedule" | "NoExecute") => {}
                    other => {
                        return Err(format!(
                            "nodeRegistration.taints[{i}].effect {other:?} is invalid (NoSchedule, PreferNoSchedule or NoExecute)"
                        ));
                    }
                }
            }
            Some(a.clone())
        }
        Some(_) => return Err("nodeRegistration.taints must be a list".into()),
    };
    Ok(NodeRegistration {
        name: str_at(&nr, "/name").map(str::to_string),
        labels,
        taints,
    })
}

/// A kubeadm duration (`24h0m0s`, `2h`, `90m`, `30s`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    if s.trim().is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        // A bare number with no unit is not a Go duration (except "0").
        if num == "0" {
            return Some(Duration::ZERO);
        }
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

fn kubernetes_version(cluster: Option<&serde_json::Value>) -> String {
    let raw = cluster
        .and_then(|c| str_at(c, "/kubernetesVersion"))
        .unwrap_or("stable");
    let raw = raw.trim_start_matches("stable-").trim_start_matches("latest-");
    let v = raw.trim_start_matches('v');
    let parts: Vec<&str> = v.split(['.', '-', '+']).collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    match (num(0), num(1), num(2)) {
        (Some(a), Some(b), Some(c)) => format!("v{a}.{b}.{c}"),
        (Some(a), Some(b), None) => format!("v{a}.{b}.0"),
        _ => "v1.33.0".to_string(),
    }
}

fn init_plan(docs: &[KubeadmDoc], files: &[WrittenFile], kubelet_flags: &str) -> Result<InitPlan, String> {
    let init = find(docs, "InitConfiguration").ok_or("the kubeadm config has no InitConfiguration")?;
    let cluster = find(docs, "ClusterConfiguration");
    let cb = cluster.map(|c| &c.body);
    let ca_cert_pem = files
        .iter()
        .find(|f| f.path == "/etc/kubernetes/pki/ca.crt")
        .map(|f| f.content.clone())
        .ok_or("kubeadm init: /etc/kubernetes/pki/ca.crt is missing from write_files (the simulator needs the cluster CA vre generated)")?;
    let ca_key_pem = files
        .iter()
        .find(|f| f.path == "/etc/kubernetes/pki/ca.key")
        .map(|f| f.content.clone())
        .ok_or("kubeadm init: /etc/kubernetes/pki/ca.key is missing from write_files")?;
    let mut tokens = Vec::new();
    for (i, t) in init
        .body
        .get("bootstrapTokens")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let token = t
            .get("token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("bootstrapTokens[{i}].token is required"))?;
        let (id, secret) = super::auth::parse_token(token)
            .ok_or_else(|| format!("bootstrapTokens[{i}].token: the bootstrap token {:?} was not of the form \"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$\"", redact(token)))?;
        let ttl = match t.get("ttl").and_then(serde_json::Value::as_str) {
            Some(s) => {
                Some(parse_go_duration(s).ok_or_else(|| format!("bootstrapTokens[{i}].ttl {s:?} is not a duration"))?)
            }
            None => Some(Duration::from_secs(24 * 3600)),
        };
        let strings = |k: &str, default: &[&str]| -> Vec<String> {
            t.get(k)
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
        };
        tokens.push(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
            ttl: ttl.filter(|d| !d.is_zero()),
            expires: t.get("expires").and_then(serde_json::Value::as_str).map(str::to_string),
            usages: strings("usages", &["signing", "authentication"]),
            groups: strings("groups", &["system:bootstrappers:kubeadm:default-node-token"]),
            description: t
                .get("description")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        });
    }
    let node = node_registration(&init.body, kubelet_flags)?;
    let kubelet = find(docs, "KubeletConfiguration");
    Ok(InitPlan {
        tokens,
        node,
        advertise_address: str_at(&init.body, "/localAPIEndpoint/advertiseAddress").map(str::to_string),
        bind_port: init
            .body
            .pointer("/localAPIEndpoint/bindPort")
            .and_then(serde_json::Value::as_u64)
            .map(|p| p as u16)
            .unwrap_or(6443),
        cluster_name: cb
            .and_then(|c| str_at(c, "/clusterName"))
            .unwrap_or("kubernetes")
            .to_string(),
        kubernetes_version: kubernetes_version(cb),
        pod_subnet: cb.and_then(|c| str_at(c, "/networking/podSubnet")).map(str::to_string),
        service_subnet: cb
            .and_then(|c| str_at(c, "/networking/serviceSubnet"))
            .unwrap_or("10.96.0.0/12")
            .to_string(),
        dns_domain: cb
            .and_then(|c| str_at(c, "/networking/dnsDomain"))
            .unwrap_or("cluster.local")
            .to_string(),
        cert_sans: cb
            .and_then(|c| c.pointer("/apiServer/certSANs"))
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        control_plane_endpoint: cb.and_then(|c| str_at(c, "/controlPlaneEndpoint")).map(str::to_string),
        max_pods: kubelet
            .and_then(|k| k.body.get("maxPods"))
            .and_then(serde_json::Value::as_u64),
        ca_cert_pem,
        ca_key_pem,
        cluster_configuration: cluster
            .map(|c| c.body.clone())
            .unwrap_or_else(|| serde_json::json!({"apiVersion": init.api_version, "kind": "ClusterConfiguration"})),
        skip_phases: Vec::new(),
    })
}

fn join_plan(docs: &[KubeadmDoc], kubelet_flags: &str) -> Result<JoinPlan, String> {
    let join = find(docs, "JoinConfiguration").ok_or("the kubeadm config has no JoinConfiguration")?;
    let b = &join.body;
    let bt = b.pointer("/discovery/bootstrapToken").ok_or(
        "JoinConfiguration.discovery.bootstrapToken is missing (file discovery is not simulated; vre joins with a bootstrap token)",
    )?;
    let endpoint = str_at(bt, "/apiServerEndpoint")
        .ok_or("discovery.bootstrapToken.apiServerEndpoint is required")?
        .to_string();
    let token = str_at(bt, "/token")
        .ok_or("discovery.bootstrapToken.token is required")?
        .to_string();
    let tls_token = str_at(b, "/discovery/tlsBootstrapToken")
        .map(str::to_string)
        .unwrap_or_else(|| token.clone());
    let hashes: Vec<String> = bt
        .get("caCertHashes")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let unsafe_skip = bt
        .get("unsafeSkipCAVerification")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let kubelet = find(docs, "KubeletConfiguration");
    Ok(JoinPlan {
        api_server_endpoint: endpoint,
        token,
        tls_bootstrap_token: tls_token,
        ca_cert_hashes: hashes,
        unsafe_skip_ca_verification: unsafe_skip,
        node: node_registration(b, kubelet_flags)?,
        control_plane: b.get("controlPlane").is_some_and(|c| !c.is_null()),
        discovery_timeout: str_at(b, "/discovery/timeout")
            .or_else(|| str_at(b, "/timeouts/discovery"))
            .and_then(parse_go_duration),
        max_pods: kubelet
            .and_then(|k| k.body.get("maxPods"))
            .and_then(serde_json::Value::as_u64),
    })
}

fn redact(token: &str) -> String {
    match token.split_once('.') {
        Some((id, _)) => format!("{id}.<redacted>"),
        None => "<redacted>".into(),
    }
}

/// Labels a kubelet may set on its own Node (NodeRestriction, and the
/// kubelet's own `--node-labels` check): everything outside the
/// `kubernetes.io`/`k8s.io` namespaces, plus these.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The labels a kubelet is not allowed to set on itself, with the
/// kubelet's error message when there are any.
pub fn node_restriction_violation(labels: &BTreeMap<String, String>) -> Option<String> {
    let bad: Vec<&str> = labels
        .keys()
        .filter(|k| {
            let Some((ns, _)) = k.split_once('/') else { return false };
            let restricted =
                ns == "kubernetes.io" || ns.ends_with(".kubernetes.io") || ns == "k8s.io" || ns.ends_with(".k8s.io");
            restricted
                && !KUBELET_LABELS.contains(&k.as_str())
                && !KUBELET_LABEL_NAMESPACES
                    .iter()
                    .any(|n| ns == *n || ns.ends_with(&format!(".{n}")))
        })
        .map(String::as_str)
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(format!(
        "kubelet refuses to start: unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {bad:?}; --node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set ({})",
        KUBELET_LABELS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = r#"#cloud-config
write_files:
  - path: /etc/kubernetes/pki/ca.crt
    permissions: "0600"
    content: |
      CERT
  - path: /etc/kubernetes/pki/ca.key
    encoding: b64
    content: S0VZ
  - path: /etc/kubernetes/vre/kubeadm.yaml
    content: |
      apiVersion: kubeadm.k8s.io/v1beta4
      kind: InitConfiguration
      bootstrapTokens:
        - token: abcdef.0123456789abcdef
          ttl: 2h0m0s
      nodeRegistration:
        kubeletExtraArgs:
          - name: node-labels
            value: vre.io/role=master
        taints: []
      ---
      apiVersion: kubeadm.k8s.io/v1beta4
      kind: ClusterConfiguration
      kubernetesVersion: v1.31.2
      clusterName: demo
      networking:
        podSubnet: 10.244.0.0/16
      apiServer:
        certSANs: [203.0.113.7]
runcmd:
  - [kubeadm, init, --config, /etc/kubernetes/vre/kubeadm.yaml, --skip-phases=addon/kube-proxy]
"#;

    #[test]
    fn master_plan() {
        let Some(Plan::Init(p)) = plan(MASTER).unwrap() else {
            panic!("expected an init plan")
        };
        assert_eq!(p.tokens.len(), 1);
        assert_eq!(p.tokens[0].id, "abcdef");
        assert_eq!(p.tokens[0].ttl, Some(Duration::from_secs(7200)));
        assert_eq!(p.node.labels.get("vre.io/role").map(String::as_str), Some("master"));
        assert_eq!(p.node.taints, Some(vec![]));
        assert_eq!(p.kubernetes_version, "v1.31.2");
        assert_eq!(p.cluster_name, "demo");
        assert_eq!(p.pod_subnet.as_deref(), Some("10.244.0.0/16"));
        assert_eq!(p.cert_sans, vec!["203.0.113.7".to_string()]);
        assert_eq!(p.ca_key_pem, "KEY");
        assert_eq!(p.ca_cert_pem, "CERT\n");
        assert_eq!(p.skip_phases, vec!["addon/kube-proxy".to_string()]);
    }

    #[test]
    fn worker_plan_with_map_extra_args() {
        let ud = r#"#cloud-config
write_files:
  - path: /etc/kubernetes/vre/kubeadm.yaml
    content: |
      apiVersion: kubeadm.k8s.io/v1beta3
      kind: JoinConfiguration
      discovery:
        bootstrapToken:
          apiServerEndpoint: 10.0.0.5:6443
          token: abcdef.0123456789abcdef
          caCertHashes: ["sha256:00"]
        timeout: 30m0s
      nodeRegistration:
        name: worker-1
        kubeletExtraArgs:
          node-labels: "vre.io/role=storage,node.kubernetes.io/exclude-from-external-load-balancers="
        taints:
          - key: dedicated
            value: storage
            effect: NoSchedule
runcmd:
  - apt-get install -y kubeadm
  - kubeadm join --config=/etc/kubernetes/vre/kubeadm.yaml
"#;
        let Some(Plan::Join(p)) = plan(ud).unwrap() else {
            panic!("expected a join plan")
        };
        assert_eq!(p.api_server_endpoint, "10.0.0.5:6443");
        assert_eq!(p.ca_cert_hashes, vec!["sha256:00".to_string()]);
        assert_eq!(p.discovery_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(p.node.name.as_deref(), Some("worker-1"));
        assert_eq!(p.node.labels.len(), 2);
        assert_eq!(p.node.taints.as_ref().unwrap().len(), 1);
        assert!(node_restriction_violation(&p.node.labels).is_none());
    }

    #[test]
    fn failures_are_explained() {
        assert!(plan("#!/bin/sh\necho hi\n").unwrap().is_none());
        assert!(plan("#cloud-config\nruncmd: [\"echo hi\"]\n").unwrap().is_none());
        assert!(
            plan("#cloud-config\nruncmd: [\"kubeadm init\"]\n")
                .unwrap_err()
                .contains("--config")
        );
        let no_file = "#cloud-config\nruncmd: [\"kubeadm join --config /x.yaml\"]\n";
        assert!(plan(no_file).unwrap_err().contains("/x.yaml"));
    }

    #[test]
    fn node_restriction() {
        let mut l = BTreeMap::new();
        l.insert("node-role.kubernetes.io/worker".to_string(), String::new());
        assert!(
            node_restriction_violation(&l)
                .unwrap()
                .contains("node-role.kubernetes.io/worker")
        );
        let mut ok = BTreeMap::new();
        ok.insert("node.kubernetes.io/pool".to_string(), "a".to_string());
        ok.insert("topology.kubernetes.io/zone".to_string(), "z".to_string());
        ok.insert("example.com/x".to_string(), "y".to_string());
        assert!(node_restriction_violation(&ok).is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("24h0m0s"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("12"), None);
    }
}
