//! [`SimDialer`]: how vre reaches addresses inside the simulated cloud.
//! Simulated machines serve only the Kubernetes API, on the loopback port
//! the simulator gives each master.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use vre_core::{Dialer, Error, Result};

use crate::running::Running;

/// Maps a simulated master's API address to the loopback port its
/// simulated API server listens on; every other port is refused.
pub(crate) struct SimDialer {
    pub(crate) running: Running,
}

#[async_trait]
impl Dialer for SimDialer {
    async fn dial(&self, addr: SocketAddr) -> Result<SocketAddr> {
        if addr.port() != vre_core::API_PORT {
            return Err(Error::input(
                "provider",
                format!(
                    "the simulator runs no {} on {addr}: simulated machines only serve the Kubernetes API (use kubectl)",
                    if addr.port() == 22 { "SSH server" } else { "service" }
                ),
            ));
        }
        // the master's API server comes up a little after its machine boots
        for _ in 0..600 {
            if let Some(a) = self.running.endpoint_for(addr.ip()).await? {
                return Ok(a);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("the simulated API server of {addr}"),
            after: Duration::from_secs(60),
            hint: "the master never ran kubeadm init: check its user data (`vre status`)".into(),
        })
    }
}
