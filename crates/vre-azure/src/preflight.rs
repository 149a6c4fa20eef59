//! The checks before anything is created: the resource group, image, VM sizes
//! and the regional vCPU quota.

use serde_json::Value;
use vre_core::spec::node_name;
use vre_core::{CLUSTER_TAG, ClusterRef, PreflightProblem, PreflightRequest, Result, SpecField};

use crate::call;
use crate::error::AzureError;
use crate::provider::{AzureProvider, str_at, tag};

impl AzureProvider {
    /// Resource group, image, VM sizes and the vCPU quota (`CloudProvider::preflight`).
    pub(crate) async fn check_against_cloud(
        &self,
        cluster: &ClusterRef,
        request: &PreflightRequest,
    ) -> Result<Vec<PreflightProblem>> {
        let mut problems = Vec::new();
        if let Some(g) = self.client.get_opt(&call::resource_groups_get(&self.scope)).await?
            && tag(&g, CLUSTER_TAG) != Some(cluster.name.as_str())
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "resource_group"),
                self.group_conflict(cluster).to_string(),
            ));
        }
        if self.settings.image_for(&request.image).is_none() {
            problems.push(PreflightProblem::new(
                SpecField::Image,
                "is not an Azure image (publisher:offer:sku:version or an image id)",
            ));
        }
        let sizes = match self.client.list(&call::virtual_machine_sizes_list(&self.scope)).await {
            Ok(s) => s,
            Err(e @ AzureError::Api { status: 400 | 404, .. }) => {
                problems.push(PreflightProblem::new(
                    SpecField::setting(crate::settings::TABLE, "location"),
                    format!(
                        "\"{}\" was refused ({e}); pick one from `az account list-locations -o table`",
                        self.scope.location
                    ),
                ));
                return Ok(problems);
            }
            Err(e) => return Err(e.into()),
        };
        let existing = match self.own_group(cluster).await? {
            Some(_) => self.list_or_empty(&call::virtual_machines_list(&self.scope)).await?,
            None => Vec::new(),
        };
        let mut cores_needed = 0;
        for g in request.groups() {
            match sizes
                .iter()
                .find(|s| str_at(s, "/name").is_some_and(|n| n.eq_ignore_ascii_case(&g.flavor)))
            {
                None => problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "VM size \"{}\" is not offered in {}; list them with `az vm list-sizes -l {} -o table`",
                        g.flavor, self.scope.location, self.scope.location
                    ),
                )),
                Some(s) => {
                    let cores = s.get("numberOfCores").and_then(Value::as_i64).unwrap_or(0);
                    let missing = (1..=g.count)
                        .filter(|i| {
                            !existing
                                .iter()
                                .any(|v| str_at(v, "/name") == Some(node_name(&cluster.name, g.role, *i).as_str()))
                        })
                        .count() as i64;
                    cores_needed += cores * missing;
                }
            }
        }
        if cores_needed > 0 {
            let usages = self.client.list(&call::usage_list(&self.scope)).await?;
            if let Some(u) = usages.iter().find(|u| str_at(u, "/name/value") == Some("cores")) {
                let limit = u.get("limit").and_then(Value::as_i64).unwrap_or(i64::MAX);
                let used = u.get("currentValue").and_then(Value::as_i64).unwrap_or(0);
                if cores_needed > limit - used {
                    problems.push(PreflightProblem::new(
                        SpecField::Nodes,
                        format!(
                            "the new nodes need {cores_needed} vCPUs but only {} of the regional vCPU quota ({limit}) are free in {}; request more quota or choose smaller sizes",
                            (limit - used).max(0),
                            self.scope.location
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }
}
