//! Cinder block storage v3 (microversions 3.0 to 3.71): volumes with their
//! status transitions, metadata, quotas, and the attachment states Nova
//! drives.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER, VARY};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Timer;
use super::api::{ApiError, ApiResult, Query, brief, empty_response, json_response, request_json};
use super::app::Cloud;
use super::clock::Micros;
use super::keystone::AuthContext;
use super::metadata::{self, HasMetadata, Metadata};
use super::state::CloudState;
use super::table::Keyed;

const MIN_VERSION: u16 = 0;
const MAX_VERSION: u16 = 71;
/// Where the volumes live (`host@backend#pool`).
const BACKEND_HOST: &str = "vre-sim@lvmdriver-1#lvmdriver-1";
const DEFAULT_TYPE_ID: &str = "5fed9d7c-401d-46e2-8e80-f30c70cb7e1d";

/// The requested volume microversion (the minor number of `3.x`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct VolumeVersion(u16);

/// The project id a request named in its URL (`/v3/{project_id}/...`).
#[derive(Clone, Debug)]
pub(crate) struct UrlProject(pub String);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct VolumeAttachment {
    pub attachment_id: String,
    pub server_id: String,
    pub device: String,
    /// Set once attached (not while reserved or attaching).
    pub attached_at: Option<Micros>,
}

/// A status change in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Transition {
    pub at: Micros,
    /// The status after it; `gone` removes the volume.
    pub to: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Volume {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub size: u64,
    pub status: String,
    pub created: Micros,
    pub updated: Option<Micros>,
    pub metadata: BTreeMap<String, String>,
    pub availability_zone: String,
    pub bootable: bool,
    pub image_id: Option<String>,
    pub attachments: Vec<VolumeAttachment>,
    pub transition: Option<Transition>,
}

impl Keyed for Volume {
    fn key(&self) -> &str {
        &self.id
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

// ---- what Nova and the scheduler do to volumes ----

/// Cinder's quota check for `gigabytes` more in `count` more volumes.
pub(crate) fn check_quota(
    cloud: &Cloud,
    s: &CloudState,
    project_id: &str,
    gigabytes: u64,
    count: u64,
) -> ApiResult<()> {
    let q = &cloud.config.quotas;
    let (used_count, used_gb) = s
        .volumes
        .iter()
        .filter(|v| v.project_id == project_id)
        .fold((0u64, 0u64), |(n, g), v| (n + 1, g + v.size));
    let over = |message: String| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).header(RETRY_AFTER, HeaderValue::from_static("0"))
    };
    if used_gb + gigabytes > q.gigabytes {
        return Err(over(format!(
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {gigabytes}G, quota is {}G and {used_gb}G has been consumed.",
            q.gigabytes
        )));
    }
    if used_count + count > u64::from(q.volumes) {
        return Err(over(format!(
            "VolumeLimitExceeded: Maximum number of volumes allowed ({}) exceeded for quota 'volumes'.",
            q.volumes
        )));
    }
    Ok(())
}

fn new_volume(
    s: &mut CloudState,
    auth: &AuthContext,
    size: u64,
    image_id: Option<&str>,
    status: &str,
    now: Micros,
) -> Volume {
    Volume {
        id: s.uuid(),
        name: None,
        description: None,
        project_id: auth.project_id.clone(),
        user_id: auth.user_id.clone(),
        size,
        status: status.to_string(),
        created: now,
        updated: None,
        metadata: BTreeMap::new(),
        availability_zone: "nova".into(),
        bootable: image_id.is_some(),
        image_id: image_id.map(str::to_string),
        attachments: Vec::new(),
        transition: None,
    }
}

/// A volume Nova creates for a block device mapping (already available).
pub(crate) fn create_for_server(
    s: &mut CloudState,
    auth: &AuthContext,
    size: u64,
    image_id: Option<&str>,
    now: Micros,
) -> String {
    let volume = new_volume(s, auth, size, image_id, "available", now);
    let id = volume.id.clone();
    s.volumes.insert(volume);
    id
}

