//! The served OpenAPI document, fuzzed against the server that serves it: schemathesis
//! (pinned in `scripts/requirements-fuzz.txt`, installed into the emulator's venv by
//! `scripts/emulator install`) reads `GET /api/v1/openapi.json` from the real `runledger-local`
//! and runs every one of its checks on requests it generates from the document, valid and
//! invalid: no `5xx`, every status and body as documented, every schema-valid request taken
//! and every schema-invalid one refused. What the document cannot describe is settled in
//! `schemathesis.toml` beside this file, each with its reason.
//!
//! Without schemathesis the test fails, as the emulator's tests do: it never skips.

use runledger_testkit::emulator::{emulator_python, workspace_root};
use runledger_testkit::server::{Server, local_binary};
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Fixed, so that a failure reproduces with the same requests (`--seed` by hand).
const SEED: &str = "20261201";
/// Test cases per operation and phase: about a minute on a two-core machine.
const MAX_EXAMPLES: &str = "30";
/// The whole run is stopped, and the test fails, after this.
const WALL_CLOCK: Duration = Duration::from_secs(240);

#[test]
fn the_served_document_holds_for_every_request_schemathesis_makes() {
    let schemathesis = emulator_python().with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} does not exist; run `scripts/emulator install` (or the whole suite with \
         `scripts/test`, which does it)",
        schemathesis.display()
    );
    let data = TempDir::new().expect("a temp data dir");
    // The local server lets `http` steps reach loopback (the default, set here to be sure):
    // the fuzzer's test cases only name loopback URLs (see schemathesis.toml).
    let server = Server::start_with(data.path(), &[("RUNLEDGER_ALLOW_PRIVATE_TARGETS", "true")]);
    assert_serves_this_document(&server);
    let config = workspace_root().join("functions/local/tests/schemathesis.toml");
    // Reports, hypothesis' files and the like go here, not into the checkout.
    let scratch = TempDir::new().expect("a temp working dir");
    let mut output = tempfile::NamedTempFile::new().expect("a temp file for the output");
    let mut child = Command::new(&schemathesis)
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/openapi.json", server.api_url))
        .args(["--url", &server.origin])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.printed_token),
        ])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // One worker: with two, hypothesis sometimes fails parsing its own source concurrently
        // ("AST constructor recursion depth mismatch", a CPython 3.11 thread-safety bug).
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--generation-database", "none"])
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .stdout(output.reopen().expect("reopen the output file"))
        .stderr(output.reopen().expect("reopen the output file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > WALL_CLOCK {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = String::new();
    output.seek(SeekFrom::Start(0)).expect("rewind the output");
    output
        .read_to_string(&mut text)
        .expect("read schemathesis' output");
    let elapsed = started.elapsed();
    match status {
        None => {
            panic!("schemathesis did not finish within {WALL_CLOCK:?}; its output so far:\n{text}")
        }
        Some(status) => assert!(
            status.success(),
            "schemathesis found failures ({status}, after {elapsed:?}); rerun with `--seed {SEED}` \
             (see the README). Its output:\n{text}"
        ),
    }
    assert!(
        text.contains(&format!("Seed: {SEED}")) && text.contains(" passed"),
        "schemathesis succeeded without saying what it ran:\n{text}"
    );
    eprintln!("schemathesis passed in {elapsed:?}");
}

/// The server under test serves this checkout's committed document (read from the file, not
/// from a build): a stale or foreign `runledger-local` binary would have schemathesis test
/// some other document.
fn assert_serves_this_document(server: &Server) {
    let url = format!("{}/openapi.json", server.api_url);
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            runledger::crypto::install();
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client")
                .get(&url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("GET openapi.json")
                .bytes()
                .await
                .expect("the document")
        });
    let served: serde_json::Value =
        serde_json::from_slice(&served).expect("the served document is JSON");
    let path = workspace_root().join("shared/openapi.json");
    let text = std::fs::read_to_string(&path).expect("read shared/openapi.json");
    let committed: serde_json::Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    assert!(
        served == committed,
        "{} serves another OpenAPI document than {}: rebuild it (`cargo test -p \
         runledger-local` does), or run `scripts/openapi` after changing the API",
        local_binary().display(),
        path.display()
    );
}
