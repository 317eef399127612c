//! What is particular to the DynamoDB store, on the AWS emulator: concurrent and repeated
//! deliveries stay exact, suites roll up once, and no item comes near DynamoDB's 400 KB.

use aws_sdk_dynamodb::config::SharedInterceptor;
use aws_sdk_dynamodb::types::AttributeValue;
use runledger::aws::metrics::RequestCounter;
use runledger::domain::catalog::SuiteMode;
use runledger::domain::events::EventKind;
use runledger::domain::execution::{ExecutionConfig, ExecutionStatus, StepReport, StepStatus};
use runledger_testkit::builders::report;
use runledger_testkit::conformance::{Harness, step_entries};
use runledger_testkit::interceptors::{Faults, RoundTrip};
use runledger_testkit::stores::{dynamo_table, dynamo_table_with};
use std::sync::Arc;
use std::time::Duration;

/// A step result that took a millisecond.
/// The raw item at `pk`/`sk`, read strongly consistent; it must exist.
async fn stored_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("read {pk} {sk}: {e:?}"))
        .item
        .unwrap_or_else(|| panic!("no item at {pk} {sk}"))
}

fn step(index: u32, status: StepStatus) -> StepReport {
    StepReport {
        duration_ms: Some(1),
        ..report(index, status)
    }
}

