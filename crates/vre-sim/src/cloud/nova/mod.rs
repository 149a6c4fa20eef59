//! Nova compute v2.1 with microversions 2.1 to 2.104: version discovery,
//! flavors, key pairs, servers (multiple-create, metadata, tags, actions),
//! volume attachments, limits and quota sets.

mod attachments;
mod keypairs;
pub(crate) mod model;
mod servers;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{HeaderValue, VARY};
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResult, Query, header_str, json_response};
use super::app::Cloud;
use super::keystone::AuthContext;
use super::metadata;
use model::{Flavor, Server};
pub(crate) use servers::{fire_built, fire_gone, fire_task};

/// The one compute host of the simulated cloud.
pub(crate) const HOST: &str = "vre-sim";
pub(crate) const MIN_VERSION: u16 = 1;
pub(crate) const MAX_VERSION: u16 = 104;
/// Nova's `[api] max_limit`.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The requested compute microversion (the minor number of `2.x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Microversion(pub u16);

impl Microversion {
    /// `api_version_request.is_supported(req, '2.x')`.
    pub(crate) fn at_least(self, minor: u16) -> bool {
        self.0 >= minor
    }
}

/// The Nova routes (under `/compute/v2.1`).
pub(crate) fn routes() -> Router<Arc<Cloud>> {
    Router::new()
        .route("/compute/v2.1/flavors", get(list_flavors::<false>))
        .route("/compute/v2.1/flavors/detail", get(list_flavors::<true>))
        .route("/compute/v2.1/flavors/{id}", get(show_flavor))
        .route("/compute/v2.1/os-keypairs", get(keypairs::list).post(keypairs::create))
        .route(
            "/compute/v2.1/os-keypairs/{name}",
            get(keypairs::show).delete(keypairs::delete),
        )
        .route(
            "/compute/v2.1/servers",
            get(servers::list::<false>).post(servers::create),
        )
        .route("/compute/v2.1/servers/detail", get(servers::list::<true>))
        .route(
            "/compute/v2.1/servers/{id}",
            get(servers::show).put(servers::update).delete(servers::delete),
        )
        .route("/compute/v2.1/servers/{id}/action", post(servers::action))
        .route(
            "/compute/v2.1/servers/{id}/metadata",
            get(metadata::show::<Server>)
                .post(metadata::write::<Server, false>)
                .put(metadata::write::<Server, true>),
        )
        .route(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            get(servers::show_metadata_item)
                .put(servers::set_metadata_item)
                .delete(servers::delete_metadata_item),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags",
            get(servers::list_tags)
                .put(servers::replace_tags)
                .delete(servers::clear_tags),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            get(servers::check_tag)
                .put(servers::add_tag)
                .delete(servers::remove_tag),
        )
        .route("/compute/v2.1/servers/{id}/ips", get(servers::list_ips))
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments",
            get(attachments::list).post(attachments::attach),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments/{volume}",
            get(attachments::show).delete(attachments::detach),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route("/compute/v2.1/os-quota-sets/{project}", get(quota_set))
        .route("/compute/v2.1/os-quota-sets/{project}/detail", get(quota_set_detail))
        .route("/compute/v2.1/os-availability-zone", get(availability_zones))
        .layer(axum::middleware::from_fn(microversion))
}

