//! The cluster network: a VPC with one subnet, an internet gateway and a
//! route table whose default route goes through it, all tagged with the
//! cluster; or a reused subnet (`[aws] subnet_id`) as is; or a new subnet
//! (and route table, when the VPC has an internet gateway) inside a reused
//! VPC (`[aws] vpc_id`).

use vre_core::provider::{NetworkInfo, NetworkRequest};
use vre_core::spec::Ipv4Cidr;
use vre_core::{
    CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result, SpecField, attr as core_attr, plan,
};

use crate::error::{Blame, setting};
use crate::provider::{AwsProvider, attr, key_of};
use crate::requests;
use crate::wire::{
    self, CreateInternetGatewayResponse, CreateRouteTableResponse, CreateSubnetResponse, CreateVpcResponse,
    DescribeInternetGatewaysResponse, DescribeRouteTablesResponse, DescribeSubnetsResponse, DescribeVpcsResponse,
    Tagged,
};

fn parse_cidr(s: &str, what: &str) -> Result<Ipv4Cidr> {
    s.parse()
        .map_err(|e| Error::component("network", format!("EC2 reports {what} with CIDR \"{s}\": {e}")))
}

impl AwsProvider {
    /// A subnet named in `[aws] subnet_id`.
    pub(crate) async fn reused_subnet(&self, id: &str) -> Result<wire::Subnet> {
        let gone = || {
            Error::rejected(
                setting("subnet_id"),
                format!(
                    "subnet {id} does not exist in region {}; check the id and the region",
                    self.ec2.region()
                ),
            )
        };
        match self
            .ec2
            .call::<DescribeSubnetsResponse>(&requests::describe_subnet(id))
            .await
        {
            Ok(r) => r.subnet_set.into_vec().into_iter().next().ok_or_else(gone),
            Err(e) if e.is_not_found() => Err(gone()),
            Err(e) => Err(e.into()),
        }
    }

