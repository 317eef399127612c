//! The `runledger-local` command line as a new user meets it, on the real binary: `serve`'s
//! flags without the subcommand.

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
