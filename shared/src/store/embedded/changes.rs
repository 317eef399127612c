//! A planned change set as the record writes it makes: the executions and their indexes,
//! steps, history, definitions and idempotency claims, every record already encoded. They are
//! made wherever the change was planned (off the writer, for a plan on a snapshot) and only
//! applied by the writer.

use super::reads::{DefinitionRecord, Reader, read_record};
use super::{
    ACTIVE, CHILDREN, DEADLINES, DEFINITION_STEPS, DEFINITIONS, EVENTS, EXECUTIONS,
    EXECUTIONS_BY_OWNER, FLAKY, FLAKY_BY_OWNER, HISTORY, IDEMPOTENCY, LOG_HEADS, ROLLUP_DAYS,
    ROLLUPS, SHARED_DEFINITIONS, STEPS, TEST_CASES, Table, deadline_key, encode, event_key, key2,
    seq_key, step_key,
};
use crate::domain::analytics::{Advanced, Rollup};
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, PARTITION_THRESHOLD};
use crate::domain::log::LogEntry;
use crate::domain::time::Timestamp;
use crate::domain::workflow::{ChangeSet, DefinitionSource};
use redb::{TableHandle, WriteTransaction};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// One record written (`Some`) or removed (`None`).
pub(super) struct Write {
    table: Table,
    key: String,
    value: Option<Vec<u8>>,
}

/// The writes of one change set, in the order they apply, and its log entries as numbered.
#[derive(Default)]
pub(super) struct Writes(Vec<Write>, Vec<LogEntry>);

/// What the writes need of an execution's stored record: that it exists, and its deadline
/// (to move the deadline index entry). Decoded alone, the rest skipped unbuilt: the plan has
/// decoded the whole record already, and a step report would otherwise decode it twice.
#[derive(Deserialize)]
struct PreviousRecord {
    #[serde(default)]
    deadline_at: Option<Timestamp>,
}

impl Writes {
    fn put(&mut self, table: Table, key: String, value: Vec<u8>) {
        self.0.push(Write {
            table,
            key,
            value: Some(value),
        });
    }

    fn mark(&mut self, table: Table, key: String) {
        self.put(table, key, Vec::new());
    }

    fn remove(&mut self, table: Table, key: String) {
        self.0.push(Write {
            table,
            key,
            value: None,
        });
    }

    /// The writes `changes` makes, given the records as `reader` has them (each changed
    /// execution's previous record, the definitions retries copy). Fails on a record that
    /// cannot be encoded or decoded.
    pub(super) fn of(changes: &ChangeSet, reader: &mut impl Reader) -> Result<Self, StoreError> {
        let mut writes = Writes::default();
        for execution in &changes.executions {
            writes.execution(execution, reader)?;
        }
        for (id, step) in &changes.steps {
            writes.put(STEPS, step_key(id, step.index), encode(step)?);
        }
        for (id, seq, entry) in &changes.history {
            writes.put(HISTORY, seq_key(id, *seq), encode(entry)?);
        }
        writes.definitions(changes, reader)?;
        writes.log(changes, reader)?;
        for record in &changes.idempotency {
            let key = key2(&record.owner, &record.key);
            writes.put(IDEMPOTENCY, key, encode(record)?);
        }
        Ok(writes)
    }

    /// An execution's record and its index entries (deadline, active, owner, parent).
    fn execution(
        &mut self,
        execution: &Execution,
        reader: &mut impl Reader,
    ) -> Result<(), StoreError> {
        let id = &execution.id;
        let previous: Option<PreviousRecord> = read_record(reader, EXECUTIONS, id)?;
        if let Some(old) = previous.as_ref().and_then(|p| p.deadline_at) {
            self.remove(DEADLINES, deadline_key(old, id));
        }
        if let Some(new) = execution.deadline_at {
            self.mark(DEADLINES, deadline_key(new, id));
        }
        if execution.status.is_active() {
            self.mark(ACTIVE, id.clone());
        } else {
            self.remove(ACTIVE, id.clone());
        }
        if previous.is_none() {
            self.mark(EXECUTIONS_BY_OWNER, key2(&execution.owner, id));
            if let Some(parent) = &execution.parent_id {
                self.mark(CHILDREN, key2(parent, id));
            }
        }
        self.put(EXECUTIONS, id.clone(), encode(execution)?);
        Ok(())
    }

    /// The rollup writes of `changes`: each test's contributions added to its records as
    /// `reader` has them, written as its current record (and the one that replaced, as its
    /// day's), with the flaky index following the current record. Made by the writer on its
    /// own view, not planned on a snapshot: a plan does not read the rollup, so finishes of
    /// one test commit side by side instead of invalidating each other's plans.
    pub(super) fn rollups_of(
        changes: &ChangeSet,
        reader: &mut impl Reader,
    ) -> Result<Self, StoreError> {
        let mut writes = Writes::default();
        for change in changes
            .rollups
            .iter()
            .filter(|c| !c.contributions.is_empty())
        {
            let stored = read_record::<Rollup>(reader, ROLLUPS, &change.test_id)?;
            if let Some(before) = &stored
                && let Some(rank) = before.flaky_rank()
            {
                writes.remove(FLAKY_BY_OWNER, key2(&before.owner, &rank));
                writes.remove(FLAKY, rank);
            }
            let state = change
                .contributions
                .iter()
                .fold(Advanced::from(stored), |state, (_, c)| {
                    Some(Advanced::add(state, c))
                });
            if let Some(state) = state {
                writes.rollup(&state)?;
            }
        }
        Ok(writes)
    }