/// Nova reserves a volume for a server being built.
pub(crate) fn reserve(s: &mut CloudState, volume_id: &str, server_id: &str, device: &str, now: Micros) -> String {
    let attachment_id = s.uuid();
    if let Some(v) = s.volumes.get_mut(volume_id) {
        v.status = "reserved".into();
        v.updated = Some(now);
        v.attachments.push(VolumeAttachment {
            attachment_id: attachment_id.clone(),
            server_id: server_id.to_string(),
            device: device.to_string(),
            attached_at: None,
        });
    }
    attachment_id
}

/// Nova attaches a volume to a running server: `attaching` until `ready`.
pub(crate) fn begin_attach(
    s: &mut CloudState,
    volume_id: &str,
    server_id: &str,
    device: &str,
    now: Micros,
    ready: Micros,
) -> String {
    let attachment_id = reserve(s, volume_id, server_id, device, now);
    if let Some(v) = s.volumes.get_mut(volume_id) {
        v.status = "attaching".into();
        v.transition = Some(Transition {
            at: ready,
            to: "in-use".into(),
        });
    }
    s.schedule(ready, Timer::Volume(volume_id.to_string()));
    attachment_id
}

/// The attachment is complete: `in-use`.
pub(crate) fn complete_attach(s: &mut CloudState, volume_id: &str, now: Micros) {
    if let Some(v) = s.volumes.get_mut(volume_id) {
        v.status = "in-use".into();
        v.updated = Some(now);
        v.transition = None;
        for a in &mut v.attachments {
            a.attached_at.get_or_insert(now);
        }
    }
}

/// Nova detaches a volume: `detaching` until `done`.
pub(crate) fn begin_detach(s: &mut CloudState, volume_id: &str, now: Micros, done: Micros) -> Result<(), String> {
    let v = s
        .volumes
        .get_mut(volume_id)
        .ok_or_else(|| format!("Volume {volume_id} could not be found."))?;
    if !matches!(v.status.as_str(), "in-use" | "attaching") {
        return Err("Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.".into());
    }
    v.status = "detaching".into();
    v.updated = Some(now);
    v.transition = Some(Transition {
        at: done,
        to: "available".into(),
    });
    s.schedule(done, Timer::Volume(volume_id.to_string()));
    Ok(())
}

/// Detaches at once (the server is gone or never built).
pub(crate) fn detach_now(s: &mut CloudState, volume_id: &str, now: Micros) {
    if let Some(v) = s.volumes.get_mut(volume_id) {
        v.attachments.clear();
        if v.status != "deleting" {
            v.status = "available".into();
            v.transition = None;
        }
        v.updated = Some(now);
    }
}

/// Starts deleting a volume (`delete_on_termination`).
pub(crate) fn delete_now(s: &mut CloudState, volume_id: &str) {
    let now = Micros::now();
    let at = s.pace.after(now, s.pace.timings.volume_delete);
    if let Some(v) = s.volumes.get_mut(volume_id) {
        v.status = "deleting".into();
        v.updated = Some(now);
        v.transition = Some(Transition { at, to: "gone".into() });
        s.schedule(at, Timer::Volume(volume_id.to_string()));
    }
}

/// A volume's status change is due.
pub(crate) fn fire(s: &mut CloudState, volume_id: &str, now: Micros) {
    let Some(v) = s.volumes.get_mut(volume_id) else { return };
    let Some(t) = v.transition.clone() else { return };
    if t.at > now {
        return;
    }
    v.transition = None;
    v.updated = Some(now);
    let detaching = v.status == "detaching";
    match t.to.as_str() {
        "gone" => {
            s.volumes.remove(volume_id);
        }
        "in-use" => complete_attach(s, volume_id, now),
        other => {
            if let Some(v) = s.volumes.get_mut(volume_id) {
                if detaching {
                    v.attachments.clear();
                }
                v.status = other.to_string();
            }
        }
    }
}

// ---- HTTP ----

