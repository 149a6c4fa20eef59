//! vre's apps: what a research community runs on its VRE, listed in the spec
//! as `[[apps]]` and installed after the microservices.
//!
//! Every app becomes one [`vre_core::Microservice`] named `apps:<name>`
//! ([`App`]; [`apps_from_spec`] builds them all). It depends on the shared
//! storage and object storage when the spec enables them and on the edge load
//! balancer when it is exposed.
//!
//! - **Manifests** (`manifest = "apps/jupyter.yaml"`): a multi-document YAML
//!   file relative to the deployment directory, with the [`variables`]
//!   substituted, applied through the orchestrator (server-side apply) and
//!   waited on: every Deployment, StatefulSet and DaemonSet rolled out and
//!   every PersistentVolumeClaim Bound. Objects without a namespace go to the
//!   app's namespace, which vre creates; ports without `protocol` get `TCP`
//!   (the Kubernetes default, which older API servers need spelled out), and
//!   a Secret's `stringData` is folded into `data` so re-applying is a no-op.
//! - **Helm charts** (`chart`, `repo`, `version`, `values`): installed with
//!   `helm upgrade --install --wait` by the `helm` binary found on `PATH`,
//!   with vre's admin kubeconfig; a clear error says so when `helm` is
//!   missing.
//! - `expose_service` / `expose_port`: an Ingress `<name>.<domain>` through
//!   the edge ([`vre_microservice_kit::app_ingress`]); the app's URL is printed at
//!   the end of `vre apply`.

pub mod app;
pub mod helm;
pub mod variables;

pub use app::{App, apps_from_spec};
pub use helm::Helm;
