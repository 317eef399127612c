//! The item codec: executions, steps, catalog entries and chunked documents as DynamoDB
//! items, and reading attributes back.

use super::delta::{RollUp, roll_ups_of};
use super::keys::{
    ACTIVE_EXECUTIONS, ALL_EXECUTIONS, EXEC_SK, META_SK, all_catalog, children_of, deadline_sk,
    exec_pk, index_pk, index_sk, owner_catalog, owner_executions, part_sk, step_sk,
};
use super::schema::{INDEX_ACTIVE, INDEX_ALL, INDEX_OWNER, INDEX_PARENT};
use crate::domain::analytics::Contribution;
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, HistoryEntry, StepResult, StepStatus};
use crate::domain::time::Timestamp;
use crate::ports::CatalogRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The attribute of an execution item that holds its rollup contribution until it is added.
pub(super) const ROLLUP_DUE: &str = "rollup_due";

/// Large JSON documents are split into parts of at most this many bytes.
const PART_BYTES: usize = 100_000;

/// An execution as stored: the record, its history, version and definition snapshot key.
#[derive(Debug, Clone)]
pub(super) struct StoredExecution {
    pub(super) execution: Execution,
    pub(super) history: Vec<HistoryEntry>,
    pub(super) version: u64,
    pub(super) definition: Option<String>,
    /// Step results committed with this version but perhaps not yet written as step items
    /// (see [`DynamoStore::roll_forward`]).
    pub(super) intent: Vec<StepResult>,
    /// Set when the execution completed: steps that never reported read as skipped then.
    pub(super) unreported_skipped_at: Option<Timestamp>,
    /// Suite slot changes committed with this version but perhaps not yet applied to the
    /// suite (see `delta`).
    pub(super) roll_ups: Vec<RollUp>,
    /// What this execution's finish adds to its test's rollup, committed with the finish and
    /// not yet added (see `rollups`).
    pub(super) rollup_due: Option<Contribution>,
}

impl StoredExecution {
    pub(super) fn from_item(item: &Item) -> Result<Self, StoreError> {
        let mut execution: Execution = decode_attr(item, "data")?;
        // Step deltas add to the counters in place; the percentage follows from them.
        execution.progress.refresh_percent();
        Ok(StoredExecution {
            execution,
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
            roll_ups: roll_ups_of(item)?,
            rollup_due: match item.get(ROLLUP_DUE) {
                Some(value) => Some(from_attribute_value(value.clone()).map_err(corrupt)?),
                None => None,
            },
        })
    }

    /// Whether this version committed writes still to be carried out elsewhere.
    pub(super) fn has_pending_writes(&self) -> bool {
        !self.intent.is_empty() || !self.roll_ups.is_empty() || self.rollup_due.is_some()
    }

    /// A step with no item: pending, or skipped once the execution completed.
    pub(super) fn unstored_step(&self, index: u32, name: &str) -> StepResult {
        let mut step = StepResult::pending(index, name);
        if let Some(at) = self.unreported_skipped_at {
            step.status = StepStatus::Skipped;
            step.finished_at = Some(at);
        }
        step
    }
}

pub(super) fn execution_item(
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
        (
            index_pk(INDEX_OWNER),
            s(&owner_executions(&execution.owner)),
        ),
        (index_sk(INDEX_OWNER), s(id)),
        (index_pk(INDEX_ALL), s(ALL_EXECUTIONS)),
        (index_sk(INDEX_ALL), s(id)),
    ]);
    if let Some(parent) = &execution.parent_id {
        item.insert(index_pk(INDEX_PARENT), s(&children_of(parent)));
        item.insert(index_sk(INDEX_PARENT), s(id));
    }
    // Sparse: only active executions are in the deadline index.
    if execution.status.is_active()
        && let Some(deadline) = execution.deadline_at
    {
        item.insert(index_pk(INDEX_ACTIVE), s(ACTIVE_EXECUTIONS));
        item.insert(index_sk(INDEX_ACTIVE), s(&deadline_sk(deadline, id)));
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

pub(super) fn step_item(id: &str, step: &StepResult) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&exec_pk(id))),
        ("sk".to_owned(), s(&step_sk(step.index))),
        ("id".to_owned(), s(id)),
    ]);
    item.insert("data".into(), to_attribute_value(step).map_err(corrupt)?);
    Ok(item)
}

pub(super) fn catalog_meta(record: &CatalogRecord, pk: &str, version: u64) -> Item {
    let (id, owner) = (record.id.as_str(), record.owner.as_str());
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(META_SK)),
        ("id".to_owned(), s(id)),
        ("owner".to_owned(), s(owner)),
        ("ver".to_owned(), n(version)),
        (index_pk(INDEX_OWNER), s(&owner_catalog(record.kind, owner))),
        (index_sk(INDEX_OWNER), s(id)),
        (index_pk(INDEX_ALL), s(&all_catalog(record.kind))),
        (index_sk(INDEX_ALL), s(id)),
    ]);
    if let Ok(value) = to_attribute_value(&record.tags) {
        item.insert("tags".into(), value);
    }
    item
}

/// A JSON document split into `PART#n` items of at most [`PART_BYTES`].
pub(super) fn blob_parts<T: Serialize + ?Sized>(
    pk: &str,
    value: &T,
) -> Result<Vec<Item>, StoreError> {
    let text = serde_json::to_string(value).map_err(corrupt)?;
    Ok(text_parts(pk, &text))
}

/// Whether a part this short must be its document's last: every part before the last is cut
/// within a character's length (4 bytes) of [`PART_BYTES`].
pub(super) fn is_last_part(body: &str) -> bool {
    body.len() <= PART_BYTES - 4
}

/// JSON text split into `PART#n` items of at most [`PART_BYTES`], cut on char boundaries.
pub(super) fn text_parts(pk: &str, text: &str) -> Vec<Item> {
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

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item without `{name}`")))
}

pub(super) fn number_attr(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item without numeric `{name}`")))
}

pub(super) fn decode_attr<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T, StoreError> {
    let value = item
        .get(name)
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("item without `{name}`")))?;
    from_attribute_value(value).map_err(corrupt)
}

pub(super) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}
