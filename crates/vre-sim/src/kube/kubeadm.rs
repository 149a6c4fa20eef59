//! What `kubeadm init`, `kubeadm join` and a kubelet do to the API: the
//! objects init uploads (bootstrap token Secrets, the signed `cluster-info`,
//! `kubeadm-config`, the CoreDNS and kube-proxy addons), the checks a join
//! makes before trusting a cluster (JWS-signed discovery, CA pinning,
//! token authentication), and the Node a kubelet registers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use serde_json::{Value, json};

use super::auth;
use super::bootstrap::{BootstrapToken, InitPlan, JoinPlan, NodeRegistration};
use super::clock;
use super::cluster::{Cidr, ClusterMeta, SeedObjects, State};
use super::pki;

/// The control-plane label and taint kubeadm applies.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The kubeconfig `cluster-info` publishes (server and CA only).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        b64(ca_pem)
    )
}

fn token_secret(t: &BootstrapToken) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), json!(b64(&t.id)));
    data.insert("token-secret".into(), json!(b64(&t.secret)));
    let expiration = match (&t.expires, t.ttl) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(ttl)) => Some(clock::rfc3339(clock::now_unix() + ttl.as_secs() as i64)),
        (None, None) => None,
    };
    if let Some(e) = expiration {
        data.insert("expiration".into(), json!(b64(&e)));
    }
    for u in &t.usages {
        data.insert(format!("usage-bootstrap-{u}"), json!(b64("true")));
    }
    if !t.groups.is_empty() {
        data.insert("auth-extra-groups".into(), json!(b64(&t.groups.join(","))));
    }
    if let Some(d) = &t.description {
        data.insert("description".into(), json!(b64(d)));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{}", t.id), "namespace": "kube-system"},
        "data": data,
    })
}

/// The objects `kubeadm init` creates for this plan.
pub fn init_objects(plan: &InitPlan, meta: &ClusterMeta, advertise: &str, dns_ip: &str) -> SeedObjects {
    let mut objects: Vec<(&'static str, &'static str, Value)> = Vec::new();
    let server = match &meta.control_plane_endpoint {
        Some(e) if e.contains(':') => format!("https://{e}"),
        Some(e) => format!("https://{e}:{}", plan.bind_port),
        None => format!("https://{advertise}:{}", plan.bind_port),
    };
    let kubeconfig = cluster_info_kubeconfig(&server, &meta.ca_cert_pem);
    let mut info = json!({"kubeconfig": kubeconfig});
    for t in &plan.tokens {
        objects.push(("", "secrets", token_secret(t)));
        if t.usages.iter().any(|u| u == "signing") {
            info[format!("jws-kubeconfig-{}", t.id)] = json!(pki::detached_jws(&kubeconfig, &t.id, &t.secret));
        }
    }
    objects.push(("", "configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": info})));
    let mut cc = plan.cluster_configuration.clone();
    cc["kubernetesVersion"] = json!(meta.kubernetes_version);
    cc["clusterName"] = json!(meta.name);
    let cc_yaml = serde_yaml::to_string(&cc).unwrap_or_default();
    objects.push((
        "",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {"ClusterConfiguration": cc_yaml}}),
    ));
    objects.push((
        "",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
            "data": {"kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS:\n- DNS_IP\nclusterDomain: DOMAIN\n".replace("DNS_IP", dns_ip).replace("DOMAIN", &meta.dns_domain)}}),
    ));
    let skip = |phase: &str| {
        plan.skip_phases
            .iter()
            .any(|p| p == "addon" || p == "addon/all" || p == phase)
    };
    if !skip("addon/coredns") {
        objects.extend(coredns(meta, dns_ip));
    }
    if !skip("addon/kube-proxy") {
        objects.extend(kube_proxy(meta, &server));
    }
    SeedObjects {
        advertise_address: Some(advertise.to_string()),
        objects,
    }
}

