//! The object store of one simulated cluster (its "etcd"): JSON objects by
//! group/resource, namespace and name, one resourceVersion counter for the
//! whole cluster, and a bounded history of change events that watches and
//! controllers read from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::catalog::GroupResource;

/// Events kept for watches that resume from a resourceVersion; older
/// resourceVersions get 410 Expired (clients relist), as from a real
/// API server's watch cache. Each event holds a version of an object (a
/// Pod is ~10 KB of JSON, several times that in memory): at 1,024 nodes
/// a longer history is most of the simulator's memory.
pub const HISTORY_LIMIT: usize = 4_096;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch reports it.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub resource: GroupResource,
    pub kind: EventType,
    /// The new object (for `Deleted`: its last state, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub previous: Option<Arc<Value>>,
}

/// The outcome of reading history from a resourceVersion.
pub enum Since<'a> {
    Events(Vec<&'a Arc<StoredEvent>>),
    /// The resourceVersion is older than the kept history.
    Expired {
        oldest: u64,
    },
}

type Collection = BTreeMap<ObjectKey, Arc<Value>>;

pub struct Store {
    collections: HashMap<GroupResource, Collection>,
    rv: u64,
    history: VecDeque<Arc<StoredEvent>>,
    /// Every event after this resourceVersion is in `history`.
    horizon: u64,
    changed: watch::Sender<u64>,
}

/// The persisted form of a store.
#[derive(Serialize, Deserialize)]
pub struct StoreSnapshot {
    pub resource_version: u64,
    pub collections: Vec<CollectionSnapshot>,
}

/// Objects are shared with the live store: a snapshot costs one pointer
/// per object, and is serialised outside the store's lock.
#[derive(Serialize, Deserialize)]
pub struct CollectionSnapshot {
    pub group: String,
    pub resource: String,
    pub objects: Vec<Arc<Value>>,
}

impl Store {
    pub fn new(start_rv: u64) -> Self {
        let (changed, _) = watch::channel(start_rv);
        Store {
            collections: HashMap::new(),
            rv: start_rv,
            history: VecDeque::new(),
            horizon: start_rv,
            changed,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Notified with the newest resourceVersion after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        self.collections.get(gr)?.get(&ObjectKey::new(namespace, name))
    }

    /// Objects of a collection, in one namespace or all (`None`), in key order.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        let Some(c) = self.collections.get(gr) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            None => Box::new(c.iter()),
            Some(ns) => {
                let start = ObjectKey::new(ns, "");
                let ns = ns.to_string();
                Box::new(c.range(start..).take_while(move |(k, _)| k.namespace == ns))
            }
        }
    }

    /// Objects after `after` (exclusive), for paginated lists.
    pub fn list_after<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&str>,
        after: &ObjectKey,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        let Some(c) = self.collections.get(gr) else {
            return Box::new(std::iter::empty());
        };
        let ns = namespace.map(str::to_string);
        Box::new(
            c.range((std::ops::Bound::Excluded(after.clone()), std::ops::Bound::Unbounded))
                .take_while(move |(k, _)| ns.as_ref().is_none_or(|ns| &k.namespace == ns)),
        )
    }

    /// Writes an object (create or update): stamps the next resourceVersion
    /// into `metadata.resourceVersion` and records the event.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        set_resource_version(&mut obj, rv);
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let previous = self.collections.entry(gr.clone()).or_default().insert(key, obj.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(StoredEvent {
            rv,
            resource: gr.clone(),
            kind,
            object: obj.clone(),
            previous,
        });
        obj
    }

    /// Removes an object; the DELETED event carries its last state with a
    /// new resourceVersion, as etcd does.
    pub fn remove(&mut self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let previous = self.collections.get_mut(gr)?.remove(&ObjectKey::new(namespace, name))?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*previous).clone();
        set_resource_version(&mut last, rv);
        let last = Arc::new(last);
        self.record(StoredEvent {
            rv,
            resource: gr.clone(),
            kind: EventType::Deleted,
            object: last.clone(),
            previous: Some(previous),
        });
        Some(last)
    }

    fn record(&mut self, event: StoredEvent) {
        self.history.push_back(Arc::new(event));
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.horizon = old.rv;
            }
        }
        self.changed.send_replace(self.rv);
    }

    /// The events after `rv`, or `Expired` when history no longer reaches it.
    pub fn since(&self, rv: u64) -> Since<'_> {
        if rv < self.horizon {
            return Since::Expired { oldest: self.horizon };
        }
        // Events have consecutive resourceVersions starting at horizon + 1.
        let skip = (rv - self.horizon) as usize;
        Since::Events(self.history.iter().skip(skip).collect())
    }

    pub fn snapshot(&self) -> StoreSnapshot {
        let mut collections: Vec<CollectionSnapshot> = self
            .collections
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(gr, c)| CollectionSnapshot {
                group: gr.group.clone(),
                resource: gr.resource.clone(),
                objects: c.values().cloned().collect(),
            })
            .collect();
        collections.sort_by(|a, b| (&a.group, &a.resource).cmp(&(&b.group, &b.resource)));
        StoreSnapshot {
            resource_version: self.rv,
            collections,
        }
    }

    /// A store holding a snapshot's objects; history starts empty, so
    /// watches from older resourceVersions get 410 and relist.
    pub fn restore(snapshot: StoreSnapshot) -> Self {
        let mut store = Store::new(snapshot.resource_version);
        for c in snapshot.collections {
            let gr = GroupResource::new(&c.group, &c.resource);
            let coll = store.collections.entry(gr).or_default();
            for o in c.objects {
                coll.insert(key_of(&o), o);
            }
        }
        store
    }
}

pub fn key_of(obj: &Value) -> ObjectKey {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    ObjectKey::new(ns, name)
}

fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn versions_and_history() {
        let gr = GroupResource::new("", "configmaps");
        let mut s = Store::new(100);
        let a = s.put(&gr, cm("a", "x"));
        assert_eq!(a["metadata"]["resourceVersion"], "101");
        s.put(&gr, cm("b", "y"));
        s.put(&gr, cm("a", "z"));
        assert_eq!(s.list(&gr, Some("a")).count(), 2);
        assert_eq!(s.list(&gr, None).count(), 3);
        let after: Vec<_> = s
            .list_after(&gr, Some("a"), &ObjectKey::new("a", "x"))
            .map(|(k, _)| k.name.clone())
            .collect();
        assert_eq!(after, vec!["z"]);
        let gone = s.remove(&gr, "a", "x").unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "104");
        match s.since(102) {
            Since::Events(e) => {
                assert_eq!(e.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![103, 104]);
                assert_eq!(e[1].kind, EventType::Deleted);
            }
            Since::Expired { .. } => panic!("history should reach 102"),
        }
        assert!(matches!(s.since(99), Since::Expired { oldest: 100 }));
    }

    #[test]
    fn snapshot_round_trip_expires_history() {
        let gr = GroupResource::new("", "configmaps");
        let mut s = Store::new(0);
        s.put(&gr, cm("a", "x"));
        let restored = Store::restore(s.snapshot());
        assert_eq!(restored.resource_version(), 1);
        assert!(restored.get(&gr, "a", "x").is_some());
        assert!(matches!(restored.since(0), Since::Expired { .. }));
        assert!(matches!(restored.since(1), Since::Events(ref e) if e.is_empty()));
    }
}
