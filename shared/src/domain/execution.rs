//! The execution trace: status state machine, steps, progress, audit history, retry lineage.

use super::catalog::{RunnerKind, SuiteMode, TestCase, TestSuite};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// From this many steps on, a trace keeps its steps as separate records ("partitioned");
/// below it, inside the trace record ("inline").
pub const PARTITION_THRESHOLD: usize = 50;
pub const MAX_MESSAGE_BYTES: usize = 1024;
pub const MAX_OUTPUT_BYTES: usize = 4096;
pub const DEFAULT_TIMEOUT_S: u64 = 3600;
pub const MAX_RETRIES_LIMIT: u32 = 10;
pub const MAX_ENVIRONMENT_CHARS: usize = 100;
/// Step results in one report.
pub const MAX_STEPS_PER_REPORT: usize = 500;

named_enum! {
    #[derive(PartialOrd, Ord)]
    pub enum ExecutionStatus {
        Pending,
        Queued,
        Running,
        Passed,
        Failed,
        Cancelled,
        TimedOut,
        Error,
        /// Deliberately not run: an imported report's skipped test.
        Skipped,
    }
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ExecutionStatus::Pending | ExecutionStatus::Queued | ExecutionStatus::Running
        )
    }

    /// Handed to a runner and not finished: queued or running. Only active executions have
    /// a deadline, and recovery after a restart picks them up again.
    pub fn is_active(self) -> bool {
        matches!(self, ExecutionStatus::Queued | ExecutionStatus::Running)
    }

    /// An unsuccessful outcome: failed, timed out or error (not cancelled). Fail-fast stops a
    /// suite on one, and an automatic retry may answer one.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Error
        )
    }

    /// The contract's transition table; nothing leaves a terminal status.
    pub fn can_become(self, to: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, to),
            (Pending, Queued | Cancelled | Error | Skipped)
                | (Queued, Running | Cancelled | TimedOut | Error | Skipped)
                | (Running, Passed | Failed | Cancelled | TimedOut | Error)
        )
    }
}

named_enum! {
    #[derive(Default)]
    pub enum StepStatus {
        #[default]
        Pending,
        Running,
        Passed,
        Failed,
        Skipped,
        Error,
    }
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

named_enum! {
    pub enum ExecutionKind {
        Case,
        Suite,
    }
}

named_enum! {
    #[derive(PartialOrd, Ord, Default)]
    pub enum Priority {
        High,
        #[default]
        Normal,
        Low,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStorage {
    Inline,
    Partitioned,
}

impl StepStorage {
    pub fn for_step_count(count: usize) -> Self {
        if count < PARTITION_THRESHOLD {
            StepStorage::Inline
        } else {
            StepStorage::Partitioned
        }
    }
}

/// The optional `config` of a start request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::timeout_s)]
    pub timeout_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::max_retries)]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::environment)]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = super::schema::variables)]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = super::schema::tags)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: u32,
    pub completed: u32,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub errored: u32,
    pub percent: f64,
}

impl Progress {
    pub fn new(total: u32) -> Self {
        Progress {
            total,
            ..Progress::default()
        }
    }

    /// Moves one step from `from` to `to`; only a step becoming terminal counts.
    pub fn record(&mut self, from: StepStatus, to: StepStatus) {
        if from.is_terminal() || !to.is_terminal() {
            return;
        }
        self.completed += 1;
        match to {
            StepStatus::Passed => self.passed += 1,
            StepStatus::Failed => self.failed += 1,
            StepStatus::Skipped => self.skipped += 1,
            StepStatus::Error => self.errored += 1,
            StepStatus::Pending | StepStatus::Running => {}
        }
        self.percent = percent(self.completed, self.total);
    }

    /// The counters `later` has on top of these: what a store adds when it writes only a
    /// change's steps (counters only ever grow).
    pub fn growth_to(&self, later: &Progress) -> ProgressGrowth {
        ProgressGrowth {
            completed: later.completed.saturating_sub(self.completed),
            passed: later.passed.saturating_sub(self.passed),
            failed: later.failed.saturating_sub(self.failed),
            skipped: later.skipped.saturating_sub(self.skipped),
            errored: later.errored.saturating_sub(self.errored),
        }
    }

    /// `percent` from the counters: a store that adds to the counters in place (see
    /// [`ProgressGrowth`]) cannot compute it, so it is derived again when read.
    pub fn refresh_percent(&mut self) {
        self.percent = percent(self.completed, self.total);
    }

