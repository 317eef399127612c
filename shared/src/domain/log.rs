//! Every execution's event log: one entry per state transition, per step whose status
//! changed, and (for a suite) per change of a child's status. What a change logs follows from
//! the execution before and after it ([`entries_between`]): the unit of work adds those
//! entries to its change set, so they are written in the same atomic write as the change (the
//! embedded store numbers them there, `seq` 1, 2, 3, ... with no gaps), and a store that logs
//! from its change stream (DynamoDB) derives exactly the same entries from the same records.

use super::execution::{
    ChildCounts, Execution, ExecutionStatus, HistoryEntry, Progress, StepResult, StepStatus,
};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What an entry says, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LogEvent {
    /// The execution moved from `from` (none: it was created) to `to`.
    Status {
        from: Option<ExecutionStatus>,
        to: ExecutionStatus,
        actor: String,
        reason: Option<String>,
    },
    /// A step's status changed; `progress` is the execution's after the change.
    Step {
        index: u32,
        name: String,
        status: StepStatus,
        duration_ms: Option<u64>,
        message: Option<String>,
        progress: Progress,
    },
    /// A child of a suite changed its status; `children` is the suite's counts after it.
    Child {
        execution_id: String,
        test_case_id: Option<String>,
        status: ExecutionStatus,
        children: ChildCounts,
        /// The child's failure does not fail the suite: its case was quarantined when it
        /// ended. Left out unless true.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        muted: bool,
    },
}

impl LogEvent {
    /// The entry's `type`: `status`, `step` or `child`.
    pub fn kind(&self) -> &'static str {
        match self {
            LogEvent::Status { .. } => "status",
            LogEvent::Step { .. } => "step",
            LogEvent::Child { .. } => "child",
        }
    }

    /// Whether the entry moves its execution to a terminal status: the last of its log.
    pub fn is_terminal(&self) -> bool {
        matches!(self, LogEvent::Status { to, .. } if to.is_terminal())
    }
}

/// An entry of a change, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub execution_id: String,
    pub at: Timestamp,
    pub event: LogEvent,
}

/// The entries a change of one execution makes, from the execution `before` it (`None`: the
/// change created it) and `after` it, the history entries it appended (in order), and the
/// step results it wrote from reports to a partitioned execution (whose steps the record does
/// not hold). They come in the order a watcher reads them: moves to an active status, steps,
/// children, then a move to a terminal status, the log's last entry.
///
/// A partitioned execution's never-reported steps, skipped when it completes, get no entry
/// each (there may be thousands); the terminal status entry implies them.
pub fn entries_between(
    before: Option<&Execution>,
    after: &Execution,
    history: &[&HistoryEntry],
    reported: &[&StepResult],
    at: Timestamp,
) -> Vec<PendingEntry> {
    let mut events = Vec::new();
    let status = |entry: &HistoryEntry| LogEvent::Status {
        from: entry.from,
        to: entry.to,
        actor: entry.actor.clone(),
        reason: entry.reason.clone(),
    };
    events.extend(
        history
            .iter()
            .filter(|e| !e.to.is_terminal())
            .map(|e| status(e)),
    );
    let step = |step: &StepResult| LogEvent::Step {
        index: step.index,
        name: step.name.clone(),
        status: step.status,
        duration_ms: step.duration_ms,
        message: step.message.clone(),
        progress: after.progress,
    };
    if after.is_partitioned() {
        events.extend(reported.iter().map(|s| step(s)));
    } else {
        let earlier = before.map(|b| b.steps.as_slice()).unwrap_or_default();
        for (index, now) in after.steps.iter().enumerate() {
            let was = earlier.get(index).map_or(StepStatus::Pending, |s| s.status);
            if now.status != was {
                events.push(step(now));
            }
        }
    }
    if let Some(plan) = &after.suite {
        let earlier = before
            .and_then(|b| b.suite.as_ref())
            .map(|p| p.slots.as_slice())
            .unwrap_or_default();
        let children = plan.counts();
        for (position, slot) in plan.slots.iter().enumerate() {
            let changed = match earlier.get(position) {
                Some(was) => was.execution_id != slot.execution_id || was.status != slot.status,
                None => slot.status != ExecutionStatus::Pending,
            };
            if changed {
                events.push(LogEvent::Child {
                    execution_id: slot.execution_id.clone(),
                    test_case_id: Some(slot.test_case_id.clone()),
                    status: slot.status,
                    children,
                    muted: slot.muted,
                });
            }
        }
    }
    events.extend(
        history
            .iter()
            .filter(|e| e.to.is_terminal())
            .map(|e| status(e)),
    );
    events
        .into_iter()
        .map(|event| PendingEntry {
            execution_id: after.id.clone(),
            at,
            event,
        })
        .collect()
}

/// An entry as the log keeps and serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: LogEvent,
}

impl LogEntry {
    pub fn numbered(seq: u64, entry: &PendingEntry) -> Self {
        LogEntry {
            seq,
            at: entry.at,
            event: entry.event.clone(),
        }
    }
}

/// How long a log entry is kept at least (and, on stores that expire records, about when it
/// goes): a week after the longest an execution can run, itself at most a week.
pub const LOG_RETENTION_MS: i64 = 14 * 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_reads_as_the_contract_writes_it() {
        let entry = LogEntry {
            seq: 7,
            at: Timestamp::from_millis(1_796_000_000_250),
            event: LogEvent::Step {
                index: 3,
                name: "checkout".into(),
                status: StepStatus::Failed,
                duration_ms: Some(840),
                message: Some("expected 200, got 503".into()),
                progress: Progress::new(12),
            },
        };
        let value = serde_json::to_value(&entry).unwrap();
        assert_eq!(value["seq"], 7);
        assert_eq!(value["type"], "step");
        assert_eq!(value["data"]["index"], 3);
        assert_eq!(value["data"]["status"], "failed");
        assert_eq!(value["data"]["progress"]["total"], 12);
        assert!(value["at"].as_str().unwrap().ends_with(".250Z"));
        let status = serde_json::to_value(LogEvent::Status {
            from: None,
            to: ExecutionStatus::Queued,
            actor: "user:alice".into(),
            reason: Some("started".into()),
        })
        .unwrap();
        assert_eq!(
            status,
            json!({"type": "status", "data": {"from": null, "to": "queued",
                   "actor": "user:alice", "reason": "started"}})
        );
        assert_eq!(serde_json::from_value::<LogEntry>(value).unwrap(), entry);
    }
}
