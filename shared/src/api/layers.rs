//! What every request goes through, around the routes: a request id, a tracing span, a time
//! limit, and problem documents for the errors the framework answers by itself.

use super::problem::Problem;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::time::Duration;
use tower_http::request_id::{MakeRequestId, RequestId};

/// A request still unanswered after this gets a `503` (the long poll's wait stays below it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const REQUEST_ID: &str = "x-request-id";

/// New request ids are ULIDs: sortable by time, like every other runledger id.
#[derive(Clone, Copy, Default)]
pub struct UlidRequestId;

impl MakeRequestId for UlidRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// A client's `x-request-id` is kept when it is short printable ASCII; anything else is
/// dropped so that a fresh one is made (it goes into logs and back in the response).
pub fn drop_unusable_request_id(mut request: Request) -> Request {
    let usable = request
        .headers()
        .get(REQUEST_ID)
        .is_none_or(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()));
    if !usable {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// The span each request's logs carry.
pub fn request_span(request: &http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path())
}

/// axum and tower-http answer some errors themselves, with an empty body: a wrong method
/// (`405`, with `Allow`), a time-out. Those become problem documents like every other error.
/// A plain function over the response (not a `from_fn` middleware): no boxed future and no
/// clone of the inner service per request.
pub fn bare_errors_as_problems(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let problem = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            // GET routes answer HEAD too, which needs no mention.
            let allow = response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let allowed: Vec<&str> = allow
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty() && *m != "HEAD")
                .collect();
            Problem::method_not_allowed(&allowed)
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; retry later",
        ),
        other => Problem::new(other, "error", other.canonical_reason().unwrap_or("error")),
    };
    problem.into_response()
}

/// Paths that match no route.
pub async fn no_route(uri: http::Uri) -> Problem {
    Problem::not_found(format!("no route for {}", uri.path()))
}
