//! How records look on the wire.

use super::problem::Problem;
use crate::domain::execution::{Execution, ExecutionKind, StepStorage};
use serde_json::{Map, Value, json};

/// Every top-level field an execution trace may have; `?fields=` picks from these.
pub const EXECUTION_FIELDS: [&str; 30] = [
    "id",
    "kind",
    "name",
    "test_case_id",
    "test_suite_id",
    "parent_id",
    "owner",
    "status",
    "priority",
    "runner",
    "attempt",
    "retry_of",
    "retried_by",
    "config",
    "tags",
    "timeout_s",
    "max_retries",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "deadline_at",
    "progress",
    "storage",
    "steps",
    "children",
    "environment",
    "slot",
    "history_count",
];

/// The execution trace as the contract shows it. `with_steps` is false in listings, which
/// keep items small; inline steps are always on `GET /executions/{id}` and `/steps`.
pub fn execution(e: &Execution, with_steps: bool) -> Value {
    let progress = match (&e.kind, &e.suite) {
        (ExecutionKind::Suite, Some(plan)) => plan.progress(),
        _ => e.progress,
    };
    let mut view = json!({
        "id": e.id, "kind": e.kind, "name": e.name,
        "test_case_id": e.test_case_id, "test_suite_id": e.test_suite_id,
        "parent_id": e.parent_id, "owner": e.owner, "status": e.status,
        "priority": e.priority, "runner": e.runner, "attempt": e.attempt,
        "retry_of": e.retry_of, "retried_by": e.retried_by, "config": e.config,
        "tags": e.tags, "timeout_s": e.timeout_s, "max_retries": e.max_retries,
        "environment": e.config.environment,
        "created_at": e.created_at, "queued_at": e.queued_at, "started_at": e.started_at,
        "finished_at": e.finished_at, "duration_ms": e.duration_ms,
        "deadline_at": e.deadline_at, "progress": progress,
        "history_count": e.history_len,
    });
    let object = view.as_object_mut().expect("built as an object");
    if let Some(slot) = e.slot {
        object.insert("slot".into(), json!(slot));
    }
    if let Some(storage) = e.storage {
        object.insert("storage".into(), json!(storage));
        if with_steps && storage == StepStorage::Inline {
            object.insert("steps".into(), json!(e.steps));
        }
    }
    if let Some(plan) = &e.suite {
        object.insert("children".into(), json!(plan.counts()));
    }
    view
}

/// Parses `?fields=a,b` against the known field names.
pub fn parse_fields(raw: Option<&str>) -> Result<Option<Vec<String>>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let mut fields = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if !EXECUTION_FIELDS.contains(&name) {
            return Err(Problem::field(
                "fields",
                format!(
                    "unknown field `{name}`; known: {}",
                    EXECUTION_FIELDS.join(", ")
                ),
            ));
        }
        fields.push(name.to_owned());
    }
    Ok(Some(fields))
}

/// Keeps only the requested top-level fields (those the record has).
pub fn select(view: Value, fields: &[String]) -> Value {
    match view {
        Value::Object(mut all) => {
            let mut picked = Map::new();
            for field in fields {
                if let Some(value) = all.remove(field) {
                    picked.insert(field.clone(), value);
                }
            }
            Value::Object(picked)
        }
        other => other,
    }
}
