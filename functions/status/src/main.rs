//! Lambda function `status`: API Gateway (every GET on executions, analytics, health; the
//! dashboard).
//! What it owns is `runledger::lambda::spec::STATUS`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::STATUS).await
}
