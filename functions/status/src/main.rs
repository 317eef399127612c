//! Lambda function `status`: see `runledger::functions::STATUS` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::STATUS)
}
