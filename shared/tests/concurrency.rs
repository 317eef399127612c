//! Concurrency: many reporters, finishing children and racing commands against one file-backed
//! embedded store on a multi-thread runtime. Every command is one atomic unit of work, so the
//! outcome must be exactly what a one-at-a-time order would give, whatever the interleaving.

use rand::Rng;
use rand::seq::SliceRandom;
use runledger::domain::catalog::SuiteMode;
use runledger::domain::events::{DomainEvent, EventKind};
use runledger::domain::execution::{
    ExecutionConfig, ExecutionStatus, Progress, StepStatus, StepStorage,
};
use runledger::engine::{EngineError, StartRequest};
use runledger_testkit::builders::{report, request};
use runledger_testkit::conformance::{
    Harness, assert_history_consistent, drain_events, statuses, step_entries, transitions,
};
use runledger_testkit::stores::on_file;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use ExecutionStatus::{Cancelled, Failed, Passed, Queued, Running};

const REPORTER_TASKS: usize = 200;
const DELIVERIES_PER_STEP: usize = 3;

/// What step `index` ends as: a mix of every terminal step status.
fn outcome(index: u32) -> StepStatus {
    match index {
        i if i % 7 == 3 => StepStatus::Failed,
        i if i % 13 == 6 => StepStatus::Error,
        i if i % 17 == 9 => StepStatus::Skipped,
        _ => StepStatus::Passed,
    }
}

async fn join_all<T: Send + 'static>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("task panicked"));
    }
    results
}

fn count(events: &[DomainEvent], id: &str, kind: EventKind) -> usize {
    events
        .iter()
        .filter(|e| e.execution_id == id && e.kind == kind)
        .count()
}

