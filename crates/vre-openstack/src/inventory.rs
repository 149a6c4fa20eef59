//! The inventory: everything a cluster has on the cloud, found by its tags
//! (servers by name and metadata, volumes by metadata), never from the state
//! file; the network and group `[openstack]` names reported as reused.

use std::collections::BTreeSet;
use std::time::Instant;

use vre_core::plan::key_pair_name;
use vre_core::{CloudResource, ClusterRef, KEY_TAG, ResourceKey, ResourceKind, attr};

use crate::key_pairs::key_pair_resource;
use crate::networks::reused_network_resource;
use crate::provider::{OpenStackProvider, OsResult};
use crate::security_groups::reused_group_resource;
use crate::wire::{FloatingIp, Network, Port, Router, SecurityGroup, Subnet, tag_value};

impl OpenStackProvider {
    /// Everything the cluster owns on this cloud, found by its tags and
    /// names, plus the network and security group it reuses (marked so).
    pub(crate) async fn list_inventory(&self, cluster: &ClusterRef) -> OsResult<Vec<CloudResource>> {
        let c = &cluster.name;
        let mut out = Vec::new();
        let servers = self.list_servers(cluster, None).await?;
        {
            let mut cache = self.servers.lock().await;
            cache.insert(c.clone(), (Instant::now(), servers.clone()));
        }
        for s in &servers {
            out.push(self.server_resource(cluster, s).await?);
        }
        let fips: Vec<FloatingIp> = self.list_tagged(cluster).await?;
        out.extend(fips.iter().map(|f| self.floating_ip_resource(f, None)));
        for v in self.volumes(cluster).await? {
            for a in &v.attachments {
                out.push(self.attachment_resource(&v, a));
            }
            out.push(self.volume_resource(&v));
        }
        // the network and security group the table names: kept by plans, left by destroy
        let reused = self.reused_resources().await?;
        let not_reused = |id: &str| !reused.iter().any(|r| r.id == id);
        let mut networks: Vec<Network> = self.list_tagged(cluster).await?;
        networks.retain(|n| not_reused(&n.id));
        let reused_subnets: Vec<&str> = reused.iter().filter_map(|r| r.attr(attr::SUBNET_ID)).collect();
        let mut subnets: Vec<Subnet> = self.list_tagged(cluster).await?;
        subnets.retain(|s| !reused_subnets.contains(&s.id.as_str()));
        let routers: Vec<Router> = self.list_tagged(cluster).await?;
        let mut groups: Vec<SecurityGroup> = self.list_tagged(cluster).await?;
        groups.retain(|g| not_reused(&g.id));
        out.extend(reused.iter().cloned());
        let keyed = |tags: &[String]| tag_value(tags, KEY_TAG).and_then(ResourceKey::parse);
        for n in &networks {
            let mut r = CloudResource::new(ResourceKind::Network, &n.id, &n.name);
            if let Some(k) = keyed(&n.tags) {
                r = r.with_key(k);
            }
            if let Some(s) = subnets.iter().find(|s| s.network_id == n.id) {
                r = r
                    .with_attr(attr::SUBNET_ID, s.id.clone())
                    .with_attr(attr::CIDR, s.cidr.clone());
            }
            out.push(r);
        }
        for s in &subnets {
            out.push(CloudResource::new(ResourceKind::Subnet, &s.id, &s.name).with_attr(attr::CIDR, s.cidr.clone()));
        }
        for r in &routers {
            out.push(CloudResource::new(ResourceKind::Router, &r.id, &r.name));
        }
        let server_ids: BTreeSet<&str> = servers.iter().map(|s| s.id.as_str()).collect();
        let router_ids: BTreeSet<&str> = routers.iter().map(|r| r.id.as_str()).collect();
        let mut seen_ports = BTreeSet::new();
        for n in &networks {
            for p in self.ports(&[("network_id", n.id.clone())]).await? {
                if p.device_owner.starts_with("network:router_interface") && router_ids.contains(p.device_id.as_str()) {
                    for f in &p.fixed_ips {
                        out.push(CloudResource::new(
                            ResourceKind::RouterInterface,
                            format!("{}/{}", p.device_id, f.subnet_id),
                            format!("{c}-router-interface"),
                        ));
                    }
                } else if !p.device_owner.starts_with("network:") && seen_ports.insert(p.id.clone()) {
                    out.push(port_resource(&p));
                }
            }
        }
        if self.settings.network.is_some() && !server_ids.is_empty() {
            // a reused network: only the ports of the cluster's servers are ours
            for id in &server_ids {
                for p in self.ports(&[("device_id", id.to_string())]).await? {
                    if seen_ports.insert(p.id.clone()) {
                        out.push(port_resource(&p));
                    }
                }
            }
        }
        for g in &groups {
            let mut r = CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name);
            if let Some(k) = keyed(&g.tags) {
                r = r.with_key(k);
            }
            out.push(r);
        }
        if let Some(kp) = self.show_key_pair(&key_pair_name(c)).await? {
            out.push(key_pair_resource(&kp).with_key(ResourceKey::key_pair()));
        }
        Ok(out)
    }

    /// The network and security group `[openstack]` names, as the inventory
    /// reports them: under their logical keys and marked reused, so a plan
    /// keeps them and destroy leaves them alone. A name that matches nothing
    /// (or several networks) reports nothing here; apply says what is wrong.
    pub(crate) async fn reused_resources(&self) -> OsResult<Vec<CloudResource>> {
        let mut out = Vec::new();
        if let Some(name) = &self.settings.network
            && let [net] = self.networks_named(name, false).await?.as_slice()
        {
            let subnet = self.first_ipv4_subnet(&net.id).await?;
            out.push(reused_network_resource(net, subnet.as_ref()));
        }
        if let Some(name) = &self.settings.security_group
            && let Some(g) = self.security_groups_named(name).await?.first()
        {
            out.push(reused_group_resource(g));
        }
        Ok(out)
    }

    /// Is `r` the network, a subnet of the network, or the security group
    /// that `[openstack]` names? Those are never deleted, whatever their tags
    /// or attributes say.
    pub(crate) async fn is_reused(&self, r: &CloudResource) -> OsResult<bool> {
        let named = |setting: &Option<String>| setting.as_deref().is_some_and(|n| n == r.name || n == r.id);
        Ok(match r.kind {
            ResourceKind::Network => named(&self.settings.network),
            ResourceKind::SecurityGroup => named(&self.settings.security_group),
            ResourceKind::Subnet => match &self.settings.network {
                Some(name) => self
                    .networks_named(name, false)
                    .await?
                    .iter()
                    .any(|n| n.subnets.contains(&r.id)),
                None => false,
            },
            _ => false,
        })
    }
}

/// A port as the engine sees it (named by its id when it has no name).
fn port_resource(p: &Port) -> CloudResource {
    let mut r = CloudResource::new(
        ResourceKind::Port,
        &p.id,
        if p.name.is_empty() {
            p.id.clone()
        } else {
            p.name.clone()
        },
    );
    if !p.device_id.is_empty() {
        r = r.with_attr(attr::INSTANCE_ID, p.device_id.clone());
    }
    r
}
