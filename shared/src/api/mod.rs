//! The one HTTP edge, on axum: the route table (`routes`), one handler per endpoint
//! (`handlers/`), the extractors that check a request (`extract`), the wire types (`wire`),
//! problem responses (`problem`) and the OpenAPI document generated from the handlers
//! (`openapi`). The local server and every Lambda function mount the same routes; a Lambda
//! function mounts only the route groups it owns, the local server all of them.

pub mod dashboard;
mod demo;
pub mod extract;
mod handlers;
pub mod layers;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod routes;
mod strict;
pub mod wire;

use crate::auth::Authenticator;
use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// Request bodies above this get `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub use handlers::imports::MAX_IMPORT_BYTES;

/// The body limit of a request to `path`: an import's report file may be larger than any
/// other body.
pub fn body_limit(path: &str) -> usize {
    match path.strip_prefix(API_PREFIX) {
        Some("/imports") => MAX_IMPORT_BYTES,
        _ => MAX_BODY_BYTES,
    }
}
pub const API_PREFIX: &str = "/api/v1";

/// The groups of routes; each Lambda function owns some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteGroup {
    /// `GET /health` and the OpenAPI document.
    Health,
    /// Test case and test suite CRUD.
    Catalog,
    /// Starting and retrying executions.
    Start,
    /// Every `GET` on executions but their event log.
    Status,
    /// An execution's event log (`GET /executions/{id}/events`): the long poll through the
    /// HTTP API (status function), Server-Sent Events through the stream function.
    Events,
    /// Step reports and completion.
    StepReport,
    /// Cancellation.
    Finalize,
    /// Analytics reads: a test case's or suite's, and the flaky listing.
    Analytics,
    /// A tiny HTTP target for the quickstart (local server only).
    Demo,
    /// The dashboard's page and files at `/` (see `dashboard`); not part of the API.
    Dashboard,
}

impl RouteGroup {
    /// `groups` as a bit set, for [`Router::of`]: groups known at compile time.
    pub const fn set(groups: &[RouteGroup]) -> u16 {
        let mut set = 0;
        let mut i = 0;
        while i < groups.len() {
            set |= groups[i].bit();
            i += 1;
        }
        set
    }

    pub const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// What the local server mounts: everything.
    pub const ALL: [RouteGroup; 10] = [
        RouteGroup::Health,
        RouteGroup::Catalog,
        RouteGroup::Start,
        RouteGroup::Status,
        RouteGroup::Events,
        RouteGroup::StepReport,
        RouteGroup::Finalize,
        RouteGroup::Analytics,
        RouteGroup::Demo,
        RouteGroup::Dashboard,
    ];
}

/// What every handler can reach. axum clones the state for every request that extracts it,
/// so it sits behind one `Arc`: one reference count per request, not one per port.
#[derive(Clone)]
pub struct ApiState(Arc<ApiParts>);

pub struct ApiParts {
    pub engine: Engine,
    pub auth: Arc<Authenticator>,
    /// Whether responses may stream (Server-Sent Events): not where the host buffers each
    /// response whole (a Lambda function behind API Gateway).
    pub streams: bool,
    /// How long a stream stays open at most, where the host ends it (the stream function's
    /// timeout); the server closes it first, between events, and the client resumes.
    pub max_stream: Option<std::time::Duration>,
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

/// The HTTP edge as a tower service: the mounted routes behind the layers every request goes
/// through (see `Router::new`).
pub type Service =
    BoxCloneSyncService<http::Request<axum::body::Body>, axum::response::Response, Infallible>;

pub struct Router {
    engine: Engine,
    service: Service,
    streams: bool,
}

impl Router {
    pub fn new(engine: Engine, auth: Arc<Authenticator>, groups: &[RouteGroup]) -> Self {
        let mut router = routes::mounted(groups);
        if groups.contains(&RouteGroup::Demo) {
            router = router.merge(demo::routes());
        }
        if groups.contains(&RouteGroup::Dashboard) {
            router = router.merge(dashboard::routes());
        }
        Self::serving(engine, auth, router, Some(std::time::Duration::MAX))
    }

    /// The same for the groups of a bit set known at compile time ([`RouteGroup::set`]): a
    /// Lambda function's. Only those groups' handlers, and the use cases behind them, are
    /// compiled into its binary.
    /// Its responses are buffered whole, so nothing streams.
    pub fn of<const GROUPS: u16>(engine: Engine, auth: Arc<Authenticator>) -> Self {
        Self::serving(engine, auth, Self::mounted_set::<GROUPS>(), None)
    }

    /// The routes of a compile-time set, the dashboard's among them when it is in the set.
    fn mounted_set<const GROUPS: u16>() -> axum::Router<ApiState> {
        let router = routes::mounted_set::<GROUPS>();
        if GROUPS & RouteGroup::Dashboard.bit() != 0 {
            router.merge(dashboard::routes())
        } else {
            router
        }
    }

    /// [`Router::of`] for a host that streams responses (the stream function behind a
    /// Function URL in `RESPONSE_STREAM` mode): streams are closed after `max_stream`.
    pub fn streaming_of<const GROUPS: u16>(
        engine: Engine,
        auth: Arc<Authenticator>,
        max_stream: std::time::Duration,
    ) -> Self {
        Self::serving(
            engine,
            auth,
            Self::mounted_set::<GROUPS>(),
            Some(max_stream),
        )
    }

    /// Whether this router's responses may stream.
    pub fn streams(&self) -> bool {
        self.streams
    }

    /// `streaming`: `None` for a host that buffers responses whole, `Some(limit)` for one
    /// that streams (`Duration::MAX`: no limit of its own).
    fn serving(
        engine: Engine,
        auth: Arc<Authenticator>,
        router: axum::Router<ApiState>,
        streaming: Option<std::time::Duration>,
    ) -> Self {
        use tower_http::normalize_path::NormalizePathLayer;
        use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
        use tower_http::timeout::TimeoutLayer;
        use tower_http::trace::TraceLayer;

        let streams = streaming.is_some();
        let state = ApiState(Arc::new(ApiParts {
            engine: engine.clone(),
            auth,
            streams,
            max_stream: streaming.filter(|limit| *limit != std::time::Duration::MAX),
        }));
        let router = router.fallback(layers::no_route).with_state(state);
        // Outermost first: every request, routed or not, goes through all of them.
        let service = tower::ServiceBuilder::new()
            .map_response(axum::response::IntoResponse::into_response)
            .layer(NormalizePathLayer::trim_trailing_slash())
            .map_request(layers::drop_unusable_request_id)
            .layer(SetRequestIdLayer::new(
                http::HeaderName::from_static(layers::REQUEST_ID),
                layers::UlidRequestId,
            ))
            .layer(PropagateRequestIdLayer::new(http::HeaderName::from_static(
                layers::REQUEST_ID,
            )))
            .layer(TraceLayer::new_for_http().make_span_with(layers::request_span))
            .map_response(layers::bare_errors_as_problems)
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::SERVICE_UNAVAILABLE,
                layers::REQUEST_TIMEOUT,
            ))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .service(router);
        Router {
            engine,
            service: BoxCloneSyncService::new(service),
            streams,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The service, for a server (`axum::serve`) or Lambda (`lambda_http`) to host.
    pub fn service(&self) -> Service {
        self.service.clone()
    }

    /// Answers one request in process, its body already read: what tests and the in-process
    /// benchmark use, through exactly the layers and routes a server hosts.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let request = request.map(axum::body::Body::from);
        let Ok(response) = self.service.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Response::from_parts(parts, bytes)
    }
}
