//! What the cluster owns, found by its tag (the key pair by its name), plus
//! the reused subnet `[aws] subnet_id` names (as the network, marked reused
//! so it is kept and never deleted), and
//! deleting one resource of each kind in a way EC2 accepts: gateways are
//! detached and route tables disassociated first, instances and volumes are
//! waited on until gone, `DependencyViolation` is waited out, and a resource
//! already gone is success.

use vre_core::{
    CLUSTER_TAG, CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result, attr as core_attr, plan,
};

use crate::addresses::address_resource;
use crate::error::Blame;
use crate::instances::instance_resource;
use crate::network::reused_network_resource;
use crate::provider::{AwsProvider, attr, key_of};
use crate::requests;
use crate::volumes::{attachment_resource, volume_resource};
use crate::wire::{
    DescribeAddressesResponse, DescribeInstancesResponse, DescribeInternetGatewaysResponse, DescribeKeyPairsResponse,
    DescribeRouteTablesResponse, DescribeSecurityGroupsResponse, DescribeSubnetsResponse, DescribeVolumesResponse,
    DescribeVpcsResponse, Tagged,
};

impl AwsProvider {
    pub(crate) async fn list(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        let c = cluster.name.as_str();
        let (addresses_q, keys_q, no_blame) = (
            requests::describe_addresses_of_cluster(c),
            requests::describe_key_pair(&plan::key_pair_name(c)),
            Blame::default(),
        );
        let (instances, volumes, addresses, groups, subnets, vpcs, gateways, tables, keys, reused_subnet) = futures::try_join!(
            self.pages::<DescribeInstancesResponse>(requests::describe_instances_of_cluster(c)),
            self.pages::<DescribeVolumesResponse>(requests::describe_volumes_of_cluster(c)),
            self.call::<DescribeAddressesResponse>(&addresses_q, &no_blame),
            self.pages::<DescribeSecurityGroupsResponse>(requests::describe_security_groups_of_cluster(c)),
            self.pages::<DescribeSubnetsResponse>(requests::describe_subnets_of_cluster(c)),
            self.pages::<DescribeVpcsResponse>(requests::describe_vpcs_of_cluster(c)),
            self.pages::<DescribeInternetGatewaysResponse>(requests::describe_gateways_of_cluster(c)),
            self.pages::<DescribeRouteTablesResponse>(requests::describe_route_tables_of_cluster(c)),
            self.call::<DescribeKeyPairsResponse>(&keys_q, &no_blame),
            self.reused_subnet_if_any(),
        )?;
        let mut out = Vec::new();
        // what `[aws]` names is reported as reused (the subnet as the cluster's
        // network), never as something the cluster owns, even when tagged
        let mut reused_ids: Vec<String> = self.settings.vpc_id.iter().cloned().collect();
        if let Some(s) = &reused_subnet {
            reused_ids.push(s.subnet_id.clone());
            reused_ids.push(s.vpc_id.clone());
            out.push(reused_network_resource(cluster, s));
        }
        let not_reused = |id: &str| !reused_ids.iter().any(|r| r == id);
        for i in instances.into_iter().flat_map(|p| p.instances()) {
            out.push(instance_resource(c, &i));
        }
        for v in volumes.into_iter().flat_map(|p| p.volume_set.into_vec()) {
            if v.status == "deleted" {
                continue;
            }
            if key_of(&v).is_some()
                && let Some(a) = attachment_resource(&v)
            {
                out.push(a);
            }
            out.push(volume_resource(&v));
        }
        for a in addresses.addresses_set.into_vec() {
            out.push(address_resource(&a));
        }
        for g in groups.into_iter().flat_map(|p| p.security_group_info.into_vec()) {
            out.push(
                Self::resource(ResourceKind::SecurityGroup, &g.group_id, &g.group_name, key_of(&g))
                    .with_attr(attr::VPC_ID, g.vpc_id.clone()),
            );
        }
        for s in subnets
            .into_iter()
            .flat_map(|p| p.subnet_set.into_vec())
            .filter(|s| not_reused(&s.subnet_id))
        {
            let key = key_of(&s);
            // in a reused VPC the subnet is the cluster's network
            let kind = if key == Some(ResourceKey::network()) {
                ResourceKind::Network
            } else {
                ResourceKind::Subnet
            };
            out.push(
                Self::resource(kind, &s.subnet_id, s.tag("Name").unwrap_or(&s.subnet_id), key)
                    .with_attr(attr::VPC_ID, s.vpc_id.clone())
                    .with_attr(core_attr::CIDR, s.cidr_block.clone())
                    .with_attr(core_attr::SUBNET_ID, s.subnet_id.clone())
                    .with_attr(attr::ZONE, s.availability_zone.clone()),
            );
        }
        for v in vpcs
            .into_iter()
            .flat_map(|p| p.vpc_set.into_vec())
            .filter(|v| not_reused(&v.vpc_id))
        {
            out.push(
                Self::resource(
                    ResourceKind::Network,
                    &v.vpc_id,
                    v.tag("Name").unwrap_or(&v.vpc_id),
                    key_of(&v),
                )
                .with_attr(attr::VPC_ID, v.vpc_id.clone())
                .with_attr(core_attr::CIDR, v.cidr_block.clone()),
            );
        }
        for g in gateways.into_iter().flat_map(|p| p.internet_gateway_set.into_vec()) {
            let mut r = Self::resource(
                ResourceKind::Gateway,
                &g.internet_gateway_id,
                g.tag("Name").unwrap_or(&g.internet_gateway_id),
                None,
            );
            if let Some(a) = g.attachment_set.item.first() {
                r = r.with_attr(attr::VPC_ID, a.vpc_id.clone());
            }
            out.push(r);
        }
        for t in tables.into_iter().flat_map(|p| p.route_table_set.into_vec()) {
            out.push(
                Self::resource(
                    ResourceKind::RouteTable,
                    &t.route_table_id,
                    t.tag("Name").unwrap_or(&t.route_table_id),
                    None,
                )
                .with_attr(attr::VPC_ID, t.vpc_id.clone()),
            );
        }
        for k in keys.key_set.into_vec() {
            let id = k.key_pair_id.clone().unwrap_or_else(|| k.key_name.clone());
            out.push(Self::resource(
                ResourceKind::KeyPair,
                &id,
                &k.key_name,
                Some(ResourceKey::key_pair()),
            ));
        }
        Ok(out)
    }

