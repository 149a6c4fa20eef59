//! Instances: the SSH key in their metadata, bulkInsert per group and the
//! wait until they run.

use std::time::Duration;

use serde_json::{Value, json};
use vre_core::plan::{key_pair_name, security_group_name};
use vre_core::{
    CloudResource, ClusterRef, Error, InstanceBatch, InstanceRequest, ROLE_LABEL, ResourceKey, ResourceKind,
    ResourceStatus, Result, StepProgress, attr,
};

use crate::call::{self, EXTERNAL_ACCESS_CONFIG};
use crate::ownership::{label_filter, labels};
use crate::provider::{
    GcpProvider, NETWORK_TAG_ATTR, PUBLIC_KEY_ATTR, create, last_segment, parse_path, str_at, unexpected,
};
use vre_cloud_kit::{Observed, WaitWording, wait_instances_reported};

impl GcpProvider {
    pub(crate) async fn list_instances(&self, cluster: &ClusterRef) -> Result<Vec<Value>> {
        Ok(self
            .client
            .list(&call::instances_list(&self.loc, &label_filter(&cluster.name)))
            .await?)
    }

    pub(crate) fn instance_resource(&self, cluster: &ClusterRef, v: &Value) -> CloudResource {
        let name = str_at(v, "/name").unwrap_or_default();
        let zone = str_at(v, "/zone").map_or(self.loc.zone.as_str(), last_segment);
        let id = format!("projects/{}/zones/{zone}/instances/{name}", self.loc.project);
        let state = str_at(v, "/status").unwrap_or("PROVISIONING");
        let status = match state {
            "RUNNING" => ResourceStatus::Ready,
            "PROVISIONING" | "STAGING" | "REPAIRING" | "PENDING" => ResourceStatus::Pending,
            other => {
                let detail = str_at(v, "/statusMessage")
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                ResourceStatus::Failed {
                    reason: format!("instance is {other}{detail}"),
                }
            }
        };
        let mut r = CloudResource::new(ResourceKind::Instance, id, name).with_status(status);
        if let Some((role, i)) = ResourceKey::server_from_name(&cluster.name, name) {
            r = r.with_key(ResourceKey::server(role, i));
        }
        if let Some(ip) = str_at(v, "/networkInterfaces/0/networkIP") {
            r = r.with_attr(attr::PRIVATE_IP, ip);
        }
        if let Some(ip) = str_at(v, "/networkInterfaces/0/accessConfigs/0/natIP") {
            r = r.with_attr(attr::PUBLIC_IP, ip);
        }
        if let Some(mt) = str_at(v, "/machineType") {
            r = r.with_attr(attr::FLAVOR, last_segment(mt));
        }
        if let Some(role) = v.pointer(&format!("/labels/{ROLE_LABEL}")).and_then(Value::as_str) {
            r = r.with_attr(attr::ROLE, role);
        }
        if let Some(n) = str_at(v, "/id") {
            r = r.with_attr(attr::INSTANCE_ID, n);
        }
        r
    }

    /// The `instanceProperties` of one bulkInsert.
    pub(crate) fn instance_properties(
        &self,
        cluster: &ClusterRef,
        batch: &InstanceBatch,
        todo: &[&InstanceRequest],
    ) -> Result<Value> {
        let public_key = batch.key_pair.attr(PUBLIC_KEY_ATTR).ok_or_else(|| {
            Error::component(
                "apply",
                "the key-pair resource carries no public key; run `vre apply` again",
            )
        })?;
        let tag = batch
            .security_group
            .attr(NETWORK_TAG_ATTR)
            .map_or_else(|| security_group_name(&cluster.name), str::to_string);
        let subnet = batch.network.network.attr(attr::SUBNET_ID).ok_or_else(|| {
            Error::component(
                "apply",
                "the network resource carries no subnetwork; run `vre apply` again",
            )
        })?;
        let single = match todo {
            [one] => Some(*one),
            _ => None,
        };
        if single.is_none() && todo.iter().any(|i| i.fixed_ip.is_some()) {
            return Err(Error::component(
                "apply",
                format!(
                    "{} {} nodes ask for fixed addresses; bulkInsert gives one address per call",
                    todo.len(),
                    batch.role
                ),
            ));
        }
        let mut access = json!({"type": "ONE_TO_ONE_NAT", "name": EXTERNAL_ACCESS_CONFIG, "networkTier": "PREMIUM"});
        if let Some(addr) = single
            .and_then(|i| i.public_ip.as_ref())
            .and_then(|ip| ip.attr(attr::ADDRESS))
        {
            access["natIP"] = json!(addr);
        }
        let mut nic = json!({
            "network": batch.network.network.id,
            "subnetwork": subnet,
            "accessConfigs": [access],
        });
        if let Some(ip) = single.and_then(|i| i.fixed_ip) {
            nic["networkIP"] = json!(ip.to_string());
        }
        let disk_labels = labels(&cluster.name, None, Some(batch.role));
        let mut init = json!({
            "sourceImage": batch.image.id,
            "diskType": self.settings.disk_type,
            "labels": disk_labels,
        });
        if let Some(gb) = batch.root_disk_gb {
            init["diskSizeGb"] = json!(gb.to_string());
        }
        Ok(json!({
            "machineType": batch.flavor,
            "description": format!("{} node of vre cluster {}", batch.role, cluster.name),
            "labels": labels(&cluster.name, None, Some(batch.role)),
            "tags": {"items": [tag]},
            "metadata": {"items": [
                {"key": "user-data", "value": batch.user_data},
                {"key": "ssh-keys", "value": format!("{}:{}", batch.ssh_user, public_key.trim())},
            ]},
            "disks": [{
                "boot": true,
                "autoDelete": true,
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "initializeParams": init,
            }],
            "networkInterfaces": [nic],
        }))
    }

