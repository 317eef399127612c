//! Idempotency keys on starts.

use super::*;

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
