//! The event log on DynamoDB, written from the table's change stream.
//!
//! Writes to one execution never wait for each other (see `delta`), so none of them can
//! take the next `seq`: numbering them in the write would bring back the lock. The order comes
//! from the one item every change of an execution writes, its execution item: DynamoDB applies
//! one item's writes one at a time, and its stream delivers them in that order, each with the
//! item as it was before and after. A change's entries follow from those two images by the
//! domain's [`entries_between`], the rule the embedded store applies inside its own write, so
//! both stores log the same entries for the same change.
//!
//! One consumer per stream shard (the `log` function on AWS; `sync_log`, see `follow`,
//! locally and in tests) numbers them on from the log's head item and writes them as
//! `EV#{seq}` items; the head moves only once they are written, and readers read only up to
//! the head, so no reader sees a later entry before an earlier one. A stream record delivered
//! again finds its `ver` at or below the head's and logs nothing.

use super::items::{Item, StoredExecution, corrupt, n, s};
use super::keys::{EXEC_SK, LOG_SK, event_sk, exec_pk};
use super::schema::TTL_ATTRIBUTE;
use super::{DynamoStore, is_condition_failure, sdk_error};
use crate::domain::errors::StoreError;
use crate::domain::execution::{HistoryEntry, StepResult};
use crate::domain::log::{LOG_RETENTION_MS, LogEntry, PendingEntry, entries_between};
use crate::domain::time::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};
use std::collections::HashMap;

/// Entries written before the head moves, at most (a change may log hundreds).
const ENTRIES_PER_ROUND: usize = 100;

/// Where an execution's log stands: its last `seq`, the execution item version it last
/// logged, and how many of that version's entries are in.
#[derive(Debug, Clone, Copy, Default)]
struct LogHead {
    seq: u64,
    ver: u64,
    done: usize,
}

/// What one change of an execution item logs: its entries, to be numbered after those of the
/// changes before it.
struct Change {
    execution_id: String,
    /// The execution item's version the change made.
    ver: u64,
    entries: Vec<PendingEntry>,
}

impl DynamoStore {
    /// Logs one change of an item, from the table's stream: `old` and `new` are the item as it
    /// was before and after. Anything but an execution item, and a write that did not move
    /// the execution's version (clearing what a change left to roll forward), logs nothing.
    /// Returns how many entries it wrote; safe to repeat.
    pub async fn log_change(&self, old: Option<&Item>, new: &Item) -> Result<usize, StoreError> {
        match change_of(old, new)? {
            Some(change) => {
                self.append(&change.execution_id, change.ver, &change.entries)
                    .await
            }
            None => Ok(0),
        }
    }

    /// Logs changes in the stream's order, as [`log_change`](Self::log_change) does one by
    /// one, but with the entries of consecutive changes of one execution (a burst of reports)
    /// written together: one read of its log's head, one batch write, one move of the head.
    /// Stops at the first change it cannot log: the error says which (its index), and every
    /// change before it is logged. Returns how many entries it wrote; safe to repeat.
    pub async fn log_changes(
        &self,
        changes: &[(Option<&Item>, &Item)],
    ) -> Result<usize, (usize, StoreError)> {
        let mut written = 0;
        let mut next = 0;
        while next < changes.len() {
            let first = next;
            let mut run: Vec<Change> = Vec::new();
            // The run: this change and the next ones of the same execution; a change that
            // logs nothing does not end it, one that cannot be read does (it fails in turn).
            while let Some((old, new)) = changes.get(next) {
                match change_of(*old, new) {
                    Ok(None) => next += 1,
                    Ok(Some(change))
                        if run
                            .first()
                            .is_none_or(|c| c.execution_id == change.execution_id) =>
                    {
                        run.push(change);
                        next += 1;
                    }
                    Ok(Some(_)) => break,
                    Err(error) if run.is_empty() => return Err((next, error)),
                    Err(_) => break,
                }
            }
            written += self.append_run(&run).await.map_err(|e| (first, e))?;
        }
        Ok(written)
    }

    /// Appends a run of changes of one execution, in order.
    async fn append_run(&self, run: &[Change]) -> Result<usize, StoreError> {
        let total: usize = run.iter().map(|c| c.entries.len()).sum();
        let (Some(first), true) = (run.first(), total <= ENTRIES_PER_ROUND) else {
            // Long runs go change by change, each in rounds.
            let mut written = 0;
            for change in run {
                written += self
                    .append(&change.execution_id, change.ver, &change.entries)
                    .await?;
            }
            return Ok(written);
        };
        let id = &first.execution_id;
        loop {
            let head = self.log_head(id).await?;
            let mut items = Vec::new();
            let mut moved = head;
            let mut last_at = None;
            for change in run {
                let start = match head.ver {
                    v if v > change.ver => continue,
                    v if v == change.ver => head.done,
                    _ => 0,
                };
                for entry in change.entries.iter().skip(start) {
                    moved.seq += 1;
                    items.push(event_item(id, &LogEntry::numbered(moved.seq, entry))?);
                    last_at = Some(entry.at);
                }
                moved.ver = change.ver;
                moved.done = change.entries.len().max(start);
            }
            let Some(last_at) = last_at else {
                return Ok(0);
            };
            let count = items.len();
            // The same entries under the same numbers as any earlier try: overwriting is safe.
            self.batch_put(items).await?;
            match self.move_head(id, head, moved, last_at).await? {
                true => return Ok(count),
                // Another consumer moved the head meanwhile: read where it stands now.
                false => continue,
            }
        }
    }

