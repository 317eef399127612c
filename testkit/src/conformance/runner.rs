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
