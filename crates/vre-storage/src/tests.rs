//! Objects per spec variant: storage node counts, object storage on/off,
//! edge on/off; replica rule; placement against the taints of each role.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use vre_core::spec::HttpsMode;
use vre_core::{ClusterFacts, ClusterSpec, Manifest, Microservice, ReadinessCheck, Role};
use vre_microservice_kit::manifest_lint::problems;
use vre_microservice_kit::placement::{taints_of, tolerates};
use vre_microservice_kit::testing::cluster_facts;

use crate::*;

fn facts(dir: &Path, storage: u32, object_storage: bool, lb: bool) -> ClusterFacts {
    let mut spec = ClusterSpec::new("lab", "sim");
    spec.group_mut(Role::Service).count = 2;
    spec.group_mut(Role::Storage).count = storage;
    spec.storage.enabled = storage > 0;
    spec.storage.object_storage = object_storage;
    spec.loadbalancer.enabled = lb;
    spec.loadbalancer.https = HttpsMode::None;
    let mut f = cluster_facts(spec, dir, |n, i, _| {
        // the cloud reported a device for all but the third storage node
        n.volume_device = (n.role == Role::Storage && i != 3).then(|| "/dev/vdb".to_string());
    });
    f.domain = Some("lab.example.org".into());
    f
}

fn all(f: &ClusterFacts) -> Vec<Manifest> {
    let mut v = SharedStorage::new().objects(f).unwrap();
    v.extend(ObjectStorage::new().objects(f).unwrap());
    v
}

/// The script Deployment `name`'s container runs (`/bin/sh -ec <script>`).
fn shell_command(objects: &[Manifest], name: &str) -> String {
    get(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_string()
}

fn get<'a>(objects: &'a [Manifest], kind: &str, name: &str) -> &'a Value {
    &objects
        .iter()
        .find(|m| m.kind() == kind && m.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
        .0
}

#[test]
fn replica_rule_for_1_2_3_5_storage_nodes() {
    let got: Vec<(u32, String)> = [1usize, 2, 3, 5]
        .into_iter()
        .map(|n| (replica_count(n), replication_code(replica_count(n))))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "000".into()),
            (2, "001".into()),
            (3, "002".into()),
            (3, "002".into())
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for (n, code) in [(1, "000"), (2, "001"), (3, "002"), (5, "002")] {
        let objects = all(&facts(dir.path(), n, true, true));
        assert_eq!(
            get(&objects, "StorageClass", STORAGE_CLASS)["parameters"]["replication"],
            code,
            "{n} nodes"
        );
        let master = shell_command(&objects, "seaweedfs-master");
        assert!(
            master.contains(&format!("-defaultReplication={code}")),
            "{n} nodes: {master}"
        );
        let filer = shell_command(&objects, "seaweedfs-filer");
        assert!(
            filer.contains(&format!("-defaultReplicaPlacement={code}")),
            "{n} nodes: {filer}"
        );
    }
}

#[test]
fn every_variant_is_well_formed_and_pinned() {
    let dir = tempfile::tempdir().unwrap();
    for n in [1, 2, 3, 5] {
        for object_storage in [false, true] {
            for lb in [false, true] {
                let objects = all(&facts(dir.path(), n, object_storage, lb));
                let p = problems(&objects);
                assert!(p.is_empty(), "{n} nodes, s3={object_storage}, lb={lb}: {p:#?}");
                let names: BTreeSet<String> = objects.iter().map(|m| m.describe()).collect();
                assert_eq!(names.contains("Deployment/vre-storage/seaweedfs-s3"), object_storage);
                assert_eq!(names.contains("Ingress/vre-storage/s3"), object_storage && lb);
                // Service selectors select pods of some workload
                for svc in objects.iter().filter(|m| m.kind() == "Service") {
                    let sel = svc.0["spec"]["selector"].as_object().unwrap();
                    let selected = objects.iter().filter(|w| w.0["spec"]["template"].is_object()).any(|w| {
                        sel.iter()
                            .all(|(k, v)| &w.0["spec"]["template"]["metadata"]["labels"][k] == v)
                    });
                    assert!(selected, "{} selects no pod", svc.describe());
                }
            }
        }
    }
}

#[test]
fn storage_pods_land_on_storage_nodes_and_metadata_on_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let objects = all(&facts(dir.path(), 3, true, true));
    let storage_taint = taints_of(Role::Storage, false);
    for (kind, name) in [
        ("DaemonSet", "seaweedfs-volume"),
        ("Deployment", "seaweedfs-master"),
        ("Deployment", "seaweedfs-filer"),
        ("Deployment", "seaweedfs-s3"),
    ] {
        let pod = &get(&objects, kind, name)["spec"]["template"]["spec"];
        let tol: Vec<Value> = pod["tolerations"].as_array().unwrap().clone();
        assert!(
            tolerates(&tol, &storage_taint),
            "{name} must tolerate the storage taint"
        );
        assert!(
            !tolerates(&tol, &taints_of(Role::Master, false)),
            "{name} must stay off the master"
        );
    }
    let ds = &get(&objects, "DaemonSet", "seaweedfs-volume")["spec"]["template"]["spec"];
    let expr = &ds["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0];
    assert_eq!(expr["key"], "vre.io/role");
    assert_eq!(expr["values"][0], "storage");
    assert_eq!(ds["hostNetwork"], true);
    for name in ["seaweedfs-master", "seaweedfs-filer"] {
        let pod = &get(&objects, "Deployment", name)["spec"]["template"]["spec"];
        let f = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0];
        assert_eq!(f["values"][0], "lab-storage-1", "{name}");
        assert_eq!(pod["initContainers"][0]["name"], "prepare-disk");
    }
    // the CSI node plugin and mount service run on every node, whatever its taints
    for name in ["seaweedfs-csi-node", "seaweedfs-mount"] {
        let tol: Vec<Value> = get(&objects, "DaemonSet", name)["spec"]["template"]["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .clone();
        for role in Role::ALL {
            assert!(tolerates(&tol, &taints_of(role, false)), "{name} on {role}");
        }
    }
}

