//! The write path: a planned change set as conditional puts and transactions, step intents
//! rolled forward into step items, and catalog writes.

use super::DynamoStore;
use super::delta::RollUp;
use super::items::{
    Item, ROLLUP_DUE, StoredExecution, blob_parts, catalog_meta, corrupt, execution_item, n, s,
    step_item, string_attr, text_parts,
};
use super::keys::{
    EXEC_SK, IDEM_SK, META_SK, PART_PREFIX, catalog_pk, definition_pk, exec_pk, idem_pk, part_sk,
};
use super::plan::Snapshot;
use super::schema::TTL_ATTRIBUTE;
use super::{BatchRounds, is_condition_failure, sdk_error};
use crate::domain::analytics::Contribution;
use crate::domain::catalog::{CatalogKind, TestCase};
use crate::domain::errors::StoreError;
use crate::domain::execution::{HistoryEntry, StepResult, StepStatus};
use crate::domain::time::Timestamp;
use crate::domain::workflow::{ChangeSet, DefinitionSource, IDEMPOTENCY_WINDOW_MS};
use crate::ports::CatalogRecord;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The most partitioned steps one report writes as a transaction (see `delta`). A larger
/// batch comes from one reporter, which has no one to contend with, and costs less through
/// the execution's intent: a transaction bills every step item twice.
const MAX_TRANSACTED_STEPS: usize = 5;

/// DynamoDB's limit on the items of one transaction.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;

impl DynamoStore {
    /// Writes the step items a committed change carried in its execution's `intent`, then
    /// clears the intent (only if the execution is still at that version: a later version
    /// carries its own). Safe to repeat: the intent is the truth for those steps.
    ///
    /// Its suite roll-ups are applied the same way; returns the suites that, as they now
    /// stand, need settling.
    pub(super) async fn roll_forward(
        &self,
        stored: &StoredExecution,
    ) -> Result<Vec<String>, StoreError> {
        let id = &stored.execution.id;
        let mut items = Vec::with_capacity(stored.intent.len());
        for step in &stored.intent {
            items.push(step_item(id, step)?);
        }
        self.batch_put(items).await?;
        let mut to_settle = Vec::new();
        for roll_up in &stored.roll_ups {
            if self.roll_up(roll_up).await? && !to_settle.contains(&roll_up.suite_id) {
                to_settle.push(roll_up.suite_id.clone());
            }
        }
        if let Some(due) = &stored.rollup_due {
            // Its own clear bumps the version, so it goes after the intent's (below), and
            // a plan made on the copy read before loses its race and reads again.
            let due = vec![(id.clone(), due.clone())];
            let added = self.roll_forward_intent(stored, to_settle).await?;
            if let Err(error) = self.help_add_contributions(due).await {
                tracing::warn!(execution_id = %id, %error, "adding a finish to its rollup failed; left due");
            }
            return Ok(added);
        }
        self.roll_forward_intent(stored, to_settle).await
    }

