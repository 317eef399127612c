//! `bench --import N`: a generated JUnit report of N tests (ten files, some failing, some
//! passing on a rerun) imported through the router in process, over the durable file store:
//! the first import (every test new: the catalog registers them) and the next (every test
//! known), each timed from the request to the answer.

use bytes::Bytes;
use http::{Request, StatusCode};
use runledger::report::import::MAX_IMPORT_TESTS;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One run: the two imports' times, and the counts the server answered.
#[derive(Debug, Clone, Copy)]
pub struct ImportRun {
    pub new_tests: Duration,
    pub known_tests: Duration,
    pub tests: u64,
    pub flaky: u64,
    pub report_bytes: usize,
}

/// A JUnit report of `tests` tests in ten files: every 20th fails, every 50th fails once and
/// passes on its rerun (a repeated `<testcase>`, as pytest-rerunfailures writes it).
pub fn report(tests: usize) -> String {
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bench\">\n");
    let files = 10.min(tests).max(1);
    for file in 0..files {
        xml.push_str(&format!(
            "  <testsuite name=\"suite{file}\" file=\"tests/test_{file}.py\" timestamp=\"2026-12-01T00:00:00Z\">\n"
        ));
        for test in (file..tests).step_by(files) {
            let case = format!(
                "    <testcase classname=\"tests.test_{file}\" name=\"test_{test}\" time=\"0.{:03}\"",
                test % 1000
            );
            if test % 50 == 7 {
                xml.push_str(&format!(
                    "{case}><failure message=\"flaky\">AssertionError</failure></testcase>\n"
                ));
                xml.push_str(&format!("{case}/>\n"));
            } else if test % 20 == 3 {
                xml.push_str(&format!(
                    "{case}><failure message=\"expected 200, got 503\">AssertionError: expected 200, got 503</failure></testcase>\n"
                ));
            } else {
                xml.push_str(&format!("{case}/>\n"));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Imports a report of `tests` tests twice on a fresh store.
pub async fn measure(tests: usize) -> Result<ImportRun, String> {
    if tests == 0 || tests > MAX_IMPORT_TESTS {
        return Err(format!("--import takes 1..{MAX_IMPORT_TESTS} tests"));
    }
    let (_dir, runtime, token) = super::fresh_runtime().await?;
    let report = Bytes::from(report(tests));
    let import = || {
        let request = Request::post("/api/v1/imports?suite=bench")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/xml")
            .body(report.clone())
            .map_err(|e| e.to_string());
        let router = runtime.router.clone();
        async move {
            let request = request?;
            let began = Instant::now();
            let response = router.handle(request).await;
            let took = began.elapsed();
            let status = response.status();
            let answer: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            if status != StatusCode::CREATED {
                return Err(format!("the import answered {status}: {answer}"));
            }
            Ok::<_, String>((took, answer))
        }
    };
    let (new_tests, answer) = import().await?;
    let (known_tests, again) = import().await?;
    let counted = |answer: &Value, name: &str| answer["import"][name].as_u64().unwrap_or(0);
    if counted(&answer, "tests") != tests as u64 || counted(&again, "tests") != tests as u64 {
        return Err(format!("the imports counted other tests: {answer} {again}"));
    }
    Ok(ImportRun {
        new_tests,
        known_tests,
        tests: counted(&answer, "tests"),
        flaky: counted(&answer, "flaky"),
        report_bytes: report.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_report_holds_what_it_says() {
        let run = runledger::report::read_junit(report(1000).as_bytes()).unwrap();
        let counts = run.counts();
        assert_eq!(counts.tests, 1000);
        assert_eq!(counts.flaky, 20);
        assert_eq!(counts.failed, 50);
        assert_eq!(
            run.tests.iter().map(|t| t.attempts.len()).sum::<usize>(),
            1020
        );
    }
}
