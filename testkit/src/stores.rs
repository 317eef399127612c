//! Stores for tests: the embedded store in memory or on a fresh file, an engine over one, and
//! the DynamoDB store on a fresh table of the AWS emulator.

use crate::emulator::{Emulator, unique_name};
use aws_sdk_dynamodb::config::SharedInterceptor;
use runledger::bus::local::LocalEventBus;
use runledger::domain::clock::SystemClock;
use runledger::domain::ids::UlidSource;
use runledger::engine::Engine;
use runledger::ports::ExecutionStore;
use runledger::queue::local::LocalWorkQueue;
use runledger::store::dynamo::DynamoStore;
use runledger::store::embedded::EmbeddedStore;
use std::sync::Arc;
use tempfile::TempDir;

/// An embedded store in memory.
pub fn in_memory() -> Arc<dyn ExecutionStore> {
    Arc::new(EmbeddedStore::in_memory(Arc::new(UlidSource::default())).expect("in-memory store"))
}

/// An embedded store on a fresh database file; the directory lives as long as the `TempDir`.
pub fn on_file() -> (TempDir, Arc<dyn ExecutionStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(
        &dir.path().join("runledger.redb"),
        Arc::new(UlidSource::default()),
    )
    .expect("file store");
    (dir, Arc::new(store))
}

/// An engine over `store` with the system clock, an in-process queue and bus.
pub fn engine_over(store: Arc<dyn ExecutionStore>) -> Engine {
    Engine::new(
        store,
        Arc::new(LocalWorkQueue::new()),
        Arc::new(LocalEventBus::new()),
        Arc::new(SystemClock),
        Arc::new(UlidSource::default()),
    )
}

/// A DynamoDB store on a fresh table (named `prefix-<ulid>`) of the emulator, with the client
/// and the table's name.
pub async fn dynamo_table(prefix: &str) -> (aws_sdk_dynamodb::Client, String, Arc<DynamoStore>) {
    dynamo_table_with(prefix, Vec::new()).await
}

/// [`dynamo_table`] with `interceptors` on its client: counting requests, a network's round
/// trip, injected faults (see [`crate::interceptors`]).
pub async fn dynamo_table_with(
    prefix: &str,
    interceptors: Vec<SharedInterceptor>,
) -> (aws_sdk_dynamodb::Client, String, Arc<DynamoStore>) {
    let config = Emulator::get().sdk_config().await;
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&config);
    for interceptor in interceptors {
        dynamodb.push_interceptor(interceptor);
    }
    let client = aws_sdk_dynamodb::Client::from_conf(dynamodb.build());
    let table = unique_name(prefix);
    DynamoStore::create_table(&client, &table)
        .await
        .expect("the emulator creates the table");
    // The store writes its event log from the table's stream when asked (`sync_log`), as
    // the `log` function does on AWS.
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let store = Arc::new(
        DynamoStore::new(
            client.clone(),
            table.clone(),
            Arc::new(UlidSource::default()),
        )
        .following_the_log(streams),
    );
    (client, table, store)
}
