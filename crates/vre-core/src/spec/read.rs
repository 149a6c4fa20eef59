//! Reads a spanned `vre.toml` document into a [`ClusterSpec`], collecting
//! every type error and unknown key, and remembering where each field was
//! written so that later (semantic) problems can be located too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::document::{Diagnostics, Span, Table, TableReader, Value};
use super::model::*;

/// Where each field of a spec was written: dotted path -> span of its value.
#[derive(Clone, Debug, Default)]
pub struct SpanIndex {
    spans: HashMap<String, Span>,
}

impl SpanIndex {
    /// The span of `field`, or of its nearest parent that has one.
    pub fn get(&self, field: &str) -> Option<Span> {
        // a problem on `nodes.service.count` falls back to `nodes.service`, then `nodes`
        let mut f = field;
        loop {
            if let Some(s) = self.spans.get(f) {
                return Some(s.clone());
            }
            match f.rfind(['.', '[']) {
                Some(i) => f = &f[..i],
                None => return None,
            }
        }
    }

    /// The span of exactly `field`, without falling back to a parent.
    pub fn exact(&self, field: &str) -> Option<Span> {
        self.spans.get(field).cloned()
    }

    fn put(&mut self, field: String, span: Option<Span>) {
        if let Some(s) = span {
            self.spans.insert(field, s);
        }
    }
}

/// Names of the provider tables the registry knows, so the reader can accept
/// the active one and explain a table meant for another provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderTables {
    /// provider name -> its table name
    pub tables: Vec<(String, String)>,
}

impl ProviderTables {
    /// The table name of `provider`.
    pub fn table_of(&self, provider: &str) -> Option<&str> {
        self.tables.iter().find(|(p, _)| p == provider).map(|(_, t)| t.as_str())
    }

    fn provider_of_table(&self, table: &str) -> Option<&str> {
        self.tables.iter().find(|(_, t)| t == table).map(|(p, _)| p.as_str())
    }
}

const ROOT_KEYS: &[&str] = &[
    "name",
    "provider",
    "master_as_edge",
    "kubernetes",
    "image",
    "ssh",
    "network",
    "nodes",
    "storage",
    "loadbalancer",
    "dns",
    "apps",
    "engine",
];