fn version_document(cloud: &Cloud, with_media: bool) -> Value {
    let mut v = json!({
        "id": "v2.1",
        "links": [{"href": format!("{}/compute/v2.1/", cloud.base_url), "rel": "self"}],
        "status": "CURRENT",
        "version": format!("2.{MAX_VERSION}"),
        "min_version": format!("2.{MIN_VERSION}"),
        "updated": "2013-07-23T11:33:21Z",
    });
    if with_media {
        if let Some(l) = v["links"].as_array_mut() {
            l.push(json!({"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}));
        }
        v["media-types"] =
            json!([{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    }
    v
}

/// `GET /compute/`: the API versions (no token needed).
pub(crate) async fn versions(State(cloud): State<Arc<Cloud>>) -> Response {
    let legacy = json!({
        "id": "v2.0",
        "links": [{"href": format!("{}/compute/v2/", cloud.base_url), "rel": "self"}],
        "status": "DEPRECATED",
        "version": "",
        "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
    });
    json_response(
        StatusCode::OK,
        &json!({"versions": [legacy, version_document(&cloud, false)]}),
    )
}

/// `GET /compute/v2.1`: the one version with its microversion range.
pub(crate) async fn version(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(StatusCode::OK, &json!({"version": version_document(&cloud, true)}))
}

/// The microversion a request asks for (`OpenStack-API-Version: compute
/// 2.x` or the legacy `X-OpenStack-Nova-API-Version`; 2.1 when absent).
pub(crate) fn requested_version(
    headers: &http::HeaderMap,
    service: &str,
    legacy: Option<&str>,
) -> Result<Option<String>, ()> {
    for value in headers.get_all("openstack-api-version") {
        let Ok(text) = value.to_str() else { return Err(()) };
        for part in text.split(',') {
            let mut words = part.split_whitespace();
            if words.next().is_some_and(|s| s.eq_ignore_ascii_case(service)) {
                return Ok(words.next().map(str::to_string));
            }
        }
    }
    Ok(legacy
        .and_then(|l| header_str(headers, l))
        .map(|v| v.trim().to_string()))
}

/// Parses `X.Y` (Nova's `^([1-9]\d*)\.([1-9]\d*|0)$`).
pub(crate) fn parse_version(text: &str) -> Option<(u16, u16)> {
    let (major, minor) = text.split_once('.')?;
    let ok = |s: &str, zero_ok: bool| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" && zero_ok || !s.starts_with('0'))
    };
    if !ok(major, false) || !ok(minor, true) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Resolves the microversion and echoes it in the response headers, as
/// Nova's WSGI layer does (400 for a malformed one, 406 out of range).
async fn microversion(mut req: Request, next: Next) -> Response {
    let minor = match requested_version(req.headers(), "compute", Some("x-openstack-nova-api-version")) {
        Ok(None) => MIN_VERSION,
        Ok(Some(v)) if v == "latest" => MAX_VERSION,
        Ok(Some(v)) => match parse_version(&v) {
            Some((2, minor)) if (MIN_VERSION..=MAX_VERSION).contains(&minor) => minor,
            Some((major, minor)) => {
                return ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!("Version {major}.{minor} is not supported by the API. Minimum is 2.{MIN_VERSION} and maximum is 2.{MAX_VERSION}."),
                )
                .into_response();
            }
            None => {
                return ApiError::bad_request(format!(
                    "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
                ))
                .into_response();
            }
        },
        Err(()) => {
            return ApiError::bad_request(
                "API Version String is of invalid format. Must be of format MajorNum.MinorNum.",
            )
            .into_response();
        }
    };
    req.extensions_mut().insert(Microversion(minor));
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("compute 2.{minor}")) {
        headers.insert("openstack-api-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("2.{minor}")) {
        headers.insert("x-openstack-nova-api-version", v);
    }
    headers.append(VARY, HeaderValue::from_static("OpenStack-API-Version"));
    headers.append(VARY, HeaderValue::from_static("X-OpenStack-Nova-API-Version"));
    response
}

/// `{base}/compute/v2.1/{collection}/{id}` and the version-less bookmark.
pub(crate) fn links(cloud: &Cloud, collection: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/compute/v2.1/{collection}/{id}", cloud.base_url), "rel": "self"},
        {"href": format!("{}/compute/{collection}/{id}", cloud.base_url), "rel": "bookmark"},
    ])
}

/// Nova's `_get_collection_links`: a `next` link when a page is full.
pub(crate) fn collection_links(
    cloud: &Cloud,
    path: &str,
    query: &Query,
    count: usize,
    last_id: Option<&str>,
) -> Option<Value> {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(MAX_LIMIT)
        .min(MAX_LIMIT);
    let last = last_id?;
    (limit > 0 && count == limit).then(|| {
        json!([{"href": format!("{}/compute/v2.1/{path}?{}", cloud.base_url, query.with_marker(last)), "rel": "next"}])
    })
}

/// `limit` and `marker` as Nova validates them.
/// The object `key` of a request body, or Nova's 400 when it is missing.
pub(crate) fn required_object<'a>(body: &'a Value, key: &str) -> ApiResult<&'a Map<String, Value>> {
    body.get(key).and_then(Value::as_object).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: None. '{key}' is a required property"
        ))
    })
}

