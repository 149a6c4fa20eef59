//! Neutron networking v2.0: networks, subnets, ports, routers, security
//! groups and rules, floating IPs, tags, and the list machinery they share
//! (attribute filters, `fields`, tag filters, sorting, pagination).

pub(crate) mod ipam;
pub(crate) mod model;
mod networks;
mod ports;
mod resource;
mod routers;
mod secgroups;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, put};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResult, Query, json_body, json_response};
use super::app::Cloud;
use super::clock::Micros;
use super::keystone::AuthContext;
use super::state::CloudState;
use model::{FloatingIp, Network, Port, Router as NeutronRouter, SecurityGroup, SecurityGroupRule, Subnet};
use resource::{create, delete, list, show, update};

pub(crate) use networks::seed_public_network;
pub(crate) use ports::{NicRequest, create_server_port, release_server_ports};
pub(crate) use secgroups::ensure_default_security_group;

/// The Neutron routes (under `/networking`).
pub(crate) fn routes() -> Router<Arc<Cloud>> {
    Router::new()
        .route("/networking/v2.0", get(resources))
        .route("/networking/v2.0/", get(resources))
        .route(
            "/networking/v2.0/networks",
            get(list::<Network>).post(create::<Network>),
        )
        .route(
            "/networking/v2.0/networks/{id}",
            get(show::<Network>).put(update::<Network>).delete(delete::<Network>),
        )
        .route("/networking/v2.0/subnets", get(list::<Subnet>).post(create::<Subnet>))
        .route(
            "/networking/v2.0/subnets/{id}",
            get(show::<Subnet>).put(update::<Subnet>).delete(delete::<Subnet>),
        )
        .route("/networking/v2.0/ports", get(list::<Port>).post(create::<Port>))
        .route(
            "/networking/v2.0/ports/{id}",
            get(show::<Port>).put(update::<Port>).delete(delete::<Port>),
        )
        .route(
            "/networking/v2.0/routers",
            get(list::<NeutronRouter>).post(create::<NeutronRouter>),
        )
        .route(
            "/networking/v2.0/routers/{id}",
            get(show::<NeutronRouter>)
                .put(update::<NeutronRouter>)
                .delete(delete::<NeutronRouter>),
        )
        .route(
            "/networking/v2.0/routers/{id}/add_router_interface",
            put(routers::add_interface),
        )
        .route(
            "/networking/v2.0/routers/{id}/remove_router_interface",
            put(routers::remove_interface),
        )
        .route(
            "/networking/v2.0/floatingips",
            get(list::<FloatingIp>).post(create::<FloatingIp>),
        )
        .route(
            "/networking/v2.0/floatingips/{id}",
            get(show::<FloatingIp>)
                .put(update::<FloatingIp>)
                .delete(delete::<FloatingIp>),
        )
        .route(
            "/networking/v2.0/security-groups",
            get(secgroups::list).post(create::<SecurityGroup>),
        )
        .route(
            "/networking/v2.0/security-groups/{id}",
            get(show::<SecurityGroup>)
                .put(update::<SecurityGroup>)
                .delete(delete::<SecurityGroup>),
        )
        .route(
            "/networking/v2.0/security-group-rules",
            get(list::<SecurityGroupRule>).post(create::<SecurityGroupRule>),
        )
        .route(
            "/networking/v2.0/security-group-rules/{id}",
            get(show::<SecurityGroupRule>).delete(delete::<SecurityGroupRule>),
        )
        .route(
            "/networking/v2.0/{kind}/{id}/tags",
            get(list_tags).put(replace_tags).post(add_tags).delete(clear_tags),
        )
        .route(
            "/networking/v2.0/{kind}/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
        .route("/networking/v2.0/quotas/{project}", get(show_quota))
}

/// `GET /networking/`: the API versions (no token needed).
pub(crate) async fn versions(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"versions": [{
            "id": "v2.0",
            "status": "CURRENT",
            "links": [{"href": format!("{}/networking/v2.0/", cloud.base_url), "rel": "self"}],
        }]}),
    )
}

async fn resources(State(cloud): State<Arc<Cloud>>) -> Response {
    let items: Vec<Value> = ["subnet", "network", "port", "router", "floatingip", "security_group", "security_group_rule"]
        .iter()
        .map(|name| {
            let collection = if *name == "security_group" {
                "security-groups".to_string()
            } else if *name == "security_group_rule" {
                "security-group-rules".to_string()
            } else {
                format!("{name}s")
            };
            json!({"name": name, "collection": collection, "links": [{"href": format!("{}/networking/v2.0/{collection}", cloud.base_url), "rel": "self"}]})
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "resources": items }))
}

// ---- errors as Neutron words them ----

pub(crate) fn not_found(kind: &'static str, message: String) -> ApiError {
    ApiError::not_found(message).kind(kind)
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).kind("BadRequest")
}

