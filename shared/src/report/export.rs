//! Executions as a report (exports): a case or suite execution, imported or run here, told as
//! the neutral [`ImportedRun`] that [`super::write_junit`] and [`super::write_ctrf`] write.
//!
//! A test is a case execution with its attempts: a case export is one test, the chain of
//! retries that led to the exported attempt; a suite export is one test per slot, its children
//! in attempt order. A test is named by the suite (or the case itself, exported alone), the
//! test case's id as its class name (two cases of one name stay two tests) and the case name.

use super::model::{Attempt, AttemptStatus, CappedText, ImportedRun, ImportedTest};
use crate::domain::execution::{Execution, ExecutionStatus, StepResult, StepStatus};
use std::collections::{BTreeMap, HashMap};

/// `root` as a run: `attempts` are the case executions it holds (a case export: the chain of
/// attempts ending at `root`; a suite export: its children, every attempt), and `failures`
/// each failed attempt's first failed or errored step, by execution id.
pub fn run_of(
    root: &Execution,
    attempts: &[Execution],
    failures: &HashMap<String, StepResult>,
) -> ImportedRun {
    // Each slot's attempts, oldest first; a case exported alone is its one slot.
    let mut slots: BTreeMap<u32, Vec<&Execution>> = BTreeMap::new();
    for execution in attempts {
        slots
            .entry(execution.slot.unwrap_or(0))
            .or_default()
            .push(execution);
    }
    let mut tests = Vec::with_capacity(slots.len());
    for mut chain in slots.into_values() {
        chain.sort_by_key(|e| e.attempt);
        let Some(last) = chain.last() else { continue };
        tests.push(ImportedTest {
            suite: root.name.clone(),
            classname: last.test_case_id.clone().unwrap_or_default(),
            name: last.name.clone(),
            attempts: chain
                .iter()
                .map(|e| attempt_of(e, failures.get(&e.id)))
                .collect(),
        });
    }
    ImportedRun {
        name: Some(root.name.clone()),
        started_at: root.started_at.or(root.queued_at),
        tests,
        warnings: Vec::new(),
    }
}

/// Whether `execution` needs its first failing step looked up for its attempt's message.
pub fn needs_failure(execution: &Execution) -> bool {
    matches!(
        execution.status,
        ExecutionStatus::Failed | ExecutionStatus::Error
    )
}

/// The first failed or errored step among `steps`.
pub fn first_failure<'a>(
    steps: impl IntoIterator<Item = &'a StepResult>,
) -> Option<&'a StepResult> {
    steps
        .into_iter()
        .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error))
}

