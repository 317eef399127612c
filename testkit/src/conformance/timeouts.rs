//! The timeout sweep.

use super::*;

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
