//! The HTTP host: HTTP/1.1 over TCP, serving the one router's tower service.
//!
//! hyper-util rather than `axum::serve`: axum's server has no timer (so no header-read
//! time-out) and no connection limit, and a local server must survive clients that open
//! connections and never finish a request.

use axum::body::Body;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use runledger::api::problem::Problem;
use runledger::api::{self, MAX_BODY_BYTES, Router};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Bodies up to this size are read and dropped before a `413`, so the client sees the
/// answer instead of a reset connection; beyond it the connection is closed.
const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A connection must send a whole request head within this, also between keep-alive requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; one more is answered `503` and closed at once.
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish (up to a grace
/// period). Every response is sent after its write committed, so nothing acknowledged is lost.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let service = router.service();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // hyper's `service_fn` borrows: one clone of the service per request, in `answer`.
                let service = service.clone();
                let hyper_service =
                    hyper::service::service_fn(move |request| answer(service.clone(), request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .serve_connection(TokioIo::new(stream), hyper_service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("some connections did not close in time"),
    }
}

/// Over the connection limit: a `503` problem, then the connection is closed.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::to_string(&*Problem::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server has too many open connections; retry later",
    ))
    .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        api::problem::PROBLEM_JSON,
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A body declared larger than the limit is refused before routing; one that only turns out
/// larger is refused by the router's body limit.
async fn answer(
    service: api::Service,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
            let _ = Limited::new(request.into_body(), DRAIN_LIMIT)
                .collect()
                .await;
        }
        return Ok(axum::response::IntoResponse::into_response(
            Problem::too_large(MAX_BODY_BYTES),
        ));
    }
    service.oneshot(request.map(Body::new)).await
}
