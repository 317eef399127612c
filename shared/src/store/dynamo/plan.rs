//! The plan/read loop: a command is planned by the domain's unit of work against a
//! snapshot of records read with strongly consistent reads; what the plan missed is read in
//! rounds, and a lost race re-plans from fresh reads. Also the reads the store is built on.

use super::DynamoStore;
use super::items::{Item, StoredExecution, decode_attr, s, string_attr};
use super::keys::{
    EXEC_SK, IDEM_SK, PART_PREFIX, QUARANTINE_SK, STEP_PREFIX, exec_pk, idem_pk, index_pk,
    index_sk, part_sk, quarantine_pk, step_sk,
};
use super::{BatchRounds, sdk_error};
use crate::domain::catalog::TestCase;
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, StepResult};
use crate::domain::quarantine::Quarantine;
use crate::domain::time::Timestamp;
use crate::domain::workflow::{
    ChangeSet, IdempotencyRecord, RecordSource, UnitOfWork, WorkflowError,
};
use crate::ports::{ExecutionQuery, Page, Plan};
use aws_sdk_dynamodb::types::KeysAndAttributes;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// How long a command keeps re-planning after losing races before it gives up (`503`).
const CONTENTION_BUDGET: Duration = Duration::from_secs(20);
/// The plans a command always gets, however slow they were: a lost race is usually settled
/// by the next plan (it reads what won), and one slow answer must not count as contention.
const MIN_PLANS: u32 = 3;
/// How many read rounds one plan may need (each round fetches every record it missed).
const MAX_READ_ROUNDS: usize = 32;
const MAX_SCAN: usize = 5_000;

