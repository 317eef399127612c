//! API Gateway HTTP API (payload 2.0), REST API (payload 1.0) and Function URL requests,
//! through lambda_http's conversion into the one router, mounting only the function's route
//! groups. A route another function owns is `404`, as an unknown path is.

use super::shape::EventShape;
use super::{InvocationError, malformed};
use crate::api::layers::REQUEST_ID;
use crate::api::problem::Problem;
use crate::api::{self, API_PREFIX, Router};
use crate::auth::Authenticator;
use crate::aws::backend::jwt_settings;
use crate::domain::ids::EXECUTION_PREFIX;
use crate::engine::Engine;
use crate::settings::{self, DEFAULT_STREAM_MAX_SECONDS, STREAM_MAX_SECONDS, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::Body;
use lambda_http::request::{LambdaRequest, RequestContext, RequestOrigin};
use lambda_runtime::{LambdaEvent, MetadataPrelude, StreamResponse};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// What a function with routes answers API Gateway and Function URL requests with.
#[async_trait::async_trait(?Send)]
pub trait HttpEdge: Send + Sync {
    async fn invoke(&self, shape: &EventShape, event: Value) -> Result<Value, InvocationError>;

    /// The service to host with a streamed response, for an edge that streams.
    fn streaming_service(&self) -> Option<api::Service> {
        None
    }
}

#[async_trait::async_trait(?Send)]
impl HttpEdge for Router {
    async fn invoke(&self, shape: &EventShape, event: Value) -> Result<Value, InvocationError> {
        http_invocation(&self.service(), shape, event).await
    }

    fn streaming_service(&self) -> Option<api::Service> {
        self.streams().then(|| self.service())
    }
}

/// The cold start of a function's HTTP edge: the JWT secret (from the environment or SSM),
/// then the router over its route groups.
pub(super) async fn edge<const GROUPS: u16>(
    sdk: &SdkConfig,
    var: Vars<'_>,
    engine: Engine,
) -> Result<Arc<dyn HttpEdge>, lambda_runtime::Error> {
    let auth = Authenticator::new(jwt_settings(var, sdk).await?)?;
    Ok(Arc::new(Router::of::<GROUPS>(engine, Arc::new(auth))))
}

/// The cold start of the stream function's edge: as [`edge`], with responses that stream and
/// streams closed after `RUNLEDGER_STREAM_MAX_SECONDS`.
pub(super) async fn streaming_edge<const GROUPS: u16>(
    sdk: &SdkConfig,
    var: Vars<'_>,
    engine: Engine,
) -> Result<Arc<dyn HttpEdge>, lambda_runtime::Error> {
    let max_stream = settings::number_var(var, STREAM_MAX_SECONDS, DEFAULT_STREAM_MAX_SECONDS)?;
    let auth = Authenticator::new(jwt_settings(var, sdk).await?)?;
    Ok(Arc::new(Router::streaming_of::<GROUPS>(
        engine,
        Arc::new(auth),
        Duration::from_secs(max_stream.max(1)),
    )))
}

/// Hosts `service` in the Lambda runtime with streamed responses (a Function URL in
/// `RESPONSE_STREAM` mode): the response's head goes out first, then its body as it comes,
/// so a Server-Sent Events stream reaches the client event by event.
pub(super) async fn serve_streaming(service: api::Service) -> Result<(), lambda_runtime::Error> {
    let service = &service;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<LambdaRequest>| async move {
            Ok::<_, lambda_runtime::Error>(streamed(service.clone(), event).await)
        },
    ))
    .await
}

