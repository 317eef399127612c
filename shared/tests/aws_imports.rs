//! Imports on DynamoDB (the emulator): a 100-test report is recorded in batches, a few dozen
//! requests rather than thousands, the first time (every test new) and again (every test
//! known); and every test is there afterwards.

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use runledger::aws::metrics::RequestCounter;
use runledger::engine::{Caller, ImportRequest};
use runledger::report::ReportFormat;
use runledger_testkit::stores::{dynamo_table_with, engine_over};

const TESTS: usize = 100;

fn report() -> String {
    let mut xml = String::from("<testsuites name=\"wide\">");
    for file in 0..10 {
        xml.push_str(&format!(
            "<testsuite name=\"s{file}\" file=\"tests/test_{file}.py\">"
        ));
        for test in 0..TESTS / 10 {
            let failure = if test % 7 == 3 {
                "<failure message=\"no\"/>"
            } else {
                ""
            };
            xml.push_str(&format!(
                "<testcase classname=\"tests.test_{file}\" name=\"test_{test}\" time=\"0.01\">{failure}</testcase>"
            ));
        }
        xml.push_str("</testsuite>");
    }
    xml.push_str("</testsuites>");
    xml
}

fn request() -> ImportRequest {
    ImportRequest {
        report: report().into_bytes().into(),
        format: ReportFormat::Junit,
        suite: None,
        environment: None,
        tags: Vec::new(),
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_report_is_recorded_in_batches() {
    let counter = RequestCounter::new();
    let (_, _, store) =
        dynamo_table_with("imports", vec![SharedInterceptor::new(counter.clone())]).await;
    let engine = engine_over(store);
    let caller = Caller::user("ci");

    counter.take();
    let began = std::time::Instant::now();
    let first = engine.import(&caller, request()).await.expect("the import");
    let new_tests = counter.take();
    println!("first import: {:?}", began.elapsed());
    assert_eq!(first.counts.tests, TESTS);
    let second = engine.import(&caller, request()).await.expect("again");
    let known_tests = counter.take();
    assert_ne!(first.execution.id, second.execution.id);
    let total = |counts: &std::collections::BTreeMap<(String, String), u64>| -> u64 {
        counts.values().sum()
    };
    println!(
        "requests for {TESTS} new tests: {} {new_tests:?}",
        total(&new_tests)
    );
    println!(
        "requests for {TESTS} known tests: {} {known_tests:?}",
        total(&known_tests)
    );
    // One at a time, they were four a test (a catalog read and write, a definition read and
    // write): 400 here. In batches: a read of 100 keys, a write of 25 items. The analytics
    // rollups of the 101 tests (100 cases and the suite) add a read of 100 keys and a
    // transaction per 50 tests: at most 5 more; and since some tests failed, one query of the
    // owner's quarantines (to mute a quarantined case's failure).
    assert!(total(&new_tests) <= 26, "{new_tests:?}");
    assert!(total(&known_tests) <= 12, "{known_tests:?}");

    // Everything is there: the suite with a child per test, each test case once.
    let children = engine
        .list_children(&caller, &first.execution.id, None, 1000)
        .await
        .expect("children");
    assert_eq!(children.items.len(), TESTS);
    let began = std::time::Instant::now();
    let exported = engine
        .export(&caller, &second.execution.id)
        .await
        .expect("export");
    assert_eq!(exported.counts(), first.counts);
    println!("reads: {:?}", began.elapsed());
}
