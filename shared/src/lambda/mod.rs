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
//! - The table's DynamoDB stream records: the log function writes the event log from them,
//!   in order, with partial batch failures.
//!
//! Anything else is an error that names what arrived; nothing here panics on input.
//!
//! Where each part is: [`spec`] (what each function owns), [`shape`] (telling payloads
//! apart), [`http`] (API Gateway and Function URL requests), [`sqs`] (queue batches with
//! partial failures), [`events`] (EventBridge and Scheduler), [`table_stream`] (the table's
//! stream records); this module holds the cold start, the dispatch and the error mapping.

pub mod events;
pub mod http;
pub mod shape;
pub mod spec;
pub mod sqs;
pub mod table_stream;

use crate::api::Router;
use crate::auth::Authenticator;
use crate::aws::backend::AwsBackend;
use crate::aws::lambda_sdk_config;
use crate::engine::{Engine, EngineError};
use crate::ports::StepRunner;
use crate::runner::target_guard::TargetPolicy;
use crate::settings::{
    self, AwsSettings, LAMBDA_ALLOWS_PRIVATE_TARGETS, LogSettings, Vars, env_var,
};
use crate::store::dynamo::DynamoStore;
use aws_config::SdkConfig;
use http::HttpEdge;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use shape::{EventShape, classify};
use spec::{FunctionSpec, Trigger};
use std::sync::Arc;
use tracing::Instrument;

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
    /// The engine's store itself, for what only DynamoDB does (logging its stream's records).
    store: Arc<DynamoStore>,
    http: Option<Arc<dyn HttpEdge>>,
    runner: Option<Arc<dyn StepRunner>>,
}

impl FunctionContext {
    /// A function over `backend` with neither a router nor a step runner yet: add them with
    /// [`with_auth`](Self::with_auth) and [`with_runner`](Self::with_runner).
    pub fn new(spec: &FunctionSpec, backend: &AwsBackend) -> Self {
        FunctionContext {
            spec: *spec,
            engine: backend.engine.clone(),
            store: Arc::clone(&backend.store),
            http: None,
            runner: None,
        }
    }

    /// Mounts the function's route groups, authenticating with `auth`.
    pub fn with_auth(mut self, auth: Arc<Authenticator>) -> Self {
        let router = Router::new(self.engine.clone(), auth, self.spec.routes());
        self.http = Some(Arc::new(router));
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
        if let Some(http) = spec.http {
            context.http = Some((http.edge)(sdk, var, context.engine.clone()).await?);
        }
        if let Some(step_runner) = spec.step_runner {
            let policy = TargetPolicy {
                allow_private: settings::allow_private_targets(var, LAMBDA_ALLOWS_PRIVATE_TARGETS)?,
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

/// A function binary's whole `main`: logs, cold start, then the Lambda runtime loop.
pub async fn run(spec: &FunctionSpec) -> Result<(), Error> {
    let context = cold_start(spec).await?;
    if spec.accepts(Trigger::StreamingHttp) {
        let service = context
            .http
            .as_ref()
            .and_then(|edge| edge.streaming_service())
            .ok_or_else(|| format!("{} streams responses but has no streaming edge", spec.name))?;
        return http::serve_streaming(service).await;
    }
    let context = &context;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        invoke(context, event)
    }))
    .await
}

/// Logs, the check that this is Lambda, and the function's cold start.
async fn cold_start(spec: &FunctionSpec) -> Result<FunctionContext, Error> {
    init_tracing();
    crate::crypto::install();
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
        routes = ?spec.routes(),
        "ready"
    );
    Ok(context)
}

/// A Function URL request to a function whose responses stream, answered as [`run`] hosts
/// it: the response's head, then its body as a stream (for tests; the runtime sends both to
/// Lambda as they come).
pub async fn handle_streaming(
    context: &FunctionContext,
    event: Value,
) -> Result<lambda_runtime::StreamResponse<axum::body::BodyDataStream>, InvocationError> {
    let service = context
        .http
        .as_ref()
        .and_then(|edge| edge.streaming_service())
        .ok_or_else(|| context.not_accepted(&shape::classify(&event)))?;
    let request: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).map_err(|e| malformed("Function URL request", e))?;
    let event = LambdaEvent::new(request, lambda_runtime::Context::default());
    Ok(http::streamed(service, event).await)
}

/// JSON log lines on stdout, one per event, with the fields of the spans they happen in
/// (`request_id`, `execution_id`, ...). `RUNLEDGER_LOG` (tracing syntax) or Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` sets the level; `info` otherwise. Safe to call twice.
pub fn init_tracing() {
    use lambda_runtime::tracing::subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt};
    // Lambda's advanced logging controls say TRACE, DEBUG, INFO, WARN, ERROR or FATAL.
    let lambda_level = env_var("AWS_LAMBDA_LOG_LEVEL").map(|level| match level.to_lowercase() {
        fatal if fatal == "fatal" => "error".to_owned(),
        other => other,
    });
    let filter = LogSettings::from_vars(&env_var).targets(lambda_level, "info");
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true);
    let _ = lambda_runtime::tracing::subscriber::registry()
        .with(json)
        .with(filter)
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
            let http = context
                .http
                .as_ref()
                .ok_or_else(|| context.not_configured("no router (JWT settings)"))?;
            http.invoke(&shape, event).await
        }
        EventShape::Sqs if spec.accepts(Trigger::WorkQueue) => {
            let runner = context
                .runner
                .as_deref()
                .ok_or_else(|| context.not_configured("no step runner"))?;
            Ok(sqs::work_batch(&context.engine, runner, sqs::sqs_event(event)?).await)
        }
        EventShape::Sqs if spec.accepts(Trigger::StepReportQueue) => {
            Ok(sqs::step_report_batch(&context.engine, sqs::sqs_event(event)?).await)
        }
        EventShape::DynamoDbStream if spec.accepts(Trigger::TableStream) => {
            let log = spec
                .table_stream
                .ok_or_else(|| context.not_configured("no stream consumer"))?;
            log(&context.store, event).await
        }
        EventShape::EventBridge => events::eventbridge_invocation(context, event).await,
        EventShape::ScheduledStart if spec.accepts(Trigger::ScheduledStart) => {
            events::scheduled_start(&context.engine, event).await
        }
        other => Err(context.not_accepted(&other)),
    }
}

fn malformed(what: &'static str, error: impl std::fmt::Display) -> InvocationError {
    InvocationError::Malformed {
        what,
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let lambda =
            |var: Vars<'_>| settings::allow_private_targets(var, LAMBDA_ALLOWS_PRIVATE_TARGETS);
        assert_eq!(lambda(&|_| None), Ok(false));
        let set = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!(lambda(&set("yes")), Ok(true));
        assert_eq!(lambda(&set("0")), Ok(false));
        let refused = lambda(&set("maybe")).unwrap_err();
        assert!(
            refused.contains("RUNLEDGER_ALLOW_PRIVATE_TARGETS"),
            "{refused}"
        );
    }
}
