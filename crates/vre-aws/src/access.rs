//! Who and what may reach the nodes: the cluster's security group (all
//! traffic between members, the spec's TCP ports from anywhere; rules
//! converge to the spec) and the imported SSH key pair.

use vre_core::provider::{NetworkInfo, SecurityGroupRequest};
use vre_core::{CloudResource, ClusterRef, Error, ResourceKey, ResourceKind, Result, plan};

use crate::error::Blame;
use crate::provider::{AwsProvider, attr};
use crate::requests::{self, IngressRule};
use crate::wire::{self, CreateSecurityGroupResponse, DescribeKeyPairsResponse, DescribeSecurityGroupsResponse};

/// The ingress rules a group has now, in vre's terms (others are ignored).
pub fn current_rules(group: &wire::SecurityGroup) -> Vec<IngressRule> {
    let mut rules = Vec::new();
    for p in &group.ip_permissions.item {
        if p.ip_protocol == "-1" {
            for g in &p.groups.item {
                if let Some(id) = &g.group_id {
                    rules.push(IngressRule::FromGroup(id.clone()));
                }
            }
        }
        if p.ip_protocol == "tcp"
            && p.ip_ranges.item.iter().any(|r| r.cidr_ip == "0.0.0.0/0")
            && let (Some(from), Some(to)) = (p.from_port, p.to_port)
            && let (Ok(from), Ok(to)) = (u16::try_from(from), u16::try_from(to))
        {
            rules.push(IngressRule::TcpFromAnywhere(vre_core::spec::PortRange { from, to }));
        }
    }
    rules
}

/// Rules to add and rules to remove so the group matches `wanted`. Only
/// world-open TCP rules are removed: other rules someone added by hand stay.
pub fn rule_changes(current: &[IngressRule], wanted: &[IngressRule]) -> (Vec<IngressRule>, Vec<IngressRule>) {
    let add = wanted.iter().filter(|r| !current.contains(r)).cloned().collect();
    let remove = current
        .iter()
        .filter(|r| matches!(r, IngressRule::TcpFromAnywhere(_)) && !wanted.contains(r))
        .cloned()
        .collect();
    (add, remove)
}

/// The group's description (EC2 allows 255 characters of a restricted set,
/// which a name, digits, commas and dashes stay within).
pub fn group_description(cluster: &str, ports: &[vre_core::spec::PortRange]) -> String {
    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    let full = format!(
        "vre cluster {cluster}: all traffic between nodes, TCP {} from anywhere",
        list.join(",")
    );
    if full.len() <= 255 {
        full
    } else {
        format!(
            "vre cluster {cluster}: all traffic between nodes, {} TCP port ranges from anywhere",
            ports.len()
        )
    }
}

