//! Completing and cancelling: the transitions that end an execution.

use super::*;

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
