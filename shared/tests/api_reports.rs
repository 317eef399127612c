//! `GET /executions/{id}/report` through the router: a suite run here, with a flaky child (it
//! passed on its automatic retry) and one that failed every attempt, exported as JUnit XML and
//! CTRF, read back by the importers' own readers, and the CTRF checked against its schema.

use http::StatusCode;
use runledger::report::{AttemptStatus, ImportedRun, read_ctrf, read_junit};
use runledger_testkit::api::Api;
use serde_json::{Value, json};
use std::path::Path;

/// What each case's attempts report for its one step, by case name.
fn outcome(name: &str, attempt: u64) -> &'static str {
    match (name, attempt) {
        ("login", _) => "passed",
        ("checkout", 1) => "failed",
        ("checkout", _) => "passed",
        _ => "failed",
    }
}

/// Runs a sequential suite of login, checkout, search with one automatic retry each, to the
/// end, reporting what [`outcome`] says; returns its id.
async fn finished_suite(api: &Api, token: &str) -> String {
    let mut cases = Vec::new();
    for name in ["login", "checkout", "search"] {
        cases.push(api.create_external_case(token, name, 1).await);
    }
    let ids: Vec<&str> = cases.iter().map(String::as_str).collect();
    let suite = api.create_suite(token, "shop", &ids).await;
    let start = json!({"test_suite_id": suite, "config": {"max_retries": 1}});
    let id = api
        .post_for_id(
            "/api/v1/executions/suite",
            token,
            &start,
            StatusCode::ACCEPTED,
        )
        .await;
    for _ in 0..20 {
        let trace = api
            .get(&format!("/api/v1/executions/{id}"), token)
            .await
            .json();
        if trace["status"] != "running" && trace["status"] != "queued" {
            assert_eq!(trace["status"], "failed", "{trace}");
            return id;
        }
        let children = api
            .get(&format!("/api/v1/executions/{id}/children?limit=50"), token)
            .await
            .json();
        let child = children["items"]
            .as_array()
            .expect("children")
            .iter()
            .find(|c| c["status"] == "queued" || c["status"] == "running")
            .cloned()
            .expect("a child to run");
        let child_id = child["id"].as_str().unwrap();
        let status = outcome(
            child["name"].as_str().unwrap(),
            child["attempt"].as_u64().unwrap(),
        );
        let body = json!({"steps": [{"index": 0, "status": status, "duration_ms": 25,
                                     "message": (status == "failed").then_some("expected 200, got 503"),
                                     "output": (status == "failed").then_some("GET /cart\n503 Service Unavailable")}]});
        let reported = api
            .post(
                &format!("/api/v1/executions/{child_id}/steps"),
                token,
                &body,
            )
            .await;
        assert_eq!(reported.status, StatusCode::OK, "{}", reported.text());
        let completed = api
            .post_empty(&format!("/api/v1/executions/{child_id}/complete"), token)
            .await;
        assert_eq!(completed.status, StatusCode::OK, "{}", completed.text());
    }
    panic!("the suite did not finish");
}

fn test_named<'a>(run: &'a ImportedRun, name: &str) -> &'a runledger::report::ImportedTest {
    run.tests
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no test {name} in {run:?}"))
}

/// The suite's run as both exports must tell it.
fn assert_the_suite(run: &ImportedRun, what: &str) {
    assert_eq!(run.tests.len(), 3, "{what}: {run:?}");
    let counts = run.counts();
    assert_eq!(
        (counts.passed, counts.failed, counts.flaky),
        (2, 1, 1),
        "{what}"
    );
    assert_eq!(test_named(run, "login").attempts.len(), 1, "{what}");
    let checkout = test_named(run, "checkout");
    assert!(checkout.is_flaky(), "{what}: {checkout:?}");
    assert_eq!(checkout.attempts.len(), 2, "{what}");
    let search = test_named(run, "search");
    assert_eq!(search.outcome(), AttemptStatus::Failed, "{what}");
    let last = search.last_attempt().unwrap();
    assert_eq!(
        last.message.as_deref(),
        Some("step 0 (step-0) failed: expected 200, got 503"),
        "{what}"
    );
    assert!(
        last.output
            .as_deref()
            .unwrap_or_default()
            .contains("503 Service Unavailable"),
        "{what}: {last:?}"
    );
    assert!(last.duration_ms.is_some(), "{what}");
    for test in &run.tests {
        assert_eq!(test.suite, "shop", "{what}");
        assert!(test.classname.starts_with("tc_"), "{what}: {test:?}");
    }
}

