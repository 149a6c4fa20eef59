//! The Kubernetes objects of the shared storage and of the S3 gateway.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use vre_core::{ClusterFacts, Endpoint, Error, Manifest, Microservice, ReadinessCheck, Result, Role};
use vre_microservice_kit::placement::{node_affinity, role_affinity, tolerations};
use vre_microservice_kit::{AppRoute, app_ingress, app_url, labels, local_secret, selector};

/// Name of the shared-storage microservice.
pub const NAME: &str = "storage";
/// Name of the object-storage microservice.
pub const OBJECT_NAME: &str = "object-storage";
/// Namespace of every storage object.
pub const NAMESPACE: &str = "vre-storage";
/// The ReadWriteMany StorageClass (the cluster default).
pub const STORAGE_CLASS: &str = "vre-shared";
/// The CSI driver's name (the StorageClass provisioner).
pub const CSI_DRIVER: &str = "seaweedfs-csi-driver";
pub const MASTER_SERVICE: &str = "seaweedfs-master";
pub const FILER_SERVICE: &str = "seaweedfs-filer";
pub const S3_SERVICE: &str = "seaweedfs-s3";
/// Host label of the S3 endpoint (`s3.<domain>`).
pub const S3_HOST: &str = "s3";
/// Local secret files (in `<dir>/.vre/secrets/`) of the S3 keys.
pub const S3_ACCESS_KEY_FILE: &str = "s3-access-key";
pub const S3_SECRET_KEY_FILE: &str = "s3-secret-key";
/// The claim whose binding proves the storage works.
pub const CHECK_CLAIM: &str = "vre-storage-check";

/// Pinned images.
pub const SEAWEEDFS_IMAGE: &str = "chrislusf/seaweedfs:4.44";
pub const CSI_DRIVER_IMAGE: &str = "chrislusf/seaweedfs-csi-driver:v1.4.29";
pub const CSI_MOUNT_IMAGE: &str = "chrislusf/seaweedfs-mount:v1.4.29";
pub const CSI_PROVISIONER_IMAGE: &str = "registry.k8s.io/sig-storage/csi-provisioner:v5.2.0";
pub const CSI_REGISTRAR_IMAGE: &str = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0";
pub const CSI_LIVENESS_IMAGE: &str = "registry.k8s.io/sig-storage/livenessprobe:v2.15.0";
/// The image of the disk preparation (runs the host's own tools through nsenter).
pub const PREPARE_IMAGE: &str = "debian:12.11-slim";

const DATA_HOST_DIR: &str = "/var/lib/vre/storage";
const KUBELET_DIR: &str = "/var/lib/kubelet";
const MOUNT_SOCKET_DIR: &str = "/var/lib/seaweedfs-mount";
const PREPARE_SCRIPT: &str = include_str!("prepare-disk.sh");
const APP: &str = "seaweedfs";

/// Copies of every chunk for `storage_nodes` storage nodes: 1 -> 1, 2 -> 2, 3 or more -> 3.
pub fn replica_count(storage_nodes: usize) -> u32 {
    match storage_nodes {
        0 | 1 => 1,
        2 => 2,
        _ => 3,
    }
}

/// SeaweedFS's replica placement for `copies` copies on distinct servers of
/// one rack (`xyz`: extra copies in other data centers, other racks, other
/// servers): 1 -> `000`, 2 -> `001`, 3 -> `002`.
pub fn replication_code(copies: u32) -> String {
    format!("00{}", copies.clamp(1, 3) - 1)
}

fn master_addr() -> String {
    format!("{MASTER_SERVICE}.{NAMESPACE}.svc:9333")
}

fn filer_addr() -> String {
    format!("{FILER_SERVICE}.{NAMESPACE}.svc:8888")
}

