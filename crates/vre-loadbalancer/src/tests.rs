//! Objects per spec variant: edge roles, HTTPS modes, dashboard.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use vre_core::spec::HttpsMode;
use vre_core::{ClusterFacts, ClusterSpec, Manifest, Microservice, ReadinessCheck, Role};

use crate::Traefik;
use crate::traefik::args_of;
use vre_microservice_kit::manifest_lint::problems;
use vre_microservice_kit::placement::{taints_of, tolerates};
use vre_microservice_kit::testing::cluster_facts;
use vre_microservice_kit::{AppRoute, app_ingress, app_url};

fn facts(
    dir: &Path,
    edges: u32,
    service: u32,
    https: HttpsMode,
    dashboard: bool,
    domain: Option<&str>,
) -> ClusterFacts {
    let mut spec = ClusterSpec::new("lab", "sim");
    spec.group_mut(Role::Edge).count = edges;
    spec.group_mut(Role::Service).count = service;
    spec.master_as_edge = edges == 0;
    spec.loadbalancer.https = https;
    spec.loadbalancer.dashboard = dashboard;
    let mut f = cluster_facts(spec, dir, |n, _, before| {
        n.private_ip = Some(format!("10.0.0.{}", 10 + before).parse().unwrap());
    });
    f.domain = domain.map(str::to_string);
    f
}

fn find<'a>(objects: &'a [Manifest], kind: &str) -> &'a Value {
    &objects
        .iter()
        .find(|m| m.kind() == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
        .0
}

fn pod_spec(objects: &[Manifest]) -> &Value {
    &find(objects, "DaemonSet")["spec"]["template"]["spec"]
}

fn acme() -> HttpsMode {
    HttpsMode::Acme {
        email: "ops@example.org".into(),
        staging: true,
    }
}

#[test]
fn every_variant_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    for edges in [0, 1, 3] {
        for https in [HttpsMode::None, HttpsMode::Cloudflare, acme()] {
            for dashboard in [false, true] {
                let f = facts(dir.path(), edges, 2, https.clone(), dashboard, Some("lab.example.org"));
                let objects = Traefik::new().objects(&f).unwrap();
                let p = problems(&objects);
                assert!(p.is_empty(), "edges={edges} {https:?} dashboard={dashboard}: {p:#?}");
                assert_eq!(objects[0].kind(), "Namespace", "the namespace comes first");
                let kinds: Vec<&str> = objects.iter().map(|m| m.kind()).collect();
                for k in [
                    "ServiceAccount",
                    "ClusterRole",
                    "ClusterRoleBinding",
                    "IngressClass",
                    "DaemonSet",
                ] {
                    assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
                }
                assert_eq!(kinds.contains(&"Secret"), dashboard);
            }
        }
    }
}

#[test]
fn daemonset_runs_on_edge_nodes_or_the_master_as_edge() {
    let dir = tempfile::tempdir().unwrap();
    let with_edges = facts(dir.path(), 2, 1, HttpsMode::None, false, None);
    let objects = Traefik::new().objects(&with_edges).unwrap();
    let pod = pod_spec(&objects);
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    assert_eq!(terms[0]["matchExpressions"][0]["values"], json!(["edge"]));
    let tol = pod["tolerations"].as_array().unwrap();
    assert!(tol.is_empty(), "edge nodes carry no taint: {tol:?}");

    let master_edge = facts(dir.path(), 0, 1, HttpsMode::None, false, None);
    let objects = Traefik::new().objects(&master_edge).unwrap();
    let pod = pod_spec(&objects);
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    assert_eq!(terms[0]["matchExpressions"][0]["values"], json!(["master"]));
    let tol = pod["tolerations"].as_array().unwrap().clone();
    assert!(
        tolerates(&tol, &taints_of(Role::Master, false)),
        "must tolerate the control-plane taint"
    );
    assert!(
        !tolerates(&tol, &taints_of(Role::Storage, false)),
        "must stay off storage nodes"
    );
}

#[test]
fn no_edge_role_is_an_input_error_and_disabled_means_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = facts(dir.path(), 0, 1, HttpsMode::None, false, None);
    Arc::make_mut(&mut f.spec).master_as_edge = false;
    let e = Traefik::new().objects(&f).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().starts_with("loadbalancer.enabled: "), "{e}");
    Arc::make_mut(&mut f.spec).loadbalancer.enabled = false;
    assert!(Traefik::new().objects(&f).unwrap().is_empty());
    assert!(Traefik::new().readiness(&f).is_empty());
}

