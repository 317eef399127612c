//! Imports: a test run that something else ran, recorded from its report as one suite
//! execution with one case execution per attempt of each test.
//!
//! Each test is an `external` test case of one step, registered in the catalog the first time
//! a report names it and reused after: its id is derived from the owner and the test's
//! identity (suite or file, class name, name), so the same test always lands on the same case
//! and two tests that only share a name stay two. The suite is found the same way by its
//! name. Everything here is pure; the engine reads and writes.

use super::model::{Attempt, AttemptStatus, ImportedRun, ImportedTest};
use crate::domain::catalog::{
    DEFAULT_MAX_PARALLEL, MAX_SUITE_CASES, StepAction, StepDefinition, SuiteMode, TestCase,
    TestSuite,
};
use crate::domain::execution::{
    ChildSlot, Execution, ExecutionConfig, ExecutionStatus, StepResult, StepStatus, SuitePlan, cap,
};
use crate::domain::ids::{TEST_CASE_PREFIX, TEST_SUITE_PREFIX};
use crate::domain::time::Timestamp;
use crate::domain::validation::MAX_NAME_CHARS;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// At most this many tests in one import: a suite holds at most this many cases.
pub const MAX_IMPORT_TESTS: usize = MAX_SUITE_CASES;
/// The suite's name when neither the request nor the report gives one.
pub const DEFAULT_SUITE_NAME: &str = "imported";
/// The tag every imported test case and suite carries.
pub const IMPORT_TAG: &str = "imported";

/// The id of the test case that stands for `test` among `owner`'s.
pub fn case_id(owner: &str, test: &ImportedTest) -> String {
    let (suite, classname, name) = test.identity();
    derived_id(TEST_CASE_PREFIX, &[owner, suite, classname, name])
}

/// The id of `owner`'s imported suite named `name`.
pub fn suite_id(owner: &str, name: &str) -> String {
    derived_id(TEST_SUITE_PREFIX, &[owner, name])
}

/// `prefix` and 26 characters of Crockford base32 (an id's shape) from a hash of `parts`. The
/// parts are length-prefixed, so no two lists of parts hash alike.
fn derived_id(prefix: &str, parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut hasher = Sha256::new();
    hasher.update(b"runledger-import-v1");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    // 26 characters of 5 bits each: the digest's first 130 bits, read big-endian.
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    for i in 0..26 {
        let (byte, shift) = (i * 5 / 8, i * 5 % 8);
        let window = u16::from_be_bytes([digest[byte], digest[byte + 1]]);
        id.push(char::from(
            ALPHABET[usize::from((window >> (11 - shift)) & 0x1f)],
        ));
    }
    id
}

/// A name the catalog takes: control characters as spaces, trimmed, at most
/// [`MAX_NAME_CHARS`] characters (cut with an ellipsis), `unnamed` when nothing is left.
pub fn catalog_name(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return "unnamed".to_owned();
    }
    match clean.char_indices().nth(MAX_NAME_CHARS - 1) {
        None => clean.to_owned(),
        Some((end, _)) => format!("{}…", &clean[..end]),
    }
}