/// Many reporters, every step three times in a shuffled order: counts exact, one
/// queued→running, each failed step announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeated_reports_count_once() {
    for steps in [30usize, 60] {
        let (_, _, store) = dynamo_table("dynamo").await;
        let h = Arc::new(Harness::new(store));
        let mut events = h.bus.subscribe();
        let case = h.external_case("concurrent", steps).await;
        let e = h.start(&case).await;
        let status_of = |i: u32| {
            if i.is_multiple_of(7) {
                StepStatus::Failed
            } else {
                StepStatus::Passed
            }
        };
        let mut deliveries: Vec<u32> = (0..steps as u32).flat_map(|i| [i, i, i]).collect();
        // A fixed shuffle: reverse interleaving, so duplicates race each other.
        deliveries.sort_by_key(|i| (i * 7919) % 97);
        // Six reporters at once: each report to one execution is a conditional write on its
        // record, so reporters on one execution take turns; the emulator answers slowly
        // enough that more would only measure its speed.
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in deliveries.chunks(deliveries.len().div_ceil(6)) {
            let (h, id, chunk) = (Arc::clone(&h), e.id.clone(), chunk.to_vec());
            tasks.spawn(async move {
                for i in chunk {
                    h.engine
                        .report_steps(&h.user, &id, vec![step(i, status_of(i))])
                        .await
                        .expect("a repeated identical report is accepted");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("reporter task");
        }
        let execution = h.execution(&e.id).await;
        let failed = (0..steps as u32).filter(|i| i.is_multiple_of(7)).count() as u32;
        assert_eq!(execution.progress.completed, steps as u32, "{steps} steps");
        assert_eq!(execution.progress.failed, failed);
        assert_eq!(execution.progress.passed, steps as u32 - failed);
        let all = h.all_steps(&e.id, 1000).await;
        assert_eq!(all.len(), steps);
        assert!(all.iter().all(|s| s.status == status_of(s.index)));
        let history = h.history(&e.id).await;
        assert_eq!(history.len(), 2, "queued, then running once: {history:?}");
        // The log, written from the table's stream, gap-free: the start once, each step once.
        let log = h.log(&e.id).await;
        assert_eq!(log.len(), 2 + steps, "{log:#?}");
        let mut logged = step_entries(&log);
        logged.sort_by_key(|(index, _)| *index);
        let each_once: Vec<(u32, StepStatus)> =
            (0..steps as u32).map(|i| (i, status_of(i))).collect();
        assert_eq!(logged, each_once);
        let (mut step_failed, mut started) = (0, 0);
        while let Ok(event) = events.try_recv() {
            match event.kind {
                EventKind::StepFailed => step_failed += 1,
                EventKind::ExecutionStarted => started += 1,
                _ => {}
            }
        }
        assert_eq!(step_failed, failed, "each failed step is announced once");
        assert_eq!(started, 1, "racing first reports announce the start once");
        assert!(execution.started_at.is_some());
    }
}

/// Two children of a suite finishing at the same moment: the suite rolls up exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_children_roll_up_once() {
    let (_, _, store) = dynamo_table("dynamo").await;
    let h = Arc::new(Harness::new(store));
    for round in 0..5 {
        let mut events = h.bus.subscribe();
        let a = h.external_case(&format!("a{round}"), 1).await;
        let b = h.external_case(&format!("b{round}"), 1).await;
        let suite = h
            .create_suite(&[&a, &b], SuiteMode::Parallel, None, false)
            .await;
        let run = h.start_suite(&suite, ExecutionConfig::default()).await;
        let children = h.children(&run.id).await;
        let mut tasks = tokio::task::JoinSet::new();
        for child in children {
            let h = Arc::clone(&h);
            tasks.spawn(async move {
                h.engine
                    .report_steps(&h.user, &child.id, vec![step(0, StepStatus::Passed)])
                    .await
                    .expect("report");
                h.engine
                    .complete(&h.user, &child.id)
                    .await
                    .expect("complete");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("child task");
        }
        let suite_run = h.execution(&run.id).await;
        assert_eq!(suite_run.status, ExecutionStatus::Passed, "round {round}");
        let history = h.history(&run.id).await;
        let finals = history
            .iter()
            .filter(|e| e.to == ExecutionStatus::Passed)
            .count();
        assert_eq!(finals, 1, "one roll-up: {history:?}");
        let mut suite_finished = 0;
        while let Ok(event) = events.try_recv() {
            if event.kind == EventKind::SuiteFinished && event.execution_id == run.id {
                suite_finished += 1;
            }
        }
        assert_eq!(suite_finished, 1, "one final event");
        // A finished event delivered again (finalize's reconcile) changes nothing.
        let children = h.children(&run.id).await;
        assert!(
            !h.engine
                .reconcile(&children[0].id)
                .await
                .expect("reconcile")
        );
        assert_eq!(h.history(&run.id).await, history);
    }
}

/// A child's finish commits, then its roll-up into the suite fails (an outage, or a crash
/// between the two writes): the finish stands and is announced. The suite, whose slot still
/// shows that child running, does not finish with its last child; the announced finish's
/// reconcile (what finalize does with it) rolls the lost roll-up forward and finishes the
/// suite, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_up_lost_after_its_child_committed_is_recovered() {
    let faults = Faults::new();
    let (_, _, store) =
        dynamo_table_with("dynamo", vec![SharedInterceptor::new(faults.clone())]).await;
    let h = Harness::new(store);
    let mut events = h.bus.subscribe();
    let a = h.external_case("a", 1).await;
    let b = h.external_case("b", 1).await;
    let suite = h
        .create_suite(&[&a, &b], SuiteMode::Parallel, None, false)
        .await;
    let run = h.start_suite(&suite, ExecutionConfig::default()).await;
    let children = h.children(&run.id).await;
    for child in &children {
        h.engine
            .report_steps(&h.user, &child.id, vec![step(0, StepStatus::Passed)])
            .await
            .expect("report");
    }
    // The first child's roll-up into the suite (an UpdateItem naming the suite) fails.
    let (first, last) = (&children[0].id, &children[1].id);
    faults.fail("UpdateItem", &run.id);
    let finished = h.engine.complete(&h.user, first).await.expect("complete");
    faults.heal();
    assert!(faults.failed() >= 1, "the roll-up was attempted and failed");
    assert_eq!(finished.status, ExecutionStatus::Passed);
    assert_eq!(h.execution(first).await.status, ExecutionStatus::Passed);
    let slots = h.execution(&run.id).await.suite.expect("a suite").slots;
    assert_eq!(
        slots[0].status,
        ExecutionStatus::Running,
        "not rolled up yet"
    );

    h.engine.complete(&h.user, last).await.expect("complete");
    assert_eq!(h.execution(&run.id).await.status, ExecutionStatus::Running);
    assert!(h.engine.reconcile(first).await.expect("reconcile"));
    assert_eq!(h.execution(&run.id).await.status, ExecutionStatus::Passed);
    assert!(!h.engine.reconcile(first).await.expect("a second delivery"));
    let history = h.history(&run.id).await;
    let finals = history
        .iter()
        .filter(|e| e.to == ExecutionStatus::Passed)
        .count();
    assert_eq!(finals, 1, "the suite finished once: {history:?}");
    let (mut first_finished, mut suite_finished) = (0, 0);
    while let Ok(event) = events.try_recv() {
        match event.kind {
            EventKind::ExecutionFinished if event.execution_id == *first => first_finished += 1,
            EventKind::SuiteFinished if event.execution_id == run.id => suite_finished += 1,
            _ => {}
        }
    }
    assert_eq!(first_finished, 1, "the child's finish was announced");
    assert_eq!(suite_finished, 1, "the suite's finish was announced once");
}

/// A finish commits with its rollup contribution, then adding it to the rollup fails (an
/// outage, or a crash between the two writes): the finish stands, the contribution stays due
/// in the execution's record, and the finished event's reconcile adds it, once, however
/// often it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollup_contribution_left_due_is_added_once_by_the_reconcile() {
    let faults = Faults::new();
    let (_, _, store) =
        dynamo_table_with("dynamo", vec![SharedInterceptor::new(faults.clone())]).await;
    let h = Harness::new(store);
    let case = h.external_case("due", 1).await;
    let first = h.start(&case).await.id;
    h.pass(&first).await;
    let second = h.start(&case).await.id;
    h.engine
        .report_steps(&h.user, &second, vec![step(0, StepStatus::Failed)])
        .await
        .expect("report");
    // Every transaction that clears a due contribution fails for a while.
    faults.fail("TransactWriteItems", "rollup_due");
    let finished = h.engine.complete(&h.user, &second).await.expect("complete");
    assert_eq!(finished.status, ExecutionStatus::Failed);
    assert!(faults.failed() >= 1, "adding it was attempted and failed");
    faults.heal();
    let rollup = h
        .store
        .current_rollup(&case.id)
        .await
        .expect("read")
        .expect("a rollup");
    assert_eq!(
        rollup.counts.executions, 1,
        "only the first is added so far"
    );
    for _ in 0..3 {
        h.engine.reconcile(&second).await.expect("reconcile");
    }
    let rollup = h
        .store
        .current_rollup(&case.id)
        .await
        .expect("read")
        .expect("a rollup");
    let c = rollup.counts;
    assert_eq!((c.executions, c.passed, c.failed), (2, 1, 1));
    assert_eq!(rollup.flakiness().last_outcomes, "PF");
}

/// 20 executions of one test complete at once, as a matrix run's jobs do: every finish
/// reaches the rollup through its own writer, with no reconcile, and nothing is left due in
/// an execution or pending on the record; the writers fold each other's finishes instead of
/// taking turns at the one record, so the transactions stay at most two a finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishes_of_one_test_at_once_are_all_folded_by_their_writers() {
    // Each request waits a network's round trip, so the completes overlap as against AWS.
    let counter = RequestCounter::new();
    let (client, table, store) = dynamo_table_with(
        "dynamo",
        vec![
            SharedInterceptor::new(RoundTrip(Duration::from_millis(10))),
            SharedInterceptor::new(counter.clone()),
        ],
    )
    .await;
    let h = Harness::new(store);
    let case = h.external_case("matrix", 1).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = h.start(&case).await.id;
        let status = if i % 5 == 0 {
            StepStatus::Failed
        } else {
            StepStatus::Passed
        };
        h.engine
            .report_steps(&h.user, &id, vec![step(0, status)])
            .await
            .expect("report");
        ids.push(id);
    }
    counter.take();
    let began = std::time::Instant::now();
    let completes = ids.iter().map(|id| h.engine.complete(&h.user, id));
    for result in futures_util::future::join_all(completes).await {
        result.expect("complete");
    }
    let elapsed = began.elapsed();
    let requests = counter.take();
    let rollup = h
        .store
        .current_rollup(&case.id)
        .await
        .expect("read")
        .expect("a rollup");
    let c = rollup.counts;
    assert_eq!((c.executions, c.passed, c.failed), (20, 16, 4));
    assert_eq!(rollup.durations.count(), 20);
    for id in &ids {
        let item = stored_item(&client, &table, &format!("EX#{id}"), "EXEC").await;
        assert!(!item.contains_key("rollup_due"), "{id} still holds its due");
    }
    let record = stored_item(&client, &table, &format!("RU#{}", case.id), "CURRENT").await;
    let pending = record
        .get("pending")
        .and_then(|p| p.as_l().ok())
        .map_or(0, Vec::len);
    assert_eq!(pending, 0, "every finish folded into the record");
    let transactions = requests
        .get(&("DynamoDB".to_owned(), "TransactWriteItems".to_owned()))
        .copied()
        .unwrap_or(0);
    eprintln!(
        "20 completes of one test at once: {} ms, {transactions} transactions, {requests:?}",
        elapsed.as_millis()
    );
    // At most two a finish: its direct try and, having lost it, its append. (Taking turns at
    // the record, as the rollups did before, took 84 here: every loser read and tried again.)
    assert!(
        transactions <= 40,
        "{transactions} transactions: {requests:?}"
    );
}

