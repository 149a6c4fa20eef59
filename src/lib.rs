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
//!   CloudProvider   vre-openstack, vre-aws, vre-gcp, vre-azure, vre-local (on vre-sim)
//!                   all on vre-core: spec, traits, engine, state, events
//! ```
//!
//! Use [`Components::standard`] for everything built in, add a cloud with
//! [`Components::register_provider`], and open a deployment directory with
//! [`Components::open`]; or build a [`Deployment`] yourself.
//!
//! # Cargo features
//!
//! Each cloud is a feature, all on by default: `openstack`, `aws`, `gcp`,
//! `azure`, and `local` (the embedded simulator and the provider that drives
//! it; implies `openstack`). With a feature off, its crate is not compiled,
//! its module below is absent, and a spec naming its provider fails with a
//! message naming the feature. OpenStack alone:
//!
//! ```sh
//! cargo build --no-default-features --features openstack
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cli;
mod components;
pub mod keys;
mod omitted;

pub use components::{Components, Opened};
pub use vre_core as core;
pub use vre_core::*;

pub use vre_dns as dns;
pub use vre_kubernetes as kubernetes;
pub use vre_loadbalancer as loadbalancer;
pub use vre_microservice_kit as microservice_kit;
pub use vre_storage as storage;

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use vre_aws as aws;
#[cfg(feature = "azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure")))]
pub use vre_azure as azure;
#[cfg(feature = "gcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "gcp")))]
pub use vre_gcp as gcp;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use vre_local as local;
#[cfg(feature = "openstack")]
#[cfg_attr(docsrs, doc(cfg(feature = "openstack")))]
pub use vre_openstack as openstack;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use vre_sim as sim;

/// The README's code blocks, compiled and checked as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
