//! Execution use cases: start, read, report, complete, cancel, retry, time out.

use super::{Caller, Engine, EngineError};
use crate::domain::catalog::{
    CatalogEntry, TestCase, TestSuite, check_suite_steps, check_timeout, is_variable_name,
};
use crate::domain::execution::{
    ChildSlot, Execution, ExecutionConfig, ExecutionKind, ExecutionStatus, HistoryEntry,
    MAX_ENVIRONMENT_CHARS, MAX_RETRIES_LIMIT, StepReport, StepResult, SuitePlan, Transition,
};
use crate::domain::validation::ValidationErrors;
use crate::domain::workflow::{
    DefinitionSource, Reporter, TIMEOUT_ACTOR, UnitOfWork, WorkflowError,
};
use crate::ports::{ChildrenQuery, ExecutionQuery, Page, PlanSize, StepsQuery};
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::domain::execution::MAX_STEPS_PER_REPORT;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A start request, after parsing.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub config: ExecutionConfig,
    pub idempotency_key: Option<String>,
}

/// The result of a start: the execution, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Started {
    pub execution: Execution,
    pub created: bool,
}

impl Engine {
    pub async fn start_case(
        &self,
        caller: &Caller,
        test_case_id: &str,
        request: StartRequest,
    ) -> Result<Started, EngineError> {
        let case: TestCase = self.entry_to_start(caller, test_case_id, &request).await?;
        let now = self.clock.now();
        let id = self.ids.execution_id();
        let execution = Execution::new_case(id.clone(), &case, &caller.user, &request.config, now);
        let case = Arc::new(case);
        let start = move |unit: &mut UnitOfWork<'_>, actor: &str| {
            let definition = DefinitionSource::Snapshot(Arc::clone(&case));
            unit.start(execution.clone(), Some(definition), actor, "started")
        };
        self.start_once(caller, id, request.idempotency_key, start)
            .await
    }

    pub async fn start_suite(
        &self,
        caller: &Caller,
        test_suite_id: &str,
        request: StartRequest,
    ) -> Result<Started, EngineError> {
        let (suite, cases) = self.suite_to_start(caller, test_suite_id, &request).await?;
        let now = self.clock.now();
        let config = request.config;
        let suite_id = self.ids.execution_id();
        let mut children = Vec::with_capacity(cases.len());
        for (slot, case) in cases.iter().enumerate() {
            let mut child =
                Execution::new_case(self.ids.execution_id(), case, &caller.user, &config, now);
            child.parent_id = Some(suite_id.clone());
            child.test_suite_id = Some(suite.id.clone());
            child.slot = Some(slot as u32);
            children.push((child, Arc::clone(case)));
        }
        let plan = SuitePlan {
            mode: suite.mode,
            concurrency: suite.concurrency(),
            fail_fast: suite.fail_fast,
            slots: children
                .iter()
                .map(|(child, case)| ChildSlot {
                    test_case_id: case.id.clone(),
                    execution_id: child.id.clone(),
                    status: ExecutionStatus::Pending,
                    muted: false,
                })
                .collect(),
        };
        let execution =
            Execution::new_suite(suite_id.clone(), &suite, &caller.user, config, plan, now);
        let start = move |unit: &mut UnitOfWork<'_>, actor: &str| {
            for (child, case) in &children {
                let definition = DefinitionSource::Snapshot(Arc::clone(case));
                unit.add_child(child.clone(), definition, actor)?;
            }
            unit.start(execution.clone(), None, actor, "started")
        };
        self.start_once(caller, suite_id, request.idempotency_key, start)
            .await
    }

    /// The entry a start runs, once the request is valid (a bad request is refused before an
    /// unknown entry).
    async fn entry_to_start<T: CatalogEntry>(
        &self,
        caller: &Caller,
        id: &str,
        request: &StartRequest,
    ) -> Result<T, EngineError> {
        validate_start(request)?;
        self.get_entry::<T>(caller, id).await
    }

    /// The suite a start runs and its cases, each of which must still exist for the caller.
    async fn suite_to_start(
        &self,
        caller: &Caller,
        id: &str,
        request: &StartRequest,
    ) -> Result<(TestSuite, Vec<Arc<TestCase>>), EngineError> {
        let suite: TestSuite = self.entry_to_start(caller, id, request).await?;
        let mut cases = Vec::with_capacity(suite.test_case_ids.len());
        // A case named many times is read once, and its children share one copy.
        let mut loaded: HashMap<&str, Option<Arc<TestCase>>> = HashMap::new();
        let mut errors = ValidationErrors::default();
        for (i, case_id) in suite.test_case_ids.iter().enumerate() {
            let case = match loaded.get(case_id.as_str()) {
                Some(case) => case.clone(),
                None => {
                    let case = self
                        .store
                        .get_entry::<TestCase>(case_id)
                        .await?
                        .filter(|case| caller.can_see(&case.owner))
                        .map(Arc::new);
                    loaded.insert(case_id, case.clone());
                    case
                }
            };
            match case {
                Some(case) => cases.push(case),
                None => errors.add(
                    format!("test_case_ids[{i}]"),
                    format!("test case {case_id} no longer exists"),
                ),
            }
        }
        errors.into_result().map_err(EngineError::Validation)?;
        // The cases may have grown since the suite was saved.
        let steps = cases.iter().map(|case| case.steps.len() as u64).sum();
        check_suite_steps(steps).map_err(EngineError::Validation)?;
        Ok((suite, cases))
    }

    /// Starts execution `id` by `start` (given the actor) in one unit of work, which first
    /// claims the request's idempotency key, if any, for it.
    pub(super) async fn start_once(
        &self,
        caller: &Caller,
        id: String,
        key: Option<String>,
        mut start: impl FnMut(&mut UnitOfWork<'_>, &str) -> Result<(), WorkflowError> + Send + 'static,
    ) -> Result<Started, EngineError> {
        let (owner, actor, root) = (caller.user.clone(), caller.actor(), id.clone());
        // A suite's start or an import makes many executions; a case's, one, still planned
        // apart since a start is far rarer than the reports that follow it.
        let result = self
            .apply(
                PlanSize::Large,
                Box::new(move |unit: &mut UnitOfWork<'_>| {
                    if let Some(key) = &key {
                        unit.claim_idempotency_key(&owner, key, &root)?;
                    }
                    start(unit, &actor)
                }),
            )
            .await;
        self.started(caller, &id, result).await
    }

    /// Turns a start's outcome into the execution to return, honouring idempotency.
    async fn started(
        &self,
        caller: &Caller,
        id: &str,
        result: Result<crate::domain::workflow::ChangeSet, WorkflowError>,
    ) -> Result<Started, EngineError> {
        match result {
            Ok(changes) => {
                let execution = changes
                    .execution(id)
                    .cloned()
                    .ok_or_else(|| EngineError::Unavailable("start wrote no execution".into()))?;
                Ok(Started {
                    execution,
                    created: true,
                })
            }
            Err(WorkflowError::AlreadyStarted(existing)) => Ok(Started {
                execution: self.get_execution(caller, &existing).await?,
                created: false,
            }),
            Err(e) => Err(EngineError::from_workflow(e)),
        }
    }

    pub async fn get_execution(&self, caller: &Caller, id: &str) -> Result<Execution, EngineError> {
        match self.store.get_execution(id).await? {
            Some(execution) if caller.can_see(&execution.owner) => Ok(execution),
            _ => Err(EngineError::not_found("execution", id)),
        }
    }

    pub async fn list_executions(
        &self,
        caller: &Caller,
        mut query: ExecutionQuery,
    ) -> Result<Page<Execution>, EngineError> {
        query.owner = caller.scope();
        Ok(self.store.list_executions(&query).await?)
    }

    pub async fn list_steps(
        &self,
        caller: &Caller,
        id: &str,
        after_index: Option<u32>,
        limit: usize,
    ) -> Result<Page<StepResult>, EngineError> {
        let execution = self.get_execution(caller, id).await?;
        let query = StepsQuery {
            execution_id: id.to_owned(),
            limit,
            after_index,
        };
        let items = self.store.list_steps(&query).await?;
        let next_cursor = match items.last() {
            Some(last) if last.index + 1 < execution.progress.total && items.len() == limit => {
                Some(last.index.to_string())
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub async fn list_children(
        &self,
        caller: &Caller,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Execution>, EngineError> {
        Ok(self.list_suite_children(caller, id, after, limit).await?.1)
    }

    /// [`Self::list_children`] with the suite itself, whose plan says which children are
    /// muted.
    pub async fn list_suite_children(
        &self,
        caller: &Caller,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Execution, Page<Execution>), EngineError> {
        let suite = self.get_execution(caller, id).await?;
        let query = ChildrenQuery {
            parent_id: id.to_owned(),
            limit,
            after: after.map(str::to_owned),
        };
        Ok((suite, self.store.list_children(&query).await?))
    }

    pub async fn history(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        self.get_execution(caller, id).await?;
        Ok(self.store.history(id).await?)
    }

    /// Records step results from an outside reporter; returns the updated progress.
    pub async fn report_steps(
        &self,
        caller: &Caller,
        id: &str,
        reports: Vec<StepReport>,
    ) -> Result<Execution, EngineError> {
        if reports.is_empty() || reports.len() > MAX_STEPS_PER_REPORT {
            return Err(EngineError::invalid(
                "steps",
                format!("must hold 1..{MAX_STEPS_PER_REPORT} step results"),
            ));
        }
        let reporter = Reporter::Outside(caller.actor());
        self.record_steps(id, reports, reporter, caller.scope())
            .await
    }

    /// Records step results from a trusted producer (the asynchronous step-report queue,
    /// whose senders IAM already vetted), recorded as `reporter`.
    pub async fn report_steps_as(
        &self,
        id: &str,
        reports: Vec<StepReport>,
        reporter: &str,
    ) -> Result<Execution, EngineError> {
        if reports.is_empty() || reports.len() > MAX_STEPS_PER_REPORT {
            return Err(EngineError::invalid(
                "steps",
                format!("must hold 1..{MAX_STEPS_PER_REPORT} step results"),
            ));
        }
        let reporter = Reporter::Outside(reporter.to_owned());
        self.record_steps(id, reports, reporter, None).await
    }

    /// Re-checks what follows from an execution having changed (its suite's roll-up,
    /// scheduling and fail-fast). Idempotent: on a settled suite it changes nothing, so a
    /// finished event delivered twice is harmless. Returns whether anything changed.
    ///
    /// It plans even for an execution outside any suite: planning reads the execution, and a
    /// store that left part of its finish to do (its rollup contribution, on DynamoDB) does
    /// it then, which is what makes the finished event the backstop for it.
    pub async fn reconcile(&self, id: &str) -> Result<bool, EngineError> {
        if self.store.get_execution(id).await?.is_none() {
            return Err(EngineError::not_found("execution", id));
        }
        let id = id.to_owned();
        let changes = self
            .apply(
                PlanSize::Large,
                Box::new(move |unit: &mut UnitOfWork<'_>| unit.reconcile(&id)),
            )
            .await
            .map_err(EngineError::from_workflow)?;
        Ok(!changes.executions.is_empty())
    }

    /// Records step results for any reporter, the built-in runner included. A report larger
    /// than the store takes in one change is checked whole first, then applied in parts.
    /// `owner` limits who may report (`None`: anyone, for trusted reporters and admins).
    pub(crate) async fn record_steps(
        &self,
        id: &str,
        reports: Vec<StepReport>,
        reporter: Reporter,
        owner: Option<String>,
    ) -> Result<Execution, EngineError> {
        let apply = |reports: Vec<StepReport>| {
            let (reporter, owner) = (reporter.clone(), owner.clone());
            self.apply_to(id, owner, PlanSize::Small, move |unit, target| {
                unit.report_steps(target, &reports, &reporter).map(|_| ())
            })
        };
        let part = self.store.max_steps_per_change().max(1);
        if reports.len() <= part {
            return apply(reports).await;
        }
        let execution = self
            .store
            .get_execution(id)
            .await?
            .filter(|e| owner.as_ref().is_none_or(|o| *o == e.owner))
            .ok_or_else(|| EngineError::not_found("execution", id))?;
        check_reports(&execution, &reports)?;
        let mut latest = execution;
        for chunk in reports.chunks(part) {
            latest = apply(chunk.to_vec()).await?;
        }
        Ok(latest)
    }

    pub async fn complete(&self, caller: &Caller, id: &str) -> Result<Execution, EngineError> {
        let reporter = Reporter::Outside(caller.actor());
        self.complete_as(id, reporter, caller.scope()).await
    }

    /// `owner` limits who may complete (`None`: the runner, administrators).
    pub(crate) async fn complete_as(
        &self,
        id: &str,
        reporter: Reporter,
        owner: Option<String>,
    ) -> Result<Execution, EngineError> {
        self.apply_to(id, owner, PlanSize::Small, move |unit, target| {
            unit.complete(target, &reporter)
        })
        .await
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
        reason: Option<String>,
    ) -> Result<Execution, EngineError> {
        self.get_execution(caller, id).await?;
        let reason = reason.unwrap_or_else(|| "cancelled".into());
        self.transition(
            id,
            Transition::new(ExecutionStatus::Cancelled, caller.actor(), Some(&reason)),
        )
        .await
    }

    pub(crate) async fn transition(
        &self,
        id: &str,
        transition: Transition,
    ) -> Result<Execution, EngineError> {
        // Cancelling a suite ends each of its children.
        self.apply_to(id, None, PlanSize::Large, move |unit, target| {
            unit.transition(target, transition.clone())
        })
        .await
    }

    /// Applies `command` to execution `id` as one unit of work and returns the execution as
    /// committed. With an `owner`, only that user's execution may be changed: checked inside
    /// the same unit of work, so one read serves both.
    async fn apply_to(
        &self,
        id: &str,
        owner: Option<String>,
        size: PlanSize,
        mut command: impl FnMut(&mut UnitOfWork<'_>, &str) -> Result<(), WorkflowError> + Send + 'static,
    ) -> Result<Execution, EngineError> {
        let target = id.to_owned();
        let changes = self
            .apply(
                size,
                Box::new(move |unit: &mut UnitOfWork<'_>| {
                    unit.require_visible(&target, owner.as_deref())?;
                    command(unit, &target)
                }),
            )
            .await
            .map_err(EngineError::from_workflow)?;
        self.execution_in(changes, id).await
    }

    pub async fn retry(&self, caller: &Caller, id: &str) -> Result<Execution, EngineError> {
        self.get_execution(caller, id).await?;
        let (target, actor) = (id.to_owned(), caller.actor());
        let changes = self
            .apply(
                PlanSize::Large,
                Box::new(move |unit: &mut UnitOfWork<'_>| {
                    unit.manual_retry(&target, &actor).map(|_| ())
                }),
            )
            .await
            .map_err(EngineError::from_workflow)?;
        // The new root execution (a suite retry also creates its children).
        let new_id = changes
            .created
            .iter()
            .find(|created| {
                changes
                    .execution(created)
                    .is_some_and(|e| e.parent_id.is_none())
            })
            .cloned()
            .ok_or_else(|| EngineError::Unavailable("retry created nothing".into()))?;
        self.execution_in(changes, &new_id).await
    }

    /// Times out every execution past its deadline; returns how many it ended.
    pub async fn sweep_timeouts(&self) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let mut ended = 0;
        for id in self.store.overdue(now, 500).await? {
            let target = id.clone();
            let result = self
                .apply(
                    PlanSize::Large,
                    Box::new(move |unit: &mut UnitOfWork<'_>| {
                        let now = unit.now();
                        // A suite whose last child landed but was not settled (a writer that
                        // crashed between the roll-up and the settle) finishes now, on time.
                        if unit.execution(&target)?.kind == ExecutionKind::Suite {
                            unit.settle(&target)?;
                        }
                        let execution = unit.execution(&target)?;
                        // Re-checked inside the unit of work: it may have finished meanwhile.
                        if execution.status.is_terminal()
                            || execution.deadline_at.is_none_or(|d| d > now)
                        {
                            return Ok(());
                        }
                        let reason = format!("no result within {} s", execution.timeout_s);
                        unit.transition(
                            &target,
                            Transition::new(
                                ExecutionStatus::TimedOut,
                                TIMEOUT_ACTOR,
                                Some(&reason),
                            ),
                        )
                    }),
                )
                .await;
            match result {
                Ok(changes)
                    if changes
                        .execution(&id)
                        .is_some_and(|e| e.status == ExecutionStatus::TimedOut) =>
                {
                    ended += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "timeout sweep skipped an execution")
                }
            }
        }
        Ok(ended)
    }

    /// The current record of `id`, preferring the copy a change set already holds.
    async fn execution_in(
        &self,
        changes: crate::domain::workflow::ChangeSet,
        id: &str,
    ) -> Result<Execution, EngineError> {
        match changes.execution(id) {
            Some(execution) => Ok(execution.clone()),
            None => self
                .store
                .get_execution(id)
                .await?
                .ok_or_else(|| EngineError::not_found("execution", id)),
        }
    }
}

