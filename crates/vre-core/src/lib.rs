//! vre-core: the engine of `vre`, which allocates on-demand Virtual Research
//! Environments (a Kubernetes cluster with shared storage, an edge load
//! balancer and DNS) on any cloud.
//!
//! The three layers of the method are traits here:
//! [`CloudProvider`] (one crate per cloud), [`Orchestrator`] (Kubernetes),
//! [`Microservice`] and [`Dns`] (the services on top). The [`Deployment`]
//! engine plans, applies, destroys and scales a [`ClusterSpec`] through them.
//! No cloud SDK, Kubernetes client or CLI code lives in this crate.

#![warn(missing_docs)]

pub mod dag;
pub mod dialer;
pub mod engine;
pub mod error;
pub mod events;
pub mod microservice;
pub mod orchestrator;
pub mod plan;
pub mod provider;
pub mod resource;
pub mod retry;
pub mod spec;
pub mod spec_field;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use dialer::{Dialer, DialerSlot, DirectDialer};
pub use engine::{API_PORT, ApplyReport, Deployment, DeploymentBuilder, DestroyReport, Status};
pub use error::{BoxError, CloudError, Error, Result, Retry};
pub use events::{Event, EventSink, PlanSummary, StepProgress};
pub use microservice::{Dns, DnsRecord, Endpoint, Microservice};
pub use orchestrator::{
    BootstrapFacts, ClusterFacts, ExpectedNode, FIELD_MANAGER, Manifest, NODE_ROLE_LABEL, NODE_ROLE_PREFIX, NodeFact,
    NodeState, Orchestrator, ReadinessCheck, STORAGE_TAINT_KEY, STORAGE_TAINT_VALUE,
};
pub use plan::{Action, Plan, PlanItem};
pub use provider::{
    Capabilities, CloudProvider, ClusterRef, InstanceBatch, InstanceRequest, NetworkInfo, NetworkRequest,
    PreflightRequest, ProviderContext, ProviderFactory, ProviderRegistry, ProviderTemplate, SecurityGroupRequest,
    VolumeRequest,
};
pub use resource::{
    CLUSTER_LABEL, CLUSTER_TAG, CloudResource, KEY_LABEL, KEY_TAG, KeyParts, ROLE_LABEL, ROLE_TAG, ResourceKey,
    ResourceKind, ResourceStatus, attr,
};
pub use retry::RetryPolicy;
pub use spec::{ClusterSpec, LoadedSpec, NodeGroup, Role};
pub use spec_field::{PreflightProblem, SpecField};
pub use state::{State, StateStore};
