//! Shared by the integration tests: the OpenAPI checker and the in-memory ARM.

pub mod fake_arm;
pub mod openapi;
