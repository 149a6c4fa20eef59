//! The HTTPS front of a simulated cluster: TLS with the cluster CA (and
//! client certificates verified against it), HTTP/1.1 and HTTP/2, the
//! simulator's latency/jitter/rate-limit knobs, authentication and RBAC,
//! content negotiation (JSON, YAML, Table, PartialObjectMetadata), and the
//! routing of the Kubernetes REST paths onto the registry.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch as signal;

use super::auth::{self, Attributes, Credential, User};
use super::catalog::ResourceType;
use super::cluster::Cluster;
use super::openapi;
use super::registry::{DeleteOptions, Deleted, ListOptions, PatchKind, Target, WriteContext};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::table::{IncludeObject, table};
use super::watch::{self, WatchOptions};
use crate::{RateLimit, SimConfig, SimStats};

/// The largest request body the real API server accepts (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A token bucket for the per-endpoint rate limit.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, limit: &RateLimit) -> Result<(), Duration> {
        let capacity = f64::from(limit.burst.max(1));
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.saturating_duration_since(self.last).as_secs_f64() * limit.per_second.max(0.0))
        .min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if limit.per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second))
    }
}

/// What every request of one API server shares.
pub struct ServerContext {
    pub cluster: Arc<Cluster>,
    pub config: Arc<SimConfig>,
    pub stats: Arc<SimStats>,
    /// `IP:port` clients are told to use (`/api` serverAddressByClientCIDRs).
    pub advertise: String,
    bucket: Mutex<Bucket>,
}

impl ServerContext {
    pub fn new(cluster: Arc<Cluster>, config: Arc<SimConfig>, stats: Arc<SimStats>, advertise: String) -> Self {
        let burst = config.rate_limit.map_or(1, |r| r.burst.max(1));
        ServerContext {
            cluster,
            config,
            stats,
            advertise,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
            }),
        }
    }
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    stop: signal::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("addr", &self.addr).finish()
    }
}

impl ApiServer {
    /// Stops accepting, closes open connections (watches end), waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves the cluster's API on a bound listener. Must be called within a
/// Tokio runtime.
pub fn start(
    ctx: Arc<ServerContext>,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<ApiServer> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = signal::channel(false);
    let task = tokio::spawn(accept_loop(
        ctx,
        listener,
        tokio_rustls::TlsAcceptor::from(tls),
        stopped,
    ));
    Ok(ApiServer { addr, stop, task })
}

async fn accept_loop(
    ctx: Arc<ServerContext>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mut stopped: signal::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let ctx = ctx.clone();
                let acceptor = acceptor.clone();
                let mut conn_stopped = stopped.clone();
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| super::pki::client_identity(c))
                        .map(|(common_name, organizations)| Credential::ClientCert { common_name, organizations })
                        .unwrap_or(Credential::None);
                    let service = hyper::service::service_fn(move |req| {
                        let ctx = ctx.clone();
                        let cert = cert.clone();
                        async move { Ok::<_, Infallible>(handle(ctx, cert, req).await) }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = conn_stopped.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Request-scoped facts.
struct Call {
    method: Method,
    path: String,
    query: HashMap<String, Vec<String>>,
    accept: String,
    content_type: String,
    user_agent: String,
}

impl Call {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).and_then(|v| v.last()).map(String::as_str)
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("1" | "true" | "True"))
    }

    /// `fieldValidation`: Strict refuses undeclared fields; Warn and Ignore
    /// (and no value) drop them.
    fn strict(&self) -> Result<bool, ApiError> {
        match self.q("fieldValidation") {
            None | Some("" | "Ignore" | "Warn") => Ok(false),
            Some("Strict") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None => Ok(false),
            Some(v) if v.iter().all(|x| x == "All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {:?}: supported values: \"All\"",
                v.join(",")
            ))),
        }
    }
}

