//! Lambda function `log`: the table's DynamoDB stream (writes every execution's event log).
//! What it owns is `runledger::lambda::spec::LOG`; the work is in `runledger::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runledger::lambda::run(&runledger::lambda::spec::LOG).await
}
