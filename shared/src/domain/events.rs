//! Domain events: what runledger tells the world. Per-step successes are deliberately absent;
//! progress is read from the trace, not streamed one step at a time.

use super::execution::{ExecutionKind, ExecutionStatus, Priority};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "Execution Queued")]
    ExecutionQueued,
    #[serde(rename = "Execution Started")]
    ExecutionStarted,
    #[serde(rename = "Step Failed")]
    StepFailed,
    #[serde(rename = "Execution Finished")]
    ExecutionFinished,
    #[serde(rename = "Suite Finished")]
    SuiteFinished,
}

impl EventKind {
    /// The EventBridge detail-type.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::ExecutionQueued => "Execution Queued",
            EventKind::ExecutionStarted => "Execution Started",
            EventKind::StepFailed => "Step Failed",
            EventKind::ExecutionFinished => "Execution Finished",
            EventKind::SuiteFinished => "Suite Finished",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    pub kind: EventKind,
    pub execution_id: String,
    pub execution_kind: ExecutionKind,
    pub owner: String,
    pub status: ExecutionStatus,
    pub parent_id: Option<String>,
    pub test_case_id: Option<String>,
    pub test_suite_id: Option<String>,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub at: Timestamp,
}

/// A queued execution for a runner to pick up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub execution_id: String,
    pub priority: Priority,
}
