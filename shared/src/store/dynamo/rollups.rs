//! Analytics rollups as items: each test's current rollup (`RU#{test}` / `CURRENT`, in the
//! flaky index while it is flaky) and its earlier days' (`RU#{test}` / `DAY#{day}`, expired
//! by TTL).
//!
//! A finish does not write its test's rollup in its own write: executions of one test
//! finishing together would all contend for that one item. Its contribution rides in the
//! execution's record instead (`rollup_due`), committed with the finish, and is added right
//! after, exactly once (each due is cleared, conditioned on its still being there, in the
//! same transaction that adds it):
//!
//! - **Directly**, when nobody else is at the record: one batch read of the tests' records,
//!   then a transaction per batch of tests writes each record with its contributions added,
//!   conditioned on its version and on nothing being pending (below). Two requests a batch.
//! - Else **append, then fold**. A finish that lost that race appends its contribution to the
//!   record's `pending` list (an update with no condition on the record, so finishes of one
//!   test do not undo each other's work) and clears its due, in one transaction; then it reads
//!   the record and folds everything pending into it (the counts, the sketch, the outcome
//!   window, the flaky index's keys), removing exactly the entries it folded, conditioned on
//!   the version. One fold takes every finish pending, so N finishes of one test at once
//!   take a few folds, not N rounds. A fold that loses reads again and folds what is still
//!   pending; one that runs out of time leaves it for the test's next finish.
//!
//! A due left behind (a crash, an outage) is added by the next plan that reads its execution,
//! as the finished event's reconcile does.
//!
//! Readers fold what is pending in memory, so the counts they see are exact at once; only the
//! flaky listing waits for the fold.

use super::DynamoStore;
use super::items::{Item, ROLLUP_DUE, corrupt, decode_attr, n, number_attr, s, string_attr};
use super::keys::{
    ALL_FLAKY, EXEC_SK, ROLLUP_CURRENT_SK, exec_pk, index_pk, index_sk, owner_flaky, rollup_day_sk,
    rollup_pk,
};
use super::schema::{INDEX_ALL, INDEX_OWNER, TTL_ATTRIBUTE};
use super::sdk_error;
use super::write::{MAX_TRANSACTION_ITEMS, put};
use crate::domain::analytics::{Advanced, Contribution, Rollup};
use crate::domain::errors::StoreError;
use crate::ports::{OwnerScope, Page};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a record of a past day is kept.
const DAY_RECORD_DAYS: i64 = 400;
/// How long a writer keeps retrying to append its finishes before it leaves them due, and to
/// fold them before it leaves them pending.
const ADD_BUDGET: Duration = Duration::from_secs(10);
/// The most dues of one test one append carries (with the record's update, within
/// DynamoDB's 100 items a transaction).
const MAX_DUES_PER_TEST: usize = 99;
/// The most pending contributions one fold takes: its `REMOVE` list stays far below
/// DynamoDB's 4 KB expression limit.
const MAX_FOLD: usize = 100;
/// The most dues of one test a direct fold carries (with the record and its day records).
const MAX_DIRECT_DUES: usize = 90;
/// The current record's list of contributions appended and not yet folded.
const PENDING: &str = "pending";

/// Finished executions' contributions still to add, by execution id.
type Dues = Vec<(String, Contribution)>;
/// A test whose fold is written, and whether it took all that was pending.
type Folded = (String, bool);

/// A test's current record as stored.
#[derive(Debug, Clone)]
pub(super) struct StoredRollup {
    /// What the folds so far made of the test's finishes (`None`: none folded yet).
    folded: Option<Rollup>,
    /// The version the next fold is conditioned on (0: none folded yet).
    version: u64,
    /// Contributions appended since, oldest first.
    pending: Vec<PendingEntry>,
}

/// A contribution on a record's pending list, with the execution it is of: a writer whose
/// fold lost can tell whether the winner's took its own.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingEntry {
    execution_id: String,
    contribution: Contribution,
}

impl PendingEntry {
    fn of(dues: &[(String, Contribution)]) -> impl Iterator<Item = PendingEntry> + '_ {
        dues.iter().map(|(id, contribution)| PendingEntry {
            execution_id: id.clone(),
            contribution: contribution.clone(),
        })
    }
}

