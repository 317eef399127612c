//! The ports: what the use cases need from the outside world. Each port's adapters live in
//! one folder named after it: `store`, `queue`, `bus`; the step runner's in `runner`.

use crate::domain::analytics::Rollup;
use crate::domain::catalog::{CatalogEntry, CatalogKind, StepDefinition, TestCase};
use crate::domain::errors::StoreError;
use crate::domain::events::{CaseEvent, DomainEvent, WorkItem};
use crate::domain::execution::{
    Execution, ExecutionKind, ExecutionStatus, HistoryEntry, StepResult,
};
use crate::domain::log::LogEntry;
use crate::domain::quarantine::{CaseHistoryEntry, Quarantine};
use crate::domain::step_outcome::StepOutcome;
use crate::domain::time::Timestamp;
use crate::domain::workflow::{ChangeSet, UnitOfWork, WorkflowError};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// A page of results and the opaque cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Who may see what: `None` is an administrator, who sees everyone's records.
pub type OwnerScope<'a> = Option<&'a str>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogQuery {
    pub owner: Option<String>,
    pub tag: Option<String>,
    pub limit: usize,
    /// The id after which to continue (decoded from the client's cursor).
    pub after: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionQuery {
    pub owner: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub kind: Option<ExecutionKind>,
    pub test_case_id: Option<String>,
    pub test_suite_id: Option<String>,
    pub tag: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    /// The id after which to continue, newest first.
    pub after: Option<String>,
}

/// An execution's steps in index order, after `after_index`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepsQuery {
    pub execution_id: String,
    pub limit: usize,
    pub after_index: Option<u32>,
}

impl StepsQuery {
    /// The index of the page's first step.
    pub fn first(&self) -> u32 {
        self.after_index.map_or(0, |i| i.saturating_add(1))
    }

    /// The page of steps an execution keeps inline.
    pub fn inline_page(&self, steps: Vec<StepResult>) -> Vec<StepResult> {
        steps
            .into_iter()
            .skip(self.first() as usize)
            .take(self.limit)
            .collect()
    }
}

/// A suite's children, in suite order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildrenQuery {
    pub parent_id: String,
    pub limit: usize,
    /// The child id after which to continue.
    pub after: Option<String>,
}

impl ExecutionQuery {
    pub fn matches(&self, e: &Execution) -> bool {
        self.owner.as_ref().is_none_or(|o| *o == e.owner)
            && self.status.is_none_or(|s| s == e.status)
            && self.kind.is_none_or(|k| k == e.kind)
            && self
                .test_case_id
                .as_ref()
                .is_none_or(|t| Some(t) == e.test_case_id.as_ref())
            && self
                .test_suite_id
                .as_ref()
                .is_none_or(|t| Some(t) == e.test_suite_id.as_ref())
            && self.tag.as_ref().is_none_or(|t| e.tags.contains(t))
            && self.since.is_none_or(|s| e.created_at >= s)
            && self.until.is_none_or(|u| e.created_at < u)
    }
}

/// A catalog entry as a store writes it: the fields the store indexes, and the entry's JSON
/// document, which is what the store keeps and hands back.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRecord {
    pub kind: CatalogKind,
    pub id: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub version: u64,
    pub document: String,
}

impl CatalogRecord {
    pub fn of<T: CatalogEntry>(entry: &T) -> Result<Self, StoreError> {
        Ok(CatalogRecord {
            kind: T::KIND,
            id: entry.id().to_owned(),
            owner: entry.owner().to_owned(),
            tags: entry.tags().to_vec(),
            version: entry.version(),
            document: serde_json::to_string(entry).map_err(corrupt)?,
        })
    }
}

/// The fields every catalog entry's document has, read without decoding the whole entry.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct CatalogHeader {
    pub id: String,
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub version: u64,
}

impl CatalogHeader {
    pub fn read(document: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(document).map_err(corrupt)
    }
}

/// How many steps a catalog entry's document holds (none for a suite), read without
/// decoding them.
#[derive(Debug, serde::Deserialize)]
pub struct StepCount {
    #[serde(default)]
    steps: Vec<serde::de::IgnoredAny>,
}

impl StepCount {
    pub fn read(document: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(document).map_err(corrupt)
    }

