//! The DynamoDB store: one table, generic keys, conditional writes.
//!
//! - `keys`: the key scheme (every key and index-partition format);
//! - `items`: the item codec;
//! - `plan`: the plan/read loop and the reads it is built on;
//! - `write`: the write path (conditional puts, transactions, intents rolled forward);
//! - `delta`: the writes that do not contend (step reports, suite roll-ups);
//! - `log`: the event log, written from the table's change stream;
//! - `schema`: provisioning (the table, its indexes and projections, TTL).
//!
//! Every command is planned by the domain's unit of work against records read with strongly
//! consistent reads, then written with conditions: a changed execution only if its `ver` is
//! still the one read (so a status change is conditional on the status read), a new one only
//! if absent. A lost race is retried from fresh reads; a change that touches one item is one
//! conditional `PutItem`, more are one `TransactWriteItems`.

mod delta;
#[cfg(feature = "log-follower")]
mod follow;
mod items;
mod keys;
mod log;
mod plan;
mod quarantine;
mod rollups;
mod schema;
mod write;

#[cfg(feature = "log-follower")]
pub use follow::{LogFollower, from_stream_item};
pub use schema::{
    INDEX_ACTIVE, INDEX_ALL, INDEX_OWNER, INDEX_PARENT, TTL_ATTRIBUTE, projection_of,
};

use crate::domain::analytics::Rollup;
use crate::domain::catalog::{CatalogKind, TestCase};
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, HistoryEntry, StepResult};
use crate::domain::ids::IdSource;
use crate::domain::log::LogEntry;
use crate::domain::quarantine::{CaseHistoryEntry, Quarantine};
use crate::domain::time::Timestamp;
use crate::domain::workflow::{ChangeSet, WorkflowError};
use crate::ports::{
    CatalogHeader, CatalogQuery, CatalogRecord, ChildrenQuery, ExecutionQuery, ExecutionStore,
    OwnerScope, Page, Plan, PlanSize, StepsQuery,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use items::{StoredExecution, corrupt, decode_attr, s, string_attr};
use keys::{
    ACTIVE_EXECUTIONS, ALL_EXECUTIONS, EXEC_SK, STEP_PREFIX, all_catalog, catalog_pk, children_of,
    deadline_bound, exec_pk, execution_id_of_key, index_pk, index_sk, owner_catalog,
    owner_executions, step_sk,
};
use plan::{Snapshot, walk_end};
use serde_dynamo::aws_sdk_dynamodb_1::from_attribute_value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct DynamoStore {
    client: Client,
    table: String,
    ids: Arc<dyn IdSource>,
    /// Reads the table's change stream for `sync_log`, where no `log` function does.
    #[cfg(feature = "log-follower")]
    follower: Option<LogFollower>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, ids: Arc<dyn IdSource>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            ids,
            #[cfg(feature = "log-follower")]
            follower: None,
        }
    }

    /// This store, writing the event log itself when `sync_log` is called, from the table's
    /// change stream (locally and in tests; on AWS the `log` function does it).
    #[cfg(feature = "log-follower")]
    pub fn following_the_log(mut self, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        self.follower = Some(LogFollower::new(streams));
        self
    }
}

#[async_trait]
impl ExecutionStore for DynamoStore {
    async fn insert_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError> {
        self.write_new_catalog(record).await
    }

    async fn replace_catalog(
        &self,
        record: &CatalogRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.write_catalog_version(record, expected_version).await
    }