/// Reads the document. Problems go to `diags`; the returned spec holds
/// defaults wherever a field was missing or wrong, so validation can go on.
pub fn read_spec(root: &Table, tables: &ProviderTables, diags: &mut Diagnostics) -> (ClusterSpec, SpanIndex) {
    let mut idx = SpanIndex::default();
    let mut r = TableReader::new(root, "");
    let name = r.required_string(diags, "name", "\"mylab\"");
    let provider = r.required_string(diags, "provider", "\"openstack\"");
    let mut spec = ClusterSpec::new(
        name.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
        provider.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
    );
    if let Some(n) = name {
        idx.put("name".into(), n.span);
    }
    if let Some(p) = &provider {
        idx.put("provider".into(), p.span.clone());
    }

    if let Some(mut k) = r.table_reader(diags, "kubernetes") {
        read_kubernetes(&mut k, &mut spec.kubernetes, &mut idx, diags);
        k.finish(diags, &["version", "pod_cidr", "service_cidr", "cni"]);
    }
    match r.table_reader(diags, "image") {
        Some(mut t) => {
            if let Some(s) = t.required_string(diags, "name", "\"ubuntu-24.04\"") {
                idx.put("image.name".into(), s.span);
                spec.image.name = s.value;
            }
            if let Some(s) = t.string(
                diags,
                "source",
                "\"https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img\"",
            ) {
                idx.put("image.source".into(), s.span);
                spec.image.source = Some(s.value);
            }
            if let Some(b) = t.bool(diags, "preinstalled") {
                spec.image.preinstalled = b.value;
            }
            t.finish(diags, &["name", "source", "preinstalled"]);
        }
        None if root.get("image").is_none() => diags.error(
            "image",
            None,
            "is required; add an `[image]` section with `name = \"...\"`",
        ),
        None => {}
    }
    if let Some(mut t) = r.table_reader(diags, "ssh") {
        if let Some(s) = t.string(diags, "user", "\"ubuntu\"") {
            idx.put("ssh.user".into(), s.span);
            spec.ssh.user = s.value;
        }
        if let Some(s) = t.string(diags, "public_key", "\"ssh_key.pub\"") {
            idx.put("ssh.public_key".into(), s.span);
            spec.ssh.public_key = PathBuf::from(s.value);
        }
        t.finish(diags, &["user", "public_key"]);
    }
    if let Some(mut t) = r.table_reader(diags, "network") {
        read_network(&mut t, &mut spec.network, &mut idx, diags);
        t.finish(diags, &["cidr", "dns_servers", "ingress_ports", "master_ip"]);
    }
    match r.table_reader(diags, "nodes") {
        Some(mut nodes) => {
            idx.put("nodes".into(), nodes.span());
            for role in Role::ALL {
                let group = spec.group_mut(role);
                if role != Role::Master {
                    group.count = 0;
                }
                if let Some(mut g) = nodes.table_reader(diags, role.as_str()) {
                    read_group(&mut g, group, &mut idx, diags);
                    let mut known = vec!["count", "flavor", "root_disk_gb", "public_ip"];
                    if role == Role::Storage {
                        known.push("volume_gb");
                    }
                    g.finish(diags, &known);
                } else if role == Role::Master && root_has_table(root, "nodes", "master") == Some(false) {
                    diags.error(
                        "nodes.master",
                        nodes.span().map(|s| s.start..s.start),
                        "is required; add a `[nodes.master]` section with `flavor = \"...\"`",
                    );
                }
            }
            nodes.finish(diags, &["master", "service", "storage", "edge"]);
        }
        None if root.get("nodes").is_none() => diags.error(
            "nodes.master",
            None,
            "is required; add a `[nodes.master]` section with `flavor = \"...\"`",
        ),
        None => {}
    }
    let explicit_mae = r.bool(diags, "master_as_edge");
    spec.master_as_edge = match &explicit_mae {
        Some(b) => {
            idx.put("master_as_edge".into(), b.span.clone());
            b.value
        }
        None => spec.count(Role::Edge) == 0,
    };
    match r.table_reader(diags, "storage") {
        Some(mut t) => {
            idx.put("storage".into(), t.span());
            if let Some(b) = t.bool(diags, "enabled") {
                idx.put("storage.enabled".into(), b.span);
                spec.storage.enabled = b.value;
            } else {
                spec.storage.enabled = true;
            }
            spec.storage.object_storage = spec.storage.enabled;
            if let Some(b) = t.bool(diags, "object_storage") {
                idx.put("storage.object_storage".into(), b.span);
                spec.storage.object_storage = b.value;
            }
            t.finish(diags, &["enabled", "object_storage"]);
        }
        None => {
            // KubeNow's default: shared storage whenever there are storage nodes
            let on = spec.count(Role::Storage) > 0;
            spec.storage = StorageSpec {
                enabled: on,
                object_storage: on,
            };
        }
    }
    if let Some(mut t) = r.table_reader(diags, "loadbalancer") {
        read_loadbalancer(&mut t, &mut spec.loadbalancer, &mut idx, diags);
        t.finish(diags, &["enabled", "https", "acme_email", "acme_staging", "dashboard"]);
    }
    if let Some(mut t) = r.table_reader(diags, "dns") {
        idx.put("dns".into(), t.span());
        spec.dns = read_dns(&mut t, &mut idx, diags);
        t.finish(diags, &["provider", "zone", "subdomain", "proxied"]);
    }
    for mut a in r.table_array(diags, "apps") {
        if let Some(app) = read_app(&mut a, &mut idx, diags) {
            spec.apps.push(app);
        }
        a.finish(
            diags,
            &[
                "name",
                "namespace",
                "chart",
                "repo",
                "version",
                "values",
                "manifest",
                "expose_service",
                "expose_port",
            ],
        );
    }
    if let Some(mut t) = r.table_reader(diags, "engine") {
        read_engine(&mut t, &mut spec.engine, &mut idx, diags);
        t.finish(
            diags,
            &["parallelism", "max_attempts", "node_timeout_secs", "ready_timeout_secs"],
        );
    }

    // the active provider's own table, kept raw for its factory
    let mut known: Vec<&str> = ROOT_KEYS.to_vec();
    let active = provider
        .as_ref()
        .and_then(|p| tables.table_of(&p.value))
        .map(str::to_string);
    if let Some(table) = &active {
        known.push(table);
        if let Some(item) = r.item(table) {
            match &item.value {
                Value::Table(t) => spec.provider_table = t.clone(),
                other => diags.error(
                    table,
                    item.span.clone(),
                    format!(
                        "expected a table, found {}; write it as a `[{table}]` section",
                        other.type_name()
                    ),
                ),
            }
        }
    }
    // tables of other providers get a message of their own
    for (k, _) in &root.entries {
        if ROOT_KEYS.contains(&k.name.as_str()) || Some(&k.name) == active.as_ref() {
            continue;
        }
        if let Some(other) = tables.provider_of_table(&k.name) {
            r.item(&k.name);
            // without a provider there is nothing to compare the table with
            let Some(p) = &provider else { continue };
            let current = &p.value;
            diags.error(
                &k.name,
                k.span.clone(),
                format!(
                    "this table configures provider \"{other}\" but provider = \"{current}\"; remove the `[{}]` section or set provider = \"{other}\"",
                    k.name
                ),
            );
        }
    }
    r.finish(diags, &known);
    (spec, idx)
}

