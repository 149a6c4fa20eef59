//! What vre's microservices (the edge load balancer, storage, apps) share, so
//! that none of them depends on another:
//!
//! - [`placement`]: node affinity by role and the tolerations matching the
//!   taints each role carries;
//! - [`labels`](mod@labels): the labels every applied object carries and the selector
//!   subset;
//! - [`manifest_lint`]: checks on generated or user-supplied objects that
//!   catch what the API server would reject;
//! - [`local_secret`]: secrets generated once per cluster and kept in the
//!   deployment directory;
//! - [`ingress`]: the Ingress that routes `<app>.<domain>` through the edge,
//!   and the URL users open;
//! - `testing` (feature `testing`): the cluster facts microservice tests
//!   render objects against.

#![warn(missing_docs)]

pub mod ingress;
pub mod labels;
pub mod local_secret;
pub mod manifest_lint;
pub mod placement;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use ingress::{ACME_RESOLVER, AppRoute, INGRESS_CLASS, app_ingress, app_url};
pub use labels::{labels, selector};