/// The Cinder routes (project-less; project ids in URLs are stripped before
/// routing, see [`strip_project`]).
pub(crate) fn routes() -> Router<Arc<Cloud>> {
    Router::new()
        .route("/volume/v3", get(version))
        .route("/volume/v3/", get(version))
        .route("/volume/v3/volumes", get(list::<false>).post(create))
        .route("/volume/v3/volumes/detail", get(list::<true>))
        .route("/volume/v3/volumes/{id}", get(show).put(update).delete(delete))
        .route(
            "/volume/v3/volumes/{id}/metadata",
            get(metadata::show::<Volume>)
                .post(metadata::write::<Volume, false>)
                .put(metadata::write::<Volume, true>),
        )
        .route(
            "/volume/v3/volumes/{id}/metadata/{key}",
            get(show_metadata_item)
                .put(set_metadata_item)
                .delete(delete_metadata_item),
        )
        .route("/volume/v3/types", get(list_types))
        .route("/volume/v3/limits", get(limits))
        .route("/volume/v3/os-quota-sets/{project}", get(quota_set))
        .layer(axum::middleware::from_fn(microversion))
}

/// `/volume/v3/{project_id}/rest` -> `/volume/v3/rest`, remembering the
/// project (checked against the token's, as Cinder does).
pub(crate) fn strip_project(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/volume/v3/")?;
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let hexish = first.len() >= 32 && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !hexish {
        return None;
    }
    let new = if tail.is_empty() {
        "/volume/v3/".to_string()
    } else {
        format!("/volume/v3/{tail}")
    };
    Some((new, first.to_string()))
}

fn version_document(cloud: &Cloud) -> Value {
    json!({
        "id": "v3.0",
        "links": [
            {"href": "https://docs.openstack.org/", "rel": "describedby", "type": "text/html"},
            {"href": format!("{}/volume/v3/", cloud.base_url), "rel": "self"},
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
        "min_version": format!("3.{MIN_VERSION}"),
        "status": "CURRENT",
        "updated": "2023-08-31T00:00:00Z",
        "version": format!("3.{MAX_VERSION}"),
    })
}

/// `GET /volume/`: 300 with the versions (no token needed).
pub(crate) async fn versions(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": [version_document(&cloud)]}),
    )
}

/// `GET /volume/v3/` (with a token). The catalog's `/volume/v3/{project_id}`
/// itself is no resource: 404, so clients discover one level up.
async fn version(
    State(cloud): State<Arc<Cloud>>,
    project: Option<Extension<UrlProject>>,
    headers: http::HeaderMap,
) -> Response {
    if project.is_some() {
        let error = ApiError::not_found("The resource could not be found.");
        return super::api::render_error(super::api::Service::Glance, &error, headers.get(http::header::ACCEPT));
    }
    json_response(StatusCode::OK, &json!({"versions": [version_document(&cloud)]}))
}

async fn microversion(mut req: Request, next: Next) -> Response {
    let minor = match super::nova::requested_version(req.headers(), "volume", None) {
        Ok(None) => MIN_VERSION,
        Ok(Some(v)) if v == "latest" => MAX_VERSION,
        Ok(Some(v)) => match super::nova::parse_version(&v) {
            Some((3, minor)) if minor <= MAX_VERSION => minor,
            Some((major, minor)) => {
                return ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!("Version {major}.{minor} is not supported by the API. Minimum is 3.{MIN_VERSION} and maximum is 3.{MAX_VERSION}."),
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
        Err(()) => return ApiError::bad_request("API Version String is of invalid format.").into_response(),
    };
    // A project id in the URL must be the token's.
    let url_project = req.extensions().get::<UrlProject>().map(|p| p.0.clone());
    let token_project = req.extensions().get::<AuthContext>().map(|a| a.project_id.clone());
    if let (Some(url), Some(token)) = (url_project, token_project)
        && url != token
    {
        return ApiError::bad_request("Malformed request url").into_response();
    }
    req.extensions_mut().insert(VolumeVersion(minor));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&format!("volume 3.{minor}")) {
        response.headers_mut().insert("openstack-api-version", v);
    }
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("OpenStack-API-Version"));
    response
}

fn links(cloud: &Cloud, project_id: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/volume/v3/{project_id}/volumes/{id}", cloud.base_url), "rel": "self"},
        {"href": format!("{}/volume/{project_id}/volumes/{id}", cloud.base_url), "rel": "bookmark"},
    ])
}

