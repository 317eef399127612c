//! Lambda function `start`: API Gateway (start, retry) and EventBridge Scheduler.
//! What it owns is `runledger::lambda::spec::START`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::START).await
}
