//! What the API server does to an object before storing it: defaulting
//! (the fields a real server fills in), validation (422 Invalid with one
//! cause per field, in the real server's words) and immutability checks.

use serde_json::{Map, Value, json};

use super::catalog::GroupResource;
use super::selector::{LabelSelector, labels_of};
use super::status::Cause;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// Why a label (or annotation) key is invalid, if it is.
pub fn label_key_errors(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if !is_dns1123_subdomain(p) {
            return Some(format!("prefix part {SUBDOMAIN_MSG}"));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Some(QUALIFIED_MSG.into());
    }
    None
}

/// Why a label value is invalid, if it is.
pub fn label_value_errors(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_qualified_name_part(value)).then(|| LABEL_VALUE_MSG.to_string())
}

/// The naming rule of a resource's object names.
fn name_errors(gr: &GroupResource, name: &str) -> Option<String> {
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("", "namespaces") => (!is_dns1123_label(name)).then(|| LABEL_MSG.to_string()),
        ("", "services") => (!is_dns1035_label(name)).then(|| DNS1035_MSG.to_string()),
        ("rbac.authorization.k8s.io", _) | ("", "events") => {
            let bad = name == "." || name == ".." || name.contains('/') || name.contains('%');
            bad.then(|| "may not contain '/' or '%', or be '.' or '..'".to_string())
        }
        _ => (!is_dns1123_subdomain(name)).then(|| SUBDOMAIN_MSG.to_string()),
    }
}

fn invalid(field: &str, value: &Value, why: &str) -> Cause {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    Cause::invalid(field, format!("Invalid value: {shown}: {why}"))
}

