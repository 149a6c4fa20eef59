//! Nodes join (or do not) the way `kubeadm join` would: token, CA pin,
//! endpoint, NodeRestriction, machine deletion.

mod kube_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube_support::*;
use vre_sim::kube::Clusters;
use vre_sim::{MachineEvents, SimConfig, SimStats};

fn node_taint_keys(n: &serde_json::Value) -> Vec<String> {
    n["spec"]["taints"]
        .as_array()
        .map(|t| t.iter().map(|x| x["key"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_joins_with_its_labels_and_taints() {
    let tc = TestCluster::start(fast_config()).await;
    tc.join(
        "w-1",
        "Storage-1",
        Ipv4Addr::new(10, 0, 0, 21),
        &labels(&[("vre.io/role", "storage")]),
        Some(&[("dedicated", "fileserver", "NoSchedule")]),
    );
    tc.wait_ready(&["master", "storage-1"]).await;
    let node = tc
        .clusters
        .object(&tc.info.id, "", "nodes", "", "storage-1")
        .expect("the node");
    assert_eq!(node["metadata"]["labels"]["vre.io/role"], "storage");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "storage-1");
    assert_eq!(node_taint_keys(&node), vec!["dedicated".to_string()]);
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.33.1");
    let addrs = node["status"]["addresses"].as_array().unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a["type"] == "InternalIP" && a["address"] == "10.0.0.21")
    );
    assert!(
        addrs
            .iter()
            .any(|a| a["type"] == "Hostname" && a["address"] == "storage-1")
    );
    assert!(node["spec"]["podCIDR"].as_str().unwrap().starts_with("10.244."));

    // The master is labelled and (explicitly) untainted; typed access works.
    let nodes: Api<Node> = Api::all(tc.client().await);
    let master = nodes.get("master").await.unwrap();
    let labels = master.metadata.labels.unwrap();
    assert_eq!(
        labels.get("node-role.kubernetes.io/control-plane").map(String::as_str),
        Some("")
    );
    assert!(master.spec.unwrap().taints.unwrap_or_default().is_empty());
    assert!(tc.clusters.join_failures().is_empty());
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_wrong_pin_and_restricted_labels_never_join() {
    let tc = TestCluster::start(fast_config()).await;
    let ep = format!("{MASTER_IP}:6443");
    let bad_token = machine(
        "w-t",
        "bad-token",
        Ipv4Addr::new(10, 0, 0, 31),
        None,
        worker_user_data(&ep, "zzzzzz.0123456789abcdef", &tc.ca.pin, &labels(&[]), None),
    );
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let bad_pin = machine(
        "w-p",
        "bad-pin",
        Ipv4Addr::new(10, 0, 0, 32),
        None,
        worker_user_data(&ep, TOKEN, &wrong_pin, &labels(&[]), None),
    );
    let restricted = machine(
        "w-r",
        "restricted",
        Ipv4Addr::new(10, 0, 0, 33),
        None,
        worker_user_data(
            &ep,
            TOKEN,
            &tc.ca.pin,
            &labels(&[("node-role.kubernetes.io/storage", "")]),
            None,
        ),
    );
    let good = machine(
        "w-g",
        "good",
        Ipv4Addr::new(10, 0, 0, 34),
        None,
        worker_user_data(&ep, TOKEN, &tc.ca.pin, &labels(&[]), None),
    );
    for m in [&bad_token, &bad_pin, &restricted, &good] {
        tc.clusters.booted(m);
    }
    tc.wait_ready(&["good"]).await;
    let failures = eventually(10, "three join failures", || {
        let f = tc.clusters.join_failures();
        (f.len() == 3).then_some(f)
    })
    .await;
    let reason = |id: &str| {
        failures
            .iter()
            .find(|f| f.machine_id == id)
            .map(|f| f.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason("w-t").contains("no JWS signed token"), "{}", reason("w-t"));
    assert!(reason("w-p").contains("none of the public keys"), "{}", reason("w-p"));
    assert!(
        reason("w-p").contains(&tc.ca.pin),
        "the reason names the real pin: {}",
        reason("w-p")
    );
    assert!(
        reason("w-r").contains("node-role.kubernetes.io/storage"),
        "{}",
        reason("w-r")
    );
    for f in &failures {
        assert_eq!(f.cluster.as_deref(), Some(tc.info.id.as_str()));
    }
    for n in ["bad-token", "bad-pin", "restricted"] {
        assert!(
            tc.clusters.object(&tc.info.id, "", "nodes", "", n).is_none(),
            "{n} must not register"
        );
    }
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_times_out_and_never_join_rate_is_honoured() {
    let config = SimConfig {
        never_join_rate: 1.0,
        ..fast_config()
    };
    let clusters = Clusters::new(Arc::new(config), Arc::new(SimStats::default()), None);
    let ca = Ca::new();
    let nowhere = machine(
        "w-x",
        "lost",
        Ipv4Addr::new(10, 9, 9, 9),
        None,
        worker_user_data("10.9.9.1:6443", TOKEN, &ca.pin, &labels(&[]), None),
    );
    clusters.booted(&nowhere);
    let f = eventually(10, "the join failure", || clusters.join_failures().into_iter().next()).await;
    assert!(f.reason.contains("never_join_rate"), "{}", f.reason);

    // Without the fault, discovery retries until it times out (5 simulated minutes).
    let clusters = Clusters::new(Arc::new(fast_config()), Arc::new(SimStats::default()), None);
    clusters.booted(&nowhere);
    let f = eventually(15, "the discovery timeout", || {
        clusters.join_failures().into_iter().next()
    })
    .await;
    assert!(f.reason.contains("10.9.9.1:6443"), "{}", f.reason);
    assert!(f.cluster.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_workers_go_unknown_and_a_deleted_master_stops_the_cluster() {
    let tc = TestCluster::start(fast_config()).await;
    let w = tc.join("w-1", "worker-1", Ipv4Addr::new(10, 0, 0, 21), &labels(&[]), None);
    tc.wait_ready(&["worker-1"]).await;
    tc.clusters.deleted(&w);
    let node = eventually(10, "the node turning Unknown", || {
        (ready_status(&tc.clusters, &tc.info.id, "worker-1")? == "Unknown")
            .then(|| tc.clusters.object(&tc.info.id, "", "nodes", "", "worker-1"))
            .flatten()
    })
    .await;
    assert!(node_taint_keys(&node).contains(&"node.kubernetes.io/unreachable".to_string()));

    assert_eq!(
        tc.clusters.endpoint_for(IpAddr::V4(MASTER_PUBLIC)),
        Some(tc.info.endpoint)
    );
    tc.clusters.deleted(&tc.master);
    assert!(tc.clusters.endpoint_for(IpAddr::V4(MASTER_IP)).is_none());
    assert!(tc.clusters.clusters().is_empty());
    // The API server stops answering.
    eventually(5, "the listener to close", || {
        std::net::TcpStream::connect(tc.info.endpoint).is_err().then_some(())
    })
    .await;
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_boot_event_does_not_rerun_kubeadm() {
    let tc = TestCluster::start(fast_config()).await;
    tc.wait_ready(&["master"]).await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(tc.client().await, "default");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "survives"}})).unwrap();
    cms.create(&Default::default(), &cm).await.unwrap();
    tc.clusters.booted(&tc.master);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let info = tc.clusters.cluster_for(IpAddr::V4(MASTER_IP)).unwrap();
    assert_eq!(info.endpoint, tc.info.endpoint);
    assert!(cms.get("survives").await.is_ok(), "the cluster was not re-initialised");
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_created_later_sign_cluster_info_and_expired_ones_go() {
    use base64::Engine;
    let tc = TestCluster::start(fast_config()).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(tc.client().await, "kube-system");
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token_secret = |id: &str, secret: &str, expiration: &str| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {"token-id": b(id), "token-secret": b(secret), "expiration": b(expiration),
                "usage-bootstrap-signing": b("true"), "usage-bootstrap-authentication": b("true"),
                "auth-extra-groups": b("system:bootstrappers:kubeadm:default-node-token")}
        }))
        .unwrap()
    };
    secrets
        .create(
            &Default::default(),
            &token_secret("newtok", "0123456789zzzzzz", "2999-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    secrets
        .create(
            &Default::default(),
            &token_secret("oldtok", "0123456789yyyyyy", "2000-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    eventually(10, "the expired token deleted", || {
        tc.clusters
            .object(&tc.info.id, "", "secrets", "kube-system", "bootstrap-token-oldtok")
            .is_none()
            .then_some(())
    })
    .await;
    eventually(10, "cluster-info signed with the new token", || {
        let info = tc
            .clusters
            .object(&tc.info.id, "", "configmaps", "kube-public", "cluster-info")?;
        info["data"].get("jws-kubeconfig-newtok").map(|_| ())
    })
    .await;
    let ud = worker_user_data(
        &format!("{MASTER_IP}:6443"),
        "newtok.0123456789zzzzzz",
        &tc.ca.pin,
        &labels(&[]),
        None,
    );
    tc.clusters
        .booted(&machine("w-n", "late", Ipv4Addr::new(10, 0, 0, 41), None, ud));
    tc.wait_ready(&["late"]).await;
    assert!(tc.clusters.join_failures().is_empty());
    tc.clusters.shutdown().await;
}
