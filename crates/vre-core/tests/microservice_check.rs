//! A microservice's settings check runs before the provider's first cloud
//! call: a failing check stops plan and apply with the spec field named, and
//! the cloud is never asked anything.

use std::path::Path;
use std::sync::Arc;

use vre_core::spec::Diagnostics;
use vre_core::testing::{FakeCloud, FakeOrchestrator};
use vre_core::{
    ClusterFacts, ClusterSpec, Deployment, Error, Manifest, Microservice, ReadinessCheck, Result, RetryPolicy, Role,
};

/// A microservice whose settings check reports `problem` (field, message), if any.
struct Checked {
    problem: Option<(&'static str, &'static str)>,
}

impl Microservice for Checked {
    fn name(&self) -> &str {
        "checked"
    }

    fn check_settings(&self, _spec: &ClusterSpec, _dir: &Path, diags: &mut Diagnostics) {
        if let Some((field, message)) = self.problem {
            diags.error(field, None, message);
        }
    }

    fn objects(&self, _facts: &ClusterFacts) -> Result<Vec<Manifest>> {
        Ok(Vec::new())
    }

    fn readiness(&self, _facts: &ClusterFacts) -> Vec<ReadinessCheck> {
        Vec::new()
    }
}

fn deployment(dir: &Path, cloud: &FakeCloud, problem: Option<(&'static str, &'static str)>) -> Deployment {
    let mut spec = ClusterSpec::new("lab", "fake");
    spec.group_mut(Role::Service).count = 1;
    Deployment::builder(spec, dir)
        .provider(Arc::new(cloud.clone()))
        .orchestrator(Arc::new(FakeOrchestrator::new(dir)))
        .microservice(Arc::new(Checked { problem }))
        .public_key("ssh-ed25519 AAAA test")
        .retry(RetryPolicy::immediate(2))
        .build()
        .unwrap()
}

fn assert_names_the_field(e: Error) {
    let Error::Spec(d) = e else {
        panic!("expected a spec error, got {e}");
    };
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d.problems[0].field, "apps[0].values");
    assert_eq!(d.problems[0].message, "does not exist");
}

#[tokio::test]
async fn a_failing_settings_check_stops_plan_and_apply_before_any_cloud_call() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let d = deployment(dir.path(), &cloud, Some(("apps[0].values", "does not exist")));
    assert_names_the_field(d.plan().await.unwrap_err());
    assert_names_the_field(d.apply().await.unwrap_err());
    assert!(cloud.calls().is_empty(), "{:?}", cloud.calls());
}

#[tokio::test]
async fn a_passing_settings_check_lets_plan_ask_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let d = deployment(dir.path(), &cloud, None);
    d.plan().await.unwrap();
    assert!(!cloud.calls().is_empty(), "plan reads the inventory");
}
