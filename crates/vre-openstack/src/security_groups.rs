//! The cluster's security group: all traffic between its nodes, the
//! requested TCP ports from anywhere; or the group `[openstack]
//! security_group` names, used as it is.

use serde_json::Value;
use vre_core::plan::security_group_name;
use vre_core::{CloudResource, ClusterRef, ResourceKey, ResourceKind, SecurityGroupRequest, attr};

use crate::error::OpenStackError;
use crate::neutron::parse_list;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{SecurityGroup, SecurityGroupRule, WantedRule, cluster_tag, key_tag};

impl OpenStackProvider {
    /// The cluster's security group with every rule `request` asks for (or
    /// the group `[openstack] security_group` names, used as it is).
    pub(crate) async fn security_group(
        &self,
        cluster: &ClusterRef,
        request: &SecurityGroupRequest,
    ) -> OsResult<CloudResource> {
        let api = self.api().await?;
        if let Some(name) = &self.settings.security_group {
            let found = self.security_groups_named(name).await?;
            let Some(g) = found.first() else {
                return Err(OpenStackError::Input {
                    field: "openstack.security_group".into(),
                    message: format!("security group \"{name}\" does not exist in this project"),
                });
            };
            return Ok(reused_group_resource(g));
        }
        let c = &cluster.name;
        let name = security_group_name(c);
        let g: SecurityGroup = self
            .ensure_named(
                &name,
                &[],
                requests::security_group_body(&name, c),
                vec![cluster_tag(c), key_tag(ResourceKey::security_group().as_str())],
            )
            .await?;
        // the rules as they are now (a created group's answer has the defaults only)
        let v: Value = api.json(requests::list_rules(&g.id)).await?;
        let have: Vec<SecurityGroupRule> = parse_list(&v, "security_group_rules", "list rules")?;
        let mut wanted = vec![WantedRule {
            protocol: None,
            ports: None,
            remote_ip_prefix: None,
            remote_group_id: Some(g.id.clone()),
        }];
        for p in &request.ingress_ports {
            wanted.push(WantedRule {
                protocol: Some("tcp"),
                ports: Some((p.from, p.to)),
                remote_ip_prefix: Some("0.0.0.0/0".into()),
                remote_group_id: None,
            });
        }
        for w in wanted.iter().filter(|w| !have.iter().any(|h| w.matches(h))) {
            match api.send(requests::add_rule(w, &g.id)).await {
                Ok(()) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name))
    }

    /// The security groups called `name`.
    pub(crate) async fn security_groups_named(&self, name: &str) -> OsResult<Vec<SecurityGroup>> {
        let v: Value = self.api().await?.json(requests::find_security_groups(name)).await?;
        parse_list(&v, "security_groups", "find security group")
    }
}

/// The security group `[openstack] security_group` names (used, not owned).
pub(crate) fn reused_group_resource(g: &SecurityGroup) -> CloudResource {
    CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name)
        .with_key(ResourceKey::security_group())
        .with_attr(attr::REUSED, "true")
}
