//! Networks, subnetworks, firewall rules and the reservation of the
//! master's internal address.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vre_core::plan::{network_name, security_group_name};
use vre_core::spec::{Ipv4Cidr, node_name};
use vre_core::{
    CloudResource, ClusterRef, Error, NetworkInfo, NetworkRequest, ResourceKey, ResourceKind, Result,
    SecurityGroupRequest, SpecField, attr,
};

use crate::call::{self, FirewallRule};
use crate::ownership::{description, labels};
use crate::provider::{GcpProvider, NETWORK_TAG_ATTR, REUSED_ATTR, create, remove, str_at, unexpected};
use crate::settings::SubnetMode;

/// The reservation of the master's internal address.
pub(crate) fn master_address_name(cluster: &str) -> String {
    format!("{}-internal-ip", node_name(cluster, vre_core::Role::Master, 1))
}

pub(crate) fn subnet_name(cluster: &str) -> String {
    format!("{cluster}-subnet")
}

pub(crate) fn ingress_firewall_name(cluster: &str) -> String {
    format!("{cluster}-sg-ingress")
}

impl GcpProvider {
    /// Reserves the master's fixed address in the subnetwork before any
    /// instance exists, so a node of another group booting at the same time
    /// cannot be given it.
    pub(crate) async fn reserve_master_address(
        &self,
        cluster: &ClusterRef,
        request: &NetworkRequest,
        info: &NetworkInfo,
    ) -> Result<()> {
        let Some(ip) = request.master_address(&info.cidr) else {
            return Ok(());
        };
        let name = master_address_name(&cluster.name);
        if let Some(v) = self.client.get_opt(&call::addresses_get(&self.loc, &name)).await? {
            self.owned_or_conflict(&v, cluster, "address", &name)?;
            if str_at(&v, "/address") == Some(ip.to_string().as_str()) {
                return Ok(());
            }
            // network.master_ip changed since the reservation
            remove(
                &self.client,
                &call::addresses_delete(&self.loc, &self.loc.region, &name),
            )
            .await?;
        }
        let subnet = info.network.attr(attr::SUBNET_ID).unwrap_or_default();
        let insert = call::addresses_insert_internal(
            &self.loc,
            &name,
            &format!("fixed address of the master of vre cluster {}", cluster.name),
            subnet,
            &ip.to_string(),
            &labels(&cluster.name, None, Some(vre_core::Role::Master)),
        );
        create(&self.client, &insert).await?;
        Ok(())
    }

    pub(crate) async fn existing_network(&self, name: &str) -> Result<NetworkInfo> {
        let net = self
            .client
            .get_opt(&call::networks_get(&self.loc, name))
            .await?
            .ok_or_else(|| {
                Error::input(
                    "gcp.network",
                    format!(
                        "network \"{name}\" does not exist in project {}; create it or remove gcp.network",
                        self.loc.project
                    ),
                )
            })?;
        let auto = net
            .get("autoCreateSubnetworks")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sub_name = match (&self.settings.subnetwork, auto) {
            (Some(s), _) => s.clone(),
            (None, true) => name.to_string(),
            (None, false) => {
                return Err(Error::input(
                    "gcp.subnetwork",
                    format!(
                        "is required: \"{name}\" is a custom-mode network; name its subnetwork in {}",
                        self.loc.region
                    ),
                ));
            }
        };
        let sub = self
            .client
            .get_opt(&call::subnetworks_get(&self.loc, &sub_name))
            .await?
            .ok_or_else(|| {
                Error::input(
                    "gcp.subnetwork",
                    format!(
                        "subnetwork \"{sub_name}\" does not exist in region {}; name one of network \"{name}\"",
                        self.loc.region
                    ),
                )
            })?;
        let info = self.network_info(name, &sub_name, &sub)?;
        Ok(NetworkInfo {
            network: info.network.with_attr(REUSED_ATTR, "true"),
            cidr: info.cidr,
        })
    }

    pub(crate) fn network_info(&self, name: &str, sub_name: &str, sub: &Value) -> Result<NetworkInfo> {
        let range = str_at(sub, "/ipCidrRange").unwrap_or("");
        let cidr: Ipv4Cidr = range.parse().map_err(|e: String| {
            unexpected(
                &format!("read subnetwork {sub_name}"),
                format!("ipCidrRange \"{range}\": {e}"),
            )
        })?;
        let network = CloudResource::new(ResourceKind::Network, self.loc.global_url("networks", name), name)
            .with_attr(attr::SUBNET_ID, self.loc.region_url("subnetworks", sub_name))
            .with_attr(attr::CIDR, cidr.to_string());
        Ok(NetworkInfo { network, cidr })
    }

    pub(crate) async fn ensure_firewall(&self, cluster: &ClusterRef, rule: &FirewallRule) -> Result<()> {
        match self.client.get_opt(&call::firewalls_get(&self.loc, &rule.name)).await? {
            None => Ok(create(&self.client, &call::firewalls_insert(&self.loc, rule)).await?),
            Some(v) => {
                self.owned_or_conflict(&v, cluster, "firewall", &rule.name)?;
                let want = call::firewalls_insert(&self.loc, rule).body.unwrap_or(Value::Null);
                let same = ["allowed", "sourceRanges", "targetTags"]
                    .iter()
                    .all(|k| normalized(v.get(*k)) == normalized(want.get(*k)));
                if !same {
                    self.client.execute(&call::firewalls_patch(&self.loc, rule)).await?;
                }
                Ok(())
            }
        }
    }

