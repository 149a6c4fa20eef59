//! An in-memory Azure Resource Manager on 127.0.0.1, with the Microsoft
//! Entra ID token endpoint (client-credentials grant). It implements the
//! operations vre uses (resource groups, virtual networks, network security
//! groups, public IPs, NICs, managed disks, virtual machines with their data
//! disk actions, VM sizes and usages) as the ARM specifications and REST
//! reference describe them: `201`/`202` answers with `Azure-AsyncOperation`
//! or `Location` headers for long-running operations, operation-status
//! bodies (`InProgress`, `Succeeded`, `Failed` with `error.code` and
//! `error.message`), ARM error bodies and the "in use" conflicts of the real
//! services. Every request is checked against the OpenAPI files first; a
//! request they do not allow is answered 400 and recorded in
//! [`FakeArm::problems`].
//!
//! Faults can be injected: a 429 with Retry-After on the next matching
//! request, and a VM whose creation fails with `AllocationFailed`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::openapi::ArmSpecs;
use vre_testkit::fake_api::{ApiFront, json_body, query_pairs, serve_fake};

pub const SUBSCRIPTION: &str = "00000000-1111-4222-8333-444444444444";
pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT_ID: &str = "66666666-7777-4888-9999-000000000000";
pub const CLIENT_SECRET: &str = "test-only-client-secret";
pub const LOCATION: &str = "westeurope";

/// `(name, vCPUs)` of the VM sizes the fake region offers.
const SIZES: &[(&str, i64)] = &[("Standard_B2s", 2), ("Standard_D2s_v5", 2), ("Standard_D4s_v5", 4)];
const CORES_LIMIT: i64 = 20;

/// What happens when an operation finishes.
#[derive(Clone, Debug)]
enum Effect {
    /// The resource's provisioning state becomes Succeeded (or Failed with a reason).
    Settle {
        id: String,
        failed: Option<(String, String)>,
    },
    DeleteVm {
        id: String,
    },
    DeleteResource {
        id: String,
    },
    DeleteGroup {
        id: String,
    },
    None,
}

#[derive(Clone, Debug)]
enum Tracking {
    /// `Azure-AsyncOperation`: InProgress `running` times, then the outcome.
    Async {
        running: u32,
        failed: Option<(String, String)>,
    },
    /// `Location`: 202 `running` times, then 200 with `body` (204 when null).
    Location { running: u32, body: Value },
}

#[derive(Clone, Debug)]
struct Operation {
    tracking: Tracking,
    effect: Effect,
    done: bool,
}

#[derive(Default)]
struct State {
    /// Lower-cased ARM id -> resource.
    resources: BTreeMap<String, Value>,
    operations: BTreeMap<String, Operation>,
    next: u64,
    failing_vms: Vec<String>,
}

pub struct FakeArm {
    state: Mutex<State>,
    specs: ArmSpecs,
    front: ApiFront,
    pub base: String,
}

fn arm_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn answer(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).expect("status");
    if body.is_null() {
        code.into_response()
    } else {
        (code, axum::Json(body)).into_response()
    }
}

fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    r.headers_mut().insert(name, value.parse().expect("header value"));
    r
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn last(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl FakeArm {
    pub async fn start() -> Arc<FakeArm> {
        let make = |base| FakeArm {
            state: Mutex::new(State::default()),
            specs: ArmSpecs::load(),
            front: ApiFront::default(),
            base,
        };
        serve_fake(make, FakeArm::handle).await
    }

    /// The next `method` request whose path contains `path_contains` gets 429.
    pub fn throttle_once(&self, method: &str, path_contains: &str) {
        self.front.throttle_once(method, path_contains);
    }

    /// The next creation of VM `name` fails in its operation (AllocationFailed).
    pub fn fail_vm_once(&self, name: &str) {
        self.state.lock().unwrap().failing_vms.push(name.into());
    }

    pub fn faults_left(&self) -> usize {
        self.front.throttles_left() + self.state.lock().unwrap().failing_vms.len()
    }

    /// What the API specifications refused.
    pub fn problems(&self) -> Vec<String> {
        self.front.problems()
    }

    /// All requests so far, `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.front.log()
    }

    /// Requests with `method` whose path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.front.count(method, |p| p.contains(fragment))
    }

    /// Resources of a type (`Microsoft.Compute/virtualMachines`), by name.
    pub fn resources(&self, ty: &str) -> BTreeMap<String, Value> {
        self.state
            .lock()
            .unwrap()
            .resources
            .values()
            .filter(|r| r["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(ty)))
            .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r.clone()))
            .collect()
    }

    /// Creates a resource group vre did not make (no tag).
    pub fn add_foreign_group(&self, name: &str) {
        let id = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}");
        self.state.lock().unwrap().resources.insert(
            key(&id),
            json!({"id": id, "name": name, "type": "Microsoft.Resources/resourceGroups", "location": LOCATION,
                   "tags": {"owner": "someone else"}, "properties": {"provisioningState": "Succeeded"}}),
        );
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_string();
        self.front.record(&method, &path);
        if method == Method::POST && path == format!("/{TENANT}/oauth2/v2.0/token") {
            return self.token(&headers, &body);
        }
        if !self.front.authorized(&headers) {
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.");
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // operation status and results (not part of the resource specifications)
        match segs.as_slice() {
            ["subscriptions", _, "providers", _, "locations", _, "operations", id] if method == Method::GET => {
                return self.async_status(id);
            }
            [
                "subscriptions",
                _,
                "providers",
                _,
                "locations",
                _,
                "operationResults",
                id,
            ]
            | ["subscriptions", _, "operationresults", id]
                if method == Method::GET =>
            {
                return self.location_status(id);
            }
            _ => {}
        }
        let query = query_pairs(&uri);
        let body = match json_body(&body) {
            Ok(b) => b,
            Err(e) => {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    &format!("The request content was invalid: {e}"),
                );
            }
        };
        let problems = self.specs.check_request(method.as_str(), &path, &query, body.as_ref());
        if !problems.is_empty() {
            self.front.refuse(&problems);
            return arm_error(400, "InvalidRequestContent", &problems.join("; "));
        }
        if self.front.take_throttle(&method, &path) {
            let r = arm_error(
                429,
                "SubscriptionRequestsThrottled",
                &format!(
                    "Number of requests for subscription '{SUBSCRIPTION}' exceeded the limit. Please try again after '1' seconds."
                ),
            );
            return with_header(r, "retry-after", "1");
        }
        let version = query
            .iter()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let (op, params) = self
            .specs
            .find(&version, method.as_str(), &path)
            .expect("checked above");
        let operation_id = op.op["operationId"].as_str().unwrap_or_default().to_string();
        let p = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.dispatch(&operation_id, &path, &p, body.unwrap_or(Value::Null), &version)
    }

    fn token(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        let oauth = |status: u16, e: &str, d: &str| {
            (
                StatusCode::from_u16(status).expect("status"),
                axum::Json(json!({"error": e, "error_description": d})),
            )
                .into_response()
        };
        if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
            return oauth(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            );
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if form.get("scope").map(String::as_str) != Some("https://management.azure.com/.default") {
            return oauth(
                400,
                "invalid_scope",
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            );
        }
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
            return oauth(
                400,
                "unauthorized_client",
                "AADSTS700016: Application was not found in the directory.",
            );
        }
        if form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
            return oauth(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
        }
        let t = self.front.issue_token("eyJ0eXAiOiJKV1QifQ.fake-");
        answer(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": t}),
        )
    }

    fn op_id(s: &mut State) -> String {
        s.next += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", s.next, s.next)
    }

    /// Starts an operation tracked through `Azure-AsyncOperation`.
    fn async_op(
        &self,
        s: &mut State,
        ns: &str,
        version: &str,
        effect: Effect,
        failed: Option<(String, String)>,
    ) -> String {
        let id = Self::op_id(s);
        s.operations.insert(
            id.clone(),
            Operation {
                tracking: Tracking::Async { running: 1, failed },
                effect,
                done: false,
            },
        );
        format!(
            "{}subscriptions/{SUBSCRIPTION}/providers/{ns}/locations/{LOCATION}/operations/{id}?api-version={version}",
            self.base
        )
    }

    /// Starts an operation tracked through `Location`.
    fn location_op(&self, s: &mut State, url_prefix: &str, version: &str, effect: Effect, body: Value) -> String {
        let id = Self::op_id(s);
        s.operations.insert(
            id.clone(),
            Operation {
                tracking: Tracking::Location { running: 1, body },
                effect,
                done: false,
            },
        );
        format!("{}{url_prefix}/{id}?api-version={version}", self.base)
    }

    fn async_status(&self, id: &str) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(op) = s.operations.get(id).cloned() else {
            return arm_error(404, "NotFound", "operation not found");
        };
        let Tracking::Async { running, failed } = op.tracking else {
            return arm_error(404, "NotFound", "not an async operation");
        };
        if running > 0 {
            s.operations.get_mut(id).expect("present").tracking = Tracking::Async {
                running: running - 1,
                failed,
            };
            return with_header(
                answer(
                    200,
                    json!({"name": id, "status": "InProgress", "startTime": "2025-01-01T10:00:00Z"}),
                ),
                "retry-after",
                "0",
            );
        }
        if !op.done {
            apply(&mut s, &op.effect, failed.clone());
            s.operations.get_mut(id).expect("present").done = true;
        }
        match failed {
            None => answer(
                200,
                json!({"name": id, "status": "Succeeded", "startTime": "2025-01-01T10:00:00Z", "endTime": "2025-01-01T10:00:30Z"}),
            ),
            Some((code, message)) => answer(
                200,
                json!({"name": id, "status": "Failed", "startTime": "2025-01-01T10:00:00Z", "endTime": "2025-01-01T10:00:30Z",
                       "error": {"code": code, "message": message}}),
            ),
        }
    }

    fn location_status(&self, id: &str) -> Response {
        let mut s = self.state.lock().unwrap();
        let Some(op) = s.operations.get(id).cloned() else {
            return arm_error(404, "NotFound", "operation not found");
        };
        let Tracking::Location { running, body } = op.tracking else {
            // an async operation's result (POST actions send both headers)
            return answer(
                200,
                match &op.effect {
                    Effect::Settle { id, .. } => s
                        .resources
                        .get(&key(id))
                        .map(|r| r["properties"]["storageProfile"].clone())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                },
            );
        };
        if running > 0 {
            s.operations.get_mut(id).expect("present").tracking = Tracking::Location {
                running: running - 1,
                body,
            };
            return with_header(StatusCode::ACCEPTED.into_response(), "retry-after", "0");
        }
        if !op.done {
            apply(&mut s, &op.effect, None);
            s.operations.get_mut(id).expect("present").done = true;
        }
        let body = match &op.effect {
            Effect::Settle { id, .. } => s.resources.get(&key(id)).cloned().unwrap_or(body),
            _ => body,
        };
        if body.is_null() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            answer(200, body)
        }
    }

    fn group_id(rg: &str) -> String {
        format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}")
    }

    fn dispatch(&self, op: &str, path: &str, p: &dyn Fn(&str) -> String, body: Value, version: &str) -> Response {
        let rg = p("resourceGroupName");
        let gid = Self::group_id(&rg);
        let mut s = self.state.lock().unwrap();
        let group_exists = s.resources.contains_key(&key(&gid));
        let no_group = || {
            arm_error(
                404,
                "ResourceGroupNotFound",
                &format!("Resource group '{rg}' could not be found."),
            )
        };
        // the resource a path names (ids use the canonical casing of the specifications)
        let id = path.replace("/resourcegroups/", "/resourceGroups/");
        let not_found = |id: &str| {
            arm_error(
                404,
                "ResourceNotFound",
                &format!(
                    "The Resource '{}' under resource group '{rg}' was not found.",
                    id.split("/providers/").nth(1).unwrap_or(id)
                ),
            )
        };
        match op {
            "ResourceGroups_Get" => match s.resources.get(&key(&gid)) {
                Some(g) => answer(200, g.clone()),
                None => no_group(),
            },
            "ResourceGroups_CreateOrUpdate" => {
                let existed = group_exists;
                let g = json!({"id": gid, "name": rg, "type": "Microsoft.Resources/resourceGroups", "location": body["location"],
                               "tags": body["tags"], "properties": {"provisioningState": "Succeeded"}});
                s.resources.insert(key(&gid), g.clone());
                answer(if existed { 200 } else { 201 }, g)
            }
            "ResourceGroups_Delete" => {
                if !group_exists {
                    return no_group();
                }
                let url = self.location_op(
                    &mut s,
                    &format!("subscriptions/{SUBSCRIPTION}/operationresults"),
                    version,
                    Effect::DeleteGroup { id: gid },
                    Value::Null,
                );
                with_header(
                    with_header(StatusCode::ACCEPTED.into_response(), "location", &url),
                    "retry-after",
                    "0",
                )
            }
            _ if !group_exists && !op.starts_with("VirtualMachineSizes") && !op.starts_with("Usage") => no_group(),
            "Resources_ListByResourceGroup" => {
                let prefix = key(&format!("{gid}/providers/"));
                let items: Vec<Value> = s
                    .resources
                    .iter()
                    .filter(|(k, r)| k.starts_with(&prefix) && r["type"].as_str().is_some_and(|t| t.matches('/').count() == 1))
                    .map(|(_, r)| json!({"id": r["id"], "name": r["name"], "type": r["type"], "location": r["location"], "tags": r["tags"],
                                         "provisioningState": r["properties"]["provisioningState"]}))
                    .collect();
                answer(200, json!({"value": items}))
            }
            "VirtualMachines_List"
            | "NetworkInterfaces_List"
            | "PublicIPAddresses_List"
            | "Disks_ListByResourceGroup" => {
                let ty = last(path).to_ascii_lowercase();
                let prefix = key(&format!("{gid}/providers/"));
                let items: Vec<Value> = s
                    .resources
                    .iter()
                    .filter(|(k, r)| {
                        k.starts_with(&prefix)
                            && r["type"]
                                .as_str()
                                .is_some_and(|t| t.to_ascii_lowercase().ends_with(&format!("/{ty}")))
                    })
                    .map(|(_, r)| r.clone())
                    .collect();
                answer(200, json!({"value": items}))
            }
            "VirtualNetworks_Get"
            | "NetworkSecurityGroups_Get"
            | "PublicIPAddresses_Get"
            | "NetworkInterfaces_Get"
            | "Disks_Get"
            | "VirtualMachines_Get" => match s.resources.get(&key(&id)) {
                Some(r) => answer(200, r.clone()),
                None => not_found(&id),
            },
            "VirtualMachines_InstanceView" => {
                let vm_id = id.trim_end_matches("/instanceView");
                let Some(vm) = s.resources.get(&key(vm_id)) else {
                    return not_found(vm_id);
                };
                let state = vm["properties"]["provisioningState"].as_str().unwrap_or("Succeeded");
                let mut statuses = vec![];
                if state == "Failed" {
                    let reason = vm["fakeFailure"].clone();
                    statuses.push(json!({"code": format!("ProvisioningState/failed/{}", reason["code"].as_str().unwrap_or("InternalError")),
                                         "level": "Error", "displayStatus": "Provisioning failed", "message": reason["message"]}));
                } else {
                    statuses.push(
                        json!({"code": format!("ProvisioningState/{}", state.to_ascii_lowercase()), "level": "Info"}),
                    );
                }
                answer(200, json!({"computerName": last(vm_id), "statuses": statuses}))
            }
            "VirtualNetworks_CreateOrUpdate" => {
                let mut r = self.stored(&id, "Microsoft.Network/virtualNetworks", &body);
                for sub in r["properties"]["subnets"].as_array_mut().into_iter().flatten() {
                    let n = sub["name"].as_str().unwrap_or_default().to_string();
                    sub["id"] = json!(format!("{id}/subnets/{n}"));
                    sub["type"] = json!("Microsoft.Network/virtualNetworks/subnets");
                    sub["properties"]["provisioningState"] = json!("Succeeded");
                }
                self.network_put(&mut s, &id, r, version)
            }
            "NetworkSecurityGroups_CreateOrUpdate" => {
                let mut r = self.stored(&id, "Microsoft.Network/networkSecurityGroups", &body);
                for rule in r["properties"]["securityRules"].as_array_mut().into_iter().flatten() {
                    let n = rule["name"].as_str().unwrap_or_default().to_string();
                    rule["id"] = json!(format!("{id}/securityRules/{n}"));
                    rule["properties"]["provisioningState"] = json!("Succeeded");
                }
                self.network_put(&mut s, &id, r, version)
            }
            "PublicIPAddresses_CreateOrUpdate" => {
                let mut r = self.stored(&id, "Microsoft.Network/publicIPAddresses", &body);
                match s
                    .resources
                    .get(&key(&id))
                    .and_then(|old| old["properties"]["ipAddress"].as_str().map(str::to_string))
                {
                    Some(ip) => r["properties"]["ipAddress"] = json!(ip),
                    None => {
                        s.next += 1;
                        r["properties"]["ipAddress"] = json!(format!("20.31.0.{}", s.next % 250 + 1));
                    }
                }
                self.network_put(&mut s, &id, r, version)
            }
            "NetworkInterfaces_CreateOrUpdate" => self.nic_put(&mut s, &id, &body, version),
            "VirtualMachines_CreateOrUpdate" => self.vm_put(&mut s, &id, &body, version),
            "Disks_CreateOrUpdate" => {
                let existed = s.resources.contains_key(&key(&id));
                let mut r = self.stored(&id, "Microsoft.Compute/disks", &body);
                r["properties"]["provisioningState"] = json!("Updating");
                r["properties"]["diskState"] = json!("Unattached");
                let final_body = {
                    let mut f = r.clone();
                    f["properties"]["provisioningState"] = json!("Succeeded");
                    f
                };
                if existed && s.resources[&key(&id)]["managedBy"].is_string() {
                    r["managedBy"] = s.resources[&key(&id)]["managedBy"].clone();
                }
                s.resources.insert(key(&id), r.clone());
                let url = self.location_op(
                    &mut s,
                    &format!(
                        "subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{LOCATION}/operationResults"
                    ),
                    version,
                    Effect::Settle {
                        id: id.clone(),
                        failed: None,
                    },
                    final_body,
                );
                with_header(answer(202, r), "location", &url)
            }
            "VirtualMachines_AttachDetachDataDisks" => self.attach_detach(&mut s, &id, &body, version),
            "VirtualMachines_Delete" => {
                if !s.resources.contains_key(&key(&id)) {
                    return StatusCode::NO_CONTENT.into_response();
                }
                let url = self.location_op(
                    &mut s,
                    &format!(
                        "subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{LOCATION}/operationResults"
                    ),
                    version,
                    Effect::DeleteVm { id: id.clone() },
                    Value::Null,
                );
                if let Some(vm) = s.resources.get_mut(&key(&id)) {
                    vm["properties"]["provisioningState"] = json!("Deleting");
                }
                with_header(StatusCode::ACCEPTED.into_response(), "location", &url)
            }
            "PublicIPAddresses_Delete"
            | "NetworkInterfaces_Delete"
            | "NetworkSecurityGroups_Delete"
            | "VirtualNetworks_Delete"
            | "Disks_Delete" => {
                let Some(r) = s.resources.get(&key(&id)).cloned() else {
                    return StatusCode::NO_CONTENT.into_response();
                };
                if let Some(conflict) = in_use(&s, &r) {
                    return conflict;
                }
                if op == "Disks_Delete" {
                    let url = self.location_op(
                        &mut s,
                        &format!("subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{LOCATION}/operationResults"),
                        version,
                        Effect::DeleteResource { id: id.clone() },
                        Value::Null,
                    );
                    return with_header(StatusCode::ACCEPTED.into_response(), "location", &url);
                }
                let url = self.async_op(
                    &mut s,
                    "Microsoft.Network",
                    version,
                    Effect::DeleteResource { id: id.clone() },
                    None,
                );
                with_header(StatusCode::ACCEPTED.into_response(), "azure-asyncoperation", &url)
            }
            "VirtualMachineSizes_List" => answer(
                200,
                json!({"value": SIZES.iter().map(|(n, c)| json!({"name": n, "numberOfCores": c, "osDiskSizeInMB": 1047552,
                    "resourceDiskSizeInMB": 0, "memoryInMB": c * 4096, "maxDataDiskCount": 4})).collect::<Vec<_>>()}),
            ),
            "Usage_List" => {
                let used: i64 = s
                    .resources
                    .values()
                    .filter(|r| r["type"] == "Microsoft.Compute/virtualMachines")
                    .map(|r| {
                        SIZES
                            .iter()
                            .find(|(n, _)| r["properties"]["hardwareProfile"]["vmSize"] == *n)
                            .map_or(0, |(_, c)| *c)
                    })
                    .sum();
                answer(
                    200,
                    json!({"value": [{"unit": "Count", "currentValue": used, "limit": CORES_LIMIT,
                                              "name": {"value": "cores", "localizedValue": "Total Regional vCPUs"}}]}),
                )
            }
            other => arm_error(
                400,
                "UnsupportedOperation",
                &format!("the fake does not implement {other}"),
            ),
        }
    }

    /// A PUT body as stored: id, name, type, etag; provisioning starts.
    fn stored(&self, id: &str, ty: &str, body: &Value) -> Value {
        let mut r = body.clone();
        r["id"] = json!(id);
        r["name"] = json!(last(id));
        r["type"] = json!(ty);
        r["etag"] = json!("W/\"00000000-0000-0000-0000-000000000001\"");
        if r.get("properties").is_none() {
            r["properties"] = json!({});
        }
        r["properties"]["provisioningState"] = json!("Updating");
        r
    }

    /// Microsoft.Network answers PUTs 201 (new) or 200 with `Azure-AsyncOperation`.
    fn network_put(&self, s: &mut State, id: &str, r: Value, version: &str) -> Response {
        let existed = s.resources.contains_key(&key(id));
        s.resources.insert(key(id), r.clone());
        let url = self.async_op(
            s,
            "Microsoft.Network",
            version,
            Effect::Settle {
                id: id.to_string(),
                failed: None,
            },
            None,
        );
        with_header(answer(if existed { 200 } else { 201 }, r), "azure-asyncoperation", &url)
    }

    fn nic_put(&self, s: &mut State, id: &str, body: &Value, version: &str) -> Response {
        let ipc = &body["properties"]["ipConfigurations"][0]["properties"];
        let subnet_id = ipc["subnet"]["id"].as_str().unwrap_or_default();
        let (vnet_id, subnet_name) = subnet_id.split_once("/subnets/").unwrap_or(("", ""));
        let Some(vnet) = s.resources.get(&key(vnet_id)) else {
            return arm_error(
                400,
                "InvalidResourceReference",
                &format!("Resource {subnet_id} referenced by resource {id} was not found."),
            );
        };
        let prefix = vnet["properties"]["subnets"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == subnet_name))
            .and_then(|x| x["properties"]["addressPrefix"].as_str())
            .unwrap_or("");
        let Ok(range) = prefix.parse::<vre_core::spec::Ipv4Cidr>() else {
            return arm_error(
                400,
                "InvalidResourceReference",
                &format!("subnet {subnet_id} not found"),
            );
        };
        let nsg_id = body["properties"]["networkSecurityGroup"]["id"]
            .as_str()
            .unwrap_or_default();
        if !s.resources.contains_key(&key(nsg_id)) {
            return arm_error(
                400,
                "InvalidResourceReference",
                &format!("Resource {nsg_id} referenced by resource {id} was not found."),
            );
        }
        let used: Vec<(String, String)> = s
            .resources
            .values()
            .filter(|r| {
                r["type"] == "Microsoft.Network/networkInterfaces"
                    && !r["id"].as_str().unwrap_or("").eq_ignore_ascii_case(id)
            })
            .filter_map(|r| {
                let p = &r["properties"]["ipConfigurations"][0]["properties"];
                Some((
                    p["privateIPAddress"].as_str()?.to_string(),
                    p["publicIPAddress"]["id"].as_str().unwrap_or("").to_ascii_lowercase(),
                ))
            })
            .collect();
        let previous = s.resources.get(&key(id)).and_then(|r| {
            r.pointer("/properties/ipConfigurations/0/properties/privateIPAddress")
                .cloned()
        });
        let ip = match ipc["privateIPAddress"].as_str() {
            Some(ip) if used.iter().any(|(u, _)| u == ip) => {
                return arm_error(
                    400,
                    "PrivateIPAddressInUse",
                    &format!(
                        "IP configuration {id}/ipConfigurations/ipconfig1 is using the private IP address {ip} which is already allocated to resource ..."
                    ),
                );
            }
            Some(ip) => ip.to_string(),
            None => match previous.and_then(|p| p.as_str().map(str::to_string)) {
                Some(p) => p,
                // Azure keeps .0-.3 of a subnet for itself
                None => match (4..)
                    .map_while(|n| range.host(n))
                    .map(|h| h.to_string())
                    .find(|h| !used.iter().any(|(u, _)| u == h))
                {
                    Some(h) => h,
                    None => return arm_error(400, "SubnetIsFull", "Subnet has no free address."),
                },
            },
        };
        if let Some(pip) = ipc["publicIPAddress"]["id"].as_str() {
            if !s.resources.contains_key(&key(pip)) {
                return arm_error(
                    400,
                    "InvalidResourceReference",
                    &format!("Resource {pip} referenced by resource {id} was not found."),
                );
            }
            if used.iter().any(|(_, p)| *p == key(pip)) {
                return arm_error(
                    400,
                    "PublicIPAddressInUse",
                    &format!("Resource {pip} is already in use."),
                );
            }
        }
        let mut r = self.stored(id, "Microsoft.Network/networkInterfaces", body);
        let ip_id = format!("{id}/ipConfigurations/ipconfig1");
        r["properties"]["ipConfigurations"][0]["id"] = json!(ip_id);
        r["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = json!(ip);
        r["properties"]["ipConfigurations"][0]["properties"]["provisioningState"] = json!("Succeeded");
        if let Some(vm) = s
            .resources
            .get(&key(id))
            .map(|old| old["properties"]["virtualMachine"].clone())
            .filter(|v| !v.is_null())
        {
            r["properties"]["virtualMachine"] = vm;
        }
        // the public IP learns which configuration holds it
        for p in s
            .resources
            .values_mut()
            .filter(|p| p["type"] == "Microsoft.Network/publicIPAddresses")
        {
            let pid = p["id"].as_str().unwrap_or_default().to_string();
            if ipc["publicIPAddress"]["id"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&pid))
            {
                p["properties"]["ipConfiguration"] = json!({"id": ip_id});
            } else if p["properties"]["ipConfiguration"]["id"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&ip_id))
            {
                p["properties"]
                    .as_object_mut()
                    .expect("object")
                    .remove("ipConfiguration");
            }
        }
        self.network_put(s, id, r, version)
    }

    fn vm_put(&self, s: &mut State, id: &str, body: &Value, version: &str) -> Response {
        let name = last(id).to_string();
        let props = &body["properties"];
        let size = props["hardwareProfile"]["vmSize"].as_str().unwrap_or_default();
        if !SIZES.iter().any(|(n, _)| *n == size) {
            return arm_error(
                409,
                "SkuNotAvailable",
                &format!("The requested VM size {size} is currently not available in location '{LOCATION}'."),
            );
        }
        if props["osProfile"]["customData"]
            .as_str()
            .is_some_and(|d| base64::engine::general_purpose::STANDARD.decode(d).is_err())
        {
            return arm_error(
                400,
                "InvalidParameter",
                "Custom data in OSProfile must be in Base64 encoding.",
            );
        }
        let nic_id = props["networkProfile"]["networkInterfaces"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(nic) = s.resources.get(&key(&nic_id)) else {
            return arm_error(400, "NotFound", &format!("Resource {nic_id} not found."));
        };
        if nic["properties"]["virtualMachine"]["id"]
            .as_str()
            .is_some_and(|v| !v.eq_ignore_ascii_case(id))
        {
            return arm_error(
                400,
                "NicInUse",
                &format!(
                    "Network Interface {nic_id} is used by existing resource {}.",
                    nic["properties"]["virtualMachine"]["id"]
                ),
            );
        }
        if s.resources.contains_key(&key(id)) {
            return arm_error(409, "OperationNotAllowed", "the fake only creates VMs");
        }
        let failed = s.failing_vms.iter().position(|n| *n == name).map(|i| {
            s.failing_vms.remove(i);
            ("AllocationFailed".to_string(), "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance".to_string())
        });
        let mut r = self.stored(id, "Microsoft.Compute/virtualMachines", body);
        r["properties"]["provisioningState"] = json!("Creating");
        r["properties"]["vmId"] = json!(format!("{:08x}-aaaa-4bbb-8ccc-000000000000", s.next + 1));
        r["properties"]["storageProfile"]["dataDisks"] = json!([]);
        r["properties"]["osProfile"]
            .as_object_mut()
            .expect("osProfile")
            .remove("customData");
        let os = props["storageProfile"]["osDisk"]["name"]
            .as_str()
            .unwrap_or(&name)
            .to_string();
        let os_id = format!(
            "{}/providers/Microsoft.Compute/disks/{os}",
            Self::group_id(id.split('/').nth(4).unwrap_or(""))
        );
        r["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"] = json!(os_id);
        s.resources.insert(key(id), r.clone());
        s.resources.insert(
            key(&os_id),
            json!({"id": os_id, "name": os, "type": "Microsoft.Compute/disks", "location": LOCATION, "managedBy": id,
                   "properties": {"provisioningState": "Succeeded", "diskSizeGB": props["storageProfile"]["osDisk"]["diskSizeGB"], "diskState": "Attached"}}),
        );
        if let Some(n) = s.resources.get_mut(&key(&nic_id)) {
            n["properties"]["virtualMachine"] = json!({"id": id});
        }
        let url = self.async_op(
            s,
            "Microsoft.Compute",
            version,
            Effect::Settle {
                id: id.to_string(),
                failed: failed.clone(),
            },
            failed,
        );
        with_header(answer(201, r), "azure-asyncoperation", &url)
    }

    fn attach_detach(&self, s: &mut State, path: &str, body: &Value, version: &str) -> Response {
        let vm_id = path.trim_end_matches("/attachDetachDataDisks").to_string();
        if !s.resources.contains_key(&key(&vm_id)) {
            return arm_error(
                404,
                "ResourceNotFound",
                &format!("The Resource '{vm_id}' was not found."),
            );
        }
        for a in body["dataDisksToAttach"].as_array().into_iter().flatten() {
            let disk_id = a["diskId"].as_str().unwrap_or_default().to_string();
            let Some(disk) = s.resources.get_mut(&key(&disk_id)) else {
                return arm_error(404, "NotFound", &format!("Disk {disk_id} was not found."));
            };
            if disk["managedBy"].is_string() {
                return arm_error(
                    409,
                    "AttachDiskWhileBeingDetached",
                    &format!("Disk {disk_id} is already attached to {}.", disk["managedBy"]),
                );
            }
            disk["managedBy"] = json!(vm_id);
            disk["properties"]["diskState"] = json!("Attached");
            let name = disk["name"].clone();
            let vm = s.resources.get_mut(&key(&vm_id)).expect("checked");
            vm["properties"]["storageProfile"]["dataDisks"]
                .as_array_mut()
                .expect("array")
                .push(json!({
                    "lun": a["lun"], "name": name, "createOption": "Attach", "caching": a["caching"],
                    "managedDisk": {"id": disk_id}, "deleteOption": a["deleteOption"],
                }));
        }
        for d in body["dataDisksToDetach"].as_array().into_iter().flatten() {
            let disk_id = d["diskId"].as_str().unwrap_or_default().to_string();
            let vm = s.resources.get_mut(&key(&vm_id)).expect("checked");
            vm["properties"]["storageProfile"]["dataDisks"]
                .as_array_mut()
                .expect("array")
                .retain(|x| {
                    !x["managedDisk"]["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(&disk_id))
                });
            if let Some(disk) = s.resources.get_mut(&key(&disk_id)) {
                disk.as_object_mut().expect("object").remove("managedBy");
                disk["properties"]["diskState"] = json!("Unattached");
            }
        }
        let url = self.async_op(
            s,
            "Microsoft.Compute",
            version,
            Effect::Settle {
                id: vm_id.clone(),
                failed: None,
            },
            None,
        );
        let location = url.replace("/operations/", "/operationResults/");
        with_header(
            with_header(StatusCode::ACCEPTED.into_response(), "azure-asyncoperation", &url),
            "location",
            &location,
        )
    }
}

/// The conflict Azure answers when deleting `r` while something uses it.
fn in_use(s: &State, r: &Value) -> Option<Response> {
    let id = r["id"].as_str().unwrap_or_default().to_ascii_lowercase();
    let ty = r["type"].as_str().unwrap_or_default();
    let refs = |pointer: &str| {
        s.resources.values().find(|x| {
            x.pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_ascii_lowercase().starts_with(&id))
        })
    };
    match ty {
        "Microsoft.Network/publicIPAddresses" if r["properties"]["ipConfiguration"].is_object() => Some(arm_error(
            400,
            "PublicIPAddressCannotBeDeleted",
            &format!(
                "Public IP address {} can not be deleted since it is still allocated to resource {}.",
                r["id"], r["properties"]["ipConfiguration"]["id"]
            ),
        )),
        "Microsoft.Network/networkInterfaces" if r["properties"]["virtualMachine"].is_object() => Some(arm_error(
            400,
            "NicInUse",
            &format!(
                "Network Interface {} is used by existing resource {}.",
                r["id"], r["properties"]["virtualMachine"]["id"]
            ),
        )),
        "Microsoft.Network/networkSecurityGroups" => refs("/properties/networkSecurityGroup/id").map(|x| {
            arm_error(
                400,
                "InUseNetworkSecurityGroupCannotBeDeleted",
                &format!(
                    "Network security group {} cannot be deleted because it is in use by {}.",
                    r["id"], x["id"]
                ),
            )
        }),
        "Microsoft.Network/virtualNetworks" => refs("/properties/ipConfigurations/0/properties/subnet/id").map(|x| {
            arm_error(
                400,
                "InUseSubnetCannotBeDeleted",
                &format!("Subnet of {} is in use by {} and cannot be deleted.", r["id"], x["id"]),
            )
        }),
        "Microsoft.Compute/disks" if r["managedBy"].is_string() => Some(arm_error(
            409,
            "OperationNotAllowed",
            &format!("Disk {} is attached to VM {}.", r["name"], r["managedBy"]),
        )),
        _ => None,
    }
}

