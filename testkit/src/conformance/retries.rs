//! Retries: manual, automatic, of a suite's child and of a whole suite.

use super::*;

/// A manual retry: a new queued attempt of a terminal execution.
pub async fn retry_manual(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let mut events = h.bus.subscribe();
    let case = h.external_case("retry", 3).await;
    let original = h.start(&case).await;
    expect_invalid_transition(h.engine.retry(&h.user, &original.id).await, Queued, Queued);
    h.report(&original.id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_invalid_transition(h.engine.retry(&h.user, &original.id).await, Running, Queued);
    h.report(&original.id, &[(1, StepStatus::Failed)])
        .await
        .expect("report");
    let failed = h
        .engine
        .complete(&h.user, &original.id)
        .await
        .expect("complete");
    assert_eq!(failed.status, Failed);
    let history_before = h.history(&original.id).await;
    expect_not_found(h.engine.retry(&bob, &original.id).await);
    drain_events(&mut events);

    h.advance_secs(5);
    let retry = h.engine.retry(&h.user, &original.id).await.expect("retry");
    assert_ne!(retry.id, original.id);
    assert_eq!((retry.status, retry.attempt), (Queued, 2));
    assert_eq!(retry.retry_of.as_deref(), Some(original.id.as_str()));
    assert_eq!(retry.retried_by, None);
    assert_eq!(retry.test_case_id, original.test_case_id);
    assert_eq!(retry.owner, h.owner());
    assert_eq!(
        (retry.created_at, retry.queued_at),
        (h.now(), Some(h.now()))
    );
    assert_eq!(
        retry.deadline_at,
        Some(h.now().plus_millis(DEFAULT_TIMEOUT_S as i64 * 1000))
    );
    assert_eq!((retry.started_at, retry.finished_at), (None, None));
    assert_eq!(retry.progress, Progress::new(3));
    assert!(retry.steps.iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!(retry.steps.len(), 3);
    assert_eq!(h.execution(&retry.id).await, retry);
    let stored_original = h.execution(&original.id).await;
    assert_eq!(
        stored_original.retried_by.as_deref(),
        Some(retry.id.as_str())
    );
    assert_eq!(stored_original.status, Failed);
    assert_eq!(
        h.history(&original.id).await,
        history_before,
        "a retry does not touch the original's history"
    );
    let history = h.history(&retry.id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, h.actor());
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&original.id)),
        "{history:?}"
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry.id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert_eq!(
        published
            .iter()
            .find(|e| e.execution_id == retry.id)
            .map(|e| e.attempt),
        Some(2)
    );
    assert!(kinds_for(&published, &original.id).is_empty());
    assert_eq!(
        h.store.get_definition(&retry.id).await.unwrap(),
        h.store.get_definition(&original.id).await.unwrap(),
        "a retry runs the same definition"
    );
    // The retry runs on its own.
    h.pass(&retry.id).await;
    assert_eq!(h.status(&original.id).await, Failed);

    // A cancelled execution may be retried too; built-in retries are enqueued.
    let builtin = h.http_case("retry built-in", 1).await;
    let b = h.start(&builtin).await;
    h.drain_queue();
    h.engine.cancel(&h.user, &b.id, None).await.expect("cancel");
    let again = h.engine.retry(&h.user, &b.id).await.expect("retry");
    assert_eq!(again.attempt, 2);
    assert_eq!(
        h.drain_queue(),
        vec![WorkItem {
            execution_id: again.id.clone(),
            priority: Priority::Normal,
        }]
    );

    // Partitioned: the retry gets fresh step records.
    let big = h.external_case("retry partitioned", 55).await;
    let first = h.start(&big).await;
    h.fail(&first.id).await;
    let second = h.engine.retry(&h.user, &first.id).await.expect("retry");
    assert_eq!(second.storage, Some(StepStorage::Partitioned));
    assert!(second.steps.is_empty());
    let steps = h.all_steps(&second.id, 20).await;
    assert_eq!(steps.len(), 55);
    for step in &steps {
        assert_eq!(
            *step,
            StepResult::pending(step.index, &format!("step {}", step.index))
        );
    }
    let old_steps = h.all_steps(&first.id, 20).await;
    assert_eq!(
        old_steps[0].status,
        StepStatus::Failed,
        "the original keeps its steps"
    );
    assert_eq!(old_steps[1].status, StepStatus::Skipped);

    // Deleting the test case does not stop a retry: the definition travels with it.
    let doomed = h.external_case("deleted later", 2).await;
    let before_delete = h.start(&doomed).await;
    h.fail(&before_delete.id).await;
    h.engine
        .delete_entry::<TestCase>(&h.user, &doomed.id)
        .await
        .expect("delete");
    let orphan = h
        .engine
        .retry(&h.user, &before_delete.id)
        .await
        .expect("retry of a deleted case");
    assert_eq!(orphan.progress.total, 2);
    assert_eq!(
        h.store.get_definition(&orphan.id).await.unwrap(),
        Some(doomed.clone())
    );
    expect_not_found(
        h.engine
            .start_case(&h.user, &doomed.id, StartRequest::default())
            .await,
    );

    // A finished suite's child may be retried by hand; the retry stands alone.
    let definition = h
        .create_suite(&[&case], SuiteMode::Parallel, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let child = h.children(&suite.id).await.remove(0);
    h.fail(&child.id).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    let lone = h
        .engine
        .retry(&h.user, &child.id)
        .await
        .expect("retry a child");
    assert_eq!((lone.parent_id.as_deref(), lone.slot), (None, None));
    assert_eq!(h.execution(&lone.id).await, lone);
    assert_eq!(
        ids(&h.children(&suite.id).await),
        vec![child.id.clone()],
        "not a child of the suite"
    );
    assert_eq!(
        h.status(&suite.id).await,
        Failed,
        "a manual retry does not reopen the suite"
    );
    h.check_histories().await;
}

/// max_retries 1: a failing case gets exactly one automatic retry.
pub async fn retry_automatic(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let case = h.external_case("auto retry", 2).await;
    let original = h.start_with(&case, config(None, Some(1))).await;
    assert_eq!(original.max_retries, 1);
    h.fail(&original.id).await;

    let failed = h.execution(&original.id).await;
    assert_eq!(failed.status, Failed);
    let retry_id = failed.retried_by.clone().expect("an automatic retry");
    let retry = h.execution(&retry_id).await;
    assert_eq!(
        (retry.status, retry.attempt, retry.max_retries),
        (Queued, 2, 1)
    );
    assert_eq!(retry.retry_of.as_deref(), Some(original.id.as_str()));
    let history = h.history(&retry_id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, ENGINE_ACTOR);
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("automatic retry")),
        "{history:?}"
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry_id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert_eq!(
        kinds_for(&published, &original.id).last(),
        Some(&(EventKind::ExecutionFinished, Failed))
    );

    // The retry fails too: no third attempt.
    h.fail(&retry_id).await;
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    let all = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: Some(case.id.clone()),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(
        id_set(all.iter().map(|e| e.id.as_str())),
        id_set([original.id.as_str(), retry_id.as_str()])
    );

    // Passing or cancelling earns no retry; an errored step's failure does.
    let passing = h.start_with(&case, config(None, Some(1))).await;
    h.pass(&passing.id).await;
    assert_eq!(h.execution(&passing.id).await.retried_by, None);
    let cancelled = h.start_with(&case, config(None, Some(1))).await;
    h.engine
        .cancel(&h.user, &cancelled.id, None)
        .await
        .expect("cancel");
    assert_eq!(h.execution(&cancelled.id).await.retried_by, None);
    // max_retries 2: attempts 1, 2 and 3.
    let persistent = h.start_with(&case, config(None, Some(2))).await;
    let mut attempt = persistent.id.clone();
    let mut attempts = vec![];
    loop {
        h.finish(&attempt, StepStatus::Error).await;
        let done = h.execution(&attempt).await;
        attempts.push(done.attempt);
        match done.retried_by {
            Some(next) => attempt = next,
            None => break,
        }
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    h.check_histories().await;
}

/// A suite child with max_retries retries inside its suite; the suite ends with the retry.
pub async fn retry_in_suite(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases: [TestCase; 2] = h.external_cases("r", 1).await;
    let definition = h
        .create_suite(&cases.each_ref(), SuiteMode::Parallel, None, false)
        .await;

    // The retry passes: the suite passes.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    let retry_id = h
        .execution(&c[0])
        .await
        .retried_by
        .expect("retried in the suite");
    let retry = h.execution(&retry_id).await;
    assert_eq!((retry.status, retry.attempt), (Queued, 2));
    assert_eq!(retry.parent_id.as_deref(), Some(suite.id.as_str()));
    assert_eq!(retry.slot, Some(0));
    assert_eq!(retry.test_suite_id.as_deref(), Some(definition.id.as_str()));
    let plan = h.plan(&suite.id).await;
    assert_eq!(
        plan.slots[0].execution_id, retry_id,
        "the slot points at the newest attempt"
    );
    assert_eq!(plan.slots[0].status, Queued);
    assert_eq!(h.status(&suite.id).await, Running);
    h.pass(&c[1]).await;
    assert_eq!(
        h.status(&suite.id).await,
        Running,
        "the retry is still to run"
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(2, |c| {
            c.passed = 1;
            c.queued = 1;
        })
    );
    let listed = id_set(h.children(&suite.id).await.iter().map(|e| e.id.as_str()));
    assert_eq!(
        listed,
        id_set([c[0].as_str(), c[1].as_str(), retry_id.as_str()]),
        "every attempt is a child"
    );
    drain_events(&mut events);
    h.pass(&retry_id).await;
    assert_eq!(h.status(&suite.id).await, Passed);
    assert_eq!(h.counts(&suite.id).await, counts(2, |c| c.passed = 2));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite.id),
        vec![(EventKind::SuiteFinished, Passed)]
    );
    assert_eq!(
        transitions(&h.history(&suite.id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Passed)
        ]
    );

    // The retry fails too: the suite fails, with no third attempt.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.pass(&c[1]).await;
    h.fail(&c[0]).await;
    assert_eq!(h.status(&suite.id).await, Running);
    let retry_id = h.execution(&c[0]).await.retried_by.expect("retried");
    h.fail(&retry_id).await;
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(
        h.counts(&suite.id).await,
        counts(2, |c| {
            c.passed = 1;
            c.failed = 1;
        })
    );
    assert_eq!(h.plan(&suite.id).await.slots[0].execution_id, retry_id);
    assert_eq!(h.children(&suite.id).await.len(), 3);

    // Cancelling the suite cancels the pending retry, and no retry follows a cancellation.
    let suite = h.start_suite(&definition, config(None, Some(1))).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    let retry_id = h.execution(&c[0]).await.retried_by.expect("retried");
    h.engine
        .cancel(&h.user, &suite.id, None)
        .await
        .expect("cancel");
    assert_eq!(h.status(&retry_id).await, Cancelled);
    assert_eq!(h.status(&c[1]).await, Cancelled);
    assert_eq!(h.execution(&retry_id).await.retried_by, None);
    assert_eq!(h.execution(&c[1]).await.retried_by, None);
    assert_eq!(h.children(&suite.id).await.len(), 3);
    h.check_histories().await;
}

