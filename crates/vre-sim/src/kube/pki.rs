//! The cluster PKI as kubeadm uses it: the CA from `ca.crt`/`ca.key`, its
//! public-key pin (`sha256:<hex>` of the DER SubjectPublicKeyInfo), the API
//! server's serving certificate signed by that CA, the detached JWS that
//! signs `cluster-info` with a bootstrap token, and the TLS configuration
//! that verifies client certificates against the CA.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// A CA certificate with its key, parsed and checked.
pub struct ClusterCa {
    pub cert_der: Vec<u8>,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("pin", &self.pin())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Parses `ca.crt` and `ca.key` (PKCS#8, PKCS#1 RSA or SEC1 EC PEM) and
    /// checks that they belong together and that the certificate is a CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let cert_der = first_certificate(cert_pem).ok_or("ca.crt holds no PEM certificate")?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| format!("ca.crt is not a valid X.509 certificate: {e}"))?;
        let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err("ca.crt is not a CA certificate (basicConstraints CA:TRUE is missing)".into());
        }
        let key = load_key(key_pem)?;
        if key.subject_public_key_info() != cert.tbs_certificate.subject_pki.raw {
            return Err("ca.key does not match the public key of ca.crt".into());
        }
        Ok(ClusterCa { cert_der, key })
    }

    /// `sha256:<hex>`: the pin `kubeadm join --discovery-token-ca-cert-hash` takes.
    pub fn pin(&self) -> String {
        spki_pin(&self.cert_der).unwrap_or_default()
    }

    /// A serving certificate for the API server (CN `kube-apiserver`,
    /// server auth), with the given DNS names and IP addresses.
    pub fn serving_certificate(
        &self,
        sans: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.clone()), &self.key)
            .map_err(|e| format!("cannot use ca.crt as an issuer: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        let mut seen = std::collections::HashSet::new();
        for san in sans {
            if !seen.insert(san.clone()) {
                continue;
            }
            match san.parse::<IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => {
                    let name = san
                        .clone()
                        .try_into()
                        .map_err(|e| format!("certSANs entry {san:?} is not a valid DNS name: {e}"))?;
                    params.subject_alt_names.push(SanType::DnsName(name));
                }
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let key = KeyPair::generate().map_err(|e| format!("cannot generate the serving key: {e}"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("cannot sign the serving certificate: {e}"))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((
            vec![cert.der().clone(), CertificateDer::from(self.cert_der.clone())],
            key_der,
        ))
    }

    /// Signs a client certificate: CN is the user, O the groups.
    #[cfg(test)]
    pub fn client_certificate(&self, user: &str, groups: &[&str]) -> Result<(String, String), String> {
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.clone()), &self.key)
            .map_err(|e| format!("cannot use ca.crt as an issuer: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(|e| format!("cannot generate a client key: {e}"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("cannot sign the client certificate: {e}"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn first_certificate(pem: &str) -> Option<Vec<u8>> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    rustls_pemfile::certs(&mut reader).next()?.ok().map(|c| c.to_vec())
}

/// `sha256:<hex>` of a DER certificate's SubjectPublicKeyInfo.
pub fn spki_pin(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
    ))
}

/// The pin of the first certificate of a PEM bundle.
pub fn pem_pin(cert_pem: &str) -> Option<String> {
    spki_pin(&first_certificate(cert_pem)?)
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Wraps a raw private key in PKCS#8 with the given AlgorithmIdentifier
/// contents (OID and parameters).
fn pkcs8_wrap(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = der_tlv(0x02, &[0]);
    body.extend(der_tlv(0x30, algorithm));
    body.extend(der_tlv(0x04, key));
    der_tlv(0x30, &body)
}

const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const OID_EC_P256: &[u8] = &[
    0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
];
const OID_EC_P384: &[u8] = &[
    0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22,
];

/// Loads a private key PEM in any of the forms kubeadm and openssl write.
pub fn load_key(pem: &str) -> Result<KeyPair, String> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let key = rustls_pemfile::private_key(&mut reader)
        .map_err(|e| format!("ca.key is not a valid PEM private key: {e}"))?
        .ok_or("ca.key holds no PEM private key")?;
    let candidates: Vec<Vec<u8>> = match &key {
        PrivateKeyDer::Pkcs8(k) => vec![k.secret_pkcs8_der().to_vec()],
        PrivateKeyDer::Pkcs1(k) => vec![pkcs8_wrap(OID_RSA, k.secret_pkcs1_der())],
        PrivateKeyDer::Sec1(k) => vec![
            pkcs8_wrap(OID_EC_P256, k.secret_sec1_der()),
            pkcs8_wrap(OID_EC_P384, k.secret_sec1_der()),
        ],
        _ => return Err("ca.key uses an unsupported private key format".into()),
    };
    for der in candidates {
        if let Ok(k) = KeyPair::try_from(der.as_slice()) {
            return Ok(k);
        }
    }
    Err("ca.key is not an RSA, ECDSA P-256/P-384 or Ed25519 key this simulator can sign with".into())
}

/// The detached JWS (`header..signature`, HS256, `kid` = token id) that
/// kubeadm's bootstrap signer puts in `cluster-info` as `jws-kubeconfig-<id>`.
pub fn detached_jws(content: &str, token_id: &str, token_secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}"));
    let payload = b64.encode(content);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let sig = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", b64.encode(sig.as_ref()))
}

