//! SQS batches: the runner runs work items, step-report records step reports. Failures come
//! back as `batchItemFailures`, so only the failed messages are delivered again.
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
//! [`MAX_RECEIVE_COUNT`]: crate::queue::sqs::MAX_RECEIVE_COUNT

use super::{InvocationError, engine_detail, is_transient, malformed};
use crate::domain::execution::Execution;
use crate::engine::{Engine, EngineError};
use crate::ports::StepRunner;
use crate::queue::sqs::{StepReportMessage, parse_work_item};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{Value, json};
use std::future::Future;
use tracing::Instrument;

/// Runs `handler` on every message of an SQS event and reports the ones that failed as batch
/// item failures, so that only those are delivered again: one bad message never fails or
/// repeats its batch mates. Each failure is logged with its message id and error.
///
/// Messages run one after another, in the order of the batch. A batch often holds several
/// messages for the same execution (a reporter's burst, a retry and its original), and every
/// one of them is a conditional write on that execution's record: run side by side they
/// would only contend and retry, and in order a reporter's successive reports apply as sent.
/// Throughput comes from Lambda running many batches at once (the event source mapping's
/// concurrency), not from concurrency inside one batch.
///
/// The handler's future may not borrow the message (the bound is `FnMut(&SqsMessage) -> Fut`
/// for every borrow): take what it needs, e.g. `|m| { let body = m.body.clone(); async move
/// { ... } }`.
///
/// A message without a `messageId` (SQS always sets one; only a hand-made event lacks it)
/// cannot be named in the response. It is still handled; if it fails, the response carries a
/// failure with an empty identifier, which Lambda treats as a failure of the whole batch, so
/// the message is delivered again rather than lost. Its batch mates then repeat too, which the
/// handlers tolerate (they are idempotent).
pub async fn process_batch<F, Fut>(event: SqsEvent, mut handler: F) -> SqsBatchResponse
where
    F: FnMut(&SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        let Err(error) = handler(message).await else {
            continue;
        };
        match message.message_id.as_deref().filter(|id| !id.is_empty()) {
            Some(message_id) => {
                tracing::error!(message_id, %error, "message failed; it will be delivered again");
                response.add_failure(message_id);
            }
            None => {
                tracing::error!(
                    %error,
                    "a message without a message id failed; failing the whole batch"
                );
                response.add_failure(String::new());
            }
        }
    }
    response
}

pub(super) fn sqs_event(event: Value) -> Result<SqsEvent, InvocationError> {
    serde_json::from_value(event).map_err(|e| malformed("SQS batch", e))
}

fn batch_response(response: impl serde::Serialize) -> Value {
    serde_json::to_value(response).unwrap_or_else(|_| json!({"batchItemFailures": []}))
}

/// Runs each work item's execution, one after the other.
pub(super) async fn work_batch(engine: &Engine, runner: &dyn StepRunner, event: SqsEvent) -> Value {
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
pub(super) async fn step_report_batch(engine: &Engine, event: SqsEvent) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