/// The storage nodes, in name order (node 1 holds the master and the filer).
fn storage_nodes(facts: &ClusterFacts) -> Vec<&vre_core::NodeFact> {
    let mut nodes: Vec<_> = facts.nodes_with(Role::Storage).collect();
    nodes.sort_by(|a, b| {
        let idx = |n: &str| {
            n.rsplit('-')
                .next()
                .and_then(|i| i.parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        };
        idx(&a.name).cmp(&idx(&b.name)).then_with(|| a.name.cmp(&b.name))
    });
    nodes
}

fn meta(name: &str, component: &str) -> Value {
    json!({"name": name, "namespace": NAMESPACE, "labels": labels(APP, component)})
}

fn env_field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// The init container that formats and mounts the node's data volume.
fn prepare_container() -> Value {
    json!({
        "name": "prepare-disk",
        "image": PREPARE_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--",
            "flock", "/run/vre-storage.lock", "sh", "-c", "$(SCRIPT)", "prepare-disk", "$(NODE_NAME)", "$(DEVICES)",
        ],
        "env": [
            env_field("NODE_NAME", "spec.nodeName"),
            {"name": "SCRIPT", "valueFrom": {"configMapKeyRef": {"name": "seaweedfs-disks", "key": "prepare-disk.sh"}}},
            {"name": "DEVICES", "valueFrom": {"configMapKeyRef": {"name": "seaweedfs-disks", "key": "devices"}}},
        ],
        "securityContext": {"privileged": true},
    })
}

/// `weed <args>` in a shell that first creates the component's directory.
fn weed(dir: &str, args: &[String]) -> Value {
    json!([
        "/bin/sh",
        "-ec",
        format!(
            "mkdir -p {dir}\nexec /usr/bin/weed -logtostderr=true {}",
            args.join(" ")
        )
    ])
}

fn data_mount() -> Value {
    json!({"name": "data", "mountPath": "/data", "mountPropagation": "HostToContainer"})
}

fn data_volume() -> Value {
    json!({"name": "data", "hostPath": {"path": DATA_HOST_DIR, "type": "DirectoryOrCreate"}})
}

fn http_probe(path: &str, port: u16) -> Value {
    json!({"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 6})
}

fn tcp_probe(port: u16) -> Value {
    json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 6})
}

/// A single-instance metadata server (master, filer) pinned to `node`.
fn pinned_deployment(component: &str, node: &str, command: Value, ports: Value, probe: Value) -> Manifest {
    let name = format!("seaweedfs-{component}");
    Manifest::new(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(&name, component),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(APP, component)},
            "template": {
                "metadata": {"labels": labels(APP, component)},
                "spec": {
                    "hostPID": true,
                    "affinity": node_affinity(node),
                    "tolerations": tolerations(&[Role::Storage]),
                    "initContainers": [prepare_container()],
                    "containers": [{
                        "name": component,
                        "image": SEAWEEDFS_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": command,
                        "env": [env_field("POD_IP", "status.podIP")],
                        "ports": ports,
                        "readinessProbe": probe,
                        "volumeMounts": [data_mount()],
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                    }],
                    "volumes": [data_volume()],
                }
            }
        }
    }))
}

/// Container ports (TCP) named as the Service of the same component names them.
fn container_ports(ports: &[(&str, u16)]) -> Value {
    ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"}))
        .collect()
}

fn service(name: &str, component: &str, ports: &[(&str, u16)]) -> Manifest {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "targetPort": p, "protocol": "TCP"}))
        .collect();
    Manifest::new(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, component),
        "spec": {"selector": selector(APP, component), "ports": ports},
    }))
}

fn volume_daemonset() -> Manifest {
    let args = vec![
        "volume".to_string(),
        "-dir=/data/volume".into(),
        "-max=0".into(),
        "-minFreeSpace=5".into(),
        "-ip=$(HOST_IP)".into(),
        "-ip.bind=0.0.0.0".into(),
        "-port=8080".into(),
        format!("-master={}", master_addr()),
    ];
    Manifest::new(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("seaweedfs-volume", "volume"),
        "spec": {
            "selector": {"matchLabels": selector(APP, "volume")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels(APP, "volume")},
                "spec": {
                    "hostNetwork": true,
                    "hostPID": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "affinity": role_affinity(&[Role::Storage]),
                    "tolerations": tolerations(&[Role::Storage]),
                    "initContainers": [prepare_container()],
                    "containers": [{
                        "name": "volume",
                        "image": SEAWEEDFS_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": weed("/data/volume", &args),
                        "env": [env_field("HOST_IP", "status.hostIP")],
                        "ports": [
                            {"name": "http", "containerPort": 8080, "hostPort": 8080, "protocol": "TCP"},
                            {"name": "grpc", "containerPort": 18080, "hostPort": 18080, "protocol": "TCP"},
                        ],
                        "readinessProbe": http_probe("/status", 8080),
                        "volumeMounts": [data_mount()],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                    }],
                    "volumes": [data_volume()],
                }
            }
        }
    }))
}

