//! Suites: parallel, sequential, bounded parallelism and fail-fast.

use super::*;

/// A parallel suite: every child queued at once; one failure fails the suite once all end.
pub async fn suite_parallel(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases: [TestCase; 3] = h.external_cases("p", 2).await;
    let definition = h
        .create_suite(&cases.each_ref(), SuiteMode::Parallel, None, false)
        .await;
    let suite = h
        .start_suite(
            &definition,
            ExecutionConfig {
                tags: vec!["ci".into()],
                ..ExecutionConfig::default()
            },
        )
        .await;
    let suite_id = suite.id.clone();
    assert_eq!((suite.kind, suite.status), (ExecutionKind::Suite, Queued));
    assert_eq!(suite.test_suite_id.as_deref(), Some(definition.id.as_str()));
    assert_eq!(
        (suite.test_case_id.as_deref(), suite.parent_id.as_deref()),
        (None, None)
    );
    assert_eq!((suite.runner, suite.storage), (None, None));
    assert!(suite.steps.is_empty());
    assert_eq!(h.execution(&suite_id).await, suite);
    let plan = suite.suite.clone().expect("a suite plan");
    assert_eq!(
        (plan.mode, plan.concurrency, plan.fail_fast),
        (SuiteMode::Parallel, DEFAULT_MAX_PARALLEL, false)
    );
    assert_eq!(
        plan.slots
            .iter()
            .map(|s| s.test_case_id.clone())
            .collect::<Vec<_>>(),
        cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(plan.counts(), counts(3, |c| c.queued = 3));

    let children = h.children(&suite_id).await;
    assert_eq!(children.len(), 3);
    for (slot, child) in children.iter().enumerate() {
        assert_eq!(
            child.id, plan.slots[slot].execution_id,
            "children in suite order"
        );
        assert_eq!(child.slot, Some(slot as u32));
        assert_eq!(child.kind, ExecutionKind::Case);
        assert_eq!(child.status, Queued);
        assert_eq!(child.test_case_id.as_deref(), Some(cases[slot].id.as_str()));
        assert_eq!(child.test_suite_id.as_deref(), Some(definition.id.as_str()));
        assert_eq!(child.owner, h.owner());
        assert!(child.tags.contains(&"ci".to_owned()));
        let history = h.history(&child.id).await;
        assert_eq!(
            transitions(&history),
            vec![(None, Pending), (Some(Pending), Queued)]
        );
        assert_eq!(history[0].actor, h.actor());
        assert_eq!(history[1].actor, ENGINE_ACTOR);
        assert_eq!(
            h.store.get_definition(&child.id).await.unwrap(),
            Some(cases[slot].clone()),
            "each child keeps its case's definition"
        );
    }
    let history = h.history(&suite_id).await;
    assert_eq!(transitions(&history), vec![(None, Queued)]);
    assert_eq!(
        (history[0].actor.as_str(), history[0].reason.as_deref()),
        (h.actor().as_str(), Some("started"))
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite_id),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    for child in &children {
        assert_eq!(
            kinds_for(&published, &child.id),
            vec![(EventKind::ExecutionQueued, Queued)]
        );
        assert!(
            published
                .iter()
                .filter(|e| e.execution_id == child.id)
                .all(|e| e.parent_id.as_deref() == Some(suite_id.as_str()))
        );
    }
    assert!(
        h.drain_queue().is_empty(),
        "neither external children nor suites are enqueued"
    );

    // Suites have no steps of their own.
    expect_conflict(
        h.report(&suite_id, &[(0, StepStatus::Passed)]).await,
        "not_applicable",
    );
    expect_conflict(
        h.engine.complete(&h.user, &suite_id).await,
        "not_applicable",
    );

    h.report(&children[0].id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    assert_eq!(
        h.status(&suite_id).await,
        Running,
        "a child started, so the suite runs"
    );
    let last = h.history(&suite_id).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Queued), Running, ENGINE_ACTOR)
    );
    assert_eq!(
        h.counts(&suite_id).await,
        counts(3, |c| {
            c.running = 1;
            c.queued = 2;
        })
    );
    h.pass(&children[0].id).await;
    h.fail(&children[1].id).await;
    assert_eq!(h.status(&suite_id).await, Running);
    assert_eq!(
        h.counts(&suite_id).await,
        counts(3, |c| {
            c.passed = 1;
            c.failed = 1;
            c.queued = 1;
        })
    );
    drain_events(&mut events);
    h.pass(&children[2].id).await;
    let done = h.execution(&suite_id).await;
    assert_eq!(done.status, Failed);
    assert_eq!(done.finished_at, Some(h.now()));
    assert_eq!(
        done.suite.as_ref().map(SuitePlan::counts),
        Some(counts(3, |c| {
            c.passed = 2;
            c.failed = 1;
        }))
    );
    let last = h.history(&suite_id).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Running), Failed, ENGINE_ACTOR)
    );
    assert_eq!(last.reason.as_deref(), Some("every child finished"));
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite_id),
        vec![(EventKind::SuiteFinished, Failed)]
    );
    let listed = h.children(&suite_id).await;
    assert_eq!(ids(&listed), ids(&children));
    assert_eq!(
        listed.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![Passed, Failed, Passed]
    );
    expect_invalid_transition(
        h.engine.cancel(&h.user, &suite_id, None).await,
        Failed,
        Cancelled,
    );

    // Every child passing passes the suite.
    let definition = h
        .create_suite(&[&cases[0], &cases[1]], SuiteMode::Parallel, None, false)
        .await;
    let suite_id = h
        .start_suite(&definition, ExecutionConfig::default())
        .await
        .id;
    for child in h.children(&suite_id).await {
        h.pass(&child.id).await;
    }
    assert_eq!(h.status(&suite_id).await, Passed);
    assert_eq!(h.counts(&suite_id).await, counts(2, |c| c.passed = 2));
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite_id).last(),
        Some(&(EventKind::SuiteFinished, Passed))
    );
    h.check_histories().await;
}

