//! Imports of reports the real tools write, run here: pytest (xunit1 and xunit2), pytest with
//! pytest-rerunfailures, and mocha with mocha-junit-reporter write JUnit XML for small test
//! projects made on the fly, and the reports are posted to a real `runledger-local` server.
//! The tools come from the emulator's venv (`scripts/emulator install`: pytest) and from
//! `scripts/report-tools install` (mocha); without them the test fails, it never skips.

use runledger_testkit::emulator::emulator_python;
use runledger_testkit::server::{Api, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const PYTEST_ALPHA: &str = r#"import pytest


def test_passes():
    print("alpha says hello")
    assert 1 + 1 == 2


def test_fails():
    assert "actual" == "expected", "values <differ> & that's bad"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_errors(broken):
    pass


def test_same_name():
    pass
"#;

const PYTEST_BETA: &str = r#"def test_same_name():
    assert False, "beta's same-named test fails"
"#;

const PYTEST_RERUNS: &str = r#"import pathlib

COUNTER = pathlib.Path(__file__).with_name("flaky-count")


def test_flaky_then_passes():
    attempt = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(attempt))
    assert attempt >= 2, f"attempt {attempt} fails"


def test_always_fails():
    assert False, "always fails"


def test_stable():
    pass
"#;

fn mocha_file(name: &str) -> String {
    format!(
        r#"const assert = require('node:assert');

describe('checkout', () => {{
  it('same name', () => {{
    assert.strictEqual('{name}', 'alpha', '{name} is not alpha');
  }});
  it('{name} only passes', () => {{}});
  it.skip('{name} skipped', () => {{}});
}});
"#
    )
}

fn venv() -> PathBuf {
    emulator_python()
        .parent()
        .and_then(Path::parent)
        .expect("the venv")
        .to_path_buf()
}

/// A tool the test needs, which must be installed.
fn tool(path: PathBuf, install: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `{install}` (scripts/test does)",
        path.display()
    );
    path
}