    /// Numbers `entries` (the change that made version `ver`) on from the log's head and
    /// writes them, then moves the head; picks up where an interrupted earlier try stopped.
    async fn append(
        &self,
        id: &str,
        ver: u64,
        entries: &[PendingEntry],
    ) -> Result<usize, StoreError> {
        let mut written = 0;
        loop {
            let head = self.log_head(id).await?;
            let start = match head.ver {
                v if v > ver => return Ok(written),
                v if v == ver => head.done,
                _ => 0,
            };
            if start >= entries.len() {
                return Ok(written);
            }
            let round = &entries[start..entries.len().min(start + ENTRIES_PER_ROUND)];
            let mut items = Vec::with_capacity(round.len());
            for (i, entry) in round.iter().enumerate() {
                let numbered = LogEntry::numbered(head.seq + 1 + i as u64, entry);
                items.push(event_item(id, &numbered)?);
            }
            // The same entries under the same numbers as any earlier try: overwriting is safe.
            self.batch_put(items).await?;
            let moved = LogHead {
                seq: head.seq + round.len() as u64,
                ver,
                done: start + round.len(),
            };
            let last_at = round.last().map_or_else(Timestamp::now, |e| e.at);
            // Another consumer moved the head meanwhile: read where it stands now.
            if self.move_head(id, head, moved, last_at).await? {
                written += round.len();
            }
        }
    }

    /// Moves the log's head from `head` to `moved` (entries up to `last_at` written), unless
    /// another consumer moved it first (`false`).
    async fn move_head(
        &self,
        id: &str,
        head: LogHead,
        moved: LogHead,
        last_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(LOG_SK))
            .update_expression("SET seq = :seq, ver = :ver, done = :done, #ttl = :ttl")
            .condition_expression("attribute_not_exists(pk) OR seq = :was")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":seq", n(moved.seq))
            .expression_attribute_values(":ver", n(moved.ver))
            .expression_attribute_values(":done", n(moved.done as u64))
            .expression_attribute_values(":ttl", n(expiry(last_at)))
            .expression_attribute_values(":was", n(head.seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error("move the log head", e)),
        }
    }

    async fn log_head(&self, id: &str) -> Result<LogHead, StoreError> {
        let Some(item) = self.get_item(&exec_pk(id), LOG_SK).await? else {
            return Ok(LogHead::default());
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("log head of {id} without `{name}`")))
        };
        Ok(LogHead {
            seq: number("seq")?,
            ver: number("ver")?,
            done: number("done")? as usize,
        })
    }

    /// Entries with `seq` above `after`, up to the head, at most `limit`.
    pub(super) async fn read_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let head = self.log_head(id).await?;
        let last = head.seq.min(after.saturating_add(limit as u64));
        if last <= after {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                .expression_attribute_values(":pk", s(&exec_pk(id)))
                .expression_attribute_values(":first", s(&event_sk(after + 1)))
                .expression_attribute_values(":last", s(&event_sk(last)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("read the log", e))?;
            for item in page.items.unwrap_or_default() {
                let data = item
                    .get("data")
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt("log entry without data".into()))?;
                entries.push(from_attribute_value(data).map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(entries),
            }
        }
    }
}

/// What a change of an item logs (`None` for anything but an execution item, and for a write
/// that did not move the execution's version).
fn change_of(old: Option<&Item>, new: &Item) -> Result<Option<Change>, StoreError> {
    if new
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        != Some(EXEC_SK)
    {
        return Ok(None);
    }
    let after = StoredExecution::from_item(new)?;
    let before = old.map(StoredExecution::from_item).transpose()?;
    if before.as_ref().is_some_and(|b| b.version >= after.version) {
        return Ok(None);
    }
    let known = before.as_ref().map_or(0, |b| b.history.len());
    let history: Vec<&HistoryEntry> = after.history.iter().skip(known).collect();
    let reported = reported_steps(before.as_ref(), &after, new)?;
    let reported: Vec<&StepResult> = reported.iter().collect();
    let at = new
        .get("changed_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .map_or_else(Timestamp::now, Timestamp::from_millis);
    let entries = entries_between(
        before.as_ref().map(|b| &b.execution),
        &after.execution,
        &history,
        &reported,
        at,
    );
    Ok(Some(Change {
        execution_id: after.execution.id.clone(),
        ver: after.version,
        entries,
    }))
}

/// The partitioned steps a change wrote from reports: a large report's part rides in the
/// item's `intent`, a small one's steps in `last_steps` (tagged with the version that wrote
/// them). Never-reported steps skipped at completion are neither (see `entries_between`).
fn reported_steps(
    before: Option<&StoredExecution>,
    after: &StoredExecution,
    new: &Item,
) -> Result<Vec<StepResult>, StoreError> {
    if !after.execution.is_partitioned() {
        return Ok(Vec::new());
    }
    let carried_over = before.is_some_and(|b| !b.intent.is_empty() && b.intent == after.intent);
    if !after.intent.is_empty() && !carried_over {
        return Ok(after.intent.clone());
    }
    let tagged = new
        .get("last_steps_ver")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match (tagged, new.get("last_steps")) {
        (Some(ver), Some(steps)) if ver == after.version => {
            from_attribute_value(steps.clone()).map_err(corrupt)
        }
        _ => Ok(Vec::new()),
    }
}

fn event_item(id: &str, entry: &LogEntry) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(&exec_pk(id))),
        ("sk".to_owned(), s(&event_sk(entry.seq))),
        (TTL_ATTRIBUTE.to_owned(), n(expiry(entry.at))),
        (
            "data".to_owned(),
            to_attribute_value(entry).map_err(corrupt)?,
        ),
    ]))
}

/// When a log record made at `at` may go (epoch seconds).
fn expiry(at: Timestamp) -> u64 {
    ((at.millis() + LOG_RETENTION_MS) / 1000).max(0) as u64
}
