//! Sends [`ArmCall`]s with a bearer token and follows Azure Resource
//! Manager's long-running-operation protocol:
//!
//! * `201`/`202` with `Azure-AsyncOperation`: poll that URL until `status`
//!   is `Succeeded`, `Failed` or `Canceled` (`error.code` / `error.message`
//!   say why); then a PUT reads the resource back, a POST follows its
//!   `Location` when it sent one.
//! * `202` with only `Location`: poll it until it answers `200`, `201` or `204`.
//! * `200`/`201` with neither header but a non-terminal
//!   `properties.provisioningState`: read the resource until it settles.
//!
//! Every wait honours `Retry-After`; a `429` while polling is waited out,
//! a `429` on the request itself is a retriable error for the engine.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use crate::auth::TokenSource;
use crate::call::ArmCall;
use crate::error::AzureError;

/// Azure Resource Manager in the public cloud.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com/";

/// How long-running operations are polled when the server names no delay
/// (the kit's policy; 2 s doubling up to 20 s, for 30 minutes by default).
pub use vre_cloud_kit::PollPolicy;

pub(crate) use vre_cloud_kit::retry_after;
use vre_cloud_kit::send_with_bearer;

/// The query parameter ARM reads a call's API version from.
pub const API_VERSION: &str = "api-version";

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    async_operation: Option<String>,
    location: Option<String>,
    retry_after: Option<Duration>,
    body: Value,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// ARM's error body: `{"error": {"code", "message"}}` (some services put both at the top).
fn arm_error(operation: &str, status: u16, body: &Value, raw: &[u8], retry_after: Option<Duration>) -> AzureError {
    let e = body.get("error").unwrap_or(body);
    let code = e.get("code").and_then(Value::as_str);
    let message = e.get("message").and_then(Value::as_str);
    AzureError::Api {
        operation: operation.to_string(),
        status,
        code: code
            .unwrap_or(match status {
                404 => "NotFound",
                429 => "TooManyRequests",
                _ => "Error",
            })
            .to_string(),
        message: message
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(raw).chars().take(300).collect()),
        retry_after,
    }
}

const TERMINAL: &[&str] = &["Succeeded", "Failed", "Canceled"];

fn provisioning_state(v: &Value) -> Option<&str> {
    v.pointer("/properties/provisioningState").and_then(Value::as_str)
}

/// Azure Resource Manager for one service principal.
#[derive(Debug)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: url::Url,
    tokens: TokenSource,
    poll: PollPolicy,
}

impl ArmClient {
    pub fn new(http: reqwest::Client, endpoint: &str, tokens: TokenSource) -> Result<Self, String> {
        let endpoint = url::Url::parse(endpoint).map_err(|e| format!("\"{endpoint}\" is not a URL ({e})"))?;
        Ok(ArmClient {
            http,
            endpoint,
            tokens,
            poll: PollPolicy::default(),
        })
    }

    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    pub fn poll(&self) -> &PollPolicy {
        &self.poll
    }

    /// The full URL of a call.
    pub fn url(&self, call: &ArmCall) -> Result<url::Url, AzureError> {
        let mut u = self
            .endpoint
            .join(call.path().trim_start_matches('/'))
            .map_err(|e| AzureError::Decode {
                operation: call.purpose.clone(),
                message: format!("bad path {}: {e}", call.path()),
            })?;
        u.query_pairs_mut().extend_pairs(call.query_pairs(API_VERSION));
        Ok(u)
    }

