//! The store conformance suite, unchanged, against the DynamoDB store on the AWS emulator:
//! one test per check, each on its own fresh table.

use runledger::ports::ExecutionStore;
use runledger_testkit::conformance;
use runledger_testkit::stores::dynamo_table;
use std::sync::Arc;

async fn dynamo_store() -> Arc<dyn ExecutionStore> {
    dynamo_table("conformance").await.2
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                conformance::$check(dynamo_store().await).await;
            }
        )*
    };
}

runledger_testkit::with_conformance_checks!(conformance_tests);
