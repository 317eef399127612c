//! The embedded store's one writer is shared by every user: a large command (a 1,000-child
//! suite start) is planned and encoded off the writer, which spends on it only the check and
//! the writes, so another user's step reports meanwhile are answered at once. Alone in its
//! own test binary, so that no other test's load is measured with it.

use runledger::domain::catalog::{SuiteMode, TestCase};
use runledger::domain::execution::{ExecutionConfig, StepStatus};
use runledger_testkit::builders::{case_input, external_steps, fresh_user, report};
use runledger_testkit::conformance::Harness;
use runledger_testkit::stores::on_file;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// While one user starts a 1,000-case suite, another user's step reports are answered at
/// once: the start does not hold the one writer for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_suite_start_does_not_hold_up_other_users() {
    let (_dir, store) = on_file();
    let wide = Arc::new(Harness::new(Arc::clone(&store)));
    let mut cases = Vec::new();
    for i in 0..1_000 {
        cases.push(wide.external_case(&format!("case {i}"), 5).await);
    }
    let suite = wide
        .create_suite(
            &cases.iter().collect::<Vec<_>>(),
            SuiteMode::Parallel,
            Some(100),
            false,
        )
        .await;

    let other = Harness::new(store);
    let bob = fresh_user();
    let case = other
        .engine
        .create_entry::<TestCase>(&bob, case_input("bob's", &[], external_steps(1_000)))
        .await
        .expect("bob's case");
    let bobs = other
        .engine
        .start_case(&bob, &case.id, Default::default())
        .await
        .expect("bob's start")
        .execution;

    let starter = Arc::clone(&wide);
    let start = tokio::spawn(async move {
        let began = Instant::now();
        let run = starter
            .start_suite(&suite, ExecutionConfig::default())
            .await;
        (run, began.elapsed())
    });
    let mut slowest = Duration::ZERO;
    let mut reports = 0u32;
    while !start.is_finished() {
        let began = Instant::now();
        other
            .engine
            .report_steps(&bob, &bobs.id, vec![report(reports, StepStatus::Passed)])
            .await
            .expect("bob's report");
        slowest = slowest.max(began.elapsed());
        reports += 1;
    }
    let (run, took) = start.await.expect("the suite start");
    assert_eq!(wide.children(&run.id).await.len(), 1_000);
    println!(
        "1,000-child suite start took {took:?}; {reports} reports meanwhile, the slowest {slowest:?}"
    );
    assert!(reports > 0, "no report ran while the suite started");
    assert!(
        slowest < Duration::from_millis(100),
        "a report waited {slowest:?} behind the suite start ({took:?})"
    );
}
