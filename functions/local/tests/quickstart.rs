//! The README's quickstart, run as written (`scripts/quickstart`, plain curl) against the real
//! server, so the front door cannot drift from the product.

use runledger_testkit::server::Server;
use std::process::Command;
use tempfile::TempDir;

#[test]
fn the_readme_quickstart_runs_a_suite_with_one_failing_case() {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::start(dir.path());
    let repository = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new("bash")
        .arg(format!("{repository}/scripts/quickstart"))
        .env("RUNLEDGER_URL", &server.api_url)
        .env("RUNLEDGER_TOKEN", &server.printed_token)
        .output()
        .expect("bash runs scripts/quickstart");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "quickstart failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = stdout
        .lines()
        .skip_while(|l| !l.starts_with("suite result:"))
        .nth(1)
        .expect("the script prints the suite result");
    let trace: serde_json::Value = serde_json::from_str(result).expect("the result is JSON");
    assert_eq!(trace["status"], "failed", "{trace}");
    assert_eq!(trace["children"]["total"], 3);
    assert_eq!(trace["children"]["passed"], 2);
    assert_eq!(trace["children"]["failed"], 1);
    assert!(stdout.contains("\"name\":\"payment gateway is up\""));
}