/// A manual retry of a finished suite: a new suite execution with fresh children (every
/// definition, inline or partitioned, carried over); the original and its children stay as
/// they were.
pub async fn retry_suite(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let small = h.external_case("retry suite small", 3).await;
    let big = h.external_case("retry suite big", 55).await;
    let definition = h
        .create_suite(&[&small, &big], SuiteMode::Parallel, None, false)
        .await;
    let first = h.start_suite(&definition, config(None, Some(1))).await;
    expect_invalid_transition(h.engine.retry(&h.user, &first.id).await, Queued, Queued);
    let slots: Vec<String> = first
        .suite
        .clone()
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    // Slot 0 fails twice (its automatic retry too); slot 1 passes.
    h.fail(&slots[0]).await;
    expect_invalid_transition(h.engine.retry(&h.user, &first.id).await, Running, Queued);
    let auto = h
        .execution(&slots[0])
        .await
        .retried_by
        .expect("automatic retry");
    h.fail(&auto).await;
    h.pass(&slots[1]).await;
    assert_eq!(h.status(&first.id).await, Failed);
    let old_children = h.children(&first.id).await;
    assert_eq!(old_children.len(), 3);
    let old_history = h.history(&first.id).await;
    drain_events(&mut events);

    h.advance_secs(1);
    let retry = h
        .engine
        .retry(&h.user, &first.id)
        .await
        .expect("retry suite");
    assert_eq!(
        (retry.kind, retry.status, retry.attempt),
        (ExecutionKind::Suite, Queued, 2)
    );
    assert_eq!(retry.retry_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(retry.test_suite_id.as_deref(), Some(definition.id.as_str()));
    assert_eq!((retry.parent_id.as_deref(), retry.storage), (None, None));
    assert_eq!(retry.queued_at, Some(h.now()));
    assert_eq!(h.execution(&retry.id).await, retry);
    let history = h.history(&retry.id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(history[0].actor, h.actor());
    assert!(
        history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&first.id)),
        "{history:?}"
    );
    let plan = retry.suite.clone().expect("a fresh plan");
    assert_eq!(plan.counts(), counts(2, |c| c.queued = 2));
    assert_eq!(
        plan.slots
            .iter()
            .map(|s| s.test_case_id.clone())
            .collect::<Vec<_>>(),
        vec![small.id.clone(), big.id.clone()]
    );

    let fresh = h.children(&retry.id).await;
    assert_eq!(fresh.len(), 2);
    let old_slot_ids = [auto.clone(), slots[1].clone()];
    for (slot, child) in fresh.iter().enumerate() {
        assert_eq!(
            child.id, plan.slots[slot].execution_id,
            "children in suite order"
        );
        assert!(
            !old_children.iter().any(|o| o.id == child.id),
            "a fresh child"
        );
        assert_eq!(child.status, Queued);
        assert_eq!(child.slot, Some(slot as u32));
        assert_eq!(child.parent_id.as_deref(), Some(retry.id.as_str()));
        assert_eq!((child.attempt, child.retry_of.as_deref()), (1, None));
        assert_eq!(child.retried_by, None);
        assert_eq!(child.max_retries, 1, "the config carries over");
        assert_eq!(child.progress.completed, 0);
        assert_eq!(
            h.store.get_definition(&child.id).await.unwrap(),
            h.store.get_definition(&old_slot_ids[slot]).await.unwrap(),
            "the same definition runs again"
        );
        assert_eq!(
            transitions(&h.history(&child.id).await),
            vec![(None, Pending), (Some(Pending), Queued)]
        );
    }
    assert_eq!(fresh[0].storage, Some(StepStorage::Inline));
    assert_eq!(fresh[0].steps.len(), 3);
    assert!(
        fresh[0]
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Pending)
    );
    assert_eq!(fresh[1].storage, Some(StepStorage::Partitioned));
    assert!(fresh[1].steps.is_empty());
    let steps = h.all_steps(&fresh[1].id, 20).await;
    assert_eq!(steps.len(), 55);
    assert!(steps.iter().all(|s| s.status == StepStatus::Pending));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &retry.id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    for child in &fresh {
        assert_eq!(
            kinds_for(&published, &child.id),
            vec![(EventKind::ExecutionQueued, Queued)]
        );
    }

    // The original is untouched but for its lineage.
    let original = h.execution(&first.id).await;
    assert_eq!(original.status, Failed);
    assert_eq!(original.retried_by.as_deref(), Some(retry.id.as_str()));
    assert_eq!(h.history(&first.id).await, old_history);
    assert_eq!(ids(&h.children(&first.id).await), ids(&old_children));
    for old in &old_children {
        assert_eq!(h.execution(&old.id).await.status, old.status);
    }

    // The retry runs like any suite.
    for child in &fresh {
        h.pass(&child.id).await;
    }
    assert_eq!(h.status(&retry.id).await, Passed);
    assert_eq!(h.counts(&retry.id).await, counts(2, |c| c.passed = 2));
    assert_eq!(h.status(&first.id).await, Failed);
    h.check_histories().await;
}