fn csi_objects() -> Vec<Manifest> {
    let all_nodes = json!([{"operator": "Exists"}]);
    let socket_dir = "/var/lib/csi/sockets/pluginproxy";
    let controller = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("seaweedfs-csi-controller", "csi-controller"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(APP, "csi-controller")},
            "template": {
                "metadata": {"labels": labels(APP, "csi-controller")},
                "spec": {
                    "serviceAccountName": "seaweedfs-csi-controller",
                    "priorityClassName": "system-cluster-critical",
                    "containers": [
                        {
                            "name": "csi-plugin",
                            "image": CSI_DRIVER_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "--endpoint=unix://$(SOCKET_DIR)/csi.sock",
                                format!("--filer={}", filer_addr()),
                                format!("--driverName={CSI_DRIVER}"),
                                "--nodeid=$(NODE_ID)",
                                "--components=controller",
                                "--attacher=false",
                            ],
                            "env": [{"name": "SOCKET_DIR", "value": socket_dir}, env_field("NODE_ID", "spec.nodeName")],
                            "ports": [{"name": "healthz", "containerPort": 9808, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "socket-dir", "mountPath": socket_dir}],
                        },
                        {
                            "name": "csi-provisioner",
                            "image": CSI_PROVISIONER_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                format!("--csi-address={socket_dir}/csi.sock"),
                                "--leader-election",
                                format!("--leader-election-namespace={NAMESPACE}"),
                                "--http-endpoint=:9809",
                            ],
                            "ports": [{"name": "provisioner", "containerPort": 9809, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "socket-dir", "mountPath": socket_dir}],
                        },
                        {
                            "name": "liveness-probe",
                            "image": CSI_LIVENESS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [format!("--csi-address={socket_dir}/csi.sock"), "--http-endpoint=:9808"],
                            "volumeMounts": [{"name": "socket-dir", "mountPath": socket_dir}],
                        },
                    ],
                    "volumes": [{"name": "socket-dir", "emptyDir": {}}],
                }
            }
        }
    });
    let host_dir = |name: &str, path: &str, kind: &str| json!({"name": name, "hostPath": {"path": path, "type": kind}});
    let bidirectional =
        |name: &str, path: &str| json!({"name": name, "mountPath": path, "mountPropagation": "Bidirectional"});
    let plugin_dir = format!("{KUBELET_DIR}/plugins/{CSI_DRIVER}");
    // what the CSI plugin and the mount service both mount: the kubelet's
    // plugin and pod directories, the devices, the cache and the mount socket
    let shared_mounts = [
        bidirectional("plugins-dir", &format!("{KUBELET_DIR}/plugins")),
        bidirectional("pods-dir", &format!("{KUBELET_DIR}/pods")),
        json!({"name": "dev", "mountPath": "/dev"}),
        json!({"name": "cache", "mountPath": "/var/cache/seaweedfs"}),
        json!({"name": "mount-socket", "mountPath": MOUNT_SOCKET_DIR}),
    ];
    let shared_volumes = [
        host_dir("plugins-dir", &format!("{KUBELET_DIR}/plugins"), "Directory"),
        host_dir("pods-dir", &format!("{KUBELET_DIR}/pods"), "Directory"),
        host_dir("dev", "/dev", "Directory"),
        host_dir("mount-socket", MOUNT_SOCKET_DIR, "DirectoryOrCreate"),
        json!({"name": "cache", "emptyDir": {}}),
    ];
    let privileged =
        json!({"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}, "allowPrivilegeEscalation": true});
    // a DaemonSet on every node, updated by hand (`OnDelete`): restarting the
    // plugin or the mount service breaks the FUSE mounts they hold
    let node_daemonset = |name: &str, component: &str, containers: Value, volumes: Vec<Value>| {
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta(name, component),
            "spec": {
                "selector": {"matchLabels": selector(APP, component)},
                "updateStrategy": {"type": "OnDelete"},
                "template": {
                    "metadata": {"labels": labels(APP, component)},
                    "spec": {
                        "serviceAccountName": "seaweedfs-csi-node",
                        "priorityClassName": "system-node-critical",
                        "tolerations": all_nodes,
                        "containers": containers,
                        "volumes": volumes,
                    }
                }
            }
        })
    };
    let mut plugin_mounts = vec![json!({"name": "plugin-dir", "mountPath": "/csi"})];
    plugin_mounts.extend(shared_mounts.iter().cloned());
    let mut node_volumes = vec![
        host_dir(
            "registration-dir",
            &format!("{KUBELET_DIR}/plugins_registry"),
            "DirectoryOrCreate",
        ),
        host_dir("plugin-dir", &plugin_dir, "DirectoryOrCreate"),
    ];
    node_volumes.extend(shared_volumes.iter().cloned());
    let node = node_daemonset(
        "seaweedfs-csi-node",
        "csi-node",
        json!([
            {
                "name": "csi-plugin",
                "image": CSI_DRIVER_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": [
                    "--endpoint=unix:///csi/csi.sock",
                    format!("--filer={}", filer_addr()),
                    format!("--driverName={CSI_DRIVER}"),
                    "--nodeid=$(NODE_ID)",
                    format!("--mountEndpoint=unix://{MOUNT_SOCKET_DIR}/seaweedfs-mount.sock"),
                    "--cacheDir=/var/cache/seaweedfs",
                    "--dataLocality=none",
                    "--components=node",
                ],
                "env": [env_field("NODE_ID", "spec.nodeName")],
                "securityContext": privileged,
                "ports": [{"name": "healthz", "containerPort": 9808, "protocol": "TCP"}],
                "volumeMounts": plugin_mounts,
            },
            {
                "name": "driver-registrar",
                "image": CSI_REGISTRAR_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": [
                    "--csi-address=/csi/csi.sock",
                    format!("--kubelet-registration-path={plugin_dir}/csi.sock"),
                    "--http-endpoint=:9809",
                ],
                "ports": [{"name": "registrar", "containerPort": 9809, "protocol": "TCP"}],
                "volumeMounts": [
                    {"name": "plugin-dir", "mountPath": "/csi"},
                    {"name": "registration-dir", "mountPath": "/registration"},
                ],
            },
            {
                "name": "liveness-probe",
                "image": CSI_LIVENESS_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": ["--csi-address=/csi/csi.sock", "--http-endpoint=:9808"],
                "volumeMounts": [{"name": "plugin-dir", "mountPath": "/csi"}],
            },
        ]),
        node_volumes,
    );
    let mount = node_daemonset(
        "seaweedfs-mount",
        "csi-mount",
        json!([{
            "name": "mount",
            "image": CSI_MOUNT_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "args": [format!("--endpoint=unix://{MOUNT_SOCKET_DIR}/seaweedfs-mount.sock")],
            "securityContext": privileged,
            "volumeMounts": shared_mounts,
        }]),
        shared_volumes.to_vec(),
    );
    let sa = |name: &str| {
        Manifest::new(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, "csi")}))
    };
    let cluster_labels = labels(APP, "csi");
    vec![
        sa("seaweedfs-csi-controller"),
        sa("seaweedfs-csi-node"),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "vre-seaweedfs-csi-provisioner", "labels": cluster_labels},
            "rules": [
                {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "delete"]},
                {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "csinodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots", "volumesnapshotcontents"], "verbs": ["get", "list"]},
            ],
        })),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "vre-seaweedfs-csi-provisioner", "labels": cluster_labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "vre-seaweedfs-csi-provisioner"},
            "subjects": [{"kind": "ServiceAccount", "name": "seaweedfs-csi-controller", "namespace": NAMESPACE}],
        })),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta("seaweedfs-csi-leader-election", "csi"),
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "watch", "list", "delete", "update", "create"]}],
        })),
        Manifest::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("seaweedfs-csi-leader-election", "csi"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "seaweedfs-csi-leader-election"},
            "subjects": [{"kind": "ServiceAccount", "name": "seaweedfs-csi-controller", "namespace": NAMESPACE}],
        })),
        Manifest::new(json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": CSI_DRIVER, "labels": cluster_labels},
            "spec": {"attachRequired": false, "podInfoOnMount": true},
        })),
        Manifest::new(controller),
        Manifest::new(node),
        Manifest::new(mount),
    ]
}

