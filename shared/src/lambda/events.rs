//! EventBridge: `Execution Finished` from runledger's bus re-settles the execution's suite
//! (idempotent); the `Scheduled Event` of the sweep's rule times out overdue executions.
//! EventBridge Scheduler payloads start a test case or suite as their `owner`.
//!
//! EventBridge and Scheduler invocations are asynchronous: an error makes Lambda retry the
//! event and then hand it to the function's on-failure destination, so errors here are
//! transient failures and payloads that cannot be right.

use super::shape::EventShape;
use super::spec::Trigger;
use super::{FunctionContext, InvocationError, malformed};
use crate::api::wire::ExecutionTrace;
use crate::bus::eventbridge::EVENT_SOURCE;
use crate::bus::eventbridge::{event_kind, parse_event};
use crate::domain::events::EventKind;
use crate::domain::execution::ExecutionConfig;
use crate::engine::{Caller, Engine, EngineError, StartRequest};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::{Value, json};

/// The `source` and `detail-type` of the EventBridge rule that drives the timeout sweep.
pub const SCHEDULE_SOURCE: &str = "aws.events";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

pub(super) async fn eventbridge_invocation(
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

/// `Execution Finished` and `Suite Finished`: re-settles the execution's suite, and carries
/// out what its finish left pending (its rollup contribution, when adding it failed).
/// Settling is idempotent (a settled suite changes nothing and emits nothing), so a
/// twice-delivered event is harmless.
async fn domain_event(
    engine: &Engine,
    event: &EventBridgeEvent<Value>,
) -> Result<Value, InvocationError> {
    if !matches!(
        event_kind(&event.detail_type),
        Some(EventKind::ExecutionFinished | EventKind::SuiteFinished)
    ) {
        tracing::debug!(detail_type = %event.detail_type, "not an event finalize acts on; ignored");
        return Ok(json!({"ignored": event.detail_type}));
    }
    let finished = parse_event(event).map_err(|e| malformed("a finished event", e))?;
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

pub(super) async fn scheduled_start(
    engine: &Engine,
    event: Value,
) -> Result<Value, InvocationError> {
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