    pub fn steps(&self) -> u64 {
        self.steps.len() as u64
    }
}

fn decode_entry<T: CatalogEntry>(document: &str) -> Result<T, StoreError> {
    serde_json::from_str(document).map_err(corrupt)
}

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// A command planned as a unit of work; a store may run it more than once (optimistic
/// concurrency), so it must only touch the unit of work.
pub type Plan = Box<dyn FnMut(&mut UnitOfWork<'_>) -> Result<(), WorkflowError> + Send>;

/// How much a plan reads and writes, so that a store can plan it where it suits: a small one
/// (a step report, a complete: one execution and its parent) takes microseconds and is
/// planned where it is called; a large one (a suite start, an import, a cancel or retry of a
/// suite, a sweep) may take milliseconds and is planned on a thread kept for long work, not
/// on one that serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSize {
    Small,
    Large,
}

/// Traces, steps, history and the catalog, with atomic multi-record changes.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    // --- catalog (typed access: the `*_entry` methods on `dyn ExecutionStore`) ---
    /// Adds a new entry; `Conflict` if its id exists.
    async fn insert_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError>;
    /// Inserts `records`, which the caller found missing (imports register tests on first
    /// sight), leaving any that exists by now as it is, or, where the store writes them in
    /// batches without conditions, with the same content written again.
    async fn insert_missing_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        for record in records {
            match self.insert_catalog(record).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    /// Replaces an entry whose stored version is `expected_version`, else `Conflict`.
    async fn replace_catalog(
        &self,
        record: &CatalogRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;
    /// The entry's document.
    async fn get_catalog(&self, kind: CatalogKind, id: &str) -> Result<Option<String>, StoreError>;
    /// The documents of many entries, in the order of `ids` (`None` where there is none). A
    /// store that can reads them in batches.
    async fn get_catalog_many(
        &self,
        kind: CatalogKind,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut documents = Vec::with_capacity(ids.len());
        for id in ids {
            documents.push(self.get_catalog(kind, id).await?);
        }
        Ok(documents)
    }
    /// Whether there was an entry to delete.
    async fn delete_catalog(&self, kind: CatalogKind, id: &str) -> Result<bool, StoreError>;
    /// Documents in id order (creation order), after `query.after`.
    async fn list_catalog(
        &self,
        kind: CatalogKind,
        query: &CatalogQuery,
    ) -> Result<Page<String>, StoreError>;

    // --- executions ---
    /// Plans `plan` against current records and writes its change set atomically.
    /// `now` stamps every change.
    async fn apply(
        &self,
        now: Timestamp,
        plan: Plan,
        size: PlanSize,
    ) -> Result<ChangeSet, WorkflowError>;

    /// The most step results one change should carry; larger reports are applied in parts
    /// of this size, each atomic (DynamoDB transactions hold at most 100 items).
    fn max_steps_per_change(&self) -> usize {
        usize::MAX
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError>;
    /// The step definitions an execution runs (a snapshot taken when it started).
    async fn get_definition(&self, execution_id: &str) -> Result<Option<TestCase>, StoreError>;
    /// Steps in index order, from `after_index` (exclusive) on, inline or partitioned alike.
    async fn list_steps(&self, query: &StepsQuery) -> Result<Vec<StepResult>, StoreError>;
    async fn history(&self, execution_id: &str) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Entries of an execution's event log with `seq` above `after`, oldest first, at most
    /// `limit`.
    async fn events(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;
    /// Brings every execution's event log up to date with what has committed. A no-op for a
    /// store that writes the log with the change; one that logs from its change stream
    /// (DynamoDB) takes in what is waiting there.
    async fn sync_log(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// How often a reader waiting for new log entries reads again. A store whose log is
    /// written with the change (the embedded one) needs it only as a fallback: the engine
    /// that committed the change wakes its readers at once.
    fn log_poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(250)
    }
    /// Whether every log entry is written in the commit of its change, by `apply`: then the
    /// engine that committed it knows the log changed, and its readers need not read the log
    /// again until it says so (a store that logs from its change stream: `false`).
    fn log_written_with_change(&self) -> bool {
        false
    }
    /// Newest first.
    async fn list_executions(&self, query: &ExecutionQuery) -> Result<Page<Execution>, StoreError>;
    /// A suite's children in suite order (every attempt), after `query.after`.
    async fn list_children(&self, query: &ChildrenQuery) -> Result<Page<Execution>, StoreError>;
    /// Ids of non-terminal executions whose deadline is at or before `now`.
    async fn overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Queued and running executions, for recovery after a restart.
    async fn active(&self, limit: usize) -> Result<Vec<Execution>, StoreError>;

    // --- analytics (written by `apply`, with the changes that finish executions) ---
    /// A test's current rollup: its newest.
    async fn current_rollup(&self, test_id: &str) -> Result<Option<Rollup>, StoreError>;
    /// A test's rollups of the days `since..=until` (`YYYY-MM-DD`), in day order, the current
    /// one included when its day is in range: at most one a day, and one query on DynamoDB.
    async fn rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError>;
    /// The current rollups of flaky test cases (of `owner`, or everyone's), highest flip
    /// rate first, then by id, after the [`Rollup::flaky_rank`] `after`.
    async fn flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError>;

    // --- quarantine and test cases' audit history ---
    /// Puts (or replaces) a test case's quarantine and appends `entry` to its history, in one
    /// atomic write.
    async fn put_quarantine(
        &self,
        quarantine: &Quarantine,
        entry: &CaseHistoryEntry,
    ) -> Result<(), StoreError>;
    /// Removes a test case's quarantine and appends `entry` to its history, in one atomic
    /// write; `false` (and nothing written) when it had none.
    async fn lift_quarantine(
        &self,
        test_case_id: &str,
        entry: &CaseHistoryEntry,
    ) -> Result<bool, StoreError>;
    async fn get_quarantine(&self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError>;
    /// Quarantines (of `owner`'s test cases, or everyone's) in test case id order, after
    /// `after`, lapsed ones included.
    async fn list_quarantines(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, StoreError>;
    /// A test case's audit history, oldest first.
    async fn case_history(&self, test_case_id: &str) -> Result<Vec<CaseHistoryEntry>, StoreError>;
}

/// Typed access to the catalog, one path for every kind of entry.
impl dyn ExecutionStore {
    pub async fn insert_entry<T: CatalogEntry>(&self, entry: &T) -> Result<(), StoreError> {
        self.insert_catalog(&CatalogRecord::of(entry)?).await
    }

    /// Replaces an entry whose stored version is `expected_version`, else `Conflict`.
    pub async fn replace_entry<T: CatalogEntry>(
        &self,
        entry: &T,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_catalog(&CatalogRecord::of(entry)?, expected_version)
            .await
    }

    pub async fn get_entry<T: CatalogEntry>(&self, id: &str) -> Result<Option<T>, StoreError> {
        match self.get_catalog(T::KIND, id).await? {
            Some(document) => decode_entry(&document).map(Some),
            None => Ok(None),
        }
    }

    /// Many entries, in the order of `ids`.
    pub async fn get_entries<T: CatalogEntry>(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<T>>, StoreError> {
        let documents = self.get_catalog_many(T::KIND, ids).await?;
        documents
            .iter()
            .map(|document| document.as_deref().map(decode_entry).transpose())
            .collect()
    }

    pub async fn delete_entry<T: CatalogEntry>(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_catalog(T::KIND, id).await
    }

    pub async fn list_entries<T: CatalogEntry>(
        &self,
        query: &CatalogQuery,
    ) -> Result<Page<T>, StoreError> {
        let page = self.list_catalog(T::KIND, query).await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(|document| decode_entry(document))
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }
}

/// Hands queued executions to runners.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn enqueue(&self, items: &[WorkItem]) -> Result<(), StoreError>;
}

/// Publishes domain events.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError>;
    /// Publishes what happened to test cases themselves (quarantined, released).
    async fn publish_case_events(&self, events: &[CaseEvent]) -> Result<(), StoreError>;
}

/// Runs one step definition; the HTTP runner in production, fakes in tests.
#[async_trait]
pub trait StepRunner: Send + Sync {
    async fn run_step(
        &self,
        step: &StepDefinition,
        variables: &BTreeMap<String, String>,
    ) -> StepOutcome;
}
