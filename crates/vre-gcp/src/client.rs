//! Sends [`ComputeCall`]s with a bearer token, decodes Google's error
//! answers, follows list pages, and waits on long-running operations.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::auth::TokenSource;
use crate::call::{self, ComputeCall, OperationScope};
use crate::error::GcpError;

/// Compute Engine's root URL; the API lives under `compute/v1/`.
pub const DEFAULT_ENDPOINT: &str = "https://compute.googleapis.com/";
/// The service path of the v1 API under the root URL.
pub const SERVICE_PATH: &str = "compute/v1/";

/// How operations are waited on: `operations.wait` blocks server-side for up
/// to two minutes; when it comes back early, the next call waits the
/// policy's delay first (1 s doubling up to 10 s by default).
pub use vre_cloud_kit::PollPolicy;

/// The policy Compute Engine waits by unless told otherwise.
pub fn default_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        factor: 2.0,
        timeout: Duration::from_secs(30 * 60),
    }
}

/// A long-running operation as the API reports it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    #[serde(default)]
    pub status: String,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub target_link: Option<String>,
    pub error: Option<OperationErrors>,
    pub http_error_status_code: Option<u16>,
    pub http_error_message: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OperationErrors {
    #[serde(default)]
    pub errors: Vec<OperationError>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OperationError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl Operation {
    /// The collection the operation lives in, from its `zone` / `region` URL.
    pub fn scope(&self) -> OperationScope {
        let last = |url: &str| url.rsplit('/').next().unwrap_or(url).to_string();
        match (&self.zone, &self.region) {
            (Some(z), _) if !z.is_empty() => OperationScope::Zone(last(z)),
            (_, Some(r)) if !r.is_empty() => OperationScope::Region(last(r)),
            _ => OperationScope::Global,
        }
    }

    pub fn is_done(&self) -> bool {
        self.status == "DONE"
    }

    /// `Err` when the finished operation carries `error.errors[]`.
    pub fn check(&self, purpose: &str) -> Result<(), GcpError> {
        let errors: Vec<(String, String)> = self
            .error
            .as_ref()
            .map(|e| e.errors.iter().map(|x| (x.code.clone(), x.message.clone())).collect())
            .unwrap_or_default();
        if errors.is_empty() {
            return Ok(());
        }
        Err(GcpError::Operation {
            operation: purpose.to_string(),
            name: self.name.clone(),
            errors,
            http_status: self.http_error_status_code,
        })
    }
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    error: Option<GoogleError>,
}

#[derive(Deserialize)]
struct GoogleError {
    message: Option<String>,
    status: Option<String>,
    #[serde(default)]
    errors: Vec<GoogleErrorItem>,
}

#[derive(Deserialize)]
struct GoogleErrorItem {
    reason: Option<String>,
}

pub(crate) use vre_cloud_kit::retry_after;
use vre_cloud_kit::send_with_bearer;

/// The Compute Engine API for one service account.
#[derive(Debug)]
pub struct ComputeClient {
    http: reqwest::Client,
    /// `<endpoint>compute/v1/`.
    base: String,
    tokens: TokenSource,
    poll: PollPolicy,
}

impl ComputeClient {
    /// `endpoint` is the root URL (`https://compute.googleapis.com/`).
    pub fn new(http: reqwest::Client, endpoint: &str, tokens: TokenSource) -> Self {
        let mut base = endpoint.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        base.push_str(SERVICE_PATH);
        ComputeClient {
            http,
            base,
            tokens,
            poll: default_poll(),
        }
    }

    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    pub fn poll(&self) -> &PollPolicy {
        &self.poll
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Sends one call and returns its JSON answer.
    pub async fn send(&self, call: &ComputeCall) -> Result<Value, GcpError> {
        let url = format!("{}{}", self.base, call.path());
        let method = reqwest::Method::from_bytes(call.verb.as_bytes()).map_err(|_| GcpError::Decode {
            operation: call.purpose.clone(),
            message: format!("bad HTTP verb {}", call.verb),
        })?;
        let build = |token: &str| {
            tracing::debug!(method = call.operation, %url, "compute request");
            let req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token)
                .query(&call.query);
            match &call.body {
                Some(b) => req.json(b),
                None => req,
            }
        };
        let transport = |source| GcpError::Transport {
            operation: call.purpose.clone(),
            source,
        };
        let answer = send_with_bearer(build, || self.tokens.token(), || self.tokens.invalidate(), transport).await?;
        if !(200..300).contains(&answer.status) {
            let retry = retry_after(&answer.headers);
            return Err(api_error(&call.purpose, answer.status, &answer.body, retry));
        }
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body).map_err(|e| GcpError::Decode {
            operation: call.purpose.clone(),
            message: format!("not JSON ({e})"),
        })
    }

    /// Like [`Self::send`], `None` when the resource does not exist (404).
    pub async fn get_opt(&self, call: &ComputeCall) -> Result<Option<Value>, GcpError> {
        match self.send(call).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a list call, following `nextPageToken`.
    pub async fn list(&self, call: &ComputeCall) -> Result<Vec<Value>, GcpError> {
        let mut out = Vec::new();
        let mut page = call.clone();
        loop {
            let v = self.send(&page).await?;
            if let Some(items) = v.get("items").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match v.get("nextPageToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => {
                    page = call.clone();
                    page.query.push(("pageToken", t.to_string()));
                }
                _ => return Ok(out),
            }
        }
    }

    /// Sends a call that starts an operation and waits until it is done;
    /// `Err` with the operation's `error.errors[]` when it failed.
    pub async fn execute(&self, call: &ComputeCall) -> Result<Operation, GcpError> {
        let v = self.send(call).await?;
        let op: Operation = serde_json::from_value(v).map_err(|e| GcpError::Decode {
            operation: call.purpose.clone(),
            message: format!("not an Operation ({e})"),
        })?;
        self.wait(op, &call.purpose).await
    }

    /// Waits on `op` with `operations.wait` (in its zone, region or global
    /// collection) until it is DONE, then checks its errors.
    pub async fn wait(&self, mut op: Operation, purpose: &str) -> Result<Operation, GcpError> {
        let project = self.project_of(&op);
        let started = Instant::now();
        let mut attempt = 0;
        while !op.is_done() {
            if started.elapsed() > self.poll.timeout {
                return Err(GcpError::OperationTimeout {
                    operation: purpose.to_string(),
                    name: op.name.clone(),
                    status: op.status.clone(),
                    after: self.poll.timeout,
                });
            }
            if attempt > 0 {
                tokio::time::sleep(self.poll.delay(attempt - 1, None)).await;
            }
            attempt += 1;
            let wait = call::operations_wait(&project, &op.scope(), &op.name);
            let v = self.send(&wait).await?;
            op = serde_json::from_value(v).map_err(|e| GcpError::Decode {
                operation: purpose.to_string(),
                message: format!("operations.wait did not answer an Operation ({e})"),
            })?;
        }
        op.check(purpose)?;
        Ok(op)
    }

    /// The project an operation belongs to (from its target link; the
    /// client's own project otherwise).
    fn project_of(&self, op: &Operation) -> String {
        op.target_link
            .as_deref()
            .and_then(|l| l.split("/projects/").nth(1).or_else(|| l.strip_prefix("projects/")))
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
            .unwrap_or_else(|| self.tokens.key().project_id.clone().unwrap_or_default())
    }
}

