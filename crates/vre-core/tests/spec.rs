//! Every validation rule, with its exact message and location.

use std::path::Path;
use std::sync::Arc;

use vre_core::testing::{FakeCloud, FakeCloudFactory};
use vre_core::{Error, ProviderRegistry, Role};

const GOOD: &str = r#"name = "lab"
provider = "fake"

[kubernetes]
version = "1.30.2"

[image]
name = "ubuntu"
preinstalled = true

[ssh]
user = "ubuntu"
public_key = "key.pub"

[network]
cidr = "10.0.0.0/24"

[nodes.master]
flavor = "m1.medium"

[nodes.service]
count = 2
flavor = "m1.medium"

[nodes.storage]
count = 1
flavor = "m1.medium"
volume_gb = 50

[fake]
zone = "a"
"#;

fn registry() -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(FakeCloudFactory {
        cloud: FakeCloud::new(),
    }));
    r
}

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("key.pub"), "ssh-ed25519 AAAAC3Nza test\n").unwrap();
    d
}

/// Problems of `text`, one per line.
fn problems_in(text: &str, d: &Path) -> Vec<String> {
    match registry().parse_spec(text, "vre.toml", d) {
        Ok(_) => Vec::new(),
        Err(Error::Spec(diags)) => diags.problems.iter().map(|p| p.to_string()).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn problems(text: &str) -> Vec<String> {
    problems_in(text, dir().path())
}

/// `GOOD` with `from` replaced by `to` (which must occur once).
fn with(from: &str, to: &str) -> String {
    assert_eq!(GOOD.matches(from).count(), 1, "`{from}` must occur once");
    GOOD.replace(from, to)
}

/// For each `(from, to, problem)`: `GOOD` with `from` replaced by `to` has
/// exactly the one problem `problem`.
fn assert_edits(cases: &[(&str, &str, &str)]) {
    for (from, to, problem) in cases {
        assert_eq!(one(&with(from, to)), *problem, "`{from}` -> `{to}`");
    }
}

/// For each `(text, problem)`: `text` has exactly the one problem `problem`.
fn assert_problems(cases: &[(String, &str)]) {
    for (text, problem) in cases {
        assert_eq!(one(text), *problem, "{text}");
    }
}

fn one(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    p.into_iter().next().unwrap()
}

#[test]
fn the_good_spec_is_valid_and_defaults_apply() {
    let d = dir();
    let s = registry().parse_spec(GOOD, "vre.toml", d.path()).unwrap().spec;
    assert_eq!(s.count(Role::Service), 2);
    assert_eq!(s.count(Role::Edge), 0);
    assert!(s.master_as_edge, "no edges: the master is the edge");
    assert!(
        s.storage.enabled && s.storage.object_storage,
        "storage nodes: storage on"
    );
    assert_eq!(
        s.network
            .ingress_ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["22", "80", "443", "6443"]
    );
    assert!(s.group(Role::Master).unwrap().public_ip);
    assert!(!s.group(Role::Service).unwrap().public_ip);
}

#[test]
fn syntax_errors_are_located() {
    let p = problems("name = \"lab\nprovider = 1\n");
    assert!(!p.is_empty());
    assert!(p[0].starts_with("vre.toml:1:"), "{p:?}");
}

#[test]
fn missing_required_fields() {
    assert_eq!(
        one(&with("name = \"lab\"\n", "")),
        "vre.toml:1:1: name: is required; add `name = \"mylab\"` to the top of the file"
    );
    let p = problems(&with("provider = \"fake\"\n", ""));
    assert_eq!(
        p,
        ["vre.toml:1:1: provider: is required; add `provider = \"openstack\"` to the top of the file"]
    );
    assert_eq!(
        one(&with("[image]\nname = \"ubuntu\"\n", "[image]\n")),
        "vre.toml:7:1: image.name: is required; add `name = \"ubuntu-24.04\"` to [image]"
    );
}

#[test]
fn name_must_be_dns_safe() {
    assert_eq!(
        one(&with("name = \"lab\"", "name = \"My_Lab\"")),
        "vre.toml:1:8: name: \"My_Lab\" may only hold lowercase letters, digits and '-'; write a DNS-safe name such as \"mylab\""
    );
    assert_eq!(
        one(&with("name = \"lab\"", "name = \"9lab\"")),
        "vre.toml:1:8: name: \"9lab\" must start with a lowercase letter; write a DNS-safe name such as \"mylab\""
    );
    let long = "a".repeat(41);
    assert_eq!(
        one(&with("name = \"lab\"", &format!("name = \"{long}\""))),
        format!(
            "vre.toml:1:8: name: \"{long}\" is 41 characters long, more than 40; write a DNS-safe name such as \"mylab\""
        )
    );
}

#[test]
fn unknown_provider_is_named_with_a_suggestion() {
    assert_eq!(
        one(&with("provider = \"fake\"", "provider = \"fak\"").replace("[fake]\nzone = \"a\"\n", "")),
        "vre.toml:2:12: provider: unknown provider \"fak\"; did you mean \"fake\"?"
    );
}

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    assert_eq!(
        problems(&with(
            "count = 2\nflavor = \"m1.medium\"",
            "count = 2\nflavour = \"m1.medium\""
        )),
        [
            "vre.toml:21:1: nodes.service.flavor: is required when nodes.service.count > 0; write the cloud's flavor / instance type, such as \"m1.medium\"",
            "vre.toml:23:1: nodes.service.flavour: unknown key; did you mean `flavor`?"
        ]
    );
    assert_eq!(
        one(&with("zone = \"a\"", "zoen = \"a\"")),
        "vre.toml:31:1: fake.zoen: unknown key; did you mean `zone`?"
    );
    let p = problems(&format!("{GOOD}colour = 3\n"));
    assert_eq!(p, ["vre.toml:32:1: fake.colour: unknown key; known keys here: zone"]);
    assert_eq!(
        one(&format!("mystery = 1\n{GOOD}")),
        "vre.toml:1:1: mystery: unknown key; known keys here: name, provider, master_as_edge, kubernetes, image, ssh, network, nodes, storage, loadbalancer, dns, apps, engine, fake"
    );
}

#[test]
fn wrong_types_say_what_to_write() {
    assert_edits(&[
        (
            "count = 2",
            "count = \"2\"",
            "vre.toml:22:9: nodes.service.count: expected an integer, found the string \"2\"; write `count = 2` without quotes",
        ),
        (
            "preinstalled = true",
            "preinstalled = \"true\"",
            "vre.toml:9:16: image.preinstalled: expected a boolean, found the string \"true\"; write `preinstalled = true` without quotes",
        ),
        (
            "volume_gb = 50",
            "volume_gb = [50]",
            "vre.toml:28:13: nodes.storage.volume_gb: expected an integer, found an array; write for example `volume_gb = 200`",
        ),
    ]);
}

#[test]
fn counts_are_bounded() {
    assert_edits(&[
        (
            "count = 2",
            "count = -1",
            "vre.toml:22:9: nodes.service.count: must be 0 or more, got -1; write a whole number from 0 to 10000, such as `count = 2`",
        ),
        (
            "[nodes.master]\nflavor",
            "[nodes.master]\ncount = 2\nflavor",
            "vre.toml:19:9: nodes.master.count: must be 1 (a VRE has exactly one master), got 2; remove `count` from [nodes.master]",
        ),
        (
            "[nodes.service]\ncount = 2\n",
            "[nodes.service]\n",
            "vre.toml:21:1: nodes.service.count: is required in [nodes.service]; add `count = 2` (0 keeps the section but creates no service nodes)",
        ),
    ]);
}

#[test]
fn flavors_and_volumes_are_required_where_needed() {
    assert_edits(&[
        (
            "count = 2\nflavor = \"m1.medium\"\n",
            "count = 2\n",
            "vre.toml:21:1: nodes.service.flavor: is required when nodes.service.count > 0; write the cloud's flavor / instance type, such as \"m1.medium\"",
        ),
        (
            "volume_gb = 50\n",
            "",
            "vre.toml:25:1: nodes.storage.volume_gb: is required for storage nodes; write the size of each node's data volume, such as `volume_gb = 200`",
        ),
        (
            "count = 2\nflavor = \"m1.medium\"\n",
            "count = 2\nflavor = \"m1.medium\"\nvolume_gb = 5\n",
            "vre.toml:24:1: nodes.service.volume_gb: unknown key; known keys here: count, flavor, root_disk_gb, public_ip",
        ),
    ]);
}

#[test]
fn networks_are_checked() {
    assert_edits(&[
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.1/24\"",
            "vre.toml:16:8: network.cidr: 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24; write an IPv4 network such as \"10.0.0.0/24\"",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/30\"",
            "vre.toml:16:8: network.cidr: prefix /30 is out of range; use a prefix from /8 to /29, such as \"10.0.0.0/24\"",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/29\"",
            "vre.toml:16:8: network.cidr: 10.0.0.0/29 has room for 2 hosts but the spec asks for 4 nodes; use a larger network such as \"10.0.0.0/16\"",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.244.0.0/24\"",
            "vre.toml:16:8: network.cidr: 10.244.0.0/24 overlaps kubernetes.pod_cidr 10.244.0.0/16; pod and node networks must be disjoint",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/24\"\nmaster_ip = \"10.0.1.5\"",
            "vre.toml:17:13: network.master_ip: 10.0.1.5 is outside network.cidr 10.0.0.0/24; pick an address inside it, such as 10.0.0.10",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/24\"\ningress_ports = [22, 70000, \"30000-32767\"]",
            "vre.toml:17:22: network.ingress_ports[1]: 70000 is not a TCP port; write a port from 1 to 65535 such as 443, or a range such as \"30000-32767\"",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/24\"\ningress_ports = [22, 22]",
            "vre.toml:17:22: network.ingress_ports[1]: 22 is listed twice; remove one",
        ),
        (
            "cidr = \"10.0.0.0/24\"",
            "cidr = \"10.0.0.0/24\"\ndns_servers = [\"1.1.1\"]",
            "vre.toml:17:16: network.dns_servers[0]: \"1.1.1\" is not an IP address; write for example \"1.1.1.1\"",
        ),
    ]);
}