/// Every step of a `steps`-step external execution delivered three times, in random order
/// and random batches, by up to 200 reporters at once.
async fn hammer(steps: u32, storage: StepStorage) {
    let (_dir, store) = on_file();
    let h = Arc::new(Harness::new(store));
    let mut events = h.bus.subscribe();
    let case = h.external_case("hammered", steps as usize).await;
    let execution = h.start(&case).await;
    assert_eq!(execution.storage, Some(storage));
    let id = execution.id.clone();

    // Every step three times, shuffled, cut into batches of 1..=4, dealt out to the tasks.
    let mut deliveries: Vec<u32> = (0..steps)
        .flat_map(|i| std::iter::repeat_n(i, DELIVERIES_PER_STEP))
        .collect();
    let mut batches: Vec<Vec<u32>> = Vec::new();
    {
        let mut rng = rand::rng();
        deliveries.shuffle(&mut rng);
        let mut rest = deliveries.as_slice();
        while !rest.is_empty() {
            let size = rng.random_range(1..=4).min(rest.len());
            batches.push(rest[..size].to_vec());
            rest = &rest[size..];
        }
    }
    assert!(
        batches.iter().any(|b| b.len() > 1),
        "some batches hold several steps"
    );
    let tasks_count = REPORTER_TASKS.min(batches.len());
    let mut per_task: Vec<Vec<Vec<u32>>> = vec![Vec::new(); tasks_count];
    for (i, batch) in batches.into_iter().enumerate() {
        per_task[i % tasks_count].push(batch);
    }

    let barrier = Arc::new(Barrier::new(tasks_count));
    let mut tasks = Vec::new();
    for batches in per_task {
        let (h, id, barrier) = (Arc::clone(&h), id.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut last_completed = 0;
            for batch in batches {
                let reports = batch.iter().map(|i| report(*i, outcome(*i))).collect();
                let updated = h
                    .engine
                    .report_steps(&h.user, &id, reports)
                    .await
                    .unwrap_or_else(|e| panic!("report {batch:?}: {e:?}"));
                assert_eq!(updated.status, Running);
                assert!(updated.progress.completed <= steps);
                assert!(
                    updated.progress.completed >= last_completed,
                    "progress never goes back"
                );
                last_completed = updated.progress.completed;
            }
        }));
    }
    join_all(tasks).await;

    // Progress is exact.
    let mut expected = Progress::new(steps);
    for i in 0..steps {
        expected.record(StepStatus::Pending, outcome(i));
    }
    assert_eq!(expected.completed, steps);
    let record = h.execution(&id).await;
    assert_eq!(record.status, Running);
    assert_eq!(record.progress, expected);
    assert!(expected.failed > 0 && expected.errored > 0 && expected.skipped > 0);
    // Each step recorded once, with its status.
    let stored = h.all_steps(&id, 50).await;
    assert_eq!(stored.len(), steps as usize);
    for step in &stored {
        assert_eq!(step.status, outcome(step.index), "step {}", step.index);
    }
    if storage == StepStorage::Partitioned {
        assert!(record.steps.is_empty());
    } else {
        assert_eq!(record.steps, stored);
    }
    // One start, never two.
    assert_eq!(
        transitions(&h.history(&id).await),
        vec![(None, Queued), (Some(Queued), Running)]
    );
    // The event log, gap-free, has the start once and each step once, with its status.
    let log = h.log(&id).await;
    assert_eq!(
        statuses(&log),
        vec![(None, Queued), (Some(Queued), Running)]
    );
    let mut logged = step_entries(&log);
    logged.sort_by_key(|(index, _)| *index);
    let each_once: Vec<(u32, StepStatus)> = (0..steps).map(|i| (i, outcome(i))).collect();
    assert_eq!(logged, each_once);
    let published = drain_events(&mut events);
    assert_eq!(count(&published, &id, EventKind::ExecutionStarted), 1);
    let mut failed_steps: Vec<u32> = published
        .iter()
        .filter(|e| e.execution_id == id && e.kind == EventKind::StepFailed)
        .filter_map(|e| e.step_index)
        .collect();
    failed_steps.sort_unstable();
    let expected_failed: Vec<u32> = (0..steps)
        .filter(|i| matches!(outcome(*i), StepStatus::Failed | StepStatus::Error))
        .collect();
    assert_eq!(
        failed_steps, expected_failed,
        "each failed step announced once"
    );

    // Complete: one more entry, to failed.
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    assert_eq!(done.status, Failed);
    assert_eq!(done.progress, expected, "nothing left to skip");
    let history = h.history(&id).await;
    assert_eq!(
        transitions(&history),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Failed)
        ]
    );
    assert_history_consistent(&h.execution(&id).await, &history);

    // Late redeliveries, all at once, are refused and change nothing.
    let mut late = Vec::new();
    for i in 0..steps.min(50) {
        let (h, id) = (Arc::clone(&h), id.clone());
        late.push(tokio::spawn(async move {
            h.engine
                .report_steps(&h.user, &id, vec![report(i, outcome(i))])
                .await
        }));
    }
    for result in join_all(late).await {
        match result {
            Err(EngineError::InvalidTransition(t)) => assert_eq!(t.from, Failed),
            other => panic!("a report on a finished execution must be refused: {other:?}"),
        }
    }
    assert_eq!(h.history(&id).await, history);
    assert_eq!(h.execution(&id).await.progress, expected);
    let published = drain_events(&mut events);
    assert_eq!(count(&published, &id, EventKind::ExecutionFinished), 1);
    assert_eq!(count(&published, &id, EventKind::StepFailed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_hundred_reporters_on_a_partitioned_execution() {
    hammer(200, StepStorage::Partitioned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn reporters_on_an_inline_execution() {
    hammer(40, StepStorage::Inline).await;
}

/// Two children of a parallel suite completed at the same moment from two tasks: the suite
/// rolls up exactly once, whichever commits last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_children_finishing_together_roll_up_once() {
    let (_dir, store) = on_file();
    let h = Arc::new(Harness::new(store));
    let a = h.external_case("left", 1).await;
    let b = h.external_case("right", 1).await;
    let definition = h
        .create_suite(&[&a, &b], SuiteMode::Parallel, None, false)
        .await;
    for round in 0..30 {
        let second_fails = round % 2 == 1;
        let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
        let children: Vec<String> = suite
            .suite
            .expect("plan")
            .slots
            .into_iter()
            .map(|s| s.execution_id)
            .collect();
        h.report(&children[0], &[(0, StepStatus::Passed)])
            .await
            .expect("report");
        let second = if second_fails {
            StepStatus::Failed
        } else {
            StepStatus::Passed
        };
        h.report(&children[1], &[(0, second)])
            .await
            .expect("report");
        assert_eq!(h.status(&suite.id).await, Running);
        let mut events = h.bus.subscribe();

        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for child in children.clone() {
            let (h, barrier) = (Arc::clone(&h), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                h.engine.complete(&h.user, &child).await
            }));
        }
        for result in join_all(tasks).await {
            result.expect("both completions succeed");
        }

        let expected = if second_fails { Failed } else { Passed };
        let record = h.execution(&suite.id).await;
        assert_eq!(record.status, expected, "round {round}");
        let history = h.history(&suite.id).await;
        assert_eq!(
            transitions(&history),
            vec![
                (None, Queued),
                (Some(Queued), Running),
                (Some(Running), expected)
            ],
            "round {round}: the suite finished exactly once"
        );
        assert_history_consistent(&record, &history);
        let counts = record.suite.expect("plan").counts();
        assert_eq!(counts.total, 2);
        assert_eq!(
            (counts.passed, counts.failed),
            if second_fails { (1, 1) } else { (2, 0) }
        );
        let published = drain_events(&mut events);
        assert_eq!(
            count(&published, &suite.id, EventKind::SuiteFinished),
            1,
            "round {round}: one Suite Finished event"
        );
        for child in &children {
            assert_eq!(count(&published, child, EventKind::ExecutionFinished), 1);
        }
    }
}

/// Cancel and complete racing on one execution: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_complete_race_has_one_winner() {
    let (_dir, store) = on_file();
    let h = Arc::new(Harness::new(store));
    let case = h.external_case("raced", 2).await;
    for round in 0..30 {
        let id = h.start(&case).await.id;
        h.report(&id, &[(0, StepStatus::Passed)])
            .await
            .expect("report");
        let barrier = Arc::new(Barrier::new(2));
        let complete = {
            let (h, id, barrier) = (Arc::clone(&h), id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                h.engine.complete(&h.user, &id).await
            })
        };
        let cancel = {
            let (h, id, barrier) = (Arc::clone(&h), id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                h.engine.cancel(&h.user, &id, None).await
            })
        };
        let (completed, cancelled) = (complete.await.expect("task"), cancel.await.expect("task"));
        let winner = match (&completed, &cancelled) {
            (Ok(e), Err(EngineError::InvalidTransition(t))) => {
                assert_eq!(t.from, Passed);
                e.status
            }
            (Err(EngineError::InvalidTransition(t)), Ok(e)) => {
                assert_eq!(t.from, Cancelled);
                e.status
            }
            other => panic!("round {round}: exactly one must win, got {other:?}"),
        };
        let record = h.execution(&id).await;
        assert_eq!(record.status, winner);
        let history = h.history(&id).await;
        assert_eq!(
            transitions(&history),
            vec![
                (None, Queued),
                (Some(Queued), Running),
                (Some(Running), winner)
            ]
        );
        assert_history_consistent(&record, &history);
    }
}