/// The key type and base64 blob of an OpenSSH public key line (the comment differs freely).
fn key_material(line: &str) -> String {
    line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

impl AwsProvider {
    pub(crate) async fn security_group(
        &self,
        cluster: &ClusterRef,
        network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        let vpc_id = network.network.attr(attr::VPC_ID).ok_or_else(|| {
            Error::component(
                "security group",
                "the network resource carries no VPC id (was it made by another provider?)",
            )
        })?;
        let name = plan::security_group_name(&cluster.name);
        let find = || async {
            let r: DescribeSecurityGroupsResponse = self
                .call(&requests::describe_security_group(vpc_id, &name), &Blame::default())
                .await?;
            Ok::<_, Error>(r.security_group_info.into_vec().into_iter().next())
        };
        let group = match find().await? {
            Some(g) => g,
            None => {
                let description = group_description(&cluster.name, &request.ingress_ports);
                let tags = self.tags(cluster, Some(&ResourceKey::security_group()), &name);
                match self
                    .ec2
                    .call::<CreateSecurityGroupResponse>(&requests::create_security_group(
                        vpc_id,
                        &name,
                        &description,
                        &tags,
                    ))
                    .await
                {
                    Ok(made) => wire::SecurityGroup {
                        group_id: made.group_id,
                        group_name: name.clone(),
                        vpc_id: vpc_id.to_string(),
                        ..Default::default()
                    },
                    // made by a concurrent or interrupted run: use it
                    Err(e) if e.is_code("InvalidGroup.Duplicate") => find().await?.ok_or_else(|| Error::from(e))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let mut wanted = vec![IngressRule::FromGroup(group.group_id.clone())];
        wanted.extend(request.ingress_ports.iter().map(|p| IngressRule::TcpFromAnywhere(*p)));
        let (add, remove) = rule_changes(&current_rules(&group), &wanted);
        if !add.is_empty() {
            match self.ec2.send(&requests::authorize_ingress(&group.group_id, &add)).await {
                Ok(_) => {}
                Err(e) if e.is_code("InvalidPermission.Duplicate") => {}
                Err(e) => return Err(e.blame(&Blame::default())),
            }
        }
        if !remove.is_empty() {
            match self.ec2.send(&requests::revoke_ingress(&group.group_id, &remove)).await {
                Ok(_) => {}
                Err(e) if e.is_code("InvalidPermission.NotFound") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(CloudResource::new(ResourceKind::SecurityGroup, &group.group_id, &name)
            .with_key(ResourceKey::security_group())
            .with_attr(attr::VPC_ID, vpc_id))
    }

    pub(crate) async fn key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        let name = plan::key_pair_name(&cluster.name);
        let find = || async {
            let r: DescribeKeyPairsResponse = self
                .call(&requests::describe_key_pair(&name), &Blame::default())
                .await?;
            Ok::<_, Error>(r.key_set.into_vec().into_iter().find(|k| k.key_name == name))
        };
        let resource = |id: Option<String>, fingerprint: Option<String>| {
            let mut r = CloudResource::new(ResourceKind::KeyPair, id.unwrap_or_else(|| name.clone()), &name)
                .with_key(ResourceKey::key_pair());
            if let Some(f) = fingerprint {
                r = r.with_attr("fingerprint", f);
            }
            r
        };
        if let Some(existing) = find().await? {
            match &existing.public_key {
                Some(k) if key_material(k) != key_material(public_key) => {
                    // a new key for the VRE: nodes created from now on get it
                    self.events.warn(format!(
                        "key pair {name} holds another public key; replacing it (running nodes keep the old one)"
                    ));
                    self.send(&requests::delete_key_pair(&name), &Blame::default()).await?;
                }
                _ => return Ok(resource(existing.key_pair_id, existing.key_fingerprint)),
            }
        }
        let tags = self.tags(cluster, Some(&ResourceKey::key_pair()), &name);
        match self
            .ec2
            .call::<wire::ImportKeyPairResponse>(&requests::import_key_pair(&name, public_key.trim(), &tags))
            .await
        {
            Ok(made) => Ok(resource(made.key_pair_id, made.key_fingerprint)),
            Err(e) if e.is_code("InvalidKeyPair.Duplicate") => {
                let k = find().await?.ok_or_else(|| Error::from(e))?;
                Ok(resource(k.key_pair_id, k.key_fingerprint))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vre_core::spec::PortRange;

    #[test]
    fn rules_converge_without_touching_foreign_ones() {
        let group: wire::SecurityGroup = wire::parse(
            r#"<item><groupId>sg-1</groupId><groupName>lab-sg</groupName><vpcId>vpc-1</vpcId><ipPermissions>
              <item><ipProtocol>-1</ipProtocol><groups><item><userId>123</userId><groupId>sg-1</groupId></item></groups><ipRanges/></item>
              <item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>
              <item><ipProtocol>tcp</ipProtocol><fromPort>8080</fromPort><toPort>8080</toPort><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>
              <item><ipProtocol>tcp</ipProtocol><fromPort>5432</fromPort><toPort>5432</toPort><groups/><ipRanges><item><cidrIp>10.1.0.0/16</cidrIp></item></ipRanges></item>
            </ipPermissions></item>"#,
        )
        .unwrap();
        let current = current_rules(&group);
        assert_eq!(current.len(), 3, "{current:?}");
        let wanted = vec![
            IngressRule::FromGroup("sg-1".into()),
            IngressRule::TcpFromAnywhere(PortRange::single(22)),
            IngressRule::TcpFromAnywhere(PortRange::single(443)),
        ];
        let (add, remove) = rule_changes(&current, &wanted);
        assert_eq!(add, vec![IngressRule::TcpFromAnywhere(PortRange::single(443))]);
        assert_eq!(remove, vec![IngressRule::TcpFromAnywhere(PortRange::single(8080))]);
    }

    #[test]
    fn descriptions_fit_ec2_s_limit() {
        let few = group_description("lab", &[PortRange::single(22), PortRange { from: 30000, to: 32767 }]);
        assert_eq!(
            few,
            "vre cluster lab: all traffic between nodes, TCP 22,30000-32767 from anywhere"
        );
        let many: Vec<PortRange> = (1000..1100).map(PortRange::single).collect();
        let d = group_description("lab", &many);
        assert!(d.len() <= 255, "{d}");
        assert!(d.contains("100 TCP port ranges"), "{d}");
    }

    #[test]
    fn key_comments_do_not_count_as_a_different_key() {
        assert_eq!(
            key_material("ssh-ed25519 AAAAC3Nz lab@host\n"),
            key_material("ssh-ed25519 AAAAC3Nz")
        );
        assert_ne!(
            key_material("ssh-ed25519 AAAAC3Nz"),
            key_material("ssh-ed25519 AAAAC3Na")
        );
    }
}
