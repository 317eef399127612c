//! The execution workflow as a unit of work: every command (start, report, complete, cancel,
//! time out, run) is planned here against records read through a [`RecordSource`], and yields
//! one [`ChangeSet`] that a store writes atomically. Stores never decide anything themselves,
//! so every adapter follows exactly the same rules: suite roll-up, fail-fast, sequential
//! scheduling and automatic retries all happen inside the same atomic change as the transition
//! that caused them, which is what makes each of them happen exactly once.

use super::analytics::{Contribution, day_of};
use super::catalog::{RunnerKind, TestCase};
use super::errors::StoreError;
use super::events::{DomainEvent, EventKind, WorkItem};
use super::execution::{
    ChildSlot, Execution, ExecutionKind, ExecutionStatus, HistoryEntry, InvalidTransition,
    ProgressGrowth, StepChange, StepConflict, StepReport, StepResult, StepStatus, SuitePlan,
    Transition,
};
use super::ids::IdSource;
use super::log::{LogEntry, PendingEntry, entries_between};
use super::quarantine::Quarantine;
use super::time::Timestamp;
use super::validation::ValidationErrors;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

pub const ENGINE_ACTOR: &str = "engine";
pub const RUNNER_ACTOR: &str = "runner";
pub const TIMEOUT_ACTOR: &str = "engine:timeout-sweep";

/// Who reports a case's steps and completes it. The built-in runner alone reports the steps
/// of a built-in (`http`) case: a result from outside would stand for a run that never
/// happened. Everyone else (a CI job, a browser agent, the step-report queue) reports
/// `external` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reporter {
    BuiltinRunner,
    /// An outside reporter, by the actor its history entries name.
    Outside(String),
}

impl Reporter {
    /// The actor its history entries name.
    pub fn actor(&self) -> &str {
        match self {
            Reporter::BuiltinRunner => RUNNER_ACTOR,
            Reporter::Outside(actor) => actor,
        }
    }
}

/// Reads a unit of work needs; a store serves them from inside its transaction (or from a
/// consistent snapshot that its conditional writes then protect).
pub trait RecordSource {
    fn execution(&mut self, id: &str) -> Result<Option<Execution>, StoreError>;
    /// One step of a partitioned execution: its record, or, never reported, the pending step
    /// its definition implies.
    fn step(&mut self, execution_id: &str, index: u32) -> Result<Option<StepResult>, StoreError>;
    /// Every step of a partitioned execution (records and implied ones), in index order.
    fn steps(&mut self, execution_id: &str) -> Result<Vec<StepResult>, StoreError>;
    /// The execution an `Idempotency-Key` already started, if any (with when).
    fn idempotent_start(
        &mut self,
        owner: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// A test case's quarantine, if it has one (lapsed or not).
    fn quarantine(&mut self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError>;
}

/// How long an `Idempotency-Key` keeps returning the execution it started.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// The longest duration a report may give: int64's maximum, as the API document types it.
pub const MAX_DURATION_MS: u64 = i64::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    pub owner: String,
    pub key: String,
    pub execution_id: String,
    pub created_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no execution with id {0}")]
    NotFound(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error(transparent)]
    StepConflict(#[from] StepConflict),
    #[error("invalid step report")]
    Validation(ValidationErrors),
    #[error("{0}")]
    NotApplicable(String),
    /// The `Idempotency-Key` already started this execution.
    #[error("already started as {0}")]
    AlreadyStarted(String),
    /// A report or completion from outside on an execution the built-in runner runs.
    #[error(
        "execution {0} runs built-in http steps: only the built-in runner reports or completes them (cancel it to stop it)"
    )]
    RunnerOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a new execution's step definitions come from.
#[derive(Debug, Clone)]
pub enum DefinitionSource {
    Snapshot(Arc<TestCase>),
    CopyOf(String),
}

/// Everything one command changes, to be written atomically.
#[derive(Debug, Default)]
pub struct ChangeSet {
    /// New or updated executions, in their final state.
    pub executions: Vec<Execution>,
    /// For each new case execution: where its definition comes from.
    pub definitions: Vec<(String, DefinitionSource)>,
    /// Partitioned step records to write.
    pub steps: Vec<(String, StepResult)>,
    /// History entries to append: execution id, sequence number, entry.
    pub history: Vec<(String, u32, HistoryEntry)>,
    /// Ids of executions created by this change (their records are in `executions`).
    pub created: Vec<String>,
    /// Executions the plan read but did not change: its decisions rest on them, so a store
    /// with optimistic concurrency checks they are still as read.
    pub unchanged: Vec<Execution>,
    /// `Idempotency-Key`s to remember, each claimed only where no live claim of it is.
    pub idempotency: Vec<IdempotencyRecord>,
    /// After commit: hand these to runners.
    pub enqueue: Vec<WorkItem>,
    /// After commit: publish these.
    pub events: Vec<DomainEvent>,
    /// The changed executions whose only change is some steps and the counters they move
    /// (each is also in `executions`, in its final state).
    pub step_deltas: Vec<StepDelta>,
    /// The changed suites whose only change is their view of some children.
    pub slot_deltas: Vec<SlotDelta>,
    /// Event log entries, in the order the change made them (see [`crate::domain::log`]).
    pub log: Vec<PendingEntry>,
    /// After commit, from a store that numbers the log in the write itself: those entries as
    /// written, for the readers waiting on them (empty where the log is numbered later).
    pub logged: Vec<LogEntry>,
    /// Analytics rollups the change's finished executions move, one per test.
    pub rollups: Vec<RollupChange>,
}

/// What a change adds to a test's analytics. A store adds the contributions, in order, to
/// the test's rollup as it has it when it writes (see `Advanced::add`), not as any plan read
/// it: finishes of one test then never conflict over that one record. The embedded store
/// does so in the finishing transaction; DynamoDB, which cannot afford one hot record in
/// every finishing write, stores each contribution with its execution and adds it right
/// after, exactly once (see its `rollups`).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupChange {
    pub test_id: String,
    /// Each execution whose finish this change counts, with what it adds.
    pub contributions: Vec<(String, Contribution)>,
}

