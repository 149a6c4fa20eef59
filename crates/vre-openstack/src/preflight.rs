//! Preflight: what would make an apply fail on this cloud (flavors, the
//! image and its import method, networks, the security group, and the
//! compute, volume and floating IP quotas), found before anything is made.

use std::collections::BTreeSet;

use vre_core::spec::node_name;
use vre_core::{ClusterRef, PreflightProblem, PreflightRequest, SpecField};

use crate::error::OpenStackError;
use crate::flavors::unknown_flavor;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::settings::TABLE;
use crate::wire::{Limits, NeutronQuotaDetails};

impl OpenStackProvider {
    /// What would make an apply of `request` fail on this cloud: unknown
    /// flavors, a missing image or network, quotas.
    pub(crate) async fn preflight_checks(
        &self,
        cluster: &ClusterRef,
        request: &PreflightRequest,
    ) -> OsResult<Vec<PreflightProblem>> {
        let mut problems = Vec::new();
        let flavors = self.flavors().await?;
        let existing = self.list_servers(cluster, None).await?;
        let existing_names: BTreeSet<&str> = existing.iter().map(|s| s.name.as_str()).collect();
        let (mut instances, mut cores, mut ram, mut gigabytes, mut volumes, mut ips) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for g in request.groups() {
            let flavor = flavors.iter().find(|f| f.name == g.flavor || f.id == g.flavor);
            if flavor.is_none() {
                problems.push(PreflightProblem::new(
                    SpecField::Flavor(g.role),
                    unknown_flavor(&g.flavor, &flavors),
                ));
            }
            let missing = (1..=g.count)
                .filter(|i| !existing_names.contains(node_name(&cluster.name, g.role, *i).as_str()))
                .count() as u64;
            instances += missing;
            if let Some(f) = flavor {
                cores += missing * f.vcpus;
                ram += missing * f.ram;
                if self.settings.boot_from_volume {
                    let size = g.root_disk_gb.map(u64::from).unwrap_or(f.disk);
                    if size == 0 {
                        let field = SpecField::RootDisk(g.role);
                        let message = format!(
                            "openstack.boot_from_volume needs a root disk size and flavor \"{}\" has none; set {field}",
                            f.name
                        );
                        problems.push(PreflightProblem::new(field, message));
                    }
                    gigabytes += missing * size;
                    volumes += missing;
                }
            }
            if let Some(v) = g.volume_gb {
                gigabytes += missing * u64::from(v);
                volumes += missing;
            }
            if g.public_ip {
                ips += missing;
            }
        }
        // image
        let image = &request.image;
        let images = self.images_named(&image.name).await?;
        if !images
            .iter()
            .any(|i| matches!(i.status.as_str(), "active" | "queued" | "saving" | "importing"))
        {
            match &image.source {
                None => problems.push(PreflightProblem::new(
                    SpecField::Image,
                    format!(
                        "image \"{}\" does not exist on this cloud and image.source is not set; upload it or set image.source to a URL the cloud can download",
                        image.name
                    ),
                )),
                Some(_) => match self.import_methods().await {
                    Ok(m) if m.iter().any(|x| x == "web-download") => {}
                    Ok(m) => problems.push(PreflightProblem::new(
                        SpecField::ImageSource,
                        format!(
                            "image \"{}\" must be imported but this cloud's Glance does not offer web-download (it offers: {}); upload the image yourself",
                            image.name,
                            if m.is_empty() { "nothing".into() } else { m.join(", ") }
                        ),
                    )),
                    Err(e) if e.is_not_found() => problems.push(PreflightProblem::new(
                        SpecField::ImageSource,
                        format!(
                            "image \"{}\" must be imported but this cloud's Glance has no interoperable image import; upload the image yourself",
                            image.name
                        ),
                    )),
                    Err(e) => return Err(e),
                },
            }
        }
        // networks
        if self.settings.network.is_none() {
            if let Err(OpenStackError::Rejected { field, message }) = self
                .external_network(&self.settings.external_network, "external_network")
                .await
            {
                problems.push(PreflightProblem::new(field, message));
            }
        } else if let Some(n) = &self.settings.network
            && self.networks_named(n, false).await?.is_empty()
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(TABLE, "network"),
                format!("network \"{n}\" does not exist on this cloud"),
            ));
        }
        if ips > 0
            && (self.settings.floating_ip_pool.is_some() || self.settings.network.is_some())
            && let Err(OpenStackError::Rejected { field, message }) = self
                .external_network(self.settings.pool(), self.settings.pool_key())
                .await
        {
            problems.push(PreflightProblem::new(field, message));
        }
        if let Some(g) = &self.settings.security_group
            && self.security_groups_named(g).await?.is_empty()
        {
            problems.push(PreflightProblem::new(
                SpecField::setting(TABLE, "security_group"),
                format!("security group \"{g}\" does not exist in this project"),
            ));
        }
        // quotas
        let api = self.api().await?;
        let limits: Limits = api.json(requests::compute_limits()).await?;
        let quota = |what: &str, need: u64, pair: Option<(u64, u64)>, unit: &str| -> Option<String> {
            let (max, used) = pair?;
            let left = max.saturating_sub(used);
            (need > left).then(|| {
                format!(
                    "needs {need}{unit} more {what} but the project's quota leaves {left}{unit} ({used} of {max} used); lower the node counts or ask the cloud's operators for more quota"
                )
            })
        };
        for (what, need, pair, unit) in [
            (
                "instances",
                instances,
                limits.pair("maxTotalInstances", "totalInstancesUsed"),
                "",
            ),
            ("vCPUs", cores, limits.pair("maxTotalCores", "totalCoresUsed"), ""),
            ("RAM", ram, limits.pair("maxTotalRAMSize", "totalRAMUsed"), " MiB"),
        ] {
            if let Some(m) = quota(what, need, pair, unit) {
                problems.push(PreflightProblem::new(SpecField::Nodes, m));
            }
        }
        if gigabytes > 0 {
            match api.json::<Limits>(requests::volume_limits()).await {
                Ok(l) => {
                    let field = request
                        .groups()
                        .find(|g| g.volume_gb.is_some())
                        .map(|g| SpecField::Volume(g.role))
                        .unwrap_or_else(|| SpecField::setting(TABLE, "boot_from_volume"));
                    if let Some(m) = quota(
                        "volume storage",
                        gigabytes,
                        l.pair("maxTotalVolumeGigabytes", "totalGigabytesUsed"),
                        " GB",
                    ) {
                        problems.push(PreflightProblem::new(field.clone(), m));
                    }
                    if let Some(m) = quota("volumes", volumes, l.pair("maxTotalVolumes", "totalVolumesUsed"), "") {
                        problems.push(PreflightProblem::new(field, m));
                    }
                }
                Err(e) if e.status().is_some_and(|s| s < 500) => {
                    tracing::debug!("volume limits unreadable: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        if ips > 0 {
            let project = api.project_id().await?;
            match api
                .json::<NeutronQuotaDetails>(requests::network_quotas(&project))
                .await
            {
                Ok(q) => {
                    if let Some(d) = q.quota.get("floatingip").filter(|d| d.limit >= 0) {
                        let left = (d.limit - d.used - d.reserved).max(0) as u64;
                        if ips > left {
                            let field = request
                                .groups()
                                .find(|g| g.public_ip)
                                .map(|g| SpecField::PublicIp(g.role))
                                .unwrap_or(SpecField::Nodes);
                            problems.push(PreflightProblem::new(
                                field,
                                format!(
                                    "needs {ips} more floating IPs but the project's quota leaves {left} ({} of {} used); release unused floating IPs or ask for more quota",
                                    d.used, d.limit
                                ),
                            ));
                        }
                    }
                }
                Err(e) if e.status().is_some_and(|s| s < 500) => tracing::debug!("network quotas unreadable: {e}"),
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }
}
