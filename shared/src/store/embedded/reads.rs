//! Reads of committed records for a unit of work: through the writer's own transaction, or
//! through a snapshot that remembers what it read, so that the writer can check it all still
//! holds before it writes a change planned on it.

use super::{
    DEFINITION_STEPS, DEFINITIONS, EXECUTIONS, IDEMPOTENCY, QUARANTINES, STEPS, Table, decode,
    key2, step_key, unavailable,
};
use crate::domain::catalog::TestCase;
use crate::domain::errors::StoreError;
use crate::domain::execution::{Execution, StepResult};
use crate::domain::quarantine::Quarantine;
use crate::domain::workflow::{IdempotencyRecord, RecordSource};
use redb::{ReadTransaction, ReadableTable, TableHandle, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Committed records, by table and key.
pub(super) trait Reader {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record with a key in `[start, end)`, in key order.
    fn scan(
        &mut self,
        table: Table,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

fn scan_table(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    start: &str,
    end: &str,
) -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
    let mut records = Vec::new();
    for entry in table.range(start..end)? {
        let (key, value) = entry?;
        records.push((key.value().to_owned(), value.value().to_vec()));
    }
    Ok(records)
}

/// The writer's own view: its transaction, with every earlier write of its group. A read
/// that fails is kept, so the group is abandoned rather than the failure taken for a refusal.
pub(super) struct InWrite<'t> {
    pub(super) txn: &'t WriteTransaction,
    pub(super) failure: Option<redb::Error>,
}

impl InWrite<'_> {
    fn keep<T>(&mut self, result: Result<T, redb::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            let error = unavailable(&e);
            self.failure = Some(e);
            error
        })
    }
}

impl Reader for InWrite<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let found = (|| {
            let table = self.txn.open_table(table)?;
            Ok(table.get(key)?.map(|raw| raw.value().to_vec()))
        })();
        self.keep(found)
    }

    fn scan(
        &mut self,
        table: Table,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let found = (|| scan_table(&self.txn.open_table(table)?, start, end))();
        self.keep(found)
    }
}

/// A read-only view of the last commit.
pub(super) struct Committed<'t>(pub(super) &'t ReadTransaction);

impl Reader for Committed<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.0.open_table(table).map_err(unavailable)?;
        Ok(table
            .get(key)
            .map_err(unavailable)?
            .map(|raw| raw.value().to_vec()))
    }

    fn scan(
        &mut self,
        table: Table,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.0.open_table(table).map_err(unavailable)?;
        scan_table(&table, start, end).map_err(unavailable)
    }
}

/// What a snapshot read: a record (or its absence), or every record of a key range.
enum Seen {
    Record {
        table: Table,
        key: String,
        value: Option<Vec<u8>>,
    },
    Range {
        table: Table,
        start: String,
        end: String,
        records: Vec<(String, Vec<u8>)>,
    },
}

/// The last commit, remembering every read.
pub(super) struct Snapshot<'t> {
    committed: Committed<'t>,
    seen: Vec<Seen>,
    /// Where in `seen` each record read is, by table name and key: a large plan (a suite
    /// start) reads thousands, so a record read again is found without a scan.
    records: HashMap<String, HashMap<String, usize>>,
}

impl<'t> Snapshot<'t> {
    pub(super) fn new(txn: &'t ReadTransaction) -> Self {
        Snapshot {
            committed: Committed(txn),
            seen: Vec::new(),
            records: HashMap::new(),
        }
    }

    /// What it read, to check against the writer's view.
    pub(super) fn into_reads(self) -> Reads {
        Reads(self.seen)
    }
}

impl Reader for Snapshot<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // A snapshot does not change: a record read again (a step report reads its execution
        // to plan and again to write) is answered from the first read, checked once.
        let first = self
            .records
            .get(table.name())
            .and_then(|keys| keys.get(key))
            .and_then(|&at| match &self.seen[at] {
                Seen::Record { value, .. } => Some(value.clone()),
                Seen::Range { .. } => None,
            });
        if let Some(value) = first {
            return Ok(value);
        }
        let value = self.committed.get(table, key)?;
        self.records
            .entry(table.name().to_owned())
            .or_default()
            .insert(key.to_owned(), self.seen.len());
        self.seen.push(Seen::Record {
            table,
            key: key.to_owned(),
            value: value.clone(),
        });
        Ok(value)
    }

    fn scan(
        &mut self,
        table: Table,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let records = self.committed.scan(table, start, end)?;
        self.seen.push(Seen::Range {
            table,
            start: start.to_owned(),
            end: end.to_owned(),
            records: records.clone(),
        });
        Ok(records)
    }
}

/// Everything a plan on a snapshot read.
pub(super) struct Reads(Vec<Seen>);

