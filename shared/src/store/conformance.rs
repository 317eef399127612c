//! The store conformance suite: what every [`ExecutionStore`] adapter must do, checked through
//! the use cases that depend on it.
//!
//! Each check is a public async function that takes the store from outside, builds its own
//! [`Engine`] around it (with a [`ManualClock`], a [`LocalWorkQueue`] and a [`LocalEventBus`] it
//! keeps a handle to) and works under fresh, random owner names, so any number of checks may
//! share one store (one redb file, one DynamoDB table) at the same time. Checks panic on the
//! first broken expectation: this module is test support, compiled always so that every
//! adapter's test suite can call it.
//!
//! ```text
//! #[tokio::test]
//! async fn my_adapter_conforms() {
//!     runledger::store::conformance::run_all(|| Arc::new(MyStore::connect())).await;
//! }
//! ```

use crate::bus::LocalEventBus;
use crate::domain::catalog::{
    DEFAULT_MAX_PARALLEL, HttpRequestSpec, MAX_STEPS, RunnerKind, StepAction, StepDefinition,
    SuiteMode, TestCase, TestCaseInput, TestSuite, TestSuiteInput,
};
use crate::domain::clock::{Clock, ManualClock};
use crate::domain::events::{DomainEvent, EventKind, WorkItem};
use crate::domain::execution::{
    ChildCounts, DEFAULT_TIMEOUT_S, Execution, ExecutionConfig, ExecutionKind, ExecutionStatus,
    HistoryEntry, MAX_MESSAGE_BYTES, MAX_OUTPUT_BYTES, Priority, Progress, StepReport, StepResult,
    StepStatus, StepStorage, SuitePlan,
};
use crate::domain::ids::UlidSource;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationErrors;
use crate::domain::workflow::{ENGINE_ACTOR, IDEMPOTENCY_WINDOW_MS, RUNNER_ACTOR, TIMEOUT_ACTOR};
use crate::engine::{Caller, Engine, EngineError, StartRequest, Started, StepRunner};
use crate::ports::{ExecutionQuery, ExecutionStore, StoreError};
use crate::queue::LocalWorkQueue;
use crate::runner::{HttpStepOutcome, StepVerdict};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

use ExecutionStatus::{Cancelled, Failed, Passed, Pending, Queued, Running, TimedOut};

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
            list_executions,
            history_append_only,
            builtin_run,
            active_and_overdue
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

// ===== the harness ========================================================================

/// An engine around the store under test, with handles on its clock, queue and bus, and a
/// fresh owner of its own.
pub struct Harness {
    pub engine: Engine,
    pub store: Arc<dyn ExecutionStore>,
    pub clock: Arc<ManualClock>,
    pub queue: Arc<LocalWorkQueue>,
    pub bus: Arc<LocalEventBus>,
    /// A fresh, random user that owns everything this harness creates by default.
    pub user: Caller,
}

impl Harness {
    pub fn new(store: Arc<dyn ExecutionStore>) -> Self {
        let clock = Arc::new(ManualClock::starting_at(Timestamp::now()));
        let queue = Arc::new(LocalWorkQueue::new());
        let bus = Arc::new(LocalEventBus::new());
        let engine = Engine::new(
            Arc::clone(&store),
            Arc::clone(&queue) as _,
            Arc::clone(&bus) as _,
            Arc::clone(&clock) as _,
            Arc::new(UlidSource::default()),
        );
        Harness {
            engine,
            store,
            clock,
            queue,
            bus,
            user: fresh_user(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.user.user
    }

    pub fn actor(&self) -> String {
        format!("user:{}", self.user.user)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn advance_millis(&self, millis: i64) {
        self.clock.advance_millis(millis);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.clock.advance_millis(secs * 1000);
    }

    /// Everything queued for runners so far, in queue order.
    pub fn drain_queue(&self) -> Vec<WorkItem> {
        std::iter::from_fn(|| self.queue.try_next()).collect()
    }

    // ----- catalog ---------------------------------------------------------------------

    pub async fn create_case(
        &self,
        caller: &Caller,
        name: &str,
        tags: &[&str],
        steps: Vec<StepDefinition>,
    ) -> TestCase {
        let input = case_input(name, tags, steps);
        self.engine
            .create_entry::<TestCase>(caller, input)
            .await
            .unwrap_or_else(|e| panic!("create test case {name}: {e:?}"))
    }

    pub async fn external_case(&self, name: &str, steps: usize) -> TestCase {
        self.create_case(&self.user, name, &[], external_steps(steps))
            .await
    }

    pub async fn http_case(&self, name: &str, steps: usize) -> TestCase {
        self.create_case(&self.user, name, &[], http_steps(steps))
            .await
    }

    pub async fn create_suite(
        &self,
        cases: &[&TestCase],
        mode: SuiteMode,
        max_parallel: Option<u32>,
        fail_fast: bool,
    ) -> TestSuite {
        let input = TestSuiteInput {
            name: "conformance suite".into(),
            description: None,
            test_case_ids: cases.iter().map(|c| c.id.clone()).collect(),
            mode,
            max_parallel,
            fail_fast,
            tags: vec![],
        };
        self.engine
            .create_entry::<TestSuite>(&self.user, input)
            .await
            .unwrap_or_else(|e| panic!("create test suite: {e:?}"))
    }

    // ----- executions ------------------------------------------------------------------

    pub async fn start(&self, case: &TestCase) -> Execution {
        self.start_with(case, ExecutionConfig::default()).await
    }

    pub async fn start_with(&self, case: &TestCase, config: ExecutionConfig) -> Execution {
        let started = self
            .engine
            .start_case(&self.user, &case.id, request(config, None))
            .await
            .unwrap_or_else(|e| panic!("start case {}: {e:?}", case.id));
        assert!(
            started.created,
            "a start without a key always creates an execution"
        );
        started.execution
    }

    pub async fn start_suite(&self, suite: &TestSuite, config: ExecutionConfig) -> Execution {
        let started = self
            .engine
            .start_suite(&self.user, &suite.id, request(config, None))
            .await
            .unwrap_or_else(|e| panic!("start suite {}: {e:?}", suite.id));
        assert!(started.created);
        started.execution
    }

    pub async fn report(
        &self,
        id: &str,
        steps: &[(u32, StepStatus)],
    ) -> Result<Execution, EngineError> {
        let reports = steps.iter().map(|(i, s)| report(*i, *s)).collect();
        self.engine.report_steps(&self.user, id, reports).await
    }

    /// Reports step 0 with `status` and completes the execution.
    pub async fn finish(&self, id: &str, status: StepStatus) -> Execution {
        self.report(id, &[(0, status)])
            .await
            .unwrap_or_else(|e| panic!("report on {id}: {e:?}"));
        self.engine
            .complete(&self.user, id)
            .await
            .unwrap_or_else(|e| panic!("complete {id}: {e:?}"))
    }

    pub async fn pass(&self, id: &str) -> Execution {
        let done = self.finish(id, StepStatus::Passed).await;
        assert_eq!(done.status, Passed, "{id}");
        done
    }

    pub async fn fail(&self, id: &str) -> Execution {
        let done = self.finish(id, StepStatus::Failed).await;
        assert_eq!(done.status, Failed, "{id}");
        done
    }

    /// The stored record, read straight from the store.
    pub async fn execution(&self, id: &str) -> Execution {
        self.store
            .get_execution(id)
            .await
            .unwrap_or_else(|e| panic!("get execution {id}: {e:?}"))
            .unwrap_or_else(|| panic!("execution {id} is not stored"))
    }

    pub async fn status(&self, id: &str) -> ExecutionStatus {
        self.execution(id).await.status
    }

    pub async fn history(&self, id: &str) -> Vec<HistoryEntry> {
        self.store
            .history(id)
            .await
            .unwrap_or_else(|e| panic!("history of {id}: {e:?}"))
    }

    pub async fn plan(&self, suite_id: &str) -> SuitePlan {
        self.execution(suite_id)
            .await
            .suite
            .unwrap_or_else(|| panic!("{suite_id} has no suite plan"))
    }

    pub async fn counts(&self, suite_id: &str) -> ChildCounts {
        self.plan(suite_id).await.counts()
    }

    /// Every step through the engine's paging, checking the cursors on the way.
    pub async fn all_steps(&self, id: &str, limit: usize) -> Vec<StepResult> {
        let mut steps: Vec<StepResult> = Vec::new();
        let mut after = None;
        for _ in 0..100_000 {
            let page = self
                .engine
                .list_steps(&self.user, id, after, limit)
                .await
                .unwrap_or_else(|e| panic!("list steps of {id}: {e:?}"));
            assert!(
                page.items.len() <= limit,
                "a page holds at most `limit` steps"
            );
            steps.extend(page.items);
            match page.next_cursor {
                Some(cursor) => {
                    let index: u32 = cursor.parse().expect("the steps cursor is the last index");
                    assert_eq!(Some(index), steps.last().map(|s| s.index));
                    after = Some(index);
                }
                None => break,
            }
        }
        for (position, step) in steps.iter().enumerate() {
            assert_eq!(
                step.index as usize, position,
                "steps of {id} come in index order, each once"
            );
        }
        steps
    }

    /// A suite's children through the engine's paging (two at a time, to exercise cursors).
    pub async fn children(&self, suite_id: &str) -> Vec<Execution> {
        let mut children: Vec<Execution> = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .engine
                .list_children(&self.user, suite_id, after.as_deref(), 2)
                .await
                .unwrap_or_else(|e| panic!("list children of {suite_id}: {e:?}"));
            assert!(page.items.len() <= 2);
            children.extend(page.items);
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        let ids: HashSet<&str> = children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), children.len(), "every child listed once");
        for child in &children {
            assert_eq!(child.parent_id.as_deref(), Some(suite_id));
        }
        children
    }

    /// Every execution `caller` may list for `query`, through the cursor, `limit` at a time.
    pub async fn list_all(
        &self,
        caller: &Caller,
        query: ExecutionQuery,
        limit: usize,
    ) -> Vec<Execution> {
        let mut all: Vec<Execution> = Vec::new();
        let mut after = None;
        for _ in 0..100_000 {
            let query = ExecutionQuery {
                limit,
                after: after.clone(),
                ..query.clone()
            };
            let page = self
                .engine
                .list_executions(caller, query)
                .await
                .unwrap_or_else(|e| panic!("list executions: {e:?}"));
            assert!(
                page.items.len() <= limit,
                "a page holds at most `limit` executions"
            );
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => {
                    assert_ne!(after.as_ref(), Some(&cursor), "the cursor moves on");
                    after = Some(cursor);
                }
                None => break,
            }
        }
        let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "paging lists every execution once");
        for pair in all.windows(2) {
            assert!(pair[0].created_at >= pair[1].created_at, "newest first");
        }
        all
    }

    /// Every test case `caller` may list with `tag`, through the cursor.
    pub async fn list_cases(
        &self,
        caller: &Caller,
        tag: Option<&str>,
        limit: usize,
    ) -> Vec<TestCase> {
        let mut all: Vec<TestCase> = Vec::new();
        let mut after = None;
        for _ in 0..100_000 {
            let page = self
                .engine
                .list_entries::<TestCase>(caller, tag.map(str::to_owned), limit, after.clone())
                .await
                .unwrap_or_else(|e| panic!("list test cases: {e:?}"));
            assert!(
                page.items.len() <= limit,
                "a page holds at most `limit` cases"
            );
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => {
                    assert_ne!(after.as_ref(), Some(&cursor), "the cursor moves on");
                    after = Some(cursor);
                }
                None => break,
            }
        }
        all
    }

    pub async fn list_suites(
        &self,
        caller: &Caller,
        tag: Option<&str>,
        limit: usize,
    ) -> Vec<TestSuite> {
        let mut all: Vec<TestSuite> = Vec::new();
        let mut after = None;
        for _ in 0..100_000 {
            let page = self
                .engine
                .list_entries::<TestSuite>(caller, tag.map(str::to_owned), limit, after.clone())
                .await
                .unwrap_or_else(|e| panic!("list test suites: {e:?}"));
            assert!(
                page.items.len() <= limit,
                "a page holds at most `limit` suites"
            );
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => {
                    assert_ne!(after.as_ref(), Some(&cursor), "the cursor moves on");
                    after = Some(cursor);
                }
                None => break,
            }
        }
        all
    }

    /// Checks the history invariants of every execution `caller` owns.
    pub async fn check_histories_of(&self, caller: &Caller) {
        for execution in self.list_all(caller, ExecutionQuery::default(), 100).await {
            assert_history_consistent(&execution, &self.history(&execution.id).await);
        }
    }

    pub async fn check_histories(&self) {
        self.check_histories_of(&self.user).await;
    }
}

/// A user nobody else uses.
pub fn fresh_user() -> Caller {
    Caller::user(&format!(
        "conf-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
}

/// A tag nobody else uses.
pub fn fresh_tag() -> String {
    format!("conf-{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn request(config: ExecutionConfig, idempotency_key: Option<&str>) -> StartRequest {
    StartRequest {
        config,
        idempotency_key: idempotency_key.map(str::to_owned),
    }
}

pub fn case_input(name: &str, tags: &[&str], steps: Vec<StepDefinition>) -> TestCaseInput {
    TestCaseInput {
        name: name.to_owned(),
        description: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        variables: BTreeMap::new(),
        timeout_s: None,
        steps,
    }
}

pub fn external_step(name: &str) -> StepDefinition {
    StepDefinition {
        name: name.to_owned(),
        action: StepAction::External,
        http: None,
        expect: None,
        capture: BTreeMap::new(),
        continue_on_failure: false,
    }
}

pub fn external_steps(count: usize) -> Vec<StepDefinition> {
    (0..count)
        .map(|i| external_step(&format!("step {i}")))
        .collect()
}

pub fn http_step(name: &str) -> StepDefinition {
    StepDefinition {
        name: name.to_owned(),
        action: StepAction::Http,
        http: Some(HttpRequestSpec {
            method: "GET".into(),
            url: "http://127.0.0.1:9/never-called".into(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: None,
        }),
        expect: None,
        capture: BTreeMap::new(),
        continue_on_failure: false,
    }
}

pub fn http_steps(count: usize) -> Vec<StepDefinition> {
    (0..count)
        .map(|i| http_step(&format!("step {i}")))
        .collect()
}

pub fn report(index: u32, status: StepStatus) -> StepReport {
    StepReport {
        index,
        status,
        name: None,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        message: None,
        output: None,
    }
}

pub fn config(timeout_s: Option<u64>, max_retries: Option<u32>) -> ExecutionConfig {
    ExecutionConfig {
        timeout_s,
        max_retries,
        ..ExecutionConfig::default()
    }
}

/// Everything published since the last drain.
pub fn drain_events(events: &mut broadcast::Receiver<DomainEvent>) -> Vec<DomainEvent> {
    let mut drained = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => drained.push(event),
            Err(broadcast::error::TryRecvError::Empty) => return drained,
            Err(e) => panic!("the event subscriber fell behind: {e}"),
        }
    }
}

pub fn kinds_for(events: &[DomainEvent], id: &str) -> Vec<(EventKind, ExecutionStatus)> {
    events
        .iter()
        .filter(|e| e.execution_id == id)
        .map(|e| (e.kind, e.status))
        .collect()
}

/// The statuses announced by `Execution Finished` / `Suite Finished` events for `id`.
pub fn finished_events(events: &[DomainEvent], id: &str) -> Vec<ExecutionStatus> {
    events
        .iter()
        .filter(|e| e.execution_id == id)
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ExecutionFinished | EventKind::SuiteFinished
            )
        })
        .map(|e| e.status)
        .collect()
}

