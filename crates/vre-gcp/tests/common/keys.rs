//! Service-account keys for tests: a fresh RSA key from
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` when openssl
//! is installed, otherwise the TEST-ONLY key checked in under
//! `tests/fixtures/` (it protects nothing). Shared by the unit tests
//! (`src/lib.rs` includes this file) and the integration tests.

#![allow(dead_code)]

use std::sync::OnceLock;

/// The TEST-ONLY fallback key (a comment precedes the PEM block).
const FIXTURE: &str = include_str!("../fixtures/TEST-ONLY-rsa-key.pem");

/// A PKCS#8 PEM RSA private key, generated once per test process.
pub fn rsa_pkcs8_pem() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let generated = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .filter(|pem| pem.contains("-----BEGIN PRIVATE KEY-----"));
        match generated {
            Some(pem) => pem,
            None => {
                let start = FIXTURE.find("-----BEGIN").expect("the fixture holds a PEM block");
                FIXTURE[start..].to_string()
            }
        }
    })
}

/// A service-account key file's JSON, as the console issues it.
pub fn service_account_json(project: &str, email: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": rsa_pkcs8_pem(),
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}
