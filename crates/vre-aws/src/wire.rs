//! EC2's XML answers, as serde types for quick-xml. Element names are the
//! output shapes' `locationName`s in the EC2 model (lists are `<xSet><item>`);
//! only the fields vre reads are declared, the rest is skipped.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// `<xSet><item>..</item>...</xSet>`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Items<T> {
    #[serde(default = "Vec::new")]
    pub item: Vec<T>,
}

impl<T> Items<T> {
    pub fn into_vec(self) -> Vec<T> {
        self.item
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// Reading tags by key.
pub trait Tagged {
    fn tags(&self) -> &[Tag];

    fn tag(&self, key: &str) -> Option<&str> {
        self.tags().iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }
}

macro_rules! tagged {
    ($($t:ty),*) => {$(
        impl Tagged for $t {
            fn tags(&self) -> &[Tag] {
                &self.tag_set.item
            }
        }
    )*};
}

/// `<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors><RequestID>..</RequestID></Response>`
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ErrorResponse {
    #[serde(rename = "Errors", default)]
    pub errors: ErrorList,
    #[serde(rename = "RequestID", alias = "RequestId", default)]
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ErrorList {
    #[serde(rename = "Error", default)]
    pub error: Vec<ErrorDetail>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "Code", default)]
    pub code: String,
    #[serde(rename = "Message", default)]
    pub message: String,
}

/// `<return>true</return>` answers.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ReturnResponse {
    #[serde(rename = "return", default)]
    pub ok: Option<bool>,
}

