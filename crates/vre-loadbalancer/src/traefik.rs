//! Traefik v3 as a DaemonSet on the edge nodes (or the master when it is the
//! edge), with host ports 80/443, the Kubernetes Ingress provider and the
//! IngressClass `traefik` as the cluster default.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use vre_core::spec::{HttpsMode, LoadBalancerSpec};
use vre_core::{ClusterFacts, Endpoint, Error, Manifest, Microservice, ReadinessCheck, Result};

use vre_microservice_kit::local_secret;
use vre_microservice_kit::placement::{role_affinity, tolerations};
use vre_microservice_kit::{labels, selector};

pub use vre_microservice_kit::{ACME_RESOLVER, INGRESS_CLASS};

/// The microservice's name (`depends_on` of apps that are exposed).
pub const NAME: &str = "loadbalancer";
/// Namespace of the edge objects.
pub const NAMESPACE: &str = "vre-edge";
/// The controller value Traefik's Ingress provider matches IngressClasses on.
pub const INGRESS_CONTROLLER: &str = "traefik.io/ingress-controller";
/// The pinned Traefik image (v3, the current major version).
pub const TRAEFIK_IMAGE: &str = "traefik:v3.5.4";
/// Host label of the dashboard (`traefik.<domain>`), when it is on.
pub const DASHBOARD_HOST: &str = "traefik";
/// User name of the dashboard's basic auth.
pub const DASHBOARD_USER: &str = "admin";
/// Local secret file holding the dashboard password.
pub const DASHBOARD_PASSWORD_FILE: &str = "traefik-dashboard-password";
/// Local secret file holding the dashboard's htpasswd line (bcrypt).
pub const DASHBOARD_HTPASSWD_FILE: &str = "traefik-dashboard-htpasswd";

