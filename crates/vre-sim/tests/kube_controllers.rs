//! The simulated controllers through the `kube` client: DaemonSets over
//! labelled and tainted nodes, Deployment availability and rollouts,
//! volume binding, Service endpoints and load balancers, eviction with
//! disruption budgets, cordons, namespaces, garbage collection, CRDs.

mod kube_support;

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube_support::*;
use serde_json::json;
use vre_sim::MachineEvents;

fn tolerations_storage() -> serde_json::Value {
    json!([{"key": "dedicated", "operator": "Equal", "value": "fileserver", "effect": "NoSchedule"}])
}

fn daemonset(name: &str, pod_spec_extra: serde_json::Value) -> DaemonSet {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), pod_spec_extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"ds": name}}, "template": {"metadata": {"labels": {"ds": name}}, "spec": spec}}
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }))
    .unwrap()
}

/// Master (role master, untainted) plus storage (tainted), edge and service workers.
async fn four_node_cluster() -> TestCluster {
    let tc = TestCluster::start(fast_config()).await;
    tc.join(
        "w-s",
        "storage",
        Ipv4Addr::new(10, 0, 0, 21),
        &labels(&[("vre.io/role", "storage")]),
        Some(&[("dedicated", "fileserver", "NoSchedule")]),
    );
    tc.join(
        "w-e",
        "edge",
        Ipv4Addr::new(10, 0, 0, 22),
        &labels(&[("vre.io/role", "edge")]),
        None,
    );
    tc.join(
        "w-v",
        "service",
        Ipv4Addr::new(10, 0, 0, 23),
        &labels(&[("vre.io/role", "service")]),
        None,
    );
    tc.wait_ready(&["master", "storage", "edge", "service"]).await;
    tc
}