/// One case execution as an attempt of its test. An execution that was skipped, did not
/// finish (pending, queued, running), was cancelled, or skipped every step ran to no outcome:
/// it is skipped, and its message says why. A time-out is an error.
fn attempt_of(execution: &Execution, failure: Option<&StepResult>) -> Attempt {
    // Skipped (an imported skipped test), or completed with every step skipped (how imports
    // recorded a skipped test before the `skipped` status): it ran nothing.
    if execution.ran_nothing() {
        let reason = execution.steps.iter().find_map(|s| s.message.as_deref());
        return Attempt {
            started_at: execution.started_at,
            ..Attempt::new(AttemptStatus::Skipped, execution.duration_ms)
        }
        .with_text(reason, &[]);
    }
    let status = match execution.status {
        ExecutionStatus::Passed => AttemptStatus::Passed,
        ExecutionStatus::Failed => AttemptStatus::Failed,
        ExecutionStatus::Error | ExecutionStatus::TimedOut => AttemptStatus::Error,
        ExecutionStatus::Cancelled
        | ExecutionStatus::Skipped
        | ExecutionStatus::Pending
        | ExecutionStatus::Queued
        | ExecutionStatus::Running => AttemptStatus::Skipped,
    };
    let message = match (execution.status, failure) {
        (ExecutionStatus::Failed | ExecutionStatus::Error, Some(step)) => Some(format!(
            "step {} ({}) {}{}",
            step.index,
            step.name,
            step.status,
            step.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        (ExecutionStatus::TimedOut, _) => {
            Some(format!("timed out after {} s", execution.timeout_s))
        }
        (ExecutionStatus::Cancelled, _) => Some("cancelled".to_owned()),
        (ExecutionStatus::Passed | ExecutionStatus::Skipped, _) => None,
        (
            status
            @ (ExecutionStatus::Pending | ExecutionStatus::Queued | ExecutionStatus::Running),
            _,
        ) => Some(format!("not finished: {status}")),
        (status @ (ExecutionStatus::Failed | ExecutionStatus::Error), None) => {
            Some(status.to_string())
        }
    };
    let mut output = CappedText::default();
    if let Some(text) = failure.and_then(|step| step.output.as_deref()) {
        output.push(text);
    }
    let pieces: Vec<CappedText> = [output]
        .into_iter()
        .filter(|o| !o.text.is_empty())
        .collect();
    let mut attempt = Attempt {
        started_at: execution.started_at,
        ..Attempt::new(status, execution.duration_ms)
    }
    .with_text(message.as_deref(), &pieces);
    attempt.truncated |= failure.is_some_and(|step| step.truncated);
    attempt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::execution::tests_support::sample;

    fn exported(status: ExecutionStatus, failure: Option<StepResult>) -> Attempt {
        let execution = sample(status);
        let failures = failure
            .map(|step| HashMap::from([(execution.id.clone(), step)]))
            .unwrap_or_default();
        let run = run_of(&execution, std::slice::from_ref(&execution), &failures);
        assert_eq!(run.tests.len(), 1);
        run.tests[0].attempts[0].clone()
    }

    #[test]
    fn each_status_is_told_as_an_attempt() {
        let passed = exported(ExecutionStatus::Passed, None);
        assert_eq!(
            (passed.status, passed.message),
            (AttemptStatus::Passed, None)
        );
        let timed_out = exported(ExecutionStatus::TimedOut, None);
        assert_eq!(timed_out.status, AttemptStatus::Error);
        assert_eq!(timed_out.message.as_deref(), Some("timed out after 60 s"));
        let cancelled = exported(ExecutionStatus::Cancelled, None);
        assert_eq!(cancelled.status, AttemptStatus::Skipped);
        assert_eq!(cancelled.message.as_deref(), Some("cancelled"));
        let running = exported(ExecutionStatus::Running, None);
        assert_eq!(running.status, AttemptStatus::Skipped);
        assert_eq!(running.message.as_deref(), Some("not finished: running"));
        let error = exported(ExecutionStatus::Error, None);
        assert_eq!(error.message.as_deref(), Some("error"));
    }

    #[test]
    fn a_failure_names_its_step_and_keeps_its_output_capped() {
        let mut step = StepResult::pending(1, "b");
        step.status = StepStatus::Failed;
        step.message = Some("expected 200".into());
        step.output = Some("x".repeat(10_000));
        let failed = exported(ExecutionStatus::Failed, Some(step));
        assert_eq!(failed.status, AttemptStatus::Failed);
        assert_eq!(
            failed.message.as_deref(),
            Some("step 1 (b) failed: expected 200")
        );
        assert!(failed.truncated);
        assert!(failed.output.unwrap().len() <= crate::domain::execution::MAX_OUTPUT_BYTES);
    }

    #[test]
    fn a_suite_is_one_test_a_slot_with_its_attempts_in_order() {
        let mut suite = sample(ExecutionStatus::Failed);
        suite.name = "shop".into();
        let child = |slot: u32, attempt: u32, status: ExecutionStatus| {
            let mut e = sample(status);
            e.id = format!("ex_{slot}_{attempt}");
            e.slot = Some(slot);
            e.attempt = attempt;
            e.test_case_id = Some(format!("tc_{slot}"));
            e
        };
        // Listed out of attempt order, as a store may.
        let children = [
            child(0, 2, ExecutionStatus::Passed),
            child(0, 1, ExecutionStatus::Failed),
            child(1, 1, ExecutionStatus::Passed),
        ];
        let run = run_of(&suite, &children, &HashMap::new());
        assert_eq!(run.name.as_deref(), Some("shop"));
        assert_eq!(run.tests.len(), 2);
        assert!(run.tests[0].is_flaky());
        assert_eq!(run.tests[0].classname, "tc_0");
        assert_eq!(run.tests[0].suite, "shop");
        assert_eq!(run.counts().passed, 2);
    }
}