pub(crate) fn invalid_input(message: impl AsRef<str>) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for operation: {}.",
        message.as_ref().trim_end_matches('.')
    ))
    .kind("InvalidInput")
}

pub(crate) fn in_use(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::conflict(message).kind(kind)
}

pub(crate) fn over_quota(resource: &str) -> ApiError {
    ApiError::conflict(format!("Quota exceeded for resources: ['{resource}'].")).kind("OverQuota")
}

pub(crate) fn policy_denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("rule:{rule} is disallowed by policy")).kind("PolicyNotAuthorized")
}

/// The resource object of a create/update body (`{"network": {...}}`).
pub(crate) fn resource_body(body: &[u8], singular: &str) -> ApiResult<Map<String, Value>> {
    let value =
        json_body(body).ok_or_else(|| ApiError::bad_request("Malformed request body").kind("HTTPBadRequest"))?;
    match value.get(singular) {
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(invalid_input(format!("Unable to find '{singular}' in request body"))),
        None => Err(ApiError::bad_request("Resource body required").kind("HTTPBadRequest")),
    }
}

pub(crate) fn opt_str<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_input(format!("'{other}' is not a valid string"))),
    }
}

pub(crate) fn opt_bool(body: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(invalid_input(format!("'{other}' cannot be converted to boolean"))),
    }
}

/// Resources a caller sees: admins all, others their project's.
pub(crate) fn owned(auth: &AuthContext, project_id: &str) -> bool {
    auth.is_admin() || auth.project_id == project_id
}

// ---- listing ----

/// Query parameters that are not attribute filters.
const LIST_PARAMS: [&str; 10] = [
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_key",
    "sort_dir",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

fn truthy(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Whether an attribute value matches one of the filter values.
fn matches(value: &Value, key: &str, wanted: &[&str]) -> bool {
    wanted.iter().any(|w| match value {
        Value::String(s) => s == w,
        Value::Bool(b) => truthy(w) == Some(*b),
        Value::Number(n) => n.to_string() == *w,
        Value::Null => w.is_empty() || *w == "None",
        Value::Array(items) if key == "fixed_ips" => {
            let (k, v) = w.split_once('=').unwrap_or(("ip_address", w));
            items.iter().any(|item| match k {
                "ip_address_substr" => item
                    .get("ip_address")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| ip.contains(v)),
                _ => item.get(k).and_then(Value::as_str) == Some(v),
            })
        }
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(w)),
        Value::Object(_) => false,
    })
}

fn tag_set<'a>(query: &'a Query, key: &str) -> Vec<&'a str> {
    query
        .all(key)
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter(|t| !t.is_empty())
        .collect()
}