async fn handle(ctx: Arc<ServerContext>, cert: Credential, req: Request<Incoming>) -> Response<Body> {
    ctx.stats.kube.fetch_add(1, Ordering::Relaxed);
    if let Some(limit) = &ctx.config.rate_limit {
        let verdict = ctx.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(limit);
        if let Err(wait) = verdict {
            ctx.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            ctx.stats.injected_faults.fetch_add(1, Ordering::Relaxed);
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            return error_response(&ApiError::too_many_requests(
                format!("Too many requests, please try again later ({seconds}s)."),
                seconds,
            ));
        }
    }
    let delay = ctx
        .config
        .scaled(ctx.config.latency + ctx.config.jitter.mul_f64(fastrand::f64()));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if ctx.cluster.is_stopped() {
        return error_response(&ApiError::service_unavailable("the API server is shutting down"));
    }
    match serve(&ctx, cert, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    if let Some(s) = e.details.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// How the client wants objects rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Json,
    Yaml,
    Table(IncludeObject),
    Metadata,
}

fn negotiate(accept: &str, include: Option<&str>) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    let mut plain = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: HashMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        let json_like = matches!(media, "application/json" | "*/*" | "application/*");
        if json_like && params.get("g") == Some(&"meta.k8s.io") {
            match params.get("as") {
                Some(&"Table") if matches!(params.get("v"), Some(&"v1") | Some(&"v1beta1")) => {
                    return Ok(Output::Table(IncludeObject::parse(include)));
                }
                Some(&"PartialObjectMetadata") | Some(&"PartialObjectMetadataList") => return Ok(Output::Metadata),
                _ => continue,
            }
        }
        if plain.is_none() {
            plain = match media {
                "application/json" | "*/*" | "application/*" => Some(Output::Json),
                "application/yaml" => Some(Output::Yaml),
                _ => None,
            };
        }
    }
    plain.ok_or_else(|| ApiError::not_acceptable(accept))
}

