//! Lambda function `catalog`: API Gateway (test cases, test suites).
//! What it owns is `runledger::functions::CATALOG`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::CATALOG).await
}
