//! Quarantine: a quarantined case's failure is recorded as such but does not fail its suite,
//! until the quarantine lapses or is lifted; the case's history tells who did what.

use super::*;
use runledger::domain::quarantine::CaseAction;
use runledger::engine::QuarantineRequest;

/// Runs `suite` with `failing` failing and every other child passing; its final record.
async fn run_failing(h: &Harness, suite: &TestSuite, failing: &TestCase) -> Execution {
    let run = h.start_suite(suite, ExecutionConfig::default()).await;
    for child in h.children(&run.id).await {
        if child.test_case_id.as_deref() == Some(failing.id.as_str()) {
            h.fail(&child.id).await;
        } else {
            h.pass(&child.id).await;
        }
    }
    h.execution(&run.id).await
}

pub async fn quarantine_mutes_failures(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let [flaky, solid] = h.external_cases("quarantine", 1).await;
    let suite = h
        .create_suite(&[&flaky, &solid], SuiteMode::Parallel, None, false)
        .await;
    let hour = 3_600_000;
    let request = |until: Timestamp| QuarantineRequest {
        reason: "flaky on CI".into(),
        until,
    };

    // Refused: too far ahead, in the past, someone else's case.
    let too_far = h.now().plus_millis(31 * 24 * hour);
    let refused = h
        .engine
        .quarantine(&h.user, &flaky.id, request(too_far))
        .await;
    assert!(
        matches!(refused, Err(EngineError::Validation(_))),
        "{refused:?}"
    );
    let past = h
        .engine
        .quarantine(&h.user, &flaky.id, request(h.now()))
        .await;
    assert!(matches!(past, Err(EngineError::Validation(_))), "{past:?}");
    let stranger = fresh_user();
    let theirs = h
        .engine
        .quarantine(&stranger, &flaky.id, request(h.now().plus_millis(hour)))
        .await;
    assert!(
        matches!(theirs, Err(EngineError::NotFound { .. })),
        "{theirs:?}"
    );
    assert!(
        h.engine
            .case_history(&h.user, &flaky.id)
            .await
            .expect("history")
            .is_empty()
    );

    // Quarantined: its failure is muted, the suite passes.
    let until = h.now().plus_millis(hour);
    let quarantine = h
        .engine
        .quarantine(&h.user, &flaky.id, request(until))
        .await
        .expect("quarantine");
    assert_eq!(
        (quarantine.until, quarantine.by.clone()),
        (until, h.actor())
    );
    let listed = h
        .engine
        .list_quarantined(&h.user, 10, None)
        .await
        .expect("list");
    let listed: Vec<&str> = listed
        .items
        .iter()
        .map(|q| q.test_case_id.as_str())
        .collect();
    assert_eq!(listed, [flaky.id.as_str()]);
    let run = run_failing(&h, &suite, &flaky).await;
    assert_eq!(run.status, Passed, "its only failure is muted");
    let counts = run.suite.as_ref().expect("a plan").counts();
    assert_eq!((counts.failed, counts.muted, counts.passed), (1, 1, 1));
    let failed_child = h
        .children(&run.id)
        .await
        .into_iter()
        .find(|c| c.test_case_id.as_deref() == Some(flaky.id.as_str()))
        .expect("the flaky child");
    assert_eq!(failed_child.status, Failed, "still recorded as it ended");
    // The failure still counts in the case's analytics.
    let rollup = h
        .store
        .current_rollup(&flaky.id)
        .await
        .expect("read")
        .expect("a rollup");
    assert_eq!(rollup.counts.failed, 1);

    // Lapsed: the same failure fails the suite.
    h.advance_millis(hour);
    let run = run_failing(&h, &suite, &flaky).await;
    assert_eq!(run.status, Failed);
    assert_eq!(run.suite.as_ref().expect("a plan").counts().muted, 0);
    let listed = h
        .engine
        .list_quarantined(&h.user, 10, None)
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "a lapsed quarantine is not listed");

    // Quarantined again, lifted by an administrator: failures fail again.
    let until = h.now().plus_millis(hour);
    h.engine
        .quarantine(&h.user, &flaky.id, request(until))
        .await
        .expect("quarantine again");
    let ops = Caller::admin("ops");
    assert!(h.engine.release(&ops, &flaky.id).await.expect("release"));
    assert!(
        !h.engine
            .release(&ops, &flaky.id)
            .await
            .expect("release again")
    );
    let run = run_failing(&h, &suite, &flaky).await;
    assert_eq!(run.status, Failed);
    let history = h
        .engine
        .case_history(&h.user, &flaky.id)
        .await
        .expect("history");
    let told: Vec<(CaseAction, &str)> = history
        .iter()
        .map(|e| (e.action, e.actor.as_str()))
        .collect();
    assert_eq!(
        told,
        [
            (CaseAction::Quarantined, h.actor().as_str()),
            (CaseAction::Quarantined, h.actor().as_str()),
            (CaseAction::Released, "user:ops"),
        ]
    );
    assert_eq!(history[1].until, Some(until));
    assert_eq!(history[0].reason.as_deref(), Some("flaky on CI"));
    assert!(
        h.engine
            .quarantine_of(&h.user, &flaky.id)
            .await
            .expect("read")
            .is_none()
    );
}

