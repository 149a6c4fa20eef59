//! The checks before anything is created: zone, network, machine types,
//! image and CPU quota.

use serde_json::Value;
use vre_core::spec::node_name;
use vre_core::{ClusterRef, PreflightProblem, PreflightRequest, Result, SpecField};

use crate::call;
use crate::provider::{GcpProvider, str_at};

impl GcpProvider {
    /// Zone, network, machine types, image and CPU quota (`CloudProvider::preflight`).
    pub(crate) async fn check_against_cloud(
        &self,
        cluster: &ClusterRef,
        request: &PreflightRequest,
    ) -> Result<Vec<PreflightProblem>> {
        let mut problems = Vec::new();
        let zone = self.client.get_opt(&call::zones_get(&self.loc)).await?;
        if zone.is_none() {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "zone"),
                format!(
                    "zone \"{}\" does not exist for project {}; pick one from `gcloud compute zones list`",
                    self.loc.zone, self.loc.project
                ),
            ));
            return Ok(problems);
        }
        if let Some(n) = &self.settings.network
            && self.client.get_opt(&call::networks_get(&self.loc, n)).await?.is_none()
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(crate::settings::TABLE, "network"),
                format!("network \"{n}\" does not exist in project {}", self.loc.project),
            ));
        }
        let existing: Vec<String> = self
            .list_instances(cluster)
            .await?
            .iter()
            .filter_map(|v| str_at(v, "/name").map(str::to_string))
            .collect();
        let mut cpus_needed: i64 = 0;
        for g in request.groups() {
            match self.client.get_opt(&call::machine_types_get(&self.loc, &g.flavor)).await? {
                None => problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    format!(
                        "machine type \"{}\" is not offered in zone {}; list them with `gcloud compute machine-types list --filter=zone:{}`",
                        g.flavor, self.loc.zone, self.loc.zone
                    ),
                )),
                Some(mt) => {
                    let cpus = mt.get("guestCpus").and_then(Value::as_i64).unwrap_or(0);
                    let missing = (1..=g.count).filter(|i| !existing.contains(&node_name(&cluster.name, g.role, *i))).count();
                    cpus_needed += cpus * missing as i64;
                }
            }
        }
        if self.find_image(&request.image.name).await?.is_none() && request.image.source.is_none() {
            problems.push(PreflightProblem::new(
                SpecField::Image,
                format!(
                    "no image or image family \"{}\" in project(s) {}; set gcp.image_project, or image.source to a tar.gz in Cloud Storage to import it",
                    request.image.name,
                    self.image_projects().join(", ")
                ),
            ));
        }
        if cpus_needed > 0
            && let Some(region) = self.client.get_opt(&call::regions_get(&self.loc)).await?
        {
            let quota = region.get("quotas").and_then(Value::as_array).and_then(|qs| {
                qs.iter()
                    .find(|q| q.get("metric").and_then(Value::as_str) == Some("CPUS"))
            });
            if let Some(q) = quota {
                let limit = q.get("limit").and_then(Value::as_f64).unwrap_or(f64::MAX);
                let usage = q.get("usage").and_then(Value::as_f64).unwrap_or(0.0);
                let free = (limit - usage).max(0.0);
                if cpus_needed as f64 > free {
                    problems.push(PreflightProblem::new(
                        SpecField::Nodes,
                        format!(
                            "the new nodes need {cpus_needed} vCPUs but only {free} of the CPUS quota ({limit}) are free in {}; request more quota or choose smaller machine types",
                            self.loc.region
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }
}
