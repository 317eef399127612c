//! Domain events: what runledger tells the world. Per-step successes are deliberately absent;
//! progress is read from the trace, not streamed one step at a time.

use super::execution::{ExecutionKind, ExecutionStatus, Priority};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Named in Title Case ("Execution Queued"): the EventBridge detail-type, and the name serde
/// reads and writes.
#[derive(strum::VariantNames, strum::EnumString, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "title_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum EventKind {
    ExecutionQueued,
    ExecutionStarted,
    StepFailed,
    ExecutionFinished,
    SuiteFinished,
}

impl EventKind {
    /// The EventBridge detail-type.
    pub fn detail_type(self) -> &'static str {
        self.into()
    }

    /// The event kind of a detail-type, if it is one of runledger's.
    pub fn from_detail_type(detail_type: &str) -> Option<Self> {
        detail_type.parse().ok()
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        EventKind::from_detail_type(&name).ok_or_else(|| {
            use strum::VariantNames;
            format!(
                "unknown event kind `{name}`, expected one of {}",
                EventKind::VARIANTS.join(", ")
            )
        })
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

/// What happened to a test case itself (not to an execution of it). Named like
/// [`EventKind`], its EventBridge detail-type.
#[derive(strum::VariantNames, strum::EnumString, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "title_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum CaseEventKind {
    TestCaseQuarantined,
    TestCaseReleased,
}

impl CaseEventKind {
    pub fn detail_type(self) -> &'static str {
        self.into()
    }
}

impl TryFrom<String> for CaseEventKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
            .map_err(|_| format!("unknown test case event kind `{name}`"))
    }
}

/// A test case quarantined or released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseEvent {
    pub kind: CaseEventKind,
    pub test_case_id: String,
    pub owner: String,
    pub actor: String,
    pub reason: Option<String>,
    /// When the quarantine ends by itself.
    pub until: Option<Timestamp>,
    pub at: Timestamp,
}

/// A queued execution for a runner to pick up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub execution_id: String,
    pub priority: Priority,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn kinds_are_named_by_their_detail_type() {
        let names: Vec<_> = EventKind::iter().map(EventKind::detail_type).collect();
        assert_eq!(
            names,
            [
                "Execution Queued",
                "Execution Started",
                "Step Failed",
                "Execution Finished",
                "Suite Finished"
            ]
        );
        for kind in EventKind::iter() {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.detail_type());
            assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), kind);
            assert_eq!(EventKind::from_detail_type(kind.detail_type()), Some(kind));
        }
        assert_eq!(EventKind::from_detail_type("execution queued"), None);
        let names: Vec<_> = CaseEventKind::iter()
            .map(CaseEventKind::detail_type)
            .collect();
        assert_eq!(names, ["Test Case Quarantined", "Test Case Released"]);
        assert!(serde_json::from_value::<EventKind>("Step Passed".into()).is_err());
    }
}
