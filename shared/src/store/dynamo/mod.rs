//! The DynamoDB store: one table, generic keys, conditional writes.
//!
//! Items (`pk` / `sk`):
//! - `EX#{id}` / `EXEC`: the execution trace with its history list, a version `ver` for
//!   optimistic concurrency and sparse index keys. Inline steps live inside it (fewer than 50).
//! - `EX#{id}` / `STEP#{index}`: a partitioned step that has reported. Steps that never
//!   reported are not stored: they are pending, named from the definition.
//! - `DEF#{test_case_id}#{version}` / `PART#{n}`: an immutable snapshot of a test case version,
//!   which executions run (chunked: a 10,000-step case does not fit one item).
//! - `TC#{id}` and `TS#{id}` / `META` + `PART#{n}`: the catalog (chunked the same way).
//! - `IDEM#{owner}#{key}` / `IDEM`: an `Idempotency-Key` claim, expired by TTL (`expires_at`).
//!
//! Every command is planned by the domain's unit of work against records read with strongly
//! consistent reads, then written with conditions: a changed execution only if its `ver` is
//! still the one read (so a status change is conditional on the status read), a new one only
//! if absent. A lost race is retried from fresh reads; a change that touches one item is one
//! conditional `PutItem`, more are one `TransactWriteItems`.