/// What a finished operation does to the state.
fn apply(s: &mut State, effect: &Effect, failed: Option<(String, String)>) {
    match effect {
        Effect::Settle { id, .. } => {
            if let Some(r) = s.resources.get_mut(&key(id)) {
                match &failed {
                    None => r["properties"]["provisioningState"] = json!("Succeeded"),
                    Some((code, message)) => {
                        r["properties"]["provisioningState"] = json!("Failed");
                        r["fakeFailure"] = json!({"code": code, "message": message});
                    }
                }
            }
        }
        Effect::DeleteVm { id } => {
            let Some(vm) = s.resources.remove(&key(id)) else { return };
            let os = &vm["properties"]["storageProfile"]["osDisk"];
            if os["deleteOption"] == "Delete"
                && let Some(d) = os["managedDisk"]["id"].as_str()
            {
                s.resources.remove(&key(d));
            }
            for d in vm["properties"]["storageProfile"]["dataDisks"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(disk) = d["managedDisk"]["id"]
                    .as_str()
                    .and_then(|i| s.resources.get_mut(&key(i)))
                {
                    disk.as_object_mut().expect("object").remove("managedBy");
                    disk["properties"]["diskState"] = json!("Unattached");
                }
            }
            for n in vm["properties"]["networkProfile"]["networkInterfaces"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let nic_id = n["id"].as_str().unwrap_or_default().to_string();
                if n["properties"]["deleteOption"] == "Delete" {
                    if let Some(nic) = s.resources.remove(&key(&nic_id)) {
                        let ip_id = format!("{nic_id}/ipConfigurations/ipconfig1").to_ascii_lowercase();
                        let _ = nic;
                        for p in s.resources.values_mut() {
                            if p["properties"]["ipConfiguration"]["id"]
                                .as_str()
                                .is_some_and(|x| x.to_ascii_lowercase() == ip_id)
                            {
                                p["properties"]
                                    .as_object_mut()
                                    .expect("object")
                                    .remove("ipConfiguration");
                            }
                        }
                    }
                } else if let Some(nic) = s.resources.get_mut(&key(&nic_id)) {
                    nic["properties"]
                        .as_object_mut()
                        .expect("object")
                        .remove("virtualMachine");
                }
            }
        }
        Effect::DeleteResource { id } => {
            s.resources.remove(&key(id));
        }
        Effect::DeleteGroup { id } => {
            let prefix = key(id);
            s.resources
                .retain(|k, _| !(k == &prefix || k.starts_with(&format!("{prefix}/"))));
        }
        Effect::None => {}
    }
}