/// Validates metadata common to every kind.
pub fn validate_metadata(gr: &GroupResource, obj: &Value, namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else if let Some(why) = name_errors(gr, name) {
        causes.push(invalid("metadata.name", &json!(name), &why));
    }
    if !namespaced
        && obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    {
        causes.push(Cause::new(
            "FieldValueForbidden",
            "metadata.namespace",
            "Forbidden: not allowed on this type",
        ));
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(m) => {
                for (k, v) in m {
                    if let Some(why) = label_key_errors(k) {
                        causes.push(invalid("metadata.labels", &json!(k), &why));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Some(why) = label_value_errors(s) {
                                causes.push(invalid(&format!("metadata.labels[{k}]"), v, &why));
                            }
                        }
                        None => causes.push(invalid(&format!("metadata.labels[{k}]"), v, "must be a string")),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(invalid("metadata.labels", labels, "must be a map of strings")),
        }
    }
    for (field, want) in [
        ("annotations", "a map of strings"),
        ("finalizers", "a list of strings"),
        ("ownerReferences", "a list of owner references"),
    ] {
        let ok = match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => true,
            Some(Value::Object(_)) => field == "annotations",
            Some(Value::Array(items)) => match field {
                "finalizers" => items.iter().all(Value::is_string),
                "ownerReferences" => items.iter().all(|r| {
                    ["apiVersion", "kind", "name", "uid"]
                        .iter()
                        .all(|k| r.get(*k).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
                }),
                _ => false,
            },
            Some(_) => false,
        };
        if !ok {
            let value = obj
                .pointer(&format!("/metadata/{field}"))
                .cloned()
                .unwrap_or(Value::Null);
            causes.push(invalid(
                &format!("metadata.{field}"),
                &value,
                &format!("must be {want}"),
            ));
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            if let Some(why) = label_key_errors(k) {
                causes.push(invalid("metadata.annotations", &json!(k), &why));
            }
            if !v.is_string() {
                causes.push(invalid(&format!("metadata.annotations[{k}]"), v, "must be a string"));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
    causes
}

fn containers_causes(spec: &Value, prefix: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{prefix}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(format!("{prefix}.containers"))),
        Some(_) => {}
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("{prefix}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{field}.name"))),
                Some(n) if !is_dns1123_label(n) => causes.push(invalid(&format!("{field}.name"), &json!(n), LABEL_MSG)),
                Some(n) if !seen.insert(n.to_string()) => causes.push(Cause::new(
                    "FieldValueDuplicate",
                    format!("{field}.name"),
                    format!("Duplicate value: {n:?}"),
                )),
                _ => {}
            }
            if c.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{field}.image")));
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p.get("containerPort").and_then(Value::as_i64);
                if !port.is_some_and(|p| (1..=65535).contains(&p)) {
                    causes.push(invalid(
                        &format!("{field}.ports[{j}].containerPort"),
                        p.get("containerPort").unwrap_or(&Value::Null),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
}

fn workload_causes(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match spec.get("selector") {
        None | Some(Value::Null) => causes.push(Cause::required("spec.selector")),
        Some(sel) => match LabelSelector::from_object(Some(sel)) {
            Err(e) => causes.push(Cause::invalid(
                format!("spec.selector.{}", e.split(':').next().unwrap_or("")),
                e,
            )),
            Ok(s) if s.is_everything() => causes.push(invalid(
                "spec.selector",
                sel,
                "empty selector is invalid for deployment",
            )),
            Ok(s) => {
                let labels = labels_of(spec.get("template").unwrap_or(&Value::Null));
                if !s.matches(&labels) {
                    causes.push(invalid(
                        "spec.template.metadata.labels",
                        &json!(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    if let Some(r) = spec.get("replicas")
        && r.as_i64().is_none_or(|r| r < 0)
    {
        causes.push(invalid("spec.replicas", r, "must be greater than or equal to 0"));
    }
    containers_causes(
        spec.pointer("/template/spec").unwrap_or(&Value::Null),
        "spec.template.spec",
        causes,
    );
}

/// Kind-specific validation of a whole object about to be stored.
pub fn validate(gr: &GroupResource, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("apps", "deployments" | "replicasets" | "daemonsets" | "statefulsets") => workload_causes(obj, &mut causes),
        ("", "pods") => containers_causes(obj.get("spec").unwrap_or(&Value::Null), "spec", &mut causes),
        ("batch", "jobs") => containers_causes(
            obj.pointer("/spec/template/spec").unwrap_or(&Value::Null),
            "spec.template.spec",
            &mut causes,
        ),
        ("", "services") => service_causes(obj, &mut causes),
        ("", "configmaps") => data_key_causes(obj, &["data", "binaryData"], &mut causes),
        ("", "secrets") => data_key_causes(obj, &["data", "stringData"], &mut causes),
        ("", "persistentvolumeclaims") => {
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            if spec
                .get("accessModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.accessModes",
                    "Required value: at least 1 access mode is required",
                ));
            }
            if spec.pointer("/resources/requests/storage").is_none() && spec.get("volumeName").is_none() {
                causes.push(Cause::required("spec.resources[storage]"));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd_causes(obj, &mut causes),
        ("storage.k8s.io", "storageclasses")
            if obj.get("provisioner").and_then(Value::as_str).is_none_or(str::is_empty) =>
        {
            causes.push(Cause::required("provisioner"));
        }
        ("policy", "poddisruptionbudgets") => {
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() {
                causes.push(invalid(
                    "spec",
                    spec,
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
        }
        _ => {}
    }
    causes
}

fn data_key_causes(obj: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    for field in fields {
        for (k, v) in obj.get(*field).and_then(Value::as_object).into_iter().flatten() {
            let ok =
                !k.is_empty() && k.len() <= 253 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                causes.push(invalid(
                    &format!("{field}[{k}]"),
                    &json!(k),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            if !v.is_string() {
                causes.push(invalid(&format!("{field}[{k}]"), v, "must be a string"));
            }
        }
    }
}

fn service_causes(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let ports = spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.externalName"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64);
        if !port.is_some_and(|p| (1..=65535).contains(&p)) {
            causes.push(invalid(
                &format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("spec.ports[{i}].name")));
        }
        if !name.is_empty() && !names.insert(name.to_string()) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                format!("spec.ports[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !["TCP", "UDP", "SCTP"].contains(&proto)
        {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                format!("spec.ports[{i}].protocol"),
                format!("Unsupported value: {proto:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""),
            ));
        }
    }
}

fn crd_causes(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
    let plural = spec.pointer("/names/plural").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.names.kind"));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced" | "Cluster") => {}
        Some(other) => causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""),
        )),
        None => causes.push(Cause::required("spec.scope")),
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        causes.push(invalid(
            "spec.versions",
            &json!(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
        }
    }
}

/// Checks updates against fields the real server makes immutable.
pub fn validate_update(gr: &GroupResource, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let unchanged = |p: &str| old.pointer(p) == new.pointer(p);
    let immutable = |p: &str, field: &str, causes: &mut Vec<Cause>| {
        if !unchanged(p) {
            causes.push(invalid(
                field,
                new.pointer(p).unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("apps", "deployments" | "replicasets" | "daemonsets") | ("batch", "jobs") => {
            immutable("/spec/selector", "spec.selector", &mut causes);
            if gr.resource == "jobs" {
                immutable("/spec/template", "spec.template", &mut causes);
            }
        }
        ("apps", "statefulsets") => {
            let mut o = old.get("spec").cloned().unwrap_or(Value::Null);
            let mut n = new.get("spec").cloned().unwrap_or(Value::Null);
            for f in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                if let Some(m) = o.as_object_mut() {
                    m.remove(f);
                }
                if let Some(m) = n.as_object_mut() {
                    m.remove(f);
                }
            }
            if o != n {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("", "services") => {
            let old_ip = old.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
            let new_ip = new.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
            if !old_ip.is_empty() && old_ip != new_ip && !new_ip.is_empty() {
                causes.push(invalid(
                    "spec.clusterIPs[0]",
                    &json!([new_ip]),
                    "may not change once set",
                ));
            }
        }
        ("", "persistentvolumeclaims") => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                        r.remove("requests");
                    }
                    // The binder fills volumeName; a class may be given to a
                    // claim that had none (retroactive default class).
                    if old.pointer("/spec/volumeName").is_none() {
                        m.remove("volumeName");
                    }
                    if old.pointer("/spec/storageClassName").is_none_or(Value::is_null) {
                        m.remove("storageClassName");
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("", "secrets" | "configmaps") => {
            if old.get("immutable").and_then(Value::as_bool) == Some(true) {
                for f in ["data", "binaryData", "stringData"] {
                    if old.get(f) != new.get(f) && !(f == "stringData" && new.get(f).is_none()) {
                        causes.push(Cause::new(
                            "FieldValueForbidden",
                            f,
                            "Forbidden: field is immutable when `immutable` is set",
                        ));
                    }
                }
                if new.get("immutable").and_then(Value::as_bool) != Some(true) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "immutable",
                        "Forbidden: field is immutable when `immutable` is set",
                    ));
                }
            }
            if gr.resource == "secrets" && !unchanged("/type") {
                immutable("/type", "type", &mut causes);
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            for (p, f) in [
                ("/parameters", "parameters"),
                ("/provisioner", "provisioner"),
                ("/reclaimPolicy", "reclaimPolicy"),
                ("/volumeBindingMode", "volumeBindingMode"),
            ] {
                if !unchanged(p) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        f,
                        format!("Forbidden: updates to {f} are forbidden."),
                    ));
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            immutable("/spec/group", "spec.group", &mut causes);
            immutable("/spec/names/plural", "spec.names.plural", &mut causes);
            immutable("/spec/scope", "spec.scope", &mut causes);
        }
        ("", "pods") => {
            // Pod specs are immutable except images, activeDeadlineSeconds,
            // tolerations (additions) and scheduling gates; nodeName once bound.
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = s.as_object_mut() {
                    for f in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
                        m.remove(f);
                    }
                    if old.pointer("/spec/nodeName").is_none() {
                        m.remove("nodeName");
                    }
                    for list in ["containers", "initContainers"] {
                        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                            for c in cs {
                                if let Some(c) = c.as_object_mut() {
                                    c.remove("image");
                                }
                            }
                        }
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        _ => {}
    }
    causes
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if !m.contains_key(key) || m.get(key) == Some(&Value::Null) {
        m.insert(key.to_string(), v);
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    if !m.get(key).is_some_and(Value::is_object) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key)?.as_object_mut()
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let image = m.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    let tag = image.rsplit('/').next().unwrap_or("");
    let latest = !tag.contains(':') && !image.contains('@') || tag.ends_with(":latest");
    set_default(
        m,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    set_default(m, "resources", json!({}));
    for p in m.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = p.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// Defaults of a PodSpec (shared by pods and pod templates).
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            default_container(c);
        }
    }
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_default(spec, "serviceAccount", sa);
    }
}

fn default_template(obj: &mut Value) {
    if let Some(spec) = obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default_pod_spec(spec);
    }
}

/// Fills the fields the real API server defaults.
pub fn apply_defaults(gr: &GroupResource, obj: &mut Value) {
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("apps", "deployments") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    set_default(s, "type", json!("RollingUpdate"));
                    if s.get("type") == Some(&json!("RollingUpdate")) {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            set_default(ru, "maxUnavailable", json!("25%"));
                            set_default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            default_template(obj);
        }
        ("apps", "replicasets") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
            }
            default_template(obj);
        }
        ("apps", "daemonsets") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "revisionHistoryLimit", json!(10));
                let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
                if let Some(s) = us.as_object_mut() {
                    set_default(s, "type", json!("RollingUpdate"));
                    if s.get("type") == Some(&json!("RollingUpdate")) {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            set_default(ru, "maxUnavailable", json!(1));
                            set_default(ru, "maxSurge", json!(0));
                        }
                    }
                }
            }
            default_template(obj);
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                set_default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                for t in spec
                    .get_mut("volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                        set_default(s, "volumeMode", json!("Filesystem"));
                    }
                }
            }
            default_template(obj);
        }
        ("batch", "jobs") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "completions", json!(1));
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
            }
            if let Some(spec) = obj.pointer_mut("/spec/template/spec").and_then(Value::as_object_mut) {
                set_default(spec, "restartPolicy", json!("Never"));
            }
            default_template(obj);
        }
        ("", "pods") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default_pod_spec(spec);
                set_default(spec, "enableServiceLinks", json!(true));
                set_default(spec, "priority", json!(0));
                set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                set_default(spec, "serviceAccountName", json!("default"));
                set_default(spec, "serviceAccount", json!("default"));
                // DefaultTolerationSeconds admission.
                let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
                if let Some(ts) = tolerations.as_array_mut() {
                    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
                        let covered = ts.iter().any(|t| {
                            let k = t.get("key").and_then(Value::as_str);
                            let effect = t.get("effect").and_then(Value::as_str);
                            (k == Some(key) || (k.is_none() && t.get("operator") == Some(&json!("Exists"))))
                                && effect.is_none_or(|e| e == "NoExecute")
                        });
                        if !covered {
                            ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                        }
                    }
                }
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Pending"));
                set_default(status, "qosClass", json!("BestEffort"));
            }
        }
        ("", "services") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                let ty = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                if ty != "ExternalName" {
                    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                    set_default(spec, "ipFamilies", json!(["IPv4"]));
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    set_default(spec, "externalTrafficPolicy", json!("Cluster"));
                }
                if ty == "LoadBalancer" {
                    set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
                }
                for p in spec
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = p.as_object_mut() {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "loadBalancer", json!({}));
            }
        }
        ("", "namespaces") => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(meta) = obj_mut(obj, "metadata") {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Active"));
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
                // stringData is write-only: merged into data, base64-encoded.
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    use base64::Engine;
                    let data = m.entry("data").or_insert_with(|| json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let s = v.as_str().unwrap_or("").to_string();
                            d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
                        }
                    }
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Pending"));
            }
        }
        ("", "persistentvolumes") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Pending"));
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "reclaimPolicy", json!("Delete"));
                set_default(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            if let Some(names) = obj.pointer_mut("/spec/names").and_then(Value::as_object_mut) {
                let kind = names.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
                set_default(names, "singular", json!(kind.to_lowercase()));
                set_default(names, "listKind", json!(format!("{kind}List")));
            }
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "conversion", json!({"strategy": "None"}));
            }
        }
        ("policy", "poddisruptionbudgets") => {}
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rule() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1035_label("1abc"));
        let svc = GroupResource::new("", "services");
        let c = validate_metadata(&svc, &json!({"metadata": {"name": "1abc"}}), true);
        assert_eq!(c.len(), 1);
        assert!(c[0].message.contains("DNS-1035"));
        let cm = GroupResource::new("", "configmaps");
        let c = validate_metadata(
            &cm,
            &json!({"metadata": {"name": "ok", "labels": {"bad key": "v", "k": "bad value"}}}),
            true,
        );
        assert_eq!(c.len(), 2);
        let rb = GroupResource::new("rbac.authorization.k8s.io", "clusterroles");
        assert!(validate_metadata(&rb, &json!({"metadata": {"name": "system:controller:x"}}), false).is_empty());
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let gr = GroupResource::new("apps", "deployments");
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let c = validate(&gr, &d);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
        let d2 = json!({"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        let fields: Vec<String> = validate(&gr, &d2).into_iter().map(|c| c.field).collect();
        assert!(fields.contains(&"spec.selector".to_string()));
        assert!(fields.contains(&"spec.template.spec.containers[0].image".to_string()));
    }

    #[test]
    fn defaults_fill_services_and_pods() {
        let svc = GroupResource::new("", "services");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply_defaults(&svc, &mut s);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let pods = GroupResource::new("", "pods");
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        apply_defaults(&pods, &mut p);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let secrets = GroupResource::new("", "secrets");
        let mut sec = json!({"stringData": {"a": "hi"}});
        apply_defaults(&secrets, &mut sec);
        assert_eq!(sec["data"]["a"], "aGk=");
        assert!(sec.get("stringData").is_none());
    }

    #[test]
    fn immutable_selectors() {
        let gr = GroupResource::new("apps", "deployments");
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let c = validate_update(&gr, &old, &new);
        assert_eq!(c.len(), 1);
        assert!(c[0].message.ends_with("field is immutable"));
    }
}