pub(crate) fn limit_and_marker(query: &Query) -> ApiResult<(usize, Option<String>)> {
    let limit = match query.get("limit") {
        None => MAX_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
                ))
            })?
            .min(MAX_LIMIT),
    };
    Ok((limit, query.get("marker").map(str::to_string)))
}

// ---- flavors ----

fn flavor_basic(cloud: &Cloud, f: &Flavor, v: Microversion) -> Value {
    let mut m = json!({"id": f.id, "name": f.name, "links": links(cloud, "flavors", &f.id)});
    if v.at_least(55) {
        m["description"] = json!(f.description);
    }
    m
}

fn flavor_detail(cloud: &Cloud, f: &Flavor, v: Microversion) -> Value {
    let mut m = json!({
        "id": f.id,
        "name": f.name,
        "ram": f.ram_mb,
        "disk": f.disk_gb,
        "swap": if f.swap_mb == 0 { json!("") } else { json!(f.swap_mb) },
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": false,
        "vcpus": f.vcpus,
        "os-flavor-access:is_public": true,
        "rxtx_factor": 1.0,
        "links": links(cloud, "flavors", &f.id),
    });
    if v.at_least(55) {
        m["description"] = json!(f.description);
    }
    if v.at_least(61) {
        m["extra_specs"] = json!(f.extra_specs);
    }
    if v.at_least(75) {
        m["swap"] = json!(f.swap_mb);
    }
    if v.at_least(102)
        && let Some(o) = m.as_object_mut()
    {
        o.remove("OS-FLV-DISABLED:disabled");
        o.remove("rxtx_factor");
    }
    m
}

fn filtered_flavors(cloud: &Cloud, query: &Query, v: Microversion) -> ApiResult<Vec<Flavor>> {
    let (limit, marker) = limit_and_marker(query)?;
    let min_ram = query.get("minRam").and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let min_disk = query.get("minDisk").and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let name = if v.at_least(102) { query.get("name") } else { None };
    let flavors = cloud.read(|s| s.flavors.clone());
    let mut out: Vec<Flavor> = flavors
        .into_iter()
        .filter(|f| f.ram_mb >= min_ram && f.disk_gb >= min_disk && name.is_none_or(|n| f.name.contains(n)))
        .collect();
    if let Some(marker) = marker {
        let pos = out
            .iter()
            .position(|f| f.id == marker)
            .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?;
        out.drain(..=pos);
    }
    out.truncate(limit);
    Ok(out)
}

/// `GET …/flavors` (`DETAIL` false) and `GET …/flavors/detail` (true).
async fn list_flavors<const DETAIL: bool>(
    State(cloud): State<Arc<Cloud>>,
    Extension(v): Extension<Microversion>,
    raw: RawQuery,
) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let flavors = filtered_flavors(&cloud, &query, v)?;
    let (render, path): (fn(&Cloud, &Flavor, Microversion) -> Value, _) = if DETAIL {
        (flavor_detail, "flavors/detail")
    } else {
        (flavor_basic, "flavors")
    };
    let mut body = json!({"flavors": flavors.iter().map(|f| render(&cloud, f, v)).collect::<Vec<_>>()});
    if let Some(l) = collection_links(
        &cloud,
        path,
        &query,
        flavors.len(),
        flavors.last().map(|f| f.id.as_str()),
    ) {
        body["flavors_links"] = l;
    }
    Ok(json_response(StatusCode::OK, &body))
}

async fn show_flavor(
    State(cloud): State<Arc<Cloud>>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
) -> ApiResult {
    let flavor = cloud
        .read(|s| s.flavors.iter().find(|f| f.id == id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"flavor": flavor_detail(&cloud, &flavor, v)}),
    ))
}

// ---- limits and quotas ----

/// Instances, cores and RAM the project uses.
pub(crate) fn usage(s: &super::state::CloudState, project_id: &str) -> (u64, u64, u64) {
    s.servers
        .iter()
        .filter(|srv| srv.project_id == project_id)
        .fold((0, 0, 0), |(n, c, r), srv| {
            (n + 1, c + u64::from(srv.flavor.vcpus), r + srv.flavor.ram_mb)
        })
}

/// Nova's per-user key pair quota and metadata item quota.
pub(crate) const KEY_PAIRS_QUOTA: u64 = 100;
pub(crate) const METADATA_ITEMS_QUOTA: usize = 128;

