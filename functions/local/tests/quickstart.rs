//! The README's front door, run as written against the real server, so that it cannot drift
//! from the product: the set-up line, the Quickstart's token line (both read from README.md
//! itself) and `scripts/quickstart` (plain curl).

use runledger_testkit::server::{Api, Server, local_binary};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The first line of README.md's `## section` for which `wanted` holds.
fn readme_line(section: &str, wanted: impl Fn(&str) -> bool) -> String {
    let readme = std::fs::read_to_string(format!("{REPOSITORY}/README.md")).expect("README.md");
    let (_, rest) = readme
        .split_once(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("README.md has a `## {section}` section"));
    let text = rest.split("\n## ").next().unwrap_or_default();
    text.lines()
        .find(|line| wanted(line))
        .unwrap_or_else(|| panic!("README.md's `{section}` has no such line"))
        .to_owned()
}

/// Writes an executable script `name` into `dir`.
fn script(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a stand-in command");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn the_readme_token_line_and_quickstart_run_a_suite_with_one_failing_case() {
    // The repository root as a user has it: the server keeps its data in ./.runledger and,
    // with no RUNLEDGER_JWT_SECRET (empty is unset), creates its secret there.
    let root = TempDir::new().expect("a temp directory");
    let server = Server::start_with(
        &root.path().join(".runledger"),
        &[("RUNLEDGER_JWT_SECRET", "")],
    );

    // The token line exactly as README.md writes it. Its `cargo run` would build the `local`
    // profile (minutes here): a stand-in cargo takes only that command and runs the binary
    // this test was built with, with the arguments after `--`.
    let line = readme_line("Quickstart (curl)", |l| {
        l.starts_with("export RUNLEDGER_TOKEN=")
    });
    let bin = TempDir::new().expect("a directory for the stand-in cargo");
    script(
        bin.path(),
        "cargo",
        r#"#!/usr/bin/env bash
set -eu
[[ ${1:-} == run ]] || { echo "stand-in cargo: only \`cargo run\`, not: $*" >&2; exit 97; }
shift
while [[ $# -gt 0 && $1 != -- ]]; do
  case "$1" in
    -q|--quiet) shift ;;
    --profile) [[ ${2:-} == local ]] || exit 97; shift 2 ;;
    -p|--package) [[ ${2:-} == runledger-local ]] || exit 97; shift 2 ;;
    *) echo "stand-in cargo: unexpected argument $1" >&2; exit 97 ;;
  esac
done
[[ ${1:-} == -- ]] && shift
exec "$RUNLEDGER_LOCAL_BINARY" "$@"
"#,
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("{line}\nprintf %s \"$RUNLEDGER_TOKEN\""))
        .current_dir(root.path())
        .env("PATH", path_with(bin.path()))
        .env("RUNLEDGER_LOCAL_BINARY", local_binary())
        .env_remove("RUNLEDGER_JWT_SECRET")
        .env_remove("RUNLEDGER_DATA_DIR")
        .output()
        .expect("bash runs the README's token line");
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        !token.is_empty(),
        "README's `{line}` gave no token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Api::new(&server.api_url, &token)
        .get("/executions")
        .await
        .expect(200, "the README's token against the server");

    let output = Command::new("bash")
        .arg(format!("{REPOSITORY}/scripts/quickstart"))
        .env("RUNLEDGER_URL", &server.api_url)
        .env("RUNLEDGER_TOKEN", &token)
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

/// The set-up line installs the Debian packages with sudo only when it is needed: as root
/// (where there is often no sudo at all) it calls apt-get itself.
#[test]
fn the_readme_set_up_line_uses_sudo_only_when_not_root() {
    // The first set-up line (the second installs the emulator).
    let section_line = readme_line("Set up, run, test", |l| l.contains("# set up:"));
    let stand_ins = TempDir::new().expect("a directory for stand-in commands");
    let calls = stand_ins.path().join("calls");
    // apt-get and sudo record their calls; dpkg-query finds nothing installed.
    script(
        stand_ins.path(),
        "apt-get",
        "#!/bin/sh\necho \"apt-get $*\" >> \"$CALLS\"\n",
    );
    script(
        stand_ins.path(),
        "sudo",
        "#!/bin/sh\necho \"sudo $*\" >> \"$CALLS\"\nexec \"$@\"\n",
    );
    script(stand_ins.path(), "dpkg-query", "#!/bin/sh\nexit 1\n");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&section_line)
        .current_dir(REPOSITORY)
        .env("PATH", path_with(stand_ins.path()))
        .env("CALLS", &calls)
        .output()
        .expect("bash runs the README's set-up line");
    let recorded = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        output.status.success(),
        "README's `{section_line}` failed: {}{}\ncalls:\n{recorded}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let install = recorded
        .lines()
        .find(|l| l.starts_with("apt-get") && l.contains(" install "))
        .unwrap_or_else(|| panic!("apt-get install was run: {recorded}"));
    for package in ["build-essential", "curl", "python3-venv"] {
        assert!(install.contains(package), "{package} in `{install}`");
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert_eq!(
        recorded.contains("sudo "),
        !root,
        "sudo is used only when not root: {recorded}"
    );
}
