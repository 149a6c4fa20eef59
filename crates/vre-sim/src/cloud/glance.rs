//! Glance image v2: list (filters, sorting, pages), show, create, update
//! (JSON patch), delete, tags, and the interoperable image import with
//! `web-download` (queued -> importing -> active; nothing is fetched).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Timer;
use super::api::{ApiError, ApiResult, Query, empty_response, header_str, json_body, json_response, request_json};
use super::app::Cloud;
use super::clock::Micros;
use super::keystone::{AuthContext, stable_uuid};
use super::state::CloudState;
use super::table::Keyed;

/// Glance's default `enabled_import_methods`.
const IMPORT_METHODS: [&str; 2] = ["glance-direct", "web-download"];
const DISK_FORMATS: [&str; 11] = [
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const CONTAINER_FORMATS: [&str; 8] = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];
/// Attributes Glance computes or owns; clients cannot set them.
const READ_ONLY: [&str; 14] = [
    "id",
    "status",
    "created_at",
    "updated_at",
    "checksum",
    "size",
    "virtual_size",
    "file",
    "self",
    "schema",
    "locations",
    "direct_url",
    "os_hash_algo",
    "os_hash_value",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub owner: String,
    pub visibility: String,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub size: Option<u64>,
    #[serde(default)]
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub protected: bool,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    /// Additional properties (string values).
    pub properties: BTreeMap<String, String>,
    pub created: Micros,
    pub updated: Micros,
    /// When a `web-download` import completes, and from where.
    pub import_done: Option<Micros>,
    #[serde(default)]
    pub import_uri: Option<String>,
}

impl Keyed for Image {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Image {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("owner".into(), json!(self.owner));
        m.insert("visibility".into(), json!(self.visibility));
        m.insert("container_format".into(), json!(self.container_format));
        m.insert("disk_format".into(), json!(self.disk_format));
        m.insert("size".into(), json!(self.size));
        m.insert("virtual_size".into(), json!(self.virtual_size));
        m.insert("checksum".into(), json!(self.checksum));
        m.insert(
            "os_hash_algo".into(),
            json!(self.os_hash_value.as_ref().map(|_| "sha512")),
        );
        m.insert("os_hash_value".into(), json!(self.os_hash_value));
        m.insert("min_disk".into(), json!(self.min_disk));
        m.insert("min_ram".into(), json!(self.min_ram));
        m.insert("protected".into(), json!(self.protected));
        m.insert("os_hidden".into(), json!(self.os_hidden));
        m.insert("tags".into(), json!(self.tags));
        m.insert("created_at".into(), json!(self.created.iso_seconds()));
        m.insert("updated_at".into(), json!(self.updated.iso_seconds()));
        m.insert("self".into(), json!(format!("/v2/images/{}", self.id)));
        m.insert("file".into(), json!(format!("/v2/images/{}/file", self.id)));
        m.insert("schema".into(), json!("/v2/schemas/image"));
        for (k, v) in &self.properties {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    }

    /// Marks the image stored: size and hashes of what it "holds".
    fn activate(&mut self, content: &str, now: Micros) {
        let sha512 = digest::digest(&digest::SHA512, content.as_bytes());
        let md5 = md5::compute_hex(content.as_bytes());
        self.status = "active".into();
        self.size = Some(600 * 1024 * 1024 + u64::from(sha512.as_ref()[0]) * 1024 * 1024);
        // A cloud image's disk is larger than its qcow2 file (3.5 GiB for Ubuntu's).
        self.virtual_size = Some(match self.disk_format.as_deref() {
            Some("raw") => self.size.unwrap_or_default(),
            _ => 3_758_096_384,
        });
        self.checksum = Some(md5);
        self.os_hash_value = Some(hex::encode(sha512.as_ref()));
        self.updated = now;
        self.import_done = None;
    }
}

mod md5 {
    use md5::{Digest, Md5};

