//! The Lambda entry points: one [`run`] per function binary, and the dispatcher behind it.
//!
//! A cold start sets up JSON logs, reads the settings (`RUNLEDGER_*`, the standard AWS
//! variables) and builds the SDK clients, the engine, the router and the step runner once;
//! every invocation then goes through [`handle`], which looks at the payload's shape
//! ([`classify`]) and hands it to the branch for it, if the function's [`FunctionSpec`] lists
//! that kind of trigger:
//!
//! - API Gateway HTTP API (payload 2.0), Lambda Function URL (the same shape) and REST API
//!   (payload 1.0) requests go through the one router, mounting only this function's route
//!   groups, and come back as the response JSON of the same origin. A route another function
//!   owns is `404`, as an unknown path is.
//! - SQS batches: the runner runs work items, step-report records step reports. Failures come
//!   back as `batchItemFailures`, so only the failed messages are delivered again.
//! - EventBridge: `Execution Finished` from runledger's bus re-settles the execution's suite
//!   (idempotent); the `Scheduled Event` of the sweep's rule times out overdue executions.
//! - EventBridge Scheduler payloads start a test case or suite as their `owner`.
//!
//! Anything else is an error that names what arrived; nothing here panics on input.
//!
//! # What an SQS message failure means
//!
//! A failed message is delivered again, and after [`MAX_RECEIVE_COUNT`] receives the queue's
//! redrive policy moves it to the dead-letter queue, where it is kept for inspection. So:
//!
//! - a body that is not a work item or a step report, a step report the engine finds invalid
//!   (bad index, too many steps) or about an execution that does not exist: **failed**. No
//!   retry fixes them, but the dead-letter queue keeps the evidence instead of dropping it;
//! - a step report on an execution that has ended (`invalid_transition`), or one that would
//!   change a step already terminal (`step_conflict`): **acknowledged** and logged. The
//!   execution's history already says how it ended, and no redelivery can change that;
//! - the store or a queue unavailable, or a write that lost a race
//!   (`concurrent_modification`): **failed**, so the retry does it later;
//! - a work item whose execution is gone, already running or finished: acknowledged (the
//!   engine only runs an execution it moves from `queued` to `running` itself).
//!
//! EventBridge and Scheduler invocations are asynchronous: an error makes Lambda retry the
//! event and then hand it to the function's on-failure destination, so errors here are
//! transient failures and payloads that cannot be right.
//!
//! [`MAX_RECEIVE_COUNT`]: super::sqs::MAX_RECEIVE_COUNT

use super::backend::{AwsBackend, jwt_settings};
use super::sqs::{StepReportMessage, parse_work_item, process_batch};
use super::{AwsSettings, EVENT_SOURCE, Vars, env_var, lambda_sdk_config};
use crate::api::problem::Problem;
use crate::api::wire::ExecutionTrace;
use crate::api::{self, API_PREFIX, Router};
use crate::auth::Authenticator;
use crate::bus::eventbridge::{event_kind, parse_event};
use crate::domain::events::EventKind;
use crate::domain::execution::{Execution, ExecutionConfig};
use crate::domain::ids::EXECUTION_PREFIX;
use crate::engine::{Caller, Engine, EngineError, StartRequest};
use crate::functions::{FunctionSpec, Trigger};
use crate::ports::StepRunner;
use crate::runner::target_guard::TargetPolicy;
use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::Body;
use lambda_http::request::{LambdaRequest, RequestContext, RequestOrigin};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;
use tracing::Instrument;

/// The `source` and `detail-type` of the EventBridge rule that drives the timeout sweep.
pub const SCHEDULE_SOURCE: &str = "aws.events";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
/// `RUNLEDGER_ALLOW_PRIVATE_TARGETS`: let `http` steps reach private addresses. Off on AWS
/// unless set, so a test case cannot probe the VPC.
pub const ALLOW_PRIVATE_TARGETS: &str = "RUNLEDGER_ALLOW_PRIVATE_TARGETS";
const REQUEST_ID: &str = "x-request-id";

/// What an invocation payload is, judged by its shape alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventShape {
    /// API Gateway HTTP API, payload format 2.0; Lambda Function URLs send the same shape.
    ApiGatewayV2,
    /// API Gateway REST API (payload format 1.0).
    ApiGatewayV1,
    /// An SQS batch (`Records[].eventSource == "aws:sqs"`).
    Sqs,
    /// An EventBridge event (`source`, `detail-type`, `detail`).
    EventBridge,
    /// An EventBridge Scheduler payload starting a test case or suite.
    ScheduledStart,
    /// Anything else, described without its values (they may hold secrets).
    Unknown(String),
}

