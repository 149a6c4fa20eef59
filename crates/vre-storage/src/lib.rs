//! vre's storage microservices: shared POSIX storage (a ReadWriteMany
//! StorageClass, the cluster default) on the storage nodes' attached
//! volumes, and S3 object storage on the same data.
//!
//! # Why SeaweedFS and not GlusterFS
//!
//! KubeNow ran GlusterFS with heketi and the in-tree `kubernetes.io/glusterfs`
//! provisioner. None of that works today: heketi is archived, the in-tree
//! GlusterFS plugin was removed in Kubernetes 1.26, and no maintained CSI
//! driver for GlusterFS exists. The maintained ways to turn raw attached
//! devices into replicated ReadWriteMany volumes are Rook-Ceph (CephFS) and
//! [SeaweedFS](https://github.com/seaweedfs/seaweedfs) with its CSI driver.
//! vre uses SeaweedFS because it needs only core Kubernetes objects (no
//! operator, no CRDs, so every object vre applies is checked by the API
//! server and works on the embedded simulator too), it runs in a few hundred
//! MB of memory on small VRE nodes where Ceph wants GBs per OSD, and its
//! filer gives the POSIX tree and the S3 API over the same files, which is
//! exactly "object storage on top of the shared volume". Rook-Ceph would be
//! the choice for block (RWO) volumes and strict POSIX semantics; SeaweedFS
//! mounts through FUSE (no hard links across directories, advisory locks
//! only on one node).
//!
//! # What runs where
//!
//! - Each storage node's data volume (`NodeFact::volume_device`, else the
//!   only blank disk) is formatted once (ext4, only when it has no
//!   signature) and mounted at `/var/lib/vre/storage` by a privileged init
//!   container (`prepare-disk`) of every pod that uses it.
//! - `seaweedfs-volume`: a DaemonSet on the storage nodes (host network,
//!   tolerating `dedicated=storage:NoSchedule`) storing chunks on the volume.
//! - `seaweedfs-master` and `seaweedfs-filer` (metadata, in LevelDB on the
//!   data volume) pinned to the first storage node.
//! - The CSI driver (`seaweedfs-csi-driver`: controller, a node plugin and
//!   the FUSE mount service on every node) and the StorageClass
//!   [`STORAGE_CLASS`], ReadWriteMany, the cluster default.
//! - Replicas follow the number of storage nodes ([`replica_count`]): 1 node
//!   -> one copy (`000`), 2 -> two copies (`001`), 3 or more -> three copies
//!   (`002`), on distinct volume servers (KubeNow's GlusterFS crashed at
//!   exactly 2 nodes, issue #308; here 2 is an ordinary case).
//! - With `object_storage`: the S3 gateway `seaweedfs-s3` over the same
//!   filer, exposed at `s3.<domain>` through the edge; its access and secret
//!   keys are generated once from the OS RNG, kept 0600 in
//!   `<dir>/.vre/secrets/` and in the Secret `vre-storage/s3-credentials`.
//!
//! Readiness: every workload rolled out and a test claim
//! (`vre-storage/vre-storage-check`, ReadWriteMany on the shared class) Bound,
//! which needs the whole chain (master, volume servers, filer, CSI
//! provisioner) to work.
//!
//! Known limits: the master and the filer are single instances on the first
//! storage node, so the data stays replicated when another storage node is
//! lost but the file tree is unavailable while that node is down.

mod objects;

pub use objects::{
    CHECK_CLAIM, CSI_DRIVER, FILER_SERVICE, MASTER_SERVICE, NAME, NAMESPACE, OBJECT_NAME, ObjectStorage,
    S3_ACCESS_KEY_FILE, S3_HOST, S3_SECRET_KEY_FILE, S3_SERVICE, STORAGE_CLASS, SharedStorage, replica_count,
    replication_code, s3_keys,
};

#[cfg(test)]
mod tests;
