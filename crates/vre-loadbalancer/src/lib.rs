//! vre's edge load balancer: [Traefik](https://doc.traefik.io/traefik/) v3
//! on the edge nodes, the way into every app of a VRE.
//!
//! [`Traefik`] is a [`vre_core::Microservice`] whose objects are a namespace
//! (`vre-edge`), a ServiceAccount with a ClusterRole to read Ingresses,
//! IngressClasses, Services, EndpointSlices and Secrets, the default
//! IngressClass `traefik`, and a DaemonSet on the nodes of
//! [`vre_core::ClusterSpec::edge_roles`] (edge nodes; the master when it is
//! the edge, tolerating kubeadm's control-plane taint) listening on host
//! ports 80 (and 443 with ACME).
//!
//! HTTPS (`loadbalancer.https`):
//! - `none`: plain HTTP on port 80.
//! - `cloudflare`: Cloudflare proxies the DNS records and terminates TLS (as
//!   KubeNow did); Traefik serves HTTP on port 80 and trusts the client
//!   address in `X-Forwarded-For` only from Cloudflare's published ranges.
//!   The zone's SSL mode must be "Flexible" since the origin speaks HTTP.
//! - `acme`: Traefik obtains Let's Encrypt certificates with the HTTP-01
//!   challenge on port 80 (the staging CA with `acme_staging = true`),
//!   serves HTTPS on 443 and redirects HTTP to HTTPS. Certificates are stored
//!   on each edge node (`/var/lib/vre/traefik-acme`). Known limit: Traefik's
//!   open-source edition does not share challenges between instances, so
//!   with several edge nodes a challenge answered by another edge fails and
//!   is retried later; one edge node (or the master as edge) is reliable.
//!
//! The dashboard is off by default; with `dashboard = true` it is served at
//! `traefik.<domain>` behind basic auth (user `admin`, password generated
//! once into `<dir>/.vre/secrets/traefik-dashboard-password`).
//!
//! Apps reach the edge through `vre_microservice_kit::app_ingress`, which the
//! storage and apps crates call: one Ingress per exposed app with the host
//! rule `<app>.<domain>` and the IngressClass [`INGRESS_CLASS`] (owned by the
//! kit, re-exported here).

pub mod traefik;

pub use traefik::{ACME_RESOLVER, INGRESS_CLASS, NAME, NAMESPACE, TRAEFIK_IMAGE, Traefik};

#[cfg(test)]
mod tests;
