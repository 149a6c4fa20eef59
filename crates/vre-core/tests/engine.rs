//! The engine against the in-memory cloud: apply, resume after a crash at
//! any step, retries, destroy by tag, scale, replacement of failed servers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vre_core::testing::{FakeCloud, FakeOrchestrator};
use vre_core::{
    Action, Capabilities, CloudError, CloudProvider, ClusterSpec, Deployment, Error, EventSink, ResourceKind,
    RetryPolicy, Role, StateStore,
};

fn spec() -> ClusterSpec {
    let mut s = ClusterSpec::new("lab", "fake");
    s.group_mut(Role::Service).count = 3;
    let st = s.group_mut(Role::Storage);
    st.count = 2;
    st.volume_gb = Some(20);
    s.group_mut(Role::Edge).count = 1;
    s.master_as_edge = false;
    s
}

fn deployment(spec: ClusterSpec, dir: &std::path::Path, cloud: &FakeCloud) -> (Deployment, FakeOrchestrator) {
    let orch = FakeOrchestrator::new(dir);
    let d = Deployment::builder(spec, dir)
        .provider(Arc::new(cloud.clone()))
        .orchestrator(Arc::new(orch.clone()))
        .public_key("ssh-ed25519 AAAA test")
        .retry(RetryPolicy::immediate(4))
        .build()
        .unwrap();
    (d, orch)
}

/// name -> count of live resources with that kind and name
fn census(cloud: &FakeCloud) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in cloud.resources("lab") {
        *m.entry((r.kind.to_string(), r.name.clone())).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn apply_creates_everything_with_one_create_call_per_role() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (d, orch) = deployment(spec(), dir.path(), &cloud);
    let report = d.apply().await.unwrap();
    // 1 master + 3 service + 2 storage + 1 edge, one batch each
    assert_eq!(cloud.count("create_instances"), 4, "{:?}", cloud.calls());
    assert!(cloud.calls().contains(&"create_instances:servicex3".to_string()));
    let res = cloud.resources("lab");
    let count = |k: ResourceKind| res.iter().filter(|r| r.kind == k).count();
    assert_eq!(count(ResourceKind::Instance), 7);
    assert_eq!(count(ResourceKind::Volume), 2);
    assert_eq!(count(ResourceKind::VolumeAttachment), 2);
    assert_eq!(count(ResourceKind::PublicIp), 2); // master + edge
    assert!(
        res.iter()
            .filter(|r| r.kind == ResourceKind::PublicIp)
            .all(|r| r.attr("instance_id").is_some())
    );
    assert_eq!(report.summary.create, 16);
    let calls = orch.calls();
    assert_eq!(calls.first().unwrap(), "prepare:10.0.0.10");
    assert!(calls.contains(&"wait_nodes:7".to_string()));
    // the CNI goes in before vre waits for Ready (a real kubelet is NotReady without it)
    let cni = calls.iter().position(|c| c.starts_with("install_base")).unwrap();
    let wait = calls.iter().position(|c| c.starts_with("wait_nodes")).unwrap();
    let connect = calls.iter().position(|c| c.starts_with("connect")).unwrap();
    assert!(connect < cni && cni < wait, "{calls:?}");
    // the state records every keyed resource with its id
    let state = StateStore::read(&dir.path().join(".vre/state.json")).unwrap().unwrap();
    assert_eq!(state.resources.len(), 1 + 16); // the image and everything created
    assert!(state.completed.contains("nodes"));
    assert!(state.outputs.contains_key("kubeconfig"));
}

#[tokio::test]
async fn second_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    let before = census(&cloud);
    let creates = cloud.count("create_instances");
    let plan = d.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
    let report = d.apply().await.unwrap();
    assert_eq!(report.summary.create, 0);
    assert_eq!(cloud.count("create_instances"), creates);
    assert_eq!(census(&cloud), before);
}

