//! The HTTP host: HTTP/1.1 over TCP, serving the one router's tower service.
//!
//! hyper-util rather than `axum::serve`: axum's server has no timer (so no header-read
//! time-out) and no connection limit, and a local server must survive clients that open
//! connections and never finish a request.

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use runledger::api::problem::Problem;
use runledger::api::{self, MAX_BODY_BYTES, Router};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Bodies up to this size are read and dropped before a `413`, so the client sees the
/// answer instead of a reset connection; beyond it the connection is closed.
const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
const _: () = assert!(DRAIN_LIMIT > api::MAX_IMPORT_BYTES);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A connection must send a whole request head within this, also between keep-alive requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections served at once, whatever the open-file limit allows.
pub const MAX_CONNECTIONS: usize = 1024;
/// The fewest the cap is lowered to however low the open-file limit (the server would be
/// useless with fewer; such a limit is reported at start).
pub const MIN_CONNECTIONS: usize = 16;
/// Connections over the cap held at once: each waits for the place of an idle connection it
/// closed, or is being answered `503`. Beyond these a new connection is closed at once, so
/// that refusing never takes more descriptors than this.
const SPARE_CONNECTIONS: usize = 32;
/// Descriptors for everything else in the process: the standard streams, the async runtime's
/// and signals' descriptors, the listener, the database file, DNS look-ups, and margin.
const BASE_FILES: u64 = 64;
/// Each built-in runner worker's outgoing connections: the one in flight and a few idle in
/// its pool.
const FILES_PER_WORKER: u64 = 4;
/// How long a connection over the cap waits for the place of the idle one it closed.
const PLACE_WAIT: Duration = Duration::from_secs(1);
/// How long a `503` refusal may take to write.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Accept errors (such as running out of descriptors) are retried after a pause that doubles
/// from the first to the last, so a failing listener never spins.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once. At the cap a new connection closes the oldest idle one
    /// (no request being answered) and takes its place; when none is idle it is answered
    /// `503` and closed.
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

impl Limits {
    /// The default limits with a cap the process's open files can hold: `open_files` is its
    /// soft `RLIMIT_NOFILE` (`None`: unknown, the default cap), of which `reserved` are kept
    /// for everything but the connections served, each of which takes `files_per_connection`.
    pub fn within_open_files(
        open_files: Option<u64>,
        reserved: u64,
        files_per_connection: u64,
    ) -> Limits {
        let cap = match open_files {
            Some(open) => {
                let room = open.saturating_sub(reserved) / files_per_connection.max(1);
                usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
            }
            None => MAX_CONNECTIONS,
        };
        Limits {
            max_connections: cap,
            ..Limits::default()
        }
    }
}

/// The descriptors kept for everything but the connections served (see [`BASE_FILES`],
/// [`FILES_PER_WORKER`] and [`SPARE_CONNECTIONS`]) by a process with `workers` built-in
/// runner workers.
pub fn reserved_files(workers: usize) -> u64 {
    let workers = u64::try_from(workers).unwrap_or(u64::MAX);
    (BASE_FILES + SPARE_CONNECTIONS as u64).saturating_add(FILES_PER_WORKER.saturating_mul(workers))
}

/// Raises the soft open-file limit to the hard one, as many servers do (the usual soft 1,024
/// is a relic of `select()`; the hard limit is what the administrator allows), and returns the
/// soft limit now in force, `None` where there is none to read.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            #[cfg(unix)]
            return rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft);
            #[cfg(not(unix))]
            None
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
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let spares = Arc::new(Semaphore::new(SPARE_CONNECTIONS));
    let connections = Arc::new(Connections::default());
    let service = router.service();
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        backoff = ACCEPT_BACKOFF.0;
                        stream
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                        continue;
                    }
                };
                let host = Host {
                    service: service.clone(),
                    limits,
                    connections: Arc::clone(&connections),
                    watcher: graceful.watcher(),
                };
                if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                    host.serve(stream, slot);
                    continue;
                }
                // Over the cap: one of the few spare places, or closed at once.
                let Ok(spare) = Arc::clone(&spares).try_acquire_owned() else {
                    continue;
                };
                let slots = Arc::clone(&slots);
                let made_room = connections.close_oldest_idle();
                tokio::spawn(async move {
                    if made_room
                        && let Ok(Ok(slot)) =
                            tokio::time::timeout(PLACE_WAIT, slots.acquire_owned()).await
                    {
                        drop(spare);
                        host.serve(stream, slot);
                        return;
                    }
                    let _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream)).await;
                    drop(spare);
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

/// What serving one connection needs.
struct Host {
    service: api::Service,
    limits: Limits,
    connections: Arc<Connections>,
    watcher: Watcher,
}

