//! Scale: 1024 nodes join one simulated cluster and a DaemonSet covers
//! them. `#[ignore]`d (it takes a while in debug builds); run it with
//! `cargo test -p vre-sim --test kube_scale -- --ignored --nocapture` to
//! print the figures (time to Ready, DaemonSet rollout, GET latency, the
//! process's resident memory). Only correctness is asserted.

mod kube_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube_support::*;
use serde_json::json;

const NODES: usize = 1024;

fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale run: prints figures; cargo test -p vre-sim --test kube_scale -- --ignored --nocapture"]
async fn a_thousand_nodes_and_a_daemonset() {
    let config = vre_sim::SimConfig {
        join_time: Duration::from_secs(1),
        ready_time: Duration::from_secs(1),
        time_scale: 0.01,
        ..Default::default()
    };
    let tc = TestCluster::start(config).await;
    let start = Instant::now();
    for i in 0..NODES {
        let ip = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 2) as u8);
        tc.join(
            &format!("w-{i}"),
            &format!("node-{i:04}"),
            ip,
            &labels(&[("vre.io/role", "service")]),
            None,
        );
    }
    let client = tc.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    eventually_async(600, "1024 ready nodes", || async {
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == NODES + 1).then_some(())
    })
    .await;
    let nodes_ready = start.elapsed();

    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"nodeSelector": {"vre.io/role": "service"}, "containers": [{"name": "a", "image": "registry.k8s.io/pause:3.10"}]}}}
    }))
    .unwrap();
    let ds_start = Instant::now();
    dss.create(&PostParams::default(), &ds).await.unwrap();
    eventually_async(600, "the DaemonSet ready on every service node", || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.desired_number_scheduled == NODES as i32 && st.number_ready == NODES as i32).then_some(())
    })
    .await;
    let ds_ready = ds_start.elapsed();

    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        nodes.get(&format!("node-{:04}", i * 5)).await.unwrap();
    }
    let get = t.elapsed() / n;
    // The same GET without decoding into typed objects on the client side.
    let t = Instant::now();
    for i in 0..n {
        let req = http::Request::get(format!("/api/v1/nodes/node-{:04}", i * 5))
            .body(Vec::new())
            .unwrap();
        client.request_text(req).await.unwrap();
    }
    let raw_get = t.elapsed() / n;
    let t = Instant::now();
    let req = http::Request::get("/api/v1/nodes").body(Vec::new()).unwrap();
    let raw_list = client.request_text(req).await.unwrap().len();
    let raw_list_time = t.elapsed();
    let t = Instant::now();
    let all = nodes.list(&ListParams::default()).await.unwrap();
    let list = t.elapsed();
    assert_eq!(all.items.len(), NODES + 1);
    println!("nodes Ready: {NODES} in {nodes_ready:?}");
    println!("DaemonSet over {NODES} nodes Ready in {ds_ready:?}");
    println!("GET node, typed (client round trip, TLS, sequential): {get:?}; raw: {raw_get:?}");
    println!(
        "LIST {} nodes, typed: {list:?}; raw ({raw_list} bytes): {raw_list_time:?}",
        NODES + 1
    );
    println!("kube API calls answered: {}", tc.stats.kube_calls());
    if let Some(rss) = resident_mib() {
        println!("resident memory of the test process (client and simulator): {rss:.0} MiB");
    }
    tc.clusters.shutdown().await;
}