/// The checks the unit of work makes on a report, made up front for a report applied in
/// parts, so that none of it applies when any of it is refused.
fn check_reports(execution: &Execution, reports: &[StepReport]) -> Result<(), EngineError> {
    let status = execution.status;
    if !status.is_active() {
        return Err(crate::domain::execution::InvalidTransition {
            from: status,
            to: ExecutionStatus::Running,
        }
        .into());
    }
    crate::domain::workflow::check_step_reports(execution, reports).map_err(EngineError::Validation)
}

pub(super) fn validate_start(request: &StartRequest) -> Result<(), EngineError> {
    let mut errors = ValidationErrors::default();
    let config = &request.config;
    if let Some(timeout) = config.timeout_s {
        check_timeout(&mut errors, "config.timeout_s", timeout);
    }
    if config.max_retries.is_some_and(|r| r > MAX_RETRIES_LIMIT) {
        errors.add(
            "config.max_retries",
            format!("must be 0..{MAX_RETRIES_LIMIT}"),
        );
    }
    if config
        .environment
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.chars().count() > MAX_ENVIRONMENT_CHARS)
    {
        errors.add(
            "config.environment",
            format!("must be 1..{MAX_ENVIRONMENT_CHARS} characters"),
        );
    }
    for name in config.variables.keys() {
        if !is_variable_name(name) {
            errors.add(
                format!("config.variables.{name}"),
                "variable names are letters, digits, '_', '-' and '.'",
            );
        }
    }
    errors.check_tags("config.tags", &config.tags);
    if let Some(key) = &request.idempotency_key
        && (key.is_empty()
            || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || key.chars().any(|c| c.is_control()))
    {
        errors.add(
            "Idempotency-Key",
            format!("must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} printable characters"),
        );
    }
    errors.into_result().map_err(EngineError::Validation)
}
