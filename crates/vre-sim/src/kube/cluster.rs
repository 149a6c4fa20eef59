//! One simulated cluster: its identity (from the master's kubeadm
//! configuration), its object store and catalog, and the objects kubeadm
//! and the control plane create at `kubeadm init`.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::catalog::{Catalog, GroupResource, ResourceType, custom_type_from_crd};
use super::clock;
use super::store::Store;

/// What a cluster is, fixed at `kubeadm init`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// The master machine's id (clusters are keyed by it).
    pub id: String,
    /// `ClusterConfiguration.clusterName` (kubeadm's default: `kubernetes`).
    pub name: String,
    pub project_id: String,
    /// The master machine's name.
    pub master_name: String,
    /// The master node's name.
    pub master_node: String,
    /// `v1.33.1`: what `/version` and kubelets report.
    pub kubernetes_version: String,
    /// `networking.podSubnet` (node podCIDRs are carved from it when set).
    pub pod_subnet: Option<String>,
    /// `networking.serviceSubnet` (default `10.96.0.0/12`).
    pub service_subnet: String,
    pub dns_domain: String,
    pub control_plane_endpoint: Option<String>,
    pub cert_sans: Vec<String>,
    /// The cluster CA (PEM) from the master's `ca.crt`.
    pub ca_cert_pem: String,
    /// The CA key (PEM); kept to re-sign the serving certificate on reload.
    pub ca_key_pem: String,
    /// A static bearer token bound to `cluster-admin`, for tests and tools.
    pub admin_token: String,
    /// `localAPIEndpoint.bindPort` (the port joins must name).
    #[serde(default = "default_bind_port")]
    pub bind_port: u16,
    /// The address the API server advertises (`localAPIEndpoint.advertiseAddress`).
    #[serde(default)]
    pub advertise_address: String,
}

fn default_bind_port() -> u16 {
    6443
}

impl std::fmt::Debug for ClusterMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMeta")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("project_id", &self.project_id)
            .field("master_node", &self.master_node)
            .field("kubernetes_version", &self.kubernetes_version)
            .field("service_subnet", &self.service_subnet)
            .field("ca_key_pem", &"<redacted>")
            .field("admin_token", &"<redacted>")
            .finish()
    }
}

/// An IPv4 CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        // kubeadm accepts a comma-separated dual-stack pair; the sim uses the IPv4 one.
        let v4 = s.split(',').map(str::trim).find(|p| !p.contains(':'))?;
        let (ip, prefix) = v4.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 30 {
            return None;
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base.wrapping_add(n as u32)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == self.base
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The mutable state of a cluster, behind one lock.
pub struct State {
    pub store: Store,
    pub catalog: Catalog,
}

/// One simulated cluster.
pub struct Cluster {
    pub meta: ClusterMeta,
    state: Mutex<State>,
    /// Set when the master machine is deleted: the API server stops.
    stopped: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("meta", &self.meta).finish()
    }
}

pub const CORE: &str = "";

pub fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `generateName` suffix: 5 characters from the apiserver's alphabet.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

impl Cluster {
    /// A cluster with an empty store (its objects are created by `seed`).
    pub fn new(meta: ClusterMeta) -> Self {
        Cluster::with_store(meta, Store::new(0))
    }

