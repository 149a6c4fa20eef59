//! Every EC2 request vre sends, built by pure functions so a unit test can
//! check each against the EC2 model (operation, parameter names, enum
//! values, required members).

use vre_core::spec::{Ipv4Cidr, PortRange};

use crate::image::ImportSource;
use crate::query::{Query, Tag};

/// Instance states that still hold (or will hold) resources.
pub const LIVE_INSTANCE_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];
/// At most this many values per filter in one request.
pub const MAX_FILTER_VALUES: usize = 200;

// ---------------------------------------------------------------- images

pub fn describe_images_by_name(name: &str, owners: &[String]) -> Query {
    Query::new("DescribeImages")
        .list("Owner", owners)
        .filter("name", [name])
}

/// Images vre imported and named by tag (imported AMIs get generated names).
pub fn describe_images_by_name_tag(name: &str) -> Query {
    Query::new("DescribeImages")
        .list("Owner", ["self"])
        .filter("tag:Name", [name])
}

pub fn describe_images_by_id(id: &str) -> Query {
    Query::new("DescribeImages").list("ImageId", [id])
}

pub fn import_image(source: &ImportSource, role: &str, token: &str, description: &str, tags: &[Tag]) -> Query {
    Query::new("ImportImage")
        .param("Description", description)
        .param("DiskContainer.1.Description", description)
        .param("DiskContainer.1.Format", source.format)
        .param("DiskContainer.1.UserBucket.S3Bucket", &source.bucket)
        .param("DiskContainer.1.UserBucket.S3Key", &source.key)
        .param("RoleName", role)
        .param("ClientToken", token)
        .tag_specification("import-image-task", tags)
}

pub fn describe_import_image_task(task_id: &str) -> Query {
    Query::new("DescribeImportImageTasks").list("ImportTaskId", [task_id])
}

pub fn create_tags(resource_ids: &[&str], tags: &[Tag]) -> Query {
    Query::new("CreateTags")
        .list("ResourceId", resource_ids)
        .tag_list("Tag", tags)
}

// ---------------------------------------------------------------- network

/// Filters a Describe call to resources tagged with the cluster.
fn of_cluster(q: Query, cluster: &str) -> Query {
    q.tag_filter(vre_core::CLUSTER_TAG, cluster)
}

pub fn describe_vpcs_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeVpcs"), cluster)
}

pub fn describe_vpc(id: &str) -> Query {
    Query::new("DescribeVpcs").list("VpcId", [id])
}

pub fn create_vpc(cidr: &Ipv4Cidr, tags: &[Tag]) -> Query {
    Query::new("CreateVpc")
        .param("CidrBlock", cidr)
        .tag_specification("vpc", tags)
}

pub fn delete_vpc(id: &str) -> Query {
    Query::new("DeleteVpc").param("VpcId", id)
}

pub fn describe_subnets_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeSubnets"), cluster)
}

pub fn describe_subnet(id: &str) -> Query {
    Query::new("DescribeSubnets").list("SubnetId", [id])
}

pub fn create_subnet(vpc_id: &str, cidr: &Ipv4Cidr, zone: &str, tags: &[Tag]) -> Query {
    Query::new("CreateSubnet")
        .param("VpcId", vpc_id)
        .param("CidrBlock", cidr)
        .param("AvailabilityZone", zone)
        .tag_specification("subnet", tags)
}

pub fn delete_subnet(id: &str) -> Query {
    Query::new("DeleteSubnet").param("SubnetId", id)
}

pub fn describe_zones() -> Query {
    Query::new("DescribeAvailabilityZones")
        .filter("zone-type", ["availability-zone"])
        .filter("state", ["available"])
}

pub fn describe_zone(name: &str) -> Query {
    Query::new("DescribeAvailabilityZones").list("ZoneName", [name])
}

pub fn describe_gateways_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeInternetGateways"), cluster)
}

