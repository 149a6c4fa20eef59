//! Nova servers: one multiple-create per role group (renamed to the nodes'
//! names when Nova's do not fit), the shared listing every wait polls, and
//! how a server looks to the engine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vre_core::{
    CLUSTER_TAG, CloudResource, ClusterRef, InstanceBatch, ROLE_TAG, ResourceKey, ResourceKind, ResourceStatus,
    SpecField, StepProgress, attr,
};

use crate::error::{OpenStackError, ok_if_gone};
use crate::paging::list_all;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{CreateServerAnswer, Server, ServerCreate, ServerList};

impl OpenStackProvider {
    /// The cluster's servers, from a listing at most `max_age` old (one
    /// `GET /servers/detail` serves every concurrent wait).
    pub(crate) async fn cluster_servers(&self, cluster: &ClusterRef, max_age: Duration) -> OsResult<Vec<Server>> {
        let mut cache = self.servers.lock().await;
        if let Some((at, list)) = cache.get(&cluster.name)
            && at.elapsed() < max_age
        {
            return Ok(list.clone());
        }
        let list = self.list_servers(cluster, None).await?;
        cache.insert(cluster.name.clone(), (Instant::now(), list.clone()));
        Ok(list)
    }

    /// `GET /servers/detail?name=^<cluster>-` (all pages), the cluster's only.
    pub(crate) async fn list_servers(&self, cluster: &ClusterRef, reservation: Option<&str>) -> OsResult<Vec<Server>> {
        let mut servers = list_all::<ServerList>(self.api().await?, |marker| {
            requests::list_servers(&cluster.name, reservation, marker)
        })
        .await?;
        servers.retain(|s| s.metadata.get(CLUSTER_TAG).map(String::as_str) == Some(cluster.name.as_str()));
        Ok(servers)
    }

