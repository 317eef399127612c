//! Analytics: every finish counted once in its test's rollup, however often its event is
//! delivered and however many finish at once; imports counted like native runs.

use super::*;
use runledger::domain::analytics::{Rollup, day_of};

/// The rollup counts of a test case, recounted from its executions.
async fn recount(h: &Harness, test_case_id: &str) -> (u64, u64, u64) {
    let runs = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: Some(test_case_id.to_owned()),
                ..ExecutionQuery::default()
            },
            1_000,
        )
        .await;
    let finished = runs.iter().filter(|e| e.status.is_terminal()).count() as u64;
    let passed = runs.iter().filter(|e| e.status == Passed).count() as u64;
    let failed = runs.iter().filter(|e| e.status == Failed).count() as u64;
    (finished, passed, failed)
}

async fn current(h: &Harness, test_id: &str) -> Rollup {
    h.store
        .current_rollup(test_id)
        .await
        .expect("read the rollup")
        .unwrap_or_else(|| panic!("{test_id} has no rollup"))
}

/// P F P F P, each finish event then delivered three more times out of order: five
/// executions counted, the window `PFPFP`, flaky; a new day starts a new record that
/// carries the window on, and the old one is kept as its day's.
pub async fn rollups_count_once(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("flips", 1).await;
    let mut ids = Vec::new();
    for pass in [true, false, true, false, true] {
        let id = h.start(&case).await.id;
        h.report(
            &id,
            &[(
                0,
                if pass {
                    StepStatus::Passed
                } else {
                    StepStatus::Failed
                },
            )],
        )
        .await
        .expect("report");
        h.advance_secs(2);
        let done = h.engine.complete(&h.user, &id).await.expect("complete");
        assert_eq!(done.duration_ms, Some(2_000));
        ids.push(id);
    }
    let redelivered = ids.iter().rev().chain(&ids).chain(ids.iter().rev());
    for id in redelivered {
        h.engine.reconcile(id).await.expect("reconcile");
    }
    assert!(h.engine.complete(&h.user, &ids[0]).await.is_err());

    let day = day_of(h.now());
    let rollup = current(&h, &case.id).await;
    assert_eq!(
        (rollup.owner.as_str(), rollup.day.as_str()),
        (h.owner(), day.as_str())
    );
    assert_eq!(rollup.kind, ExecutionKind::Case);
    let c = rollup.counts;
    assert_eq!(
        (c.executions, c.passed, c.failed, c.retry_passes),
        (5, 3, 2, 0)
    );
    assert_eq!(recount(&h, &case.id).await, (5, 3, 2));
    assert_eq!(rollup.durations.count(), 5);
    assert_eq!(rollup.durations.quantile(0.5), Some(2_000));
    let flaky = rollup.flakiness();
    assert_eq!(flaky.last_outcomes, "PFPFP");
    assert_eq!((flaky.flip_rate, flaky.is_flaky), (1.0, true));
    let listed = h
        .store
        .flaky(Some(h.owner()), 10, None)
        .await
        .expect("flaky");
    let listed: Vec<&str> = listed.items.iter().map(|r| r.test_id.as_str()).collect();
    assert_eq!(listed, [case.id.as_str()]);

    // The next day: a fresh record, the window carried on; the first day's kept.
    h.advance_secs(24 * 3600);
    let next_day = day_of(h.now());
    for _ in 0..4 {
        let id = h.start(&case).await.id;
        h.pass(&id).await;
    }
    let rollup = current(&h, &case.id).await;
    assert_eq!(rollup.day, next_day);
    assert_eq!(rollup.counts.executions, 4);
    assert_eq!(rollup.flakiness().last_outcomes, "PFPFPPPPP");
    let days = h
        .store
        .rollups(&case.id, &day, &next_day)
        .await
        .expect("rollups");
    let by_day: Vec<(&str, u64)> = days
        .iter()
        .map(|r| (r.day.as_str(), r.counts.executions))
        .collect();
    assert_eq!(by_day, [(day.as_str(), 5), (next_day.as_str(), 4)]);
    let only_first = h
        .store
        .rollups(&case.id, &day, &day)
        .await
        .expect("rollups");
    assert_eq!(only_first.len(), 1);
    assert_eq!(recount(&h, &case.id).await, (9, 7, 2));
    // Flip rate 4/8 = 0.5: still flaky, still listed once.
    let listed = h
        .store
        .flaky(Some(h.owner()), 10, None)
        .await
        .expect("flaky");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].flakiness().flip_rate, 0.5);
}

