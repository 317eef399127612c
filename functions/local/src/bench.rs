//! `runledger-local bench` (filled in below).

#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("bench is not built yet".into())
}