    /// A VPC named in `[aws] vpc_id`.
    pub(crate) async fn reused_vpc(&self, id: &str) -> Result<wire::Vpc> {
        let gone = || {
            Error::rejected(
                setting("vpc_id"),
                format!(
                    "VPC {id} does not exist in region {}; check the id and the region",
                    self.ec2.region()
                ),
            )
        };
        match self.ec2.call::<DescribeVpcsResponse>(&requests::describe_vpc(id)).await {
            Ok(r) => r.vpc_set.into_vec().into_iter().next().ok_or_else(gone),
            Err(e) if e.is_not_found() => Err(gone()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        let name = plan::network_name(&cluster.name);
        if let Some(subnet_id) = &self.settings.subnet_id {
            let subnet = self.reused_subnet(subnet_id).await?;
            if let Some(vpc) = &self.settings.vpc_id
                && &subnet.vpc_id != vpc
            {
                return Err(Error::rejected(
                    setting("subnet_id"),
                    format!(
                        "subnet {subnet_id} is in VPC {}, not in aws.vpc_id {vpc}; fix one of them",
                        subnet.vpc_id
                    ),
                ));
            }
            let cidr = parse_cidr(&subnet.cidr_block, &format!("subnet {subnet_id}"))?;
            let network = reused_network_resource(cluster, &subnet);
            return Ok(NetworkInfo { network, cidr });
        }
        let zone = self.zone(cluster).await?;
        if let Some(vpc_id) = &self.settings.vpc_id {
            let vpc = self.reused_vpc(vpc_id).await?;
            let vpc_cidr = parse_cidr(&vpc.cidr_block, &format!("VPC {vpc_id}"))?;
            if !vpc_cidr.contains(request.cidr.network()) || request.cidr.prefix < vpc_cidr.prefix {
                return Err(Error::rejected(
                    SpecField::NetworkCidr,
                    format!(
                        "{} is not inside VPC {vpc_id}'s {vpc_cidr}; pick a free range inside it",
                        request.cidr
                    ),
                ));
            }
            // the subnet vre makes here is "the network" (it is what destroy removes)
            let subnet = self
                .own_subnet(cluster, vpc_id, &request.cidr, &zone, Some(&name))
                .await?;
            let gateways: DescribeInternetGatewaysResponse = self
                .call(&requests::describe_gateways_of_vpc(vpc_id), &Blame::default())
                .await?;
            match gateways.internet_gateway_set.into_vec().into_iter().next() {
                Some(g) => {
                    self.own_route_table(cluster, vpc_id, &subnet.subnet_id, &g.internet_gateway_id).await?;
                }
                None => self.events.warn(format!(
                    "VPC {vpc_id} has no internet gateway; subnet {} uses the VPC's main route table (it needs a NAT route for nodes to reach the internet)",
                    subnet.subnet_id
                )),
            }
            let cidr = parse_cidr(&subnet.cidr_block, "the subnet")?;
            let network = CloudResource::new(ResourceKind::Network, &subnet.subnet_id, &name)
                .with_key(ResourceKey::network())
                .with_attr(core_attr::SUBNET_ID, subnet.subnet_id.clone())
                .with_attr(attr::VPC_ID, vpc_id.clone())
                .with_attr(attr::ZONE, subnet.availability_zone.clone())
                .with_attr(core_attr::CIDR, cidr.to_string());
            return Ok(NetworkInfo { network, cidr });
        }
        let vpc = self.own_vpc(cluster, &request.cidr, &name).await?;
        let subnet = self
            .own_subnet(cluster, &vpc.vpc_id, &request.cidr, &zone, None)
            .await?;
        let gateway = self.own_gateway(cluster, &vpc.vpc_id).await?;
        self.own_route_table(cluster, &vpc.vpc_id, &subnet.subnet_id, &gateway.internet_gateway_id)
            .await?;
        let cidr = parse_cidr(&subnet.cidr_block, "the subnet")?;
        let network = CloudResource::new(ResourceKind::Network, &vpc.vpc_id, &name)
            .with_key(ResourceKey::network())
            .with_attr(core_attr::SUBNET_ID, subnet.subnet_id.clone())
            .with_attr(attr::VPC_ID, vpc.vpc_id.clone())
            .with_attr(attr::ZONE, subnet.availability_zone.clone())
            .with_attr(core_attr::CIDR, cidr.to_string());
        Ok(NetworkInfo { network, cidr })
    }

    async fn own_vpc(&self, cluster: &ClusterRef, cidr: &Ipv4Cidr, name: &str) -> Result<wire::Vpc> {
        let pages: Vec<DescribeVpcsResponse> = self.pages(requests::describe_vpcs_of_cluster(&cluster.name)).await?;
        let mut mine: Vec<wire::Vpc> = pages
            .into_iter()
            .flat_map(|p| p.vpc_set.into_vec())
            .filter(|v| key_of(v) == Some(ResourceKey::network()))
            .collect();
        mine.sort_by(|a, b| a.vpc_id.cmp(&b.vpc_id));
        let vpc = match mine.into_iter().next() {
            Some(v) => {
                if v.cidr_block != cidr.to_string() {
                    self.events.warn(format!(
                        "network.cidr is {cidr} but VPC {} was made with {}; vre keeps it (destroy the VRE to change the network)",
                        v.vpc_id, v.cidr_block
                    ));
                }
                v
            }
            None => {
                let tags = self.tags(cluster, Some(&ResourceKey::network()), name);
                let made: CreateVpcResponse = self.call(&requests::create_vpc(cidr, &tags), &Blame::default()).await?;
                made.vpc
            }
        };
        if vpc.state == "available" {
            return Ok(vpc);
        }
        let id = vpc.vpc_id.clone();
        self.poll(&format!("VPC {id} to become available"), self.wait.timeout, || async {
            let r: DescribeVpcsResponse = self.call(&requests::describe_vpc(&id), &Blame::default()).await?;
            Ok(r.vpc_set.into_vec().into_iter().find(|v| v.state == "available"))
        })
        .await
    }

    /// The cluster's subnet in `vpc_id`; `network_name` makes it the keyed
    /// network resource (when the VPC is reused).
    async fn own_subnet(
        &self,
        cluster: &ClusterRef,
        vpc_id: &str,
        cidr: &Ipv4Cidr,
        zone: &str,
        network_name: Option<&str>,
    ) -> Result<wire::Subnet> {
        let pages: Vec<DescribeSubnetsResponse> = self
            .pages(requests::describe_subnets_of_cluster(&cluster.name).filter("vpc-id", [vpc_id]))
            .await?;
        let mut mine: Vec<wire::Subnet> = pages.into_iter().flat_map(|p| p.subnet_set.into_vec()).collect();
        mine.sort_by(|a, b| a.subnet_id.cmp(&b.subnet_id));
        let subnet = match mine.into_iter().next() {
            Some(s) => s,
            None => {
                let (key, name) = match network_name {
                    Some(n) => (Some(ResourceKey::network()), n.to_string()),
                    None => (None, cluster.resource_name("subnet")),
                };
                let tags = self.tags(cluster, key.as_ref(), &name);
                let made: CreateSubnetResponse = self
                    .call(&requests::create_subnet(vpc_id, cidr, zone, &tags), &Blame::default())
                    .await
                    .map_err(|e| match e {
                        Error::Cloud(c) if c.code.as_deref() == Some("InvalidSubnet.Conflict") => Error::rejected(
                            SpecField::NetworkCidr,
                            format!("{cidr} overlaps a subnet that already exists in VPC {vpc_id}; pick a free range"),
                        ),
                        Error::Cloud(c)
                            if c.code.as_deref() == Some("InvalidParameterValue")
                                && c.message.to_ascii_lowercase().contains("availability zone") =>
                        {
                            Error::rejected(setting("availability_zone"), c.message)
                        }
                        other => other,
                    })?;
                made.subnet
            }
        };
        if subnet.state == "available" {
            return Ok(subnet);
        }
        let id = subnet.subnet_id.clone();
        self.poll(
            &format!("subnet {id} to become available"),
            self.wait.timeout,
            || async {
                let r: DescribeSubnetsResponse = self.call(&requests::describe_subnet(&id), &Blame::default()).await?;
                Ok(r.subnet_set.into_vec().into_iter().find(|s| s.state == "available"))
            },
        )
        .await
    }

    async fn own_gateway(&self, cluster: &ClusterRef, vpc_id: &str) -> Result<wire::InternetGateway> {
        let pages: Vec<DescribeInternetGatewaysResponse> = self
            .pages(requests::describe_gateways_of_cluster(&cluster.name))
            .await?;
        let mut mine: Vec<wire::InternetGateway> = pages
            .into_iter()
            .flat_map(|p| p.internet_gateway_set.into_vec())
            .collect();
        // one attached to our VPC first, then any detached one
        mine.sort_by_key(|g| {
            (
                !g.attachment_set.item.iter().any(|a| a.vpc_id == vpc_id),
                g.internet_gateway_id.clone(),
            )
        });
        let gateway = match mine.into_iter().next() {
            Some(g) => g,
            None => {
                let tags = self.tags(cluster, None, &cluster.resource_name("igw"));
                let made: CreateInternetGatewayResponse = self
                    .call(&requests::create_internet_gateway(&tags), &Blame::default())
                    .await?;
                made.internet_gateway
            }
        };
        if !gateway.attachment_set.item.iter().any(|a| a.vpc_id == vpc_id) {
            match self
                .ec2
                .send(&requests::attach_internet_gateway(&gateway.internet_gateway_id, vpc_id))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_code("Resource.AlreadyAssociated") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(gateway)
    }

    async fn own_route_table(
        &self,
        cluster: &ClusterRef,
        vpc_id: &str,
        subnet_id: &str,
        gateway_id: &str,
    ) -> Result<wire::RouteTable> {
        let pages: Vec<DescribeRouteTablesResponse> = self
            .pages(requests::describe_route_tables_of_cluster(&cluster.name).filter("vpc-id", [vpc_id]))
            .await?;
        let mut mine: Vec<wire::RouteTable> = pages.into_iter().flat_map(|p| p.route_table_set.into_vec()).collect();
        mine.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
        let table = match mine.into_iter().next() {
            Some(t) => t,
            None => {
                let tags = self.tags(cluster, None, &cluster.resource_name("routes"));
                let token = Self::token(&["route-table", &cluster.name, vpc_id]);
                let made: CreateRouteTableResponse = self
                    .call(&requests::create_route_table(vpc_id, &token, &tags), &Blame::default())
                    .await?;
                made.route_table
            }
        };
        let has_default = table.route_set.item.iter().any(|r| {
            r.destination_cidr_block.as_deref() == Some("0.0.0.0/0") && r.gateway_id.as_deref() == Some(gateway_id)
        });
        if !has_default {
            match self
                .ec2
                .send(&requests::create_default_route(&table.route_table_id, gateway_id))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_code("RouteAlreadyExists") => {}
                Err(e) => return Err(e.into()),
            }
        }
        let associated = table
            .association_set
            .item
            .iter()
            .any(|a| a.subnet_id.as_deref() == Some(subnet_id));
        if !associated {
            match self
                .ec2
                .send(&requests::associate_route_table(&table.route_table_id, subnet_id))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_code("Resource.AlreadyAssociated") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(table)
    }

    /// The reused subnet (`[aws] subnet_id`) as the inventory reports it;
    /// `None` when it is gone (apply then says so, naming the field).
    pub(crate) async fn reused_subnet_if_any(&self) -> Result<Option<wire::Subnet>> {
        let Some(id) = &self.settings.subnet_id else {
            return Ok(None);
        };
        match self
            .ec2
            .call::<DescribeSubnetsResponse>(&requests::describe_subnet(id))
            .await
        {
            Ok(r) => Ok(r.subnet_set.into_vec().into_iter().next()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Is `r` the VPC or subnet `[aws]` names (`vpc_id`, `subnet_id`), or the
    /// network record of the reused subnet? Those are never deleted, whatever
    /// their tags say.
    pub(crate) fn is_reused(&self, r: &CloudResource) -> bool {
        if !matches!(r.kind, ResourceKind::Network | ResourceKind::Subnet) {
            return false;
        }
        let named = |id: Option<&str>| id.is_some_and(|id| id == r.id);
        let subnet = self.settings.subnet_id.as_deref();
        named(self.settings.vpc_id.as_deref())
            || named(subnet)
            || (r.kind == ResourceKind::Network && subnet.is_some() && r.attr(core_attr::SUBNET_ID) == subnet)
    }

    /// Whether a VPC or subnet carries this cluster's tag (reused ones do not).
    pub(crate) async fn network_is_ours(&self, cluster: &ClusterRef, id: &str) -> Result<Option<bool>> {
        let ours = |tagged: &dyn Tagged| tagged.tag(vre_core::CLUSTER_TAG) == Some(cluster.name.as_str());
        let found = if id.starts_with("subnet-") {
            self.ec2
                .call::<DescribeSubnetsResponse>(&requests::describe_subnet(id))
                .await
                .map(|r| r.subnet_set.into_vec().first().map(|s| ours(s)))
        } else {
            self.ec2
                .call::<DescribeVpcsResponse>(&requests::describe_vpc(id))
                .await
                .map(|r| r.vpc_set.into_vec().first().map(|v| ours(v)))
        };
        match found {
            Ok(o) => Ok(o),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The cluster's network when it runs in a reused subnet (`[aws] subnet_id`):
/// the subnet's VPC under the logical key `network`, marked reused so plans
/// keep it and destroy leaves it (and the subnet) alone.
pub(crate) fn reused_network_resource(cluster: &ClusterRef, subnet: &wire::Subnet) -> CloudResource {
    CloudResource::new(ResourceKind::Network, &subnet.vpc_id, plan::network_name(&cluster.name))
        .with_key(ResourceKey::network())
        .with_attr(core_attr::SUBNET_ID, subnet.subnet_id.clone())
        .with_attr(attr::VPC_ID, subnet.vpc_id.clone())
        .with_attr(attr::ZONE, subnet.availability_zone.clone())
        .with_attr(core_attr::CIDR, subnet.cidr_block.clone())
        .with_attr(core_attr::REUSED, "true")
}
