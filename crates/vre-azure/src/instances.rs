//! Virtual machines: a NIC and a VM per node, created side by side, and the
//! wait until they are provisioned.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use vre_core::plan::key_pair_name;
use vre_core::{
    CloudResource, ClusterRef, Error, InstanceBatch, InstanceRequest, ROLE_TAG, ResourceKey, ResourceKind,
    ResourceStatus, Result, StepProgress, attr,
};

use crate::call::{self, ImageRef, NicSpec, VmSpec, types};
use crate::error::AzureError;
use crate::image::not_an_image;
use crate::provider::{AzureProvider, CREATE_CONCURRENCY, PUBLIC_KEY_ATTR, same_id, status_of, str_at, tag, tags};
use vre_cloud_kit::{Observed, WaitWording, wait_instances_reported};

pub(crate) fn nic_name(node: &str) -> String {
    format!("{node}-nic")
}

pub(crate) fn os_disk_name(node: &str) -> String {
    format!("{node}-osdisk")
}

impl AzureProvider {
    /// VMs, NICs and public IPs of the group, for instance resources.
    pub(crate) async fn compute_view(&self) -> Result<ComputeView> {
        let (vm_list, nic_list, pip_list) = (
            call::virtual_machines_list(&self.scope),
            call::network_interfaces_list(&self.scope),
            call::public_ip_addresses_list(&self.scope),
        );
        let (vms, nics, pips) = futures::try_join!(
            self.list_or_empty(&vm_list),
            self.list_or_empty(&nic_list),
            self.list_or_empty(&pip_list),
        )?;
        Ok(ComputeView { vms, nics, pips })
    }