/// Whether a detached JWS verifies `content` for the token.
pub fn verify_detached_jws(jws: &str, content: &str, token_id: &str, token_secret: &str) -> bool {
    jws == detached_jws(content, token_id, token_secret)
}

/// The rustls server configuration of an API server: the serving chain,
/// and client certificates verified against the CA when presented.
pub fn server_config(ca: &ClusterCa, sans: &[String]) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = ca.serving_certificate(sans)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der.clone()))
        .map_err(|e| format!("cannot trust ca.crt: {e}"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("cannot build the client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the serving certificate is unusable: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The subject CN and O values of a verified client certificate.
pub fn client_identity(cert_der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, IsCa};

    pub fn test_ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "kubernetes");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn ca_pin_and_serving_certificate() {
        let (cert, key) = test_ca();
        let ca = ClusterCa::from_pem(&cert, &key).unwrap();
        assert!(ca.pin().starts_with("sha256:"));
        assert_eq!(ca.pin().len(), 7 + 64);
        assert_eq!(pem_pin(&cert).unwrap(), ca.pin());
        let (chain, _) = ca
            .serving_certificate(&["127.0.0.1".into(), "kubernetes".into(), "10.0.0.5".into()])
            .unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let sans = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 3);
        assert!(server_config(&ca, &["127.0.0.1".into()]).is_ok());
        let (client, _) = ca
            .client_certificate("kubernetes-admin", &["kubeadm:cluster-admins"])
            .unwrap();
        let der = first_certificate(&client).unwrap();
        assert_eq!(
            client_identity(&der),
            Some(("kubernetes-admin".into(), vec!["kubeadm:cluster-admins".into()]))
        );
    }

    #[test]
    fn rejects_mismatched_or_non_ca() {
        let (cert, _) = test_ca();
        let (_, other_key) = test_ca();
        assert!(
            ClusterCa::from_pem(&cert, &other_key)
                .unwrap_err()
                .contains("does not match")
        );
        let leaf = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        assert!(
            ClusterCa::from_pem(&leaf.cert.pem(), &leaf.signing_key.serialize_pem())
                .unwrap_err()
                .contains("not a CA")
        );
        assert!(load_key("garbage").is_err());
    }

    #[test]
    fn sec1_keys_load() {
        // A P-256 key as openssl's `ecparam -genkey` writes it (SEC1), built
        // from a PKCS#8 key: PKCS#8 wraps the SEC1 ECPrivateKey in an OCTET STRING.
        let key = KeyPair::generate().unwrap();
        let pkcs8 = key.serialize_der();
        let sec1 = pkcs8[pkcs8.len() - sec1_len(&pkcs8)..].to_vec();
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&sec1)
        );
        let loaded = load_key(&pem).unwrap();
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());
    }

    /// Length of the trailing OCTET STRING content of a PKCS#8 document.
    fn sec1_len(pkcs8: &[u8]) -> usize {
        // SEQUENCE { INTEGER, SEQUENCE alg, OCTET STRING key }: walk the TLVs.
        let mut i = 2 + if pkcs8[1] & 0x80 != 0 {
            (pkcs8[1] & 0x7f) as usize
        } else {
            0
        };
        for _ in 0..2 {
            let (len, hdr) = read_len(&pkcs8[i + 1..]);
            i += 1 + hdr + len;
        }
        let (len, _) = read_len(&pkcs8[i + 1..]);
        len
    }

    fn read_len(b: &[u8]) -> (usize, usize) {
        if b[0] & 0x80 == 0 {
            (b[0] as usize, 1)
        } else {
            let n = (b[0] & 0x7f) as usize;
            (b[1..=n].iter().fold(0usize, |acc, x| (acc << 8) | *x as usize), 1 + n)
        }
    }

    #[test]
    fn jws_is_deterministic_and_checks_the_token() {
        let a = detached_jws("content", "abcdef", "0123456789abcdef");
        assert!(a.contains(".."));
        assert!(verify_detached_jws(&a, "content", "abcdef", "0123456789abcdef"));
        assert!(!verify_detached_jws(&a, "content", "abcdef", "0123456789abcdee"));
    }
}
