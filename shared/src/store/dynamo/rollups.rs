//! Analytics rollups as items: each test's current rollup (`RU#{test}` / `CURRENT`, in the
//! flaky index while it is flaky) and its earlier days' (`RU#{test}` / `DAY#{day}`, expired
//! by TTL).
//!
//! A finish does not write its test's rollup in its own write: executions of one test
//! finishing together would all contend for that one item. Its contribution rides in the
//! execution's record instead (`rollup_due`), committed with the finish, and is added right
//! after: one transaction per batch of tests writes each test's record, conditioned on the
//! version read, and clears the dues it added, each conditioned on still being there. So a
//! contribution is added exactly once; a lost race reads again and retries, and contention
//! only delays the rollup, never the finish. A due left behind (a crash, an outage) is added
//! by the next plan that reads its execution, as the finished event's reconcile does.

use super::DynamoStore;
use super::items::{Item, ROLLUP_DUE, corrupt, decode_attr, n, number_attr, s, string_attr};
use super::keys::{
    ALL_FLAKY, EXEC_SK, ROLLUP_CURRENT_SK, exec_pk, index_pk, index_sk, owner_flaky, rollup_day_sk,
    rollup_pk,
};
use super::schema::{INDEX_ALL, INDEX_OWNER, TTL_ATTRIBUTE};
use super::sdk_error;
use super::write::put;
use crate::domain::analytics::{Advanced, Contribution, Rollup};
use crate::domain::errors::StoreError;
use crate::ports::{OwnerScope, Page};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long the record of a past day is kept.
const DAY_RECORD_DAYS: i64 = 400;
/// How long a writer keeps retrying to add its finishes before it leaves them due.
const ADD_BUDGET: Duration = Duration::from_secs(10);
/// The most dues of one test one transaction adds (with its record and a day record, within
/// DynamoDB's 100 items).
const MAX_DUES_PER_TEST: usize = 90;
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Finished executions' contributions still to add, by execution id.
type Dues = Vec<(String, Contribution)>;

/// A rollup as stored, with the version its next write is conditioned on.
#[derive(Debug, Clone)]
pub(super) struct StoredRollup {
    pub(super) rollup: Rollup,
    pub(super) version: u64,
}

impl StoredRollup {
    pub(super) fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(StoredRollup {
            rollup: decode_attr(item, "data")?,
            version: number_attr(item, "ver")?,
        })
    }
}

fn current_item(rollup: &Rollup, version: u64) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&rollup_pk(&rollup.test_id))),
        ("sk".to_owned(), s(ROLLUP_CURRENT_SK)),
        ("ver".to_owned(), n(version)),
        (
            "data".to_owned(),
            to_attribute_value(rollup).map_err(corrupt)?,
        ),
    ]);
    // Sparse: only a flaky test case's current record is in the flaky listing.
    if let Some(rank) = rollup.flaky_rank() {
        item.insert(index_pk(INDEX_OWNER), s(&owner_flaky(&rollup.owner)));
        item.insert(index_sk(INDEX_OWNER), s(&rank));
        item.insert(index_pk(INDEX_ALL), s(ALL_FLAKY));
        item.insert(index_sk(INDEX_ALL), s(&rank));
    }
    Ok(item)
}

fn day_item(rollup: &Rollup) -> Result<Item, StoreError> {
    let expires = chrono::NaiveDate::parse_from_str(&rollup.day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp() + DAY_RECORD_DAYS * 86_400)
        .unwrap_or(0)
        .max(0);
    Ok(HashMap::from([
        ("pk".to_owned(), s(&rollup_pk(&rollup.test_id))),
        ("sk".to_owned(), s(&rollup_day_sk(&rollup.day))),
        (
            "data".to_owned(),
            to_attribute_value(rollup).map_err(corrupt)?,
        ),
        (TTL_ATTRIBUTE.to_owned(), n(expires as u64)),
    ]))
}

/// The writes of a test's advanced rollups: the current record, conditioned on the version
/// read (`None`: there was none), and the record it replaced as its day's. The day record
/// needs no condition: it is what the current record held, which the first write protects.
fn rollup_writes(
    table: &str,
    change: &Advanced,
    read_version: Option<u64>,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let version = read_version.map_or(1, |v| v + 1);
    let item = current_item(&change.current, version)?;
    let (condition, values) = match read_version {
        Some(v) => ("ver = :ver", HashMap::from([(":ver".to_owned(), n(v))])),
        None => ("attribute_not_exists(pk)", HashMap::new()),
    };
    let mut writes = vec![put(table, item, Some(condition), values)];
    if let Some(archived) = &change.archived {
        writes.push(put(table, day_item(archived)?, None, HashMap::new()));
    }
    Ok(writes)
}

/// Clears an execution's due contribution, only if it is still there (so it is added once),
/// and bumps its version (so a plan made on a copy that still shows it reads again).
fn clear_due(table: &str, execution_id: &str) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(&exec_pk(execution_id)))
        .key("sk", s(EXEC_SK))
        .update_expression("REMOVE #due SET ver = ver + :one")
        .condition_expression("attribute_exists(#due)")
        .expression_attribute_names("#due", ROLLUP_DUE)
        .expression_attribute_values(":one", n(1))
        .build()
        .expect("table, key and expression are set");
    TransactWriteItem::builder().update(update).build()
}

impl DynamoStore {
    /// Adds finished executions' due contributions to their tests' rollups, exactly once
    /// (see the module's docs); `Unavailable` when contention outlasts [`ADD_BUDGET`], with
    /// the rest left due.
    pub(super) async fn add_contributions(
        &self,
        dues: Vec<(String, Contribution)>,
    ) -> Result<(), StoreError> {
        self.add_within(dues, ADD_BUDGET).await
    }

