//! The built-in runner's path, with a scripted step runner.

use super::*;

/// A fake step runner: steps whose names are listed fail (or error), every other step passes
/// and captures `last` = its name. Records what it ran with which variables.
pub struct ScriptedRunner {
    failing: BTreeSet<String>,
    erroring: BTreeSet<String>,
    pub calls: Mutex<Vec<(String, BTreeMap<String, String>)>>,
}

impl ScriptedRunner {
    pub fn new(failing: &[&str]) -> Self {
        Self::with_errors(failing, &[])
    }

    /// Steps in `erroring` end as the runner's `error` (as one over a limit does).
    pub fn with_errors(failing: &[&str], erroring: &[&str]) -> Self {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        ScriptedRunner {
            failing: names(failing),
            erroring: names(erroring),
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
    ) -> StepOutcome {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((step.name.clone(), variables.clone()));
        let (verdict, message) = if self.erroring.contains(&step.name) {
            (StepVerdict::Error, Some("the rendered body exceeds 1 MiB"))
        } else if self.failing.contains(&step.name) {
            (StepVerdict::Failed, Some("expected status 200, got 500"))
        } else {
            (StepVerdict::Passed, None)
        };
        let failed = verdict != StepVerdict::Passed;
        let at = Timestamp::from_millis(1_000_000);
        StepOutcome {
            verdict,
            message: message.map(str::to_owned),
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

    // A step the runner could not run is an `error`, not a failure; the rest is skipped.
    let erroring = h
        .create_case(
            &h.user,
            "built-in erroring",
            &[],
            vec![http_step("ok"), http_step("too-big"), http_step("never")],
        )
        .await;
    let runner = ScriptedRunner::with_errors(&[], &["too-big"]);
    let e = h.start(&erroring).await;
    h.drain_queue();
    h.engine.run_execution(&runner, &e.id).await.expect("run");
    let done = h.execution(&e.id).await;
    assert_eq!(done.status, Failed);
    assert_eq!(
        (
            done.progress.passed,
            done.progress.failed,
            done.progress.errored,
            done.progress.skipped
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(done.steps[1].status, StepStatus::Error);
    assert_eq!(
        done.steps[1].message.as_deref(),
        Some("the rendered body exceeds 1 MiB")
    );
    assert_eq!(runner.take_calls().len(), 2);

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

/// A step runner that, while the execution runs, has its owner try to report a step and to
/// complete it from outside; records what the engine answered.
struct OutsiderDuringRun {
    engine: Engine,
    owner: Caller,
    execution_id: String,
    answers: Mutex<Vec<Result<Execution, EngineError>>>,
}

#[async_trait]
impl StepRunner for OutsiderDuringRun {
    async fn run_step(
        &self,
        step: &StepDefinition,
        variables: &BTreeMap<String, String>,
    ) -> StepOutcome {
        let (engine, id) = (&self.engine, &self.execution_id);
        let report = engine
            .report_steps(&self.owner, id, vec![report(0, StepStatus::Failed)])
            .await;
        let complete = engine.complete(&self.owner, id).await;
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([report, complete]);
        ScriptedRunner::new(&[]).run_step(step, variables).await
    }
}

/// Only the built-in runner reports the steps of a built-in (`http`) execution: its owner's
/// step reports and completions are refused (`runner_only`) before, during and after the
/// run, and change nothing; cancelling still works.
pub async fn builtin_runs_refuse_outside_results(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.http_case("built-in only", 2).await;
    let e = h.start(&case).await;
    expect_conflict(
        h.engine
            .report_steps(&h.user, &e.id, vec![report(0, StepStatus::Passed)])
            .await,
        "runner_only",
    );
    expect_conflict(h.engine.complete(&h.user, &e.id).await, "runner_only");
    let queued = h.execution(&e.id).await;
    assert_eq!(queued.status, Queued);
    assert_eq!(queued.progress.completed, 0);
    assert_eq!(h.history(&e.id).await.len(), 1, "nothing was recorded");

    let runner = OutsiderDuringRun {
        engine: h.engine.clone(),
        owner: h.user.clone(),
        execution_id: e.id.clone(),
        answers: Mutex::new(Vec::new()),
    };
    h.drain_queue();
    h.engine.run_execution(&runner, &e.id).await.expect("run");
    let answers = std::mem::take(&mut *runner.answers.lock().unwrap_or_else(|p| p.into_inner()));
    assert_eq!(answers.len(), 4, "two steps, two tries each");
    for answer in answers {
        expect_conflict(answer, "runner_only");
    }
    let done = h.execution(&e.id).await;
    assert_eq!(done.status, Passed, "the runner's own results stand");
    assert_eq!((done.progress.passed, done.progress.failed), (2, 0));
    assert!(done.steps.iter().all(|s| s.status == StepStatus::Passed));
    expect_conflict(h.engine.complete(&h.user, &e.id).await, "runner_only");

    let e = h.start(&case).await;
    let cancelled = h.engine.cancel(&h.user, &e.id, None).await.expect("cancel");
    assert_eq!(cancelled.status, Cancelled);
    h.check_histories().await;
}