    fn rollup(&mut self, state: &Advanced) -> Result<(), StoreError> {
        let current = &state.current;
        if let Some(rank) = current.flaky_rank() {
            let id = current.test_id.as_bytes().to_vec();
            self.put(FLAKY_BY_OWNER, key2(&current.owner, &rank), id.clone());
            self.put(FLAKY, rank, id);
        }
        if let Some(archived) = &state.archived {
            let key = key2(&archived.test_id, &archived.day);
            self.put(ROLLUP_DAYS, key, encode(archived)?);
        }
        self.put(ROLLUPS, current.test_id.clone(), encode(current)?);
        Ok(())
    }

    /// The change's event log entries, numbered on from each log's last `seq`: in the same
    /// write as the change, and (the head being read, so checked by the writer) with no gaps.
    fn log(&mut self, changes: &ChangeSet, reader: &mut impl Reader) -> Result<(), StoreError> {
        let mut heads: HashMap<&str, u64> = HashMap::new();
        for entry in &changes.log {
            let id = entry.execution_id.as_str();
            let seq = match heads.get_mut(id) {
                Some(seq) => seq,
                None => {
                    let last = read_record::<u64>(reader, LOG_HEADS, id)?.unwrap_or(0);
                    heads.entry(id).or_insert(last)
                }
            };
            *seq += 1;
            let numbered = LogEntry::numbered(*seq, entry);
            self.put(EVENTS, event_key(id, *seq), encode(&numbered)?);
            self.1.push(numbered);
        }
        for (id, seq) in heads {
            self.put(LOG_HEADS, id.to_owned(), encode(&seq)?);
        }
        Ok(())
    }

    /// Each new execution's definition: a pointer to the shared snapshot of its case's
    /// version (written once, with the step names a partitioned one's implied steps take),
    /// or a retry's copy of its original's.
    fn definitions(
        &mut self,
        changes: &ChangeSet,
        reader: &mut impl Reader,
    ) -> Result<(), StoreError> {
        // What this change writes itself, which `reader` does not see yet.
        let mut shared_here = HashSet::new();
        let mut copied: HashMap<&str, Vec<u8>> = HashMap::new();
        for (id, source) in &changes.definitions {
            let record = match source {
                DefinitionSource::Snapshot(case) => {
                    let key = key2(&case.id, &case.version.to_string());
                    let known = shared_here.contains(&key)
                        || reader.get(SHARED_DEFINITIONS, &key)?.is_some();
                    if !known {
                        self.put(SHARED_DEFINITIONS, key.clone(), encode(case.as_ref())?);
                        if case.steps.len() >= PARTITION_THRESHOLD {
                            for (index, step) in case.steps.iter().enumerate() {
                                let name = step.name.as_bytes().to_vec();
                                self.put(DEFINITION_STEPS, step_key(&key, index as u32), name);
                            }
                        }
                        shared_here.insert(key.clone());
                    }
                    encode(&DefinitionRecord::Shared { shared: key })?
                }
                DefinitionSource::CopyOf(original) => match copied.get(original.as_str()) {
                    Some(record) => record.clone(),
                    None => match reader.get(DEFINITIONS, original)? {
                        Some(record) => record,
                        // Started before definitions were kept: fall back to the case.
                        None => match legacy_definition(changes, id, reader)? {
                            Some(record) => record,
                            None => continue,
                        },
                    },
                },
            };
            copied.insert(id, record.clone());
            self.put(DEFINITIONS, id.clone(), record);
        }
        Ok(())
    }

    /// The log entries these writes number, taken out (for [`ChangeSet::logged`]).
    pub(super) fn take_logged(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.1)
    }

    /// Applies the writes, opening each table once (a table's writes keep their order).
    pub(super) fn apply(mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        // Stable: writes of one table stay in the order they were made.
        self.0.sort_by(|a, b| a.table.name().cmp(b.table.name()));
        let mut writes = self.0.into_iter().peekable();
        while let Some(first) = writes.next() {
            let name = first.table.name().to_owned();
            let mut table = txn.open_table(first.table)?;
            let mut next = Some(first);
            while let Some(write) = next {
                match &write.value {
                    Some(value) => {
                        table.insert(write.key.as_str(), value.as_slice())?;
                    }
                    None => {
                        table.remove(write.key.as_str())?;
                    }
                }
                next = writes.next_if(|w| w.table.name() == name);
            }
        }
        Ok(())
    }
}

/// A retry of an execution started before definitions were kept runs its case as it is now.
fn legacy_definition(
    changes: &ChangeSet,
    id: &str,
    reader: &mut impl Reader,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(case_id) = changes.execution(id).and_then(|e| e.test_case_id.clone()) else {
        return Ok(None);
    };
    reader.get(TEST_CASES, &case_id)
}