/// One request through `service`, answered as the runtime streams it: the response's head
/// (the metadata prelude), then its body as it comes.
pub(super) async fn streamed(
    service: api::Service,
    event: LambdaEvent<LambdaRequest>,
) -> StreamResponse<axum::body::BodyDataStream> {
    use axum::response::IntoResponse;
    use lambda_http::RequestExt;
    let LambdaEvent {
        payload: mut request,
        context,
    } = event;
    default_request_id(&mut request);
    let response = match servable(&request) {
        Err(problem) => problem.into_response(),
        Ok(path) => {
            record_execution_id(&path);
            let request = lambda_http::Request::from(request).with_lambda_context(context);
            let Ok(response) = service.oneshot(without_stage(request)).await;
            response
        }
    };
    let (parts, body) = response.into_parts();
    StreamResponse {
        metadata_prelude: MetadataPrelude {
            status_code: parts.status,
            headers: parts.headers,
            ..Default::default()
        },
        stream: body.into_data_stream(),
    }
}

async fn http_invocation(
    service: &api::Service,
    shape: &EventShape,
    event: Value,
) -> Result<Value, InvocationError> {
    let mut request = match shape {
        EventShape::ApiGatewayV1 => serde_json::from_value::<ApiGatewayProxyRequest>(event)
            .map(LambdaRequest::ApiGatewayV1)
            .map_err(|e| malformed("API Gateway REST API request", e))?,
        _ => serde_json::from_value::<ApiGatewayV2httpRequest>(event)
            .map(LambdaRequest::ApiGatewayV2)
            .map_err(|e| malformed("API Gateway HTTP API request", e))?,
    };
    default_request_id(&mut request);
    let origin = request.request_origin();
    let path = match servable(&request) {
        Ok(path) => path,
        Err(problem) => return problem_response(&origin, problem),
    };
    record_execution_id(&path);
    // lambda_http converts the gateway's payload to an HTTP request and the answer back to
    // the payload the gateway wants (text or base64 by content type); the service between is
    // the very router the local server hosts, with the API stage taken off the path.
    let adapter = lambda_http::Adapter::from(service.clone().map_request(without_stage));
    let response = adapter
        .oneshot(LambdaEvent::new(
            request,
            lambda_runtime::Context::default(),
        ))
        .await
        .unwrap_or_else(|infallible| match infallible {});
    serde_json::to_value(response)
        .map_err(|e| InvocationError::Unavailable(format!("encode the response: {e}")))
}

/// lambda_http's conversion panics on what a client controls: a body marked base64 that is
/// not, a path or query that is not a valid URI. Such requests get a `400` problem instead.
/// Returns the request's path.
fn servable(request: &LambdaRequest) -> Result<String, Problem> {
    let (path, query, headers, domain, body, base64_encoded) = match request {
        LambdaRequest::ApiGatewayV2(ag) => (
            ag.raw_path
                .as_deref()
                .or(ag.request_context.http.path.as_deref()),
            ag.raw_query_string.as_deref(),
            &ag.headers,
            ag.request_context.domain_name.as_deref(),
            ag.body.as_deref(),
            ag.is_base64_encoded,
        ),
        LambdaRequest::ApiGatewayV1(ag) => (
            ag.path.as_deref(),
            None,
            &ag.headers,
            ag.request_context.domain_name.as_deref(),
            ag.body.as_deref(),
            ag.is_base64_encoded,
        ),
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "unsupported_request",
                "this kind of request is not served here",
            ));
        }
    };
    if let Some(body) = body.filter(|_| base64_encoded)
        && base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .is_err()
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "the request body is marked base64 but is not valid base64",
        ));
    }
    let bad_path = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_path",
            "the request path is not a valid URI path",
        )
    };
    let path = path.unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(domain)
        .unwrap_or("localhost");
    let mut target = url::Url::parse(&format!("https://{host}{path}"))
        .map_err(|_| bad_path())?
        .to_string();
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(query);
    }
    http::Uri::try_from(target).map_err(|_| bad_path())?;
    Ok(path.to_owned())
}

/// Requests carry `x-request-id` into logs and the response; without one from the client it
/// is the gateway's request id, which the gateway's access logs carry too.
fn default_request_id(request: &mut LambdaRequest) {
    let (headers, gateway_request_id) = match request {
        LambdaRequest::ApiGatewayV2(ag) => {
            (&mut ag.headers, ag.request_context.request_id.as_deref())
        }
        LambdaRequest::ApiGatewayV1(ag) => {
            (&mut ag.headers, ag.request_context.request_id.as_deref())
        }
        _ => return,
    };
    if !headers.contains_key(REQUEST_ID)
        && let Some(value) = gateway_request_id.and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(REQUEST_ID, value);
    }
}

