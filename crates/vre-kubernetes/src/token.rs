//! The kubeadm bootstrap token nodes join with: `[a-z0-9]{6}.[a-z0-9]{16}`,
//! from the OS RNG, with an expiry (never `--token-ttl=0`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{KubeError, Result};
use crate::pki::{create_private_dir, read_text, write_file};

/// File name of the token under the PKI directory (0600).
pub const TOKEN_FILE: &str = "bootstrap-token.json";
/// The group kubeadm puts joining nodes in (its RBAC lets them create CSRs).
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Secret type of bootstrap tokens.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A bootstrap token and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
    expires: OffsetDateTime,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires", &self.expires_rfc3339())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct TokenFile {
    token: String,
    expires: String,
}

impl BootstrapToken {
    /// A fresh token valid for `ttl` from `now`.
    pub fn generate(ttl: Duration, now: OffsetDateTime) -> Result<Self> {
        Ok(BootstrapToken {
            id: random_chars(6)?,
            secret: random_chars(16)?,
            expires: now + ttl,
        })
    }

    /// Parses `id.secret`, checking the format kubeadm requires.
    pub fn parse(token: &str, expires: OffsetDateTime) -> Option<Self> {
        let (id, secret) = token.split_once('.')?;
        let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
        (ok(id, 6) && ok(secret, 16)).then(|| BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
            expires,
        })
    }

    /// Loads the token from `pki_dir`, or makes a new one when there is
    /// none or when less than `min_remaining` of its life is left (nodes
    /// that boot later must still be able to join). Returns the token and
    /// whether it is new.
    pub fn load_or_create(
        pki_dir: &Path,
        ttl: Duration,
        min_remaining: Duration,
        now: OffsetDateTime,
    ) -> Result<(Self, bool)> {
        let path = pki_dir.join(TOKEN_FILE);
        if path.exists() {
            let current = Self::load(&path)?;
            if current.remaining(now) >= min_remaining {
                return Ok((current, false));
            }
        }
        let token = Self::generate(ttl, now)?;
        create_private_dir(pki_dir)?;
        let file = TokenFile {
            token: token.token(),
            expires: token.expires_rfc3339(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| KubeError::Failed(e.to_string()))?;
        write_file(&path, &text, 0o600)?;
        Ok((token, true))
    }

    /// Loads the token file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let corrupt = |message: String| KubeError::Corrupt {
            path: PathBuf::from(path),
            message: format!("{message}; remove it and vre creates a new join token"),
        };
        let text = read_text(path)?;
        let file: TokenFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let expires = OffsetDateTime::parse(&file.expires, &Rfc3339)
            .map_err(|e| corrupt(format!("`expires` is not an RFC 3339 time ({e})")))?;
        Self::parse(&file.token, expires).ok_or_else(|| corrupt("`token` is not [a-z0-9]{6}.[a-z0-9]{16}".into()))
    }

    /// The token id (public: it names the Secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `id.secret`. Secret: goes only into user data and 0600 files.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    pub fn expires(&self) -> OffsetDateTime {
        self.expires
    }

    pub fn expires_rfc3339(&self) -> String {
        self.expires
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.expires.unix_timestamp().to_string())
    }

    /// Life left at `now` (zero once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        let left = self.expires - now;
        if left.is_negative() {
            Duration::ZERO
        } else {
            left.unsigned_abs()
        }
    }

    /// The `bootstrap-token-<id>` Secret in `kube-system`, as kubeadm
    /// creates it: authentication and signing usages, kubeadm's group.
    pub fn secret(&self) -> Secret {
        let data: BTreeMap<String, String> = [
            ("token-id", self.id.clone()),
            ("token-secret", self.secret.clone()),
            ("expiration", self.expires_rfc3339()),
            ("usage-bootstrap-authentication", "true".into()),
            ("usage-bootstrap-signing", "true".into()),
            ("auth-extra-groups", BOOTSTRAP_GROUP.into()),
            ("description", "vre join token".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("bootstrap-token-{}", self.id)),
                namespace: Some("kube-system".into()),
                ..ObjectMeta::default()
            },
            type_: Some(BOOTSTRAP_TOKEN_TYPE.into()),
            string_data: Some(data),
            ..Secret::default()
        }
    }
}

