//! The store conformance suite, unchanged, against the DynamoDB store on the AWS emulator:
//! one test per check, each on its own fresh table.

use runledger::aws::dynamo::DynamoStore;
use runledger::aws::testkit::{Emulator, unique_name};
use runledger::domain::ids::UlidSource;
use runledger::ports::ExecutionStore;
use runledger::store::conformance;
use std::sync::Arc;

async fn dynamo_store() -> Arc<dyn ExecutionStore> {
    let config = Emulator::get().sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("conformance");
    DynamoStore::create_table(&client, &table)
        .await
        .expect("the emulator creates the table");
    Arc::new(DynamoStore::new(
        client,
        table,
        Arc::new(UlidSource::default()),
    ))
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                conformance::$check(dynamo_store().await).await;
            }
        )*

        #[test]
        fn every_check_has_a_test() {
            let listed: Vec<&str> = vec![$(stringify!($check)),*];
            let known: Vec<&str> = conformance::checks().into_iter().map(|(name, _)| name).collect();
            assert_eq!(listed, known);
        }
    };
}

conformance_tests!(
    catalog_round_trip,
    catalog_listing,
    start_case,
    step_reports,
    step_partitioning,
    ten_thousand_steps,
    complete,
    cancel,
    suite_parallel,
    suite_sequential,
    suite_max_parallel,
    suite_fail_fast,
    retry_manual,
    retry_automatic,
    retry_in_suite,
    retry_suite,
    timeouts,
    idempotency,
    list_executions,
    history_append_only,
    builtin_run,
    active_and_overdue,
);