/// `Some(true)` when `[outer.inner]` exists, `Some(false)` when `[outer]` exists without it.
fn root_has_table(root: &Table, outer: &str, inner: &str) -> Option<bool> {
    match &root.get(outer)?.value {
        Value::Table(t) => Some(t.get(inner).is_some()),
        _ => None,
    }
}

fn read_cidr(
    t: &mut TableReader<'_>,
    key: &str,
    example: &str,
    idx: &mut SpanIndex,
    diags: &mut Diagnostics,
) -> Option<Ipv4Cidr> {
    let s = t.string(diags, key, example)?;
    idx.put(t.field(key), s.span.clone());
    match s.value.parse::<Ipv4Cidr>() {
        Ok(c) => Some(c),
        Err(e) => {
            diags.error(
                &t.field(key),
                s.span,
                format!("{e}; write an IPv4 network such as {example}"),
            );
            None
        }
    }
}

fn read_kubernetes(t: &mut TableReader<'_>, k: &mut KubernetesSpec, idx: &mut SpanIndex, diags: &mut Diagnostics) {
    idx.put("kubernetes".into(), t.span());
    if let Some(v) = t.string(diags, "version", "\"1.30.2\"") {
        idx.put("kubernetes.version".into(), v.span);
        k.version = v.value;
    }
    if let Some(c) = read_cidr(t, "pod_cidr", "\"10.244.0.0/16\"", idx, diags) {
        k.pod_cidr = c;
    }
    if let Some(c) = read_cidr(t, "service_cidr", "\"10.96.0.0/12\"", idx, diags) {
        k.service_cidr = c;
    }
    if let Some(v) = t.string(diags, "cni", "\"flannel\"") {
        idx.put("kubernetes.cni".into(), v.span);
        k.cni = v.value;
    }
}

