//! The persistent volume controller and a dynamic provisioner: claims get
//! their class's default, bind to a matching static volume or get a new one
//! from their StorageClass (at once, or when a pod is scheduled for
//! WaitForFirstConsumer classes); released volumes are reclaimed; the
//! protection finalizers come off once nothing uses the object.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::At as _;
use super::{CONTROLLER_MANAGER, Snapshot, list_of, log_err};
use crate::kube::cluster::{CORE, Cluster};
use crate::kube::registry::{DeleteOptions, set_at};

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn name(obj: &Value) -> &str {
    obj.at("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.at("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The default StorageClass, if exactly one (or the newest of several) is marked.
pub fn default_class(classes: &[Arc<Value>]) -> Option<&Arc<Value>> {
    classes
        .iter()
        .filter(|c| annotation(c, DEFAULT_CLASS) == Some("true") || annotation(c, DEFAULT_CLASS_BETA) == Some("true"))
        .max_by_key(|c| {
            c.at("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
}

/// Parses a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`) to bytes.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * mult)
}

fn request(pvc: &Value) -> Option<&str> {
    pvc.at("/spec/resources/requests/storage").and_then(Value::as_str)
}

fn modes(v: &Value, pointer: &str) -> HashSet<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn pv_fits(pv: &Value, pvc: &Value, class: &str) -> bool {
    if pv.at("/status/phase").and_then(Value::as_str) != Some("Available") || pv.at("/spec/claimRef/uid").is_some() {
        return false;
    }
    if pv.at("/spec/storageClassName").and_then(Value::as_str).unwrap_or("") != class {
        return false;
    }
    let want = request(pvc).and_then(quantity_bytes).unwrap_or(0.0);
    let have = pv
        .at("/spec/capacity/storage")
        .and_then(Value::as_str)
        .and_then(quantity_bytes)
        .unwrap_or(0.0);
    have >= want && modes(pvc, "/spec/accessModes").is_subset(&modes(pv, "/spec/accessModes"))
}

/// One pass of the volume controllers.
pub fn reconcile(cluster: &Arc<Cluster>, snap: &Snapshot) {
    let classes = list_of(cluster, "storage.k8s.io", "storageclasses", None);
    let pvcs = list_of(cluster, CORE, "persistentvolumeclaims", None);
    let mut pvs = list_of(cluster, CORE, "persistentvolumes", None);
    let default = default_class(&classes).map(|c| name(c).to_string());

    // Static volumes become Available; released ones are reclaimed.
    let claim_uids: HashSet<&str> = pvcs
        .iter()
        .filter_map(|c| c.at("/metadata/uid").and_then(Value::as_str))
        .collect();
    for pv in &pvs {
        let phase = pv.at("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
        let claim = pv.at("/spec/claimRef/uid").and_then(Value::as_str);
        let terminating = pv.at("/metadata/deletionTimestamp").is_some();
        if terminating {
            if phase != "Bound" {
                strip_finalizer(cluster, "persistentvolumes", "", name(pv), PV_PROTECTION);
            }
            continue;
        }
        match (phase, claim) {
            ("Pending", None) => set_pv_phase(cluster, name(pv), "Available"),
            ("Bound", Some(uid)) if !claim_uids.contains(uid) => {
                if pv.at("/spec/persistentVolumeReclaimPolicy").and_then(Value::as_str) == Some("Delete") {
                    strip_finalizer(cluster, "persistentvolumes", "", name(pv), PV_PROTECTION);
                    log_err(
                        "reclaim (delete) a released volume",
                        cluster.delete_system((CORE, "persistentvolumes"), "", name(pv), &DeleteOptions::default()),
                    );
                } else {
                    set_pv_phase(cluster, name(pv), "Released");
                }
            }
            _ => {}
        }
    }

    let used_claims: HashSet<(String, String)> = snap
        .pods
        .iter()
        .filter(|p| p.at("/metadata/deletionTimestamp").is_none())
        .filter(|p| {
            !matches!(
                p.at("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        })
        .flat_map(|p| {
            let ns = p
                .at("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            p.at("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.at("/persistentVolumeClaim/claimName").and_then(Value::as_str))
                .map(move |c| (ns.clone(), c.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();

    for pvc in &pvcs {
        let ns = pvc
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let claim = name(pvc).to_string();
        if pvc.at("/metadata/deletionTimestamp").is_some() {
            if !used_claims.contains(&(ns.clone(), claim.clone())) {
                strip_finalizer(cluster, "persistentvolumeclaims", &ns, &claim, PVC_PROTECTION);
            }
            continue;
        }
        if pvc.at("/status/phase").and_then(Value::as_str) == Some("Bound") {
            continue;
        }
        // Retroactive default class for claims that name none.
        let class_field = pvc.at("/spec/storageClassName");
        if class_field.is_none() || class_field == Some(&Value::Null) {
            if let Some(d) = &default {
                let d = d.clone();
                log_err(
                    "assign the default StorageClass",
                    cluster.mutate(
                        (CORE, "persistentvolumeclaims"),
                        &ns,
                        &claim,
                        false,
                        CONTROLLER_MANAGER,
                        |v| {
                            set_at(v, &["spec", "storageClassName"], json!(d));
                        },
                    ),
                );
            }
            continue;
        }
        let class = class_field.and_then(Value::as_str).unwrap_or("").to_string();
        // A volume named by the claim, or a matching static one.
        let named = pvc.at("/spec/volumeName").and_then(Value::as_str);
        let static_pv = match named {
            Some(n) => pvs
                .iter()
                .find(|pv| name(pv) == n && pv.at("/metadata/deletionTimestamp").is_none())
                .cloned(),
            None => pvs.iter().find(|pv| pv_fits(pv, pvc, &class)).cloned(),
        };
        if let Some(pv) = static_pv {
            bind(cluster, pvc, &pv, None);
            pvs.retain(|p| name(p) != name(&pv));
            continue;
        }
        if class.is_empty() || named.is_some() {
            continue;
        }
        let Some(sc) = classes.iter().find(|c| name(c) == class) else {
            continue;
        };
        let provisioner = sc.get("provisioner").and_then(Value::as_str).unwrap_or("");
        if provisioner == "kubernetes.io/no-provisioner" {
            continue;
        }
        let wffc = sc.get("volumeBindingMode").and_then(Value::as_str) == Some("WaitForFirstConsumer");
        let selected = annotation(pvc, "volume.kubernetes.io/selected-node").map(str::to_string);
        if wffc && selected.is_none() {
            continue;
        }
        let pvc_uid = pvc.at("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        let pv_name = format!("pvc-{pvc_uid}");
        let mut pv = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": provisioner, "volume.kubernetes.io/provisioner-deletion-secret-name": "", "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
            },
            "spec": {
                "capacity": {"storage": request(pvc).unwrap_or("1Gi")},
                "accessModes": pvc.at("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy").cloned().unwrap_or(json!("Delete")),
                "storageClassName": class,
                "volumeMode": pvc.at("/spec/volumeMode").cloned().unwrap_or(json!("Filesystem")),
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim, "uid": pvc_uid},
                "csi": {"driver": provisioner, "volumeHandle": pv_name, "fsType": "ext4"},
            },
        });
        if let Some(opts) = sc.get("mountOptions") {
            pv["spec"]["mountOptions"] = opts.clone();
        }
        if let Some(node) = &selected {
            pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
        }
        if let Some(created) = log_err(
            "provision a volume",
            cluster.create_system((CORE, "persistentvolumes"), pv, CONTROLLER_MANAGER),
        )
        .flatten()
        {
            bind(cluster, pvc, &created, Some(provisioner));
        }
    }
}

fn set_pv_phase(cluster: &Cluster, pv: &str, phase: &str) {
    log_err(
        "set a volume's phase",
        cluster.mutate((CORE, "persistentvolumes"), "", pv, true, CONTROLLER_MANAGER, |v| {
            v["status"] = json!({"phase": phase});
        }),
    );
}

fn strip_finalizer(cluster: &Cluster, resource: &str, ns: &str, obj: &str, finalizer: &str) {
    log_err(
        "remove a protection finalizer",
        cluster.mutate((CORE, resource), ns, obj, false, CONTROLLER_MANAGER, |v| {
            if let Some(f) = v.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                f.retain(|x| x != finalizer);
            }
        }),
    );
}

fn bind(cluster: &Cluster, pvc: &Value, pv: &Value, provisioner: Option<&str>) {
    let ns = pvc
        .at("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let claim = name(pvc).to_string();
    let pv_name = name(pv).to_string();
    let pvc_uid = pvc.at("/metadata/uid").cloned().unwrap_or(Value::Null);
    log_err(
        "bind a volume to its claim",
        cluster.mutate((CORE, "persistentvolumes"), "", &pv_name, false, CONTROLLER_MANAGER, |v| {
            set_at(v, &["spec", "claimRef"], json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim, "uid": pvc_uid}));
            set_at(v, &["metadata", "annotations", "pv.kubernetes.io/bound-by-controller"], json!("yes"));
        }),
    );
    set_pv_phase(cluster, &pv_name, "Bound");
    let capacity = pv.at("/spec/capacity").cloned().unwrap_or(json!({}));
    let access = pv.at("/spec/accessModes").cloned().unwrap_or(json!([]));
    log_err(
        "record the binding on the claim",
        cluster.mutate(
            (CORE, "persistentvolumeclaims"),
            &ns,
            &claim,
            false,
            CONTROLLER_MANAGER,
            |v| {
                set_at(v, &["spec", "volumeName"], json!(pv_name));
                let mut annotations = vec![
                    ("pv.kubernetes.io/bind-completed", "yes"),
                    ("pv.kubernetes.io/bound-by-controller", "yes"),
                ];
                if let Some(p) = provisioner {
                    annotations.push(("volume.beta.kubernetes.io/storage-provisioner", p));
                    annotations.push(("volume.kubernetes.io/storage-provisioner", p));
                }
                for (k, val) in annotations {
                    set_at(v, &["metadata", "annotations", k], json!(val));
                }
            },
        ),
    );
    log_err(
        "mark the claim Bound",
        cluster.mutate(
            (CORE, "persistentvolumeclaims"),
            &ns,
            &claim,
            true,
            CONTROLLER_MANAGER,
            |v| {
                v["status"] = json!({"phase": "Bound", "accessModes": access, "capacity": capacity});
            },
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity_bytes("500M"), Some(5e8));
        assert_eq!(quantity_bytes("1e3"), Some(1000.0));
        assert_eq!(quantity_bytes("12XB"), None);
    }

    #[test]
    fn static_volumes_must_fit() {
        let pv = json!({"spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "storageClassName": "manual"},
            "status": {"phase": "Available"}});
        let pvc = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}, "accessModes": ["ReadWriteOnce"]}});
        assert!(pv_fits(&pv, &pvc, "manual"));
        assert!(!pv_fits(&pv, &pvc, "other"));
        let big = json!({"spec": {"resources": {"requests": {"storage": "20Gi"}}, "accessModes": ["ReadWriteOnce"]}});
        assert!(!pv_fits(&pv, &big, "manual"));
    }
}