impl EventShape {
    /// What arrived, for error messages and logs.
    pub fn describe(&self) -> String {
        match self {
            EventShape::ApiGatewayV2 => "an API Gateway HTTP API (or Function URL) request".into(),
            EventShape::ApiGatewayV1 => "an API Gateway REST API request".into(),
            EventShape::Sqs => "an SQS batch".into(),
            EventShape::EventBridge => "an EventBridge event".into(),
            EventShape::ScheduledStart => "a scheduled start".into(),
            EventShape::Unknown(what) => what.clone(),
        }
    }
}

/// Tells the payload kinds apart by the fields only they have.
pub fn classify(event: &Value) -> EventShape {
    let Some(object) = event.as_object() else {
        return EventShape::Unknown(format!("a JSON {}, not an object", json_kind(event)));
    };
    if let Some(records) = object.get("Records") {
        let sources: Vec<&str> = records
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .map(|r| {
                        r.get("eventSource")
                            .or_else(|| r.get("EventSource"))
                            .and_then(Value::as_str)
                            .unwrap_or("no eventSource")
                    })
                    .collect()
            })
            .unwrap_or_default();
        return match sources.first() {
            Some(&"aws:sqs") if sources.iter().all(|s| *s == "aws:sqs") => EventShape::Sqs,
            Some(first) => EventShape::Unknown(format!("a batch of records from {first:?}")),
            None => EventShape::Unknown("an empty or malformed batch of records".into()),
        };
    }
    if let Some(context) = object.get("requestContext").and_then(Value::as_object) {
        if context.contains_key("elb") {
            return EventShape::Unknown("an Application Load Balancer request".into());
        }
        if object.get("version").and_then(Value::as_str) == Some("2.0")
            || context.get("http").is_some_and(Value::is_object)
        {
            return EventShape::ApiGatewayV2;
        }
        if object.contains_key("httpMethod") {
            return EventShape::ApiGatewayV1;
        }
        return EventShape::Unknown("a request of an unknown API Gateway format".into());
    }
    if object.contains_key("detail-type") && object.contains_key("source") {
        return EventShape::EventBridge;
    }
    if object.contains_key("test_suite_id") || object.contains_key("test_case_id") {
        return EventShape::ScheduledStart;
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    if object.len() > keys.len() {
        keys.push("...");
    }
    EventShape::Unknown(format!("an object with the fields [{}]", keys.join(", ")))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Why an invocation failed. Lambda reports it to the caller (a synchronous invoke), retries
/// the event (asynchronous invokes: EventBridge, Scheduler) or logs it.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The payload is not one this function takes (it belongs to another function, or to
    /// none).
    #[error("function `{function}` does not take {received}")]
    NotAccepted {
        function: &'static str,
        received: String,
    },
    /// The payload has a known shape but not the content it needs.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// The engine refused what the payload asks (unknown test suite, invalid config, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// A dependency (the store, a queue, the bus) failed; a retry may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The function is missing a part its trigger needs (a configuration mistake).
    #[error("function `{function}` is not set up for this: {detail}")]
    NotConfigured {
        function: &'static str,
        detail: &'static str,
    },
}

/// What Lambda reports as the invocation's `errorType` and `errorMessage`.
impl From<InvocationError> for Diagnostic {
    fn from(error: InvocationError) -> Self {
        let kind = match &error {
            InvocationError::NotAccepted { .. } => "NotAccepted",
            InvocationError::Malformed { .. } => "Malformed",
            InvocationError::Refused(_) => "Refused",
            InvocationError::Unavailable(_) => "Unavailable",
            InvocationError::NotConfigured { .. } => "NotConfigured",
        };
        Diagnostic {
            error_type: format!("runledger::{kind}"),
            error_message: error.to_string(),
        }
    }
}

impl InvocationError {
    fn from_engine(error: EngineError) -> Self {
        if is_transient(&error) {
            InvocationError::Unavailable(engine_detail(&error))
        } else {
            InvocationError::Refused(engine_detail(&error))
        }
    }
}

