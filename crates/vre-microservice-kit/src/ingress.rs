//! Routes through the edge: the Kubernetes Ingress that sends
//! `<app>.<domain>` to a Service port, as Traefik's Ingress provider reads it.
//! The storage and apps crates call [`app_ingress`] for everything they expose;
//! the load balancer serves the IngressClass [`INGRESS_CLASS`] these name.

use serde_json::{Map, Value, json};
use vre_core::spec::HttpsMode;
use vre_core::{ClusterFacts, Manifest};

use crate::labels::labels;

/// The IngressClass the edge load balancer serves (the cluster default) and
/// every app Ingress names.
pub const INGRESS_CLASS: &str = "traefik";
/// Name of the edge's ACME certificate resolver, which Ingresses behind ACME ask for.
pub const ACME_RESOLVER: &str = "letsencrypt";

/// Traefik's annotation naming a router's entry points.
pub const ENTRYPOINTS_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
/// Traefik's annotation turning TLS on for a router.
pub const TLS_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.tls";
/// Traefik's annotation naming the certificate resolver of a router.
pub const CERT_RESOLVER_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.tls.certresolver";

/// A Service port to expose at `<name>.<domain>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppRoute<'a> {
    /// The host label (`jupyter` for `jupyter.<domain>`); also the Ingress name.
    pub name: &'a str,
    /// The namespace of the Service (and of the Ingress).
    pub namespace: &'a str,
    /// The Service traffic goes to.
    pub service: &'a str,
    /// The Service port traffic goes to.
    pub port: u16,
}

/// The Ingress for `route`: host `<name>.<domain>` when the cluster has a
/// domain; without one the rule has no host and matches every request that
/// reaches the edge by address, so only one app can be reached that way.
/// HTTPS follows `loadbalancer.https`: with ACME the router listens on
/// `websecure` and gets its certificate from Let's Encrypt; otherwise it
/// listens on `web` (Cloudflare terminates TLS in front of it).
pub fn app_ingress(facts: &ClusterFacts, route: &AppRoute<'_>) -> Manifest {
    let host = facts.host_for(route.name);
    let acme = matches!(facts.spec.loadbalancer.https, HttpsMode::Acme { .. });
    let mut annotations = Map::new();
    if acme {
        annotations.insert(ENTRYPOINTS_ANNOTATION.into(), json!("websecure"));
        annotations.insert(TLS_ANNOTATION.into(), json!("true"));
        annotations.insert(CERT_RESOLVER_ANNOTATION.into(), json!(ACME_RESOLVER));
    } else {
        annotations.insert(ENTRYPOINTS_ANNOTATION.into(), json!("web"));
    }
    let mut rule = json!({
        "http": {
            "paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": route.service, "port": {"number": route.port}}},
            }]
        }
    });
    if let Some(h) = &host {
        rule["host"] = json!(h);
    }
    let mut spec = json!({
        "ingressClassName": INGRESS_CLASS,
        "rules": [rule],
    });
    if let (true, Some(h)) = (acme, &host) {
        spec["tls"] = json!([{"hosts": [h]}]);
    }
    Manifest::new(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": route.name,
            "namespace": route.namespace,
            "labels": labels(route.name, "ingress"),
            "annotations": Value::Object(annotations),
        },
        "spec": spec,
    }))
}

/// The URL users open for the app `name`: `https://<name>.<domain>` behind
/// ACME or Cloudflare, `http://` otherwise; `http://<edge-ip>/` without a
/// domain; `None` when the edge has no address.
pub fn app_url(facts: &ClusterFacts, name: &str) -> Option<String> {
    let scheme = match facts.spec.loadbalancer.https {
        HttpsMode::None => "http",
        HttpsMode::Cloudflare | HttpsMode::Acme { .. } => "https",
    };
    match facts.host_for(name) {
        Some(host) => Some(format!("{scheme}://{host}")),
        None => facts.edge_ips.first().map(|ip| match ip {
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]/"),
            std::net::IpAddr::V4(v4) => format!("http://{v4}/"),
        }),
    }
}