/// 10,000 steps in batches of 500, the largest messages and outputs: every item stays far
/// below DynamoDB's 400 KB limit, and every step is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stay_far_below_the_size_limit() {
    let (client, table, store) = dynamo_table("dynamo").await;
    let h = Harness::new(store);
    let case = h.external_case("big", 10_000).await;
    let e = h.start(&case).await;
    // Step 0 carries 100 KB; the rest of the first batch 8 KB, over the caps as well, so
    // the parts of that batch are as large as stored parts can be.
    let huge = "x".repeat(100 * 1024);
    let large = "y".repeat(8 * 1024);
    for batch in 0..20u32 {
        let reports = (batch * 500..(batch + 1) * 500)
            .map(|i| {
                let text = match (batch, i) {
                    (0, 0) => Some(huge.clone()),
                    (0, _) => Some(large.clone()),
                    _ => None,
                };
                StepReport {
                    message: text.clone(),
                    output: text,
                    ..step(i, StepStatus::Passed)
                }
            })
            .collect();
        h.engine
            .report_steps(&h.user, &e.id, reports)
            .await
            .expect("batch");
    }
    let steps = h.all_steps(&e.id, 1000).await;
    assert_eq!(steps.len(), 10_000);
    assert!(steps.iter().all(|s| s.status == StepStatus::Passed));
    assert!(
        steps[..500]
            .iter()
            .all(|s| s.truncated && s.message.as_ref().unwrap().len() == 1024)
    );
    assert_eq!(
        steps[0].output.as_ref().unwrap().len(),
        4096,
        "100 KB of output keeps 4 KiB"
    );
    assert!(steps[500..].iter().all(|s| !s.truncated));
    let mut largest = 0usize;
    let mut count = 0usize;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            count += 1;
            let size: usize = item.iter().map(|(k, v)| k.len() + value_size(v)).sum();
            largest = largest.max(size);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    assert!(
        count >= 10_001,
        "every step is its own item ({count} items)"
    );
    // The largest is an execution record carrying one part of a report (25 results at the
    // 1 KiB + 4 KiB caps) on its way to step items.
    assert!(
        largest < 200 * 1024,
        "largest item is about {largest} bytes"
    );
}

