//! Readiness by status and conditions (DaemonSet, Deployment, StatefulSet
//! rolled out; PVC Bound; an object exists), polled with backoff until a
//! deadline; the error names every check that did not pass and its status.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{Api, Client};
use tokio::time::Instant;
use vre_core::ReadinessCheck;

use crate::apply::Catalog;
use crate::backoff::Backoff;
use crate::error::{KubeError, describe, status_of};

/// Where a check stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Not yet, with what the object reports.
    Waiting(String),
    /// It will not get there by waiting (a Deployment past its progress deadline).
    Failed(String),
}

/// DaemonSet rolled out: the controller saw the current spec, and every
/// desired pod is updated, ready and available.
pub fn daemonset_verdict(ds: &DaemonSet) -> Verdict {
    let generation = ds.metadata.generation.unwrap_or(0);
    let Some(st) = &ds.status else {
        return Verdict::Waiting("no status yet".into());
    };
    let observed = st.observed_generation.unwrap_or(0);
    if observed < generation {
        return Verdict::Waiting(format!(
            "controller has not seen generation {generation} yet (at {observed})"
        ));
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    let ready = st.number_ready;
    if updated == desired && ready == desired && available == desired {
        Verdict::Ready
    } else {
        Verdict::Waiting(format!(
            "{ready} of {desired} pods ready, {updated} updated, {available} available"
        ))
    }
}

/// Deployment rolled out: current spec observed, Available, every replica updated and available.
pub fn deployment_verdict(d: &Deployment) -> Verdict {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(st) = &d.status else {
        return Verdict::Waiting("no status yet".into());
    };
    let observed = st.observed_generation.unwrap_or(0);
    if observed < generation {
        return Verdict::Waiting(format!(
            "controller has not seen generation {generation} yet (at {observed})"
        ));
    }
    let conditions = st.conditions.as_deref().unwrap_or_default();
    if let Some(c) = conditions.iter().find(|c| c.type_ == "Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Verdict::Failed(format!(
            "exceeded its progress deadline: {}",
            c.message.as_deref().unwrap_or("no message")
        ));
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let available_condition = conditions.iter().any(|c| c.type_ == "Available" && c.status == "True");
    if updated < wanted {
        Verdict::Waiting(format!("{updated} of {wanted} replicas updated"))
    } else if total > updated {
        Verdict::Waiting(format!("{} old replicas pending termination", total - updated))
    } else if available < updated {
        Verdict::Waiting(format!("{available} of {updated} updated replicas available"))
    } else if !available_condition {
        let why = conditions
            .iter()
            .find(|c| c.type_ == "Available")
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| "no Available condition yet".into());
        Verdict::Waiting(format!("not Available: {why}"))
    } else {
        Verdict::Ready
    }
}

/// StatefulSet rolled out: current spec observed, every replica ready and on the update revision.
pub fn statefulset_verdict(s: &StatefulSet) -> Verdict {
    let generation = s.metadata.generation.unwrap_or(0);
    let Some(st) = &s.status else {
        return Verdict::Waiting("no status yet".into());
    };
    let observed = st.observed_generation.unwrap_or(0);
    if observed == 0 || observed < generation {
        return Verdict::Waiting(format!(
            "controller has not seen generation {generation} yet (at {observed})"
        ));
    }
    let spec = s.spec.as_ref();
    let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < wanted {
        return Verdict::Waiting(format!("{ready} of {wanted} replicas ready"));
    }
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
        return Verdict::Ready;
    }
    let partition = strategy
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    if partition > 0 {
        let want_updated = (wanted - partition).max(0);
        return if updated < want_updated {
            Verdict::Waiting(format!(
                "{updated} of {want_updated} replicas updated (partition {partition})"
            ))
        } else {
            Verdict::Ready
        };
    }
    if st.update_revision.is_some() && st.update_revision != st.current_revision {
        return Verdict::Waiting(format!("{updated} of {wanted} replicas on the update revision"));
    }
    Verdict::Ready
}

/// PVC Bound.
pub fn pvc_verdict(p: &PersistentVolumeClaim) -> Verdict {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => Verdict::Ready,
        Some("Lost") => Verdict::Failed("phase Lost: its PersistentVolume is gone".into()),
        Some(other) => Verdict::Waiting(format!("phase {other}")),
        None => Verdict::Waiting("no phase yet".into()),
    }
}