const APP: &str = "traefik";
const ACME_HOST_DIR: &str = "/var/lib/vre/traefik-acme";
const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Cloudflare's published edge ranges (<https://www.cloudflare.com/ips/>):
/// with `https = "cloudflare"` Traefik trusts the client address that
/// Cloudflare puts in `X-Forwarded-For` only when the request comes from them.
pub const CLOUDFLARE_RANGES: &[&str] = &[
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

/// The edge load balancer.
#[derive(Clone, Debug, Default)]
pub struct Traefik;

impl Traefik {
    pub fn new() -> Self {
        Traefik
    }
}

fn spec_of(facts: &ClusterFacts) -> &LoadBalancerSpec {
    &facts.spec.loadbalancer
}

/// The dashboard's password (generated once, kept 0600 in the deployment directory).
pub fn dashboard_password(dir: &Path) -> Result<String> {
    local_secret::load_or_create_token(dir, DASHBOARD_PASSWORD_FILE, 24)
}

fn dashboard_htpasswd(dir: &Path) -> Result<String> {
    let password = dashboard_password(dir)?;
    local_secret::load_or_create(dir, DASHBOARD_HTPASSWD_FILE, || {
        let hash = bcrypt::hash_with_result(&password, bcrypt::DEFAULT_COST)
            .map_err(|e| Error::component(NAME, format!("hashing the dashboard password: {e}")))?;
        Ok(format!(
            "{DASHBOARD_USER}:{}",
            hash.format_for_version(bcrypt::Version::TwoY)
        ))
    })
}

fn static_args(facts: &ClusterFacts) -> Vec<String> {
    let lb = spec_of(facts);
    let mut a: Vec<String> = vec![
        "--global.checkNewVersion=false".into(),
        "--global.sendAnonymousUsage=false".into(),
        "--log.level=INFO".into(),
        "--entryPoints.web.address=:80/tcp".into(),
        "--entryPoints.traefik.address=:8080/tcp".into(),
        "--ping=true".into(),
        "--ping.entryPoint=traefik".into(),
        "--providers.kubernetesIngress=true".into(),
        format!("--providers.kubernetesIngress.ingressClass={INGRESS_CLASS}"),
    ];
    match &lb.https {
        HttpsMode::None => {}
        HttpsMode::Cloudflare => {
            a.push(format!(
                "--entryPoints.web.forwardedHeaders.trustedIPs={}",
                CLOUDFLARE_RANGES.join(",")
            ));
        }
        HttpsMode::Acme { email, staging } => {
            a.push("--entryPoints.websecure.address=:443/tcp".into());
            a.push("--entryPoints.websecure.http.tls=true".into());
            a.push(format!("--entryPoints.websecure.http.tls.certResolver={ACME_RESOLVER}"));
            a.push("--entryPoints.web.http.redirections.entryPoint.to=websecure".into());
            a.push("--entryPoints.web.http.redirections.entryPoint.scheme=https".into());
            a.push(format!("--certificatesResolvers.{ACME_RESOLVER}.acme.email={email}"));
            a.push(format!(
                "--certificatesResolvers.{ACME_RESOLVER}.acme.storage=/acme/acme.json"
            ));
            a.push(format!(
                "--certificatesResolvers.{ACME_RESOLVER}.acme.httpChallenge.entryPoint=web"
            ));
            let ca = if *staging { LETSENCRYPT_STAGING } else { LETSENCRYPT };
            a.push(format!("--certificatesResolvers.{ACME_RESOLVER}.acme.caServer={ca}"));
        }
    }
    if lb.dashboard {
        a.push("--api.dashboard=true".into());
        a.push("--providers.file.filename=/etc/traefik/dynamic/dashboard.yaml".into());
    }
    a
}

/// Traefik's dynamic configuration for the dashboard: a router on
/// `traefik.<domain>` to `api@internal` behind basic auth.
fn dashboard_config(facts: &ClusterFacts) -> Result<String> {
    let Some(host) = facts.host_for(DASHBOARD_HOST) else {
        return Err(Error::input(
            "loadbalancer.dashboard",
            "the dashboard is served at traefik.<domain> but the cluster has no domain; set dns.provider to \"nip.io\" or \"cloudflare\", or dashboard = false",
        ));
    };
    let acme = matches!(spec_of(facts).https, HttpsMode::Acme { .. });
    let mut router = json!({
        "rule": format!("Host(`{host}`)"),
        "service": "api@internal",
        "entryPoints": [if acme { "websecure" } else { "web" }],
        "middlewares": ["dashboard-auth"],
    });
    if acme {
        router["tls"] = json!({"certResolver": ACME_RESOLVER});
    }
    let config = json!({
        "http": {
            "routers": {"dashboard": router},
            "middlewares": {
                "dashboard-auth": {"basicAuth": {"usersFile": "/etc/traefik/auth/users", "realm": "vre"}}
            }
        }
    });
    serde_yaml::to_string(&config)
        .map_err(|e| Error::component(NAME, format!("writing the dashboard configuration: {e}")))
}

fn daemonset(facts: &ClusterFacts) -> Manifest {
    let lb = spec_of(facts);
    let roles = facts.spec.edge_roles();
    let acme = matches!(lb.https, HttpsMode::Acme { .. });
    let mut ports = vec![
        json!({"name": "web", "containerPort": 80, "hostPort": 80, "protocol": "TCP"}),
        json!({"name": "admin", "containerPort": 8080, "protocol": "TCP"}),
    ];
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {}})];
    if acme {
        ports.insert(
            1,
            json!({"name": "websecure", "containerPort": 443, "hostPort": 443, "protocol": "TCP"}),
        );
        mounts.push(json!({"name": "acme", "mountPath": "/acme"}));
        volumes.push(json!({"name": "acme", "hostPath": {"path": ACME_HOST_DIR, "type": "DirectoryOrCreate"}}));
    }
    if lb.dashboard {
        mounts.push(json!({"name": "dashboard-config", "mountPath": "/etc/traefik/dynamic", "readOnly": true}));
        mounts.push(json!({"name": "dashboard-auth", "mountPath": "/etc/traefik/auth", "readOnly": true}));
        volumes.push(json!({"name": "dashboard-config", "configMap": {"name": "traefik-dashboard"}}));
        volumes.push(json!({"name": "dashboard-auth", "secret": {"secretName": "traefik-dashboard-auth"}}));
    }
    let probe = |initial: u32| {
        json!({
            "httpGet": {"path": "/ping", "port": 8080, "scheme": "HTTP"},
            "initialDelaySeconds": initial,
            "periodSeconds": 10,
            "failureThreshold": 3,
        })
    };
    Manifest::new(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": labels(APP, "edge")},
        "spec": {
            "selector": {"matchLabels": selector(APP, "edge")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels(APP, "edge")},
                "spec": {
                    "serviceAccountName": APP,
                    "affinity": role_affinity(&roles),
                    "tolerations": tolerations(&roles),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": APP,
                        "image": TRAEFIK_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "args": static_args(facts),
                        "ports": ports,
                        "readinessProbe": probe(2),
                        "livenessProbe": probe(10),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "readOnlyRootFilesystem": true,
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                }
            }
        }
    }))
}