use crate::domain::catalog::{CatalogKind, TestCase};
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, HistoryEntry, StepResult, StepStatus};
use crate::domain::ids::IdSource;
use crate::domain::time::Timestamp;
use crate::domain::workflow::{
    ChangeSet, DefinitionSource, IDEMPOTENCY_WINDOW_MS, IdempotencyRecord, RecordSource,
    UnitOfWork, WorkflowError,
};
use crate::ports::{
    CatalogHeader, CatalogQuery, CatalogRecord, ExecutionQuery, ExecutionStore, Page, Plan,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

const EXEC_SK: &str = "EXEC";
const META_SK: &str = "META";
/// Large JSON documents are split into parts of at most this many bytes.
const PART_BYTES: usize = 100_000;
/// DynamoDB's limit on the items of one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// How long a command keeps re-planning after losing races before it gives up (`503`).
const CONTENTION_BUDGET: Duration = Duration::from_secs(20);
/// How many read rounds one plan may need (each round fetches every record it missed).
const MAX_READ_ROUNDS: usize = 32;
const MAX_SCAN: usize = 5_000;

/// The table's secondary indexes: owner listings, admin listings, children, active deadlines.
pub const INDEX_OWNER: &str = "gsi1";
pub const INDEX_ALL: &str = "gsi2";
pub const INDEX_PARENT: &str = "gsi3";
pub const INDEX_ACTIVE: &str = "gsi4";

/// What an index copies of each item. The listing indexes copy whole executions (a page is
/// one query); the deadline index only keys: the sweep and recovery read the few executions
/// they act on, and an update that does not move the deadline then writes nothing to it.
pub fn projection_of(index: &str) -> ProjectionType {
    if index == INDEX_ACTIVE {
        ProjectionType::KeysOnly
    } else {
        ProjectionType::All
    }
}
/// The attribute DynamoDB's TTL expires items by (idempotency claims), in epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";

pub struct DynamoStore {
    client: Client,
    table: String,
    ids: Arc<dyn IdSource>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, ids: Arc<dyn IdSource>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            ids,
        }
    }

    /// Creates the table with its indexes and TTL (for tests and `--create-resources`); an
    /// existing table is left as it is.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key schema fields are set")
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute fields are set")
        };
        let index = |name: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(&format!("{name}pk"), KeyType::Hash))
                .key_schema(key(&format!("{name}sk"), KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(projection_of(name))
                        .build(),
                )
                .build()
                .expect("index fields are set")
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"));
        for name in [INDEX_OWNER, INDEX_ALL, INDEX_PARENT, INDEX_ACTIVE] {
            request = request
                .attribute_definitions(attribute(&format!("{name}pk")))
                .attribute_definitions(attribute(&format!("{name}sk")))
                .global_secondary_indexes(index(name));
        }
        match request.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(sdk_error("create table", e)),
        }
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .expect("ttl fields are set"),
            )
            .send()
            .await
            .map_err(|e| sdk_error("enable TTL", e))?;
        Ok(())
    }

    // ----- low-level reads ------------------------------------------------------------

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("read", e))?;
        Ok(output.item)
    }

    /// Strongly consistent batch read of many keys (100 a request, unprocessed keys retried).
    async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let unique: Vec<(String, String)> = {
            let mut seen = HashSet::new();
            keys.into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect()
        };
        for chunk in unique.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
                .collect();
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                if rounds > 10 {
                    return Err(StoreError::Unavailable(
                        "batch read kept coming back unprocessed".into(),
                    ));
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("batch read", e))?;
                if let Some(mut responses) = output.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20 * rounds)).await;
                }
            }
        }
        Ok(found)
    }

    /// Every item of a partition whose sort key starts with `prefix`, in order.
    async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start_key: Option<Item> = start_after
            .map(|sk| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]));
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take());
            request = if prefix.is_empty() {
                request.key_condition_expression("pk = :pk")
            } else {
                request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            if let Some(limit) = limit {
                request = request.limit((limit - items.len()).min(1000) as i32);
            }
            let output = request.send().await.map_err(|e| sdk_error("query", e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if limit.is_none_or(|l| items.len() < l) => start_key = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn read_blob<T: DeserializeOwned>(&self, pk: &str) -> Result<Option<T>, StoreError> {
        match self.read_text(pk).await? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    /// The JSON document stored as `PART#n` items under `pk`.
    async fn read_text(&self, pk: &str) -> Result<Option<String>, StoreError> {
        let parts = self.query_prefix(pk, "PART#", None, None).await?;
        if parts.is_empty() {
            return Ok(None);
        }
        let mut text = String::new();
        for part in &parts {
            text.push_str(string_attr(part, "body")?);
        }
        Ok(Some(text))
    }

    /// One page of an index partition, from the item after `after` (by id sort key).
    async fn index_page(
        &self,
        index: &str,
        partition: &str,
        after: Option<&str>,
        ascending: bool,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let pk_name = format!("{index}pk");
        let sk_name = format!("{index}sk");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", &pk_name)
            .expression_attribute_values(":pk", s(partition))
            .scan_index_forward(ascending)
            .limit(limit);
        if let Some(after) = after {
            let comparison = if ascending { ">" } else { "<" };
            request = request
                .key_condition_expression(format!("#pk = :pk AND #sk {comparison} :after"))
                .expression_attribute_names("#sk", &sk_name)
                .expression_attribute_values(":after", s(after));
        }
        let output = request
            .send()
            .await
            .map_err(|e| sdk_error("query index", e))?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }

    // ----- executions -----------------------------------------------------------------

    async fn load_execution(&self, id: &str) -> Result<Option<StoredExecution>, StoreError> {
        match self.get_item(&exec_pk(id), EXEC_SK).await? {
            Some(item) => StoredExecution::from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Fetches what a plan found missing, into the snapshot.
    async fn fill(&self, snapshot: &mut Snapshot) -> Result<(), StoreError> {
        let misses = std::mem::take(&mut snapshot.misses);
        let mut keys = Vec::new();
        for id in &misses.executions {
            keys.push((exec_pk(id), EXEC_SK.to_owned()));
        }
        for (id, index) in &misses.steps {
            keys.push((exec_pk(id), step_sk(*index)));
        }
        let found = self.batch_get(keys).await?;
        for id in &misses.executions {
            snapshot.executions.entry(id.clone()).or_insert(None);
        }
        for item in found {
            let sk = string_attr(&item, "sk")?;
            if sk == EXEC_SK {
                let stored = StoredExecution::from_item(&item)?;
                if !stored.intent.is_empty() {
                    self.roll_forward(&stored).await?;
                }
                let id = stored.execution.id.clone();
                for step in &stored.intent {
                    snapshot.stored.insert((id.clone(), step.index));
                    snapshot
                        .steps
                        .insert((id.clone(), step.index), step.clone());
                }
                snapshot.executions.insert(id, Some(stored));
            } else {
                let id = string_attr(&item, "id")?.to_owned();
                let step: StepResult = decode_attr(&item, "data")?;
                snapshot.stored.insert((id.clone(), step.index));
                snapshot.steps.entry((id, step.index)).or_insert(step);
            }
        }
        // Steps that never reported are implied, named from the definition.
        for (id, index) in &misses.steps {
            if !snapshot.steps.contains_key(&(id.clone(), *index)) {
                let step = self.unstored_step(snapshot, id, *index).await?;
                snapshot.steps.insert((id.clone(), *index), step);
            }
        }
        for id in &misses.all_steps {
            let Some(stored) = self.snapshot_execution(snapshot, id).await? else {
                snapshot.all_steps.insert(id.clone(), Vec::new());
                continue;
            };
            let names = self.step_names(snapshot, id).await?;
            let mut reported: BTreeMap<u32, StepResult> = BTreeMap::new();
            for item in self.query_prefix(&exec_pk(id), "STEP#", None, None).await? {
                let step: StepResult = decode_attr(&item, "data")?;
                reported.insert(step.index, step);
            }
            for step in &stored.intent {
                reported.insert(step.index, step.clone());
            }
            for index in reported.keys() {
                snapshot.stored.insert((id.clone(), *index));
            }
            let all = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    reported
                        .remove(&(i as u32))
                        .unwrap_or_else(|| stored.unstored_step(i as u32, name))
                })
                .collect();
            snapshot.all_steps.insert(id.clone(), all);
        }
        for (owner, key) in &misses.idempotency {
            let record = match self.get_item(&idem_pk(owner, key), "IDEM").await? {
                Some(item) => Some(decode_attr::<IdempotencyRecord>(&item, "data")?),
                None => None,
            };
            snapshot
                .idempotency
                .insert((owner.clone(), key.clone()), record);
        }
        Ok(())
    }

    /// The execution as the snapshot holds it, reading it when needed.
    async fn snapshot_execution(
        &self,
        snapshot: &mut Snapshot,
        id: &str,
    ) -> Result<Option<StoredExecution>, StoreError> {
        if let Some(found) = snapshot.executions.get(id) {
            return Ok(found.clone());
        }
        let found = self.load_execution(id).await?;
        snapshot.executions.insert(id.to_owned(), found.clone());
        Ok(found)
    }

    async fn unstored_step(
        &self,
        snapshot: &mut Snapshot,
        id: &str,
        index: u32,
    ) -> Result<StepResult, StoreError> {
        let names = self.step_names(snapshot, id).await?;
        let name = names.get(index as usize).cloned().unwrap_or_default();
        Ok(match self.snapshot_execution(snapshot, id).await? {
            Some(stored) => stored.unstored_step(index, &name),
            None => StepResult::pending(index, &name),
        })
    }

    /// Writes the step items a committed change carried in its execution's `intent`, then
    /// clears the intent (only if the execution is still at that version: a later version
    /// carries its own). Safe to repeat: the intent is the truth for those steps.
    async fn roll_forward(&self, stored: &StoredExecution) -> Result<(), StoreError> {
        let id = &stored.execution.id;
        let mut items = Vec::with_capacity(stored.intent.len());
        for step in &stored.intent {
            items.push(step_item(id, step)?);
        }
        self.batch_put(items).await?;
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(EXEC_SK))
            .update_expression("REMOVE intent")
            .condition_expression("ver = :ver")
            .expression_attribute_values(":ver", n(stored.version))
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(()),
            // Already superseded by a newer version, which rolled this one forward first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("clear intent", e)),
        }
    }

    /// Unconditional puts, 25 a request, unprocessed items retried.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .expect("item is set");
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                if rounds > 10 {
                    return Err(StoreError::Unavailable(
                        "batch write kept coming back unprocessed".into(),
                    ));
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("batch write", e))?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20 * rounds)).await;
                }
            }
        }
        Ok(())
    }

    /// The step names of an execution, from its definition snapshot.
    async fn step_names(
        &self,
        snapshot: &mut Snapshot,
        id: &str,
    ) -> Result<Vec<String>, StoreError> {
        if let Some(names) = snapshot.names.get(id) {
            return Ok(names.clone());
        }
        let definition = match snapshot.executions.get(id).cloned().flatten() {
            Some(stored) => stored.definition,
            None => self.load_execution(id).await?.and_then(|s| s.definition),
        };
        let names: Vec<String> = match definition {
            Some(pk) => self
                .read_blob::<TestCase>(&pk)
                .await?
                .map(|case| case.steps.into_iter().map(|s| s.name).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        snapshot.names.insert(id.to_owned(), names.clone());
        Ok(names)
    }

    /// Writes a planned change set with its conditions.
    async fn write_changes(
        &self,
        snapshot: &Snapshot,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Definition snapshots are immutable and content-addressed by case and version:
        // written before the change, harmless if the change then loses a race.
        let mut definitions: HashMap<&str, String> = HashMap::new();
        for (id, source) in &changes.definitions {
            let pk = match source {
                DefinitionSource::Snapshot(case) => {
                    let pk = definition_pk(&case.id, case.version);
                    if self.get_item(&pk, &part_sk(0)).await?.is_none() {
                        for part in blob_parts(&pk, case.as_ref())? {
                            self.client
                                .put_item()
                                .table_name(&self.table)
                                .set_item(Some(part))
                                .send()
                                .await
                                .map_err(|e| sdk_error("write definition", e))?;
                        }
                    }
                    pk
                }
                DefinitionSource::CopyOf(original) => match snapshot
                    .executions
                    .get(original)
                    .cloned()
                    .flatten()
                    .and_then(|s| s.definition)
                {
                    Some(pk) => pk,
                    None => match self
                        .load_execution(original)
                        .await?
                        .and_then(|s| s.definition)
                    {
                        Some(pk) => pk,
                        None => continue,
                    },
                },
            };
            definitions.insert(id.as_str(), pk);
        }
        let mut history: HashMap<&str, Vec<&HistoryEntry>> = HashMap::new();
        for (id, _, entry) in &changes.history {
            history.entry(id.as_str()).or_default().push(entry);
        }
        let created: HashSet<&str> = changes.created.iter().map(String::as_str).collect();
        // Step results go into their execution's record as an intent, committed with it,
        // and are written as step items right after (see `roll_forward`). Never-reported
        // steps are not stored: they are implied pending, or skipped once completed.
        let mut intents: HashMap<&str, Vec<StepResult>> = HashMap::new();
        let mut skipped_at: HashMap<&str, Timestamp> = HashMap::new();
        for (id, step) in &changes.steps {
            let unstored = !snapshot.stored.contains(&(id.clone(), step.index));
            if unstored && step.status == StepStatus::Pending {
                continue;
            }
            if unstored && step.status == StepStatus::Skipped && step.started_at.is_none() {
                skipped_at.insert(id.as_str(), step.finished_at.unwrap_or(now));
                continue;
            }
            intents.entry(id.as_str()).or_default().push(step.clone());
        }
        let mut creations = Vec::new();
        let mut updates = Vec::new();
        let mut written: Vec<StoredExecution> = Vec::new();
        for execution in &changes.executions {
            let previous = snapshot.executions.get(&execution.id).cloned().flatten();
            let mut full_history = previous
                .as_ref()
                .map(|p| p.history.clone())
                .unwrap_or_default();
            full_history.extend(
                history
                    .get(execution.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|e| (*e).clone()),
            );
            let definition = definitions
                .get(execution.id.as_str())
                .cloned()
                .or_else(|| previous.as_ref().and_then(|p| p.definition.clone()));
            let version = previous.as_ref().map_or(0, |p| p.version);
            let mut item =
                execution_item(execution, &full_history, definition.as_deref(), version + 1)?;
            let intent = intents.remove(execution.id.as_str()).unwrap_or_default();
            if !intent.is_empty() {
                item.insert(
                    "intent".into(),
                    to_attribute_value(&intent).map_err(corrupt)?,
                );
            }
            let skipped = skipped_at
                .get(execution.id.as_str())
                .copied()
                .or_else(|| previous.as_ref().and_then(|p| p.unreported_skipped_at));
            if let Some(at) = skipped {
                item.insert("skipped_at".into(), n(at.millis().max(0) as u64));
            }
            if !intent.is_empty() {
                written.push(StoredExecution {
                    execution: execution.clone(),
                    history: Vec::new(),
                    version: version + 1,
                    definition: None,
                    intent,
                    unreported_skipped_at: skipped,
                });
            }
            if created.contains(execution.id.as_str()) {
                let write = put(
                    &self.table,
                    item,
                    Some("attribute_not_exists(pk)"),
                    HashMap::new(),
                );
                // The root of a new tree goes with the updates, so it appears last.
                if execution.parent_id.is_some()
                    && changes.created.len() > MAX_TRANSACTION_ITEMS - 2
                {
                    creations.push(write);
                } else {
                    updates.push(write);
                }
            } else {
                let values = HashMap::from([(":ver".to_owned(), n(version))]);
                updates.push(put(&self.table, item, Some("ver = :ver"), values));
            }
        }
        if let Some(record) = &changes.idempotency {
            let mut item = HashMap::from([
                ("pk".to_owned(), s(&idem_pk(&record.owner, &record.key))),
                ("sk".to_owned(), s("IDEM")),
                (
                    TTL_ATTRIBUTE.to_owned(),
                    n(((record.created_at.millis() + IDEMPOTENCY_WINDOW_MS) / 1000) as u64),
                ),
            ]);
            item.insert("data".into(), to_attribute_value(record).map_err(corrupt)?);
            let values = HashMap::from([(
                ":expired".to_owned(),
                n((now.millis() / 1000).max(0) as u64),
            )]);
            updates.push(put(
                &self.table,
                item,
                Some("attribute_not_exists(pk) OR expires_at <= :expired"),
                values,
            ));
        }
        if !intents.is_empty() {
            return Err(StoreError::Corrupt(
                "step results for an execution the change does not touch".into(),
            ));
        }
        // The plan's decisions also rest on what it only read: check those are unchanged.
        if !updates.is_empty() {
            for unchanged in &changes.unchanged {
                if let Some(Some(read)) = snapshot.executions.get(&unchanged.id) {
                    updates.push(condition_check(
                        &self.table,
                        &exec_pk(&unchanged.id),
                        read.version,
                    ));
                }
            }
        }
        for chunk in creations.chunks(MAX_TRANSACTION_ITEMS) {
            self.transact(chunk.to_vec()).await?;
        }
        // Larger changes (a big suite's cascade, a big step batch) are written in chunks;
        // each chunk is atomic and a lost race re-plans from what is then stored.
        for chunk in updates.chunks(MAX_TRANSACTION_ITEMS) {
            self.transact(chunk.to_vec()).await?;
        }
        for stored in &written {
            self.roll_forward(stored).await?;
        }
        Ok(())
    }

    /// One conditional `PutItem` when there is one write, else one transaction.
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        if writes.len() == 1
            && let Some(put) = writes[0].put()
        {
            let mut request = self
                .client
                .put_item()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_values(put.expression_attribute_values().cloned());
            if put.expression_attribute_names().is_some() {
                request = request
                    .set_expression_attribute_names(put.expression_attribute_names().cloned());
            }
            return match request.send().await {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict("a record changed meanwhile".into()))
                }
                Err(e) => Err(sdk_error("write", e)),
            };
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                // Cancelled for a failed condition or a concurrent transaction is a lost race;
                // cancelled for anything else (validation, size) is not.
                let conflict = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                        cancel.cancellation_reasons().iter().any(|r| {
                            matches!(
                                r.code(),
                                Some("ConditionalCheckFailed" | "TransactionConflict")
                            )
                        })
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                    Some(_) => false,
                    None => false,
                };
                if conflict {
                    Err(StoreError::Conflict("a record changed meanwhile".into()))
                } else {
                    Err(sdk_error("write", e))
                }
            }
        }
    }

    async fn executions_page(
        &self,
        index: &str,
        partition: &str,
        after: Option<&str>,
        ascending: bool,
        limit: usize,
        query: Option<&ExecutionQuery>,
    ) -> Result<Page<Execution>, StoreError> {
        let mut items = Vec::new();
        let mut after = after.map(str::to_owned);
        let mut scanned = 0;
        loop {
            let (page, last) = self
                .index_page(index, partition, after.as_deref(), ascending, 200)
                .await?;
            for item in &page {
                scanned += 1;
                let stored = StoredExecution::from_item(item)?;
                after = Some(stored.execution.id.clone());
                if query.is_none_or(|q| q.matches(&stored.execution)) {
                    items.push(stored.execution);
                    if items.len() == limit {
                        let next = items.last().map(|e| e.id.clone());
                        return Ok(Page {
                            items,
                            next_cursor: next,
                        });
                    }
                }
            }
            if let Some(page) = walk_end(&mut items, last.is_none(), scanned, &after) {
                return Ok(page);
            }
        }
    }
}

