//! The embedded store: one redb database file (or memory, for tests).
//!
//! Writes go through a single writer thread that commits in groups: every job waiting when a
//! transaction starts runs inside it, one after another, and all of them are acknowledged
//! after one durable commit. Each job sees the writes of the jobs before it, so the result is
//! exactly as if they had committed one by one, at a fraction of the fsyncs. Commands are
//! planned off the writer, on a snapshot (see [`EmbeddedStore::apply`]): `reads` serves a plan
//! its records, `changes` turns the plan into the record writes the writer applies.

mod changes;
mod reads;

use crate::domain::analytics::Rollup;
use crate::domain::catalog::{CatalogKind, TestCase};
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, HistoryEntry, StepResult};
use crate::domain::ids::IdSource;
use crate::domain::log::LogEntry;
use crate::domain::quarantine::{CaseHistoryEntry, Quarantine};
use crate::domain::time::Timestamp;
use crate::domain::workflow::{ChangeSet, UnitOfWork, WorkflowError};
use crate::ports::{
    CatalogHeader, CatalogQuery, CatalogRecord, ChildrenQuery, ExecutionQuery, ExecutionStore,
    OwnerScope, Page, Plan, PlanSize, StepsQuery,
};
use async_trait::async_trait;
use changes::Writes;
use reads::{
    Committed, DefinitionRecord, InWrite, PlanSource, Reads, Snapshot, definition_of, read_record,
    step_page,
};
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

const EXECUTIONS: Table = TableDefinition::new("executions");
const EXECUTIONS_BY_OWNER: Table = TableDefinition::new("executions_by_owner");
const CHILDREN: Table = TableDefinition::new("children");
const STEPS: Table = TableDefinition::new("steps");
const HISTORY: Table = TableDefinition::new("history");
/// Per execution: a [`DefinitionRecord`].
const DEFINITIONS: Table = TableDefinition::new("definitions");
/// One snapshot per test case version (`case` NUL `version`), shared by its executions.
const SHARED_DEFINITIONS: Table = TableDefinition::new("shared_definitions");
/// The step names of each shared snapshot of a partitioned case (`case` NUL `version` NUL
/// index): what a never-reported step is implied from, read one at a time.
const DEFINITION_STEPS: Table = TableDefinition::new("definition_steps");
/// Event log entries (`execution` NUL `seq`, 20 digits) and each log's last `seq`.
const EVENTS: Table = TableDefinition::new("events");
const LOG_HEADS: Table = TableDefinition::new("log_heads");
const DEADLINES: Table = TableDefinition::new("deadlines");
const ACTIVE: Table = TableDefinition::new("active");
const IDEMPOTENCY: Table = TableDefinition::new("idempotency");
const TEST_CASES: Table = TableDefinition::new("test_cases");
const TEST_CASES_BY_OWNER: Table = TableDefinition::new("test_cases_by_owner");
const TEST_SUITES: Table = TableDefinition::new("test_suites");
const TEST_SUITES_BY_OWNER: Table = TableDefinition::new("test_suites_by_owner");
/// Each test's current analytics rollup, by test id.
const ROLLUPS: Table = TableDefinition::new("rollups");
/// Earlier days' rollups (`test` NUL `day`).
const ROLLUP_DAYS: Table = TableDefinition::new("rollup_days");
/// Flaky test cases by owner (`owner` NUL flaky rank), and of everyone (by rank): the test id.
const FLAKY_BY_OWNER: Table = TableDefinition::new("flaky_by_owner");
const FLAKY: Table = TableDefinition::new("flaky");
/// Test cases' quarantines by test case id, and by owner (`owner` NUL id).
const QUARANTINES: Table = TableDefinition::new("quarantines");
const QUARANTINES_BY_OWNER: Table = TableDefinition::new("quarantines_by_owner");
/// Test cases' audit history (`test case` NUL `at` `#` ulid: in time order).
const CASE_HISTORY: Table = TableDefinition::new("case_history");