impl DynamoStore {
    /// Plans `plan` (reading what it misses, in rounds) and writes its change set; a lost
    /// race backs off and plans again, within [`CONTENTION_BUDGET`].
    pub(super) async fn plan_and_write(
        &self,
        now: Timestamp,
        mut plan: Plan,
    ) -> Result<ChangeSet, WorkflowError> {
        let started = std::time::Instant::now();
        for attempt in 0u32.. {
            if attempt >= MIN_PLANS && started.elapsed() > CONTENTION_BUDGET {
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
            let mut changes = planned?;
            match self.write_changes(&snapshot, &mut changes, now).await {
                Ok(mut to_settle) => {
                    for suite in std::mem::take(&mut snapshot.to_settle) {
                        if !to_settle.contains(&suite) {
                            to_settle.push(suite);
                        }
                    }
                    // Children rolled up into suites in place: settle those whose new slots
                    // call for it, as commands of their own.
                    for suite in to_settle {
                        let settle: Plan = Box::new(move |unit| unit.settle(&suite));
                        changes.absorb(Box::pin(self.plan_and_write(now, settle)).await?);
                    }
                    return Ok(changes);
                }
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

    // ----- reads ------------------------------------------------------------------------

    pub(super) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
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
    pub(super) async fn batch_get(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
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
            let mut rounds = BatchRounds::new("batch read");
            while !pending.is_empty() {
                rounds.next().await?;
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
            }
        }
        Ok(found)
    }

    /// Every item of a partition whose sort key starts with `prefix`, in order.
    pub(super) async fn query_prefix(
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

    /// The documents under many `PART#n` partitions, in order, in batches: each first part
    /// in a batch read, and the rest of the few documents longer than one part after.
    pub(super) async fn read_texts(
        &self,
        pks: Vec<String>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let keys = pks.iter().map(|pk| (pk.clone(), part_sk(0))).collect();
        let mut first: HashMap<String, String> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let pk = string_attr(&item, "pk")?.to_owned();
            first.insert(pk, string_attr(&item, "body")?.to_owned());
        }
        let mut texts = Vec::with_capacity(pks.len());
        for pk in &pks {
            texts.push(match first.get(pk) {
                None => None,
                Some(body) if super::items::is_last_part(body) => Some(body.clone()),
                Some(_) => self.read_text(pk).await?,
            });
        }
        Ok(texts)
    }

    pub(super) async fn read_blob<T: DeserializeOwned>(
        &self,
        pk: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.read_text(pk).await? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    /// The JSON document stored as `PART#n` items under `pk`.
    pub(super) async fn read_text(&self, pk: &str) -> Result<Option<String>, StoreError> {
        let parts = self.query_prefix(pk, PART_PREFIX, None, None).await?;
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
    pub(super) async fn index_page(
        &self,
        index: &str,
        partition: &str,
        after: Option<&str>,
        ascending: bool,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let pk_name = index_pk(index);
        let sk_name = index_sk(index);
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

    pub(super) async fn executions_page(
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

    // ----- executions -------------------------------------------------------------------

    pub(super) async fn load_execution(
        &self,
        id: &str,
    ) -> Result<Option<StoredExecution>, StoreError> {
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
        for case in &misses.quarantines {
            keys.push((quarantine_pk(case), QUARANTINE_SK.to_owned()));
        }
        let found = self.batch_get(keys).await?;
        for id in &misses.executions {
            snapshot.executions.entry(id.clone()).or_insert(None);
        }
        for case in &misses.quarantines {
            snapshot.quarantines.entry(case.clone()).or_insert(None);
        }
        // Suites that roll-ups applied here changed: a copy read before, or in this batch, is
        // stale, so the plan reads them again.
        let mut rolled_into = Vec::new();
        for item in found {
            let sk = string_attr(&item, "sk")?;
            if sk == QUARANTINE_SK {
                let quarantine: Quarantine = decode_attr(&item, "data")?;
                let case = quarantine.test_case_id.clone();
                snapshot.quarantines.insert(case, Some(quarantine));
            } else if sk == EXEC_SK {
                let stored = StoredExecution::from_item(&item)?;
                if stored.has_pending_writes() {
                    // Left pending by a writer that failed or died after committing: this
                    // plan's writer settles the suites that now call for it.
                    for suite in self.roll_forward(&stored).await? {
                        if !snapshot.to_settle.contains(&suite) {
                            snapshot.to_settle.push(suite);
                        }
                    }
                    rolled_into.extend(stored.roll_ups.iter().map(|r| r.suite_id.clone()));
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
        for suite in rolled_into {
            snapshot.executions.remove(&suite);
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
            for item in self
                .query_prefix(&exec_pk(id), STEP_PREFIX, None, None)
                .await?
            {
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
            let record = match self.get_item(&idem_pk(owner, key), IDEM_SK).await? {
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

    pub(super) async fn unstored_step(
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

    /// The step names of an execution, from its definition snapshot.
    pub(super) async fn step_names(
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
}

/// Where a walk over an index ends after one of its pages: at the end of the index, or once
/// it has read [`MAX_SCAN`] items (with a cursor where it stopped). `None`: read on.
pub(super) fn walk_end<T>(
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

/// What a plan read, and what it asked for that was not read yet.
#[derive(Default)]
pub(super) struct Snapshot {
    pub(super) executions: HashMap<String, Option<StoredExecution>>,
    /// Steps that exist as items (or in an intent): the rest are implied by the definition.
    pub(super) stored: HashSet<(String, u32)>,
    steps: HashMap<(String, u32), StepResult>,
    all_steps: HashMap<String, Vec<StepResult>>,
    idempotency: HashMap<(String, String), Option<IdempotencyRecord>>,
    names: HashMap<String, Vec<String>>,
    quarantines: HashMap<String, Option<Quarantine>>,
    misses: Misses,
    /// Suites that pending roll-ups rolled forward while reading now call for settling.
    to_settle: Vec<String>,
}

#[derive(Default)]
struct Misses {
    executions: Vec<String>,
    steps: Vec<(String, u32)>,
    all_steps: Vec<String>,
    idempotency: Vec<(String, String)>,
    quarantines: Vec<String>,
}

impl Misses {
    fn is_empty(&self) -> bool {
        self.executions.is_empty()
            && self.steps.is_empty()
            && self.all_steps.is_empty()
            && self.idempotency.is_empty()
            && self.quarantines.is_empty()
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

    fn quarantine(&mut self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError> {
        match self.quarantines.get(test_case_id) {
            Some(found) => Ok(found.clone()),
            None => {
                self.misses.quarantines.push(test_case_id.to_owned());
                Err(StoreError::Unavailable(MISS.into()))
            }
        }
    }
}

const MISS: &str = "not read yet";

pub(super) fn rand_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes)
}