/// An execution whose change is only some steps and the counters they move. A store may
/// write just that, conditioned on each step's stored status and on the execution's status
/// instead of on the whole record: reports of different steps then never conflict, and a
/// redelivered report finds its step already changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDelta {
    pub execution_id: String,
    /// The execution's status as left (as read too, unless `start` moved it).
    pub status: ExecutionStatus,
    /// Each changed step: its status as stored before the change, and its new result.
    pub steps: Vec<(StepStatus, StepResult)>,
    pub growth: ProgressGrowth,
    /// Set when the report also moves the execution from queued to running.
    pub start: Option<Start>,
}

/// The move from queued to running that a first step report makes. Reporters racing to make
/// it all make the same one: the history entry's position is fixed (`seq`), so a store may
/// write it only where none is, and the status only where it is queued or already running.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub seq: u32,
    pub entry: HistoryEntry,
    pub at: Timestamp,
}

/// A suite whose change is only its view of some children (their slots). A store may write
/// just those slots, each conditioned on the slot as read, so children finishing together
/// never contend for the whole suite record and each child counts once.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotDelta {
    pub suite_id: String,
    /// The suite's status, as read and as left.
    pub status: ExecutionStatus,
    /// Each changed slot: its position, the slot as read, the slot as left.
    pub slots: Vec<(u32, ChildSlot, ChildSlot)>,
}

impl ChangeSet {
    /// The delta of a change that is exactly one execution's steps (and perhaps its start)
    /// and nothing else.
    pub fn only_step_delta(&self) -> Option<&StepDelta> {
        match (self.executions.as_slice(), self.step_deltas.as_slice()) {
            ([execution], [delta])
                if delta.execution_id == execution.id
                    && self.history.len() == usize::from(delta.start.is_some())
                    && self.is_only_record_changes() =>
            {
                Some(delta)
            }
            _ => None,
        }
    }

    /// Another writer made the start this change planned (see [`Start`]): the execution
    /// started when that one says, and only that one announces it.
    pub fn started_elsewhere(&mut self, id: &str, started_at: Option<Timestamp>) {
        self.history.retain(|(e, _, _)| e != id);
        self.log.retain(|e| {
            !(e.execution_id == id
                && matches!(e.event, crate::domain::log::LogEvent::Status { .. }))
        });
        self.events
            .retain(|e| !(e.execution_id == id && e.kind == EventKind::ExecutionStarted));
        if let Some(execution) = self.executions.iter_mut().find(|e| e.id == id) {
            execution.started_at = started_at.or(execution.started_at);
        }
    }

    /// The slot delta of a suite this change touches, if that is all it changes of it.
    pub fn slot_delta(&self, suite_id: &str) -> Option<&SlotDelta> {
        self.slot_deltas.iter().find(|d| d.suite_id == suite_id)
    }

    /// Adds a change that followed this one (a suite settled after a child rolled up): its
    /// records replace this one's copies, its work and events come after this one's.
    pub fn absorb(&mut self, later: ChangeSet) {
        for execution in later.executions {
            self.unchanged.retain(|e| e.id != execution.id);
            match self.executions.iter_mut().find(|e| e.id == execution.id) {
                Some(earlier) => *earlier = execution,
                None => self.executions.push(execution),
            }
        }
        self.created.extend(later.created);
        self.history.extend(later.history);
        self.log.extend(later.log);
        self.enqueue.extend(later.enqueue);
        self.events.extend(later.events);
        self.rollups.extend(later.rollups);
    }

    /// No new records, definitions or idempotency claims: only changed executions.
    fn is_only_record_changes(&self) -> bool {
        self.created.is_empty()
            && self.definitions.is_empty()
            && self.idempotency.is_empty()
            && self.unchanged.is_empty()
            && self.rollups.is_empty()
    }

    /// An execution as this change leaves it, changed or only read.
    pub fn execution(&self, id: &str) -> Option<&Execution> {
        self.executions
            .iter()
            .chain(&self.unchanged)
            .find(|e| e.id == id)
    }
}

/// One command being planned.
pub struct UnitOfWork<'a> {
    source: &'a mut dyn RecordSource,
    ids: &'a dyn IdSource,
    now: Timestamp,
    loaded: HashMap<String, Execution>,
    /// Records as read, to tell changed from merely read ones at the end.
    originals: HashMap<String, Execution>,
    /// Ids in first-touched order, so writes and events come out in a stable order.
    touched: Vec<String>,
    changes: ChangeSet,
    partitioned_steps: BTreeMap<(String, u32), StepResult>,
    /// Partitioned steps skipped because they never reported (not logged one by one).
    unreported_skips: BTreeSet<(String, u32)>,
    /// Each written step's status before this unit first changed it.
    step_origins: BTreeMap<(String, u32), StepStatus>,
    /// Each changed suite slot as it was before this unit first changed it.
    slot_origins: BTreeMap<(String, u32), ChildSlot>,
    suites_to_settle: VecDeque<String>,
    /// Rollups moved so far, in first-moved order.
    rollups: Vec<RollupChange>,
    /// Whether finishes are counted in rollups.
    counting: bool,
}