/// Kills apply (drops its future, as SIGKILL would) after k cloud calls for
/// every k, then runs a fresh apply: it must converge with no duplicates and
/// a state file that parses and matches the cloud.
#[tokio::test]
async fn resumes_after_a_crash_at_any_step_without_duplicates() {
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        deployment(spec(), dir.path(), &cloud).0.apply().await.unwrap();
        census(&cloud)
    };
    let total_calls = {
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        deployment(spec(), dir.path(), &cloud).0.apply().await.unwrap();
        cloud.calls().len()
    };
    for k in 0..total_calls {
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        cloud.crash_after(k);
        {
            let (d, _) = deployment(spec(), dir.path(), &cloud);
            tokio::select! {
                r = d.apply() => panic!("apply finished before the crash at call {k}: {r:?}"),
                _ = cloud.crashed() => {}
            }
        }
        cloud.heal();
        let (d, _) = deployment(spec(), dir.path(), &cloud);
        d.apply()
            .await
            .unwrap_or_else(|e| panic!("resume after crash at call {k}: {e}"));
        let c = census(&cloud);
        assert_eq!(c, reference, "crash at call {k} left a different cloud");
        let state = StateStore::read(&dir.path().join(".vre/state.json")).unwrap().unwrap();
        for r in cloud.resources("lab").iter().filter(|r| r.key.is_some()) {
            assert_eq!(
                state.resources.get(r.key.as_ref().unwrap()).map(|s| &s.id),
                Some(&r.id),
                "crash at {k}"
            );
        }
    }
}

#[tokio::test]
async fn retriable_errors_are_retried_and_others_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.fail_next(
        "ensure_network",
        vec![
            CloudError::http("fake", "network", 503, "busy", None).into(),
            CloudError::http("fake", "network", 429, "slow down", Some(Duration::from_millis(1))).into(),
        ],
    );
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    assert_eq!(cloud.count("ensure_network"), 3);

    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.fail_next(
        "ensure_security_group",
        vec![
            CloudError::http(
                "fake",
                "create security group",
                403,
                "Quota exceeded for security_group",
                None,
            )
            .into(),
        ],
    );
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    let e = d.apply().await.unwrap_err();
    assert!(e.to_string().contains("Quota exceeded for security_group"), "{e}");
    assert_eq!(cloud.count("ensure_security_group"), 1);
    // servers depend on the security group: none were made
    assert_eq!(cloud.count("create_instances"), 0);
}

#[tokio::test]
async fn preflight_problems_stop_apply_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut s = spec();
    s.group_mut(Role::Service).flavor = "m1.huge".into();
    let (d, _) = deployment(s, dir.path(), &cloud);
    let e = d.apply().await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "nodes.service.flavor: flavor \"m1.huge\" does not exist on this cloud; available: m1.small, m1.medium, m1.large"
    );
    assert!(cloud.resources("lab").is_empty());
}

#[tokio::test]
async fn destroy_finds_everything_by_tag_without_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    std::fs::remove_file(dir.path().join(".vre/state.json")).unwrap();
    // another cluster in the same cloud must survive
    cloud.insert(
        "other",
        vre_core::CloudResource::new(ResourceKind::Network, "keep-me", "other-net"),
    );
    let report = d.destroy().await.unwrap();
    assert!(cloud.resources("lab").is_empty(), "{:?}", cloud.resources("lab"));
    assert_eq!(cloud.resources("other").len(), 1);
    assert_eq!(report.deleted.len(), 7 + 2 + 2 + 2 + 5); // + network, subnet, router, sg, key pair
    // servers went before volumes and networks
    let calls = cloud.calls();
    let first = |k: &str| calls.iter().position(|c| c == &format!("delete:{k}")).unwrap();
    let last = |k: &str| calls.iter().rposition(|c| c == &format!("delete:{k}")).unwrap();
    assert!(last("public-ip") < first("instance"));
    assert!(last("instance") < first("volume"));
    assert!(last("subnet") < first("network"));
}

#[tokio::test]
async fn scale_down_drains_then_deletes_the_highest_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (d, orch) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    let smaller = d.scaled(Role::Service, 1).unwrap();
    let plan = smaller.plan().await.unwrap();
    let deletes: Vec<_> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Delete)
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(deletes, vec!["lab-service-2", "lab-service-3"]);
    smaller.apply().await.unwrap();
    let names: Vec<String> = cloud
        .resources("lab")
        .into_iter()
        .filter(|r| r.kind == ResourceKind::Instance && r.name.starts_with("lab-service"))
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["lab-service-1"]);
    let calls = orch.calls();
    assert!(calls.contains(&"drain:lab-service-3".to_string()), "{calls:?}");
    assert!(calls.contains(&"remove_node:lab-service-2".to_string()));
    // scaling up again creates only the missing ones, in one call
    let before = cloud.count("create_instances");
    d.scaled(Role::Service, 4).unwrap().apply().await.unwrap();
    assert_eq!(cloud.count("create_instances"), before + 1);
    assert!(cloud.calls().contains(&"create_instances:servicex3".to_string()));
    assert!(matches!(d.scaled(Role::Master, 2), Err(Error::Input { .. })));
}