    pub(super) fn compute_hex(data: &[u8]) -> String {
        hex::encode(Md5::digest(data))
    }
}

/// The two images of a fresh cloud: vanilla Ubuntu 24.04 and KubeNow's
/// pre-provisioned one (Kubernetes tools already installed), both public.
pub(crate) fn seed_images(s: &mut CloudState, owner: &str) {
    let now = Micros::now();
    for (name, preprovisioned) in [("ubuntu-24.04", false), ("kubenow-ubuntu-24.04", true)] {
        let mut properties = BTreeMap::from([
            ("os_distro".to_string(), "ubuntu".to_string()),
            ("os_version".to_string(), "24.04".to_string()),
            ("hw_disk_bus".to_string(), "virtio".to_string()),
        ]);
        if preprovisioned {
            properties.insert("kubenow_preprovisioned".into(), "true".into());
        }
        let mut image = Image {
            id: stable_uuid("image", name),
            name: Some(name.to_string()),
            status: "queued".into(),
            owner: owner.to_string(),
            visibility: "public".into(),
            container_format: Some("bare".into()),
            disk_format: Some("qcow2".into()),
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: Vec::new(),
            properties,
            created: now,
            updated: now,
            import_done: None,
            import_uri: None,
        };
        image.activate(name, now);
        s.images.insert(image);
    }
}

/// A `web-download` import is complete.
pub(crate) fn fire_imported(s: &mut CloudState, id: &str, now: Micros) {
    if let Some(image) = s.images.get_mut(id)
        && image.status == "importing"
        && image.import_done.is_some_and(|d| d <= now)
    {
        let uri = image.import_uri.take().unwrap_or_default();
        image.properties.remove("os_glance_import_task");
        image.activate(&uri, now);
    }
}

/// The Glance routes (under `/image`).
pub(crate) fn routes() -> Router<Arc<Cloud>> {
    Router::new()
        .route("/image/v2/images", get(list).post(create))
        .route("/image/v2/images/{id}", get(show).patch(update).delete(delete))
        .route("/image/v2/images/{id}/import", post(import))
        .route("/image/v2/images/{id}/tags/{tag}", put(add_tag).delete(remove_tag))
        .route("/image/v2/info/import", get(import_info))
}

fn versions_body(cloud: &Cloud) -> Value {
    let v = |id: &str, status: &str| json!({"id": format!("v{id}"), "status": status, "links": [{"rel": "self", "href": format!("{}/image/v2/", cloud.base_url)}]});
    // Glance's list with multiple stores enabled, in Glance's order.
    let mut list = vec![v("2.15", "SUPPORTED")];
    for minor in (8..=13).rev() {
        list.push(v(&format!("2.{minor}"), "SUPPORTED"));
    }
    list.push(v("2.17", "CURRENT"));
    for minor in (0..=7).rev() {
        list.push(v(&format!("2.{minor}"), "SUPPORTED"));
    }
    json!({ "versions": list })
}

/// `GET /image/`: 300 Multiple Choices (no token needed).
pub(crate) async fn versions(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(StatusCode::MULTIPLE_CHOICES, &versions_body(&cloud))
}

/// `GET /image/versions`.
pub(crate) async fn versions_ok(State(cloud): State<Arc<Cloud>>) -> Response {
    json_response(StatusCode::OK, &versions_body(&cloud))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No image found with ID {id}"))
}

fn visible(image: &Image, auth: &AuthContext) -> bool {
    auth.is_admin() || image.owner == auth.project_id || matches!(image.visibility.as_str(), "public" | "community")
}

fn find<'a>(s: &'a CloudState, auth: &AuthContext, id: &str) -> ApiResult<&'a Image> {
    s.images
        .get(id)
        .filter(|i| visible(i, auth))
        .ok_or_else(|| not_found(id))
}