impl StoredRollup {
    pub(super) fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(StoredRollup {
            folded: match item.get("data") {
                Some(_) => Some(decode_attr(item, "data")?),
                None => None,
            },
            version: match item.get("ver") {
                Some(_) => number_attr(item, "ver")?,
                None => 0,
            },
            pending: match item.get(PENDING) {
                Some(value) => from_attribute_value(value.clone()).map_err(corrupt)?,
                None => Vec::new(),
            },
        })
    }

    /// The record with its first `take` pending contributions folded in, and the records of
    /// the days they closed (oldest first): a contribution of a later day starts that day's
    /// record.
    fn folded_with(&self, take: usize) -> (Option<Rollup>, Vec<Rollup>) {
        let mut state = Advanced::from(self.folded.clone());
        let mut closed = Vec::new();
        for entry in self.pending.iter().take(take) {
            let mut next = Advanced::add(state, &entry.contribution);
            closed.extend(next.archived.take());
            state = Some(next);
        }
        (state.map(|s| s.current), closed)
    }

    /// Everything pending folded in: what a reader sees.
    fn settled(&self) -> (Option<Rollup>, Vec<Rollup>) {
        self.folded_with(self.pending.len())
    }
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

/// Appends contributions to a test's pending list (creating its record if it has none).
fn append(
    table: &str,
    test_id: &str,
    dues: &[(String, Contribution)],
) -> Result<TransactWriteItem, StoreError> {
    let entries: Vec<PendingEntry> = PendingEntry::of(dues).collect();
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(&rollup_pk(test_id)))
        .key("sk", s(ROLLUP_CURRENT_SK))
        .update_expression("SET #p = list_append(if_not_exists(#p, :empty), :new)")
        .expression_attribute_names("#p", PENDING)
        .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
        .expression_attribute_values(":new", to_attribute_value(&entries).map_err(corrupt)?)
        .build()
        .expect("table, key and expression are set");
    Ok(TransactWriteItem::builder().update(update).build())
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

/// A fold's writes: the record's new state and version, the flaky index's keys, the first
/// `take` pending entries removed, conditioned on the version read; and the records of the
/// days it closed.
///
/// `exactly_pending`: also conditioned on the pending list's length (a direct fold, which
/// also carries contributions that were never appended, may not miss one appended meanwhile).
fn fold_writes(
    table: &str,
    stored: &StoredRollup,
    take: usize,
    current: &Rollup,
    closed: &[Rollup],
    exactly_pending: bool,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let mut set = vec!["#d = :data".to_owned(), "ver = :next".to_owned()];
    let mut remove: Vec<String> = (0..take).map(|i| format!("#p[{i}]")).collect();
    let mut values = HashMap::from([
        (
            ":data".to_owned(),
            to_attribute_value(current).map_err(corrupt)?,
        ),
        (":next".to_owned(), n(stored.version + 1)),
    ]);
    // Sparse: only a flaky test case's current record is in the flaky listing.
    match current.flaky_rank() {
        Some(rank) => {
            let keys = [
                (index_pk(INDEX_OWNER), owner_flaky(&current.owner)),
                (index_sk(INDEX_OWNER), rank.clone()),
                (index_pk(INDEX_ALL), ALL_FLAKY.to_owned()),
                (index_sk(INDEX_ALL), rank),
            ];
            for (i, (name, value)) in keys.into_iter().enumerate() {
                set.push(format!("{name} = :k{i}"));
                values.insert(format!(":k{i}"), s(&value));
            }
        }
        None => remove.extend([
            index_pk(INDEX_OWNER),
            index_sk(INDEX_OWNER),
            index_pk(INDEX_ALL),
            index_sk(INDEX_ALL),
        ]),
    }
    let mut condition = if stored.version == 0 {
        "attribute_not_exists(ver)".to_owned()
    } else {
        values.insert(":ver".to_owned(), n(stored.version));
        "ver = :ver".to_owned()
    };
    if exactly_pending {
        condition.push_str(" AND (attribute_not_exists(#p) OR size(#p) = :pending)");
        values.insert(":pending".to_owned(), n(stored.pending.len() as u64));
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(&rollup_pk(&current.test_id)))
        .key("sk", s(ROLLUP_CURRENT_SK))
        .update_expression(expression)
        .condition_expression(condition)
        .expression_attribute_names("#d", "data")
        .expression_attribute_names("#p", PENDING)
        .set_expression_attribute_values(Some(values))
        .build()
        .expect("table, key and expression are set");
    let mut writes = vec![TransactWriteItem::builder().update(update).build()];
    for day in closed {
        writes.push(put(table, day_item(day)?, None, HashMap::new()));
    }
    Ok(writes)
}

