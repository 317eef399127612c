//! Lambda function `catalog`: API Gateway (test cases, test suites).
//! What it owns is `runledger::lambda::spec::CATALOG`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::CATALOG).await
}