async fn list(State(cloud): State<Arc<Cloud>>, Extension(auth): Extension<AuthContext>, raw: RawQuery) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("limit param must be an integer"))?
            .min(1000),
        None => 25,
    };
    let tags = query.all("tag");
    let visibility = query.get("visibility");
    if let Some(v) = visibility
        && !matches!(v, "public" | "private" | "shared" | "community" | "all")
    {
        return Err(ApiError::bad_request(format!("Invalid visibility value: {v}")));
    }
    let hidden = query.get("os_hidden").is_some_and(|h| h.eq_ignore_ascii_case("true"));
    let (sort_key, ascending) = match (query.get("sort_key"), query.get("sort_dir"), query.get("sort")) {
        (_, _, Some(sort)) => {
            let (k, d) = sort.split_once(':').unwrap_or((sort, "desc"));
            (k.to_string(), d == "asc")
        }
        (k, d, None) => (k.unwrap_or("created_at").to_string(), d == Some("asc")),
    };
    if !matches!(
        sort_key.as_str(),
        "created_at" | "updated_at" | "name" | "id" | "status" | "size" | "disk_format" | "container_format"
    ) {
        return Err(ApiError::bad_request(format!(
            "Invalid sort key: {sort_key}. It must be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at."
        )));
    }
    let (items, last) = cloud.read(|s| -> ApiResult<(Vec<Value>, Option<String>)> {
        let mut images: Vec<&Image> = s
            .images
            .iter()
            .filter(|i| visible(i, &auth))
            .filter(|i| match visibility {
                None => i.visibility != "community" || i.owner == auth.project_id,
                Some("all") => true,
                Some(v) => i.visibility == v,
            })
            .filter(|i| i.os_hidden == hidden)
            .filter(|i| query.get("name").is_none_or(|n| i.name.as_deref() == Some(n)))
            .filter(|i| query.get("status").is_none_or(|st| i.status == st))
            .filter(|i| query.get("owner").is_none_or(|o| i.owner == o))
            .filter(|i| query.get("id").is_none_or(|id| i.id == id))
            .filter(|i| {
                query
                    .get("disk_format")
                    .is_none_or(|f| i.disk_format.as_deref() == Some(f))
            })
            .filter(|i| {
                query
                    .get("container_format")
                    .is_none_or(|f| i.container_format.as_deref() == Some(f))
            })
            .filter(|i| tags.iter().all(|t| i.tags.iter().any(|x| x == t)))
            .collect();
        images.sort_by(|a, b| {
            let ord = match sort_key.as_str() {
                "name" => a.name.cmp(&b.name),
                "updated_at" => a.updated.cmp(&b.updated),
                "id" => a.id.cmp(&b.id),
                "status" => a.status.cmp(&b.status),
                "size" => a.size.cmp(&b.size),
                "disk_format" => a.disk_format.cmp(&b.disk_format),
                "container_format" => a.container_format.cmp(&b.container_format),
                _ => a.created.cmp(&b.created),
            }
            .then(a.id.cmp(&b.id));
            if ascending { ord } else { ord.reverse() }
        });
        if let Some(marker) = query.get("marker") {
            let pos = images
                .iter()
                .position(|i| i.id == marker)
                .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?;
            images.drain(..=pos);
        }
        images.truncate(limit);
        let last = images.last().map(|i| i.id.clone());
        Ok((images.into_iter().map(Image::to_json).collect(), last))
    })?;
    let count = items.len();
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.pairs().iter().filter(|(k, _)| k != "marker") {
        params.append_pair(k, v);
    }
    let params = params.finish();
    let first = if params.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{params}")
    };
    let mut body = json!({"images": items, "schema": "/v2/schemas/images", "first": first});
    if let (Some(last), true) = (last, count == limit && count > 0) {
        body["next"] = json!(format!("/v2/images?{}", query.with_marker(&last)));
    }
    Ok(json_response(StatusCode::OK, &body))
}

async fn show(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let image = cloud.read(|s| find(s, &auth, &id).map(Image::to_json))?;
    Ok(json_response(StatusCode::OK, &image))
}

/// Applies one attribute (create and patch share the checks).
fn set_attribute(image: &mut Image, key: &str, value: &Value, auth: &AuthContext) -> ApiResult<()> {
    let text = || value.as_str().map(str::to_string);
    let bad = |what: &str| ApiError::bad_request(format!("Provided object does not match schema 'image': {what}"));
    match key {
        "name" => {
            image.name = if value.is_null() {
                None
            } else {
                Some(text().ok_or_else(|| bad("name must be a string"))?)
            }
        }
        "visibility" => {
            let v = text().ok_or_else(|| bad("visibility must be a string"))?;
            if !matches!(v.as_str(), "public" | "private" | "shared" | "community") {
                return Err(bad(&format!(
                    "'{v}' is not one of ['community', 'public', 'private', 'shared']"
                )));
            }
            if v == "public" && !auth.is_admin() {
                return Err(ApiError::forbidden(
                    "You are not authorized to complete publicize_image action.",
                ));
            }
            image.visibility = v;
        }
        "container_format" => {
            let v = text().ok_or_else(|| bad("container_format must be a string"))?;
            if !CONTAINER_FORMATS.contains(&v.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid value '{v}' for parameter 'container_format': must be one of {CONTAINER_FORMATS:?}"
                )));
            }
            image.container_format = Some(v);
        }
        "disk_format" => {
            let v = text().ok_or_else(|| bad("disk_format must be a string"))?;
            if !DISK_FORMATS.contains(&v.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid value '{v}' for parameter 'disk_format': must be one of {DISK_FORMATS:?}"
                )));
            }
            image.disk_format = Some(v);
        }
        "min_disk" | "min_ram" => {
            let n = value
                .as_u64()
                .ok_or_else(|| bad(&format!("{key} must be a non-negative integer")))?;
            if key == "min_disk" {
                image.min_disk = n
            } else {
                image.min_ram = n
            }
        }
        "protected" | "os_hidden" => {
            let b = value
                .as_bool()
                .ok_or_else(|| bad(&format!("{key} must be a boolean")))?;
            if key == "protected" {
                image.protected = b
            } else {
                image.os_hidden = b
            }
        }
        "tags" => {
            let tags = value.as_array().ok_or_else(|| bad("tags must be an array"))?;
            image.tags = Vec::new();
            for t in tags {
                let t = t.as_str().ok_or_else(|| bad("tags must be strings"))?;
                if t.chars().count() > 255 {
                    return Err(ApiError::bad_request(
                        "Image tag exceeds the maximum length of 255 characters",
                    ));
                }
                if !image.tags.iter().any(|x| x == t) {
                    image.tags.push(t.to_string());
                }
            }
        }
        "owner" if auth.is_admin() => image.owner = text().ok_or_else(|| bad("owner must be a string"))?,
        k if READ_ONLY.contains(&k) || k == "owner" => {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is read-only.")));
        }
        k if k.starts_with("os_glance") => {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is reserved.")));
        }
        k => {
            let v = text().ok_or_else(|| bad(&format!("additional property {k} must be a string")))?;
            image.properties.insert(k.to_string(), v);
        }
    }
    Ok(())
}

