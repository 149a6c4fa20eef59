//! nip.io: wildcard DNS for any IPv4 address, with no account and no records.

use std::net::IpAddr;

use async_trait::async_trait;
use vre_core::{CloudResource, Dns, DnsRecord, Result};

/// `<edge-ip>.nip.io`: `jupyter.192.0.2.7.nip.io` resolves to 192.0.2.7.
#[derive(Clone, Copy, Debug, Default)]
pub struct NipIo;

#[async_trait]
impl Dns for NipIo {
    fn name(&self) -> &str {
        "nip.io"
    }

    /// The first IPv4 edge address (nip.io has no IPv6 form).
    fn domain(&self, _cluster: &str, edge_ips: &[IpAddr]) -> Option<String> {
        edge_ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(format!("{v4}.nip.io")),
            IpAddr::V6(_) => None,
        })
    }

    fn records(&self, _cluster: &str, _edge_ips: &[IpAddr]) -> Vec<DnsRecord> {
        Vec::new()
    }

    async fn ensure_records(&self, _cluster: &str, _records: &[DnsRecord]) -> Result<Vec<CloudResource>> {
        Ok(Vec::new())
    }

    async fn list_records(&self, _cluster: &str) -> Result<Vec<CloudResource>> {
        Ok(Vec::new())
    }

    async fn delete_record(&self, _record: &CloudResource) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn domain_is_the_first_ipv4_edge_and_nothing_is_made() {
        let ips: Vec<IpAddr> = vec!["2001:db8::1".parse().unwrap(), "192.0.2.7".parse().unwrap()];
        assert_eq!(NipIo.domain("lab", &ips).as_deref(), Some("192.0.2.7.nip.io"));
        assert_eq!(NipIo.domain("lab", &[]), None);
        assert!(NipIo.records("lab", &ips).is_empty());
        assert!(NipIo.ensure_records("lab", &[]).await.unwrap().is_empty());
        assert!(NipIo.list_records("lab").await.unwrap().is_empty());
    }
}
