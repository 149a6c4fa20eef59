//! Nodes: one `RunInstances` per role group (per `max_batch` chunk; `MinCount = MaxCount`, a
//! deterministic `ClientToken`), each instance then named with `CreateTags`
//! (one call tags a whole reservation alike); waiting polls
//! `DescribeInstances` by id in batches with backoff.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::stream::{self, StreamExt, TryStreamExt};
use vre_core::provider::{InstanceBatch, InstanceRequest};
use vre_core::{
    CLUSTER_TAG, CloudResource, ClusterRef, Error, KEY_TAG, ROLE_TAG, ResourceKey, ResourceKind, ResourceStatus,
    Result, SpecField, StepProgress, attr as core_attr,
};

use crate::error::{Blame, setting};
use crate::provider::{AwsProvider, attr, key_of};
use crate::query::Tag;
use crate::requests::{self, Launch, MAX_FILTER_VALUES};
use crate::wire::{self, DescribeInstancesResponse, RunInstancesResponse, Tagged};
use vre_cloud_kit::{Observed, answer};

/// EC2's limit on user data, before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// Replacement launches of one group tried before giving up on fresh tokens.
const MAX_TOKEN_CHAIN: u32 = 8;
/// CreateTags calls in flight at once after a launch.
const TAGGING_CONCURRENCY: usize = 8;

/// Where an instance is in its life, for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `pending`, or `running` without its private address yet.
    Booting,
    Running,
    /// Stopped, stopping, shutting down or terminated: with the cloud's reason.
    Failed(String),
}

/// Reads an instance's state (the waiter `InstanceRunning`'s acceptors:
/// `running` is success, `shutting-down`, `terminated` and `stopping` are failures).
pub fn phase(inst: &wire::Instance) -> Phase {
    match inst.instance_state.name.as_str() {
        "running" if inst.private_ip_address.is_some() => Phase::Running,
        "pending" | "running" => Phase::Booting,
        state => Phase::Failed(reason(inst, state)),
    }
}

/// The cloud's words for why an instance is in `state`.
fn reason(inst: &wire::Instance, state: &str) -> String {
    match (&inst.state_reason, &inst.reason) {
        (Some(r), _) if !r.message.is_empty() => format!("{state}: {}", r.message),
        (Some(r), _) if !r.code.is_empty() => format!("{state}: {}", r.code),
        (_, Some(r)) if !r.is_empty() => format!("{state}: {r}"),
        _ => state.to_string(),
    }
}

/// An instance as the engine sees it.
pub fn instance_resource(cluster: &str, inst: &wire::Instance) -> CloudResource {
    let name = inst.tag("Name").unwrap_or(&inst.instance_id).to_string();
    let key = key_of(inst)
        .or_else(|| ResourceKey::server_from_name(cluster, &name).map(|(role, i)| ResourceKey::server(role, i)));
    let status = match inst.instance_state.name.as_str() {
        "shutting-down" | "terminated" => ResourceStatus::Deleting,
        _ => match phase(inst) {
            Phase::Booting => ResourceStatus::Pending,
            Phase::Running => ResourceStatus::Ready,
            Phase::Failed(reason) => ResourceStatus::Failed {
                reason: format!("{reason}; start it again or let vre replace it"),
            },
        },
    };
    let mut r = AwsProvider::resource(ResourceKind::Instance, &inst.instance_id, &name, key)
        .with_status(status)
        .with_attr(core_attr::FLAVOR, inst.instance_type.clone())
        .with_attr(attr::STATE, inst.instance_state.name.clone());
    if let Some(ip) = &inst.private_ip_address {
        r = r.with_attr(core_attr::PRIVATE_IP, ip.clone());
    }
    if let Some(ip) = &inst.ip_address {
        r = r.with_attr(core_attr::PUBLIC_IP, ip.clone());
    }
    if let Some(role) = inst.tag(ROLE_TAG) {
        r = r.with_attr(core_attr::ROLE, role);
    }
    if let Some(s) = &inst.subnet_id {
        r = r.with_attr(core_attr::SUBNET_ID, s.clone());
    }
    if let Some(z) = inst.placement.as_ref().and_then(|p| p.availability_zone.clone()) {
        r = r.with_attr(attr::ZONE, z);
    }
    r
}