pub fn describe_gateways_of_vpc(vpc_id: &str) -> Query {
    Query::new("DescribeInternetGateways").filter("attachment.vpc-id", [vpc_id])
}

pub fn describe_gateway(id: &str) -> Query {
    Query::new("DescribeInternetGateways").list("InternetGatewayId", [id])
}

pub fn create_internet_gateway(tags: &[Tag]) -> Query {
    Query::new("CreateInternetGateway").tag_specification("internet-gateway", tags)
}

pub fn attach_internet_gateway(gateway_id: &str, vpc_id: &str) -> Query {
    Query::new("AttachInternetGateway")
        .param("InternetGatewayId", gateway_id)
        .param("VpcId", vpc_id)
}

pub fn detach_internet_gateway(gateway_id: &str, vpc_id: &str) -> Query {
    Query::new("DetachInternetGateway")
        .param("InternetGatewayId", gateway_id)
        .param("VpcId", vpc_id)
}

pub fn delete_internet_gateway(id: &str) -> Query {
    Query::new("DeleteInternetGateway").param("InternetGatewayId", id)
}

pub fn describe_route_tables_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeRouteTables"), cluster)
}

pub fn describe_route_table(id: &str) -> Query {
    Query::new("DescribeRouteTables").list("RouteTableId", [id])
}

pub fn create_route_table(vpc_id: &str, token: &str, tags: &[Tag]) -> Query {
    Query::new("CreateRouteTable")
        .param("VpcId", vpc_id)
        .param("ClientToken", token)
        .tag_specification("route-table", tags)
}

/// The default route through the internet gateway.
pub fn create_default_route(route_table_id: &str, gateway_id: &str) -> Query {
    Query::new("CreateRoute")
        .param("RouteTableId", route_table_id)
        .param("DestinationCidrBlock", "0.0.0.0/0")
        .param("GatewayId", gateway_id)
}

pub fn associate_route_table(route_table_id: &str, subnet_id: &str) -> Query {
    Query::new("AssociateRouteTable")
        .param("RouteTableId", route_table_id)
        .param("SubnetId", subnet_id)
}

pub fn disassociate_route_table(association_id: &str) -> Query {
    Query::new("DisassociateRouteTable").param("AssociationId", association_id)
}

pub fn delete_route_table(id: &str) -> Query {
    Query::new("DeleteRouteTable").param("RouteTableId", id)
}

// ---------------------------------------------------------------- security group

pub fn describe_security_group(vpc_id: &str, name: &str) -> Query {
    Query::new("DescribeSecurityGroups")
        .filter("vpc-id", [vpc_id])
        .filter("group-name", [name])
}

pub fn describe_security_groups_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeSecurityGroups"), cluster)
}

pub fn create_security_group(vpc_id: &str, name: &str, description: &str, tags: &[Tag]) -> Query {
    Query::new("CreateSecurityGroup")
        .param("GroupName", name)
        .param("GroupDescription", description)
        .param("VpcId", vpc_id)
        .tag_specification("security-group", tags)
}

/// One ingress rule of the cluster's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngressRule {
    /// All protocols and ports from members of the group.
    FromGroup(String),
    /// TCP ports from anywhere (IPv4).
    TcpFromAnywhere(PortRange),
}

fn with_rules(mut q: Query, rules: &[IngressRule]) -> Query {
    for (i, r) in rules.iter().enumerate() {
        let p = format!("IpPermissions.{}", i + 1);
        q = match r {
            IngressRule::FromGroup(g) => q
                .param(format!("{p}.IpProtocol"), "-1")
                .param(format!("{p}.Groups.1.GroupId"), g),
            IngressRule::TcpFromAnywhere(ports) => q
                .param(format!("{p}.IpProtocol"), "tcp")
                .param(format!("{p}.FromPort"), ports.from)
                .param(format!("{p}.ToPort"), ports.to)
                .param(format!("{p}.IpRanges.1.CidrIp"), "0.0.0.0/0"),
        };
    }
    q
}