#[test]
fn kubernetes_version_is_checked() {
    assert_edits(&[
        (
            "version = \"1.30.2\"",
            "version = \"1.30\"",
            "vre.toml:5:11: kubernetes.version: \"1.30\" is not MAJOR.MINOR.PATCH; write for example \"1.30.2\"",
        ),
        (
            "version = \"1.30.2\"",
            "version = \"1.18.0\"",
            "vre.toml:5:11: kubernetes.version: \"1.18.0\" is not supported (nodes install from pkgs.k8s.io, which starts at 1.24); write 1.24.0 or newer, such as \"1.30.2\"",
        ),
    ]);
}

#[test]
fn microservices_need_their_nodes() {
    assert_problems(&[
        (
            format!("{GOOD}\n[storage]\nenabled = true\n")
                .replace("count = 1\n", "count = 0\n")
                .replace("volume_gb = 50\n", ""),
            "vre.toml:33:11: storage.enabled: shared storage runs on storage nodes but nodes.storage.count is 0; add storage nodes or set `enabled = false` (when the cloud's own file service is used)",
        ),
        (
            format!("master_as_edge = false\n{GOOD}"),
            "vre.toml:1:18: master_as_edge: is false and there are no edge nodes, but the edge load balancer needs one; set `master_as_edge = true`, add edge nodes, or set loadbalancer.enabled = false",
        ),
        (
            format!("{GOOD}\n[loadbalancer]\nhttps = \"acme\"\n"),
            "vre.toml:33:1: loadbalancer.acme_email: is required with https = \"acme\"; write the address the ACME CA sends expiry notices to",
        ),
        (
            format!("{GOOD}\n[loadbalancer]\nhttps = \"cloudflare\"\n"),
            "vre.toml:34:9: loadbalancer.https: \"cloudflare\" HTTPS needs Cloudflare DNS; set dns.provider = \"cloudflare\" or https = \"acme\"",
        ),
        (
            format!("{GOOD}\n[dns]\nprovider = \"cloudflare\"\n"),
            "vre.toml:33:1: dns.zone: is required with dns.provider = \"cloudflare\"; write the zone name, such as \"example.org\"",
        ),
        (
            format!("{GOOD}\n[dns]\nprovider = \"route66\"\n"),
            "vre.toml:34:12: dns.provider: unknown DNS provider \"route66\"; write \"nip.io\", \"cloudflare\" or \"none\"",
        ),
    ]);
}

