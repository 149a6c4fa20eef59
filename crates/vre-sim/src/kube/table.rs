//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get`
//! asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with
//! the columns the real printers use for the common kinds, a CRD's
//! `additionalPrinterColumns`, or Name/Created At otherwise.

use std::sync::Arc;

use serde_json::{Value, json};

use super::catalog::ResourceType;
use super::clock;
use super::controllers::node_condition;
use super::controllers::pod_is_ready;

/// What each row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    priority: u8,
    format: &'static str,
    description: &'static str,
}

const fn col(name: &'static str) -> Column {
    Column {
        name,
        priority: 0,
        format: "",
        description: "",
    }
}

const fn wide(name: &'static str) -> Column {
    Column {
        name,
        priority: 1,
        format: "",
        description: "",
    }
}

const NAME: Column = Column {
    name: "Name",
    priority: 0,
    format: "name",
    description: "Name must be unique within a namespace.",
};
const AGE: Column = Column {
    name: "Age",
    priority: 0,
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn age(obj: &Value) -> String {
    match clock::parse_rfc3339(s(obj, "/metadata/creationTimestamp")) {
        Some(t) => clock::human_age(clock::now_unix() - t),
        None => "<unknown>".into(),
    }
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn node_row(n: &Value) -> (Vec<Column>, Vec<Value>) {
    let mut status = match node_condition(n, "Ready") {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = n
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
                .or_else(|| (k == "kubernetes.io/role").then(|| v.as_str().unwrap_or("").to_string()))
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let addr = |t: &str| {
        n.pointer("/status/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    (
        vec![
            NAME,
            col("Status"),
            col("Roles"),
            AGE,
            col("Version"),
            wide("Internal-IP"),
            wide("External-IP"),
            wide("OS-Image"),
            wide("Kernel-Version"),
            wide("Container-Runtime"),
        ],
        vec![
            json!(s(n, "/metadata/name")),
            json!(status),
            json!(or_none(roles.join(","))),
            json!(age(n)),
            json!(s(n, "/status/nodeInfo/kubeletVersion")),
            json!(addr("InternalIP")),
            json!(addr("ExternalIP")),
            json!(s(n, "/status/nodeInfo/osImage")),
            json!(s(n, "/status/nodeInfo/kernelVersion")),
            json!(s(n, "/status/nodeInfo/containerRuntimeVersion")),
        ],
    )
}

fn pod_row(p: &Value) -> (Vec<Column>, Vec<Value>) {
    let containers = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses: Vec<&Value> = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
        .sum();
    let phase = s(p, "/status/phase");
    let status = if p.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else if let Some(reason) = p.pointer("/status/reason").and_then(Value::as_str) {
        reason.to_string()
    } else if phase == "Succeeded" {
        "Completed".to_string()
    } else if phase == "Pending" && p.pointer("/spec/nodeName").is_some() {
        "ContainerCreating".to_string()
    } else if phase == "Running"
        && !pod_is_ready(p)
        && statuses
            .iter()
            .all(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
    {
        "Running".to_string()
    } else {
        phase.to_string()
    };
    (
        vec![
            NAME,
            col("Ready"),
            col("Status"),
            col("Restarts"),
            AGE,
            wide("IP"),
            wide("Node"),
            wide("Nominated Node"),
            wide("Readiness Gates"),
        ],
        vec![
            json!(s(p, "/metadata/name")),
            json!(format!("{ready}/{containers}")),
            json!(status),
            json!(restarts),
            json!(age(p)),
            json!(or_none(s(p, "/status/podIP").to_string())),
            json!(or_none(s(p, "/spec/nodeName").to_string())),
            json!("<none>"),
            json!("<none>"),
        ],
    )
}

fn containers_and_images(obj: &Value) -> (String, String) {
    let cs: Vec<&Value> = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    (
        cs.iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(","),
        cs.iter()
            .filter_map(|c| c.get("image").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn selector_text(obj: &Value, pointer: &str) -> String {
    super::selector::LabelSelector::from_object(obj.pointer(pointer))
        .ok()
        .filter(|s| !s.nothing)
        .map(|s| s.to_query())
        .unwrap_or_default()
}

fn map_text(v: Option<&Value>) -> String {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_ports(svc: &Value) -> String {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Column definitions and cells of one object's row.
fn row_for(rt: &ResourceType, version: &str, o: &Value) -> (Vec<Value>, Vec<Value>) {
    if rt.custom {
        return custom_row(rt, version, o);
    }
    let (cols, cells) = builtin_row(rt, o);
    (cols.iter().map(column_json).collect(), cells)
}

fn builtin_row(rt: &ResourceType, o: &Value) -> (Vec<Column>, Vec<Value>) {
    let name = json!(s(o, "/metadata/name"));
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "nodes") => node_row(o),
        ("", "pods") => pod_row(o),
        ("apps", "deployments") => {
            let (c, im) = containers_and_images(o);
            (
                vec![
                    NAME,
                    col("Ready"),
                    col("Up-to-date"),
                    col("Available"),
                    AGE,
                    wide("Containers"),
                    wide("Images"),
                    wide("Selector"),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
                    )),
                    json!(i(o, "/status/updatedReplicas")),
                    json!(i(o, "/status/availableReplicas")),
                    json!(age(o)),
                    json!(c),
                    json!(im),
                    json!(selector_text(o, "/spec/selector")),
                ],
            )
        }
        ("apps", "daemonsets") => {
            let (c, im) = containers_and_images(o);
            (
                vec![
                    NAME,
                    col("Desired"),
                    col("Current"),
                    col("Ready"),
                    col("Up-to-date"),
                    col("Available"),
                    col("Node Selector"),
                    AGE,
                    wide("Containers"),
                    wide("Images"),
                    wide("Selector"),
                ],
                vec![
                    name,
                    json!(i(o, "/status/desiredNumberScheduled")),
                    json!(i(o, "/status/currentNumberScheduled")),
                    json!(i(o, "/status/numberReady")),
                    json!(i(o, "/status/updatedNumberScheduled")),
                    json!(i(o, "/status/numberAvailable")),
                    json!(or_none(map_text(o.pointer("/spec/template/spec/nodeSelector")))),
                    json!(age(o)),
                    json!(c),
                    json!(im),
                    json!(selector_text(o, "/spec/selector")),
                ],
            )
        }
        ("apps", "statefulsets") => {
            let (c, im) = containers_and_images(o);
            (
                vec![NAME, col("Ready"), AGE, wide("Containers"), wide("Images")],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
                    )),
                    json!(age(o)),
                    json!(c),
                    json!(im),
                ],
            )
        }
        ("apps", "replicasets") => (
            vec![NAME, col("Desired"), col("Current"), col("Ready"), AGE],
            vec![
                name,
                json!(i(o, "/spec/replicas")),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                json!(age(o)),
            ],
        ),
        ("", "services") => {
            let external = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("ip").or(x.get("hostname")).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| {
                    if s(o, "/spec/type") == "LoadBalancer" {
                        "<pending>".into()
                    } else {
                        "<none>".into()
                    }
                });
            let external = if s(o, "/spec/type") == "ExternalName" {
                s(o, "/spec/externalName").to_string()
            } else {
                external
            };
            (
                vec![
                    NAME,
                    col("Type"),
                    col("Cluster-IP"),
                    col("External-IP"),
                    col("Port(s)"),
                    AGE,
                    wide("Selector"),
                ],
                vec![
                    name,
                    json!(s(o, "/spec/type")),
                    json!(or_none(s(o, "/spec/clusterIP").to_string())),
                    json!(external),
                    json!(or_none(service_ports(o))),
                    json!(age(o)),
                    json!(or_none(map_text(o.pointer("/spec/selector")))),
                ],
            )
        }
        ("", "namespaces") => (
            vec![NAME, col("Status"), AGE],
            vec![name, json!(s(o, "/status/phase")), json!(age(o))],
        ),
        ("", "configmaps") => {
            let n = ["data", "binaryData"]
                .iter()
                .map(|k| o.get(*k).and_then(Value::as_object).map_or(0, |m| m.len()))
                .sum::<usize>();
            (vec![NAME, col("Data"), AGE], vec![name, json!(n), json!(age(o))])
        }
        ("", "secrets") => (
            vec![NAME, col("Type"), col("Data"), AGE],
            vec![
                name,
                json!(s(o, "/type")),
                json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())),
                json!(age(o)),
            ],
        ),
        ("", "serviceaccounts") => (
            vec![NAME, col("Secrets"), AGE],
            vec![
                name,
                json!(o.get("secrets").and_then(Value::as_array).map_or(0, Vec::len)),
                json!(age(o)),
            ],
        ),
        ("", "persistentvolumeclaims") => (
            vec![
                NAME,
                col("Status"),
                col("Volume"),
                col("Capacity"),
                col("Access Modes"),
                col("StorageClass"),
                col("VolumeAttributesClass"),
                AGE,
                wide("VolumeMode"),
            ],
            vec![
                name,
                json!(s(o, "/status/phase")),
                json!(s(o, "/spec/volumeName")),
                json!(s(o, "/status/capacity/storage")),
                json!(access_modes(o.pointer("/status/accessModes"))),
                json!(or_none(s(o, "/spec/storageClassName").to_string())),
                json!("<unset>"),
                json!(age(o)),
                json!(s(o, "/spec/volumeMode")),
            ],
        ),
        ("", "persistentvolumes") => {
            let claim = if o.pointer("/spec/claimRef").is_some() {
                format!("{}/{}", s(o, "/spec/claimRef/namespace"), s(o, "/spec/claimRef/name"))
            } else {
                String::new()
            };
            (
                vec![
                    NAME,
                    col("Capacity"),
                    col("Access Modes"),
                    col("Reclaim Policy"),
                    col("Status"),
                    col("Claim"),
                    col("StorageClass"),
                    col("VolumeAttributesClass"),
                    col("Reason"),
                    AGE,
                ],
                vec![
                    name,
                    json!(s(o, "/spec/capacity/storage")),
                    json!(access_modes(o.pointer("/spec/accessModes"))),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    json!("<unset>"),
                    json!(s(o, "/status/reason")),
                    json!(age(o)),
                ],
            )
        }
        ("storage.k8s.io", "storageclasses") => {
            let default = o
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                .and_then(Value::as_str)
                == Some("true");
            let shown = if default {
                format!("{} (default)", s(o, "/metadata/name"))
            } else {
                s(o, "/metadata/name").to_string()
            };
            (
                vec![
                    NAME,
                    col("Provisioner"),
                    col("ReclaimPolicy"),
                    col("VolumeBindingMode"),
                    col("AllowVolumeExpansion"),
                    AGE,
                ],
                vec![
                    json!(shown),
                    json!(s(o, "/provisioner")),
                    json!(s(o, "/reclaimPolicy")),
                    json!(s(o, "/volumeBindingMode")),
                    json!(o.get("allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false)),
                    json!(age(o)),
                ],
            )
        }
        ("batch", "jobs") => {
            let complete = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Complete" && c["status"] == "True");
            (
                vec![NAME, col("Status"), col("Completions"), col("Duration"), AGE],
                vec![
                    name,
                    json!(if complete { "Complete" } else { "Running" }),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/succeeded"),
                        o.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1)
                    )),
                    json!(match (
                        clock::parse_rfc3339(s(o, "/status/startTime")),
                        clock::parse_rfc3339(s(o, "/status/completionTime"))
                    ) {
                        (Some(a), Some(b)) => clock::human_age(b - a),
                        (Some(a), None) => clock::human_age(clock::now_unix() - a),
                        _ => String::new(),
                    }),
                    json!(age(o)),
                ],
            )
        }
        ("networking.k8s.io", "ingresses") => {
            let hosts: Vec<&str> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("host").and_then(Value::as_str))
                .collect();
            let addr: Vec<&str> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| x.get("ip").or(x.get("hostname")).and_then(Value::as_str))
                .collect();
            let tls = o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            (
                vec![NAME, col("Class"), col("Hosts"), col("Address"), col("Ports"), AGE],
                vec![
                    name,
                    json!(or_none(s(o, "/spec/ingressClassName").to_string())),
                    json!(if hosts.is_empty() {
                        "*".to_string()
                    } else {
                        hosts.join(",")
                    }),
                    json!(addr.join(",")),
                    json!(if tls { "80, 443" } else { "80" }),
                    json!(age(o)),
                ],
            )
        }
        ("", "endpoints") => {
            let mut eps = Vec::new();
            for sub in o.get("subsets").and_then(Value::as_array).into_iter().flatten() {
                for a in sub.get("addresses").and_then(Value::as_array).into_iter().flatten() {
                    for p in sub.get("ports").and_then(Value::as_array).into_iter().flatten() {
                        eps.push(format!(
                            "{}:{}",
                            a.get("ip").and_then(Value::as_str).unwrap_or(""),
                            p.get("port").and_then(Value::as_i64).unwrap_or(0)
                        ));
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            (
                vec![NAME, col("Endpoints"), AGE],
                vec![name, json!(or_none(shown)), json!(age(o))],
            )
        }
        ("policy", "poddisruptionbudgets") => {
            let show = |p: &str| {
                o.pointer(p)
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .unwrap_or_else(|| "N/A".into())
            };
            (
                vec![
                    NAME,
                    col("Min Available"),
                    col("Max Unavailable"),
                    col("Allowed Disruptions"),
                    AGE,
                ],
                vec![
                    name,
                    json!(show("/spec/minAvailable")),
                    json!(show("/spec/maxUnavailable")),
                    json!(i(o, "/status/disruptionsAllowed")),
                    json!(age(o)),
                ],
            )
        }
        _ => {
            let created = Column {
                name: "Created At",
                priority: 0,
                format: "date",
                description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
            };
            (
                vec![NAME, created],
                vec![name, json!(s(o, "/metadata/creationTimestamp"))],
            )
        }
    }
}

fn access_modes(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`).
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn custom_row(rt: &ResourceType, version: &str, o: &Value) -> (Vec<Value>, Vec<Value>) {
    let columns = rt
        .version(version)
        .map(|v| v.printer_columns.clone())
        .unwrap_or_default();
    let mut defs = vec![column_json(&NAME)];
    let mut cells = vec![json!(s(o, "/metadata/name"))];
    if columns.is_empty() {
        defs.push(column_json(&AGE));
        cells.push(json!(age(o)));
        return (defs, cells);
    }
    for c in &columns {
        defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
        let cell = match (c.type_.as_str(), json_path(o, &c.json_path)) {
            ("date", Some(Value::String(t))) => match clock::parse_rfc3339(t) {
                Some(ts) => json!(clock::human_age(clock::now_unix() - ts)),
                None => json!(t),
            },
            (_, Some(Value::String(t))) => json!(t),
            (_, Some(Value::Null)) | (_, None) => json!("<none>"),
            (_, Some(other)) => other.clone(),
        };
        cells.push(cell);
    }
    (defs, cells)
}

fn column_json(c: &Column) -> Value {
    json!({"name": c.name, "type": "string", "format": c.format, "description": c.description, "priority": c.priority})
}

fn row_object(o: &Arc<Value>, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some((**o).clone()),
        IncludeObject::Metadata => {
            let mut meta = o.get("metadata").cloned().unwrap_or(json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            Some(json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}))
        }
    }
}

/// A Table of objects (a list page, or one object).
pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Arc<Value>],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let mut defs: Option<Vec<Value>> = None;
    let mut rows = Vec::with_capacity(objects.len());
    for o in objects {
        let (cols, cells) = row_for(rt, version, o);
        defs.get_or_insert(cols);
        let mut row = json!({"cells": cells});
        if let Some(obj) = row_object(o, include) {
            row["object"] = obj;
        }
        rows.push(row);
    }
    // No rows: the columns of an empty object of the kind.
    let defs = defs.unwrap_or_else(|| row_for(rt, version, &json!({"metadata": {}})).0);
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::Catalog;

    #[test]
    fn node_table_has_kubectl_columns() {
        let c = Catalog::new();
        let rt = c.by_group_resource("", "nodes").unwrap();
        let node = Arc::new(
            json!({"metadata": {"name": "m1", "creationTimestamp": clock::now_rfc3339(),
            "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}}),
        );
        let t = table(
            &rt,
            "v1",
            &[node],
            IncludeObject::Metadata,
            json!({"resourceVersion": "5"}),
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(&names[..5], &["Name", "Status", "Roles", "Age", "Version"]);
        assert_eq!(t["rows"][0]["cells"][1], "Ready");
        assert_eq!(t["rows"][0]["cells"][2], "control-plane");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn crd_columns_come_from_the_definition() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}});
        let rt = crate::kube::catalog::custom_type_from_crd(&crd).unwrap();
        let w = Arc::new(json!({"metadata": {"name": "w"}, "spec": {"size": 3}}));
        let t = table(&rt, "v1", &[w], IncludeObject::None, json!({}));
        assert_eq!(t["columnDefinitions"][1]["name"], "Size");
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
        assert_eq!(t["rows"][0]["cells"], json!(["w", 3]));
        assert!(t["rows"][0].get("object").is_none());
    }
}
