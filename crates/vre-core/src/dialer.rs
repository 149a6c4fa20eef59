//! How vre reaches an address inside the cloud (the master's API server, a
//! node's SSH port). Real clouds are dialled directly; the embedded
//! simulator installs a [`Dialer`] that maps machine addresses to the
//! loopback ports its simulated services listen on.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::error::Result;

/// Maps an address inside the cloud to the one vre connects to.
#[async_trait]
pub trait Dialer: Send + Sync {
    /// The address to connect to for `addr`; an error when nothing can
    /// serve it (says why).
    async fn dial(&self, addr: SocketAddr) -> Result<SocketAddr>;
}

/// Connects to the address itself (every real cloud).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectDialer;

#[async_trait]
impl Dialer for DirectDialer {
    async fn dial(&self, addr: SocketAddr) -> Result<SocketAddr> {
        Ok(addr)
    }
}

/// The dialer of a deployment, filled at most once by the provider factory
/// that needs one (shared by every clone of the [`crate::ProviderContext`]).
#[derive(Clone, Default)]
pub struct DialerSlot(Arc<OnceLock<Arc<dyn Dialer>>>);

impl std::fmt::Debug for DialerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "DialerSlot(installed)"
        } else {
            "DialerSlot(direct)"
        })
    }
}

impl DialerSlot {
    /// Installs `dialer`; a second install is ignored (the first wins).
    pub fn install(&self, dialer: Arc<dyn Dialer>) {
        let _ = self.0.set(dialer);
    }

    /// The installed dialer, or [`DirectDialer`].
    pub fn get(&self) -> Arc<dyn Dialer> {
        self.0.get().cloned().unwrap_or_else(|| Arc::new(DirectDialer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Loopback;

    #[async_trait]
    impl Dialer for Loopback {
        async fn dial(&self, addr: SocketAddr) -> Result<SocketAddr> {
            Ok(SocketAddr::new([127, 0, 0, 1].into(), addr.port()))
        }
    }

    #[tokio::test]
    async fn direct_until_a_dialer_is_installed() {
        let slot = DialerSlot::default();
        let addr: SocketAddr = "10.0.0.10:6443".parse().unwrap();
        assert_eq!(slot.get().dial(addr).await.unwrap(), addr);
        let shared = slot.clone();
        shared.install(Arc::new(Loopback));
        assert_eq!(slot.get().dial(addr).await.unwrap(), "127.0.0.1:6443".parse().unwrap());
    }
}
