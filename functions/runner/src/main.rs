//! Lambda function `runner`: SQS work queues (one per priority).
//! What it owns is `runledger::functions::RUNNER`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::RUNNER).await
}