pub fn transitions(history: &[HistoryEntry]) -> Vec<(Option<ExecutionStatus>, ExecutionStatus)> {
    history.iter().map(|h| (h.from, h.to)).collect()
}

/// History invariants: starts from nothing, every entry follows the last one by the
/// transition table, time never goes back, and the record agrees with it.
#[track_caller]
pub fn assert_history_consistent(execution: &Execution, history: &[HistoryEntry]) {
    let id = &execution.id;
    assert!(!history.is_empty(), "{id} has a history");
    assert_eq!(
        history[0].from, None,
        "{id}: the first entry starts from nothing"
    );
    for pair in history.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(
            after.from,
            Some(before.to),
            "{id}: entries chain: {history:?}"
        );
        assert!(
            before.to.can_become(after.to),
            "{id}: {} -> {} breaks the table",
            before.to,
            after.to
        );
        assert!(after.at >= before.at, "{id}: history is in time order");
    }
    assert_eq!(
        execution.history_len as usize,
        history.len(),
        "{id}: history_len matches: {history:?}"
    );
    assert_eq!(
        history.last().map(|h| h.to),
        Some(execution.status),
        "{id}: the last entry is the status"
    );
}

#[track_caller]
pub fn expect_invalid_transition<T: Debug>(
    result: Result<T, EngineError>,
    from: ExecutionStatus,
    to: ExecutionStatus,
) {
    match result {
        Err(EngineError::InvalidTransition(t)) => {
            assert_eq!((t.from, t.to), (from, to), "the refused transition")
        }
        other => panic!("expected an invalid transition {from} -> {to}, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_conflict<T: Debug>(result: Result<T, EngineError>, expected_code: &str) {
    match result {
        Err(EngineError::Conflict { code, .. }) => assert_eq!(code.code(), expected_code),
        other => panic!("expected a {expected_code} conflict, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_validation<T: Debug>(result: Result<T, EngineError>) -> ValidationErrors {
    match result {
        Err(EngineError::Validation(errors)) => errors,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_not_found<T: Debug>(result: Result<T, EngineError>) {
    match result {
        Err(EngineError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

fn fields(errors: &ValidationErrors) -> Vec<&str> {
    errors.errors.iter().map(|e| e.field.as_str()).collect()
}

fn ids(executions: &[Execution]) -> Vec<String> {
    executions.iter().map(|e| e.id.clone()).collect()
}

fn id_set<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    ids.into_iter().map(str::to_owned).collect()
}

fn counts(total: u32, f: impl FnOnce(&mut ChildCounts)) -> ChildCounts {
    let mut counts = ChildCounts {
        total,
        ..ChildCounts::default()
    };
    f(&mut counts);
    counts
}

const UNKNOWN_CASE: &str = "tc_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const UNKNOWN_EXECUTION: &str = "ex_01ARZ3NDEKTSV4RRFFQ69G5FAV";

// ===== catalog ============================================================================

/// Test cases and suites: create, get, replace (version bump, stale version refused), delete,
/// and owner isolation.
pub async fn catalog_round_trip(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let alice = h.user.clone();
    let mallory = fresh_user();
    let admin = Caller::admin("conformance-admin");

    let mut input = case_input("round trip", &["smoke"], external_steps(2));
    input.description = Some("the first version".into());
    input
        .variables
        .insert("base_url".into(), "http://127.0.0.1:1".into());
    input.timeout_s = Some(120);
    let created = h
        .engine
        .create_entry::<TestCase>(&alice, input)
        .await
        .expect("create");
    assert!(created.id.starts_with("tc_"), "{}", created.id);
    assert_eq!(created.owner, h.owner());
    assert_eq!(created.version, 1);
    assert_eq!((created.created_at, created.updated_at), (h.now(), h.now()));
    assert_eq!(
        h.engine
            .get_entry::<TestCase>(&alice, &created.id)
            .await
            .expect("get"),
        created
    );
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(created.clone())
    );

    // A replacement bumps the version and keeps id, owner and creation time.
    h.advance_secs(1);
    let replaced = h
        .engine
        .replace_entry::<TestCase>(
            &alice,
            &created.id,
            case_input("round trip v2", &["nightly"], external_steps(3)),
        )
        .await
        .expect("replace");
    assert_eq!(replaced.version, 2);
    assert_eq!(
        (replaced.id.as_str(), replaced.owner.as_str()),
        (created.id.as_str(), h.owner())
    );
    assert_eq!(replaced.created_at, created.created_at);
    assert_eq!(replaced.updated_at, h.now());
    assert_eq!(replaced.steps.len(), 3);
    assert_eq!(replaced.description, None, "a replacement is whole");
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(replaced.clone())
    );

    // A stale expected version is a conflict and changes nothing.
    let mut stale = replaced.clone();
    stale.name = "stale writer".into();
    stale.version = 2;
    match h.store.replace_entry::<TestCase>(&stale, 1).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale replace must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(replaced.clone())
    );
    // The right expected version wins.
    let mut v3 = replaced.clone();
    v3.name = "round trip v3".into();
    v3.version = 3;
    h.store
        .replace_entry::<TestCase>(&v3, 2)
        .await
        .expect("replace at the current version");
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(v3.clone())
    );
    // Replacing what does not exist is a conflict too, and creates nothing.
    let mut ghost = v3.clone();
    ghost.id = format!("tc_{}", ulid::Ulid::new());
    match h.store.replace_entry::<TestCase>(&ghost, 3).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("replacing a missing case must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&ghost.id).await.unwrap(),
        None
    );
    // Inserting an id that exists is a conflict and keeps the stored case.
    let mut clash = v3.clone();
    clash.name = "clash".into();
    match h.store.insert_entry::<TestCase>(&clash).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("inserting an existing id must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(v3.clone())
    );

    // Another user cannot see, replace or delete it; an administrator can see it.
    expect_not_found(h.engine.get_entry::<TestCase>(&mallory, &created.id).await);
    expect_not_found(
        h.engine
            .replace_entry::<TestCase>(
                &mallory,
                &created.id,
                case_input("taken", &[], external_steps(1)),
            )
            .await,
    );
    expect_not_found(
        h.engine
            .delete_entry::<TestCase>(&mallory, &created.id)
            .await,
    );
    assert_eq!(
        h.engine
            .get_entry::<TestCase>(&admin, &created.id)
            .await
            .expect("admin get"),
        v3
    );

    // Delete.
    h.engine
        .delete_entry::<TestCase>(&alice, &created.id)
        .await
        .expect("delete");
    expect_not_found(h.engine.get_entry::<TestCase>(&alice, &created.id).await);
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        None
    );
    assert!(
        !h.store.delete_entry::<TestCase>(&created.id).await.unwrap(),
        "a second delete finds nothing"
    );
    expect_not_found(h.engine.delete_entry::<TestCase>(&alice, &created.id).await);

    // Suites, the same way.
    let a = h.external_case("suite member a", 1).await;
    let b = h.external_case("suite member b", 1).await;
    let input = TestSuiteInput {
        name: "round trip suite".into(),
        description: Some("d".into()),
        test_case_ids: vec![a.id.clone(), b.id.clone()],
        mode: SuiteMode::Sequential,
        max_parallel: None,
        fail_fast: true,
        tags: vec!["nightly".into()],
    };
    let suite = h
        .engine
        .create_entry::<TestSuite>(&alice, input.clone())
        .await
        .expect("create suite");
    assert!(suite.id.starts_with("ts_"));
    assert_eq!((suite.version, suite.owner.as_str()), (1, h.owner()));
    assert_eq!(suite.max_parallel, DEFAULT_MAX_PARALLEL);
    assert_eq!(suite.test_case_ids, vec![a.id.clone(), b.id.clone()]);
    assert_eq!(
        h.engine
            .get_entry::<TestSuite>(&alice, &suite.id)
            .await
            .expect("get suite"),
        suite
    );
    h.advance_secs(1);
    let replaced_suite = h
        .engine
        .replace_entry::<TestSuite>(
            &alice,
            &suite.id,
            TestSuiteInput {
                mode: SuiteMode::Parallel,
                max_parallel: Some(3),
                test_case_ids: vec![b.id.clone()],
                ..input.clone()
            },
        )
        .await
        .expect("replace suite");
    assert_eq!(replaced_suite.version, 2);
    assert_eq!(replaced_suite.created_at, suite.created_at);
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        Some(replaced_suite.clone())
    );
    let mut stale_suite = replaced_suite.clone();
    stale_suite.version = 2;
    stale_suite.name = "stale".into();
    match h.store.replace_entry::<TestSuite>(&stale_suite, 1).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale suite replace must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        Some(replaced_suite.clone())
    );
    match h.store.insert_entry::<TestSuite>(&replaced_suite).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("inserting an existing suite id must be a conflict, got {other:?}"),
    }
    // Members must exist and be visible.
    let errors = expect_validation(
        h.engine
            .create_entry::<TestSuite>(
                &alice,
                TestSuiteInput {
                    test_case_ids: vec![a.id.clone(), UNKNOWN_CASE.into()],
                    ..input.clone()
                },
            )
            .await,
    );
    assert_eq!(fields(&errors), vec!["test_case_ids[1]"]);
    let errors = expect_validation(
        h.engine
            .create_entry::<TestSuite>(&mallory, input.clone())
            .await,
    );
    assert_eq!(
        fields(&errors),
        vec!["test_case_ids[0]", "test_case_ids[1]"]
    );
    expect_not_found(h.engine.get_entry::<TestSuite>(&mallory, &suite.id).await);
    expect_not_found(
        h.engine
            .delete_entry::<TestSuite>(&mallory, &suite.id)
            .await,
    );
    assert_eq!(
        h.engine
            .get_entry::<TestSuite>(&admin, &suite.id)
            .await
            .expect("admin"),
        replaced_suite
    );
    h.engine
        .delete_entry::<TestSuite>(&alice, &suite.id)
        .await
        .expect("delete suite");
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        None
    );
    assert!(!h.store.delete_entry::<TestSuite>(&suite.id).await.unwrap());
    expect_not_found(h.engine.get_entry::<TestSuite>(&alice, &suite.id).await);
}

/// Listing test cases and suites: tag filter, cursor paging (each seen once) and owners.
pub async fn catalog_listing(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let alice = h.user.clone();
    let bob = fresh_user();
    let admin = Caller::admin("conformance-admin");
    let marker = fresh_tag();

    let mut all = BTreeSet::new();
    let mut even = BTreeSet::new();
    for i in 0..7 {
        let tags: Vec<&str> = if i % 2 == 0 {
            vec![marker.as_str(), "even"]
        } else {
            vec![marker.as_str()]
        };
        let case = h
            .create_case(&alice, &format!("listing {i}"), &tags, external_steps(1))
            .await;
        all.insert(case.id.clone());
        if i % 2 == 0 {
            even.insert(case.id);
        }
    }
    let listed = h.list_cases(&alice, None, 3).await;
    let listed_ids: Vec<String> = listed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(listed_ids.len(), 7, "every case once: {listed_ids:?}");
    assert_eq!(listed_ids.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert!(listed.iter().all(|c| c.owner == h.owner()));

    let tagged = h.list_cases(&alice, Some("even"), 3).await;
    let tagged_ids: Vec<String> = tagged.iter().map(|c| c.id.clone()).collect();
    assert_eq!(tagged_ids.len(), 4, "{tagged_ids:?}");
    assert_eq!(tagged_ids.into_iter().collect::<BTreeSet<_>>(), even);
    assert!(
        h.list_cases(&alice, Some("no-such-tag"), 3)
            .await
            .is_empty()
    );

    // Bob sees only his own; an administrator sees everyone's.
    let bobs = h
        .create_case(&bob, "bob's", &[&marker, "even"], external_steps(1))
        .await;
    let seen_by_bob: Vec<String> = h
        .list_cases(&bob, None, 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_bob, vec![bobs.id.clone()]);
    let seen_by_bob: Vec<String> = h
        .list_cases(&bob, Some("even"), 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_bob, vec![bobs.id.clone()]);
    let seen_by_admin: Vec<String> = h
        .list_cases(&admin, Some(&marker), 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_admin.len(), 8, "{seen_by_admin:?}");
    let mut everyone = all.clone();
    everyone.insert(bobs.id.clone());
    assert_eq!(seen_by_admin.into_iter().collect::<BTreeSet<_>>(), everyone);

    // A deleted case leaves the listing.
    let gone = all.iter().next().cloned().expect("seven cases");
    h.engine
        .delete_entry::<TestCase>(&alice, &gone)
        .await
        .expect("delete");
    let after_delete: BTreeSet<String> = h
        .list_cases(&alice, None, 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    all.remove(&gone);
    assert_eq!(after_delete, all);

    // Suites.
    let members: Vec<TestCase> = h.list_cases(&alice, None, 10).await;
    let mut suites = BTreeSet::new();
    for (i, member) in members.iter().take(3).enumerate() {
        let input = TestSuiteInput {
            name: format!("listing suite {i}"),
            description: None,
            test_case_ids: vec![member.id.clone()],
            mode: SuiteMode::Parallel,
            max_parallel: None,
            fail_fast: false,
            tags: vec![marker.clone()],
        };
        suites.insert(
            h.engine
                .create_entry::<TestSuite>(&alice, input)
                .await
                .expect("suite")
                .id,
        );
    }
    let listed: Vec<String> = h
        .list_suites(&alice, None, 2)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), suites);
    assert_eq!(h.list_suites(&alice, Some(&marker), 2).await.len(), 3);
    assert!(h.list_suites(&bob, None, 2).await.is_empty());
    let by_admin: BTreeSet<String> = h
        .list_suites(&admin, Some(&marker), 2)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(by_admin, suites);
}