#[test]
fn https_modes_shape_entry_points_and_host_ports() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Traefik::new()
        .objects(&facts(dir.path(), 1, 0, HttpsMode::None, false, Some("d.org")))
        .unwrap();
    let args = args_of(&plain);
    assert!(args.contains(&"--entryPoints.web.address=:80/tcp".to_string()));
    assert!(
        !args
            .iter()
            .any(|a| a.contains("websecure") || a.contains("acme") || a.contains("trustedIPs"))
    );
    let ports = pod_spec(&plain)["containers"][0]["ports"].as_array().unwrap().clone();
    let host_ports: Vec<&Value> = ports.iter().filter_map(|p| p.get("hostPort")).collect();
    assert_eq!(host_ports, vec![&json!(80)]);

    let cf = Traefik::new()
        .objects(&facts(dir.path(), 1, 0, HttpsMode::Cloudflare, false, Some("d.org")))
        .unwrap();
    let trusted = args_of(&cf)
        .into_iter()
        .find(|a| a.starts_with("--entryPoints.web.forwardedHeaders.trustedIPs="))
        .unwrap();
    assert!(trusted.contains("173.245.48.0/20") && trusted.contains("2606:4700::/32"));

    let le = Traefik::new()
        .objects(&facts(dir.path(), 1, 0, acme(), false, Some("d.org")))
        .unwrap();
    let args = args_of(&le);
    for want in [
        "--entryPoints.websecure.address=:443/tcp",
        "--certificatesResolvers.letsencrypt.acme.email=ops@example.org",
        "--certificatesResolvers.letsencrypt.acme.httpChallenge.entryPoint=web",
        "--certificatesResolvers.letsencrypt.acme.caServer=https://acme-staging-v02.api.letsencrypt.org/directory",
        "--entryPoints.web.http.redirections.entryPoint.to=websecure",
    ] {
        assert!(args.contains(&want.to_string()), "{want} missing from {args:#?}");
    }
    let ports = pod_spec(&le)["containers"][0]["ports"].as_array().unwrap().clone();
    assert!(ports.iter().any(|p| p["hostPort"] == 443 && p["protocol"] == "TCP"));
    let mut prod = facts(dir.path(), 1, 0, acme(), false, Some("d.org"));
    Arc::make_mut(&mut prod.spec).loadbalancer.https = HttpsMode::Acme {
        email: "ops@example.org".into(),
        staging: false,
    };
    let args = args_of(&Traefik::new().objects(&prod).unwrap());
    assert!(args.contains(
        &"--certificatesResolvers.letsencrypt.acme.caServer=https://acme-v02.api.letsencrypt.org/directory".to_string()
    ));
}

#[test]
fn dashboard_is_behind_generated_basic_auth_and_stable_across_applies() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts(dir.path(), 1, 0, HttpsMode::None, true, Some("lab.example.org"));
    let first = Traefik::new().objects(&f).unwrap();
    let again = Traefik::new().objects(&f).unwrap();
    assert_eq!(first, again, "re-applying must not rotate the dashboard secret");
    let cm = find(&first, "ConfigMap");
    let config: Value = serde_yaml::from_str(cm["data"]["dashboard.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["http"]["routers"]["dashboard"]["rule"],
        "Host(`traefik.lab.example.org`)"
    );
    assert_eq!(config["http"]["routers"]["dashboard"]["service"], "api@internal");
    let secret = find(&first, "Secret");
    use base64::Engine;
    let users = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["users"].as_str().unwrap())
        .unwrap();
    let users = String::from_utf8(users).unwrap();
    let (user, hash) = users.trim().split_once(':').unwrap();
    assert_eq!(user, "admin");
    assert!(hash.starts_with("$2y$"), "{hash}");
    let password = crate::traefik::dashboard_password(dir.path()).unwrap();
    assert!(bcrypt::verify(&password, hash).unwrap());
    assert!(args_of(&first).contains(&"--api.dashboard=true".to_string()));
    let ep = Traefik::new().endpoints(&f);
    assert_eq!(ep[0].url, "http://traefik.lab.example.org");
    // never in Debug output of the objects' description
    assert!(!first.iter().any(|m| m.describe().contains(&password)));

    let no_domain = facts(dir.path(), 1, 0, HttpsMode::None, true, None);
    let e = Traefik::new().objects(&no_domain).unwrap_err().to_string();
    assert!(e.starts_with("loadbalancer.dashboard: "), "{e}");
}

#[test]
fn readiness_waits_for_the_daemonset() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts(dir.path(), 1, 0, HttpsMode::None, false, None);
    assert_eq!(
        Traefik::new().readiness(&f),
        vec![ReadinessCheck::Rollout {
            kind: "DaemonSet".into(),
            namespace: "vre-edge".into(),
            name: "traefik".into()
        }]
    );
}

#[test]
fn app_ingress_follows_domain_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let route = AppRoute {
        name: "jupyter",
        namespace: "jupyter",
        service: "jupyter",
        port: 8888,
    };
    let f = facts(dir.path(), 1, 0, HttpsMode::None, false, Some("lab.example.org"));
    let ing = app_ingress(&f, &route);
    assert!(problems(std::slice::from_ref(&ing)).is_empty());
    assert_eq!(ing.0["spec"]["ingressClassName"], "traefik");
    assert_eq!(ing.0["spec"]["rules"][0]["host"], "jupyter.lab.example.org");
    assert_eq!(
        ing.0["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "jupyter", "port": {"number": 8888}})
    );
    assert_eq!(
        ing.0["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"],
        "web"
    );
    assert!(ing.0["spec"].get("tls").is_none());
    assert_eq!(app_url(&f, "jupyter").unwrap(), "http://jupyter.lab.example.org");

    let f = facts(dir.path(), 1, 0, acme(), false, Some("lab.example.org"));
    let ing = app_ingress(&f, &route);
    assert_eq!(
        ing.0["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls.certresolver"],
        "letsencrypt"
    );
    assert_eq!(ing.0["spec"]["tls"], json!([{"hosts": ["jupyter.lab.example.org"]}]));
    assert_eq!(app_url(&f, "jupyter").unwrap(), "https://jupyter.lab.example.org");

    let f = facts(dir.path(), 1, 0, HttpsMode::None, false, None);
    let ing = app_ingress(&f, &route);
    assert!(ing.0["spec"]["rules"][0].get("host").is_none());
    assert_eq!(app_url(&f, "jupyter").unwrap(), "http://192.0.2.7/");
}
