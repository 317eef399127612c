//! Lambda function `status`: API Gateway (every GET on executions, health).
//! What it owns is `runledger::functions::STATUS`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::STATUS).await
}