// ===== starting ===========================================================================

/// Starting a case: a queued trace, one history entry, the work item (built-in only), the
/// event, a definition snapshot.
pub async fn start_case(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let admin = Caller::admin("conformance-admin");
    let mut events = h.bus.subscribe();
    let case = h
        .create_case(&h.user, "start me", &["smoke"], external_steps(3))
        .await;

    let started = h
        .engine
        .start_case(
            &h.user,
            &case.id,
            request(
                ExecutionConfig {
                    tags: vec!["ci".into()],
                    environment: Some("staging".into()),
                    ..ExecutionConfig::default()
                },
                None,
            ),
        )
        .await
        .expect("start");
    assert!(started.created);
    let e = started.execution;
    let now = h.now();
    assert!(e.id.starts_with("ex_"), "{}", e.id);
    assert_eq!(e.status, Queued);
    assert_eq!(e.kind, ExecutionKind::Case);
    assert_eq!(e.test_case_id.as_deref(), Some(case.id.as_str()));
    assert_eq!(
        (e.test_suite_id.as_deref(), e.parent_id.as_deref()),
        (None, None)
    );
    assert_eq!(e.owner, h.owner());
    assert_eq!(e.name, "start me");
    assert_eq!(
        (e.attempt, e.retry_of.as_deref(), e.retried_by.as_deref()),
        (1, None, None)
    );
    assert_eq!(e.runner, Some(RunnerKind::External));
    assert_eq!(e.priority, Priority::Normal);
    assert_eq!((e.timeout_s, e.max_retries), (DEFAULT_TIMEOUT_S, 0));
    assert_eq!(e.config.environment.as_deref(), Some("staging"));
    assert_eq!(e.tags, vec!["ci".to_owned(), "smoke".to_owned()]);
    assert_eq!((e.created_at, e.queued_at), (now, Some(now)));
    assert_eq!(
        (e.started_at, e.finished_at, e.duration_ms),
        (None, None, None)
    );
    assert_eq!(
        e.deadline_at,
        Some(now.plus_millis(DEFAULT_TIMEOUT_S as i64 * 1000))
    );
    assert_eq!(e.progress, Progress::new(3));
    assert_eq!(e.storage, Some(StepStorage::Inline));
    let names: Vec<&str> = e.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["step 0", "step 1", "step 2"]);
    assert!(e.steps.iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!((e.suite.as_ref(), e.slot), (None, None));
    // The store keeps exactly what the start planned.
    assert_eq!(h.execution(&e.id).await, e);
    assert_eq!(
        h.engine.get_execution(&h.user, &e.id).await.expect("get"),
        e
    );

    assert_eq!(
        h.history(&e.id).await,
        vec![HistoryEntry {
            from: None,
            to: Queued,
            at: now,
            actor: h.actor(),
            reason: Some("started".into()),
        }]
    );
    assert!(
        h.drain_queue().is_empty(),
        "external executions are not enqueued"
    );
    let published = drain_events(&mut events);
    assert_eq!(published.len(), 1, "{published:?}");
    let queued = &published[0];
    assert_eq!(
        (queued.kind, queued.status),
        (EventKind::ExecutionQueued, Queued)
    );
    assert_eq!(queued.execution_id, e.id);
    assert_eq!(queued.owner, h.owner());
    assert_eq!(queued.test_case_id.as_deref(), Some(case.id.as_str()));
    assert_eq!(
        (queued.attempt, queued.execution_kind),
        (1, ExecutionKind::Case)
    );

    // The definition is a snapshot: replacing the case later does not change it.
    assert_eq!(
        h.store.get_definition(&e.id).await.unwrap(),
        Some(case.clone())
    );
    h.engine
        .replace_entry::<TestCase>(
            &h.user,
            &case.id,
            case_input("changed", &[], external_steps(5)),
        )
        .await
        .expect("replace");
    assert_eq!(
        h.store.get_definition(&e.id).await.unwrap(),
        Some(case.clone())
    );
    assert_eq!(
        h.store.get_definition(UNKNOWN_EXECUTION).await.unwrap(),
        None
    );

    // A built-in case is enqueued, with its priority; config overrides the timeout.
    h.advance_secs(1);
    let builtin = h.http_case("built-in", 2).await;
    let b = h
        .start_with(
            &builtin,
            ExecutionConfig {
                priority: Some(Priority::High),
                timeout_s: Some(60),
                ..ExecutionConfig::default()
            },
        )
        .await;
    assert_eq!(
        (b.runner, b.priority, b.timeout_s),
        (Some(RunnerKind::Builtin), Priority::High, 60)
    );
    assert_eq!(b.deadline_at, Some(h.now().plus_millis(60_000)));
    assert_eq!(
        h.drain_queue(),
        vec![WorkItem {
            execution_id: b.id.clone(),
            priority: Priority::High,
        }]
    );
    assert_eq!(
        kinds_for(&drain_events(&mut events), &b.id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );

    // The case's own timeout applies when the config has none.
    let mut slow = case_input("slow", &[], external_steps(1));
    slow.timeout_s = Some(90);
    let slow = h
        .engine
        .create_entry::<TestCase>(&h.user, slow)
        .await
        .expect("create");
    let s = h.start(&slow).await;
    assert_eq!(s.timeout_s, 90);
    assert_eq!(s.deadline_at, Some(h.now().plus_millis(90_000)));
    drain_events(&mut events);

    // Unknown or invisible cases start nothing.
    expect_not_found(
        h.engine
            .start_case(&h.user, UNKNOWN_CASE, StartRequest::default())
            .await,
    );
    expect_not_found(
        h.engine
            .start_case(&bob, &case.id, StartRequest::default())
            .await,
    );
    assert!(h.drain_queue().is_empty());
    assert!(drain_events(&mut events).is_empty());

    // Executions are private to their owner.
    expect_not_found(h.engine.get_execution(&bob, &e.id).await);
    expect_not_found(h.engine.history(&bob, &e.id).await);
    expect_not_found(h.engine.list_steps(&bob, &e.id, None, 10).await);
    assert_eq!(
        h.engine
            .get_execution(&admin, &e.id)
            .await
            .expect("admin")
            .id,
        e.id
    );
    assert_eq!(
        h.store.get_execution(UNKNOWN_EXECUTION).await.unwrap(),
        None
    );
    assert!(h.store.history(UNKNOWN_EXECUTION).await.unwrap().is_empty());
    h.check_histories().await;
}

// ===== steps ==============================================================================

/// Step reports: the first one starts the execution, progress arithmetic, redeliveries are
/// no-ops, terminal steps are final, bad batches change nothing.
pub async fn step_reports(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let case = h.external_case("steps", 4).await;
    let id = h.start(&case).await.id;
    let mut events = h.bus.subscribe();

    h.advance_secs(1);
    let t0 = h.now();
    let first = StepReport {
        started_at: Some(t0),
        finished_at: Some(t0.plus_millis(250)),
        ..report(0, StepStatus::Passed)
    };
    let e = h
        .engine
        .report_steps(&h.user, &id, vec![first.clone()])
        .await
        .expect("report");
    assert_eq!(e.status, Running);
    assert_eq!(e.started_at, Some(t0));
    assert_eq!(
        (
            e.progress.total,
            e.progress.completed,
            e.progress.passed,
            e.progress.percent
        ),
        (4, 1, 1, 25.0)
    );
    assert_eq!(e.steps[0].status, StepStatus::Passed);
    assert_eq!(e.steps[0].duration_ms, Some(250));
    assert_eq!(
        (e.steps[0].started_at, e.steps[0].finished_at),
        (Some(t0), Some(t0.plus_millis(250)))
    );
    assert_eq!(h.execution(&id).await, e);
    let history = h.history(&id).await;
    assert_eq!(
        transitions(&history),
        vec![(None, Queued), (Some(Queued), Running)]
    );
    assert_eq!(history[1].actor, h.actor());
    assert_eq!(history[1].reason.as_deref(), Some("first step reported"));
    assert_eq!(history[1].at, t0);
    assert_eq!(
        kinds_for(&drain_events(&mut events), &id),
        vec![(EventKind::ExecutionStarted, Running)]
    );

    // A failed step: counted, and announced.
    let failed = StepReport {
        message: Some("expected 200, got 503".into()),
        ..report(1, StepStatus::Failed)
    };
    let e = h
        .engine
        .report_steps(&h.user, &id, vec![failed])
        .await
        .expect("report");
    assert_eq!(e.status, Running);
    assert_eq!(
        (
            e.progress.completed,
            e.progress.passed,
            e.progress.failed,
            e.progress.percent
        ),
        (2, 1, 1, 50.0)
    );
    let published = drain_events(&mut events);
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].kind, EventKind::StepFailed);
    assert_eq!(published[0].step_index, Some(1));
    assert_eq!(
        published[0].message.as_deref(),
        Some("expected 200, got 503")
    );

    // A redelivery changes nothing.
    let before = h.execution(&id).await;
    let history_before = h.history(&id).await;
    let again = h
        .engine
        .report_steps(&h.user, &id, vec![first.clone()])
        .await
        .expect("redelivery");
    assert_eq!(again.progress, before.progress);
    let again = h
        .report(&id, &[(1, StepStatus::Failed)])
        .await
        .expect("redelivery");
    assert_eq!(again.progress, before.progress);
    assert_eq!(h.execution(&id).await, before);
    assert_eq!(h.history(&id).await, history_before);
    assert!(
        drain_events(&mut events).is_empty(),
        "a redelivery announces nothing"
    );

    // A terminal step cannot change.
    expect_conflict(
        h.report(&id, &[(0, StepStatus::Failed)]).await,
        "step_conflict",
    );
    expect_conflict(
        h.report(&id, &[(1, StepStatus::Passed)]).await,
        "step_conflict",
    );
    // An index out of range, or a step set back to pending, is invalid.
    let errors = expect_validation(h.report(&id, &[(4, StepStatus::Passed)]).await);
    assert_eq!(fields(&errors), vec!["steps[0].index"]);
    let errors = expect_validation(h.report(&id, &[(2, StepStatus::Pending)]).await);
    assert_eq!(fields(&errors), vec!["steps[0].status"]);
    // A batch with one bad entry changes nothing at all.
    let errors = expect_validation(
        h.report(
            &id,
            &[
                (2, StepStatus::Passed),
                (3, StepStatus::Passed),
                (7, StepStatus::Passed),
            ],
        )
        .await,
    );
    assert_eq!(fields(&errors), vec!["steps[2].index"]);
    expect_conflict(
        h.report(&id, &[(2, StepStatus::Passed), (0, StepStatus::Failed)])
            .await,
        "step_conflict",
    );
    expect_validation(h.engine.report_steps(&h.user, &id, vec![]).await);
    expect_validation(
        h.engine
            .report_steps(
                &h.user,
                &id,
                (0..501).map(|_| report(2, StepStatus::Passed)).collect(),
            )
            .await,
    );
    assert_eq!(
        h.execution(&id).await,
        before,
        "refused reports change nothing"
    );
    assert_eq!(h.history(&id).await, history_before);
    assert!(drain_events(&mut events).is_empty());

    // A running step is not completed yet; its terminal report counts once.
    let e = h
        .report(&id, &[(2, StepStatus::Running)])
        .await
        .expect("running");
    assert_eq!(e.steps[2].status, StepStatus::Running);
    assert_eq!(e.progress.completed, 2);
    // The same index twice in one batch counts once; long texts are capped.
    let long = StepReport {
        message: Some("é".repeat(MAX_MESSAGE_BYTES)),
        output: Some("x".repeat(3 * MAX_OUTPUT_BYTES)),
        ..report(2, StepStatus::Passed)
    };
    let e = h
        .engine
        .report_steps(
            &h.user,
            &id,
            vec![long.clone(), long, report(3, StepStatus::Passed)],
        )
        .await
        .expect("batch");
    assert_eq!(
        (
            e.progress.completed,
            e.progress.passed,
            e.progress.failed,
            e.progress.percent
        ),
        (4, 3, 1, 100.0)
    );
    assert_eq!(
        e.status, Running,
        "reports never finish an execution by themselves"
    );
    let stored = h.execution(&id).await;
    assert_eq!(stored, e);
    let capped = &stored.steps[2];
    assert!(capped.truncated);
    assert_eq!(
        capped.message.as_ref().map(String::len),
        Some(MAX_MESSAGE_BYTES)
    );
    assert_eq!(
        capped.output.as_ref().map(String::len),
        Some(MAX_OUTPUT_BYTES)
    );
    assert_eq!(
        transitions(&h.history(&id).await).len(),
        2,
        "steps add no history"
    );

    // Nobody else may report, and unknown executions are not found.
    expect_not_found(
        h.engine
            .report_steps(&bob, &id, vec![report(0, StepStatus::Passed)])
            .await,
    );
    expect_not_found(
        h.report(UNKNOWN_EXECUTION, &[(0, StepStatus::Passed)])
            .await,
    );

    // Once the execution is terminal, reports are refused.
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(done.status, Failed);
    let before = h.execution(&id).await;
    expect_invalid_transition(
        h.report(&id, &[(0, StepStatus::Passed)]).await,
        Failed,
        Running,
    );
    expect_invalid_transition(
        h.report(&id, &[(3, StepStatus::Passed)]).await,
        Failed,
        Running,
    );
    // Finished comes first: even a report that is also invalid gets the 409.
    expect_invalid_transition(
        h.report(&id, &[(9_999, StepStatus::Passed)]).await,
        Failed,
        Running,
    );
    assert_eq!(h.execution(&id).await, before);
    h.check_histories().await;
}