/// User data as RunInstances takes it: base64, gzipped when the text is
/// over EC2's 16 KiB (cloud-init unpacks gzip by its magic bytes).
pub fn encode_user_data(text: &str) -> Result<String> {
    let raw = text.as_bytes();
    let bytes = if raw.len() <= USER_DATA_LIMIT {
        raw.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(raw)
            .and_then(|_| gz.finish())
            .map_err(|e| Error::io("compressing user data", e))?
    };
    if bytes.len() > USER_DATA_LIMIT {
        return Err(Error::orchestrator(
            "user data",
            format!(
                "is {} bytes even gzipped; EC2 accepts {USER_DATA_LIMIT}: use an image with the Kubernetes packages preinstalled (image.preinstalled = true)",
                bytes.len()
            ),
        ));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl AwsProvider {
    /// Names an instance after the node it is, retrying while EC2 does not
    /// know the fresh instance id yet (eventual consistency).
    async fn name_instance(&self, instance_id: &str, request: &InstanceRequest) -> Result<()> {
        let tags: Vec<Tag> = vec![
            ("Name".into(), request.name.clone()),
            (KEY_TAG.into(), request.key.to_string()),
        ];
        let q = requests::create_tags(&[instance_id], &tags);
        let deadline = Instant::now() + self.wait.timeout.min(Duration::from_secs(120));
        let mut delay = self.wait.initial;
        loop {
            match self.ec2.send(&q).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_code("InvalidInstanceID.NotFound") && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = self.wait.next(delay);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) async fn launch(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        let role = batch.role;
        let blame = Blame::role(role);
        let pages: Vec<DescribeInstancesResponse> = self
            .pages(requests::describe_role_instances(&cluster.name, role.as_str()))
            .await?;
        let mut existing: Vec<wire::Instance> = pages.into_iter().flat_map(|p| p.instances()).collect();
        existing.sort_by(|a, b| (a.ami_launch_index, &a.instance_id).cmp(&(b.ami_launch_index, &b.instance_id)));

        let mut by_name: HashMap<String, wire::Instance> = HashMap::new();
        let mut unnamed: Vec<wire::Instance> = Vec::new();
        for inst in existing {
            let named = inst
                .tag("Name")
                .is_some_and(|n| ResourceKey::server_from_name(&cluster.name, n).is_some());
            if named {
                // a stopped node comes back as Failed, and the engine replaces it
                by_name.insert(inst.tag("Name").unwrap_or_default().to_string(), inst);
            } else if matches!(inst.instance_state.name.as_str(), "pending" | "running") {
                unnamed.push(inst);
            }
        }
        let mut out: BTreeMap<u32, CloudResource> = BTreeMap::new();
        let mut missing: Vec<&InstanceRequest> = Vec::new();
        for req in &batch.instances {
            match by_name.remove(&req.name) {
                Some(inst) => {
                    out.insert(
                        req.index,
                        instance_resource(&cluster.name, &inst).with_key(req.key.clone()),
                    );
                }
                None => missing.push(req),
            }
        }
        // instances of an interrupted launch that were never named
        let adopt: Vec<(&InstanceRequest, wire::Instance)> = missing.iter().copied().zip(unnamed).collect();
        let adopted = adopt.len();
        for (req, inst) in adopt {
            self.name_instance(&inst.instance_id, req).await?;
            let mut r = instance_resource(&cluster.name, &inst).with_key(req.key.clone());
            r.name = req.name.clone();
            out.insert(req.index, r);
        }
        let remaining: Vec<&InstanceRequest> = missing[adopted..].to_vec();
        if !remaining.is_empty() {
            let launched = self.run(cluster, batch, &remaining, &blame).await?;
            let jobs: Vec<(InstanceRequest, wire::Instance)> = remaining
                .iter()
                .zip(launched.iter())
                .map(|(req, inst)| ((*req).clone(), inst.clone()))
                .collect();
            let named: Vec<CloudResource> = stream::iter(jobs.into_iter().map(|(req, inst)| async move {
                self.name_instance(&inst.instance_id, &req).await?;
                let mut r = instance_resource(&cluster.name, &inst).with_key(req.key.clone());
                r.name = req.name.clone();
                Ok::<_, Error>(r)
            }))
            .buffered(TAGGING_CONCURRENCY)
            .try_collect()
            .await?;
            for (req, r) in remaining.iter().zip(named) {
                out.insert(req.index, r);
            }
            if launched.len() < remaining.len() {
                return Err(answer::failed(
                    crate::error::SERVICE,
                    "RunInstances",
                    None,
                    None,
                    format!(
                        "launched {} of {} {role} instances; the rest are launched on the next attempt",
                        launched.len(),
                        remaining.len()
                    ),
                    true,
                )
                .into());
            }
        }
        Ok(out.into_values().collect())
    }

    /// One RunInstances call for `requests`; instances come back in launch order.
    async fn run(
        &self,
        cluster: &ClusterRef,
        batch: &InstanceBatch,
        requests_: &[&InstanceRequest],
        blame: &Blame,
    ) -> Result<Vec<wire::Instance>> {
        let role = batch.role;
        let fixed: Vec<_> = requests_.iter().filter_map(|r| r.fixed_ip).collect();
        if !fixed.is_empty() && requests_.len() > 1 {
            return Err(Error::component(
                "aws",
                format!(
                    "{} {role} instances asked for fixed addresses; EC2 gives one only to single-instance launches",
                    fixed.len()
                ),
            ));
        }
        let subnet_id = batch.network.network.attr(core_attr::SUBNET_ID).ok_or_else(|| {
            Error::component(
                "aws",
                "the network resource carries no subnet id (was it made by another provider?)",
            )
        })?;
        let user_data = encode_user_data(&batch.user_data)?;
        let indexes: Vec<String> = requests_.iter().map(|r| r.index.to_string()).collect();
        let token = Self::token(&["run", &batch.token, &indexes.join(",")]);
        let root_device = batch.image.attr(attr::ROOT_DEVICE).unwrap_or("/dev/sda1");
        let group = cluster.resource_name(role.as_str());
        let mut instance_tags: Vec<Tag> = vec![
            (CLUSTER_TAG.into(), cluster.name.clone()),
            (ROLE_TAG.into(), role.to_string()),
            // replaced per instance by its node name right after launch
            ("Name".into(), group.clone()),
        ];
        instance_tags.extend(self.settings.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut volume_tags: Vec<Tag> = vec![
            (CLUSTER_TAG.into(), cluster.name.clone()),
            (ROLE_TAG.into(), role.to_string()),
            ("Name".into(), format!("{group}-root")),
        ];
        volume_tags.extend(self.settings.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let image_field = if self.settings.image_id.is_some() {
            setting("image_id")
        } else {
            SpecField::Image
        };
        let q = requests::run_instances(&Launch {
            image_id: &batch.image.id,
            instance_type: &batch.flavor,
            count: requests_.len() as u32,
            key_name: &batch.key_pair.name,
            subnet_id,
            security_group_id: &batch.security_group.id,
            private_ip: fixed.first().copied(),
            public_egress: self.settings.public_egress,
            user_data_b64: &user_data,
            client_token: &token,
            root_disk: batch.root_disk_gb.map(|gb| (root_device, gb)),
            volume_type: &self.settings.volume_type,
            instance_tags: &instance_tags,
            volume_tags: &volume_tags,
        });
        let blame = Blame {
            image_field: Some(image_field),
            ..blame.clone()
        };
        // A token whose instances were terminated (a replacement of nodes that
        // failed) is refused with IdempotentInstanceTerminated: walk a
        // deterministic chain of tokens, so a retry after a crash still lands
        // on the launch that succeeded.
        let mut q = q;
        let mut attempt = 0;
        let made: std::result::Result<RunInstancesResponse, _> = loop {
            match self.ec2.call(&q).await {
                Err(e) if e.is_code("IdempotentInstanceTerminated") && attempt < MAX_TOKEN_CHAIN => {
                    attempt += 1;
                    q = q.param("ClientToken", Self::token(&[&token, &attempt.to_string()]));
                }
                other => break other,
            }
        };
        let made: RunInstancesResponse = made.map_err(|e| match e.code() {
            Some("InvalidIPAddress.InUse") => Error::rejected(
                SpecField::MasterIp,
                format!(
                    "{} is taken in the subnet; pick a free address",
                    fixed.first().map(|i| i.to_string()).unwrap_or_default()
                ),
            ),
            _ => e.blame(&blame),
        })?;
        let mut launched = made.instances_set.into_vec();
        launched.sort_by_key(|i| i.ami_launch_index);
        Ok(launched)
    }

    pub(crate) async fn wait_running(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        step: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        // one DescribeInstances (per MAX_FILTER_VALUES ids) per round for the instances still booting
        let list = |asked: Vec<CloudResource>| async move {
            let mut out = Vec::with_capacity(asked.len());
            for chunk in asked.chunks(MAX_FILTER_VALUES) {
                let ids: Vec<&str> = chunk.iter().map(|i| i.id.as_str()).collect();
                let pages: Vec<DescribeInstancesResponse> =
                    self.pages(requests::describe_instances_by_id(&ids)).await?;
                let seen: HashMap<String, wire::Instance> = pages
                    .into_iter()
                    .flat_map(|p| p.instances())
                    .map(|i| (i.instance_id.clone(), i))
                    .collect();
                out.extend(chunk.iter().map(|want| match seen.get(&want.id) {
                    Some(inst) => {
                        let mut r = instance_resource(&cluster.name, inst);
                        match phase(inst) {
                            Phase::Booting => Observed::Pending(Some(r)),
                            Phase::Running => Observed::Settled(r),
                            // terminated while booting (capacity, a bad AMI): the engine replaces it
                            Phase::Failed(reason) => {
                                r.status = ResourceStatus::Failed { reason };
                                Observed::Settled(r)
                            }
                        }
                    }
                    // not visible yet right after launch
                    None => Observed::Pending(None),
                }));
            }
            Ok(out)
        };
        let progress =
            |settled: usize, total: usize| step.count("instances running or failed", settled as u64, total as u64);
        let timed_out = |pending: &[CloudResource]| {
            let names: Vec<String> = instances
                .iter()
                .filter(|i| pending.iter().any(|p| p.id == i.id))
                .map(|i| format!("{} ({})", i.name, i.id))
                .collect();
            Error::Timeout {
                what: format!("{} of {} EC2 instances to run", pending.len(), instances.len()),
                after: timeout,
                hint: format!(
                    "still pending: {}; look at them in the EC2 console (capacity or quota problems show as their state reason)",
                    names.join(", ")
                ),
            }
        };
        let settled = vre_cloud_kit::wait_instances(
            &self.wait,
            vre_cloud_kit::Rounds::Waiting,
            instances,
            timeout,
            list,
            progress,
            timed_out,
        )
        .await?;
        Ok(settled
            .into_iter()
            .zip(instances)
            .map(|(mut r, i)| {
                if r.name == r.id && i.name != i.id {
                    r.name = i.name.clone();
                }
                if let ResourceStatus::Failed { reason } = &r.status {
                    r.attrs.insert(core_attr::FAULT.into(), reason.clone());
                }
                r
            })
            .collect())
    }

    /// Terminates an instance and waits until it is gone.
    pub(crate) async fn terminate(&self, id: &str) -> Result<()> {
        if !self.send_unless_gone(&requests::terminate_instances(&[id])).await? {
            return Ok(());
        }
        self.poll(&format!("instance {id} to terminate"), self.wait.timeout, || async {
            let r: DescribeInstancesResponse = self
                .call(&requests::describe_instances_by_id(&[id]), &Blame::default())
                .await?;
            let gone = r.instances().all(|i| i.instance_state.name == "terminated");
            Ok(gone.then_some(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(state: &str, ip: Option<&str>) -> wire::Instance {
        wire::Instance {
            instance_id: "i-1".into(),
            instance_state: wire::InstanceState {
                code: 0,
                name: state.into(),
            },
            private_ip_address: ip.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_instance_running_waiter() {
        assert_eq!(phase(&inst("pending", None)), Phase::Booting);
        assert_eq!(phase(&inst("running", None)), Phase::Booting);
        assert_eq!(phase(&inst("running", Some("10.0.0.5"))), Phase::Running);
        let mut dead = inst("terminated", None);
        dead.state_reason = Some(wire::StateReason {
            code: "Server.InsufficientInstanceCapacity".into(),
            message: "Server.InsufficientInstanceCapacity: Insufficient capacity.".into(),
        });
        assert_eq!(
            phase(&dead),
            Phase::Failed("terminated: Server.InsufficientInstanceCapacity: Insufficient capacity.".into())
        );
        assert_eq!(phase(&inst("stopping", None)), Phase::Failed("stopping".into()));
    }

    #[test]
    fn phases_agree_with_the_ec2_waiters_file() {
        let path = std::env::var("VRE_EC2_WAITERS").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../specs/aws-ec2-2016-11-15.waiters-2.json"
            )
            .to_string()
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let waiters: serde_json::Value = serde_json::from_str(&text).unwrap();
        let running = &waiters["waiters"]["InstanceRunning"];
        assert_eq!(running["operation"], "DescribeInstances");
        let mut checked = 0;
        for a in running["acceptors"].as_array().unwrap() {
            if a["argument"] != "Reservations[].Instances[].State.Name" {
                continue;
            }
            let state = a["expected"].as_str().unwrap();
            let p = phase(&inst(state, Some("10.0.0.9")));
            match a["state"].as_str().unwrap() {
                "success" => assert_eq!(p, Phase::Running, "{state}"),
                "failure" => assert!(matches!(p, Phase::Failed(_)), "{state}: {p:?}"),
                other => panic!("unexpected acceptor state {other}"),
            }
            checked += 1;
        }
        assert!(
            checked >= 4,
            "the waiter lists running, shutting-down, terminated and stopping"
        );
    }

    #[test]
    fn resources_carry_keys_addresses_and_status() {
        let mut i = inst("running", Some("10.0.0.10"));
        i.instance_type = "t3.medium".into();
        i.ip_address = Some("54.1.2.3".into());
        i.tag_set.item = vec![
            wire::Tag {
                key: "Name".into(),
                value: "lab-master-1".into(),
            },
            wire::Tag {
                key: ROLE_TAG.into(),
                value: "master".into(),
            },
        ];
        let r = instance_resource("lab", &i);
        assert_eq!(
            r.key,
            Some(ResourceKey::server(vre_core::Role::Master, 1)),
            "derived from the Name"
        );
        assert_eq!(r.status, ResourceStatus::Ready);
        assert_eq!(r.attr(core_attr::PRIVATE_IP), Some("10.0.0.10"));
        assert_eq!(r.attr(core_attr::PUBLIC_IP), Some("54.1.2.3"));
        assert_eq!(r.attr(core_attr::FLAVOR), Some("t3.medium"));
        let mut stopped = i.clone();
        stopped.instance_state.name = "stopped".into();
        stopped.reason = Some("User initiated (2025-01-01 10:00:00 GMT)".into());
        assert!(
            matches!(instance_resource("lab", &stopped).status, ResourceStatus::Failed { reason } if reason.contains("User initiated"))
        );
        let mut gone = i;
        gone.instance_state.name = "shutting-down".into();
        assert_eq!(instance_resource("lab", &gone).status, ResourceStatus::Deleting);
    }

    #[test]
    fn big_user_data_is_gzipped_and_huge_user_data_refused() {
        let small = encode_user_data("#cloud-config\n").unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(&small).unwrap(),
            b"#cloud-config\n"
        );
        let text: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() > USER_DATA_LIMIT);
        let big = base64::engine::general_purpose::STANDARD
            .decode(encode_user_data(&text).unwrap())
            .unwrap();
        assert_eq!(&big[..2], &[0x1f, 0x8b], "gzip magic");
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&big[..]), &mut back).unwrap();
        assert_eq!(back, text);
        // incompressible text over the limit
        let mut state = 0x2545f4914f6cdd1du64;
        let noise: String = (0..40_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        assert!(
            encode_user_data(&noise)
                .unwrap_err()
                .to_string()
                .contains("even gzipped")
        );
    }
}