/// Runs a test tool (its tests fail on purpose, so its exit code is not checked) and returns
/// the report it wrote.
fn run(mut command: Command, report: &Path) -> Vec<u8> {
    let output = command.output().expect("the test tool runs");
    std::fs::read(report).unwrap_or_else(|e| {
        panic!(
            "{command:?} wrote no report at {} ({e}):\n{}\n{}",
            report.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Posts a JUnit report; returns the answer (`201`).
async fn import(api: &Api, suite: &str, report: Vec<u8>) -> Value {
    api.post_file(
        &format!("/imports?suite={suite}"),
        "application/xml",
        report,
        &[],
    )
    .await
    .expect(201, "an import")
}

/// The counts the answer's `import` object holds: tests, passed, failed, errored, skipped,
/// flaky.
fn counts(answer: &Value) -> [u64; 6] {
    ["tests", "passed", "failed", "errored", "skipped", "flaky"]
        .map(|name| answer["import"][name].as_u64().unwrap_or(u64::MAX))
}

async fn children(api: &Api, answer: &Value) -> Vec<Value> {
    let id = answer["id"].as_str().unwrap();
    let page = api
        .get(&format!("/executions/{id}/children?limit=200"))
        .await
        .expect(200, "children");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_written_by_pytest_and_mocha_are_recorded_as_they_ran() {
    let pytest = tool(venv().join("bin/pytest"), "scripts/emulator install");
    let mocha = tool(
        venv().join("js/node_modules/.bin/mocha"),
        "scripts/report-tools install",
    );
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let api = server.client("ci");

    // pytest, both JUnit families: 7 tests, two of them `test_same_name` in two files.
    let project = work.path().join("py");
    write(&project.join("tests/test_alpha.py"), PYTEST_ALPHA);
    write(&project.join("tests/test_beta.py"), PYTEST_BETA);
    for family in ["xunit1", "xunit2"] {
        let report = work.path().join(format!("pytest-{family}.xml"));
        let mut command = Command::new(&pytest);
        command
            .current_dir(&project)
            .args(["tests", "-p", "no:cacheprovider", "-q", "-o"])
            .arg(format!("junit_family={family}"))
            .arg(format!("--junitxml={}", report.display()));
        let answer = import(&api, &format!("pytest-{family}"), run(command, &report)).await;
        assert_eq!(counts(&answer), [6, 2, 2, 1, 1, 0], "{family}: {answer}");
        assert_eq!(answer["status"], "failed");
        let children = children(&api, &answer).await;
        assert_eq!(children.len(), 6, "{family}");
        let same_named: Vec<&Value> = children
            .iter()
            .filter(|c| c["name"] == "test_same_name")
            .collect();
        assert_eq!(same_named.len(), 2, "{family}: two files, two tests");
        assert_ne!(same_named[0]["test_case_id"], same_named[1]["test_case_id"]);
        let mut statuses: Vec<&str> = same_named
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        statuses.sort();
        assert_eq!(statuses, ["failed", "passed"], "{family}");
        for child in &children {
            assert!(child["duration_ms"].is_u64(), "{family}: {child}");
            assert!(child["started_at"].is_string(), "{family}: {child}");
        }
    }
    // A test is told by its file where the report names one (xunit1 does, with `file`), else
    // by its suite (xunit2's is `pytest`): six cases a family. Imported again, a report lands
    // on the cases its tests already have.
    let case_count = |cases: Value| cases["items"].as_array().unwrap().len();
    let cases = api
        .get("/test-cases?limit=200")
        .await
        .expect(200, "test cases");
    assert_eq!(case_count(cases), 12);
    let again = work.path().join("pytest-xunit1.xml");
    import(&api, "pytest-xunit1", std::fs::read(&again).unwrap()).await;
    let cases = api
        .get("/test-cases?limit=200")
        .await
        .expect(200, "test cases");
    assert_eq!(case_count(cases), 12, "the same tests, the same cases");

    // pytest-rerunfailures: each rerun is a repeated <testcase>, an attempt of its test.
    let project = work.path().join("rerun");
    write(&project.join("tests/test_reruns.py"), PYTEST_RERUNS);
    let report = work.path().join("reruns.xml");
    let mut command = Command::new(&pytest);
    command
        .current_dir(&project)
        .args(["tests", "-p", "no:cacheprovider", "-q", "--reruns", "2"])
        .arg(format!("--junitxml={}", report.display()));
    let answer = import(&api, "reruns", run(command, &report)).await;
    assert_eq!(counts(&answer), [3, 2, 1, 0, 0, 1], "{answer}");
    let children = children(&api, &answer).await;
    let attempts = |name: &str| {
        let mut of: Vec<(u64, String)> = children
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| {
                (
                    c["attempt"].as_u64().unwrap(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        of.sort();
        of.into_iter().map(|(_, status)| status).collect::<Vec<_>>()
    };
    assert_eq!(attempts("test_flaky_then_passes"), ["failed", "passed"]);
    assert_eq!(
        attempts("test_always_fails"),
        ["failed", "failed", "failed"]
    );
    assert_eq!(attempts("test_stable"), ["passed"]);

    // mocha with mocha-junit-reporter: two files with a `checkout` suite each.
    let project = work.path().join("js");
    write(&project.join("test/alpha.test.js"), &mocha_file("alpha"));
    write(&project.join("test/beta.test.js"), &mocha_file("beta"));
    let report = work.path().join("mocha.xml");
    let mut command = Command::new(&mocha);
    command
        .current_dir(&project)
        .env("MOCHA_FILE", &report)
        .args([
            "--reporter",
            "mocha-junit-reporter",
            "--reporter-options",
            "includePending=true",
            "test/*.test.js",
        ]);
    let answer = import(&api, "mocha", run(command, &report)).await;
    assert_eq!(counts(&answer), [6, 3, 1, 0, 2, 0], "{answer}");

    // What was recorded exports as the tools reported it.
    let id = answer["id"].as_str().unwrap();
    let export = api
        .get(&format!("/executions/{id}/report?format=ctrf"))
        .await
        .expect(200, "the export");
    assert_eq!(export["results"]["summary"]["tests"], 6, "{export}");
    assert_eq!(export["results"]["summary"]["failed"], 1);
    assert_eq!(export["results"]["summary"]["skipped"], 2);
}
