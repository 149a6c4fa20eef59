//! Deploys and destroys a cluster's cloud layer through `GcpProvider` and
//! the real engine (`vre_core::Deployment` with the in-memory test
//! orchestrator) against an in-memory Compute Engine on 127.0.0.1 that
//! checks every request against the discovery document. One request is
//! throttled (429) and one bulkInsert operation fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::fake_compute::{FakeCompute, ZONE};
use serde_json::Value;
use vre_core::spec::{Table, Value as TomlValue};
use vre_core::testing::FakeOrchestrator;
use vre_core::{ClusterSpec, Deployment, ProviderContext, RetryPolicy, Role};
use vre_gcp::{GcpFactory, GcpProvider, PollPolicy, ServiceAccountKey};

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZyZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQ vre-test";

fn spec(fake: &FakeCompute) -> ClusterSpec {
    let mut spec = ClusterSpec::new("lab", "gcp");
    spec.image.name = "kubenow-v050".into();
    spec.image.source = Some("gs://kubenow-images/kubenow-v050.tar.gz".into());
    spec.master_as_edge = false;
    for (role, count, flavor) in [
        (Role::Master, 1, "e2-standard-2"),
        (Role::Service, 2, "e2-standard-2"),
        (Role::Storage, 1, "e2-standard-2"),
        (Role::Edge, 2, "e2-medium"),
    ] {
        let g = spec.group_mut(role);
        g.count = count;
        g.flavor = flavor.into();
        g.public_ip = matches!(role, Role::Master | Role::Edge);
        g.root_disk_gb = Some(30);
        g.volume_gb = (role == Role::Storage).then_some(50);
    }
    let mut t = Table::default();
    t.insert("zone", TomlValue::String(ZONE.into()));
    t.insert("endpoint", TomlValue::String(fake.base.clone()));
    spec.provider_table = t;
    spec
}

/// The provider as `vre` builds it, with the key in GOOGLE_APPLICATION_CREDENTIALS.
fn provider(fake: &FakeCompute, spec: &ClusterSpec, dir: &Path) -> GcpProvider {
    let key = common::keys::service_account_json(
        common::fake_compute::PROJECT,
        "vre@vre-test-project.iam.gserviceaccount.com",
        &format!("{}token", fake.base),
    );
    let key_path = dir.join("sa.json");
    std::fs::write(&key_path, &key).unwrap();
    fake.trust(ServiceAccountKey::from_file(&key_path).unwrap().public_key_der());
    let mut ctx = ProviderContext::new(Arc::new(spec.clone()), dir.to_path_buf());
    ctx.env = BTreeMap::from([(vre_gcp::CREDENTIALS_ENV.to_string(), key_path.display().to_string())]);
    GcpFactory.build_provider(&ctx).unwrap().with_poll(PollPolicy {
        initial: Duration::from_millis(2),
        max: Duration::from_millis(20),
        factor: 2.0,
        timeout: Duration::from_secs(30),
    })
}

fn deployment(spec: ClusterSpec, provider: GcpProvider, dir: &Path) -> Deployment {
    Deployment::builder(spec, dir)
        .provider(Arc::new(provider))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir)))
        .public_key(PUBLIC_KEY)
        .retry(RetryPolicy::immediate(4))
        .build()
        .unwrap()
}