    /// Sends one request to `url` (which must be on the ARM endpoint: the
    /// bearer token goes nowhere else). Non-2xx answers are errors.
    async fn request(
        &self,
        verb: &str,
        url: &url::Url,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Answer, AzureError> {
        if url.host_str() != self.endpoint.host_str()
            || url.port_or_known_default() != self.endpoint.port_or_known_default()
        {
            return Err(AzureError::Decode {
                operation: operation.to_string(),
                message: format!(
                    "the server pointed at {url}, outside {}; not sending credentials there",
                    self.endpoint
                ),
            });
        }
        let method = reqwest::Method::from_bytes(verb.as_bytes()).map_err(|_| AzureError::Decode {
            operation: operation.to_string(),
            message: format!("bad HTTP verb {verb}"),
        })?;
        let build = |token: &str| {
            tracing::debug!(%verb, %url, "ARM request");
            let req = self.http.request(method.clone(), url.clone()).bearer_auth(token);
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        };
        let transport = |source| AzureError::Transport {
            operation: operation.to_string(),
            source,
        };
        let answer = send_with_bearer(build, || self.tokens.token(), || self.tokens.invalidate(), transport).await?;
        let (status, headers, raw) = (answer.status, answer.headers, answer.body);
        let body: Value = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        let retry = retry_after(&headers);
        if !(200..300).contains(&status) {
            return Err(arm_error(operation, status, &body, &raw, retry));
        }
        Ok(Answer {
            status,
            async_operation: header(&headers, "azure-asyncoperation"),
            location: header(&headers, "location"),
            retry_after: retry,
            body,
        })
    }

    fn parse_url(&self, s: &str, operation: &str) -> Result<url::Url, AzureError> {
        self.endpoint.join(s).map_err(|e| AzureError::Decode {
            operation: operation.to_string(),
            message: format!("bad polling URL {s}: {e}"),
        })
    }

    /// One request, no operation tracking.
    pub async fn send(&self, call: &ArmCall) -> Result<Value, AzureError> {
        let url = self.url(call)?;
        Ok(self
            .request(call.verb, &url, call.body.as_ref(), &call.purpose)
            .await?
            .body)
    }

    /// Like [`Self::send`], `None` when the resource (or its group) does not exist.
    pub async fn get_opt(&self, call: &ArmCall) -> Result<Option<Value>, AzureError> {
        match self.send(call).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a list call (`value`), following `nextLink`.
    pub async fn list(&self, call: &ArmCall) -> Result<Vec<Value>, AzureError> {
        let mut out = Vec::new();
        let mut url = self.url(call)?;
        loop {
            let page = self.request("GET", &url, None, &call.purpose).await?.body;
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match page.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => url = self.parse_url(next, &call.purpose)?,
                _ => return Ok(out),
            }
        }
    }

    /// Sends a call and follows its long-running operation to the end.
    /// Returns the final resource (PUT), the action's result (POST), or
    /// `Null` (DELETE).
    pub async fn execute(&self, call: &ArmCall) -> Result<Value, AzureError> {
        let url = self.url(call)?;
        let first = self.request(call.verb, &url, call.body.as_ref(), &call.purpose).await?;
        if let Some(op) = &first.async_operation {
            let op_url = self.parse_url(op, &call.purpose)?;
            self.poll_async_operation(&op_url, first.retry_after, &call.purpose)
                .await?;
            return match call.verb {
                "PUT" | "PATCH" => self.send(&reading(call)).await,
                "POST" => match &first.location {
                    Some(loc) => {
                        let loc = self.parse_url(loc, &call.purpose)?;
                        Ok(self.request("GET", &loc, None, &call.purpose).await?.body)
                    }
                    None => Ok(Value::Null),
                },
                _ => Ok(Value::Null),
            };
        }
        if first.status == 202 {
            let Some(loc) = &first.location else {
                return Err(AzureError::Decode {
                    operation: call.purpose.clone(),
                    message: "202 Accepted without Azure-AsyncOperation or Location".into(),
                });
            };
            let loc = self.parse_url(loc, &call.purpose)?;
            let body = self.poll_location(&loc, first.retry_after, &call.purpose).await?;
            if call.verb == "PUT" && body.is_null() {
                return self.send(&reading(call)).await;
            }
            return Ok(body);
        }
        if call.verb == "PUT" {
            if let Some(state) = provisioning_state(&first.body)
                && !TERMINAL.contains(&state)
            {
                return self.poll_provisioning_state(call, first.retry_after).await;
            }
            if provisioning_state(&first.body) == Some("Failed") {
                return Err(AzureError::Operation {
                    operation: call.purpose.clone(),
                    status: "Failed".into(),
                    code: "ProvisioningFailed".into(),
                    message: "the resource is in provisioning state Failed".into(),
                });
            }
        }
        Ok(first.body)
    }

    /// Polls an `Azure-AsyncOperation` URL until the operation ends.
    async fn poll_async_operation(
        &self,
        url: &url::Url,
        first_wait: Option<Duration>,
        operation: &str,
    ) -> Result<(), AzureError> {
        let started = Instant::now();
        let mut wait = first_wait;
        let mut attempt = 0;
        loop {
            self.pause(&mut attempt, wait, started, operation).await?;
            let answer = match self.request("GET", url, None, operation).await {
                Ok(a) => a,
                Err(AzureError::Api {
                    status, retry_after, ..
                }) if status == 429 || status >= 500 => {
                    wait = retry_after;
                    continue;
                }
                Err(e) => return Err(e),
            };
            wait = answer.retry_after;
            let status = answer
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress");
            match status {
                "Succeeded" => return Ok(()),
                "Failed" | "Canceled" => {
                    let e = answer.body.get("error");
                    return Err(AzureError::Operation {
                        operation: operation.to_string(),
                        status: status.to_string(),
                        code: e
                            .and_then(|e| e.get("code"))
                            .and_then(Value::as_str)
                            .unwrap_or(status)
                            .to_string(),
                        message: e
                            .and_then(|e| e.get("message"))
                            .and_then(Value::as_str)
                            .unwrap_or("the operation reported no message")
                            .to_string(),
                    });
                }
                _ => {}
            }
        }
    }

    /// Polls a `Location` URL until it stops answering 202.
    async fn poll_location(
        &self,
        url: &url::Url,
        first_wait: Option<Duration>,
        operation: &str,
    ) -> Result<Value, AzureError> {
        let started = Instant::now();
        let mut wait = first_wait;
        let mut attempt = 0;
        loop {
            self.pause(&mut attempt, wait, started, operation).await?;
            match self.request("GET", url, None, operation).await {
                Ok(a) if a.status == 202 => wait = a.retry_after,
                Ok(a) => return Ok(a.body),
                Err(AzureError::Api {
                    status, retry_after, ..
                }) if status == 429 || status >= 500 => wait = retry_after,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a resource until its provisioning state is terminal.
    async fn poll_provisioning_state(&self, call: &ArmCall, first_wait: Option<Duration>) -> Result<Value, AzureError> {
        let started = Instant::now();
        let mut wait = first_wait;
        let mut attempt = 0;
        let read = reading(call);
        loop {
            self.pause(&mut attempt, wait, started, &call.purpose).await?;
            let url = self.url(&read)?;
            let a = self.request("GET", &url, None, &call.purpose).await?;
            wait = a.retry_after;
            match provisioning_state(&a.body) {
                Some("Failed") | Some("Canceled") => {
                    return Err(AzureError::Operation {
                        operation: call.purpose.clone(),
                        status: provisioning_state(&a.body).unwrap_or("Failed").to_string(),
                        code: "ProvisioningFailed".into(),
                        message: "the resource's provisioning state is Failed".into(),
                    });
                }
                Some(s) if !TERMINAL.contains(&s) => {}
                _ => return Ok(a.body),
            }
        }
    }

    async fn pause(
        &self,
        attempt: &mut u32,
        wait: Option<Duration>,
        started: Instant,
        operation: &str,
    ) -> Result<(), AzureError> {
        if started.elapsed() > self.poll.timeout {
            return Err(AzureError::OperationTimeout {
                operation: operation.to_string(),
                after: self.poll.timeout,
            });
        }
        tokio::time::sleep(self.poll.delay(*attempt, wait)).await;
        *attempt += 1;
        Ok(())
    }
}

/// The GET of the resource a PUT wrote.
fn reading(call: &ArmCall) -> ArmCall {
    let operation: &'static str = match call.operation {
        "VirtualNetworks_CreateOrUpdate" => "VirtualNetworks_Get",
        "NetworkSecurityGroups_CreateOrUpdate" => "NetworkSecurityGroups_Get",
        "PublicIPAddresses_CreateOrUpdate" => "PublicIPAddresses_Get",
        "NetworkInterfaces_CreateOrUpdate" => "NetworkInterfaces_Get",
        "VirtualMachines_CreateOrUpdate" => "VirtualMachines_Get",
        "Disks_CreateOrUpdate" => "Disks_Get",
        "ResourceGroups_CreateOrUpdate" => "ResourceGroups_Get",
        other => other,
    };
    ArmCall {
        operation,
        verb: "GET",
        body: None,
        ..call.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{self, Scope, Tags};
    use crate::scripted::{Reply, Script, TENANT, client_for, serve, token_reply};
    use serde_json::json;

    const SUB: &str = "00000000-1111-4222-8333-444444444444";

    fn scope() -> Scope {
        Scope {
            subscription: SUB.into(),
            resource_group: "lab-rg".into(),
            location: "westeurope".into(),
        }
    }

    fn script() -> std::sync::Arc<Script> {
        let s = Script::new();
        s.on(
            "POST",
            &format!("/{TENANT}/oauth2/v2.0/token"),
            vec![token_reply("eyJ0.one", 3599), token_reply("eyJ0.two", 3599)],
        );
        s
    }

    fn rg_path(rest: &str) -> String {
        format!("/subscriptions/{SUB}/resourceGroups/lab-rg/providers/{rest}")
    }

    /// A virtual network as Microsoft.Network answers a PUT (still updating).
    fn vnet(state: &str) -> serde_json::Value {
        json!({
            "name": "lab-net",
            "id": rg_path("Microsoft.Network/virtualNetworks/lab-net"),
            "type": "Microsoft.Network/virtualNetworks",
            "location": "westeurope",
            "properties": {
                "provisioningState": state,
                "addressSpace": {"addressPrefixes": ["10.0.0.0/24"]},
                "subnets": [{"name": "lab-subnet", "id": rg_path("Microsoft.Network/virtualNetworks/lab-net/subnets/lab-subnet"),
                             "properties": {"addressPrefix": "10.0.0.0/24", "provisioningState": state}}],
            },
        })
    }

    #[tokio::test]
    async fn puts_follow_azure_async_operation_then_read_the_resource() {
        let s = script();
        let base = serve(s.clone()).await;
        let op = format!(
            "/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operations/5d1c4f1e-0b0a-4b4f-9c55-2f3e3c9b2a10"
        );
        s.on(
            "PUT",
            &rg_path("Microsoft.Network/virtualNetworks/lab-net"),
            vec![
                Reply::json(201, vnet("Updating"))
                    .header(
                        "azure-asyncoperation",
                        &format!("{base}{}?api-version=2026-01-01", &op[1..]),
                    )
                    .header("retry-after", "0"),
            ],
        );
        s.on(
            "GET",
            &op,
            vec![
                Reply::json(200, json!({"status": "InProgress"})).header("retry-after", "0"),
                Reply::json(200, json!({"status": "Succeeded"})),
            ],
        );
        s.on(
            "GET",
            &rg_path("Microsoft.Network/virtualNetworks/lab-net"),
            vec![Reply::json(200, vnet("Succeeded"))],
        );
        let client = client_for(&base);
        let call = call::virtual_networks_create(&scope(), "lab-net", "10.0.0.0/24", "lab-subnet", &Tags::new());
        let v = client.execute(&call).await.unwrap();
        assert_eq!(v.pointer("/properties/provisioningState").unwrap(), "Succeeded");
        assert_eq!(s.count("GET", &op), 2);
        let put = s.seen().into_iter().find(|r| r.method == "PUT").unwrap();
        assert_eq!(put.query.as_deref(), Some("api-version=2026-01-01"));
        assert_eq!(put.headers["authorization"], "Bearer eyJ0.one");
    }

    #[tokio::test]
    async fn failed_operations_report_the_error_code_and_message() {
        let s = script();
        let base = serve(s.clone()).await;
        let op = format!(
            "/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/9a0e1b5c-77c4-4d2a-8f0e-1c2b3a4d5e6f"
        );
        s.on(
            "PUT",
            &rg_path("Microsoft.Compute/virtualMachines/lab-service-1"),
            vec![
                Reply::json(
                    201,
                    json!({"name": "lab-service-1", "properties": {"provisioningState": "Creating"}}),
                )
                .header(
                    "azure-asyncoperation",
                    &format!("{base}{}?p=abc&api-version=2025-04-01", &op[1..]),
                ),
            ],
        );
        s.on("GET", &op, vec![Reply::json(200, json!({
            "startTime": "2025-01-01T10:00:00Z",
            "endTime": "2025-01-01T10:01:00Z",
            "status": "Failed",
            "error": {"code": "AllocationFailed", "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."},
            "name": "9a0e1b5c-77c4-4d2a-8f0e-1c2b3a4d5e6f",
        }))]);
        let client = client_for(&base);
        let vm = json!({});
        let mut call = call::virtual_machines_get(&scope(), "lab-service-1");
        call.operation = "VirtualMachines_CreateOrUpdate";
        call.verb = "PUT";
        call.body = Some(vm);
        call.purpose = "create virtual machine lab-service-1".into();
        let e = client.execute(&call).await.unwrap_err();
        assert_eq!(e.code(), Some("AllocationFailed"));
        let e = vre_core::Error::from(e);
        assert!(e.to_string().contains("AllocationFailed: Allocation failed."), "{e}");
        assert!(e.retry().is_some(), "capacity may come back");
    }

    #[tokio::test]
    async fn deletes_follow_location_until_it_stops_answering_202() {
        let s = script();
        let base = serve(s.clone()).await;
        let loc =
            format!("/subscriptions/{SUB}/operationresults/eyJqb2JJZCI6IlJFU09VUkNFR1JPVVBERUxFVElPTkpPQi1MQUItUkcifQ");
        s.on(
            "DELETE",
            &format!("/subscriptions/{SUB}/resourcegroups/lab-rg"),
            vec![
                Reply::json(202, json!(null))
                    .header("location", &format!("{base}{}?api-version=2025-04-01", &loc[1..]))
                    .header("retry-after", "0"),
            ],
        );
        s.on(
            "GET",
            &loc,
            vec![
                Reply::json(202, json!(null)).header("retry-after", "0"),
                Reply::json(202, json!(null)),
                Reply::json(200, json!(null)),
            ],
        );
        let client = client_for(&base);
        client.execute(&call::resource_groups_delete(&scope())).await.unwrap();
        assert_eq!(s.count("GET", &loc), 3);
    }

    #[tokio::test]
    async fn location_polls_return_the_final_body() {
        let s = script();
        let base = serve(s.clone()).await;
        let loc = format!(
            "/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/DiskOperations/3c1f7a55-2c1e-4d5b-9a8e-7f6e5d4c3b2a"
        );
        s.on(
            "PUT",
            &rg_path("Microsoft.Compute/disks/lab-storage-1-data"),
            vec![
                Reply::json(
                    202,
                    json!({"name": "lab-storage-1-data", "properties": {"provisioningState": "Updating"}}),
                )
                .header("location", &format!("{base}{}?p=x&api-version=2025-01-02", &loc[1..])),
            ],
        );
        s.on("GET", &loc, vec![
            Reply::json(202, json!(null)),
            Reply::json(200, json!({"name": "lab-storage-1-data", "id": rg_path("Microsoft.Compute/disks/lab-storage-1-data"),
                                    "properties": {"provisioningState": "Succeeded", "diskSizeGB": 50, "diskState": "Unattached"}})),
        ]);
        let client = client_for(&base);
        let v = client
            .execute(&call::disks_create(
                &scope(),
                "lab-storage-1-data",
                50,
                "StandardSSD_LRS",
                &Tags::new(),
            ))
            .await
            .unwrap();
        assert_eq!(v.pointer("/properties/diskSizeGB").unwrap(), 50);
    }

    #[tokio::test]
    async fn throttling_on_the_request_is_a_retriable_error() {
        let s = script();
        let base = serve(s.clone()).await;
        s.on("GET", &rg_path("Microsoft.Compute/virtualMachines"), vec![Reply::json(429, json!({"error": {
            "code": "SubscriptionRequestsThrottled",
            "message": "Number of 'read' requests for subscription '00000000-1111-4222-8333-444444444444' actor '...' exceeded. Please try again after '13' seconds after the last request.",
        }}))
        .header("retry-after", "13")]);
        let client = client_for(&base);
        let e = vre_core::Error::from(client.list(&call::virtual_machines_list(&scope())).await.unwrap_err());
        assert_eq!(e.retry(), Some(Some(Duration::from_secs(13))));
        assert!(e.to_string().contains("SubscriptionRequestsThrottled"), "{e}");
    }

    #[tokio::test]
    async fn throttling_while_polling_is_waited_out() {
        let s = script();
        let base = serve(s.clone()).await;
        let op = format!("/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operations/aa11");
        s.on(
            "DELETE",
            &rg_path("Microsoft.Network/publicIPAddresses/lab-edge-1-ip"),
            vec![Reply::json(202, json!(null)).header(
                "azure-asyncoperation",
                &format!("{base}{}?api-version=2026-01-01", &op[1..]),
            )],
        );
        s.on(
            "GET",
            &op,
            vec![
                Reply::json(
                    429,
                    json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
                )
                .header("retry-after", "0"),
                Reply::json(200, json!({"status": "Succeeded"})),
            ],
        );
        let client = client_for(&base);
        client
            .execute(&call::public_ip_addresses_delete(&scope(), "lab-edge-1-ip"))
            .await
            .unwrap();
        assert_eq!(s.count("GET", &op), 2);
    }

    #[tokio::test]
    async fn puts_without_operation_headers_are_read_until_settled() {
        let s = script();
        let base = serve(s.clone()).await;
        let path = rg_path("Microsoft.Network/networkSecurityGroups/lab-sg");
        s.on(
            "PUT",
            &path,
            vec![Reply::json(
                200,
                json!({"name": "lab-sg", "properties": {"provisioningState": "Updating"}}),
            )],
        );
        s.on(
            "GET",
            &path,
            vec![
                Reply::json(
                    200,
                    json!({"name": "lab-sg", "properties": {"provisioningState": "Updating"}}),
                ),
                Reply::json(
                    200,
                    json!({"name": "lab-sg", "properties": {"provisioningState": "Succeeded"}}),
                ),
            ],
        );
        let client = client_for(&base);
        let v = client
            .execute(&call::network_security_groups_create(
                &scope(),
                "lab-sg",
                &[],
                &Tags::new(),
            ))
            .await
            .unwrap();
        assert_eq!(v.pointer("/properties/provisioningState").unwrap(), "Succeeded");
        assert_eq!(s.count("GET", &path), 2);
    }

    #[tokio::test]
    async fn polling_urls_elsewhere_get_no_token() {
        let s = script();
        let base = serve(s.clone()).await;
        s.on(
            "DELETE",
            &rg_path("Microsoft.Network/networkInterfaces/n"),
            vec![Reply::json(202, json!(null)).header("location", "https://attacker.example/steal")],
        );
        let client = client_for(&base);
        let e = client
            .execute(&call::network_interfaces_delete(&scope(), "n"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not sending credentials"), "{e}");
    }

    #[tokio::test]
    async fn a_401_renews_the_token_and_lists_follow_next_links() {
        let s = script();
        let base = serve(s.clone()).await;
        let list = rg_path("Microsoft.Network/publicIPAddresses");
        s.on("GET", &list, vec![
            Reply::json(401, json!({"error": {"code": "ExpiredAuthenticationToken", "message": "The access token expiry UTC time is earlier than current UTC time."}})),
            Reply::json(200, json!({"value": [{"name": "a"}], "nextLink": format!("{base}{}?api-version=2026-01-01&$skiptoken=p2", &list[1..])})),
            Reply::json(200, json!({"value": [{"name": "b"}]})),
        ]);
        let client = client_for(&base);
        let items = client.list(&call::public_ip_addresses_list(&scope())).await.unwrap();
        let names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.count("POST", &format!("/{TENANT}/oauth2/v2.0/token")), 2);
    }
}
