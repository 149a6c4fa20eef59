//! The AWS provider against moto, the AWS emulator.
//!
//! These tests are `#[ignore]`d: they need moto's server and read its
//! address from `VRE_TEST_AWS_ENDPOINT`:
//!
//! ```text
//! ci/aws/moto.sh start
//! VRE_TEST_AWS_ENDPOINT=http://127.0.0.1:5000 cargo test -p vre-aws --test moto -- --include-ignored
//! ci/aws/moto.sh stop
//! ```
//!
//! Each test uses its own cluster name, so they share one moto without
//! resetting it. The engine drives the provider (`vre_core::Deployment`)
//! with a fake orchestrator: moto's instances never boot, so nothing would
//! ever join a Kubernetes cluster.

#[path = "support/ec2_model.rs"]
mod ec2_model;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use vre_aws::wire::{self, DescribeAddressesResponse, DescribeInstancesResponse, DescribeVolumesResponse, Tagged};
use vre_aws::{AwsFactory, AwsProvider, Ec2Client, PollPolicy, Query};
use vre_core::plan::Action;
use vre_core::testing::FakeOrchestrator;
use vre_core::{
    CloudProvider, CloudResource, ClusterRef, ClusterSpec, Deployment, NetworkRequest, PreflightRequest,
    ProviderContext, ResourceKey, RetryPolicy, Role, SpecField, attr, spec::Value,
};

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKtiuscrMuEuqwzyGuazQj07Dpcv5EWwnoUu6G2OAA4F vre-test";
/// moto ships this Canonical image (Ubuntu 16.04) in every region.
const MOTO_UBUNTU: &str = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*";

fn endpoint() -> String {
    std::env::var("VRE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("VRE_TEST_AWS_ENDPOINT is not set; start moto with `ci/aws/moto.sh start` and export VRE_TEST_AWS_ENDPOINT=http://127.0.0.1:5000")
    })
}

/// 1 master + 4 service + 2 storage + 1 edge.
fn spec(name: &str, table: &[(&str, Value)]) -> ClusterSpec {
    let mut s = ClusterSpec::new(name, "aws");
    s.image.name = MOTO_UBUNTU.into();
    s.group_mut(Role::Master).flavor = "t3.large".into();
    let g = s.group_mut(Role::Service);
    g.count = 4;
    g.flavor = "t3.medium".into();
    g.root_disk_gb = Some(30);
    let g = s.group_mut(Role::Storage);
    g.count = 2;
    g.flavor = "m5.large".into();
    g.volume_gb = Some(20);
    let g = s.group_mut(Role::Edge);
    g.count = 1;
    g.flavor = "t3.small".into();
    s.master_as_edge = false;
    s.provider_table.insert("endpoint", Value::String(endpoint()));
    s.provider_table.insert("region", Value::String("us-east-1".into()));
    for (k, v) in table {
        s.provider_table.insert(k, v.clone());
    }
    s
}

/// What the engine asks the provider to check for `spec`.
fn preflight_request(spec: &ClusterSpec) -> PreflightRequest {
    PreflightRequest {
        nodes: spec.nodes.clone(),
        image: spec.image.clone(),
        network: NetworkRequest {
            cidr: spec.network.cidr,
            dns_servers: spec.network.dns_servers.clone(),
            master_ip: spec.network.master_ip,
        },
    }
}

fn provider(spec: &ClusterSpec) -> Arc<AwsProvider> {
    let mut ctx = ProviderContext::new(Arc::new(spec.clone()), std::env::temp_dir());
    ctx.env = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let p = AwsFactory
        .provider(&ctx)
        .expect("provider")
        .with_poll(PollPolicy::fast());
    p.client().record_requests();
    Arc::new(p)
}

fn deployment(spec: &ClusterSpec, provider: &Arc<AwsProvider>, dir: &std::path::Path) -> Deployment {
    Deployment::builder(spec.clone(), dir)
        .provider(provider.clone())
        .orchestrator(Arc::new(FakeOrchestrator::new(dir)))
        .public_key(PUBLIC_KEY)
        .retry(RetryPolicy::immediate(3))
        .build()
        .expect("deployment")
}

