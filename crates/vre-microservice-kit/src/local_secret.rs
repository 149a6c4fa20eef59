//! Secrets vre generates once for a cluster (dashboard passwords, S3 keys,
//! app tokens) and keeps in the deployment directory, so that applying the
//! same spec again does not rotate them.
//!
//! Each secret is one file `<dir>/.vre/secrets/<name>`, created with mode
//! 0600 in a 0700 directory, holding the value and nothing else. Values come
//! from the operating system's random number generator. Every microservice
//! crate (load balancer, storage, apps) keeps its generated secrets here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use vre_core::{Error, Result};

/// Characters of generated values: letters and digits, safe in URLs, shells,
/// YAML and htpasswd files.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The directory holding a deployment's generated secrets.
pub fn secrets_dir(deployment_dir: &Path) -> PathBuf {
    deployment_dir.join(".vre").join("secrets")
}

/// `len` random characters from `[A-Za-z0-9]`, drawn from the OS RNG with
/// rejection sampling (no modulo bias).
pub fn random_token(len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    // the largest multiple of the alphabet size below 256
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| {
            Error::io(
                "reading the operating system's random number generator",
                std::io::Error::other(e.to_string()),
            )
        })?;
        for b in buf.iter().copied().filter(|b| *b < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Reads the secret `name` of the deployment in `deployment_dir`, or creates it
/// with `generate` (0600) the first time. `name` is a file name such as
/// `s3-secret-key`.
pub fn load_or_create(deployment_dir: &Path, name: &str, generate: impl FnOnce() -> Result<String>) -> Result<String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::component(
            "secrets",
            format!("\"{name}\" is not a valid secret file name"),
        ));
    }
    let dir = secrets_dir(deployment_dir);
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(v) => {
            let v = v.trim_end_matches(['\n', '\r']).to_string();
            if v.is_empty() {
                return Err(Error::component(
                    "secrets",
                    format!("{} is empty; delete it so vre generates a new value", path.display()),
                ));
            }
            return Ok(v);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    }
    let value = generate()?;
    create_private_dir(&dir)?;
    write_private(&path, &value)?;
    Ok(value)
}

/// Like [`load_or_create`] with a random token of `len` characters.
pub fn load_or_create_token(deployment_dir: &Path, name: &str, len: usize) -> Result<String> {
    load_or_create(deployment_dir, name, || random_token(len))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Writes `value` to a new file (0600), through a temporary file renamed in
/// place so a crash never leaves a half-written secret.
fn write_private(path: &Path, value: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut f = o.open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_length_and_alphabet_asked_for_and_differ() {
        let a = random_token(40).unwrap();
        let b = random_token(40).unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
        assert_eq!(random_token(0).unwrap(), "");
        assert_eq!(random_token(200).unwrap().len(), 200);
    }

    #[test]
    fn a_secret_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_token(dir.path(), "dashboard-password", 24).unwrap();
        let again = load_or_create(dir.path(), "dashboard-password", || panic!("must not regenerate")).unwrap();
        assert_eq!(first, again);
        let path = secrets_dir(dir.path()).join("dashboard-password");
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{first}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            let d = fs::metadata(secrets_dir(dir.path())).unwrap();
            assert_eq!(d.permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn bad_names_and_empty_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_or_create_token(dir.path(), "../escape", 8).is_err());
        assert!(load_or_create_token(dir.path(), "", 8).is_err());
        fs::create_dir_all(secrets_dir(dir.path())).unwrap();
        fs::write(secrets_dir(dir.path()).join("empty"), "\n").unwrap();
        let e = load_or_create_token(dir.path(), "empty", 8).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }
}
