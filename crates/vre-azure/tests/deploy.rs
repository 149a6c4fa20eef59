//! Deploys and destroys a cluster's cloud layer through `AzureProvider` and
//! the real engine (`vre_core::Deployment` with the in-memory test
//! orchestrator) against an in-memory Azure Resource Manager on 127.0.0.1
//! that checks every request against the ARM OpenAPI files. One request is
//! throttled (429 with Retry-After) and one VM's creation operation fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::fake_arm::{CLIENT_ID, CLIENT_SECRET, FakeArm, LOCATION, SUBSCRIPTION, TENANT};
use serde_json::Value;
use vre_azure::{AzureFactory, AzureProvider, PollPolicy};
use vre_core::spec::{Table, Value as TomlValue};
use vre_core::testing::FakeOrchestrator;
use vre_core::{ClusterSpec, Deployment, ProviderContext, RetryPolicy, Role};

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZyZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQ vre-test";

fn spec(fake: &FakeArm) -> ClusterSpec {
    let mut spec = ClusterSpec::new("lab", "azure");
    spec.image.name = "Canonical:ubuntu-24_04-lts:server:latest".into();
    spec.master_as_edge = false;
    for (role, count, flavor) in [
        (Role::Master, 1, "Standard_D2s_v5"),
        (Role::Service, 2, "Standard_D2s_v5"),
        (Role::Storage, 1, "Standard_D2s_v5"),
        (Role::Edge, 1, "Standard_B2s"),
    ] {
        let g = spec.group_mut(role);
        g.count = count;
        g.flavor = flavor.into();
        g.public_ip = matches!(role, Role::Master | Role::Edge);
        g.root_disk_gb = Some(64);
        g.volume_gb = (role == Role::Storage).then_some(128);
    }
    let mut t = Table::default();
    t.insert("location", TomlValue::String(LOCATION.into()));
    t.insert("authority", TomlValue::String(fake.base.clone()));
    t.insert("endpoint", TomlValue::String(fake.base.clone()));
    spec.provider_table = t;
    spec
}

/// The provider as `vre` builds it, from the service principal's environment variables.
fn provider(spec: &ClusterSpec, dir: &Path) -> AzureProvider {
    let mut ctx = ProviderContext::new(Arc::new(spec.clone()), dir.to_path_buf());
    ctx.env = BTreeMap::from([
        (vre_azure::TENANT_ENV.to_string(), TENANT.to_string()),
        (vre_azure::CLIENT_ENV.to_string(), CLIENT_ID.to_string()),
        (vre_azure::SECRET_ENV.to_string(), CLIENT_SECRET.to_string()),
        (vre_azure::SUBSCRIPTION_ENV.to_string(), SUBSCRIPTION.to_string()),
    ]);
    AzureFactory.build_provider(&ctx).unwrap().with_poll(PollPolicy {
        initial: Duration::from_millis(2),
        max: Duration::from_millis(20),
        factor: 2.0,
        timeout: Duration::from_secs(30),
    })
}

fn deployment(spec: ClusterSpec, dir: &Path) -> Deployment {
    let p = provider(&spec, dir);
    Deployment::builder(spec, dir)
        .provider(Arc::new(p))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir)))
        .public_key(PUBLIC_KEY)
        .retry(RetryPolicy::immediate(4))
        .build()
        .unwrap()
}

fn writes(fake: &FakeArm) -> usize {
    fake.log()
        .iter()
        .filter(|l| {
            (l.starts_with("PUT") || l.starts_with("POST") || l.starts_with("DELETE")) && !l.contains("/oauth2/")
        })
        .count()
}