pub fn authorize_ingress(group_id: &str, rules: &[IngressRule]) -> Query {
    with_rules(
        Query::new("AuthorizeSecurityGroupIngress").param("GroupId", group_id),
        rules,
    )
}

pub fn revoke_ingress(group_id: &str, rules: &[IngressRule]) -> Query {
    with_rules(
        Query::new("RevokeSecurityGroupIngress").param("GroupId", group_id),
        rules,
    )
}

pub fn delete_security_group(id: &str) -> Query {
    Query::new("DeleteSecurityGroup").param("GroupId", id)
}

// ---------------------------------------------------------------- key pairs

pub fn describe_key_pair(name: &str) -> Query {
    Query::new("DescribeKeyPairs")
        .filter("key-name", [name])
        .param("IncludePublicKey", true)
}

/// `material` is the OpenSSH public key line; the Query API wants it base64-encoded.
pub fn import_key_pair(name: &str, material: &str, tags: &[Tag]) -> Query {
    use base64::Engine as _;
    Query::new("ImportKeyPair")
        .param("KeyName", name)
        .param(
            "PublicKeyMaterial",
            base64::engine::general_purpose::STANDARD.encode(material.as_bytes()),
        )
        .tag_specification("key-pair", tags)
}

pub fn delete_key_pair(name: &str) -> Query {
    Query::new("DeleteKeyPair").param("KeyName", name)
}

// ---------------------------------------------------------------- instances

/// What one RunInstances call launches.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    pub image_id: &'a str,
    pub instance_type: &'a str,
    pub count: u32,
    pub key_name: &'a str,
    pub subnet_id: &'a str,
    pub security_group_id: &'a str,
    /// The master's fixed address (single-instance launches only).
    pub private_ip: Option<std::net::Ipv4Addr>,
    /// Auto-assign a public IPv4 for outbound traffic.
    pub public_egress: bool,
    /// Base64 user data.
    pub user_data_b64: &'a str,
    pub client_token: &'a str,
    /// Root device name and size, when the size is set.
    pub root_disk: Option<(&'a str, u32)>,
    pub volume_type: &'a str,
    pub instance_tags: &'a [Tag],
    pub volume_tags: &'a [Tag],
}

pub fn run_instances(l: &Launch<'_>) -> Query {
    let mut q = Query::new("RunInstances")
        .param("ImageId", l.image_id)
        .param("InstanceType", l.instance_type)
        .param("MinCount", l.count)
        .param("MaxCount", l.count)
        .param("KeyName", l.key_name)
        .param("ClientToken", l.client_token)
        .secret_param("UserData", l.user_data_b64)
        // IMDSv2 only: the instance role's credentials are not one SSRF away
        .param("MetadataOptions.HttpTokens", "required")
        .param("MetadataOptions.HttpEndpoint", "enabled");
    if l.public_egress {
        q = q
            .param("NetworkInterface.1.DeviceIndex", 0)
            .param("NetworkInterface.1.SubnetId", l.subnet_id)
            .param("NetworkInterface.1.SecurityGroupId.1", l.security_group_id)
            .param("NetworkInterface.1.AssociatePublicIpAddress", true)
            .param("NetworkInterface.1.DeleteOnTermination", true)
            .param_opt("NetworkInterface.1.PrivateIpAddress", l.private_ip);
    } else {
        q = q
            .param("SubnetId", l.subnet_id)
            .param("SecurityGroupId.1", l.security_group_id)
            .param_opt("PrivateIpAddress", l.private_ip);
    }
    if let Some((device, gb)) = l.root_disk {
        q = q
            .param("BlockDeviceMapping.1.DeviceName", device)
            .param("BlockDeviceMapping.1.Ebs.VolumeSize", gb)
            .param("BlockDeviceMapping.1.Ebs.VolumeType", l.volume_type)
            .param("BlockDeviceMapping.1.Ebs.DeleteOnTermination", true);
    }
    q.tag_specification("instance", l.instance_tags)
        .tag_specification("volume", l.volume_tags)
}

