//! `os-keypairs`: import (and, before 2.92, generation), list, show, delete.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::model::KeyPair;
use super::{KEY_PAIRS_QUOTA, Microversion, collection_links, limit_and_marker};
use crate::cloud::api::{ApiError, ApiResult, Query, brief, empty_response, json_response, request_json};
use crate::cloud::app::Cloud;
use crate::cloud::clock::Micros;
use crate::cloud::keystone::AuthContext;

fn not_found(name: &str, user_id: &str) -> ApiError {
    ApiError::not_found(format!("Keypair {name} not found for user {user_id}"))
}

/// The MD5 fingerprint of an OpenSSH public key line (`aa:bb:...`), if
/// the line is one: `<type> <base64 blob> [comment]` whose blob starts with
/// the same type name.
pub(crate) fn ssh_fingerprint(public_key: &str) -> Option<String> {
    let mut words = public_key.split_whitespace();
    let kind = words.next()?;
    let blob = base64::engine::general_purpose::STANDARD.decode(words.next()?).ok()?;
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    if blob.get(4..4 + len)? != kind.as_bytes() || blob.len() <= 4 + len {
        return None;
    }
    let digest = Md5::digest(&blob);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

fn valid_name(name: &str, v: Microversion) -> bool {
    let extra: &[char] = if v.at_least(92) {
        &[' ', '_', '-', '@', '.']
    } else {
        &[' ', '_', '-']
    };
    !name.is_empty()
        && name.chars().count() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

fn summary(k: &KeyPair, v: Microversion) -> Value {
    let mut m = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if v.at_least(2) {
        m["type"] = json!(k.key_type);
    }
    m
}

pub(super) async fn create(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    body: Bytes,
) -> ApiResult {
    let body = request_json(&body)?;
    let keypair = body.get("keypair").and_then(Value::as_object).ok_or_else(|| {
        ApiError::bad_request("Invalid input for field/attribute keypair. Value: None. None is not of type 'object'")
    })?;
    let name = keypair.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute keypair. Value: {}. 'name' is a required property",
            brief(&body["keypair"])
        ))
    })?;
    let pattern = if v.at_least(92) {
        r"^[_\-\@\. a-zA-Z0-9]+$"
    } else {
        r"^[_\- a-zA-Z0-9]+$"
    };
    if !valid_name(name, v) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name}. '{name}' does not match '{}'",
            pattern.replace('\\', "\\\\")
        )));
    }
    let key_type = if v.at_least(2) {
        keypair.get("type").and_then(Value::as_str).unwrap_or("ssh")
    } else {
        "ssh"
    };
    if !matches!(key_type, "ssh" | "x509") {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute type. Value: {key_type}. '{key_type}' is not one of ['ssh', 'x509']"
        )));
    }
    let user_id = match keypair.get("user_id").and_then(Value::as_str) {
        Some(u) if v.at_least(10) => {
            if u != auth.user_id && !auth.is_admin() {
                return Err(ApiError::forbidden(
                    "Policy doesn't allow os_compute_api:os-keypairs:create to be performed.",
                ));
            }
            u.to_string()
        }
        _ => auth.user_id.clone(),
    };
    let (public_key, private_key) = match keypair.get("public_key").and_then(Value::as_str) {
        Some(k) => (k.trim().to_string(), None),
        None if v.at_least(92) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute keypair. Value: {}. 'public_key' is a required property",
                brief(&body["keypair"])
            )));
        }
        None => {
            let (public, private) = generate()?;
            (public, Some(private))
        }
    };
    let fingerprint = ssh_fingerprint(&public_key)
        .filter(|_| key_type == "ssh")
        .ok_or_else(|| ApiError::bad_request("Keypair data is invalid: failed to generate fingerprint"))?;
    let now = Micros::now();
    let key = format!("{user_id}/{name}");
    let pair = cloud.write(|s| {
        if s.keypairs.contains(&key) {
            return Err(ApiError::conflict(format!("Key pair '{name}' already exists.")));
        }
        if s.keypairs.iter().filter(|k| k.user_id == user_id).count() as u64 >= KEY_PAIRS_QUOTA {
            return Err(ApiError::forbidden("Quota exceeded, too many key pairs."));
        }
        s.keypair_counter += 1;
        let pair = KeyPair {
            key: key.clone(),
            name: name.to_string(),
            user_id: user_id.clone(),
            project_id: auth.project_id.clone(),
            public_key,
            fingerprint,
            key_type: key_type.to_string(),
            created: now,
            number: s.keypair_counter,
        };
        s.keypairs.insert(pair.clone());
        Ok(pair)
    })?;
    let mut out = summary(&pair, v);
    out["user_id"] = json!(pair.user_id);
    if let Some(private) = private_key {
        out["private_key"] = json!(private);
    }
    let status = if v.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &json!({ "keypair": out })))
}

