//! DNS records in a Cloudflare zone through the Cloudflare API v4
//! (<https://developers.cloudflare.com/api/resources/dns/subresources/records/>).
//!
//! Every answer comes in Cloudflare's envelope
//! `{"success": bool, "errors": [{"code", "message"}], "messages": [...], "result": ..., "result_info": {...}}`;
//! lists are paged (`page`, `per_page`, `result_info.total_pages`).
//! 429 and 5xx answers are retriable ([`CloudError::http`]); the engine
//! retries them with backoff, honouring `Retry-After`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::OnceCell;
use vre_core::{CloudError, CloudResource, Dns, DnsRecord, Error, ResourceKind, Result, attr};

/// The environment variable holding the API token (permission: Zone / DNS / Edit on the zone).
pub const TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";
/// Overrides the API base URL (tests point it at a local server).
pub const URL_ENV: &str = "CLOUDFLARE_API_URL";
/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4";
/// Attribute holding the zone id of a record resource.
pub const ZONE_ID_ATTR: &str = "zone_id";
/// Attribute holding the record type (`A`, `AAAA`).
pub const TYPE_ATTR: &str = "type";
/// Attribute holding whether the record is proxied.
pub const PROXIED_ATTR: &str = "proxied";

const SERVICE: &str = "cloudflare";
const PAGE_SIZE: u32 = 100;

/// The comment marking a record as the cluster's.
pub fn cluster_comment(cluster: &str) -> String {
    format!("vre:cluster={cluster}")
}

/// An API token; never printed.
#[derive(Clone)]
struct ApiToken(String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Records for the edge in a Cloudflare zone.
#[derive(Debug)]
pub struct CloudflareDns {
    http: reqwest::Client,
    base: String,
    token: ApiToken,
    zone: String,
    subdomain: Option<String>,
    proxied: bool,
    zone_id: OnceCell<String>,
}

/// Cloudflare's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    code: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    page: u32,
    total_pages: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Zone {
    id: String,
    name: String,
}

/// A DNS record as Cloudflare returns it (the fields vre reads).
#[derive(Clone, Debug, Deserialize)]
struct RecordOut {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    #[serde(default)]
    proxied: bool,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Serialize)]
struct RecordIn<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
    content: String,
    /// 1 = automatic
    ttl: u32,
    proxied: bool,
    comment: String,
}

#[derive(Debug, Deserialize)]
struct Deleted {
    #[allow(dead_code)]
    id: String,
}

fn record_type(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "A",
        IpAddr::V6(_) => "AAAA",
    }
}

