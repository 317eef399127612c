//! The writes that do not contend: a step report changes only its steps and counters, a
//! child's transition changes only its slot in the suite. Neither rewrites the whole
//! execution under its version; each is conditioned on what it changes, so reports of
//! different steps, and children of one suite finishing together, never conflict.
//!
//! - Inline steps: one `UpdateItem` sets the steps and adds to the counters, conditioned on
//!   each step's stored status and on the execution's status.
//! - Partitioned steps: one transaction puts the step items, each conditioned on its own
//!   stored status, and adds to the counters on the execution item. (A batch of more than a
//!   few steps goes the whole-record way instead: see `write::MAX_TRANSACTED_STEPS`.)
//! - Suite roll-up: the child's record carries the slot change (`roll_up`), committed with
//!   the child; then one `UpdateItem` on the suite sets the slot, conditioned on the slot
//!   still holding an earlier stage of that child, so it applies once however often it is
//!   rolled forward. The writer then settles the suite when the new slots call for it
//!   (`SuitePlan::needs_settling`): only the last child to land finishes the suite.
//!
//! The first report of a queued execution also moves it to running, in the same write, made so
//! that racing first reports all succeed and agree: see [`Start`]. Which one made it (and so
//! announces it) the `UpdateItem` tells from the item as it was; a transaction returns
//! nothing, so there each writer leaves a token only where none is and reads it back.
//!
//! Every such write also bumps `ver`, so a whole-record write planned before it (a status
//! change) loses its race and re-plans from what is now stored.

use super::items::{Item, StoredExecution, corrupt, n, s, step_item};
use super::keys::{EXEC_SK, exec_pk};
use super::plan::Snapshot;
use super::{DynamoStore, is_condition_failure};
use crate::domain::errors::StoreError;
use crate::domain::execution::{ChildSlot, Execution, ExecutionStatus, ProgressGrowth, StepResult};
use crate::domain::time::Timestamp;
use crate::domain::workflow::{Start, StepDelta};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};
use std::collections::HashMap;

/// A suite slot change that rides in its child's record until applied to the suite.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct RollUp {
    pub(super) suite_id: String,
    pub(super) position: u32,
    pub(super) before: ChildSlot,
    pub(super) after: ChildSlot,
}