    /// One try at adding dues a reader found (it has a plan of its own to get on with):
    /// what loses a race stays due, for the writer that is adding it anyway.
    pub(super) async fn help_add_contributions(
        &self,
        dues: Vec<(String, Contribution)>,
    ) -> Result<(), StoreError> {
        self.add_within(dues, Duration::ZERO).await
    }

    async fn add_within(
        &self,
        dues: Vec<(String, Contribution)>,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut pending = dues;
        let mut lost_races = 0u32;
        while !pending.is_empty() {
            // Each round: every test's record read at once, its dues (in order, up to a
            // transaction's worth) added, tests packed into transactions.
            let mut tests: Vec<String> = Vec::new();
            let mut by_test: HashMap<String, Vec<(String, Contribution)>> = HashMap::new();
            let mut later = Vec::new();
            for (id, due) in pending {
                let of_test = by_test.entry(due.test_id.clone()).or_default();
                if of_test.is_empty() {
                    tests.push(due.test_id.clone());
                }
                if of_test.len() < MAX_DUES_PER_TEST {
                    of_test.push((id, due));
                } else {
                    later.push((id, due));
                }
            }
            let keys = tests
                .iter()
                .map(|t| (rollup_pk(t), ROLLUP_CURRENT_SK.to_owned()))
                .collect();
            let mut read: HashMap<String, StoredRollup> = HashMap::new();
            for item in self.batch_get(keys).await? {
                let stored = StoredRollup::from_item(&item)?;
                read.insert(stored.rollup.test_id.clone(), stored);
            }
            let mut chunks: Vec<(Vec<TransactWriteItem>, Dues)> = Vec::new();
            for test in &tests {
                let dues = by_test.remove(test).unwrap_or_default();
                let stored = read.get(test);
                let mut state = Advanced::from(stored.map(|s| s.rollup.clone()));
                for (_, due) in &dues {
                    state = Some(Advanced::add(state, due));
                }
                let Some(state) = state else { continue };
                let mut writes = rollup_writes(&self.table, &state, stored.map(|s| s.version))?;
                writes.extend(dues.iter().map(|(id, _)| clear_due(&self.table, id)));
                match chunks.last_mut() {
                    Some((chunk, of_chunk))
                        if chunk.len() + writes.len() <= MAX_TRANSACTION_ITEMS =>
                    {
                        chunk.extend(writes);
                        of_chunk.extend(dues);
                    }
                    _ => chunks.push((writes, dues)),
                }
            }
            let mut lost = Vec::new();
            for (chunk, dues) in chunks {
                match self.transact(chunk).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => lost.extend(dues),
                    Err(e) => return Err(e),
                }
            }
            if !lost.is_empty() {
                lost_races += 1;
                if started.elapsed() >= budget {
                    return Err(StoreError::Unavailable(
                        "too much contention on a test's rollup; its finishes stay due".into(),
                    ));
                }
                // Someone else may have added some (a reader rolling one forward): only the
                // ones still due go again, after a pause (exponential, full jitter, capped).
                lost = self.still_due(lost).await?;
                let ceiling = (10u64 << lost_races.min(5)).min(250);
                let pause = u64::from(super::plan::rand_u16()) % ceiling.max(1);
                tokio::time::sleep(Duration::from_millis(pause + 1)).await;
            }
            lost.extend(later);
            pending = lost;
        }
        Ok(())
    }

    /// The dues whose executions still hold them.
    async fn still_due(
        &self,
        dues: Vec<(String, Contribution)>,
    ) -> Result<Vec<(String, Contribution)>, StoreError> {
        let keys = dues
            .iter()
            .map(|(id, _)| (exec_pk(id), EXEC_SK.to_owned()))
            .collect();
        let mut holding = HashSet::new();
        for item in self.batch_get(keys).await? {
            if item.contains_key(ROLLUP_DUE) {
                holding.insert(string_attr(&item, "id")?.to_owned());
            }
        }
        Ok(dues
            .into_iter()
            .filter(|(id, _)| holding.contains(id))
            .collect())
    }

    pub(super) async fn read_current_rollup(
        &self,
        test_id: &str,
    ) -> Result<Option<Rollup>, StoreError> {
        match self
            .get_item(&rollup_pk(test_id), ROLLUP_CURRENT_SK)
            .await?
        {
            Some(item) => Ok(Some(StoredRollup::from_item(&item)?.rollup)),
            None => Ok(None),
        }
    }

    /// One query for the days before the current record's, and the current record.
    pub(super) async fn read_rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError> {
        let pk = rollup_pk(test_id);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :since AND :until")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":since", s(&rollup_day_sk(since)))
                .expression_attribute_values(":until", s(&rollup_day_sk(until)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("query rollups", e))?;
            for item in output.items.unwrap_or_default() {
                found.push(decode_attr::<Rollup>(&item, "data")?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        if let Some(current) = self.read_current_rollup(test_id).await?
            && current.day.as_str() >= since
            && current.day.as_str() <= until
        {
            found.push(current);
        }
        Ok(found)
    }

    pub(super) async fn read_flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError> {
        let (index, partition) = match owner {
            Some(owner) => (INDEX_OWNER, owner_flaky(owner)),
            None => (INDEX_ALL, ALL_FLAKY.to_owned()),
        };
        let wanted = limit.saturating_add(1).min(1000) as i32;
        let (page, _) = self
            .index_page(index, &partition, after, true, wanted)
            .await?;
        let mut items = Vec::with_capacity(page.len());
        for item in &page {
            items.push(decode_attr::<Rollup>(item, "data")?);
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().and_then(Rollup::flaky_rank)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
