//! The labels every object vre applies carries, and the smaller set pods are
//! selected by.

use serde_json::{Value, json};

/// Labels every object vre applies carries.
pub fn labels(name: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "vre",
        "app.kubernetes.io/managed-by": "vre",
    })
}

/// The label set pods are selected by (a subset of [`labels`]: selectors of
/// Deployments and DaemonSets are immutable, so they hold only what never changes).
pub fn selector(name: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
    })
}