async fn create(State(cloud): State<Arc<Cloud>>, Extension(auth): Extension<AuthContext>, body: Bytes) -> ApiResult {
    let body = request_json(&body)?;
    let attrs = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let now = Micros::now();
    let image = cloud.write(|s| {
        let id = match attrs.get("id").and_then(Value::as_str) {
            Some(id) => {
                if s.images.contains(id) {
                    return Err(ApiError::conflict(format!(
                        "Image with identifier {id} already exists!"
                    )));
                }
                id.to_string()
            }
            None => s.uuid(),
        };
        let mut image = Image {
            id,
            name: None,
            status: "queued".into(),
            owner: auth.project_id.clone(),
            visibility: "shared".into(),
            container_format: None,
            disk_format: None,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            created: now,
            updated: now,
            import_done: None,
            import_uri: None,
        };
        for (k, v) in attrs {
            if k == "id" {
                continue;
            }
            set_attribute(&mut image, k, v, &auth)?;
        }
        s.images.insert(image.clone());
        Ok(image)
    })?;
    let mut response = json_response(StatusCode::CREATED, &image.to_json());
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/image/v2/images/{}", cloud.base_url, image.id)) {
        response.headers_mut().insert(LOCATION, loc);
    }
    if let Ok(methods) = HeaderValue::from_str(&IMPORT_METHODS.join(",")) {
        response.headers_mut().insert("openstack-image-import-methods", methods);
    }
    Ok(response)
}

async fn update(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let content_type = header_str(&headers, CONTENT_TYPE.as_str()).unwrap_or_default();
    if !content_type.starts_with("application/openstack-images-v2.1-json-patch")
        && !content_type.starts_with("application/openstack-images-v2.0-json-patch")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported Content-Type {content_type}; use application/openstack-images-v2.1-json-patch"),
        ));
    }
    let ops = json_body(&body)
        .and_then(|b| b.as_array().cloned())
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let now = Micros::now();
    let image = cloud.write(|s| {
        let mut image = find(s, &auth, &id)?.clone();
        if image.owner != auth.project_id && !auth.is_admin() {
            return Err(ApiError::forbidden("You are not permitted to modify this image."));
        }
        for op in &ops {
            let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
            let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
            let key = path.strip_prefix('/').ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Json path should start with a '/', end with no '/', no 2 subsequent '/' are allowed: {path}"
                ))
            })?;
            match kind {
                "add" | "replace" => {
                    let value = op.get("value").ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Operation objects must contain exactly one member named \"value\": {op}"
                        ))
                    })?;
                    if kind == "replace" && !image.properties.contains_key(key) && !is_core(key) {
                        return Err(ApiError::conflict(format!("Property {key} does not exist.")));
                    }
                    set_attribute(&mut image, key, value, &auth)?;
                }
                "remove" => {
                    if is_core(key) {
                        return Err(ApiError::forbidden(format!("Attribute '{key}' is read-only.")));
                    }
                    image
                        .properties
                        .remove(key)
                        .ok_or_else(|| ApiError::conflict(format!("Property {key} does not exist.")))?;
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid operation: `{other}`: Operation 'op' must be one of: add, remove, replace."
                    )));
                }
            }
        }
        image.updated = now;
        s.images.insert(image.clone());
        Ok(image)
    })?;
    Ok(json_response(StatusCode::OK, &image.to_json()))
}