/// Below 50 steps a trace keeps its steps inline, from 50 on as separate records; paging
/// through steps works the same either way.
pub async fn step_partitioning(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);

    // 49 steps: inline.
    let case = h.external_case("forty-nine", 49).await;
    let inline = h.start(&case).await;
    assert_eq!(inline.storage, Some(StepStorage::Inline));
    assert_eq!(inline.steps.len(), 49);
    let stored = h.execution(&inline.id).await;
    assert_eq!(stored.steps.len(), 49, "an inline trace holds its steps");
    h.report(
        &inline.id,
        &[(0, StepStatus::Passed), (48, StepStatus::Failed)],
    )
    .await
    .expect("report");
    let page = h
        .engine
        .list_steps(&h.user, &inline.id, None, 20)
        .await
        .expect("page");
    assert_eq!(page.items.len(), 20);
    assert_eq!(page.next_cursor.as_deref(), Some("19"));
    let steps = h.all_steps(&inline.id, 20).await;
    assert_eq!(steps.len(), 49);
    assert_eq!(steps[0].status, StepStatus::Passed);
    assert_eq!(steps[48].status, StepStatus::Failed);
    assert!(steps[1..48].iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!(
        steps,
        h.execution(&inline.id).await.steps,
        "list_steps agrees with the record"
    );

    // 50 steps: partitioned.
    let case = h.external_case("fifty", 50).await;
    let part = h.start(&case).await;
    assert_eq!(part.storage, Some(StepStorage::Partitioned));
    assert!(
        part.steps.is_empty(),
        "a partitioned trace does not hold its steps"
    );
    assert_eq!(part.progress, Progress::new(50));
    let stored = h.execution(&part.id).await;
    assert_eq!(stored, part);
    assert!(stored.steps.is_empty());
    let pending = h.all_steps(&part.id, 20).await;
    assert_eq!(pending.len(), 50);
    for step in &pending {
        assert_eq!(
            *step,
            StepResult::pending(step.index, &format!("step {}", step.index))
        );
    }

    let boom = StepReport {
        message: Some("boom".into()),
        ..report(25, StepStatus::Failed)
    };
    let e = h
        .engine
        .report_steps(
            &h.user,
            &part.id,
            vec![
                report(0, StepStatus::Passed),
                boom,
                report(49, StepStatus::Passed),
            ],
        )
        .await
        .expect("report");
    assert!(e.steps.is_empty());
    assert_eq!(e.status, Running);
    assert_eq!(
        (e.progress.completed, e.progress.passed, e.progress.failed),
        (3, 2, 1)
    );
    assert_eq!(e.progress.percent, 6.0);
    assert!(h.execution(&part.id).await.steps.is_empty());

    // Paging: 20, 20, 10, with the last index as the cursor.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .engine
            .list_steps(&h.user, &part.id, after, 20)
            .await
            .expect("page");
        pages.push((page.items.len(), page.next_cursor.clone()));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor.parse().expect("index cursor")),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![(20, Some("19".into())), (20, Some("39".into())), (10, None)]
    );
    let steps = h.all_steps(&part.id, 20).await;
    assert_eq!(steps.len(), 50);
    for step in &steps {
        let expected = match step.index {
            0 | 49 => StepStatus::Passed,
            25 => StepStatus::Failed,
            _ => StepStatus::Pending,
        };
        assert_eq!(step.status, expected, "step {}", step.index);
        assert_eq!(step.name, format!("step {}", step.index));
    }
    assert_eq!(steps[25].message.as_deref(), Some("boom"));
    // The store's own paging from an index on.
    let tail = h.store.list_steps(&part.id, Some(47), 20).await.unwrap();
    assert_eq!(
        tail.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![48, 49]
    );
    assert!(
        h.store
            .list_steps(&part.id, Some(49), 20)
            .await
            .unwrap()
            .is_empty()
    );
    let head = h.store.list_steps(&part.id, None, 3).await.unwrap();
    assert_eq!(
        head.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        h.store
            .list_steps(UNKNOWN_EXECUTION, None, 3)
            .await
            .unwrap()
            .is_empty()
    );

    // Redeliveries and conflicts behave as inline.
    let before = h.execution(&part.id).await;
    h.report(
        &part.id,
        &[(25, StepStatus::Failed), (49, StepStatus::Passed)],
    )
    .await
    .expect("redelivery");
    expect_conflict(
        h.report(
            &part.id,
            &[(1, StepStatus::Passed), (25, StepStatus::Passed)],
        )
        .await,
        "step_conflict",
    );
    expect_validation(
        h.report(
            &part.id,
            &[(1, StepStatus::Passed), (50, StepStatus::Passed)],
        )
        .await,
    );
    assert_eq!(h.execution(&part.id).await, before);
    assert_eq!(
        h.all_steps(&part.id, 50).await,
        steps,
        "refused and repeated reports change no step"
    );

    // Completing skips every unreported partitioned step.
    let done = h
        .engine
        .complete(&h.user, &part.id)
        .await
        .expect("complete");
    assert_eq!(done.status, Failed);
    assert_eq!(
        (
            done.progress.completed,
            done.progress.passed,
            done.progress.failed,
            done.progress.skipped
        ),
        (50, 2, 1, 47)
    );
    let steps = h.all_steps(&part.id, 20).await;
    assert_eq!(
        steps
            .iter()
            .filter(|s| s.status == StepStatus::Skipped)
            .count(),
        47
    );
    assert!(
        steps
            .iter()
            .filter(|s| s.status == StepStatus::Skipped)
            .all(|s| s.finished_at == Some(h.now()))
    );
    h.check_histories().await;
}

/// The largest case: 10,000 partitioned steps reported 500 at a time.
pub async fn ten_thousand_steps(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("ten thousand", MAX_STEPS).await;
    let e = h.start(&case).await;
    assert_eq!(e.storage, Some(StepStorage::Partitioned));
    assert_eq!(e.progress.total, MAX_STEPS as u32);
    assert!(h.execution(&e.id).await.steps.is_empty());

    for batch in 0..(MAX_STEPS / 500) as u32 {
        let reports = (batch * 500..(batch + 1) * 500)
            .map(|i| report(i, StepStatus::Passed))
            .collect();
        let updated = h
            .engine
            .report_steps(&h.user, &e.id, reports)
            .await
            .expect("batch");
        assert_eq!(updated.progress.completed, (batch + 1) * 500);
        assert_eq!(updated.progress.passed, (batch + 1) * 500);
    }
    let done = h.engine.complete(&h.user, &e.id).await.expect("complete");
    assert_eq!(done.status, Passed);
    assert_eq!(
        done.progress,
        Progress {
            total: 10_000,
            completed: 10_000,
            passed: 10_000,
            failed: 0,
            skipped: 0,
            errored: 0,
            percent: 100.0,
        }
    );
    assert_eq!(h.execution(&e.id).await.progress, done.progress);
    let steps = h.all_steps(&e.id, 1000).await;
    assert_eq!(steps.len(), MAX_STEPS);
    assert!(steps.iter().all(|s| s.status == StepStatus::Passed));
    assert_eq!(
        transitions(&h.history(&e.id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Passed)
        ]
    );
}

// ===== complete and cancel ================================================================

/// Completing: unreported steps are skipped; passed unless a step failed or errored.
pub async fn complete(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let case = h.external_case("complete", 3).await;

    // One passed, two never reported: passed, with two skipped.
    let id = h.start(&case).await.id;
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    h.advance_secs(2);
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(done.status, Passed);
    assert_eq!(
        (
            done.progress.completed,
            done.progress.passed,
            done.progress.skipped,
            done.progress.percent
        ),
        (3, 1, 2, 100.0)
    );
    let statuses: Vec<StepStatus> = done.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![StepStatus::Passed, StepStatus::Skipped, StepStatus::Skipped]
    );
    assert_eq!(done.finished_at, Some(h.now()));
    assert_eq!(done.duration_ms, Some(2000));
    assert_eq!(done.deadline_at, None);
    assert_eq!(h.execution(&id).await, done);
    let history = h.history(&id).await;
    let last = history.last().expect("history");
    assert_eq!((last.from, last.to), (Some(Running), Passed));
    assert_eq!(
        (last.actor.as_str(), last.reason.as_deref()),
        (h.actor().as_str(), Some("completed"))
    );
    let published = kinds_for(&drain_events(&mut events), &id);
    assert_eq!(
        published,
        vec![
            (EventKind::ExecutionQueued, Queued),
            (EventKind::ExecutionStarted, Running),
            (EventKind::ExecutionFinished, Passed)
        ]
    );
    // Completing twice is refused.
    expect_invalid_transition(h.engine.complete(&h.user, &id).await, Passed, Passed);

    // A failed step fails it.
    let id = h.start(&case).await.id;
    h.report(&id, &[(0, StepStatus::Passed), (1, StepStatus::Failed)])
        .await
        .expect("report");
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(done.status, Failed);
    assert_eq!(
        (
            done.progress.passed,
            done.progress.failed,
            done.progress.skipped
        ),
        (1, 1, 1)
    );

    // An errored step fails it too; a skipped one does not.
    let id = h.start(&case).await.id;
    h.report(&id, &[(0, StepStatus::Error)])
        .await
        .expect("report");
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!((done.status, done.progress.errored), (Failed, 1));
    let id = h.start(&case).await.id;
    h.report(
        &id,
        &[
            (0, StepStatus::Skipped),
            (1, StepStatus::Passed),
            (2, StepStatus::Skipped),
        ],
    )
    .await
    .expect("report");
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(
        (done.status, done.progress.skipped, done.progress.passed),
        (Passed, 2, 1)
    );

    // Completing a queued execution runs it through running; every step is skipped.
    let id = h.start(&case).await.id;
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(
        (done.status, done.progress.skipped, done.progress.completed),
        (Passed, 3, 3)
    );
    assert_eq!(
        transitions(&h.history(&id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Passed)
        ]
    );

    // Partitioned: the unreported steps are skipped as records.
    let big = h.external_case("complete partitioned", 60).await;
    let id = h.start(&big).await.id;
    let reports: Vec<(u32, StepStatus)> = (0..10).map(|i| (i * 3, StepStatus::Passed)).collect();
    h.report(&id, &reports).await.expect("report");
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(done.status, Passed);
    assert_eq!(
        (
            done.progress.completed,
            done.progress.passed,
            done.progress.skipped
        ),
        (60, 10, 50)
    );
    let steps = h.all_steps(&id, 25).await;
    for step in steps {
        let expected = if step.index % 3 == 0 && step.index < 30 {
            StepStatus::Passed
        } else {
            StepStatus::Skipped
        };
        assert_eq!(step.status, expected, "step {}", step.index);
    }
    expect_not_found(h.engine.complete(&h.user, UNKNOWN_EXECUTION).await);
    h.check_histories().await;
}

/// Cancelling: one history entry; a second cancel is refused; a suite's unfinished children
/// are cancelled by the engine while finished ones keep their status.
pub async fn cancel(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let mut events = h.bus.subscribe();
    let case = h.external_case("cancel", 2).await;

    let id = h.start(&case).await.id;
    expect_not_found(h.engine.cancel(&bob, &id, None).await);
    h.advance_secs(1);
    let cancelled = h
        .engine
        .cancel(&h.user, &id, Some("no longer needed".into()))
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, Cancelled);
    assert_eq!(cancelled.finished_at, Some(h.now()));
    assert_eq!(cancelled.deadline_at, None);
    assert_eq!(h.execution(&id).await, cancelled);
    let history = h.history(&id).await;
    assert_eq!(
        transitions(&history),
        vec![(None, Queued), (Some(Queued), Cancelled)]
    );
    assert_eq!(history[1].actor, h.actor());
    assert_eq!(history[1].reason.as_deref(), Some("no longer needed"));
    assert_eq!(history[1].at, h.now());
    assert_eq!(
        kinds_for(&drain_events(&mut events), &id),
        vec![
            (EventKind::ExecutionQueued, Queued),
            (EventKind::ExecutionFinished, Cancelled)
        ]
    );
    expect_invalid_transition(
        h.engine.cancel(&h.user, &id, None).await,
        Cancelled,
        Cancelled,
    );
    expect_invalid_transition(
        h.report(&id, &[(0, StepStatus::Passed)]).await,
        Cancelled,
        Running,
    );
    assert_eq!(h.history(&id).await, history, "refusals add no history");

    // A running execution; the default reason.
    let id = h.start(&case).await.id;
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    let cancelled = h.engine.cancel(&h.user, &id, None).await.expect("cancel");
    assert_eq!(cancelled.status, Cancelled);
    let last = h.history(&id).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.reason.as_deref()),
        (Some(Running), Cancelled, Some("cancelled"))
    );
    // A finished one cannot be cancelled.
    let id = h.start(&case).await.id;
    h.pass(&id).await;
    expect_invalid_transition(h.engine.cancel(&h.user, &id, None).await, Passed, Cancelled);

    // A running suite: 4 children, 2 at a time.
    let cases = [
        h.external_case("c0", 1).await,
        h.external_case("c1", 2).await,
        h.external_case("c2", 1).await,
        h.external_case("c3", 1).await,
    ];
    let suite = h
        .create_suite(
            &[&cases[0], &cases[1], &cases[2], &cases[3]],
            SuiteMode::Parallel,
            Some(2),
            false,
        )
        .await;
    let suite_id = h.start_suite(&suite, ExecutionConfig::default()).await.id;
    let children = ids(&h.children(&suite_id).await);
    assert_eq!(children.len(), 4);
    h.pass(&children[0]).await;
    h.report(&children[1], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    assert_eq!(h.status(&suite_id).await, Running);
    assert_eq!(
        h.counts(&suite_id).await,
        counts(4, |c| {
            c.passed = 1;
            c.running = 1;
            c.queued = 1;
            c.pending = 1;
        })
    );
    let finished_history = h.history(&children[0]).await;
    drain_events(&mut events);

    let cancelled = h
        .engine
        .cancel(&h.user, &suite_id, Some("stop".into()))
        .await
        .expect("cancel suite");
    assert_eq!(cancelled.status, Cancelled);
    let last = h.history(&suite_id).await.pop().expect("history");
    assert_eq!((last.from, last.to), (Some(Running), Cancelled));
    assert_eq!(
        (last.actor.as_str(), last.reason.as_deref()),
        (h.actor().as_str(), Some("stop"))
    );
    assert_eq!(
        h.status(&children[0]).await,
        Passed,
        "a finished child keeps its status"
    );
    assert_eq!(h.history(&children[0]).await, finished_history);
    let reason = format!("suite {suite_id} ended cancelled");
    for (child, from) in [
        (&children[1], Running),
        (&children[2], Queued),
        (&children[3], Pending),
    ] {
        assert_eq!(h.status(child).await, Cancelled, "{child}");
        let last = h.history(child).await.pop().expect("history");
        assert_eq!((last.from, last.to), (Some(from), Cancelled), "{child}");
        assert_eq!(last.actor, ENGINE_ACTOR);
        assert_eq!(last.reason.as_deref(), Some(reason.as_str()));
    }
    assert_eq!(
        h.counts(&suite_id).await,
        counts(4, |c| {
            c.passed = 1;
            c.cancelled = 3;
        })
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite_id),
        vec![(EventKind::SuiteFinished, Cancelled)]
    );
    for child in &children[1..] {
        assert_eq!(
            kinds_for(&published, child),
            vec![(EventKind::ExecutionFinished, Cancelled)]
        );
    }
    expect_invalid_transition(
        h.engine.cancel(&h.user, &suite_id, None).await,
        Cancelled,
        Cancelled,
    );

    // A queued suite (nothing started yet) cancels its queued and pending children.
    let suite = h
        .create_suite(&[&cases[0], &cases[1]], SuiteMode::Sequential, None, false)
        .await;
    let suite_id = h.start_suite(&suite, ExecutionConfig::default()).await.id;
    let cancelled = h
        .engine
        .cancel(&h.user, &suite_id, None)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, Cancelled);
    assert_eq!(
        transitions(&h.history(&suite_id).await),
        vec![(None, Queued), (Some(Queued), Cancelled)]
    );
    for child in h.children(&suite_id).await {
        assert_eq!(child.status, Cancelled);
    }
    assert_eq!(h.counts(&suite_id).await, counts(2, |c| c.cancelled = 2));
    h.check_histories().await;
}

