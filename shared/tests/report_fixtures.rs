//! The report module on reports the real tools wrote (`scripts/report-fixtures` regenerates
//! them into `tests/fixtures/`): what each one reads as, that writing it out and reading it
//! back keeps the run, and that the CTRF written is valid against CTRF's own JSON Schema.
//! Times and timestamps change on every regeneration, so only their presence is checked.

use runledger::report::{
    AttemptStatus, ImportedRun, ImportedTest, RunCounts, read_ctrf, read_junit, write_ctrf,
    write_junit,
};
use serde_json::Value;
use std::path::PathBuf;

use AttemptStatus::{Error, Failed, Passed, Skipped};

fn fixture(path: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn junit(name: &str) -> ImportedRun {
    read_junit(&fixture(&format!("junit/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn counts(
    tests: usize,
    passed: usize,
    failed: usize,
    errored: usize,
    skipped: usize,
    flaky: usize,
) -> RunCounts {
    RunCounts {
        tests,
        passed,
        failed,
        errored,
        skipped,
        flaky,
    }
}

/// The one test with this identity.
fn find<'a>(run: &'a ImportedRun, suite: &str, classname: &str, name: &str) -> &'a ImportedTest {
    run.tests
        .iter()
        .find(|test| test.identity() == (suite, classname, name))
        .unwrap_or_else(|| {
            let all: Vec<_> = run.tests.iter().map(ImportedTest::identity).collect();
            panic!("no test ({suite}, {classname}, {name}) in {all:#?}")
        })
}

fn statuses(test: &ImportedTest) -> Vec<AttemptStatus> {
    test.attempts.iter().map(|attempt| attempt.status).collect()
}

fn output(test: &ImportedTest) -> &str {
    test.last_attempt()
        .and_then(|attempt| attempt.output.as_deref())
        .unwrap_or("")
}

/// Every attempt has a duration, and none is absurd.
fn assert_durations(run: &ImportedRun) {
    for test in &run.tests {
        for attempt in &test.attempts {
            let ms = attempt
                .duration_ms
                .unwrap_or_else(|| panic!("{} has no duration", test.name));
            assert!(ms < 60_000, "{}: {ms} ms", test.name);
        }
    }
}

fn assert_pytest(run: &ImportedRun, alpha: &str, beta: &str) {
    assert_eq!(run.name.as_deref(), Some("pytest tests"));
    assert!(run.started_at.is_some());
    assert_eq!(run.counts(), counts(9, 4, 2, 1, 2, 0));
    assert_durations(run);
    let passes = find(run, alpha, "tests.test_alpha", "test_passes");
    assert_eq!(statuses(passes), [Passed]);
    assert!(
        output(passes).contains("alpha says hello"),
        "{}",
        output(passes)
    );
    let fails = find(run, alpha, "tests.test_alpha", "test_fails");
    assert_eq!(statuses(fails), [Failed]);
    let message = fails.attempts[0].message.as_deref().unwrap();
    assert!(
        message.starts_with(
            "AssertionError: values <differ> & that's bad\nassert 'actual' == 'expected'"
        ),
        "{message}"
    );
    assert!(output(fails).contains("tests/test_alpha.py:10: AssertionError"));
    let skipped = find(run, alpha, "tests.test_alpha", "test_skipped");
    assert_eq!(skipped.attempts[0].message.as_deref(), Some("not today"));
    let xfail = find(run, alpha, "tests.test_alpha", "test_expected_failure");
    assert_eq!(statuses(xfail), [Skipped]);
    let errors = find(run, alpha, "tests.test_alpha", "test_errors");
    assert_eq!(statuses(errors), [Error]);
    assert_eq!(
        errors.attempts[0].message.as_deref(),
        Some("failed on setup with \"RuntimeError: fixture exploded\"")
    );
    assert_eq!(
        statuses(find(run, alpha, "tests.test_alpha", "test_param[a<b]")),
        [Passed]
    );
    assert_eq!(
        statuses(find(run, alpha, "tests.test_alpha", "test_param[c&d]")),
        [Passed]
    );
    // The same name in two files: two tests.
    assert_eq!(
        statuses(find(run, alpha, "tests.test_alpha", "test_same_name")),
        [Passed]
    );
    let beta = find(run, beta, "tests.test_beta", "test_same_name");
    assert_eq!(statuses(beta), [Failed]);
    assert!(output(beta).contains("beta complains"));
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn pytest_xunit1() {
    // xunit1 names each test case's file.
    assert_pytest(
        &junit("pytest-xunit1.xml"),
        "tests/test_alpha.py",
        "tests/test_beta.py",
    );
}

#[test]
fn pytest_xunit2() {
    // xunit2 names no file: both files' tests are in suite `pytest`, told apart by class.
    assert_pytest(&junit("pytest-xunit2.xml"), "pytest", "pytest");
}

#[test]
fn pytest_rerunfailures() {
    let run = junit("pytest-rerunfailures.xml");
    assert_eq!(run.counts(), counts(3, 2, 1, 0, 0, 1));
    assert_durations(&run);
    let flaky = find(
        &run,
        "pytest",
        "tests.test_reruns",
        "test_flaky_then_passes",
    );
    assert_eq!(statuses(flaky), [Failed, Passed]);
    assert!(flaky.is_flaky());
    let always = find(&run, "pytest", "tests.test_reruns", "test_always_fails");
    assert_eq!(statuses(always), [Failed, Failed, Failed]);
    assert!(!always.is_flaky());
    assert_eq!(
        always.attempts[2].message.as_deref(),
        Some("AssertionError: always fails\nassert False")
    );
    assert_eq!(
        statuses(find(&run, "pytest", "tests.test_reruns", "test_stable")),
        [Passed]
    );
    // pytest-rerunfailures writes reruns without an outcome: said so once.
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert!(
        run.warnings[0].starts_with("3 earlier attempts"),
        "{:?}",
        run.warnings
    );
}

/// A JavaScript test's identity from its file (`alpha` or `beta`) and its title.
type JsIdentity = fn(&str, &str) -> (String, String, String);

/// The JavaScript projects: `checkout` in test/alpha and test/beta, each with `same name`
/// (passing in alpha, failing in beta), `<file> only passes` and a skipped test.
fn assert_javascript(run: &ImportedRun, identity: JsIdentity) {
    assert_eq!(run.counts(), counts(6, 3, 1, 0, 2, 0));
    assert_durations(run);
    let test = |file: &str, title: &str| {
        let (suite, classname, name) = identity(file, title);
        find(run, &suite, &classname, &name)
    };
    // The same name in two files: two tests.
    let same_alpha = test("alpha", "same name");
    let same_beta = test("beta", "same name");
    assert_eq!(
        (statuses(same_alpha), statuses(same_beta)),
        (vec![Passed], vec![Failed])
    );
    let failure = same_beta.attempts[0].message.as_deref().unwrap();
    assert!(
        failure.contains("beta is not alpha") || failure.starts_with("assert.strictEqual"),
        "{failure}"
    );
    assert!(output(same_beta).contains("beta"), "{}", output(same_beta));
    for file in ["alpha", "beta"] {
        assert_eq!(
            statuses(test(file, &format!("{file} only passes"))),
            [Passed]
        );
        assert_eq!(statuses(test(file, &format!("{file} skipped"))), [Skipped]);
    }
}

#[test]
fn jest_junit() {
    let run = junit("jest-junit.xml");
    assert_eq!(run.name.as_deref(), Some("jest tests"));
    assert_javascript(&run, |file, title| {
        (
            format!("test/{file}.test.js"),
            format!("checkout {title}"),
            format!("checkout {title}"),
        )
    });
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn mocha_junit_reporter() {
    let run = junit("mocha-junit-reporter.xml");
    assert_eq!(run.name.as_deref(), Some("Mocha Tests"));
    assert_javascript(&run, |file, title| {
        (
            format!("/project/js/test/{file}.test.js"),
            title.to_owned(),
            format!("checkout {title}"),
        )
    });
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn node_test_junit_reporter() {
    // node:test names no file: the second `checkout` suite is told apart as `checkout #2`.
    let run = junit("node-test.xml");
    assert_eq!(run.name, None);
    assert_javascript(&run, |file, title| {
        let suite = if file == "alpha" {
            "checkout"
        } else {
            "checkout #2"
        };
        (suite.to_owned(), "test".to_owned(), title.to_owned())
    });
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert!(run.warnings[0].contains("`checkout #2`"));
}

#[test]
fn jest_ctrf_json_reporter() {
    // Its `suite` is one string (the file's name and the describe block's); `pending` is
    // skipped.
    let run = read_ctrf(&fixture("ctrf/jest-ctrf.json")).unwrap();
    assert_javascript(&run, |file, title| {
        (
            format!("/project/js/test/{file}.test.js"),
            format!("{file}.test.js > checkout"),
            format!("checkout {title}"),
        )
    });
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

// ---- written reports --------------------------------------------------------------------------

fn every_fixture() -> Vec<(&'static str, ImportedRun)> {
    let mut runs: Vec<_> = [
        "pytest-xunit1.xml",
        "pytest-xunit2.xml",
        "pytest-rerunfailures.xml",
        "jest-junit.xml",
        "mocha-junit-reporter.xml",
        "node-test.xml",
    ]
    .into_iter()
    .map(|name| (name, junit(name)))
    .collect();
    runs.push((
        "jest-ctrf.json",
        read_ctrf(&fixture("ctrf/jest-ctrf.json")).unwrap(),
    ));
    runs
}

/// The same tests, attempts, statuses, durations and messages; outputs may lose surrounding
/// white space.
fn assert_same_run(name: &str, read: &ImportedRun, written: &ImportedRun) {
    assert_eq!(read.counts(), written.counts(), "{name}");
    assert_eq!(read.tests.len(), written.tests.len(), "{name}");
    for (after, before) in read.tests.iter().zip(&written.tests) {
        assert_eq!(after.identity(), before.identity(), "{name}");
        assert_eq!(statuses(after), statuses(before), "{name}: {}", before.name);
        assert_eq!(
            after.is_flaky(),
            before.is_flaky(),
            "{name}: {}",
            before.name
        );
        for (a, b) in after.attempts.iter().zip(&before.attempts) {
            assert_eq!(a.duration_ms, b.duration_ms, "{name}: {}", before.name);
            assert_eq!(a.message, b.message, "{name}: {}", before.name);
            assert_eq!(
                a.output.as_deref().map(str::trim),
                b.output.as_deref().map(str::trim),
                "{name}: {}",
                before.name
            );
        }
    }
}

#[test]
fn written_junit_reads_back_as_the_same_run() {
    for (name, run) in every_fixture() {
        let xml = write_junit(&run);
        let back = read_junit(xml.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
        assert_same_run(name, &back, &run);
    }
}

fn ctrf_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_slice(&fixture("ctrf/ctrf.schema.json")).unwrap();
    assert!(
        jsonschema::draft7::meta::is_valid(&schema),
        "a draft-07 schema"
    );
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the CTRF schema compiles")
}

#[test]
fn written_ctrf_is_valid_and_reads_back_as_the_same_run() {
    let validator = ctrf_validator();
    for (name, run) in every_fixture() {
        let json = write_ctrf(&run);
        let document: Value = serde_json::from_str(&json).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        let back = read_ctrf(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_run(name, &back, &run);
        assert_eq!(
            document["results"]["summary"]["flaky"].as_u64(),
            Some(run.counts().flaky as u64)
        );
    }
}

#[test]
fn the_schema_rejects_what_it_should() {
    // The validator is not vacuous: an unknown status, or a test without a duration, is invalid.
    let validator = ctrf_validator();
    let run = junit("pytest-rerunfailures.xml");
    let mut document: Value = serde_json::from_str(&write_ctrf(&run)).unwrap();
    assert!(validator.is_valid(&document));
    document["results"]["tests"][0]["status"] = "broken".into();
    assert!(!validator.is_valid(&document));
    let mut document: Value = serde_json::from_str(&write_ctrf(&run)).unwrap();
    document["results"]["tests"][0]
        .as_object_mut()
        .unwrap()
        .remove("duration");
    assert!(!validator.is_valid(&document));
}
