//! The simulated API server through the `kube` client: bootstrap, CRUD,
//! selectors, watch, patches, server-side apply, error bodies.

mod kube_support;

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::Api;
use kube::api::ListParams;
use kube_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_comes_up_and_serves_its_node() {
    let tc = TestCluster::start(fast_config()).await;
    tc.wait_ready(&["master"]).await;
    let client = tc.client().await;
    let v = client.apiserver_version().await.expect("/version");
    assert_eq!(v.git_version, "v1.33.1");
    assert_eq!(v.minor, "33");
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.expect("list nodes");
    assert_eq!(list.items.len(), 1);
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-public");
    let info = cms.get("cluster-info").await.expect("cluster-info");
    assert!(info.data.unwrap().contains_key("jws-kubeconfig-abcdef"));
    tc.clusters.shutdown().await;
}

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::runtime::watcher;
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn api_error(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_error_bodies() {
    let tc = TestCluster::start(fast_config()).await;
    let cms: Api<ConfigMap> = Api::namespaced(tc.client().await, "default");
    let created = cms
        .create(&PostParams::default(), &cm("one", &[("app", "web")], &[("k", "v")]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv > 0);
    assert!(
        meta.managed_fields
            .as_ref()
            .is_some_and(|m| m[0].operation.as_deref() == Some("Update"))
    );

    // 409 AlreadyExists.
    let e = api_error(
        cms.create(&PostParams::default(), &cm("one", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"one\" already exists");

    // 404 NotFound, with details.
    let e = api_error(cms.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.details.as_ref().unwrap().name, "missing");
    assert_eq!(e.details.as_ref().unwrap().kind, "configmaps");

    // 422 Invalid with causes.
    let e = api_error(
        cms.create(&PostParams::default(), &cm("Bad_Name", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let causes = &e.details.as_ref().unwrap().causes;
    assert_eq!(causes[0].field, "metadata.name");
    assert!(
        e.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{}",
        e.message
    );

    // Namespace must exist.
    let elsewhere: Api<ConfigMap> = Api::namespaced(tc.client().await, "nowhere");
    let e = api_error(
        elsewhere
            .create(&PostParams::default(), &cm("x", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "namespaces \"nowhere\" not found");

    // Optimistic concurrency: a stale resourceVersion is 409 Conflict.
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let replaced = cms.replace("one", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
    stale.data = Some([("k".to_string(), "v3".to_string())].into());
    let e = api_error(cms.replace("one", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified"), "{}", e.message);

    // A no-op update keeps the resourceVersion.
    let same = cms.replace("one", &PostParams::default(), &replaced).await.unwrap();
    assert_eq!(same.metadata.resource_version, replaced.metadata.resource_version);

    // Name mismatch between URL and body: 400.
    let e = api_error(
        cms.replace("other", &PostParams::default(), &replaced)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);

    // generateName.
    let mut generated = cm("", &[], &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&PostParams::default(), &generated).await.unwrap();
    let gname = g.metadata.name.unwrap();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");

    // Delete answers with a Success Status for configmaps; then 404.
    let deleted = cms.delete("one", &DeleteParams::default()).await.unwrap();
    let status = deleted.right().expect("a Status for a deleted ConfigMap");
    assert_eq!(status.status, Some(kube::core::response::StatusSummary::Success));
    assert_eq!(api_error(cms.get("one").await.unwrap_err()).code, 404);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_until_removed() {
    let tc = TestCluster::start(fast_config()).await;
    let cms: Api<ConfigMap> = Api::namespaced(tc.client().await, "default");
    let mut c = cm("held", &[], &[]);
    c.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    let pending = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object, still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await.is_ok());
    let patch = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("held").await.unwrap_err()).code, 404);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_pagination() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (i, (app, tier)) in [("web", "a"), ("web", "b"), ("db", "a"), ("cache", "")]
        .iter()
        .enumerate()
    {
        let mut labels = vec![("app", *app)];
        if !tier.is_empty() {
            labels.push(("tier", *tier));
        }
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}"), &labels, &[]))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    let lp = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(cms.list(&lp("app=web")).await.unwrap()), vec!["cm-0", "cm-1"]);
    assert_eq!(
        names(cms.list(&lp("app!=web,app")).await.unwrap()),
        vec!["cm-2", "cm-3"]
    );
    assert_eq!(
        names(cms.list(&lp("app in (db,cache)")).await.unwrap()),
        vec!["cm-2", "cm-3"]
    );
    assert_eq!(
        names(cms.list(&lp("app notin (web),tier")).await.unwrap()),
        vec!["cm-2"]
    );
    assert_eq!(names(cms.list(&lp("!tier,app")).await.unwrap()), vec!["cm-3"]);
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=cm-2"))
                .await
                .unwrap()
        ),
        vec!["cm-2"]
    );
    let e = api_error(
        cms.list(&ListParams::default().fields("spec.nodeName=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    assert!(e.message.contains("field label not supported"), "{}", e.message);
    let e = api_error(cms.list(&lp("app in web")).await.unwrap_err());
    assert_eq!(e.code, 400);

    // limit/continue walk every object once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = ListParams::default().limit(2);
        if let Some(t) = &token {
            p = p.continue_token(t);
        }
        let page = cms.list(&p).await.unwrap();
        assert!(page.items.len() <= 2);
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        seen.extend(names(page));
        if token.is_none() {
            break;
        }
    }
    // kube-root-ca.crt is in every namespace too.
    assert_eq!(seen.iter().filter(|n| n.starts_with("cm-")).count(), 4);
    assert_eq!(seen.len(), seen.iter().collect::<std::collections::BTreeSet<_>>().len());

    // spec.nodeName selects pods (as kubectl drain does).
    let nodes: Api<Node> = Api::all(client);
    let l = nodes
        .list(&ListParams::default().fields("spec.unschedulable=false"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_lists_then_follows_changes() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("before", &[("w", "yes")], &[]))
        .await
        .unwrap();
    let cfg = watcher::Config::default().labels("w=yes");
    let mut stream = watcher(cms.clone(), cfg).boxed();
    let mut seen_init = false;
    let mut applied = Vec::new();
    let writer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            cms.create(&PostParams::default(), &cm("after", &[("w", "yes")], &[]))
                .await
                .unwrap();
            cms.create(&PostParams::default(), &cm("ignored", &[("w", "no")], &[]))
                .await
                .unwrap();
            let p = json!({"metadata": {"labels": {"w": "no"}}});
            cms.patch("before", &PatchParams::default(), &Patch::Merge(&p))
                .await
                .unwrap();
        })
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut deleted = false;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.try_next())
        .await
        .map(|r| r.unwrap())
    {
        match ev {
            watcher::Event::InitApply(o) => applied.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => seen_init = true,
            watcher::Event::Apply(o) => applied.push(o.metadata.name.unwrap()),
            watcher::Event::Delete(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("before"));
                deleted = true;
                break;
            }
            watcher::Event::Init => {}
        }
    }
    writer.await.unwrap();
    assert!(seen_init);
    assert_eq!(applied, vec!["before", "after"]);
    assert!(deleted, "leaving the selector is a DELETED event");
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_changes_after_a_resource_version() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let wp = kube::api::WatchParams::default().timeout(5);
    // Every change after resourceVersion 1 is still in the history: the
    // watch replays them (a reloaded store has none: see kube_persist).
    let mut s = cms.watch(&wp, "1").await.unwrap().boxed();
    cms.create(&PostParams::default(), &cm("x", &[], &[])).await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        kube::api::WatchEvent::Added(o) => assert!(o.metadata.name.is_some()),
        other => panic!("expected ADDED events replayed from resourceVersion 1, got {other:?}"),
    }
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_json_and_strategic_patches() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "busybox:1.36"}]}}}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // Strategic: containers merge by name, env by name.
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28", "env": [{"name": "B", "value": "2"}]}]}}}});
    let p = deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let cs = p
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .clone();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("nginx:1.28"));
    assert_eq!(cs[0].env.as_ref().unwrap().len(), 2);
    assert_eq!(p.metadata.generation, Some(2));

    // Merge: lists are replaced.
    let mp = json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"replicas": 3}});
    let p = deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(&mp))
        .await
        .unwrap();
    assert_eq!(p.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        p.metadata.labels.as_ref().unwrap().get("tier").map(String::as_str),
        Some("front")
    );

    // JSON patch, and a failing test op is 422.
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 2}])).unwrap();
    let p = deploys
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(p.spec.as_ref().unwrap().replicas, Some(2));
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).unwrap();
    let e = api_error(
        deploys
            .patch("web", &PatchParams::default(), &Patch::<()>::Json(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // Immutable selector.
    let sel = json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}});
    let e = api_error(
        deploys
            .patch("web", &PatchParams::default(), &Patch::Merge(&sel))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(e.message.contains("field is immutable"), "{}", e.message);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_owns_fields_and_conflicts() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
    let vre = PatchParams::apply("vre");
    let first = cms.patch("app", &vre, &Patch::Apply(&cfg)).await.unwrap();
    let mf = first.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("vre"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let rv = first.metadata.resource_version.clone();

    // Re-applying the same configuration is a no-op.
    let again = cms.patch("app", &vre, &Patch::Apply(&cfg)).await.unwrap();
    assert_eq!(again.metadata.resource_version, rv);

    // Another manager changing an owned field conflicts...
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"x": "changed"}});
    let e = api_error(
        cms.patch("app", &PatchParams::apply("other"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"vre\": .data.x"
    );
    let cause = &e.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.field, ".data.x");
    assert_eq!(cause.reason, "FieldManagerConflict");
    // ...unless forced, which takes the field over.
    let forced = cms
        .patch("app", &PatchParams::apply("other").force(), &Patch::Apply(&other))
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "changed");
    // vre drops y from its configuration: y goes; x (now other's) stays.
    let fewer =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "labels": {"a": "1"}}, "data": {}});
    let after = cms.patch("app", &vre, &Patch::Apply(&fewer)).await.unwrap();
    let data = after.data.unwrap_or_default();
    assert_eq!(data.get("x").map(String::as_str), Some("changed"));
    assert!(!data.contains_key("y"));

    // Apply creates when absent (201), and needs a field manager (422 like the real server).
    let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"k": "v"}});
    cms.patch("fresh", &vre, &Patch::Apply(&created)).await.unwrap();
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/fresh")
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&created).unwrap())
        .unwrap();
    let e = api_error(client.request::<ConfigMap>(req).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("fieldManager: Required value"), "{}", e.message);

    // Wrong kind for the URL is 400.
    let wrong = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fresh"}});
    let e = api_error(cms.patch("fresh", &vre, &Patch::Apply(&wrong)).await.unwrap_err());
    assert_eq!(e.code, 400);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_authorization() {
    let tc = TestCluster::start(fast_config()).await;
    let mut info = tc.info.clone();
    info.admin_token = "not-a-token".into();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&info.admin_kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let bad = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(bad, "default");
    let e = api_error(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));

    // The bootstrap token authenticates, and RBAC limits it to what kubeadm grants.
    info.admin_token = TOKEN.into();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&info.admin_kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let boot = kube::Client::try_from(config).unwrap();
    let nodes: Api<Node> = Api::all(boot.clone());
    assert!(nodes.get("master").await.is_ok());
    let e = api_error(nodes.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(
        e.message
            .contains("User \"system:bootstrap:abcdef\" cannot list resource \"nodes\""),
        "{}",
        e.message
    );
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let config = vre_sim::SimConfig {
        rate_limit: Some(vre_sim::RateLimit {
            per_second: 2.0,
            burst: 3,
        }),
        ..fast_config()
    };
    let tc = TestCluster::start(config).await;
    let raw = tc.client().await;
    let mut limited = None;
    for _ in 0..10 {
        let req = http::Request::get("/api/v1/namespaces/default/configmaps")
            .body(Vec::new())
            .unwrap();
        if let Err(e) = raw.request::<serde_json::Value>(req).await {
            limited = Some(api_error(e));
            break;
        }
    }
    let e = limited.expect("a burst of 10 calls exceeds a burst of 3");
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert!(e.details.as_ref().unwrap().retry_after_seconds >= 1);
    assert!(tc.stats.rate_limited.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(tc.stats.kube_calls() >= 4);
    // kube's default client waits for Retry-After and gets through.
    let cms: Api<ConfigMap> = Api::namespaced(tc.retrying_client().await, "default");
    for _ in 0..3 {
        cms.list(&ListParams::default()).await.expect("retried past the 429s");
    }
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_signed_by_the_cluster_ca_authenticate() {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let tc = TestCluster::start(fast_config()).await;
    let ca_key = KeyPair::from_pem(&tc.ca.key_pem).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&tc.ca.cert_pem, &ca_key).unwrap();
    let sign = |user: &str, org: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, user);
        p.distinguished_name.push(DnType::OrganizationName, org);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    let kubeconfig_for = |cert: &str, key: &str| {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            tc.info.endpoint,
            b(&tc.ca.cert_pem),
            b(cert),
            b(key)
        )
    };
    // kubeadm's admin.conf identity: group kubeadm:cluster-admins.
    let (cert, key) = sign("kubernetes-admin", "kubeadm:cluster-admins");
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig_for(&cert, &key)).unwrap();
    let admin = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let nodes: Api<Node> = Api::all(admin);
    assert_eq!(nodes.list(&ListParams::default()).await.unwrap().items.len(), 1);
    // A certificate with no granted group is authenticated, then forbidden.
    let (cert, key) = sign("jane", "developers");
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig_for(&cert, &key)).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let jane = kube::Client::try_from(config).unwrap();
    let e = api_error(Api::<Node>::all(jane).list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 403);
    assert!(e.message.contains("User \"jane\""), "{}", e.message);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_paths_legacy_watch_tables_and_deletecollection() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let text = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    // Unknown resources are Status 404s.
    let e = api_error(client.request_text(text("/api/v1/widgets")).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    // Discovery lists pods with their eviction subresource.
    let core: serde_json::Value = client.request(text("/api/v1")).await.unwrap();
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/eviction" && r["group"] == "policy")
    );
    // Tables.
    let req = http::Request::get("/api/v1/nodes")
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = client.request(req).await.unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], "master");
    // The legacy /watch/ path streams events.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cms.create(&PostParams::default(), &cm("w1", &[("batch", "x")], &[]))
        .await
        .unwrap();
    let req = http::Request::get(format!(
        "/api/v1/watch/namespaces/default/configmaps?resourceVersion={rv}&timeoutSeconds=1"
    ))
    .body(Vec::new())
    .unwrap();
    let lines = client.request_text(req).await.unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "w1");
    // deletecollection with a selector.
    cms.create(&PostParams::default(), &cm("w2", &[("batch", "x")], &[]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("keep", &[("batch", "y")], &[]))
        .await
        .unwrap();
    cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("batch=x"))
        .await
        .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default().labels("batch"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["keep"]);
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_through_its_subresource_only() {
    let tc = TestCluster::start(fast_config()).await;
    let deploys: Api<Deployment> = Api::namespaced(tc.client().await, "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "s"}},
            "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // The main resource ignores status...
    let p = json!({"spec": {"paused": true}, "status": {"replicas": 42}});
    let after = deploys
        .patch("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(after.spec.as_ref().unwrap().paused, Some(true));
    assert_ne!(after.status.as_ref().and_then(|s| s.replicas), Some(42));
    // ...and /status ignores everything else.
    let p = json!({"spec": {"paused": false}, "status": {"collisionCount": 7}});
    let after = deploys
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().collision_count, Some(7));
    assert_eq!(after.spec.unwrap().paused, Some(true));
    tc.clusters.shutdown().await;
}