// ===== suites =============================================================================

/// A parallel suite: every child queued at once; one failure fails the suite once all end.
pub async fn suite_parallel(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases = [
        h.external_case("p0", 2).await,
        h.external_case("p1", 2).await,
        h.external_case("p2", 2).await,
    ];
    let definition = h
        .create_suite(
            &[&cases[0], &cases[1], &cases[2]],
            SuiteMode::Parallel,
            None,
            false,
        )
        .await;
    let suite = h
        .start_suite(
            &definition,
            ExecutionConfig {
                tags: vec!["ci".into()],
                ..ExecutionConfig::default()
            },
        )
        .await;
    let suite_id = suite.id.clone();
    assert_eq!((suite.kind, suite.status), (ExecutionKind::Suite, Queued));
    assert_eq!(suite.test_suite_id.as_deref(), Some(definition.id.as_str()));
    assert_eq!(
        (suite.test_case_id.as_deref(), suite.parent_id.as_deref()),
        (None, None)
    );
    assert_eq!((suite.runner, suite.storage), (None, None));
    assert!(suite.steps.is_empty());
    assert_eq!(h.execution(&suite_id).await, suite);
    let plan = suite.suite.clone().expect("a suite plan");
    assert_eq!(
        (plan.mode, plan.concurrency, plan.fail_fast),
        (SuiteMode::Parallel, DEFAULT_MAX_PARALLEL, false)
    );
    assert_eq!(
        plan.slots
            .iter()
            .map(|s| s.test_case_id.clone())
            .collect::<Vec<_>>(),
        cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(plan.counts(), counts(3, |c| c.queued = 3));

    let children = h.children(&suite_id).await;
    assert_eq!(children.len(), 3);
    for (slot, child) in children.iter().enumerate() {
        assert_eq!(
            child.id, plan.slots[slot].execution_id,
            "children in suite order"
        );
        assert_eq!(child.slot, Some(slot as u32));
        assert_eq!(child.kind, ExecutionKind::Case);
        assert_eq!(child.status, Queued);
        assert_eq!(child.test_case_id.as_deref(), Some(cases[slot].id.as_str()));
        assert_eq!(child.test_suite_id.as_deref(), Some(definition.id.as_str()));
        assert_eq!(child.owner, h.owner());
        assert!(child.tags.contains(&"ci".to_owned()));
        let history = h.history(&child.id).await;
        assert_eq!(
            transitions(&history),
            vec![(None, Pending), (Some(Pending), Queued)]
        );
        assert_eq!(history[0].actor, h.actor());
        assert_eq!(history[1].actor, ENGINE_ACTOR);
        assert_eq!(
            h.store.get_definition(&child.id).await.unwrap(),
            Some(cases[slot].clone()),
            "each child keeps its case's definition"
        );
    }
    let history = h.history(&suite_id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(
        (history[0].actor.as_str(), history[0].reason.as_deref()),
        (h.actor().as_str(), Some("started"))
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite_id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    for child in &children {
        assert_eq!(
            kinds_for(&published, &child.id),
            vec![(EventKind::ExecutionQueued, Queued)]
        );
        assert!(
            published
                .iter()
                .filter(|e| e.execution_id == child.id)
                .all(|e| e.parent_id.as_deref() == Some(suite_id.as_str()))
        );
    }
    assert!(
        h.drain_queue().is_empty(),
        "neither external children nor suites are enqueued"
    );

    // Suites have no steps of their own.
    expect_conflict(
        h.report(&suite_id, &[(0, StepStatus::Passed)]).await,
        "not_applicable",
    );
    expect_conflict(
        h.engine.complete(&h.user, &suite_id).await,
        "not_applicable",
    );

    h.report(&children[0].id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    assert_eq!(
        h.status(&suite_id).await,
        Running,
        "a child started, so the suite runs"
    );
    let last = h.history(&suite_id).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Queued), Running, ENGINE_ACTOR)
    );
    assert_eq!(
        h.counts(&suite_id).await,
        counts(3, |c| {
            c.running = 1;
            c.queued = 2;
        })
    );
    h.pass(&children[0].id).await;
    h.fail(&children[1].id).await;
    assert_eq!(h.status(&suite_id).await, Running);
    assert_eq!(
        h.counts(&suite_id).await,
        counts(3, |c| {
            c.passed = 1;
            c.failed = 1;
            c.queued = 1;
        })
    );
    drain_events(&mut events);
    h.pass(&children[2].id).await;
    let done = h.execution(&suite_id).await;
    assert_eq!(done.status, Failed);
    assert_eq!(done.finished_at, Some(h.now()));
    assert_eq!(
        done.suite.as_ref().map(SuitePlan::counts),
        Some(counts(3, |c| {
            c.passed = 2;
            c.failed = 1;
        }))
    );
    let last = h.history(&suite_id).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Running), Failed, ENGINE_ACTOR)
    );
    assert_eq!(last.reason.as_deref(), Some("every child finished"));
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite_id),
        vec![(EventKind::SuiteFinished, Failed)]
    );
    let listed = h.children(&suite_id).await;
    assert_eq!(ids(&listed), ids(&children));
    assert_eq!(
        listed.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![Passed, Failed, Passed]
    );
    expect_invalid_transition(
        h.engine.cancel(&h.user, &suite_id, None).await,
        Failed,
        Cancelled,
    );

    // Every child passing passes the suite.
    let definition = h
        .create_suite(&[&cases[0], &cases[1]], SuiteMode::Parallel, None, false)
        .await;
    let suite_id = h
        .start_suite(&definition, ExecutionConfig::default())
        .await
        .id;
    for child in h.children(&suite_id).await {
        h.pass(&child.id).await;
    }
    assert_eq!(h.status(&suite_id).await, Passed);
    assert_eq!(h.counts(&suite_id).await, counts(2, |c| c.passed = 2));
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite_id).last(),
        Some(&(EventKind::SuiteFinished, Passed))
    );
    h.check_histories().await;
}

/// A sequential suite: one child at a time, the next queued as the last one ends.
pub async fn suite_sequential(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases = [
        h.external_case("s0", 1).await,
        h.external_case("s1", 1).await,
        h.external_case("s2", 1).await,
    ];
    let definition = h
        .create_suite(
            &[&cases[0], &cases[1], &cases[2]],
            SuiteMode::Sequential,
            Some(5),
            false,
        )
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let plan = suite.suite.clone().expect("plan");
    assert_eq!((plan.mode, plan.concurrency), (SuiteMode::Sequential, 1));
    let c: Vec<String> = plan.slots.iter().map(|s| s.execution_id.clone()).collect();
    let statuses = |children: &[Execution]| children.iter().map(|c| c.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Queued, Pending, Pending]
    );
    let waiting = h.execution(&c[1]).await;
    assert_eq!((waiting.queued_at, waiting.deadline_at), (None, None));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &c[0]),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert!(
        kinds_for(&published, &c[1]).is_empty(),
        "a waiting child is not announced"
    );
    expect_invalid_transition(
        h.report(&c[1], &[(0, StepStatus::Passed)]).await,
        Pending,
        Running,
    );
    expect_invalid_transition(h.engine.complete(&h.user, &c[1]).await, Pending, Passed);

    h.pass(&c[0]).await;
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Passed, Queued, Pending]
    );
    let last = h.history(&c[1]).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Pending), Queued, ENGINE_ACTOR)
    );
    assert_eq!(h.execution(&c[1]).await.queued_at, Some(h.now()));
    h.fail(&c[1]).await;
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Passed, Failed, Queued],
        "no fail_fast: go on"
    );
    assert_eq!(h.status(&suite.id).await, Running);
    drain_events(&mut events);
    h.pass(&c[2]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.passed = 2;
            c.failed = 1;
        })
    );
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite.id),
        vec![(EventKind::SuiteFinished, Failed)]
    );

    // Built-in children go on the queue one at a time.
    let runner = ScriptedRunner::new(&[]);
    let b0 = h.http_case("b0", 1).await;
    let b1 = h.http_case("b1", 1).await;
    let definition = h
        .create_suite(&[&b0, &b1], SuiteMode::Sequential, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    let first = h.drain_queue();
    assert_eq!(
        first
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![c[0].clone()]
    );
    h.engine.run_execution(&runner, &c[0]).await.expect("run");
    assert_eq!(h.status(&c[0]).await, Passed);
    let second = h.drain_queue();
    assert_eq!(
        second
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![c[1].clone()]
    );
    h.engine.run_execution(&runner, &c[1]).await.expect("run");
    assert!(h.drain_queue().is_empty());
    assert_eq!(h.status(&suite.id).await, Passed);
    h.check_histories().await;
}

/// A parallel suite with max_parallel 2 of 5: never more than two children active.
pub async fn suite_max_parallel(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut cases = Vec::new();
    for i in 0..5 {
        cases.push(h.external_case(&format!("m{i}"), 1).await);
    }
    let refs: Vec<&TestCase> = cases.iter().collect();
    let definition = h
        .create_suite(&refs, SuiteMode::Parallel, Some(2), false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    assert_eq!(suite.suite.as_ref().map(|p| p.concurrency), Some(2));
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    let statuses =
        |children: Vec<Execution>| children.into_iter().map(|c| c.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Queued, Pending, Pending, Pending]
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(5, |c| {
            c.queued = 2;
            c.pending = 3;
        })
    );

    h.report(&c[1], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Running, Pending, Pending, Pending]
    );
    h.pass(&c[1]).await;
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Passed, Queued, Pending, Pending]
    );
    h.engine
        .cancel(&h.user, &c[0], None)
        .await
        .expect("cancel a child");
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Cancelled, Passed, Queued, Queued, Pending]
    );
    h.pass(&c[3]).await;
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Cancelled, Passed, Queued, Passed, Queued]
    );
    h.pass(&c[2]).await;
    assert_eq!(h.status(&suite.id).await, Running);
    h.pass(&c[4]).await;
    assert_eq!(
        h.status(&suite.id).await,
        Failed,
        "a cancelled child means not every child passed"
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(5, |c| {
            c.passed = 4;
            c.cancelled = 1;
        })
    );

    // All passing, two at a time.
    let definition = h
        .create_suite(&refs, SuiteMode::Parallel, Some(2), false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    for (i, child) in c.iter().enumerate() {
        let active = h.counts(&suite.id).await;
        assert_eq!(
            active.queued + active.running,
            2.min(5 - i as u32),
            "after {i} finished"
        );
        h.pass(child).await;
    }
    assert_eq!(h.status(&suite.id).await, Passed);
    assert_eq!(h.counts(&suite.id).await, counts(5, |c| c.passed = 5));
    h.check_histories().await;
}

/// fail_fast: the first failure cancels every unfinished child and fails the suite.
pub async fn suite_fail_fast(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases = [
        h.external_case("f0", 2).await,
        h.external_case("f1", 2).await,
        h.external_case("f2", 2).await,
    ];
    let definition = h
        .create_suite(
            &[&cases[0], &cases[1], &cases[2]],
            SuiteMode::Parallel,
            None,
            true,
        )
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    assert!(suite.suite.as_ref().is_some_and(|p| p.fail_fast));
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.report(&c[0], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    drain_events(&mut events);

    h.fail(&c[1]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(h.status(&c[0]).await, Cancelled);
    assert_eq!(h.status(&c[2]).await, Cancelled);
    for (child, from) in [(&c[0], Running), (&c[2], Queued)] {
        let last = h.history(child).await.pop().expect("history");
        assert_eq!(
            (last.from, last.to, last.actor.as_str()),
            (Some(from), Cancelled, ENGINE_ACTOR)
        );
        assert!(
            last.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("fail_fast")),
            "{last:?}"
        );
    }
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.failed = 1;
            c.cancelled = 2;
        })
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite.id),
        vec![(EventKind::SuiteFinished, Failed)]
    );
    assert_eq!(
        transitions(&h.history(&suite.id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Failed)
        ]
    );
    // The cancelled children stay cancelled.
    expect_invalid_transition(
        h.report(&c[0], &[(1, StepStatus::Passed)]).await,
        Cancelled,
        Running,
    );

    // Sequential fail_fast cancels the children still waiting.
    let definition = h
        .create_suite(
            &[&cases[0], &cases[1], &cases[2]],
            SuiteMode::Sequential,
            None,
            true,
        )
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    for child in &c[1..] {
        let last = h.history(child).await.pop().expect("history");
        assert_eq!(
            (last.from, last.to, last.actor.as_str()),
            (Some(Pending), Cancelled, ENGINE_ACTOR)
        );
    }
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.failed = 1;
            c.cancelled = 2;
        })
    );
    h.check_histories().await;
}

