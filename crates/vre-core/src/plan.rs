//! Desired resources from the spec, diffed against what the cloud reports by
//! tag (the truth) and the state file (for reasons): create / keep / replace
//! / delete, each with why.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::events::PlanSummary;
use crate::resource::{CloudResource, KeyParts, ResourceKey, ResourceKind, ResourceStatus, attr};
use crate::spec::{ClusterSpec, Role};
use crate::state::State;

/// What a plan does with one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It does not exist: create it.
    Create,
    /// It exists as wanted: leave it.
    Keep,
    /// It exists but not as wanted: delete and create again.
    Replace,
    /// It exists but is not wanted: delete it.
    Delete,
}

impl Action {
    fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+ create ",
            Action::Keep => "= keep   ",
            Action::Replace => "~ replace",
            Action::Delete => "- delete ",
        }
    }
}

/// A resource the spec asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The resource's logical key.
    pub key: ResourceKey,
    /// Its kind.
    pub kind: ResourceKind,
    /// Its name in the cloud.
    pub name: String,
    /// Flavor (servers) the resource must have.
    pub flavor: Option<String>,
    /// Size (volumes).
    pub size_gb: Option<u32>,
}

/// Names of cluster-wide resources.
pub fn network_name(cluster: &str) -> String {
    format!("{cluster}-net")
}
/// Name of the cluster's security group.
pub fn security_group_name(cluster: &str) -> String {
    format!("{cluster}-sg")
}
/// Name of the cluster's key pair.
pub fn key_pair_name(cluster: &str) -> String {
    format!("{cluster}-key")
}
/// The data volume of a node.
pub fn volume_name(node: &str) -> String {
    format!("{node}-data")
}
/// The public IP of a node.
pub fn public_ip_name(node: &str) -> String {
    format!("{node}-ip")
}

/// Everything the spec asks for, in a stable order.
pub fn desired(spec: &ClusterSpec) -> Vec<Desired> {
    let c = &spec.name;
    let mut out = vec![
        Desired {
            key: ResourceKey::image(),
            kind: ResourceKind::Image,
            name: spec.image.name.clone(),
            flavor: None,
            size_gb: None,
        },
        Desired {
            key: ResourceKey::network(),
            kind: ResourceKind::Network,
            name: network_name(c),
            flavor: None,
            size_gb: None,
        },
        Desired {
            key: ResourceKey::security_group(),
            kind: ResourceKind::SecurityGroup,
            name: security_group_name(c),
            flavor: None,
            size_gb: None,
        },
        Desired {
            key: ResourceKey::key_pair(),
            kind: ResourceKind::KeyPair,
            name: key_pair_name(c),
            flavor: None,
            size_gb: None,
        },
    ];
    for g in &spec.nodes {
        for i in 1..=g.count {
            let node = spec.node_name(g.role, i);
            if g.public_ip {
                out.push(Desired {
                    key: ResourceKey::public_ip(g.role, i),
                    kind: ResourceKind::PublicIp,
                    name: public_ip_name(&node),
                    flavor: None,
                    size_gb: None,
                });
            }
            out.push(Desired {
                key: ResourceKey::server(g.role, i),
                kind: ResourceKind::Instance,
                name: node.clone(),
                flavor: Some(g.flavor.clone()),
                size_gb: None,
            });
            if let Some(size) = g.volume_gb {
                out.push(Desired {
                    key: ResourceKey::volume(g.role, i),
                    kind: ResourceKind::Volume,
                    name: volume_name(&node),
                    flavor: None,
                    size_gb: Some(size),
                });
                out.push(Desired {
                    key: ResourceKey::attachment(g.role, i),
                    kind: ResourceKind::VolumeAttachment,
                    name: format!("{node}-data-attachment"),
                    flavor: None,
                    size_gb: None,
                });
            }
        }
    }
    out
}

/// One line of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    /// The resource's logical key.
    pub key: ResourceKey,
    /// Its kind.
    pub kind: ResourceKind,
    /// Its name in the cloud.
    pub name: String,
    /// What the plan does with it.
    pub action: Action,
    /// Why, for people.
    pub reason: String,
    /// The live resource, for keep / replace / delete.
    pub current: Option<CloudResource>,
}

/// What apply will do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The cluster name.
    pub cluster: String,
    /// The provider name.
    pub provider: String,
    /// One item per resource, in creation order.
    pub items: Vec<PlanItem>,
    /// Cluster-level steps that always converge (nodes, CNI, microservices, DNS).
    pub converge: Vec<String>,
}