fn coredns(meta: &ClusterMeta, dns_ip: &str) -> Vec<(&'static str, &'static str, Value)> {
    let corefile = format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    kubernetes {} in-addr.arpa ip6.arpa {{\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n    forward . /etc/resolv.conf {{\n       max_concurrent 1000\n    }}\n    cache 30\n    loop\n    reload\n    loadbalance\n}}\n",
        meta.dns_domain
    );
    vec![
        (
            "",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {"Corefile": corefile}}),
        ),
        (
            "",
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        ),
        (
            "",
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                    "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
                "spec": {"type": "ClusterIP", "clusterIP": dns_ip, "clusterIPs": [dns_ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster", "sessionAffinity": "None", "selector": {"k8s-app": "kube-dns"},
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                        {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
                "status": {"loadBalancer": {}}}),
        ),
        (
            "apps",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {"replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                    "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                        "spec": {"priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns", "dnsPolicy": "Default",
                            "nodeSelector": {"kubernetes.io/os": "linux"},
                            "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}],
                            "containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.0", "imagePullPolicy": "IfNotPresent",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                                "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                                "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}]}],
                            "volumes": [{"name": "config-volume", "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}]}}}}),
        ),
    ]
}

fn kube_proxy(meta: &ClusterMeta, server: &str) -> Vec<(&'static str, &'static str, Value)> {
    let config = format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: {}\nmode: \"\"\n",
        meta.pod_subnet.clone().unwrap_or_default()
    );
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"
    );
    vec![
        (
            "",
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": "kube-system"}}),
        ),
        (
            "",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
                "data": {"config.conf": config, "kubeconfig.conf": kubeconfig}}),
        ),
        (
            "apps",
            "daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
                "spec": {"revisionHistoryLimit": 10, "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                    "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                        "spec": {"hostNetwork": true, "priorityClassName": "system-node-critical", "serviceAccountName": "kube-proxy",
                            "nodeSelector": {"kubernetes.io/os": "linux"}, "tolerations": [{"operator": "Exists"}],
                            "containers": [{"name": "kube-proxy", "image": format!("registry.k8s.io/kube-proxy:{}", meta.kubernetes_version),
                                "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"],
                                "securityContext": {"privileged": true},
                                "volumeMounts": [{"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"}]}],
                            "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]}}}}),
        ),
    ]
}

/// Why a join would not trust (or be trusted by) a cluster, in kubeadm's
/// words; `Ok` when discovery and TLS bootstrap would succeed.
pub fn verify_join(st: &State, meta: &ClusterMeta, plan: &JoinPlan) -> Result<(), String> {
    let (id, secret) = auth::parse_token(&plan.token).ok_or_else(|| {
        "discovery.bootstrapToken.token: the bootstrap token was not of the form \"^([a-z0-9]{6})\\.([a-z0-9]{16})$\"".to_string()
    })?;
    if plan.ca_cert_hashes.is_empty() && !plan.unsafe_skip_ca_verification {
        return Err("discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into());
    }
    let info = st
        .store
        .get(&super::cluster::gr("", "configmaps"), "kube-public", "cluster-info");
    let info = info.ok_or("failed to request the cluster-info ConfigMap: configmaps \"cluster-info\" not found")?;
    let kubeconfig = info.pointer("/data/kubeconfig").and_then(Value::as_str).unwrap_or("");
    // The bootstrap signer only keeps signatures of live signing tokens.
    let signing = auth::token_secret(st, id).filter(|t| t.signing && !t.expired());
    let jws = info
        .pointer(&format!("/data/jws-kubeconfig-{id}"))
        .and_then(Value::as_str)
        .filter(|_| signing.is_some());
    let Some(jws) = jws else {
        return Err(format!(
            "there is no JWS signed token in the cluster-info ConfigMap. This token id \"{id}\" is invalid for this cluster, can't connect (kubeadm retries until discovery times out)"
        ));
    };
    if !pki::verify_detached_jws(jws, kubeconfig, id, secret) {
        return Err(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server".into(),
        );
    }
    if !plan.unsafe_skip_ca_verification {
        let pin = pki::pem_pin(&meta.ca_cert_pem).unwrap_or_default();
        if !plan.ca_cert_hashes.iter().any(|h| h.trim().eq_ignore_ascii_case(&pin)) {
            for h in &plan.ca_cert_hashes {
                let valid = h
                    .strip_prefix("sha256:")
                    .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
                if !valid {
                    return Err(format!(
                        "invalid hash {h:?}, expected a \"sha256:<64 hex digits>\" CA public key pin"
                    ));
                }
            }
            return Err(format!(
                "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{pin}\" are pinned"
            ));
        }
    }
    // TLS bootstrap: the kubelet authenticates with the TLS bootstrap token.
    let (tls_id, tls_secret) = auth::parse_token(&plan.tls_bootstrap_token).ok_or(
        "discovery.tlsBootstrapToken: the bootstrap token was not of the form \"^([a-z0-9]{6})\\.([a-z0-9]{16})$\"",
    )?;
    let ok = auth::token_secret(st, tls_id).is_some_and(|t| t.authentication && !t.expired() && t.secret == tls_secret);
    if !ok {
        return Err("error execution phase kubelet-start: the kubelet's TLS bootstrap failed: Unauthorized (the bootstrap token does not authenticate: unknown, expired or not usable for authentication)".into());
    }
    Ok(())
}

/// What a kubelet registers with.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub ip: Option<Ipv4Addr>,
    pub machine_id: &'a str,
    pub registration: &'a NodeRegistration,
    pub control_plane: bool,
    pub kubernetes_version: &'a str,
    pub pod_cidr: Option<Cidr>,
    pub max_pods: u64,
}

