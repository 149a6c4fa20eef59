//! vre's DNS: the names that lead to a VRE's edge.
//!
//! - [`CloudflareDns`]: A (or AAAA) records `<subdomain>.<zone>` and
//!   `*.<subdomain>.<zone>` for every edge address in a Cloudflare zone,
//!   through the Cloudflare API v4 with an API token from
//!   `CLOUDFLARE_API_TOKEN`. The subdomain defaults to the cluster name.
//!   Each record carries the comment `vre:cluster=<name>` (record tags are
//!   a paid Cloudflare feature, comments are not), so `vre destroy` finds
//!   and deletes exactly the records of its cluster, even without a state
//!   file, and never a record someone else made.
//! - [`NipIo`]: no account, no API call, no record: the domain is
//!   `<edge-ip>.nip.io`, which nip.io's public resolvers answer for any
//!   `<app>.<edge-ip>.nip.io` with the edge address.
//! - `dns.provider = "none"` is no [`vre_core::Dns`] at all: apps are reached
//!   by the edge address ([`from_spec`] returns `None`).

pub mod cloudflare;
pub mod nipio;

use std::sync::Arc;

pub use cloudflare::{CloudflareDns, TOKEN_ENV, URL_ENV};
pub use nipio::NipIo;
use vre_core::spec::DnsSpec;
use vre_core::{Dns, Result};

/// The DNS of a spec: `None` for `dns.provider = "none"`. Cloudflare reads
/// its token from the environment here and fails, before any network call,
/// when it is missing.
pub fn from_spec(spec: &DnsSpec) -> Result<Option<Arc<dyn Dns>>> {
    Ok(match spec {
        DnsSpec::None => None,
        DnsSpec::NipIo => Some(Arc::new(NipIo)),
        DnsSpec::Cloudflare {
            zone,
            subdomain,
            proxied,
        } => Some(Arc::new(CloudflareDns::from_env(zone, subdomain.as_deref(), *proxied)?)),
    })
}
