//! The engine's contract with a cloud, as call expectations on a
//! `mockall` double of [`CloudProvider`]: how many `create_instances` calls a
//! role group costs, that a resume leaves kept resources alone, that destroy
//! deletes in rank order, which errors are retried, and that `Retry-After`
//! is honoured. Scenario tests (crashes, scale, ...) use `FakeCloud` in
//! `tests/engine.rs`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockall::Sequence;
use vre_core::provider::MockCloudProvider;
use vre_core::spec::ImageSpec;
use vre_core::testing::FakeOrchestrator;
use vre_core::{
    Capabilities, CloudError, CloudResource, ClusterRef, ClusterSpec, Deployment, Error, InstanceBatch, NetworkInfo,
    NetworkRequest, ResourceKey, ResourceKind, ResourceStatus, Retry, RetryPolicy, Role, attr,
};

/// The cloud's side of the story: what exists, shared by the mocks of one
/// test (a second mock on the same world is a second `vre` process).
#[derive(Clone, Default)]
struct World(Arc<Mutex<Vec<CloudResource>>>);

impl World {
    fn resources(&self) -> Vec<CloudResource> {
        self.0.lock().unwrap().clone()
    }

    /// The resource named `name` of `kind`, made when absent (the contract:
    /// every create is keyed by name).
    fn ensure(&self, kind: ResourceKind, name: &str, key: Option<ResourceKey>) -> CloudResource {
        let mut all = self.0.lock().unwrap();
        if let Some(r) = all.iter().find(|r| r.kind == kind && r.name == name) {
            return r.clone();
        }
        let mut r = CloudResource::new(kind, format!("id-{}", all.len() + 1), name);
        r.key = key;
        all.push(r.clone());
        r
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut CloudResource)) -> vre_core::Result<CloudResource> {
        let mut all = self.0.lock().unwrap();
        let r = all.iter_mut().find(|r| r.id == id).ok_or_else(|| not_found(id))?;
        f(r);
        Ok(r.clone())
    }

    fn create_instances(&self, batch: &InstanceBatch) -> Vec<CloudResource> {
        let made: Vec<CloudResource> = batch
            .instances
            .iter()
            .map(|i| self.ensure(ResourceKind::Instance, &i.name, Some(i.key.clone())))
            .collect();
        made.into_iter()
            .map(|r| {
                self.update(&r.id, |r| {
                    r.attrs.insert(attr::FLAVOR.into(), batch.flavor.clone());
                    r.attrs.insert(attr::ROLE.into(), batch.role.as_str().into());
                    if r.status != ResourceStatus::Ready {
                        r.status = ResourceStatus::Pending;
                    }
                })
                .expect("just made")
            })
            .collect()
    }

    fn delete(&self, id: &str) -> vre_core::Result<()> {
        let mut all = self.0.lock().unwrap();
        let before = all.len();
        all.retain(|r| r.id != id);
        if all.len() == before {
            return Err(not_found(id));
        }
        Ok(())
    }
}

fn not_found(id: &str) -> Error {
    CloudError::http("mock", "find", 404, format!("{id} not found"), None).into()
}

fn caps(max_batch: u32) -> Capabilities {
    Capabilities {
        multi_create: true,
        max_batch,
        ..Capabilities::default()
    }
}

