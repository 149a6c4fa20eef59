//! Semantic validation of a [`ClusterSpec`]: every rule that does not need
//! the cloud. Runs on specs read from a file and on specs built in code.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::model::*;

/// A problem found by [`validate`]: the dotted field and the message.
pub type FieldProblem = (String, String);

/// Longest cluster name: node names (`<name>-storage-1234`) must stay valid
/// DNS labels and cloud resource names.
pub const MAX_NAME_LEN: usize = 40;

/// Oldest Kubernetes minor version vre deploys (1.24: the first on pkgs.k8s.io).
pub const MIN_KUBERNETES_MINOR: u32 = 24;

/// Checks every rule; returns all problems (empty when the spec is valid).
pub fn validate(spec: &ClusterSpec) -> Vec<FieldProblem> {
    let mut p: Vec<FieldProblem> = Vec::new();
    let mut err = |field: &str, msg: String| p.push((field.to_string(), msg));

    if spec.name.is_empty() {
        // reported by the reader when missing; here for specs built in code
        err("name", "is empty; write a DNS-safe name such as \"mylab\"".into());
    } else if let Err(e) = check_dns_label(&spec.name, MAX_NAME_LEN) {
        err(
            "name",
            format!("\"{}\" {e}; write a DNS-safe name such as \"mylab\"", spec.name),
        );
    }
    if spec.provider.is_empty() {
        err(
            "provider",
            "is empty; write a provider name such as \"openstack\" (`vre providers` lists them)".into(),
        );
    }

    let v = &spec.kubernetes.version;
    match parse_version(v) {
        Some((1, minor, _)) if minor >= MIN_KUBERNETES_MINOR => {}
        Some(_) => err(
            "kubernetes.version",
            format!(
                "\"{v}\" is not supported (nodes install from pkgs.k8s.io, which starts at 1.{MIN_KUBERNETES_MINOR}); write 1.{MIN_KUBERNETES_MINOR}.0 or newer, such as \"1.30.2\""
            ),
        ),
        None => err(
            "kubernetes.version",
            format!("\"{v}\" is not MAJOR.MINOR.PATCH; write for example \"1.30.2\""),
        ),
    }
    if spec.kubernetes.pod_cidr.overlaps(&spec.kubernetes.service_cidr) {
        err(
            "kubernetes.service_cidr",
            format!(
                "{} overlaps kubernetes.pod_cidr {}; pick disjoint ranges such as \"10.96.0.0/12\" and \"10.244.0.0/16\"",
                spec.kubernetes.service_cidr, spec.kubernetes.pod_cidr
            ),
        );
    }
    if spec.kubernetes.pod_cidr.overlaps(&spec.network.cidr) {
        err(
            "network.cidr",
            format!(
                "{} overlaps kubernetes.pod_cidr {}; pod and node networks must be disjoint",
                spec.network.cidr, spec.kubernetes.pod_cidr
            ),
        );
    }
    if spec.kubernetes.cni != "flannel" {
        err(
            "kubernetes.cni",
            format!("\"{}\" is not a supported CNI; write \"flannel\"", spec.kubernetes.cni),
        );
    }

    if spec.image.name.trim().is_empty() {
        err(
            "image.name",
            "is empty; write the name of the image nodes boot from".into(),
        );
    }
    if let Some(src) = &spec.image.source
        && !src.contains("://")
    {
        err(
            "image.source",
            format!(
                "\"{src}\" is not a URL; write where the image can be imported from, such as \"https://.../image.qcow2\""
            ),
        );
    }
    if spec.ssh.user.trim().is_empty() {
        err(
            "ssh.user",
            "is empty; write the login user of the image, such as \"ubuntu\"".into(),
        );
    }
    if spec.ssh.public_key.as_os_str().is_empty() {
        err(
            "ssh.public_key",
            "is empty; write the path of an SSH public key such as \"ssh_key.pub\"".into(),
        );
    }

    // nodes
    for role in Role::ALL {
        let Some(g) = spec.group(role) else {
            if role == Role::Master {
                err(
                    "nodes.master",
                    "is required; add a `[nodes.master]` section with `flavor = \"...\"`".into(),
                );
            }
            continue;
        };
        let base = format!("nodes.{role}");
        if role == Role::Master && g.count != 1 {
            err(
                &format!("{base}.count"),
                format!(
                    "must be 1 (a VRE has exactly one master), got {}; remove `count` from [nodes.master]",
                    g.count
                ),
            );
        }
        if g.count > 0 && g.flavor.trim().is_empty() {
            err(
                &format!("{base}.flavor"),
                format!(
                    "is required when {base}.count > 0; write the cloud's flavor / instance type, such as \"m1.medium\""
                ),
            );
        }
        if role == Role::Storage && g.count > 0 && g.volume_gb.is_none() {
            err(
                &format!("{base}.volume_gb"),
                "is required for storage nodes; write the size of each node's data volume, such as `volume_gb = 200`"
                    .into(),
            );
        }
        if role != Role::Storage && g.volume_gb.is_some() {
            err(
                &format!("{base}.volume_gb"),
                "only storage nodes get a data volume; remove it or move it to [nodes.storage]".into(),
            );
        }
    }
    let total = spec.total_nodes();
    if total > 100_000 {
        err("nodes", format!("{total} nodes is more than vre supports (100000)"));
    }
    if spec.network.cidr.prefix < 8 || spec.network.cidr.prefix > 29 {
        err(
            "network.cidr",
            format!(
                "prefix /{} is out of range; use a prefix from /8 to /29, such as \"10.0.0.0/24\"",
                spec.network.cidr.prefix
            ),
        );
    } else {
        let hosts = spec.network.cidr.host_count();
        // the gateway, the master's fixed address and the DHCP/metadata ports take a few
        if total + 4 > hosts {
            err(
                "network.cidr",
                format!(
                    "{} has room for {} hosts but the spec asks for {total} nodes; use a larger network such as \"10.0.0.0/16\"",
                    spec.network.cidr,
                    hosts.saturating_sub(4)
                ),
            );
        }
    }
    if let Some(ip) = spec.network.master_ip {
        let cidr = spec.network.cidr;
        if !cidr.contains(ip) {
            err(
                "network.master_ip",
                format!(
                    "{ip} is outside network.cidr {cidr}; pick an address inside it, such as {}",
                    cidr.host(10).map(|h| h.to_string()).unwrap_or_default()
                ),
            );
        } else if ip == cidr.network()
            || Some(ip) == cidr.host(1)
            || u64::from(u32::from(ip) - u32::from(cidr.network())) > cidr.host_count()
        {
            err(
                "network.master_ip",
                format!(
                    "{ip} is the network, gateway or broadcast address of {cidr}; pick a host address such as {}",
                    cidr.host(10).map(|h| h.to_string()).unwrap_or_default()
                ),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, p_) in spec.network.ingress_ports.iter().enumerate() {
        if p_.from == 0 || p_.from > p_.to {
            err(
                &format!("network.ingress_ports[{i}]"),
                format!("{p_} is not a valid port or range"),
            );
        } else if !seen.insert(*p_) {
            err(
                &format!("network.ingress_ports[{i}]"),
                format!("{p_} is listed twice; remove one"),
            );
        }
    }
    for (i, ip) in spec.network.dns_servers.iter().enumerate() {
        if ip.is_unspecified() {
            err(
                &format!("network.dns_servers[{i}]"),
                format!("{ip} cannot be a DNS server; write for example \"1.1.1.1\""),
            );
        }
    }

    // microservices
    if spec.storage.enabled && spec.count(Role::Storage) == 0 {
        err(
            "storage.enabled",
            "shared storage runs on storage nodes but nodes.storage.count is 0; add storage nodes or set `enabled = false` (when the cloud's own file service is used)".into(),
        );
    }
    if spec.storage.object_storage && !spec.storage.enabled {
        err(
            "storage.object_storage",
            "object storage lives on the shared volume, which is disabled; set `object_storage = false` or `storage.enabled = true`".into(),
        );
    }
    if spec.loadbalancer.enabled && spec.edge_roles().is_empty() {
        err(
            "master_as_edge",
            "is false and there are no edge nodes, but the edge load balancer needs one; set `master_as_edge = true`, add edge nodes, or set loadbalancer.enabled = false".into(),
        );
    }
    match &spec.loadbalancer.https {
        HttpsMode::Cloudflare if !matches!(spec.dns, DnsSpec::Cloudflare { .. }) => err(
            "loadbalancer.https",
            "\"cloudflare\" HTTPS needs Cloudflare DNS; set dns.provider = \"cloudflare\" or https = \"acme\"".into(),
        ),
        HttpsMode::Acme { email, .. } if !looks_like_email(email) => err(
            "loadbalancer.acme_email",
            if email.is_empty() {
                "is required with https = \"acme\"; write the address the ACME CA sends expiry notices to".into()
            } else {
                format!("\"{email}\" is not an e-mail address; write for example \"you@example.org\"")
            },
        ),
        HttpsMode::Acme { .. } if matches!(spec.dns, DnsSpec::None) => err(
            "loadbalancer.https",
            "ACME certificates need a DNS name; set dns.provider to \"nip.io\" or \"cloudflare\"".into(),
        ),
        _ => {}
    }
    if let DnsSpec::Cloudflare { zone, subdomain, .. } = &spec.dns {
        if zone.is_empty() {
            err(
                "dns.zone",
                "is required with dns.provider = \"cloudflare\"; write the zone name, such as \"example.org\"".into(),
            );
        } else if zone.split('.').any(|l| check_dns_label(l, 63).is_err()) || !zone.contains('.') {
            err(
                "dns.zone",
                format!("\"{zone}\" is not a domain name; write for example \"example.org\""),
            );
        }
        if let Some(s) = subdomain
            && s.split('.').any(|l| check_dns_label(l, 63).is_err())
        {
            err(
                "dns.subdomain",
                format!("\"{s}\" is not a valid DNS name; write for example \"mylab\""),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, app) in spec.apps.iter().enumerate() {
        if let Err(e) = check_dns_label(&app.name, 40) {
            err(
                &format!("apps[{i}].name"),
                format!("\"{}\" {e}; it becomes `<name>.<domain>`", app.name),
            );
        } else if !names.insert(app.name.as_str()) {
            err(
                &format!("apps[{i}].name"),
                format!("\"{}\" is used by two apps; give each a unique name", app.name),
            );
        }
        if let Err(e) = check_dns_label(&app.namespace, 63) {
            err(&format!("apps[{i}].namespace"), format!("\"{}\" {e}", app.namespace));
        }
        if app.expose.is_some() && !spec.loadbalancer.enabled {
            err(
                &format!("apps[{i}].expose_service"),
                "apps are exposed through the edge load balancer, which is disabled; set loadbalancer.enabled = true or remove expose_service".into(),
            );
        }
    }
    if spec.engine.parallelism == 0 {
        err("engine.parallelism", "must be 1 or more".into());
    }
    if spec.engine.max_attempts == 0 {
        err("engine.max_attempts", "must be 1 or more".into());
    }
    p
}

/// `Ok` when `s` is a lowercase DNS label of at most `max` characters.
pub fn check_dns_label(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is {} characters long, more than {max}", s.len()));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may only hold lowercase letters, digits and '-'".into());
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if s.ends_with('-') {
        return Err("must not end with '-'".into());
    }
    Ok(())
}

/// `(major, minor, patch)` of `1.30.2` (a leading `v` is accepted).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut it = v.split('.');
    let out = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(out)
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Is `ip` routable on the internet (used to warn about private edge addresses)?
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified()),
    }
}
