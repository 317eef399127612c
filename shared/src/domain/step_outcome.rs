//! The outcome of running one step, whichever runner ran it.

use super::time::Timestamp;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    Passed,
    Failed,
    /// The runner could not run the step as written (it would exceed one of its limits).
    Error,
}

/// What running one step came to, as a step runner reports it.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub verdict: StepVerdict,
    /// `None` when the step passed; otherwise every failure or error, joined with "; ".
    pub message: Option<String>,
    /// A request/response summary and the start of the response body, when there was one.
    pub output: Option<String>,
    /// Captured variables; empty unless the step passed.
    pub captures: BTreeMap<String, String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub duration_ms: u64,
}
