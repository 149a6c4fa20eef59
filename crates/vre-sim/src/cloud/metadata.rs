//! The metadata calls Nova (of a server) and Cinder (of a volume) answer
//! alike: show it all, merge into it, replace it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use super::api::{ApiResult, json_response};
use super::app::Cloud;
use super::keystone::AuthContext;
use super::state::CloudState;

/// Metadata as both services keep it.
pub(crate) type Metadata = BTreeMap<String, String>;

/// A resource with metadata, as its service checks and stores it.
pub(crate) trait HasMetadata {
    /// The metadata of `id`, if the caller can see it.
    fn metadata(s: &CloudState, auth: &AuthContext, id: &str) -> ApiResult<Metadata>;

    /// The metadata under `key` of a request body, checked.
    fn metadata_body(body: &[u8], key: &str) -> ApiResult<Metadata>;

    /// Applies `f` to the metadata of `id`; answers the metadata after it.
    fn change_metadata(
        cloud: &Cloud,
        auth: &AuthContext,
        id: &str,
        f: impl FnOnce(&mut Metadata) -> ApiResult<()>,
    ) -> ApiResult<Metadata>;
}

/// `GET …/{id}/metadata`.
pub(crate) async fn show<R: HasMetadata>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let metadata = cloud.read(|s| R::metadata(s, &auth, &id))?;
    Ok(json_response(StatusCode::OK, &json!({ "metadata": metadata })))
}

/// `POST …/{id}/metadata` (`REPLACE` false: adds and overwrites keys) and
/// `PUT …/{id}/metadata` (`REPLACE` true: replaces all keys).
pub(crate) async fn write<R: HasMetadata, const REPLACE: bool>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let new = R::metadata_body(&body, "metadata")?;
    let metadata = R::change_metadata(&cloud, &auth, &id, |m| {
        if REPLACE {
            *m = new;
        } else {
            m.extend(new);
        }
        Ok(())
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "metadata": metadata })))
}
