//! The cluster's Neutron network: a network, an IPv4 subnet (the master's
//! address kept out of its pools), a router to the external network and its
//! interface; or the network `[openstack] network` names, used as it is.

use serde_json::Value;
use vre_core::plan::network_name;
use vre_core::spec::Ipv4Cidr;
use vre_core::{CloudResource, ClusterRef, NetworkInfo, NetworkRequest, ResourceKey, ResourceKind, SpecField, attr};

use crate::error::{OpenStackError, ok_if_gone};
use crate::neutron::parse_list;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{Network, Router, Subnet, allocation_pools, cluster_tag, key_tag};

/// Attribute holding the id of the cluster's router.
pub const ROUTER_ID: &str = "router_id";

impl OpenStackProvider {
    /// The name of the cluster's network (the reused one when `[openstack] network` names it).
    pub(crate) fn network_name(&self, cluster: &ClusterRef) -> String {
        self.settings
            .network
            .clone()
            .unwrap_or_else(|| network_name(&cluster.name))
    }

    /// The cluster's network, subnet and router (or the reused network), made or found.
    pub(crate) async fn network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> OsResult<NetworkInfo> {
        if let Some(name) = &self.settings.network {
            let nets = self.networks_named(name, false).await?;
            let net = match nets.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(OpenStackError::Input {
                        field: "openstack.network".into(),
                        message: format!("network \"{name}\" does not exist on this cloud"),
                    });
                }
                _ => {
                    return Err(OpenStackError::Input {
                        field: "openstack.network".into(),
                        message: format!("{} networks are called \"{name}\"; rename one of them", nets.len()),
                    });
                }
            };
            let Some(subnet) = self.first_ipv4_subnet(&net.id).await? else {
                return Err(OpenStackError::Input {
                    field: "openstack.network".into(),
                    message: format!("network \"{name}\" has no IPv4 subnet"),
                });
            };
            let cidr: Ipv4Cidr = subnet.cidr.parse().map_err(|e: String| OpenStackError::Input {
                field: "openstack.network".into(),
                message: format!("subnet {} of network \"{name}\": {e}", subnet.name),
            })?;
            let r = reused_network_resource(&net, Some(&subnet));
            return Ok(NetworkInfo { network: r, cidr });
        }
        let c = &cluster.name;
        let tags = |key: &str| vec![cluster_tag(c), key_tag(key)];
        let net_name = network_name(c);
        let net: Network = self
            .ensure_named(&net_name, &[], requests::network_body(&net_name, c), tags("network"))
            .await?;
        let subnet_name = format!("{c}-subnet");
        let dns: Vec<String> = request
            .dns_servers
            .iter()
            .filter(|d| d.is_ipv4())
            .map(|d| d.to_string())
            .collect();
        // the master's fixed address is kept out of the subnet's allocation pools
        let pools = allocation_pools(&request.cidr, request.master_address(&request.cidr));
        let subnet: Subnet = self
            .ensure_named(
                &subnet_name,
                &[("network_id", net.id.clone())],
                requests::subnet_body(&subnet_name, &net.id, &request.cidr.to_string(), &dns, &pools),
                tags("network"),
            )
            .await?;
        let ext = self
            .external_network(&self.settings.external_network, "external_network")
            .await?;
        let router_name = format!("{c}-router");
        let router: Router = self
            .ensure_named(
                &router_name,
                &[],
                requests::router_body(&router_name, &ext.id),
                tags("network"),
            )
            .await?;
        let ports = self
            .ports(&[("device_id", router.id.clone()), ("network_id", net.id.clone())])
            .await?;
        if !ports
            .iter()
            .any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == subnet.id))
        {
            match self
                .api()
                .await?
                .send(requests::add_router_interface(&router.id, &subnet.id))
                .await
            {
                Ok(()) => {}
                // a concurrent or earlier add already made it
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        let cidr: Ipv4Cidr = subnet
            .cidr
            .parse()
            .map_err(|e: String| OpenStackError::decode("neutron", "create subnet", e))?;
        let r = CloudResource::new(ResourceKind::Network, &net.id, &net.name)
            .with_attr(attr::SUBNET_ID, subnet.id.clone())
            .with_attr(attr::CIDR, cidr.to_string())
            .with_attr(ROUTER_ID, router.id.clone());
        Ok(NetworkInfo { network: r, cidr })
    }

    /// The networks called `name` (external ones only when `external`).
    pub(crate) async fn networks_named(&self, name: &str, external: bool) -> OsResult<Vec<Network>> {
        let v: Value = self.api().await?.json(requests::find_networks(name, external)).await?;
        parse_list(&v, "networks", "find network")
    }

    /// The external network called `name`, or an error naming the
    /// `[openstack]` key `key` that gave the name.
    pub(crate) async fn external_network(&self, name: &str, key: &str) -> OsResult<Network> {
        if let Some(n) = self.networks_named(name, true).await?.into_iter().next() {
            return Ok(n);
        }
        let v: Value = self.api().await?.json(requests::list_external_networks()).await?;
        let all: Vec<Network> = parse_list(&v, "networks", "list external networks")?;
        let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
        Err(OpenStackError::Rejected {
            field: SpecField::setting(crate::settings::TABLE, key),
            message: format!(
                "external network \"{name}\" does not exist on this cloud; available: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        })
    }

    /// The first IPv4 subnet of network `network_id` (where servers get their address).
    pub(crate) async fn first_ipv4_subnet(&self, network_id: &str) -> OsResult<Option<Subnet>> {
        let v: Value = self.api().await?.json(requests::ipv4_subnets(network_id)).await?;
        let subnets: Vec<Subnet> = parse_list(&v, "subnets", "list subnets")?;
        Ok(subnets.into_iter().next())
    }

    /// Detaches every subnet from router `router_id`.
    pub(crate) async fn remove_router_interfaces(&self, router_id: &str) -> OsResult<()> {
        let ports = self.ports(&[("device_id", router_id.to_string())]).await?;
        for p in ports
            .iter()
            .filter(|p| p.device_owner.starts_with("network:router_interface"))
        {
            for ip in &p.fixed_ips {
                self.remove_router_interface(router_id, &ip.subnet_id).await?;
            }
        }
        Ok(())
    }

    /// Detaches subnet `subnet_id` from router `router_id`; one already detached is success.
    pub(crate) async fn remove_router_interface(&self, router_id: &str, subnet_id: &str) -> OsResult<()> {
        ok_if_gone(
            self.api()
                .await?
                .send(requests::remove_router_interface(router_id, subnet_id))
                .await,
        )
    }
}

/// The network `[openstack] network` names: the cluster uses it without owning it.
pub(crate) fn reused_network_resource(net: &Network, subnet: Option<&Subnet>) -> CloudResource {
    let mut r = CloudResource::new(ResourceKind::Network, &net.id, &net.name)
        .with_key(ResourceKey::network())
        .with_attr(attr::REUSED, "true");
    if let Some(s) = subnet {
        r = r
            .with_attr(attr::SUBNET_ID, s.id.clone())
            .with_attr(attr::CIDR, s.cidr.clone());
    }
    r
}
