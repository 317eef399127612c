//! Step reports, step partitioning (50 steps and more) and very long executions.

use super::*;
use runledger::ports::StepsQuery;

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
    let tail = h
        .store
        .list_steps(&steps_of(&part.id, Some(47), 20))
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![48, 49]
    );
    assert!(
        h.store
            .list_steps(&steps_of(&part.id, Some(49), 20))
            .await
            .unwrap()
            .is_empty()
    );
    let head = h
        .store
        .list_steps(&steps_of(&part.id, None, 3))
        .await
        .unwrap();
    assert_eq!(
        head.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        h.store
            .list_steps(&steps_of(UNKNOWN_EXECUTION, None, 3))
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

fn steps_of(execution_id: &str, after_index: Option<u32>, limit: usize) -> StepsQuery {
    StepsQuery {
        execution_id: execution_id.to_owned(),
        limit,
        after_index,
    }
}