fn ctrf_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ctrf/ctrf.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the CTRF schema compiles")
}

#[tokio::test]
async fn a_suite_run_here_exports_as_junit_and_ctrf_that_read_back_the_same() {
    let api = Api::new();
    let token = api.token("alice");
    let id = finished_suite(&api, &token).await;

    let junit = api
        .get(&format!("/api/v1/executions/{id}/report"), &token)
        .await;
    assert_eq!(junit.status, StatusCode::OK, "{}", junit.text());
    assert_eq!(junit.header("content-type"), Some("application/xml"));
    assert_eq!(
        junit.header("content-disposition"),
        Some(format!("attachment; filename=\"{id}.xml\"").as_str())
    );
    let xml = junit.text();
    assert!(xml.contains("<flakyFailure"), "{xml}");
    assert!(xml.contains("<rerunFailure"), "{xml}");
    let from_junit = read_junit(&junit.body).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_the_suite(&from_junit, "junit");

    let ctrf = api
        .get(
            &format!("/api/v1/executions/{id}/report?format=ctrf"),
            &token,
        )
        .await;
    assert_eq!(ctrf.status, StatusCode::OK, "{}", ctrf.text());
    assert_eq!(ctrf.header("content-type"), Some("application/json"));
    let document = ctrf.json();
    let errors: Vec<String> = ctrf_validator()
        .iter_errors(&document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{document:#}");
    assert_eq!(document["results"]["summary"]["flaky"], 1);
    let from_ctrf = read_ctrf(&ctrf.body).unwrap();
    assert_the_suite(&from_ctrf, "ctrf");
    // The two formats tell the same run.
    assert_eq!(from_junit.counts(), from_ctrf.counts());

    // One child alone: its own chain of attempts.
    let children = api
        .get(
            &format!("/api/v1/executions/{id}/children?limit=50"),
            &token,
        )
        .await
        .json();
    let retried = children["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "checkout" && c["attempt"] == 2)
        .expect("checkout's retry");
    let one = api
        .get(
            &format!(
                "/api/v1/executions/{}/report",
                retried["id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text());
    let run = read_junit(&one.body).unwrap();
    assert_eq!(run.tests.len(), 1);
    assert!(run.tests[0].is_flaky(), "{run:?}");
}

#[tokio::test]
async fn an_unfinished_execution_exports_its_tests_as_not_finished() {
    let api = Api::new();
    let token = api.token("alice");
    let case = api.create_external_case(&token, "slow", 3).await;
    let id = api.start_case(&token, &case).await;
    let reply = api
        .get(
            &format!("/api/v1/executions/{id}/report?format=ctrf"),
            &token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let run = read_ctrf(&reply.body).unwrap();
    assert_eq!(run.tests.len(), 1);
    assert_eq!(run.tests[0].outcome(), AttemptStatus::Skipped);
    let message = run.tests[0].last_attempt().unwrap().message.clone();
    assert_eq!(message.as_deref(), Some("not finished: queued"));
}

#[tokio::test]
async fn exports_are_owner_only_and_refuse_unknown_formats() {
    let api = Api::new();
    let (alice, bob) = (api.token("alice"), api.token("bob"));
    let case = api.create_external_case(&alice, "mine", 1).await;
    let id = api.start_case(&alice, &case).await;
    let uri = format!("/api/v1/executions/{id}/report");

    api.get(&uri, &bob)
        .await
        .problem(StatusCode::NOT_FOUND, "execution_not_found");
    let anonymous = api.send(http::Method::GET, &uri, None, Vec::new()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reply = api.get(&format!("{uri}?format=pdf"), &alice).await;
    reply.validation("format");
    let reply = api.get(&format!("{uri}?formats=ctrf"), &alice).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    api.get("/api/v1/executions/exec_nope/report", &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "execution_not_found");
}