/// Errors a later attempt may not meet: an unavailable dependency, a lost race.
fn is_transient(error: &EngineError) -> bool {
    match error {
        EngineError::Unavailable(_) => true,
        EngineError::Conflict { code, .. } => code.is_transient(),
        _ => false,
    }
}

/// An engine error with its particulars, for logs and Lambda errors (never an HTTP body).
fn engine_detail(error: &EngineError) -> String {
    match error {
        EngineError::Validation(errors) => {
            let fields: Vec<String> = errors
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            format!("validation failed ({})", fields.join("; "))
        }
        EngineError::Conflict { code, detail } => format!("{}: {detail}", code.code()),
        EngineError::Unavailable(internal) => format!("the store is unavailable: {internal}"),
        other => other.to_string(),
    }
}

/// Everything an invocation needs, built once per cold start.
pub struct FunctionContext {
    spec: FunctionSpec,
    engine: Engine,
    router: Option<Router>,
    runner: Option<Arc<dyn StepRunner>>,
}

impl FunctionContext {
    /// A function over `backend` with neither a router nor a step runner yet: add them with
    /// [`with_auth`](Self::with_auth) and [`with_runner`](Self::with_runner).
    pub fn new(spec: &FunctionSpec, backend: &AwsBackend) -> Self {
        FunctionContext {
            spec: *spec,
            engine: backend.engine.clone(),
            router: None,
            runner: None,
        }
    }

    /// Mounts the function's route groups, authenticating with `auth`.
    pub fn with_auth(mut self, auth: Arc<Authenticator>) -> Self {
        self.router = Some(Router::new(self.engine.clone(), auth, self.spec.routes));
        self
    }

    /// The step runner that runs work items' `http` steps.
    pub fn with_runner(mut self, runner: Arc<dyn StepRunner>) -> Self {
        self.runner = Some(runner);
        self
    }

    /// The cold start: settings from the environment, SDK clients, engine, and what the
    /// function's triggers need (the JWT secret only where there are routes, the HTTP step
    /// runner only where there are work items).
    pub async fn from_env(spec: &FunctionSpec) -> Result<Self, Error> {
        Self::from_vars(spec, &lambda_sdk_config(&env_var)?, &env_var).await
    }

    /// The same from any variable lookup (a test configures a function from a stack's
    /// definition of its environment this way).
    pub async fn from_vars(
        spec: &FunctionSpec,
        sdk: &SdkConfig,
        var: Vars<'_>,
    ) -> Result<Self, Error> {
        let settings = AwsSettings::from_vars(var)?;
        let backend = AwsBackend::new(sdk, settings);
        let mut context = FunctionContext::new(spec, &backend);
        if spec.accepts(Trigger::Http) && !spec.routes.is_empty() {
            let auth = Authenticator::new(jwt_settings(var, sdk).await?)?;
            context = context.with_auth(Arc::new(auth));
        }
        if let Some(step_runner) = spec.step_runner {
            let policy = TargetPolicy {
                allow_private: bool_var(var, ALLOW_PRIVATE_TARGETS, false)?,
            };
            context = context.with_runner(step_runner(policy));
        }
        Ok(context)
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn not_accepted(&self, shape: &EventShape) -> InvocationError {
        InvocationError::NotAccepted {
            function: self.spec.name,
            received: shape.describe(),
        }
    }

    fn not_configured(&self, detail: &'static str) -> InvocationError {
        InvocationError::NotConfigured {
            function: self.spec.name,
            detail,
        }
    }
}

fn bool_var(var: Vars<'_>, name: &str, default: bool) -> Result<bool, String> {
    match var(name).filter(|v| !v.is_empty()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

/// A function binary's whole `main`: logs, cold start, then the Lambda runtime loop.
pub async fn run(spec: &FunctionSpec) -> Result<(), Error> {
    init_tracing();
    // lambda_runtime panics without its environment; say what is wrong instead.
    for name in ["AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME"] {
        if std::env::var_os(name).is_none() {
            let error = format!(
                "{name} is not set: this is a Lambda function binary (run it in Lambda, or \
                 locally with `cargo lambda watch`; `runledger-local` serves everything in one \
                 process)"
            );
            tracing::error!(function = spec.name, %error, "not in a Lambda environment");
            return Err(error.into());
        }
    }
    let context = match FunctionContext::from_env(spec).await {
        Ok(context) => context,
        Err(error) => {
            tracing::error!(function = spec.name, %error, "cold start failed");
            return Err(error);
        }
    };
    tracing::info!(
        function = spec.name,
        triggers = ?spec.triggers,
        routes = ?spec.routes,
        "ready"
    );
    let context = &context;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        invoke(context, event)
    }))
    .await
}