fn read_network(t: &mut TableReader<'_>, n: &mut NetworkSpec, idx: &mut SpanIndex, diags: &mut Diagnostics) {
    idx.put("network".into(), t.span());
    if let Some(c) = read_cidr(t, "cidr", "\"10.0.0.0/24\"", idx, diags) {
        n.cidr = c;
    }
    if let Some(list) = t.string_array(diags, "dns_servers", "[\"1.1.1.1\", \"8.8.8.8\"]") {
        n.dns_servers.clear();
        for (i, s) in list.into_iter().enumerate() {
            match s.value.parse::<IpAddr>() {
                Ok(ip) => n.dns_servers.push(ip),
                Err(_) => diags.error(
                    &format!("network.dns_servers[{i}]"),
                    s.span,
                    format!("\"{}\" is not an IP address; write for example \"1.1.1.1\"", s.value),
                ),
            }
        }
    }
    if let Some(item) = t.item("ingress_ports") {
        idx.put("network.ingress_ports".into(), item.span.clone());
        match &item.value {
            Value::Array(items) => {
                n.ingress_ports.clear();
                for (i, it) in items.iter().enumerate() {
                    let field = format!("network.ingress_ports[{i}]");
                    idx.put(field.clone(), it.span.clone());
                    match parse_port(&it.value) {
                        Ok(p) => n.ingress_ports.push(p),
                        Err(e) => diags.error(&field, it.span.clone(), e),
                    }
                }
            }
            other => diags.error(
                "network.ingress_ports",
                item.span.clone(),
                format!(
                    "expected an array, found {}; write for example `ingress_ports = [22, 80, 443, 6443]`",
                    other.type_name()
                ),
            ),
        }
    }
    if let Some(s) = t.string(diags, "master_ip", "\"10.0.0.10\"") {
        idx.put("network.master_ip".into(), s.span.clone());
        match s.value.parse() {
            Ok(ip) => n.master_ip = Some(ip),
            Err(_) => diags.error(
                "network.master_ip",
                s.span,
                format!(
                    "\"{}\" is not an IPv4 address; write an address inside network.cidr such as \"10.0.0.10\"",
                    s.value
                ),
            ),
        }
    }
}

fn parse_port(v: &Value) -> Result<PortRange, String> {
    let hint = "write a port from 1 to 65535 such as 443, or a range such as \"30000-32767\"";
    match v {
        Value::Integer(p) if (1..=65535).contains(p) => Ok(PortRange::single(*p as u16)),
        Value::Integer(p) => Err(format!("{p} is not a TCP port; {hint}")),
        Value::String(s) => {
            let parts: Vec<&str> = s.split('-').map(str::trim).collect();
            let nums: Option<Vec<u16>> = parts.iter().map(|p| p.parse::<u16>().ok().filter(|n| *n > 0)).collect();
            match nums.as_deref() {
                Some([a]) => Ok(PortRange::single(*a)),
                Some([a, b]) if a <= b => Ok(PortRange { from: *a, to: *b }),
                Some([a, b]) => Err(format!("range \"{s}\" runs backwards; write \"{b}-{a}\"")),
                _ => Err(format!("\"{s}\" is not a port or port range; {hint}")),
            }
        }
        other => Err(format!("expected a port, found {}; {hint}", other.type_name())),
    }
}

fn read_group(t: &mut TableReader<'_>, g: &mut NodeGroup, idx: &mut SpanIndex, diags: &mut Diagnostics) {
    let base = t.path().to_string();
    idx.put(base.clone(), t.span());
    let role = g.role;
    if let Some(c) = t.integer(diags, "count", 0, 10_000, if role == Role::Master { 1 } else { 2 }) {
        idx.put(format!("{base}.count"), c.span);
        g.count = c.value as u32;
    } else if role != Role::Master && t.table().get("count").is_none() {
        diags.error(
            &format!("{base}.count"),
            t.span().map(|s| s.start..s.start),
            format!("is required in [{base}]; add `count = 2` (0 keeps the section but creates no {role} nodes)"),
        );
    }
    match t.string(diags, "flavor", "\"m1.medium\"") {
        Some(f) => {
            idx.put(format!("{base}.flavor"), f.span);
            g.flavor = f.value;
        }
        None => g.flavor.clear(),
    }
    if let Some(d) = t.integer(diags, "root_disk_gb", 10, 16_384, 40) {
        idx.put(format!("{base}.root_disk_gb"), d.span);
        g.root_disk_gb = Some(d.value as u32);
    }
    if role == Role::Storage
        && let Some(v) = t.integer(diags, "volume_gb", 1, 65_536, 200)
    {
        idx.put(format!("{base}.volume_gb"), v.span);
        g.volume_gb = Some(v.value as u32);
    }
    if let Some(b) = t.bool(diags, "public_ip") {
        idx.put(format!("{base}.public_ip"), b.span);
        g.public_ip = b.value;
    }
}