    pub(crate) async fn remove(&self, cluster: &ClusterRef, r: &CloudResource) -> Result<()> {
        // defence in depth: the engine never asks for these, a state file written
        // before they were marked, or a caller of this library, might
        if r.attr(core_attr::REUSED).is_some() || self.is_reused(r) {
            tracing::debug!(kind = %r.kind, id = %r.id, "not deleting a reused resource");
            return Ok(());
        }
        match &r.kind {
            ResourceKind::Instance => self.terminate(&r.id).await,
            ResourceKind::VolumeAttachment => self.detach(r).await,
            ResourceKind::Volume => self.delete_volume(&r.id).await,
            ResourceKind::PublicIp => self.release(r).await,
            ResourceKind::SecurityGroup => {
                self.delete_when_free(
                    &format!("security group {}", r.id),
                    requests::delete_security_group(&r.id),
                )
                .await
            }
            ResourceKind::Network | ResourceKind::Subnet => match self.network_is_ours(cluster, &r.id).await? {
                None => Ok(()),
                Some(false) => {
                    self.events.warn(format!(
                        "left {} alone: it is not tagged {CLUSTER_TAG}={} (a network vre reuses, not one it made)",
                        r.id, cluster.name
                    ));
                    Ok(())
                }
                Some(true) if r.id.starts_with("subnet-") => {
                    self.delete_when_free(&format!("subnet {}", r.id), requests::delete_subnet(&r.id))
                        .await
                }
                Some(true) => {
                    self.delete_when_free(&format!("VPC {}", r.id), requests::delete_vpc(&r.id))
                        .await
                }
            },
            ResourceKind::Gateway => {
                let found: DescribeInternetGatewaysResponse =
                    match self.ec2.call(&requests::describe_gateway(&r.id)).await {
                        Ok(f) => f,
                        Err(e) if e.is_not_found() => return Ok(()),
                        Err(e) => return Err(e.into()),
                    };
                for g in found.internet_gateway_set.into_vec() {
                    for a in g.attachment_set.item.iter().filter(|a| a.state != "detached") {
                        match self
                            .ec2
                            .send(&requests::detach_internet_gateway(&r.id, &a.vpc_id))
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if e.is_not_found() || e.is_code("Gateway.NotAttached") => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                self.delete_when_free(
                    &format!("internet gateway {}", r.id),
                    requests::delete_internet_gateway(&r.id),
                )
                .await
            }
            ResourceKind::RouteTable => {
                let found: DescribeRouteTablesResponse =
                    match self.ec2.call(&requests::describe_route_table(&r.id)).await {
                        Ok(f) => f,
                        Err(e) if e.is_not_found() => return Ok(()),
                        Err(e) => return Err(e.into()),
                    };
                for t in found.route_table_set.into_vec() {
                    for a in t
                        .association_set
                        .item
                        .iter()
                        .filter(|a| !a.main && !a.route_table_association_id.is_empty())
                    {
                        self.send_unless_gone(&requests::disassociate_route_table(&a.route_table_association_id))
                            .await?;
                    }
                }
                self.delete_when_free(&format!("route table {}", r.id), requests::delete_route_table(&r.id))
                    .await
            }
            ResourceKind::KeyPair => {
                self.send_unless_gone(&requests::delete_key_pair(&r.name)).await?;
                Ok(())
            }
            ResourceKind::Image => {
                self.send_unless_gone(&requests::deregister_image(&r.id)).await?;
                Ok(())
            }
            other => Err(Error::component(
                "aws",
                format!(
                    "cannot delete a {other} ({}): the AWS provider never makes that kind",
                    r.id
                ),
            )),
        }
    }
}