    /// A cluster around a reloaded store.
    pub fn with_store(meta: ClusterMeta, store: Store) -> Self {
        let mut state = State {
            store,
            catalog: Catalog::new(),
        };
        refresh_catalog(&mut state);
        Cluster {
            meta,
            state: Mutex::new(state),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent store (writes
        // are single inserts), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn service_cidr(&self) -> Cidr {
        Cidr::parse(&self.meta.service_subnet).unwrap_or(Cidr {
            base: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
            prefix: 12,
        })
    }

    /// The `kubernetes` Service's address: the first of the service range.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_cidr().nth(1).unwrap_or(Ipv4Addr::new(10, 96, 0, 1))
    }

    /// Creates what `kubeadm init` and a fresh control plane create:
    /// namespaces, the `kubernetes` Service, RBAC bootstrap policy, the
    /// `cluster-info` ConfigMap, the `kubeadm-config` ConfigMap and the
    /// bootstrap token Secret(s).
    pub fn seed(&self, bootstrap: &SeedObjects) {
        let mut st = self.lock();
        let now = clock::now_rfc3339();
        let put = |st: &mut State, group: &str, resource: &str, mut obj: Value| {
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("uid".into(), json!(new_uid()));
                meta.insert("creationTimestamp".into(), json!(now));
            }
            st.store.put(&gr(group, resource), obj);
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            put(
                &mut st,
                CORE,
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            );
        }
        let svc_ip = self.kubernetes_service_ip().to_string();
        put(
            &mut st,
            CORE,
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": svc_ip, "clusterIPs": [svc_ip], "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
                "status": {"loadBalancer": {}}}),
        );
        if let Some(ip) = &bootstrap.advertise_address {
            put(
                &mut st,
                CORE,
                "endpoints",
                json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}),
            );
            put(
                &mut st,
                "discovery.k8s.io",
                "endpointslices",
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
                    "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}),
            );
        }
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            put(
                &mut st,
                CORE,
                "serviceaccounts",
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
            );
        }
        for (group, resource, obj) in super::auth::bootstrap_policy() {
            put(&mut st, group, resource, obj);
        }
        drop(st);
        // What kubeadm uploads goes through the API like any client's writes.
        for (group, resource, obj) in bootstrap.objects.iter().cloned() {
            if let Err(e) = self.create_system((group, resource), obj, "kubeadm") {
                tracing::warn!(target: "vre_sim::kube", "kubeadm init: cannot create a {resource} object: {e}");
            }
        }
    }

    /// The resource type for a URL, or the catalog's answer for a kind.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock().catalog.resolve(group, version, plural)
    }

    pub fn catalog(&self) -> Catalog {
        self.lock().catalog.clone()
    }
}

/// Objects `kubeadm init` creates from the configuration (cluster-info,
/// kubeadm-config, bootstrap tokens), built by the bootstrap module.
#[derive(Clone, Debug, Default)]
pub struct SeedObjects {
    pub advertise_address: Option<String>,
    pub objects: Vec<(&'static str, &'static str, Value)>,
}

/// Rebuilds the custom kinds from the established CRDs in the store.
pub fn refresh_catalog(st: &mut State) {
    let crds = gr("apiextensions.k8s.io", "customresourcedefinitions");
    let custom: Vec<ResourceType> = st
        .store
        .list(&crds, None)
        .filter(|(_, o)| o.pointer("/metadata/deletionTimestamp").is_none())
        .filter_map(|(_, o)| custom_type_from_crd(o))
        .collect();
    st.catalog.set_custom(custom);
}

/// Allocates a free address from the service range (the first address
/// belongs to the `kubernetes` Service).
pub fn allocate_service_ip(st: &State, cidr: Cidr) -> Option<Ipv4Addr> {
    let used: HashSet<String> = st
        .store
        .list(&gr(CORE, "services"), None)
        .filter_map(|(_, s)| s.pointer("/spec/clusterIP").and_then(Value::as_str).map(str::to_string))
        .collect();
    let size = cidr.size().min(1 << 20);
    // Start at a pseudo-random offset like the real allocator, then scan.
    let start = 2 + fastrand::u64(..size.saturating_sub(3).max(1));
    (0..size.saturating_sub(3))
        .map(|i| 2 + (start - 2 + i) % (size - 3))
        .filter_map(|n| cidr.nth(n))
        .find(|ip| !used.contains(&ip.to_string()))
}

/// Allocates a free node port in 30000-32767.
pub fn allocate_node_port(st: &State, taken_now: &HashSet<i64>) -> Option<i64> {
    let mut used: HashSet<i64> = taken_now.clone();
    for (_, s) in st.store.list(&gr(CORE, "services"), None) {
        for p in s.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                used.insert(np);
            }
        }
    }
    let start = 30000 + fastrand::i64(0..2768);
    (0..2768)
        .map(|i| 30000 + (start - 30000 + i) % 2768)
        .find(|p| !used.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.96.0.0/12").unwrap();
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert!(c.contains(Ipv4Addr::new(10, 100, 1, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert_eq!(
            Cidr::parse("10.244.0.0/16,fd00::/108").unwrap().to_string(),
            "10.244.0.0/16"
        );
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn uids_are_v4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }
}
