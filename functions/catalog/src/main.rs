//! Lambda function `catalog`: see `runledger::functions::CATALOG` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::CATALOG)
}