// ===== retries ============================================================================

/// A manual retry: a new queued attempt of a terminal execution.
pub async fn retry_manual(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let mut events = h.bus.subscribe();
    let case = h.external_case("retry", 3).await;
    let original = h.start(&case).await;
    expect_invalid_transition(h.engine.retry(&h.user, &original.id).await, Queued, Queued);
    h.report(&original.id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_invalid_transition(h.engine.retry(&h.user, &original.id).await, Running, Queued);
    h.report(&original.id, &[(1, StepStatus::Failed)])
        .await
        .expect("report");
    let failed = h
        .engine
        .complete(&h.user, &original.id)
        .await
        .expect("complete");
    assert_eq!(failed.status, Failed);
    let history_before = h.history(&original.id).await;
    expect_not_found(h.engine.retry(&bob, &original.id).await);
    drain_events(&mut events);

    h.advance_secs(5);
    let retry = h.engine.retry(&h.user, &original.id).await.expect("retry");
    assert_ne!(retry.id, original.id);
    assert_eq!((retry.status, retry.attempt), (Queued, 2));
    assert_eq!(retry.retry_of.as_deref(), Some(original.id.as_str()));
    assert_eq!(retry.retried_by, None);
    assert_eq!(retry.test_case_id, original.test_case_id);
    assert_eq!(retry.owner, h.owner());
    assert_eq!(
        (retry.created_at, retry.queued_at),
        (h.now(), Some(h.now()))
    );
    assert_eq!(
        retry.deadline_at,
        Some(h.now().plus_millis(DEFAULT_TIMEOUT_S as i64 * 1000))
    );
    assert_eq!((retry.started_at, retry.finished_at), (None, None));
    assert_eq!(retry.progress, Progress::new(3));
    assert!(retry.steps.iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!(retry.steps.len(), 3);
    assert_eq!(h.execution(&retry.id).await, retry);
    let stored_original = h.execution(&original.id).await;
    assert_eq!(
        stored_original.retried_by.as_deref(),
        Some(retry.id.as_str())
    );
    assert_eq!(stored_original.status, Failed);
    assert_eq!(
        h.history(&original.id).await,
        history_before,
        "a retry does not touch the original's history"
    );
    let history = h.history(&retry.id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, h.actor());
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&original.id)),
        "{history:?}"
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry.id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert_eq!(
        published
            .iter()
            .find(|e| e.execution_id == retry.id)
            .map(|e| e.attempt),
        Some(2)
    );
    assert!(kinds_for(&published, &original.id).is_empty());
    assert_eq!(
        h.store.get_definition(&retry.id).await.unwrap(),
        h.store.get_definition(&original.id).await.unwrap(),
        "a retry runs the same definition"
    );
    // The retry runs on its own.
    h.pass(&retry.id).await;
    assert_eq!(h.status(&original.id).await, Failed);

    // A cancelled execution may be retried too; built-in retries are enqueued.
    let builtin = h.http_case("retry built-in", 1).await;
    let b = h.start(&builtin).await;
    h.drain_queue();
    h.engine.cancel(&h.user, &b.id, None).await.expect("cancel");
    let again = h.engine.retry(&h.user, &b.id).await.expect("retry");
    assert_eq!(again.attempt, 2);
    assert_eq!(
        h.drain_queue(),
        vec![WorkItem {
            execution_id: again.id.clone(),
            priority: Priority::Normal,
        }]
    );

    // Partitioned: the retry gets fresh step records.
    let big = h.external_case("retry partitioned", 55).await;
    let first = h.start(&big).await;
    h.fail(&first.id).await;
    let second = h.engine.retry(&h.user, &first.id).await.expect("retry");
    assert_eq!(second.storage, Some(StepStorage::Partitioned));
    assert!(second.steps.is_empty());
    let steps = h.all_steps(&second.id, 20).await;
    assert_eq!(steps.len(), 55);
    for step in &steps {
        assert_eq!(
            *step,
            StepResult::pending(step.index, &format!("step {}", step.index))
        );
    }
    let old_steps = h.all_steps(&first.id, 20).await;
    assert_eq!(
        old_steps[0].status,
        StepStatus::Failed,
        "the original keeps its steps"
    );
    assert_eq!(old_steps[1].status, StepStatus::Skipped);

    // Deleting the test case does not stop a retry: the definition travels with it.
    let doomed = h.external_case("deleted later", 2).await;
    let before_delete = h.start(&doomed).await;
    h.fail(&before_delete.id).await;
    h.engine
        .delete_entry::<TestCase>(&h.user, &doomed.id)
        .await
        .expect("delete");
    let orphan = h
        .engine
        .retry(&h.user, &before_delete.id)
        .await
        .expect("retry of a deleted case");
    assert_eq!(orphan.progress.total, 2);
    assert_eq!(
        h.store.get_definition(&orphan.id).await.unwrap(),
        Some(doomed.clone())
    );
    expect_not_found(
        h.engine
            .start_case(&h.user, &doomed.id, StartRequest::default())
            .await,
    );

    // A finished suite's child may be retried by hand; the retry stands alone.
    let definition = h
        .create_suite(&[&case], SuiteMode::Parallel, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let child = h.children(&suite.id).await.remove(0);
    h.fail(&child.id).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    let lone = h
        .engine
        .retry(&h.user, &child.id)
        .await
        .expect("retry a child");
    assert_eq!((lone.parent_id.as_deref(), lone.slot), (None, None));
    assert_eq!(h.execution(&lone.id).await, lone);
    assert_eq!(
        ids(&h.children(&suite.id).await),
        vec![child.id.clone()],
        "not a child of the suite"
    );
    assert_eq!(
        h.status(&suite.id).await,
        Failed,
        "a manual retry does not reopen the suite"
    );
    h.check_histories().await;
}

/// max_retries 1: a failing case gets exactly one automatic retry.
pub async fn retry_automatic(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let case = h.external_case("auto retry", 2).await;
    let original = h.start_with(&case, config(None, Some(1))).await;
    assert_eq!(original.max_retries, 1);
    h.fail(&original.id).await;

    let failed = h.execution(&original.id).await;
    assert_eq!(failed.status, Failed);
    let retry_id = failed.retried_by.clone().expect("an automatic retry");
    let retry = h.execution(&retry_id).await;
    assert_eq!(
        (retry.status, retry.attempt, retry.max_retries),
        (Queued, 2, 1)
    );
    assert_eq!(retry.retry_of.as_deref(), Some(original.id.as_str()));
    let history = h.history(&retry_id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, ENGINE_ACTOR);
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("automatic retry")),
        "{history:?}"
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry_id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert_eq!(
        kinds_for(&published, &original.id).last(),
        Some(&(EventKind::ExecutionFinished, Failed))
    );

    // The retry fails too: no third attempt.
    h.fail(&retry_id).await;
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    let all = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: Some(case.id.clone()),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(
        id_set(all.iter().map(|e| e.id.as_str())),
        id_set([original.id.as_str(), retry_id.as_str()])
    );

    // Passing or cancelling earns no retry; an errored step's failure does.
    let passing = h.start_with(&case, config(None, Some(1))).await;
    h.pass(&passing.id).await;
    assert_eq!(h.execution(&passing.id).await.retried_by, None);
    let cancelled = h.start_with(&case, config(None, Some(1))).await;
    h.engine
        .cancel(&h.user, &cancelled.id, None)
        .await
        .expect("cancel");
    assert_eq!(h.execution(&cancelled.id).await.retried_by, None);
    // max_retries 2: attempts 1, 2 and 3.
    let persistent = h.start_with(&case, config(None, Some(2))).await;
    let mut attempt = persistent.id.clone();
    let mut attempts = vec![];
    loop {
        h.finish(&attempt, StepStatus::Error).await;
        let done = h.execution(&attempt).await;
        attempts.push(done.attempt);
        match done.retried_by {
            Some(next) => attempt = next,
            None => break,
        }
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    h.check_histories().await;
}

/// A suite child with max_retries retries inside its suite; the suite ends with the retry.
pub async fn retry_in_suite(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases = [
        h.external_case("r0", 1).await,
        h.external_case("r1", 1).await,
    ];
    let definition = h
        .create_suite(&[&cases[0], &cases[1]], SuiteMode::Parallel, None, false)
        .await;

    // The retry passes: the suite passes.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    let retry_id = h
        .execution(&c[0])
        .await
        .retried_by
        .expect("retried in the suite");
    let retry = h.execution(&retry_id).await;
    assert_eq!((retry.status, retry.attempt), (Queued, 2));
    assert_eq!(retry.parent_id.as_deref(), Some(suite.id.as_str()));
    assert_eq!(retry.slot, Some(0));
    assert_eq!(retry.test_suite_id.as_deref(), Some(definition.id.as_str()));
    let plan = h.plan(&suite.id).await;
    assert_eq!(
        plan.slots[0].execution_id, retry_id,
        "the slot points at the newest attempt"
    );
    assert_eq!(plan.slots[0].status, Queued);
    assert_eq!(h.status(&suite.id).await, Running);
    h.pass(&c[1]).await;
    assert_eq!(
        h.status(&suite.id).await,
        Running,
        "the retry is still to run"
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(2, |c| {
            c.passed = 1;
            c.queued = 1;
        })
    );
    let listed = id_set(h.children(&suite.id).await.iter().map(|e| e.id.as_str()));
    assert_eq!(
        listed,
        id_set([c[0].as_str(), c[1].as_str(), retry_id.as_str()]),
        "every attempt is a child"
    );
    drain_events(&mut events);
    h.pass(&retry_id).await;
    assert_eq!(h.status(&suite.id).await, Passed);
    assert_eq!(h.counts(&suite.id).await, counts(2, |c| c.passed = 2));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite.id),
        vec![(EventKind::SuiteFinished, Passed)]
    );
    assert_eq!(
        transitions(&h.history(&suite.id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Passed)
        ]
    );

    // The retry fails too: the suite fails, with no third attempt.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.pass(&c[1]).await;
    h.fail(&c[0]).await;
    assert_eq!(h.status(&suite.id).await, Running);
    let retry_id = h.execution(&c[0]).await.retried_by.expect("retried");
    h.fail(&retry_id).await;
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(
        h.counts(&suite.id).await,
        counts(2, |c| {
            c.passed = 1;
            c.failed = 1;
        })
    );
    assert_eq!(h.plan(&suite.id).await.slots[0].execution_id, retry_id);
    assert_eq!(h.children(&suite.id).await.len(), 3);

    // Cancelling the suite cancels the pending retry, and no retry follows a cancellation.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    let retry_id = h.execution(&c[0]).await.retried_by.expect("retried");
    h.engine
        .cancel(&h.user, &suite.id, None)
        .await
        .expect("cancel");
    assert_eq!(h.status(&retry_id).await, Cancelled);
    assert_eq!(h.status(&c[1]).await, Cancelled);
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    assert_eq!(h.execution(&c[1]).await.retried_by, None);
    assert_eq!(h.children(&suite.id).await.len(), 3);
    h.check_histories().await;
}

/// A manual retry of a finished suite: a new suite execution with fresh children (every
/// definition, inline or partitioned, carried over); the original and its children stay as
/// they were.
pub async fn retry_suite(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let small = h.external_case("retry suite small", 3).await;
    let big = h.external_case("retry suite big", 55).await;
    let definition = h
        .create_suite(&[&small, &big], SuiteMode::Parallel, None, false)
        .await;
    let first = h.start_suite(&definition, config(None, Some(1))).await;
    expect_invalid_transition(h.engine.retry(&h.user, &first.id).await, Queued, Queued);
    let slots: Vec<String> = first
        .suite
        .clone()
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    // Slot 0 fails twice (its automatic retry too); slot 1 passes.
    h.fail(&slots[0]).await;
    expect_invalid_transition(h.engine.retry(&h.user, &first.id).await, Running, Queued);
    let auto = h
        .execution(&slots[0])
        .await
        .retried_by
        .expect("automatic retry");
    h.fail(&auto).await;
    h.pass(&slots[1]).await;
    assert_eq!(h.status(&first.id).await, Failed);
    let old_children = h.children(&first.id).await;
    assert_eq!(old_children.len(), 3);
    let old_history = h.history(&first.id).await;
    drain_events(&mut events);

    h.advance_secs(1);
    let retry = h
        .engine
        .retry(&h.user, &first.id)
        .await
        .expect("retry suite");
    assert_eq!(
        (retry.kind, retry.status, retry.attempt),
        (ExecutionKind::Suite, Queued, 2)
    );
    assert_eq!(retry.retry_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(retry.test_suite_id.as_deref(), Some(definition.id.as_str()));
    assert_eq!((retry.parent_id.as_deref(), retry.storage), (None, None));
    assert_eq!(retry.queued_at, Some(h.now()));
    assert_eq!(h.execution(&retry.id).await, retry);
    let history = h.history(&retry.id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, h.actor());
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&first.id)),
        "{history:?}"
    );
    let plan = retry.suite.clone().expect("a fresh plan");
    assert_eq!(plan.counts(), counts(2, |c| c.queued = 2));
    assert_eq!(
        plan.slots
            .iter()
            .map(|s| s.test_case_id.clone())
            .collect::<Vec<_>>(),
        vec![small.id.clone(), big.id.clone()]
    );

    let fresh = h.children(&retry.id).await;
    assert_eq!(fresh.len(), 2);
    let old_slot_ids = [auto.clone(), slots[1].clone()];
    for (slot, child) in fresh.iter().enumerate() {
        assert_eq!(
            child.id, plan.slots[slot].execution_id,
            "children in suite order"
        );
        assert!(
            !old_children.iter().any(|o| o.id == child.id),
            "a fresh child"
        );
        assert_eq!(child.status, Queued);
        assert_eq!(child.slot, Some(slot as u32));
        assert_eq!(child.parent_id.as_deref(), Some(retry.id.as_str()));
        assert_eq!((child.attempt, child.retry_of.as_deref()), (1, None));
        assert_eq!(child.retried_by, None);
        assert_eq!(child.max_retries, 1, "the config carries over");
        assert_eq!(child.progress.completed, 0);
        assert_eq!(
            h.store.get_definition(&child.id).await.unwrap(),
            h.store.get_definition(&old_slot_ids[slot]).await.unwrap(),
            "the same definition runs again"
        );
        assert_eq!(
            transitions(&h.history(&child.id).await),
            vec![(None, Pending), (Some(Pending), Queued)]
        );
    }
    assert_eq!(fresh[0].storage, Some(StepStorage::Inline));
    assert_eq!(fresh[0].steps.len(), 3);
    assert!(
        fresh[0]
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Pending)
    );
    assert_eq!(fresh[1].storage, Some(StepStorage::Partitioned));
    assert!(fresh[1].steps.is_empty());
    let steps = h.all_steps(&fresh[1].id, 20).await;
    assert_eq!(steps.len(), 55);
    assert!(steps.iter().all(|s| s.status == StepStatus::Pending));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry.id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    for child in &fresh {
        assert_eq!(
            kinds_for(&published, &child.id),
            vec![(EventKind::ExecutionQueued, Queued)]
        );
    }

    // The original is untouched but for its lineage.
    let original = h.execution(&first.id).await;
    assert_eq!(original.status, Failed);
    assert_eq!(original.retried_by.as_deref(), Some(retry.id.as_str()));
    assert_eq!(h.history(&first.id).await, old_history);
    assert_eq!(ids(&h.children(&first.id).await), ids(&old_children));
    for old in &old_children {
        assert_eq!(h.execution(&old.id).await.status, old.status);
    }

    // The retry runs like any suite.
    for child in &fresh {
        h.pass(&child.id).await;
    }
    assert_eq!(h.status(&retry.id).await, Passed);
    assert_eq!(h.counts(&retry.id).await, counts(2, |c| c.passed = 2));
    assert_eq!(h.status(&first.id).await, Failed);
    h.check_histories().await;
}

