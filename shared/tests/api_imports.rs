//! `POST /imports` through the router: reports written by the real tools (pytest with and
//! without pytest-rerunfailures, jest, mocha, node:test; see `scripts/report-fixtures`)
//! recorded as suite executions, tests reused across imports, idempotency, round trips
//! through the export, and hostile reports refused with nothing written.

use http::{Method, StatusCode};
use runledger::report::{ReportFormat, read_junit};
use runledger_testkit::api::{Api, Reply};

use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn import(
    api: &Api,
    token: &str,
    query: &str,
    content_type: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("authorization", bearer.as_bytes()),
        ("content-type", content_type.as_bytes()),
    ];
    if let Some(key) = key {
        headers.push(("idempotency-key", key.as_bytes()));
    }
    api.raw(
        Method::POST,
        &format!("/api/v1/imports{query}"),
        &headers,
        body,
    )
    .await
}

async fn import_junit(api: &Api, token: &str, query: &str, body: Vec<u8>) -> Reply {
    import(api, token, query, "application/xml", None, body).await
}

async fn count(api: &Api, token: &str, uri: &str) -> usize {
    api.list_ids(uri, token).await.len()
}

/// Nothing at all is recorded for `token`'s user.
async fn assert_nothing_written(api: &Api, token: &str) {
    assert_eq!(count(api, token, "/api/v1/executions?limit=200").await, 0);
    assert_eq!(count(api, token, "/api/v1/test-cases?limit=200").await, 0);
    assert_eq!(count(api, token, "/api/v1/test-suites?limit=200").await, 0);
}

#[tokio::test]
async fn every_real_tools_report_is_recorded_with_the_counts_it_holds() {
    let api = Api::new();
    let token = api.token("alice");
    for (name, content_type) in [
        ("junit/pytest-xunit1.xml", "application/xml"),
        ("junit/pytest-xunit2.xml", "text/xml"),
        (
            "junit/pytest-rerunfailures.xml",
            "application/xml; charset=utf-8",
        ),
        ("junit/jest-junit.xml", "application/xml"),
        ("junit/mocha-junit-reporter.xml", "application/xml"),
        ("junit/node-test.xml", "application/xml"),
        ("ctrf/jest-ctrf.json", "application/json"),
    ] {
        let body = fixture(name);
        let format = if name.ends_with(".json") {
            ReportFormat::Ctrf
        } else {
            ReportFormat::Junit
        };
        let expected = format.read(&body).unwrap();
        let counts = expected.counts();
        let query = format!("?suite={}", name.replace(['/', '.'], "-"));
        let reply = import(&api, &token, &query, content_type, None, body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{name}: {}",
            reply.text()
        );
        let answer = reply.json();
        let summary = &answer["import"];
        assert_eq!(summary["tests"], counts.tests, "{name}: {answer}");
        assert_eq!(summary["passed"], counts.passed, "{name}");
        assert_eq!(summary["failed"], counts.failed, "{name}");
        assert_eq!(summary["errored"], counts.errored, "{name}");
        assert_eq!(summary["skipped"], counts.skipped, "{name}");
        assert_eq!(summary["flaky"], counts.flaky, "{name}");
        assert_eq!(answer["kind"], "suite");
        let failing = counts.failed + counts.errored;
        assert_eq!(
            answer["status"],
            if failing > 0 { "failed" } else { "passed" },
            "{name}"
        );
        assert_eq!(
            answer["children"]["total"], counts.tests,
            "{name}: {answer}"
        );
        assert_eq!(answer["children"]["failed"], counts.failed, "{name}");
        assert_eq!(answer["children"]["error"], counts.errored, "{name}");
        assert_eq!(answer["children"]["passed"], counts.passed, "{name}");
        assert_eq!(answer["children"]["skipped"], counts.skipped, "{name}");

        // One child per attempt, each with its one step.
        let id = answer["id"].as_str().unwrap();
        let attempts: usize = expected.tests.iter().map(|t| t.attempts.len()).sum();
        let children = api
            .get(
                &format!("/api/v1/executions/{id}/children?limit=200"),
                &token,
            )
            .await
            .json();
        let items = children["items"].as_array().unwrap();
        assert_eq!(items.len(), attempts, "{name}");
        let retries = items.iter().filter(|c| c["retry_of"].is_string()).count();
        assert_eq!(retries, attempts - counts.tests, "{name}");
        let skipped = items.iter().filter(|c| c["status"] == "skipped").count();
        assert_eq!(
            skipped, counts.skipped,
            "{name}: a skipped test is `skipped`"
        );

        // The export reads back as the same run: same tests, attempts and outcomes.
        for format in [ReportFormat::Junit, ReportFormat::Ctrf] {
            let query = match format {
                ReportFormat::Junit => "junit",
                ReportFormat::Ctrf => "ctrf",
            };
            let export = api
                .get(
                    &format!("/api/v1/executions/{id}/report?format={query}"),
                    &token,
                )
                .await;
            assert_eq!(export.status, StatusCode::OK, "{}", export.text());
            let back = format.read(&export.body).unwrap();
            assert_eq!(back.counts(), counts, "{name} exported as {query}");
            let shape = |run: &runledger::report::ImportedRun| {
                let mut tests: Vec<(String, Vec<runledger::report::AttemptStatus>)> = run
                    .tests
                    .iter()
                    .map(|t| {
                        (
                            t.name.clone(),
                            t.attempts.iter().map(|a| a.status).collect(),
                        )
                    })
                    .collect();
                tests.sort_by(|a, b| a.0.cmp(&b.0));
                tests
            };
            assert_eq!(shape(&back), shape(&expected), "{name} as {query}");
        }
    }
}