fn read_loadbalancer(t: &mut TableReader<'_>, lb: &mut LoadBalancerSpec, idx: &mut SpanIndex, diags: &mut Diagnostics) {
    idx.put("loadbalancer".into(), t.span());
    if let Some(b) = t.bool(diags, "enabled") {
        idx.put("loadbalancer.enabled".into(), b.span);
        lb.enabled = b.value;
    }
    if let Some(b) = t.bool(diags, "dashboard") {
        lb.dashboard = b.value;
    }
    let email = t.string(diags, "acme_email", "\"you@example.org\"");
    if let Some(e) = &email {
        idx.put("loadbalancer.acme_email".into(), e.span.clone());
    }
    let staging = t.bool(diags, "acme_staging").map(|b| b.value).unwrap_or(false);
    if let Some(h) = t.string(diags, "https", "\"acme\"") {
        idx.put("loadbalancer.https".into(), h.span.clone());
        lb.https = match h.value.as_str() {
            "none" => HttpsMode::None,
            "cloudflare" => HttpsMode::Cloudflare,
            "acme" => HttpsMode::Acme {
                email: email.map(|e| e.value).unwrap_or_default(),
                staging,
            },
            other => {
                diags.error(
                    "loadbalancer.https",
                    h.span,
                    format!("unknown HTTPS mode \"{other}\"; write \"none\", \"cloudflare\" or \"acme\""),
                );
                HttpsMode::None
            }
        };
    }
}

fn read_dns(t: &mut TableReader<'_>, idx: &mut SpanIndex, diags: &mut Diagnostics) -> DnsSpec {
    let zone = t.string(diags, "zone", "\"example.org\"");
    if let Some(z) = &zone {
        idx.put("dns.zone".into(), z.span.clone());
    }
    let subdomain = t.string(diags, "subdomain", "\"mylab\"");
    if let Some(s) = &subdomain {
        idx.put("dns.subdomain".into(), s.span.clone());
    }
    let proxied = t.bool(diags, "proxied");
    let Some(p) = t.string(diags, "provider", "\"nip.io\"") else {
        return DnsSpec::NipIo;
    };
    idx.put("dns.provider".into(), p.span.clone());
    match p.value.as_str() {
        "nip.io" | "nipio" => DnsSpec::NipIo,
        "none" => DnsSpec::None,
        "cloudflare" => DnsSpec::Cloudflare {
            zone: zone.map(|z| z.value).unwrap_or_default(),
            subdomain: subdomain.map(|s| s.value),
            proxied: proxied.map(|b| b.value).unwrap_or(true),
        },
        other => {
            diags.error(
                "dns.provider",
                p.span,
                format!("unknown DNS provider \"{other}\"; write \"nip.io\", \"cloudflare\" or \"none\""),
            );
            DnsSpec::NipIo
        }
    }
}

