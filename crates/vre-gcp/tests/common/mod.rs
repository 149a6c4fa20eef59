//! Shared by the integration tests: the discovery checker, test keys and
//! the in-memory Compute Engine.

pub mod discovery;
pub mod fake_compute;
pub mod keys;