impl<'a> UnitOfWork<'a> {
    pub fn new(source: &'a mut dyn RecordSource, ids: &'a dyn IdSource, now: Timestamp) -> Self {
        UnitOfWork {
            source,
            ids,
            now,
            loaded: HashMap::new(),
            originals: HashMap::new(),
            touched: Vec::new(),
            changes: ChangeSet::default(),
            partitioned_steps: BTreeMap::new(),
            unreported_skips: BTreeSet::new(),
            step_origins: BTreeMap::new(),
            slot_origins: BTreeMap::new(),
            suites_to_settle: VecDeque::new(),
            rollups: Vec::new(),
            counting: true,
        }
    }

    /// Counts no finish in analytics rollups (to measure what they cost).
    pub fn without_analytics(&mut self) {
        self.counting = false;
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The execution as this unit of work currently sees it.
    pub fn execution(&mut self, id: &str) -> Result<&mut Execution, WorkflowError> {
        if !self.loaded.contains_key(id) {
            let record = self
                .source
                .execution(id)?
                .ok_or_else(|| WorkflowError::NotFound(id.to_owned()))?;
            self.originals.insert(id.to_owned(), record.clone());
            self.loaded.insert(id.to_owned(), record);
        }
        if !self.touched.iter().any(|t| t == id) {
            self.touched.push(id.to_owned());
        }
        Ok(self.loaded.get_mut(id).expect("loaded just above"))
    }

    /// Refuses an execution the caller may not see exactly as one that does not exist.
    /// `owner` is `None` for an administrator.
    pub fn require_visible(&mut self, id: &str, owner: Option<&str>) -> Result<(), WorkflowError> {
        let execution = self.execution(id)?;
        match owner {
            Some(owner) if execution.owner != owner => Err(WorkflowError::NotFound(id.to_owned())),
            _ => Ok(()),
        }
    }

    /// Finishes planning: the change set to write.
    pub fn finish(mut self) -> ChangeSet {
        for id in &self.touched {
            if let Some(record) = self.loaded.remove(id) {
                let original = self.originals.get(id);
                if original == Some(&record) {
                    self.changes.unchanged.push(record);
                    continue;
                }
                let log = self.log_of(original, &record);
                self.changes.log.extend(log);
                let Some(original) = original else {
                    self.changes.executions.push(record);
                    continue;
                };
                if let Some(delta) = self.step_delta(original, &record) {
                    self.changes.step_deltas.push(delta);
                } else if let Some(delta) = self.slot_delta(original, &record) {
                    self.changes.slot_deltas.push(delta);
                }
                self.changes.executions.push(record);
            }
        }
        self.changes.steps = self
            .partitioned_steps
            .into_iter()
            .map(|((id, _), step)| (id, step))
            .collect();
        self.changes.rollups = self.rollups;
        self.changes
    }

    /// The event log entries of `record`'s change from `original`.
    fn log_of(&self, original: Option<&Execution>, record: &Execution) -> Vec<PendingEntry> {
        let history: Vec<&HistoryEntry> = self
            .changes
            .history
            .iter()
            .filter(|(id, _, _)| *id == record.id)
            .map(|(_, _, entry)| entry)
            .collect();
        let reported: Vec<&StepResult> = self
            .partitioned_steps
            .iter()
            .filter(|(key, _)| key.0 == record.id && !self.unreported_skips.contains(*key))
            .map(|(_, step)| step)
            .collect();
        entries_between(original, record, &history, &reported, self.now)
    }

    /// `changed` as a step delta, if its steps and counters are all that differ from
    /// `original`.
    fn step_delta(&self, original: &Execution, changed: &Execution) -> Option<StepDelta> {
        let mut expected = original.clone();
        let mut steps = Vec::new();
        for ((id, index), from) in &self.step_origins {
            if *id != changed.id {
                continue;
            }
            let step = if changed.is_partitioned() {
                self.partitioned_steps.get(&(id.clone(), *index))?.clone()
            } else {
                let step = changed.steps.get(*index as usize)?.clone();
                *expected.steps.get_mut(*index as usize)? = step.clone();
                step
            };
            steps.push((*from, step));
        }
        expected.progress = changed.progress;
        let start = if original.status == ExecutionStatus::Queued
            && changed.status == ExecutionStatus::Running
        {
            let mut entries = self
                .changes
                .history
                .iter()
                .filter(|(e, _, _)| *e == changed.id);
            let (_, seq, entry) = entries.next()?;
            if entries.next().is_some() || *seq != original.history_len {
                return None;
            }
            expected.status = changed.status;
            expected.started_at = changed.started_at;
            expected.history_len = changed.history_len;
            Some(Start {
                seq: *seq,
                entry: entry.clone(),
                at: changed.started_at?,
            })
        } else {
            None
        };
        (!steps.is_empty() && expected == *changed).then(|| StepDelta {
            execution_id: changed.id.clone(),
            status: changed.status,
            steps,
            growth: original.progress.growth_to(&changed.progress),
            start,
        })
    }

    /// `changed` as a slot delta, if its view of some children is all that differs from
    /// `original`.
    fn slot_delta(&self, original: &Execution, changed: &Execution) -> Option<SlotDelta> {
        let mut expected = original.clone();
        let mut slots = Vec::new();
        for ((id, position), before) in &self.slot_origins {
            if *id != changed.id {
                continue;
            }
            let after = changed
                .suite
                .as_ref()?
                .slots
                .get(*position as usize)?
                .clone();
            *expected.suite.as_mut()?.slots.get_mut(*position as usize)? = after.clone();
            slots.push((*position, before.clone(), after));
        }
        (!slots.is_empty() && expected == *changed).then(|| SlotDelta {
            suite_id: changed.id.clone(),
            status: changed.status,
            slots,
        })
    }

    // ----- starting -------------------------------------------------------------------

    /// Claims an `Idempotency-Key` for the execution about to start, or fails with
    /// [`WorkflowError::AlreadyStarted`] when the key started one within the window.
    pub fn claim_idempotency_key(
        &mut self,
        owner: &str,
        key: &str,
        execution_id: &str,
    ) -> Result<(), WorkflowError> {
        if let Some(existing) = self.source.idempotent_start(owner, key)?
            && self.now.millis() - existing.created_at.millis() < IDEMPOTENCY_WINDOW_MS
        {
            return Err(WorkflowError::AlreadyStarted(existing.execution_id));
        }
        self.changes.idempotency.push(IdempotencyRecord {
            owner: owner.to_owned(),
            key: key.to_owned(),
            execution_id: execution_id.to_owned(),
            created_at: self.now,
        });
        Ok(())
    }

    /// Adds a brand-new case or suite execution (with suite children already added through
    /// [`Self::add_child`]) and moves it to `queued`.
    pub fn start(
        &mut self,
        execution: Execution,
        definition: Option<DefinitionSource>,
        actor: &str,
        reason: &str,
    ) -> Result<(), WorkflowError> {
        let id = execution.id.clone();
        let queued = ExecutionStatus::Queued;
        self.insert_new(execution, definition, queued, actor, reason)?;
        self.after_status_change(&id)?;
        self.settle_suites()
    }

    /// Adds a suite's child as `pending`; the suite starts it when its turn comes.
    pub fn add_child(
        &mut self,
        child: Execution,
        definition: DefinitionSource,
        actor: &str,
    ) -> Result<(), WorkflowError> {
        self.insert_new(
            child,
            Some(definition),
            ExecutionStatus::Pending,
            actor,
            "waiting for its turn in the suite",
        )
    }

    /// Adds a new execution in `status`; a queued one gets its deadline.
    fn insert_new(
        &mut self,
        mut execution: Execution,
        definition: Option<DefinitionSource>,
        status: ExecutionStatus,
        actor: &str,
        reason: &str,
    ) -> Result<(), WorkflowError> {
        execution.status = status;
        if status == ExecutionStatus::Queued {
            execution.queued_at = Some(self.now);
            execution.deadline_at = Some(self.now.plus_millis(execution.timeout_s as i64 * 1000));
        }
        let id = execution.id.clone();
        let (seq, entry) = execution.creation_entry(actor, reason, self.now);
        self.changes.history.push((id.clone(), seq, entry));
        if execution.is_partitioned() {
            // Never-reported steps are implied by the definition: none is written at start.
            execution.steps.clear();
        }
        if let Some(definition) = definition {
            self.changes.definitions.push((id.clone(), definition));
        }
        self.changes.created.push(id.clone());
        self.loaded.insert(id.clone(), execution);
        self.touched.push(id);
        Ok(())
    }

    /// Records an execution that ran elsewhere (an import) as it finished: a history of its
    /// start and its end by `actor`, at the time it is recorded, and, for one that is no
    /// suite's child, its end announced. Its own times stay as the report told them.
    pub fn record_finished(
        &mut self,
        mut execution: Execution,
        definition: Option<DefinitionSource>,
        actor: &str,
        reason: &str,
    ) -> Result<(), WorkflowError> {
        let outcome = execution.status;
        let times = (
            execution.queued_at,
            execution.started_at,
            execution.finished_at,
            execution.duration_ms,
        );
        let id = execution.id.clone();
        // The history tells it as the state machine allows: a skipped test never ran.
        execution.status = if outcome == ExecutionStatus::Skipped {
            ExecutionStatus::Queued
        } else {
            ExecutionStatus::Running
        };
        let (seq, entry) = execution.creation_entry(actor, reason, self.now);
        self.changes.history.push((id.clone(), seq, entry));
        let (seq, entry) = execution.apply(&Transition::new(outcome, actor, None), self.now)?;
        self.changes.history.push((id.clone(), seq, entry));
        (
            execution.queued_at,
            execution.started_at,
            execution.finished_at,
            execution.duration_ms,
        ) = times;
        if let Some(definition) = definition {
            self.changes.definitions.push((id.clone(), definition));
        }
        if execution.parent_id.is_none() {
            let kind = match execution.kind {
                ExecutionKind::Suite => EventKind::SuiteFinished,
                ExecutionKind::Case => EventKind::ExecutionFinished,
            };
            self.event(&execution, kind);
        }
        self.count_finish(&execution)?;
        self.changes.created.push(id.clone());
        self.loaded.insert(id.clone(), execution);
        self.touched.push(id);
        Ok(())
    }

    // ----- transitions ----------------------------------------------------------------

    /// Applies a transition and everything that follows from it in the same change.
    pub fn transition(&mut self, id: &str, transition: Transition) -> Result<(), WorkflowError> {
        self.apply_transition(id, &transition)?;
        self.settle_suites()
    }

    fn apply_transition(&mut self, id: &str, transition: &Transition) -> Result<(), WorkflowError> {
        let now = self.now;
        let execution = self.execution(id)?;
        let (seq, entry) = execution.apply(transition, now)?;
        self.changes.history.push((id.to_owned(), seq, entry));
        self.after_status_change(id)?;
        let status = self.execution(id)?.status;
        if status.is_terminal() && self.execution(id)?.kind == ExecutionKind::Suite {
            self.cancel_children(id, status)?;
        }
        Ok(())
    }

    /// Work, events, retries and the parent's view after an execution's status changed.
    fn after_status_change(&mut self, id: &str) -> Result<(), WorkflowError> {
        let execution = self.execution(id)?.clone();
        let status = execution.status;
        match status {
            ExecutionStatus::Queued => {
                self.event(&execution, EventKind::ExecutionQueued);
                if execution.runner == Some(RunnerKind::Builtin) {
                    self.changes.enqueue.push(WorkItem {
                        execution_id: execution.id.clone(),
                        priority: execution.priority,
                    });
                }
                if execution.kind == ExecutionKind::Suite {
                    self.suites_to_settle.push_back(execution.id.clone());
                }
            }
            ExecutionStatus::Running => self.event(&execution, EventKind::ExecutionStarted),
            s if s.is_terminal() => {
                let kind = match execution.kind {
                    ExecutionKind::Suite => EventKind::SuiteFinished,
                    ExecutionKind::Case => EventKind::ExecutionFinished,
                };
                self.event(&execution, kind);
                self.count_finish(&execution)?;
            }
            _ => {}
        }
        let parent_active = match &execution.parent_id {
            Some(parent) => !self.execution(parent)?.status.is_terminal(),
            None => true,
        };
        let mut slot_view = (execution.id.clone(), status);
        // A suite child's failure while its case is quarantined does not fail the suite.
        let muted = match (&execution.parent_id, &execution.test_case_id) {
            (Some(_), Some(case)) if status.is_failure() => self
                .source
                .quarantine(case)?
                .is_some_and(|q| q.is_active(self.now)),
            _ => false,
        };
        if status.is_terminal() && parent_active && execution.earns_automatic_retry(status) {
            let retry_id =
                self.retry(id, ENGINE_ACTOR, &format!("automatic retry after {status}"))?;
            slot_view = (retry_id, ExecutionStatus::Queued);
        }
        if let (Some(parent_id), Some(slot)) = (&execution.parent_id, execution.slot) {
            self.execution(parent_id)?;
            let parent = self.loaded.get_mut(parent_id).expect("loaded just above");
            if let Some(plan) = parent.suite.as_mut()
                && let Some(entry) = plan.slots.get_mut(slot as usize)
                && entry.execution_id == execution.id
            {
                self.slot_origins
                    .entry((parent_id.clone(), slot))
                    .or_insert_with(|| entry.clone());
                entry.muted = muted && entry.execution_id == slot_view.0;
                entry.execution_id = slot_view.0;
                entry.status = slot_view.1;
            }
            self.suites_to_settle.push_back(parent_id.clone());
        }
        Ok(())
    }

    /// Counts a finished execution in its test's rollup: its contribution, which the store
    /// adds to the rollup. It happens in the change that finishes the execution, and an
    /// execution finishes once: so it counts once.
    fn count_finish(&mut self, execution: &Execution) -> Result<(), WorkflowError> {
        if !self.counting {
            return Ok(());
        }
        let Some(test_id) = execution.rollup_test_id().map(str::to_owned) else {
            return Ok(());
        };
        let contribution = Contribution {
            test_id,
            kind: execution.kind,
            owner: execution.owner.clone(),
            day: day_of(self.now),
            status: execution.status,
            duration_ms: execution.duration_ms,
            retry_pass: self.is_retry_pass(execution)?,
            skipped: execution.ran_nothing(),
        };
        let entry = (execution.id.clone(), contribution);
        match self
            .rollups
            .iter_mut()
            .find(|r| r.test_id == entry.1.test_id)
        {
            Some(change) => change.contributions.push(entry),
            None => self.rollups.push(RollupChange {
                test_id: entry.1.test_id.clone(),
                contributions: vec![entry],
            }),
        }
        Ok(())
    }

    /// Whether `execution` passed on a retry after a failed attempt. The attempt before is
    /// read without being touched: the change does not rest on it (it is finished).
    fn is_retry_pass(&mut self, execution: &Execution) -> Result<bool, WorkflowError> {
        let Some(before) = &execution.retry_of else {
            return Ok(false);
        };
        if execution.status != ExecutionStatus::Passed {
            return Ok(false);
        }
        let status = match self.loaded.get(before) {
            Some(earlier) => Some(earlier.status),
            None => self.source.execution(before)?.map(|e| e.status),
        };
        Ok(status.is_some_and(ExecutionStatus::is_failure))
    }

    /// Creates and queues a new attempt of a finished case execution; returns its id.
    pub fn retry(&mut self, id: &str, actor: &str, reason: &str) -> Result<String, WorkflowError> {
        let original = self.finished(id)?;
        if original.kind != ExecutionKind::Case {
            return Err(WorkflowError::NotApplicable(
                "a suite is retried as a whole, not as a case".into(),
            ));
        }
        let retry_id = self.ids.execution_id();
        let retry = self.fresh_attempt(&original, retry_id.clone())?;
        self.execution(id)?.retried_by = Some(retry_id.clone());
        let reason = format!("{reason} (retry of {id}, attempt {})", retry.attempt);
        let definition = DefinitionSource::CopyOf(id.to_owned());
        let queued = ExecutionStatus::Queued;
        self.insert_new(retry, Some(definition), queued, actor, &reason)?;
        self.after_status_change(&retry_id)?;
        Ok(retry_id)
    }

    /// A manual retry: a case execution (the new one stands on its own, outside any suite),
    /// or a whole suite with fresh children.
    pub fn manual_retry(&mut self, id: &str, actor: &str) -> Result<String, WorkflowError> {
        if self.execution(id)?.kind == ExecutionKind::Suite {
            return self.retry_suite(id, actor);
        }
        let original = self.finished(id)?;
        let retry_id = self.ids.execution_id();
        let mut retry = self.fresh_attempt(&original, retry_id.clone())?;
        // Detached before it is queued, so it neither reopens nor updates a finished suite.
        retry.parent_id = None;
        retry.slot = None;
        self.execution(id)?.retried_by = Some(retry_id.clone());
        let reason = format!("retry requested (retry of {id}, attempt {})", retry.attempt);
        self.start(
            retry,
            Some(DefinitionSource::CopyOf(id.to_owned())),
            actor,
            &reason,
        )?;
        Ok(retry_id)
    }

    fn retry_suite(&mut self, id: &str, actor: &str) -> Result<String, WorkflowError> {
        let original = self.finished(id)?;
        let Some(plan) = original.suite.clone() else {
            return Err(StoreError::Corrupt(format!("suite {id} has no plan")).into());
        };
        let suite_id = self.ids.execution_id();
        let mut suite = self.fresh_attempt(&original, suite_id.clone())?;
        let mut slots = Vec::with_capacity(plan.slots.len());
        for slot in &plan.slots {
            let child = self.execution(&slot.execution_id)?.clone();
            let child_id = self.ids.execution_id();
            let mut fresh = self.fresh_attempt(&child, child_id.clone())?;
            fresh.attempt = 1;
            fresh.retry_of = None;
            fresh.parent_id = Some(suite_id.clone());
            let definition = DefinitionSource::CopyOf(child.id.clone());
            self.add_child(fresh, definition, actor)?;
            slots.push(ChildSlot {
                test_case_id: slot.test_case_id.clone(),
                execution_id: child_id,
                status: ExecutionStatus::Pending,
                muted: false,
            });
        }
        suite.suite = Some(SuitePlan { slots, ..plan });
        self.execution(id)?.retried_by = Some(suite_id.clone());
        let reason = format!("retry requested (retry of {id}, attempt {})", suite.attempt);
        self.start(suite, None, actor, &reason)?;
        Ok(suite_id)
    }

    /// The execution, which must be terminal to be retried.
    fn finished(&mut self, id: &str) -> Result<Execution, WorkflowError> {
        let execution = self.execution(id)?.clone();
        if !execution.status.is_terminal() {
            return Err(InvalidTransition {
                from: execution.status,
                to: ExecutionStatus::Queued,
            }
            .into());
        }
        Ok(execution)
    }

    /// A pending copy of `original` under a new id: attempt + 1, steps reset (a partitioned
    /// one's are implied by the definition it shares with `original`).
    fn fresh_attempt(
        &mut self,
        original: &Execution,
        id: String,
    ) -> Result<Execution, WorkflowError> {
        let mut fresh = original.retry(id, self.now);
        if !fresh.is_partitioned() {
            fresh.steps = original
                .steps
                .iter()
                .map(|s| StepResult::pending(s.index, &s.name))
                .collect();
        }
        Ok(fresh)
    }

    fn cancel_children(
        &mut self,
        suite_id: &str,
        suite_status: ExecutionStatus,
    ) -> Result<(), WorkflowError> {
        let reason = format!("suite {suite_id} ended {suite_status}");
        for child in self.unfinished_children(suite_id)? {
            if !self.execution(&child)?.status.is_terminal() {
                let transition =
                    Transition::new(ExecutionStatus::Cancelled, ENGINE_ACTOR, Some(&reason));
                self.apply_transition(&child, &transition)?;
            }
        }
        Ok(())
    }

    /// The children a suite's slots do not show finished, all read at once. A slot that
    /// shows a child finished is right (children only move forward), so those are not read:
    /// a wide suite that finishes does not read its every child.
    fn unfinished_children(&mut self, suite_id: &str) -> Result<Vec<String>, WorkflowError> {
        let children: Vec<String> = match &self.execution(suite_id)?.suite {
            Some(plan) => plan
                .slots
                .iter()
                .filter(|s| !s.status.is_terminal())
                .map(|s| s.execution_id.clone())
                .collect(),
            None => return Ok(Vec::new()),
        };
        // Ask for every one before failing on the first missing, so a store that reads in
        // rounds reads them all in one.
        let mut first_error = None;
        for child in &children {
            if let Err(e) = self.execution(child) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(children),
        }
    }

    /// Re-checks what follows from execution `id` having changed: reads it (so a store rolls
    /// forward anything a writer left pending on it, such as its slot in its suite), then
    /// settles its suite. A no-op on a settled suite.
    pub fn reconcile(&mut self, id: &str) -> Result<(), WorkflowError> {
        match self.execution(id)?.parent_id.clone() {
            Some(parent) => self.settle(&parent),
            None => Ok(()),
        }
    }

    /// Settles one suite now (see [`Self::settle_suites`]); a no-op on a settled suite.
    pub fn settle(&mut self, suite_id: &str) -> Result<(), WorkflowError> {
        self.suites_to_settle.push_back(suite_id.to_owned());
        self.settle_suites()
    }

    /// Brings suites up to date with their children: fail-fast, scheduling, roll-up.
    /// Settling is idempotent, so a suite may be queued for it any number of times.
    fn settle_suites(&mut self) -> Result<(), WorkflowError> {
        while let Some(suite_id) = self.suites_to_settle.pop_front() {
            self.settle_suite(&suite_id)?;
        }
        Ok(())
    }

    fn settle_suite(&mut self, suite_id: &str) -> Result<(), WorkflowError> {
        let suite = self.execution(suite_id)?;
        if suite.status.is_terminal() {
            // A finished suite has no unfinished children: cancel any that a cascade cut
            // short (a store may have to write a large cascade in parts).
            let status = suite.status;
            return self.cancel_children(suite_id, status);
        }
        if suite.status == ExecutionStatus::Pending {
            return Ok(());
        }
        let Some(plan) = suite.suite.clone() else {
            return Ok(());
        };
        let suite_status = suite.status;
        let any_started = plan
            .slots
            .iter()
            .any(|s| !matches!(s.status, ExecutionStatus::Pending | ExecutionStatus::Queued));
        if suite_status == ExecutionStatus::Queued && any_started {
            let t = Transition::new(
                ExecutionStatus::Running,
                ENGINE_ACTOR,
                Some("a child started"),
            );
            self.apply_transition(suite_id, &t)?;
        }
        let failing = plan.slots.iter().find(|s| s.fails_suite());
        if plan.fail_fast
            && let Some(failed) = failing
        {
            let reason = format!("fail_fast: {} ended {}", failed.execution_id, failed.status);
            for child in self.unfinished_children(suite_id)? {
                if !self.execution(&child)?.status.is_terminal() {
                    let t =
                        Transition::new(ExecutionStatus::Cancelled, ENGINE_ACTOR, Some(&reason));
                    self.apply_transition(&child, &t)?;
                }
            }
        } else {
            for index in plan.startable() {
                let child = &plan.slots[index].execution_id;
                let t = Transition::new(
                    ExecutionStatus::Queued,
                    ENGINE_ACTOR,
                    Some("its turn in the suite"),
                );
                self.apply_transition(child, &t)?;
            }
        }
        let outcome = self
            .execution(suite_id)?
            .suite
            .as_ref()
            .and_then(|p| p.outcome());
        if let Some(outcome) = outcome {
            if self.execution(suite_id)?.status == ExecutionStatus::Queued {
                let t = Transition::new(
                    ExecutionStatus::Running,
                    ENGINE_ACTOR,
                    Some("children finished"),
                );
                self.apply_transition(suite_id, &t)?;
            }
            let t = Transition::new(outcome, ENGINE_ACTOR, Some("every child finished"));
            self.apply_transition(suite_id, &t)?;
        }
        Ok(())
    }

    // ----- steps ----------------------------------------------------------------------

    /// Records step results; the whole batch applies or nothing does. Returns how many
    /// steps changed (redeliveries of the same result change nothing).
    pub fn report_steps(
        &mut self,
        id: &str,
        reports: &[StepReport],
        reporter: &Reporter,
    ) -> Result<usize, WorkflowError> {
        let execution = self.execution(id)?;
        if execution.kind == ExecutionKind::Suite {
            return Err(WorkflowError::NotApplicable(
                "a suite execution has no steps of its own; report on its child executions".into(),
            ));
        }
        let checked = check_step_reports(execution, reports);
        // A finished execution refuses any report (409) before its contents are judged;
        // a refused plan writes nothing, so moving to running first is safe.
        self.begin_reporting(
            id,
            reporter,
            "first step reported",
            ExecutionStatus::Running,
        )?;
        checked.map_err(WorkflowError::Validation)?;
        let mut changed = 0;
        for report in reports {
            let stored = self.stored_step(id, report.index)?;
            if let StepChange::Update(step) = report.apply_to(&stored)? {
                changed += 1;
                self.write_step(id, stored.status, step)?;
            }
        }
        self.settle_suites()?;
        Ok(changed)
    }

    /// Reporters act on queued or running cases only, and only the built-in runner on a
    /// built-in one; the first act moves a queued one to running. `requested` names what the
    /// caller was after, for the refusal.
    fn begin_reporting(
        &mut self,
        id: &str,
        reporter: &Reporter,
        reason: &str,
        requested: ExecutionStatus,
    ) -> Result<(), WorkflowError> {
        let execution = self.execution(id)?;
        if execution.runner == Some(RunnerKind::Builtin) && *reporter != Reporter::BuiltinRunner {
            return Err(WorkflowError::RunnerOnly(id.to_owned()));
        }
        let status = execution.status;
        if !status.is_active() {
            return Err(InvalidTransition {
                from: status,
                to: requested,
            }
            .into());
        }
        if status == ExecutionStatus::Queued {
            let t = Transition::new(ExecutionStatus::Running, reporter.actor(), Some(reason));
            self.apply_transition(id, &t)?;
        }
        Ok(())
    }

    /// Marks every step that never reported as skipped.
    pub fn skip_unreported(&mut self, id: &str) -> Result<(), WorkflowError> {
        let execution = self.execution(id)?;
        let unreported: Vec<StepResult> = if execution.is_partitioned() {
            let mut all = self.source.steps(id)?;
            for step in &mut all {
                if let Some(newer) = self.partitioned_steps.get(&(id.to_owned(), step.index)) {
                    *step = newer.clone();
                }
            }
            all
        } else {
            execution.steps.clone()
        };
        let partitioned = self.execution(id)?.is_partitioned();
        for stored in unreported.into_iter().filter(|s| !s.status.is_terminal()) {
            let from = stored.status;
            if partitioned {
                self.unreported_skips.insert((id.to_owned(), stored.index));
            }
            let skipped = StepResult {
                status: StepStatus::Skipped,
                finished_at: Some(self.now),
                ..stored
            };
            self.write_step(id, from, skipped)?;
        }
        Ok(())
    }

    fn stored_step(&mut self, id: &str, index: u32) -> Result<StepResult, WorkflowError> {
        if let Some(step) = self.partitioned_steps.get(&(id.to_owned(), index)) {
            return Ok(step.clone());
        }
        let execution = self.execution(id)?;
        let found = if execution.is_partitioned() {
            self.source.step(id, index)?
        } else {
            execution.steps.get(index as usize).cloned()
        };
        found.ok_or_else(|| StoreError::Corrupt(format!("step {index} of {id} is missing")).into())
    }

    fn write_step(
        &mut self,
        id: &str,
        from: StepStatus,
        step: StepResult,
    ) -> Result<(), WorkflowError> {
        let now = self.now;
        self.step_origins
            .entry((id.to_owned(), step.index))
            .or_insert(from);
        let execution = self.execution(id)?;
        execution.progress.record(from, step.status);
        if !from.is_terminal() && matches!(step.status, StepStatus::Failed | StepStatus::Error) {
            let mut event = event_for(execution, EventKind::StepFailed, now);
            event.step_index = Some(step.index);
            event.message = step.message.clone();
            self.changes.events.push(event);
        }
        let execution = self.execution(id)?;
        if execution.is_partitioned() {
            self.partitioned_steps
                .insert((id.to_owned(), step.index), step);
        } else if let Some(slot) = execution.steps.get_mut(step.index as usize) {
            *slot = step;
        }
        Ok(())
    }

    /// The reporter says it is done: unreported steps are skipped, and the execution
    /// passes if no step failed or errored.
    pub fn complete(&mut self, id: &str, reporter: &Reporter) -> Result<(), WorkflowError> {
        let execution = self.execution(id)?;
        if execution.kind == ExecutionKind::Suite {
            return Err(WorkflowError::NotApplicable(
                "a suite execution completes when its children do".into(),
            ));
        }
        self.begin_reporting(
            id,
            reporter,
            "completed before any step report",
            ExecutionStatus::Passed,
        )?;
        self.skip_unreported(id)?;
        let outcome = if self.execution(id)?.progress.all_passed() {
            ExecutionStatus::Passed
        } else {
            ExecutionStatus::Failed
        };
        let actor = reporter.actor();
        self.transition(id, Transition::new(outcome, actor, Some("completed")))
    }

    fn event(&mut self, execution: &Execution, kind: EventKind) {
        self.changes
            .events
            .push(event_for(execution, kind, self.now));
    }
}

/// A report's own checks: indexes within the execution's steps, no step set back to pending.
pub fn check_step_reports(
    execution: &Execution,
    reports: &[StepReport],
) -> Result<(), ValidationErrors> {
    let total = execution.progress.total;
    let mut errors = ValidationErrors::default();
    for (i, report) in reports.iter().enumerate() {
        if report.index >= total {
            errors.add(
                format!("steps[{i}].index"),
                format!("must be below the execution's step count ({total})"),
            );
        }
        if report.status == StepStatus::Pending {
            errors.add(
                format!("steps[{i}].status"),
                "a report cannot set a step back to pending",
            );
        }
        // The document says int64, and the stores keep durations as signed numbers.
        if report.duration_ms.is_some_and(|d| d > MAX_DURATION_MS) {
            errors.add(
                format!("steps[{i}].duration_ms"),
                format!("must be 0..{MAX_DURATION_MS}"),
            );
        }
    }
    errors.into_result()
}

fn event_for(execution: &Execution, kind: EventKind, at: Timestamp) -> DomainEvent {
    DomainEvent {
        kind,
        execution_id: execution.id.clone(),
        execution_kind: execution.kind,
        owner: execution.owner.clone(),
        status: execution.status,
        parent_id: execution.parent_id.clone(),
        test_case_id: execution.test_case_id.clone(),
        test_suite_id: execution.test_suite_id.clone(),
        attempt: execution.attempt,
        step_index: None,
        message: None,
        at,
    }
}