    pub(crate) async fn server_resource(&self, cluster: &ClusterRef, s: &Server) -> OsResult<CloudResource> {
        let key = ResourceKey::server_from_name(&cluster.name, &s.name).map(|(r, i)| ResourceKey::server(r, i));
        let net = self.network_name(cluster);
        let ip = s.private_ip(Some(&net)).or_else(|| s.private_ip(None));
        let status = match s.status.as_str() {
            "ACTIVE" | "SHUTOFF" | "PAUSED" | "SUSPENDED" if ip.is_some() => ResourceStatus::Ready,
            "ERROR" => ResourceStatus::Failed {
                reason: s
                    .fault
                    .as_ref()
                    .map(|f| crate::error::one_line(&f.message))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "Nova put the server in ERROR without a fault message".into()),
            },
            "DELETED" | "SOFT_DELETED" => ResourceStatus::Deleting,
            _ => ResourceStatus::Pending,
        };
        let mut r = CloudResource::new(ResourceKind::Instance, &s.id, &s.name).with_status(status);
        if let Some(k) = key {
            r = r.with_key(k);
        }
        if let Some(ip) = ip {
            r = r.with_attr(attr::PRIVATE_IP, ip.to_string());
        }
        if let Some(role) = s.metadata.get(ROLE_TAG) {
            r = r.with_attr(attr::ROLE, role.clone());
        }
        if let Some(f) = &s.flavor {
            let name = match (&f.original_name, &f.id) {
                (Some(n), _) => Some(n.clone()),
                (None, Some(id)) => self.flavors().await?.into_iter().find(|x| &x.id == id).map(|x| x.name),
                _ => None,
            };
            if let Some(n) = name {
                r = r.with_attr(attr::FLAVOR, n);
            }
        }
        if let ResourceStatus::Failed { reason } = &r.status {
            let reason = reason.clone();
            r = r.with_attr(attr::FAULT, reason);
        }
        Ok(r)
    }

    pub(crate) async fn rename(&self, id: &str, name: &str) -> OsResult<()> {
        self.api().await?.send(requests::rename_server(id, name)).await
    }

    pub(crate) async fn create_servers(&self, create: &ServerCreate<'_>) -> OsResult<Option<String>> {
        let ans: CreateServerAnswer = self.api().await?.json(requests::create_servers(create)).await?;
        Ok(match ans {
            CreateServerAnswer::Reservation { reservation_id } => Some(reservation_id),
            CreateServerAnswer::Server { .. } => None,
        })
    }

    pub(crate) async fn wait_server_gone(&self, cluster: &ClusterRef, id: &str) -> OsResult<()> {
        let started = Instant::now();
        let limit = Duration::from_secs(900);
        let mut delay = self.poll.first;
        loop {
            tokio::time::sleep(delay).await;
            let list = self.cluster_servers(cluster, self.poll.first).await?;
            match list.iter().find(|s| s.id == id) {
                None => return Ok(()),
                Some(s) if s.status == "DELETED" => return Ok(()),
                Some(s) if s.status == "ERROR" && started.elapsed() > Duration::from_secs(60) => {
                    // a delete that failed leaves the server in ERROR: ask again
                    ok_if_gone(self.api().await?.send(requests::delete_server(id)).await)?;
                }
                Some(_) => {}
            }
            if started.elapsed() > limit {
                return Err(OpenStackError::Timeout {
                    what: format!("server {id} to be deleted"),
                    after: limit,
                });
            }
            delay = self.poll.next(delay);
        }
    }

    pub(crate) async fn instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> OsResult<Vec<CloudResource>> {
        let role = batch.role;
        let base = format!("{}-{role}", cluster.name);
        let temp = format!("{base}-b{}", short_hash(&batch.token));
        let mut servers = self.list_servers(cluster, None).await?;
        // servers of an interrupted renamed batch get their final names first
        let wanted: BTreeMap<u32, &str> = batch.instances.iter().map(|i| (i.index, i.name.as_str())).collect();
        let mut missing: Vec<u32> = wanted
            .iter()
            .filter(|(_, name)| !servers.iter().any(|s| s.name == **name))
            .map(|(i, _)| *i)
            .collect();
        let mut leftovers: Vec<&Server> = servers
            .iter()
            .filter(|s| suffix_index(&temp, &s.name).is_some())
            .collect();
        leftovers.sort_by_key(|s| suffix_index(&temp, &s.name));
        let mut renamed = false;
        for (s, i) in leftovers.into_iter().zip(missing.clone()) {
            self.rename(&s.id, wanted[&i]).await?;
            missing.retain(|m| *m != i);
            renamed = true;
        }
        if let Some(plan) = CreatePlan::for_missing(&missing) {
            let flavor = self.flavor(role, &batch.flavor).await?;
            let boot_volume_gb = if self.settings.boot_from_volume {
                let size = batch.root_disk_gb.map(u64::from).unwrap_or(flavor.disk);
                if size == 0 {
                    return Err(OpenStackError::Rejected {
                        field: SpecField::RootDisk(role),
                        message: "openstack.boot_from_volume needs a root disk size; set it".into(),
                    });
                }
                Some(size as u32)
            } else {
                None
            };
            let fixed_ip = |i: u32| batch.instances.iter().find(|r| r.index == i).and_then(|r| r.fixed_ip);
            let (name, count, ip) = match &plan {
                CreatePlan::Single { index } => (wanted[index].to_string(), 1, fixed_ip(*index)),
                CreatePlan::Contiguous { count } => (base.clone(), *count, None),
                CreatePlan::Renamed { indices } => (temp.clone(), indices.len() as u32, None),
            };
            let create = ServerCreate {
                name: &name,
                flavor_id: &flavor.id,
                image_id: &batch.image.id,
                network_id: &batch.network.network.id,
                fixed_ip: ip,
                security_group: &batch.security_group.id,
                key_name: &batch.key_pair.name,
                user_data: &batch.user_data,
                cluster: &cluster.name,
                role: role.as_str(),
                count,
                availability_zone: self.settings.availability_zone.as_deref(),
                boot_volume_gb,
                volume_type: self.settings.volume_type.as_deref(),
            };
            batch.progress.message(match count {
                1 => format!("creating {name}"),
                n => format!("creating {n} {role} servers in one request"),
            });
            let reservation = match self.create_servers(&create).await {
                Ok(r) => r,
                Err(OpenStackError::Api {
                    status: 400, message, ..
                }) if message.to_lowercase().contains("flavor") => {
                    return Err(OpenStackError::Rejected {
                        field: SpecField::Flavor(role),
                        message,
                    });
                }
                Err(OpenStackError::Api {
                    status: 403 | 413,
                    message,
                    ..
                }) if message.to_lowercase().contains("quota") => {
                    return Err(OpenStackError::Rejected {
                        field: SpecField::Count(role),
                        message: format!("{message}; lower the count or ask for more quota"),
                    });
                }
                Err(e) => return Err(e),
            };
            if let Some(r) = &reservation {
                // names Nova chose, fixed when its template is not `<name>-<i>`
                let made = self.list_servers(cluster, Some(r)).await?;
                let targets: Vec<u32> = match &plan {
                    CreatePlan::Renamed { indices } => indices.clone(),
                    CreatePlan::Contiguous { count } => (1..=*count).collect(),
                    CreatePlan::Single { index } => vec![*index],
                };
                let mut made: Vec<&Server> = made.iter().collect();
                made.sort_by(|a, b| {
                    suffix_index(&name, &a.name)
                        .cmp(&suffix_index(&name, &b.name))
                        .then(a.name.cmp(&b.name))
                });
                for (s, i) in made.into_iter().zip(targets) {
                    if s.name != wanted[&i] {
                        self.rename(&s.id, wanted[&i]).await?;
                    }
                }
            }
            servers = self.list_servers(cluster, None).await?;
        } else if renamed {
            servers = self.list_servers(cluster, None).await?;
        }
        let mut out = Vec::new();
        for s in servers.iter().filter(|s| wanted.values().any(|n| *n == s.name)) {
            out.push(self.server_resource(cluster, s).await?);
        }
        Ok(out)
    }

    pub(crate) async fn wait(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
        progress: &StepProgress,
    ) -> OsResult<Vec<CloudResource>> {
        let started = Instant::now();
        let mut delay = self.poll.first;
        loop {
            let mut list = self.cluster_servers(cluster, self.poll.first).await?;
            if instances.iter().any(|w| !list.iter().any(|s| s.id == w.id)) {
                // created after the shared listing was taken: list afresh before judging
                list = self.cluster_servers(cluster, Duration::ZERO).await?;
            }
            let mut out = Vec::with_capacity(instances.len());
            let mut pending = 0u64;
            for want in instances {
                let r = match list.iter().find(|s| s.id == want.id) {
                    Some(s) => self.server_resource(cluster, s).await?,
                    None => want.clone().with_status(ResourceStatus::Failed {
                        reason: "the server disappeared while booting (deleted outside vre?)".into(),
                    }),
                };
                if r.status == ResourceStatus::Pending {
                    pending += 1;
                }
                out.push(r);
            }
            let total = instances.len() as u64;
            progress.count("servers ACTIVE or failed", total - pending, total);
            if pending == 0 {
                return Ok(out);
            }
            if started.elapsed() > timeout {
                return Err(OpenStackError::Timeout {
                    what: format!("{pending} of {total} servers to become ACTIVE"),
                    after: timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }
}

/// A short hex hash, for temporary names.
fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

/// How to create the missing indices of a group: one multiple-create with
/// Nova's default names when they are `1..=k`, else under a temporary name
/// whose `-<i>` suffixes are renamed afterwards.
#[derive(Debug, PartialEq, Eq)]
pub enum CreatePlan {
    /// One server with its final name.
    Single { index: u32 },
    /// `name` with `min_count = max_count = count`; Nova names them `name-1..count`.
    Contiguous { count: u32 },
    /// Multiple create under a temporary name, then renamed to `indices`.
    Renamed { indices: Vec<u32> },
}

impl CreatePlan {
    /// The plan for the `missing` indices of a group, `None` when none is.
    pub fn for_missing(missing: &[u32]) -> Option<CreatePlan> {
        match missing {
            [] => None,
            [one] => Some(CreatePlan::Single { index: *one }),
            many if many.iter().enumerate().all(|(i, &x)| x == i as u32 + 1) => Some(CreatePlan::Contiguous {
                count: many.len() as u32,
            }),
            many => Some(CreatePlan::Renamed { indices: many.to_vec() }),
        }
    }
}

/// The `-<n>` suffix Nova gave a server of a multiple create named `base`.
fn suffix_index(base: &str, name: &str) -> Option<u32> {
    name.strip_prefix(base)?.strip_prefix('-')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::OpenStackSettings;
    use crate::wire::{ServerAddress, ServerOne};
    use vre_core::spec::Role;

    #[test]
    fn create_plans() {
        assert_eq!(CreatePlan::for_missing(&[]), None);
        assert_eq!(CreatePlan::for_missing(&[3]), Some(CreatePlan::Single { index: 3 }));
        assert_eq!(
            CreatePlan::for_missing(&[1, 2, 3]),
            Some(CreatePlan::Contiguous { count: 3 })
        );
        assert_eq!(
            CreatePlan::for_missing(&[4, 5]),
            Some(CreatePlan::Renamed { indices: vec![4, 5] })
        );
        assert_eq!(
            CreatePlan::for_missing(&[1, 3]),
            Some(CreatePlan::Renamed { indices: vec![1, 3] })
        );
    }

    #[test]
    fn suffixes_of_multiple_create() {
        assert_eq!(suffix_index("lab-service", "lab-service-12"), Some(12));
        assert_eq!(suffix_index("lab-service", "lab-service-b1a2b3c4-1"), None);
        assert_eq!(suffix_index("lab-service-b1a2b3c4", "lab-service-b1a2b3c4-2"), Some(2));
        // a temporary name is never taken for a node
        assert_eq!(ResourceKey::server_from_name("lab", "lab-service-b1a2b3c4-2"), None);
    }

    #[test]
    fn server_status_maps_to_resources() {
        let p = OpenStackProvider::with_password(
            "http://127.0.0.1:1/v3",
            "u",
            "p",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = ClusterRef::new("lab");
        let s: ServerOne = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/nova-server-error.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let r = rt.block_on(p.server_resource(&c, &s.server)).unwrap();
        assert_eq!(r.key, Some(ResourceKey::server(Role::Service, 2)));
        assert_eq!(
            r.status,
            ResourceStatus::Failed {
                reason: "No valid host was found. There are not enough hosts available.".into()
            }
        );
        assert_eq!(r.attr(attr::FLAVOR), Some("m1.medium"));
        assert_eq!(r.attr(attr::ROLE), Some("service"));
        let mut active = s.server.clone();
        active.status = "ACTIVE".into();
        active.fault = None;
        active.addresses.insert(
            "lab-net".into(),
            vec![ServerAddress {
                addr: "10.0.0.14".into(),
                version: 4,
                kind: Some("fixed".into()),
            }],
        );
        let r = rt.block_on(p.server_resource(&c, &active)).unwrap();
        assert_eq!(r.status, ResourceStatus::Ready);
        assert_eq!(r.attr(attr::PRIVATE_IP), Some("10.0.0.14"));
    }
}
