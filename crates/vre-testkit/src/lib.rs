//! Test support for crates that add a cloud to vre (dev-dependency only).
//!
//! - [`fake_api`]: the front the in-memory cloud APIs of provider tests
//!   share (serving, request log, bearer tokens, injected throttling,
//!   refused requests);
//! - [`http`]: a scripted HTTP endpoint on 127.0.0.1 that answers recorded
//!   responses per route and logs every request, for unit tests of REST
//!   clients (token endpoints, long-running operations, error answers);
//! - [`path_template`]: matching a request path against an API
//!   description's `{name}` path templates;
//! - [`template`]: the checks every provider's `vre init` template must
//!   pass: the spec it yields validates (the provider's table included), and
//!   a typo in that table is reported with its line.

pub mod fake_api;
pub mod http;
pub mod path_template;
pub mod template;