impl CloudflareDns {
    /// Reads the token from `CLOUDFLARE_API_TOKEN` (and the API URL from
    /// `CLOUDFLARE_API_URL` when set). No network call is made here.
    pub fn from_env(zone: &str, subdomain: Option<&str>, proxied: bool) -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok(), zone, subdomain, proxied)
    }

    /// [`CloudflareDns::from_env`] with the variables read through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        zone: &str,
        subdomain: Option<&str>,
        proxied: bool,
    ) -> Result<Self> {
        let token = lookup(TOKEN_ENV).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            Error::Credentials {
                message: format!(
                    "{TOKEN_ENV} is not set; create a Cloudflare API token with the permission Zone / DNS / Edit on {zone} and export it as {TOKEN_ENV}"
                ),
            }
        })?;
        let base = lookup(URL_ENV).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Self::new(&base, token.trim(), zone, subdomain, proxied)
    }

    /// A client for the API at `base` (`https://api.cloudflare.com/client/v4`).
    pub fn new(base: &str, token: &str, zone: &str, subdomain: Option<&str>, proxied: bool) -> Result<Self> {
        let parsed = url::Url::parse(base).map_err(|e| Error::Credentials {
            message: format!("{URL_ENV}=\"{base}\" is not a URL ({e}); unset it to use {DEFAULT_API_URL}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Credentials {
                message: format!("{URL_ENV}=\"{base}\" is not an http(s) URL; unset it to use {DEFAULT_API_URL}"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("vre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::transport(SERVICE, "create HTTP client", e))?;
        Ok(CloudflareDns {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: ApiToken(token.to_string()),
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            subdomain: subdomain.map(|s| s.to_ascii_lowercase()),
            proxied,
            zone_id: OnceCell::new(),
        })
    }

    fn subdomain<'a>(&'a self, cluster: &'a str) -> &'a str {
        self.subdomain.as_deref().unwrap_or(cluster)
    }

    /// One API call; the envelope's `result` and `result_info` on success.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<(Option<T>, Option<ResultInfo>), CloudError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token.0)
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CloudError::transport(SERVICE, operation, e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp
            .text()
            .await
            .map_err(|e| CloudError::transport(SERVICE, operation, e))?;
        let envelope: Option<Envelope<T>> = serde_json::from_str(&text).ok();
        match envelope {
            Some(env) if env.success && status.is_success() => Ok((env.result, env.result_info)),
            Some(env) => {
                let (code, message) = match env.errors.first() {
                    Some(first) => (
                        Some(first.code),
                        env.errors
                            .iter()
                            .map(|e| format!("{} (code {})", e.message, e.code))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    None => (None, "the API answered success=false without errors".to_string()),
                };
                let status = if status.is_success() {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                let mut err = CloudError::http(SERVICE, operation, status.as_u16(), message, retry_after);
                if let Some(c) = code {
                    err = err.with_code(c.to_string());
                }
                Err(err)
            }
            None => {
                let snippet: String = text.chars().take(200).collect();
                let message = if status.is_success() {
                    format!("unexpected answer (not a Cloudflare envelope): {snippet}")
                } else {
                    snippet
                };
                let status = if status.is_success() {
                    StatusCode::BAD_GATEWAY
                } else {
                    status
                };
                Err(CloudError::http(
                    SERVICE,
                    operation,
                    status.as_u16(),
                    message,
                    retry_after,
                ))
            }
        }
    }

    /// The zone's id (`GET /zones?name=`), looked up once.
    pub async fn zone_id(&self) -> Result<String> {
        let id = self
            .zone_id
            .get_or_try_init(|| async {
                let (zones, _) = self
                    .call::<Vec<Zone>>("look up zone", Method::GET, "/zones", &[("name", self.zone.clone())], None)
                    .await?;
                zones
                    .unwrap_or_default()
                    .into_iter()
                    .find(|z| z.name.eq_ignore_ascii_case(&self.zone))
                    .map(|z| z.id)
                    .ok_or_else(|| {
                        Error::input(
                            "dns.zone",
                            format!(
                                "Cloudflare has no zone \"{}\" that this API token can see; check the zone name and that the token has Zone / DNS / Edit on it",
                                self.zone
                            ),
                        )
                    })
            })
            .await?;
        Ok(id.clone())
    }

    /// Every record of the zone carrying the cluster's comment, all pages.
    async fn own_records(&self, zone_id: &str, cluster: &str) -> Result<Vec<RecordOut>> {
        let comment = cluster_comment(cluster);
        let path = format!("/zones/{zone_id}/dns_records");
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let query = [
                ("comment.exact", comment.clone()),
                ("per_page", PAGE_SIZE.to_string()),
                ("page", page.to_string()),
            ];
            let (records, info) = self
                .call::<Vec<RecordOut>>("list DNS records", Method::GET, &path, &query, None)
                .await?;
            let records = records.unwrap_or_default();
            let got = records.len();
            // the filter is applied here too: only records marked as the cluster's are ever touched
            out.extend(
                records
                    .into_iter()
                    .filter(|r| r.comment.as_deref() == Some(comment.as_str())),
            );
            let total_pages = info.as_ref().and_then(|i| i.total_pages).unwrap_or(1);
            let current = info.map_or(page, |i| i.page.max(page));
            if got == 0 || current >= total_pages {
                break;
            }
            page = current + 1;
        }
        Ok(out)
    }

    fn resource(zone_id: &str, r: &RecordOut) -> CloudResource {
        CloudResource::new(ResourceKind::DnsRecord, r.id.clone(), r.name.clone())
            .with_attr(attr::ADDRESS, r.content.clone())
            .with_attr(ZONE_ID_ATTR, zone_id)
            .with_attr(TYPE_ATTR, r.kind.clone())
            .with_attr(PROXIED_ATTR, r.proxied.to_string())
    }
}

#[async_trait]
impl Dns for CloudflareDns {
    fn name(&self) -> &str {
        "cloudflare"
    }

    /// `<subdomain>.<zone>` (the subdomain defaults to the cluster name).
    fn domain(&self, cluster: &str, _edge_ips: &[IpAddr]) -> Option<String> {
        Some(format!("{}.{}", self.subdomain(cluster), self.zone))
    }

    fn records(&self, cluster: &str, edge_ips: &[IpAddr]) -> Vec<DnsRecord> {
        let Some(domain) = self.domain(cluster, edge_ips) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in [domain.clone(), format!("*.{domain}")] {
            for ip in edge_ips {
                out.push(DnsRecord {
                    name: name.clone(),
                    address: *ip,
                    proxied: self.proxied,
                });
            }
        }
        out
    }

    async fn ensure_records(&self, cluster: &str, records: &[DnsRecord]) -> Result<Vec<CloudResource>> {
        let zone_id = self.zone_id().await?;
        let existing = self.own_records(&zone_id, cluster).await?;
        let path = format!("/zones/{zone_id}/dns_records");
        let mut out = Vec::new();
        for want in records {
            let kind = record_type(&want.address);
            let content = want.address.to_string();
            let found = existing.iter().find(|r| {
                r.name.eq_ignore_ascii_case(&want.name)
                    && r.kind == kind
                    && r.content.parse::<IpAddr>().ok() == Some(want.address)
            });
            let record = match found {
                Some(r) if r.proxied == want.proxied => r.clone(),
                Some(r) => {
                    let (updated, _) = self
                        .call::<RecordOut>(
                            "update DNS record",
                            Method::PATCH,
                            &format!("{path}/{}", r.id),
                            &[],
                            Some(json!({"proxied": want.proxied})),
                        )
                        .await?;
                    updated.ok_or_else(|| {
                        CloudError::http(
                            SERVICE,
                            "update DNS record",
                            502,
                            "the API answered without the record",
                            None,
                        )
                    })?
                }
                None => {
                    let body = RecordIn {
                        kind,
                        name: &want.name,
                        content,
                        ttl: 1,
                        proxied: want.proxied,
                        comment: cluster_comment(cluster),
                    };
                    let body = serde_json::to_value(&body).map_err(|e| Error::component(SERVICE, e.to_string()))?;
                    let (created, _) = self
                        .call::<RecordOut>("create DNS record", Method::POST, &path, &[], Some(body))
                        .await?;
                    created.ok_or_else(|| {
                        CloudError::http(
                            SERVICE,
                            "create DNS record",
                            502,
                            "the API answered without the record",
                            None,
                        )
                    })?
                }
            };
            out.push(Self::resource(&zone_id, &record));
        }
        Ok(out)
    }

    async fn list_records(&self, cluster: &str) -> Result<Vec<CloudResource>> {
        let zone_id = self.zone_id().await?;
        let records = self.own_records(&zone_id, cluster).await?;
        Ok(records.iter().map(|r| Self::resource(&zone_id, r)).collect())
    }

    async fn delete_record(&self, record: &CloudResource) -> Result<()> {
        let zone_id = match record.attr(ZONE_ID_ATTR) {
            Some(z) => z.to_string(),
            None => self.zone_id().await?,
        };
        let path = format!("/zones/{zone_id}/dns_records/{}", record.id);
        match self
            .call::<Deleted>("delete DNS record", Method::DELETE, &path, &[], None)
            .await
        {
            Ok(_) => Ok(()),
            // already gone: 404, or Cloudflare's "Record does not exist" (81044)
            Err(e) if e.is_not_found() || e.code.as_deref() == Some("81044") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
