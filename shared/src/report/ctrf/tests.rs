use super::*;
use crate::report::{ReportFormat, RunCounts, read_junit, write_junit};
use AttemptStatus::{Error, Failed, Passed, Skipped};
use std::time::{Duration, Instant};

fn read(json: &str) -> ImportedRun {
    match read_ctrf(json.as_bytes()) {
        Ok(run) => run,
        Err(error) => panic!("{error}: {json}"),
    }
}

fn refused(json: &str) -> ReportError {
    match read_ctrf(json.as_bytes()) {
        Ok(run) => panic!("read {run:?}"),
        Err(error) => error,
    }
}

fn statuses(test: &ImportedTest) -> Vec<AttemptStatus> {
    test.attempts.iter().map(|attempt| attempt.status).collect()
}

const SAMPLE: &str = r#"{
  "reportFormat": "CTRF",
  "specVersion": "0.0.0",
  "results": {
    "tool": {"name": "playwright", "version": "1.50.0"},
    "summary": {"tests": 7, "passed": 3, "failed": 1, "skipped": 1, "pending": 1, "other": 1,
                "start": 1764583200000, "stop": 1764583260000},
    "environment": {"reportName": "e2e nightly", "branchName": "main"},
    "tests": [
      {"name": "logs in", "status": "passed", "duration": 1200, "start": 1764583200000,
       "stop": 1764583201200, "suite": ["login.spec.ts", "login"], "filePath": "tests/login.spec.ts",
       "stdout": ["hello", "world"], "extra": {"anything": [1, 2, {"deep": true}]}},
      {"name": "checks out", "status": "passed", "duration": 300.4, "suite": ["cart.spec.ts", "cart", "checkout"],
       "retries": 2, "flaky": true,
       "retryAttempts": [
         {"attempt": 2, "status": "failed", "duration": 80, "message": "second", "trace": "at line 2"},
         {"attempt": 1, "status": "failed", "duration": 90, "message": "first",
          "extra": {"rawStatus": "error"}}
       ]},
      {"name": "pays", "status": "failed", "duration": 50, "message": "card declined",
       "trace": "Error: card declined\n    at pay (pay.ts:3)", "stderr": ["oops"], "suite": "payments"},
      {"name": "refunds", "status": "skipped", "duration": 0},
      {"name": "later", "status": "pending", "duration": 0},
      {"name": "odd", "status": "other", "duration": 0},
      {"name": "retried only", "status": "passed", "duration": 10, "retries": 1},
      {"name": "flaky only", "status": "passed", "duration": 10, "flaky": true}
    ]
  }
}"#;

#[test]
fn reads_statuses_suites_attempts_and_text() {
    let run = read(SAMPLE);
    assert_eq!(run.name.as_deref(), Some("e2e nightly"));
    assert_eq!(
        run.started_at.map(|at| at.to_rfc3339()).as_deref(),
        Some("2025-12-01T10:00:00.000Z")
    );
    assert_eq!(
        run.counts(),
        RunCounts {
            tests: 8,
            passed: 4,
            failed: 1,
            errored: 0,
            skipped: 3,
            flaky: 3
        }
    );
    let logs_in = &run.tests[0];
    assert_eq!(
        logs_in.identity(),
        ("tests/login.spec.ts", "login.spec.ts > login", "logs in")
    );
    let attempt = &logs_in.attempts[0];
    assert_eq!(attempt.duration_ms, Some(1200));
    assert_eq!(
        attempt.started_at.map(Timestamp::millis),
        Some(1_764_583_200_000)
    );
    assert_eq!(attempt.output.as_deref(), Some("hello\nworld"));
    assert_eq!(attempt.message, None);

    let checks_out = &run.tests[1];
    assert_eq!(
        checks_out.identity(),
        ("cart.spec.ts", "cart > checkout", "checks out")
    );
    assert_eq!(statuses(checks_out), [Error, Failed, Passed]);
    assert_eq!(checks_out.attempts[0].message.as_deref(), Some("first"));
    assert_eq!(checks_out.attempts[1].output.as_deref(), Some("at line 2"));
    assert_eq!(checks_out.attempts[2].duration_ms, Some(300));
    assert!(checks_out.is_flaky());

    let pays = &run.tests[2];
    assert_eq!(pays.identity(), ("payments", "", "pays"));
    assert_eq!(pays.attempts[0].message.as_deref(), Some("card declined"));
    assert_eq!(
        pays.attempts[0].output.as_deref(),
        Some("Error: card declined\n    at pay (pay.ts:3)\noops")
    );
    assert_eq!(run.tests[3].identity(), ("", "", "refunds"));
    for skipped in &run.tests[3..6] {
        assert_eq!(statuses(skipped), [Skipped]);
    }
    assert_eq!(statuses(&run.tests[6]), [Failed, Passed]);
    assert_eq!(statuses(&run.tests[7]), [Failed, Passed]);
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert!(run.warnings[0].contains("2 earlier attempts are known only from"));
}

