//! The cluster's certificate authority, generated locally so that nodes can
//! pin it by hash when they join (no unsafe-skip-ca-verification), and the
//! admin client certificate vre talks to the API server with.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::TryRngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{KubeError, Result};

/// File name of the CA certificate under the PKI directory (0644).
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key under the PKI directory (0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a generated CA is valid (kubeadm's default is ten years too).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long an admin client certificate is valid; a new one is issued on every `connect`.
const CLIENT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating of `notBefore`, for clocks that are a little behind.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// `<dir>/.vre/pki`: where the CA, the join token and other bootstrap secrets live.
pub fn pki_dir(deployment_dir: &Path) -> PathBuf {
    deployment_dir.join(".vre").join("pki")
}

/// The cluster CA: a certificate and its private key.
pub struct ClusterCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    hash: String,
    key: KeyPair,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cert_hash", &self.cert_hash())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A client certificate and key signed by the cluster CA (PEM).
pub struct ClientIdentity {
    pub cert_pem: String,
    key_pem: String,
}

impl ClientIdentity {
    /// The private key, PKCS#8 PEM. Secret: never log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity").field("key", &"<redacted>").finish()
    }
}

impl ClusterCa {
    /// A new CA (ECDSA P-256, which kubeadm and every kube-apiserver since
    /// 1.x accept), valid for ten years.
    pub fn generate(cluster: &str) -> Result<Self> {
        Self::self_signed(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?, cluster)
    }

    /// The CA certificate of `key`, issued now for ten years.
    fn self_signed(key: KeyPair, cluster: &str) -> Result<Self> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kubernetes");
        dn.push(DnType::OrganizationName, format!("vre cluster {cluster}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            hash: spki_sha256(&cert_der)?,
            cert_der,
            key,
        })
    }

    /// Parses a CA from PEM text; checks that the key belongs to the
    /// certificate and that the certificate is a CA still valid now.
    pub fn from_pem(cert_pem: &str, key_pem: &str, origin: &Path) -> Result<Self> {
        let corrupt = |message: String| KubeError::Corrupt {
            path: origin.to_path_buf(),
            message: format!(
                "{message}; restore the cluster's CA from a backup (its nodes pin it), or remove the directory only if no cluster uses it yet"
            ),
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            corrupt(format!(
                "{CA_KEY_FILE} is not a PKCS#8 ECDSA P-256/P-384, Ed25519 or RSA private key ({e}); convert it with `openssl pkcs8 -topk8 -nocrypt`"
            ))
        })?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| corrupt(format!("{CA_CERT_FILE} is not a PEM certificate ({e})")))?;
        let cert_der = pem.contents;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| corrupt(format!("{CA_CERT_FILE} is not an X.509 certificate ({e})")))?;
        if !x509.is_ca() {
            return Err(corrupt(format!(
                "{CA_CERT_FILE} is not a CA certificate (basicConstraints CA:FALSE)"
            )));
        }
        if !x509.validity().is_valid() {
            return Err(corrupt(format!(
                "{CA_CERT_FILE} is not valid now (valid {} to {})",
                x509.validity().not_before,
                x509.validity().not_after
            )));
        }
        if x509.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(corrupt(format!("{CA_KEY_FILE} does not belong to {CA_CERT_FILE}")));
        }
        let hash = format!("sha256:{}", hex::encode(Sha256::digest(x509.public_key().raw)));
        Ok(ClusterCa {
            cert_pem: cert_pem.to_string(),
            cert_der,
            hash,
            key,
        })
    }

    /// Loads `ca.crt` and `ca.key` from `pki_dir`, or creates them (0644 and
    /// 0600) when neither exists. Returns the CA and whether it was created.
    ///
    /// The key is written first: a run interrupted before the certificate
    /// was written leaves only `ca.key`, which nothing used yet (user data
    /// is made after both exist). The certificate is then issued again from
    /// that key: same key, same pin (`sha256:` of the public key).
    pub fn load_or_create(pki_dir: &Path, cluster: &str) -> Result<(Self, bool)> {
        let cert_path = pki_dir.join(CA_CERT_FILE);
        let key_path = pki_dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Ok((Self::load(pki_dir)?, false)),
            (false, false) => {
                let ca = Self::generate(cluster)?;
                create_private_dir(pki_dir)?;
                write_file(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)?;
                write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
                Ok((ca, true))
            }
            (true, false) => Err(KubeError::Corrupt {
                path: key_path,
                message: format!(
                    "is missing while {} exists; restore it from a backup (nodes pin this CA)",
                    cert_path.display()
                ),
            }),
            (false, true) => {
                let key = KeyPair::from_pem(&read_text(&key_path)?).map_err(|e| KubeError::Corrupt {
                    path: key_path.clone(),
                    message: format!(
                        "is not a PKCS#8 private key ({e}) and {CA_CERT_FILE} is missing; remove the directory only if no cluster uses it yet"
                    ),
                })?;
                let ca = Self::self_signed(key, cluster)?;
                write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
                tracing::warn!(
                    path = %cert_path.display(),
                    hash = ca.cert_hash(),
                    "the CA certificate was missing (an interrupted run?): issued again from ca.key, same pin"
                );
                Ok((ca, false))
            }
        }
    }

    /// Loads an existing CA from `pki_dir` (never creates one).
    pub fn load(pki_dir: &Path) -> Result<Self> {
        let cert_path = pki_dir.join(CA_CERT_FILE);
        let key_path = pki_dir.join(CA_KEY_FILE);
        Self::from_pem(&read_text(&cert_path)?, &read_text(&key_path)?, pki_dir)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM. Secret: it goes only into the
    /// master's user data (0600) and `ca.key` (0600).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// `sha256:<hex>`: the pin kubeadm join checks
    /// (`--discovery-token-ca-cert-hash`), the SHA-256 of the DER
    /// SubjectPublicKeyInfo of the CA certificate.
    pub fn cert_hash(&self) -> &str {
        &self.hash
    }

    /// Issues a client certificate (`CN=<common_name>`, `O=<groups>`),
    /// clientAuth only, valid for a year, with a fresh P-256 key.
    pub fn issue_client(&self, common_name: &str, groups: &[&str]) -> Result<ClientIdentity> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CLIENT_VALIDITY;
        params.serial_number = Some(random_serial()?);
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ClientIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// `sha256:<hex>` of the DER SubjectPublicKeyInfo of a DER certificate.
pub fn spki_sha256(cert_der: &[u8]) -> Result<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| KubeError::Failed(format!("the CA certificate is not X.509 DER ({e})")))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(x509.public_key().raw))))
}

