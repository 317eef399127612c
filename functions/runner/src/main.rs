//! Lambda function `runner`: see `runledger::functions::RUNNER` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::RUNNER)
}
