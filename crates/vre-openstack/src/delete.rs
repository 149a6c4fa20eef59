//! Deleting one resource of a cluster: each kind the way its service wants
//! it (volumes detached first, routers emptied, networks cleared of leftover
//! ports), waiting until it is gone; one already gone is success, and what
//! the cluster reuses or does not own (no cluster tag) is left alone.

use vre_core::{CloudResource, ClusterRef, ResourceKind, attr};

use crate::error::{OpenStackError, ok_if_gone};
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;

impl OpenStackProvider {
    /// Deletes `r` and waits until it is gone.
    pub(crate) async fn remove(&self, cluster: &ClusterRef, r: &CloudResource) -> OsResult<()> {
        // defence in depth: the engine never asks for these, a state file written
        // before they were marked, or a caller of this library, might
        if r.attr(attr::REUSED).is_some() || self.is_reused(r).await? {
            tracing::debug!(kind = %r.kind, name = %r.name, id = %r.id, "not deleting a reused resource");
            return Ok(());
        }
        let api = self.api().await?;
        match &r.kind {
            ResourceKind::PublicIp => self.neutron_delete("floatingips", &r.id, "floating IP").await,
            ResourceKind::VolumeAttachment => {
                let (server, volume) = split_id(&r.id, "nova", "detach volume", "attachment id", "<server>/<volume>")?;
                self.detach(server, volume).await
            }
            ResourceKind::Instance => {
                ok_if_gone(api.send(requests::delete_server(&r.id)).await)?;
                self.wait_server_gone(cluster, &r.id).await
            }
            ResourceKind::Volume => {
                let v = match self.volume(&r.id).await {
                    Ok(v) => v,
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e),
                };
                for a in &v.attachments {
                    self.detach(&a.server_id, &v.id).await?;
                }
                ok_if_gone(api.send(requests::delete_volume(&r.id)).await)?;
                self.wait_volume(&r.id, "be deleted", |_| false).await.map(|_| ())
            }
            ResourceKind::Port => self.neutron_delete("ports", &r.id, "port").await,
            ResourceKind::RouterInterface => {
                let (router, subnet) =
                    split_id(&r.id, "neutron", "remove router interface", "id", "<router>/<subnet>")?;
                self.remove_router_interface(router, subnet).await
            }
            kind @ (ResourceKind::Router
            | ResourceKind::Subnet
            | ResourceKind::SecurityGroup
            | ResourceKind::Network) => {
                let (resource, singular, what) = match kind {
                    ResourceKind::Router => ("routers", "router", "router"),
                    ResourceKind::Subnet => ("subnets", "subnet", "subnet"),
                    ResourceKind::SecurityGroup => ("security-groups", "security_group", "security group"),
                    _ => ("networks", "network", "network"),
                };
                if !self.has_cluster_tag(resource, singular, &r.id, cluster).await? {
                    return Ok(());
                }
                match kind {
                    ResourceKind::Router => self.remove_router_interfaces(&r.id).await?,
                    ResourceKind::Network => self.clear_network_ports(&r.id).await?,
                    _ => {}
                }
                self.neutron_delete(resource, &r.id, what).await
            }
            ResourceKind::KeyPair => self.delete_key_pair(&r.name).await,
            ResourceKind::Image => ok_if_gone(api.send(requests::delete_image(&r.id)).await),
            other => Err(OpenStackError::Failed {
                service: "openstack",
                operation: "delete".into(),
                message: format!(
                    "vre does not make {other} resources on OpenStack; delete {} ({}) by hand",
                    r.name, r.id
                ),
            }),
        }
    }

    /// Removes the ports left on network `network_id` (a server deleted
    /// outside vre, a router still attached), all but its DHCP port.
    async fn clear_network_ports(&self, network_id: &str) -> OsResult<()> {
        for p in self.ports(&[("network_id", network_id.to_string())]).await? {
            if p.device_owner.starts_with("network:router_interface") {
                for f in &p.fixed_ips {
                    self.remove_router_interface(&p.device_id, &f.subnet_id).await?;
                }
            } else if p.device_owner != "network:dhcp" {
                self.neutron_delete("ports", &p.id, "port").await?;
            }
        }
        Ok(())
    }
}

/// The two halves of a composite id (`<server>/<volume>`, `<router>/<subnet>`).
fn split_id<'a>(
    id: &'a str,
    service: &'static str,
    operation: &str,
    what: &str,
    shape: &str,
) -> OsResult<(&'a str, &'a str)> {
    id.split_once('/')
        .ok_or_else(|| OpenStackError::decode(service, operation, format!("{what} \"{id}\" is not {shape}")))
}