/// Cancelling a suite while its last child completes: the suite ends once, either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_cancel_racing_the_last_child_ends_the_suite_once() {
    let (_dir, store) = on_file();
    let h = Arc::new(Harness::new(store));
    let a = h.external_case("first", 1).await;
    let b = h.external_case("last", 1).await;
    let definition = h
        .create_suite(&[&a, &b], SuiteMode::Parallel, None, false)
        .await;
    let mut outcomes = BTreeMap::new();
    for round in 0..30 {
        let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
        let children: Vec<String> = suite
            .suite
            .expect("plan")
            .slots
            .into_iter()
            .map(|s| s.execution_id)
            .collect();
        h.pass(&children[0]).await;
        h.report(&children[1], &[(0, StepStatus::Passed)])
            .await
            .expect("report");
        let mut events = h.bus.subscribe();
        let barrier = Arc::new(Barrier::new(2));
        let complete = {
            let (h, id, barrier) = (Arc::clone(&h), children[1].clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                h.engine.complete(&h.user, &id).await
            })
        };
        let cancel = {
            let (h, id, barrier) = (Arc::clone(&h), suite.id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                h.engine.cancel(&h.user, &id, None).await
            })
        };
        let (completed, cancelled) = (complete.await.expect("task"), cancel.await.expect("task"));
        let final_status = h.status(&suite.id).await;
        match (&completed, &cancelled) {
            // The child finished first: the suite passed, and the cancel came too late.
            (Ok(_), Err(EngineError::InvalidTransition(t))) => {
                assert_eq!((t.from, final_status), (Passed, Passed));
            }
            // The cancel came first: the child was cancelled with it.
            (Err(EngineError::InvalidTransition(t)), Ok(_)) => {
                assert_eq!((t.from, final_status), (Cancelled, Cancelled));
            }
            other => panic!("round {round}: exactly one must win, got {other:?}"),
        }
        *outcomes.entry(final_status).or_insert(0) += 1;
        let record = h.execution(&suite.id).await;
        let history = h.history(&suite.id).await;
        assert_eq!(
            history.iter().filter(|e| e.to.is_terminal()).count(),
            1,
            "round {round}: {history:?}"
        );
        assert_history_consistent(&record, &history);
        for child in &children {
            let child_record = h.execution(child).await;
            assert!(child_record.status.is_terminal());
            assert_history_consistent(&child_record, &h.history(child).await);
        }
        let published = drain_events(&mut events);
        assert_eq!(count(&published, &suite.id, EventKind::SuiteFinished), 1);
    }
    assert_eq!(outcomes.values().sum::<usize>(), 30);
}

/// Many concurrent starts with one Idempotency-Key start exactly one execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_idempotent_starts_create_one_execution() {
    let (_dir, store) = on_file();
    let h = Arc::new(Harness::new(store));
    let case = h.external_case("once", 1).await;
    for round in 0..5 {
        let key = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (h, case_id, key, barrier) = (
                Arc::clone(&h),
                case.id.clone(),
                key.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                h.engine
                    .start_case(
                        &h.user,
                        &case_id,
                        request(ExecutionConfig::default(), Some(&key)),
                    )
                    .await
                    .expect("start")
            }));
        }
        let started = join_all(tasks).await;
        assert_eq!(started.iter().filter(|s| s.created).count(), 1);
        let id = &started[0].execution.id;
        assert!(started.iter().all(|s| &s.execution.id == id));
        assert_eq!(h.history(id).await.len(), 1);
    }
    // Without a key, every start is its own.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (h, case_id) = (Arc::clone(&h), case.id.clone());
        tasks.push(tokio::spawn(async move {
            h.engine
                .start_case(&h.user, &case_id, StartRequest::default())
                .await
                .expect("start")
                .execution
                .id
        }));
    }
    let mut ids = join_all(tasks).await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}