fn is_core(key: &str) -> bool {
    matches!(
        key,
        "name"
            | "visibility"
            | "container_format"
            | "disk_format"
            | "min_disk"
            | "min_ram"
            | "protected"
            | "os_hidden"
            | "tags"
            | "owner"
    ) || READ_ONLY.contains(&key)
}

async fn delete(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    cloud.write(|s| {
        let image = find(s, &auth, &id)?;
        if image.owner != auth.project_id && !auth.is_admin() {
            return Err(ApiError::forbidden("You are not permitted to delete this image."));
        }
        if image.protected {
            return Err(ApiError::forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        s.images.remove(&id);
        Ok(())
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

async fn add_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    if tag.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Image tag exceeds the maximum length of 255 characters",
        ));
    }
    edit_tags(&cloud, &auth, &id, |tags| {
        let added = !tags.contains(&tag);
        if added {
            tags.push(tag.clone());
        }
        Ok(added)
    })
}

async fn remove_tag(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    edit_tags(&cloud, &auth, &id, |tags| {
        let before = tags.len();
        tags.retain(|t| *t != tag);
        if tags.len() == before {
            return Err(ApiError::not_found(format!("Tag {tag} not found")));
        }
        Ok(true)
    })
}

/// Edits the tags of the image `id` the caller can see; `edit` answers
/// whether they changed (then the image's `updated_at` moves).
fn edit_tags(
    cloud: &Cloud,
    auth: &AuthContext,
    id: &str,
    edit: impl FnOnce(&mut Vec<String>) -> ApiResult<bool>,
) -> ApiResult {
    let now = Micros::now();
    cloud.write(|s| {
        find(s, auth, id)?;
        let image = s.images.get_mut(id).ok_or_else(|| not_found(id))?;
        if edit(&mut image.tags)? {
            image.updated = now;
        }
        Ok(())
    })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

async fn import_info() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": IMPORT_METHODS}}),
    )
}

async fn import(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = request_json(&body)?;
    let method = body
        .get("method")
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'method' field."))?;
    let name = method
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'name' field."))?;
    if !IMPORT_METHODS.contains(&name) {
        return Err(ApiError::bad_request(format!("Unknown import method name '{name}'.")));
    }
    let now = Micros::now();
    let done = now.plus(cloud.config.scaled(cloud.timings.image_import));
    cloud.write(|s| {
        let image = find(s, &auth, &id)?;
        if image.owner != auth.project_id && !auth.is_admin() {
            return Err(ApiError::forbidden("You are not permitted to modify this image."));
        }
        if image.status == "active" {
            return Err(ApiError::conflict(
                "Image with status active cannot be target for import",
            ));
        }
        if image.status != "queued" && name == "web-download" {
            return Err(ApiError::conflict(
                "Image needs to be in 'queued' state to use 'web-download' method",
            ));
        }
        if name == "glance-direct" {
            return Err(ApiError::conflict(
                "Image needs to be staged before 'glance-direct' method can be used",
            ));
        }
        if image.container_format.is_none() {
            return Err(ApiError::conflict("'container_format' needs to be set before import"));
        }
        if image.disk_format.is_none() {
            return Err(ApiError::conflict("'disk_format' needs to be set before import"));
        }
        let uri = method.get("uri").and_then(Value::as_str).unwrap_or_default();
        let allowed = url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !allowed {
            return Err(ApiError::bad_request(format!(
                "URI for web-download does not pass filtering: {uri}"
            )));
        }
        let task = s.uuid();
        let image = s.images.get_mut(&id).ok_or_else(|| not_found(&id))?;
        image.status = "importing".into();
        image.updated = now;
        image.import_done = Some(done);
        image.properties.insert("os_glance_import_task".into(), task);
        image.import_uri = Some(uri.to_string());
        s.schedule(done, Timer::ImageImported(id.clone()));
        Ok(())
    })?;
    Ok(empty_response(StatusCode::ACCEPTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_images_are_active_and_public() {
        let mut s = CloudState::new(1);
        seed_images(&mut s, "p");
        let names: Vec<_> = s.images.iter().filter_map(|i| i.name.clone()).collect();
        assert!(names.contains(&"ubuntu-24.04".to_string()));
        assert!(names.contains(&"kubenow-ubuntu-24.04".to_string()));
        assert!(
            s.images
                .iter()
                .all(|i| i.status == "active" && i.visibility == "public" && i.size.is_some())
        );
    }
}
