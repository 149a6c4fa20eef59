//! `vre`: on-demand Virtual Research Environments.
//!
//! One command turns a cloud account (OpenStack, AWS, GCP, Azure, or the
//! embedded simulator) into a Kubernetes cluster with shared POSIX storage,
//! object storage, an edge load balancer and DNS; one more tears it down.
//!
//! This crate is the facade (like `kube` over its parts): it re-exports the
//! layers and wires them together.
//!
//! ```text
//!   Microservices   vre-storage, vre-loadbalancer, vre-apps  (+ vre-dns)
//!   Orchestrator    vre-kubernetes
//!   CloudProvider   vre-openstack, vre-aws, vre-gcp, vre-azure, local (vre-sim)
//!                   all on vre-core: spec, traits, engine, state, events
//! ```
//!
//! Use [`Components::standard`] for everything built in, add a cloud with
//! [`Components::register_provider`], and open a deployment directory with
//! [`Components::open`]; or build a [`Deployment`] yourself.

pub mod cli;
mod components;
pub mod keys;
pub mod local;

pub use components::{Components, Opened};
pub use vre_core as core;
pub use vre_core::*;

pub use vre_aws as aws;
pub use vre_azure as azure;
pub use vre_dns as dns;
pub use vre_gcp as gcp;
pub use vre_kubernetes as kubernetes;
pub use vre_loadbalancer as loadbalancer;
pub use vre_openstack as openstack;
pub use vre_sim as sim;
pub use vre_storage as storage;
