//! The virtual network and its subnet, the network security group, and the
//! master's NIC reserved with its fixed address.

use std::net::Ipv4Addr;

use serde_json::Value;
use vre_core::plan::{network_name, security_group_name};
use vre_core::spec::{Ipv4Cidr, node_name};
use vre_core::{
    CloudResource, ClusterRef, Error, NetworkInfo, NetworkRequest, ResourceKey, ResourceKind, Result, Role,
    SecurityGroupRequest, SpecField, attr,
};

use crate::call::{self, InboundRule, NicSpec, types};
use crate::instances::nic_name;
use crate::provider::{AzureProvider, str_at, tags};

pub(crate) fn subnet_name(cluster: &str) -> String {
    format!("{cluster}-subnet")
}

impl AzureProvider {
    /// Creates the master's NIC with its static private address as soon as
    /// subnet and security group exist, before any node's NIC can be given
    /// that address dynamically; the master's creation later adds its public IP.
    pub(crate) async fn reserve_master_address(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        master_ip: Option<Ipv4Addr>,
        security_group: &str,
    ) -> Result<()> {
        let Some(ip) = master_ip else {
            return Ok(());
        };
        let master = node_name(&cluster.name, Role::Master, 1);
        let name = nic_name(&master);
        if self
            .client
            .get_opt(&call::network_interfaces_get(&self.scope, &name))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let subnet = network.network.attr(attr::SUBNET_ID).unwrap_or_default();
        let nic = NicSpec {
            subnet_id: subnet.to_string(),
            security_group_id: security_group.to_string(),
            private_ip: Some(ip.to_string()),
            public_ip_id: None,
        };
        let key = ResourceKey::server(Role::Master, 1);
        self.client
            .execute(&call::network_interfaces_create(
                &self.scope,
                &name,
                &nic,
                &tags(&cluster.name, Some(&key), Some(Role::Master)),
            ))
            .await?;
        Ok(())
    }

    /// The virtual network and its subnet (`CloudProvider::ensure_network`).
    pub(crate) async fn virtual_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        self.ensure_group(cluster).await?;
        let name = network_name(&cluster.name);
        let subnet = subnet_name(&cluster.name);
        let cidr = request.cidr.to_string();
        let vnet = match self
            .client
            .get_opt(&call::virtual_networks_get(&self.scope, &name))
            .await?
        {
            Some(v) => v,
            None => {
                let put = call::virtual_networks_create(
                    &self.scope,
                    &name,
                    &cidr,
                    &subnet,
                    &tags(&cluster.name, Some(&ResourceKey::network()), None),
                );
                self.client.execute(&put).await?
            }
        };
        let sub = vnet
            .pointer("/properties/subnets")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().find(|x| str_at(x, "/name") == Some(subnet.as_str())))
            .ok_or_else(|| {
                Error::component(
                    "apply",
                    format!("virtual network {name} has no subnet {subnet}; delete the network or run `vre destroy`"),
                )
            })?;
        let prefix = str_at(sub, "/properties/addressPrefix").unwrap_or_default();
        let have: Ipv4Cidr = prefix
            .parse()
            .map_err(|e: String| Error::component("apply", format!("subnet {subnet} has prefix \"{prefix}\": {e}")))?;
        if have != request.cidr {
            return Err(Error::rejected(
                SpecField::NetworkCidr,
                format!(
                    "subnet {subnet} already has {have}, the spec says {}; change it back or `vre destroy` first",
                    request.cidr
                ),
            ));
        }
        let vnet_id = str_at(&vnet, "/id").map_or_else(|| self.scope.id(types::VIRTUAL_NETWORK, &name), str::to_string);
        let sub_id = str_at(sub, "/id").map_or_else(|| format!("{vnet_id}/subnets/{subnet}"), str::to_string);
        Ok(NetworkInfo {
            network: CloudResource::new(ResourceKind::Network, vnet_id, &name)
                .with_attr(attr::SUBNET_ID, sub_id)
                .with_attr(attr::CIDR, have.to_string()),
            cidr: have,
        })
    }

    /// The network security group, then the master's NIC (`CloudProvider::ensure_security_group`).
    pub(crate) async fn security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        self.ensure_group(cluster).await?;
        let name = security_group_name(&cluster.name);
        let cidr = network.cidr.to_string();
        let mut rules = vec![InboundRule {
            name: "allow-cluster-internal".into(),
            priority: 100,
            protocol: "*".into(),
            source: cidr.clone(),
            destination: cidr,
            ports: vec!["*".into()],
        }];
        if !request.ingress_ports.is_empty() {
            rules.push(InboundRule {
                name: "allow-ingress".into(),
                priority: 200,
                protocol: "Tcp".into(),
                source: "*".into(),
                destination: "*".into(),
                ports: request.ingress_ports.iter().map(|p| p.to_string()).collect(),
            });
        }
        let put = call::network_security_groups_create(
            &self.scope,
            &name,
            &rules,
            &tags(&cluster.name, Some(&ResourceKey::security_group()), None),
        );
        let current = self
            .client
            .get_opt(&call::network_security_groups_get(&self.scope, &name))
            .await?;
        let wanted = serde_json::json!({"properties": put.body.as_ref().and_then(|b| b.get("properties")).cloned()});
        let nsg = match current {
            Some(v) if rules_of(&v) == rules_of(&wanted) => v,
            _ => self.client.execute(&put).await?,
        };
        let id = str_at(&nsg, "/id").map_or_else(|| self.scope.id(types::SECURITY_GROUP, &name), str::to_string);
        self.reserve_master_address(cluster, network, request.master_ip, &id)
            .await?;
        Ok(CloudResource::new(ResourceKind::SecurityGroup, id, name))
    }
}

pub(crate) fn rules_of(v: &Value) -> Vec<Value> {
    let mut rules: Vec<Value> = v
        .pointer("/properties/securityRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let p = &r["properties"];
            let mut ports: Vec<String> = p["destinationPortRanges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if let Some(one) = p["destinationPortRange"].as_str() {
                ports.push(one.to_string());
            }
            ports.sort();
            serde_json::json!([
                r["name"],
                p["priority"],
                p["protocol"],
                p["sourceAddressPrefix"],
                p["destinationAddressPrefix"],
                ports
            ])
        })
        .collect();
    rules.sort_by_key(|r| r.to_string());
    rules
}