/// JSON log lines on stdout, one per event, with the fields of the spans they happen in
/// (`request_id`, `execution_id`, ...). `RUNLEDGER_LOG` (tracing syntax) or Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` sets the level; `info` otherwise. Safe to call twice.
pub fn init_tracing() {
    use lambda_runtime::tracing::subscriber::{EnvFilter, fmt};
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // Lambda's advanced logging controls say TRACE, DEBUG, INFO, WARN, ERROR or FATAL.
    let lambda_level = var("AWS_LAMBDA_LOG_LEVEL").map(|level| match level.to_lowercase() {
        fatal if fatal == "fatal" => "error".to_owned(),
        other => other,
    });
    let filter = [var("RUNLEDGER_LOG"), lambda_level]
        .into_iter()
        .flatten()
        .find_map(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
}

/// One invocation under the Lambda runtime: [`handle`] inside a span that carries the Lambda
/// request id (and the execution id, once known).
pub async fn invoke(
    context: &FunctionContext,
    event: LambdaEvent<Value>,
) -> Result<Value, InvocationError> {
    let span = tracing::info_span!(
        "invocation",
        function = context.spec.name,
        request_id = %event.context.request_id,
        execution_id = tracing::field::Empty,
    );
    handle(context, event.payload)
        .instrument(span.clone())
        .await
        .map_err(|error| {
            span.in_scope(|| tracing::error!(%error, "invocation failed"));
            error
        })
}

/// Dispatches one payload by its shape. Callable without the Lambda runtime (tests).
pub async fn handle(context: &FunctionContext, event: Value) -> Result<Value, InvocationError> {
    let shape = classify(&event);
    tracing::debug!(shape = %shape.describe(), "invoked");
    let spec = &context.spec;
    match shape {
        EventShape::ApiGatewayV2 | EventShape::ApiGatewayV1 if spec.accepts(Trigger::Http) => {
            let router = context
                .router
                .as_ref()
                .ok_or_else(|| context.not_configured("no router (JWT settings)"))?;
            http_invocation(&router.service(), &shape, event).await
        }
        EventShape::Sqs if spec.accepts(Trigger::WorkQueue) => {
            let runner = context
                .runner
                .as_deref()
                .ok_or_else(|| context.not_configured("no step runner"))?;
            Ok(work_batch(&context.engine, runner, sqs_event(event)?).await)
        }
        EventShape::Sqs if spec.accepts(Trigger::StepReportQueue) => {
            Ok(step_report_batch(&context.engine, sqs_event(event)?).await)
        }
        EventShape::EventBridge => eventbridge_invocation(context, event).await,
        EventShape::ScheduledStart if spec.accepts(Trigger::ScheduledStart) => {
            scheduled_start(&context.engine, event).await
        }
        other => Err(context.not_accepted(&other)),
    }
}

// ---------------------------------------------------------------------------------------
// HTTP: API Gateway and Function URL requests through the router.
// ---------------------------------------------------------------------------------------

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

fn malformed(what: &'static str, error: impl std::fmt::Display) -> InvocationError {
    InvocationError::Malformed {
        what,
        detail: error.to_string(),
    }
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

// ---------------------------------------------------------------------------------------
// SQS: work items and step reports, with partial batch failures.
// ---------------------------------------------------------------------------------------

fn sqs_event(event: Value) -> Result<SqsEvent, InvocationError> {
    serde_json::from_value(event).map_err(|e| malformed("SQS batch", e))
}

fn batch_response(response: impl serde::Serialize) -> Value {
    serde_json::to_value(response).unwrap_or_else(|_| json!({"batchItemFailures": []}))
}

/// Runs each work item's execution, one after the other.
async fn work_batch(engine: &Engine, runner: &dyn StepRunner, event: SqsEvent) -> Value {
    let response = process_batch(event, |message| {
        let message_id = message.message_id.clone().unwrap_or_default();
        let body = message.body.clone();
        async move { run_work_item(engine, runner, message_id, body).await }
    })
    .await;
    batch_response(response)
}

async fn run_work_item(
    engine: &Engine,
    runner: &dyn StepRunner,
    message_id: String,
    body: Option<String>,
) -> Result<(), String> {
    // Not a work item: failed, so it ends in the dead-letter queue.
    let item = parse_work_item(body.as_deref().unwrap_or_default())?;
    let span = tracing::info_span!(
        "work_item",
        message_id = %message_id,
        execution_id = %item.execution_id,
    );
    async {
        // Gone, claimed or finished executions are `Ok` (nothing to do); what is left is
        // the store failing, which a redelivery retries.
        match engine.run_execution(runner, &item.execution_id).await {
            Ok(()) => {
                tracing::info!("work item done");
                Ok(())
            }
            Err(error) => Err(engine_detail(&error)),
        }
    }
    .instrument(span)
    .await
}

/// Records each message's step reports, as the reporter it names.
async fn step_report_batch(engine: &Engine, event: SqsEvent) -> Value {
    let response = process_batch(event, |message| {
        let message_id = message.message_id.clone().unwrap_or_default();
        let body = message.body.clone();
        async move { record_step_report(engine, message_id, body).await }
    })
    .await;
    batch_response(response)
}

async fn record_step_report(
    engine: &Engine,
    message_id: String,
    body: Option<String>,
) -> Result<(), String> {
    let message = StepReportMessage::parse(body.as_deref().unwrap_or_default())?;
    let span = tracing::info_span!(
        "step_report",
        message_id = %message_id,
        execution_id = %message.execution_id,
        reporter = %message.reporter,
    );
    async {
        let steps = message.steps.len();
        let result = engine
            .report_steps_as(&message.execution_id, message.steps, &message.reporter)
            .await;
        step_report_disposition(result, steps)
    }
    .instrument(span)
    .await
}

/// Whether a step report's message is done with (`Ok`) or must be delivered again (`Err`);
/// see the module documentation for the reasoning.
fn step_report_disposition(
    result: Result<Execution, EngineError>,
    steps: usize,
) -> Result<(), String> {
    match result {
        Ok(execution) => {
            tracing::info!(steps, status = ?execution.status, "step report recorded");
            Ok(())
        }
        Err(error @ EngineError::InvalidTransition(_)) => {
            tracing::warn!(error = %engine_detail(&error), "step report on an ended execution; acknowledged");
            Ok(())
        }
        Err(error @ EngineError::Conflict { .. }) if !is_transient(&error) => {
            tracing::warn!(error = %engine_detail(&error), "conflicting step report; acknowledged");
            Ok(())
        }
        Err(error) => Err(engine_detail(&error)),
    }
}

// ---------------------------------------------------------------------------------------
// EventBridge: runledger's own events and the sweep's schedule.
// ---------------------------------------------------------------------------------------

async fn eventbridge_invocation(
    context: &FunctionContext,
    event: Value,
) -> Result<Value, InvocationError> {
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(event).map_err(|e| malformed("EventBridge event", e))?;
    let spec = &context.spec;
    if event.source == EVENT_SOURCE && spec.accepts(Trigger::DomainEvents) {
        return domain_event(&context.engine, &event).await;
    }
    if event.source == SCHEDULE_SOURCE
        && event.detail_type == SCHEDULED_EVENT
        && spec.accepts(Trigger::SweepSchedule)
    {
        return sweep(&context.engine).await;
    }
    Err(context.not_accepted(&EventShape::Unknown(format!(
        "an EventBridge event {:?} from {:?}",
        event.detail_type, event.source
    ))))
}

/// `Execution Finished`: re-settles the execution's suite. Settling is idempotent (a settled
/// suite changes nothing and emits nothing), so a twice-delivered event is harmless.
async fn domain_event(
    engine: &Engine,
    event: &EventBridgeEvent<Value>,
) -> Result<Value, InvocationError> {
    if event_kind(&event.detail_type) != Some(EventKind::ExecutionFinished) {
        tracing::debug!(detail_type = %event.detail_type, "not an event finalize acts on; ignored");
        return Ok(json!({"ignored": event.detail_type}));
    }
    let finished = parse_event(event).map_err(|e| malformed("Execution Finished event", e))?;
    let id = finished.execution_id;
    tracing::Span::current().record("execution_id", id.as_str());
    match engine.reconcile(&id).await {
        Ok(changed) => {
            tracing::info!(changed, "reconciled a finished execution");
            Ok(json!({"execution_id": id, "reconciled": changed}))
        }
        // Not in this table (deleted, or another deployment's event): nothing to settle,
        // and no retry changes that.
        Err(EngineError::NotFound { .. }) => {
            tracing::warn!(execution_id = %id, "finished execution not found; ignored");
            Ok(json!({"execution_id": id, "reconciled": false}))
        }
        Err(error) => Err(InvocationError::from_engine(error)),
    }
}

async fn sweep(engine: &Engine) -> Result<Value, InvocationError> {
    let ended = engine
        .sweep_timeouts()
        .await
        .map_err(InvocationError::from_engine)?;
    if ended > 0 {
        tracing::info!(ended, "timed out overdue executions");
    }
    Ok(json!({"timed_out": ended}))
}

// ---------------------------------------------------------------------------------------
// EventBridge Scheduler: start a test case or suite on a schedule.
// ---------------------------------------------------------------------------------------

/// The Scheduler target's input. `idempotency_key` makes a retried delivery of the same
/// schedule tick start nothing twice (a template like `nightly-<aws.scheduler.scheduled-time>`
/// gives each tick its own key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduledStart {
    #[serde(default)]
    test_suite_id: Option<String>,
    #[serde(default)]
    test_case_id: Option<String>,
    owner: String,
    #[serde(default)]
    config: Option<ExecutionConfig>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

async fn scheduled_start(engine: &Engine, event: Value) -> Result<Value, InvocationError> {
    const WHAT: &str = "scheduled start";
    let start: ScheduledStart = serde_json::from_value(event).map_err(|e| malformed(WHAT, e))?;
    if start.owner.trim().is_empty() || start.owner.chars().count() > 200 {
        return Err(malformed(WHAT, "owner must be 1..200 characters"));
    }
    let caller = Caller::user(&start.owner);
    let request = StartRequest {
        config: start.config.unwrap_or_default(),
        idempotency_key: start.idempotency_key,
    };
    let started = match (start.test_suite_id, start.test_case_id) {
        (Some(suite), None) => engine.start_suite(&caller, &suite, request).await,
        (None, Some(case)) => engine.start_case(&caller, &case, request).await,
        _ => {
            return Err(malformed(
                WHAT,
                "exactly one of test_suite_id and test_case_id is required",
            ));
        }
    }
    .map_err(InvocationError::from_engine)?;
    let execution = &started.execution;
    tracing::Span::current().record("execution_id", execution.id.as_str());
    tracing::info!(
        execution_id = %execution.id,
        created = started.created,
        owner = %caller.user,
        "scheduled start"
    );
    Ok(json!({
        "created": started.created,
        "execution": ExecutionTrace::of(execution, false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_api_and_function_url_payloads_are_v2() {
        let http_api = json!({
            "version": "2.0", "rawPath": "/api/v1/health",
            "requestContext": {"http": {"method": "GET"}, "stage": "$default"}
        });
        assert_eq!(classify(&http_api), EventShape::ApiGatewayV2);
        // A Function URL request: v2-shaped, with a lambda-url domain.
        let function_url = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/api/v1/health",
            "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws",
                               "http": {"method": "GET"}}
        });
        assert_eq!(classify(&function_url), EventShape::ApiGatewayV2);
        // No version field, but the v2 request context.
        let unversioned = json!({"requestContext": {"http": {"method": "POST"}}});
        assert_eq!(classify(&unversioned), EventShape::ApiGatewayV2);
    }

    #[test]
    fn rest_payloads_are_v1() {
        let rest = json!({
            "resource": "/{proxy+}", "path": "/api/v1/health", "httpMethod": "GET",
            "requestContext": {"stage": "prod", "httpMethod": "GET"}
        });
        assert_eq!(classify(&rest), EventShape::ApiGatewayV1);
    }

    #[test]
    fn load_balancer_and_other_request_formats_are_unknown() {
        let alb = json!({"httpMethod": "GET", "path": "/", "requestContext": {"elb": {}}});
        assert!(matches!(classify(&alb), EventShape::Unknown(d) if d.contains("Load Balancer")));
        let odd = json!({"requestContext": {"eventType": "CONNECT"}});
        assert!(matches!(classify(&odd), EventShape::Unknown(_)));
    }

    #[test]
    fn sqs_batches_need_every_record_from_sqs() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"},
                                     {"eventSource": "aws:sqs", "body": "{}"}]});
        assert_eq!(classify(&sqs), EventShape::Sqs);
        let sns = json!({"Records": [{"EventSource": "aws:sns"}]});
        assert!(matches!(classify(&sns), EventShape::Unknown(d) if d.contains("aws:sns")));
        let mixed = json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:s3"}]});
        assert!(matches!(classify(&mixed), EventShape::Unknown(_)));
        assert!(matches!(
            classify(&json!({"Records": []})),
            EventShape::Unknown(_)
        ));
        assert!(matches!(
            classify(&json!({"Records": "x"})),
            EventShape::Unknown(_)
        ));
    }

    #[test]
    fn eventbridge_events_have_source_and_detail_type() {
        let finished = json!({"source": "runledger", "detail-type": "Execution Finished",
                              "detail": {}});
        assert_eq!(classify(&finished), EventShape::EventBridge);
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event",
                               "detail": {}});
        assert_eq!(classify(&scheduled), EventShape::EventBridge);
        let half = json!({"source": "runledger"});
        assert!(matches!(classify(&half), EventShape::Unknown(_)));
    }

    #[test]
    fn scheduler_payloads_name_a_suite_or_a_case() {
        let suite = json!({"test_suite_id": "ts_1", "owner": "alice"});
        assert_eq!(classify(&suite), EventShape::ScheduledStart);
        let case = json!({"test_case_id": "tc_1"});
        assert_eq!(classify(&case), EventShape::ScheduledStart);
    }

    #[test]
    fn anything_else_is_described_without_its_values() {
        let secret = json!({"password": "hunter2", "token": "abc"});
        let EventShape::Unknown(description) = classify(&secret) else {
            panic!("unknown expected");
        };
        assert!(description.contains("password"), "{description}");
        assert!(!description.contains("hunter2"), "{description}");
        for (value, kind) in [
            (json!("text"), "string"),
            (json!([1, 2]), "array"),
            (Value::Null, "null"),
            (json!(3), "number"),
        ] {
            assert!(matches!(classify(&value), EventShape::Unknown(d) if d.contains(kind)));
        }
        let wide: serde_json::Map<String, Value> =
            (0..20).map(|i| (format!("f{i:02}"), json!(i))).collect();
        let EventShape::Unknown(description) = classify(&Value::Object(wide)) else {
            panic!("unknown expected");
        };
        assert!(description.ends_with("...]"), "{description}");
    }

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

    #[test]
    fn step_report_outcomes_decide_redelivery() {
        use crate::domain::execution::{ExecutionStatus, InvalidTransition};
        use crate::engine::ConflictKind;
        let ended = EngineError::InvalidTransition(InvalidTransition {
            from: ExecutionStatus::Passed,
            to: ExecutionStatus::Running,
        });
        assert_eq!(step_report_disposition(Err(ended), 1), Ok(()));
        let conflict = EngineError::Conflict {
            code: ConflictKind::StepConflict,
            detail: "step 0 is passed".into(),
        };
        assert_eq!(step_report_disposition(Err(conflict), 1), Ok(()));
        for retried in [
            EngineError::Conflict {
                code: ConflictKind::ConcurrentModification,
                detail: "lost a race".into(),
            },
            EngineError::Unavailable("timeout".into()),
            EngineError::not_found("execution", "ex_1"),
            EngineError::invalid("steps[0].index", "must be below 3"),
        ] {
            assert!(step_report_disposition(Err(retried), 1).is_err());
        }
    }

    #[test]
    fn lambda_reports_the_kind_of_failure() {
        let diagnostic = Diagnostic::from(InvocationError::NotAccepted {
            function: "runner",
            received: "an SQS batch".into(),
        });
        assert_eq!(diagnostic.error_type, "runledger::NotAccepted");
        assert_eq!(
            diagnostic.error_message,
            "function `runner` does not take an SQS batch"
        );
    }

    #[test]
    fn private_targets_are_off_unless_asked_for() {
        assert_eq!(bool_var(&|_| None, ALLOW_PRIVATE_TARGETS, false), Ok(false));
        let set = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!(
            bool_var(&set("yes"), ALLOW_PRIVATE_TARGETS, false),
            Ok(true)
        );
        assert_eq!(bool_var(&set("0"), ALLOW_PRIVATE_TARGETS, true), Ok(false));
        let refused = bool_var(&set("maybe"), ALLOW_PRIVATE_TARGETS, false).unwrap_err();
        assert!(
            refused.contains("RUNLEDGER_ALLOW_PRIVATE_TARGETS"),
            "{refused}"
        );
    }
}