async fn limits(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
) -> Response {
    let q = &cloud.config.quotas;
    let (instances, cores, ram) = cloud.read(|s| usage(s, &auth.project_id));
    let mut absolute = json!({
        "maxTotalInstances": q.instances, "totalInstancesUsed": instances,
        "maxTotalCores": q.cores, "totalCoresUsed": cores,
        "maxTotalRAMSize": q.ram_mb, "totalRAMUsed": ram,
        "maxTotalKeypairs": KEY_PAIRS_QUOTA, "maxServerMeta": METADATA_ITEMS_QUOTA,
        "maxServerGroups": 10, "maxServerGroupMembers": 10, "totalServerGroupsUsed": 0,
    });
    // Network limits left with 2.36, image metadata with 2.39, personality with 2.57.
    if !v.at_least(36) {
        absolute["maxSecurityGroups"] = json!(q.security_groups);
        absolute["maxSecurityGroupRules"] = json!(20);
        absolute["maxTotalFloatingIps"] = json!(q.floating_ips);
        absolute["totalFloatingIpsUsed"] = json!(0);
        absolute["totalSecurityGroupsUsed"] = json!(0);
    }
    if !v.at_least(39) {
        absolute["maxImageMeta"] = json!(128);
    }
    if !v.at_least(57) {
        absolute["maxPersonality"] = json!(5);
        absolute["maxPersonalitySize"] = json!(10240);
    }
    json_response(StatusCode::OK, &json!({"limits": {"rate": [], "absolute": absolute}}))
}

fn check_quota_access(auth: &AuthContext, project: &str) -> ApiResult<()> {
    if auth.is_admin() || auth.project_id == project {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.",
        ))
    }
}

async fn quota_set(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(project): Path<String>,
) -> ApiResult {
    check_quota_access(&auth, &project)?;
    let q = &cloud.config.quotas;
    Ok(json_response(
        StatusCode::OK,
        &json!({"quota_set": {
            "id": project, "instances": q.instances, "cores": q.cores, "ram": q.ram_mb,
            "key_pairs": KEY_PAIRS_QUOTA, "metadata_items": METADATA_ITEMS_QUOTA,
            "server_groups": 10, "server_group_members": 10,
        }}),
    ))
}

async fn quota_set_detail(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(project): Path<String>,
) -> ApiResult {
    check_quota_access(&auth, &project)?;
    let q = &cloud.config.quotas;
    let (instances, cores, ram) = cloud.read(|s| usage(s, &project));
    let item = |limit: u64, used: u64| json!({"limit": limit, "in_use": used, "reserved": 0});
    Ok(json_response(
        StatusCode::OK,
        &json!({"quota_set": {
            "id": project,
            "instances": item(u64::from(q.instances), instances),
            "cores": item(u64::from(q.cores), cores),
            "ram": item(q.ram_mb, ram),
            "key_pairs": item(KEY_PAIRS_QUOTA, 0),
            "metadata_items": item(METADATA_ITEMS_QUOTA as u64, 0),
            "server_groups": item(10, 0),
            "server_group_members": item(10, 0),
        }}),
    ))
}

async fn availability_zones() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_nova() {
        assert_eq!(parse_version("2.60"), Some((2, 60)));
        assert_eq!(parse_version("2.0"), Some((2, 0)));
        assert_eq!(parse_version("2.06"), None);
        assert_eq!(parse_version("02.1"), None);
        assert_eq!(parse_version("2"), None);
        assert_eq!(parse_version("two.one"), None);
    }

    #[test]
    fn finds_the_compute_entry_of_openstack_api_version() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "openstack-api-version",
            HeaderValue::from_static("volume 3.10, compute 2.47"),
        );
        assert_eq!(requested_version(&h, "compute", None), Ok(Some("2.47".into())));
        let mut h = http::HeaderMap::new();
        h.insert("x-openstack-nova-api-version", HeaderValue::from_static("2.12"));
        assert_eq!(
            requested_version(&h, "compute", Some("x-openstack-nova-api-version")),
            Ok(Some("2.12".into()))
        );
        assert_eq!(requested_version(&http::HeaderMap::new(), "compute", None), Ok(None));
    }
}