fn nat_ip(instance: &Value) -> &str {
    instance
        .pointer("/networkInterfaces/0/accessConfigs/0/natIP")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_and_destroys_a_cluster_through_the_compute_api() {
    let fake = FakeCompute::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&fake);
    // one 429 (the first instance listing), one operation that fails for lack of capacity
    fake.throttle_once("GET", "/instances");
    fake.fail_next_bulk_insert(
        "lab-service-",
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "The zone 'projects/vre-test-project/zones/europe-north1-a' does not have enough resources available to fulfill the request.",
    );
    let d = deployment(spec.clone(), provider(&fake, &spec, dir.path()), dir.path());
    let report = d
        .apply()
        .await
        .unwrap_or_else(|e| panic!("apply failed: {e}\n{}", fake.log().join("\n")));
    assert!(fake.problems().is_empty(), "{}", fake.problems().join("\n"));
    assert_eq!(fake.faults_left(), 0, "the 429 and the failed operation were served");

    // the image was imported from Cloud Storage
    let images = fake.items("global/images");
    assert_eq!(
        images["kubenow-v050"]["rawDisk"]["source"],
        "https://storage.googleapis.com/kubenow-images/kubenow-v050.tar.gz"
    );
    // network, subnetwork with the cluster CIDR, two firewall rules
    assert!(fake.items("global/networks").contains_key("lab-net"));
    assert_eq!(
        fake.items(&format!("regions/{}/subnetworks", common::fake_compute::REGION))["lab-subnet"]["ipCidrRange"],
        "10.0.0.0/24"
    );
    let fw = fake.items("global/firewalls");
    assert_eq!(fw["lab-sg"]["sourceTags"], serde_json::json!(["lab-sg"]));
    assert_eq!(
        fw["lab-sg-ingress"]["allowed"][0]["ports"],
        serde_json::json!(["22", "80", "443", "6443"])
    );

    // six instances, one bulkInsert per role group (plus the one that failed)
    let instances = fake.items(&format!("zones/{ZONE}/instances"));
    let names: Vec<&String> = instances.keys().collect();
    assert_eq!(
        names,
        [
            "lab-edge-1",
            "lab-edge-2",
            "lab-master-1",
            "lab-service-1",
            "lab-service-2",
            "lab-storage-1"
        ]
    );
    assert_eq!(fake.requests("POST", "/instances/bulkInsert"), 5);
    let master = &instances["lab-master-1"];
    assert_eq!(master.pointer("/networkInterfaces/0/networkIP").unwrap(), "10.0.0.10");
    assert_eq!(master["labels"]["vre-cluster"], "lab");
    assert_eq!(master["labels"]["vre-role"], "master");
    let items = master.pointer("/metadata/items").unwrap().as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["key"] == "user-data" && i["value"].as_str().unwrap().starts_with("#cloud-config"))
    );
    assert!(
        items
            .iter()
            .any(|i| i["key"] == "ssh-keys" && i["value"] == format!("ubuntu:{PUBLIC_KEY}"))
    );
    // reserved addresses: the master gets its own at creation; the two edges share one bulkInsert, so
    // theirs replace the ephemeral ones afterwards
    let addresses = fake.items(&format!("regions/{}/addresses", common::fake_compute::REGION));
    assert_eq!(nat_ip(master), addresses["lab-master-1-ip"]["address"]);
    for edge in ["lab-edge-1", "lab-edge-2"] {
        let ip = format!("{edge}-ip");
        assert_eq!(nat_ip(&instances[edge]), addresses[&ip]["address"]);
        assert_eq!(addresses[&ip]["status"], "IN_USE");
        assert_eq!(
            fake.requests("POST", &format!("/instances/{edge}/deleteAccessConfig")),
            1
        );
        assert_eq!(fake.requests("POST", &format!("/instances/{edge}/addAccessConfig")), 1);
    }
    assert_eq!(fake.requests("POST", "/instances/lab-master-1/addAccessConfig"), 0);
    assert_eq!(addresses["lab-master-1-internal-ip"]["address"], "10.0.0.10");
    // the storage node's data disk is attached
    let storage_disks = instances["lab-storage-1"]["disks"].as_array().unwrap();
    assert!(
        storage_disks
            .iter()
            .any(|d| d["deviceName"] == "vre-data"
                && d["source"].as_str().unwrap().ends_with("/disks/lab-storage-1-data"))
    );
    assert_eq!(
        report.outputs["master_public_ip"],
        addresses["lab-master-1-ip"]["address"].as_str().unwrap()
    );
    assert_eq!(report.outputs["master_private_ip"], "10.0.0.10");

    // a second apply finds everything and creates nothing
    let posts_before = fake
        .log()
        .iter()
        .filter(|l| l.starts_with("POST") && !l.ends_with("/wait") && !l.ends_with("/token"))
        .count();
    let again = deployment(spec.clone(), provider(&fake, &spec, dir.path()), dir.path());
    let second = again.apply().await.unwrap();
    assert_eq!(second.summary.create, 0, "{:?}", second.summary);
    let posts_after = fake
        .log()
        .iter()
        .filter(|l| l.starts_with("POST") && !l.ends_with("/wait") && !l.ends_with("/token"))
        .count();
    assert_eq!(posts_before, posts_after, "the second apply created something");

    // destroy removes everything but the imported image
    let destroyed = again
        .destroy()
        .await
        .unwrap_or_else(|e| panic!("destroy failed: {e}\n{}", fake.log().join("\n")));
    assert!(
        destroyed.deleted.len() >= 14,
        "{:?}",
        destroyed.deleted.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
    for coll in [
        "global/networks",
        "global/firewalls",
        &format!("zones/{ZONE}/instances"),
        &format!("zones/{ZONE}/disks"),
    ] {
        assert!(
            fake.items(coll).is_empty(),
            "{coll} left: {:?}",
            fake.items(coll).keys().collect::<Vec<_>>()
        );
    }
    assert!(
        fake.items(&format!("regions/{}/addresses", common::fake_compute::REGION))
            .is_empty()
    );
    assert!(
        fake.items(&format!("regions/{}/subnetworks", common::fake_compute::REGION))
            .is_empty()
    );
    assert!(fake.items("global/images").contains_key("kubenow-v050"));
    assert!(fake.problems().is_empty(), "{}", fake.problems().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_failure_stops_apply_with_the_clouds_message() {
    let fake = FakeCompute::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(&fake);
    spec.image.name = "ubuntu-2404-lts-amd64".into();
    spec.image.source = None;
    spec.provider_table
        .insert("image_project", TomlValue::String("ubuntu-os-cloud".into()));
    fake.fail_next_bulk_insert(
        "lab-service-",
        "QUOTA_EXCEEDED",
        "Quota 'CPUS' exceeded.  Limit: 8.0 in region europe-north1.",
    );
    let d = deployment(spec.clone(), provider(&fake, &spec, dir.path()), dir.path());
    let e = d.apply().await.unwrap_err().to_string();
    assert!(e.contains("QUOTA_EXCEEDED: Quota 'CPUS' exceeded."), "{e}");
    // the image came from the family in ubuntu-os-cloud; nothing was imported
    assert!(!fake.items("global/images").contains_key("ubuntu-2404-lts-amd64"));
    assert!(fake.problems().is_empty(), "{}", fake.problems().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_unknown_machine_types() {
    let fake = FakeCompute::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(&fake);
    spec.group_mut(Role::Service).flavor = "n9-huge-1024".into();
    let d = deployment(spec.clone(), provider(&fake, &spec, dir.path()), dir.path());
    let e = d.apply().await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let text = e.to_string();
    assert!(
        text.contains("nodes.service.flavor") && text.contains("n9-huge-1024"),
        "{text}"
    );
    assert_eq!(fake.requests("POST", "/instances/bulkInsert"), 0);
}