/// Where a walk over an index ends after one of its pages: at the end of the index, or once
/// it has read [`MAX_SCAN`] items (with a cursor where it stopped). `None`: read on.
fn walk_end<T>(
    items: &mut Vec<T>,
    end_of_index: bool,
    scanned: usize,
    after: &Option<String>,
) -> Option<Page<T>> {
    let next_cursor = if end_of_index {
        None
    } else if scanned >= MAX_SCAN {
        after.clone()
    } else {
        return None;
    };
    Some(Page {
        items: std::mem::take(items),
        next_cursor,
    })
}

/// The key prefix of a catalog kind's items (`TC#{id}`) and index partitions (`TCS#{owner}`).
fn catalog_prefix(kind: CatalogKind) -> &'static str {
    match kind {
        CatalogKind::TestCase => "TC",
        CatalogKind::TestSuite => "TS",
    }
}

fn catalog_pk(kind: CatalogKind, id: &str) -> String {
    format!("{}#{id}", catalog_prefix(kind))
}

/// An execution as stored: the record, its history, version and definition snapshot key.
#[derive(Debug, Clone)]
struct StoredExecution {
    execution: Execution,
    history: Vec<HistoryEntry>,
    version: u64,
    definition: Option<String>,
    /// Step results committed with this version but perhaps not yet written as step items
    /// (see [`DynamoStore::roll_forward`]).
    intent: Vec<StepResult>,
    /// Set when the execution completed: steps that never reported read as skipped then.
    unreported_skipped_at: Option<Timestamp>,
}