impl Plan {
    /// Diffs `spec` against the live `inventory` (and `state`, for reasons).
    pub fn compute(spec: &ClusterSpec, state: Option<&State>, inventory: &[CloudResource]) -> Plan {
        let wanted = desired(spec);
        // live resources by key (primary kind only); sub-resources have no key
        let mut live: HashMap<&ResourceKey, Vec<&CloudResource>> = HashMap::new();
        for r in inventory {
            if let Some(k) = &r.key
                && r.kind == k.primary_kind()
            {
                live.entry(k).or_default().push(r);
            }
        }
        let mut items = Vec::with_capacity(wanted.len());
        let mut replaced_nodes: Vec<(Role, u32)> = Vec::new();
        for d in &wanted {
            let mut copies: Vec<&CloudResource> = live.remove(&d.key).unwrap_or_default();
            copies.retain(|r| r.status != ResourceStatus::Deleting);
            copies.sort_by_key(|r| status_rank(&r.status));
            let mut copies = copies.into_iter();
            let (action, reason, current) = match copies.next() {
                None => {
                    let reason = if d.kind == ResourceKind::Image {
                        "found by name, imported from image.source when missing".to_string()
                    } else if state.is_some_and(|s| s.resources.contains_key(&d.key)) {
                        "recorded in the state file but gone from the cloud (deleted outside vre?)".to_string()
                    } else {
                        match &d.flavor {
                            Some(f) => format!("new ({f})"),
                            None => match d.size_gb {
                                Some(s) => format!("new ({s} GB)"),
                                None => "new".to_string(),
                            },
                        }
                    };
                    let action = if d.kind == ResourceKind::Image {
                        Action::Keep
                    } else {
                        Action::Create
                    };
                    (action, reason, None)
                }
                Some(cur) => {
                    let (action, reason) = judge(d, cur);
                    if action == Action::Replace
                        && let Some(n) = d.key.node()
                    {
                        replaced_nodes.push(n);
                    }
                    (action, reason, Some(cur.clone()))
                }
            };
            items.push(PlanItem {
                key: d.key.clone(),
                kind: d.kind.clone(),
                name: d.name.clone(),
                action,
                reason,
                current,
            });
            for dup in copies {
                items.push(PlanItem {
                    key: d.key.clone(),
                    kind: dup.kind.clone(),
                    name: dup.name.clone(),
                    action: Action::Delete,
                    reason: "duplicate (an interrupted create made it twice)".to_string(),
                    current: Some(dup.clone()),
                });
            }
        }
        // an attachment of a replaced server goes with it
        for it in &mut items {
            if let KeyParts::Attachment(r, i) = it.key.parts()
                && replaced_nodes.contains(&(r, i))
                && it.action == Action::Keep
            {
                it.action = Action::Create;
                it.reason = "its server is replaced".to_string();
                it.current = None;
            }
        }
        // live keyed resources nobody wants any more
        let mut leftovers: Vec<(&ResourceKey, Vec<&CloudResource>)> = live.into_iter().collect();
        leftovers.sort_by(|a, b| a.0.cmp(b.0));
        for (key, copies) in leftovers {
            if key.parts() == KeyParts::Image {
                continue;
            }
            for r in copies {
                if r.status == ResourceStatus::Deleting {
                    continue;
                }
                let reason = match key.node() {
                    Some((role, i)) => format!(
                        "node {role}-{i} is no longer in the spec (nodes.{role}.count = {})",
                        spec.count(role)
                    ),
                    None => "no longer in the spec".to_string(),
                };
                items.push(PlanItem {
                    key: key.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    action: Action::Delete,
                    reason,
                    current: Some(r.clone()),
                });
            }
        }
        Plan {
            cluster: spec.name.clone(),
            provider: spec.provider.clone(),
            items,
            converge: Vec::new(),
        }
    }

