//! The deployment's SSH key pair.

use std::path::Path;

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use vre_core::state::{write_atomic, write_private};
use vre_core::{Error, Result};

/// File name of the private key inside a deployment directory.
pub const PRIVATE_KEY: &str = "ssh_key";
/// File name of the public key inside a deployment directory.
pub const PUBLIC_KEY: &str = "ssh_key.pub";

/// Writes a new ed25519 key pair into `dir`: `ssh_key` (OpenSSH format,
/// 0600) and `ssh_key.pub`. An existing pair is kept.
pub fn write_ssh_key_pair(dir: &Path, comment: &str) -> Result<()> {
    if dir.join(PRIVATE_KEY).exists() && dir.join(PUBLIC_KEY).exists() {
        return Ok(());
    }
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| Error::component("ssh key", format!("cannot generate an SSH key: {e}")))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::component("ssh key", format!("cannot encode the SSH key: {e}")))?;
    let mut public = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::component("ssh key", format!("cannot encode the SSH public key: {e}")))?;
    public.push(' ');
    public.push_str(comment);
    public.push('\n');
    write_private(&dir.join(PRIVATE_KEY), private.as_bytes())?;
    write_atomic(&dir.join(PUBLIC_KEY), public.as_bytes(), false)
}