impl StoredExecution {
    fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(StoredExecution {
            execution: decode_attr(item, "data")?,
            history: decode_attr(item, "history")?,
            version: number_attr(item, "ver")?,
            definition: item.get("def").and_then(|v| v.as_s().ok()).cloned(),
            intent: match item.get("intent") {
                Some(value) => from_attribute_value(value.clone()).map_err(corrupt)?,
                None => Vec::new(),
            },
            unreported_skipped_at: item
                .get("skipped_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .map(Timestamp::from_millis),
        })
    }

    /// A step with no item: pending, or skipped once the execution completed.
    fn unstored_step(&self, index: u32, name: &str) -> StepResult {
        let mut step = StepResult::pending(index, name);
        if let Some(at) = self.unreported_skipped_at {
            step.status = StepStatus::Skipped;
            step.finished_at = Some(at);
        }
        step
    }
}

/// What a plan read, and what it asked for that was not read yet.
#[derive(Default)]
struct Snapshot {
    executions: HashMap<String, Option<StoredExecution>>,
    /// Steps that exist as items (or in an intent): the rest are implied by the definition.
    stored: HashSet<(String, u32)>,
    steps: HashMap<(String, u32), StepResult>,
    all_steps: HashMap<String, Vec<StepResult>>,
    idempotency: HashMap<(String, String), Option<IdempotencyRecord>>,
    names: HashMap<String, Vec<String>>,
    misses: Misses,
}