/// Every request the client sent matches the EC2 model.
fn assert_requests_valid(client: &Ec2Client) {
    let model = ec2_model::Ec2Model::load();
    let bad: Vec<String> = client
        .recorded_requests()
        .iter()
        .filter_map(|q| {
            model
                .check_params(q.action(), q.params())
                .err()
                .map(|p| format!("{}: {}", q.action(), p.join("; ")))
        })
        .collect();
    assert!(bad.is_empty(), "requests the EC2 model rejects:\n{}", bad.join("\n"));
}

async fn instances(client: &Ec2Client, cluster: &str) -> Vec<wire::Instance> {
    let q = Query::new("DescribeInstances")
        .tag_filter("vre:cluster", cluster)
        .filter("instance-state-name", ["pending", "running"]);
    let pages: Vec<DescribeInstancesResponse> = client.call_pages(q).await.unwrap();
    pages.into_iter().flat_map(|p| p.instances()).collect()
}

fn kinds(inventory: &[vre_core::CloudResource]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in inventory {
        *m.entry(r.kind.to_string()).or_default() += 1;
    }
    m
}

#[tokio::test]
#[ignore = "needs moto: set VRE_TEST_AWS_ENDPOINT (ci/aws/moto.sh start)"]
async fn applies_reapplies_and_destroys_a_cluster() {
    let name = format!("vre-full-{}", std::process::id());
    let spec = spec(
        &name,
        &[(
            "image_owners",
            Value::Array(vec![vre_core::spec::Item {
                span: None,
                value: Value::String("099720109477".into()),
            }]),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = provider(&spec);
    let client = p.client().clone();
    let d = deployment(&spec, &p, dir.path());

    let report = d.apply().await.expect("apply");
    assert_eq!(report.summary.replace, 0);
    assert_eq!(
        client.count("RunInstances"),
        4,
        "one RunInstances per role: {:?}",
        client.request_counts()
    );

    // the instances, as moto reports them
    let all = instances(&client, &name).await;
    assert_eq!(all.len(), 8);
    let by_name: BTreeMap<String, &wire::Instance> = all
        .iter()
        .map(|i| (i.tag("Name").unwrap_or_default().to_string(), i))
        .collect();
    let expected: BTreeSet<String> = [("master", 1), ("service", 4), ("storage", 2), ("edge", 1)]
        .iter()
        .flat_map(|(r, n)| {
            let name = &name;
            (1..=*n).map(move |i| format!("{name}-{r}-{i}"))
        })
        .collect();
    assert_eq!(by_name.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (n, i) in &by_name {
        let (role, index) = n.strip_prefix(&format!("{name}-")).unwrap().rsplit_once('-').unwrap();
        assert_eq!(i.tag("vre:cluster"), Some(name.as_str()), "{n}");
        assert_eq!(i.tag("vre:role"), Some(role), "{n}");
        assert_eq!(i.tag("vre:key"), Some(format!("server/{role}-{index}").as_str()), "{n}");
        assert_eq!(i.instance_state.name, "running", "{n}");
    }
    let master = by_name[&format!("{name}-master-1")];
    assert_eq!(
        master.private_ip_address.as_deref(),
        Some("10.0.0.10"),
        "the master's fixed address"
    );
    assert_eq!(master.instance_type, "t3.large");
    assert_eq!(by_name[&format!("{name}-service-3")].instance_type, "t3.medium");
    // one reservation per role
    let tokens: BTreeSet<String> = all.iter().filter_map(|i| i.client_token.clone()).collect();
    assert!(tokens.len() <= 4, "{tokens:?}");

    // data volumes attached to the storage nodes
    let vols: Vec<DescribeVolumesResponse> = client
        .call_pages(Query::new("DescribeVolumes").tag_filter("vre:cluster", &name))
        .await
        .unwrap();
    let data: Vec<wire::Volume> = vols
        .into_iter()
        .flat_map(|p| p.volume_set.into_vec())
        .filter(|v| v.tag("vre:key").is_some())
        .collect();
    assert_eq!(data.len(), 2);
    for v in &data {
        let key = v.tag("vre:key").unwrap();
        let node = format!("{name}-{}", key.strip_prefix("volume/").unwrap());
        assert_eq!(v.size, 20);
        let a = &v.attachment_set.item;
        assert_eq!(a.len(), 1, "{key}");
        assert_eq!(a[0].instance_id, by_name[&node].instance_id, "{key} attached to {node}");
        assert_eq!(a[0].device, "/dev/sdf");
        assert!(v.tag("vre:device").is_some(), "{key} records its OS device");
    }

    // Elastic IPs bound to the master and the edge
    let addrs: DescribeAddressesResponse = client
        .call(&Query::new("DescribeAddresses").tag_filter("vre:cluster", &name))
        .await
        .unwrap();
    let addrs = addrs.addresses_set.into_vec();
    assert_eq!(addrs.len(), 2);
    let bound: BTreeSet<String> = addrs.iter().filter_map(|a| a.instance_id.clone()).collect();
    let want: BTreeSet<String> = [format!("{name}-master-1"), format!("{name}-edge-1")]
        .iter()
        .map(|n| by_name[n].instance_id.clone())
        .collect();
    assert_eq!(bound, want);

    // the provider's own view
    let cluster = ClusterRef::new(&name);
    let inv = p.inventory(&cluster).await.unwrap();
    let k = kinds(&inv);
    assert_eq!(k.get("instance"), Some(&8), "{k:?}");
    assert_eq!(k.get("public-ip"), Some(&2), "{k:?}");
    assert_eq!(k.get("volume-attachment"), Some(&2), "{k:?}");
    // 2 data volumes + 8 root volumes (tagged at launch so nothing escapes destroy)
    assert_eq!(k.get("volume"), Some(&10), "{k:?}");
    assert_eq!(k.get("network"), Some(&1), "{k:?}");
    assert_eq!(k.get("subnet"), Some(&1), "{k:?}");
    assert_eq!(k.get("gateway"), Some(&1), "{k:?}");
    assert_eq!(k.get("route-table"), Some(&1), "{k:?}");
    assert_eq!(k.get("security-group"), Some(&1), "{k:?}");
    assert_eq!(k.get("key-pair"), Some(&1), "{k:?}");
    assert!(
        inv.iter().all(|r| r.attr(attr::REUSED).is_none()),
        "nothing is reused: {inv:#?}"
    );
    let plan = d.plan().await.expect("plan");
    assert!(!plan.has_changes(), "a plan right after apply changes nothing:\n{plan}");
    let counts_before = client.request_counts();

    // again: nothing new
    let again = d.apply().await.expect("re-apply");
    assert_eq!(again.summary.create, 0, "{:?}", again.summary);
    assert_eq!(again.summary.delete, 0, "{:?}", again.summary);
    let counts = client.request_counts();
    for action in [
        "RunInstances",
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "CreateRouteTable",
        "CreateSecurityGroup",
        "ImportKeyPair",
        "AllocateAddress",
        "CreateVolume",
        "AttachVolume",
        "AssociateAddress",
    ] {
        assert_eq!(
            counts.get(action),
            counts_before.get(action),
            "{action} called again on re-apply"
        );
    }
    assert_eq!(instances(&client, &name).await.len(), 8);
    assert_eq!(kinds(&p.inventory(&cluster).await.unwrap()), k);

    // destroy: nothing tagged remains
    let destroyed = d.destroy().await.expect("destroy");
    assert!(destroyed.deleted.len() >= 20, "{}", destroyed.deleted.len());
    let left = p.inventory(&cluster).await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
    assert!(instances(&client, &name).await.is_empty());
    assert_requests_valid(&client);
}

#[tokio::test]
#[ignore = "needs moto: set VRE_TEST_AWS_ENDPOINT (ci/aws/moto.sh start)"]
async fn preflight_names_the_fields_to_fix() {
    let name = format!("vre-pre-{}", std::process::id());
    let mut s = spec(&name, &[]);
    s.group_mut(Role::Service).flavor = "t3.enormous".into();
    s.image.name = "no-such-image-*".into();
    let p = provider(&s);
    let problems = p
        .preflight(&ClusterRef::new(&name), &preflight_request(&s))
        .await
        .unwrap();
    let fields: Vec<&SpecField> = problems.iter().map(|p| &p.field).collect();
    assert!(fields.contains(&&SpecField::Flavor(Role::Service)), "{problems:?}");
    assert!(fields.contains(&&SpecField::Image), "{problems:?}");
    assert_eq!(problems.len(), 2, "{problems:?}");

    let s = spec(&name, &[("image_id", Value::String("ami-0123456789abcdef0".into()))]);
    let p = provider(&s);
    let problems = p
        .preflight(&ClusterRef::new(&name), &preflight_request(&s))
        .await
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, SpecField::setting("aws", "image_id"), "{problems:?}");

    let ok = spec(&name, &[]);
    let p = provider(&ok);
    assert!(
        p.preflight(&ClusterRef::new(&name), &preflight_request(&ok))
            .await
            .unwrap()
            .is_empty()
    );
    assert_requests_valid(p.client());
}

#[tokio::test]
#[ignore = "needs moto: set VRE_TEST_AWS_ENDPOINT (ci/aws/moto.sh start)"]
async fn a_reused_subnet_is_used_and_left_alone() {
    let name = format!("vre-reuse-{}", std::process::id());
    // someone else's network
    let seed = provider(&spec(&format!("{name}-seed"), &[]));
    let c = seed.client();
    let vpc: wire::CreateVpcResponse = c
        .call(&Query::new("CreateVpc").param("CidrBlock", "10.20.0.0/16"))
        .await
        .unwrap();
    let subnet: wire::CreateSubnetResponse = c
        .call(
            &Query::new("CreateSubnet")
                .param("VpcId", &vpc.vpc.vpc_id)
                .param("CidrBlock", "10.20.1.0/24")
                .param("AvailabilityZone", "us-east-1b"),
        )
        .await
        .unwrap();
    let subnet_id = subnet.subnet.subnet_id.clone();

    let mut s = spec(&name, &[("subnet_id", Value::String(subnet_id.clone()))]);
    for role in [Role::Service, Role::Edge] {
        s.group_mut(role).count = 0;
    }
    s.master_as_edge = true;
    let dir = tempfile::tempdir().unwrap();
    let p = provider(&s);
    let d = deployment(&s, &p, dir.path());
    d.apply().await.expect("apply");
    let client = p.client();
    assert_eq!(client.count("CreateVpc"), 0);
    assert_eq!(client.count("CreateSubnet"), 0);
    let all = instances(client, &name).await;
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|i| i.subnet_id.as_deref() == Some(subnet_id.as_str())));
    let master = all
        .iter()
        .find(|i| i.tag("Name") == Some(&format!("{name}-master-1")))
        .unwrap();
    assert_eq!(master.private_ip_address.as_deref(), Some("10.20.1.10"));
    // volumes follow the subnet's zone
    let vols: DescribeVolumesResponse = client
        .call(
            &Query::new("DescribeVolumes")
                .tag_filter("vre:key", "volume/storage-1")
                .tag_filter("vre:cluster", &name),
        )
        .await
        .unwrap();
    assert_eq!(vols.volume_set.item[0].availability_zone, "us-east-1b");
    // the reused subnet is the cluster's network, reported as reused
    let cluster = ClusterRef::new(&name);
    let inv = p.inventory(&cluster).await.unwrap();
    let reused: Vec<&CloudResource> = inv.iter().filter(|r| r.attr(attr::REUSED) == Some("true")).collect();
    assert_eq!(reused.len(), 1, "{inv:#?}");
    assert_eq!(reused[0].key, Some(ResourceKey::network()));
    assert_eq!(reused[0].id, vpc.vpc.vpc_id);
    assert_eq!(reused[0].attr(attr::SUBNET_ID), Some(subnet_id.as_str()));
    let plan = d.plan().await.expect("plan");
    assert_eq!(
        plan.item(&ResourceKey::network()).unwrap().action,
        Action::Keep,
        "{plan}"
    );
    assert!(!plan.has_changes(), "a plan right after apply changes nothing:\n{plan}");

    let destroyed = d.destroy().await.expect("destroy");
    assert!(
        destroyed.kept.iter().any(|r| r.key == Some(ResourceKey::network())),
        "destroy reports the reused network as kept: {:?}",
        destroyed.kept
    );
    assert!(destroyed.deleted.iter().all(|r| r.attr(attr::REUSED).is_none()));
    let left = p.inventory(&cluster).await.unwrap();
    assert_eq!(left.len(), 1, "only the reused network is left: {left:#?}");
    assert_eq!(left[0].attr(attr::REUSED), Some("true"));
    // a direct delete of it is refused too
    p.delete(&cluster, &left[0]).await.unwrap();
    let still: wire::DescribeSubnetsResponse = client
        .call(&Query::new("DescribeSubnets").list("SubnetId", [&subnet_id]))
        .await
        .unwrap();
    assert_eq!(still.subnet_set.item.len(), 1, "the reused subnet survives destroy");
    let vpcs: wire::DescribeVpcsResponse = client
        .call(&Query::new("DescribeVpcs").list("VpcId", [&vpc.vpc.vpc_id]))
        .await
        .unwrap();
    assert_eq!(vpcs.vpc_set.item.len(), 1, "its VPC survives destroy");
    assert_requests_valid(client);
}

#[tokio::test]
#[ignore = "needs moto: set VRE_TEST_AWS_ENDPOINT (ci/aws/moto.sh start)"]
async fn a_reused_vpc_gets_the_cluster_subnet_and_routes() {
    let name = format!("vre-vpc-{}", std::process::id());
    let seed = provider(&spec(&format!("{name}-seed"), &[]));
    let c = seed.client();
    let vpc: wire::CreateVpcResponse = c
        .call(&Query::new("CreateVpc").param("CidrBlock", "10.30.0.0/16"))
        .await
        .unwrap();
    let vpc_id = vpc.vpc.vpc_id.clone();
    let igw: wire::CreateInternetGatewayResponse = c.call(&Query::new("CreateInternetGateway")).await.unwrap();
    let igw_id = igw.internet_gateway.internet_gateway_id.clone();
    c.send(
        &Query::new("AttachInternetGateway")
            .param("InternetGatewayId", &igw_id)
            .param("VpcId", &vpc_id),
    )
    .await
    .unwrap();

    let mut s = spec(&name, &[("vpc_id", Value::String(vpc_id.clone()))]);
    s.network.cidr = "10.30.7.0/24".parse().unwrap();
    for role in [Role::Service, Role::Storage, Role::Edge] {
        s.group_mut(role).count = 0;
    }
    s.master_as_edge = true;
    let dir = tempfile::tempdir().unwrap();
    let p = provider(&s);
    let d = deployment(&s, &p, dir.path());
    d.apply().await.expect("apply");
    let client = p.client();
    assert_eq!(client.count("CreateVpc"), 0);
    assert_eq!(client.count("CreateInternetGateway"), 0);
    assert_eq!(client.count("CreateSubnet"), 1);
    let tables: wire::DescribeRouteTablesResponse = client
        .call(&Query::new("DescribeRouteTables").tag_filter("vre:cluster", &name))
        .await
        .unwrap();
    let table = &tables.route_table_set.item[0];
    assert_eq!(table.vpc_id, vpc_id);
    assert!(
        table
            .route_set
            .item
            .iter()
            .any(|r| r.destination_cidr_block.as_deref() == Some("0.0.0.0/0")
                && r.gateway_id.as_deref() == Some(igw_id.as_str())),
        "{table:?}"
    );
    let master = instances(client, &name).await;
    assert_eq!(master[0].private_ip_address.as_deref(), Some("10.30.7.10"));
    // the subnet vre made is the cluster's network
    let inv = p.inventory(&ClusterRef::new(&name)).await.unwrap();
    let net = inv
        .iter()
        .find(|r| r.kind == vre_core::ResourceKind::Network)
        .expect("network");
    assert!(net.id.starts_with("subnet-"), "{net:?}");
    assert!(
        !inv.iter().any(|r| r.id == vpc_id),
        "the reused VPC is not the cluster's: {inv:#?}"
    );
    let plan = d.plan().await.expect("plan");
    assert!(!plan.has_changes(), "a plan right after apply changes nothing:\n{plan}");

    d.destroy().await.expect("destroy");
    assert!(p.inventory(&ClusterRef::new(&name)).await.unwrap().is_empty());
    let vpcs: wire::DescribeVpcsResponse = client
        .call(&Query::new("DescribeVpcs").list("VpcId", [&vpc_id]))
        .await
        .unwrap();
    assert_eq!(vpcs.vpc_set.item.len(), 1, "the reused VPC survives destroy");
    let gws: wire::DescribeInternetGatewaysResponse = client
        .call(&Query::new("DescribeInternetGateways").list("InternetGatewayId", [&igw_id]))
        .await
        .unwrap();
    assert_eq!(
        gws.internet_gateway_set.item[0].attachment_set.item[0].vpc_id, vpc_id,
        "its gateway stays attached"
    );
    assert_requests_valid(client);
}
