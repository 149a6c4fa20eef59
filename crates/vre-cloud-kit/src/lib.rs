//! What every REST cloud provider of vre needs and should write once:
//!
//! * [`RestCall`]: one API request as data (operation id, verb, path
//!   template and its parameters, query, JSON body, purpose), with
//!   [`RestCall::path`] filling the template (percent-encoded);
//! * [`TokenCache`] and [`request_token`]: an OAuth2 bearer token fetched
//!   from a token endpoint and cached until shortly before it expires, one
//!   refresh in flight at a time, and [`send_with_bearer`] sending one
//!   request with it (renewed once on a 401);
//! * [`PollPolicy`]: the one backoff policy every poller uses (operations,
//!   settling resources, booting instances), honouring `Retry-After`;
//! * [`wait_instances`]: the instance-wait loop that asks the cloud with one
//!   listing per round for all instances (never one GET per instance),
//!   generic over how a cloud lists and classifies them ([`Observed`]);
//! * [`answer`]: constructors mapping a cloud's answer to vre-core's error
//!   kinds (not found, quota, throttled with `Retry-After`, transient,
//!   credentials, input, unexpected answer).
//!
//! The kit depends on vre-core and the workspace's HTTP and async crates
//! (reqwest, tokio, serde, thiserror) only; a provider crate keeps what is
//! its own (its wire types, request signing, its error codes and what they
//! mean).
//!
//! A provider uses what fits its shape: vre-gcp and vre-azure use all of
//! it; vre-aws (signed query requests, no bearer tokens) uses the polling
//! policy, the wait loop and the error constructors. A cloud joins the wait
//! loop by writing one closure that lists its instances once and says for
//! each awaited one whether it is still booting ([`Observed::Pending`]) or
//! settled ([`Observed::Settled`]); see [`wait_instances`].

#![warn(missing_docs)]

pub mod answer;
mod call;
mod poll;
mod send;
mod token;
mod wait;

pub use answer::retry_after;
pub use call::{RestCall, encode_segment, fill_template};
pub use poll::PollPolicy;
pub use send::{RawAnswer, send_with_bearer};
pub use token::{AccessToken, TOKEN_REQUEST, TokenCache, TokenError, TokenRefused, request_token};
pub use wait::{Observed, Rounds, WaitWording, names, wait_instances, wait_instances_reported};