/// `/prod/api/v1/health` with stage `prod` is `/api/v1/health`; `$default` has no prefix.
/// lambda_http puts the stage in front of the path; the router serves `/api/v1/...` whatever
/// the stage is called.
fn without_stage(request: lambda_http::Request) -> http::Request<axum::body::Body> {
    let mut request = request.map(axum::body::Body::new);
    let stage = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        _ => None,
    };
    let path = path_without_stage(request.uri().path(), stage.as_deref());
    if path.len() == request.uri().path().len() {
        return request;
    }
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    if let Ok(uri) = http::Uri::try_from(target) {
        *request.uri_mut() = uri;
    }
    request
}

fn path_without_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    if path.starts_with(API_PREFIX) {
        return path;
    }
    match stage.filter(|s| !s.is_empty() && *s != "$default") {
        Some(stage) => match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        },
        None => path,
    }
}

/// The execution a path is about (`/api/v1/executions/{id}/...`), as a span field.
fn record_execution_id(path: &str) {
    let mut segments = path.split('/');
    if segments.any(|s| s == "executions")
        && let Some(id) = segments.next()
        && id.starts_with(EXECUTION_PREFIX)
    {
        tracing::Span::current().record("execution_id", id);
    }
}

/// A problem answered before the request could be converted, in the gateway's shape.
fn problem_response(origin: &RequestOrigin, problem: Problem) -> Result<Value, InvocationError> {
    let status_code = i64::from(problem.status);
    let body = serde_json::to_string(&*problem).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::api::problem::PROBLEM_JSON),
    );
    let value = match origin {
        RequestOrigin::ApiGatewayV1 => {
            let mut gateway = ApiGatewayProxyResponse::default();
            gateway.status_code = status_code;
            gateway.body = Some(Body::Text(body));
            gateway.multi_value_headers = headers;
            serde_json::to_value(gateway)
        }
        _ => {
            let mut gateway = ApiGatewayV2httpResponse::default();
            gateway.status_code = status_code;
            gateway.body = Some(Body::Text(body));
            gateway.headers = headers;
            serde_json::to_value(gateway)
        }
    };
    value.map_err(|e| InvocationError::Unavailable(format!("encode the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stage_leaves_the_path() {
        let without_stage = path_without_stage;
        assert_eq!(
            without_stage("/prod/api/v1/health", Some("prod")),
            "/api/v1/health"
        );
        assert_eq!(
            without_stage("/api/v1/health", Some("prod")),
            "/api/v1/health"
        );
        assert_eq!(
            without_stage("/api/v1/health", Some("$default")),
            "/api/v1/health"
        );
        assert_eq!(
            without_stage("/api/v1/health", Some("api")),
            "/api/v1/health"
        );
        assert_eq!(
            without_stage("/production/x", Some("prod")),
            "/production/x"
        );
        assert_eq!(without_stage("/other", None), "/other");
    }

    #[test]
    fn what_lambda_http_would_panic_on_becomes_a_problem() {
        let request = |body: &str, base64: bool, path: &str| {
            let event = json!({
                "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
                "headers": {}, "isBase64Encoded": base64, "body": body,
                "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"}
            });
            LambdaRequest::ApiGatewayV2(serde_json::from_value(event).unwrap())
        };
        assert_eq!(
            servable(&request("{}", false, "/api/v1/x")).unwrap(),
            "/api/v1/x"
        );
        assert!(servable(&request("e30=", true, "/api/v1/x")).is_ok());
        let problem = servable(&request("not base64!", true, "/api/v1/x")).unwrap_err();
        assert_eq!((problem.status, problem.code), (400, "malformed_body"));
    }
}