/// A sequential suite: one child at a time, the next queued as the last one ends.
pub async fn suite_sequential(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases: [TestCase; 3] = h.external_cases("s", 1).await;
    let definition = h
        .create_suite(&cases.each_ref(), SuiteMode::Sequential, Some(5), false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let plan = suite.suite.clone().expect("plan");
    assert_eq!((plan.mode, plan.concurrency), (SuiteMode::Sequential, 1));
    let c: Vec<String> = plan.slots.iter().map(|s| s.execution_id.clone()).collect();
    let statuses = |children: &[Execution]| children.iter().map(|c| c.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Queued, Pending, Pending]
    );
    let waiting = h.execution(&c[1]).await;
    assert_eq!((waiting.queued_at, waiting.deadline_at), (None, None));
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &c[0]),
        vec![(EventKind::ExecutionQueued, Queued)]
    );
    assert!(
        kinds_for(&published, &c[1]).is_empty(),
        "a waiting child is not announced"
    );
    expect_invalid_transition(
        h.report(&c[1], &[(0, StepStatus::Passed)]).await,
        Pending,
        Running,
    );
    expect_invalid_transition(h.engine.complete(&h.user, &c[1]).await, Pending, Passed);

    h.pass(&c[0]).await;
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Passed, Queued, Pending]
    );
    let last = h.history(&c[1]).await.pop().expect("history");
    assert_eq!(
        (last.from, last.to, last.actor.as_str()),
        (Some(Pending), Queued, ENGINE_ACTOR)
    );
    assert_eq!(h.execution(&c[1]).await.queued_at, Some(h.now()));
    h.fail(&c[1]).await;
    assert_eq!(
        statuses(&h.children(&suite.id).await),
        vec![Passed, Failed, Queued],
        "no fail_fast: go on"
    );
    assert_eq!(h.status(&suite.id).await, Running);
    drain_events(&mut events);
    h.pass(&c[2]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.passed = 2;
            c.failed = 1;
        })
    );
    assert_eq!(
        kinds_for(&drain_events(&mut events), &suite.id),
        vec![(EventKind::SuiteFinished, Failed)]
    );

    // Built-in children go on the queue one at a time.
    let runner = ScriptedRunner::new(&[]);
    let b0 = h.http_case("b0", 1).await;
    let b1 = h.http_case("b1", 1).await;
    let definition = h
        .create_suite(&[&b0, &b1], SuiteMode::Sequential, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    let first = h.drain_queue();
    assert_eq!(
        first
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![c[0].clone()]
    );
    h.engine.run_execution(&runner, &c[0]).await.expect("run");
    assert_eq!(h.status(&c[0]).await, Passed);
    let second = h.drain_queue();
    assert_eq!(
        second
            .iter()
            .map(|w| w.execution_id.clone())
            .collect::<Vec<_>>(),
        vec![c[1].clone()]
    );
    h.engine.run_execution(&runner, &c[1]).await.expect("run");
    assert!(h.drain_queue().is_empty());
    assert_eq!(h.status(&suite.id).await, Passed);
    h.check_histories().await;
}

