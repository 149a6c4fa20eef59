//! The accept loop: HTTP/1 and HTTP/2 on 127.0.0.1, one task per
//! connection, which a handler can drop without an answer (injected
//! timeouts) and which shut down gracefully with the server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::cinder::{UrlProject, strip_project};
use super::faults::ConnectionKill;

/// How long open connections get to finish when the server stops.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves `router` until `shutdown` turns true.
pub(crate) async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(serve_connection(stream, router, shutdown));
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let kill = Arc::new(Notify::new());
    let service_kill = kill.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let mut router = router.clone();
        req.extensions_mut().insert(ConnectionKill(service_kill.clone()));
        // Cinder URLs may carry the project id: route them without it.
        if let Some((path, project)) = strip_project(req.uri().path()) {
            let path_and_query = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = path_and_query.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                    req.extensions_mut().insert(UrlProject(project));
                }
            }
        }
        let req = req.map(Body::new);
        async move { tower_service::Service::call(&mut router, req).await }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        // An injected timeout: drop the connection, no answer.
        _ = kill.notified() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection.as_mut()).await;
        }
    }
}
