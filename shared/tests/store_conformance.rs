//! The store conformance suite against the embedded store: in memory and on a redb file, one
//! test per (check, backend) pair, plus every check at once against one shared store.

use runledger_testkit::conformance;
use runledger_testkit::stores::{in_memory, on_file};
use std::sync::Arc;

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $check() {
                    runledger_testkit::conformance::$check(super::in_memory()).await;
                }
            )*
        }

        mod on_file {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, store) = super::on_file();
                    runledger_testkit::conformance::$check(store).await;
                }
            )*
        }
    };
}

runledger_testkit::with_conformance_checks!(conformance_tests);

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
