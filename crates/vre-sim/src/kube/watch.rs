//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines, from
//! a resourceVersion (or the current state as ADDED events), filtered by
//! namespace and selectors (objects moving in or out of a selector appear
//! as ADDED or DELETED), with bookmarks, `sendInitialEvents`, a timeout,
//! and 410 Expired as an ERROR event when history no longer reaches the
//! requested resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::catalog::ResourceType;
use super::cluster::Cluster;
use super::registry::{ListOptions, present};
use super::status::ApiError;
use super::store::{EventType, Since};
use super::table::{IncludeObject, table};

/// How a watch was asked for.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub list: ListOptions,
    pub namespace: Option<String>,
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// Events as Tables (for `kubectl get -w`), with what each row carries.
    pub table: Option<IncludeObject>,
}

struct Filter {
    rt: Arc<ResourceType>,
    version: String,
    opts: WatchOptions,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.opts.namespace
            && obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.opts.list.labels.matches_object(obj) && self.opts.list.fields.matches(obj)
    }

    fn line(&self, kind: &str, obj: &Arc<Value>) -> Bytes {
        let object = present(obj, &self.rt, &self.version);
        let object = match self.opts.table {
            Some(include) => {
                let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
                Arc::new(table(
                    &self.rt,
                    &self.version,
                    &[object],
                    include,
                    json!({"resourceVersion": rv}),
                ))
            }
            None => object,
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        if serde_json::to_writer(&mut out, &*object).is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(&self.version), "metadata": meta});
        Bytes::from(format!("{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"))
    }
}

fn error_line(e: &ApiError) -> Bytes {
    Bytes::from(format!("{{\"type\":\"ERROR\",\"object\":{}}}\n", e.to_status()))
}

/// The event a change produces for this watcher, if any.
fn event_for(
    f: &Filter,
    kind: EventType,
    obj: &Arc<Value>,
    previous: Option<&Arc<Value>>,
) -> Option<(&'static str, Arc<Value>)> {
    let now = f.matches(obj);
    match kind {
        EventType::Added => now.then(|| ("ADDED", obj.clone())),
        EventType::Deleted => now.then(|| ("DELETED", obj.clone())),
        EventType::Modified => {
            let before = previous.is_some_and(|p| f.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", obj.clone())),
                (false, true) => Some(("ADDED", obj.clone())),
                // Leaving the selection: DELETED with the new state.
                (true, false) => Some(("DELETED", obj.clone())),
                (false, false) => None,
            }
        }
    }
}

/// Starts a watch: returns the receiver of the stream's chunks.
pub fn start(
    cluster: Arc<Cluster>,
    rt: Arc<ResourceType>,
    version: &str,
    opts: WatchOptions,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let filter = Filter {
        rt: rt.clone(),
        version: version.to_string(),
        opts,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let key = rt.key();
    let requested: Option<u64> = match filter.opts.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a number")))?,
        ),
    };
    let mut initial: Vec<Arc<Value>> = Vec::new();
    let (mut cursor, mut changes, expired) = {
        let st = cluster.lock();
        let now = st.store.resource_version();
        let changes = st.store.subscribe();
        match requested {
            Some(rv) if !filter.opts.send_initial_events => match st.store.since(rv) {
                Since::Expired { oldest } => (now, changes, Some(oldest)),
                Since::Events(_) => (rv, changes, None),
            },
            _ => {
                let ns = filter.opts.namespace.as_deref();
                initial = st
                    .store
                    .list(&key, ns)
                    .filter(|(_, o)| filter.matches(o))
                    .map(|(_, o)| o.clone())
                    .collect();
                (now, changes, None)
            }
        }
    };
    let initial_end = filter.opts.send_initial_events;
    tokio::spawn(async move {
        if let Some(oldest) = expired {
            let e = ApiError::expired(format!(
                "too old resource version: {} ({oldest})",
                requested.unwrap_or(0)
            ));
            let _ = tx.send(error_line(&e)).await;
            return;
        }
        for o in &initial {
            if tx.send(filter.line("ADDED", o)).await.is_err() {
                return;
            }
        }
        drop(initial);
        if initial_end && filter.opts.bookmarks && tx.send(filter.bookmark(cursor, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + filter.opts.timeout;
        let mut bookmark =
            tokio::time::interval(Duration::from_secs(30).min(filter.opts.timeout.max(Duration::from_secs(1))));
        bookmark.tick().await;
        // Drain what the history already holds after the cursor, then wait
        // for more: a watch from an older resourceVersion starts with a replay.
        loop {
            if cluster.is_stopped() {
                return;
            }
            let mut out: Vec<(&'static str, Arc<Value>)> = Vec::new();
            let mut expired_at = None;
            {
                let st = cluster.lock();
                match st.store.since(cursor) {
                    Since::Expired { oldest } => expired_at = Some(oldest),
                    Since::Events(events) => {
                        for e in events {
                            cursor = e.rv;
                            if e.resource != key {
                                continue;
                            }
                            if let Some(ev) = event_for(&filter, e.kind, &e.object, e.previous.as_ref()) {
                                out.push(ev);
                            }
                        }
                    }
                }
            }
            if let Some(oldest) = expired_at {
                let e = ApiError::expired(format!("too old resource version: {cursor} ({oldest})"));
                let _ = tx.send(error_line(&e)).await;
                return;
            }
            for (kind, obj) in out {
                if tx.send(filter.line(kind, &obj)).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    r = changes.changed() => {
                        if r.is_err() {
                            return;
                        }
                        break;
                    }
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = bookmark.tick() => {
                        if filter.opts.bookmarks && tx.send(filter.bookmark(cursor, false)).await.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::Catalog;
    use crate::kube::selector::LabelSelector;

    fn filter(selector: &str) -> Filter {
        let rt = Catalog::new().by_group_resource("", "configmaps").unwrap();
        let list = ListOptions {
            labels: LabelSelector::parse(selector).unwrap(),
            ..Default::default()
        };
        Filter {
            rt,
            version: "v1".into(),
            opts: WatchOptions {
                list,
                namespace: Some("a".into()),
                resource_version: None,
                send_initial_events: false,
                bookmarks: true,
                timeout: Duration::from_secs(5),
                table: None,
            },
        }
    }

    #[test]
    fn selector_transitions() {
        let f = filter("app=web");
        let web = Arc::new(json!({"metadata": {"namespace": "a", "labels": {"app": "web"}}}));
        let db = Arc::new(json!({"metadata": {"namespace": "a", "labels": {"app": "db"}}}));
        assert_eq!(event_for(&f, EventType::Modified, &web, Some(&db)).unwrap().0, "ADDED");
        assert_eq!(
            event_for(&f, EventType::Modified, &db, Some(&web)).unwrap().0,
            "DELETED"
        );
        assert!(event_for(&f, EventType::Modified, &db, Some(&db)).is_none());
        let other_ns = Arc::new(json!({"metadata": {"namespace": "b", "labels": {"app": "web"}}}));
        assert!(event_for(&f, EventType::Added, &other_ns, None).is_none());
    }

    #[test]
    fn lines_are_json_events() {
        let f = filter("");
        let obj = Arc::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a", "resourceVersion": "3"}}),
        );
        let line = f.line("ADDED", &obj);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["metadata"]["name"], "x");
        let b: Value = serde_json::from_slice(&f.bookmark(7, true)).unwrap();
        assert_eq!(b["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(
            b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        let e: Value = serde_json::from_slice(&error_line(&ApiError::expired("too old"))).unwrap();
        assert_eq!(e["object"]["code"], 410);
    }
}