#[test]
fn devices_reported_by_the_cloud_reach_the_disk_script() {
    let dir = tempfile::tempdir().unwrap();
    let objects = all(&facts(dir.path(), 3, false, false));
    let cm = get(&objects, "ConfigMap", "seaweedfs-disks");
    assert_eq!(
        cm["data"]["devices"],
        "lab-storage-1=/dev/vdb\nlab-storage-2=/dev/vdb\n"
    );
    let script = cm["data"]["prepare-disk.sh"].as_str().unwrap();
    assert!(script.contains("blkid -p \"$dev\"") && script.contains("mkfs.ext4"));
}

#[test]
fn shared_class_is_the_default_rwx_class_and_readiness_checks_a_claim() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts(dir.path(), 2, true, true);
    let objects = all(&f);
    let sc = get(&objects, "StorageClass", STORAGE_CLASS);
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(
        sc["provisioner"],
        get(&objects, "CSIDriver", CSI_DRIVER)["metadata"]["name"]
    );
    let pvc = get(&objects, "PersistentVolumeClaim", CHECK_CLAIM);
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(pvc["spec"]["storageClassName"], STORAGE_CLASS);
    let ready = SharedStorage::new().readiness(&f);
    assert!(ready.contains(&ReadinessCheck::PvcBound {
        namespace: NAMESPACE.into(),
        name: CHECK_CLAIM.into()
    }));
    // every workload it applies is waited on
    let rollouts: BTreeSet<String> = ready
        .iter()
        .filter_map(|c| match c {
            ReadinessCheck::Rollout { kind, name, .. } => Some(format!("{kind}/{name}")),
            _ => None,
        })
        .collect();
    let workloads: BTreeSet<String> = SharedStorage::new()
        .objects(&f)
        .unwrap()
        .iter()
        .filter(|m| matches!(m.kind(), "Deployment" | "DaemonSet"))
        .map(|m| format!("{}/{}", m.kind(), m.name()))
        .collect();
    assert_eq!(rollouts, workloads);
    assert_eq!(ObjectStorage::new().depends_on(), vec!["storage".to_string()]);
}

#[test]
fn s3_keys_are_generated_once_and_land_in_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts(dir.path(), 1, true, true);
    let first = ObjectStorage::new().objects(&f).unwrap();
    let again = ObjectStorage::new().objects(&f).unwrap();
    assert_eq!(first, again, "re-applying must not rotate the keys");
    let (access, secret) = s3_keys(&f).unwrap();
    assert_eq!((access.len(), secret.len()), (20, 40));
    use base64::Engine;
    let dec = |v: &Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let creds = get(&first, "Secret", "s3-credentials");
    assert_eq!(dec(&creds["data"]["AWS_ACCESS_KEY_ID"]), access);
    assert_eq!(dec(&creds["data"]["AWS_SECRET_ACCESS_KEY"]), secret);
    assert_eq!(dec(&creds["data"]["S3_ENDPOINT"]), "http://s3.lab.example.org");
    let config: Value =
        serde_json::from_str(&dec(&get(&first, "Secret", "seaweedfs-s3-config")["data"]["s3.json"])).unwrap();
    assert_eq!(config["identities"][0]["credentials"][0]["accessKey"], access.as_str());
    let ing = get(&first, "Ingress", "s3");
    assert_eq!(ing["spec"]["rules"][0]["host"], "s3.lab.example.org");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        S3_SERVICE
    );
    let ep = ObjectStorage::new().endpoints(&f);
    assert_eq!(ep[0].url, "http://s3.lab.example.org");
}

#[test]
fn disabled_means_no_objects_and_no_storage_nodes_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let off = facts(dir.path(), 0, false, true);
    assert!(SharedStorage::new().objects(&off).unwrap().is_empty());
    assert!(ObjectStorage::new().objects(&off).unwrap().is_empty());
    assert!(SharedStorage::new().readiness(&off).is_empty());
    let mut broken = facts(dir.path(), 0, false, true);
    Arc::make_mut(&mut broken.spec).storage.enabled = true;
    let e = SharedStorage::new().objects(&broken).unwrap_err();
    assert!(e.to_string().starts_with("storage.enabled: "), "{e}");
    let s3_off = facts(dir.path(), 2, false, true);
    assert!(ObjectStorage::new().objects(&s3_off).unwrap().is_empty());
    assert!(!SharedStorage::new().objects(&s3_off).unwrap().is_empty());
}