/// An update expression with its names and values, built up clause by clause.
#[derive(Default)]
struct Expression {
    set: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn new() -> Self {
        let mut expression = Expression::default();
        for (alias, name) in [
            ("#d", "data"),
            ("#st", "steps"),
            ("#s", "status"),
            ("#p", "progress"),
            ("#ver", "ver"),
            ("#intent", "intent"),
        ] {
            expression.names.insert(alias.into(), name.into());
        }
        expression.values.insert(":one".into(), n(1));
        expression.set.push("#ver = #ver + :one".into());
        expression
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn name(&mut self, name: &str) -> String {
        let alias = format!("#{name}");
        self.names.insert(alias.clone(), name.to_owned());
        alias
    }

    /// Moves a queued execution to running, or finds it moved by a racing report of the same
    /// start: the history entry goes only where none is, `started_at` only if absent.
    fn start(&mut self, start: &Start) -> Result<(), StoreError> {
        self.name("history");
        self.name("started_at");
        self.name("history_len");
        let queued = self.value(s(ExecutionStatus::Queued.as_str()));
        let running = self.value(s(ExecutionStatus::Running.as_str()));
        let seq = self.value(n(u64::from(start.seq)));
        let len = self.value(n(u64::from(start.seq) + 1));
        let at = self.value(attribute(&start.at)?);
        let entry = self.value(attribute(&start.entry)?);
        let slot = format!("#history[{}]", start.seq);
        self.conditions.push(format!(
            "((#s = {queued} AND #d.#history_len = {seq}) OR (#s = {running} AND #d.#history_len = {len}))"
        ));
        self.set.extend([
            format!("#s = {running}"),
            format!("#d.#s = {running}"),
            format!("#d.#started_at = if_not_exists(#d.#started_at, {at})"),
            format!("#d.#history_len = {len}"),
            format!("{slot} = if_not_exists({slot}, {entry})"),
        ]);
        Ok(())
    }

    /// Stamps the item with when the change was made, for its event log entries.
    fn changed_at(&mut self, at: Timestamp) {
        self.name("changed_at");
        let at = self.value(n(at.millis().max(0) as u64));
        self.set.push(format!("#changed_at = {at}"));
    }

    /// Adds `growth` to the execution's step counters.
    fn grow(&mut self, growth: &ProgressGrowth) {
        for (field, by) in growth.fields() {
            if by > 0 {
                let counter = self.name(field);
                let by = self.value(n(u64::from(by)));
                self.set
                    .push(format!("#d.#p.{counter} = #d.#p.{counter} + {by}"));
            }
        }
    }

    /// The expression as DynamoDB takes it, each part computed once. Only the names the
    /// expressions use are kept: DynamoDB refuses unused ones.
    fn build(self) -> Built {
        let update = format!("SET {}", self.set.join(", "));
        let condition = self.conditions.join(" AND ");
        let names = self
            .names
            .into_iter()
            .filter(|(alias, _)| uses(&update, alias) || uses(&condition, alias))
            .collect();
        Built {
            update,
            condition,
            names,
            values: self.values,
        }
    }
}

/// A built [`Expression`].
struct Built {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// Whether `expression` names `alias` (`#s`, not just a longer alias such as `#st`).
fn uses(expression: &str, alias: &str) -> bool {
    expression.match_indices(alias).any(|(at, _)| {
        !expression[at + alias.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn attribute<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    to_attribute_value(value).map_err(corrupt)
}

impl DynamoStore {
    /// Writes a change that is only some steps of one execution (see the module docs).
    /// Returns when the execution started if another writer made the start this change
    /// carries (see [`Start`]).
    pub(super) async fn write_step_delta(
        &self,
        snapshot: &Snapshot,
        execution: &Execution,
        delta: &StepDelta,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let id = &delta.execution_id;
        let mut expression = Expression::new();
        expression.changed_at(now);
        match &delta.start {
            None => {
                let status = expression.value(s(delta.status.as_str()));
                expression.conditions.push(format!("#s = {status}"));
            }
            Some(start) => expression.start(start)?,
        }
        expression
            .conditions
            .push("attribute_not_exists(#intent)".into());
        expression.grow(&delta.growth);
        if !execution.is_partitioned() {
            for (from, step) in &delta.steps {
                let at = format!("#d.#st[{}]", step.index);
                let step_value = expression.value(attribute(step)?);
                let from_value = expression.value(attribute(from)?);
                expression.set.push(format!("{at} = {step_value}"));
                expression
                    .conditions
                    .push(format!("{at}.#s = {from_value}"));
            }
            let returned = match delta.start {
                Some(_) => ReturnValue::AllOld,
                None => ReturnValue::None,
            };
            let Some(old) = self.update_item(id, expression.build(), returned).await? else {
                return Err(StoreError::Conflict("a step changed meanwhile".into()));
            };
            return Ok(started_elsewhere(delta, &old));
        }
        // The steps, for the event log (see `log`): their items are not in the stream record of
        // the execution item, which is what orders the log.
        let steps: Vec<&StepResult> = delta.steps.iter().map(|(_, step)| step).collect();
        expression.name("last_steps");
        expression.name("last_steps_ver");
        let steps = expression.value(attribute(&steps)?);
        expression.set.extend([
            format!("#last_steps = {steps}"),
            "#last_steps_ver = #ver + :one".to_owned(),
        ]);
        // A transaction returns nothing: the start's maker leaves its token, read back below.
        let token = ulid::Ulid::new().to_string();
        if delta.start.is_some() {
            expression.name("starter");
            let value = expression.value(s(&token));
            expression
                .set
                .push(format!("#starter = if_not_exists(#starter, {value})"));
        }
        let mut writes = Vec::with_capacity(delta.steps.len() + 1);
        for (from, step) in &delta.steps {
            let stored = snapshot.stored.contains(&(id.clone(), step.index));
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(step_item(id, step)?));
            put = if stored {
                put.condition_expression("#d.#s = :from")
                    .expression_attribute_names("#d", "data")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":from", attribute(from)?)
            } else {
                put.condition_expression("attribute_not_exists(pk)")
            };
            let put = put.build().map_err(corrupt)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let built = expression.build();
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(EXEC_SK))
            .update_expression(built.update)
            .condition_expression(built.condition)
            .set_expression_attribute_names(Some(built.names))
            .set_expression_attribute_values(Some(built.values))
            .build()
            .map_err(corrupt)?;
        writes.push(TransactWriteItem::builder().update(update).build());
        self.transact(writes).await?;
        if delta.start.is_none() {
            return Ok(None);
        }
        // Only the token and the start time: the item may hold a long history.
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(EXEC_SK))
            .consistent_read(true)
            .projection_expression("starter, #d.started_at")
            .expression_attribute_names("#d", "data")
            .send()
            .await
            .map_err(|e| super::sdk_error("read start", e))?;
        let item = read.item.unwrap_or_default();
        let made_here = item.get("starter").and_then(|v| v.as_s().ok()) == Some(&token);
        Ok(if made_here { None } else { started_at(&item) })
    }

    /// One conditional `UpdateItem` of an execution item: the item as `returned` asks for
    /// it, or `None` when the condition failed (a lost race). A start asks for the item as it
    /// was, to know whether it was already made: an attribute set to the value it had is not
    /// reliably "updated".
    async fn update_item(
        &self,
        id: &str,
        expression: Built,
        returned: ReturnValue,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&exec_pk(id)))
            .key("sk", s(EXEC_SK))
            .update_expression(expression.update)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .return_values(returned)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(super::sdk_error("update", e)),
        }
    }

    /// Applies a child's slot change to its suite (once: see the module docs). Returns
    /// whether the suite, as it now stands, needs settling.
    pub(super) async fn roll_up(&self, roll_up: &RollUp) -> Result<bool, StoreError> {
        let replaced = roll_up.before.replaced_by(&roll_up.after);
        let mut expression = Expression::new();
        expression.changed_at(Timestamp::now());
        let slot = format!("#d.#suite.#slots[{}]", roll_up.position);
        expression.name("suite");
        expression.name("slots");
        expression.name("execution_id");
        let child = expression.value(s(&roll_up.before.execution_id));
        let next_id = expression.value(s(&roll_up.after.execution_id));
        let next_status = expression.value(s(roll_up.after.status.as_str()));
        expression
            .set
            .push(format!("{slot}.#execution_id = {next_id}"));
        expression.set.push(format!("{slot}.#s = {next_status}"));
        expression.name("muted");
        let muted = expression.value(AttributeValue::Bool(roll_up.after.muted));
        expression.set.push(format!("{slot}.#muted = {muted}"));
        expression
            .conditions
            .push(format!("{slot}.#execution_id = {child}"));
        let earlier: Vec<String> = replaced
            .iter()
            .map(|status| expression.value(s(status.as_str())))
            .collect();
        if earlier.is_empty() {
            return self.suite_needs_settling(&roll_up.suite_id, None).await;
        }
        expression
            .conditions
            .push(format!("{slot}.#s IN ({})", earlier.join(", ")));
        // A failed condition: already applied, or overtaken by the child's next stage. Nothing
        // to write, but the writer that applied it may not have settled the suite yet.
        let suite = self
            .update_item(&roll_up.suite_id, expression.build(), ReturnValue::AllNew)
            .await?;
        self.suite_needs_settling(&roll_up.suite_id, suite.as_ref())
            .await
    }

    async fn suite_needs_settling(
        &self,
        suite_id: &str,
        read: Option<&Item>,
    ) -> Result<bool, StoreError> {
        let suite = match read {
            Some(item) if !item.is_empty() => StoredExecution::from_item(item)?,
            _ => match self.load_execution(suite_id).await? {
                Some(stored) => stored,
                None => return Ok(false),
            },
        };
        let execution = suite.execution;
        Ok(execution
            .suite
            .as_ref()
            .is_some_and(|plan| plan.needs_settling(execution.status)))
    }
}

/// When the execution started, if `old` (the item as a start delta found it) shows that
/// another writer had already started it.
fn started_elsewhere(delta: &StepDelta, old: &Item) -> Option<Timestamp> {
    delta.start.as_ref()?;
    if old
        .get("status")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        != Some(ExecutionStatus::Running.as_str())
    {
        return None;
    }
    started_at(old)
}

/// `data.started_at` of an execution item.
fn started_at(item: &Item) -> Option<Timestamp> {
    item.get("data")
        .and_then(|v| v.as_m().ok())
        .and_then(|data| data.get("started_at"))
        .and_then(|v| from_attribute_value(v.clone()).ok())
}

/// The roll-ups stored in an execution item.
pub(super) fn roll_ups_of(item: &Item) -> Result<Vec<RollUp>, StoreError> {
    match item.get("roll_up") {
        Some(value) => from_attribute_value(value.clone()).map_err(corrupt),
        None => Ok(Vec::new()),
    }
}
