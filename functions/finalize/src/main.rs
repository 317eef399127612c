//! Lambda function `finalize`: API Gateway (cancel), EventBridge events, the timeout sweep schedule.
//! What it owns is `runledger::lambda::spec::FINALIZE`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::FINALIZE).await
}
