//! The scripted HTTP endpoint of vre-testkit, with this cloud's token
//! answers and a client that polls fast.

use crate::auth::{ServiceAccountKey, TokenSource};
use crate::client::{ComputeClient, PollPolicy};
use std::path::Path;

pub use vre_testkit::http::{Reply, Script, serve};

/// A token answer as Google's endpoint gives it.
pub fn token_reply(token: &str, expires_in: u64) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
    )
}

/// A key whose token_uri is `<base>token`.
pub fn key_for(base: &str) -> ServiceAccountKey {
    let json = crate::test_keys::service_account_json(
        "vre-test-project",
        "vre@vre-test-project.iam.gserviceaccount.com",
        &format!("{base}token"),
    );
    ServiceAccountKey::from_json(&json, Path::new("test-key.json")).expect("test key parses")
}

/// A client of the scripted server, polling fast.
pub fn client_for(base: &str) -> ComputeClient {
    let http = reqwest::Client::new();
    let tokens = TokenSource::new(key_for(base), crate::auth::CLOUD_PLATFORM_SCOPE, http.clone());
    ComputeClient::new(http, base, tokens).with_poll(PollPolicy {
        initial: std::time::Duration::from_millis(1),
        max: std::time::Duration::from_millis(5),
        factor: 2.0,
        timeout: std::time::Duration::from_secs(20),
    })
}