fn namespace() -> Manifest {
    Manifest::new(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels(APP, "namespace")},
    }))
}

/// Shared POSIX storage: SeaweedFS on the storage nodes, the CSI driver and
/// the default ReadWriteMany StorageClass.
#[derive(Clone, Debug, Default)]
pub struct SharedStorage;

impl SharedStorage {
    pub fn new() -> Self {
        SharedStorage
    }
}

#[async_trait]
impl Microservice for SharedStorage {
    fn name(&self) -> &str {
        NAME
    }

    fn objects(&self, facts: &ClusterFacts) -> Result<Vec<Manifest>> {
        if !facts.spec.storage.enabled {
            return Ok(Vec::new());
        }
        let nodes = storage_nodes(facts);
        let Some(first) = nodes.first() else {
            return Err(Error::input(
                "storage.enabled",
                "shared storage runs on storage nodes but the cluster has none; add nodes.storage or set `enabled = false`",
            ));
        };
        let replication = replication_code(replica_count(nodes.len()));
        let devices: String = nodes
            .iter()
            .filter_map(|n| n.volume_device.as_ref().map(|d| format!("{}={d}\n", n.name)))
            .collect();
        let mut out = vec![namespace()];
        out.push(Manifest::new(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("seaweedfs-disks", "disk"),
            "data": {"prepare-disk.sh": PREPARE_SCRIPT, "devices": devices},
        })));
        let master_args = vec![
            "master".to_string(),
            "-mdir=/data/master".into(),
            "-ip=$(POD_IP)".into(),
            "-ip.bind=0.0.0.0".into(),
            "-port=9333".into(),
            "-peers=none".into(),
            "-volumeSizeLimitMB=1024".into(),
            format!("-defaultReplication={replication}"),
        ];
        let master_ports = [("http", 9333), ("grpc", 19333)];
        out.push(service(MASTER_SERVICE, "master", &master_ports));
        out.push(pinned_deployment(
            "master",
            &first.name,
            weed("/data/master", &master_args),
            container_ports(&master_ports),
            http_probe("/cluster/status", 9333),
        ));
        out.push(volume_daemonset());
        let filer_args = vec![
            "filer".to_string(),
            "-defaultStoreDir=/data/filer".into(),
            "-ip=$(POD_IP)".into(),
            "-ip.bind=0.0.0.0".into(),
            "-port=8888".into(),
            format!("-master={}", master_addr()),
            format!("-defaultReplicaPlacement={replication}"),
        ];
        let filer_ports = [("http", 8888), ("grpc", 18888)];
        out.push(service(FILER_SERVICE, "filer", &filer_ports));
        out.push(pinned_deployment(
            "filer",
            &first.name,
            weed("/data/filer", &filer_args),
            container_ports(&filer_ports),
            tcp_probe(8888),
        ));
        out.extend(csi_objects());
        out.push(Manifest::new(json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "labels": labels(APP, "storage-class"),
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": CSI_DRIVER,
            "parameters": {"replication": replication},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": false,
        })));
        out.push(Manifest::new(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(CHECK_CLAIM, "check"),
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": STORAGE_CLASS,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        })));
        Ok(out)
    }

    fn readiness(&self, facts: &ClusterFacts) -> Vec<ReadinessCheck> {
        if !facts.spec.storage.enabled {
            return Vec::new();
        }
        let rollout = |kind: &str, name: &str| ReadinessCheck::Rollout {
            kind: kind.into(),
            namespace: NAMESPACE.into(),
            name: name.into(),
        };
        vec![
            rollout("Deployment", "seaweedfs-master"),
            rollout("DaemonSet", "seaweedfs-volume"),
            rollout("Deployment", "seaweedfs-filer"),
            rollout("Deployment", "seaweedfs-csi-controller"),
            rollout("DaemonSet", "seaweedfs-csi-node"),
            rollout("DaemonSet", "seaweedfs-mount"),
            ReadinessCheck::PvcBound {
                namespace: NAMESPACE.into(),
                name: CHECK_CLAIM.into(),
            },
        ]
    }
}

