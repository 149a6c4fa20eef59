//! Cluster state survives a restart of the simulator: objects, nodes,
//! join failures, the API server's port; watches from before the restart
//! get 410 Expired and relist; the restarted side reconciles with the
//! machines the cloud runs.

mod kube_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube_support::*;
use vre_sim::kube::Clusters;
use vre_sim::{MachineEvents, SimStats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_reload_from_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tc = TestCluster::start_with(fast_config(), Some(dir.path().to_path_buf()), &labels(&[]), Some(&[])).await;
    tc.join("w-1", "worker-1", Ipv4Addr::new(10, 0, 0, 21), &labels(&[]), None);
    let bad = machine(
        "w-bad",
        "bad",
        Ipv4Addr::new(10, 0, 0, 22),
        None,
        worker_user_data(
            &format!("{MASTER_IP}:6443"),
            TOKEN,
            &format!("sha256:{}", "a".repeat(64)),
            &labels(&[]),
            None,
        ),
    );
    tc.clusters.booted(&bad);
    tc.wait_ready(&["master", "worker-1"]).await;
    eventually(10, "the failed join", || {
        (!tc.clusters.join_failures().is_empty()).then_some(())
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(tc.client().await, "default");
    let kept = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "kept"}, "data": {"a": "b"}})).unwrap(),
        )
        .await
        .unwrap();
    let old_rv = kept.metadata.resource_version.clone().unwrap();
    let endpoint = tc.info.endpoint;
    tc.clusters.shutdown().await;
    drop(tc.clusters);

    let files: Vec<String> = std::fs::read_dir(dir.path().join("kube"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(files.iter().any(|f| f.starts_with("cluster-")), "{files:?}");
    assert!(files.contains(&"machines.json".to_string()), "{files:?}");

    let reloaded = Clusters::new(
        Arc::new(fast_config()),
        Arc::new(SimStats::default()),
        Some(dir.path().to_path_buf()),
    );
    let info = reloaded
        .cluster_for(IpAddr::V4(MASTER_IP))
        .expect("the cluster is back");
    assert_eq!(info.endpoint, endpoint, "the API server reuses its port");
    assert_eq!(reloaded.join_failures().len(), 1);
    let tc2 = TestCluster {
        clusters: reloaded.clone(),
        stats: Arc::new(SimStats::default()),
        ca: tc.ca,
        info,
        master: tc.master,
    };
    let client = tc2.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let again = cms.get("kept").await.unwrap();
    assert_eq!(again.data.unwrap()["a"], "b");
    assert_eq!(again.metadata.resource_version.as_deref(), Some(old_rv.as_str()));
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(nodes.list(&Default::default()).await.unwrap().items.len(), 2);

    // History did not survive: resuming a watch from before is 410 Expired.
    let mut w = cms
        .watch(&WatchParams::default().timeout(5), "1")
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // The cluster keeps working: new writes get new versions.
    let fresh = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "fresh"}})).unwrap(),
        )
        .await
        .unwrap();
    assert!(fresh.metadata.resource_version.unwrap().parse::<u64>().unwrap() > old_rv.parse::<u64>().unwrap());
    reloaded.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reconciles_with_the_machines_the_cloud_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tc = TestCluster::start_with(fast_config(), Some(dir.path().to_path_buf()), &labels(&[]), Some(&[])).await;
    let kept = tc.join("w-1", "worker-1", Ipv4Addr::new(10, 0, 0, 21), &labels(&[]), None);
    tc.join("w-2", "worker-2", Ipv4Addr::new(10, 0, 0, 22), &labels(&[]), None);
    tc.wait_ready(&["master", "worker-1", "worker-2"]).await;
    let (cluster_id, endpoint) = (tc.info.id.clone(), tc.info.endpoint);
    tc.clusters.shutdown().await;
    // the cloud boots a machine after the cluster side saved: not recorded,
    // nor started in a simulator that is going away
    let late = machine(
        "w-3",
        "worker-3",
        Ipv4Addr::new(10, 0, 0, 23),
        None,
        worker_user_data(&format!("{MASTER_IP}:6443"), TOKEN, &tc.ca.pin, &labels(&[]), None),
    );
    tc.clusters.booted(&late);
    assert!(ready_status(&tc.clusters, &cluster_id, "worker-3").is_none());
    drop(tc.clusters);

    // the restarted cloud lists what runs: worker-2 was deleted meanwhile,
    // worker-3 booted
    let reloaded = Clusters::new(
        Arc::new(fast_config()),
        Arc::new(SimStats::default()),
        Some(dir.path().to_path_buf()),
    );
    reloaded.resync(&[tc.master.clone(), kept, late]);
    eventually(10, "worker-3 joins after the restart", || {
        (ready_status(&reloaded, &cluster_id, "worker-3")? == "True").then_some(())
    })
    .await;
    eventually(10, "the deleted worker-2 goes Unknown", || {
        (ready_status(&reloaded, &cluster_id, "worker-2")? == "Unknown").then_some(())
    })
    .await;
    // the master and worker-1 ran their user data once: same cluster, same node
    let info = reloaded
        .cluster_for(IpAddr::V4(MASTER_IP))
        .expect("the cluster is back");
    assert_eq!((info.id.as_str(), info.endpoint), (cluster_id.as_str(), endpoint));
    assert_eq!(
        ready_status(&reloaded, &cluster_id, "worker-1").as_deref(),
        Some("True")
    );
    assert!(reloaded.join_failures().is_empty(), "{:?}", reloaded.join_failures());
    reloaded.shutdown().await;

    // a master the cloud no longer runs takes its cluster down
    let again = Clusters::new(
        Arc::new(fast_config()),
        Arc::new(SimStats::default()),
        Some(dir.path().to_path_buf()),
    );
    assert!(again.cluster_for(IpAddr::V4(MASTER_IP)).is_some());
    again.resync(&[]);
    assert!(again.cluster_for(IpAddr::V4(MASTER_IP)).is_none());
    again.shutdown().await;
}