/// The attributes every Neutron resource has (standard-attr).
const STANDARD_ATTRIBUTES: [&str; 9] = [
    "id",
    "name",
    "description",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

/// Answers a list request: `items` are the caller's visible resources
/// (rendered), `attributes` the attribute names the resource has beside
/// [`STANDARD_ATTRIBUTES`] (for rejecting unknown filters as Neutron's
/// filter validation does).
pub(crate) fn list_response(
    cloud: &Cloud,
    collection: &str,
    items: Vec<Map<String, Value>>,
    attributes: &[&str],
    query: &Query,
) -> ApiResult {
    let known = |attribute: &str| STANDARD_ATTRIBUTES.contains(&attribute) || attributes.contains(&attribute);
    // Validate filters.
    let mut filters: Vec<(&str, Vec<&str>)> = Vec::new();
    for (key, _) in query.pairs() {
        if LIST_PARAMS.contains(&key.as_str()) || filters.iter().any(|(k, _)| k == key) {
            continue;
        }
        let attribute = if key == "tenant_id" { "project_id" } else { key.as_str() };
        if !known(attribute) {
            return Err(
                ApiError::bad_request(format!("['{key}'] is invalid attribute for filtering")).kind("HTTPBadRequest"),
            );
        }
        filters.push((key.as_str(), query.all(key)));
    }
    let all_tags = tag_set(query, "tags");
    let any_tags = tag_set(query, "tags-any");
    let not_tags = tag_set(query, "not-tags");
    let not_any_tags = tag_set(query, "not-tags-any");

    let mut rows: Vec<Map<String, Value>> = items
        .into_iter()
        .filter(|item| {
            filters.iter().all(|(key, wanted)| {
                let attribute = if *key == "tenant_id" { "project_id" } else { key };
                item.get(attribute).is_some_and(|v| matches(v, attribute, wanted))
            })
        })
        .filter(|item| {
            let tags: Vec<&str> = item
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            all_tags.iter().all(|t| tags.contains(t))
                && (any_tags.is_empty() || any_tags.iter().any(|t| tags.contains(t)))
                && (not_tags.is_empty() || !not_tags.iter().all(|t| tags.contains(t)))
                && !not_any_tags.iter().any(|t| tags.contains(t))
        })
        .collect();

    // Sorting: by the given keys, else by id.
    let keys = query.all("sort_key");
    let dirs = query.all("sort_dir");
    for key in &keys {
        if !known(key) {
            return Err(
                ApiError::bad_request(format!("{key} is an invalid attribute for sort_keys")).kind("HTTPBadRequest"),
            );
        }
    }
    let sort_keys: Vec<(&str, bool)> = if keys.is_empty() {
        vec![("id", true)]
    } else {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (*k, dirs.get(i).is_none_or(|d| *d != "desc")))
            .collect()
    };
    rows.sort_by(|a, b| {
        for (key, ascending) in &sort_keys {
            let ord = compare(a.get(*key), b.get(*key));
            let ord = if *ascending { ord } else { ord.reverse() };
            if ord.is_ne() {
                return ord;
            }
        }
        compare(a.get("id"), b.get("id"))
    });

    // Pagination.
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| invalid_input(format!("'{l}' is not an integer")))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    let reverse = query.get("page_reverse").and_then(truthy).unwrap_or(false);
    let marker = query.get("marker");
    let mut links = Vec::new();
    if let Some(marker) = marker {
        let position = rows
            .iter()
            .position(|r| r.get("id").and_then(Value::as_str) == Some(marker));
        let Some(position) = position else {
            return Err(not_found("NotFound", format!("Object {marker} not found.")).kind("HTTPNotFound"));
        };
        rows = if reverse {
            rows.drain(..position).collect()
        } else {
            rows.split_off(position + 1)
        };
    }
    if let Some(limit) = limit {
        if reverse {
            let start = rows.len().saturating_sub(limit);
            rows = rows.split_off(start);
        } else {
            rows.truncate(limit);
        }
        let href = |marker: &str, reverse: bool| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in query.pairs() {
                if k != "marker" && k != "page_reverse" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("marker", marker);
            if reverse {
                q.append_pair("page_reverse", "True");
            }
            format!("{}/networking/v2.0/{collection}?{}", cloud.base_url, q.finish())
        };
        let id =
            |r: Option<&Map<String, Value>>| r.and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_string);
        // Neutron's `get_pagination_links`: a full page always links on, and
        // every page links back but a short reversed one.
        let full = rows.len() >= limit;
        if let (true, Some(last)) = (full || reverse, id(rows.last())) {
            links.push(json!({"rel": "next", "href": href(&last, false)}));
        }
        if let (true, Some(first)) = (full || !reverse, id(rows.first())) {
            links.push(json!({"rel": "previous", "href": href(&first, true)}));
        }
    }

    // `fields`: only the requested attributes.
    let fields = query.all("fields");
    if !fields.is_empty() {
        for row in &mut rows {
            row.retain(|k, _| fields.contains(&k.as_str()));
        }
    }
    let mut body = Map::new();
    body.insert(
        collection.replace('-', "_"),
        Value::Array(rows.into_iter().map(Value::Object).collect()),
    );
    if !links.is_empty() {
        body.insert(format!("{}_links", collection.replace('-', "_")), Value::Array(links));
    }
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(x), Some(y)) => x.as_str().unwrap_or_default().cmp(y.as_str().unwrap_or_default()),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// A show response, honouring `fields`.
pub(crate) fn show_response(
    singular: &str,
    mut item: Map<String, Value>,
    query: &Query,
    status: StatusCode,
) -> Response {
    let fields = query.all("fields");
    if !fields.is_empty() {
        item.retain(|k, _| fields.contains(&k.as_str()));
    }
    let mut body = Map::new();
    body.insert(singular.to_string(), Value::Object(item));
    json_response(status, &Value::Object(body))
}

// ---- tags (standard-attr-tag) ----

/// The tags of a taggable resource the caller may see.
fn tags_of<'a>(s: &'a mut CloudState, auth: &AuthContext, kind: &str, id: &str) -> ApiResult<&'a mut model::Standard> {
    let (std, what): (Option<&mut model::Standard>, &'static str) = match kind {
        "networks" => (s.networks.get_mut(id).map(|r| &mut r.std), "NetworkNotFound"),
        "subnets" => (s.subnets.get_mut(id).map(|r| &mut r.std), "SubnetNotFound"),
        "ports" => (s.ports.get_mut(id).map(|r| &mut r.std), "PortNotFound"),
        "routers" => (s.routers.get_mut(id).map(|r| &mut r.std), "RouterNotFound"),
        "floatingips" => (s.floating_ips.get_mut(id).map(|r| &mut r.std), "FloatingIPNotFound"),
        "security-groups" => (
            s.security_groups.get_mut(id).map(|r| &mut r.std),
            "SecurityGroupNotFound",
        ),
        "security-group-rules" => (
            s.security_group_rules.get_mut(id).map(|r| &mut r.std),
            "SecurityGroupRuleNotFound",
        ),
        _ => return Err(ApiError::not_found("The resource could not be found.").kind("HTTPNotFound")),
    };
    let std = std.filter(|std| owned(auth, &std.project_id) || kind == "networks");
    std.ok_or_else(|| {
        not_found(
            what,
            format!("{} {id} could not be found.", what.trim_end_matches("NotFound")),
        )
    })
}