/// The test case a test is registered as: one external step, the test's identity in its
/// description.
pub fn new_case(id: String, owner: &str, test: &ImportedTest, now: Timestamp) -> TestCase {
    let (suite, classname, name) = test.identity();
    let identity = [suite, classname, name]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" › ");
    let (description, _) = cap(
        Some(&format!("Imported test: {identity}")),
        crate::domain::catalog::MAX_DESCRIPTION_CHARS,
    );
    TestCase {
        id,
        owner: owner.to_owned(),
        name: catalog_name(name),
        description,
        tags: vec![IMPORT_TAG.to_owned()],
        variables: BTreeMap::new(),
        timeout_s: None,
        steps: vec![StepDefinition {
            name: catalog_name(name),
            action: StepAction::External,
            http: None,
            expect: None,
            capture: BTreeMap::new(),
            continue_on_failure: false,
        }],
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// The suite an import is recorded under.
pub fn new_suite(
    id: String,
    owner: &str,
    name: &str,
    cases: Vec<String>,
    now: Timestamp,
) -> TestSuite {
    TestSuite {
        id,
        owner: owner.to_owned(),
        name: catalog_name(name),
        description: Some("Imported test runs".to_owned()),
        test_case_ids: cases,
        mode: SuiteMode::Parallel,
        max_parallel: DEFAULT_MAX_PARALLEL,
        fail_fast: false,
        tags: vec![IMPORT_TAG.to_owned()],
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// `suite` with `cases` it lacks added after its own (none beyond [`MAX_SUITE_CASES`]), if any
/// were missing.
pub fn grown_suite(suite: &TestSuite, cases: &[String], now: Timestamp) -> Option<TestSuite> {
    let mut grown = suite.clone();
    for case in cases {
        if grown.test_case_ids.len() < MAX_SUITE_CASES && !grown.test_case_ids.contains(case) {
            grown.test_case_ids.push(case.clone());
        }
    }
    (grown.test_case_ids.len() > suite.test_case_ids.len()).then(|| TestSuite {
        updated_at: now,
        version: suite.version + 1,
        ..grown
    })
}

/// The executions an import records: the suite's and each test's attempts, finished.
pub struct ImportedExecutions {
    pub suite: Execution,
    /// Every attempt of every test, with its test case, in suite order and attempt order.
    pub attempts: Vec<(Execution, usize)>,
}

/// The executions that record `run`: `cases[i]` is the test case of `run.tests[i]`; `ids`
/// gives each new execution its id (the suite's first). A test whose case is in `quarantined`
/// and that ended failing has its slot muted: it does not fail the suite.
#[allow(clippy::too_many_arguments)]
pub fn executions_of(
    run: &ImportedRun,
    suite: &TestSuite,
    cases: &[TestCase],
    quarantined: &HashSet<String>,
    owner: &str,
    config: &ExecutionConfig,
    now: Timestamp,
    mut ids: impl FnMut() -> String,
) -> ImportedExecutions {
    let suite_id = ids();
    let run_start = run.started_at.unwrap_or(now);
    let mut attempts = Vec::new();
    let mut slots = Vec::with_capacity(run.tests.len());
    for (position, (test, case)) in run.tests.iter().zip(cases).enumerate() {
        let mut previous: Option<usize> = None;
        for (n, attempt) in test.attempts.iter().enumerate() {
            let mut execution = Execution::new_case(ids(), case, owner, config, now);
            execution.parent_id = Some(suite_id.clone());
            execution.test_suite_id = Some(suite.id.clone());
            execution.slot = Some(position as u32);
            execution.attempt = n as u32 + 1;
            finish(&mut execution, attempt, run_start);
            if let Some(before) = previous {
                let (earlier, _): &mut (Execution, usize) = &mut attempts[before];
                earlier.retried_by = Some(execution.id.clone());
                execution.retry_of = Some(earlier.id.clone());
            }
            previous = Some(attempts.len());
            attempts.push((execution, position));
        }
        if let Some(last) = previous {
            let (execution, _) = &attempts[last];
            slots.push(ChildSlot {
                test_case_id: case.id.clone(),
                execution_id: execution.id.clone(),
                status: execution.status,
                muted: execution.status.is_failure() && quarantined.contains(&case.id),
            });
        }
    }
    let plan = SuitePlan {
        mode: suite.mode,
        concurrency: suite.concurrency(),
        fail_fast: false,
        slots,
    };
    let mut execution = Execution::new_suite(suite_id, suite, owner, config.clone(), plan, now);
    let progress = execution.suite.as_ref().map(SuitePlan::progress);
    execution.progress = progress.unwrap_or(execution.progress);
    execution.status = execution
        .suite
        .as_ref()
        .and_then(SuitePlan::outcome)
        .unwrap_or(ExecutionStatus::Passed);
    let started = attempts
        .iter()
        .filter_map(|(e, _)| e.started_at)
        .min()
        .unwrap_or(run_start);
    let finished = attempts
        .iter()
        .filter_map(|(e, _)| e.finished_at)
        .max()
        .unwrap_or(started);
    execution.queued_at = Some(started);
    execution.started_at = Some(started);
    execution.finished_at = Some(finished);
    execution.duration_ms = Some(finished.millis_since(started));
    ImportedExecutions {
        suite: execution,
        attempts,
    }
}

/// Fills a case execution in as `attempt` finished it: its one step and its outcome. A test
/// that was skipped ran nothing: its step and the execution are `skipped`.
fn finish(execution: &mut Execution, attempt: &Attempt, run_start: Timestamp) {
    let started = attempt.started_at.unwrap_or(run_start);
    let duration = attempt.duration_ms.unwrap_or(0);
    let finished = started.plus_millis(i64::try_from(duration).unwrap_or(i64::MAX));
    let status = StepStatus::from(attempt.status);
    if let Some(step) = execution.steps.first_mut() {
        *step = StepResult {
            index: 0,
            name: step.name.clone(),
            status,
            started_at: Some(started),
            finished_at: Some(finished),
            duration_ms: Some(duration),
            message: attempt.message.clone(),
            output: attempt.output.clone(),
            truncated: attempt.truncated,
        };
    }
    execution.progress.record(StepStatus::Pending, status);
    // A test case edited to more steps since it was registered: the report ran none of them.
    for step in execution.steps.iter_mut().skip(1) {
        step.status = StepStatus::Skipped;
        step.finished_at = Some(finished);
        execution
            .progress
            .record(StepStatus::Pending, StepStatus::Skipped);
    }
    execution.status = match attempt.status {
        AttemptStatus::Passed => ExecutionStatus::Passed,
        AttemptStatus::Skipped => ExecutionStatus::Skipped,
        AttemptStatus::Failed => ExecutionStatus::Failed,
        AttemptStatus::Error => ExecutionStatus::Error,
    };
    execution.queued_at = Some(started);
    execution.started_at = Some(started);
    execution.finished_at = Some(finished);
    execution.duration_ms = Some(duration);
}
