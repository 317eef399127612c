//! Lambda function `finalize`: see `runledger::functions::FINALIZE` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::FINALIZE)
}