const ALL_TABLES: [Table; 24] = [
    EXECUTIONS,
    EXECUTIONS_BY_OWNER,
    CHILDREN,
    STEPS,
    HISTORY,
    DEFINITIONS,
    SHARED_DEFINITIONS,
    DEFINITION_STEPS,
    EVENTS,
    LOG_HEADS,
    DEADLINES,
    ACTIVE,
    IDEMPOTENCY,
    TEST_CASES,
    TEST_CASES_BY_OWNER,
    TEST_SUITES,
    TEST_SUITES_BY_OWNER,
    ROLLUPS,
    ROLLUP_DAYS,
    FLAKY_BY_OWNER,
    FLAKY,
    QUARANTINES,
    QUARANTINES_BY_OWNER,
    CASE_HISTORY,
];

/// The most jobs one commit carries; bounds the latency one group adds.
const MAX_GROUP: usize = 256;
/// A list request reads at most this many records before it returns a short page with a
/// cursor, so a selective filter cannot turn one request into a full scan.
const MAX_SCAN: usize = 5_000;
/// Separates the parts of composite keys; never appears in ids or owners.
const SEP: char = '\u{0}';

/// A job runs inside the group's write transaction and returns what to do once the
/// transaction's fate is known. An `Err` means the transaction may hold partial writes and
/// must be abandoned.
type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<AfterCommit, redb::Error> + Send>;
type AfterCommit = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: mpsc::UnboundedSender<Job>,
    ids: Arc<dyn IdSource>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path, ids: Arc<dyn IdSource>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(unavailable)?;
        Self::start(db, ids)
    }

    /// A store that lives in memory only: for tests.
    pub fn in_memory(ids: Arc<dyn IdSource>) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(unavailable)?;
        Self::start(db, ids)
    }

    fn start(db: Database, ids: Arc<dyn IdSource>) -> Result<Self, StoreError> {
        // Create every table up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(unavailable)?;
        for table in ALL_TABLES {
            txn.open_table(table).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        let (writer, jobs) = mpsc::unbounded_channel();
        let writer_db = Arc::clone(&db);
        std::thread::Builder::new()
            .name("runledger-store-writer".into())
            .spawn(move || write_loop(&writer_db, jobs))
            .map_err(unavailable)?;
        Ok(EmbeddedStore { db, writer, ids })
    }

    /// Runs `work` in the next group commit and waits for the durable result.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<Result<T, WorkflowError>, redb::Error>
        + Send
        + 'static,
    ) -> Result<T, WorkflowError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let outcome = work(txn)?;
            Ok(Box::new(move |committed: Result<(), StoreError>| {
                let result = match (committed, outcome) {
                    (Ok(()), outcome) => outcome,
                    // A refusal wrote nothing, so it stands even if the group failed.
                    (Err(_), Err(refusal)) if !matches!(refusal, WorkflowError::Store(_)) => {
                        Err(refusal)
                    }
                    (Err(e), _) => Err(WorkflowError::Store(e)),
                };
                let _ = reply.send(result);
            }) as AfterCommit)
        });
        self.writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the store is shut down".into()))?;
        answer.await.unwrap_or_else(|_| {
            Err(WorkflowError::Store(StoreError::Unavailable(
                "the write was abandoned".into(),
            )))
        })
    }

    async fn write_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<Result<T, StoreError>, redb::Error>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let result = self
            .write(move |txn| Ok(work(txn)?.map_err(WorkflowError::Store)))
            .await;
        result.map_err(|e| match e {
            WorkflowError::Store(e) => e,
            other => StoreError::Unavailable(other.to_string()),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(unavailable)?;
            work(&txn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    async fn get_record<T: DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_with(table, id, decode).await
    }

    /// The record `id` of `table`, read by `read`.
    async fn get_with<T: Send + 'static>(
        &self,
        table: Table,
        id: &str,
        read: fn(&[u8]) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(table).map_err(unavailable)?;
            match table.get(id.as_str()).map_err(unavailable)? {
                Some(raw) => read(raw.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }
}

fn write_loop(db: &Database, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                continue; // dropping the jobs tells their callers the write was abandoned
            }
        };
        let mut after_commit = Vec::with_capacity(group.len());
        let mut failed = None;
        for job in group {
            // A panicking job may have written part of its change: abandon the group, but
            // keep the writer alive for the next one.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&txn))) {
                Ok(Ok(then)) => after_commit.push(then),
                Ok(Err(e)) => {
                    failed = Some(e.to_string());
                    break;
                }
                Err(_) => {
                    failed = Some("a write job panicked".to_owned());
                    break;
                }
            }
        }
        let committed = match failed {
            Some(e) => {
                tracing::error!(error = %e, "write failed; abandoning its group");
                Err(StoreError::Unavailable("the write failed".into()))
            }
            None => txn.commit().map_err(|e| {
                tracing::error!(error = %e, "commit failed");
                StoreError::Unavailable("the commit failed".into())
            }),
        };
        for then in after_commit {
            then(committed.clone());
        }
    }
}

