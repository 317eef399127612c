//! Lambda function `start`: API Gateway (start, retry) and EventBridge Scheduler.
//! What it owns is `runledger::functions::START`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::START).await
}