impl Reads {
    /// Whether the writer's view still holds exactly what was read.
    pub(super) fn still_hold(&self, txn: &WriteTransaction) -> Result<bool, redb::Error> {
        for seen in &self.0 {
            let holds = match seen {
                Seen::Record { table, key, value } => {
                    let table = txn.open_table(*table)?;
                    let now = table.get(key.as_str())?;
                    now.as_ref().map(|raw| raw.value()) == value.as_deref()
                }
                Seen::Range {
                    table,
                    start,
                    end,
                    records,
                } => scan_table(&txn.open_table(*table)?, start, end)? == *records,
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

pub(super) fn read_record<T: DeserializeOwned>(
    reader: &mut impl Reader,
    table: Table,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match reader.get(table, key)? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// A unit of work's reads, through any [`Reader`].
pub(super) struct PlanSource<R>(pub(super) R);

impl<R: Reader> RecordSource for PlanSource<R> {
    fn execution(&mut self, id: &str) -> Result<Option<Execution>, StoreError> {
        read_record(&mut self.0, EXECUTIONS, id)
    }

    fn step(&mut self, execution_id: &str, index: u32) -> Result<Option<StepResult>, StoreError> {
        if let Some(step) = read_record(&mut self.0, STEPS, &step_key(execution_id, index))? {
            return Ok(Some(step));
        }
        implied_step(&mut self.0, execution_id, index)
    }

    fn steps(&mut self, execution_id: &str) -> Result<Vec<StepResult>, StoreError> {
        let Some(execution) = read_record::<Execution>(&mut self.0, EXECUTIONS, execution_id)?
        else {
            return Ok(Vec::new());
        };
        let total = execution.progress.total as usize;
        step_page(&mut self.0, execution_id, 0, total, total)
    }

    fn idempotent_start(
        &mut self,
        owner: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        read_record(&mut self.0, IDEMPOTENCY, &key2(owner, key))
    }

    fn quarantine(&mut self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError> {
        read_record(&mut self.0, QUARANTINES, test_case_id)
    }
}

/// What [`DEFINITIONS`] holds for an execution: the key of the shared snapshot of its case's
/// version, or (as earlier versions wrote it) a whole copy of the case.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum DefinitionRecord {
    Shared { shared: String },
    Copy(TestCase),
}

pub(super) fn definition_of(
    reader: &mut impl Reader,
    execution_id: &str,
) -> Result<Option<DefinitionRecord>, StoreError> {
    read_record(reader, DEFINITIONS, execution_id)
}

/// The pending step a never-reported step of a partitioned execution is, named from its
/// definition.
fn implied_step(
    reader: &mut impl Reader,
    execution_id: &str,
    index: u32,
) -> Result<Option<StepResult>, StoreError> {
    let name = match definition_of(reader, execution_id)? {
        Some(DefinitionRecord::Shared { shared }) => {
            match reader.get(DEFINITION_STEPS, &step_key(&shared, index))? {
                Some(bytes) => Some(name_of(bytes)?),
                None => None,
            }
        }
        Some(DefinitionRecord::Copy(case)) => {
            case.steps.get(index as usize).map(|s| s.name.clone())
        }
        None => None,
    };
    Ok(name.map(|name| StepResult::pending(index, &name)))
}

fn name_of(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Up to `limit` steps from index `first` on of a partitioned execution of `total` steps:
/// each its record if it has one, else the pending step its definition implies.
pub(super) fn step_page(
    reader: &mut impl Reader,
    execution_id: &str,
    first: usize,
    limit: usize,
    total: usize,
) -> Result<Vec<StepResult>, StoreError> {
    let end = total.min(first.saturating_add(limit));
    if first >= end {
        return Ok(Vec::new());
    }
    let (from, to) = (first as u32, end as u32);
    let records = reader.scan(
        STEPS,
        &step_key(execution_id, from),
        &step_key(execution_id, to),
    )?;
    let mut stored = records.into_iter().peekable();
    let mut names = None;
    let mut page = Vec::with_capacity(end - first);
    for index in from..to {
        if let Some((_, bytes)) = stored.next_if(|(key, _)| *key == step_key(execution_id, index)) {
            page.push(decode(&bytes)?);
            continue;
        }
        let names = match &mut names {
            Some(names) => names,
            None => names.insert(step_names(reader, execution_id, from, to)?),
        };
        let name = names.remove(&index).unwrap_or_default();
        page.push(StepResult::pending(index, &name));
    }
    Ok(page)
}

/// The names of an execution's steps with indexes in `from..to`, from its definition.
fn step_names(
    reader: &mut impl Reader,
    execution_id: &str,
    from: u32,
    to: u32,
) -> Result<HashMap<u32, String>, StoreError> {
    let mut names = HashMap::new();
    match definition_of(reader, execution_id)? {
        Some(DefinitionRecord::Shared { shared }) => {
            let prefix = key2(&shared, "");
            let start = step_key(&shared, from);
            for (key, bytes) in reader.scan(DEFINITION_STEPS, &start, &step_key(&shared, to))? {
                let index = key[prefix.len()..]
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("step name key {key:?}")))?;
                names.insert(index, name_of(bytes)?);
            }
        }
        Some(DefinitionRecord::Copy(case)) => {
            let steps = case.steps.iter().enumerate();
            for (index, step) in steps.skip(from as usize).take((to - from) as usize) {
                names.insert(index as u32, step.name.clone());
            }
        }
        None => {}
    }
    Ok(names)
}