    /// Every completed step passed or was skipped.
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.errored == 0
    }
}

/// What one change adds to an execution's step counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressGrowth {
    pub completed: u32,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub errored: u32,
}

impl ProgressGrowth {
    /// The counters by their field names in a stored [`Progress`], with what each grows by.
    pub fn fields(&self) -> [(&'static str, u32); 5] {
        [
            ("completed", self.completed),
            ("passed", self.passed),
            ("failed", self.failed),
            ("skipped", self.skipped),
            ("errored", self.errored),
        ]
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepResult {
    pub index: u32,
    pub name: String,
    pub status: StepStatus,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
    pub output: Option<String>,
    pub truncated: bool,
}

impl StepResult {
    pub fn pending(index: u32, name: &str) -> Self {
        StepResult {
            index,
            name: name.to_owned(),
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            message: None,
            output: None,
            truncated: false,
        }
    }
}

/// One step's result as a reporter (or the built-in runner) sends it. The default (step 0,
/// pending, nothing else) is for filling in the fields a literal does not name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    #[schema(schema_with = super::schema::step_index)]
    pub index: u32,
    #[schema(schema_with = super::schema::reported_status)]
    pub status: StepStatus,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
}

/// What applying a report to a stored step means.
#[derive(Debug, Clone, PartialEq)]
pub enum StepChange {
    /// The step changes; progress moves from the old status to the new one.
    Update(StepResult),
    /// The same terminal result again (a redelivery): nothing changes.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepConflict {
    #[error("step {index} is already {current:?}; it cannot become {requested:?}")]
    AlreadyTerminal {
        index: u32,
        current: StepStatus,
        requested: StepStatus,
    },
}

impl StepReport {
    /// Applies this report to the stored step, capping message and output sizes.
    pub fn apply_to(&self, stored: &StepResult) -> Result<StepChange, StepConflict> {
        if stored.status.is_terminal() {
            return if stored.status == self.status {
                Ok(StepChange::Duplicate)
            } else {
                Err(StepConflict::AlreadyTerminal {
                    index: self.index,
                    current: stored.status,
                    requested: self.status,
                })
            };
        }
        let (message, message_cut) = cap(self.message.as_deref(), MAX_MESSAGE_BYTES);
        let (output, output_cut) = cap(self.output.as_deref(), MAX_OUTPUT_BYTES);
        let duration_ms = self
            .duration_ms
            .or_else(|| match (self.started_at, self.finished_at) {
                (Some(start), Some(end)) => Some(end.millis_since(start)),
                _ => None,
            });
        Ok(StepChange::Update(StepResult {
            index: stored.index,
            name: stored.name.clone(),
            status: self.status,
            started_at: self.started_at.or(stored.started_at),
            finished_at: self.finished_at,
            duration_ms,
            message,
            output,
            truncated: message_cut || output_cut,
        }))
    }
}

/// `first`'s tags, then those of `second` that `first` lacks.
fn merged_tags(first: &[String], second: &[String]) -> Vec<String> {
    let mut tags = first.to_vec();
    for tag in second {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

/// Keeps at most `max` bytes, cut on a character boundary.
pub fn cap(text: Option<&str>, max: usize) -> (Option<String>, bool) {
    match text {
        None => (None, false),
        Some(t) if t.len() <= max => (Some(t.to_owned()), false),
        Some(t) => {
            let mut end = max;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            (Some(t[..end].to_owned()), true)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub from: Option<ExecutionStatus>,
    pub to: ExecutionStatus,
    pub at: Timestamp,
    pub actor: String,
    pub reason: Option<String>,
}

/// A suite execution's view of one of its children (the newest attempt for that case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildSlot {
    pub test_case_id: String,
    pub execution_id: String,
    pub status: ExecutionStatus,
    /// A failure that does not fail the suite: its case was quarantined when it ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

impl ChildSlot {
    /// Whether this child fails its suite: it ended failed, errored or timed out, and its
    /// case was not quarantined then.
    pub fn fails_suite(&self) -> bool {
        self.status.is_failure() && !self.muted
    }

    /// The statuses this slot may hold for `next` to replace it: the earlier stages of the
    /// same child. A child only moves forward (pending, queued, running, then an end, or on
    /// to a retry), so a roll-up applied twice, or after a later one, finds its slot moved
    /// on and changes nothing.
    pub fn replaced_by(&self, next: &ChildSlot) -> Vec<ExecutionStatus> {
        let stage = |status: ExecutionStatus| match status {
            ExecutionStatus::Pending => 0,
            ExecutionStatus::Queued => 1,
            ExecutionStatus::Running => 2,
            _ => 3,
        };
        // A slot handed on to a retry replaces its child's every unfinished stage.
        let target = if next.execution_id == self.execution_id {
            stage(next.status)
        } else {
            3
        };
        ExecutionStatus::all()
            .filter(|s| stage(*s) < target)
            .collect()
    }
}

/// What a suite execution needs to schedule and roll up its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuitePlan {
    pub mode: SuiteMode,
    pub concurrency: u32,
    pub fail_fast: bool,
    pub slots: Vec<ChildSlot>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChildCounts {
    pub total: u32,
    pub pending: u32,
    pub queued: u32,
    pub running: u32,
    pub passed: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub timed_out: u32,
    pub error: u32,
    pub skipped: u32,
    /// Of the failed, errored and timed-out children, those whose case was quarantined when
    /// they ended: they do not fail the suite.
    pub muted: u32,
}

impl SuitePlan {
    pub fn counts(&self) -> ChildCounts {
        let mut counts = ChildCounts {
            total: self.slots.len() as u32,
            ..ChildCounts::default()
        };
        for slot in &self.slots {
            let counter = match slot.status {
                ExecutionStatus::Pending => &mut counts.pending,
                ExecutionStatus::Queued => &mut counts.queued,
                ExecutionStatus::Running => &mut counts.running,
                ExecutionStatus::Passed => &mut counts.passed,
                ExecutionStatus::Failed => &mut counts.failed,
                ExecutionStatus::Cancelled => &mut counts.cancelled,
                ExecutionStatus::TimedOut => &mut counts.timed_out,
                ExecutionStatus::Error => &mut counts.error,
                ExecutionStatus::Skipped => &mut counts.skipped,
            };
            *counter += 1;
            if slot.muted {
                counts.muted += 1;
            }
        }
        counts
    }

    /// A suite's progress counts its children: cancelled ones as skipped, timed out as failed.
    pub fn progress(&self) -> Progress {
        let c = self.counts();
        let completed = c.passed + c.failed + c.cancelled + c.timed_out + c.error + c.skipped;
        Progress {
            total: c.total,
            completed,
            passed: c.passed,
            failed: c.failed + c.timed_out,
            skipped: c.cancelled + c.skipped,
            errored: c.error,
            percent: percent(completed, c.total),
        }
    }

    /// Pending children that may start now, in suite order, within the concurrency limit.
    pub fn startable(&self) -> Vec<usize> {
        let active = self.slots.iter().filter(|s| s.status.is_active()).count();
        let room = (self.concurrency as usize).saturating_sub(active);
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == ExecutionStatus::Pending)
            .map(|(i, _)| i)
            .take(room)
            .collect()
    }

    /// Whether settling a suite in `status` with this plan would change anything (start it,
    /// start children, fail fast or finish it): what a store that rolls children up in place
    /// checks afterwards. It may say yes when settling then finds nothing to do, never no
    /// when settling has work.
    pub fn needs_settling(&self, status: ExecutionStatus) -> bool {
        if !status.is_active() {
            return false;
        }
        let started = self
            .slots
            .iter()
            .any(|s| !matches!(s.status, ExecutionStatus::Pending | ExecutionStatus::Queued));
        (status == ExecutionStatus::Queued && started)
            || (self.fail_fast && self.slots.iter().any(ChildSlot::fails_suite))
            || !self.startable().is_empty()
            || self.outcome().is_some()
    }

    /// The suite's own outcome once every child is terminal: passed only if every child
    /// passed or was skipped, a muted failure counting as passed.
    pub fn outcome(&self) -> Option<ExecutionStatus> {
        if self.slots.iter().any(|s| !s.status.is_terminal()) {
            return None;
        }
        if self.slots.iter().all(|s| {
            matches!(s.status, ExecutionStatus::Passed | ExecutionStatus::Skipped)
                || (s.muted && s.status.is_failure())
        }) {
            Some(ExecutionStatus::Passed)
        } else {
            Some(ExecutionStatus::Failed)
        }
    }
}

/// The execution trace record: everything about one execution except its history entries
/// and, when partitioned, its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub kind: ExecutionKind,
    pub name: String,
    pub test_case_id: Option<String>,
    pub test_suite_id: Option<String>,
    pub parent_id: Option<String>,
    pub owner: String,
    pub status: ExecutionStatus,
    pub priority: Priority,
    pub runner: Option<RunnerKind>,
    pub attempt: u32,
    pub retry_of: Option<String>,
    pub retried_by: Option<String>,
    pub config: ExecutionConfig,
    pub tags: Vec<String>,
    pub timeout_s: u64,
    pub max_retries: u32,
    pub created_at: Timestamp,
    pub queued_at: Option<Timestamp>,
    /// Absent, not null, until set: a store can then set it only if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub deadline_at: Option<Timestamp>,
    pub progress: Progress,
    pub storage: Option<StepStorage>,
    /// Only while `storage` is inline.
    pub steps: Vec<StepResult>,
    /// Only for suite executions.
    pub suite: Option<SuitePlan>,
    /// Position of this child in its parent suite.
    pub slot: Option<u32>,
    /// How many history entries exist; the next entry's sequence number.
    pub history_len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an execution that is {from} cannot become {to}")]
pub struct InvalidTransition {
    pub from: ExecutionStatus,
    pub to: ExecutionStatus,
}

/// A requested status change with who asked and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: ExecutionStatus,
    pub actor: String,
    pub reason: Option<String>,
}

impl Transition {
    pub fn new(to: ExecutionStatus, actor: impl Into<String>, reason: Option<&str>) -> Self {
        Transition {
            to,
            actor: actor.into(),
            reason: reason.map(str::to_owned),
        }
    }
}

impl Execution {
    /// The test whose rollup this execution's finish counts in: its case, or its suite.
    pub fn rollup_test_id(&self) -> Option<&str> {
        match self.kind {
            ExecutionKind::Case => self.test_case_id.as_deref(),
            ExecutionKind::Suite => self.test_suite_id.as_deref(),
        }
    }

    /// Ran nothing: `skipped`, or a case that passed with every step skipped (how imports
    /// recorded a skipped test before the `skipped` status; a finalize that no step reported
    /// to ends so too). Analytics and exports count it as a skip.
    pub fn ran_nothing(&self) -> bool {
        self.status == ExecutionStatus::Skipped
            || (self.kind == ExecutionKind::Case
                && self.status == ExecutionStatus::Passed
                && self.progress.total > 0
                && self.progress.skipped == self.progress.total)
    }

    /// A new case execution (status `pending`) of `case` under `config`, its steps pending.
    /// The request's timeout wins over the case's; the request's tags come first. A
    /// partitioned execution carries no steps: stores imply the never-reported ones from its
    /// definition, so a start writes one record however many steps the case has.
    pub fn new_case(
        id: String,
        case: &TestCase,
        owner: &str,
        config: &ExecutionConfig,
        now: Timestamp,
    ) -> Execution {
        let timeout_s = config
            .timeout_s
            .or(case.timeout_s)
            .unwrap_or(DEFAULT_TIMEOUT_S);
        let base = Execution::pending(id, ExecutionKind::Case, &case.name, owner, config.clone());
        let storage = StepStorage::for_step_count(case.steps.len());
        Execution {
            test_case_id: Some(case.id.clone()),
            runner: Some(case.runner()),
            tags: merged_tags(&config.tags, &case.tags),
            timeout_s,
            max_retries: config.max_retries.unwrap_or(0),
            created_at: now,
            progress: Progress::new(case.steps.len() as u32),
            storage: Some(storage),
            steps: match storage {
                StepStorage::Inline => case
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| StepResult::pending(i as u32, &s.name))
                    .collect(),
                StepStorage::Partitioned => Vec::new(),
            },
            ..base
        }
    }

    /// A new suite execution (status `pending`) of `suite` under `config`, scheduling its
    /// children by `plan`. A suite is never retried automatically (its children may be).
    pub fn new_suite(
        id: String,
        suite: &TestSuite,
        owner: &str,
        config: ExecutionConfig,
        plan: SuitePlan,
        now: Timestamp,
    ) -> Execution {
        let tags = merged_tags(&config.tags, &suite.tags);
        let timeout_s = config.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        let base = Execution::pending(id, ExecutionKind::Suite, &suite.name, owner, config);
        Execution {
            test_suite_id: Some(suite.id.clone()),
            tags,
            timeout_s,
            created_at: now,
            progress: Progress::new(plan.slots.len() as u32),
            suite: Some(plan),
            ..base
        }
    }

    /// What every new execution starts with: pending, first attempt, nothing run yet.
    fn pending(
        id: String,
        kind: ExecutionKind,
        name: &str,
        owner: &str,
        config: ExecutionConfig,
    ) -> Execution {
        Execution {
            id,
            kind,
            name: name.to_owned(),
            test_case_id: None,
            test_suite_id: None,
            parent_id: None,
            owner: owner.to_owned(),
            status: ExecutionStatus::Pending,
            priority: config.priority.unwrap_or_default(),
            runner: None,
            attempt: 1,
            retry_of: None,
            retried_by: None,
            config,
            tags: Vec::new(),
            timeout_s: DEFAULT_TIMEOUT_S,
            max_retries: 0,
            created_at: Timestamp::from_millis(0),
            queued_at: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            deadline_at: None,
            progress: Progress::new(0),
            storage: None,
            steps: Vec::new(),
            suite: None,
            slot: None,
            history_len: 0,
        }
    }

    pub fn is_partitioned(&self) -> bool {
        self.storage == Some(StepStorage::Partitioned)
    }

    /// Applies a transition by the table, stamps the trace, and returns the audit entry
    /// (with its sequence number) to append.
    pub fn apply(
        &mut self,
        transition: &Transition,
        at: Timestamp,
    ) -> Result<(u32, HistoryEntry), InvalidTransition> {
        let from = self.status;
        if !from.can_become(transition.to) {
            return Err(InvalidTransition {
                from,
                to: transition.to,
            });
        }
        self.status = transition.to;
        match transition.to {
            ExecutionStatus::Queued => {
                self.queued_at = Some(at);
                self.deadline_at = Some(at.plus_millis(self.timeout_s as i64 * 1000));
            }
            ExecutionStatus::Running => self.started_at = Some(at),
            _ => {}
        }
        if transition.to.is_terminal() {
            self.finished_at = Some(at);
            self.deadline_at = None;
            self.duration_ms = self
                .started_at
                .or(self.queued_at)
                .map(|s| at.millis_since(s));
        }
        Ok(self.append_history(Some(from), transition, at))
    }

    /// The first history entry, written when the trace is created.
    pub fn creation_entry(
        &mut self,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> (u32, HistoryEntry) {
        let transition = Transition::new(self.status, actor, Some(reason));
        self.append_history(None, &transition, at)
    }

    fn append_history(
        &mut self,
        from: Option<ExecutionStatus>,
        transition: &Transition,
        at: Timestamp,
    ) -> (u32, HistoryEntry) {
        let seq = self.history_len;
        self.history_len += 1;
        (
            seq,
            HistoryEntry {
                from,
                to: transition.to,
                at,
                actor: transition.actor.clone(),
                reason: transition.reason.clone(),
            },
        )
    }

    /// Whether ending with `status` earns an automatic retry.
    pub fn earns_automatic_retry(&self, status: ExecutionStatus) -> bool {
        self.kind == ExecutionKind::Case
            && status.is_failure()
            && self.attempt <= self.max_retries
            && self.retried_by.is_none()
    }

    /// A fresh, pending execution that repeats this one (`attempt` + 1, `retry_of` set);
    /// the caller fills in the steps (or a suite's children).
    pub fn retry(&self, id: String, at: Timestamp) -> Execution {
        let total = self.progress.total;
        let storage = self
            .storage
            .map(|_| StepStorage::for_step_count(total as usize));
        Execution {
            id,
            status: ExecutionStatus::Pending,
            attempt: self.attempt + 1,
            retry_of: Some(self.id.clone()),
            retried_by: None,
            created_at: at,
            queued_at: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            deadline_at: None,
            progress: Progress::new(total),
            storage,
            steps: Vec::new(),
            history_len: 0,
            ..self.clone()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn sample(status: ExecutionStatus) -> Execution {
        Execution {
            id: "ex_1".into(),
            kind: ExecutionKind::Case,
            name: "case".into(),
            test_case_id: Some("tc_1".into()),
            test_suite_id: None,
            parent_id: None,
            owner: "alice".into(),
            status,
            priority: Priority::Normal,
            runner: Some(RunnerKind::External),
            attempt: 1,
            retry_of: None,
            retried_by: None,
            config: ExecutionConfig::default(),
            tags: vec![],
            timeout_s: 60,
            max_retries: 0,
            created_at: Timestamp::from_millis(1_000),
            queued_at: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            deadline_at: None,
            progress: Progress::new(2),
            storage: Some(StepStorage::Inline),
            steps: vec![StepResult::pending(0, "a"), StepResult::pending(1, "b")],
            suite: None,
            slot: None,
            history_len: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;
    use ExecutionStatus::*;

    const ALLOWED: [(ExecutionStatus, ExecutionStatus); 14] = [
        (Pending, Queued),
        (Pending, Cancelled),
        (Pending, Error),
        (Pending, Skipped),
        (Queued, Running),
        (Queued, Cancelled),
        (Queued, TimedOut),
        (Queued, Error),
        (Queued, Skipped),
        (Running, Passed),
        (Running, Failed),
        (Running, Cancelled),
        (Running, TimedOut),
        (Running, Error),
    ];

    #[test]
    fn every_pair_follows_the_table() {
        for from in ExecutionStatus::all() {
            for to in ExecutionStatus::all() {
                let expected = ALLOWED.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                let mut execution = sample(from);
                let result = execution.apply(
                    &Transition::new(to, "test", None),
                    Timestamp::from_millis(5_000),
                );
                assert_eq!(result.is_ok(), expected, "{from} -> {to}");
                if expected {
                    let (seq, entry) = result.unwrap();
                    assert_eq!(seq, 1);
                    assert_eq!(execution.history_len, 2);
                    assert_eq!((entry.from, entry.to), (Some(from), to));
                    assert_eq!(execution.status, to);
                } else {
                    assert_eq!(
                        execution.status, from,
                        "a refused transition changes nothing"
                    );
                    assert_eq!(execution.history_len, 1);
                }
            }
        }
    }

    /// The derived name lists spell every variant as serde does.
    #[test]
    fn names_are_the_serde_names() {
        fn check<T>(names: &[&str])
        where
            T: strum::IntoEnumIterator + Serialize + Into<&'static str> + std::str::FromStr,
            T: PartialEq + std::fmt::Debug,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            let variants: Vec<T> = T::iter().collect();
            assert_eq!(variants.len(), names.len());
            for (variant, name) in variants.into_iter().zip(names) {
                assert_eq!(serde_json::to_value(&variant).unwrap(), *name);
                assert_eq!(name.parse::<T>().unwrap(), variant);
                assert_eq!(variant.into(), *name);
            }
        }
        use strum::VariantNames;
        check::<ExecutionStatus>(ExecutionStatus::VARIANTS);
        check::<StepStatus>(StepStatus::VARIANTS);
        check::<ExecutionKind>(ExecutionKind::VARIANTS);
        check::<Priority>(Priority::VARIANTS);
        assert_eq!(
            ExecutionStatus::VARIANTS.join(", "),
            "pending, queued, running, passed, failed, cancelled, timed_out, error, skipped"
        );
        assert_eq!(
            ExecutionStatus::parse("Pending"),
            None,
            "names are case-sensitive"
        );
    }

    #[test]
    fn active_and_failure_statuses() {
        let active: Vec<_> = ExecutionStatus::all().filter(|s| s.is_active()).collect();
        assert_eq!(active, vec![Queued, Running]);
        let failures: Vec<_> = ExecutionStatus::all().filter(|s| s.is_failure()).collect();
        assert_eq!(failures, vec![Failed, TimedOut, Error]);
        assert!(ExecutionStatus::all().all(|s| !(s.is_active() && s.is_terminal())));
    }

    #[test]
    fn terminal_statuses_are_the_last_six() {
        let terminal: Vec<_> = ExecutionStatus::all().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            vec![Passed, Failed, Cancelled, TimedOut, Error, Skipped]
        );
        for from in terminal {
            assert!(ExecutionStatus::all().all(|to| !from.can_become(to)));
        }
    }

    #[test]
    fn transitions_stamp_times_and_deadline() {
        let mut execution = sample(Pending);
        execution
            .apply(
                &Transition::new(Queued, "user:alice", Some("started")),
                Timestamp::from_millis(2_000),
            )
            .unwrap();
        assert_eq!(execution.deadline_at, Some(Timestamp::from_millis(62_000)));
        execution
            .apply(
                &Transition::new(Running, "runner", None),
                Timestamp::from_millis(3_000),
            )
            .unwrap();
        execution
            .apply(
                &Transition::new(Passed, "runner", None),
                Timestamp::from_millis(3_500),
            )
            .unwrap();
        assert_eq!(execution.started_at, Some(Timestamp::from_millis(3_000)));
        assert_eq!(execution.finished_at, Some(Timestamp::from_millis(3_500)));
        assert_eq!(execution.duration_ms, Some(500));
        assert_eq!(execution.deadline_at, None);
    }

    fn slot(id: &str, status: ExecutionStatus) -> ChildSlot {
        ChildSlot {
            test_case_id: "tc".into(),
            execution_id: id.into(),
            status,
            muted: false,
        }
    }

    #[test]
    fn a_slot_is_replaced_only_by_a_later_stage_of_its_child() {
        use ExecutionStatus::*;
        let queued = slot("a", Queued);
        assert_eq!(
            queued.replaced_by(&slot("a", Running)),
            vec![Pending, Queued]
        );
        assert_eq!(
            queued.replaced_by(&slot("a", Passed)),
            vec![Pending, Queued, Running]
        );
        // Handed on to a retry: every unfinished stage of the child it replaces.
        assert_eq!(
            slot("a", Running).replaced_by(&slot("b", Queued)),
            vec![Pending, Queued, Running]
        );
        assert!(
            slot("a", Pending)
                .replaced_by(&slot("a", Pending))
                .is_empty()
        );
    }

    #[test]
    fn a_suite_needs_settling_when_settling_has_work() {
        use ExecutionStatus::*;
        let plan = |concurrency, fail_fast, slots: Vec<ChildSlot>| SuitePlan {
            mode: SuiteMode::Parallel,
            concurrency,
            fail_fast,
            slots,
        };
        let running = plan(2, false, vec![slot("a", Running), slot("b", Running)]);
        assert!(!running.needs_settling(Running));
        assert!(
            running.needs_settling(Queued),
            "a child started: the suite runs"
        );
        let done = plan(2, false, vec![slot("a", Passed), slot("b", Failed)]);
        assert!(done.needs_settling(Running));
        assert!(!done.needs_settling(Failed), "a finished suite is settled");
        let room = plan(1, false, vec![slot("a", Passed), slot("b", Pending)]);
        assert!(room.needs_settling(Running), "the next child can start");
        let fail_fast = plan(2, true, vec![slot("a", Failed), slot("b", Running)]);
        assert!(fail_fast.needs_settling(Running));
    }

    #[test]
    fn progress_arithmetic() {
        let mut progress = Progress::new(3);
        progress.record(StepStatus::Pending, StepStatus::Running);
        assert_eq!(progress.completed, 0);
        progress.record(StepStatus::Running, StepStatus::Passed);
        progress.record(StepStatus::Pending, StepStatus::Failed);
        assert_eq!(progress.percent, 66.7);
        // A terminal step never counts twice.
        progress.record(StepStatus::Failed, StepStatus::Failed);
        progress.record(StepStatus::Pending, StepStatus::Skipped);
        assert_eq!(
            (
                progress.completed,
                progress.passed,
                progress.failed,
                progress.skipped,
                progress.errored
            ),
            (3, 1, 1, 1, 0)
        );
        assert_eq!(progress.percent, 100.0);
        assert!(!progress.all_passed());
        let mut errored = Progress::new(1);
        errored.record(StepStatus::Pending, StepStatus::Error);
        assert_eq!(errored.errored, 1);
        assert!(!errored.all_passed());
        assert_eq!(Progress::new(12).percent, 0.0);
    }

    #[test]
    fn partitioning_threshold() {
        assert_eq!(StepStorage::for_step_count(1), StepStorage::Inline);
        assert_eq!(StepStorage::for_step_count(49), StepStorage::Inline);
        assert_eq!(StepStorage::for_step_count(50), StepStorage::Partitioned);
        assert_eq!(
            StepStorage::for_step_count(10_000),
            StepStorage::Partitioned
        );
    }

    #[test]
    fn step_reports_are_idempotent_and_terminal_steps_are_final() {
        let stored = StepResult::pending(3, "checkout");
        let report = StepReport {
            index: 3,
            status: StepStatus::Failed,
            name: None,
            started_at: Some(Timestamp::from_millis(1_000)),
            finished_at: Some(Timestamp::from_millis(1_840)),
            duration_ms: None,
            message: Some("expected 200, got 503".into()),
            output: None,
        };
        let StepChange::Update(updated) = report.apply_to(&stored).unwrap() else {
            panic!("a pending step takes a report");
        };
        assert_eq!(updated.duration_ms, Some(840));
        assert_eq!(report.apply_to(&updated).unwrap(), StepChange::Duplicate);
        let passed = StepReport {
            status: StepStatus::Passed,
            ..report
        };
        assert!(matches!(
            passed.apply_to(&updated),
            Err(StepConflict::AlreadyTerminal { .. })
        ));
    }

    #[test]
    fn long_message_and_output_are_truncated_on_char_boundaries() {
        let report = StepReport {
            index: 0,
            status: StepStatus::Passed,
            name: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            message: Some("é".repeat(600)),
            output: Some("x".repeat(100_000)),
        };
        let StepChange::Update(step) = report.apply_to(&StepResult::pending(0, "a")).unwrap()
        else {
            panic!("expected an update");
        };
        assert!(step.truncated);
        assert_eq!(step.message.unwrap().len(), 1024);
        assert_eq!(step.output.unwrap().len(), 4096);
    }

    fn plan(statuses: &[ExecutionStatus], concurrency: u32) -> SuitePlan {
        SuitePlan {
            mode: SuiteMode::Parallel,
            concurrency,
            fail_fast: false,
            slots: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| ChildSlot {
                    test_case_id: format!("tc_{i}"),
                    execution_id: format!("ex_{i}"),
                    status: *s,
                    muted: false,
                })
                .collect(),
        }
    }

    #[test]
    fn suite_roll_up_for_every_mix_of_outcomes() {
        let terminal = [Passed, Failed, Cancelled, TimedOut, Error, Skipped];
        // Every ordered pair and triple of child outcomes.
        for a in terminal {
            for b in terminal {
                for c in terminal {
                    let outcome = plan(&[a, b, c], 10).outcome();
                    let expected = if [a, b, c].iter().all(|s| matches!(s, Passed | Skipped)) {
                        Passed
                    } else {
                        Failed
                    };
                    assert_eq!(outcome, Some(expected), "{a} {b} {c}");
                }
            }
        }
        for unfinished in [Pending, Queued, Running] {
            assert_eq!(plan(&[Passed, unfinished], 10).outcome(), None);
        }
        let counts = plan(
            &[
                Passed, Failed, Running, Pending, Queued, Cancelled, TimedOut, Error, Skipped,
            ],
            1,
        )
        .counts();
        assert_eq!(
            counts,
            ChildCounts {
                total: 9,
                pending: 1,
                queued: 1,
                running: 1,
                passed: 1,
                failed: 1,
                cancelled: 1,
                timed_out: 1,
                error: 1,
                skipped: 1,
                muted: 0
            }
        );
    }

    #[test]
    fn a_muted_failure_passes_its_suite_and_does_not_fail_fast() {
        let mut muted = plan(&[Passed, Failed], 2);
        muted.fail_fast = true;
        muted.slots[1].muted = true;
        assert_eq!(muted.outcome(), Some(Passed));
        assert_eq!((muted.counts().failed, muted.counts().muted), (1, 1));
        assert!(!muted.slots[1].fails_suite());
        muted.slots[1].muted = false;
        assert_eq!(muted.outcome(), Some(Failed));
        let json = serde_json::to_value(&muted.slots[0]).unwrap();
        assert!(json.get("muted").is_none(), "left out unless set: {json}");
    }

    #[test]
    fn suite_starts_children_within_concurrency() {
        assert_eq!(
            plan(&[Pending, Pending, Pending], 2).startable(),
            vec![0, 1]
        );
        assert_eq!(plan(&[Running, Pending, Pending], 2).startable(), vec![1]);
        assert_eq!(
            plan(&[Passed, Queued, Pending], 1).startable(),
            Vec::<usize>::new()
        );
        assert_eq!(plan(&[Passed, Failed, Pending], 1).startable(), vec![2]);
    }

    #[test]
    fn automatic_retry_lineage() {
        let mut execution = sample(Running);
        execution.max_retries = 1;
        assert!(execution.earns_automatic_retry(Failed));
        assert!(!execution.earns_automatic_retry(Passed));
        assert!(!execution.earns_automatic_retry(Cancelled));
        let retry = execution.retry("ex_2".into(), Timestamp::from_millis(9_000));
        assert_eq!(
            (retry.attempt, retry.retry_of.as_deref()),
            (2, Some("ex_1"))
        );
        assert_eq!(retry.status, Pending);
        assert!(
            !retry.earns_automatic_retry(Failed),
            "max_retries 1 allows one retry"
        );
    }
}