/// A mock cloud backed by `world`, expecting any number of calls of every
/// method except those named in `own`: the test sets those itself, with
/// the calls it expects.
fn cloud(world: &World, capabilities: Capabilities, own: &[&str]) -> MockCloudProvider {
    let mut m = MockCloudProvider::new();
    let mine = |op: &str| !own.contains(&op);
    m.expect_name().return_const("mock".to_string());
    m.expect_capabilities().return_const(capabilities);
    m.expect_destroy_rank().returning(|k| k.destroy_rank());
    m.expect_preflight().returning(|_, _| Ok(Vec::new()));
    m.expect_ensure_image()
        .returning(|_, i: &ImageSpec, _| Ok(CloudResource::new(ResourceKind::Image, "img-1", &i.name)));
    if mine("ensure_network") {
        let w = world.clone();
        m.expect_ensure_network()
            .returning(move |c, req| Ok(network(&w, c, req)));
    }
    let w = world.clone();
    m.expect_ensure_security_group().returning(move |c, _, _| {
        Ok(w.ensure(
            ResourceKind::SecurityGroup,
            &c.resource_name("sg"),
            Some(ResourceKey::security_group()),
        ))
    });
    let w = world.clone();
    m.expect_ensure_key_pair().returning(move |c, _| {
        Ok(w.ensure(
            ResourceKind::KeyPair,
            &c.resource_name("key"),
            Some(ResourceKey::key_pair()),
        ))
    });
    if mine("create_instances") {
        let w = world.clone();
        m.expect_create_instances()
            .returning(move |_, b| Ok(w.create_instances(b)));
    }
    let w = world.clone();
    m.expect_wait_instances().returning(move |_, instances, _, _| {
        instances
            .iter()
            .enumerate()
            .map(|(n, i)| {
                w.update(&i.id, |r| {
                    r.status = ResourceStatus::Ready;
                    r.attrs
                        .entry(attr::PRIVATE_IP.into())
                        .or_insert(format!("10.0.0.{}", 20 + n));
                })
            })
            .collect()
    });
    if mine("create_volume") {
        let w = world.clone();
        m.expect_create_volume().returning(move |_, req| {
            let v = w.ensure(ResourceKind::Volume, &req.name, Some(req.key.clone()));
            w.update(&v.id, |v| {
                v.attrs.insert(attr::SIZE_GB.into(), req.size_gb.to_string());
            })
        });
    }
    let w = world.clone();
    m.expect_attach_volume().returning(move |_, key, volume, instance| {
        let a = w.ensure(
            ResourceKind::VolumeAttachment,
            &format!("{}-attachment", volume.name),
            Some(key.clone()),
        );
        w.update(&a.id, |a| {
            a.attrs.insert(attr::DEVICE.into(), "/dev/vdb".into());
            a.attrs.insert(attr::INSTANCE_ID.into(), instance.id.clone());
        })
    });
    if mine("allocate_public_ip") {
        let w = world.clone();
        m.expect_allocate_public_ip().returning(move |_, key, name| {
            let ip = w.ensure(ResourceKind::PublicIp, name, Some(key.clone()));
            w.update(&ip.id, |ip| {
                ip.attrs.insert(attr::ADDRESS.into(), "203.0.113.7".into());
            })
        });
    }
    let w = world.clone();
    m.expect_associate_public_ip().returning(move |_, ip, instance| {
        w.update(&ip.id, |ip| {
            ip.attrs.insert(attr::INSTANCE_ID.into(), instance.id.clone());
        })
    });
    let w = world.clone();
    m.expect_inventory().returning(move |_| Ok(w.resources()));
    if mine("delete") {
        let w = world.clone();
        m.expect_delete().returning(move |_, r| w.delete(&r.id));
    }
    m
}

fn network(w: &World, c: &ClusterRef, req: &NetworkRequest) -> NetworkInfo {
    let net = w.ensure(
        ResourceKind::Network,
        &c.resource_name("net"),
        Some(ResourceKey::network()),
    );
    let subnet = w.ensure(ResourceKind::Subnet, &c.resource_name("subnet"), None);
    w.ensure(ResourceKind::Router, &c.resource_name("router"), None);
    NetworkInfo {
        network: net
            .with_attr(attr::SUBNET_ID, subnet.id)
            .with_attr(attr::CIDR, req.cidr.to_string()),
        cidr: req.cidr,
    }
}

/// master, 5 service, 2 storage with volumes, 1 edge.
fn spec() -> ClusterSpec {
    let mut s = ClusterSpec::new("lab", "mock");
    s.group_mut(Role::Service).count = 5;
    let st = s.group_mut(Role::Storage);
    st.count = 2;
    st.volume_gb = Some(20);
    s.group_mut(Role::Edge).count = 1;
    s.master_as_edge = false;
    s
}

fn deployment(spec: ClusterSpec, dir: &std::path::Path, cloud: MockCloudProvider, retry: RetryPolicy) -> Deployment {
    Deployment::builder(spec, dir)
        .provider(Arc::new(cloud))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir)))
        .public_key("ssh-ed25519 AAAA test")
        .retry(retry)
        .build()
        .unwrap()
}

/// The `create_instances` calls made: role, node indices, token.
type Seen = Arc<Mutex<Vec<(Role, Vec<u32>, String)>>>;