#[test]
fn unknown_statuses_are_refused_by_name() {
    let error = refused(
        r#"{"results": {"tool": {"name": "x"}, "tests": [{"name": "t1", "status": "broken", "duration": 1}]}}"#,
    );
    assert_eq!(
        error,
        ReportError::UnknownStatus {
            name: "t1".into(),
            status: "broken".into()
        }
    );
    assert!(error.to_string().contains("`broken`"), "{error}");
    let in_attempt = refused(
        r#"{"results": {"tests": [{"name": "t2", "status": "passed", "duration": 1,
            "retryAttempts": [{"attempt": 1, "status": "Failed"}]}]}}"#,
    );
    assert_eq!(
        in_attempt,
        ReportError::UnknownStatus {
            name: "t2".into(),
            status: "Failed".into()
        }
    );
}

#[test]
fn broken_documents_are_refused_clearly() {
    let invalid = |json: &str| match refused(json) {
        ReportError::InvalidCtrf { detail } => detail,
        other => panic!("{other:?}"),
    };
    assert!(invalid("{}").contains("missing field `results`"));
    assert!(invalid(r#"{"results": {}}"#).contains("missing field `tests`"));
    let detail =
        invalid(r#"{"results": {"tests": [{"name": "t", "status": "passed"}, {"name": "u"}]}}"#);
    assert!(
        detail.starts_with("results.tests[1]: missing field `status`"),
        "{detail}"
    );
    assert!(invalid(r#"{"results": {"tests": []}} trailing"#).contains("trailing"));
    assert!(invalid(r#"{"results": {"tests": [], "#).contains("EOF"));
    assert!(
        invalid(r#"{"reportFormat": "JUNIT", "results": {"tests": []}}"#)
            .contains("reportFormat is `JUNIT`")
    );
    assert!(matches!(
        refused("<testsuite/>"),
        ReportError::InvalidCtrf { .. }
    ));
    assert_eq!(
        refused(r#"{"results": {"tests": []}}"#),
        ReportError::NoTests
    );
    assert_eq!(
        read_ctrf(b"{\"results\": \xff}"),
        Err(ReportError::NotUtf8 { offset: 12 })
    );
    // A huge wrong value is not echoed.
    let huge = format!(
        r#"{{"results": {{"tests": [{{"name": "t", "status": "passed", "duration": "{}"}}]}}}}"#,
        "9".repeat(1_000_000)
    );
    assert!(invalid(&huge).len() <= 250);
    let huge_status = format!(
        r#"{{"results": {{"tests": [{{"name": "t", "status": "{}"}}]}}}}"#,
        "x".repeat(1_000_000)
    );
    assert!(refused(&huge_status).to_string().len() < 250);
}

#[test]
fn deep_nesting_neither_overflows_nor_is_read() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // Fields runledger does not read are skipped without recursing.
    let ignored = format!(
        r#"{{"results": {{"extra": {nested}, "tests": [{{"name": "t", "status": "passed", "x": {nested}}}]}}}}"#
    );
    assert_eq!(read(&ignored).tests.len(), 1);
    // What it reads is read to a depth of 128 at most.
    let read_deep = format!(
        r#"{{"results": {{"tests": [{{"name": "t", "status": "passed",
            "retryAttempts": [{{"status": "failed", "extra": {{"x": {nested}}}}}]}}]}}}}"#
    );
    match refused(&read_deep) {
        ReportError::InvalidCtrf { detail } => {
            assert!(detail.contains("recursion limit"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_tests_are_refused_fast() {
    let one = r#"{"name":"t","status":"passed","duration":0},"#;
    let mut json = String::from(r#"{"results":{"tests":["#);
    json.push_str(&one.repeat(200_000));
    json.push_str(r#"{"name":"t","status":"passed","duration":0}]}}"#);
    let started = Instant::now();
    assert_eq!(
        refused(&json),
        ReportError::TooManyTests { limit: MAX_TESTS }
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let retries = r#"{"results":{"tests":[{"name":"t","status":"passed","retries":1000000}]}}"#;
    assert_eq!(
        refused(retries),
        ReportError::TooManyAttempts {
            name: "t".into(),
            limit: MAX_ATTEMPTS
        }
    );
    let attempts = format!(
        r#"{{"results":{{"tests":[{{"name":"t","status":"passed","retryAttempts":[{}{{"attempt":1,"status":"failed"}}]}}]}}}}"#,
        r#"{"attempt":1,"status":"failed"},"#.repeat(MAX_ATTEMPTS)
    );
    assert!(
        refused(&attempts)
            .to_string()
            .contains("retryAttempts: more than the limit of 100 items")
    );
}

#[test]
fn written_ctrf_reads_back_the_same() {
    let run = read(SAMPLE);
    let written = write_ctrf(&run);
    let back = read(&written);
    assert_eq!(back.counts(), run.counts());
    assert_eq!(back.name, run.name);
    assert_eq!(back.started_at, run.started_at);
    for (before, after) in run.tests.iter().zip(&back.tests) {
        // A file path and a suite path are written as one suite path, which reads back as
        // the same identity.
        assert_eq!(after.identity(), before.identity());
        assert_eq!(statuses(after), statuses(before), "{}", before.name);
        assert_eq!(after.is_flaky(), before.is_flaky());
        let durations = |test: &ImportedTest| -> Vec<_> {
            test.attempts
                .iter()
                .map(|a| a.duration_ms.unwrap_or(0))
                .collect()
        };
        assert_eq!(durations(after), durations(before));
        let messages = |test: &ImportedTest| -> Vec<_> {
            test.attempts.iter().map(|a| a.message.clone()).collect()
        };
        assert_eq!(messages(after), messages(before));
        let outputs = |test: &ImportedTest| -> Vec<_> {
            test.attempts.iter().map(|a| a.output.clone()).collect()
        };
        assert_eq!(outputs(after), outputs(before));
    }
    // And once more: identities are now stable.
    let again = read(&write_ctrf(&back));
    assert_eq!(again.tests, back.tests);
    let document: Value = serde_json::from_str(&written).unwrap();
    let checks_out = &document["results"]["tests"][1];
    assert_eq!(checks_out["retries"], 2);
    assert_eq!(checks_out["flaky"], true);
    assert_eq!(checks_out["retryAttempts"][0]["attempt"], 1);
    assert_eq!(
        checks_out["retryAttempts"][0]["extra"]["rawStatus"],
        "error"
    );
    assert_eq!(document["results"]["summary"]["flaky"], 3);
}

#[test]
fn junit_and_ctrf_carry_the_same_run() {
    let junit = r#"<testsuite name="s">
  <testcase classname="c" name="flaky" time="0.010"><flakyError message="e" time="0.020"/></testcase>
  <testcase classname="c" name="broken" time="0.030"><error message="kaput">stack</error></testcase>
  <testcase classname="c" name="fails" time="1"><failure message="f1"/><rerunFailure message="f0" time="2"/></testcase>
  <testcase classname="" name="skip" time="0"><skipped/></testcase>
</testsuite>"#;
    let run = read_junit(junit.as_bytes()).unwrap();
    let through_ctrf = read(&write_ctrf(&run));
    assert_eq!(through_ctrf.tests, run.tests);
    let back_to_junit = read_junit(write_junit(&through_ctrf).as_bytes()).unwrap();
    assert_eq!(back_to_junit.tests, run.tests);
    assert_eq!(ReportFormat::Ctrf.content_type(), "application/json");
}

#[test]
fn summary_times_come_from_the_attempts() {
    let run = ImportedRun {
        tests: vec![ImportedTest {
            suite: String::new(),
            classname: String::new(),
            name: String::new(),
            attempts: vec![Attempt {
                started_at: Some(Timestamp::from_millis(1_000)),
                ..Attempt::new(Passed, Some(500))
            }],
        }],
        ..ImportedRun::default()
    };
    let document: Value = serde_json::from_str(&write_ctrf(&run)).unwrap();
    let summary = &document["results"]["summary"];
    assert_eq!(
        (summary["start"].as_i64(), summary["stop"].as_i64()),
        (Some(1_000), Some(1_500))
    );
    assert_eq!(document["results"]["tests"][0]["name"], "(unnamed)");
    assert!(document["results"]["tests"][0].get("suite").is_none());
}