// ---------------------------------------------------------------- images

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImagesResponse {
    #[serde(default)]
    pub images_set: Items<Image>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub image_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image_state: String,
    pub root_device_name: Option<String>,
    pub creation_date: Option<String>,
    pub image_owner_id: Option<String>,
    pub architecture: Option<String>,
    pub state_reason: Option<StateReason>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportImageResponse {
    pub import_task_id: String,
    pub status: Option<String>,
    pub status_message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImportImageTasksResponse {
    #[serde(default)]
    pub import_image_task_set: Items<ImportImageTask>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportImageTask {
    pub import_task_id: String,
    #[serde(default)]
    pub status: String,
    pub status_message: Option<String>,
    pub progress: Option<String>,
    pub image_id: Option<String>,
}

// ---------------------------------------------------------------- network

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    pub vpc_id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub cidr_block: String,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CreateVpcResponse {
    pub vpc: Vpc,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeVpcsResponse {
    #[serde(default)]
    pub vpc_set: Items<Vpc>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub subnet_id: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub cidr_block: String,
    #[serde(default)]
    pub availability_zone: String,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CreateSubnetResponse {
    pub subnet: Subnet,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSubnetsResponse {
    #[serde(default)]
    pub subnet_set: Items<Subnet>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternetGateway {
    pub internet_gateway_id: String,
    #[serde(default)]
    pub attachment_set: Items<GatewayAttachment>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAttachment {
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub state: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInternetGatewayResponse {
    pub internet_gateway: InternetGateway,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeInternetGatewaysResponse {
    #[serde(default)]
    pub internet_gateway_set: Items<InternetGateway>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub route_table_id: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub route_set: Items<Route>,
    #[serde(default)]
    pub association_set: Items<RouteTableAssociation>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub destination_cidr_block: Option<String>,
    pub gateway_id: Option<String>,
    pub state: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTableAssociation {
    #[serde(default)]
    pub route_table_association_id: String,
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub main: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRouteTableResponse {
    pub route_table: RouteTable,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRouteTablesResponse {
    #[serde(default)]
    pub route_table_set: Items<RouteTable>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociateRouteTableResponse {
    pub association_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    pub group_id: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub ip_permissions: Items<IpPermission>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPermission {
    #[serde(default)]
    pub ip_protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    #[serde(default)]
    pub groups: Items<GroupPair>,
    #[serde(default)]
    pub ip_ranges: Items<IpRange>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPair {
    pub group_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpRange {
    #[serde(default)]
    pub cidr_ip: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSecurityGroupResponse {
    pub group_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSecurityGroupsResponse {
    #[serde(default)]
    pub security_group_info: Items<SecurityGroup>,
    pub next_token: Option<String>,
}

// ---------------------------------------------------------------- key pairs

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPairInfo {
    pub key_pair_id: Option<String>,
    pub key_name: String,
    pub key_fingerprint: Option<String>,
    pub public_key: Option<String>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportKeyPairResponse {
    pub key_pair_id: Option<String>,
    pub key_name: String,
    pub key_fingerprint: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeKeyPairsResponse {
    #[serde(default)]
    pub key_set: Items<KeyPairInfo>,
}

// ---------------------------------------------------------------- instances

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub instance_id: String,
    #[serde(default)]
    pub image_id: String,
    #[serde(default)]
    pub instance_state: InstanceState,
    pub state_reason: Option<StateReason>,
    /// The older free-text reason (`User initiated (2024-...)`).
    pub reason: Option<String>,
    #[serde(default)]
    pub instance_type: String,
    pub private_ip_address: Option<String>,
    /// The public IPv4 address.
    pub ip_address: Option<String>,
    #[serde(default)]
    pub ami_launch_index: u32,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    pub placement: Option<Placement>,
    pub client_token: Option<String>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct InstanceState {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StateReason {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub availability_zone: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    #[serde(default)]
    pub reservation_id: String,
    #[serde(default)]
    pub instances_set: Items<Instance>,
}

/// RunInstances answers with a reservation.
pub type RunInstancesResponse = Reservation;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeInstancesResponse {
    #[serde(default)]
    pub reservation_set: Items<Reservation>,
    pub next_token: Option<String>,
}

impl DescribeInstancesResponse {
    pub fn instances(self) -> impl Iterator<Item = Instance> {
        self.reservation_set.item.into_iter().flat_map(|r| r.instances_set.item)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeInfo {
    pub instance_type: String,
    pub hypervisor: Option<String>,
    pub v_cpu_info: Option<VCpuInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VCpuInfo {
    pub default_v_cpus: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeInstanceTypesResponse {
    #[serde(default)]
    pub instance_type_set: Items<InstanceTypeInfo>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeAccountAttributesResponse {
    #[serde(default)]
    pub account_attribute_set: Items<AccountAttribute>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAttribute {
    pub attribute_name: String,
    #[serde(default)]
    pub attribute_value_set: Items<AccountAttributeValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAttributeValue {
    #[serde(default)]
    pub attribute_value: String,
}

impl DescribeAccountAttributesResponse {
    /// The first value of a numeric attribute (`max-instances`).
    pub fn number(&self, name: &str) -> Option<u64> {
        self.account_attribute_set
            .item
            .iter()
            .find(|a| a.attribute_name == name)?
            .attribute_value_set
            .item
            .first()?
            .attribute_value
            .parse()
            .ok()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeAvailabilityZonesResponse {
    #[serde(default)]
    pub availability_zone_info: Items<AvailabilityZone>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityZone {
    pub zone_name: String,
    #[serde(default)]
    pub zone_state: String,
    pub zone_type: Option<String>,
}

// ---------------------------------------------------------------- volumes and addresses

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub volume_id: String,
    #[serde(default)]
    pub size: u32,
    #[serde(default)]
    pub availability_zone: String,
    #[serde(default)]
    pub status: String,
    pub volume_type: Option<String>,
    #[serde(default)]
    pub attachment_set: Items<VolumeAttachment>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

/// CreateVolume answers with the volume's fields at the top.
pub type CreateVolumeResponse = Volume;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeAttachment {
    #[serde(default)]
    pub volume_id: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub status: String,
    pub delete_on_termination: Option<bool>,
}

/// AttachVolume and DetachVolume answer with the attachment.
pub type AttachmentResponse = VolumeAttachment;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeVolumesResponse {
    #[serde(default)]
    pub volume_set: Items<Volume>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub allocation_id: Option<String>,
    pub association_id: Option<String>,
    pub instance_id: Option<String>,
    #[serde(default)]
    pub public_ip: String,
    pub private_ip_address: Option<String>,
    #[serde(default)]
    pub tag_set: Items<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocateAddressResponse {
    pub allocation_id: String,
    pub public_ip: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociateAddressResponse {
    pub association_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeAddressesResponse {
    #[serde(default)]
    pub addresses_set: Items<Address>,
}

tagged!(
    Image,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    KeyPairInfo,
    Instance,
    Volume,
    Address
);

/// Parses an answer body.
pub fn parse<T: DeserializeOwned>(body: &str) -> Result<T, quick_xml::DeError> {
    quick_xml::de::from_str(body)
}

/// Paginated answers.
pub trait Paged {
    fn next_token(&self) -> Option<&str>;
}

macro_rules! paged {
    ($($t:ty),*) => {$(
        impl Paged for $t {
            fn next_token(&self) -> Option<&str> {
                self.next_token.as_deref().filter(|t| !t.is_empty())
            }
        }
    )*};
}

paged!(
    DescribeImagesResponse,
    DescribeVpcsResponse,
    DescribeSubnetsResponse,
    DescribeInternetGatewaysResponse,
    DescribeRouteTablesResponse,
    DescribeSecurityGroupsResponse,
    DescribeInstancesResponse,
    DescribeInstanceTypesResponse,
    DescribeVolumesResponse
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_error_document() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1a2b3c4d' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#;
        let e: ErrorResponse = parse(body).unwrap();
        assert_eq!(e.errors.error[0].code, "InvalidInstanceID.NotFound");
        assert_eq!(e.errors.error[0].message, "The instance ID 'i-1a2b3c4d' does not exist");
        assert_eq!(e.request_id.as_deref(), Some("ea966190-f9aa-478e-9ede-example"));
    }

    #[test]
    fn parses_instances_with_tags_states_and_reasons() {
        // the shape of AWS's documented DescribeInstances answer
        let body = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <ownerId>123456789012</ownerId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <imageId>ami-bff32ccc</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-192-168-1-88.eu-west-1.compute.internal</privateDnsName>
          <reason/>
          <keyName>my_keypair</keyName>
          <amiLaunchIndex>1</amiLaunchIndex>
          <productCodes/>
          <instanceType>t2.micro</instanceType>
          <placement><availabilityZone>eu-west-1c</availabilityZone><groupName/><tenancy>default</tenancy></placement>
          <subnetId>subnet-56f5f633</subnetId>
          <vpcId>vpc-11112222</vpcId>
          <privateIpAddress>192.168.1.88</privateIpAddress>
          <ipAddress>54.194.252.215</ipAddress>
          <tagSet>
            <item><key>Name</key><value>lab-service-2</value></item>
            <item><key>vre:cluster</key><value>lab</value></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-0598c7d356eba48d7</instanceId>
          <instanceState><code>48</code><name>terminated</name></instanceState>
          <stateReason><code>Server.InsufficientInstanceCapacity</code><message>Server.InsufficientInstanceCapacity: Insufficient capacity</message></stateReason>
          <instanceType>t3.medium</instanceType>
          <tagSet/>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;
        let r: DescribeInstancesResponse = parse(body).unwrap();
        let all: Vec<Instance> = r.instances().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].instance_state.name, "running");
        assert_eq!(all[0].private_ip_address.as_deref(), Some("192.168.1.88"));
        assert_eq!(all[0].ip_address.as_deref(), Some("54.194.252.215"));
        assert_eq!(all[0].ami_launch_index, 1);
        assert_eq!(all[0].tag("Name"), Some("lab-service-2"));
        assert_eq!(
            all[0].placement.as_ref().and_then(|p| p.availability_zone.as_deref()),
            Some("eu-west-1c")
        );
        assert_eq!(
            all[1].state_reason.as_ref().unwrap().code,
            "Server.InsufficientInstanceCapacity"
        );
        assert!(all[1].tags().is_empty());
    }

    #[test]
    fn parses_volumes_addresses_and_attributes() {
        let v: DescribeVolumesResponse = parse(
            r#"<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>80</size><availabilityZone>us-east-1a</availabilityZone><status>in-use</status><attachmentSet><item><volumeId>vol-1</volumeId><instanceId>i-1</instanceId><device>/dev/sdf</device><status>attached</status><deleteOnTermination>false</deleteOnTermination></item></attachmentSet><tagSet><item><key>vre:key</key><value>volume/storage-1</value></item></tagSet></item></volumeSet><nextToken>abc</nextToken></DescribeVolumesResponse>"#,
        )
        .unwrap();
        assert_eq!(v.next_token(), Some("abc"));
        let vol = &v.volume_set.item[0];
        assert_eq!(vol.size, 80);
        assert_eq!(vol.attachment_set.item[0].device, "/dev/sdf");
        assert_eq!(vol.tag("vre:key"), Some("volume/storage-1"));

        let a: DescribeAccountAttributesResponse = parse(
            "<DescribeAccountAttributesResponse><accountAttributeSet><item><attributeName>max-instances</attributeName><attributeValueSet><item><attributeValue>20</attributeValue></item></attributeValueSet></item></accountAttributeSet></DescribeAccountAttributesResponse>",
        )
        .unwrap();
        assert_eq!(a.number("max-instances"), Some(20));
        assert_eq!(a.number("vpc-max-elastic-ips"), None);

        let r: ReturnResponse =
            parse("<DeleteVpcResponse><requestId>x</requestId><return>true</return></DeleteVpcResponse>").unwrap();
        assert_eq!(r.ok, Some(true));
    }
}
