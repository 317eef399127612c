//! The harness every check builds: an engine around the store under test, and the
//! assertions the checks share.

use super::*;

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

    /// `N` cases of `steps` external steps each, named `prefix0`, `prefix1`, ...
    pub async fn external_cases<const N: usize>(
        &self,
        prefix: &str,
        steps: usize,
    ) -> [TestCase; N] {
        let mut cases = Vec::with_capacity(N);
        for i in 0..N {
            cases.push(self.external_case(&format!("{prefix}{i}"), steps).await);
        }
        cases
            .try_into()
            .unwrap_or_else(|_| unreachable!("N cases were made"))
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
        let children = page_through("children", 2, move |after| async move {
            self.engine
                .list_children(&self.user, suite_id, after.as_deref(), 2)
                .await
        })
        .await;
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
        let all = page_through("executions", limit, move |after| {
            let query = ExecutionQuery {
                limit,
                after,
                ..query.clone()
            };
            self.engine.list_executions(caller, query)
        })
        .await;
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
        page_through("test cases", limit, move |after| {
            self.engine
                .list_entries::<TestCase>(caller, tag.map(str::to_owned), limit, after)
        })
        .await
    }

    pub async fn list_suites(
        &self,
        caller: &Caller,
        tag: Option<&str>,
        limit: usize,
    ) -> Vec<TestSuite> {
        page_through("test suites", limit, move |after| {
            self.engine
                .list_entries::<TestSuite>(caller, tag.map(str::to_owned), limit, after)
        })
        .await
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

/// Every item of a listing, through its cursor: `page(after)` fetches the page after `after`.
/// Each page holds at most `limit` items, and each cursor differs from the one before.
pub async fn page_through<T, Fut>(
    what: &str,
    limit: usize,
    mut page: impl FnMut(Option<String>) -> Fut,
) -> Vec<T>
where
    Fut: Future<Output = Result<Page<T>, EngineError>>,
{
    let mut all: Vec<T> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100_000 {
        let page = page(after.clone())
            .await
            .unwrap_or_else(|e| panic!("list {what}: {e:?}"));
        assert!(
            page.items.len() <= limit,
            "a page holds at most `limit` {what}"
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

pub(crate) fn fields(errors: &ValidationErrors) -> Vec<&str> {
    errors.errors.iter().map(|e| e.field.as_str()).collect()
}

pub(crate) fn ids(executions: &[Execution]) -> Vec<String> {
    executions.iter().map(|e| e.id.clone()).collect()
}

pub(crate) fn id_set<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    ids.into_iter().map(str::to_owned).collect()
}

pub(crate) fn counts(total: u32, f: impl FnOnce(&mut ChildCounts)) -> ChildCounts {
    let mut counts = ChildCounts {
        total,
        ..ChildCounts::default()
    };
    f(&mut counts);
    counts
}

pub(crate) const UNKNOWN_CASE: &str = "tc_01ARZ3NDEKTSV4RRFFQ69G5FAV";
pub(crate) const UNKNOWN_EXECUTION: &str = "ex_01ARZ3NDEKTSV4RRFFQ69G5FAV";