/// With fail-fast, a muted failure does not stop the suite.
pub async fn quarantine_and_fail_fast(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let [flaky, next] = h.external_cases("fail-fast", 1).await;
    let suite = h
        .create_suite(&[&flaky, &next], SuiteMode::Sequential, None, true)
        .await;
    let request = QuarantineRequest {
        reason: "known bad".into(),
        until: h.now().plus_millis(3_600_000),
    };
    h.engine
        .quarantine(&h.user, &flaky.id, request)
        .await
        .expect("quarantine");
    let run = h.start_suite(&suite, ExecutionConfig::default()).await;
    let first = h
        .children(&run.id)
        .await
        .into_iter()
        .find(|c| c.status == Queued)
        .expect("first");
    assert_eq!(first.test_case_id.as_deref(), Some(flaky.id.as_str()));
    h.fail(&first.id).await;
    let second = h
        .children(&run.id)
        .await
        .into_iter()
        .find(|c| c.status == Queued)
        .expect("the next child starts");
    h.pass(&second.id).await;
    assert_eq!(h.status(&run.id).await, Passed);
}

/// An imported report's failure of a quarantined case is muted as a native one is: the
/// report's suite passes while the quarantine holds, and fails again once it lapsed.
pub async fn quarantine_mutes_imported_failures(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let first = h
        .engine
        .import(&h.user, super::imports::import_request(None))
        .await
        .expect("import");
    assert_eq!(first.execution.status, Failed, "test_pay errored");
    let pay = h
        .children(&first.execution.id)
        .await
        .into_iter()
        .find(|c| c.name == "test_pay")
        .and_then(|c| c.test_case_id)
        .expect("test_pay's case");
    let hour = 3_600_000;
    h.engine
        .quarantine(
            &h.user,
            &pay,
            QuarantineRequest {
                reason: "the payment sandbox is down".into(),
                until: h.now().plus_millis(hour),
            },
        )
        .await
        .expect("quarantine");

    let muted = h
        .engine
        .import(&h.user, super::imports::import_request(None))
        .await
        .expect("import");
    let stored = h.execution(&muted.execution.id).await;
    assert_eq!(stored.status, Passed, "its only failure is muted");
    let counts = stored.suite.as_ref().expect("a plan").counts();
    assert_eq!((counts.error, counts.muted), (1, 1), "{counts:?}");
    let child = h
        .children(&stored.id)
        .await
        .into_iter()
        .find(|c| c.test_case_id.as_deref() == Some(pay.as_str()))
        .expect("test_pay's execution");
    assert_eq!(
        child.status,
        ExecutionStatus::Error,
        "still recorded as it ended"
    );

    h.advance_millis(hour);
    let lapsed = h
        .engine
        .import(&h.user, super::imports::import_request(None))
        .await
        .expect("import");
    assert_eq!(h.status(&lapsed.execution.id).await, Failed);
    let counts = h
        .execution(&lapsed.execution.id)
        .await
        .suite
        .expect("a plan")
        .counts();
    assert_eq!(counts.muted, 0);
}
