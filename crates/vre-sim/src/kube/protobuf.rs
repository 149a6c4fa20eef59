//! Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's
//! typed clients send that way (`application/vnd.kubernetes.protobuf`):
//! `Eviction` (`kubectl drain`), `DeleteOptions`, and the access reviews
//! (`kubectl auth can-i`, `kubectl auth whoami`). A body is the magic
//! `k8s\0` followed by a `runtime.Unknown` envelope (typeMeta = 1, raw = 2)
//! whose `raw` is the object's message; decoded here to the same JSON the
//! client would have sent. Answers stay JSON (clients accept it).

use serde_json::{Map, Value, json};

use super::status::ApiError;

const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a message, in order, as (number, value).
fn fields(mut b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, rest) = varint(b)?;
        b = rest;
        let number = key >> 3;
        match key & 7 {
            0 => {
                let (v, rest) = varint(b)?;
                b = rest;
                out.push((number, Field::Varint(v)));
            }
            2 => {
                let (len, rest) = varint(b)?;
                let len = usize::try_from(len).ok()?;
                if rest.len() < len {
                    return None;
                }
                out.push((number, Field::Bytes(&rest[..len])));
                b = &rest[len..];
            }
            1 => b = b.get(8..)?,
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

fn string(f: &Field<'_>) -> Option<String> {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Field::Varint(_) => None,
    }
}

/// The string fields of a message by number, into a JSON object.
fn strings(msg: &[u8], names: &[(u64, &str)]) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    for (n, f) in fields(msg)? {
        if let Some((_, name)) = names.iter().find(|(x, _)| *x == n) {
            m.insert(name.to_string(), json!(string(&f)?));
        }
    }
    Some(m)
}

fn object_meta(msg: &[u8]) -> Option<Value> {
    strings(
        msg,
        &[
            (1, "name"),
            (2, "generateName"),
            (3, "namespace"),
            (5, "uid"),
            (6, "resourceVersion"),
        ],
    )
    .map(Value::Object)
}

/// A message of an `ObjectMeta` (field 1) and one more message (field 2),
/// read by `second` into `key`.
fn meta_and(msg: &[u8], key: &str, second: fn(&[u8]) -> Option<Value>) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(msg)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                m.insert("metadata".into(), object_meta(b)?);
            }
            (2, Field::Bytes(b)) => {
                m.insert(key.into(), second(b)?);
            }
            _ => {}
        }
    }
    Some(Value::Object(m))
}

fn delete_options(msg: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut dry_run = Vec::new();
    for (n, f) in fields(msg)? {
        match (n, &f) {
            (1, Field::Varint(v)) => {
                m.insert("gracePeriodSeconds".into(), json!(*v as i64));
            }
            (2, Field::Bytes(b)) => {
                m.insert(
                    "preconditions".into(),
                    Value::Object(strings(b, &[(1, "uid"), (2, "resourceVersion")])?),
                );
            }
            (3, Field::Varint(v)) => {
                m.insert("orphanDependents".into(), json!(*v != 0));
            }
            (4, _) => {
                m.insert("propagationPolicy".into(), json!(string(&f)?));
            }
            (5, _) => dry_run.push(json!(string(&f)?)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        m.insert("dryRun".into(), Value::Array(dry_run));
    }
    Some(Value::Object(m))
}

fn access_review_spec(msg: &[u8]) -> Option<Value> {
    let mut spec = Map::new();
    let mut groups = Vec::new();
    for (n, f) in fields(msg)? {
        match (n, &f) {
            (1, Field::Bytes(b)) => {
                let names = [
                    (1, "namespace"),
                    (2, "verb"),
                    (3, "group"),
                    (4, "version"),
                    (5, "resource"),
                    (6, "subresource"),
                    (7, "name"),
                ];
                spec.insert("resourceAttributes".into(), Value::Object(strings(b, &names)?));
            }
            (2, Field::Bytes(b)) => {
                spec.insert(
                    "nonResourceAttributes".into(),
                    Value::Object(strings(b, &[(1, "path"), (2, "verb")])?),
                );
            }
            (3, _) => {
                spec.insert("user".into(), json!(string(&f)?));
            }
            (4, _) => groups.push(json!(string(&f)?)),
            (6, _) => {
                spec.insert("uid".into(), json!(string(&f)?));
            }
            _ => {}
        }
    }
    if !groups.is_empty() {
        spec.insert("groups".into(), Value::Array(groups));
    }
    Some(Value::Object(spec))
}

/// Decodes a protobuf request body into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("the protobuf request body is malformed: {why}"));
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s protobuf magic"))?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(envelope).ok_or_else(|| bad("invalid envelope"))? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let m = strings(tm, &[(1, "apiVersion"), (2, "kind")]).ok_or_else(|| bad("invalid typeMeta"))?;
                api_version = m.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
                kind = m.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let message = || bad(&format!("invalid {kind} message"));
    let mut obj = match kind.as_str() {
        "Eviction" => meta_and(raw, "deleteOptions", delete_options).ok_or_else(message)?,
        "DeleteOptions" => delete_options(raw).ok_or_else(message)?,
        "SelfSubjectAccessReview" | "SubjectAccessReview" => {
            meta_and(raw, "spec", access_review_spec).ok_or_else(message)?
        }
        "SelfSubjectReview" => json!({}),
        other => {
            return Err(ApiError::unsupported_media_type(
                &format!("application/vnd.kubernetes.protobuf ({other})"),
                &["application/json", "application/yaml"],
            ));
        }
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(n: u64, wire: u64) -> Vec<u8> {
        encode_varint((n << 3) | wire)
    }

    fn encode_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = tag(n, 2);
        out.extend(encode_varint(b.len() as u64));
        out.extend_from_slice(b);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [bytes(1, api_version.as_bytes()), bytes(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), bytes(1, &tm), bytes(2, raw)].concat()
    }

    #[test]
    fn evictions_decode() {
        let meta = [bytes(1, b"web-1"), bytes(3, b"default")].concat();
        let opts = [tag(1, 0), encode_varint(30), bytes(4, b"Foreground")].concat();
        let raw = [bytes(1, &meta), bytes(2, &opts)].concat();
        let v = decode(&envelope("policy/v1", "Eviction", &raw)).unwrap();
        assert_eq!(v["kind"], "Eviction");
        assert_eq!(v["metadata"]["name"], "web-1");
        assert_eq!(v["deleteOptions"]["gracePeriodSeconds"], 30);
        assert_eq!(v["deleteOptions"]["propagationPolicy"], "Foreground");
    }

    #[test]
    fn access_reviews_decode() {
        let attrs = [bytes(2, b"delete"), bytes(5, b"nodes")].concat();
        let spec = bytes(1, &attrs);
        let raw = bytes(2, &spec);
        let v = decode(&envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", &raw)).unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "delete");
        assert_eq!(v["spec"]["resourceAttributes"]["resource"], "nodes");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        assert_eq!(decode(&envelope("v1", "Pod", &[])).unwrap_err().code, 415);
        assert_eq!(decode(b"not protobuf").unwrap_err().code, 400);
        assert_eq!(decode(&[MAGIC, &[0x0a, 0xff]].concat()).unwrap_err().code, 400);
    }
}
