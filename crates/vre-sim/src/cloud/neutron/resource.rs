//! What every Neutron resource shares: where its rows live, who may see one,
//! how one renders, and the list and show handlers written once for all.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{list_response, parse_create, query, show_response};
use crate::Quotas;
use crate::cloud::api::{ApiError, ApiResult, Query, empty_response};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;
use crate::cloud::table::{Keyed, Table};

/// One kind of Neutron resource, as its list and show handlers see it.
pub(super) trait Resource: Keyed + Sized + 'static {
    /// The key of one resource in a show body (`network`).
    const SINGULAR: &'static str;
    /// The key of the list body (`networks`).
    const COLLECTION: &'static str;
    /// Its attribute names beside the standard ones, for rejecting unknown
    /// list filters.
    const ATTRIBUTES: &'static [&'static str];

    /// The rows of this kind.
    fn table(s: &CloudState) -> &Table<Self>;

    /// Whether the caller may see `row`.
    fn visible(s: &CloudState, row: &Self, auth: &AuthContext) -> bool;

    /// `row` as the API shows it to the caller.
    fn render(s: &CloudState, row: &Self, auth: &AuthContext) -> Map<String, Value>;

    /// The error for an id the caller cannot see.
    fn not_found(id: &str) -> ApiError;

    /// The rows a list request starts from (all, unless a kind has an index
    /// for a filter).
    fn candidates<'a>(s: &'a CloudState, _query: &Query) -> Vec<&'a Self> {
        Self::table(s).iter().collect()
    }

    /// The row `id` if the caller may see it, else the kind's not-found error.
    fn find<'a>(s: &'a CloudState, id: &str, auth: &AuthContext) -> ApiResult<&'a Self> {
        Self::table(s)
            .get(id)
            .filter(|row| Self::visible(s, row, auth))
            .ok_or_else(|| Self::not_found(id))
    }
}

/// `GET /networking/v2.0/{collection}`.
pub(super) async fn list<R: Resource>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    raw: RawQuery,
) -> ApiResult {
    let query = query(raw);
    let items = cloud.read(|s| {
        R::candidates(s, &query)
            .into_iter()
            .filter(|row| R::visible(s, row, &auth))
            .map(|row| R::render(s, row, &auth))
            .collect()
    });
    list_response(&cloud, R::COLLECTION, items, R::ATTRIBUTES, &query)
}

/// `GET /networking/v2.0/{collection}/{id}`.
pub(super) async fn show<R: Resource>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    raw: RawQuery,
) -> ApiResult {
    let item = cloud.read(|s| R::find(s, &id, &auth).map(|row| R::render(s, row, &auth)))?;
    Ok(show_response(R::SINGULAR, item, &query(raw), StatusCode::OK))
}

/// Who asks for a change, and when: what every create, update and delete of
/// a Neutron resource is given.
pub(super) struct Change<'a> {
    /// The caller.
    pub(super) auth: &'a AuthContext,
    /// The cloud's quotas.
    pub(super) quotas: &'a Quotas,
    /// The time of the change.
    pub(super) now: Micros,
}

/// A kind `POST /networking/v2.0/{collection}` creates.
pub(super) trait Create: Resource {
    /// The attributes a create body may carry.
    const CREATE_FIELDS: &'static [&'static str];

    /// Creates one from `body`; answers it rendered.
    fn create(s: &mut CloudState, change: &Change<'_>, body: &Map<String, Value>) -> ApiResult<Map<String, Value>>;
}

/// A kind `PUT /networking/v2.0/{collection}/{id}` updates.
pub(super) trait Update: Resource {
    /// The attributes an update body may carry.
    const UPDATE_FIELDS: &'static [&'static str];

    /// Applies `body` to the row `id`; answers it rendered.
    fn update(
        s: &mut CloudState,
        change: &Change<'_>,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<Map<String, Value>>;
}

/// A kind `DELETE /networking/v2.0/{collection}/{id}` deletes.
pub(super) trait Delete: Resource {
    /// Deletes the row `id` (and what goes with it).
    fn delete(s: &mut CloudState, change: &Change<'_>, id: &str) -> ApiResult<()>;
}

fn change<'a>(cloud: &'a Cloud, auth: &'a AuthContext) -> Change<'a> {
    Change {
        auth,
        quotas: &cloud.config.quotas,
        now: Micros::now(),
    }
}

/// `POST /networking/v2.0/{collection}`.
pub(super) async fn create<R: Create>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> ApiResult {
    let body = parse_create(&body, R::SINGULAR, R::CREATE_FIELDS)?;
    let change = change(&cloud, &auth);
    let item = cloud.write(|s| R::create(s, &change, &body))?;
    Ok(show_response(R::SINGULAR, item, &Query::default(), StatusCode::CREATED))
}

/// `PUT /networking/v2.0/{collection}/{id}`.
pub(super) async fn update<R: Update>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = parse_create(&body, R::SINGULAR, R::UPDATE_FIELDS)?;
    let change = change(&cloud, &auth);
    let item = cloud.write(|s| R::update(s, &change, &id, &body))?;
    Ok(show_response(R::SINGULAR, item, &Query::default(), StatusCode::OK))
}

/// `DELETE /networking/v2.0/{collection}/{id}`.
pub(super) async fn delete<R: Delete>(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> ApiResult {
    let change = change(&cloud, &auth);
    cloud.write(|s| R::delete(s, &change, &id))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