/// A Go duration string, as Go's `time.Duration.String` writes it
/// (`23h59m30s`, `10m0s`, `45s`), which kubeadm's `ttl` and timeouts take.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `n` characters uniformly from `[a-z0-9]`, by rejection sampling OS random bytes.
fn random_chars(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| KubeError::Random(e.to_string()))?;
        // 252 = 7 * 36: bytes above it would bias the first characters
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[usize::from(*b % 36)] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const HOUR: Duration = Duration::from_secs(3600);

    fn is_token(t: &str) -> bool {
        let b = t.as_bytes();
        b.len() == 23
            && b[6] == b'.'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_lowercase() || c.is_ascii_digit())
    }

    #[test]
    fn format_and_uniqueness() {
        let now = OffsetDateTime::now_utc();
        let a = BootstrapToken::generate(DAY, now).unwrap();
        let b = BootstrapToken::generate(DAY, now).unwrap();
        assert!(is_token(&a.token()), "{}", a.token());
        assert_ne!(a.token(), b.token());
        assert_eq!(a.remaining(now), DAY);
        assert!(!format!("{a:?}").contains(&a.token()[7..]));
    }

    #[test]
    fn stored_0600_reused_and_renewed_when_expiring() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let (t1, new1) = BootstrapToken::load_or_create(dir.path(), DAY, 2 * HOUR, now).unwrap();
        assert!(new1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
        }
        let (t2, new2) = BootstrapToken::load_or_create(dir.path(), DAY, 2 * HOUR, now + 10 * HOUR).unwrap();
        assert!(!new2);
        assert_eq!(t1.token(), t2.token());
        // 23 h later only 1 h is left: a new token
        let (t3, new3) = BootstrapToken::load_or_create(dir.path(), DAY, 2 * HOUR, now + 23 * HOUR).unwrap();
        assert!(new3);
        assert_ne!(t1.token(), t3.token());
        // and past the expiry too
        let (t4, new4) = BootstrapToken::load_or_create(dir.path(), DAY, 2 * HOUR, now + 72 * HOUR).unwrap();
        assert!(new4);
        assert_ne!(t3.token(), t4.token());
        assert_eq!(BootstrapToken::load(&dir.path().join(TOKEN_FILE)).unwrap(), t4);
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TOKEN_FILE),
            r#"{"token":"ABC.def","expires":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let e = BootstrapToken::load_or_create(dir.path(), DAY, HOUR, OffsetDateTime::now_utc())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bootstrap-token.json") && e.contains("remove it"), "{e}");
    }

    #[test]
    fn secret_is_a_kubeadm_bootstrap_token() {
        let now = OffsetDateTime::parse("2030-01-01T00:00:00Z", &Rfc3339).unwrap();
        let t = BootstrapToken::generate(DAY, now).unwrap();
        let s = t.secret();
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(format!("bootstrap-token-{}", t.id()).as_str())
        );
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some(BOOTSTRAP_TOKEN_TYPE));
        let d = s.string_data.unwrap();
        assert_eq!(d["token-id"], t.id());
        assert_eq!(format!("{}.{}", d["token-id"], d["token-secret"]), t.token());
        assert_eq!(d["expiration"], "2030-01-02T00:00:00Z");
        assert_eq!(d["usage-bootstrap-authentication"], "true");
        assert_eq!(d["auth-extra-groups"], BOOTSTRAP_GROUP);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(DAY), "24h0m0s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(go_duration(Duration::from_secs(600)), "10m0s");
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
    }
}