fn respond(code: StatusCode, v: &Value, output: Output) -> Response<Body> {
    let (body, ct) = match output {
        Output::Yaml => (
            serde_yaml::to_string(v).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
        _ => (serde_json::to_vec(v).unwrap_or_default(), "application/json"),
    };
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    r
}

fn text(code: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full(s.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// A parsed resource path.
struct ResourcePath {
    rt: Arc<ResourceType>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

enum Route {
    Version,
    Health(&'static str),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String, String),
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Resource(ResourcePath),
}

impl Route {
    fn attributes(&self, call: &Call) -> Attributes {
        match self {
            Route::Resource(p) => {
                let verb = match call.method {
                    Method::GET | Method::HEAD => {
                        if p.legacy_watch || call.flag("watch") {
                            "watch"
                        } else if p.name.is_some() {
                            "get"
                        } else {
                            "list"
                        }
                    }
                    Method::POST => "create",
                    Method::PUT => "update",
                    Method::PATCH => "patch",
                    Method::DELETE => {
                        if p.name.is_some() {
                            "delete"
                        } else {
                            "deletecollection"
                        }
                    }
                    _ => "",
                };
                Attributes::Resource {
                    verb: verb.to_string(),
                    group: p.rt.group.clone(),
                    resource: p.rt.plural.clone(),
                    subresource: p.subresource.clone().unwrap_or_default(),
                    namespace: p.namespace.clone().unwrap_or_default(),
                    name: p.name.clone().unwrap_or_default(),
                }
            }
            _ => Attributes::NonResource {
                verb: call.method.as_str().to_lowercase().replace("head", "get"),
                path: call.path.clone(),
            },
        }
    }
}

fn route(cluster: &Cluster, path: &str) -> Result<Route, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz"] => return Ok(Route::Health("healthz")),
        ["livez"] => return Ok(Route::Health("livez")),
        ["readyz"] => return Ok(Route::Health("readyz")),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Index),
        ["openapi", "v3", "api", v] => return Ok(Route::OpenApiV3(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => return Ok(Route::OpenApiV3(g.to_string(), v.to_string())),
        ["api"] => return Ok(Route::ApiVersions),
        ["apis"] => return Ok(Route::GroupList),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["api", v] => return Ok(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Route::ResourceList(g.to_string(), v.to_string())),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let resolve = |plural: &str| cluster.resolve(group, version, plural).ok_or_else(ApiError::no_route);
    let (rt, namespace, name, sub) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => (
            resolve("namespaces")?,
            None,
            Some(ns.to_string()),
            Some(sub.to_string()),
        ),
        ["namespaces", ns, plural, tail @ ..] => {
            let rt = resolve(plural)?;
            if !rt.namespaced {
                return Err(ApiError::no_route());
            }
            match tail {
                [] => (rt, Some(ns.to_string()), None, None),
                [name] => (rt, Some(ns.to_string()), Some(name.to_string()), None),
                [name, sub] => (rt, Some(ns.to_string()), Some(name.to_string()), Some(sub.to_string())),
                _ => return Err(ApiError::no_route()),
            }
        }
        [plural, tail @ ..] => {
            let rt = resolve(plural)?;
            match tail {
                [] => (rt, None, None, None),
                [name] | [name, _] if rt.namespaced => {
                    let _ = name;
                    return Err(ApiError::no_route());
                }
                [name] => (rt, None, Some(name.to_string()), None),
                [name, sub] => (rt, None, Some(name.to_string()), Some(sub.to_string())),
                _ => return Err(ApiError::no_route()),
            }
        }
        [] => return Err(ApiError::no_route()),
    };
    if let Some(s) = &sub {
        let v = rt.version(version);
        let ok = match s.as_str() {
            "status" => v.is_some_and(|v| v.status),
            "scale" => v.is_some_and(|v| v.scale.is_some()),
            "eviction" => rt.eviction,
            "finalize" => rt.group.is_empty() && rt.plural == "namespaces",
            _ => false,
        };
        if !ok || legacy_watch {
            return Err(ApiError::no_route());
        }
    }
    Ok(Route::Resource(ResourcePath {
        rt,
        version: version.to_string(),
        namespace,
        name,
        subresource: sub,
        legacy_watch,
    }))
}

fn parse_query(q: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::request_entity_too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!("cannot read the request body: {e}"))),
    }
}

/// Decodes a JSON or YAML request body.
fn decode(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" | "*/*" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}"))),
        "application/merge-patch+json" | "application/json-patch+json" | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(bytes),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

fn field_manager(call: &Call, required: bool) -> Result<String, ApiError> {
    match call.q("fieldManager") {
        Some(m) if !m.is_empty() => {
            if m.len() > 128 || m.chars().any(|c| c.is_control()) {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![super::status::Cause::invalid(
                        "fieldManager",
                        format!("Invalid value: {m:?}: must be at most 128 printable characters"),
                    )],
                ));
            }
            Ok(m.to_string())
        }
        _ if required => {
            let mut e = ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![super::status::Cause::new(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                )],
            );
            e.details.name = None;
            Err(e)
        }
        // As the real server: the user agent's product name.
        _ => Ok(call
            .user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()),
    }
}

fn list_options(call: &Call, rt: &ResourceType) -> Result<ListOptions, ApiError> {
    let labels = match call.q("labelSelector") {
        Some(s) => LabelSelector::parse(s)?,
        None => LabelSelector::everything(),
    };
    let fields = match call.q("fieldSelector") {
        Some(s) => FieldSelector::parse(s, &rt.key(), rt.custom)?,
        None => FieldSelector::default(),
    };
    let limit = match call.q("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}: must be a non-negative integer")))?,
        ),
        None => None,
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token: call.q("continue").filter(|c| !c.is_empty()).map(str::to_string),
    })
}

fn metadata_only(obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

async fn serve(ctx: &Arc<ServerContext>, cert: Credential, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let (parts, body) = req.into_parts();
    let header = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let call = Call {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query()),
        accept: header(header::ACCEPT),
        content_type: header(header::CONTENT_TYPE),
        user_agent: header(header::USER_AGENT),
    };
    // Authentication: a verified client certificate, else a bearer token.
    let cred = match (&cert, header(header::AUTHORIZATION)) {
        (Credential::ClientCert { .. }, _) => cert.clone(),
        (_, a) if !a.is_empty() => match a.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Credential::Bearer(token.trim().to_string())
            }
            _ => return Err(ApiError::unauthorized()),
        },
        _ => Credential::None,
    };
    let cluster = ctx.cluster.clone();
    let user = auth::authenticate(&cluster.lock(), &cluster.meta.admin_token, &cred)?;
    let route = route(&cluster, &call.path);
    let attrs = match &route {
        Ok(r) => r.attributes(&call),
        Err(_) => Attributes::NonResource {
            verb: "get".into(),
            path: call.path.clone(),
        },
    };
    if !auth::authorize(&cluster.lock(), &user, &attrs) {
        return Err(attrs.forbidden(&user));
    }
    let route = route?;
    let k8s_version = cluster.meta.kubernetes_version.clone();
    match route {
        Route::Version => {
            let v = k8s_version.trim_start_matches('v');
            let mut parts = v.split('.');
            let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
            Ok(respond(
                StatusCode::OK,
                &json!({
                    "major": major, "minor": minor,
                    "emulationMajor": major, "emulationMinor": minor,
                    "minCompatibilityMajor": major, "minCompatibilityMinor": minor,
                    "gitVersion": k8s_version,
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "go1.24.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }),
                Output::Json,
            ))
        }
        Route::Health(what) => {
            if call.q("verbose").is_some() {
                let checks = [
                    "ping",
                    "log",
                    "etcd",
                    "poststarthook/start-apiextensions-controllers",
                    "poststarthook/bootstrap-controller",
                ];
                let mut s: String = checks.iter().map(|c| format!("[+]{c} ok\n")).collect();
                s.push_str(&format!("{what} check passed\n"));
                Ok(text(StatusCode::OK, &s))
            } else {
                Ok(text(StatusCode::OK, "ok"))
            }
        }
        Route::OpenApiV2 => {
            // the real server sends the protobuf as http.ServeContent sniffs it
            if call.accept.contains(openapi::V2_PROTOBUF) {
                let mut r = Response::new(full(openapi::v2_document_protobuf(&k8s_version)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(r)
            } else {
                let output = negotiate(&call.accept, None)?;
                Ok(respond(StatusCode::OK, &openapi::v2_document(&k8s_version), output))
            }
        }
        Route::OpenApiV3Index => Ok(respond(
            StatusCode::OK,
            &openapi::index(&cluster.catalog(), &k8s_version),
            Output::Json,
        )),
        Route::OpenApiV3(g, v) => {
            let doc = openapi::group_version_document(&cluster.catalog(), &g, &v, &k8s_version)
                .ok_or_else(ApiError::no_route)?;
            Ok(respond(StatusCode::OK, &doc, Output::Json))
        }
        Route::ApiVersions => Ok(respond(
            StatusCode::OK,
            &cluster.catalog().api_versions(&ctx.advertise),
            Output::Json,
        )),
        Route::GroupList => Ok(respond(
            StatusCode::OK,
            &cluster.catalog().api_group_list(),
            Output::Json,
        )),
        Route::Group(g) => Ok(respond(
            StatusCode::OK,
            &cluster.catalog().api_group(&g).ok_or_else(ApiError::no_route)?,
            Output::Json,
        )),
        Route::ResourceList(g, v) => {
            if g.is_empty() && v != "v1" {
                return Err(ApiError::no_route());
            }
            Ok(respond(
                StatusCode::OK,
                &cluster.catalog().resource_list(&g, &v).ok_or_else(ApiError::no_route)?,
                Output::Json,
            ))
        }
        Route::Resource(p) => resource(ctx, &call, &user, p, body).await,
    }
}

async fn resource(
    ctx: &Arc<ServerContext>,
    call: &Call,
    user: &User,
    p: ResourcePath,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let cluster = ctx.cluster.clone();
    let rt = p.rt.clone();
    let version = p.version.as_str();
    let ns = p.namespace.clone().unwrap_or_default();
    let output = negotiate(&call.accept, call.q("includeObject"))?;
    let sub = p.subresource.as_deref();
    let dry_run = call.dry_run()?;
    match (call.method.clone(), p.name.clone(), sub) {
        // Reads.
        (Method::GET, None, None) => {
            if rt.create_only {
                return Err(ApiError::method_not_allowed("GET"));
            }
            let opts = list_options(call, &rt)?;
            if p.legacy_watch || call.flag("watch") {
                return watch_response(ctx, call, rt.clone(), version, p.namespace.clone(), opts, output);
            }
            list_response(&cluster, &rt, version, p.namespace.as_deref(), &opts, output)
        }
        (Method::GET, Some(name), None) => {
            if p.legacy_watch || call.flag("watch") {
                // A watch of one object: a field selector on its name.
                let mut opts = list_options(call, &rt)?;
                opts.fields.requirements.push(super::selector::FieldRequirement {
                    field: "metadata.name".into(),
                    value: name,
                    negated: false,
                });
                return watch_response(ctx, call, rt.clone(), version, p.namespace.clone(), opts, output);
            }
            let obj = cluster.get(&rt, version, &ns, &name)?;
            Ok(render_one(&rt, version, &obj, output, StatusCode::OK))
        }
        (Method::GET, Some(name), Some("status")) => {
            let obj = cluster.get(&rt, version, &ns, &name)?;
            Ok(render_one(&rt, version, &obj, output, StatusCode::OK))
        }
        (Method::GET, Some(name), Some("scale")) => Ok(respond(
            StatusCode::OK,
            &cluster.get_scale(&rt, version, &ns, &name)?,
            Output::Json,
        )),

        // Create.
        (Method::POST, None, None) => {
            let body = decode(&read_body(body).await?, &call.content_type)?;
            if rt.create_only {
                return Ok(respond(
                    StatusCode::CREATED,
                    &review(&cluster, user, &rt, body)?,
                    Output::Json,
                ));
            }
            let ctxw = WriteContext {
                manager: field_manager(call, false)?,
                dry_run,
                strict: call.strict()?,
            };
            let obj = cluster.create(&rt, version, &ns, body, &ctxw)?;
            Ok(render_one(&rt, version, &obj, output, StatusCode::CREATED))
        }
        (Method::POST, Some(name), Some("eviction")) => {
            let raw = read_body(body).await?;
            let body = if raw.is_empty() {
                json!({})
            } else {
                decode(&raw, &call.content_type)?
            };
            if let Some(kind) = body.get("kind").and_then(Value::as_str)
                && kind != "Eviction"
            {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind (Eviction)"
                )));
            }
            Ok(respond(
                StatusCode::CREATED,
                &cluster.evict(&ns, &name, &body)?,
                Output::Json,
            ))
        }

        // Update.
        (Method::PUT, Some(name), None | Some("status")) => {
            let body = decode(&read_body(body).await?, &call.content_type)?;
            let ctxw = WriteContext {
                manager: field_manager(call, false)?,
                dry_run,
                strict: call.strict()?,
            };
            let obj = cluster.replace(
                Target {
                    rt: &rt,
                    version,
                    namespace: &ns,
                    name: &name,
                },
                body,
                sub == Some("status"),
                &ctxw,
            )?;
            Ok(render_one(&rt, version, &obj, output, StatusCode::OK))
        }
        (Method::PUT, Some(name), Some("finalize")) => {
            let body = decode(&read_body(body).await?, &call.content_type)?;
            let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            let updated = cluster
                .mutate(
                    ("", "namespaces"),
                    "",
                    &name,
                    false,
                    &field_manager(call, false)?,
                    |v| {
                        v["spec"]["finalizers"] = finalizers;
                    },
                )?
                .ok_or_else(|| ApiError::not_found("", "namespaces", &name))?;
            Ok(render_one(&rt, version, &updated, output, StatusCode::OK))
        }
        (Method::PUT, Some(name), Some("scale")) => {
            let body = decode(&read_body(body).await?, &call.content_type)?;
            let ctxw = WriteContext {
                manager: field_manager(call, false)?,
                dry_run,
                strict: call.strict()?,
            };
            Ok(respond(
                StatusCode::OK,
                &cluster.set_scale(
                    Target {
                        rt: &rt,
                        version,
                        namespace: &ns,
                        name: &name,
                    },
                    body,
                    None,
                    &ctxw,
                )?,
                Output::Json,
            ))
        }

        // Patch.
        (Method::PATCH, Some(name), None | Some("status") | Some("scale")) => {
            let kind = PatchKind::from_content_type(&call.content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(
                    call.content_type.as_str(),
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                        "application/strategic-merge-patch+json",
                    ],
                )
            })?;
            let force = match call.q("force") {
                None => false,
                Some(_) if kind != PatchKind::Apply => {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        vec![super::status::Cause::new(
                            "FieldValueForbidden",
                            "force",
                            "Forbidden: may not be specified for non-apply patch",
                        )],
                    ));
                }
                Some(v) => v == "true" || v == "1",
            };
            let manager = field_manager(call, kind == PatchKind::Apply)?;
            let body = decode(&read_body(body).await?, &call.content_type)?;
            let ctxw = WriteContext {
                manager,
                dry_run,
                strict: call.strict()?,
            };
            if sub == Some("scale") {
                return Ok(respond(
                    StatusCode::OK,
                    &cluster.set_scale(
                        Target {
                            rt: &rt,
                            version,
                            namespace: &ns,
                            name: &name,
                        },
                        body,
                        Some(kind),
                        &ctxw,
                    )?,
                    Output::Json,
                ));
            }
            let target = Target {
                rt: &rt,
                version,
                namespace: &ns,
                name: &name,
            };
            let written = cluster.patch(target, kind, body, sub == Some("status"), force, &ctxw)?;
            let code = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(render_one(&rt, version, &written.object, output, code))
        }

        // Delete.
        (Method::DELETE, Some(name), None) => {
            let opts = delete_options(call, body).await?;
            match cluster.delete(&rt, version, &ns, &name, &opts)? {
                Deleted::Now(v) => Ok(respond(StatusCode::OK, &v, plain(output))),
                Deleted::Pending(o) => Ok(render_one(&rt, version, &o, output, StatusCode::OK)),
            }
        }
        (Method::DELETE, None, None) => {
            if !rt.verbs.iter().any(|v| v == "deletecollection") {
                return Err(ApiError::method_not_allowed("DELETE"));
            }
            let lopts = list_options(call, &rt)?;
            let opts = delete_options(call, body).await?;
            let items = cluster.delete_collection(&rt, version, p.namespace.as_deref(), &lopts, &opts)?;
            let rv = cluster.lock().store.resource_version();
            Ok(respond(
                StatusCode::OK,
                &json!({"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
                plain(output),
            ))
        }
        (m, _, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn plain(o: Output) -> Output {
    if o == Output::Yaml { Output::Yaml } else { Output::Json }
}

async fn delete_options(call: &Call, body: Incoming) -> ApiResult<DeleteOptions> {
    let raw = read_body(body).await?;
    let mut opts = if raw.is_empty() {
        DeleteOptions::default()
    } else {
        DeleteOptions::from_body(&decode(&raw, &call.content_type)?)
    };
    if let Some(p) = call.q("propagationPolicy") {
        opts.propagation = Some(p.to_string());
    }
    if let Some(p) = &opts.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![super::status::Cause::new(
                "FieldValueNotSupported",
                "propagationPolicy",
                format!(
                    "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            )],
        ));
    }
    if let Some(g) = call.q("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(o) = call.q("orphanDependents")
        && opts.propagation.is_none()
    {
        opts.propagation = Some(if o == "true" { "Orphan" } else { "Background" }.to_string());
    }
    opts.dry_run |= call.dry_run()?;
    Ok(opts)
}

fn render_one(rt: &ResourceType, version: &str, obj: &Arc<Value>, output: Output, code: StatusCode) -> Response<Body> {
    match output {
        Output::Table(include) => {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            respond(
                code,
                &table(
                    rt,
                    version,
                    std::slice::from_ref(obj),
                    include,
                    json!({"resourceVersion": rv}),
                ),
                Output::Json,
            )
        }
        Output::Metadata => respond(code, &metadata_only(obj), Output::Json),
        other => respond(code, obj, other),
    }
}

fn list_response(
    cluster: &Cluster,
    rt: &ResourceType,
    version: &str,
    ns: Option<&str>,
    opts: &ListOptions,
    output: Output,
) -> ApiResult<Response<Body>> {
    let page = cluster.list(rt, version, ns, opts)?;
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    match output {
        Output::Table(include) => Ok(respond(
            StatusCode::OK,
            &table(rt, version, &page.items, include, meta),
            Output::Json,
        )),
        Output::Metadata => {
            let items: Vec<Value> = page.items.iter().map(|o| metadata_only(o)).collect();
            Ok(respond(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
                Output::Json,
            ))
        }
        Output::Yaml => {
            let items: Vec<&Value> = page.items.iter().map(|o| &**o).collect();
            Ok(respond(
                StatusCode::OK,
                &json!({"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta, "items": items}),
                Output::Yaml,
            ))
        }
        Output::Json => {
            // Serialized item by item: no copy of the objects.
            let mut out = Vec::with_capacity(128 + page.items.len() * 1024);
            out.extend_from_slice(
                format!(
                    "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                    json!(rt.list_kind),
                    json!(rt.api_version(version)),
                    meta
                )
                .as_bytes(),
            );
            for (i, o) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &**o)
                    .map_err(|e| ApiError::internal(format!("cannot encode an object: {e}")))?;
            }
            out.extend_from_slice(b"]}");
            let mut r = Response::new(full(out));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
            Ok(r)
        }
    }
}

fn watch_response(
    ctx: &Arc<ServerContext>,
    call: &Call,
    rt: Arc<ResourceType>,
    version: &str,
    namespace: Option<String>,
    list: ListOptions,
    output: Output,
) -> ApiResult<Response<Body>> {
    let timeout = match call.q("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        // The real server picks 30-60 minutes.
        None => Duration::from_secs(1800 + fastrand::u64(0..1800)),
    };
    let send_initial_events = call.flag("sendInitialEvents");
    if send_initial_events && call.q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![super::status::Cause::new(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let table_mode = match output {
        Output::Table(i) => Some(i),
        _ => None,
    };
    let opts = WatchOptions {
        list,
        namespace,
        resource_version: call.q("resourceVersion").map(str::to_string),
        send_initial_events,
        bookmarks: call.flag("allowWatchBookmarks"),
        timeout,
        table: table_mode,
    };
    let rx = watch::start(ctx.cluster.clone(), rt, version, opts)?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(r)
}

/// SelfSubjectAccessReview / SubjectAccessReview / SelfSubjectReview.
fn review(cluster: &Cluster, user: &User, rt: &ResourceType, mut body: Value) -> ApiResult<Value> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the review must be a JSON object"));
    }
    body["apiVersion"] = json!(rt.api_version(rt.storage_version()));
    body["kind"] = json!(rt.kind);
    let st = cluster.lock();
    match rt.plural.as_str() {
        "selfsubjectaccessreviews" => {
            let spec = body.get("spec").cloned().unwrap_or(json!({}));
            body["status"] = auth::access_review(&st, user, &spec);
        }
        "subjectaccessreviews" => {
            let spec = body.get("spec").cloned().unwrap_or(json!({}));
            let subject = User {
                name: spec.get("user").and_then(Value::as_str).unwrap_or("").to_string(),
                uid: spec.get("uid").and_then(Value::as_str).unwrap_or("").to_string(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            };
            body["status"] = auth::access_review(&st, &subject, &spec);
        }
        "selfsubjectreviews" => {
            body["status"] = json!({"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups}});
        }
        _ => return Err(ApiError::method_not_allowed("POST")),
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_tables_when_offered() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(kubectl, None).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(negotiate("application/json", None).unwrap(), Output::Json);
        assert_eq!(negotiate("", None).unwrap(), Output::Json);
        assert_eq!(negotiate("application/yaml", None).unwrap(), Output::Yaml);
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", None).unwrap(),
            Output::Metadata
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf", None).unwrap_err().code,
            406
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf,application/json", None).unwrap(),
            Output::Json
        );
    }

    #[test]
    fn bodies_decode_by_media_type() {
        assert_eq!(decode(b"{\"a\":1}", "application/json").unwrap()["a"], 1);
        assert_eq!(decode(b"a: 1\n", "application/apply-patch+yaml").unwrap()["a"], 1);
        // Protobuf bodies must carry the k8s envelope; CBOR is not spoken.
        assert_eq!(
            decode(b"x", "application/vnd.kubernetes.protobuf").unwrap_err().code,
            400
        );
        assert_eq!(decode(b"x", "application/cbor").unwrap_err().code, 415);
        assert_eq!(decode(b"{", "application/json").unwrap_err().code, 400);
    }
}