// ===== timeouts ===========================================================================

/// The timeout sweep ends overdue executions once, and leaves finished ones alone.
///
/// The sweep covers the whole store, so this is the only check that sweeps, and it moves
/// its clock just 12 s: other checks sharing the store use the default one-hour timeout.
pub async fn timeouts(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let case = h.external_case("timeouts", 2).await;
    let five = config(Some(5), None);

    let queued = h.start_with(&case, five.clone()).await;
    assert_eq!(queued.deadline_at, Some(h.now().plus_millis(5_000)));
    let running = h.start_with(&case, five.clone()).await;
    h.report(&running.id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    let finished = h.start_with(&case, five.clone()).await;
    h.pass(&finished.id).await;
    let retrying = h.start_with(&case, config(Some(5), Some(1))).await;
    let relaxed = h.start(&case).await;
    let finished_history = h.history(&finished.id).await;
    drain_events(&mut events);

    // Not yet due.
    h.advance_secs(4);
    h.engine.sweep_timeouts().await.expect("sweep");
    for id in [&queued.id, &retrying.id, &relaxed.id] {
        assert_eq!(h.status(id).await, Queued, "{id} is not due yet");
    }
    assert_eq!(h.status(&running.id).await, Running);

    h.advance_secs(2);
    let ended = h.engine.sweep_timeouts().await.expect("sweep");
    assert!(ended >= 3, "the sweep reports what it ended ({ended})");
    for (id, from) in [
        (&queued.id, Queued),
        (&running.id, Running),
        (&retrying.id, Queued),
    ] {
        let e = h.execution(id).await;
        assert_eq!(e.status, TimedOut, "{id}");
        assert_eq!((e.finished_at, e.deadline_at), (Some(h.now()), None));
        let history = h.history(id).await;
        let last = history.last().expect("history");
        assert_eq!((last.from, last.to), (Some(from), TimedOut));
        assert_eq!(
            (last.actor.as_str(), last.reason.as_deref()),
            (TIMEOUT_ACTOR, Some("no result within 5 s"))
        );
        assert_eq!(last.at, h.now());
    }
    assert_eq!(
        h.status(&finished.id).await,
        Passed,
        "a finished execution is not touched"
    );
    assert_eq!(h.history(&finished.id).await, finished_history);
    assert_eq!(h.status(&relaxed.id).await, Queued);
    // max_retries answers a timeout too.
    let retry_id = h
        .execution(&retrying.id)
        .await
        .retried_by
        .expect("an automatic retry");
    let retry = h.execution(&retry_id).await;
    assert_eq!((retry.status, retry.attempt), (Queued, 2));
    assert_eq!(retry.deadline_at, Some(h.now().plus_millis(5_000)));
    let published = drain_events(&mut events);
    for id in [&queued.id, &running.id, &retrying.id] {
        assert_eq!(
            kinds_for(&published, id),
            vec![(EventKind::ExecutionFinished, TimedOut)]
        );
    }
    assert_eq!(
        kinds_for(&published, &retry_id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    expect_invalid_transition(
        h.report(&queued.id, &[(0, StepStatus::Passed)]).await,
        TimedOut,
        Running,
    );

    // A second sweep ends nothing twice.
    let histories = [
        h.history(&queued.id).await,
        h.history(&running.id).await,
        h.history(&retrying.id).await,
    ];
    h.engine.sweep_timeouts().await.expect("sweep");
    h.engine.sweep_timeouts().await.expect("sweep");
    assert_eq!(
        [
            h.history(&queued.id).await,
            h.history(&running.id).await,
            h.history(&retrying.id).await
        ],
        histories
    );
    assert!(
        drain_events(&mut events)
            .iter()
            .all(|e| e.execution_id != queued.id && e.execution_id != running.id)
    );
    let overdue = h.store.overdue(h.now(), 10_000).await.expect("overdue");
    for id in [&queued.id, &running.id, &retrying.id, &finished.id] {
        assert!(!overdue.contains(id), "{id} is terminal, so never overdue");
    }

    // Children that time out fail their suite.
    let mut slow = case_input("slow child", &[], external_steps(1));
    slow.timeout_s = Some(5);
    let slow = h
        .engine
        .create_entry::<TestCase>(&h.user, slow)
        .await
        .expect("create");
    let definition = h
        .create_suite(&[&slow, &slow], SuiteMode::Parallel, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    assert_eq!(suite.timeout_s, DEFAULT_TIMEOUT_S);
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    assert_eq!(h.execution(&c[0]).await.timeout_s, 5);
    h.advance_secs(6);
    h.engine.sweep_timeouts().await.expect("sweep");
    for child in &c {
        assert_eq!(h.status(child).await, TimedOut);
    }
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(h.counts(&suite.id).await, counts(2, |c| c.timed_out = 2));
    let published = drain_events(&mut events);
    assert_eq!(
        finished_events(&published, &suite.id),
        vec![Failed],
        "the suite finished once"
    );
    // The automatic retry above timed out as well and, being the last attempt, stays so.
    assert_eq!(h.status(&retry_id).await, TimedOut);
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    h.check_histories().await;
}

// ===== idempotency ========================================================================

/// Idempotency-Key: per owner, for 24 hours, and safe under concurrent starts.
pub async fn idempotency(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let case = h.http_case("idempotent", 1).await;
    let start = |caller: Caller, case_id: String, key: &'static str| {
        let engine = h.engine.clone();
        async move {
            engine
                .start_case(
                    &caller,
                    &case_id,
                    request(ExecutionConfig::default(), Some(key)),
                )
                .await
                .unwrap_or_else(|e| panic!("start with key {key}: {e:?}"))
        }
    };

    let first: Started = start(h.user.clone(), case.id.clone(), "deploy-42").await;
    assert!(first.created);
    assert_eq!(h.drain_queue().len(), 1);
    let mut events = h.bus.subscribe();
    let again = start(h.user.clone(), case.id.clone(), "deploy-42").await;
    assert!(!again.created, "the same key returns the same execution");
    assert_eq!(again.execution.id, first.execution.id);
    assert_eq!(again.execution, h.execution(&first.execution.id).await);
    assert!(h.drain_queue().is_empty(), "nothing enqueued twice");
    assert!(
        drain_events(&mut events).is_empty(),
        "nothing announced twice"
    );
    assert_eq!(h.history(&first.execution.id).await.len(), 1);
    // The key belongs to the owner, whatever the case.
    let other_case = h.http_case("another", 1).await;
    let same = start(h.user.clone(), other_case.id.clone(), "deploy-42").await;
    assert!(!same.created);
    assert_eq!(same.execution.id, first.execution.id);
    // Another owner's key is another key.
    let bobs_case = h.create_case(&bob, "bob's", &[], http_steps(1)).await;
    let bobs = start(bob.clone(), bobs_case.id.clone(), "deploy-42").await;
    assert!(bobs.created);
    assert_ne!(bobs.execution.id, first.execution.id);
    assert_eq!(bobs.execution.owner, bob.user);
    // Another key, or none, starts another.
    let other_key = start(h.user.clone(), case.id.clone(), "deploy-43").await;
    assert!(other_key.created);
    let plain_a = h.start(&case).await;
    let plain_b = h.start(&case).await;
    assert_ne!(plain_a.id, plain_b.id);
    let mine = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: Some(case.id.clone()),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(mine.len(), 4, "deploy-42, deploy-43 and two without a key");

    // The claim lasts 24 hours.
    h.advance_millis(IDEMPOTENCY_WINDOW_MS - 1);
    let late = start(h.user.clone(), case.id.clone(), "deploy-42").await;
    assert!(!late.created);
    assert_eq!(late.execution.id, first.execution.id);
    h.advance_millis(1);
    let renewed = start(h.user.clone(), case.id.clone(), "deploy-42").await;
    assert!(
        renewed.created,
        "after 24 hours the key starts a new execution"
    );
    assert_ne!(renewed.execution.id, first.execution.id);
    let repeat = start(h.user.clone(), case.id.clone(), "deploy-42").await;
    assert!(!repeat.created);
    assert_eq!(repeat.execution.id, renewed.execution.id);

    // Suites honour the key as well.
    let definition = h
        .create_suite(&[&case], SuiteMode::Parallel, None, false)
        .await;
    let suite_start = |key: &'static str| {
        let (engine, caller, id) = (h.engine.clone(), h.user.clone(), definition.id.clone());
        async move {
            engine
                .start_suite(&caller, &id, request(ExecutionConfig::default(), Some(key)))
                .await
                .expect("start suite")
        }
    };
    let s1 = suite_start("nightly-7").await;
    let s2 = suite_start("nightly-7").await;
    assert!(s1.created && !s2.created);
    assert_eq!(s1.execution.id, s2.execution.id);
    assert_eq!(h.children(&s1.execution.id).await.len(), 1);
    let suites = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_suite_id: Some(definition.id.clone()),
                kind: Some(ExecutionKind::Suite),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(suites.len(), 1);

    // Concurrent starts with one key: exactly one execution.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(start(
            h.user.clone(),
            other_case.id.clone(),
            "race",
        )));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("start task"));
    }
    assert_eq!(
        results.iter().filter(|r| r.created).count(),
        1,
        "exactly one start creates"
    );
    let winner = results[0].execution.id.clone();
    assert!(results.iter().all(|r| r.execution.id == winner));
    let raced = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: Some(other_case.id.clone()),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(raced.len(), 1, "the race started one execution");
    h.check_histories().await;
}

// ===== listing ============================================================================

