//! The scripted HTTP endpoint of vre-testkit, with this cloud's token
//! answers and a client that polls fast.

use crate::auth::{ClientCredentials, TokenSource};
use crate::client::{ArmClient, PollPolicy};

pub use vre_testkit::http::{Reply, Script, serve};

/// A token answer as Microsoft Entra ID gives it.
pub fn token_reply(token: &str, expires_in: u64) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}),
    )
}

/// The tenant of the test service principal.
pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";

/// Tokens from `<base><TENANT>/oauth2/v2.0/token`.
pub fn tokens_for(base: &str) -> TokenSource {
    let credentials = ClientCredentials::new(TENANT, "66666666-7777-4888-9999-000000000000", "test-secret-value");
    TokenSource::new(credentials, base, crate::auth::ARM_SCOPE, reqwest::Client::new())
}

/// A client of the scripted server, polling fast.
pub fn client_for(base: &str) -> ArmClient {
    ArmClient::new(reqwest::Client::new(), base, tokens_for(base))
        .expect("a valid URL")
        .with_poll(PollPolicy {
            initial: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(5),
            factor: 2.0,
            timeout: std::time::Duration::from_secs(20),
        })
}