/// A parallel suite with max_parallel 2 of 5: never more than two children active.
pub async fn suite_max_parallel(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut cases = Vec::new();
    for i in 0..5 {
        cases.push(h.external_case(&format!("m{i}"), 1).await);
    }
    let refs: Vec<&TestCase> = cases.iter().collect();
    let definition = h
        .create_suite(&refs, SuiteMode::Parallel, Some(2), false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    assert_eq!(suite.suite.as_ref().map(|p| p.concurrency), Some(2));
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    let statuses =
        |children: Vec<Execution>| children.into_iter().map(|c| c.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Queued, Pending, Pending, Pending]
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(5, |c| {
            c.queued = 2;
            c.pending = 3;
        })
    );

    h.report(&c[1], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Running, Pending, Pending, Pending]
    );
    h.pass(&c[1]).await;
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Queued, Passed, Queued, Pending, Pending]
    );
    h.engine
        .cancel(&h.user, &c[0], None)
        .await
        .expect("cancel a child");
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Cancelled, Passed, Queued, Queued, Pending]
    );
    h.pass(&c[3]).await;
    assert_eq!(
        statuses(h.children(&suite.id).await),
        vec![Cancelled, Passed, Queued, Passed, Queued]
    );
    h.pass(&c[2]).await;
    assert_eq!(h.status(&suite.id).await, Running);
    h.pass(&c[4]).await;
    assert_eq!(
        h.status(&suite.id).await,
        Failed,
        "a cancelled child means not every child passed"
    );
    assert_eq!(
        h.counts(&suite.id).await,
        counts(5, |c| {
            c.passed = 4;
            c.cancelled = 1;
        })
    );

    // All passing, two at a time.
    let definition = h
        .create_suite(&refs, SuiteMode::Parallel, Some(2), false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    for (i, child) in c.iter().enumerate() {
        let active = h.counts(&suite.id).await;
        assert_eq!(
            active.queued + active.running,
            2.min(5 - i as u32),
            "after {i} finished"
        );
        h.pass(child).await;
    }
    assert_eq!(h.status(&suite.id).await, Passed);
    assert_eq!(h.counts(&suite.id).await, counts(5, |c| c.passed = 5));
    h.check_histories().await;
}

/// fail_fast: the first failure cancels every unfinished child and fails the suite.
pub async fn suite_fail_fast(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let cases: [TestCase; 3] = h.external_cases("f", 2).await;
    let definition = h
        .create_suite(&cases.each_ref(), SuiteMode::Parallel, None, true)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    assert!(suite.suite.as_ref().is_some_and(|p| p.fail_fast));
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.report(&c[0], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    drain_events(&mut events);

    h.fail(&c[1]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    assert_eq!(h.status(&c[0]).await, Cancelled);
    assert_eq!(h.status(&c[2]).await, Cancelled);
    for (child, from) in [(&c[0], Running), (&c[2], Queued)] {
        let last = h.history(child).await.pop().expect("history");
        assert_eq!(
            (last.from, last.to, last.actor.as_str()),
            (Some(from), Cancelled, ENGINE_ACTOR)
        );
        assert!(
            last.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("fail_fast")),
            "{last:?}"
        );
    }
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.failed = 1;
            c.cancelled = 2;
        })
    );
    let published = drain_events(&mut events);
    assert_eq!(
        kinds_for(&published, &suite.id),
        vec![(EventKind::SuiteFinished, Failed)]
    );
    assert_eq!(
        transitions(&h.history(&suite.id).await),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Failed)
        ]
    );
    // The cancelled children stay cancelled.
    expect_invalid_transition(
        h.report(&c[0], &[(1, StepStatus::Passed)]).await,
        Cancelled,
        Running,
    );

    // Sequential fail_fast cancels the children still waiting.
    let definition = h
        .create_suite(&cases.each_ref(), SuiteMode::Sequential, None, true)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.fail(&c[0]).await;
    assert_eq!(h.status(&suite.id).await, Failed);
    for child in &c[1..] {
        let last = h.history(child).await.pop().expect("history");
        assert_eq!(
            (last.from, last.to, last.actor.as_str()),
            (Some(Pending), Cancelled, ENGINE_ACTOR)
        );
    }
    assert_eq!(
        h.counts(&suite.id).await,
        counts(3, |c| {
            c.failed = 1;
            c.cancelled = 2;
        })
    );
    h.check_histories().await;
}