fn private_ip(nic: &Value) -> &str {
    nic.pointer("/properties/ipConfigurations/0/properties/privateIPAddress")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_and_destroys_a_cluster_through_resource_manager() {
    let fake = FakeArm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&fake);
    fake.throttle_once("PUT", "/virtualNetworks/lab-net");
    fake.fail_vm_once("lab-service-2");
    let d = deployment(spec.clone(), dir.path());
    let report = d
        .apply()
        .await
        .unwrap_or_else(|e| panic!("apply failed: {e}\n{}", fake.log().join("\n")));
    assert!(fake.problems().is_empty(), "{}", fake.problems().join("\n"));
    assert_eq!(fake.faults_left(), 0, "the 429 and the failed VM operation were served");

    // the group, tagged, holds everything
    let groups = fake.resources("Microsoft.Resources/resourceGroups");
    assert_eq!(groups["lab-rg"]["tags"]["vre:cluster"], "lab");
    let vnet = &fake.resources("Microsoft.Network/virtualNetworks")["lab-net"];
    assert_eq!(
        vnet.pointer("/properties/subnets/0/properties/addressPrefix").unwrap(),
        "10.0.0.0/24"
    );
    let nsg = &fake.resources("Microsoft.Network/networkSecurityGroups")["lab-sg"];
    let rules = nsg.pointer("/properties/securityRules").unwrap().as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[1]["properties"]["destinationPortRanges"],
        serde_json::json!(["22", "80", "443", "6443"])
    );

    // five VMs, the failed one replaced; the master on its fixed address with its public IP
    let vms = fake.resources("Microsoft.Compute/virtualMachines");
    let names: Vec<&String> = vms.keys().collect();
    assert_eq!(
        names,
        [
            "lab-edge-1",
            "lab-master-1",
            "lab-service-1",
            "lab-service-2",
            "lab-storage-1"
        ]
    );
    assert!(
        vms.values()
            .all(|v| v["properties"]["provisioningState"] == "Succeeded")
    );
    assert_eq!(fake.count("PUT", "/virtualMachines/lab-service-2"), 2);
    assert_eq!(fake.count("DELETE", "/virtualMachines/lab-service-2"), 1);
    let nics = fake.resources("Microsoft.Network/networkInterfaces");
    assert_eq!(private_ip(&nics["lab-master-1-nic"]), "10.0.0.10");
    let pips = fake.resources("Microsoft.Network/publicIPAddresses");
    assert_eq!(
        nics["lab-master-1-nic"]
            .pointer("/properties/ipConfigurations/0/properties/publicIPAddress/id")
            .unwrap(),
        &pips["lab-master-1-ip"]["id"]
    );
    assert_eq!(pips["lab-edge-1-ip"]["sku"]["name"], "Standard");
    assert_eq!(vms["lab-master-1"]["tags"]["vre:role"], "master");
    assert_eq!(
        vms["lab-master-1"]
            .pointer("/properties/osProfile/linuxConfiguration/ssh/publicKeys/0/keyData")
            .unwrap(),
        PUBLIC_KEY
    );
    // the storage node's data disk is attached at LUN 0
    let data = vms["lab-storage-1"]
        .pointer("/properties/storageProfile/dataDisks/0")
        .unwrap();
    assert_eq!(data["lun"], 0);
    assert!(
        data["managedDisk"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/disks/lab-storage-1-data")
    );
    assert_eq!(report.outputs["master_private_ip"], "10.0.0.10");
    assert_eq!(
        report.outputs["master_public_ip"],
        pips["lab-master-1-ip"]["properties"]["ipAddress"].as_str().unwrap()
    );

    // a second apply finds everything and writes nothing
    let before = writes(&fake);
    let again = deployment(spec.clone(), dir.path());
    let second = again.apply().await.unwrap();
    assert_eq!(second.summary.create, 0, "{:?}", second.summary);
    assert_eq!(writes(&fake), before, "the second apply wrote something");

    // destroy is one resource-group delete, then the group is gone
    let destroyed = again
        .destroy()
        .await
        .unwrap_or_else(|e| panic!("destroy failed: {e}\n{}", fake.log().join("\n")));
    assert!(destroyed.deleted.iter().any(|r| r.name == "lab-rg"));
    assert_eq!(fake.count("DELETE", "/resourcegroups/lab-rg"), 1);
    assert!(fake.resources("Microsoft.Resources/resourceGroups").is_empty());
    assert!(fake.resources("Microsoft.Compute/virtualMachines").is_empty());
    assert!(fake.resources("Microsoft.Compute/disks").is_empty());
    assert!(fake.problems().is_empty(), "{}", fake.problems().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_group_of_someone_else_is_never_touched() {
    let fake = FakeArm::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_foreign_group("lab-rg");
    let spec = spec(&fake);
    let d = deployment(spec, dir.path());
    let e = d.apply().await.unwrap_err().to_string();
    assert!(e.contains("azure.resource_group"), "{e}");
    // destroy finds nothing of the cluster and deletes nothing
    let destroyed = d.destroy().await.unwrap();
    assert!(destroyed.deleted.is_empty());
    assert_eq!(fake.count("DELETE", "/"), 0);
    assert!(
        fake.resources("Microsoft.Resources/resourceGroups")
            .contains_key("lab-rg")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_unknown_vm_sizes() {
    let fake = FakeArm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(&fake);
    spec.group_mut(Role::Service).flavor = "Standard_Z99".into();
    let d = deployment(spec, dir.path());
    let e = d.apply().await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let text = e.to_string();
    assert!(
        text.contains("nodes.service.flavor") && text.contains("Standard_Z99"),
        "{text}"
    );
    assert_eq!(fake.count("PUT", "/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_stops_at_the_token_endpoint() {
    let fake = FakeArm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&fake);
    let mut ctx = ProviderContext::new(Arc::new(spec.clone()), dir.path().to_path_buf());
    ctx.env = BTreeMap::from([
        (vre_azure::TENANT_ENV.to_string(), TENANT.to_string()),
        (vre_azure::CLIENT_ENV.to_string(), CLIENT_ID.to_string()),
        (vre_azure::SECRET_ENV.to_string(), "not-the-secret".to_string()),
        (vre_azure::SUBSCRIPTION_ENV.to_string(), SUBSCRIPTION.to_string()),
    ]);
    let p = AzureFactory.build_provider(&ctx).unwrap();
    let d = Deployment::builder(spec, dir.path())
        .provider(Arc::new(p))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir.path())))
        .public_key(PUBLIC_KEY)
        .build()
        .unwrap();
    let e = d.apply().await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().contains("AADSTS7000215") && e.to_string().contains("AZURE_CLIENT_SECRET"),
        "{e}"
    );
}