/// `verdict` on the object `namespace/name` of kind `K`; waiting while it is not found.
async fn get_verdict<K, F>(client: &Client, namespace: &str, name: &str, verdict: F) -> Result<Verdict, KubeError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
    F: Fn(&K) -> Verdict,
{
    match Api::<K>::namespaced(client.clone(), namespace).get_opt(name).await {
        Ok(Some(obj)) => Ok(verdict(&obj)),
        Ok(None) => Ok(Verdict::Waiting("not found".into())),
        Err(e) => Err(KubeError::api(format!("get {name}"), e)),
    }
}

/// Where one check stands now. API errors are reported as waiting (the
/// next poll may succeed) unless they say the request itself is wrong.
pub async fn evaluate(client: &Client, catalog: &Catalog, check: &ReadinessCheck) -> Result<Verdict, KubeError> {
    let result = match check {
        ReadinessCheck::Rollout { kind, namespace, name } => match kind.to_ascii_lowercase().as_str() {
            "daemonset" => get_verdict(client, namespace, name, daemonset_verdict).await,
            "deployment" => get_verdict(client, namespace, name, deployment_verdict).await,
            "statefulset" => get_verdict(client, namespace, name, statefulset_verdict).await,
            _ => {
                return Err(KubeError::BadObject {
                    object: check.to_string(),
                    message: format!("rollout of a {kind} cannot be checked; use DaemonSet, Deployment or StatefulSet"),
                });
            }
        },
        ReadinessCheck::PvcBound { namespace, name } => get_verdict(client, namespace, name, pvc_verdict).await,
        ReadinessCheck::Exists {
            api_version,
            kind,
            namespace,
            name,
        } => {
            let target = match catalog.resolve(api_version, kind, None).await {
                Ok(t) => t,
                Err(KubeError::BadObject { .. }) => {
                    return Ok(Verdict::Waiting(format!("{kind} ({api_version}) is not served (yet)")));
                }
                Err(e) => return Err(e),
            };
            catalog
                .api(&target, namespace.as_deref())
                .get_opt(name)
                .await
                .map(|o| match o {
                    Some(_) => Verdict::Ready,
                    None => Verdict::Waiting("not found".into()),
                })
                .map_err(|e| KubeError::api(format!("get {kind} {name}"), e))
        }
    };
    match result {
        Err(KubeError::Api { source, .. }) if matches!(status_of(&source), Some(400 | 401 | 403 | 422)) => {
            Ok(Verdict::Failed(describe(&source)))
        }
        Err(KubeError::Api { source, .. }) => Ok(Verdict::Waiting(format!("API error: {}", describe(&source)))),
        other => other,
    }
}