fn rbac() -> Vec<Manifest> {
    vec![
        Manifest::new(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": APP, "namespace": NAMESPACE, "labels": labels(APP, "edge")},
        })),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "vre-traefik", "labels": labels(APP, "edge")},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
                {"apiGroups": ["networking.k8s.io", "extensions"], "resources": ["ingresses", "ingressclasses"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io", "extensions"], "resources": ["ingresses/status"], "verbs": ["update"]},
            ],
        })),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "vre-traefik", "labels": labels(APP, "edge")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "vre-traefik"},
            "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": NAMESPACE}],
        })),
    ]
}

#[async_trait]
impl Microservice for Traefik {
    fn name(&self) -> &str {
        NAME
    }

    fn objects(&self, facts: &ClusterFacts) -> Result<Vec<Manifest>> {
        let lb = spec_of(facts);
        if !lb.enabled {
            return Ok(Vec::new());
        }
        if facts.spec.edge_roles().is_empty() {
            return Err(Error::input(
                "loadbalancer.enabled",
                "the edge load balancer needs edge nodes or the master as edge; add edge nodes, set `master_as_edge = true`, or set `enabled = false`",
            ));
        }
        let mut out = vec![Manifest::new(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": labels("vre-edge", "namespace")},
        }))];
        out.extend(rbac());
        out.push(Manifest::new(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": INGRESS_CLASS,
                "labels": labels(APP, "edge"),
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": INGRESS_CONTROLLER},
        })));
        if lb.dashboard {
            let config = dashboard_config(facts)?;
            let users = dashboard_htpasswd(&facts.dir)?;
            out.push(Manifest::new(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "traefik-dashboard", "namespace": NAMESPACE, "labels": labels(APP, "dashboard")},
                "data": {"dashboard.yaml": config},
            })));
            out.push(Manifest::new(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": "traefik-dashboard-auth", "namespace": NAMESPACE, "labels": labels(APP, "dashboard")},
                "data": {"users": BASE64.encode(format!("{users}\n"))},
            })));
        }
        out.push(daemonset(facts));
        Ok(out)
    }

    fn readiness(&self, facts: &ClusterFacts) -> Vec<ReadinessCheck> {
        if !spec_of(facts).enabled {
            return Vec::new();
        }
        vec![ReadinessCheck::Rollout {
            kind: "DaemonSet".into(),
            namespace: NAMESPACE.into(),
            name: APP.into(),
        }]
    }

    fn endpoints(&self, facts: &ClusterFacts) -> Vec<Endpoint> {
        let lb = spec_of(facts);
        if !lb.enabled || !lb.dashboard {
            return Vec::new();
        }
        vre_microservice_kit::app_url(facts, DASHBOARD_HOST)
            .map(|url| Endpoint {
                name: "traefik-dashboard".into(),
                url,
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
pub(crate) fn args_of(objects: &[Manifest]) -> Vec<String> {
    objects
        .iter()
        .find(|m| m.kind() == "DaemonSet")
        .map(|d| {
            d.0["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