/// A volume in detail; `fresh`: the create response, whose `created_at`
/// still has microseconds (later reads come from the database, without).
fn detail(cloud: &Cloud, v: &Volume, ver: VolumeVersion, admin: bool, fresh: bool) -> Value {
    let status = match v.status.as_str() {
        "managing" => "creating",
        other => other,
    };
    let attachments: Vec<Value> = v
        .attachments
        .iter()
        .filter(|a| a.attached_at.is_some())
        .map(|a| {
            json!({
                "id": v.id, "attachment_id": a.attachment_id, "volume_id": v.id, "server_id": a.server_id,
                "host_name": if admin { json!(super::nova::HOST) } else { Value::Null },
                "device": a.device, "attached_at": a.attached_at.map(Micros::iso_db),
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(v.id));
    m.insert("status".into(), json!(status));
    m.insert("size".into(), json!(v.size));
    m.insert("availability_zone".into(), json!(v.availability_zone));
    let created = if fresh {
        v.created.iso_micros_naive()
    } else {
        v.created.iso_db()
    };
    m.insert("created_at".into(), json!(created));
    m.insert("updated_at".into(), json!(v.updated.map(Micros::iso_db)));
    m.insert("name".into(), json!(v.name));
    m.insert("description".into(), json!(v.description));
    m.insert("volume_type".into(), json!("__DEFAULT__"));
    m.insert("snapshot_id".into(), Value::Null);
    m.insert("source_volid".into(), Value::Null);
    m.insert("metadata".into(), json!(v.metadata));
    m.insert("links".into(), links(cloud, &v.project_id, &v.id));
    m.insert("user_id".into(), json!(v.user_id));
    m.insert("bootable".into(), json!(if v.bootable { "true" } else { "false" }));
    m.insert("encrypted".into(), json!(false));
    m.insert("replication_status".into(), Value::Null);
    m.insert("consistencygroup_id".into(), Value::Null);
    m.insert("multiattach".into(), json!(false));
    m.insert("attachments".into(), json!(attachments));
    if let Some(image) = &v.image_id {
        m.insert(
            "volume_image_metadata".into(),
            json!({"image_id": image, "container_format": "bare", "disk_format": "qcow2"}),
        );
    }
    if admin {
        m.insert("migration_status".into(), Value::Null);
        // The extension attributes come from the database: not in the
        // create response.
        if !fresh {
            let host = (v.status != "creating").then_some(BACKEND_HOST);
            m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
            m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
            m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
            m.insert("os-vol-host-attr:host".into(), json!(host));
        }
    }
    if ver.0 >= 13 {
        m.insert("group_id".into(), Value::Null);
    }
    if ver.0 >= 21 && admin {
        m.insert("provider_id".into(), Value::Null);
    }
    if ver.0 >= 48 {
        m.insert("shared_targets".into(), json!(false));
        m.insert(
            "service_uuid".into(),
            json!(super::keystone::stable_hex_id("service", "cinder-volume")),
        );
    }
    if ver.0 >= 61 && admin {
        m.insert("cluster_name".into(), Value::Null);
    }
    if ver.0 >= 63 {
        m.insert("volume_type_id".into(), json!(DEFAULT_TYPE_ID));
    }
    if ver.0 >= 65 {
        m.insert("consumes_quota".into(), json!(true));
    }
    Value::Object(m)
}

fn find<'a>(s: &'a CloudState, auth: &AuthContext, id: &str) -> ApiResult<&'a Volume> {
    s.volumes
        .get(id)
        .filter(|v| auth.is_admin() || v.project_id == auth.project_id)
        .ok_or_else(|| not_found(id))
}

/// The `metadata` filter: a JSON or Python-literal dict.
fn metadata_filter(text: &str) -> Option<BTreeMap<String, String>> {
    let json: Value = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .ok()?;
    json.as_object().map(|m| {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    })
}

fn list_common(cloud: &Cloud, auth: &AuthContext, ver: VolumeVersion, raw: RawQuery, detailed: bool) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let all = auth.is_admin()
        && query
            .get("all_tenants")
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
    let metadata = match query.get("metadata") {
        Some(m) => {
            Some(metadata_filter(m).ok_or_else(|| ApiError::bad_request(format!("Invalid metadata filter: {m}")))?)
        }
        None => None,
    };
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("limit param must be an integer"))?,
        None => 1000,
    };
    let offset = query.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let (items, last) = cloud.read(|s| -> ApiResult<(Vec<Value>, Option<String>)> {
        let mut volumes: Vec<&Volume> = s
            .volumes
            .iter()
            .filter(|v| all || v.project_id == auth.project_id)
            .filter(|v| query.get("name").is_none_or(|n| v.name.as_deref() == Some(n)))
            .filter(|v| query.get("status").is_none_or(|st| v.status == st))
            .filter(|v| {
                query
                    .get("bootable")
                    .is_none_or(|b| v.bootable == b.eq_ignore_ascii_case("true"))
            })
            .filter(|v| query.get("availability_zone").is_none_or(|a| v.availability_zone == a))
            .filter(|v| {
                metadata
                    .as_ref()
                    .is_none_or(|m| m.iter().all(|(k, val)| v.metadata.get(k) == Some(val)))
            })
            .collect();
        volumes.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        if let Some(marker) = query.get("marker") {
            let pos = volumes
                .iter()
                .position(|v| v.id == marker)
                .ok_or_else(|| ApiError::not_found(format!("Marker {marker} could not be found.")))?;
            volumes.drain(..=pos);
        }
        let volumes: Vec<&Volume> = volumes.into_iter().skip(offset).take(limit).collect();
        let last = volumes.last().map(|v| v.id.clone());
        let items = volumes
            .iter()
            .map(|v| {
                if detailed {
                    detail(cloud, v, ver, auth.is_admin(), false)
                } else {
                    json!({"id": v.id, "name": v.name, "links": links(cloud, &v.project_id, &v.id)})
                }
            })
            .collect();
        Ok((items, last))
    })?;
    let count = items.len();
    let mut body = json!({ "volumes": items });
    if let (Some(last), true) = (last, query.has("limit") && count == limit) {
        let path = if detailed { "volumes/detail" } else { "volumes" };
        body["volumes_links"] = json!([{"href": format!("{}/volume/v3/{}/{path}?{}", cloud.base_url, auth.project_id, query.with_marker(&last)), "rel": "next"}]);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET …/volumes` (`DETAIL` false) and `GET …/volumes/detail` (true).
async fn list<const DETAIL: bool>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<VolumeVersion>,
    raw: RawQuery,
) -> ApiResult {
    list_common(&cloud, &auth, v, raw, DETAIL)
}

async fn show(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<VolumeVersion>,
    Path(id): Path<String>,
) -> ApiResult {
    let item = cloud.read(|s| find(s, &auth, &id).map(|vol| detail(&cloud, vol, v, auth.is_admin(), false)))?;
    Ok(json_response(StatusCode::OK, &json!({ "volume": item })))
}

fn invalid(path: &str, value: &Value, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {path}. Value: {}. {reason}",
        brief(value)
    ))
}

fn check_metadata(value: &Value) -> ApiResult<BTreeMap<String, String>> {
    let map = value
        .as_object()
        .ok_or_else(|| invalid("metadata", value, format!("{} is not of type 'object'", brief(value))))?;
    map.iter()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .ok_or_else(|| invalid(&format!("metadata/{k}"), v, format!("{v} is not of type 'string'")))?;
            if k.is_empty() || k.chars().count() > 255 || text.chars().count() > 255 {
                return Err(invalid(
                    "metadata",
                    value,
                    "Metadata property key or value longer than 255 characters",
                ));
            }
            Ok((k.clone(), text.to_string()))
        })
        .collect()
}

/// The `volume` object of a create or update request body.
fn volume_body(body: &[u8]) -> ApiResult<Map<String, Value>> {
    let body = request_json(body)?;
    body.get("volume")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| invalid("volume", &body, "'volume' is a required property"))
}

async fn create(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(ver): Extension<VolumeVersion>,
    body: Bytes,
) -> ApiResult {
    let volume = volume_body(&body)?;
    // Without a size (nor a source to copy it from) Cinder answers webob's
    // generic 400.
    let size_value = volume.get("size").cloned().unwrap_or(Value::Null);
    if size_value.is_null() {
        return Err(ApiError::bad_request(
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ));
    }
    let size = size_value
        .as_u64()
        .or_else(|| size_value.as_str().and_then(|s| s.parse().ok()))
        .filter(|s| *s >= 1)
        .ok_or_else(|| {
            invalid(
                "size",
                &size_value,
                format!(
                    "{} is not a valid volume size (an integer of at least 1)",
                    brief(&size_value)
                ),
            )
        })?;
    let metadata = volume
        .get("metadata")
        .map(check_metadata)
        .transpose()?
        .unwrap_or_default();
    let text = |k: &str| volume.get(k).and_then(Value::as_str).map(str::to_string);
    let image = text("imageRef");
    let now = Micros::now();
    let ready = now.plus(cloud.config.scaled(cloud.timings.volume_create));
    let item = cloud.write(|s| {
        check_quota(&cloud, s, &auth.project_id, size, 1)?;
        if let Some(image) = &image
            && s.images.get(image).is_none_or(|i| i.status != "active")
        {
            return Err(ApiError::bad_request(
                "Invalid image identifier or unable to access requested image.",
            ));
        }
        let mut v = new_volume(s, &auth, size, image.as_deref(), "creating", now);
        v.name = text("name");
        v.description = text("description");
        v.metadata = metadata;
        if let Some(az) = text("availability_zone")
            && az != "nova"
        {
            return Err(ApiError::bad_request(format!("Invalid availability zone: {az}.")));
        }
        v.transition = Some(Transition {
            at: ready,
            to: "available".into(),
        });
        let id = v.id.clone();
        let json = detail(&cloud, &v, ver, auth.is_admin(), true);
        s.volumes.insert(v);
        s.schedule(ready, Timer::Volume(id));
        Ok(json)
    })?;
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "volume": item })))
}

async fn update(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(ver): Extension<VolumeVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let volume = volume_body(&body)?;
    let metadata = volume.get("metadata").map(check_metadata).transpose()?;
    let now = Micros::now();
    let item = cloud.write(|s| {
        find(s, &auth, &id)?;
        let v = s.volumes.get_mut(&id).ok_or_else(|| not_found(&id))?;
        if let Some(name) = volume.get("name").or(volume.get("display_name")) {
            v.name = name.as_str().map(str::to_string);
        }
        if let Some(d) = volume.get("description").or(volume.get("display_description")) {
            v.description = d.as_str().map(str::to_string);
        }
        if let Some(m) = metadata {
            v.metadata = m;
        }
        v.updated = Some(now);
        let v = v.clone();
        Ok(detail(&cloud, &v, ver, auth.is_admin(), false))
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "volume": item })))
}

async fn delete(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let now = Micros::now();
    let gone = now.plus(cloud.config.scaled(cloud.timings.volume_delete));
    cloud.write(|s| {
        let v = find(s, &auth, &id)?;
        let deletable = matches!(v.status.as_str(), "available" | "error" | "error_restoring" | "error_extending" | "error_managing");
        if !deletable || !v.attachments.is_empty() {
            return Err(ApiError::bad_request(
                "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.",
            ));
        }
        let v = s.volumes.get_mut(&id).ok_or_else(|| not_found(&id))?;
        v.status = "deleting".into();
        v.updated = Some(now);
        v.transition = Some(Transition { at: gone, to: "gone".into() });
        s.schedule(gone, Timer::Volume(id.clone()));
        Ok(())
    })?;
    Ok(empty_response(StatusCode::ACCEPTED))
}

// ---- metadata ----

impl HasMetadata for Volume {
    fn metadata(s: &CloudState, auth: &AuthContext, id: &str) -> ApiResult<Metadata> {
        find(s, auth, id).map(|v| v.metadata.clone())
    }

    fn metadata_body(body: &[u8], key: &str) -> ApiResult<Metadata> {
        let body = request_json(body)?;
        let value = body
            .get(key)
            .ok_or_else(|| invalid(key, &body, format!("'{key}' is a required property")))?;
        check_metadata(value)
    }

    fn change_metadata(
        cloud: &Cloud,
        auth: &AuthContext,
        id: &str,
        f: impl FnOnce(&mut Metadata) -> ApiResult<()>,
    ) -> ApiResult<Metadata> {
        let now = Micros::now();
        cloud.write(|s| {
            find(s, auth, id)?;
            let v = s.volumes.get_mut(id).ok_or_else(|| not_found(id))?;
            f(&mut v.metadata)?;
            v.updated = Some(now);
            Ok(v.metadata.clone())
        })
    }
}

async fn show_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    let value = cloud
        .read(|s| find(s, &auth, &id).map(|v| v.metadata.get(&key).cloned()))?
        .ok_or_else(|| ApiError::not_found(format!("Metadata {key} could not be found.")))?;
    Ok(json_response(StatusCode::OK, &json!({"meta": { key: value }})))
}

async fn set_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let meta = Volume::metadata_body(&body, "meta")?;
    let value = match (meta.len(), meta.get(&key)) {
        (1, Some(v)) => v.clone(),
        (1, None) => return Err(ApiError::bad_request("Request body and URI mismatch")),
        _ => return Err(ApiError::bad_request("Request body contains too many items")),
    };
    Volume::change_metadata(&cloud, &auth, &id, |m| {
        m.insert(key.clone(), value.clone());
        Ok(())
    })?;
    Ok(json_response(StatusCode::OK, &json!({"meta": { key: value }})))
}

async fn delete_metadata_item(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    Volume::change_metadata(&cloud, &auth, &id, |m| {
        m.remove(&key)
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found(format!("Metadata {key} could not be found.")))
    })?;
    Ok(empty_response(StatusCode::OK))
}

// ---- types, limits, quotas ----

async fn list_types() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"volume_types": [{
            "id": DEFAULT_TYPE_ID, "name": "__DEFAULT__", "description": "Default Volume Type",
            "is_public": true, "extra_specs": {}, "qos_specs_id": null, "os-volume-type-access:is_public": true,
        }]}),
    )
}

fn usage(s: &CloudState, project_id: &str) -> (u64, u64) {
    s.volumes
        .iter()
        .filter(|v| v.project_id == project_id)
        .fold((0, 0), |(n, g), v| (n + 1, g + v.size))
}

async fn limits(State(cloud): State<Arc<Cloud>>, Extension(auth): Extension<AuthContext>) -> Response {
    let q = &cloud.config.quotas;
    let (count, gb) = cloud.read(|s| usage(s, &auth.project_id));
    json_response(
        StatusCode::OK,
        &json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": q.volumes, "totalVolumesUsed": count,
            "maxTotalVolumeGigabytes": q.gigabytes, "totalGigabytesUsed": gb,
            "maxTotalSnapshots": 10, "totalSnapshotsUsed": 0,
            "maxTotalBackups": 10, "totalBackupsUsed": 0,
            "maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0,
        }}}),
    )
}

async fn quota_set(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(project): Path<String>,
    raw: RawQuery,
) -> ApiResult {
    if !auth.is_admin() && project != auth.project_id {
        return Err(ApiError::forbidden(
            "Policy doesn't allow volume_extension:quotas:show to be performed.",
        ));
    }
    let q = &cloud.config.quotas;
    let query = Query::parse(raw.0.as_deref());
    let body = if query.get("usage").is_some_and(|u| u.eq_ignore_ascii_case("true")) {
        let (count, gb) = cloud.read(|s| usage(s, &project));
        json!({"quota_set": {
            "id": project,
            "volumes": {"limit": q.volumes, "in_use": count, "reserved": 0, "allocated": 0},
            "gigabytes": {"limit": q.gigabytes, "in_use": gb, "reserved": 0, "allocated": 0},
        }})
    } else {
        json!({"quota_set": {"id": project, "volumes": q.volumes, "gigabytes": q.gigabytes, "snapshots": 10, "backups": 10, "per_volume_gigabytes": -1}})
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_are_stripped_from_urls() {
        let p = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            strip_project(&format!("/volume/v3/{p}/volumes/x")),
            Some(("/volume/v3/volumes/x".into(), p.into()))
        );
        assert_eq!(
            strip_project(&format!("/volume/v3/{p}")),
            Some(("/volume/v3/".into(), p.into()))
        );
        assert_eq!(strip_project("/volume/v3/volumes/detail"), None);
    }

    #[test]
    fn metadata_filters_accept_python_dicts() {
        let m = metadata_filter("{'role': 'storage'}").unwrap();
        assert_eq!(m.get("role").map(String::as_str), Some("storage"));
        assert!(metadata_filter("nonsense").is_none());
    }
}
