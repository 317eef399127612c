//! Lambda function `step-report`: see `runledger::functions::STEP_REPORT` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::STEP_REPORT)
}