#[derive(Default)]
struct Misses {
    executions: Vec<String>,
    steps: Vec<(String, u32)>,
    all_steps: Vec<String>,
    idempotency: Vec<(String, String)>,
}

impl Misses {
    fn is_empty(&self) -> bool {
        self.executions.is_empty()
            && self.steps.is_empty()
            && self.all_steps.is_empty()
            && self.idempotency.is_empty()
    }
}

/// Answers a plan from the snapshot. A miss is noted; step misses answer a placeholder so
/// the plan goes on and names every step it needs in one round; other misses stop it.
impl RecordSource for Snapshot {
    fn execution(&mut self, id: &str) -> Result<Option<Execution>, StoreError> {
        match self.executions.get(id) {
            Some(found) => Ok(found.as_ref().map(|s| s.execution.clone())),
            None => {
                self.misses.executions.push(id.to_owned());
                Err(StoreError::Unavailable(MISS.into()))
            }
        }
    }

    fn step(&mut self, execution_id: &str, index: u32) -> Result<Option<StepResult>, StoreError> {
        let key = (execution_id.to_owned(), index);
        match self.steps.get(&key) {
            Some(step) => Ok(Some(step.clone())),
            None => {
                self.misses.steps.push(key);
                Ok(Some(StepResult::pending(index, "")))
            }
        }
    }

