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
    };
}

runledger::with_conformance_checks!(conformance_tests);