#[tokio::test]
async fn reruns_are_attempts_and_a_test_that_passed_on_a_rerun_is_flaky() {
    let api = Api::new();
    let token = api.token("alice");
    let reply = import_junit(&api, &token, "", fixture("junit/pytest-rerunfailures.xml")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["name"], "pytest tests", "the report's own name");
    let id = answer["id"].as_str().unwrap();
    let export = api
        .get(&format!("/api/v1/executions/{id}/report"), &token)
        .await;
    let run = read_junit(&export.body).unwrap();
    let expected = read_junit(&fixture("junit/pytest-rerunfailures.xml")).unwrap();
    for test in &expected.tests {
        let back = run.tests.iter().find(|t| t.name == test.name).unwrap();
        assert_eq!(back.attempts.len(), test.attempts.len(), "{}", test.name);
        assert_eq!(back.is_flaky(), test.is_flaky(), "{}", test.name);
    }
}

#[tokio::test]
async fn tests_are_registered_once_and_reused_so_their_history_accumulates() {
    let api = Api::new();
    let token = api.token("alice");
    let report = fixture("junit/pytest-xunit2.xml");
    let tests = read_junit(&report).unwrap().tests.len();
    let first = import_junit(&api, &token, "?suite=nightly", report.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(
        count(&api, &token, "/api/v1/test-cases?limit=200").await,
        tests
    );
    let second = import_junit(&api, &token, "?suite=nightly", report).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let (first, second) = (first.json(), second.json());
    assert_ne!(first["id"], second["id"], "two runs, two executions");
    assert_eq!(first["test_suite_id"], second["test_suite_id"]);
    assert_eq!(
        count(&api, &token, "/api/v1/test-cases?limit=200").await,
        tests
    );
    assert_eq!(
        count(&api, &token, "/api/v1/test-suites?limit=200").await,
        1
    );
    // Each test case has one execution from each import.
    let case = api.get("/api/v1/test-cases?limit=1", &token).await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = count(
        &api,
        &token,
        &format!("/api/v1/executions?test_case_id={case}&limit=200"),
    )
    .await;
    assert!(runs >= 2, "{runs} executions of {case}");
    let suite = api
        .get(
            &format!(
                "/api/v1/test-suites/{}",
                first["test_suite_id"].as_str().unwrap()
            ),
            &token,
        )
        .await
        .json();
    assert_eq!(suite["test_case_ids"].as_array().unwrap().len(), tests);
    assert_eq!(suite["tags"], serde_json::json!(["imported"]));

    // Another user's import of the same report makes their own cases.
    let bob = api.token("bob");
    let theirs = import_junit(
        &api,
        &bob,
        "?suite=nightly",
        fixture("junit/pytest-xunit2.xml"),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.json()["test_suite_id"], first["test_suite_id"]);
    assert_eq!(
        count(&api, &token, "/api/v1/test-cases?limit=200").await,
        tests
    );
    api.get(
        &format!("/api/v1/executions/{}", first["id"].as_str().unwrap()),
        &bob,
    )
    .await
    .problem(StatusCode::NOT_FOUND, "execution_not_found");
}

/// A skipped test is a `skipped` execution: not a pass, so its case's pass rate has nothing to
/// go on, and a suite of passes and skips passes.
#[tokio::test]
async fn a_skipped_test_is_skipped_and_its_analytics_leave_it_out_of_the_rates() {
    let api = Api::new();
    let token = api.token("alice");
    let report = br#"<testsuite name="smoke">
  <testcase classname="t" name="test_ok" time="0.1"/>
  <testcase classname="t" name="test_later" time="0"><skipped message="not on staging"/></testcase>
</testsuite>"#;
    for _ in 0..2 {
        let reply = import_junit(&api, &token, "", report.to_vec()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["status"], "passed", "{answer}");
        assert_eq!(answer["children"]["passed"], 1, "{answer}");
        assert_eq!(answer["children"]["skipped"], 1, "{answer}");
        assert_eq!(answer["progress"]["completed"], 2, "{answer}");
        assert_eq!(answer["progress"]["skipped"], 1, "{answer}");
    }
    let skipped = api
        .get("/api/v1/executions?status=skipped&limit=200", &token)
        .await
        .json();
    let items = skipped["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{skipped}");
    let case = items[0]["test_case_id"].as_str().unwrap();
    let history = api
        .get(
            &format!(
                "/api/v1/executions/{}/history",
                items[0]["id"].as_str().unwrap()
            ),
            &token,
        )
        .await
        .json();
    let statuses: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "skipped"], "{history}");

    let analytics = api
        .get(&format!("/api/v1/analytics/test-cases/{case}"), &token)
        .await
        .json();
    assert_eq!(
        (
            &analytics["executions"],
            &analytics["skipped"],
            &analytics["passed"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(2),
            &serde_json::json!(0)
        ),
        "{analytics}"
    );
    assert_eq!(
        analytics["pass_rate"],
        serde_json::Value::Null,
        "{analytics}"
    );
    assert_eq!(analytics["flaky"]["last_outcomes"], "", "{analytics}");
}

