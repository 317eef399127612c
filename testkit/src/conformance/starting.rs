//! Starting a case execution.

use super::*;

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
