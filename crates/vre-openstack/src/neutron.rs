//! What every Neutron resource family shares: find-by-name-or-create with
//! the cluster's tags, listing by tag, deleting with retries while Nova still
//! holds ports, and reading list and single answers.

use serde_json::Value;
use vre_core::ClusterRef;

use crate::error::OpenStackError;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{FloatingIp, Network, Port, Router, SecurityGroup, Subnet, cluster_tag};

/// A Neutron resource type vre finds by name or tag, creates and tags.
pub(crate) trait NeutronResource: serde::de::DeserializeOwned + Clone {
    /// Path segment (`networks`, `security-groups`).
    const PATH: &'static str;
    /// Key of a list answer (`networks`, `security_groups`).
    const LIST_KEY: &'static str;
    /// Key of a body (`network`, `security_group`).
    const SINGULAR: &'static str;
    /// Its id.
    fn id(&self) -> &str;
    /// Its tags.
    fn tags(&self) -> &[String];
}

macro_rules! neutron_resource {
    ($t:ty, $path:literal, $list:literal, $singular:literal) => {
        impl NeutronResource for $t {
            const PATH: &'static str = $path;
            const LIST_KEY: &'static str = $list;
            const SINGULAR: &'static str = $singular;
            fn id(&self) -> &str {
                &self.id
            }
            fn tags(&self) -> &[String] {
                &self.tags
            }
        }
    };
}

neutron_resource!(Network, "networks", "networks", "network");
neutron_resource!(Subnet, "subnets", "subnets", "subnet");
neutron_resource!(Router, "routers", "routers", "router");
neutron_resource!(SecurityGroup, "security-groups", "security_groups", "security_group");
neutron_resource!(FloatingIp, "floatingips", "floatingips", "floatingip");

impl OpenStackProvider {
    /// Finds the `T` called `name` (with `extra_query`), adding the tags it
    /// lacks of `tags`, or creates it with `body` and tags it.
    pub(crate) async fn ensure_named<T: NeutronResource>(
        &self,
        name: &str,
        extra_query: &[(&str, String)],
        body: Value,
        tags: Vec<String>,
    ) -> OsResult<T> {
        let api = self.api().await?;
        let op = format!("find {}", T::SINGULAR);
        let v: Value = api.json(requests::find_named(T::PATH, name, extra_query, &op)).await?;
        let found: Vec<T> = parse_list(&v, T::LIST_KEY, &op)?;
        if let Some(x) = found.into_iter().next() {
            if !tags.iter().all(|t| x.tags().contains(t)) {
                let mut all = x.tags().to_vec();
                all.extend(tags.iter().filter(|t| !x.tags().contains(t)).cloned());
                self.set_tags(T::PATH, x.id(), all).await?;
            }
            return Ok(x);
        }
        let op = format!("create {}", T::SINGULAR);
        let v: Value = api.json(requests::create(T::PATH, body, &op)).await?;
        let made: T = parse_one(&v, T::SINGULAR, &op)?;
        self.set_tags(T::PATH, made.id(), tags).await?;
        Ok(made)
    }

    /// The cluster's `T`s (tagged `vre:cluster=<name>`).
    pub(crate) async fn list_tagged<T: NeutronResource>(&self, cluster: &ClusterRef) -> OsResult<Vec<T>> {
        let op = format!("list {}", T::LIST_KEY);
        let v: Value = self
            .api()
            .await?
            .json(requests::list_tagged(T::PATH, &cluster.name, &op))
            .await?;
        parse_list(&v, T::LIST_KEY, &op)
    }

    /// Replaces the tags of `resource` `id`.
    pub(crate) async fn set_tags(&self, resource: &str, id: &str, tags: Vec<String>) -> OsResult<()> {
        self.api().await?.send(requests::set_tags(resource, id, &tags)).await
    }

    /// The ports matching `query` (`device_id`, `network_id`).
    pub(crate) async fn ports(&self, query: &[(&str, String)]) -> OsResult<Vec<Port>> {
        let v: Value = self.api().await?.json(requests::list_ports(query)).await?;
        parse_list(&v, "ports", "list ports")
    }

    /// Deletes `resource` `id`, retrying while it is in use; one already gone is success.
    pub(crate) async fn neutron_delete(&self, resource: &str, id: &str, what: &str) -> OsResult<()> {
        let op = format!("delete {what}");
        // "in use" conflicts clear once Nova has released the ports
        let mut delay = self.poll.first;
        for attempt in 0..8 {
            match self.api().await?.send(requests::delete(resource, id, &op)).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_conflict() && attempt < 7 => {
                    tracing::debug!(resource, id, "delete conflicts ({e}); retrying");
                    tokio::time::sleep(delay).await;
                    delay = self.poll.next(delay);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Does `resource` `id` carry the cluster's tag? `false` when it is gone.
    pub(crate) async fn has_cluster_tag(
        &self,
        resource: &str,
        singular: &str,
        id: &str,
        cluster: &ClusterRef,
    ) -> OsResult<bool> {
        let op = format!("show {singular}");
        match self.api().await?.json::<Value>(requests::show(resource, id, &op)).await {
            Ok(v) => {
                let tags: Vec<String> = v
                    .get(singular)
                    .and_then(|x| x.get("tags"))
                    .and_then(|t| serde_json::from_value(t.clone()).ok())
                    .unwrap_or_default();
                Ok(tags.contains(&cluster_tag(&cluster.name)))
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The list under `key` of a Neutron answer.
pub(crate) fn parse_list<T: serde::de::DeserializeOwned>(v: &Value, key: &str, op: &str) -> OsResult<Vec<T>> {
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Array(Vec::new())))
        .map_err(|e| OpenStackError::decode("neutron", op, e.to_string()))
}

/// The object under `key` of a Neutron answer.
pub(crate) fn parse_one<T: serde::de::DeserializeOwned>(v: &Value, key: &str, op: &str) -> OsResult<T> {
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Null))
        .map_err(|e| OpenStackError::decode("neutron", op, e.to_string()))
}
