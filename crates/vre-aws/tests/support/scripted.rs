//! Test support: an EC2 endpoint on 127.0.0.1 that answers from a script
//! (recorded AWS answers), records every request, and checks each against
//! the EC2 model; plus the provider tests that need it. Compiled into the
//! crate's unit tests (`#[path]` in lib.rs), so it reaches crate-private items.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use vre_core::{ClusterSpec, EventSink, ProviderContext};

use crate::AwsFactory;
use crate::PollPolicy;
use crate::ec2_model::Ec2Model;
use crate::provider::AwsProvider;

/// One request the endpoint received.
#[derive(Clone, Debug)]
pub struct Received {
    pub action: String,
    pub params: BTreeMap<String, String>,
    /// How many requests of this action came before (0 for the first).
    pub nth: usize,
}

impl Received {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

type Script = Arc<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

/// The scripted endpoint.
pub struct ScriptedEc2 {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Requests the EC2 model rejected (action: problems).
    pub rejected: Arc<Mutex<Vec<String>>>,
}

/// An EC2 error document.
pub fn error_doc(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
    )
}

impl ScriptedEc2 {
    pub async fn start(script: impl Fn(&Received) -> (u16, String) + Send + Sync + 'static) -> ScriptedEc2 {
        let script: Script = Arc::new(script);
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rejected: Arc<Mutex<Vec<String>>> = Arc::default();
        let model = Arc::new(Ec2Model::load());
        let (rec, rej) = (received.clone(), rejected.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
            let (script, rec, rej, model) = (script.clone(), rec.clone(), rej.clone(), model.clone());
            async move {
                let mut pairs: Vec<(String, String)> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let action = pairs
                    .iter()
                    .find(|(k, _)| k == "Action")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let version = pairs
                    .iter()
                    .find(|(k, _)| k == "Version")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                pairs.retain(|(k, _)| k != "Action" && k != "Version");
                let signed = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="));
                let mut problems = Vec::new();
                if version != crate::query::API_VERSION {
                    problems.push(format!("Version={version}"));
                }
                if !signed {
                    problems.push("not signed with SigV4".to_string());
                }
                if let Err(p) = model.check_params(&action, &pairs) {
                    problems.extend(p);
                }
                if !problems.is_empty() {
                    rej.lock().unwrap().push(format!("{action}: {}", problems.join("; ")));
                }
                let r = {
                    let mut all = rec.lock().unwrap();
                    let nth = all.iter().filter(|r| r.action == action).count();
                    let r = Received {
                        action,
                        params: pairs.into_iter().collect(),
                        nth,
                    };
                    all.push(r.clone());
                    r
                };
                let (status, body) = script(&r);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "text/xml")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        ScriptedEc2 {
            addr,
            received,
            rejected,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A provider for `spec` talking to this endpoint, polling fast.
    pub fn provider(&self, mut spec: ClusterSpec, events: EventSink) -> AwsProvider {
        spec.provider_table
            .insert("endpoint", vre_core::spec::Value::String(self.endpoint()));
        spec.provider_table
            .insert("region", vre_core::spec::Value::String("us-east-1".into()));
        let mut ctx = ProviderContext::new(Arc::new(spec), std::env::temp_dir());
        ctx.events = events;
        ctx.env = [
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AwsFactory.provider(&ctx).unwrap().with_poll(PollPolicy::fast())
    }

    pub fn actions(&self) -> Vec<String> {
        self.received.lock().unwrap().iter().map(|r| r.action.clone()).collect()
    }

    pub fn requests(&self, action: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.action == action)
            .cloned()
            .collect()
    }

    /// Fails the test when any request did not match the EC2 model.
    pub fn assert_all_valid(&self) {
        let rejected = self.rejected.lock().unwrap();
        assert!(
            rejected.is_empty(),
            "requests the EC2 model rejects:\n{}",
            rejected.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vre_core::provider::{InstanceBatch, InstanceRequest, NetworkInfo};
    use vre_core::spec::ImageSpec;
    use vre_core::{
        CloudProvider, CloudResource, ClusterRef, Error, Event, ResourceKey, ResourceKind, ResourceStatus, Role,
        SpecField, StepProgress, attr as core_attr,
    };

    use super::*;
    use crate::provider::attr;

    const NS: &str = "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"";

    fn ok(body: String) -> (u16, String) {
        (200, body)
    }

    fn err(status: u16, code: &str, message: &str) -> (u16, String) {
        (status, error_doc(code, message))
    }

    /// An `<item>` of an instancesSet, as EC2 documents it.
    fn instance_xml(
        id: &str,
        state: &str,
        ip: Option<&str>,
        launch_index: u32,
        tags: &[(&str, &str)],
        reason: Option<(&str, &str)>,
    ) -> String {
        let code = match state {
            "pending" => 0,
            "running" => 16,
            "shutting-down" => 32,
            "terminated" => 48,
            _ => 80,
        };
        let ip = ip
            .map(|i| format!("<privateIpAddress>{i}</privateIpAddress>"))
            .unwrap_or_default();
        let reason = reason
            .map(|(c, m)| format!("<stateReason><code>{c}</code><message>{m}</message></stateReason>"))
            .unwrap_or_default();
        let tags: String = tags
            .iter()
            .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
            .collect();
        format!(
            "<item><instanceId>{id}</instanceId><imageId>ami-785db401</imageId><instanceState><code>{code}</code><name>{state}</name></instanceState>\
             <privateDnsName/><dnsName/><reason/><keyName>lab-key</keyName><amiLaunchIndex>{launch_index}</amiLaunchIndex><productCodes/>\
             <instanceType>t3.medium</instanceType><launchTime>2025-03-01T10:00:00.000Z</launchTime>\
             <placement><availabilityZone>us-east-1a</availabilityZone><groupName/><tenancy>default</tenancy></placement>\
             <monitoring><state>disabled</state></monitoring><subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId>{ip}{reason}\
             <groupSet><item><groupId>sg-1</groupId><groupName>lab-sg</groupName></item></groupSet><tagSet>{tags}</tagSet></item>"
        )
    }

    fn describe_instances(items: &[String]) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse {NS}><requestId>r</requestId><reservationSet><item>\
             <reservationId>r-1</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>{}</instancesSet></item></reservationSet></DescribeInstancesResponse>",
            items.concat()
        )
    }

    fn cluster() -> ClusterRef {
        ClusterRef::new("lab")
    }

    fn pending(id: &str, name: &str, key: ResourceKey) -> CloudResource {
        CloudResource::new(ResourceKind::Instance, id, name)
            .with_key(key)
            .with_status(ResourceStatus::Pending)
    }

    #[tokio::test]
    async fn waiting_polls_all_instances_in_one_call_until_they_run() {
        let ec2 = ScriptedEc2::start(|r| match (r.action.as_str(), r.nth) {
            ("DescribeInstances", 0) => ok(describe_instances(&[
                instance_xml("i-1", "pending", None, 0, &[], None),
                instance_xml("i-2", "pending", None, 1, &[], None),
            ])),
            ("DescribeInstances", 1) => ok(describe_instances(&[
                instance_xml("i-1", "running", Some("10.0.0.11"), 0, &[], None),
                instance_xml("i-2", "pending", None, 1, &[], None),
            ])),
            ("DescribeInstances", _) => ok(describe_instances(&[
                instance_xml("i-1", "running", Some("10.0.0.11"), 0, &[], None),
                instance_xml("i-2", "running", Some("10.0.0.12"), 1, &[], None),
            ])),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let waiting = [
            pending("i-1", "lab-service-1", ResourceKey::server(Role::Service, 1)),
            pending("i-2", "lab-service-2", ResourceKey::server(Role::Service, 2)),
        ];
        let (events, mut rx) = EventSink::channel();
        let step = StepProgress::new(events, "the-servers-step");
        let done = p
            .wait_instances(&cluster(), &waiting, Duration::from_secs(10), &step)
            .await
            .unwrap();
        // the counts go to the step the engine handed in
        let mut counts = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::StepProgress { step, done, total, .. } = e {
                assert_eq!(step, "the-servers-step");
                counts.push((done, total));
            }
        }
        assert_eq!(counts.last(), Some(&(Some(2), Some(2))), "{counts:?}");
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|r| r.status == ResourceStatus::Ready), "{done:?}");
        assert_eq!(done[1].attr(core_attr::PRIVATE_IP), Some("10.0.0.12"));
        assert_eq!(done[0].key, Some(ResourceKey::server(Role::Service, 1)), "keys survive");
        assert_eq!(done[1].name, "lab-service-2", "names survive for untagged instances");
        let calls = ec2.requests("DescribeInstances");
        assert_eq!(calls.len(), 3, "one call per poll for the whole batch");
        // later polls ask only for the instances still booting
        assert_eq!(calls[0].get("Filter.1.Name"), Some("instance-id"));
        assert_eq!(calls[0].get("Filter.1.Value.2"), Some("i-2"));
        assert_eq!(calls[2].get("Filter.1.Value.1"), Some("i-2"));
        assert_eq!(calls[2].get("Filter.1.Value.2"), None);
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn instances_that_die_are_reported_with_the_cloud_s_reason() {
        let ec2 = ScriptedEc2::start(|r| match r.action.as_str() {
            "DescribeInstances" => ok(describe_instances(&[
                instance_xml("i-1", "running", Some("10.0.0.11"), 0, &[], None),
                instance_xml(
                    "i-2",
                    "terminated",
                    None,
                    1,
                    &[],
                    Some((
                        "Server.InsufficientInstanceCapacity",
                        "Server.InsufficientInstanceCapacity: Insufficient capacity.",
                    )),
                ),
            ])),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let waiting = [
            pending("i-1", "lab-edge-1", ResourceKey::server(Role::Edge, 1)),
            pending("i-2", "lab-edge-2", ResourceKey::server(Role::Edge, 2)),
        ];
        let done = p
            .wait_instances(&cluster(), &waiting, Duration::from_secs(10), &StepProgress::none())
            .await
            .unwrap();
        assert_eq!(done[0].status, ResourceStatus::Ready);
        match &done[1].status {
            ResourceStatus::Failed { reason } => assert!(reason.contains("Insufficient capacity"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
        let waiting = [pending("i-2", "lab-edge-2", ResourceKey::server(Role::Edge, 2))];
        let ec2b = ScriptedEc2::start(|_| {
            ok(describe_instances(&[instance_xml(
                "i-2",
                "stopped",
                None,
                0,
                &[],
                Some((
                    "Client.InstanceInitiatedShutdown",
                    "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
                )),
            )]))
        })
        .await;
        let p = ec2b.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let done = p
            .wait_instances(&cluster(), &waiting, Duration::from_secs(10), &StepProgress::none())
            .await
            .unwrap();
        match &done[0].status {
            ResourceStatus::Failed { reason } => assert!(reason.contains("Instance initiated shutdown"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(done[0].attr(core_attr::FAULT).is_some());
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn waiting_times_out_naming_the_instances_still_pending() {
        let ec2 = ScriptedEc2::start(|_| {
            ok(describe_instances(&[instance_xml(
                "i-7",
                "pending",
                None,
                0,
                &[],
                None,
            )]))
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let waiting = [pending("i-7", "lab-service-7", ResourceKey::server(Role::Service, 7))];
        let e = p
            .wait_instances(&cluster(), &waiting, Duration::from_millis(60), &StepProgress::none())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("lab-service-7 (i-7)"), "{e}");
    }

    fn batch(role: Role, indices: &[u32], user_data: &str) -> InstanceBatch {
        let network = NetworkInfo {
            network: CloudResource::new(ResourceKind::Network, "vpc-1", "lab-net")
                .with_attr(core_attr::SUBNET_ID, "subnet-1")
                .with_attr(attr::VPC_ID, "vpc-1"),
            cidr: "10.0.0.0/24".parse().unwrap(),
        };
        InstanceBatch {
            role,
            flavor: "t3.medium".into(),
            root_disk_gb: Some(40),
            image: CloudResource::new(ResourceKind::Image, "ami-785db401", "ubuntu")
                .with_attr(attr::ROOT_DEVICE, "/dev/sda1"),
            network,
            security_group: CloudResource::new(ResourceKind::SecurityGroup, "sg-1", "lab-sg"),
            key_pair: CloudResource::new(ResourceKind::KeyPair, "key-1", "lab-key"),
            user_data: user_data.into(),
            ssh_user: "ubuntu".into(),
            instances: indices
                .iter()
                .map(|&i| InstanceRequest {
                    key: ResourceKey::server(role, i),
                    name: format!("lab-{role}-{i}"),
                    index: i,
                    fixed_ip: (role == Role::Master).then(|| "10.0.0.10".parse().unwrap()),
                    public_ip: None,
                })
                .collect(),
            token: "lab-service-0123456789abcdef".into(),
            progress: StepProgress::none(),
        }
    }

    #[tokio::test]
    async fn a_group_launches_in_one_call_and_each_instance_gets_its_name() {
        let ec2 = ScriptedEc2::start(|r| match (r.action.as_str(), r.nth) {
            ("DescribeInstances", _) => ok(describe_instances(&[])),
            ("RunInstances", _) => ok(format!(
                "<RunInstancesResponse {NS}><requestId>r</requestId><reservationId>r-1</reservationId><ownerId>1</ownerId><groupSet/><instancesSet>{}{}{}</instancesSet></RunInstancesResponse>",
                instance_xml("i-c", "pending", Some("10.0.0.7"), 2, &[("vre:cluster", "lab")], None),
                instance_xml("i-a", "pending", Some("10.0.0.5"), 0, &[("vre:cluster", "lab")], None),
                instance_xml("i-b", "pending", Some("10.0.0.6"), 1, &[("vre:cluster", "lab")], None),
            )),
            // the fresh id is not known yet on the first try (eventual consistency)
            ("CreateTags", 0) => err(400, "InvalidInstanceID.NotFound", "The instance ID 'i-a' does not exist"),
            ("CreateTags", _) => ok(format!("<CreateTagsResponse {NS}><requestId>r</requestId><return>true</return></CreateTagsResponse>")),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let made = p
            .create_instances(&cluster(), &batch(Role::Service, &[1, 2, 3], "#cloud-config\n"))
            .await
            .unwrap();
        let run = ec2.requests("RunInstances");
        assert_eq!(run.len(), 1);
        let run = &run[0];
        assert_eq!(run.get("MinCount"), Some("3"));
        assert_eq!(run.get("MaxCount"), Some("3"));
        assert!(
            run.get("ClientToken")
                .is_some_and(|t| t.starts_with("vre-") && t.len() <= 64)
        );
        assert_eq!(run.get("UserData"), Some("I2Nsb3VkLWNvbmZpZwo="));
        assert_eq!(run.get("BlockDeviceMapping.1.DeviceName"), Some("/dev/sda1"));
        assert_eq!(run.get("BlockDeviceMapping.1.Ebs.VolumeSize"), Some("40"));
        assert_eq!(run.get("PrivateIpAddress"), None);
        assert_eq!(run.get("NetworkInterface.1.PrivateIpAddress"), None);
        assert_eq!(run.get("TagSpecification.1.Tag.2.Key"), Some("vre:role"));
        assert_eq!(run.get("TagSpecification.1.Tag.2.Value"), Some("service"));
        // names follow the launch index
        let names: Vec<(String, String)> = ec2
            .requests("CreateTags")
            .iter()
            .skip(1)
            .map(|t| {
                (
                    t.get("ResourceId.1").unwrap().to_string(),
                    t.get("Tag.1.Value").unwrap().to_string(),
                )
            })
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            vec![
                ("i-a".to_string(), "lab-service-1".to_string()),
                ("i-b".into(), "lab-service-2".into()),
                ("i-c".into(), "lab-service-3".into())
            ]
        );
        assert_eq!(made.len(), 3);
        assert_eq!(made[2].id, "i-c");
        assert_eq!(made[2].name, "lab-service-3");
        assert_eq!(made[2].key, Some(ResourceKey::server(Role::Service, 3)));
        assert_eq!(made[0].status, ResourceStatus::Pending);
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn a_retried_launch_adopts_what_the_interrupted_one_made() {
        let ec2 = ScriptedEc2::start(|r| match r.action.as_str() {
            "DescribeInstances" => ok(describe_instances(&[
                instance_xml(
                    "i-1",
                    "running",
                    Some("10.0.0.5"),
                    0,
                    &[("Name", "lab-service-1"), ("vre:key", "server/service-1"), ("vre:role", "service")],
                    None,
                ),
                // launched, never named
                instance_xml("i-2", "running", Some("10.0.0.6"), 1, &[("Name", "lab-service"), ("vre:role", "service")], None),
            ])),
            "RunInstances" => ok(format!(
                "<RunInstancesResponse {NS}><reservationId>r-2</reservationId><instancesSet>{}</instancesSet></RunInstancesResponse>",
                instance_xml("i-3", "pending", None, 0, &[], None)
            )),
            "CreateTags" => ok(format!("<CreateTagsResponse {NS}><return>true</return></CreateTagsResponse>")),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let made = p
            .create_instances(&cluster(), &batch(Role::Service, &[1, 2, 3], "x"))
            .await
            .unwrap();
        let ids: Vec<&str> = made.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["i-1", "i-2", "i-3"]);
        assert_eq!(made[1].name, "lab-service-2");
        let run = ec2.requests("RunInstances");
        assert_eq!(run.len(), 1);
        assert_eq!(
            run[0].get("MinCount"),
            Some("1"),
            "only the missing instance is launched"
        );
        let tagged: Vec<String> = ec2
            .requests("CreateTags")
            .iter()
            .map(|t| format!("{}={}", t.get("ResourceId.1").unwrap(), t.get("Tag.1.Value").unwrap()))
            .collect();
        assert_eq!(tagged, vec!["i-2=lab-service-2", "i-3=lab-service-3"]);
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn a_token_of_terminated_instances_gives_way_to_the_next_in_its_chain() {
        let ec2 = ScriptedEc2::start(|r| match (r.action.as_str(), r.nth) {
            ("DescribeInstances", _) => ok(describe_instances(&[])),
            ("RunInstances", 0) => err(
                400,
                "IdempotentInstanceTerminated",
                "The client token has already been used for instances that are now terminated.",
            ),
            ("RunInstances", _) => ok(format!(
                "<RunInstancesResponse {NS}><reservationId>r-3</reservationId><instancesSet>{}</instancesSet></RunInstancesResponse>",
                instance_xml("i-9", "pending", None, 0, &[], None)
            )),
            ("CreateTags", _) => ok(format!("<CreateTagsResponse {NS}><return>true</return></CreateTagsResponse>")),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let made = p
            .create_instances(&cluster(), &batch(Role::Edge, &[2], "x"))
            .await
            .unwrap();
        assert_eq!(made[0].id, "i-9");
        let tokens: Vec<String> = ec2
            .requests("RunInstances")
            .iter()
            .map(|r| r.get("ClientToken").unwrap().to_string())
            .collect();
        assert_eq!(tokens.len(), 2);
        assert_ne!(tokens[0], tokens[1]);
        assert_eq!(
            tokens[1],
            AwsProvider::token(&[&tokens[0], "1"]),
            "the chain is deterministic"
        );
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn the_master_gets_its_fixed_address_and_errors_name_the_spec_field() {
        let ec2 = ScriptedEc2::start(|r| match r.action.as_str() {
            "DescribeInstances" => ok(describe_instances(&[])),
            "RunInstances" if r.get("InstanceType") == Some("t3.medium") && r.nth == 0 => {
                err(503, "RequestLimitExceeded", "Request limit exceeded.")
            }
            "RunInstances" => err(
                400,
                "InstanceLimitExceeded",
                "You have requested more instances (21) than your current instance limit of 20 allows.",
            ),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let e = p
            .create_instances(&cluster(), &batch(Role::Master, &[1], "x"))
            .await
            .unwrap_err();
        assert!(e.retry().is_some(), "throttling is retried: {e}");
        let sent = ec2.requests("RunInstances");
        assert_eq!(sent[0].get("NetworkInterface.1.PrivateIpAddress"), Some("10.0.0.10"));
        let e = p
            .create_instances(&cluster(), &batch(Role::Master, &[1], "x"))
            .await
            .unwrap_err();
        match &e {
            Error::Rejected { field, message } => {
                assert_eq!(field, &SpecField::Count(Role::Master));
                assert!(message.contains("instance limit of 20"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn an_image_is_imported_from_s3_and_named_by_tag() {
        let ec2 = ScriptedEc2::start(|r| match (r.action.as_str(), r.nth) {
            ("DescribeImages", _) if r.get("ImageId.1").is_some() => ok(format!(
                "<DescribeImagesResponse {NS}><requestId>r</requestId><imagesSet><item><imageId>ami-0imported</imageId>\
                 <imageLocation>123456789012/import-ami-0abc</imageLocation><imageState>available</imageState><imageOwnerId>123456789012</imageOwnerId>\
                 <creationDate>2025-03-01T10:00:00.000Z</creationDate><isPublic>false</isPublic><architecture>x86_64</architecture><imageType>machine</imageType>\
                 <name>import-ami-0abc</name><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/sda1</rootDeviceName><tagSet/></item></imagesSet></DescribeImagesResponse>"
            )),
            ("DescribeImages", _) => ok(format!("<DescribeImagesResponse {NS}><requestId>r</requestId><imagesSet/></DescribeImagesResponse>")),
            ("ImportImage", _) => ok(format!(
                "<ImportImageResponse {NS}><requestId>r</requestId><importTaskId>import-ami-0abc</importTaskId><progress>2</progress>\
                 <status>active</status><statusMessage>pending</statusMessage><snapshotDetailSet><item><diskImageSize>0.0</diskImageSize>\
                 <format>VMDK</format><userBucket><s3Bucket>lab-images</s3Bucket><s3Key>noble.vmdk</s3Key></userBucket></item></snapshotDetailSet></ImportImageResponse>"
            )),
            ("DescribeImportImageTasks", n) => {
                let (status, message, image) = match n {
                    0 => ("active", "validating", ""),
                    1 => ("active", "converting", ""),
                    _ => ("completed", "", "<imageId>ami-0imported</imageId>"),
                };
                ok(format!(
                    "<DescribeImportImageTasksResponse {NS}><requestId>r</requestId><importImageTaskSet><item><importTaskId>import-ami-0abc</importTaskId>\
                     <progress>{}</progress><status>{status}</status><statusMessage>{message}</statusMessage>{image}</item></importImageTaskSet></DescribeImportImageTasksResponse>",
                    n * 40
                ))
            }
            ("CreateTags", _) => ok(format!("<CreateTagsResponse {NS}><return>true</return></CreateTagsResponse>")),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let (events, mut rx) = EventSink::channel();
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        // the engine's handle for its step; the provider reports through it alone
        let step = StepProgress::new(events, "the-image-step");
        let image = ImageSpec {
            name: "noble-k8s".into(),
            source: Some("s3://lab-images/noble.vmdk".into()),
            preinstalled: true,
        };
        let r = p.ensure_image(&cluster(), &image, &step).await.unwrap();
        assert_eq!(r.id, "ami-0imported");
        assert_eq!(r.name, "noble-k8s");
        assert_eq!(r.attr(attr::ROOT_DEVICE), Some("/dev/sda1"));
        let import = &ec2.requests("ImportImage")[0];
        assert_eq!(import.get("DiskContainer.1.UserBucket.S3Bucket"), Some("lab-images"));
        assert_eq!(import.get("DiskContainer.1.UserBucket.S3Key"), Some("noble.vmdk"));
        assert_eq!(import.get("DiskContainer.1.Format"), Some("VMDK"));
        assert_eq!(import.get("RoleName"), Some("vmimport"));
        assert!(import.get("ClientToken").is_some());
        let tags = &ec2.requests("CreateTags")[0];
        assert_eq!(tags.get("ResourceId.1"), Some("ami-0imported"));
        assert_eq!(tags.get("Tag.1.Key"), Some("Name"));
        assert_eq!(tags.get("Tag.1.Value"), Some("noble-k8s"));
        assert_eq!(ec2.requests("DescribeImportImageTasks").len(), 3);
        let mut progress = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::StepProgress { step, message, .. } = e {
                assert_eq!(step, "the-image-step");
                progress.push(message);
            }
        }
        assert!(progress.iter().any(|m| m.contains("converting (40%)")), "{progress:?}");
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn a_failed_import_says_why() {
        let ec2 = ScriptedEc2::start(|r| match r.action.as_str() {
            "DescribeImages" => ok(format!("<DescribeImagesResponse {NS}><imagesSet/></DescribeImagesResponse>")),
            "ImportImage" => ok(format!("<ImportImageResponse {NS}><importTaskId>import-ami-9</importTaskId><status>active</status></ImportImageResponse>")),
            "DescribeImportImageTasks" => ok(format!(
                "<DescribeImportImageTasksResponse {NS}><importImageTaskSet><item><importTaskId>import-ami-9</importTaskId><status>deleted</status>\
                 <statusMessage>ClientError: Unknown OS / Missing OS files.</statusMessage></item></importImageTaskSet></DescribeImportImageTasksResponse>"
            )),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let image = ImageSpec {
            name: "custom".into(),
            source: Some("https://lab-images.s3.us-east-1.amazonaws.com/custom.raw".into()),
            preinstalled: false,
        };
        let e = p
            .ensure_image(&cluster(), &image, &StepProgress::none())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Unknown OS / Missing OS files"), "{e}");
        assert!(e.retry().is_none());
        // without a source the user is told what to set
        let image = ImageSpec {
            name: "custom".into(),
            source: None,
            preinstalled: false,
        };
        let e = p
            .ensure_image(&cluster(), &image, &StepProgress::none())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Rejected {
                    field: SpecField::Image,
                    ..
                }
            ),
            "{e}"
        );
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn deleting_what_is_gone_succeeds_and_dependencies_are_waited_out() {
        let ec2 = ScriptedEc2::start(|r| match (r.action.as_str(), r.nth) {
            ("TerminateInstances", _) => err(400, "InvalidInstanceID.NotFound", "The instance ID 'i-9' does not exist"),
            ("DeleteSecurityGroup", 0) => err(400, "DependencyViolation", "resource sg-1 has a dependent object"),
            ("DeleteSecurityGroup", _) => ok(format!("<DeleteSecurityGroupResponse {NS}><return>true</return></DeleteSecurityGroupResponse>")),
            ("DescribeAddresses", _) => err(400, "InvalidAllocationID.NotFound", "The allocation ID 'eipalloc-1' does not exist"),
            ("DescribeInternetGateways", _) => ok(format!(
                "<DescribeInternetGatewaysResponse {NS}><internetGatewaySet><item><internetGatewayId>igw-1</internetGatewayId>\
                 <attachmentSet><item><vpcId>vpc-1</vpcId><state>available</state></item></attachmentSet><tagSet/></item></internetGatewaySet></DescribeInternetGatewaysResponse>"
            )),
            ("DetachInternetGateway", _) | ("DeleteInternetGateway", _) => ok(format!("<R {NS}><return>true</return></R>")),
            ("DescribeVpcs", _) => ok(format!(
                "<DescribeVpcsResponse {NS}><vpcSet><item><vpcId>vpc-9</vpcId><state>available</state><cidrBlock>10.9.0.0/16</cidrBlock><tagSet/></item></vpcSet></DescribeVpcsResponse>"
            )),
            _ => err(400, "InvalidAction", "unexpected"),
        })
        .await;
        let p = ec2.provider(ClusterSpec::new("lab", "aws"), EventSink::none());
        let c = cluster();
        p.delete(&c, &CloudResource::new(ResourceKind::Instance, "i-9", "lab-service-9"))
            .await
            .unwrap();
        p.delete(&c, &CloudResource::new(ResourceKind::SecurityGroup, "sg-1", "lab-sg"))
            .await
            .unwrap();
        assert_eq!(ec2.requests("DeleteSecurityGroup").len(), 2);
        p.delete(
            &c,
            &CloudResource::new(ResourceKind::PublicIp, "eipalloc-1", "lab-edge-1-ip"),
        )
        .await
        .unwrap();
        assert!(ec2.requests("ReleaseAddress").is_empty());
        p.delete(&c, &CloudResource::new(ResourceKind::Gateway, "igw-1", "lab-igw"))
            .await
            .unwrap();
        let order: Vec<String> = ec2
            .actions()
            .into_iter()
            .filter(|a| a.contains("InternetGateway"))
            .collect();
        assert_eq!(
            order,
            vec![
                "DescribeInternetGateways",
                "DetachInternetGateway",
                "DeleteInternetGateway"
            ]
        );
        assert_eq!(ec2.requests("DetachInternetGateway")[0].get("VpcId"), Some("vpc-1"));
        // a VPC without the cluster tag (a reused one) is left alone
        p.delete(&c, &CloudResource::new(ResourceKind::Network, "vpc-9", "lab-net"))
            .await
            .unwrap();
        assert!(ec2.requests("DeleteVpc").is_empty());
        ec2.assert_all_valid();
    }

    fn tag_set(tags: &[(&str, &str)]) -> String {
        let items: String = tags
            .iter()
            .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
            .collect();
        format!("<tagSet>{items}</tagSet>")
    }

    fn subnet_xml(id: &str, vpc: &str, cidr: &str, zone: &str, tags: &[(&str, &str)]) -> String {
        format!(
            "<item><subnetId>{id}</subnetId><state>available</state><vpcId>{vpc}</vpcId><cidrBlock>{cidr}</cidrBlock>\
             <availableIpAddressCount>251</availableIpAddressCount><availabilityZone>{zone}</availabilityZone>\
             <defaultForAz>false</defaultForAz><mapPublicIpOnLaunch>false</mapPublicIpOnLaunch>{}</item>",
            tag_set(tags)
        )
    }

    fn describe_subnets(items: &[String]) -> String {
        format!(
            "<DescribeSubnetsResponse {NS}><requestId>r</requestId><subnetSet>{}</subnetSet></DescribeSubnetsResponse>",
            items.concat()
        )
    }

    /// The answers of an inventory's Describe calls for a cluster "lab" with
    /// a running master, its security group and key pair; `subnets` and
    /// `vpcs` answer DescribeSubnets and DescribeVpcs.
    fn inventory_answer(
        r: &Received,
        subnets: impl Fn(&Received) -> String,
        vpcs: impl Fn(&Received) -> String,
    ) -> (u16, String) {
        let cluster_tags = [("vre:cluster", "lab")];
        match r.action.as_str() {
            "DescribeSubnets" => ok(subnets(r)),
            "DescribeVpcs" => ok(vpcs(r)),
            "DescribeInstances" => ok(describe_instances(&[instance_xml(
                "i-0a0a0a0a",
                "running",
                Some("10.20.1.10"),
                0,
                &[
                    ("Name", "lab-master-1"),
                    ("vre:key", "server/master-1"),
                    cluster_tags[0],
                ],
                None,
            )])),
            "DescribeSecurityGroups" => ok(format!(
                "<DescribeSecurityGroupsResponse {NS}><requestId>r</requestId><securityGroupInfo><item><ownerId>123456789012</ownerId>\
                 <groupId>sg-0b0b0b0b</groupId><groupName>lab-sg</groupName><groupDescription>vre</groupDescription><vpcId>vpc-0e0f1a2b</vpcId>\
                 <ipPermissions/><ipPermissionsEgress/>{}</item></securityGroupInfo></DescribeSecurityGroupsResponse>",
                tag_set(&[cluster_tags[0], ("vre:key", "security-group")])
            )),
            "DescribeKeyPairs" => ok(format!(
                "<DescribeKeyPairsResponse {NS}><requestId>r</requestId><keySet><item><keyPairId>key-0c0c0c0c</keyPairId>\
                 <keyName>lab-key</keyName><keyFingerprint>ab:cd</keyFingerprint><tagSet/></item></keySet></DescribeKeyPairsResponse>"
            )),
            "DescribeVolumes" => ok(format!(
                "<DescribeVolumesResponse {NS}><requestId>r</requestId><volumeSet/></DescribeVolumesResponse>"
            )),
            "DescribeAddresses" => ok(format!(
                "<DescribeAddressesResponse {NS}><requestId>r</requestId><addressesSet/></DescribeAddressesResponse>"
            )),
            "DescribeInternetGateways" => ok(format!(
                "<DescribeInternetGatewaysResponse {NS}><requestId>r</requestId><internetGatewaySet/></DescribeInternetGatewaysResponse>"
            )),
            "DescribeRouteTables" => ok(format!(
                "<DescribeRouteTablesResponse {NS}><requestId>r</requestId><routeTableSet/></DescribeRouteTablesResponse>"
            )),
            _ => err(400, "InvalidAction", "unexpected"),
        }
    }

    /// Cluster "lab": a master only (t3.medium, no public IP), `[aws]` as given.
    fn master_only(table: &[(&str, &str)]) -> ClusterSpec {
        let mut spec = ClusterSpec::new("lab", "aws");
        let m = spec.group_mut(Role::Master);
        m.flavor = "t3.medium".into();
        m.public_ip = false;
        for (k, v) in table {
            spec.provider_table
                .insert(k, vre_core::spec::Value::String(v.to_string()));
        }
        spec
    }

    /// The master-only spec with `table`, its provider on `ec2`, and the inventory it reads.
    async fn reusing(ec2: &ScriptedEc2, table: &[(&str, &str)]) -> (ClusterSpec, AwsProvider, Vec<CloudResource>) {
        let spec = master_only(table);
        let p = ec2.provider(spec.clone(), EventSink::none());
        let inv = p.inventory(&cluster()).await.unwrap();
        (spec, p, inv)
    }

    /// The networks and subnets of an inventory.
    fn networks_in(inv: &[CloudResource]) -> Vec<&CloudResource> {
        inv.iter()
            .filter(|r| matches!(r.kind, ResourceKind::Network | ResourceKind::Subnet))
            .collect()
    }

    #[tokio::test]
    async fn a_reused_subnet_is_the_kept_network_and_is_never_deleted() {
        let ec2 = ScriptedEc2::start(|r| {
            inventory_answer(
                r,
                |r| match r.get("SubnetId.1") {
                    Some("subnet-0a1b2c3d") => describe_subnets(&[subnet_xml(
                        "subnet-0a1b2c3d",
                        "vpc-0e0f1a2b",
                        "10.20.1.0/24",
                        "us-east-1b",
                        &[("Name", "shared")],
                    )]),
                    _ => describe_subnets(&[]),
                },
                |_| format!("<DescribeVpcsResponse {NS}><requestId>r</requestId><vpcSet/></DescribeVpcsResponse>"),
            )
        })
        .await;
        let (spec, p, inv) = reusing(&ec2, &[("subnet_id", "subnet-0a1b2c3d")]).await;
        let c = cluster();
        let networks = networks_in(&inv);
        assert_eq!(networks.len(), 1, "{inv:#?}");
        let net = networks[0].clone();
        assert_eq!(net.key, Some(ResourceKey::network()));
        assert_eq!(
            (net.kind.clone(), net.id.as_str()),
            (ResourceKind::Network, "vpc-0e0f1a2b")
        );
        assert_eq!(net.attr(core_attr::REUSED), Some("true"));
        assert_eq!(net.attr(core_attr::SUBNET_ID), Some("subnet-0a1b2c3d"));
        assert_eq!(net.attr(core_attr::CIDR), Some("10.20.1.0/24"));
        assert_eq!(net.attr(attr::ZONE), Some("us-east-1b"));
        // what apply records for the network is what the inventory reports
        let info = p
            .ensure_network(
                &c,
                &vre_core::provider::NetworkRequest {
                    cidr: spec.network.cidr,
                    dns_servers: Vec::new(),
                    master_ip: spec.network.master_ip,
                },
            )
            .await
            .unwrap();
        assert_eq!(info.network, net);
        let plan = vre_core::plan::Plan::compute(&spec, None, &inv);
        assert!(!plan.has_changes(), "a reused network is kept:\n{plan}");

        // the engine never deletes it; a caller that does, with or without the mark, is refused
        let before = ec2.actions().len();
        let mut unmarked = net.clone();
        unmarked.attrs.remove(core_attr::REUSED);
        for r in [
            net.clone(),
            unmarked,
            CloudResource::new(ResourceKind::Subnet, "subnet-0a1b2c3d", "shared"),
            CloudResource::new(ResourceKind::Network, "subnet-0a1b2c3d", "lab-net"),
        ] {
            p.delete(&c, &r).await.unwrap();
        }
        let after = ec2.actions();
        assert_eq!(
            after.len(),
            before,
            "no call for a reused resource: {:?}",
            &after[before..]
        );
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn in_a_reused_vpc_the_own_subnet_is_the_network_and_the_vpc_is_never_deleted() {
        let ec2 = ScriptedEc2::start(|r| match r.action.as_str() {
            "DeleteSubnet" => ok(format!("<DeleteSubnetResponse {NS}><return>true</return></DeleteSubnetResponse>")),
            _ => inventory_answer(
                r,
                |r| {
                    let own = subnet_xml(
                        "subnet-0c0d0e0f",
                        "vpc-0e0f1a2b",
                        "10.20.7.0/24",
                        "us-east-1a",
                        &[("vre:cluster", "lab"), ("vre:key", "network"), ("Name", "lab-net")],
                    );
                    match r.get("SubnetId.1") {
                        Some("subnet-0c0d0e0f") | None => describe_subnets(&[own]),
                        Some(other) => describe_subnets(&[subnet_xml(
                            other,
                            "vpc-0e0f1a2b",
                            "10.20.9.0/24",
                            "us-east-1a",
                            &[("Name", "someone-else")],
                        )]),
                    }
                },
                // the VPC carries the cluster's tags (vre made it once), yet the table reuses it
                |_| {
                    format!(
                        "<DescribeVpcsResponse {NS}><requestId>r</requestId><vpcSet><item><vpcId>vpc-0e0f1a2b</vpcId><state>available</state>\
                         <cidrBlock>10.20.0.0/16</cidrBlock>{}</item></vpcSet></DescribeVpcsResponse>",
                        tag_set(&[("vre:cluster", "lab"), ("vre:key", "network")])
                    )
                },
            ),
        })
        .await;
        let (spec, p, inv) = reusing(&ec2, &[("vpc_id", "vpc-0e0f1a2b")]).await;
        let c = cluster();
        let networks = networks_in(&inv);
        assert_eq!(networks.len(), 1, "the reused VPC is not the cluster's: {inv:#?}");
        assert_eq!(networks[0].id, "subnet-0c0d0e0f");
        assert_eq!(networks[0].key, Some(ResourceKey::network()));
        assert_eq!(networks[0].attr(core_attr::REUSED), None);
        let plan = vre_core::plan::Plan::compute(&spec, None, &inv);
        assert!(!plan.has_changes(), "{plan}");

        // the reused VPC: no call at all, whatever its tags say
        p.delete(
            &c,
            &CloudResource::new(ResourceKind::Network, "vpc-0e0f1a2b", "lab-net"),
        )
        .await
        .unwrap();
        assert!(ec2.requests("DeleteVpc").is_empty());
        // a subnet without the cluster's tag is left alone
        p.delete(
            &c,
            &CloudResource::new(ResourceKind::Subnet, "subnet-0f0f0f0f", "someone-else"),
        )
        .await
        .unwrap();
        assert!(ec2.requests("DeleteSubnet").is_empty());
        // the cluster's own subnet goes
        p.delete(&c, networks[0]).await.unwrap();
        let deleted: Vec<String> = ec2
            .requests("DeleteSubnet")
            .iter()
            .map(|r| r.get("SubnetId").unwrap_or_default().to_string())
            .collect();
        assert_eq!(deleted, vec!["subnet-0c0d0e0f"]);
        ec2.assert_all_valid();
    }

    #[tokio::test]
    async fn building_needs_credentials_and_makes_no_call() {
        let home = tempfile::tempdir().unwrap();
        let mut spec = ClusterSpec::new("lab", "aws");
        spec.provider_table
            .insert("region", vre_core::spec::Value::String("eu-north-1".into()));
        let mut ctx = ProviderContext::new(Arc::new(spec), home.path().to_path_buf());
        ctx.env = [("HOME".to_string(), home.path().display().to_string())]
            .into_iter()
            .collect();
        let e = vre_core::ProviderFactory::build(&AwsFactory, ctx)
            .await
            .err()
            .expect("no credentials");
        assert!(matches!(e, Error::Credentials { .. }), "{e}");
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