    /// Clears a rolled-forward execution's intent and roll-ups; `to_settle` passes through.
    async fn roll_forward_intent(
        &self,
        stored: &StoredExecution,
        to_settle: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        let id = &stored.execution.id;
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(EXEC_SK))
            .update_expression("REMOVE intent, roll_up")
            .condition_expression("ver = :ver")
            .expression_attribute_values(":ver", n(stored.version))
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(to_settle),
            // Already superseded by a newer version, which rolled this one forward first.
            Err(e) if is_condition_failure(&e) => Ok(to_settle),
            Err(e) => Err(sdk_error("clear intent", e)),
        }
    }

    /// Unconditional puts, 25 a request, unprocessed items retried.
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
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
            let mut rounds = BatchRounds::new("batch write");
            while !pending.is_empty() {
                rounds.next().await?;
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
            }
        }
        Ok(())
    }

    /// Writes a planned change set with its conditions; returns the suites whose children's
    /// roll-ups call for settling them.
    pub(super) async fn write_changes(
        &self,
        snapshot: &Snapshot,
        changes: &mut ChangeSet,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        if let (Some(delta), [execution]) = (changes.only_step_delta(), &changes.executions[..])
            && (!execution.is_partitioned() || delta.steps.len() <= MAX_TRANSACTED_STEPS)
        {
            if let Some(started_at) = self
                .write_step_delta(snapshot, execution, delta, now)
                .await?
            {
                let id = delta.execution_id.clone();
                changes.started_elsewhere(&id, Some(started_at));
            }
            return Ok(Vec::new());
        }
        let changes: &ChangeSet = changes;
        // Definition snapshots are immutable and content-addressed by case and version:
        // written before the change, harmless if the change then loses a race. Those not
        // stored yet are found in one batch read and written in batches (a suite of a thousand
        // cases, or an import, is a few dozen requests, not two thousand).
        let snapshots: BTreeMap<String, &TestCase> = changes
            .definitions
            .iter()
            .filter_map(|(_, source)| match source {
                DefinitionSource::Snapshot(case) => {
                    Some((definition_pk(&case.id, case.version), case.as_ref()))
                }
                DefinitionSource::CopyOf(_) => None,
            })
            .collect();
        if !snapshots.is_empty() {
            let keys = snapshots
                .keys()
                .map(|pk| (pk.clone(), part_sk(0)))
                .collect();
            let mut stored = HashSet::new();
            for item in self.batch_get(keys).await? {
                stored.insert(string_attr(&item, "pk")?.to_owned());
            }
            let mut parts = Vec::new();
            for (pk, case) in &snapshots {
                if !stored.contains(pk) {
                    parts.extend(blob_parts(pk, *case)?);
                }
            }
            self.batch_put(parts).await?;
        }
        let mut definitions: HashMap<&str, String> = HashMap::new();
        for (id, source) in &changes.definitions {
            let pk = match source {
                DefinitionSource::Snapshot(case) => definition_pk(&case.id, case.version),
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
        let (rolled_up, mut roll_ups) = roll_ups_of_change(changes);
        // Rollup contributions ride in their executions' records, committed with the finish,
        // and are added to the rollups right after (see `rollups`).
        let mut contributions: HashMap<&str, &Contribution> = HashMap::new();
        for change in &changes.rollups {
            for (id, contribution) in &change.contributions {
                contributions.insert(id.as_str(), contribution);
            }
        }
        let mut dues: Vec<(String, Contribution)> = Vec::new();
        let mut creations = Vec::new();
        let mut updates = Vec::new();
        let mut written: Vec<StoredExecution> = Vec::new();
        for execution in &changes.executions {
            if rolled_up.contains(execution.id.as_str()) {
                continue;
            }
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
            // When the change was made, for its event log entries (see `log`).
            item.insert("changed_at".into(), n(now.millis().max(0) as u64));
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
            // One still due from an earlier version (its adding failed) stays due.
            let due = contributions
                .get(execution.id.as_str())
                .map(|c| (*c).clone())
                .or_else(|| previous.as_ref().and_then(|p| p.rollup_due.clone()));
            if let Some(due) = due {
                item.insert(
                    ROLLUP_DUE.into(),
                    to_attribute_value(&due).map_err(corrupt)?,
                );
                dues.push((execution.id.clone(), due));
            }
            let roll_ups = roll_ups.remove(execution.id.as_str()).unwrap_or_default();
            if !roll_ups.is_empty() {
                item.insert(
                    "roll_up".into(),
                    to_attribute_value(&roll_ups).map_err(corrupt)?,
                );
            }
            if !intent.is_empty() || !roll_ups.is_empty() {
                written.push(StoredExecution {
                    execution: execution.clone(),
                    history: Vec::new(),
                    version: version + 1,
                    definition: None,
                    intent,
                    unreported_skipped_at: skipped,
                    roll_ups,
                    // Added below, with the change's others, in batches.
                    rollup_due: None,
                });
            }
            if created.contains(execution.id.as_str()) {
                let write = put(
                    &self.table,
                    item,
                    Some("attribute_not_exists(pk)"),
                    HashMap::new(),
                );
                // The root of a new tree goes with the updates (and the claims), so it
                // appears last; all of them go together where they fit one transaction.
                if execution.parent_id.is_some()
                    && changes.created.len() > MAX_TRANSACTION_ITEMS - 1 - changes.idempotency.len()
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
        for record in &changes.idempotency {
            let mut item = HashMap::from([
                ("pk".to_owned(), s(&idem_pk(&record.owner, &record.key))),
                ("sk".to_owned(), s(IDEM_SK)),
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
        // Committed, pending writes included: the change is durable and its events are due.
        // Rolling it forward now only spares readers the work; if that fails (an outage, a
        // crash), the next plan that reads the execution rolls it forward, and the child's
        // finished event (its reconcile) or the deadline sweep settles its suite.
        let mut to_settle = Vec::new();
        for stored in &written {
            match self.roll_forward(stored).await {
                Ok(suites) => {
                    for suite in suites {
                        if !to_settle.contains(&suite) {
                            to_settle.push(suite);
                        }
                    }
                }
                Err(error) => tracing::warn!(
                    execution_id = %stored.execution.id,
                    %error,
                    "rolling a committed change forward failed; left to the next reader"
                ),
            }
        }
        if let Err(error) = self.add_contributions(dues).await {
            // Still due in the executions' records: the next plan that reads one (the
            // finished event's reconcile does) adds it.
            tracing::warn!(%error, "adding finishes to their rollups failed; left due");
        }
        Ok(to_settle)
    }

    /// One plain conditional `PutItem` or `UpdateItem` when there is one such write (half a
    /// transaction's write units), else one transaction.
    pub(super) async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        if writes.len() == 1
            && let Some(update) = writes[0].update()
        {
            let request = self
                .client
                .update_item()
                .table_name(update.table_name())
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned());
            return match request.send().await {
                Ok(_) => Ok(()),
                Err(e) if is_condition_failure(&e) => {
                    Err(StoreError::Conflict("a record changed meanwhile".into()))
                }
                Err(e) => Err(sdk_error("update", e)),
            };
        }
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
                Err(e) if is_condition_failure(&e) => {
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

    /// A new catalog entry: its meta item (only if absent) and its document parts.
    pub(super) async fn write_new_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError> {
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

    /// A catalog entry's next version, only if the stored one is `expected_version`.
    pub(super) async fn write_catalog_version(
        &self,
        record: &CatalogRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let (pk, id) = (catalog_pk(record.kind, &record.id), &record.id);
        let old_parts = self.query_prefix(&pk, PART_PREFIX, None, None).await?.len();
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

    /// Deletes a catalog entry's items; whether there were any.
    pub(super) async fn delete_catalog_items(
        &self,
        kind: CatalogKind,
        id: &str,
    ) -> Result<bool, StoreError> {
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
}

/// The suites a change touches only in their children's slots, and the roll-ups each child
/// carries for them. A suite whose changed slots do not all belong to children this change
/// writes whole is written whole itself.
fn roll_ups_of_change(changes: &ChangeSet) -> (HashSet<&str>, HashMap<&str, Vec<RollUp>>) {
    let mut suites = HashSet::new();
    let mut roll_ups: HashMap<&str, Vec<RollUp>> = HashMap::new();
    for delta in &changes.slot_deltas {
        // A suite created in this change is written whole, its slots with it.
        if changes.created.contains(&delta.suite_id) {
            continue;
        }
        let written_whole = |id: &str| {
            changes.executions.iter().any(|e| e.id == id) && changes.slot_delta(id).is_none()
        };
        if !delta
            .slots
            .iter()
            .all(|(_, before, _)| written_whole(&before.execution_id))
        {
            continue;
        }
        suites.insert(delta.suite_id.as_str());
        for (position, before, after) in &delta.slots {
            roll_ups
                .entry(before.execution_id.as_str())
                .or_default()
                .push(RollUp {
                    suite_id: delta.suite_id.clone(),
                    position: *position,
                    before: before.clone(),
                    after: after.clone(),
                });
        }
    }
    (suites, roll_ups)
}

/// A put in a transaction, under `condition` if any (`values`: its placeholders' values).
pub(super) fn put(
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