/// A positive 128-bit serial number from the OS RNG.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| KubeError::Random(e.to_string()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| KubeError::file(dir, "create directory", e))
}

/// The text of `path`; an error names the file.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| KubeError::file(path, "read", e))
}

/// Writes `bytes` to `path` atomically (a temporary file in the same
/// directory, created with `mode`, then renamed over `path`).
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // an existing temporary file keeps its old mode: set it explicitly
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        KubeError::file(path, "write", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_once_then_reused_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_dir(dir.path());
        let (ca, created) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            assert_eq!(mode(&pki.join(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&pki.join(CA_CERT_FILE)), 0o644);
            assert_eq!(mode(&pki), 0o700);
        }
        let (again, created) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        assert!(!created);
        assert_eq!(ca.cert_hash(), again.cert_hash());
        assert_eq!(ca.cert_pem(), again.cert_pem());
        assert!(ca.cert_hash().starts_with("sha256:"));
        assert_eq!(ca.cert_hash().len(), "sha256:".len() + 64);
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn half_a_ca_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_dir(dir.path());
        ClusterCa::load_or_create(&pki, "lab").unwrap();
        fs::remove_file(pki.join(CA_KEY_FILE)).unwrap();
        let e = ClusterCa::load_or_create(&pki, "lab").unwrap_err().to_string();
        assert!(e.contains("ca.key") && e.contains("missing"), "{e}");
    }

    #[test]
    fn a_key_left_without_its_certificate_gets_it_again_with_the_same_pin() {
        // a run killed between writing ca.key and ca.crt
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_dir(dir.path());
        let (first, _) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        let key_before = fs::read_to_string(pki.join(CA_KEY_FILE)).unwrap();
        fs::remove_file(pki.join(CA_CERT_FILE)).unwrap();
        let (again, created) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        assert!(!created, "the CA is not new: its key is");
        assert_eq!(again.cert_hash(), first.cert_hash(), "joins pinned before still verify");
        assert_eq!(fs::read_to_string(pki.join(CA_KEY_FILE)).unwrap(), key_before);
        #[cfg(unix)]
        assert_eq!(mode(&pki.join(CA_CERT_FILE)), 0o644);
        let (loaded, _) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        assert_eq!(loaded.cert_pem(), again.cert_pem(), "written once, then loaded");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let a = ClusterCa::generate("a").unwrap();
        let b = ClusterCa::generate("b").unwrap();
        let e = ClusterCa::from_pem(a.cert_pem(), &b.key_pem(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not belong"), "{e}");
    }

    /// `/usr/bin/openssl`, or `None` (saying the test is skipped) where it
    /// is not installed.
    fn system_openssl() -> Option<&'static Path> {
        let openssl = Path::new("/usr/bin/openssl");
        if !openssl.exists() {
            eprintln!("skipped: /usr/bin/openssl is not installed");
            return None;
        }
        Some(openssl)
    }

    #[test]
    fn ca_hash_matches_openssl() {
        let Some(openssl) = system_openssl() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_dir(dir.path());
        let (ca, _) = ClusterCa::load_or_create(&pki, "lab").unwrap();
        let cert = pki.join(CA_CERT_FILE);
        // openssl x509 -pubkey -noout -in ca.crt | openssl pkey -pubin -outform der | sha256sum
        let pubkey = std::process::Command::new(openssl)
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(pubkey.status.success());
        let mut pkey = std::process::Command::new(openssl)
            .args(["pkey", "-pubin", "-outform", "der"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pkey.stdin.take().unwrap().write_all(&pubkey.stdout).unwrap();
        let der = pkey.wait_with_output().unwrap();
        assert!(der.status.success());
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(&der.stdout)));
        assert_eq!(ca.cert_hash(), expected);
    }

    #[test]
    fn openssl_accepts_the_ca_and_verifies_the_admin_cert() {
        let Some(openssl) = system_openssl() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("lab").unwrap();
        let admin = ca.issue_client("vre-admin", &["system:masters"]).unwrap();
        let ca_path = dir.path().join("ca.crt");
        let admin_path = dir.path().join("admin.crt");
        fs::write(&ca_path, ca.cert_pem()).unwrap();
        fs::write(&admin_path, &admin.cert_pem).unwrap();
        let verify = std::process::Command::new(openssl)
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(&ca_path)
            .arg(&admin_path)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
        let subject = std::process::Command::new(openssl)
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(&admin_path)
            .output()
            .unwrap();
        let subject = String::from_utf8_lossy(&subject.stdout);
        assert!(
            subject.contains("CN=vre-admin") && subject.contains("O=system:masters"),
            "{subject}"
        );
    }

    #[test]
    fn admin_cert_names_user_and_group() {
        let ca = ClusterCa::generate("lab").unwrap();
        let id = ca.issue_client("vre-admin", &["system:masters"]).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(id.cert_pem.as_bytes()).unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        let cn: Vec<_> = x
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let o: Vec<_> = x
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, ["vre-admin"]);
        assert_eq!(o, ["system:masters"]);
        assert!(!x.is_ca());
        let (_, ca_x) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(x.issuer(), ca_x.subject());
        assert!(id.key_pem().contains("PRIVATE KEY"));
        assert!(!format!("{id:?}").contains("PRIVATE KEY"));
    }
}
