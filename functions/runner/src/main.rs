//! Lambda function `runner`: SQS work queues (one per priority).
//! What it owns is `runledger::lambda::spec::RUNNER`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::RUNNER).await
}