/// Decodes Google's JSON error (`{"error": {"code", "message", "errors": [{"reason"}]}}`).
fn api_error(purpose: &str, status: u16, body: &[u8], retry_after: Option<Duration>) -> GcpError {
    let parsed: Option<GoogleError> = serde_json::from_slice::<GoogleErrorBody>(body)
        .ok()
        .and_then(|b| b.error);
    let (message, reason) = match parsed {
        Some(e) => {
            let reason = e.errors.into_iter().find_map(|i| i.reason).or(e.status);
            (e.message.unwrap_or_else(|| "no message".into()), reason)
        }
        None => (
            String::from_utf8_lossy(body).chars().take(300).collect::<String>(),
            None,
        ),
    };
    GcpError::Api {
        operation: purpose.to_string(),
        status,
        reason,
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Location, instances_bulk_insert, instances_list, networks_get, networks_insert};
    use crate::scripted::{Reply, Script, client_for, serve, token_reply};
    use serde_json::json;

    const COMPUTE: &str = "https://www.googleapis.com/compute/v1/projects/vre-test-project";

    fn loc() -> Location {
        Location {
            project: "vre-test-project".into(),
            region: "europe-north1".into(),
            zone: "europe-north1-a".into(),
        }
    }

    /// An operation as Compute Engine reports it.
    fn zone_op(name: &str, status: &str) -> serde_json::Value {
        json!({
            "kind": "compute#operation",
            "id": "7127550864823803662",
            "name": name,
            "zone": format!("{COMPUTE}/zones/europe-north1-a"),
            "operationType": "bulkInsert",
            "targetLink": format!("{COMPUTE}/zones/europe-north1-a/instances/lab-service-1"),
            "status": status,
            "user": "vre@vre-test-project.iam.gserviceaccount.com",
            "progress": if status == "DONE" { 100 } else { 0 },
            "insertTime": "2025-01-01T10:00:00.000-08:00",
            "selfLink": format!("{COMPUTE}/zones/europe-north1-a/operations/{name}"),
        })
    }

    fn script_with_token() -> std::sync::Arc<Script> {
        let s = Script::new();
        s.on(
            "POST",
            "/token",
            vec![token_reply("ya29.test", 3599), token_reply("ya29.second", 3599)],
        );
        s
    }

    #[tokio::test]
    async fn zone_operations_are_waited_on_until_done() {
        let s = script_with_token();
        let op = "operation-1700000000000-5f0a1b2c3d4e5-6f7a8b9c-0d1e2f3a";
        s.on(
            "POST",
            "/compute/v1/projects/vre-test-project/zones/europe-north1-a/instances/bulkInsert",
            vec![Reply::json(200, zone_op(op, "PENDING"))],
        );
        let wait = format!("/compute/v1/projects/vre-test-project/zones/europe-north1-a/operations/{op}/wait");
        s.on(
            "POST",
            &wait,
            vec![
                Reply::json(200, zone_op(op, "RUNNING")),
                Reply::json(200, zone_op(op, "DONE")),
            ],
        );
        let client = client_for(&serve(s.clone()).await);
        let call = instances_bulk_insert(
            &loc(),
            &["lab-service-1".into()],
            json!({"machineType": "e2-small"}),
            "create".into(),
        );
        let done = client.execute(&call).await.unwrap();
        assert!(done.is_done());
        assert_eq!(s.count("POST", &wait), 2);
        let first = &s.seen()[1];
        assert_eq!(first.headers["authorization"], "Bearer ya29.test");
        let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(body["count"], "1");
        assert_eq!(body["perInstanceProperties"]["lab-service-1"], json!({}));
    }

    #[tokio::test]
    async fn failed_operations_surface_their_errors() {
        let s = script_with_token();
        let op = "operation-quota";
        let mut failed = zone_op(op, "DONE");
        failed["error"] = json!({"errors": [{
            "code": "QUOTA_EXCEEDED",
            "message": "Quota 'CPUS' exceeded.  Limit: 8.0 in region europe-north1.",
        }]});
        failed["httpErrorStatusCode"] = json!(403);
        failed["httpErrorMessage"] = json!("FORBIDDEN");
        s.on(
            "POST",
            "/compute/v1/projects/vre-test-project/zones/europe-north1-a/instances/bulkInsert",
            vec![Reply::json(200, zone_op(op, "RUNNING"))],
        );
        s.on(
            "POST",
            &format!("/compute/v1/projects/vre-test-project/zones/europe-north1-a/operations/{op}/wait"),
            vec![Reply::json(200, failed)],
        );
        let client = client_for(&serve(s.clone()).await);
        let call = instances_bulk_insert(
            &loc(),
            &["lab-service-1".into()],
            json!({}),
            "create 1 service instance(s)".into(),
        );
        let e = vre_core::Error::from(client.execute(&call).await.unwrap_err());
        let text = e.to_string();
        assert!(text.contains("QUOTA_EXCEEDED: Quota 'CPUS' exceeded."), "{text}");
        assert!(text.contains("create 1 service instance(s)"), "{text}");
        assert!(e.retry().is_none(), "quota errors are not retried");
    }

    #[tokio::test]
    async fn global_operations_use_the_global_collection() {
        let s = script_with_token();
        let op = json!({"kind": "compute#operation", "name": "operation-net", "status": "RUNNING",
                        "targetLink": format!("{COMPUTE}/global/networks/lab-net"), "operationType": "insert"});
        let mut done = op.clone();
        done["status"] = json!("DONE");
        s.on(
            "POST",
            "/compute/v1/projects/vre-test-project/global/networks",
            vec![Reply::json(200, op)],
        );
        s.on(
            "POST",
            "/compute/v1/projects/vre-test-project/global/operations/operation-net/wait",
            vec![Reply::json(200, done)],
        );
        let client = client_for(&serve(s.clone()).await);
        client
            .execute(&networks_insert(&loc(), "lab-net", "d", false))
            .await
            .unwrap();
        assert_eq!(
            s.count(
                "POST",
                "/compute/v1/projects/vre-test-project/global/operations/operation-net/wait"
            ),
            1
        );
    }

    #[tokio::test]
    async fn rate_limits_are_retriable_with_the_servers_delay() {
        let s = script_with_token();
        s.on("GET", "/compute/v1/projects/vre-test-project/global/networks/lab-net", vec![
            Reply::json(429, json!({"error": {"code": 429, "message": "Rate Limit Exceeded",
                "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "rateLimitExceeded"}]}}))
            .header("retry-after", "7"),
        ]);
        let client = client_for(&serve(s.clone()).await);
        let e = vre_core::Error::from(client.send(&networks_get(&loc(), "lab-net")).await.unwrap_err());
        assert_eq!(e.retry(), Some(Some(Duration::from_secs(7))));
        assert!(e.to_string().contains("HTTP 429: Rate Limit Exceeded"), "{e}");
    }

    #[tokio::test]
    async fn a_401_renews_the_token_once() {
        let s = script_with_token();
        s.on(
            "GET",
            "/compute/v1/projects/vre-test-project/global/networks/lab-net",
            vec![
                Reply::json(
                    401,
                    json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED"}}),
                ),
                Reply::json(200, json!({"name": "lab-net"})),
            ],
        );
        let client = client_for(&serve(s.clone()).await);
        let v = client.send(&networks_get(&loc(), "lab-net")).await.unwrap();
        assert_eq!(v["name"], "lab-net");
        assert_eq!(s.count("POST", "/token"), 2);
        let last = s.seen().into_iter().last().unwrap();
        assert_eq!(last.headers["authorization"], "Bearer ya29.second");
    }

    #[tokio::test]
    async fn not_found_is_none_and_lists_follow_pages() {
        let s = script_with_token();
        s.on("GET", "/compute/v1/projects/vre-test-project/global/networks/gone", vec![Reply::json(
            404,
            json!({"error": {"code": 404, "message": "The resource 'projects/vre-test-project/global/networks/gone' was not found",
                   "errors": [{"message": "not found", "domain": "global", "reason": "notFound"}]}}),
        )]);
        s.on(
            "GET",
            "/compute/v1/projects/vre-test-project/zones/europe-north1-a/instances",
            vec![
                Reply::json(
                    200,
                    json!({"kind": "compute#instanceList", "items": [{"name": "a"}], "nextPageToken": "p2"}),
                ),
                Reply::json(200, json!({"kind": "compute#instanceList", "items": [{"name": "b"}]})),
            ],
        );
        let client = client_for(&serve(s.clone()).await);
        assert!(client.get_opt(&networks_get(&loc(), "gone")).await.unwrap().is_none());
        let items = client
            .list(&instances_list(&loc(), "labels.vre-cluster = \"lab\""))
            .await
            .unwrap();
        let names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let pages: Vec<String> = s
            .seen()
            .iter()
            .filter(|r| r.path.ends_with("/instances"))
            .map(|r| r.query.clone().unwrap_or_default())
            .collect();
        assert!(pages[0].starts_with("filter=labels.vre-cluster"), "{pages:?}");
        assert!(pages[1].contains("pageToken=p2"), "{pages:?}");
    }

    #[tokio::test]
    async fn operations_that_never_finish_time_out() {
        let s = script_with_token();
        let op = "operation-slow";
        s.on(
            "POST",
            "/compute/v1/projects/vre-test-project/zones/europe-north1-a/instances/bulkInsert",
            vec![Reply::json(200, zone_op(op, "RUNNING"))],
        );
        s.on(
            "POST",
            &format!("/compute/v1/projects/vre-test-project/zones/europe-north1-a/operations/{op}/wait"),
            vec![Reply::json(200, zone_op(op, "RUNNING"))],
        );
        let client = client_for(&serve(s.clone()).await).with_poll(PollPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            factor: 2.0,
            timeout: Duration::from_millis(30),
        });
        let call = instances_bulk_insert(&loc(), &["x".into()], json!({}), "create".into());
        let e = vre_core::Error::from(client.execute(&call).await.unwrap_err());
        assert!(matches!(e, vre_core::Error::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("operation-slow"), "{e}");
    }
}
