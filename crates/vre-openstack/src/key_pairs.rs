//! The cluster's Nova key pair: imported from the deployment's public key,
//! replaced when that key changed, found again by its name.

use vre_core::plan::key_pair_name;
use vre_core::{CloudResource, ClusterRef, ResourceKind};

use crate::error::{OpenStackError, ok_if_gone};
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{KeyPair, KeyPairOne};

impl OpenStackProvider {
    /// `GET /os-keypairs/{name}`; `None` when Nova has no such key pair.
    pub(crate) async fn show_key_pair(&self, name: &str) -> OsResult<Option<KeyPair>> {
        match self
            .api()
            .await?
            .json::<KeyPairOne>(requests::show_key_pair(name))
            .await
        {
            Ok(k) => Ok(Some(k.keypair)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /os-keypairs/{name}`; one already gone is success.
    pub(crate) async fn delete_key_pair(&self, name: &str) -> OsResult<()> {
        ok_if_gone(self.api().await?.send(requests::delete_key_pair(name)).await)
    }

    /// The cluster's key pair holding `public_key`, imported when missing or different.
    pub(crate) async fn key_pair(&self, cluster: &ClusterRef, public_key: &str) -> OsResult<CloudResource> {
        let name = key_pair_name(&cluster.name);
        match self.show_key_pair(&name).await? {
            Some(kp) if same_key(&kp.public_key, public_key) => return Ok(key_pair_resource(&kp)),
            // the deployment's key changed (vre init again): replace it
            Some(_) => self.delete_key_pair(&name).await?,
            None => {}
        }
        let made = self
            .api()
            .await?
            .json::<KeyPairOne>(requests::import_key_pair(&name, public_key))
            .await;
        match made {
            Ok(kp) => Ok(key_pair_resource(&kp.keypair)),
            // made meanwhile (a retry after a lost answer, a concurrent apply)
            Err(e) if e.is_conflict() => match self.show_key_pair(&name).await? {
                Some(kp) => Ok(key_pair_resource(&kp)),
                None => Err(e),
            },
            Err(OpenStackError::Api {
                status: 400, message, ..
            }) => Err(OpenStackError::Input {
                field: "ssh.public_key".into(),
                message: format!("Nova refused the public key: {message}"),
            }),
            Err(e) => Err(e),
        }
    }
}

/// A key pair as the engine sees it: Nova names key pairs, it gives them no id.
pub(crate) fn key_pair_resource(kp: &KeyPair) -> CloudResource {
    CloudResource::new(ResourceKind::KeyPair, &kp.name, &kp.name).with_attr("fingerprint", kp.fingerprint.clone())
}

/// Compares OpenSSH public keys by type and key material (not the comment).
fn same_key(a: &str, b: &str) -> bool {
    let parts = |s: &str| s.split_whitespace().take(2).map(str::to_string).collect::<Vec<_>>();
    parts(a) == parts(b)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use vre_core::CloudProvider;

    use super::*;
    use crate::nova_stub;

    #[test]
    fn keys_compare_without_comment() {
        assert!(same_key("ssh-ed25519 AAAAC3Nz you@host", "ssh-ed25519 AAAAC3Nz\n"));
        assert!(!same_key("ssh-ed25519 AAAAC3Nz", "ssh-ed25519 AAAAC3Nx"));
    }

    const PUBLIC_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcjCBr2yxgP2oEr4OyKgNfaJ9N7mb8TlcFIbJ0sqrp6 vre-test";

    /// Throttled key-pair calls fail with errors the engine retries (after
    /// the server's `Retry-After`), and the retry goes through.
    #[tokio::test]
    async fn rate_limited_key_pair_calls_are_retriable() {
        let stub = nova_stub::start().await;
        let p = stub.provider();
        let c = ClusterRef::new("lab");
        let retried = |e: vre_core::Error| {
            assert_eq!(e.retry(), Some(Some(Duration::from_secs(3))), "{e}");
            assert!(e.to_string().contains("HTTP 429"), "{e}");
        };
        // the look-up is throttled, then the import
        retried(p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap_err());
        retried(p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap_err());
        let kp = p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap();
        assert_eq!((kp.kind.clone(), kp.name.as_str()), (ResourceKind::KeyPair, "lab-key"));
        assert_eq!(
            kp.attr("fingerprint"),
            Some("7e:eb:ab:24:ba:d1:e1:88:ae:9a:fb:66:53:df:d3:bd")
        );
        {
            let nova = stub.nova.lock().unwrap();
            assert_eq!(
                nova.imports,
                vec![json!({"keypair": {"name": "lab-key", "public_key": PUBLIC_KEY, "type": "ssh"}})],
                "imported once, with the key as given"
            );
        }
        // the same key again: found, nothing imported
        p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap();
        assert_eq!(stub.nova.lock().unwrap().imports.len(), 1);
        // delete: throttled once, then gone, and gone again is fine
        retried(p.delete(&c, &kp).await.unwrap_err());
        p.delete(&c, &kp).await.unwrap();
        p.delete(&c, &kp).await.unwrap();
        assert_eq!(
            stub.nova.lock().unwrap().calls["DELETE /compute/v2.1/os-keypairs/lab-key"],
            3
        );
    }
}