/// Pauses before another try after `lost_races` lost races: exponential, full jitter, capped.
async fn back_off(lost_races: u32) {
    let ceiling = (10u64 << lost_races.min(5)).min(250);
    let pause = u64::from(super::plan::rand_u16()) % ceiling.max(1);
    tokio::time::sleep(Duration::from_millis(pause + 1)).await;
}

/// Dues grouped by their test, the tests in the order their first due came.
fn group_by_test(dues: Dues) -> Vec<(String, Dues)> {
    let mut groups: Vec<(String, Dues)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (id, due) in dues {
        let at = *position.entry(due.test_id.clone()).or_insert_with(|| {
            groups.push((due.test_id.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push((id, due));
    }
    groups
}

/// Groups of writes packed into transactions of at most [`MAX_TRANSACTION_ITEMS`] items in
/// order, a group never split across two; each transaction with what its groups are of.
fn pack<T>(
    groups: impl IntoIterator<Item = (Vec<TransactWriteItem>, T)>,
) -> Vec<(Vec<TransactWriteItem>, Vec<T>)> {
    let mut transactions: Vec<(Vec<TransactWriteItem>, Vec<T>)> = Vec::new();
    for (writes, of) in groups {
        match transactions.last_mut() {
            Some((chunk, of_chunk)) if chunk.len() + writes.len() <= MAX_TRANSACTION_ITEMS => {
                chunk.extend(writes);
                of_chunk.push(of);
            }
            _ => transactions.push((writes, vec![of])),
        }
    }
    transactions
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
        let left = self.fold_in_directly(dues).await?;
        if left.is_empty() {
            return Ok(());
        }
        // A lost race, or a due someone else added meanwhile: only the ones still due go on.
        let left = self.still_due(left).await?;
        let mut mine: HashMap<String, HashSet<String>> = HashMap::new();
        for (id, due) in &left {
            mine.entry(due.test_id.clone())
                .or_default()
                .insert(id.clone());
        }
        self.append_dues(left, started, budget).await?;
        self.fold(mine, started, budget).await
    }

    /// The uncontended way, first: each test's record read (one batch read), and written
    /// with these dues folded in, conditioned on its version and on nothing being pending,
    /// with the dues cleared, in transactions of whole tests. The dues of a test that lost
    /// its race, or whose record has entries pending, are returned, to append.
    async fn fold_in_directly(&self, dues: Dues) -> Result<Dues, StoreError> {
        let mut left = Vec::new();
        let mut groups = group_by_test(dues);
        for (_, of_test) in &mut groups {
            // Room in one transaction for the record, its clears and a few day records.
            if of_test.len() > MAX_DIRECT_DUES {
                left.extend(of_test.split_off(MAX_DIRECT_DUES));
            }
        }
        let keys = groups
            .iter()
            .map(|(test, _)| (rollup_pk(test), ROLLUP_CURRENT_SK.to_owned()))
            .collect();
        let mut read: HashMap<String, StoredRollup> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let stored = StoredRollup::from_item(&item)?;
            read.insert(string_attr(&item, "pk")?.to_owned(), stored);
        }
        let mut writes_of_tests = Vec::with_capacity(groups.len());
        for (test, of_test) in groups {
            let stored = read.remove(&rollup_pk(&test)).unwrap_or(StoredRollup {
                folded: None,
                version: 0,
                pending: Vec::new(),
            });
            // Others are appending to it: join them (a direct write would lose to them).
            if !stored.pending.is_empty() {
                left.extend(of_test);
                continue;
            }
            let mut with_dues = stored.clone();
            with_dues.pending.extend(PendingEntry::of(&of_test));
            let (Some(current), closed) = with_dues.settled() else {
                continue;
            };
            let take = stored.pending.len();
            let mut writes = fold_writes(&self.table, &stored, take, &current, &closed, true)?;
            writes.extend(of_test.iter().map(|(id, _)| clear_due(&self.table, id)));
            writes_of_tests.push((writes, of_test));
        }
        for (writes, of_chunk) in pack(writes_of_tests) {
            match self.transact(writes).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => left.extend(of_chunk.into_iter().flatten()),
                Err(e) => return Err(e),
            }
        }
        Ok(left)
    }

    /// Step 1: each due appended to its test's pending list and cleared, in transactions of
    /// whole tests' groups (a group never split from its append).
    async fn append_dues(
        &self,
        dues: Dues,
        started: Instant,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let mut pending = dues;
        let mut lost_races = 0u32;
        while !pending.is_empty() {
            let mut groups = Vec::new();
            for (test, of_test) in group_by_test(pending) {
                for group in of_test.chunks(MAX_DUES_PER_TEST) {
                    let mut writes = vec![append(&self.table, &test, group)?];
                    writes.extend(group.iter().map(|(id, _)| clear_due(&self.table, id)));
                    groups.push((writes, group.to_vec()));
                }
            }
            let mut lost = Vec::new();
            for (writes, dues) in pack(groups) {
                match self.transact(writes).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => lost.extend(dues.into_iter().flatten()),
                    Err(e) => return Err(e),
                }
            }
            if lost.is_empty() {
                break;
            }
            lost_races += 1;
            if started.elapsed() >= budget {
                return Err(StoreError::Unavailable(
                    "too much contention on a test's rollup; its finishes stay due".into(),
                ));
            }
            // A concurrent transaction on the record, or a due someone else appended: only
            // the ones still due go again.
            pending = self.still_due(lost).await?;
            back_off(lost_races).await;
        }
        Ok(())
    }

    /// Step 2: what is pending on the tests' records folded into them, until nothing is (or
    /// the budget is spent: a test's next finish folds the rest, readers fold it meanwhile).
    /// One batch read of the records a round, their folds packed into transactions.
    async fn fold(
        &self,
        mine: HashMap<String, HashSet<String>>,
        started: Instant,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let mut tests: Vec<String> = mine.keys().cloned().collect();
        let mut lost_races = 0u32;
        while !tests.is_empty() {
            let keys = tests
                .iter()
                .map(|t| (rollup_pk(t), ROLLUP_CURRENT_SK.to_owned()))
                .collect();
            let mut folds: Vec<(Vec<TransactWriteItem>, Folded)> = Vec::new();
            for item in self.batch_get(keys).await? {
                let stored = StoredRollup::from_item(&item)?;
                let take = stored.pending.len().min(MAX_FOLD);
                let (Some(current), closed) = stored.folded_with(take) else {
                    continue;
                };
                // Done once another writer's fold took this writer's own entries.
                let own = mine.get(&current.test_id);
                let waiting = stored
                    .pending
                    .iter()
                    .any(|e| own.is_some_and(|own| own.contains(&e.execution_id)));
                if take == 0 || !waiting {
                    continue;
                }
                let writes = fold_writes(&self.table, &stored, take, &current, &closed, false)?;
                folds.push((
                    writes,
                    (current.test_id.clone(), take == stored.pending.len()),
                ));
            }
            let (mut again, mut lost) = (Vec::new(), false);
            // One test's fold alone goes as a plain conditional `UpdateItem` (half a
            // transaction's write units), several as one transaction.
            for (writes, folded) in pack(folds) {
                match self.transact(writes).await {
                    // What a writer appended was in what it read, so it is folded; what was
                    // appended since is its own writers' to fold.
                    Ok(()) => again.extend(folded.into_iter().filter(|f| !f.1).map(|f| f.0)),
                    Err(StoreError::Conflict(_)) => {
                        lost = true;
                        again.extend(folded.into_iter().map(|f| f.0));
                    }
                    Err(e) => return Err(e),
                }
            }
            if lost {
                lost_races += 1;
                if started.elapsed() >= budget {
                    tracing::debug!(?again, "folding rollups lost their races; left pending");
                    return Ok(());
                }
                back_off(lost_races).await;
            }
            tests = again;
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
            Some(item) => Ok(StoredRollup::from_item(&item)?.settled().0),
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
        // The current record, and the days its pending finishes closed (not stored yet).
        let (current, closed) = match self.get_item(&pk, ROLLUP_CURRENT_SK).await? {
            Some(item) => StoredRollup::from_item(&item)?.settled(),
            None => (None, Vec::new()),
        };
        let in_range = |r: &Rollup| r.day.as_str() >= since && r.day.as_str() <= until;
        found.extend(closed.into_iter().filter(in_range));
        found.extend(current.filter(in_range));
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
        // As of each record's last fold, which its index keys (rank, cursor) are of; what is
        // still pending joins at the next fold, right after its finish.
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
