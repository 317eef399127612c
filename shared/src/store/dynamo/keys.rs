//! The key scheme: every key and index-partition format of the table, in one place.
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
//! - `RU#{test_id}` / `CURRENT`: a test's current analytics rollup, and `RU#{test_id}` /
//!   `DAY#{day}`: its earlier days' (see `rollups`).
//! - `QU#{test_case_id}` / `QUAR`: a test case's quarantine, and `QU#{test_case_id}` /
//!   `H#{at:020}#{ulid}`: its audit history.
//! - `EX#{id}` / `EV#{seq:020}`: an event log entry, and `EX#{id}` / `LOG`: the log's head
//!   (its last `seq`), both expired by TTL two weeks after they were written.
//!
//! Index partitions (`gsiNpk` / `gsiNsk`, see `schema`): executions by owner (`EXS#{owner}`),
//! all executions (`EXS`), a suite's children (`PARENT#{id}`), active executions by deadline
//! (`ACTIVE` / `{deadline:020}#{id}`); catalog entries by owner (`TCS#{owner}`, `TSS#{owner}`)
//! and all of a kind (`TCS`, `TSS`), each sorted by id; flaky test cases by owner
//! (`FLAKY#{owner}`) and of everyone (`FLAKY`), sorted by flaky rank; quarantines by owner
//! (`QUARS#{owner}`) and of everyone (`QUARS`), by test case id.

use super::items::{Item, string_attr};
use crate::domain::catalog::CatalogKind;
use crate::domain::errors::StoreError;
use crate::domain::time::Timestamp;

pub(super) const EXEC_SK: &str = "EXEC";

/// The sort key of an execution's event log head (its last `seq`, see `log`).
pub(super) const LOG_SK: &str = "LOG";

pub(super) const META_SK: &str = "META";

/// The sort key of an idempotency claim.
pub(super) const IDEM_SK: &str = "IDEM";

/// The sort key prefix of partitioned steps.
pub(super) const STEP_PREFIX: &str = "STEP#";

/// The sort key prefix of a chunked document's parts.
pub(super) const PART_PREFIX: &str = "PART#";

/// The partition key prefix of an execution's items.
const EXEC_PREFIX: &str = "EX#";

pub(super) fn exec_pk(id: &str) -> String {
    format!("{EXEC_PREFIX}{id}")
}

/// The execution id of an execution item's key (all a keys-only index gives back).
pub(super) fn execution_id_of_key(item: &Item) -> Result<String, StoreError> {
    let pk = string_attr(item, "pk")?;
    pk.strip_prefix(EXEC_PREFIX)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("not an execution key: {pk}")))
}

pub(super) fn step_sk(index: u32) -> String {
    format!("{STEP_PREFIX}{index:010}")
}

/// The sort key of an execution's event log entry.
pub(super) fn event_sk(seq: u64) -> String {
    format!("EV#{seq:020}")
}

pub(super) fn part_sk(n: usize) -> String {
    format!("{PART_PREFIX}{n:05}")
}

pub(super) fn definition_pk(case_id: &str, version: u64) -> String {
    format!("DEF#{case_id}#{version}")
}

pub(super) fn idem_pk(owner: &str, key: &str) -> String {
    format!("IDEM#{owner}#{key}")
}

/// The key prefix of a catalog kind's items (`TC#{id}`) and index partitions (`TCS#{owner}`).
fn catalog_prefix(kind: CatalogKind) -> &'static str {
    match kind {
        CatalogKind::TestCase => "TC",
        CatalogKind::TestSuite => "TS",
    }
}

pub(super) fn catalog_pk(kind: CatalogKind, id: &str) -> String {
    format!("{}#{id}", catalog_prefix(kind))
}

/// The partition key attribute of a secondary index (`gsi1` → `gsi1pk`).
pub(super) fn index_pk(index: &str) -> String {
    format!("{index}pk")
}

/// The sort key attribute of a secondary index (`gsi1` → `gsi1sk`).
pub(super) fn index_sk(index: &str) -> String {
    format!("{index}sk")
}

/// The owner-index partition of an owner's executions.
pub(super) fn owner_executions(owner: &str) -> String {
    format!("EXS#{owner}")
}

/// The all-executions index partition.
pub(super) const ALL_EXECUTIONS: &str = "EXS";

/// The parent-index partition of a suite's children.
pub(super) fn children_of(parent_id: &str) -> String {
    format!("PARENT#{parent_id}")
}

/// The deadline-index partition of active executions.
pub(super) const ACTIVE_EXECUTIONS: &str = "ACTIVE";

/// The deadline-index sort key: the deadline (zero-padded epoch millis), then the id.
pub(super) fn deadline_sk(deadline: Timestamp, id: &str) -> String {
    format!("{:020}#{id}", deadline.millis().max(0))
}

/// The highest deadline-index sort key at `now`: every deadline at or before it sorts lower.
pub(super) fn deadline_bound(now: Timestamp) -> String {
    format!("{:020}#~", now.millis().max(0))
}

/// The owner-index partition of an owner's catalog entries of a kind (`TCS#{owner}`).
pub(super) fn owner_catalog(kind: CatalogKind, owner: &str) -> String {
    format!("{}S#{owner}", catalog_prefix(kind))
}

/// The all-entries index partition of a catalog kind (`TCS`).
pub(super) fn all_catalog(kind: CatalogKind) -> String {
    format!("{}S", catalog_prefix(kind))
}

/// The partition of a test's rollups.
pub(super) fn rollup_pk(test_id: &str) -> String {
    format!("RU#{test_id}")
}

/// The sort key of a test's current rollup.
pub(super) const ROLLUP_CURRENT_SK: &str = "CURRENT";

/// The sort key of a test's rollup of an earlier day.
pub(super) fn rollup_day_sk(day: &str) -> String {
    format!("DAY#{day}")
}

/// The owner-index partition of an owner's flaky test cases.
pub(super) fn owner_flaky(owner: &str) -> String {
    format!("FLAKY#{owner}")
}

/// The all-entries index partition of flaky test cases.
pub(super) const ALL_FLAKY: &str = "FLAKY";

/// The partition of a test case's quarantine and audit history.
pub(super) fn quarantine_pk(test_case_id: &str) -> String {
    format!("QU#{test_case_id}")
}

/// The sort key of a test case's quarantine.
pub(super) const QUARANTINE_SK: &str = "QUAR";

/// The sort key of a test case's history entry: in time order, unique.
pub(super) fn case_history_sk(at: Timestamp, unique: &str) -> String {
    format!("H#{:020}#{unique}", at.millis().max(0))
}

/// The owner-index partition of an owner's quarantines.
pub(super) fn owner_quarantines(owner: &str) -> String {
    format!("QUARS#{owner}")
}

/// The all-entries index partition of quarantines.
pub(super) const ALL_QUARANTINES: &str = "QUARS";