/// Instances of one role of the cluster that are not going away.
pub fn describe_role_instances(cluster: &str, role: &str) -> Query {
    of_cluster(Query::new("DescribeInstances"), cluster)
        .tag_filter(vre_core::ROLE_TAG, role)
        .filter("instance-state-name", ["pending", "running", "stopping", "stopped"])
}

/// Instances by id, as a filter (unknown ids are skipped instead of failing
/// the call, which matters right after RunInstances).
pub fn describe_instances_by_id(ids: &[&str]) -> Query {
    Query::new("DescribeInstances").filter("instance-id", ids)
}

pub fn describe_instances_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeInstances"), cluster).filter("instance-state-name", LIVE_INSTANCE_STATES)
}

pub fn terminate_instances(ids: &[&str]) -> Query {
    Query::new("TerminateInstances").list("InstanceId", ids)
}

pub fn describe_instance_types(types: &[&str]) -> Query {
    Query::new("DescribeInstanceTypes").list("InstanceType", types)
}

/// Every account attribute (`max-instances`, `vpc-max-elastic-ips`, ...):
/// the model's `AttributeName` enum knows only two names, so none is asked for.
pub fn describe_account_attributes() -> Query {
    Query::new("DescribeAccountAttributes")
}

// ---------------------------------------------------------------- volumes

pub fn describe_volume_of_key(cluster: &str, key: &str) -> Query {
    of_cluster(Query::new("DescribeVolumes"), cluster)
        .tag_filter(vre_core::KEY_TAG, key)
        .filter("status", ["creating", "available", "in-use"])
}

pub fn describe_volume(id: &str) -> Query {
    Query::new("DescribeVolumes").filter("volume-id", [id])
}

pub fn describe_volumes_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeVolumes"), cluster)
}

pub fn create_volume(zone: &str, size_gb: u32, volume_type: &str, token: &str, tags: &[Tag]) -> Query {
    Query::new("CreateVolume")
        .param("AvailabilityZone", zone)
        .param("Size", size_gb)
        .param("VolumeType", volume_type)
        .param("ClientToken", token)
        .tag_specification("volume", tags)
}

pub fn attach_volume(volume_id: &str, instance_id: &str, device: &str) -> Query {
    Query::new("AttachVolume")
        .param("VolumeId", volume_id)
        .param("InstanceId", instance_id)
        .param("Device", device)
}

pub fn detach_volume(volume_id: &str, instance_id: &str, device: Option<&str>) -> Query {
    Query::new("DetachVolume")
        .param("VolumeId", volume_id)
        .param("InstanceId", instance_id)
        .param_opt("Device", device)
}

pub fn delete_volume(id: &str) -> Query {
    Query::new("DeleteVolume").param("VolumeId", id)
}

// ---------------------------------------------------------------- addresses

pub fn describe_address_of_key(cluster: &str, key: &str) -> Query {
    of_cluster(Query::new("DescribeAddresses"), cluster).tag_filter(vre_core::KEY_TAG, key)
}

pub fn describe_address(allocation_id: &str) -> Query {
    Query::new("DescribeAddresses").list("AllocationId", [allocation_id])
}

pub fn describe_addresses_of_cluster(cluster: &str) -> Query {
    of_cluster(Query::new("DescribeAddresses"), cluster)
}

/// Every Elastic IP of the account in the region (few by quota), to count them.
pub fn describe_all_vpc_addresses() -> Query {
    Query::new("DescribeAddresses").filter("domain", ["vpc"])
}

pub fn allocate_address(tags: &[Tag]) -> Query {
    Query::new("AllocateAddress")
        .param("Domain", "vpc")
        .tag_specification("elastic-ip", tags)
}