fn validate_tag(tag: &str) -> ApiResult<()> {
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(invalid_input(format!("'{tag}' exceeds maximum length of 255")));
    }
    Ok(())
}

async fn list_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult {
    let tags = cloud.write(|s| tags_of(s, &auth, &kind, &id).map(|std| std.tags.clone()))?;
    Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
}

async fn replace_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let tags = tags_from_body(&body)?;
    let now = Micros::now();
    let tags = cloud.write(|s| {
        let std = tags_of(s, &auth, &kind, &id)?;
        std.tags = tags;
        std.touch(now);
        Ok::<_, ApiError>(std.tags.clone())
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
}

async fn add_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let new = tags_from_body(&body)?;
    let now = Micros::now();
    let tags = cloud.write(|s| {
        let std = tags_of(s, &auth, &kind, &id)?;
        for t in new {
            if !std.tags.contains(&t) {
                std.tags.push(t);
            }
        }
        std.touch(now);
        Ok::<_, ApiError>(std.tags.clone())
    })?;
    Ok(json_response(StatusCode::CREATED, &json!({ "tags": tags })))
}

fn tags_from_body(body: &[u8]) -> ApiResult<Vec<String>> {
    let value =
        json_body(body).ok_or_else(|| ApiError::bad_request("Malformed request body").kind("HTTPBadRequest"))?;
    let tags = value
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_input("Invalid tags body"))?;
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t
            .as_str()
            .ok_or_else(|| invalid_input(format!("'{t}' is not a valid string")))?;
        validate_tag(t)?;
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

async fn clear_tags(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult {
    let now = Micros::now();
    cloud.write(|s| {
        let std = tags_of(s, &auth, &kind, &id)?;
        std.tags.clear();
        std.touch(now);
        Ok::<_, ApiError>(())
    })?;
    Ok(super::api::empty_response(StatusCode::NO_CONTENT))
}

async fn check_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    let found = cloud.write(|s| tags_of(s, &auth, &kind, &id).map(|std| std.tags.contains(&tag)))?;
    if !found {
        return Err(not_found("TagNotFound", format!("Tag {tag} could not be found.")));
    }
    Ok(super::api::empty_response(StatusCode::NO_CONTENT))
}

async fn add_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    validate_tag(&tag)?;
    let now = Micros::now();
    cloud.write(|s| {
        let std = tags_of(s, &auth, &kind, &id)?;
        if !std.tags.contains(&tag) {
            std.tags.push(tag.clone());
            std.touch(now);
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(super::api::empty_response(StatusCode::CREATED))
}

async fn remove_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((kind, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    let now = Micros::now();
    cloud.write(|s| {
        let std = tags_of(s, &auth, &kind, &id)?;
        let before = std.tags.len();
        std.tags.retain(|t| *t != tag);
        if std.tags.len() == before {
            return Err(not_found("TagNotFound", format!("Tag {tag} could not be found.")));
        }
        std.touch(now);
        Ok(())
    })?;
    Ok(super::api::empty_response(StatusCode::NO_CONTENT))
}

/// `GET /v2.0/quotas/{project_id}`.
async fn show_quota(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(project): Path<String>,
) -> ApiResult {
    if !auth.is_admin() && project != auth.project_id {
        return Err(policy_denied("get_quota"));
    }
    let q = &cloud.config.quotas;
    Ok(json_response(
        StatusCode::OK,
        &json!({"quota": {
            "network": q.networks, "subnet": -1, "port": -1, "router": -1, "floatingip": q.floating_ips,
            "security_group": q.security_groups, "security_group_rule": -1, "rbac_policy": 10, "subnetpool": -1,
            "router_route": 30,
        }}),
    ))
}

/// Parses the `{"network": ...}` body of a create with a known attribute
/// set; shared by the resource modules.
pub(crate) fn parse_create(body: &[u8], singular: &str, allowed: &[&str]) -> ApiResult<Map<String, Value>> {
    let map = resource_body(body, singular)?;
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!("Unrecognized attribute(s) '{key}'")).kind("HTTPBadRequest"));
        }
    }
    Ok(map)
}

pub(crate) fn query(raw: RawQuery) -> Query {
    Query::parse(raw.0.as_deref())
}
