//! `scripts/run-suite` (the CI helper: start a suite, wait for its end, exit by its status),
//! run for real against the real server and its built-in demo target.

use runledger_testkit::builders::external_case;
use runledger_testkit::server::Server;
use runledger_testkit::tokens::mint_token;
use serde_json::{Value, json};
use std::process::{Command, Output};
use tempfile::TempDir;

const USER: &str = "ci";

fn start_server() -> (TempDir, Server) {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::start(dir.path());
    (dir, server)
}

/// A case of one `http` step against the demo target, expecting `200` from `path`.
fn demo_case(server: &Server, name: &str, path: &str) -> Value {
    json!({
        "name": name,
        "variables": {"base_url": format!("{}/demo", server.origin)},
        "steps": [{
            "name": format!("GET {path}"),
            "action": "http",
            "http": {"method": "GET", "url": format!("{{{{base_url}}}}{path}")},
            "expect": {"status": 200}
        }]
    })
}

/// Creates a suite of test cases (as [`USER`]); returns its id.
async fn suite_of(server: &Server, cases: Vec<Value>) -> String {
    let api = server.client(USER);
    let mut ids = Vec::new();
    for case in cases {
        ids.push(api.create_case(case).await);
    }
    api.create_suite(json!({"name": "run-suite test", "test_case_ids": ids}))
        .await
}

/// Runs `scripts/run-suite` with `args`, as [`USER`], against `server`.
fn run_suite(server: &Server, args: &[&str]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/run-suite");
    Command::new("bash")
        .arg(script)
        .args(args)
        .env("RUNLEDGER_URL", &server.api_url)
        .env("RUNLEDGER_TOKEN", mint_token(USER, false))
        .output()
        .expect("bash runs scripts/run-suite")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The final execution the script printed on stdout.
fn final_execution(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            describe(output)
        )
    })
}

#[tokio::test]
async fn a_passing_suite_exits_0_with_the_final_execution_on_stdout() {
    let (_dir, server) = start_server();
    let suite = suite_of(
        &server,
        vec![
            demo_case(&server, "health", "/health"),
            demo_case(&server, "status 200", "/status/200"),
        ],
    )
    .await;

    let args = [
        suite.as_str(),
        "--priority",
        "high",
        "--environment",
        "ci",
        "--poll",
        "0.2",
        "--timeout",
        "60",
        "--idempotency-key",
        "build-1234",
    ];
    let output = run_suite(&server, &args);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let execution = final_execution(&output);
    assert_eq!(execution["status"], "passed", "{execution}");
    assert_eq!(execution["kind"], "suite");
    assert_eq!(execution["test_suite_id"], suite.as_str());
    assert_eq!(execution["children"]["total"], 2);
    assert_eq!(execution["children"]["passed"], 2);
    assert_eq!(execution["config"]["priority"], "high");
    assert_eq!(execution["config"]["environment"], "ci");
    let id = execution["id"].as_str().expect("an execution id");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("execution {id} started for suite {suite}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{id} passed | cases 2: 2 passed")),
        "{stderr}"
    );

    // The same idempotency key again: the same execution, nothing started twice.
    let again = run_suite(&server, &args);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert_eq!(final_execution(&again)["id"], id);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already started"),
        "{}",
        describe(&again)
    );
}

#[tokio::test]
async fn a_failing_suite_exits_1() {
    let (_dir, server) = start_server();
    let suite = suite_of(
        &server,
        vec![
            demo_case(&server, "health", "/health"),
            demo_case(&server, "payment gateway", "/status/503"),
        ],
    )
    .await;

    let output = run_suite(&server, &[&suite, "--poll", "0.2", "--timeout", "60"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let execution = final_execution(&output);
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(execution["children"]["passed"], 1);
    assert_eq!(execution["children"]["failed"], 1);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ended failed"),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn a_suite_still_running_at_the_timeout_exits_3() {
    let (_dir, server) = start_server();
    // An external case nobody reports: the suite waits for it.
    let suite = suite_of(&server, vec![external_case("browser flow", 2)]).await;

    let output = run_suite(&server, &[&suite, "--poll", "0.2", "--timeout", "1"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let last = final_execution(&output);
    assert!(
        matches!(last["status"].as_str(), Some("queued" | "running")),
        "{last}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("did not end within 1s"),
        "{}",
        describe(&output)
    );
}

#[test]
fn usage_errors_exit_2() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/run-suite");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(script)
            .args(args)
            .env("RUNLEDGER_URL", "http://127.0.0.1:9/api/v1")
            .env("RUNLEDGER_TOKEN", "not-used")
            .output()
            .expect("bash runs scripts/run-suite")
    };
    for (args, complaint) in [
        (&[][..], "missing SUITE_ID"),
        (&["--priority", "high"][..], "missing SUITE_ID"),
        (&["ts_x", "--priority", "urgent"][..], "--priority must be"),
        (&["ts_x", "--timeout", "soon"][..], "--timeout must be"),
        (&["ts_x", "--poll"][..], "--poll needs a value"),
        (&["ts_x", "--verbose"][..], "unknown option --verbose"),
    ] {
        let output = run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
        assert!(
            stderr.contains("usage: run-suite SUITE_ID"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}: {}", describe(&output));
    }
}

#[tokio::test]
async fn http_errors_exit_2_with_the_problem_detail() {
    let (_dir, server) = start_server();

    // A suite that does not exist: the problem's code and detail are printed.
    let output = run_suite(&server, &["ts_00000000000000000000000000"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(stderr.contains("(test_suite_not_found)"), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", describe(&output));

    // A token the server does not accept.
    let suite = suite_of(&server, vec![demo_case(&server, "health", "/health")]).await;
    let output = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/run-suite"
        ))
        .arg(&suite)
        .env("RUNLEDGER_URL", &server.api_url)
        .env("RUNLEDGER_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")
        .output()
        .expect("bash runs scripts/run-suite");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("HTTP 401"),
        "{}",
        describe(&output)
    );
}