    /// Counts of each action.
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for it in &self.items {
            match it.action {
                Action::Create => s.create += 1,
                Action::Keep => s.keep += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }

    /// The item for `key`, if the plan has one.
    pub fn item(&self, key: &ResourceKey) -> Option<&PlanItem> {
        self.items.iter().find(|i| &i.key == key && i.action != Action::Delete)
    }

    /// Does applying change anything in the cloud?
    pub fn has_changes(&self) -> bool {
        self.items.iter().any(|i| i.action != Action::Keep)
    }
}

fn status_rank(s: &ResourceStatus) -> u8 {
    match s {
        ResourceStatus::Ready => 0,
        ResourceStatus::Pending => 1,
        ResourceStatus::Failed { .. } => 2,
        ResourceStatus::Deleting => 3,
    }
}

fn judge(d: &Desired, cur: &CloudResource) -> (Action, String) {
    if let ResourceStatus::Failed { reason } = &cur.status {
        return (Action::Replace, format!("the cloud reports it failed: {reason}"));
    }
    if d.kind == ResourceKind::Instance
        && let (Some(want), Some(have)) = (&d.flavor, cur.attr(attr::FLAVOR))
        && want != have
    {
        if matches!(d.key.parts(), KeyParts::Server(Role::Master, _)) {
            return (
                Action::Keep,
                format!(
                    "flavor is {have}, spec says {want}: vre never replaces the master (it holds the cluster); change it back or rebuild the VRE"
                ),
            );
        }
        return (Action::Replace, format!("flavor {have} -> {want}"));
    }
    if d.kind == ResourceKind::Volume
        && let (Some(want), Some(have)) = (d.size_gb, cur.attr(attr::SIZE_GB).and_then(|s| s.parse::<u32>().ok()))
        && want != have
    {
        return (
            Action::Keep,
            format!(
                "size is {have} GB, spec says {want} GB: volumes holding data are never replaced; resize it in the cloud"
            ),
        );
    }
    let reason = match cur.status {
        ResourceStatus::Pending => "exists, still being created".to_string(),
        _ => "exists".to_string(),
    };
    (Action::Keep, reason)
}

impl fmt::Display for Plan {
    /// A readable plan; runs of node resources with the same action, role and
    /// reason are folded (`server/service-[1..620]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Plan for cluster \"{}\" on {}:", self.cluster, self.provider)?;
        // (action, key prefix, name prefix, name suffix, reason, indices)
        let mut groups: Vec<(Action, String, String, String, String, Vec<u32>)> = Vec::new();
        for it in &self.items {
            let node = it.key.node();
            let key_prefix = match node {
                Some((role, _)) => format!("{}/{role}", it.key.as_str().split('/').next().unwrap_or("")),
                None => it.key.as_str().to_string(),
            };
            // `<cluster>-<role>-<i><suffix>` folds; anything else stands alone
            let folded = node.and_then(|(role, i)| {
                let prefix = format!("{}-{role}", self.cluster);
                let suffix = it.name.strip_prefix(&format!("{prefix}-{i}"))?;
                (suffix.is_empty() || suffix.starts_with('-')).then(|| (prefix, suffix.to_string(), i))
            });
            match (folded, groups.last_mut()) {
                (Some((prefix, suffix, i)), Some(last))
                    if last.0 == it.action
                        && last.1 == key_prefix
                        && last.2 == prefix
                        && last.3 == suffix
                        && last.4 == it.reason
                        && !last.5.is_empty() =>
                {
                    last.5.push(i);
                }
                (Some((prefix, suffix, i)), _) => {
                    groups.push((it.action, key_prefix, prefix, suffix, it.reason.clone(), vec![i]))
                }
                (None, _) => groups.push((
                    it.action,
                    key_prefix,
                    it.name.clone(),
                    String::new(),
                    it.reason.clone(),
                    vec![],
                )),
            }
        }
        let tail = |name: &str, idx: &[u32]| -> String {
            match idx {
                [] => name.to_string(),
                [one] => format!("{name}-{one}"),
                [first, .., last] if (*last - *first) as usize + 1 == idx.len() => format!("{name}-[{first}..{last}]"),
                _ => format!(
                    "{name}-[{}]",
                    idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
                ),
            }
        };
        let mut width = 0;
        let rows: Vec<(Action, String, String, String)> = groups
            .into_iter()
            .map(|(a, key, name, suffix, reason, idx)| {
                let k = tail(&key, &idx);
                let n = if idx.is_empty() {
                    name
                } else {
                    format!("{}{suffix}", tail(&name, &idx))
                };
                width = width.max(k.len());
                (a, k, n, reason)
            })
            .collect();
        let name_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        for (a, k, n, reason) in rows {
            writeln!(f, "  {} {k:<width$}  {n:<name_width$}  {reason}", a.symbol())?;
        }
        if !self.converge.is_empty() {
            writeln!(f, "Then converge: {}.", self.converge.join(", "))?;
        }
        let s = self.summary();
        write!(
            f,
            "Summary: {} to create, {} to keep, {} to replace, {} to delete.",
            s.create, s.keep, s.replace, s.delete
        )
    }
}