    fn steps(&mut self, execution_id: &str) -> Result<Vec<StepResult>, StoreError> {
        match self.all_steps.get(execution_id) {
            Some(steps) => Ok(steps.clone()),
            None => {
                self.misses.all_steps.push(execution_id.to_owned());
                Err(StoreError::Unavailable(MISS.into()))
            }
        }
    }

    fn idempotent_start(
        &mut self,
        owner: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let k = (owner.to_owned(), key.to_owned());
        match self.idempotency.get(&k) {
            Some(record) => Ok(record.clone()),
            None => {
                self.misses.idempotency.push(k);
                Err(StoreError::Unavailable(MISS.into()))
            }
        }
    }
}

const MISS: &str = "not read yet";

#[async_trait]
impl ExecutionStore for DynamoStore {
    async fn insert_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError> {
        let (pk, id) = (catalog_pk(record.kind, &record.id), &record.id);
        let meta = catalog_meta(record, &pk, 1);
        let mut writes = vec![put(
            &self.table,
            meta,
            Some("attribute_not_exists(pk)"),
            HashMap::new(),
        )];
        writes.extend(
            text_parts(&pk, &record.document)
                .into_iter()
                .map(|p| put(&self.table, p, None, HashMap::new())),
        );
        self.transact(writes).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!("{id} already exists")),
            other => other,
        })
    }

    async fn replace_catalog(
        &self,
        record: &CatalogRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let (pk, id) = (catalog_pk(record.kind, &record.id), &record.id);
        let old_parts = self.query_prefix(&pk, "PART#", None, None).await?.len();
        let meta = catalog_meta(record, &pk, expected_version + 1);
        let condition = HashMap::from([(":expected".to_owned(), n(expected_version))]);
        let mut writes = vec![put(
            &self.table,
            meta,
            Some("attribute_exists(pk) AND ver = :expected"),
            condition,
        )];
        let parts = text_parts(&pk, &record.document);
        let new_parts = parts.len();
        writes.extend(
            parts
                .into_iter()
                .map(|p| put(&self.table, p, None, HashMap::new())),
        );
        for stale in new_parts..old_parts {
            writes.push(delete(&self.table, &pk, &part_sk(stale)));
        }
        self.transact(writes).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("{id} changed meanwhile or does not exist"))
            }
            other => other,
        })
    }

    async fn delete_catalog(&self, kind: CatalogKind, id: &str) -> Result<bool, StoreError> {
        let pk = catalog_pk(kind, id);
        let mut items = self.query_prefix(&pk, "", None, None).await?;
        if items.is_empty() {
            return Ok(false);
        }
        items.sort_by_key(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .map(|v| v == META_SK)
        });
        // Parts first, the meta item last: a half-finished delete stays visible, not broken.
        for item in items {
            let sk = string_attr(&item, "sk")?.to_owned();
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .send()
                .await
                .map_err(|e| sdk_error("delete", e))?;
        }
        Ok(true)
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
            Some(owner) => (INDEX_OWNER, format!("{}S#{owner}", catalog_prefix(kind))),
            None => (INDEX_ALL, format!("{}S", catalog_prefix(kind))),
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

    async fn apply(&self, now: Timestamp, mut plan: Plan) -> Result<ChangeSet, WorkflowError> {
        let started = std::time::Instant::now();
        for attempt in 0.. {
            if attempt > 0 && started.elapsed() > CONTENTION_BUDGET {
                break;
            }
            let mut snapshot = Snapshot::default();
            let mut rounds = 0;
            let planned = loop {
                let result = {
                    let mut unit = UnitOfWork::new(&mut snapshot, self.ids.as_ref(), now);
                    plan(&mut unit).map(|()| unit.finish())
                };
                if snapshot.misses.is_empty() {
                    break result;
                }
                rounds += 1;
                if rounds > MAX_READ_ROUNDS {
                    return Err(
                        StoreError::Unavailable("a command needed too many reads".into()).into(),
                    );
                }
                self.fill(&mut snapshot).await?;
            };
            let changes = planned?;
            match self.write_changes(&snapshot, &changes, now).await {
                Ok(()) => return Ok(changes),
                Err(StoreError::Conflict(_)) => {
                    // Lost a race: back off (exponential, full jitter, capped) and plan again.
                    let ceiling = (10u64 << attempt.min(5)).min(250);
                    let pause = u64::from(rand_u16()) % ceiling.max(1);
                    tokio::time::sleep(Duration::from_millis(pause + 1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("too much contention on one execution; retry".into()).into())
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

    async fn list_steps(
        &self,
        execution_id: &str,
        after_index: Option<u32>,
        limit: usize,
    ) -> Result<Vec<StepResult>, StoreError> {
        let Some(stored) = self.load_execution(execution_id).await? else {
            return Ok(Vec::new());
        };
        let first = after_index.map_or(0, |i| i.saturating_add(1));
        if !stored.execution.is_partitioned() {
            return Ok(stored
                .execution
                .steps
                .into_iter()
                .skip(first as usize)
                .take(limit)
                .collect());
        }
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
                "STEP#",
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

    async fn history(&self, execution_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .load_execution(execution_id)
            .await?
            .map(|s| s.history)
            .unwrap_or_default())
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<Page<Execution>, StoreError> {
        let (index, partition) = match &query.owner {
            Some(owner) => (INDEX_OWNER, format!("EXS#{owner}")),
            None => (INDEX_ALL, "EXS".to_owned()),
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

    async fn list_children(
        &self,
        parent_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Execution>, StoreError> {
        self.executions_page(
            INDEX_PARENT,
            &format!("PARENT#{parent_id}"),
            after,
            true,
            limit,
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
            .key_condition_expression("gsi4pk = :active AND gsi4sk <= :now")
            .expression_attribute_values(":active", s("ACTIVE"))
            .expression_attribute_values(":now", s(&format!("{:020}#~", now.millis().max(0))))
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
                .key_condition_expression("gsi4pk = :active")
                .expression_attribute_values(":active", s("ACTIVE"))
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
}

// ----- items -----------------------------------------------------------------------------

fn execution_item(
    execution: &Execution,
    history: &[HistoryEntry],
    definition: Option<&str>,
    version: u64,
) -> Result<Item, StoreError> {
    let id = &execution.id;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&exec_pk(id))),
        ("sk".to_owned(), s(EXEC_SK)),
        ("id".to_owned(), s(id)),
        ("ver".to_owned(), n(version)),
        ("status".to_owned(), s(execution.status.as_str())),
        ("gsi1pk".to_owned(), s(&format!("EXS#{}", execution.owner))),
        ("gsi1sk".to_owned(), s(id)),
        ("gsi2pk".to_owned(), s("EXS")),
        ("gsi2sk".to_owned(), s(id)),
    ]);
    if let Some(parent) = &execution.parent_id {
        item.insert("gsi3pk".into(), s(&format!("PARENT#{parent}")));
        item.insert("gsi3sk".into(), s(id));
    }
    // Sparse: only active executions are in the deadline index.
    if execution.status.is_active()
        && let Some(deadline) = execution.deadline_at
    {
        item.insert("gsi4pk".into(), s("ACTIVE"));
        item.insert(
            "gsi4sk".into(),
            s(&format!("{:020}#{id}", deadline.millis().max(0))),
        );
    }
    if let Some(definition) = definition {
        item.insert("def".into(), s(definition));
    }
    item.insert(
        "data".into(),
        to_attribute_value(execution).map_err(corrupt)?,
    );
    item.insert(
        "history".into(),
        to_attribute_value(history).map_err(corrupt)?,
    );
    Ok(item)
}

fn step_item(id: &str, step: &StepResult) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&exec_pk(id))),
        ("sk".to_owned(), s(&step_sk(step.index))),
        ("id".to_owned(), s(id)),
    ]);
    item.insert("data".into(), to_attribute_value(step).map_err(corrupt)?);
    Ok(item)
}

fn catalog_meta(record: &CatalogRecord, pk: &str, version: u64) -> Item {
    let prefix = catalog_prefix(record.kind);
    let (id, owner) = (record.id.as_str(), record.owner.as_str());
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(META_SK)),
        ("id".to_owned(), s(id)),
        ("owner".to_owned(), s(owner)),
        ("ver".to_owned(), n(version)),
        ("gsi1pk".to_owned(), s(&format!("{prefix}S#{owner}"))),
        ("gsi1sk".to_owned(), s(id)),
        ("gsi2pk".to_owned(), s(&format!("{prefix}S"))),
        ("gsi2sk".to_owned(), s(id)),
    ]);
    if let Ok(value) = to_attribute_value(&record.tags) {
        item.insert("tags".into(), value);
    }
    item
}