    pub(crate) fn firewall_resource(&self, cluster: &ClusterRef, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let id = self.loc.global_url("firewalls", name);
        if name == security_group_name(&cluster.name) {
            CloudResource::new(ResourceKind::SecurityGroup, id, name)
                .with_key(ResourceKey::security_group())
                .with_attr(NETWORK_TAG_ATTR, security_group_name(&cluster.name))
        } else {
            CloudResource::new(ResourceKind::Other("firewall".into()), id, name)
        }
    }

    /// The network and subnetwork, made or reused, and the master's reserved address (`CloudProvider::ensure_network`).
    pub(crate) async fn network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        if let Some(name) = &self.settings.network {
            let info = self.existing_network(name).await?;
            self.reserve_master_address(cluster, request, &info).await?;
            return Ok(info);
        }
        let name = network_name(&cluster.name);
        let auto = self.settings.subnet_mode == SubnetMode::Auto;
        let net = match self.client.get_opt(&call::networks_get(&self.loc, &name)).await? {
            Some(v) => v,
            None => {
                let insert = call::networks_insert(&self.loc, &name, &description(&cluster.name, "network"), auto);
                create(&self.client, &insert).await?;
                self.client.send(&call::networks_get(&self.loc, &name)).await?
            }
        };
        self.owned_or_conflict(&net, cluster, "network", &name)?;
        let is_auto = net
            .get("autoCreateSubnetworks")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sub_name = if is_auto {
            name.clone()
        } else {
            subnet_name(&cluster.name)
        };
        let sub = match self
            .client
            .get_opt(&call::subnetworks_get(&self.loc, &sub_name))
            .await?
        {
            Some(v) => v,
            None if is_auto => {
                return Err(unexpected(
                    &format!("read subnetwork {sub_name}"),
                    format!(
                        "auto-mode network {name} has no subnetwork in region {}",
                        self.loc.region
                    ),
                ));
            }
            None => {
                let insert = call::subnetworks_insert(
                    &self.loc,
                    &sub_name,
                    &description(&cluster.name, "subnet"),
                    &self.loc.global_url("networks", &name),
                    &request.cidr.to_string(),
                );
                create(&self.client, &insert).await?;
                self.client.send(&call::subnetworks_get(&self.loc, &sub_name)).await?
            }
        };
        let info = self.network_info(&name, &sub_name, &sub)?;
        if !is_auto && info.cidr != request.cidr {
            return Err(Error::rejected(
                SpecField::NetworkCidr,
                format!(
                    "subnetwork {sub_name} already has range {}, the spec says {}; change it back or `vre destroy` first",
                    info.cidr, request.cidr
                ),
            ));
        }
        self.reserve_master_address(cluster, request, &info).await?;
        Ok(info)
    }

    /// The internal and ingress firewall rules (`CloudProvider::ensure_security_group`).
    pub(crate) async fn firewalls(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        let c = &cluster.name;
        let tag = security_group_name(c);
        let internal = FirewallRule {
            name: security_group_name(c),
            description: description(c, "security-group"),
            network: network.network.id.clone(),
            allowed: ["tcp", "udp", "icmp", "ipip"]
                .iter()
                .map(|p| (p.to_string(), Vec::new()))
                .collect(),
            source_ranges: vec![network.cidr.to_string()],
            source_tags: vec![tag.clone()],
            target_tags: vec![tag.clone()],
        };
        self.ensure_firewall(cluster, &internal).await?;
        let ingress_name = ingress_firewall_name(c);
        if request.ingress_ports.is_empty() {
            remove(&self.client, &call::firewalls_delete(&self.loc, &ingress_name)).await?;
        } else {
            let ingress = FirewallRule {
                name: ingress_name,
                description: description(c, "security-group-ingress"),
                network: network.network.id.clone(),
                allowed: vec![(
                    "tcp".into(),
                    request.ingress_ports.iter().map(|p| p.to_string()).collect(),
                )],
                source_ranges: vec!["0.0.0.0/0".into()],
                source_tags: Vec::new(),
                target_tags: vec![tag.clone()],
            };
            self.ensure_firewall(cluster, &ingress).await?;
        }
        Ok(CloudResource::new(
            ResourceKind::SecurityGroup,
            self.loc.global_url("firewalls", &internal.name),
            &internal.name,
        )
        .with_attr(NETWORK_TAG_ATTR, tag))
    }
}

/// A JSON value with object keys sorted and arrays of strings sorted, for comparing rules.
pub(crate) fn normalized(v: Option<&Value>) -> Value {
    match v {
        None => Value::Null,
        Some(Value::Array(a)) => {
            let mut items: Vec<Value> = a.iter().map(|x| normalized(Some(x))).collect();
            items.sort_by_key(|x| x.to_string());
            Value::Array(items)
        }
        Some(Value::Object(o)) => {
            let sorted: BTreeMap<&String, Value> = o.iter().map(|(k, x)| (k, normalized(Some(x)))).collect();
            json!(sorted)
        }
        Some(other) => other.clone(),
    }
}
