//! Lambda function `step-report`: API Gateway (steps, complete) and SQS step batches.
//! What it owns is `runledger::lambda::spec::STEP_REPORT`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::STEP_REPORT).await
}
