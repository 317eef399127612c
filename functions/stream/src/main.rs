//! Lambda function `stream`: Server-Sent Events of an execution's event log, behind a Function
//! URL in `RESPONSE_STREAM` mode. What it owns is `runledger::lambda::spec::STREAM`; the work
//! is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::STREAM).await
}