    pub(crate) async fn instance_by_id(&self, id: &str) -> Result<Option<(String, String, Value)>> {
        let p =
            parse_path(id).ok_or_else(|| unexpected("read instance", format!("\"{id}\" is not an instance path")))?;
        let zone = p.zone.unwrap_or(&self.loc.zone).to_string();
        let name = p.name.to_string();
        let v = self
            .client
            .get_opt(&call::instances_get(&self.loc, &zone, &name))
            .await?;
        Ok(v.map(|v| (zone, name, v)))
    }

    /// Checks the public key; it goes into each instance's metadata (`CloudProvider::ensure_key_pair`).
    pub(crate) async fn key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        let key = public_key.trim();
        if !(key.starts_with("ssh-") || key.starts_with("ecdsa-")) || key.contains('\n') {
            return Err(Error::input(
                "ssh.public_key",
                "is not a single-line OpenSSH public key; point it at a .pub file",
            ));
        }
        // Compute Engine has no key-pair object: the key goes into each
        // instance's `ssh-keys` metadata
        let name = key_pair_name(&cluster.name);
        Ok(
            CloudResource::new(ResourceKind::KeyPair, format!("metadata/ssh-keys/{name}"), name)
                .with_attr(PUBLIC_KEY_ATTR, key),
        )
    }

    /// Creates the missing instances of a batch in one bulkInsert (`CloudProvider::create_instances`).
    pub(crate) async fn bulk_insert(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        let existing = self.list_instances(cluster).await?;
        let exists = |name: &str| existing.iter().any(|v| str_at(v, "/name") == Some(name));
        let todo: Vec<&InstanceRequest> = batch.instances.iter().filter(|i| !exists(&i.name)).collect();
        if !todo.is_empty() {
            let properties = self.instance_properties(cluster, batch, &todo)?;
            let names: Vec<String> = todo.iter().map(|i| i.name.clone()).collect();
            let purpose = format!("create {} {} instance(s)", names.len(), batch.role);
            create(
                &self.client,
                &call::instances_bulk_insert(&self.loc, &names, properties, purpose),
            )
            .await?;
        }
        let now = self.list_instances(cluster).await?;
        let mut out = Vec::new();
        for req in &batch.instances {
            let v = now
                .iter()
                .find(|v| str_at(v, "/name") == Some(req.name.as_str()))
                .ok_or_else(|| {
                    unexpected(
                        &format!("create {} instances", batch.role),
                        format!("bulkInsert finished but instance {} is not listed", req.name),
                    )
                })?;
            out.push(self.instance_resource(cluster, v).with_key(req.key.clone()));
        }
        Ok(out)
    }

    /// Waits until the instances run or fail, one listing per round (`CloudProvider::wait_instances`).
    pub(crate) async fn wait_running(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        // one instances.list per round for the whole cluster
        let list = |asked: Vec<CloudResource>| async move {
            let listed = self.list_instances(cluster).await?;
            Ok(asked
                .into_iter()
                .map(|want| {
                    Observed::by_status(
                        match listed.iter().find(|v| str_at(v, "/name") == Some(want.name.as_str())) {
                            Some(v) => self.instance_resource(cluster, v),
                            None => want.with_status(ResourceStatus::Failed {
                                reason: "the instance disappeared while booting".into(),
                            }),
                        },
                    )
                })
                .collect())
        };
        let wording = WaitWording {
            settled: "instances running or failed",
            things: "instances",
            until: "to be RUNNING",
            hint: format!(
                "check them with `gcloud compute instances describe --zone {}`",
                self.loc.zone
            ),
        };
        wait_instances_reported(self.client.poll(), instances, timeout, list, progress, wording).await
    }
}