async fn ds_status(api: &Api<DaemonSet>, name: &str, want: i32) -> k8s_openapi::api::apps::v1::DaemonSetStatus {
    eventually_async(15, &format!("DaemonSet {name} ready on {want} nodes"), || async {
        let ds = api.get(name).await.ok()?;
        let st = ds.status?;
        let done = st.desired_number_scheduled == want
            && st.number_ready == want
            && st.observed_generation == ds.metadata.generation;
        done.then_some(st)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonsets_follow_selectors_affinity_and_taints() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    dss.create(
        &pp,
        &daemonset(
            "storage-only",
            json!({"nodeSelector": {"vre.io/role": "storage"}, "tolerations": tolerations_storage()}),
        ),
    )
    .await
    .unwrap();
    dss.create(&pp, &daemonset("everywhere-untolerated", json!({})))
        .await
        .unwrap();
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "vre.io/role", "operator": "In", "values": ["edge", "service"]}]}]}}});
    dss.create(&pp, &daemonset("by-affinity", json!({"affinity": affinity})))
        .await
        .unwrap();

    let st = ds_status(&dss, "storage-only", 1).await;
    assert_eq!(st.current_number_scheduled, 1);
    assert_eq!(st.updated_number_scheduled, Some(1));
    assert_eq!(st.number_available, Some(1));
    let st = ds_status(&dss, "everywhere-untolerated", 3).await;
    assert_eq!(st.number_misscheduled, 0);
    ds_status(&dss, "by-affinity", 2).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let on = |ds: &str| {
        let pods = pods.clone();
        let ds = ds.to_string();
        async move {
            let mut nodes: Vec<String> = pods
                .list(&ListParams::default().labels(&format!("ds={ds}")))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.spec.and_then(|s| s.node_name))
                .collect();
            nodes.sort();
            nodes
        }
    };
    assert_eq!(on("storage-only").await, vec!["storage"]);
    assert_eq!(on("everywhere-untolerated").await, vec!["edge", "master", "service"]);
    assert_eq!(on("by-affinity").await, vec!["edge", "service"]);

    // A new matching node gets a pod; the status follows.
    tc.join(
        "w-v2",
        "service-2",
        Ipv4Addr::new(10, 0, 0, 24),
        &labels(&[("vre.io/role", "service")]),
        None,
    );
    tc.wait_ready(&["service-2"]).await;
    ds_status(&dss, "by-affinity", 3).await;
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_become_available_scale_and_roll_out() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 2, "nginx:1.27"))
        .await
        .unwrap();
    let available = |want: i32, image: &'static str| {
        let deploys = deploys.clone();
        async move {
            eventually_async(15, &format!("web available with {want} x {image}"), || async {
                let d = deploys.get("web").await.ok()?;
                let st = d.status?;
                let ok = st.available_replicas == Some(want)
                    && st.updated_replicas == Some(want)
                    && st.replicas == Some(want)
                    && st.observed_generation == d.metadata.generation
                    && st
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                    && d.spec?.template.spec?.containers[0].image.as_deref() == Some(image);
                ok.then_some(())
            })
            .await
        }
    };
    available(2, "nginx:1.27").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(list.items.len(), 2);
    for p in &list.items {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st.pod_ip.as_deref().unwrap().starts_with("10.244."));
        let node = p.spec.as_ref().unwrap().node_name.clone().unwrap();
        assert_ne!(node, "storage", "the tainted storage node takes no untolerating pods");
    }

    // Scale through the scale subresource.
    let scale = json!({"spec": {"replicas": 3}});
    deploys
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    available(3, "nginx:1.27").await;

    // A new template rolls out through a new ReplicaSet.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}});
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&image))
        .await
        .unwrap();
    available(3, "nginx:1.28").await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let sets = rss.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets.iter()
            .filter(|r| r.spec.as_ref().unwrap().replicas == Some(0))
            .count(),
        1
    );

    // Deleting the Deployment takes its ReplicaSets and pods along.
    deploys.delete("web", &DeleteParams::default()).await.unwrap();
    eventually_async(15, "garbage collection", || async {
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len()
            + rss
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items
                .len();
        (left == 0).then_some(())
    })
    .await;
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_when_their_storage_class_exists() {
    let tc = TestCluster::start(fast_config()).await;
    tc.wait_ready(&["master"]).await;
    let client = tc.client().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = |name: &str, class: Option<&str>| -> PersistentVolumeClaim {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}});
        if let Some(c) = class {
            spec["storageClassName"] = json!(c);
        }
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    pvcs.create(&PostParams::default(), &claim("no-class", None))
        .await
        .unwrap();
    pvcs.create(&PostParams::default(), &claim("missing-class", Some("nope")))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for n in ["no-class", "missing-class"] {
        let p = pvcs.get(n).await.unwrap();
        assert_eq!(
            p.status.unwrap().phase.as_deref(),
            Some("Pending"),
            "{n} has no class to bind with"
        );
    }
    // A default StorageClass appears: the class-less claim gets it and binds.
    let scs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::storage::v1::StorageClass>(&()),
    );
    let sc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "vre.io/local", "reclaimPolicy": "Delete"
    }))
    .unwrap();
    scs.create(&PostParams::default(), &sc).await.unwrap();
    let bound = eventually_async(15, "no-class bound", || async {
        let p = pvcs.get("no-class").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(p)
    })
    .await;
    assert_eq!(
        bound.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("standard")
    );
    let pv_name = bound.spec.unwrap().volume_name.unwrap();
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs.get(&pv_name).await.unwrap();
    assert_eq!(pv.status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(
        pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap().name.as_deref(),
        Some("no-class")
    );
    assert_eq!(
        pvcs.get("missing-class")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );

    // Deleting the claim (no pod uses it) releases and deletes the volume.
    pvcs.delete("no-class", &DeleteParams::default()).await.unwrap();
    eventually_async(15, "the volume reclaimed", || async {
        pvs.get(&pv_name).await.is_err().then_some(())
    })
    .await;
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_endpoints_and_load_balancer_addresses() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("api", 2, "nginx:1.27"))
        .await
        .unwrap();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let created = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    let ip: Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip} is in 10.96.0.0/12"
    );
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!((30000..=32767).contains(&port.node_port.unwrap()));

    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = eventually_async(15, "two ready endpoints", || async {
        let e = eps.get("api").await.ok()?;
        let subsets = e.subsets.clone()?;
        (subsets[0].addresses.as_ref()?.len() == 2).then_some(e)
    })
    .await;
    assert_eq!(ep.subsets.unwrap()[0].ports.as_ref().unwrap()[0].port, 8080);

    // The edge node gets a floating IP: the LoadBalancer publishes it.
    let mut edge = machine("w-e", "edge", Ipv4Addr::new(10, 0, 0, 22), None, String::new());
    edge.user_data = None;
    edge.public_ips = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))];
    tc.clusters.addresses_changed(&edge);
    let lb = eventually_async(15, "a load balancer address", || async {
        let s = svcs.get("api").await.ok()?;
        s.status?.load_balancer?.ingress?.first()?.ip.clone()
    })
    .await;
    assert_eq!(lb, "198.51.100.7");
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_honours_disruption_budgets_and_cordons_hold() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("db", 2, "postgres:17"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ready_pods = || async {
        let list = pods.list(&ListParams::default().labels("app=db")).await.ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect();
        (ready.len() == 2).then_some(ready)
    };
    let before = eventually_async(15, "two ready db pods", ready_pods).await;
    let pdbs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(&()),
    );
    let pdb: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let victim = before[0].metadata.name.clone().unwrap();
    let e = pods.evict(&victim, &EvictParams::default()).await.unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
            assert!(s.message.contains("disruption budget"), "{}", s.message);
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // Relax the budget, cordon the victim's node: the evicted pod comes back elsewhere.
    let relax = json!({"spec": {"minAvailable": 1}});
    pdbs.patch("db", &PatchParams::default(), &Patch::Merge(&relax))
        .await
        .unwrap();
    let node = before[0].spec.as_ref().unwrap().node_name.clone().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.cordon(&node).await.unwrap();
    assert_eq!(nodes.get(&node).await.unwrap().spec.unwrap().unschedulable, Some(true));
    let _ = Eviction::default();
    pods.evict(&victim, &EvictParams::default())
        .await
        .expect("eviction within the budget");
    let after = eventually_async(15, "the replacement pod", || async {
        let pods = ready_pods().await?;
        pods.iter()
            .all(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
            .then_some(pods)
    })
    .await;
    for p in after {
        let on = p.spec.unwrap().node_name.unwrap();
        assert!(
            on != node || p.metadata.name == before[1].metadata.name,
            "no new pod lands on the cordoned {node}"
        );
    }
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_terminate_with_their_content() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}}))
            .unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), "scratch");
    eventually_async(10, "the default ServiceAccount", || async {
        sa.get("default").await.ok()
    })
    .await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "scratch");
    eventually_async(10, "kube-root-ca.crt", || async {
        cms.get("kube-root-ca.crt").await.ok()
    })
    .await;
    let terminating = nss
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the namespace, terminating");
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    eventually_async(15, "the namespace gone", || async {
        nss.get("scratch").await.is_err().then_some(())
    })
    .await;
    assert!(cms.list(&ListParams::default()).await.unwrap().items.is_empty());
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_definitions_serve_their_kinds() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "ingressroutes.traefik.io"},
        "spec": {"group": "traefik.io", "scope": "Namespaced",
            "names": {"plural": "ingressroutes", "singular": "ingressroute", "kind": "IngressRoute", "listKind": "IngressRouteList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = crds.get("ingressroutes.traefik.io").await.unwrap();
    assert!(
        established
            .status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "traefik.io",
            "v1alpha1",
            "IngressRoute",
        ))
        .expect("served");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let route = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": {"name": "web"},
        "spec": {"entryPoints": ["web"], "routes": [{"match": "Host(`a.example`)", "kind": "Rule"}]}});
    routes
        .patch("web", &PatchParams::apply("vre"), &Patch::Apply(&route))
        .await
        .unwrap();
    let got = routes.get("web").await.unwrap();
    assert_eq!(got.data["spec"]["entryPoints"], json!(["web"]));
    // Strategic merge patch is for built-in kinds only.
    let e = routes
        .patch("web", &PatchParams::default(), &Patch::Strategic(&json!({"spec": {}})))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => assert_eq!(s.code, 415),
        other => panic!("expected 415, got {other:?}"),
    }
    // Deleting the CRD takes its objects and its kind away.
    crds.delete("ingressroutes.traefik.io", &DeleteParams::default())
        .await
        .unwrap();
    let e = routes.get("web").await.unwrap_err();
    match e {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_create_ordered_pods_with_their_claims() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let scs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::storage::v1::StorageClass>(&()),
    );
    let sc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
        "provisioner": "vre.io/cinder", "volumeBindingMode": "WaitForFirstConsumer"
    }))
    .unwrap();
    scs.create(&PostParams::default(), &sc).await.unwrap();
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), "default");
    let set: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:17",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))
    .unwrap();
    sts.create(&PostParams::default(), &set).await.unwrap();
    let st = eventually_async(20, "three ready replicas", || async {
        let s = sts.get("db").await.ok()?;
        let st = s.status?;
        (st.ready_replicas == Some(3) && st.current_revision == st.update_revision).then_some(st)
    })
    .await;
    assert_eq!(st.replicas, 3);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let p = pods.get(&format!("db-{i}")).await.unwrap();
        assert_eq!(
            p.spec.as_ref().unwrap().hostname.as_deref(),
            Some(format!("db-{i}").as_str())
        );
        let vols = p.spec.unwrap().volumes.unwrap();
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            format!("data-db-{i}")
        );
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let c = pvcs.get(&format!("data-db-{i}")).await.unwrap();
        assert_eq!(
            c.status.unwrap().phase.as_deref(),
            Some("Bound"),
            "WaitForFirstConsumer claims bind once their pod is scheduled"
        );
        let node = c
            .metadata
            .annotations
            .unwrap()
            .get("volume.kubernetes.io/selected-node")
            .cloned();
        assert!(node.is_some());
    }
    // Scale down removes the highest ordinal; claims stay (Retain).
    sts.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    eventually_async(15, "db-2 gone", || async {
        pods.get("db-2").await.is_err().then_some(())
    })
    .await;
    assert!(pvcs.get("data-db-2").await.is_ok());
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_and_pods_of_lost_nodes_turn_not_ready() {
    let tc = four_node_cluster().await;
    let client = tc.client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"completions": 2, "parallelism": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox:1.36"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = eventually_async(20, "the job complete", || async {
        let j = jobs.get("migrate").await.ok()?;
        let st = j.status?;
        st.conditions?
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
            .then_some(st.succeeded)
    })
    .await;
    assert_eq!(done, Some(2));

    // A DaemonSet pod on a node whose machine is deleted turns not ready.
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    dss.create(&PostParams::default(), &daemonset("agent", json!({})))
        .await
        .unwrap();
    ds_status(&dss, "agent", 3).await;
    let gone = machine("w-e", "edge", Ipv4Addr::new(10, 0, 0, 22), None, String::new());
    tc.clusters.deleted(&gone);
    let st = eventually_async(20, "the edge pod not ready", || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.number_ready == 2).then_some(st)
    })
    .await;
    // The unreachable node's NoSchedule taint takes it out of the desired
    // nodes; its pod tolerates NoExecute, stays, and counts as misscheduled.
    assert_eq!(st.desired_number_scheduled, 2);
    assert_eq!(st.number_misscheduled, 1);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let on_edge: Vec<Pod> = pods
        .list(&ListParams::default().labels("ds=agent").fields("spec.nodeName=edge"))
        .await
        .unwrap()
        .items;
    assert_eq!(on_edge.len(), 1);
    let ready = on_edge[0]
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    tc.clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_follow_their_structural_schema() {
    let tc = TestCluster::start(fast_config()).await;
    let client = tc.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer"}, "color": {"type": "string", "default": "blue"}}}}}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w = |spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}),
        )
        .unwrap()
    };
    // Undeclared fields are dropped, defaults filled in.
    let created = widgets
        .create(&PostParams::default(), &w(json!({"size": 3, "shape": "round"})))
        .await
        .unwrap();
    assert_eq!(created.data["spec"], json!({"size": 3, "color": "blue"}));
    // ...or refused under strict field validation (kubectl's default).
    let req = http::Request::post("/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 1, "shape": "x"}})).unwrap())
        .unwrap();
    match client.request::<serde_json::Value>(req).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.message, "strict decoding error: unknown field \"spec.shape\"");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // Types and required fields are checked: 422.
    match widgets
        .create(&PostParams::default(), &w(json!({"size": "big"})))
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains("spec.size in body must be of type integer"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    tc.clusters.shutdown().await;
}
