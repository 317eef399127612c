//! The `runledger-local` command line as a new user meets it, on the real binary: `serve`'s
//! flags without the subcommand, `token` finding (never inventing) the server's secret, a
//! log without colour escapes when it is not a terminal, and the allocator's options in force.

use runledger_testkit::server::{Api, Launch, Server, local_binary};
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;

/// `runledger-local ARGS` in `cwd`, with none of the variables that would point it elsewhere.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(local_binary());
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUNLEDGER_JWT_SECRET")
        .env_remove("RUNLEDGER_DATA_DIR")
        .env_remove("RUNLEDGER_JWT_ISSUER")
        .env_remove("RUNLEDGER_JWT_AUDIENCE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run runledger-local")
}

/// The token `runledger-local token` printed, asserting it succeeded.
fn printed_token(output: &Output) -> String {
    assert!(
        output.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn serve_flags_work_without_the_serve_subcommand() {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::launch(
        dir.path(),
        Launch {
            subcommand: false,
            ..Launch::default()
        },
    );
    Api::new(&server.api_url, &server.printed_token)
        .get("/health")
        .await
        .expect(200, "health of a server started without `serve`");
    let help = run(dir.path(), &["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--listen"), "{help}");
    let both = run(dir.path(), &["--listen", "127.0.0.1:0", "token"], &[]);
    assert!(
        !both.status.success(),
        "serve's flags with another subcommand are refused"
    );
}

#[test]
fn token_without_a_secret_fails_and_creates_none() {
    let elsewhere = TempDir::new().expect("a temp directory");
    let output = run(elsewhere.path(), &["token", "--sub", "local"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a token from no secret: {stderr}");
    assert!(output.stdout.is_empty(), "no token is printed");
    assert!(
        stderr.contains(".runledger/jwt-secret")
            && stderr.contains("RUNLEDGER_JWT_SECRET")
            && stderr.contains("serve"),
        "the message says where it looked and what creates the secret: {stderr}"
    );
    assert!(
        !elsewhere.path().join(".runledger").exists(),
        "token must not create a data dir or a secret"
    );
}

#[tokio::test]
async fn token_signs_with_the_secret_serve_created_wherever_it_runs() {
    let dir = TempDir::new().expect("a temp data dir");
    let data_dir = dir.path().join("data");
    // No RUNLEDGER_JWT_SECRET (empty is unset): the server creates its secret in the data dir.
    let server = Server::start_with(&data_dir, &[("RUNLEDGER_JWT_SECRET", "")]);
    let elsewhere = TempDir::new().expect("another directory");
    let data = data_dir.to_str().expect("a UTF-8 path");
    let by_flag = printed_token(&run(
        elsewhere.path(),
        &["token", "--sub", "bob", "--data-dir", data],
        &[],
    ));
    let by_variable = printed_token(&run(
        elsewhere.path(),
        &["token", "--sub", "carol"],
        &[("RUNLEDGER_DATA_DIR", data)],
    ));
    for token in [by_flag, by_variable] {
        Api::new(&server.api_url, &token)
            .get("/executions")
            .await
            .expect(200, "a token from `token` against the server");
    }
    assert!(!elsewhere.path().join(".runledger").exists());
}

#[tokio::test]
async fn the_log_has_no_colour_escapes_when_it_is_not_a_terminal() {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::start(dir.path());
    let api = Api::new(&server.api_url, &server.printed_token);
    api.get("/health").await.expect(200, "health");
    api.get("/no-such-route").await;
    let mut server = server;
    server.terminate(std::time::Duration::from_secs(15)).await;
    let log = server.whole_log();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("INFO"), "the server logged: {text}");
    assert!(
        !log.contains(&0x1b),
        "a log written to a file has no ANSI escapes: {text:?}"
    );
}

/// The binary's jemalloc options (`main.rs`) are read by jemalloc, not ignored: a symbol
/// under the wrong name would leave freed memory held for jemalloc's default 10 s.
#[test]
fn the_allocator_returns_freed_pages_after_a_second_by_its_own_thread() {
    let dir = TempDir::new().expect("a temp dir");
    // `stats_print` adds to the built-in options: jemalloc prints them all at exit.
    let output = run(
        dir.path(),
        &["token", "--sub", "alice"],
        &[("_RJEM_MALLOC_CONF", "stats_print:true")],
    );
    let stats = String::from_utf8_lossy(&output.stderr);
    for option in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(stats.contains(option), "{option} not in force:\n{stats}");
    }
}
