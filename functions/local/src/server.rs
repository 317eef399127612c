//! The HTTP host: hyper over TCP, mounting the one router.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use runledger::api::problem::Problem;
use runledger::api::{MAX_BODY_BYTES, Router};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Bodies up to this size are read and dropped before a `413`, so the client sees the
/// answer instead of a reset connection; beyond it the connection is closed.
const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then lets in-flight requests finish (up to a grace
/// period). Every response is sent after its write committed, so nothing acknowledged is lost.
pub async fn serve(listener: TcpListener, router: Arc<Router>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
                let _ = stream.set_nodelay(true);
                let router = Arc::clone(&router);
                let service = service_fn(move |request| handle(Arc::clone(&router), request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
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

async fn handle(
    router: Arc<Router>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
            let _ = Limited::new(body, DRAIN_LIMIT).collect().await;
        }
        return Ok(Problem::too_large(MAX_BODY_BYTES)
            .into_response()
            .map(Full::new));
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(Problem::too_large(MAX_BODY_BYTES)
                .into_response()
                .map(Full::new));
        }
        Err(_) => {
            let problem = Problem::new(
                http::StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            );
            return Ok(problem.into_response().map(Full::new));
        }
    };
    let response = router.handle(Request::from_parts(parts, bytes)).await;
    Ok(response.map(Full::new))
}
