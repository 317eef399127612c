//! Wide and deep suites on the embedded file store: a suite start writes one record per child
//! (never-reported steps are implied by one shared definition per test case version), and the
//! steps a suite may hold in all are capped.

use runledger::domain::catalog::{MAX_STEPS, MAX_SUITE_STEPS, SuiteMode, TestCase, TestSuite};
use runledger::domain::execution::{ExecutionConfig, ExecutionStatus, StepStatus};
use runledger::ports::StepsQuery;
use runledger_testkit::builders::{case_input, external_steps, report};
use runledger_testkit::conformance::{Harness, expect_validation};
use runledger_testkit::stores::on_file;

fn file_size(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("runledger.redb"))
        .expect("database file")
        .len()
}

/// 20 children of one 10,000-step case (200,000 steps, the most a suite may hold): the start
/// writes a record per child, not 200,000 step records and 20 copies of the case. Steps read
/// back pending with their names until reported, and reported ones read back as reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_start_writes_one_record_per_child() {
    let (dir, store) = on_file();
    let h = Harness::new(store);
    let case = h.external_case("deep", MAX_STEPS).await;
    let copies = (MAX_SUITE_STEPS / MAX_STEPS as u64) as usize;
    let suite = h
        .create_suite(&vec![&case; copies], SuiteMode::Parallel, Some(100), false)
        .await;
    let before = file_size(dir.path());
    let run = h.start_suite(&suite, ExecutionConfig::default()).await;
    let grown = file_size(dir.path()).saturating_sub(before);
    // One shared definition (the case, ~1 MB, and its 10,000 step names) and 20 small child
    // records; 200,000 step records would be tens of megabytes.
    assert!(
        grown < 8 * 1024 * 1024,
        "the suite start grew the database by {grown} bytes"
    );

    let children = h.children(&run.id).await;
    assert_eq!(children.len(), copies);
    let child = &children[copies - 1];
    assert!(
        child.steps.is_empty(),
        "a partitioned child carries no steps"
    );
    h.engine
        .report_steps(
            &h.user,
            &child.id,
            vec![
                report(1, StepStatus::Failed),
                report(9_999, StepStatus::Passed),
            ],
        )
        .await
        .expect("report");
    let page = h
        .store
        .list_steps(&StepsQuery {
            execution_id: child.id.clone(),
            limit: 3,
            after_index: None,
        })
        .await
        .expect("steps");
    let seen: Vec<(u32, &str, StepStatus)> = page
        .iter()
        .map(|s| (s.index, s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "step 0", StepStatus::Pending),
            (1, "step 1", StepStatus::Failed),
            (2, "step 2", StepStatus::Pending)
        ]
    );
    let all = h.all_steps(&child.id, 500).await;
    assert_eq!(all.len(), MAX_STEPS);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, s)| s.index == i as u32 && s.name == format!("step {i}"))
    );
    assert_eq!(all[9_999].status, StepStatus::Passed);

    // Completing skips the rest; a retry runs the same definition, its steps fresh.
    let done = h
        .engine
        .complete(&h.user, &child.id)
        .await
        .expect("complete");
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(
        (
            done.progress.skipped,
            done.progress.failed,
            done.progress.passed
        ),
        (MAX_STEPS as u32 - 2, 1, 1)
    );
    let retry = h.engine.retry(&h.user, &child.id).await.expect("retry");
    let retried = h.all_steps(&retry.id, 500).await;
    assert_eq!(retried.len(), MAX_STEPS);
    assert!(retried.iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!(retried[42].name, "step 42");
    assert_eq!(
        h.store.get_definition(&retry.id).await.expect("read"),
        h.store.get_definition(&child.id).await.expect("read"),
    );
    let definition = h.store.get_definition(&child.id).await.expect("read");
    assert_eq!(definition.expect("kept").steps.len(), MAX_STEPS);
}

/// A suite may hold at most `MAX_SUITE_STEPS` steps in all: refused when it is saved, and when
/// it is started after its cases grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steps_a_suite_holds_are_capped() {
    let (_dir, store) = on_file();
    let h = Harness::new(store);
    let half = MAX_STEPS / 2;
    let case = h.external_case("half", half).await;
    let fits = (MAX_SUITE_STEPS / half as u64) as usize;
    let too_many = vec![&case; fits + 1];
    let refused = h
        .engine
        .create_entry::<TestSuite>(
            &h.user,
            runledger::domain::catalog::TestSuiteInput {
                name: "too deep".into(),
                description: None,
                test_case_ids: too_many.iter().map(|c| c.id.clone()).collect(),
                mode: SuiteMode::Parallel,
                max_parallel: None,
                fail_fast: false,
                tags: vec![],
            },
        )
        .await;
    let errors = expect_validation(refused);
    assert_eq!(errors.errors.len(), 1, "{errors:?}");
    assert_eq!(errors.errors[0].field, "test_case_ids");
    assert!(
        errors.errors[0]
            .message
            .contains(&MAX_SUITE_STEPS.to_string()),
        "{errors:?}"
    );

    let suite = h
        .create_suite(&vec![&case; fits], SuiteMode::Parallel, None, false)
        .await;
    h.engine
        .replace_entry::<TestCase>(
            &h.user,
            &case.id,
            case_input("half and one", &[], external_steps(half + 1)),
        )
        .await
        .expect("the case grows");
    let refused = h
        .engine
        .start_suite(&h.user, &suite.id, Default::default())
        .await;
    let errors = expect_validation(refused);
    assert_eq!(errors.errors[0].field, "test_case_ids");
    let listed = h.list_all(&h.user, Default::default(), 50).await.len();
    assert_eq!(listed, 0, "a refused start records nothing");
}