/// S3 object storage: SeaweedFS's S3 gateway over the shared filer, with
/// generated keys, exposed at `s3.<domain>`.
#[derive(Clone, Debug, Default)]
pub struct ObjectStorage;

impl ObjectStorage {
    pub fn new() -> Self {
        ObjectStorage
    }
}

fn enabled(facts: &ClusterFacts) -> bool {
    facts.spec.storage.enabled && facts.spec.storage.object_storage
}

/// The S3 keys: generated once, then read back from the deployment directory.
pub fn s3_keys(facts: &ClusterFacts) -> Result<(String, String)> {
    let access = local_secret::load_or_create_token(&facts.dir, S3_ACCESS_KEY_FILE, 20)?;
    let secret = local_secret::load_or_create_token(&facts.dir, S3_SECRET_KEY_FILE, 40)?;
    Ok((access, secret))
}

#[async_trait]
impl Microservice for ObjectStorage {
    fn name(&self) -> &str {
        OBJECT_NAME
    }

    fn depends_on(&self) -> Vec<String> {
        vec![NAME.to_string()]
    }

    fn objects(&self, facts: &ClusterFacts) -> Result<Vec<Manifest>> {
        if !enabled(facts) {
            return Ok(Vec::new());
        }
        let (access, secret) = s3_keys(facts)?;
        let identities = json!({
            "identities": [{
                "name": "vre",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]
        });
        let endpoint = app_url(facts, S3_HOST).unwrap_or_else(|| format!("http://{S3_SERVICE}.{NAMESPACE}.svc:8333"));
        let b64 = |s: &str| BASE64.encode(s);
        let mut out = vec![
            namespace(),
            Manifest::new(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": meta("seaweedfs-s3-config", "s3"),
                "data": {"s3.json": b64(&identities.to_string())},
            })),
            Manifest::new(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": meta("s3-credentials", "s3"),
                "data": {
                    "AWS_ACCESS_KEY_ID": b64(&access),
                    "AWS_SECRET_ACCESS_KEY": b64(&secret),
                    "S3_ENDPOINT": b64(&endpoint),
                    "S3_INTERNAL_ENDPOINT": b64(&format!("http://{S3_SERVICE}.{NAMESPACE}.svc:8333")),
                },
            })),
            service(S3_SERVICE, "s3", &[("http", 8333)]),
        ];
        let args = vec![
            "s3".to_string(),
            "-ip.bind=0.0.0.0".into(),
            "-port=8333".into(),
            format!("-filer={}", filer_addr()),
            "-config=/etc/sw/s3.json".into(),
        ];
        out.push(Manifest::new(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("seaweedfs-s3", "s3"),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector(APP, "s3")},
                "template": {
                    "metadata": {"labels": labels(APP, "s3")},
                    "spec": {
                        "affinity": role_affinity(&[Role::Storage]),
                        "tolerations": tolerations(&[Role::Storage]),
                        "containers": [{
                            "name": "s3",
                            "image": SEAWEEDFS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/usr/bin/weed", "-logtostderr=true"],
                            "args": args,
                            "ports": [{"name": "http", "containerPort": 8333, "protocol": "TCP"}],
                            "readinessProbe": tcp_probe(8333),
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/sw", "readOnly": true}],
                            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                        }],
                        "volumes": [{"name": "config", "secret": {"secretName": "seaweedfs-s3-config"}}],
                    }
                }
            }
        })));
        if facts.spec.loadbalancer.enabled {
            out.push(app_ingress(
                facts,
                &AppRoute {
                    name: S3_HOST,
                    namespace: NAMESPACE,
                    service: S3_SERVICE,
                    port: 8333,
                },
            ));
        }
        Ok(out)
    }

    fn readiness(&self, facts: &ClusterFacts) -> Vec<ReadinessCheck> {
        if !enabled(facts) {
            return Vec::new();
        }
        vec![ReadinessCheck::Rollout {
            kind: "Deployment".into(),
            namespace: NAMESPACE.into(),
            name: "seaweedfs-s3".into(),
        }]
    }

    fn endpoints(&self, facts: &ClusterFacts) -> Vec<Endpoint> {
        if !enabled(facts) || !facts.spec.loadbalancer.enabled {
            return Vec::new();
        }
        app_url(facts, S3_HOST)
            .map(|url| Endpoint { name: "s3".into(), url })
            .into_iter()
            .collect()
    }
}