#[tokio::test]
async fn two_tests_of_one_name_in_different_files_stay_two_tests() {
    let api = Api::new();
    let token = api.token("alice");
    let report = br#"<testsuites name="twins">
      <testsuite name="a" file="tests/test_a.py"><testcase classname="test_a" name="test_login" file="tests/test_a.py" time="0.1"/></testsuite>
      <testsuite name="b" file="tests/test_b.py"><testcase classname="test_b" name="test_login" file="tests/test_b.py" time="0.2"><failure message="no"/></testcase></testsuite>
    </testsuites>"#;
    let reply = import_junit(&api, &token, "", report.to_vec()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["import"]["tests"], 2);
    assert_eq!(answer["import"]["failed"], 1);
    assert_eq!(count(&api, &token, "/api/v1/test-cases?limit=200").await, 2);
}

#[tokio::test]
async fn an_idempotency_key_records_a_report_once() {
    let api = Api::new();
    let token = api.token("alice");
    let body = fixture("ctrf/jest-ctrf.json");
    let first = import(
        &api,
        &token,
        "",
        "application/json",
        Some("ci-run-42"),
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let again = import(
        &api,
        &token,
        "",
        "application/json",
        Some("ci-run-42"),
        body,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(
        again.json()["import"]["tests"],
        first.json()["import"]["tests"]
    );
    let suites = count(&api, &token, "/api/v1/executions?kind=suite&limit=200").await;
    assert_eq!(suites, 1);
}

#[tokio::test]
async fn hostile_and_broken_reports_are_refused_and_write_nothing() {
    let api = Api::new();
    let token = api.token("mallory");
    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuite name="x"><testcase classname="c" name="&lol2;"/></testsuite>"#;
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase classname="c" name="&xxe;"/></testsuite>"#;
    let undefined = br#"<testsuite name="x"><testcase classname="c" name="&xxe;"/></testsuite>"#;
    let truncated = br#"<testsuites><testsuite name="x"><testcase classname="c" name="t"/>"#;
    let not_junit = br#"<html><body>hello</body></html>"#;
    let empty_suite = br#"<testsuites/>"#;
    for (what, body) in [
        ("billion laughs", laughs.to_vec()),
        ("external entity", xxe.to_vec()),
        ("undefined entity", undefined.to_vec()),
        ("truncated", truncated.to_vec()),
        ("not junit", not_junit.to_vec()),
        ("no tests", empty_suite.to_vec()),
        ("not utf-8", b"<testsuite>\xff\xfe</testsuite>".to_vec()),
    ] {
        let reply = import_junit(&api, &token, "", body).await;
        let problem = reply.problem(StatusCode::BAD_REQUEST, "invalid_report");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
        assert!(!reply.text().contains("/etc/passwd:"), "{what}");
    }
    let unknown_status = br#"{"results": {"tool": {"name": "x"},
        "summary": {"tests": 1, "passed": 0, "failed": 0, "skipped": 0, "pending": 0, "other": 0, "start": 0, "stop": 1},
        "tests": [{"name": "t", "status": "exploded", "duration": 1}]}}"#;
    import(
        &api,
        &token,
        "",
        "application/json",
        None,
        unknown_status.to_vec(),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_report");

    // Over the limit, by one byte: 413, before anything is read.
    let mut big = b"<testsuite name=\"big\">".to_vec();
    big.resize(runledger::api::MAX_IMPORT_BYTES + 1, b' ');
    import_junit(&api, &token, "", big)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // More tests than an import takes.
    let mut many = String::from("<testsuite name=\"many\">");
    for i in 0..=runledger::report::import::MAX_IMPORT_TESTS {
        many.push_str(&format!("<testcase classname=\"c\" name=\"t{i}\"/>"));
    }
    many.push_str("</testsuite>");
    let reply = import_junit(&api, &token, "", many.into_bytes()).await;
    let problem = reply.problem(StatusCode::BAD_REQUEST, "invalid_report");
    assert!(
        problem["detail"].as_str().unwrap().contains("at most"),
        "{problem}"
    );

    // 200,000 empty test cases: past what a reader takes.
    let mut flood = String::from("<testsuite name=\"flood\">");
    flood.push_str(&"<testcase/>".repeat(200_000));
    flood.push_str("</testsuite>");
    import_junit(&api, &token, "", flood.into_bytes())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_report");

    // A type it does not read, a format it does not know, an empty body, bad query values.
    let report = fixture("junit/node-test.xml");
    import(&api, &token, "", "text/plain", None, report.clone())
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    import(
        &api,
        &token,
        "?format=tap",
        "application/xml",
        None,
        report.clone(),
    )
    .await
    .validation("format");
    import_junit(&api, &token, "", Vec::new())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_report");
    let long = format!("?environment={}", "e".repeat(101));
    let reply = import_junit(&api, &token, &long, report.clone()).await;
    reply.validation("config.environment");
    let reply = import_junit(&api, &token, "?unknown=1", report).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());

    assert_nothing_written(&api, &token).await;
}

#[tokio::test]
async fn an_import_needs_a_token() {
    let api = Api::new();
    let reply = api
        .raw(
            Method::POST,
            "/api/v1/imports",
            &[("content-type", b"application/xml")],
            fixture("junit/node-test.xml"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
}