/// A command planned on a snapshot: what it read, and its outcome and writes.
struct Attempt {
    reads: Reads,
    outcome: Result<ChangeSet, WorkflowError>,
    writes: Writes,
}

/// Plans on the last commit; `None` when that cannot be done (the snapshot cannot be read, a
/// record cannot be encoded), for the writer to plan it itself.
fn plan_on_snapshot(
    db: &Database,
    plan: &mut Plan,
    ids: &dyn IdSource,
    now: Timestamp,
) -> Option<Attempt> {
    let txn = db.begin_read().ok()?;
    let mut source = PlanSource(Snapshot::new(&txn));
    let mut outcome = {
        let mut unit = UnitOfWork::new(&mut source, ids, now);
        plan(&mut unit).map(|()| unit.finish())
    };
    let writes = match &mut outcome {
        Ok(changes) => {
            let mut writes = Writes::of(changes, &mut source.0).ok()?;
            changes.logged = writes.take_logged();
            writes
        }
        // A refusal that rests on a failed read is the writer's to judge.
        Err(WorkflowError::Store(_)) => return None,
        Err(_) => Writes::default(),
    };
    Some(Attempt {
        reads: source.0.into_reads(),
        outcome,
        writes,
    })
}

/// Plans on the writer's own view and writes the change. Any failure, a record that cannot
/// be encoded or decoded included, abandons the whole group: nothing is ever half-written.
fn plan_in_writer(
    txn: &WriteTransaction,
    plan: &mut Plan,
    ids: &dyn IdSource,
    now: Timestamp,
) -> Result<Result<ChangeSet, WorkflowError>, redb::Error> {
    let mut source = PlanSource(InWrite { txn, failure: None });
    let planned = {
        let mut unit = UnitOfWork::new(&mut source, ids, now);
        plan(&mut unit).map(|()| unit.finish())
    };
    if let Some(e) = source.0.failure.take() {
        return Err(e);
    }
    let mut changes = match planned {
        Ok(changes) => changes,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut writes = Writes::of(&changes, &mut source.0).map_err(abandon)?;
    changes.logged = writes.take_logged();
    if let Some(e) = source.0.failure.take() {
        return Err(e);
    }
    writes.apply(txn)?;
    write_rollups(txn, &changes)?;
    Ok(Ok(changes))
}

/// Adds a change's rollup contributions to the records as the writer has them.
fn write_rollups(txn: &WriteTransaction, changes: &ChangeSet) -> Result<(), redb::Error> {
    if changes.rollups.is_empty() {
        return Ok(());
    }
    let mut reader = InWrite { txn, failure: None };
    let writes = Writes::rollups_of(changes, &mut reader);
    if let Some(e) = reader.failure.take() {
        return Err(e);
    }
    writes.map_err(abandon)?.apply(txn)
}

/// What a listing's scan makes of one id.
enum Scanned<T> {
    /// No record behind the id, and not counted as seen.
    Missing,
    /// A record the query does not ask for.
    Skipped,
    Kept(T),
}

/// A page of up to `limit` records kept from `ids` (a scan of at most `MAX_SCAN`, in listing
/// order). The cursor is the last kept id of a full page or, when the scan stopped early, the
/// last id seen, to continue where it stopped.
fn scan_page<T>(
    ids: Vec<String>,
    limit: usize,
    mut scan: impl FnMut(&str) -> Result<Scanned<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let scanned_all = ids.len() < MAX_SCAN;
    let mut items = Vec::new();
    let mut last_seen = None;
    let mut last_kept = None;
    for id in ids {
        match scan(&id)? {
            Scanned::Missing => continue,
            Scanned::Skipped => last_seen = Some(id),
            Scanned::Kept(item) => {
                items.push(item);
                last_seen = Some(id.clone());
                last_kept = Some(id);
                if items.len() == limit {
                    break;
                }
            }
        }
    }
    let next_cursor = if items.len() == limit {
        last_kept
    } else if !scanned_all {
        last_seen
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

fn abandon(error: StoreError) -> redb::Error {
    redb::Error::Corrupted(error.to_string())
}

#[async_trait]
impl ExecutionStore for EmbeddedStore {
    async fn insert_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError> {
        let (records, by_owner) = catalog_tables(record.kind);
        let owner_key = key2(&record.owner, &record.id);
        let (id, document) = (record.id.clone(), record.document.clone());
        self.write_store(move |txn| {
            let mut table = txn.open_table(records)?;
            if table.get(id.as_str())?.is_some() {
                return Ok(Err(StoreError::Conflict(format!("{id} already exists"))));
            }
            table.insert(id.as_str(), document.as_bytes())?;
            txn.open_table(by_owner)?
                .insert(owner_key.as_str(), [].as_slice())?;
            Ok(Ok(()))
        })
        .await
    }

    async fn insert_missing_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.write_store(move |txn| {
            for record in &records {
                let (table, by_owner) = catalog_tables(record.kind);
                let mut table = txn.open_table(table)?;
                if table.get(record.id.as_str())?.is_some() {
                    continue;
                }
                table.insert(record.id.as_str(), record.document.as_bytes())?;
                txn.open_table(by_owner)?
                    .insert(key2(&record.owner, &record.id).as_str(), [].as_slice())?;
            }
            Ok(Ok(()))
        })
        .await
    }

    async fn replace_catalog(
        &self,
        record: &CatalogRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let (records, _) = catalog_tables(record.kind);
        let (id, document) = (record.id.clone(), record.document.clone());
        self.write_store(move |txn| {
            let mut table = txn.open_table(records)?;
            let current = match table.get(id.as_str())? {
                Some(raw) => match CatalogHeader::read(raw.value()) {
                    Ok(header) => Some(header),
                    Err(e) => return Ok(Err(e)),
                },
                None => None,
            };
            match current {
                None => Ok(Err(StoreError::Conflict(format!("{id} does not exist")))),
                Some(c) if c.version != expected_version => Ok(Err(StoreError::Conflict(format!(
                    "{id} changed meanwhile (version {})",
                    c.version
                )))),
                Some(_) => {
                    table.insert(id.as_str(), document.as_bytes())?;
                    Ok(Ok(()))
                }
            }
        })
        .await
    }

    async fn get_catalog(&self, kind: CatalogKind, id: &str) -> Result<Option<String>, StoreError> {
        self.get_with(catalog_tables(kind).0, id, document).await
    }

    async fn delete_catalog(&self, kind: CatalogKind, id: &str) -> Result<bool, StoreError> {
        let (records, by_owner) = catalog_tables(kind);
        let id = id.to_owned();
        self.write_store(move |txn| {
            let mut table = txn.open_table(records)?;
            let owner = match table.remove(id.as_str())? {
                Some(raw) => match CatalogHeader::read(raw.value()) {
                    Ok(header) => header.owner,
                    // Already removed: abandon the group rather than leave the index behind.
                    Err(e) => return Err(redb::Error::Corrupted(e.to_string())),
                },
                None => return Ok(Ok(false)),
            };
            txn.open_table(by_owner)?
                .remove(key2(&owner, &id).as_str())?;
            Ok(Ok(true))
        })
        .await
    }

    async fn list_catalog(
        &self,
        kind: CatalogKind,
        query: &CatalogQuery,
    ) -> Result<Page<String>, StoreError> {
        let (records, by_owner) = catalog_tables(kind);
        let query = query.clone();
        self.read(move |txn| {
            let records = txn.open_table(records).map_err(unavailable)?;
            let ids: Vec<String> = match &query.owner {
                Some(owner) => {
                    let prefix = key2(owner, "");
                    let start = match &query.after {
                        Some(after) => key2(owner, after) + "\u{1}",
                        None => prefix.clone(),
                    };
                    let index = txn.open_table(by_owner).map_err(unavailable)?;
                    collect_keys(&index, &start, &prefix, MAX_SCAN)?
                        .into_iter()
                        .map(|k| k[prefix.len()..].to_owned())
                        .collect()
                }
                None => {
                    let start = query.after.clone().map(|a| a + "\u{1}").unwrap_or_default();
                    collect_keys(&records, &start, "", MAX_SCAN)?
                }
            };
            scan_page(ids, query.limit, |id| {
                let Some(raw) = records.get(id).map_err(unavailable)? else {
                    return Ok(Scanned::Missing);
                };
                let tagged = match &query.tag {
                    Some(tag) => CatalogHeader::read(raw.value())?.tags.contains(tag),
                    None => true,
                };
                Ok(if tagged {
                    Scanned::Kept(document(raw.value())?)
                } else {
                    Scanned::Skipped
                })
            })
        })
        .await
    }

    /// Plans on a snapshot, off the writer, and hands the writer the encoded change to write
    /// if what the plan read still holds; else the writer plans again on its own view (as one
    /// job, so it cannot lose again). The one writer thread so spends on a command only the
    /// check and the writes, and a large command (a 1,000-child suite start) does not hold up
    /// everyone else's while it is planned and encoded. A small plan is made right here; a
    /// large one on a blocking thread, so that it does not hold up a thread serving requests
    /// either (handing a step report's plan to one and back cost a sixth of its throughput).
    async fn apply(
        &self,
        now: Timestamp,
        plan: Plan,
        size: PlanSize,
    ) -> Result<ChangeSet, WorkflowError> {
        let (db, ids) = (Arc::clone(&self.db), Arc::clone(&self.ids));
        let make = move || {
            let mut plan = plan;
            let attempt = plan_on_snapshot(&db, &mut plan, ids.as_ref(), now);
            (plan, attempt)
        };
        let (mut plan, attempt) = match size {
            PlanSize::Small => make(),
            PlanSize::Large => tokio::task::spawn_blocking(make)
                .await
                .map_err(|e| StoreError::Unavailable(format!("planning failed: {e}")))?,
        };
        let ids = Arc::clone(&self.ids);
        self.write(move |txn| {
            if let Some(attempt) = attempt
                && attempt.reads.still_hold(txn)?
            {
                // A refusal writes nothing; a change, what was encoded for it.
                attempt.writes.apply(txn)?;
                if let Ok(changes) = &attempt.outcome {
                    write_rollups(txn, changes)?;
                }
                return Ok(attempt.outcome);
            }
            plan_in_writer(txn, &mut plan, ids.as_ref(), now)
        })
        .await
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.get_record(EXECUTIONS, id).await
    }

    async fn get_definition(&self, execution_id: &str) -> Result<Option<TestCase>, StoreError> {
        let execution_id = execution_id.to_owned();
        self.read(move |txn| {
            let mut committed = Committed(txn);
            match definition_of(&mut committed, &execution_id)? {
                Some(DefinitionRecord::Shared { shared }) => {
                    match read_record(&mut committed, SHARED_DEFINITIONS, &shared)? {
                        Some(case) => Ok(Some(case)),
                        None => Err(StoreError::Corrupt(format!(
                            "the definition of {execution_id} is missing"
                        ))),
                    }
                }
                Some(DefinitionRecord::Copy(case)) => Ok(Some(case)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_steps(&self, query: &StepsQuery) -> Result<Vec<StepResult>, StoreError> {
        let query = query.clone();
        self.read(move |txn| {
            let (id, limit) = (&query.execution_id, query.limit);
            let executions = txn.open_table(EXECUTIONS).map_err(unavailable)?;
            let Some(raw) = executions.get(id.as_str()).map_err(unavailable)? else {
                return Ok(Vec::new());
            };
            let execution: Execution = decode(raw.value())?;
            if !execution.is_partitioned() {
                return Ok(query.inline_page(execution.steps));
            }
            let total = execution.progress.total as usize;
            step_page(
                &mut Committed(txn),
                id,
                query.first() as usize,
                limit,
                total,
            )
        })
        .await
    }

    fn log_poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn log_written_with_change(&self) -> bool {
        true
    }

    async fn events(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let (start, end) = (
            event_key(execution_id, after.saturating_add(1)),
            event_key(execution_id, u64::MAX),
        );
        self.read(move |txn| {
            let table = txn.open_table(EVENTS).map_err(unavailable)?;
            let mut entries = Vec::new();
            for entry in table
                .range(start.as_str()..end.as_str())
                .map_err(unavailable)?
                .take(limit)
            {
                let (_, value) = entry.map_err(unavailable)?;
                entries.push(decode(value.value())?);
            }
            Ok(entries)
        })
        .await
    }

    async fn history(&self, execution_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let execution_id = execution_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(HISTORY).map_err(unavailable)?;
            records_of(&table, &execution_id)
        })
        .await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<Page<Execution>, StoreError> {
        let query = query.clone();
        self.read(move |txn| {
            let executions = txn.open_table(EXECUTIONS).map_err(unavailable)?;
            // Ids are ULIDs: reverse key order is newest first.
            let ids: Vec<String> = match &query.owner {
                Some(owner) => {
                    let index = txn.open_table(EXECUTIONS_BY_OWNER).map_err(unavailable)?;
                    let prefix = key2(owner, "");
                    let end = match &query.after {
                        Some(after) => key2(owner, after),
                        None => key2(owner, "\u{7f}"),
                    };
                    collect_keys_rev(&index, &prefix, &end, MAX_SCAN)?
                        .into_iter()
                        .map(|k| k[prefix.len()..].to_owned())
                        .collect()
                }
                None => {
                    let end = query.after.clone().unwrap_or_else(|| "\u{7f}".into());
                    collect_keys_rev(&executions, "", &end, MAX_SCAN)?
                }
            };
            scan_page(ids, query.limit, |id| {
                // A missing record still counts as seen: the cursor may continue after it.
                let Some(raw) = executions.get(id).map_err(unavailable)? else {
                    return Ok(Scanned::Skipped);
                };
                let execution: Execution = decode(raw.value())?;
                Ok(if query.matches(&execution) {
                    Scanned::Kept(execution)
                } else {
                    Scanned::Skipped
                })
            })
        })
        .await
    }

    async fn list_children(&self, query: &ChildrenQuery) -> Result<Page<Execution>, StoreError> {
        let (parent_id, limit) = (&query.parent_id, query.limit);
        let prefix = key2(parent_id, "");
        let start = match &query.after {
            Some(after) => key2(parent_id, after) + "\u{1}",
            None => prefix.clone(),
        };
        self.read(move |txn| {
            let index = txn.open_table(CHILDREN).map_err(unavailable)?;
            let executions = txn.open_table(EXECUTIONS).map_err(unavailable)?;
            let keys = collect_keys(&index, &start, &prefix, limit + 1)?;
            let mut items = Vec::new();
            for key in keys.iter().take(limit) {
                if let Some(raw) = executions.get(&key[prefix.len()..]).map_err(unavailable)? {
                    items.push(decode::<Execution>(raw.value())?);
                }
            }
            let next_cursor = if keys.len() > limit {
                items.last().map(|e| e.id.clone())
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        let end = deadline_key(now, "\u{7f}");
        self.read(move |txn| {
            let table = txn.open_table(DEADLINES).map_err(unavailable)?;
            let mut ids = Vec::new();
            for entry in table.range(..end.as_str()).map_err(unavailable)? {
                let (key, _) = entry.map_err(unavailable)?;
                if let Some((_, id)) = key.value().split_once(SEP) {
                    ids.push(id.to_owned());
                }
                if ids.len() == limit {
                    break;
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn active(&self, limit: usize) -> Result<Vec<Execution>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(ACTIVE).map_err(unavailable)?;
            let executions = txn.open_table(EXECUTIONS).map_err(unavailable)?;
            let mut found = Vec::new();
            for entry in table.iter().map_err(unavailable)? {
                let (key, _) = entry.map_err(unavailable)?;
                if let Some(raw) = executions.get(key.value()).map_err(unavailable)? {
                    found.push(decode(raw.value())?);
                }
                if found.len() == limit {
                    break;
                }
            }
            Ok(found)
        })
        .await
    }

    async fn current_rollup(&self, test_id: &str) -> Result<Option<Rollup>, StoreError> {
        self.get_record(ROLLUPS, test_id).await
    }

    async fn rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError> {
        let (test_id, since, until) = (test_id.to_owned(), since.to_owned(), until.to_owned());
        self.read(move |txn| {
            let days = txn.open_table(ROLLUP_DAYS).map_err(unavailable)?;
            let (start, end) = (key2(&test_id, &since), key2(&test_id, &until));
            let mut found: Vec<Rollup> = Vec::new();
            for entry in days
                .range(start.as_str()..=end.as_str())
                .map_err(unavailable)?
            {
                let (_, value) = entry.map_err(unavailable)?;
                found.push(decode(value.value())?);
            }
            let current = txn.open_table(ROLLUPS).map_err(unavailable)?;
            if let Some(raw) = current.get(test_id.as_str()).map_err(unavailable)? {
                let record: Rollup = decode(raw.value())?;
                if record.day >= since && record.day <= until {
                    found.push(record);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError> {
        let (owner, after) = (owner.map(str::to_owned), after.map(str::to_owned));
        self.read(move |txn| {
            let (index, prefix) = match &owner {
                Some(owner) => (FLAKY_BY_OWNER, key2(owner, "")),
                None => (FLAKY, String::new()),
            };
            let index = txn.open_table(index).map_err(unavailable)?;
            let current = txn.open_table(ROLLUPS).map_err(unavailable)?;
            let start = match &after {
                Some(after) => format!("{prefix}{after}\u{1}"),
                None => prefix.clone(),
            };
            let mut items = Vec::new();
            let mut more = false;
            for entry in index.range(start.as_str()..).map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                let test_id = document(value.value())?;
                if let Some(raw) = current.get(test_id.as_str()).map_err(unavailable)? {
                    items.push(decode::<Rollup>(raw.value())?);
                }
            }
            let next_cursor = if more {
                items.last().and_then(Rollup::flaky_rank)
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn put_quarantine(
        &self,
        quarantine: &Quarantine,
        entry: &CaseHistoryEntry,
    ) -> Result<(), StoreError> {
        let id = quarantine.test_case_id.clone();
        let owner_key = key2(&quarantine.owner, &id);
        let (record, history) = (encode(quarantine)?, encode(entry)?);
        let history_key = case_history_key(&id, entry, &self.ids.next_ulid());
        self.write_store(move |txn| {
            txn.open_table(QUARANTINES)?
                .insert(id.as_str(), record.as_slice())?;
            txn.open_table(QUARANTINES_BY_OWNER)?
                .insert(owner_key.as_str(), [].as_slice())?;
            txn.open_table(CASE_HISTORY)?
                .insert(history_key.as_str(), history.as_slice())?;
            Ok(Ok(()))
        })
        .await
    }

    async fn lift_quarantine(
        &self,
        test_case_id: &str,
        entry: &CaseHistoryEntry,
    ) -> Result<bool, StoreError> {
        let id = test_case_id.to_owned();
        let history = encode(entry)?;
        let history_key = case_history_key(&id, entry, &self.ids.next_ulid());
        self.write_store(move |txn| {
            let removed = txn
                .open_table(QUARANTINES)?
                .remove(id.as_str())?
                .map(|raw| decode::<Quarantine>(raw.value()));
            let Some(removed) = removed else {
                return Ok(Ok(false));
            };
            let removed = match removed {
                Ok(quarantine) => quarantine,
                Err(e) => return Err(abandon(e)),
            };
            txn.open_table(QUARANTINES_BY_OWNER)?
                .remove(key2(&removed.owner, &id).as_str())?;
            txn.open_table(CASE_HISTORY)?
                .insert(history_key.as_str(), history.as_slice())?;
            Ok(Ok(true))
        })
        .await
    }

    async fn get_quarantine(&self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError> {
        self.get_record(QUARANTINES, test_case_id).await
    }

    async fn list_quarantines(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, StoreError> {
        let (owner, after) = (owner.map(str::to_owned), after.map(str::to_owned));
        self.read(move |txn| {
            let records = txn.open_table(QUARANTINES).map_err(unavailable)?;
            let ids: Vec<String> = match &owner {
                Some(owner) => {
                    let index = txn.open_table(QUARANTINES_BY_OWNER).map_err(unavailable)?;
                    let prefix = key2(owner, "");
                    let start = match &after {
                        Some(after) => key2(owner, after) + "\u{1}",
                        None => prefix.clone(),
                    };
                    collect_keys(&index, &start, &prefix, limit + 1)?
                        .into_iter()
                        .map(|k| k[prefix.len()..].to_owned())
                        .collect()
                }
                None => {
                    let start = after.map(|a| a + "\u{1}").unwrap_or_default();
                    collect_keys(&records, &start, "", limit + 1)?
                }
            };
            let mut items = Vec::new();
            for id in ids.iter().take(limit) {
                if let Some(raw) = records.get(id.as_str()).map_err(unavailable)? {
                    items.push(decode::<Quarantine>(raw.value())?);
                }
            }
            let next_cursor = if ids.len() > limit {
                items.last().map(|q| q.test_case_id.clone())
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn case_history(&self, test_case_id: &str) -> Result<Vec<CaseHistoryEntry>, StoreError> {
        let id = test_case_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(CASE_HISTORY).map_err(unavailable)?;
            records_of(&table, &id)
        })
        .await
    }
}

/// The key of a test case's history entry: in time order (a monotonic `unique` orders the
/// entries of one millisecond), unique.
fn case_history_key(test_case_id: &str, entry: &CaseHistoryEntry, unique: &str) -> String {
    let at = entry.at.millis().max(0);
    key2(test_case_id, &format!("{at:020}#{unique}"))
}

/// Every record an execution keeps in `table` (its steps, its history), in key order.
fn records_of<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    execution_id: &str,
) -> Result<Vec<T>, StoreError> {
    let prefix = key2(execution_id, "");
    let mut records = Vec::new();
    for entry in table.range(prefix.as_str()..).map_err(unavailable)? {
        let (key, value) = entry.map_err(unavailable)?;
        if !key.value().starts_with(&prefix) {
            break;
        }
        records.push(decode(value.value())?);
    }
    Ok(records)
}

/// Keys from `start` (inclusive) while they begin with `prefix`, ascending.
fn collect_keys(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    start: &str,
    prefix: &str,
    max: usize,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for entry in table.range(start..).map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        let key = key.value();
        if !key.starts_with(prefix) || keys.len() == max {
            break;
        }
        keys.push(key.to_owned());
    }
    Ok(keys)
}

/// Keys in `[start, end)`, descending.
fn collect_keys_rev(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    start: &str,
    end: &str,
    max: usize,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for entry in table.range(start..end).map_err(unavailable)?.rev() {
        let (key, _) = entry.map_err(unavailable)?;
        keys.push(key.value().to_owned());
        if keys.len() == max {
            break;
        }
    }
    Ok(keys)
}

fn key2(a: &str, b: &str) -> String {
    format!("{a}{SEP}{b}")
}

fn step_key(execution_id: &str, index: u32) -> String {
    format!("{execution_id}{SEP}{index:010}")
}

fn seq_key(execution_id: &str, seq: u32) -> String {
    format!("{execution_id}{SEP}{seq:010}")
}

fn event_key(execution_id: &str, seq: u64) -> String {
    format!("{execution_id}{SEP}{seq:020}")
}

fn deadline_key(at: Timestamp, id: &str) -> String {
    format!("{:020}{SEP}{id}", at.millis().max(0))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A catalog kind's tables: its records by id, and its owner index (`owner` NUL `id`).
fn catalog_tables(kind: CatalogKind) -> (Table, Table) {
    match kind {
        CatalogKind::TestCase => (TEST_CASES, TEST_CASES_BY_OWNER),
        CatalogKind::TestSuite => (TEST_SUITES, TEST_SUITES_BY_OWNER),
    }
}

/// A stored catalog document as text.
fn document(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}
