//! Lambda function `step-report`: API Gateway (steps, complete) and SQS step batches.
//! What it owns is `runledger::functions::STEP_REPORT`; the work is in `runledger::aws::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::aws::lambda::run(&runledger::functions::STEP_REPORT).await
}