/// list_executions: newest first, every filter, cursor paging and owner isolation.
pub async fn list_executions(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let admin = Caller::admin("conformance-admin");
    let marker = fresh_tag();
    let x = h
        .create_case(&h.user, "list x", &[&marker, "x"], external_steps(1))
        .await;
    let y = h
        .create_case(&h.user, "list y", &[&marker, "y"], external_steps(1))
        .await;
    let definition = TestSuiteInput {
        name: "list suite".into(),
        description: None,
        test_case_ids: vec![x.id.clone()],
        mode: SuiteMode::Parallel,
        max_parallel: None,
        fail_fast: false,
        tags: vec!["nightly".into()],
    };
    let definition = h
        .engine
        .create_entry::<TestSuite>(&h.user, definition)
        .await
        .expect("suite");

    let e1 = h.start(&x).await.id;
    h.advance_secs(1);
    let t2 = h.now();
    let e2 = h.start(&y).await.id;
    h.advance_secs(1);
    let t3 = h.now();
    let e3 = h
        .start_with(
            &x,
            ExecutionConfig {
                tags: vec!["ci".into()],
                ..ExecutionConfig::default()
            },
        )
        .await
        .id;
    h.advance_secs(1);
    let t4 = h.now();
    let s4 = h
        .start_suite(
            &definition,
            ExecutionConfig {
                tags: vec![marker.clone()],
                ..ExecutionConfig::default()
            },
        )
        .await;
    let c4 = s4.suite.as_ref().expect("plan").slots[0]
        .execution_id
        .clone();
    let s4 = s4.id;
    h.advance_secs(1);
    let e5 = h.start(&y).await.id;
    h.advance_secs(1);
    h.engine.cancel(&h.user, &e1, None).await.expect("cancel");
    h.pass(&e2).await;
    h.fail(&e5).await;

    let q = ExecutionQuery::default;
    let everything = h.list_all(&h.user, q(), 100).await;
    let all_ids = ids(&everything);
    assert_eq!(
        id_set(all_ids.iter().map(String::as_str)),
        id_set([&e1, &e2, &e3, &s4, &c4, &e5].map(String::as_str))
    );
    assert_eq!(all_ids.first(), Some(&e5), "newest first");
    assert_eq!(all_ids.last(), Some(&e1), "oldest last");
    assert!(everything.iter().all(|e| e.owner == h.owner()));
    // Paging two at a time sees the same list, in the same order.
    assert_eq!(ids(&h.list_all(&h.user, q(), 2).await), all_ids);
    assert_eq!(ids(&h.list_all(&h.user, q(), 1).await), all_ids);

    let listed_order = &all_ids;
    let check = |query: ExecutionQuery, expected: &[&String]| {
        let expected_order: Vec<String> = listed_order
            .iter()
            .filter(|id| expected.contains(id))
            .cloned()
            .collect();
        let h = &h;
        async move {
            let listed = h.list_all(&h.user, query.clone(), 2).await;
            assert_eq!(ids(&listed), expected_order, "{query:?}");
        }
    };
    check(
        ExecutionQuery {
            status: Some(Cancelled),
            ..q()
        },
        &[&e1],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Passed),
            ..q()
        },
        &[&e2],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Failed),
            ..q()
        },
        &[&e5],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Queued),
            ..q()
        },
        &[&e3, &s4, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(TimedOut),
            ..q()
        },
        &[],
    )
    .await;
    check(
        ExecutionQuery {
            kind: Some(ExecutionKind::Suite),
            ..q()
        },
        &[&s4],
    )
    .await;
    check(
        ExecutionQuery {
            kind: Some(ExecutionKind::Case),
            ..q()
        },
        &[&e1, &e2, &e3, &c4, &e5],
    )
    .await;
    check(
        ExecutionQuery {
            test_case_id: Some(x.id.clone()),
            ..q()
        },
        &[&e1, &e3, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            test_suite_id: Some(definition.id.clone()),
            ..q()
        },
        &[&s4, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("ci".into()),
            ..q()
        },
        &[&e3],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("nightly".into()),
            ..q()
        },
        &[&s4],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("x".into()),
            ..q()
        },
        &[&e1, &e3, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            since: Some(t3),
            ..q()
        },
        &[&e3, &s4, &c4, &e5],
    )
    .await;
    check(
        ExecutionQuery {
            until: Some(t3),
            ..q()
        },
        &[&e1, &e2],
    )
    .await;
    check(
        ExecutionQuery {
            since: Some(t2),
            until: Some(t4),
            ..q()
        },
        &[&e2, &e3],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Queued),
            kind: Some(ExecutionKind::Case),
            tag: Some("x".into()),
            ..q()
        },
        &[&e3, &c4],
    )
    .await;

    // Owners see only their own; an owner in the query cannot widen that.
    let bobs_case = h
        .create_case(&bob, "bob's", &[&marker], external_steps(1))
        .await;
    let bobs = h
        .engine
        .start_case(&bob, &bobs_case.id, StartRequest::default())
        .await
        .expect("bob starts")
        .execution
        .id;
    assert_eq!(ids(&h.list_all(&bob, q(), 10).await), vec![bobs.clone()]);
    let widened = ExecutionQuery {
        owner: Some(h.owner().to_owned()),
        ..q()
    };
    assert_eq!(
        ids(&h.list_all(&bob, widened, 10).await),
        vec![bobs.clone()]
    );
    assert_eq!(
        ids(&h.list_all(&h.user, q(), 100).await),
        all_ids,
        "bob's execution is not alice's"
    );
    let by_admin = h
        .list_all(
            &admin,
            ExecutionQuery {
                tag: Some(marker.clone()),
                ..q()
            },
            3,
        )
        .await;
    let mut expected = id_set(all_ids.iter().map(String::as_str));
    expected.insert(bobs.clone());
    assert_eq!(
        id_set(by_admin.iter().map(|e| e.id.as_str())),
        expected,
        "an administrator sees everyone's"
    );
    h.check_histories().await;
    h.check_histories_of(&bob).await;
}

// ===== history ============================================================================

/// History is append-only: commands add entries after the old ones and never rewrite them;
/// refused or repeated commands add nothing.
pub async fn history_append_only(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("history", 2).await;
    let id = h.start(&case).await.id;
    let mut seen = h.history(&id).await;
    assert_eq!(transitions(&seen), vec![(None, Queued)]);

    async fn expect_appended(
        h: &Harness,
        id: &str,
        seen: &mut Vec<HistoryEntry>,
        added: &[(Option<ExecutionStatus>, ExecutionStatus)],
    ) {
        let now = h.history(id).await;
        assert_eq!(now.len(), seen.len() + added.len(), "{now:?}");
        assert_eq!(&now[..seen.len()], &seen[..], "old entries never change");
        assert_eq!(transitions(&now[seen.len()..]), added);
        assert_eq!(h.history(id).await, now, "reads are repeatable");
        assert_history_consistent(&h.execution(id).await, &now);
        *seen = now;
    }

    h.advance_secs(1);
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &id, &mut seen, &[(Some(Queued), Running)]).await;
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("redelivery");
    expect_appended(&h, &id, &mut seen, &[]).await;
    expect_conflict(
        h.report(&id, &[(0, StepStatus::Failed)]).await,
        "step_conflict",
    );
    expect_appended(&h, &id, &mut seen, &[]).await;
    h.report(&id, &[(1, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &id, &mut seen, &[]).await;
    h.advance_secs(1);
    h.engine.complete(&h.user, &id).await.expect("complete");
    expect_appended(&h, &id, &mut seen, &[(Some(Running), Passed)]).await;
    expect_invalid_transition(h.engine.complete(&h.user, &id).await, Passed, Passed);
    expect_invalid_transition(h.engine.cancel(&h.user, &id, None).await, Passed, Cancelled);
    expect_appended(&h, &id, &mut seen, &[]).await;
    let retry = h.engine.retry(&h.user, &id).await.expect("retry");
    expect_appended(&h, &id, &mut seen, &[]).await;
    let mut retry_seen = h.history(&retry.id).await;
    assert_eq!(transitions(&retry_seen), vec![(None, Queued)]);
    h.engine
        .cancel(&h.user, &retry.id, None)
        .await
        .expect("cancel");
    expect_appended(&h, &retry.id, &mut retry_seen, &[(Some(Queued), Cancelled)]).await;
    expect_appended(&h, &id, &mut seen, &[]).await;
    assert_eq!(seen.len(), 3);

    // A suite's history through a whole run, and its children's.
    let definition = h
        .create_suite(&[&case, &case], SuiteMode::Sequential, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let mut suite_seen = h.history(&suite.id).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.report(&c[0], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &suite.id, &mut suite_seen, &[(Some(Queued), Running)]).await;
    h.engine.complete(&h.user, &c[0]).await.expect("complete");
    expect_appended(&h, &suite.id, &mut suite_seen, &[]).await;
    let mut second_seen = h.history(&c[1]).await;
    assert_eq!(
        transitions(&second_seen),
        vec![(None, Pending), (Some(Pending), Queued)]
    );
    h.pass(&c[1]).await;
    expect_appended(
        &h,
        &c[1],
        &mut second_seen,
        &[(Some(Queued), Running), (Some(Running), Passed)],
    )
    .await;
    expect_appended(&h, &suite.id, &mut suite_seen, &[(Some(Running), Passed)]).await;
    h.check_histories().await;
}

// ===== the built-in runner ================================================================

/// A fake step runner: steps whose names are listed fail, every other step passes and
/// captures `last` = its name. Records what it ran with which variables.
pub struct ScriptedRunner {
    failing: BTreeSet<String>,
    pub calls: Mutex<Vec<(String, BTreeMap<String, String>)>>,
}

impl ScriptedRunner {
    pub fn new(failing: &[&str]) -> Self {
        ScriptedRunner {
            failing: failing.iter().map(|s| (*s).to_owned()).collect(),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn take_calls(&self) -> Vec<(String, BTreeMap<String, String>)> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl StepRunner for ScriptedRunner {
    async fn run_step(
        &self,
        step: &StepDefinition,
        variables: &BTreeMap<String, String>,
    ) -> HttpStepOutcome {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((step.name.clone(), variables.clone()));
        let failed = self.failing.contains(&step.name);
        let at = Timestamp::from_millis(1_000_000);
        HttpStepOutcome {
            verdict: if failed {
                StepVerdict::Failed
            } else {
                StepVerdict::Passed
            },
            message: failed.then(|| "expected status 200, got 500".to_owned()),
            output: Some(format!("GET {}", step.name)),
            captures: if failed {
                BTreeMap::new()
            } else {
                BTreeMap::from([("last".to_owned(), step.name.clone())])
            },
            started_at: at,
            finished_at: at.plus_millis(5),
            duration_ms: 5,
        }
    }
}

/// run_execution: the built-in runner runs the definition snapshot, once, and its failures
/// and automatic retries follow the same rules.
pub async fn builtin_run(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut input = case_input(
        "built-in run",
        &[],
        vec![http_step("a"), http_step("b"), http_step("c")],
    );
    input.variables.insert("base".into(), "v1".into());
    let case = h
        .engine
        .create_entry::<TestCase>(&h.user, input)
        .await
        .expect("create");
    let mut overrides = ExecutionConfig::default();
    overrides.variables.insert("env".into(), "staging".into());
    let e = h.start_with(&case, overrides).await;
    assert_eq!(
        h.drain_queue()
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![e.id.clone()]
    );
    // What runs is the snapshot taken at start.
    h.engine
        .replace_entry::<TestCase>(
            &h.user,
            &case.id,
            case_input("changed", &[], vec![http_step("z")]),
        )
        .await
        .expect("replace");

    let runner = ScriptedRunner::new(&[]);
    h.engine.run_execution(&runner, &e.id).await.expect("run");
    let done = h.execution(&e.id).await;
    assert_eq!(done.status, Passed);
    assert_eq!((done.progress.completed, done.progress.passed), (3, 3));
    assert!(
        done.steps
            .iter()
            .all(|s| s.duration_ms == Some(5) && s.output.is_some())
    );
    let history = h.history(&e.id).await;
    assert_eq!(
        transitions(&history),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Passed)
        ]
    );
    assert_eq!(history[1].actor, RUNNER_ACTOR);
    assert_eq!(history[2].actor, RUNNER_ACTOR);
    let calls = runner.take_calls();
    assert_eq!(
        calls.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    assert_eq!(calls[0].1.get("base").map(String::as_str), Some("v1"));
    assert_eq!(calls[0].1.get("env").map(String::as_str), Some("staging"));
    assert_eq!(
        calls[1].1.get("last").map(String::as_str),
        Some("a"),
        "captures carry over"
    );
    // A second delivery of the same work item does nothing.
    h.engine
        .run_execution(&runner, &e.id)
        .await
        .expect("run again");
    assert!(runner.take_calls().is_empty());
    assert_eq!(h.history(&e.id).await, history);

    // A failing step skips the rest; max_retries brings the same steps back on the queue.
    let case = h
        .create_case(
            &h.user,
            "built-in failing",
            &[],
            vec![http_step("ok"), http_step("bad"), http_step("never")],
        )
        .await;
    let runner = ScriptedRunner::new(&["bad"]);
    let e = h.start_with(&case, config(None, Some(1))).await;
    h.drain_queue();
    h.engine.run_execution(&runner, &e.id).await.expect("run");
    let done = h.execution(&e.id).await;
    assert_eq!(done.status, Failed);
    assert_eq!(
        (
            done.progress.passed,
            done.progress.failed,
            done.progress.skipped
        ),
        (1, 1, 1)
    );
    assert_eq!(
        done.steps[1].message.as_deref(),
        Some("expected status 200, got 500")
    );
    assert_eq!(runner.take_calls().len(), 2);
    let retry_id = done.retried_by.clone().expect("automatic retry");
    assert_eq!(
        h.drain_queue()
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![retry_id.clone()]
    );
    assert_eq!(
        h.store.get_definition(&retry_id).await.unwrap(),
        h.store.get_definition(&e.id).await.unwrap()
    );
    h.engine
        .run_execution(&runner, &retry_id)
        .await
        .expect("run retry");
    assert_eq!(h.status(&retry_id).await, Failed);
    assert_eq!(runner.take_calls().len(), 2);
    assert!(h.drain_queue().is_empty(), "no third attempt");

    // A cancelled work item is skipped.
    let e = h.start(&case).await;
    h.engine.cancel(&h.user, &e.id, None).await.expect("cancel");
    h.engine
        .run_execution(&runner, &e.id)
        .await
        .expect("run cancelled");
    assert!(runner.take_calls().is_empty());
    assert_eq!(h.status(&e.id).await, Cancelled);
    h.check_histories().await;
}

// ===== recovery indexes ===================================================================

/// `active` lists queued and running executions (never pending or finished ones), and
/// `overdue` lists non-terminal executions by deadline.
pub async fn active_and_overdue(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("active", 2).await;
    let queued = h.start(&case).await.id;
    let running = h.start(&case).await.id;
    h.report(&running, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    let finished = h.start(&case).await.id;
    h.pass(&finished).await;
    let cancelled = h.start(&case).await.id;
    h.engine
        .cancel(&h.user, &cancelled, None)
        .await
        .expect("cancel");
    let definition = h
        .create_suite(&[&case, &case], SuiteMode::Sequential, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let slots: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    let (first_child, waiting_child) = (slots[0].clone(), slots[1].clone());

    let active: BTreeMap<String, ExecutionStatus> = h
        .store
        .active(1_000_000)
        .await
        .expect("active")
        .into_iter()
        .map(|e| (e.id, e.status))
        .collect();
    for (id, status) in [
        (&queued, Queued),
        (&running, Running),
        (&suite.id, Queued),
        (&first_child, Queued),
    ] {
        assert_eq!(active.get(id), Some(&status), "{id} is active");
    }
    for id in [&finished, &cancelled, &waiting_child] {
        assert!(!active.contains_key(id), "{id} is not active");
    }

    let due = h.store.overdue(h.now(), 1_000_000).await.expect("overdue");
    for id in [&queued, &running, &suite.id, &first_child] {
        assert!(!due.contains(id), "{id} is not due yet");
    }
    let later = h.now().plus_millis(DEFAULT_TIMEOUT_S as i64 * 1000);
    let due = h.store.overdue(later, 1_000_000).await.expect("overdue");
    for id in [&queued, &running, &suite.id, &first_child] {
        assert!(due.contains(id), "{id} is due at its deadline");
    }
    for id in [&finished, &cancelled, &waiting_child] {
        assert!(!due.contains(id), "{id} has no deadline");
    }
    assert!(
        h.store.overdue(later, 1).await.expect("overdue").len() <= 1,
        "limit holds"
    );

    // Finishing leaves both indexes.
    h.pass(&queued).await;
    assert!(
        !h.store
            .active(1_000_000)
            .await
            .expect("active")
            .iter()
            .any(|e| e.id == queued)
    );
    assert!(
        !h.store
            .overdue(later, 1_000_000)
            .await
            .expect("overdue")
            .contains(&queued)
    );
    h.check_histories().await;
}