/// Expects exactly `calls` `create_instances` calls for `role`, each of at
/// most `most` instances, recording the batches.
fn expect_creates(m: &mut MockCloudProvider, w: &World, role: Role, calls: usize, most: usize, seen: &Seen) {
    let (w, seen) = (w.clone(), seen.clone());
    m.expect_create_instances()
        .withf(move |_, b| b.role == role)
        .times(calls)
        .returning(move |_, b| {
            assert!(b.instances.len() <= most, "{} instances in one call", b.instances.len());
            let indices = b.instances.iter().map(|i| i.index).collect();
            seen.lock().unwrap().push((b.role, indices, b.token.clone()));
            Ok(w.create_instances(b))
        });
}

/// Applies `spec()` in `dir` on a fresh cloud announcing `max_batch`,
/// expecting, for each `(role, calls, most)`, exactly `calls`
/// `create_instances` calls for the role of at most `most` instances each.
/// Returns the calls made and the cloud.
async fn apply_expecting_creates(
    dir: &std::path::Path,
    max_batch: u32,
    expected: [(Role, usize, usize); 4],
) -> (Vec<(Role, Vec<u32>, String)>, World) {
    let world = World::default();
    let seen: Seen = Arc::default();
    let mut m = cloud(&world, caps(max_batch), &["create_instances"]);
    for (role, calls, most) in expected {
        expect_creates(&mut m, &world, role, calls, most, &seen);
    }
    deployment(spec(), dir, m, RetryPolicy::immediate(4))
        .apply()
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, world)
}

/// The node indices each `create_instances` call for `role` asked for.
fn indices(seen: &[(Role, Vec<u32>, String)], role: Role) -> Vec<Vec<u32>> {
    seen.iter().filter(|s| s.0 == role).map(|s| s.1.clone()).collect()
}

#[tokio::test]
async fn one_create_call_per_role_group() {
    let dir = tempfile::tempdir().unwrap();
    let expected = [
        (Role::Master, 1, 1),
        (Role::Service, 1, 5),
        (Role::Storage, 1, 2),
        (Role::Edge, 1, 1),
    ];
    let (seen, _) = apply_expecting_creates(dir.path(), 0, expected).await;
    assert_eq!(indices(&seen, Role::Service), [vec![1, 2, 3, 4, 5]]);
}

/// 5 service nodes at 2 a call: 3 calls; storage (2) fits in one.
const CHUNKED: [(Role, usize, usize); 4] = [
    (Role::Master, 1, 2),
    (Role::Service, 3, 2),
    (Role::Storage, 1, 2),
    (Role::Edge, 1, 2),
];

#[tokio::test]
async fn a_group_larger_than_max_batch_is_created_in_chunks_with_their_own_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, world) = apply_expecting_creates(dir.path(), 2, CHUNKED).await;
    assert_eq!(
        indices(&seen, Role::Service),
        [vec![1, 2], vec![3, 4], vec![5]],
        "every node exactly once, in order"
    );
    let tokens: BTreeSet<&String> = seen.iter().map(|s| &s.2).collect();
    assert_eq!(tokens.len(), seen.len(), "one idempotency token per call: {seen:?}");
    let instances = world
        .resources()
        .into_iter()
        .filter(|r| r.kind == ResourceKind::Instance);
    assert_eq!(instances.count(), 9);
}

#[tokio::test]
async fn chunk_tokens_are_deterministic_across_runs() {
    // the same deployment directory (same lineage) asks with the same tokens,
    // so a cloud with idempotency tokens never creates a chunk twice
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (mut seen, _) = apply_expecting_creates(dir.path(), 2, CHUNKED).await;
        seen.sort();
        runs.push(seen);
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn a_resume_creates_and_deletes_nothing_that_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::default();
    deployment(
        spec(),
        dir.path(),
        cloud(&world, caps(2), &[]),
        RetryPolicy::immediate(4),
    )
    .apply()
    .await
    .unwrap();
    let before = world.resources();

    let mut m = cloud(
        &world,
        caps(2),
        &["create_instances", "create_volume", "allocate_public_ip", "delete"],
    );
    m.expect_create_instances().never();
    m.expect_create_volume().never();
    m.expect_allocate_public_ip().never();
    m.expect_delete().never();
    let report = deployment(spec(), dir.path(), m, RetryPolicy::immediate(4))
        .apply()
        .await
        .unwrap();
    assert_eq!(
        report.summary.create + report.summary.replace + report.summary.delete,
        0
    );
    // every keyed resource, plus the image (found, not listed)
    let keyed = before.iter().filter(|r| r.key.is_some()).count();
    assert_eq!(report.summary.keep, keyed + 1, "{:?}", report.summary);
    assert_eq!(world.resources(), before);
}

