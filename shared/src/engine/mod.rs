//! The use cases: what a caller can ask of runledger, independent of how it asks.

mod catalog;
mod executions;
mod run;

pub use executions::{MAX_STEPS_PER_REPORT, StartRequest, Started, case_execution};
pub use run::StepRunner;

use crate::domain::clock::Clock;
use crate::domain::execution::InvalidTransition;
use crate::domain::ids::IdSource;
use crate::domain::validation::ValidationErrors;
use crate::domain::workflow::{ChangeSet, WorkflowError};
use crate::ports::{EventBus, ExecutionStore, Plan, StoreError, WorkQueue};
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
    Conflict { code: &'static str, detail: String },
    #[error("the store is unavailable")]
    Unavailable(String),
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
                code: "concurrent_modification",
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
                code: "step_conflict",
                detail: e.to_string(),
            },
            WorkflowError::Validation(errors) => EngineError::Validation(errors),
            WorkflowError::NotApplicable(detail) => EngineError::Conflict {
                code: "not_applicable",
                detail,
            },
            WorkflowError::AlreadyStarted(id) => EngineError::Conflict {
                code: "already_started",
                detail: format!("already started as {id}"),
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
        }
    }

    pub fn store(&self) -> &Arc<dyn ExecutionStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Plans and commits one unit of work, then hands out its work items and events.
    async fn apply(&self, plan: Plan) -> Result<ChangeSet, WorkflowError> {
        let changes = self.store.apply(self.clock.now(), plan).await?;
        self.dispatch(&changes).await;
        Ok(changes)
    }

    /// After a commit the change is durable; a queue or bus failure here is logged and
    /// repaired later (recovery re-enqueues queued work; the sweep ends stuck executions).
    async fn dispatch(&self, changes: &ChangeSet) {
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