    pub(crate) async fn failure_reason(&self, vm: &str) -> String {
        let view = self
            .client
            .get_opt(&call::virtual_machines_instance_view(&self.scope, vm))
            .await;
        let statuses = view
            .ok()
            .flatten()
            .and_then(|v| v.get("statuses").cloned())
            .unwrap_or(Value::Null);
        statuses
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| str_at(s, "/code").is_some_and(|c| c.starts_with("ProvisioningState/failed")))
            .map(|s| {
                let code = str_at(s, "/code")
                    .unwrap_or_default()
                    .trim_start_matches("ProvisioningState/failed/");
                format!("{code}: {}", str_at(s, "/message").unwrap_or("provisioning failed"))
            })
            .unwrap_or_else(|| "provisioning failed".to_string())
    }

    /// Creates one node: its NIC, then its VM (both followed to the end of
    /// their operations). A VM whose operation failed comes back `Failed`.
    pub(crate) async fn create_node(
        &self,
        cluster: &ClusterRef,
        batch: &InstanceBatch,
        req: &InstanceRequest,
    ) -> Result<CloudResource> {
        let c = &cluster.name;
        let public_key = batch.key_pair.attr(PUBLIC_KEY_ATTR).ok_or_else(|| {
            Error::component(
                "apply",
                "the key-pair resource carries no public key; run `vre apply` again",
            )
        })?;
        let subnet = batch.network.network.attr(attr::SUBNET_ID).ok_or_else(|| {
            Error::component("apply", "the network resource carries no subnet; run `vre apply` again")
        })?;
        let nic = NicSpec {
            subnet_id: subnet.to_string(),
            security_group_id: batch.security_group.id.clone(),
            private_ip: req.fixed_ip.map(|ip| ip.to_string()),
            public_ip_id: req.public_ip.as_ref().map(|p| p.id.clone()),
        };
        let node_tags = tags(c, Some(&req.key), Some(batch.role));
        let nic_body = self
            .client
            .execute(&call::network_interfaces_create(
                &self.scope,
                &nic_name(&req.name),
                &nic,
                &node_tags,
            ))
            .await?;
        let vm = VmSpec {
            size: batch.flavor.clone(),
            image: ImageRef::parse(&batch.image.id).ok_or_else(not_an_image)?,
            nic_id: str_at(&nic_body, "/id").map_or_else(
                || self.scope.id(types::NETWORK_INTERFACE, &nic_name(&req.name)),
                str::to_string,
            ),
            os_disk_name: os_disk_name(&req.name),
            os_disk_gb: batch.root_disk_gb,
            disk_sku: self.settings.disk_sku.clone(),
            admin_user: batch.ssh_user.clone(),
            ssh_public_key: public_key.to_string(),
            custom_data: batch.user_data.clone(),
        };
        match self
            .client
            .execute(&call::virtual_machines_create(&self.scope, &req.name, &vm, &node_tags))
            .await
        {
            Ok(_) => Ok(CloudResource::new(
                ResourceKind::Instance,
                self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                &req.name,
            )
            .with_key(req.key.clone())
            .with_status(ResourceStatus::Ready)),
            Err(AzureError::Operation { code, message, .. }) => {
                // the VM exists in state Failed: the engine replaces it
                Ok(CloudResource::new(
                    ResourceKind::Instance,
                    self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                    &req.name,
                )
                .with_key(req.key.clone())
                .with_status(ResourceStatus::Failed {
                    reason: format!("{code}: {message}"),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the public key; it goes into each VM's osProfile (`CloudProvider::ensure_key_pair`).
    pub(crate) async fn key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        let key = public_key.trim();
        if !(key.starts_with("ssh-rsa ") || key.starts_with("ssh-ed25519 ") || key.starts_with("ecdsa-"))
            || key.contains('\n')
        {
            return Err(Error::input(
                "ssh.public_key",
                "is not a single-line OpenSSH public key (ssh-rsa, ssh-ed25519 or ecdsa); point it at a .pub file",
            ));
        }
        // the key goes into each VM's osProfile; ARM keeps no separate object for it
        let name = key_pair_name(&cluster.name);
        Ok(
            CloudResource::new(ResourceKind::KeyPair, format!("osProfile/ssh/{name}"), name)
                .with_attr(PUBLIC_KEY_ATTR, key),
        )
    }

    /// Creates the missing VMs of a batch side by side (`CloudProvider::create_instances`).
    pub(crate) async fn create_vms(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        self.ensure_group(cluster).await?;
        let view = self.compute_view().await?;
        let todo: Vec<&InstanceRequest> = batch.instances.iter().filter(|r| view.vm(&r.name).is_none()).collect();
        let creates: Vec<NodeCreate<'_>> = todo
            .into_iter()
            .map(|req| Box::pin(self.create_node(cluster, batch, req)) as NodeCreate<'_>)
            .collect();
        let made: Vec<Result<CloudResource>> = stream::iter(creates)
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut errors = Vec::new();
        for m in made {
            match m {
                Ok(r) => {
                    if let ResourceStatus::Failed { reason } = &r.status {
                        failed.insert(r.name.clone(), reason.clone());
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            // the nodes that were made are found again on the retry
            return Err(errors.remove(0));
        }
        let view = self.compute_view().await?;
        let mut out = Vec::new();
        for req in &batch.instances {
            let r = match view.vm(&req.name) {
                Some(vm) => view.instance(cluster, vm, failed.get(&req.name).map(String::as_str)),
                None => CloudResource::new(
                    ResourceKind::Instance,
                    self.scope.id(types::VIRTUAL_MACHINE, &req.name),
                    &req.name,
                )
                .with_status(ResourceStatus::Failed {
                    reason: failed
                        .get(&req.name)
                        .cloned()
                        .unwrap_or_else(|| "the VM was not created".into()),
                }),
            };
            out.push(r.with_key(req.key.clone()));
        }
        Ok(out)
    }

    /// Waits until the VMs are provisioned or failed, one listing per round (`CloudProvider::wait_instances`).
    pub(crate) async fn wait_provisioned(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> Result<Vec<CloudResource>> {
        // one listing of the group's VMs per round
        let list = |asked: Vec<CloudResource>| async move {
            let view = self.compute_view().await?;
            let mut out = Vec::new();
            for want in asked {
                let known = match &want.status {
                    ResourceStatus::Failed { reason } => Some(reason.clone()),
                    _ => None,
                };
                let r = match view.vm(&want.name) {
                    Some(vm) => {
                        let mut reason = known;
                        if str_at(vm, "/properties/provisioningState") == Some("Failed") && reason.is_none() {
                            reason = Some(self.failure_reason(&want.name).await);
                        }
                        view.instance(cluster, vm, reason.as_deref())
                    }
                    None => want.with_status(ResourceStatus::Failed {
                        reason: "the VM disappeared while it was being created".into(),
                    }),
                };
                out.push(Observed::by_status(r));
            }
            Ok(out)
        };
        let wording = WaitWording {
            settled: "virtual machines provisioned or failed",
            things: "virtual machines",
            until: "to be provisioned",
            hint: format!("check them with `az vm show -g {} -n NAME`", self.scope.resource_group),
        };
        wait_instances_reported(self.client.poll(), instances, timeout, list, progress, wording).await
    }
}

/// One node's creation, boxed so a group's run side by side.
pub(crate) type NodeCreate<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<CloudResource>> + Send + 'a>>;

/// The VMs of the group with what their resources need.
pub(crate) struct ComputeView {
    pub(crate) vms: Vec<Value>,
    pub(crate) nics: Vec<Value>,
    pub(crate) pips: Vec<Value>,
}

impl ComputeView {
    pub(crate) fn vm(&self, name: &str) -> Option<&Value> {
        self.vms
            .iter()
            .find(|v| str_at(v, "/name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The VM as a resource; `failed` is the reason known from its operation.
    pub(crate) fn instance(&self, cluster: &ClusterRef, vm: &Value, failed: Option<&str>) -> CloudResource {
        let name = str_at(vm, "/name").unwrap_or_default();
        let id = str_at(vm, "/id").unwrap_or_default();
        let state = str_at(vm, "/properties/provisioningState").unwrap_or("Creating");
        let mut r = CloudResource::new(ResourceKind::Instance, id, name).with_status(status_of(state, failed));
        if let Some((role, i)) = ResourceKey::server_from_name(&cluster.name, name) {
            r = r.with_key(ResourceKey::server(role, i));
        }
        if let Some(size) = str_at(vm, "/properties/hardwareProfile/vmSize") {
            r = r.with_attr(attr::FLAVOR, size);
        }
        if let Some(role) = tag(vm, ROLE_TAG) {
            r = r.with_attr(attr::ROLE, role);
        }
        if let Some(vm_id) = str_at(vm, "/properties/vmId") {
            r = r.with_attr(attr::INSTANCE_ID, vm_id);
        }
        let nic_id = vm
            .pointer("/properties/networkProfile/networkInterfaces")
            .and_then(Value::as_array)
            .and_then(|n| n.first())
            .and_then(|n| str_at(n, "/id"))
            .unwrap_or_default();
        if let Some(nic) = self
            .nics
            .iter()
            .find(|n| str_at(n, "/id").is_some_and(|i| same_id(i, nic_id)))
        {
            let ipc = nic.pointer("/properties/ipConfigurations/0/properties");
            if let Some(ip) = ipc.and_then(|p| str_at(p, "/privateIPAddress")) {
                r = r.with_attr(attr::PRIVATE_IP, ip);
            }
            let pip_id = ipc.and_then(|p| str_at(p, "/publicIPAddress/id")).unwrap_or_default();
            if let Some(addr) = self
                .pips
                .iter()
                .find(|p| str_at(p, "/id").is_some_and(|i| same_id(i, pip_id)))
                .and_then(|p| str_at(p, "/properties/ipAddress"))
            {
                r = r.with_attr(attr::PUBLIC_IP, addr);
            }
        }
        r
    }
}