/// An attribute value's size by DynamoDB's rules (close enough: names and data bytes).
fn value_size(value: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) | A::N(s) => s.len(),
        A::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + 1 + value_size(v))
                .sum::<usize>()
        }
        A::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        A::Ss(items) | A::Ns(items) => items.iter().map(String::len).sum(),
        A::B(blob) => blob.as_ref().len(),
        _ => 1,
    }
}

/// Recovery reads every active execution through the keys-only deadline index: more than one
/// query page's worth (the store once stopped after 200), in deadline order, and only those
/// still active when read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_lists_every_active_execution() {
    use runledger::ports::ExecutionStore;
    let (_, _, store) = dynamo_table("dynamo").await;
    let h = Arc::new(Harness::new(store.clone()));
    let case = h.external_case("many active", 1).await;
    let mut started = Vec::new();
    for chunk in 0..5 {
        let starts = (0..50).map(|_| {
            let h = Arc::clone(&h);
            let case = case.clone();
            tokio::spawn(async move { h.start(&case).await.id })
        });
        for start in starts {
            started.push(start.await.expect("start"));
        }
        assert_eq!(started.len(), (chunk + 1) * 50);
    }
    let finished = started[0].clone();
    h.pass(&finished).await;

    let active = store.active(1_000_000).await.expect("active");
    assert_eq!(
        active.len(),
        249,
        "every active execution but the finished one"
    );
    assert!(active.iter().all(|e| e.id != finished));
    let deadlines: Vec<_> = active.iter().map(|e| e.deadline_at).collect();
    let mut sorted = deadlines.clone();
    sorted.sort();
    assert_eq!(deadlines, sorted, "earliest deadline first");
    assert_eq!(
        store.active(10).await.expect("active").len(),
        10,
        "the limit holds"
    );
}