fn read_app(t: &mut TableReader<'_>, idx: &mut SpanIndex, diags: &mut Diagnostics) -> Option<AppSpec> {
    let base = t.path().to_string();
    idx.put(base.clone(), t.span());
    let name = t.required_string(diags, "name", "\"jupyter\"");
    if let Some(n) = &name {
        idx.put(format!("{base}.name"), n.span.clone());
    }
    let namespace = t.string(diags, "namespace", "\"jupyter\"");
    let chart = t.string(diags, "chart", "\"jupyterhub\"");
    let repo = t.string(diags, "repo", "\"https://hub.jupyter.org/helm-chart/\"");
    let version = t.string(diags, "version", "\"3.3.7\"");
    let values = t.string(diags, "values", "\"jupyter-values.yaml\"");
    let manifest = t.string(diags, "manifest", "\"apps/jupyter.yaml\"");
    let expose_service = t.string(diags, "expose_service", "\"proxy-public\"");
    let expose_port = t.integer(diags, "expose_port", 1, 65535, 80);
    for (k, v) in [
        ("chart", &chart),
        ("repo", &repo),
        ("version", &version),
        ("manifest", &manifest),
    ] {
        if let Some(v) = v {
            idx.put(format!("{base}.{k}"), v.span.clone());
        }
    }
    let name = name?.value;
    let source = match (&chart, &manifest) {
        (Some(_), Some(m)) => {
            diags.error(
                &format!("{base}.manifest"),
                m.span.clone(),
                "an app is either a Helm chart or manifests, not both; remove `manifest` or `chart`",
            );
            return None;
        }
        (Some(c), None) => {
            let mut missing = Vec::new();
            if repo.is_none() {
                missing.push("repo = \"https://...\"");
            }
            if version.is_none() {
                missing.push("version = \"1.2.3\"");
            }
            if !missing.is_empty() {
                diags.error(
                    &format!("{base}.chart"),
                    c.span.clone(),
                    format!(
                        "a chart needs a repository and a pinned version; add {}",
                        missing.join(" and ")
                    ),
                );
            }
            AppSource::Chart {
                repo: repo.map(|r| r.value).unwrap_or_default(),
                chart: c.value.clone(),
                version: version.map(|v| v.value).unwrap_or_default(),
                values: values.map(|v| PathBuf::from(v.value)),
            }
        }
        (None, Some(m)) => AppSource::Manifest {
            path: PathBuf::from(&m.value),
        },
        (None, None) => {
            diags.error(
                &base,
                t.span().map(|s| s.start..s.start),
                format!("app \"{name}\" says nothing to install; add `chart`, `repo` and `version`, or `manifest = \"path.yaml\"`"),
            );
            return None;
        }
    };
    let expose = match (expose_service, expose_port) {
        (Some(s), Some(p)) => Some(AppExpose {
            service: s.value,
            port: p.value as u16,
        }),
        (None, None) => None,
        (Some(s), None) => {
            diags.error(
                &format!("{base}.expose_port"),
                s.span,
                "expose_service needs expose_port; add `expose_port = 80`",
            );
            None
        }
        (None, Some(p)) => {
            diags.error(
                &format!("{base}.expose_service"),
                p.span,
                "expose_port needs expose_service; add `expose_service = \"<service name>\"`",
            );
            None
        }
    };
    Some(AppSpec {
        namespace: namespace.map(|n| n.value).unwrap_or_else(|| name.clone()),
        name,
        source,
        expose,
    })
}

fn read_engine(t: &mut TableReader<'_>, e: &mut EngineSpec, idx: &mut SpanIndex, diags: &mut Diagnostics) {
    idx.put("engine".into(), t.span());
    if let Some(v) = t.integer(diags, "parallelism", 1, 1024, 16) {
        e.parallelism = v.value as usize;
    }
    if let Some(v) = t.integer(diags, "max_attempts", 1, 100, 8) {
        e.max_attempts = v.value as u32;
    }
    if let Some(v) = t.integer(diags, "node_timeout_secs", 1, 86_400, 1200) {
        e.node_timeout_secs = v.value as u64;
    }
    if let Some(v) = t.integer(diags, "ready_timeout_secs", 1, 86_400, 900) {
        e.ready_timeout_secs = v.value as u64;
    }
}
