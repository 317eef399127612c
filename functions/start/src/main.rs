//! Lambda function `start`: see `runledger::functions::START` for what it owns.

fn main() -> std::process::ExitCode {
    runledger::functions::awaiting_aws_adapters(&runledger::functions::START)
}