impl Host {
    /// Serves `stream` in its own task, in the place `slot` holds until it closes.
    fn serve(self, stream: TcpStream, slot: OwnedSemaphorePermit) {
        let _ = stream.set_nodelay(true);
        let (id, tracked) = self.connections.open();
        let busy = Arc::clone(&tracked);
        let service = self.service;
        // hyper's `service_fn` borrows: one clone of the service per request, in `answer`.
        let hyper_service = hyper::service::service_fn(move |request| {
            // Counted from here, when hyper has the whole head, in this connection's task.
            answer(service.clone(), request, Busy::start(&busy))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), hyper_service);
        let connection = self.watcher.watch(connection);
        let connections = self.connections;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            loop {
                tokio::select! {
                    _ = &mut connection => break,
                    () = tracked.close.notified() => {
                        // This task is the only one that polls the connection, so no request
                        // can begin between this check and the close.
                        if tracked.requests.load(Ordering::SeqCst) == 0 {
                            break;
                        }
                        // A request began after it was picked: it keeps its place.
                        tracked.picked.store(false, Ordering::SeqCst);
                    }
                }
            }
            connections.close(id);
            drop(slot);
        });
    }
}

/// The connections being served, oldest first, so that at the cap a new one can take the
/// place of the oldest idle one (a half-sent head, or a keep-alive connection between
/// requests): a flood of connections that never send a request then closes its own oldest
/// instead of locking out everyone until the header-read time-out.
#[derive(Default)]
struct Connections {
    open: Mutex<(u64, BTreeMap<u64, Arc<Tracked>>)>,
}

#[derive(Default)]
struct Tracked {
    /// Requests being answered, from the whole head to the response's last byte.
    requests: AtomicUsize,
    /// Picked to make room, waiting for its task to close it.
    picked: AtomicBool,
    close: Notify,
}

impl Connections {
    fn open(&self) -> (u64, Arc<Tracked>) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, table) = &mut *open;
        let id = *next;
        *next += 1;
        let tracked = Arc::new(Tracked::default());
        table.insert(id, Arc::clone(&tracked));
        (id, tracked)
    }

    fn close(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.1.remove(&id);
    }

    /// Asks the oldest idle connection not already asked to close; whether there was one.
    fn close_oldest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = open.1.values().find(|tracked| {
            tracked.requests.load(Ordering::SeqCst) == 0
                && !tracked.picked.swap(true, Ordering::SeqCst)
        });
        match idle {
            Some(tracked) => {
                // A stored permit: the task sees it even if it is not waiting yet.
                tracked.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One request being answered, until its response body is dropped (sent or abandoned).
struct Busy(Arc<Tracked>);

impl Busy {
    fn start(tracked: &Arc<Tracked>) -> Busy {
        tracked.requests.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(tracked))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
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
/// larger is refused by the router's body limit. `busy` rides in the response body, so the
/// connection counts as busy until hyper has sent its last byte.
async fn answer(
    service: api::Service,
    request: Request<Incoming>,
    busy: Busy,
) -> Result<Response<BusyBody>, std::convert::Infallible> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = api::body_limit(request.uri().path());
    let response = if declared.is_some_and(|n| n > limit) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
            let _ = Limited::new(request.into_body(), DRAIN_LIMIT)
                .collect()
                .await;
        }
        axum::response::IntoResponse::into_response(Problem::too_large(limit))
    } else {
        let Ok(response) = service.oneshot(request.map(Body::new)).await;
        response
    };
    Ok(response.map(|body| BusyBody { body, _busy: busy }))
}

/// A response body that keeps its connection counted busy until it is dropped. It passes on
/// the body's size and end as they are (a `map_frame` wrapper would hide both from hyper) and
/// costs no second box per response.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_what_the_open_file_limit_leaves() {
        let cap =
            |open, reserved, per| Limits::within_open_files(open, reserved, per).max_connections;
        assert_eq!(cap(None, 100, 1), MAX_CONNECTIONS);
        assert_eq!(cap(Some(u64::MAX), 100, 1), MAX_CONNECTIONS);
        assert_eq!(cap(Some(1 << 20), 100, 1), MAX_CONNECTIONS);
        assert_eq!(cap(Some(256), 160, 1), 96);
        assert_eq!(cap(Some(1024), 160, 2), 432);
        // However low the limit, a few connections are still served.
        assert_eq!(cap(Some(100), 160, 1), MIN_CONNECTIONS);
        assert_eq!(cap(Some(256), 0, 0), 256);
    }

    #[test]
    fn the_reserve_grows_with_the_workers() {
        assert_eq!(reserved_files(16), 64 + 32 + 4 * 16);
        assert_eq!(reserved_files(usize::MAX), u64::MAX);
    }
}