/// A JSON document split into `PART#n` items of at most [`PART_BYTES`].
fn blob_parts<T: Serialize + ?Sized>(pk: &str, value: &T) -> Result<Vec<Item>, StoreError> {
    let text = serde_json::to_string(value).map_err(corrupt)?;
    Ok(text_parts(pk, &text))
}

/// JSON text split into `PART#n` items of at most [`PART_BYTES`], cut on char boundaries.
fn text_parts(pk: &str, text: &str) -> Vec<Item> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() || parts.is_empty() {
        let mut end = rest.len().min(PART_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, tail) = rest.split_at(end);
        parts.push(HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(&part_sk(parts.len()))),
            ("body".to_owned(), s(chunk)),
        ]));
        rest = tail;
    }
    parts
}

fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: HashMap<String, AttributeValue>,
) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .expect("table and item are set");
    TransactWriteItem::builder().put(put).build()
}

fn condition_check(table: &str, pk: &str, version: u64) -> TransactWriteItem {
    let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(EXEC_SK))
        .condition_expression("ver = :ver")
        .expression_attribute_values(":ver", n(version))
        .build()
        .expect("table, key and condition are set");
    TransactWriteItem::builder().condition_check(check).build()
}

fn delete(table: &str, pk: &str, sk: &str) -> TransactWriteItem {
    let delete = aws_sdk_dynamodb::types::Delete::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .expect("table and key are set");
    TransactWriteItem::builder().delete(delete).build()
}

