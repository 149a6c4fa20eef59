//! One app of the spec as a microservice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use vre_core::spec::{AppSource, AppSpec, ClusterSpec, Diagnostics};
use vre_core::{ClusterFacts, Endpoint, Error, Manifest, Microservice, Orchestrator, ReadinessCheck, Result};
use vre_microservice_kit::manifest_lint::CLUSTER_SCOPED;
use vre_microservice_kit::{AppRoute, app_ingress, app_url, labels};

use crate::helm::{Helm, Release};
use crate::variables::{Context, substitute};

/// Names of the microservices apps may depend on (as vre-storage and
/// vre-loadbalancer name themselves).
const STORAGE: &str = "storage";
const OBJECT_STORAGE: &str = "object-storage";
const LOADBALANCER: &str = "loadbalancer";

/// The app at `apps[index]` of the spec.
#[derive(Clone, Debug)]
pub struct App {
    index: usize,
    spec: AppSpec,
    name: String,
    depends: Vec<String>,
    /// `helm` to use instead of the one on `PATH` (tests, custom installs).
    helm: Option<Helm>,
}

/// One microservice per `[[apps]]` entry, in spec order.
pub fn apps_from_spec(spec: &ClusterSpec) -> Vec<Arc<dyn Microservice>> {
    spec.apps
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(App::new(i, a.clone(), spec)) as Arc<dyn Microservice>)
        .collect()
}

impl App {
    pub fn new(index: usize, app: AppSpec, cluster: &ClusterSpec) -> Self {
        let mut depends = Vec::new();
        if cluster.storage.enabled {
            depends.push(STORAGE.to_string());
            if cluster.storage.object_storage {
                depends.push(OBJECT_STORAGE.to_string());
            }
        }
        if app.expose.is_some() && cluster.loadbalancer.enabled {
            depends.push(LOADBALANCER.to_string());
        }
        App {
            index,
            name: format!("apps:{}", app.name),
            spec: app,
            depends,
            helm: None,
        }
    }

    /// Uses `helm` instead of looking for it on `PATH`.
    pub fn with_helm(mut self, helm: Helm) -> Self {
        self.helm = Some(helm);
        self
    }

    fn field(&self, key: &str) -> String {
        format!("apps[{}].{key}", self.index)
    }

    fn namespace_object(&self) -> Manifest {
        Manifest::new(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.spec.namespace, "labels": labels(&self.spec.name, "app")},
        }))
    }

    fn ingress(&self, facts: &ClusterFacts) -> Option<Manifest> {
        let expose = self.spec.expose.as_ref()?;
        facts.spec.loadbalancer.enabled.then(|| {
            app_ingress(
                facts,
                &AppRoute {
                    name: &self.spec.name,
                    namespace: &self.spec.namespace,
                    service: &expose.service,
                    port: expose.port,
                },
            )
        })
    }

    /// The objects of a manifests app: the file with variables substituted,
    /// namespaced into the app's namespace, ports given a protocol.
    fn manifest_objects(&self, facts: &ClusterFacts, path: &Path) -> Result<Vec<Manifest>> {
        let field = self.field("manifest");
        let full = facts.dir.join(path);
        let text = read_manifest(&facts.dir, path).map_err(|m| Error::input(&field, m))?;
        let ctx = Context {
            facts,
            app: &self.spec.name,
            namespace: &self.spec.namespace,
            field: &field,
        };
        let text = substitute(&text, |v| ctx.resolve(v))?;
        let mut out = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(doc)
                .map_err(|e| Error::input(&field, format!("{}: document {}: {e}", full.display(), i + 1)))?;
            if value.is_null() {
                continue;
            }
            let Value::Object(_) = value else {
                return Err(Error::input(
                    &field,
                    format!("{}: document {} is not a Kubernetes object", full.display(), i + 1),
                ));
            };
            let mut m = Manifest::new(value);
            if m.api_version().is_empty() || m.kind().is_empty() || m.name().is_empty() {
                return Err(Error::input(
                    &field,
                    format!(
                        "{}: document {} needs apiVersion, kind and metadata.name",
                        full.display(),
                        i + 1
                    ),
                ));
            }
            if m.kind() == "List" {
                return Err(Error::input(
                    &field,
                    format!(
                        "{}: document {} is a List; write one object per document",
                        full.display(),
                        i + 1
                    ),
                ));
            }
            if !CLUSTER_SCOPED.contains(&m.kind()) && m.namespace().is_none() {
                m.0["metadata"]["namespace"] = json!(self.spec.namespace);
            }
            add_port_protocols(&mut m.0);
            fold_string_data(&mut m.0);
            out.push(m);
        }
        if out.is_empty() {
            return Err(Error::input(
                &field,
                format!("{} holds no Kubernetes object", full.display()),
            ));
        }
        Ok(out)
    }
}

use serde::Deserialize;

/// The text of a manifests app's file (`path` relative to the deployment
/// directory `dir`), or why it cannot be read.
fn read_manifest(dir: &Path, path: &Path) -> std::result::Result<String, String> {
    let full = dir.join(path);
    std::fs::read_to_string(&full).map_err(|e| {
        format!(
            "cannot read {}: {e}; the path is relative to the deployment directory",
            full.display()
        )
    })
}

