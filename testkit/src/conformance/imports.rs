//! Imports: a report recorded as one finished suite execution, its tests registered once.

use super::*;
use runledger::engine::ImportRequest;
use runledger::report::ReportFormat;

/// login passes; cart fails, then passes on its rerun (flaky); search is skipped; pay errors.
const REPORT: &str = r#"<testsuites name="nightly">
  <testsuite name="api" file="tests/test_api.py" timestamp="2026-11-30T02:00:00Z">
    <testcase classname="tests.test_api" name="test_login" time="0.5"/>
    <testcase classname="tests.test_api" name="test_cart" time="0.2"><failure message="expected 200, got 503">trace</failure></testcase>
    <testcase classname="tests.test_api" name="test_cart" time="0.3"/>
    <testcase classname="tests.test_api" name="test_search" time="0"><skipped message="not on staging"/></testcase>
    <testcase classname="tests.test_api" name="test_pay" time="1.5"><error message="connection reset"/></testcase>
  </testsuite>
</testsuites>"#;

pub(super) fn import_request(key: Option<&str>) -> ImportRequest {
    ImportRequest {
        report: bytes::Bytes::from_static(REPORT.as_bytes()),
        format: ReportFormat::Junit,
        suite: None,
        environment: Some("staging".into()),
        tags: vec!["nightly".into()],
        idempotency_key: key.map(str::to_owned),
    }
}

/// A report becomes one finished suite execution with a child per attempt, in one change;
/// its tests and suite are registered on first sight and reused by the next import; a key
/// records it once; the export tells the same run.
pub async fn imports(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let first = h
        .engine
        .import(&h.user, import_request(Some("nightly-1")))
        .await
        .expect("import");
    assert!(first.created);
    let counts = first.counts;
    assert_eq!(
        (
            counts.tests,
            counts.passed,
            counts.failed,
            counts.errored,
            counts.skipped,
            counts.flaky
        ),
        (4, 2, 0, 1, 1, 1),
        "{counts:?}"
    );
    let suite = h.execution(&first.execution.id).await;
    assert_eq!(suite, first.execution);
    assert_eq!((suite.kind, suite.status), (ExecutionKind::Suite, Failed));
    assert_eq!(suite.name, "nightly");
    assert_eq!(suite.config.environment.as_deref(), Some("staging"));
    assert!(suite.tags.contains(&"nightly".to_owned()));
    assert!(suite.deadline_at.is_none(), "nothing left to time out");
    let plan = suite.suite.clone().expect("a plan");
    assert_eq!(
        plan.counts().passed,
        2,
        "the rerun of cart passed, login passed"
    );
    assert_eq!(plan.counts().skipped, 1);
    assert_eq!(plan.counts().error, 1);
    let started = Timestamp::parse("2026-11-30T02:00:00Z").unwrap();
    assert_eq!(suite.started_at, Some(started));
    let history = h.history(&suite.id).await;
    assert_eq!(
        history.iter().map(|e| e.to).collect::<Vec<_>>(),
        vec![Running, Failed]
    );

    let children = h.children(&suite.id).await;
    assert_eq!(children.len(), 5, "one execution per attempt");
    let cart: Vec<&Execution> = children.iter().filter(|c| c.name == "test_cart").collect();
    assert_eq!(cart.len(), 2);
    let (failed, rerun) = if cart[0].attempt == 1 {
        (cart[0], cart[1])
    } else {
        (cart[1], cart[0])
    };
    assert_eq!((failed.status, rerun.status), (Failed, Passed));
    assert_eq!(rerun.retry_of.as_deref(), Some(failed.id.as_str()));
    assert_eq!(failed.retried_by.as_deref(), Some(rerun.id.as_str()));
    assert_eq!(
        failed.steps[0].message.as_deref(),
        Some("expected 200, got 503")
    );
    assert_eq!(failed.duration_ms, Some(200));
    for child in &children {
        assert!(child.status.is_terminal(), "{child:?}");
        assert_eq!(h.history(&child.id).await.len(), 2, "{}", child.name);
    }
    let skipped = children.iter().find(|c| c.name == "test_search").unwrap();
    assert_eq!(skipped.status, Skipped, "deliberately not run");
    assert_eq!(
        h.history(&skipped.id)
            .await
            .iter()
            .map(|e| e.to)
            .collect::<Vec<_>>(),
        vec![Queued, Skipped],
        "skipped straight from the queue: it never ran"
    );
    assert_eq!(skipped.steps[0].status, StepStatus::Skipped);

    // Registered once; reused by the next import of the same tests.
    let cases = h
        .engine
        .list_entries::<TestCase>(&h.user, None, 100, None)
        .await
        .expect("list cases");
    assert_eq!(cases.items.len(), 4);
    let again = h
        .engine
        .import(&h.user, import_request(Some("nightly-1")))
        .await
        .expect("import again");
    assert!(!again.created, "the same key records the report once");
    assert_eq!(again.execution.id, suite.id);
    let next = h
        .engine
        .import(&h.user, import_request(None))
        .await
        .expect("the next night");
    assert!(next.created);
    assert_ne!(next.execution.id, suite.id);
    assert_eq!(next.execution.test_suite_id, suite.test_suite_id);
    let cases_after = h
        .engine
        .list_entries::<TestCase>(&h.user, None, 100, None)
        .await
        .expect("list cases");
    assert_eq!(cases_after.items.len(), 4, "the same tests, the same cases");
    let login = children.iter().find(|c| c.name == "test_login").unwrap();
    let runs = h
        .list_all(
            &h.user,
            ExecutionQuery {
                test_case_id: login.test_case_id.clone(),
                ..ExecutionQuery::default()
            },
            10,
        )
        .await;
    assert_eq!(
        runs.len(),
        2,
        "one execution of test_login from each import"
    );

    // The export tells the run the report told.
    let exported = h.engine.export(&h.user, &suite.id).await.expect("export");
    assert_eq!(exported.counts(), counts);
    // Nobody else sees it.
    let stranger = fresh_user();
    assert!(h.engine.export(&stranger, &suite.id).await.is_err());
}
