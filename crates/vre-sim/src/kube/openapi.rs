//! A minimal OpenAPI v3 description (`/openapi/v3` and one document per
//! group version): the item paths of every served kind with their PATCH
//! operation, its `x-kubernetes-group-version-kind` and query parameters.
//! That is what kubectl reads to learn that the server validates fields
//! (`fieldValidation`), so a default `kubectl apply` validates server-side.
//! Schemas are not published: kubectl computes strategic merge patches
//! for built-in kinds from its compiled-in types.
//!
//! `/openapi/v2` is a valid Swagger 2.0 document without definitions, in
//! JSON or in the protobuf encoding kubectl asks for (gnostic's
//! `openapi_v2.Document`). kubectl reads it to validate the items of a
//! `kind: List` on the client (the one kind the v3 verifier never accepts);
//! with no definitions that check passes and the items go to the server
//! with `fieldValidation=Strict`, as single objects do. The simulator checks
//! fields against schemas only for custom resources (it ships no schemas of
//! built-in kinds), so an unknown field of a built-in kind passes here where
//! a real server refuses it: vre's own objects are checked against a real
//! kube-apiserver in CI for that reason.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::catalog::Catalog;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

/// The OpenAPI v3 document of one group version, if it is served.
pub fn group_version_document(
    catalog: &Catalog,
    group: &str,
    version: &str,
    kubernetes_version: &str,
) -> Option<Value> {
    if !catalog.serves_group_version(group, version) {
        return None;
    }
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for t in catalog
        .types()
        .filter(|t| t.group == group && t.version(version).is_some() && !t.create_only)
    {
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let mut params = vec![
            query_param(
                "dryRun",
                "When present, indicates that modifications should not be persisted.",
            ),
            query_param(
                "fieldManager",
                "fieldManager is a name associated with the actor or entity that is making these changes.",
            ),
            query_param(
                "fieldValidation",
                "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
            ),
            json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}),
        ];
        params.push(
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}),
        );
        if t.namespaced {
            params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
        }
        paths.insert(
            item,
            json!({
                "patch": {
                    "description": format!("partially update the specified {}", t.kind),
                    "operationId": format!("patch{}", t.kind),
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}, "401": {"description": "Unauthorized"}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": kubernetes_version},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// The media type of the protobuf-encoded OpenAPI v2 document.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The OpenAPI v2 (Swagger 2.0) document, JSON.
pub fn v2_document(kubernetes_version: &str) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": kubernetes_version},
        "paths": {},
        "definitions": {},
    })
}

/// The same document as gnostic's `openapi_v2.Document` protobuf message:
/// `swagger` (1), `info` (2: `title` 1, `version` 2), empty `paths` (8) and
/// `definitions` (9).
pub fn v2_document_protobuf(kubernetes_version: &str) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push((number << 3) | 2); // length-delimited
        let mut len = bytes.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, kubernetes_version.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    field(&mut doc, 9, &[]);
    doc
}

/// `/openapi/v3`: where each group version's document is, with a content hash.
pub fn index(catalog: &Catalog, kubernetes_version: &str) -> Value {
    let mut paths = Map::new();
    for (group, versions) in catalog.groups() {
        for v in versions {
            let Some(doc) = group_version_document(catalog, &group, &v, kubernetes_version) else {
                continue;
            };
            let hash = hex::encode_upper(Sha256::digest(doc.to_string().as_bytes()));
            let path = gv_path(&group, &v);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_advertise_field_validation_on_patch() {
        let c = Catalog::new();
        let idx = index(&c, "v1.33.0");
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        assert!(idx["paths"]["api/v1"].is_object());
        let doc = group_version_document(&c, "apps", "v1", "v1.33.0").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(group_version_document(&c, "nope.io", "v1", "v1.33.0").is_none());
    }

    #[test]
    fn the_v2_document_encodes_as_gnostic_reads_it() {
        let pb = v2_document_protobuf("v1.30.2");
        let mut want = vec![0x0a, 3];
        want.extend_from_slice(b"2.0");
        want.extend_from_slice(&[0x12, 2 + 10 + 2 + 7, 0x0a, 10]);
        want.extend_from_slice(b"Kubernetes");
        want.extend_from_slice(&[0x12, 7]);
        want.extend_from_slice(b"v1.30.2");
        want.extend_from_slice(&[0x42, 0, 0x4a, 0]);
        assert_eq!(pb, want);
        // lengths past 127 take a second varint byte
        let long = v2_document_protobuf(&"v".repeat(200));
        assert_eq!(&long[5..9], &[0x12, 0xd7, 0x01, 0x0a]);
        assert_eq!(v2_document("v1.30.2")["swagger"], "2.0");
    }
}