/// A new key pair, as Nova generates one before 2.92 (Ed25519 here; the
/// private key goes to the caller only, never into the state).
fn generate() -> ApiResult<(String, String)> {
    let mut rng = ssh_key::rand_core::OsRng;
    let key = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("key generation failed: {e}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("key encoding failed: {e}")))?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("key encoding failed: {e}")))?;
    Ok((format!("{public} Generated-by-Nova"), private.to_string()))
}

fn target_user(auth: &AuthContext, query: &Query, v: Microversion) -> ApiResult<String> {
    match query.get("user_id") {
        Some(u) if v.at_least(10) => {
            if u != auth.user_id && !auth.is_admin() {
                return Err(ApiError::forbidden(
                    "Policy doesn't allow os_compute_api:os-keypairs:index to be performed.",
                ));
            }
            Ok(u.to_string())
        }
        _ => Ok(auth.user_id.clone()),
    }
}

pub(super) async fn list(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    raw: RawQuery,
) -> ApiResult {
    let query = Query::parse(raw.0.as_deref());
    let user = target_user(&auth, &query, v)?;
    let mut pairs: Vec<KeyPair> = cloud.read(|s| s.keypairs.iter().filter(|k| k.user_id == user).cloned().collect());
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut links = None;
    if v.at_least(35) {
        let (limit, marker) = limit_and_marker(&query)?;
        if let Some(marker) = marker {
            let pos = pairs
                .iter()
                .position(|k| k.name == marker)
                .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?;
            pairs.drain(..=pos);
        }
        pairs.truncate(limit);
        links = collection_links(
            &cloud,
            "os-keypairs",
            &query,
            pairs.len(),
            pairs.last().map(|k| k.name.as_str()),
        );
    }
    let mut body = json!({"keypairs": pairs.iter().map(|k| json!({"keypair": summary(k, v)})).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["keypairs_links"] = l;
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub(super) async fn show(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(name): Path<String>,
    raw: RawQuery,
) -> ApiResult {
    let user = target_user(&auth, &Query::parse(raw.0.as_deref()), v)?;
    let k = cloud
        .read(|s| s.keypairs.get(&format!("{user}/{name}")).cloned())
        .ok_or_else(|| not_found(&name, &user))?;
    let mut out = summary(&k, v);
    out["user_id"] = json!(k.user_id);
    out["deleted"] = json!(false);
    out["created_at"] = json!(k.created.iso_db());
    out["updated_at"] = Value::Null;
    out["deleted_at"] = Value::Null;
    out["id"] = json!(k.number);
    Ok(json_response(StatusCode::OK, &json!({ "keypair": out })))
}

pub(super) async fn delete(
    State(cloud): State<Arc<Cloud>>,
    Extension(auth): Extension<AuthContext>,
    Extension(v): Extension<Microversion>,
    Path(name): Path<String>,
    raw: RawQuery,
) -> ApiResult {
    let user = target_user(&auth, &Query::parse(raw.0.as_deref()), v)?;
    cloud
        .write(|s| s.keypairs.remove(&format!("{user}/{name}")))
        .ok_or_else(|| not_found(&name, &user))?;
    Ok(empty_response(if v.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";

    #[test]
    fn fingerprints_valid_keys_only() {
        let fp = ssh_fingerprint(KEY).unwrap();
        assert_eq!(fp.split(':').count(), 16);
        assert!(
            ssh_fingerprint("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl").is_none(),
            "type mismatch"
        );
        assert!(ssh_fingerprint("not a key").is_none());
        assert!(ssh_fingerprint("").is_none());
    }

    #[test]
    fn generated_keys_import_cleanly() {
        let (public, private) = generate().unwrap();
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(ssh_fingerprint(&public).is_some());
        assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
    }

    #[test]
    fn names_follow_the_microversion() {
        assert!(valid_name("vre-key_1", Microversion(2)));
        assert!(!valid_name("me@host", Microversion(91)));
        assert!(valid_name("me@host.example", Microversion(92)));
        assert!(!valid_name("", Microversion(92)));
    }
}
