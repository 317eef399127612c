//! The recovery indexes: active and overdue executions.

use super::*;

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