    async fn insert_missing_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        // Unconditional batches (25 items a request) rather than a transaction per entry:
        // what an import registers is what the same report would write again.
        let mut items = Vec::new();
        for record in records {
            let pk = catalog_pk(record.kind, &record.id);
            items.push(items::catalog_meta(record, &pk, record.version));
            items.extend(items::text_parts(&pk, &record.document));
        }
        self.batch_put(items).await
    }

    async fn get_catalog_many(
        &self,
        kind: CatalogKind,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.read_texts(ids.iter().map(|id| catalog_pk(kind, id)).collect())
            .await
    }

    async fn delete_catalog(&self, kind: CatalogKind, id: &str) -> Result<bool, StoreError> {
        self.delete_catalog_items(kind, id).await
    }

    async fn get_catalog(&self, kind: CatalogKind, id: &str) -> Result<Option<String>, StoreError> {
        self.read_text(&catalog_pk(kind, id)).await
    }

    async fn list_catalog(
        &self,
        kind: CatalogKind,
        query: &CatalogQuery,
    ) -> Result<Page<String>, StoreError> {
        let (index, partition) = match &query.owner {
            Some(owner) => (INDEX_OWNER, owner_catalog(kind, owner)),
            None => (INDEX_ALL, all_catalog(kind)),
        };
        let mut items = Vec::new();
        let mut after = query.after.clone();
        let mut scanned = 0;
        let mut last_item = None;
        loop {
            let (keys, last) = self
                .index_page(index, &partition, after.as_deref(), true, 100)
                .await?;
            for meta in &keys {
                scanned += 1;
                let id = string_attr(meta, "id")?.to_owned();
                let record_tags: Vec<String> = meta
                    .get("tags")
                    .map(|v| from_attribute_value(v.clone()))
                    .transpose()
                    .map_err(corrupt)?
                    .unwrap_or_default();
                if query.tag.as_ref().is_some_and(|t| !record_tags.contains(t)) {
                    after = Some(id);
                    continue;
                }
                if let Some(document) = self.get_catalog(kind, &id).await? {
                    // The meta item's tags may be older than the document's: check again.
                    let tagged = match &query.tag {
                        Some(tag) => CatalogHeader::read(document.as_bytes())?.tags.contains(tag),
                        None => true,
                    };
                    if tagged {
                        items.push(document);
                        last_item = Some(id.clone());
                    }
                }
                after = Some(id);
                if items.len() == query.limit {
                    return Ok(Page {
                        items,
                        next_cursor: last_item,
                    });
                }
            }
            if let Some(page) = walk_end(&mut items, last.is_none(), scanned, &after) {
                return Ok(page);
            }
        }
    }

    /// Every plan waits on the table's answers, not the CPU: planned where it is called.
    async fn apply(
        &self,
        now: Timestamp,
        plan: Plan,
        _size: PlanSize,
    ) -> Result<ChangeSet, WorkflowError> {
        self.plan_and_write(now, plan).await
    }

    fn max_steps_per_change(&self) -> usize {
        // Step results ride in their execution's record (as an intent) until written out:
        // 25 results of at most ~5.3 KB keep that record far below DynamoDB's 400 KB.
        25
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        Ok(self.load_execution(id).await?.map(|s| s.execution))
    }

    async fn get_definition(&self, execution_id: &str) -> Result<Option<TestCase>, StoreError> {
        match self
            .load_execution(execution_id)
            .await?
            .and_then(|s| s.definition)
        {
            Some(pk) => self.read_blob(&pk).await,
            None => Ok(None),
        }
    }

    async fn list_steps(&self, query: &StepsQuery) -> Result<Vec<StepResult>, StoreError> {
        let (execution_id, limit) = (query.execution_id.as_str(), query.limit);
        let Some(stored) = self.load_execution(execution_id).await? else {
            return Ok(Vec::new());
        };
        if !stored.execution.is_partitioned() {
            return Ok(query.inline_page(stored.execution.steps));
        }
        let first = query.first();
        let total = stored.execution.progress.total;
        let last = first.saturating_add(limit as u32).min(total);
        let mut snapshot = Snapshot::default();
        snapshot
            .executions
            .insert(execution_id.to_owned(), Some(stored));
        let names = self.step_names(&mut snapshot, execution_id).await?;
        let start_after = first.checked_sub(1).map(step_sk);
        let mut reported: BTreeMap<u32, StepResult> = BTreeMap::new();
        for item in self
            .query_prefix(
                &exec_pk(execution_id),
                STEP_PREFIX,
                start_after.as_deref(),
                Some(limit),
            )
            .await?
        {
            let step: StepResult = decode_attr(&item, "data")?;
            if step.index < last {
                reported.insert(step.index, step);
            }
        }
        let Some(Some(stored)) = snapshot.executions.remove(execution_id) else {
            return Ok(Vec::new());
        };
        for step in &stored.intent {
            if (first..last).contains(&step.index) {
                reported.insert(step.index, step.clone());
            }
        }
        Ok((first..last)
            .map(|i| {
                reported.remove(&i).unwrap_or_else(|| {
                    stored.unstored_step(
                        i,
                        names
                            .get(i as usize)
                            .map(String::as_str)
                            .unwrap_or_default(),
                    )
                })
            })
            .collect())
    }

    async fn events(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read_log(execution_id, after, limit).await
    }

    #[cfg(feature = "log-follower")]
    async fn sync_log(&self) -> Result<(), StoreError> {
        match &self.follower {
            Some(follower) => self.follow_stream(follower).await,
            None => Ok(()),
        }
    }

    async fn history(&self, execution_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .load_execution(execution_id)
            .await?
            .map(|s| s.history)
            .unwrap_or_default())
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<Page<Execution>, StoreError> {
        let (index, partition) = match &query.owner {
            Some(owner) => (INDEX_OWNER, owner_executions(owner)),
            None => (INDEX_ALL, ALL_EXECUTIONS.to_owned()),
        };
        self.executions_page(
            index,
            &partition,
            query.after.as_deref(),
            false,
            query.limit,
            Some(query),
        )
        .await
    }

    async fn list_children(&self, query: &ChildrenQuery) -> Result<Page<Execution>, StoreError> {
        self.executions_page(
            INDEX_PARENT,
            &children_of(&query.parent_id),
            query.after.as_deref(),
            true,
            query.limit,
            None,
        )
        .await
    }

    async fn overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_ACTIVE)
            .key_condition_expression(format!(
                "{} = :active AND {} <= :now",
                index_pk(INDEX_ACTIVE),
                index_sk(INDEX_ACTIVE)
            ))
            .expression_attribute_values(":active", s(ACTIVE_EXECUTIONS))
            .expression_attribute_values(":now", s(&deadline_bound(now)))
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| sdk_error("query deadlines", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(execution_id_of_key)
            .collect()
    }

    async fn active(&self, limit: usize) -> Result<Vec<Execution>, StoreError> {
        // The deadline index holds keys only: page through it (by DynamoDB's own cursor),
        // then read the executions, keeping those still active by the time they are read.
        let mut ids = Vec::new();
        let mut start = None;
        while ids.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_ACTIVE)
                .key_condition_expression(format!("{} = :active", index_pk(INDEX_ACTIVE)))
                .expression_attribute_values(":active", s(ACTIVE_EXECUTIONS))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("query active", e))?;
            for item in output.items.unwrap_or_default() {
                if ids.len() < limit {
                    ids.push(execution_id_of_key(&item)?);
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let keys = ids
            .iter()
            .map(|id| (exec_pk(id), EXEC_SK.to_owned()))
            .collect();
        let mut found: HashMap<String, Execution> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let execution = StoredExecution::from_item(&item)?.execution;
            if execution.status.is_active() {
                found.insert(execution.id.clone(), execution);
            }
        }
        // In the index's order: earliest deadline first.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn current_rollup(&self, test_id: &str) -> Result<Option<Rollup>, StoreError> {
        self.read_current_rollup(test_id).await
    }

    async fn rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError> {
        self.read_rollups(test_id, since, until).await
    }

    async fn flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError> {
        self.read_flaky(owner, limit, after).await
    }

    async fn put_quarantine(
        &self,
        quarantine: &Quarantine,
        entry: &CaseHistoryEntry,
    ) -> Result<(), StoreError> {
        self.write_quarantine(quarantine, entry).await
    }

    async fn lift_quarantine(
        &self,
        test_case_id: &str,
        entry: &CaseHistoryEntry,
    ) -> Result<bool, StoreError> {
        self.remove_quarantine(test_case_id, entry).await
    }

    async fn get_quarantine(&self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError> {
        self.read_quarantine(test_case_id).await
    }

    async fn list_quarantines(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, StoreError> {
        self.quarantines_page(owner, limit, after).await
    }

    async fn case_history(&self, test_case_id: &str) -> Result<Vec<CaseHistoryEntry>, StoreError> {
        self.read_case_history(test_case_id).await
    }
}

/// SDK errors become `Unavailable`; the detail is logged, never shown to clients.
fn sdk_error<E: std::fmt::Debug, R: std::fmt::Debug>(
    what: &str,
    error: SdkError<E, R>,
) -> StoreError {
    tracing::warn!(error = ?error, "DynamoDB {what} failed");
    StoreError::Unavailable(format!("DynamoDB {what} failed"))
}

/// Whether a request failed only because its condition did not hold (a lost race).
fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// The rounds of a batch request whose unprocessed part is sent again: at most ten, each after
/// a pause 20 ms longer than the one before.
struct BatchRounds {
    what: &'static str,
    done: u64,
}

impl BatchRounds {
    fn new(what: &'static str) -> Self {
        BatchRounds { what, done: 0 }
    }

    /// Pauses before every round but the first; `Unavailable` once ten rounds left items
    /// unprocessed.
    async fn next(&mut self) -> Result<(), StoreError> {
        if self.done > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20 * self.done)).await;
        }
        if self.done == 10 {
            let what = self.what;
            return Err(StoreError::Unavailable(format!(
                "{what} kept coming back unprocessed"
            )));
        }
        self.done += 1;
        Ok(())
    }
}
