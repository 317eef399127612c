//! Lambda function `finalize`: API Gateway (cancel), EventBridge events, the timeout sweep schedule.
//! What it owns is `runledger::functions::FINALIZE`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::FINALIZE).await
}