/// 200 completes at once, two racing for each of 100 executions: 80 of as many cases, and
/// 20 of one case whose rollup they all move. Every finish is counted exactly once. (A
/// store may add a finish to its rollup after the finish, as long as the finished event's
/// reconcile, which every finish gets, finds it added.)
pub async fn rollups_under_concurrency(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let hot = h.external_case("hot", 1).await;
    let mut cases = vec![hot.clone(); 20];
    for i in 0..80 {
        cases.push(h.external_case(&format!("cold-{i}"), 1).await);
    }
    let mut ids = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let id = h.start(case).await.id;
        let status = if i % 4 == 0 {
            StepStatus::Failed
        } else {
            StepStatus::Passed
        };
        h.report(&id, &[(0, status)]).await.expect("report");
        ids.push(id);
    }
    let completes = ids.iter().flat_map(|id| {
        let (engine, user) = (&h.engine, &h.user);
        [engine.complete(user, id), engine.complete(user, id)]
    });
    let results = futures_util::future::join_all(completes).await;
    let completed = results.iter().filter(|r| r.is_ok()).count();
    for result in &results {
        if let Err(e) = result {
            assert!(
                matches!(
                    e,
                    EngineError::InvalidTransition(_) | EngineError::Conflict { .. }
                ),
                "a racing complete is refused, not failed: {e:?}"
            );
        }
    }
    assert_eq!(completed, 100, "each execution completes once");
    for id in &ids {
        h.engine.reconcile(id).await.expect("reconcile");
    }
    let rollup = current(&h, &hot.id).await;
    let c = rollup.counts;
    assert_eq!((c.executions, c.passed, c.failed), (20, 15, 5));
    assert_eq!(recount(&h, &hot.id).await, (20, 15, 5));
    assert_eq!(rollup.durations.count(), 20);
    for (i, case) in cases.iter().enumerate().skip(20) {
        let c = current(&h, &case.id).await.counts;
        let failed = u64::from(i % 4 == 0);
        assert_eq!((c.executions, c.failed), (1, failed), "{}", case.name);
    }
}

/// A suite run counts once in the suite's rollup and each child in its case's; an import
/// counts its tests the same way: a rerun that passed is a retry pass, a skipped test no
/// outcome.
pub async fn rollups_of_suites_and_imports(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let [a, b] = h.external_cases("member", 1).await;
    let suite = h
        .create_suite(&[&a, &b], SuiteMode::Parallel, None, false)
        .await;
    let run = h.start_suite(&suite, ExecutionConfig::default()).await;
    for child in h.children(&run.id).await {
        if child.test_case_id.as_deref() == Some(a.id.as_str()) {
            h.pass(&child.id).await;
        } else {
            h.fail(&child.id).await;
        }
    }
    assert_eq!(h.status(&run.id).await, Failed);
    h.engine.reconcile(&run.id).await.expect("reconcile");
    let of_suite = current(&h, &suite.id).await;
    assert_eq!(of_suite.kind, ExecutionKind::Suite);
    assert_eq!((of_suite.counts.executions, of_suite.counts.failed), (1, 1));
    assert_eq!(current(&h, &a.id).await.counts.passed, 1);
    assert_eq!(current(&h, &b.id).await.counts.failed, 1);

    let imported = h
        .engine
        .import(&h.user, super::imports::import_request(None))
        .await
        .expect("import");
    let children = h.children(&imported.execution.id).await;
    let case_of = |name: &str| {
        children
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.test_case_id.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let cart = current(&h, &case_of("test_cart")).await;
    let c = cart.counts;
    assert_eq!(
        (c.executions, c.failed, c.passed, c.retry_passes),
        (2, 1, 1, 1)
    );
    let flaky = cart.flakiness();
    assert_eq!((flaky.last_outcomes.as_str(), flaky.is_flaky), ("FP", true));
    assert_eq!(flaky.retry_passes, 1);
    let search = current(&h, &case_of("test_search")).await;
    assert_eq!((search.counts.executions, search.counts.skipped), (1, 1));
    assert_eq!(search.counts.pass_rate(), None);
    assert_eq!(
        current(&h, &case_of("test_pay").clone())
            .await
            .counts
            .errored,
        1
    );
    let suite_id = imported.execution.test_suite_id.clone().expect("a suite");
    assert_eq!(current(&h, &suite_id).await.counts.failed, 1);
    let listed = h
        .store
        .flaky(Some(h.owner()), 10, None)
        .await
        .expect("flaky");
    let listed: Vec<&str> = listed.items.iter().map(|r| r.test_id.as_str()).collect();
    assert_eq!(
        listed,
        [cart.test_id.as_str()],
        "only the rerun case is flaky"
    );
}