/// Resources by key, as a map (for lookups while applying).
pub fn by_key(resources: &[CloudResource]) -> BTreeMap<ResourceKey, CloudResource> {
    resources
        .iter()
        .filter_map(|r| r.key.clone().map(|k| (k, r.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        let mut s = ClusterSpec::new("lab", "test");
        s.group_mut(Role::Service).count = 2;
        let st = s.group_mut(Role::Storage);
        st.count = 1;
        st.volume_gb = Some(10);
        s
    }

    /// The live server `lab-<role>-<index>` of the lab cluster.
    fn server(role: Role, index: u32) -> CloudResource {
        live(
            ResourceKind::Instance,
            ResourceKey::server(role, index),
            &format!("lab-{role}-{index}"),
        )
    }

    fn live(kind: ResourceKind, key: ResourceKey, name: &str) -> CloudResource {
        CloudResource::new(kind, format!("id-{name}"), name).with_key(key)
    }

    #[test]
    fn empty_cloud_creates_everything() {
        let p = Plan::compute(&spec(), None, &[]);
        let s = p.summary();
        // network, sg, key pair, master ip, 4 servers, volume, attachment
        assert_eq!(s.create, 10, "{p}");
        assert_eq!(s.keep, 1); // the image is found or imported
        assert_eq!(s.delete + s.replace, 0);
        assert!(
            p.item(&ResourceKey::server(Role::Service, 2))
                .unwrap()
                .reason
                .contains("m1.medium")
        );
    }

    #[test]
    fn keeps_existing_replaces_failed_deletes_surplus() {
        let s = spec();
        let inv = vec![
            live(ResourceKind::Network, ResourceKey::network(), "lab-net"),
            live(ResourceKind::Subnet, ResourceKey::network(), "lab-subnet"),
            server(Role::Master, 1).with_attr(attr::FLAVOR, "m1.medium"),
            server(Role::Service, 1).with_status(ResourceStatus::Failed {
                reason: "No valid host was found".into(),
            }),
            server(Role::Service, 3),
        ];
        let p = Plan::compute(&s, None, &inv);
        let action = |k: &ResourceKey| p.item(k).map(|i| i.action);
        assert_eq!(action(&ResourceKey::network()), Some(Action::Keep));
        assert_eq!(action(&ResourceKey::server(Role::Master, 1)), Some(Action::Keep));
        assert_eq!(action(&ResourceKey::server(Role::Service, 1)), Some(Action::Replace));
        assert!(
            p.item(&ResourceKey::server(Role::Service, 1))
                .unwrap()
                .reason
                .contains("No valid host")
        );
        assert_eq!(action(&ResourceKey::server(Role::Service, 2)), Some(Action::Create));
        let del: Vec<_> = p.items.iter().filter(|i| i.action == Action::Delete).collect();
        assert_eq!(del.len(), 1);
        assert_eq!(del[0].name, "lab-service-3");
        assert!(del[0].reason.contains("nodes.service.count = 2"), "{}", del[0].reason);
    }

    #[test]
    fn flavor_change_replaces_workers_but_never_the_master() {
        let mut s = spec();
        s.group_mut(Role::Master).flavor = "big".into();
        s.group_mut(Role::Service).flavor = "big".into();
        let inv = vec![
            server(Role::Master, 1).with_attr(attr::FLAVOR, "small"),
            server(Role::Service, 1).with_attr(attr::FLAVOR, "small"),
        ];
        let p = Plan::compute(&s, None, &inv);
        assert_eq!(
            p.item(&ResourceKey::server(Role::Master, 1)).unwrap().action,
            Action::Keep
        );
        assert_eq!(
            p.item(&ResourceKey::server(Role::Service, 1)).unwrap().action,
            Action::Replace
        );
    }

    #[test]
    fn duplicates_are_deleted_keeping_the_healthy_copy() {
        let s = spec();
        let a = server(Role::Service, 1).with_status(ResourceStatus::Pending);
        let mut b = server(Role::Service, 1);
        b.id = "second".into();
        let p = Plan::compute(&s, None, &[a, b]);
        let keep = p.item(&ResourceKey::server(Role::Service, 1)).unwrap();
        assert_eq!(keep.current.as_ref().unwrap().id, "second");
        let dups: Vec<_> = p.items.iter().filter(|i| i.reason.starts_with("duplicate")).collect();
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].current.as_ref().unwrap().id, "id-lab-service-1");
    }

    #[test]
    fn state_only_resources_are_recreated_with_a_reason() {
        let s = spec();
        let mut st = State::new("lab", "test");
        st.resources.insert(
            ResourceKey::security_group(),
            live(ResourceKind::SecurityGroup, ResourceKey::security_group(), "lab-sg"),
        );
        let p = Plan::compute(&s, Some(&st), &[]);
        let it = p.item(&ResourceKey::security_group()).unwrap();
        assert_eq!(it.action, Action::Create);
        assert!(it.reason.contains("gone from the cloud"));
    }

    #[test]
    fn display_folds_runs_of_nodes() {
        let mut s = spec();
        s.group_mut(Role::Service).count = 5;
        let text = Plan::compute(&s, None, &[]).to_string();
        assert!(text.contains("server/service-[1..5]"), "{text}");
        assert!(text.contains("lab-service-[1..5]"), "{text}");
        assert!(text.contains("volume/storage-1       lab-storage-1-data"), "{text}");
        assert!(
            text.ends_with("Summary: 13 to create, 1 to keep, 0 to replace, 0 to delete."),
            "{text}"
        );
    }
}