pub fn associate_address(allocation_id: &str, instance_id: &str) -> Query {
    Query::new("AssociateAddress")
        .param("AllocationId", allocation_id)
        .param("InstanceId", instance_id)
        .param("AllowReassociation", true)
}

pub fn disassociate_address(association_id: &str) -> Query {
    Query::new("DisassociateAddress").param("AssociationId", association_id)
}

pub fn release_address(allocation_id: &str) -> Query {
    Query::new("ReleaseAddress").param("AllocationId", allocation_id)
}

pub fn deregister_image(id: &str) -> Query {
    Query::new("DeregisterImage").param("ImageId", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2_model::Ec2Model;

    fn tags() -> Vec<Tag> {
        vec![
            ("vre:cluster".into(), "lab".into()),
            ("vre:key".into(), "server/service-1".into()),
            ("Name".into(), "lab-service-1".into()),
        ]
    }

    /// Every builder, with representative arguments.
    fn every_request() -> Vec<Query> {
        let t = tags();
        let cidr: Ipv4Cidr = "10.0.0.0/24".parse().unwrap();
        let owners = vec!["self".to_string(), "099720109477".to_string()];
        let src = ImportSource::parse("s3://images/ubuntu-noble.vmdk").unwrap();
        let rules = vec![
            IngressRule::FromGroup("sg-1".into()),
            IngressRule::TcpFromAnywhere(PortRange::single(22)),
            IngressRule::TcpFromAnywhere(PortRange { from: 30000, to: 32767 }),
        ];
        let mut launch = Launch {
            image_id: "ami-785db401",
            instance_type: "t3.medium",
            count: 4,
            key_name: "lab-key",
            subnet_id: "subnet-1",
            security_group_id: "sg-1",
            private_ip: None,
            public_egress: true,
            user_data_b64: "I2Nsb3VkLWNvbmZpZw==",
            client_token: "vre-0123",
            root_disk: Some(("/dev/sda1", 40)),
            volume_type: "gp3",
            instance_tags: &t,
            volume_tags: &t[..1],
        };
        let with_eni = run_instances(&launch);
        launch.public_egress = false;
        launch.count = 1;
        launch.private_ip = Some("10.0.0.10".parse().unwrap());
        launch.root_disk = None;
        let plain = run_instances(&launch);
        vec![
            describe_images_by_name("ubuntu/images/*", &owners),
            describe_images_by_name_tag("my-image"),
            describe_images_by_id("ami-1"),
            import_image(&src, "vmimport", "vre-tok", "vre image", &t),
            describe_import_image_task("import-ami-1"),
            create_tags(&["i-1", "vol-1"], &t),
            describe_vpcs_of_cluster("lab"),
            describe_vpc("vpc-1"),
            create_vpc(&cidr, &t),
            delete_vpc("vpc-1"),
            describe_subnets_of_cluster("lab"),
            describe_subnet("subnet-1"),
            create_subnet("vpc-1", &cidr, "us-east-1a", &t),
            delete_subnet("subnet-1"),
            describe_zones(),
            describe_zone("us-east-1a"),
            describe_gateways_of_cluster("lab"),
            describe_gateways_of_vpc("vpc-1"),
            describe_gateway("igw-1"),
            create_internet_gateway(&t),
            attach_internet_gateway("igw-1", "vpc-1"),
            detach_internet_gateway("igw-1", "vpc-1"),
            delete_internet_gateway("igw-1"),
            describe_route_tables_of_cluster("lab"),
            describe_route_table("rtb-1"),
            create_route_table("vpc-1", "vre-tok", &t),
            create_default_route("rtb-1", "igw-1"),
            associate_route_table("rtb-1", "subnet-1"),
            disassociate_route_table("rtbassoc-1"),
            delete_route_table("rtb-1"),
            describe_security_group("vpc-1", "lab-sg"),
            describe_security_groups_of_cluster("lab"),
            create_security_group("vpc-1", "lab-sg", "vre cluster lab", &t),
            authorize_ingress("sg-1", &rules),
            revoke_ingress("sg-1", &rules[1..]),
            delete_security_group("sg-1"),
            describe_key_pair("lab-key"),
            import_key_pair("lab-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI lab", &t),
            delete_key_pair("lab-key"),
            with_eni,
            plain,
            describe_role_instances("lab", "service"),
            describe_instances_by_id(&["i-1", "i-2"]),
            describe_instances_of_cluster("lab"),
            terminate_instances(&["i-1"]),
            describe_instance_types(&["t3.medium", "m5.large"]),
            describe_account_attributes(),
            describe_volume_of_key("lab", "volume/storage-1"),
            describe_volume("vol-1"),
            describe_volumes_of_cluster("lab"),
            create_volume("us-east-1a", 100, "gp3", "vre-tok", &t),
            attach_volume("vol-1", "i-1", "/dev/sdf"),
            detach_volume("vol-1", "i-1", Some("/dev/sdf")),
            delete_volume("vol-1"),
            describe_address_of_key("lab", "public-ip/edge-1"),
            describe_address("eipalloc-1"),
            describe_addresses_of_cluster("lab"),
            describe_all_vpc_addresses(),
            allocate_address(&t),
            associate_address("eipalloc-1", "i-1"),
            disassociate_address("eipassoc-1"),
            release_address("eipalloc-1"),
            deregister_image("ami-1"),
        ]
    }

    #[test]
    fn every_request_matches_the_ec2_model() {
        let model = Ec2Model::load();
        let mut failures = Vec::new();
        for q in every_request() {
            if let Err(problems) = model.check(&q) {
                failures.push(format!("{}: {}", q.action(), problems.join("; ")));
            }
        }
        assert!(
            failures.is_empty(),
            "requests the EC2 model rejects:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn the_model_check_rejects_what_ec2_would() {
        let model = Ec2Model::load();
        let bad = [
            Query::new("RunInstance").param("MinCount", 1),
            Query::new("DescribeInstances").param("Filters.1.Name", "x"),
            Query::new("RunInstances")
                .param("MinCount", 1)
                .param("MaxCount", "many"),
            Query::new("RunInstances").param("MinCount", 1),
            Query::new("CreateVpc").tag_specification("virtual-network", &tags()),
            Query::new("DescribeInstances").param("Filter.2.Name", "x"),
            Query::new("DescribeAccountAttributes").list("AttributeName", ["max-instances"]),
            Query::new("CreateTags")
                .param("ResourceId.1", "i-1")
                .param("Tag.1.Colour", "red"),
        ];
        for q in bad {
            assert!(model.check(&q).is_err(), "{} accepted: {:?}", q.action(), q.params());
        }
    }

    #[test]
    fn run_instances_launches_the_whole_group_at_once() {
        let t = tags();
        let q = run_instances(&Launch {
            image_id: "ami-1",
            instance_type: "t3.large",
            count: 620,
            key_name: "lab-key",
            subnet_id: "subnet-1",
            security_group_id: "sg-1",
            private_ip: None,
            public_egress: true,
            user_data_b64: "eA==",
            client_token: "tok",
            root_disk: None,
            volume_type: "gp3",
            instance_tags: &t,
            volume_tags: &t,
        });
        assert_eq!(q.get("MinCount"), Some("620"));
        assert_eq!(q.get("MaxCount"), Some("620"));
        assert_eq!(q.get("ClientToken"), Some("tok"));
        assert_eq!(q.get("NetworkInterface.1.AssociatePublicIpAddress"), Some("true"));
        assert_eq!(
            q.get("SubnetId"),
            None,
            "the subnet goes on the interface when one is specified"
        );
        assert_eq!(q.get("TagSpecification.2.ResourceType"), Some("volume"));
    }
}
