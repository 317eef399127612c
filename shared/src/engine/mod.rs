//! The use cases: what a caller can ask of runledger, independent of how it asks.

mod analytics;
mod catalog;
mod executions;
mod import;
mod log;
mod quarantine;
mod report;
mod run;

pub use analytics::{Analytics, AnalyticsQuery, DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS, parse_day};
pub use executions::{MAX_IDEMPOTENCY_KEY_CHARS, MAX_STEPS_PER_REPORT, StartRequest, Started};
pub use import::{ImportRequest, Imported};
pub use log::{LogPage, LogQuery, LogReader, MAX_LOG_PAGE, MAX_LOG_WAIT};
pub use quarantine::QuarantineRequest;

use crate::domain::clock::Clock;
use crate::domain::errors::StoreError;
use crate::domain::execution::InvalidTransition;
use crate::domain::ids::IdSource;
use crate::domain::validation::ValidationErrors;
use crate::domain::workflow::{ChangeSet, WorkflowError};
use crate::ports::{EventBus, ExecutionStore, Plan, PlanSize, WorkQueue};
use std::sync::Arc;

/// Who is asking: the token's subject and whether it may see everyone's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub admin: bool,
}

impl Caller {
    pub fn user(user: &str) -> Self {
        Caller {
            user: user.to_owned(),
            admin: false,
        }
    }

    pub fn admin(user: &str) -> Self {
        Caller {
            user: user.to_owned(),
            admin: true,
        }
    }

    pub fn can_see(&self, owner: &str) -> bool {
        self.admin || self.user == owner
    }

    /// Whose records a listing covers: `None` (everyone's) for an administrator.
    pub fn scope(&self) -> Option<String> {
        (!self.admin).then(|| self.user.clone())
    }

    pub fn actor(&self) -> String {
        format!("user:{}", self.user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// A well-formed request that conflicts with the current state.
    #[error("{detail}")]
    Conflict { code: ConflictKind, detail: String },
    #[error("the store is unavailable")]
    Unavailable(String),
    /// A test report that cannot be imported: why, for the client.
    #[error("{0}")]
    InvalidReport(String),
}

crate::domain::named_enum! {
    /// Why a well-formed request conflicts with the current state. Its [`code`](Self::code)
    /// is the stable problem code clients see.
    pub enum ConflictKind {
        /// A conditional write lost a race (a version or status changed underneath); retrying
        /// from a fresh read may succeed.
        ConcurrentModification,
        /// A step report contradicts a step that already ended.
        StepConflict,
        /// The command does not apply to the execution as it is (e.g. retrying a running one).
        NotApplicable,
        /// An idempotency key was already used for another start.
        AlreadyStarted,
        /// A report or completion from outside on a built-in (`http`) execution, whose steps
        /// only the built-in runner reports.
        RunnerOnly,
    }
}

impl ConflictKind {
    /// The problem code: `concurrent_modification`, `step_conflict`, ...
    pub fn code(self) -> &'static str {
        self.as_str()
    }

    /// Whether a later attempt may not meet the conflict.
    pub fn is_transient(self) -> bool {
        self == ConflictKind::ConcurrentModification
    }
}

impl EngineError {
    pub fn not_found(what: &'static str, id: &str) -> Self {
        EngineError::NotFound {
            what,
            id: id.to_owned(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        EngineError::Validation(ValidationErrors::single(field, message))
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(detail) => EngineError::Conflict {
                code: ConflictKind::ConcurrentModification,
                detail,
            },
            other => EngineError::Unavailable(other.to_string()),
        }
    }
}

impl EngineError {
    /// Maps a workflow refusal, naming the execution a `NotFound` is about.
    fn from_workflow(error: WorkflowError) -> Self {
        match error {
            WorkflowError::NotFound(id) => EngineError::not_found("execution", &id),
            WorkflowError::InvalidTransition(e) => EngineError::InvalidTransition(e),
            WorkflowError::StepConflict(e) => EngineError::Conflict {
                code: ConflictKind::StepConflict,
                detail: e.to_string(),
            },
            WorkflowError::Validation(errors) => EngineError::Validation(errors),
            WorkflowError::NotApplicable(detail) => EngineError::Conflict {
                code: ConflictKind::NotApplicable,
                detail,
            },
            WorkflowError::AlreadyStarted(id) => EngineError::Conflict {
                code: ConflictKind::AlreadyStarted,
                detail: format!("already started as {id}"),
            },
            error @ WorkflowError::RunnerOnly(_) => EngineError::Conflict {
                code: ConflictKind::RunnerOnly,
                detail: error.to_string(),
            },
            WorkflowError::Store(e) => e.into(),
        }
    }
}

/// The engine: use cases over the ports.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn ExecutionStore>,
    queue: Arc<dyn WorkQueue>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    log_signal: Arc<log::LogSignal>,
    /// Whether finishes are counted in analytics rollups (off only to measure what they cost).
    analytics: bool,
}

impl Engine {
    pub fn new(
        store: Arc<dyn ExecutionStore>,
        queue: Arc<dyn WorkQueue>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        Engine {
            store,
            queue,
            bus,
            clock,
            ids,
            log_signal: Arc::default(),
            analytics: true,
        }
    }

    /// The same engine without analytics: finishes are not counted in rollups. For measuring
    /// what the rollups cost (`bench --analytics`); a product runs with them.
    pub fn without_analytics(mut self) -> Self {
        self.analytics = false;
        self
    }

    pub fn store(&self) -> &Arc<dyn ExecutionStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Plans and commits one unit of work, then hands out its work items and events.
    async fn apply(&self, size: PlanSize, mut plan: Plan) -> Result<ChangeSet, WorkflowError> {
        if !self.analytics {
            plan = Box::new(move |unit| {
                unit.without_analytics();
                plan(unit)
            });
        }
        let changes = self.store.apply(self.clock.now(), plan, size).await?;
        self.dispatch(&changes).await;
        Ok(changes)
    }

    /// After a commit the change is durable; a queue or bus failure here is logged and
    /// repaired later (recovery re-enqueues queued work; the sweep ends stuck executions).
    async fn dispatch(&self, changes: &ChangeSet) {
        if !changes.log.is_empty() {
            self.log_signal.wake(&changes.log, &changes.logged);
        }
        if !changes.enqueue.is_empty()
            && let Err(e) = self.queue.enqueue(&changes.enqueue).await
        {
            tracing::error!(error = %e, "could not enqueue committed work");
        }
        if !changes.events.is_empty()
            && let Err(e) = self.bus.publish(&changes.events).await
        {
            tracing::error!(error = %e, "could not publish events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_codes_are_stable() {
        let codes: Vec<_> = ConflictKind::all().map(ConflictKind::code).collect();
        assert_eq!(
            codes,
            [
                "concurrent_modification",
                "step_conflict",
                "not_applicable",
                "already_started",
                "runner_only"
            ]
        );
        let transient: Vec<_> = ConflictKind::all().filter(|k| k.is_transient()).collect();
        assert_eq!(transient, [ConflictKind::ConcurrentModification]);
    }
}
