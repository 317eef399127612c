//! The store conformance suite against the embedded store: in memory and on a redb file, one
//! test per (check, backend) pair, plus every check at once against one shared store.

use runledger::domain::ids::UlidSource;
use runledger::ports::ExecutionStore;
use runledger::store::conformance;
use runledger::store::embedded::EmbeddedStore;
use std::sync::Arc;
use tempfile::TempDir;

fn in_memory() -> Arc<dyn ExecutionStore> {
    Arc::new(EmbeddedStore::in_memory(Arc::new(UlidSource::default())).expect("in-memory store"))
}

/// A store on a fresh database file; the directory lives as long as the test.
fn on_file() -> (TempDir, Arc<dyn ExecutionStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(
        &dir.path().join("runledger.redb"),
        Arc::new(UlidSource::default()),
    )
    .expect("file store");
    (dir, Arc::new(store))
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $check() {
                    runledger::store::conformance::$check(super::in_memory()).await;
                }
            )*
        }

        mod on_file {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, store) = super::on_file();
                    runledger::store::conformance::$check(store).await;
                }
            )*
        }
    };
}

runledger::with_conformance_checks!(conformance_tests);

/// Every check, one after another, all on one shared file store (as the DynamoDB adapter's
/// suite shares one table).
#[tokio::test]
async fn run_all_on_one_shared_file_store() {
    let (_dir, store) = on_file();
    conformance::run_all(|| Arc::clone(&store)).await;
}

/// Every check at the same time on one shared store: none may see another's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_concurrently_on_one_shared_store() {
    conformance::run_all_concurrently(in_memory()).await;
}