#[test]
fn apps_are_checked() {
    assert_problems(&[
        (
            format!("{GOOD}\n[[apps]]\nname = \"jupyter\"\nchart = \"jupyterhub\"\n"),
            "vre.toml:35:9: apps[0].chart: a chart needs a repository and a pinned version; add repo = \"https://...\" and version = \"1.2.3\"",
        ),
        (
            format!(
                "{GOOD}\n[[apps]]\nname = \"a\"\nmanifest = \"a.yaml\"\n[[apps]]\nname = \"a\"\nmanifest = \"b.yaml\"\n"
            ),
            "vre.toml:37:8: apps[1].name: \"a\" is used by two apps; give each a unique name",
        ),
        (
            format!("{GOOD}\n[[apps]]\nname = \"x\"\n"),
            "vre.toml:33:1: apps[0]: app \"x\" says nothing to install; add `chart`, `repo` and `version`, or `manifest = \"path.yaml\"`",
        ),
    ]);
}

#[test]
fn provider_tables_of_other_providers_are_explained() {
    assert_eq!(
        one(&format!("{GOOD}\n[openstack]\nexternal_network = \"public\"\n").replace("[fake]\nzone = \"a\"\n", "")),
        "vre.toml:31:2: openstack: unknown key; known keys here: name, provider, master_as_edge, kubernetes, image, ssh, network, nodes, storage, loadbalancer, dns, apps, engine, fake"
    );
}

#[test]
fn the_ssh_key_must_exist() {
    let d = tempfile::tempdir().unwrap();
    let p = problems_in(GOOD, d.path());
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("vre.toml:13:14: ssh.public_key: cannot read ")
            && p[0].ends_with("; point it at an existing .pub file (`vre init` writes ssh_key.pub)"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with("count = 2", "count = -2")
        .replace("name = \"lab\"", "name = \"Lab\"")
        .replace("zone = \"a\"", "zone = \"a\"\nsize = 1");
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("vre.toml:1:8: name:"));
    assert!(p[1].starts_with("vre.toml:22:9: nodes.service.count:"));
    assert!(p[2].starts_with("vre.toml:32:1: fake.size: unknown key"));
}