#[tokio::test]
async fn servers_in_error_are_replaced_once_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.doom(&["lab-service-2"]);
    let (sink, mut rx) = EventSink::channel();
    let d = Deployment::builder(spec(), dir.path())
        .provider(Arc::new(cloud.clone()))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir.path())))
        .public_key("ssh-ed25519 AAAA test")
        .retry(RetryPolicy::immediate(2))
        .events(sink)
        .build()
        .unwrap();
    d.apply().await.unwrap();
    assert_eq!(
        census(&cloud).get(&("instance".into(), "lab-service-2".into())),
        Some(&1)
    );
    let mut warned = false;
    while let Ok(e) = rx.try_recv() {
        if let vre_core::Event::Warning { message } = e {
            warned |= message.contains("lab-service-2: No valid host was found.");
        }
    }
    assert!(warned);

    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.doom(&["lab-edge-1", "lab-edge-1"]);
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    let e = d.apply().await.unwrap_err().to_string();
    assert!(
        e.contains("went to ERROR twice: lab-edge-1: No valid host was found."),
        "{e}"
    );
}

#[tokio::test]
async fn dns_servers_a_cloud_cannot_set_are_reported_not_dropped() {
    let warnings = |custom_dns_servers: bool, dns: Option<&'static str>| async move {
        let dir = tempfile::tempdir().unwrap();
        let base = FakeCloud::new();
        let caps = Capabilities {
            custom_dns_servers,
            ..base.capabilities()
        };
        let cloud = base.with_capabilities(caps);
        let mut s = spec();
        if let Some(ip) = dns {
            s.network.dns_servers = vec![ip.parse().unwrap()];
        }
        let (sink, mut rx) = EventSink::channel();
        let d = Deployment::builder(s, dir.path())
            .provider(Arc::new(cloud))
            .orchestrator(Arc::new(FakeOrchestrator::new(dir.path())))
            .public_key("ssh-ed25519 AAAA test")
            .events(sink)
            .build()
            .unwrap();
        // `vre apply` plans, then applies: one warning for both
        d.plan().await.unwrap();
        d.plan().await.unwrap();
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let vre_core::Event::Warning { message } = e {
                out.push(message);
            }
        }
        out
    };
    let w = warnings(false, Some("10.0.0.2")).await;
    assert_eq!(
        w,
        [
            "network.dns_servers is not applied on fake: its instances use the cloud's own resolver (remove the key to silence this)"
        ]
    );
    assert!(
        warnings(false, None).await.is_empty(),
        "the default is not the user's choice"
    );
    assert!(warnings(true, Some("10.0.0.2")).await.is_empty());
}

#[tokio::test]
async fn nodes_that_never_join_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let orch = FakeOrchestrator::new(dir.path());
    orch.never_join.lock().unwrap().push("lab-storage-2".into());
    let d = Deployment::builder(spec(), dir.path())
        .provider(Arc::new(cloud.clone()))
        .orchestrator(Arc::new(orch))
        .public_key("k")
        .build()
        .unwrap();
    let e = d.apply().await.unwrap_err().to_string();
    assert!(e.contains("never joined: lab-storage-2"), "{e}");
}

#[tokio::test]
async fn cancel_stops_between_steps_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (sink, mut events) = EventSink::channel();
    let d = Deployment::builder(spec(), dir.path())
        .provider(Arc::new(cloud.clone()))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir.path())))
        .public_key("k")
        .events(sink)
        .cancel(rx)
        .build()
        .unwrap();
    let watcher = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if matches!(&e, vre_core::Event::StepFinished { step, .. } if step == "network") {
                tx.send(true).unwrap();
            }
        }
    });
    let e = d.apply().await.unwrap_err();
    assert!(matches!(e, Error::Interrupted), "{e}");
    assert_eq!(cloud.count("create_instances"), 0);
    drop(d);
    watcher.await.unwrap();
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    assert_eq!(
        cloud
            .resources("lab")
            .iter()
            .filter(|r| r.kind == ResourceKind::Instance)
            .count(),
        7
    );
}

#[tokio::test]
async fn destroy_leaves_reused_resources_and_images() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let (d, _) = deployment(spec(), dir.path(), &cloud);
    d.apply().await.unwrap();
    // a network the provider reuses (named in its table) without owning it
    cloud.insert(
        "lab",
        vre_core::CloudResource::new(ResourceKind::Network, "shared-net", "campus-net")
            .with_attr(vre_core::attr::REUSED, "true"),
    );
    let report = d.destroy().await.unwrap();
    let left = cloud.resources("lab");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, "shared-net");
    assert!(report.kept.iter().any(|r| r.id == "shared-net"));
}