/// Polls `checks` (with backoff) until all are ready or `timeout` passes.
pub async fn wait_ready(
    client: &Client,
    catalog: &Catalog,
    checks: &[ReadinessCheck],
    timeout: Duration,
) -> vre_core::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut pending: Vec<&ReadinessCheck> = checks.iter().collect();
    loop {
        let verdicts = futures::future::join_all(pending.iter().map(|c| evaluate(client, catalog, c))).await;
        let mut waiting = Vec::new();
        let mut statuses = Vec::new();
        for (check, verdict) in pending.iter().zip(verdicts) {
            match verdict.map_err(vre_core::Error::from)? {
                Verdict::Ready => {}
                Verdict::Waiting(status) => {
                    statuses.push(format!("{check}: {status}"));
                    waiting.push(*check);
                }
                Verdict::Failed(why) => {
                    return Err(vre_core::Error::orchestrator(check.to_string(), why));
                }
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(vre_core::Error::Timeout {
                what: waiting.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
                after: timeout,
                hint: format!(
                    "not ready: {}; `kubectl describe` the objects and their pods' events say why",
                    statuses.join("; ")
                ),
            });
        }
        pending = waiting;
        backoff.sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        DaemonSetStatus, DeploymentCondition, DeploymentSpec, DeploymentStatus, RollingUpdateStatefulSetStrategy,
        StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::PersistentVolumeClaimStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some("x".into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        }
    }

    fn ds(generation: i64, observed: i64, desired: i32, updated: i32, ready: i32) -> DaemonSet {
        DaemonSet {
            metadata: meta(generation),
            status: Some(DaemonSetStatus {
                observed_generation: Some(observed),
                desired_number_scheduled: desired,
                updated_number_scheduled: Some(updated),
                number_ready: ready,
                number_available: Some(ready),
                ..DaemonSetStatus::default()
            }),
            ..DaemonSet::default()
        }
    }

    #[test]
    fn daemonset() {
        assert_eq!(daemonset_verdict(&ds(2, 2, 3, 3, 3)), Verdict::Ready);
        assert_eq!(
            daemonset_verdict(&ds(1, 1, 0, 0, 0)),
            Verdict::Ready,
            "nothing to schedule is rolled out"
        );
        assert!(matches!(daemonset_verdict(&ds(3, 2, 3, 3, 3)), Verdict::Waiting(s) if s.contains("generation 3")));
        assert!(
            matches!(daemonset_verdict(&ds(2, 2, 3, 3, 1)), Verdict::Waiting(s) if s.contains("1 of 3 pods ready"))
        );
        assert!(matches!(daemonset_verdict(&ds(2, 2, 3, 2, 3)), Verdict::Waiting(s) if s.contains("2 updated")));
        assert!(matches!(daemonset_verdict(&DaemonSet::default()), Verdict::Waiting(_)));
    }

    fn deploy(replicas: i32, updated: i32, total: i32, available: i32, conds: &[(&str, &str, &str)]) -> Deployment {
        Deployment {
            metadata: meta(1),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                replicas: Some(total),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                conditions: Some(
                    conds
                        .iter()
                        .map(|(t, s, r)| DeploymentCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            reason: Some(r.to_string()),
                            message: Some(format!("{t} {r}")),
                            ..DeploymentCondition::default()
                        })
                        .collect(),
                ),
                ..DeploymentStatus::default()
            }),
        }
    }

    #[test]
    fn deployment() {
        let avail = ("Available", "True", "MinimumReplicasAvailable");
        assert_eq!(deployment_verdict(&deploy(2, 2, 2, 2, &[avail])), Verdict::Ready);
        assert!(
            matches!(deployment_verdict(&deploy(2, 1, 2, 1, &[avail])), Verdict::Waiting(s) if s.contains("1 of 2 replicas updated"))
        );
        assert!(
            matches!(deployment_verdict(&deploy(2, 2, 3, 2, &[avail])), Verdict::Waiting(s) if s.contains("old replicas"))
        );
        assert!(
            matches!(deployment_verdict(&deploy(2, 2, 2, 1, &[avail])), Verdict::Waiting(s) if s.contains("1 of 2 updated replicas available"))
        );
        assert!(
            matches!(deployment_verdict(&deploy(1, 1, 1, 1, &[("Available", "False", "MinimumReplicasUnavailable")])), Verdict::Waiting(s) if s.contains("not Available"))
        );
        assert!(matches!(
            deployment_verdict(&deploy(1, 0, 1, 0, &[("Progressing", "False", "ProgressDeadlineExceeded")])),
            Verdict::Failed(s) if s.contains("progress deadline")
        ));
    }

    #[test]
    fn statefulset() {
        let sts = |replicas: i32, ready: i32, updated: i32, cur: &str, upd: &str, partition: Option<i32>| StatefulSet {
            metadata: meta(1),
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: partition.map(|p| RollingUpdateStatefulSetStrategy {
                        partition: Some(p),
                        ..RollingUpdateStatefulSetStrategy::default()
                    }),
                }),
                ..StatefulSetSpec::default()
            }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(1),
                replicas,
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                current_revision: Some(cur.into()),
                update_revision: Some(upd.into()),
                ..StatefulSetStatus::default()
            }),
        };
        assert_eq!(statefulset_verdict(&sts(3, 3, 3, "r1", "r1", None)), Verdict::Ready);
        assert!(
            matches!(statefulset_verdict(&sts(3, 2, 3, "r1", "r1", None)), Verdict::Waiting(s) if s.contains("2 of 3"))
        );
        assert!(
            matches!(statefulset_verdict(&sts(3, 3, 1, "r1", "r2", None)), Verdict::Waiting(s) if s.contains("update revision"))
        );
        assert_eq!(statefulset_verdict(&sts(3, 3, 1, "r1", "r2", Some(2))), Verdict::Ready);
    }

    #[test]
    fn pvc() {
        let p = |phase: Option<&str>| PersistentVolumeClaim {
            status: Some(PersistentVolumeClaimStatus {
                phase: phase.map(String::from),
                ..PersistentVolumeClaimStatus::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        assert_eq!(pvc_verdict(&p(Some("Bound"))), Verdict::Ready);
        assert_eq!(
            pvc_verdict(&p(Some("Pending"))),
            Verdict::Waiting("phase Pending".into())
        );
        assert!(matches!(pvc_verdict(&p(Some("Lost"))), Verdict::Failed(_)));
        assert!(matches!(pvc_verdict(&p(None)), Verdict::Waiting(_)));
    }
}
