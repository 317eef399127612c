//! The store conformance suite: what every [`ExecutionStore`] adapter must do, checked through
//! the use cases that depend on it.
//!
//! Each check is a public async function that takes the store from outside, builds its own
//! [`Engine`] around it (with a [`ManualClock`], a [`LocalWorkQueue`] and a [`LocalEventBus`] it
//! keeps a handle to) and works under fresh, random owner names, so any number of checks may
//! share one store (one redb file, one DynamoDB table) at the same time. Checks panic on the
//! first broken expectation.
//!
//! The checks are grouped by section, one module each; [`with_conformance_checks!`] is the one
//! list of them that [`checks`] and every adapter's per-check tests are made from.
//!
//! ```text
//! #[tokio::test]
//! async fn my_adapter_conforms() {
//!     runledger_testkit::conformance::run_all(|| Arc::new(MyStore::connect())).await;
//! }
//! ```

mod analytics;
mod catalog;
mod event_log;
mod harness;
mod history;
mod idempotency;
mod imports;
mod listing;
mod quarantine;
mod recovery;
mod retries;
mod runner;
mod starting;
mod steps;
mod suites;
mod timeouts;
mod transitions;

pub use analytics::{rollups_count_once, rollups_of_suites_and_imports, rollups_under_concurrency};
pub use catalog::{catalog_listing, catalog_round_trip};
pub use event_log::{assert_log_consistent, event_log, statuses, step_entries};
pub use harness::*;
pub use history::history_append_only;
pub use idempotency::idempotency;
pub use imports::imports;
pub use listing::list_executions;
pub use quarantine::{
    quarantine_and_fail_fast, quarantine_mutes_failures, quarantine_mutes_imported_failures,
};
pub use recovery::active_and_overdue;
pub use retries::{retry_automatic, retry_in_suite, retry_manual, retry_suite};
pub use runner::{ScriptedRunner, builtin_run, builtin_runs_refuse_outside_results};
pub use starting::start_case;
pub use steps::{step_partitioning, step_reports, ten_thousand_steps};
pub use suites::{suite_fail_fast, suite_max_parallel, suite_parallel, suite_sequential};
pub use timeouts::timeouts;
pub use transitions::{cancel, complete};

use crate::builders::*;

use crate::fakes::ManualClock;
use async_trait::async_trait;
use runledger::bus::local::LocalEventBus;
use runledger::domain::catalog::{
    DEFAULT_MAX_PARALLEL, MAX_STEPS, RunnerKind, StepDefinition, SuiteMode, TestCase, TestSuite,
    TestSuiteInput,
};
use runledger::domain::clock::Clock;
use runledger::domain::errors::StoreError;
use runledger::domain::events::{DomainEvent, EventKind, WorkItem};
use runledger::domain::execution::{
    ChildCounts, DEFAULT_TIMEOUT_S, Execution, ExecutionConfig, ExecutionKind, ExecutionStatus,
    HistoryEntry, MAX_MESSAGE_BYTES, MAX_OUTPUT_BYTES, PARTITION_THRESHOLD, Priority, Progress,
    StepReport, StepResult, StepStatus, StepStorage, SuitePlan,
};
use runledger::domain::ids::UlidSource;
use runledger::domain::step_outcome::{StepOutcome, StepVerdict};
use runledger::domain::time::Timestamp;
use runledger::domain::validation::ValidationErrors;
use runledger::domain::workflow::{
    ENGINE_ACTOR, IDEMPOTENCY_WINDOW_MS, RUNNER_ACTOR, TIMEOUT_ACTOR,
};
use runledger::engine::{Caller, Engine, EngineError, StartRequest, Started};
use runledger::ports::{ExecutionQuery, ExecutionStore, Page, StepRunner};
use runledger::queue::local::LocalWorkQueue;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

use ExecutionStatus::{Cancelled, Failed, Passed, Pending, Queued, Running, Skipped, TimedOut};

/// One conformance check, boxed so that a list of them can be iterated.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
/// A conformance check: give it a store, await it; it panics when the store does not conform.
pub type Check = fn(Arc<dyn ExecutionStore>) -> CheckFuture;

/// Calls `$callback!(name, name, ...)` with the name of every conformance check, in a stable
/// order: the one list that [`checks`] and each adapter's per-check tests are made from.
#[macro_export]
macro_rules! with_conformance_checks {
    ($callback:ident) => {
        $callback! {
            catalog_round_trip,
            catalog_listing,
            start_case,
            step_reports,
            step_partitioning,
            ten_thousand_steps,
            complete,
            cancel,
            suite_parallel,
            suite_sequential,
            suite_max_parallel,
            suite_fail_fast,
            retry_manual,
            retry_automatic,
            retry_in_suite,
            retry_suite,
            timeouts,
            idempotency,
            imports,
            list_executions,
            history_append_only,
            builtin_run,
            builtin_runs_refuse_outside_results,
            event_log,
            active_and_overdue,
            rollups_count_once,
            rollups_under_concurrency,
            rollups_of_suites_and_imports,
            quarantine_mutes_failures,
            quarantine_and_fail_fast,
            quarantine_mutes_imported_failures
        }
    };
}

macro_rules! check_list {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|s| Box::pin($name(s))) as Check)),*]
    };
}

/// Every conformance check with its name, in a stable order.
pub fn checks() -> Vec<(&'static str, Check)> {
    crate::with_conformance_checks!(check_list)
}

/// Runs every check, one after another, each against `make_store()` (which may hand out the
/// same shared store every time). Panics naming the first check that fails.
pub async fn run_all(make_store: impl Fn() -> Arc<dyn ExecutionStore>) {
    for (name, check) in checks() {
        if let Err(e) = tokio::spawn(check(make_store())).await {
            panic!("store conformance check `{name}` failed: {e}");
        }
    }
}

/// Runs every check at the same time against one shared store: the checks must not see each
/// other's records. Panics naming every check that failed.
pub async fn run_all_concurrently(store: Arc<dyn ExecutionStore>) {
    let mut tasks = Vec::new();
    for (name, check) in checks() {
        tasks.push((name, tokio::spawn(check(Arc::clone(&store)))));
    }
    let mut failures = Vec::new();
    for (name, task) in tasks {
        if let Err(e) = task.await {
            failures.push(format!("`{name}`: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "store conformance checks failed: {}",
        failures.join("; ")
    );
}