#[tokio::test]
async fn destroy_deletes_in_destroy_rank_order() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::default();
    deployment(
        spec(),
        dir.path(),
        cloud(&world, caps(0), &[]),
        RetryPolicy::immediate(4),
    )
    .apply()
    .await
    .unwrap();
    let mut ranks: Vec<u32> = world.resources().iter().map(|r| r.kind.destroy_rank()).collect();
    ranks.sort();
    ranks.dedup();
    assert!(ranks.len() >= 6, "a destroy over few kinds proves little: {ranks:?}");

    // one expectation per wave, in a sequence: a wave may delete in any
    // order, but never before every lower wave is done
    let mut m = cloud(&world, caps(0), &["delete"]);
    let mut seq = Sequence::new();
    for rank in ranks {
        let n = world
            .resources()
            .iter()
            .filter(|r| r.kind.destroy_rank() == rank)
            .count();
        let w = world.clone();
        m.expect_delete()
            .withf(move |_, r| r.kind.destroy_rank() == rank)
            .times(n)
            .in_sequence(&mut seq)
            .returning(move |_, r| w.delete(&r.id));
    }
    let report = deployment(spec(), dir.path(), m, RetryPolicy::immediate(4))
        .destroy()
        .await
        .unwrap();
    assert!(world.resources().is_empty(), "{:?}", world.resources());
    let kept: Vec<&ResourceKind> = report.kept.iter().map(|r| &r.kind).collect();
    assert_eq!(kept, [&ResourceKind::Image], "images are never deleted");
}

fn master_only() -> ClusterSpec {
    ClusterSpec::new("lab", "mock")
}

/// Applies a master-only spec (one `create_instances` call when all goes
/// well) whose creates always fail with `error`, with 4 attempts allowed,
/// expecting exactly `calls` calls; returns apply's error.
async fn apply_failing_creates(error: fn() -> CloudError, calls: usize) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let world = World::default();
    let mut m = cloud(&world, caps(0), &["create_instances"]);
    m.expect_create_instances()
        .times(calls)
        .returning(move |_, _| Err(error().into()));
    deployment(master_only(), dir.path(), m, RetryPolicy::immediate(4))
        .apply()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_error_that_retrying_cannot_help_is_not_retried() {
    let quota = || CloudError::http("mock", "create servers", 403, "quota exceeded", None).with_retry(Retry::Never);
    let err = apply_failing_creates(quota, 1).await;
    assert!(err.to_string().contains("quota exceeded"), "{err}");
}

#[tokio::test]
async fn a_transient_error_is_retried_up_to_the_policys_attempts() {
    let busy = || CloudError::http("mock", "create servers", 503, "busy", None);
    let err = apply_failing_creates(busy, 4).await;
    assert!(err.to_string().contains("busy"), "{err}");
}

#[tokio::test]
async fn a_transient_error_then_success_converges() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::default();
    let mut m = cloud(&world, caps(0), &["create_instances"]);
    // expectations are matched first to last; a saturated one is passed over
    m.expect_create_instances()
        .times(3)
        .returning(|_, _| Err(CloudError::http("mock", "create servers", 500, "oops", None).into()));
    let w = world.clone();
    m.expect_create_instances()
        .times(1)
        .returning(move |_, b| Ok(w.create_instances(b)));
    deployment(master_only(), dir.path(), m, RetryPolicy::immediate(4))
        .apply()
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::default();
    let mut m = cloud(&world, caps(0), &["ensure_network"]);
    m.expect_ensure_network().times(1).returning(|_, _| {
        Err(CloudError::http(
            "mock",
            "create network",
            429,
            "slow down",
            Some(Duration::from_secs(30)),
        )
        .into())
    });
    let w = world.clone();
    m.expect_ensure_network()
        .times(1)
        .returning(move |c, req| Ok(network(&w, c, req)));
    // the policy alone would wait a millisecond
    let mut policy = RetryPolicy::immediate(3);
    policy.base = Duration::from_millis(1);
    policy.cap = Duration::from_millis(1);
    let started = tokio::time::Instant::now();
    deployment(master_only(), dir.path(), m, policy).apply().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "virtual time elapsed: {waited:?}"
    );
}