/// The partition key prefix of an execution's items.
const EXEC_PREFIX: &str = "EX#";

fn exec_pk(id: &str) -> String {
    format!("{EXEC_PREFIX}{id}")
}

/// The execution id of an execution item's key (all a keys-only index gives back).
fn execution_id_of_key(item: &Item) -> Result<String, StoreError> {
    let pk = string_attr(item, "pk")?;
    pk.strip_prefix(EXEC_PREFIX)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("not an execution key: {pk}")))
}

fn step_sk(index: u32) -> String {
    format!("STEP#{index:010}")
}

fn part_sk(n: usize) -> String {
    format!("PART#{n:05}")
}

fn definition_pk(case_id: &str, version: u64) -> String {
    format!("DEF#{case_id}#{version}")
}

fn idem_pk(owner: &str, key: &str) -> String {
    format!("IDEM#{owner}#{key}")
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item without `{name}`")))
}

fn number_attr(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item without numeric `{name}`")))
}

fn decode_attr<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T, StoreError> {
    let value = item
        .get(name)
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("item without `{name}`")))?;
    from_attribute_value(value).map_err(corrupt)
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// SDK errors become `Unavailable`; the detail is logged, never shown to clients.
fn sdk_error<E: std::fmt::Debug, R: std::fmt::Debug>(
    what: &str,
    error: SdkError<E, R>,
) -> StoreError {
    tracing::warn!(error = ?error, "DynamoDB {what} failed");
    StoreError::Unavailable(format!("DynamoDB {what} failed"))
}

fn rand_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes)
}