/// A chart app's values file (`values` relative to the deployment directory
/// `dir`), or why it is missing.
fn values_file(dir: &Path, values: &Path) -> std::result::Result<PathBuf, String> {
    let full = dir.join(values);
    if full.is_file() {
        Ok(full)
    } else {
        Err(format!(
            "{} does not exist; the path is relative to the deployment directory",
            full.display()
        ))
    }
}

/// Moves a Secret's `stringData` into `data` (base64), as the API server
/// would: `stringData` is write-only, so applying it again rewrites the
/// Secret every time, while `data` re-applies as a no-op.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    if obj["kind"] != "Secret" {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Sets `protocol: TCP` (the Kubernetes default) on Service and container
/// ports that have none: server-side apply on older API servers rejects them.
fn add_port_protocols(obj: &mut Value) {
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let fill = |ports: &mut Value| {
        if let Some(list) = ports.as_array_mut() {
            for p in list.iter_mut().filter(|p| p.is_object() && p.get("protocol").is_none()) {
                p["protocol"] = json!("TCP");
            }
        }
    };
    if kind == "Service"
        && let Some(ports) = obj.pointer_mut("/spec/ports")
    {
        fill(ports);
    }
    let pod = match kind.as_str() {
        "Pod" => obj.pointer_mut("/spec"),
        "CronJob" => obj.pointer_mut("/spec/jobTemplate/spec/template/spec"),
        _ => obj.pointer_mut("/spec/template/spec"),
    };
    if let Some(pod) = pod {
        for key in ["containers", "initContainers"] {
            if let Some(list) = pod.get_mut(key).and_then(Value::as_array_mut) {
                for c in list {
                    if let Some(ports) = c.get_mut("ports") {
                        fill(ports);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Microservice for App {
    fn name(&self) -> &str {
        &self.name
    }

    /// The app's manifest file can be read and its chart's values file
    /// exists, before the cloud is asked for anything.
    fn check_settings(&self, _spec: &ClusterSpec, dir: &Path, diags: &mut Diagnostics) {
        let problem = match &self.spec.source {
            AppSource::Manifest { path } => read_manifest(dir, path).err().map(|m| ("manifest", m)),
            AppSource::Chart { values: Some(v), .. } => values_file(dir, v).err().map(|m| ("values", m)),
            AppSource::Chart { values: None, .. } => None,
        };
        if let Some((key, message)) = problem {
            diags.error(&self.field(key), None, message);
        }
    }

    fn depends_on(&self) -> Vec<String> {
        self.depends.clone()
    }

    fn objects(&self, facts: &ClusterFacts) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        match &self.spec.source {
            AppSource::Manifest { path } => {
                let objects = self.manifest_objects(facts, path)?;
                let defines_ns = objects
                    .iter()
                    .any(|m| m.kind() == "Namespace" && m.name() == self.spec.namespace);
                if !defines_ns {
                    out.push(self.namespace_object());
                }
                out.extend(objects);
            }
            // the release's own objects belong to helm; vre adds only the route
            AppSource::Chart { .. } => {}
        }
        out.extend(self.ingress(facts));
        Ok(out)
    }

    fn readiness(&self, facts: &ClusterFacts) -> Vec<ReadinessCheck> {
        let AppSource::Manifest { .. } = &self.spec.source else {
            // `helm --wait` has waited for the chart's workloads already
            return Vec::new();
        };
        // objects() already succeeded when readiness is asked for; a file that
        // became unreadable in between yields no checks rather than a panic
        let objects = self.objects(facts).unwrap_or_default();
        objects
            .iter()
            .filter_map(|m| {
                let namespace = m.namespace()?.to_string();
                match m.kind() {
                    "Deployment" | "StatefulSet" | "DaemonSet" => Some(ReadinessCheck::Rollout {
                        kind: m.kind().to_string(),
                        namespace,
                        name: m.name().to_string(),
                    }),
                    "PersistentVolumeClaim" => Some(ReadinessCheck::PvcBound {
                        namespace,
                        name: m.name().to_string(),
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    fn endpoints(&self, facts: &ClusterFacts) -> Vec<Endpoint> {
        if self.spec.expose.is_none() || !facts.spec.loadbalancer.enabled {
            return Vec::new();
        }
        app_url(facts, &self.spec.name)
            .map(|url| Endpoint {
                name: self.spec.name.clone(),
                url,
            })
            .into_iter()
            .collect()
    }

    async fn install(&self, orchestrator: &dyn Orchestrator, facts: &ClusterFacts, timeout: Duration) -> Result<()> {
        if let AppSource::Chart {
            repo,
            chart,
            version,
            values,
        } = &self.spec.source
        {
            let field = self.field("chart");
            let helm = match &self.helm {
                Some(h) => h.clone(),
                None => Helm::from_env(&field)?,
            };
            let values = match values {
                Some(v) => Some(values_file(&facts.dir, v).map_err(|m| Error::input(self.field("values"), m))?),
                None => None,
            };
            let kubeconfig = orchestrator.kubeconfig_path();
            helm.install(&Release {
                name: &self.spec.name,
                namespace: &self.spec.namespace,
                repo,
                chart,
                version,
                values,
                kubeconfig: &kubeconfig,
                timeout,
            })
            .await?;
        }
        let objects = self.objects(facts)?;
        if !objects.is_empty() {
            orchestrator.apply(&objects).await?;
        }
        orchestrator.wait_ready(&self.readiness(facts), timeout).await
    }
}

#[cfg(test)]
mod tests;
