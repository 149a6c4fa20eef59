//! `os-volume_attachments`: attach, list, show and detach Cinder volumes.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::model::{Attachment, VmState};
use super::{Microversion, required_object};
use crate::cloud::api::{ApiError, ApiResult, Query, empty_response, json_response, request_json};
use crate::cloud::app::Cloud;
use crate::cloud::cinder;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;
use crate::cloud::state::CloudState;

fn server<'a>(s: &'a CloudState, auth: &AuthContext, id: &str) -> ApiResult<&'a super::model::Server> {
    s.servers
        .get(id)
        .filter(|srv| auth.is_admin() || srv.project_id == auth.project_id)
        .ok_or_else(|| ApiError::not_found(format!("Instance {id} could not be found.")))
}

fn view(a: &Attachment, server_id: &str, v: Microversion) -> Value {
    let mut m = json!({"volumeId": a.volume_id, "serverId": server_id, "device": a.device});
    if !v.at_least(89) {
        m["id"] = json!(a.volume_id);
    }
    if v.at_least(70) {
        m["tag"] = json!(a.tag);
    }
    if v.at_least(79) {
        m["delete_on_termination"] = json!(a.delete_on_termination);
    }
    if v.at_least(89) {
        m["attachment_id"] = json!(a.attachment_id);
        m["bdm_uuid"] = json!(a.bdm_uuid);
    }
    m
}

pub(super) async fn list(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
    raw: RawQuery,
) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let offset = query.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(super::MAX_LIMIT)
        .min(super::MAX_LIMIT);
    let items = cloud.read(|s| {
        server(s, &auth, &id).map(|srv| {
            srv.attachments
                .iter()
                .skip(offset)
                .take(limit)
                .map(|a| view(a, &srv.id, v))
                .collect::<Vec<_>>()
        })
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "volumeAttachments": items })))
}

pub(super) async fn show(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path((id, volume)): Path<(String, String)>,
) -> ApiResult {
    let item = cloud.read(|s| {
        let srv = server(s, &auth, &id)?;
        srv.attachments
            .iter()
            .find(|a| a.volume_id == volume)
            .map(|a| view(a, &srv.id, v))
            .ok_or_else(|| ApiError::not_found(format!("No volume Block Device Mapping with id {volume}.")))
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "volumeAttachment": item })))
}

/// The vm_states Nova attaches and detaches volumes in.
fn attachable(state: VmState) -> bool {
    matches!(state, VmState::Active | VmState::Stopped)
}

pub(super) async fn attach(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = request_json(&body)?;
    let request = required_object(&body, "volumeAttachment")?;
    let volume_id = request.get("volumeId").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property")
    })?;
    for key in request.keys() {
        let ok = match key.as_str() {
            "volumeId" | "device" => true,
            "tag" => v.at_least(49),
            "delete_on_termination" => v.at_least(79),
            _ => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute volumeAttachment. Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
    }
    let wanted_device = request.get("device").and_then(Value::as_str).map(str::to_string);
    let tag = request.get("tag").and_then(Value::as_str).map(str::to_string);
    let delete_on_termination = request
        .get("delete_on_termination")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let now = Micros::now();
    let ready = now.plus(cloud.config.scaled(cloud.timings.volume_attach));
    let attachment = cloud.write(|s| {
        let srv = server(s, &auth, &id)?;
        if srv.locked && !auth.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if let Some(task) = &srv.task_state {
            return Err(ApiError::conflict(format!("Cannot 'attach_volume' instance {id} while it is in task_state {task}")));
        }
        if !attachable(srv.vm_state) {
            return Err(ApiError::conflict(format!(
                "Cannot 'attach_volume' instance {id} while it is in vm_state {}",
                srv.vm_state.as_str()
            )));
        }
        let volume = s
            .volumes
            .get(volume_id)
            .filter(|vol| auth.is_admin() || vol.project_id == auth.project_id)
            .ok_or_else(|| ApiError::not_found(format!("Volume {volume_id} could not be found.")))?;
        if volume.status != "available" {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: Volume status must be available or downloading to reserve, but the status is {}.",
                volume.status
            )));
        }
        let used: Vec<&str> = srv.attachments.iter().map(|a| a.device.as_str()).collect();
        let device = match wanted_device {
            Some(d) if used.contains(&d.as_str()) => {
                return Err(ApiError::conflict(format!("The supplied device path ({d}) is in use.")));
            }
            Some(d) => d,
            None => (b'b'..=b'z')
                .map(|c| format!("/dev/vd{}", c as char))
                .find(|d| !used.contains(&d.as_str()) && d != "/dev/vda")
                .ok_or_else(|| ApiError::forbidden("The maximum allowed number of disk devices (26) to attach to a single instance has been exceeded."))?,
        };
        let attachment_id = cinder::begin_attach(s, volume_id, &id, &device, now, ready);
        let bdm_uuid = s.uuid();
        let attachment = Attachment {
            volume_id: volume_id.to_string(),
            device,
            delete_on_termination,
            tag,
            attachment_id,
            bdm_uuid,
            boot_index: None,
        };
        if let Some(srv) = s.servers.get_mut(&id) {
            srv.attachments.push(attachment.clone());
            srv.updated = now;
        }
        Ok(attachment)
    })?;
    if v.at_least(101) {
        return Ok(empty_response(StatusCode::ACCEPTED));
    }
    // Nova forgot 2.89 on this response: it keeps `id` and never shows `attachment_id`.
    let mut out = json!({"id": attachment.volume_id, "serverId": id, "volumeId": attachment.volume_id, "device": attachment.device});
    if v.at_least(70) {
        out["tag"] = json!(attachment.tag);
    }
    if v.at_least(79) {
        out["delete_on_termination"] = json!(attachment.delete_on_termination);
    }
    Ok(json_response(StatusCode::OK, &json!({ "volumeAttachment": out })))
}

pub(super) async fn detach(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Path((id, volume_id)): Path<(String, String)>,
) -> ApiResult {
    let now = Micros::now();
    let done = now.plus(cloud.config.scaled(cloud.timings.volume_detach));
    cloud.write(|s| {
        let srv = server(s, &auth, &id)?;
        if srv.locked && !auth.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if let Some(task) = &srv.task_state {
            return Err(ApiError::conflict(format!(
                "Cannot 'detach_volume' instance {id} while it is in task_state {task}"
            )));
        }
        if !attachable(srv.vm_state) {
            return Err(ApiError::conflict(format!(
                "Cannot 'detach_volume' instance {id} while it is in vm_state {}",
                srv.vm_state.as_str()
            )));
        }
        if !s.volumes.contains(&volume_id) {
            return Err(ApiError::not_found(format!("Volume {volume_id} could not be found.")));
        }
        let attachment = srv
            .attachments
            .iter()
            .find(|a| a.volume_id == volume_id)
            .ok_or_else(|| ApiError::not_found(format!("Instance {id} is not attached to volume {volume_id}")))?;
        if attachment.boot_index == Some(0) {
            return Err(ApiError::bad_request("Cannot detach a root device volume"));
        }
        cinder::begin_detach(s, &volume_id, now, done).map_err(ApiError::bad_request)?;
        if let Some(srv) = s.servers.get_mut(&id) {
            srv.attachments.retain(|a| a.volume_id != volume_id);
            srv.updated = now;
        }
        Ok(())
    })?;
    Ok(empty_response(StatusCode::ACCEPTED))
}