fn uuid_from(seed: &str, salt: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{salt}:{seed}").as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// The labels a node ends up with: the kubelet's own, `--node-labels`, and
/// (control planes) kubeadm's.
pub fn node_labels(spec: &NodeSpec<'_>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.insert("kubernetes.io/hostname".into(), spec.name.to_string());
    labels.extend(spec.registration.labels.clone());
    if spec.control_plane {
        labels.insert(CONTROL_PLANE_LABEL.into(), String::new());
        labels.insert(EXCLUDE_LB_LABEL.into(), String::new());
    }
    labels
}

/// The Node object a kubelet creates (NotReady until it reports ready).
pub fn node_object(spec: &NodeSpec<'_>) -> Value {
    let mut taints: Vec<Value> = match &spec.registration.taints {
        Some(t) => t.clone(),
        None if spec.control_plane => vec![json!({"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"})],
        None => Vec::new(),
    };
    taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
    let now = clock::now_rfc3339();
    let cond = |ty: &str, status: &str, reason: &str, message: &str| json!({"type": ty, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now});
    let mut addresses = Vec::new();
    if let Some(ip) = spec.ip {
        addresses.push(json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    addresses.push(json!({"type": "Hostname", "address": spec.name}));
    let capacity = json!({"cpu": "2", "ephemeral-storage": "40470732Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "4010176Ki", "pods": spec.max_pods.to_string()});
    let allocatable = json!({"cpu": "2", "ephemeral-storage": "37297826550", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "3907776Ki", "pods": spec.max_pods.to_string()});
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": node_labels(spec),
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "False", "KubeletNotReady", "container runtime status check may not have completed yet"),
            ],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uuid_from(spec.machine_id, "machine").replace('-', ""),
                "systemUUID": uuid_from(spec.machine_id, "system"),
                "bootID": uuid_from(spec.machine_id, &clock::now_rfc3339()),
                "kernelVersion": "6.8.0-51-generic",
                "osImage": "Ubuntu 24.04.1 LTS",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": spec.kubernetes_version,
                "kubeProxyVersion": spec.kubernetes_version,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    });
    if let Some(c) = spec.pod_cidr {
        node["spec"]["podCIDR"] = json!(c.to_string());
        node["spec"]["podCIDRs"] = json!([c.to_string()]);
    }
    node
}

/// The Node turning Ready (the kubelet's status update).
pub fn mark_ready(node: &mut Value) {
    let now = clock::now_rfc3339();
    if let Some(conds) = node.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        for c in conds.iter_mut() {
            c["lastHeartbeatTime"] = json!(now);
            if c.get("type").and_then(Value::as_str) == Some("Ready") {
                c["status"] = json!("True");
                c["reason"] = json!("KubeletReady");
                c["message"] = json!("kubelet is posting ready status");
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
    if let Some(t) = node.pointer_mut("/spec/taints").and_then(Value::as_array_mut) {
        t.retain(|x| x.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/not-ready"));
    }
}

/// The node lifecycle controller's view of a node whose kubelet stopped
/// posting status: every condition Unknown, unreachable taints.
pub fn mark_unreachable(node: &mut Value) {
    let now = clock::now_rfc3339();
    if let Some(conds) = node.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        for c in conds.iter_mut() {
            if c.get("status").and_then(Value::as_str) != Some("Unknown") {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
    if !node.get("spec").is_some_and(Value::is_object) {
        node["spec"] = json!({});
    }
    let taints = node["spec"].as_object_mut().and_then(|s| {
        if !s.get("taints").is_some_and(Value::is_array) {
            s.insert("taints".into(), json!([]));
        }
        s.get_mut("taints").and_then(Value::as_array_mut)
    });
    if let Some(taints) = taints {
        taints.retain(|x| x.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/not-ready"));
        for effect in ["NoSchedule", "NoExecute"] {
            let present = taints
                .iter()
                .any(|x| x["key"] == "node.kubernetes.io/unreachable" && x["effect"] == effect);
            if !present {
                let mut t = json!({"key": "node.kubernetes.io/unreachable", "effect": effect});
                if effect == "NoExecute" {
                    t["timeAdded"] = json!(now);
                }
                taints.push(t);
            }
        }
    }
}

/// The DNS Service address (the tenth of the service range, as kubeadm).
pub fn dns_ip(service: Cidr) -> String {
    service
        .nth(10)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "10.96.0.10".into())
}

/// The serving certificate's names: kubeadm's defaults, the certSANs, and
/// every address the master answers on.
pub fn serving_sans(meta: &ClusterMeta, node_name: &str, ips: &[IpAddr], service_ip: Ipv4Addr) -> Vec<String> {
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", meta.dns_domain),
        node_name.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
        service_ip.to_string(),
    ];
    sans.extend(ips.iter().map(IpAddr::to_string));
    sans.extend(meta.cert_sans.iter().cloned());
    if let Some(ep) = &meta.control_plane_endpoint {
        let host = match ep.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => ep.as_str(),
        };
        sans.push(host.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    sans.dedup();
    sans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_taints_and_labels() {
        let reg = NodeRegistration {
            name: None,
            labels: [("vre.io/role".to_string(), "edge".to_string())].into_iter().collect(),
            taints: None,
        };
        let spec = NodeSpec {
            name: "m",
            ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
            machine_id: "id",
            registration: &reg,
            control_plane: true,
            kubernetes_version: "v1.33.0",
            pod_cidr: Cidr::parse("10.244.0.0/24"),
            max_pods: 110,
        };
        let mut n = node_object(&spec);
        assert_eq!(n["metadata"]["labels"]["vre.io/role"], "edge");
        assert_eq!(n["metadata"]["labels"][CONTROL_PLANE_LABEL], "");
        let keys: Vec<&str> = n["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, vec![CONTROL_PLANE_LABEL, "node.kubernetes.io/not-ready"]);
        mark_ready(&mut n);
        assert_eq!(n["spec"]["taints"].as_array().unwrap().len(), 1);
        mark_unreachable(&mut n);
        let t = n["spec"]["taints"].as_array().unwrap();
        assert_eq!(t.len(), 3);
        assert!(
            t.iter()
                .any(|x| x["effect"] == "NoExecute" && x.get("timeAdded").is_some())
        );
        let untainted = NodeRegistration {
            taints: Some(vec![]),
            ..reg.clone()
        };
        let spec2 = NodeSpec {
            registration: &untainted,
            ..spec
        };
        assert_eq!(node_object(&spec2)["spec"]["taints"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn cluster_info_kubeconfig_names_the_server() {
        let k = cluster_info_kubeconfig("https://10.0.0.5:6443", "PEM");
        assert!(k.contains("server: https://10.0.0.5:6443"));
        assert!(k.contains(&b64("PEM")));
    }
}
