//! What every Neutron resource family shares: find-by-name-or-create with
//! the cluster's tags, listing by tag, deleting with retries while Nova still
//! holds ports, and reading list and single answers.

use serde_json::Value;
use vre_core::ClusterRef;

use crate::error::OpenStackError;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{Port, cluster_tag};

/// A Neutron resource found by name or created.
pub(crate) struct Named<'a> {
    /// Path segment (`networks`, `security-groups`).
    pub(crate) resource: &'a str,
    /// Key of the body (`network`, `security_group`).
    pub(crate) singular: &'a str,
    /// Key of a list answer (`networks`, `security_groups`).
    pub(crate) plural: String,
    pub(crate) name: &'a str,
    pub(crate) extra_query: Vec<(&'a str, String)>,
    pub(crate) body: Value,
    pub(crate) tags: Vec<String>,
}

impl OpenStackProvider {
    /// Finds the Neutron resource called `named.name` (tagging it when it
    /// lacks the cluster's tags), or creates and tags it.
    pub(crate) async fn ensure_named<T: serde::de::DeserializeOwned + Clone>(
        &self,
        named: Named<'_>,
        tags_of: impl Fn(&T) -> &Vec<String>,
        id_of: impl Fn(&T) -> &str,
    ) -> OsResult<T> {
        let Named {
            resource,
            singular,
            name,
            extra_query,
            body,
            tags,
            ..
        } = &named;
        let (resource, singular, tags) = (*resource, *singular, tags.clone());
        let api = self.api().await?;
        let op = format!("find {singular}");
        let v: Value = api.json(requests::find_named(resource, name, extra_query, &op)).await?;
        let found: Vec<T> = parse_list(&v, &named.plural, &op)?;
        if let Some(x) = found.into_iter().next() {
            if !tags.iter().all(|t| tags_of(&x).contains(t)) {
                let mut all = tags_of(&x).clone();
                all.extend(tags.iter().filter(|t| !tags_of(&x).contains(t)).cloned());
                self.set_tags(resource, id_of(&x), all).await?;
            }
            return Ok(x);
        }
        let op = format!("create {singular}");
        let v: Value = api.json(requests::create(resource, body.clone(), &op)).await?;
        let made: T = parse_one(&v, singular, &op)?;
        self.set_tags(resource, id_of(&made), tags).await?;
        Ok(made)
    }

    /// The cluster's `resource` (tagged `vre:cluster=<name>`), read from the answer's `plural` list.
    pub(crate) async fn list_tagged<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        plural: &str,
        cluster: &ClusterRef,
    ) -> OsResult<Vec<T>> {
        let op = format!("list {plural}");
        let v: Value = self
            .api()
            .await?
            .json(requests::list_tagged(resource, &cluster.name, &op))
            .await?;
        parse_list(&v, plural, &op)
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
