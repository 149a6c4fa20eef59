//! Checks against the account before anything is created: instance types
//! exist in the region, the AMI is there (or importable), reused subnets and
//! VPCs exist and fit, the zone exists, and the cheap quotas
//! (`max-instances`, `vpc-max-elastic-ips`) leave room.

use std::collections::{BTreeMap, BTreeSet};

use vre_core::{CLUSTER_TAG, ClusterRef, Error, PreflightProblem, PreflightRequest, Result, SpecField};

use crate::error::{AwsError, Blame, setting};
use crate::image::ImportSource;
use crate::provider::AwsProvider;
use crate::requests;
use crate::wire::{
    DescribeAccountAttributesResponse, DescribeAddressesResponse, DescribeInstanceTypesResponse, Tagged,
};

/// The instance types EC2 named in an `InvalidInstanceType` message
/// (`The following supplied instance types do not exist: [t3.foo, m9.bar]`).
pub fn unknown_types_in(message: &str) -> Vec<String> {
    let Some(inner) = message
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    inner
        .split(',')
        .map(|t| t.trim().trim_matches(['\'', '"']).to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// An `Error::Rejected` as a problem with its field; other errors pass through.
fn as_problem(e: Error, problems: &mut Vec<PreflightProblem>) -> Result<()> {
    match e {
        Error::Rejected { field, message } => {
            problems.push(PreflightProblem::new(field, message));
            Ok(())
        }
        other => Err(other),
    }
}

impl AwsProvider {
    pub(crate) async fn check_against_cloud(
        &self,
        cluster: &ClusterRef,
        request: &PreflightRequest,
    ) -> Result<Vec<PreflightProblem>> {
        let mut problems = Vec::new();
        let region = self.ec2.region().to_string();
        let groups: Vec<_> = request.groups().collect();

        // instance types
        let types: BTreeSet<&str> = groups.iter().map(|g| g.flavor.as_str()).collect();
        let types: Vec<&str> = types.into_iter().collect();
        let unknown: Vec<String> = if types.is_empty() {
            Vec::new()
        } else {
            match self
                .ec2
                .call::<DescribeInstanceTypesResponse>(&requests::describe_instance_types(&types))
                .await
            {
                Ok(r) => {
                    let found: BTreeMap<String, Option<String>> = r
                        .instance_type_set
                        .into_vec()
                        .into_iter()
                        .map(|t| (t.instance_type, t.hypervisor))
                        .collect();
                    let mut cache = self.hypervisors.lock().expect("poisoned");
                    for (t, h) in &found {
                        if let Some(h) = h {
                            cache.insert(t.clone(), h.clone());
                        }
                    }
                    types
                        .iter()
                        .filter(|t| !found.contains_key(**t))
                        .map(|t| t.to_string())
                        .collect()
                }
                Err(AwsError::Api { code, message, .. }) if code == "InvalidInstanceType" => {
                    let named = unknown_types_in(&message);
                    if named.is_empty() {
                        types.iter().map(|t| t.to_string()).collect()
                    } else {
                        named
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        for g in &groups {
            if unknown.contains(&g.flavor) {
                problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "EC2 has no instance type \"{}\" in region {region}; write one such as \"t3.medium\" (`aws ec2 describe-instance-types` lists them)",
                        g.flavor
                    ),
                ));
            }
        }

        // image
        if let Some(id) = &self.settings.image_id {
            if self.image_by_id(id).await?.is_none() {
                problems.push(PreflightProblem::new(
                    setting("image_id"),
                    format!("AMI {id} does not exist in region {region} (or is not shared with this account)"),
                ));
            }
        } else if self
            .find_image(&request.image.name, &Blame::image(SpecField::Image))
            .await?
            .is_none()
        {
            match &request.image.source {
                Some(src) => {
                    if let Err(m) = ImportSource::parse(src) {
                        problems.push(PreflightProblem::new(SpecField::ImageSource, m));
                    }
                }
                None => problems.push(PreflightProblem::new(
                    SpecField::Image,
                    format!(
                        "no AMI named \"{}\" owned by {} in region {region}; fix the name (wildcards such as `*` are allowed), add the owner to [aws] image_owners, set [aws] image_id, or set image.source to an s3:// disk image to import",
                        request.image.name,
                        self.settings.image_owners.join(", ")
                    ),
                )),
            }
        }

        // reused network
        if let Some(subnet_id) = &self.settings.subnet_id {
            match self.reused_subnet(subnet_id).await {
                Ok(s) => {
                    if let Some(vpc) = self.settings.vpc_id.as_ref().filter(|v| **v != s.vpc_id) {
                        problems.push(PreflightProblem::new(
                            setting("subnet_id"),
                            format!(
                                "subnet {subnet_id} is in VPC {}, not in aws.vpc_id {vpc}; fix one of them",
                                s.vpc_id
                            ),
                        ));
                    }
                    if let (Ok(cidr), Some(ip)) = (
                        s.cidr_block.parse::<vre_core::spec::Ipv4Cidr>(),
                        request.network.master_ip,
                    ) && !cidr.contains(ip)
                    {
                        problems.push(PreflightProblem::new(
                                SpecField::MasterIp,
                                format!("{ip} is not in subnet {subnet_id} ({cidr}); pick an address inside it, or remove master_ip"),
                            ));
                    }
                }
                Err(e) => as_problem(e, &mut problems)?,
            }
        } else if let Some(vpc_id) = &self.settings.vpc_id {
            match self.reused_vpc(vpc_id).await {
                Ok(v) => {
                    if let Ok(vpc_cidr) = v.cidr_block.parse::<vre_core::spec::Ipv4Cidr>() {
                        let cidr = request.network.cidr;
                        if !vpc_cidr.contains(cidr.network()) || cidr.prefix < vpc_cidr.prefix {
                            problems.push(PreflightProblem::new(
                                SpecField::NetworkCidr,
                                format!("{cidr} is not inside VPC {vpc_id}'s {vpc_cidr}; pick a free range inside it"),
                            ));
                        }
                    }
                }
                Err(e) => as_problem(e, &mut problems)?,
            }
        }

        // zone
        if let Some(zone) = &self.settings.availability_zone {
            match self.ec2.send(&requests::describe_zone(zone)).await {
                Ok(_) => {}
                Err(e) if e.is_code("InvalidParameterValue") || e.is_not_found() => {
                    problems.push(PreflightProblem::new(
                        setting("availability_zone"),
                        format!("\"{zone}\" is not an availability zone of region {region} for this account"),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }

        // cheap quotas
        match self
            .ec2
            .call::<DescribeAccountAttributesResponse>(&requests::describe_account_attributes())
            .await
        {
            Ok(attrs) => {
                let total = request.total_nodes();
                if let Some(max) = attrs.number("max-instances").filter(|m| total > *m) {
                    problems.push(PreflightProblem::new(
                        SpecField::Nodes,
                        format!(
                            "the spec asks for {total} instances but the account may run {max} in {region}; lower the counts or ask AWS for a higher quota"
                        ),
                    ));
                }
                let needed: u64 = groups.iter().filter(|g| g.public_ip).map(|g| u64::from(g.count)).sum();
                if let (Some(max), true) = (attrs.number("vpc-max-elastic-ips"), needed > 0) {
                    let all: DescribeAddressesResponse = self
                        .call(&requests::describe_all_vpc_addresses(), &Blame::default())
                        .await?;
                    let others = all
                        .addresses_set
                        .into_vec()
                        .iter()
                        .filter(|a| a.tag(CLUSTER_TAG) != Some(cluster.name.as_str()))
                        .count() as u64;
                    if others + needed > max {
                        let field = groups
                            .iter()
                            .find(|g| g.public_ip)
                            .map_or(SpecField::Nodes, |g| SpecField::PublicIp(g.role));
                        problems.push(PreflightProblem::new(
                            field,
                            format!(
                                "the VRE needs {needed} Elastic IPs, {others} of the account's {max} in {region} are taken; release unused ones, ask AWS for more, or give fewer groups public_ip"
                            ),
                        ));
                    }
                }
            }
            // quota checks are a courtesy: an identity that may not read them still deploys
            Err(e @ AwsError::Unauthorized { .. }) => self.events.warn(format!("quota check skipped: {e}")),
            Err(e) => return Err(e.into()),
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unknown_types_from_the_error_message() {
        assert_eq!(
            unknown_types_in("The following supplied instance types do not exist: [t3.foo, m9.bar]"),
            vec!["t3.foo", "m9.bar"]
        );
        assert!(unknown_types_in("Invalid instance type").is_empty());
    }
}
