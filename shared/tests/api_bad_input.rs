//! API-level bad-input tests: every malformed, oversized or out-of-range request gets the
//! right 4xx problem and changes nothing. The router is driven in process, without sockets.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use runledger::api::MAX_BODY_BYTES;
use runledger_testkit::api::{Api, Reply};
use runledger_testkit::builders::{external_case, http_case};
use runledger_testkit::wire::absent_id;
use serde_json::{Value, json};

/// What alice's catalog and executions look like, for "nothing changed" checks.
async fn inventory(api: &Api, token: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        api.list_ids("/api/v1/test-cases?limit=200", token).await,
        api.list_ids("/api/v1/test-suites?limit=200", token).await,
        api.list_ids("/api/v1/executions?limit=200", token).await,
    )
}

/// Asserts a 400 whose first error names `field` or whose message mentions `name`.
#[track_caller]
fn names_field(reply: &Reply, path: &str, name: &str) {
    let body = reply.problem(StatusCode::BAD_REQUEST, "validation_failed");
    let error = &body["errors"][0];
    let field = error["field"].as_str().unwrap_or_default();
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        field == path || field == format!("{path}.{name}") || field.ends_with(name),
        "{}: field {field:?} should be {path:?}: {}",
        reply.what,
        reply.text()
    );
    assert!(
        field.contains(name) || message.contains(name),
        "{}: the error does not name `{name}`: {}",
        reply.what,
        reply.text()
    );
}

#[tokio::test]
async fn malformed_json_is_400_and_creates_nothing() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;

    let bodies: [&[u8]; 10] = [
        b"{",
        b"not json",
        b"{,}",
        b"{:}",
        br#"{"unterminated"#,
        b"[}",
        b"\x00\x01\x02",
        b"{\"\xff\xfe\": 1}",
        br#"{'single': 'quotes'}"#,
        b"   ",
    ];
    let routes = [
        "/api/v1/test-cases".to_owned(),
        "/api/v1/test-suites".to_owned(),
        "/api/v1/executions/case".to_owned(),
        "/api/v1/executions/suite".to_owned(),
        format!("/api/v1/executions/{execution}/steps"),
        format!("/api/v1/executions/{execution}/cancel"),
        format!("/api/v1/executions/{execution}/complete"),
    ];
    for route in &routes {
        for body in bodies {
            let reply = api.post_raw(route, &alice, body).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{route} {:?}: {}",
                String::from_utf8_lossy(body),
                reply.text()
            );
            reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
        }
    }
    // A body that is valid for the route but followed by more characters.
    let suite_body = json!({"name": "s", "test_case_ids": [case]});
    let valid_bodies = [
        ("/api/v1/test-cases".to_owned(), external_case("x", 1)),
        ("/api/v1/test-suites".to_owned(), suite_body),
        (
            "/api/v1/executions/case".to_owned(),
            json!({"test_case_id": case}),
        ),
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [{"index": 0, "status": "passed"}]}),
        ),
        (
            format!("/api/v1/executions/{execution}/cancel"),
            json!({"reason": "r"}),
        ),
        (
            format!("/api/v1/executions/{execution}/complete"),
            json!({}),
        ),
    ];
    for (route, valid) in &valid_bodies {
        let valid = serde_json::to_vec(valid).unwrap();
        for suffix in [&b" trailing"[..], b"}", b"]", b",", b"\x00"] {
            let body = [valid.as_slice(), suffix].concat();
            let reply = api.post_raw(route, &alice, body).await;
            reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
        }
        let twice = [valid.as_slice(), valid.as_slice()].concat();
        let reply = api.post_raw(route, &alice, twice).await;
        reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    }
    // A replacement with a broken body leaves the case as it was.
    let reply = api
        .send(
            Method::PUT,
            &format!("/api/v1/test-cases/{case}"),
            Some(&alice),
            &b"{\"name\": "[..],
        )
        .await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    // Creating needs a body.
    let reply = api.post_empty("/api/v1/test-cases", &alice).await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");

    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);
    let stored = api
        .get(&format!("/api/v1/test-cases/{case}"), &alice)
        .await
        .json();
    assert_eq!(stored["version"], 1);
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;
    let step = json!({"name": "s", "action": "external"});

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": "x"}),
            "steps",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "timeout_s": "ten", "steps": [step]}),
            "timeout_s",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "timeout_s": -1, "steps": [step]}),
            "timeout_s",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "timeout_s": 1.5, "steps": [step]}),
            "timeout_s",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": 5, "steps": [step]}),
            "name",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "tags": "smoke", "steps": [step]}),
            "tags",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "variables": {"a": 1}, "steps": [step]}),
            "variables.a",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": 5, "url": "http://x"}}]}),
            "steps[0].http.method",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": [step, {"name": "s", "action": "teleport"}]}),
            "steps[1].action",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "GET", "url": "http://x", "timeout_ms": "soon"}}]}),
            "steps[0].http.timeout_ms",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "GET", "url": "http://x"}, "expect": {"status": "ok"}}]}),
            "steps[0].expect.status",
        ),
        (
            "/api/v1/test-cases",
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "GET", "url": "http://x"}, "expect": {"status": 70000}}]}),
            "steps[0].expect.status",
        ),
        ("/api/v1/test-cases", json!("a string"), "body"),
        ("/api/v1/test-cases", json!(null), "body"),
        (
            "/api/v1/test-suites",
            json!({"name": "x", "test_case_ids": case}),
            "test_case_ids",
        ),
        (
            "/api/v1/test-suites",
            json!({"name": "x", "test_case_ids": [case], "mode": "random"}),
            "mode",
        ),
        (
            "/api/v1/test-suites",
            json!({"name": "x", "test_case_ids": [case], "max_parallel": -3}),
            "max_parallel",
        ),
        (
            "/api/v1/test-suites",
            json!({"name": "x", "test_case_ids": [case], "fail_fast": "yes"}),
            "fail_fast",
        ),
        (
            "/api/v1/executions/case",
            json!({"test_case_id": 5}),
            "test_case_id",
        ),
        (
            "/api/v1/executions/case",
            json!({"test_case_id": case, "config": {"priority": "urgent"}}),
            "config.priority",
        ),
        (
            "/api/v1/executions/case",
            json!({"test_case_id": case, "config": {"timeout_s": "ten"}}),
            "config.timeout_s",
        ),
        (
            "/api/v1/executions/case",
            json!({"test_case_id": case, "config": {"max_retries": -1}}),
            "config.max_retries",
        ),
        (
            "/api/v1/executions/case",
            json!({"test_case_id": case, "config": "fast"}),
            "config",
        ),
    ];
    for (route, body, field) in cases {
        let reply = api.post(route, &alice, &body).await;
        reply.validation(field);
    }
    // The same rules apply to a replacement.
    let reply = api
        .put(
            &format!("/api/v1/test-cases/{case}"),
            &alice,
            &json!({"name": "x", "steps": "x"}),
        )
        .await;
    reply.validation("steps");

    // Step reports.
    let steps_route = format!("/api/v1/executions/{execution}/steps");
    for (body, field) in [
        (
            json!({"steps": [{"index": "x", "status": "passed"}]}),
            "steps[0].index",
        ),
        (
            json!({"steps": [{"index": -1, "status": "passed"}]}),
            "steps[0].index",
        ),
        (
            json!({"steps": [{"index": 4294967296_u64, "status": "passed"}]}),
            "steps[0].index",
        ),
        (
            json!({"steps": [{"index": 0, "status": "passed", "duration_ms": "fast"}]}),
            "steps[0].duration_ms",
        ),
        (
            json!({"steps": [{"index": 0, "status": "passed", "started_at": "yesterday"}]}),
            "steps[0].started_at",
        ),
        (json!({"steps": {"index": 0}}), "steps"),
        (json!({"steps": null}), "steps"),
        (json!({}), "body"),
    ] {
        let reply = api.post(&steps_route, &alice, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        let problem = reply.problem(StatusCode::BAD_REQUEST, "validation_failed");
        let got = problem["errors"][0]["field"].as_str().unwrap_or_default();
        assert!(
            got == field || (field == "body" && got.is_empty()),
            "{body}: field {got:?}, expected {field:?}: {}",
            reply.text()
        );
    }
    let reply = api
        .post(
            &format!("/api/v1/executions/{execution}/cancel"),
            &alice,
            &json!({"reason": 5}),
        )
        .await;
    reply.validation("reason");

    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);
}

/// The contract's bodies are JSON objects. serde's derived structs also accept a JSON array
/// (fields by position), which skips the named-field checks (`deny_unknown_fields` cannot
/// apply to positions): such bodies must be refused like any other malformed body.
#[tokio::test]
async fn arrays_are_not_accepted_in_place_of_objects() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;

    let step = json!({"name": "s", "action": "external"});
    let attempts: Vec<(String, Value)> = vec![
        // TestCaseInput by position: name, description, tags, variables, timeout_s, steps.
        (
            "/api/v1/test-cases".into(),
            json!(["positional", null, [], {}, null, [step]]),
        ),
        // A step definition by position.
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "steps": [["s", "external"]]}),
        ),
        // TestSuiteInput by position.
        (
            "/api/v1/test-suites".into(),
            json!(["positional", null, [case]]),
        ),
        // A start body by position, and a config by position.
        ("/api/v1/executions/case".into(), json!([case])),
        (
            "/api/v1/executions/case".into(),
            json!({"test_case_id": case, "config": ["high"]}),
        ),
        // A step report by position.
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [[0, "passed"]]}),
        ),
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!([[{"index": 0, "status": "passed"}]]),
        ),
        (
            format!("/api/v1/executions/{execution}/cancel"),
            json!(["why"]),
        ),
    ];
    let mut accepted = Vec::new();
    for (route, body) in &attempts {
        let reply = api.post(route, &alice, body).await;
        if reply.status.is_success() {
            accepted.push(format!("POST {route} {body} -> {}", reply.status));
        } else {
            reply.problem(StatusCode::BAD_REQUEST, "validation_failed");
        }
    }
    assert!(
        accepted.is_empty(),
        "array bodies were accepted as objects:\n{}",
        accepted.join("\n")
    );
    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);
}

/// A value of the wrong JSON type where an enum (`action`, `status`, `priority`, `mode`) is
/// expected is valid JSON with a wrong type: it must be `validation_failed` naming the field,
/// like every other wrong type, not `malformed_json` ("the body is not valid JSON").
#[tokio::test]
async fn wrongly_typed_enums_name_the_field() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;

    let cases: Vec<(String, Value, &str)> = vec![
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "steps": [{"name": "s", "action": 5}]}),
            "steps[0].action",
        ),
        (
            "/api/v1/test-suites".into(),
            json!({"name": "x", "test_case_ids": [case], "mode": true}),
            "mode",
        ),
        (
            "/api/v1/executions/case".into(),
            json!({"test_case_id": case, "config": {"priority": 3}}),
            "config.priority",
        ),
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [{"index": 0, "status": 1}]}),
            "steps[0].status",
        ),
    ];
    let mut wrong = Vec::new();
    for (route, body, field) in &cases {
        let reply = api.post(route, &alice, body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        let problem = reply.json();
        if problem["code"] != "validation_failed" || problem["errors"][0]["field"] != *field {
            wrong.push(format!("POST {route} {body} -> {}", reply.text()));
        }
    }
    assert!(
        wrong.is_empty(),
        "valid JSON with a wrongly typed enum is not a field error:\n{}",
        wrong.join("\n")
    );
    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);
}

#[tokio::test]
async fn unknown_fields_are_400_and_named() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;
    let http = json!({"method": "GET", "url": "http://127.0.0.1:9/"});

    let cases: Vec<(String, Value, &str, &str)> = vec![
        // Server-owned fields cannot be set by a client.
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "owner": "mallory", "steps": [{"name": "s", "action": "external"}]}),
            "body",
            "owner",
        ),
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "id": absent_id("tc_"), "steps": [{"name": "s", "action": "external"}]}),
            "body",
            "id",
        ),
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "version": 7, "steps": [{"name": "s", "action": "external"}]}),
            "body",
            "version",
        ),
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "steps": [{"name": "s", "action": "external", "colour": "red"}]}),
            "steps[0]",
            "colour",
        ),
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "GET", "url": "http://x", "proxy": "evil"}}]}),
            "steps[0].http",
            "proxy",
        ),
        (
            "/api/v1/test-cases".into(),
            json!({"name": "x", "steps": [{"name": "s", "action": "http", "http": http,
                    "expect": {"status": 200, "regex": ".*"}}]}),
            "steps[0].expect",
            "regex",
        ),
        (
            "/api/v1/test-suites".into(),
            json!({"name": "x", "test_case_ids": [case], "owner": "mallory"}),
            "body",
            "owner",
        ),
        (
            "/api/v1/executions/case".into(),
            json!({"test_case_id": case, "owner": "mallory"}),
            "body",
            "owner",
        ),
        (
            "/api/v1/executions/case".into(),
            json!({"test_case_id": case, "config": {"bogus": 1}}),
            "config",
            "bogus",
        ),
        (
            "/api/v1/executions/suite".into(),
            json!({"test_suite_id": absent_id("ts_"), "config": {"runner": "local"}}),
            "config",
            "runner",
        ),
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [{"index": 0, "status": "passed"}], "final": true}),
            "body",
            "final",
        ),
        (
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [{"index": 0, "status": "passed", "progress": 100}]}),
            "steps[0]",
            "progress",
        ),
        (
            format!("/api/v1/executions/{execution}/cancel"),
            json!({"reason": "r", "force": true}),
            "body",
            "force",
        ),
        (
            format!("/api/v1/executions/{execution}/complete"),
            json!({"status": "passed"}),
            "body",
            "status",
        ),
        (
            format!("/api/v1/executions/{execution}/retry"),
            json!({"attempt": 9}),
            "body",
            "attempt",
        ),
    ];
    for (route, body, path, name) in cases {
        let reply = api.post(&route, &alice, &body).await;
        names_field(&reply, path, name);
    }
    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);
}

#[tokio::test]
async fn mixed_step_kinds_and_bad_values_are_400() {
    let api = Api::new();
    let alice = api.token("alice");
    let before = inventory(&api, &alice).await;
    let mut mixed = http_case("mixed");
    mixed["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "browser", "action": "external"}));
    api.post("/api/v1/test-cases", &alice, &mixed)
        .await
        .validation("steps");
    let mut mixed = external_case("mixed", 1);
    mixed["steps"]
        .as_array_mut()
        .unwrap()
        .push(http_case("x")["steps"][0].clone());
    api.post("/api/v1/test-cases", &alice, &mixed)
        .await
        .validation("steps");

    for (body, field) in [
        (json!({"name": "x", "steps": []}), "steps"),
        (
            json!({"name": "", "steps": [{"name": "s", "action": "external"}]}),
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "steps": [{"name": "s", "action": "external"}]}),
            "name",
        ),
        (
            json!({"name": "x", "timeout_s": 0, "steps": [{"name": "s", "action": "external"}]}),
            "timeout_s",
        ),
        (
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "TRACE", "url": "http://x"}}]}),
            "steps[0].http.method",
        ),
        (
            json!({"name": "x", "steps": [{"name": "s", "action": "http",
                    "http": {"method": "GET", "url": "file:///etc/passwd"}}]}),
            "steps[0].http.url",
        ),
        (
            json!({"name": "x", "steps": [{"name": "s", "action": "http"}]}),
            "steps[0].http",
        ),
        (
            json!({"name": "x", "steps": [{"name": "s", "action": "external",
                    "http": {"method": "GET", "url": "http://x"}}]}),
            "steps[0].http",
        ),
    ] {
        api.post("/api/v1/test-cases", &alice, &body)
            .await
            .validation(field);
    }
    assert_eq!(inventory(&api, &alice).await, before);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_change_nothing() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace_before = api.snapshot(&execution, &alice).await;

    // A valid test case padded to 2 MiB.
    let mut big = external_case("big", 1);
    big["variables"] = json!({"pad": "x".repeat(2 * 1024 * 1024)});
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > 2 * 1024 * 1024);
    for route in [
        "/api/v1/test-cases".to_owned(),
        "/api/v1/test-suites".to_owned(),
        "/api/v1/executions/case".to_owned(),
        format!("/api/v1/executions/{execution}/steps"),
        format!("/api/v1/executions/{execution}/cancel"),
    ] {
        let reply = api.post_raw(&route, &alice, big.clone()).await;
        reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let reply = api
        .send(
            Method::PUT,
            &format!("/api/v1/test-cases/{case}"),
            Some(&alice),
            big.clone(),
        )
        .await;
    reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // One byte over the limit, even if only whitespace.
    let mut over = serde_json::to_vec(&external_case("over", 1)).unwrap();
    over.resize(MAX_BODY_BYTES + 1, b' ');
    let reply = api.post_raw("/api/v1/test-cases", &alice, over).await;
    reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace_before);

    // Exactly the limit is fine: whitespace padding...
    let mut exact = serde_json::to_vec(&external_case("exact", 1)).unwrap();
    exact.resize(MAX_BODY_BYTES, b' ');
    assert_eq!(exact.len(), MAX_BODY_BYTES);
    let reply = api.post_raw("/api/v1/test-cases", &alice, exact).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    // ...and real content just below it.
    let mut near = external_case("near", 1);
    let skeleton = serde_json::to_vec(&{
        let mut v = near.clone();
        v["variables"] = json!({"pad": ""});
        v
    })
    .unwrap()
    .len();
    near["variables"] = json!({"pad": "y".repeat(MAX_BODY_BYTES - skeleton)});
    let near = serde_json::to_vec(&near).unwrap();
    assert_eq!(near.len(), MAX_BODY_BYTES);
    let reply = api.post_raw("/api/v1/test-cases", &alice, near).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let stored = api
        .get(&format!("/api/v1/test-cases/{id}"), &alice)
        .await
        .json();
    assert_eq!(
        stored["variables"]["pad"].as_str().unwrap().len(),
        MAX_BODY_BYTES - skeleton
    );
}

#[tokio::test]
async fn step_count_limits() {
    let api = Api::new();
    let alice = api.token("alice");
    let before = inventory(&api, &alice).await;
    let reply = api
        .post(
            "/api/v1/test-cases",
            &alice,
            &external_case("too many", 10_001),
        )
        .await;
    reply.validation("steps");
    assert_eq!(reply.json()["errors"].as_array().unwrap().len(), 1);
    assert_eq!(inventory(&api, &alice).await, before);

    let reply = api
        .post("/api/v1/test-cases", &alice, &external_case("max", 10_000))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let case = reply.json()["id"].as_str().unwrap().to_owned();
    let stored = api
        .get(&format!("/api/v1/test-cases/{case}"), &alice)
        .await
        .json();
    assert_eq!(stored["steps"].as_array().unwrap().len(), 10_000);

    // The 10,001-step replacement is refused too, and the case keeps its 10,000 steps.
    let reply = api
        .put(
            &format!("/api/v1/test-cases/{case}"),
            &alice,
            &external_case("too many", 10_001),
        )
        .await;
    reply.validation("steps");
    let stored = api
        .get(&format!("/api/v1/test-cases/{case}"), &alice)
        .await
        .json();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["steps"].as_array().unwrap().len(), 10_000);

    // It runs, with its steps stored apart from the trace.
    let execution = api.start_case(&alice, &case).await;
    let trace = api
        .get(&format!("/api/v1/executions/{execution}"), &alice)
        .await
        .json();
    assert_eq!(trace["progress"]["total"], 10_000);
    assert_eq!(trace["storage"], "partitioned");
    assert!(trace.get("steps").is_none());
    let page = api
        .get(
            &format!("/api/v1/executions/{execution}/steps?limit=1000"),
            &alice,
        )
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1000);
    // A 500-step report is the most one call takes.
    let report: Vec<Value> = (9_500..10_000)
        .map(|i| json!({"index": i, "status": "passed"}))
        .collect();
    let reply = api
        .post(
            &format!("/api/v1/executions/{execution}/steps"),
            &alice,
            &json!({"steps": report}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["progress"]["completed"], 500);
}

#[tokio::test]
async fn bad_cursors_are_400_invalid_cursor() {
    let api = Api::new();
    let alice = api.token("alice");
    let mut cases = Vec::new();
    for i in 0..3 {
        cases.push(
            api.create_external_case(&alice, &format!("case {i}"), 60)
                .await,
        );
    }
    let suite = api
        .create_suite(&alice, "suite", &[&cases[0], &cases[1]])
        .await;
    let _ = api.create_suite(&alice, "suite 2", &[&cases[2]]).await;
    let execution = api.start_case(&alice, &cases[0]).await;
    let _ = api.start_case(&alice, &cases[1]).await;
    let suite_execution = api.start_suite(&alice, &suite).await;

    // Real cursors from each listing.
    let cursor_of = |reply: Reply| -> String {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["next_cursor"]
            .as_str()
            .expect("a next cursor")
            .to_owned()
    };
    let case_cursor = cursor_of(api.get("/api/v1/test-cases?limit=1", &alice).await);
    let suite_cursor = cursor_of(api.get("/api/v1/test-suites?limit=1", &alice).await);
    let execution_cursor = cursor_of(api.get("/api/v1/executions?limit=1", &alice).await);
    let steps_cursor = cursor_of(
        api.get(
            &format!("/api/v1/executions/{execution}/steps?limit=10"),
            &alice,
        )
        .await,
    );
    let children_cursor = cursor_of(
        api.get(
            &format!("/api/v1/executions/{suite_execution}/children?limit=1"),
            &alice,
        )
        .await,
    );

    let listings = [
        ("/api/v1/test-cases".to_owned(), case_cursor.clone()),
        ("/api/v1/test-suites".to_owned(), suite_cursor.clone()),
        ("/api/v1/executions".to_owned(), execution_cursor.clone()),
        (
            format!("/api/v1/executions/{execution}/steps"),
            steps_cursor.clone(),
        ),
        (
            format!("/api/v1/executions/{suite_execution}/children"),
            children_cursor.clone(),
        ),
    ];
    let all = [
        case_cursor,
        suite_cursor,
        execution_cursor,
        steps_cursor,
        children_cursor,
    ];
    let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let garbage = [
        "garbage".to_owned(),
        "%%%".to_owned(),
        "!!!".to_owned(),
        "bm9wZQ".to_owned(),
        "a".repeat(5_000),
        encode("test-cases:"),
        encode("executions:../../etc"),
        encode("executions:ex_01/.."),
        encode("steps:abc"),
        encode("steps:-1"),
        encode(&format!("executions:{}", "A".repeat(65))),
        encode("\u{0}executions:ex_1"),
        "%00%00".to_owned(),
    ];
    for (route, own) in &listings {
        // Its own cursor works.
        let reply = api.get(&format!("{route}?cursor={own}"), &alice).await;
        assert_eq!(reply.status, StatusCode::OK, "{route}: {}", reply.text());
        // Another listing's cursor does not.
        for other in all.iter().filter(|c| *c != own) {
            let reply = api.get(&format!("{route}?cursor={other}"), &alice).await;
            reply.problem(StatusCode::BAD_REQUEST, "invalid_cursor");
        }
        for bad in &garbage {
            let reply = api.get(&format!("{route}?cursor={bad}"), &alice).await;
            reply.problem(StatusCode::BAD_REQUEST, "invalid_cursor");
        }
    }
}

#[tokio::test]
async fn bad_limits_and_query_parameters_are_400() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let suite = api.create_suite(&alice, "suite", &[&case]).await;
    let execution = api.start_case(&alice, &case).await;
    let suite_execution = api.start_suite(&alice, &suite).await;
    let before = inventory(&api, &alice).await;

    let listings = [
        ("/api/v1/test-cases".to_owned(), 200),
        ("/api/v1/test-suites".to_owned(), 200),
        ("/api/v1/executions".to_owned(), 200),
        (format!("/api/v1/executions/{execution}/steps"), 1000),
        (
            format!("/api/v1/executions/{suite_execution}/children"),
            200,
        ),
    ];
    for (route, max) in &listings {
        for bad in [
            "0".to_owned(),
            (max + 1).to_string(),
            "99999999999999999999".to_owned(),
            "abc".to_owned(),
            "-1".to_owned(),
            "1.5".to_owned(),
            "%20".to_owned(),
            "1e3".to_owned(),
        ] {
            let reply = api.get(&format!("{route}?limit={bad}"), &alice).await;
            reply.validation("limit");
        }
        let reply = api.get(&format!("{route}?limit={max}"), &alice).await;
        assert_eq!(reply.status, StatusCode::OK, "{route}: {}", reply.text());
        // Unknown and repeated parameters.
        api.get(&format!("{route}?colour=red"), &alice)
            .await
            .validation("colour");
        api.get(&format!("{route}?limit=1&limit=2"), &alice)
            .await
            .validation("limit");
        api.get(&format!("{route}?LIMIT=1"), &alice)
            .await
            .validation("LIMIT");
    }
    // Routes that take no query parameters refuse any.
    for (method, route) in [
        (Method::GET, format!("/api/v1/test-cases/{case}?x=1")),
        (Method::GET, format!("/api/v1/test-suites/{suite}?x=1")),
        (Method::GET, format!("/api/v1/executions/{execution}?x=1")),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}/history?limit=1"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/test-cases/{case}?force=true"),
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution}/cancel?x=1"),
        ),
    ] {
        let reply = api.send(method, &route, Some(&alice), Bytes::new()).await;
        reply.problem(StatusCode::BAD_REQUEST, "validation_failed");
    }
    let reply = api
        .post(
            "/api/v1/test-cases?owner=mallory",
            &alice,
            &external_case("x", 1),
        )
        .await;
    reply.validation("owner");
    let reply = api
        .post(
            "/api/v1/executions/case?dry_run=1",
            &alice,
            &json!({"test_case_id": case}),
        )
        .await;
    reply.validation("dry_run");
    // Bad filter values.
    for (query, field) in [
        ("status=done", "status"),
        ("kind=batch", "kind"),
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
    ] {
        api.get(&format!("/api/v1/executions?{query}"), &alice)
            .await
            .validation(field);
    }

    // Nothing was created or deleted; the execution is as it was.
    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(
        api.get(&format!("/api/v1/test-cases/{case}"), &alice)
            .await
            .status,
        StatusCode::OK
    );
    let trace = api
        .get(&format!("/api/v1/executions/{execution}"), &alice)
        .await
        .json();
    assert_eq!(trace["status"], "queued");
}

#[tokio::test]
async fn fields_selects_known_fields_only() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 2).await;
    let execution = api.start_case(&alice, &case).await;
    let route = format!("/api/v1/executions/{execution}");

    for bad in [
        "bogus",
        "id,bogus",
        "id,,status",
        "ID",
        "steps.name",
        "progress/percent",
    ] {
        api.get(&format!("{route}?fields={bad}"), &alice)
            .await
            .validation("fields");
    }
    let reply = api.get(&format!("{route}?fields=id,status"), &alice).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    let body = reply.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "status"]);
    assert_eq!(body["id"], execution);
    assert_eq!(body["status"], "queued");

    let reply = api
        .get(&format!("{route}?fields=progress,steps"), &alice)
        .await;
    let body = reply.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["progress", "steps"]);
}

#[tokio::test]
async fn bad_step_reports_change_nothing() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 3).await;
    let execution = api.start_case(&alice, &case).await;
    let route = format!("/api/v1/executions/{execution}/steps");
    let before = api.snapshot(&execution, &alice).await;
    assert_eq!(before.0["status"], "queued");

    let five_hundred_one: Vec<Value> = (0..501)
        .map(|i| json!({"index": i % 3, "status": "passed"}))
        .collect();
    let refusals: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            json!({"steps": []}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps"),
        ),
        (
            json!({"steps": five_hundred_one}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps"),
        ),
        (
            json!({"steps": [{"index": 3, "status": "passed"}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[0].index"),
        ),
        (
            json!({"steps": [{"index": 0, "status": "passed"}, {"index": 4000000000_u32, "status": "passed"}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[1].index"),
        ),
        (
            json!({"steps": [{"index": 0, "status": "pending"}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[0].status"),
        ),
        (
            json!({"steps": [{"index": 0, "status": "exploded"}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[0].status"),
        ),
        (
            json!({"steps": [{"index": 0, "status": "PASSED"}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[0].status"),
        ),
        (
            json!({"steps": [{"index": 0}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            None,
        ),
        (
            // One over int64's maximum, as the document types it (found by the fuzzer).
            json!({"steps": [{"index": 0, "status": "error", "duration_ms": 9223372036854775808_u64}]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("steps[0].duration_ms"),
        ),
    ];
    for (body, status, code, field) in &refusals {
        let reply = api.post(&route, &alice, body).await;
        let problem = reply.problem(*status, code);
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], *field, "{}", reply.text());
        }
    }
    // Nothing changed: still queued, no progress, no history entry added.
    assert_eq!(api.snapshot(&execution, &alice).await, before);

    // A good report moves it to running and counts the step.
    let pass0 = json!({"steps": [{"index": 0, "status": "passed", "duration_ms": 5}]});
    let first = api.post(&route, &alice, &pass0).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["status"], "running");
    assert_eq!(first.json()["progress"]["completed"], 1);
    assert_eq!(first.json()["progress"]["passed"], 1);
    let after_first = api.snapshot(&execution, &alice).await;

    // The same report again (a redelivery) is a 200 no-op.
    let second = api.post(&route, &alice, &pass0).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.json()["progress"], first.json()["progress"]);
    assert_eq!(api.snapshot(&execution, &alice).await, after_first);

    // A report that would change a terminal step is a conflict, and all-or-nothing: the
    // good entry in the same batch is not applied either.
    let conflicting = json!({"steps": [
        {"index": 1, "status": "passed"},
        {"index": 0, "status": "failed"}
    ]});
    let reply = api.post(&route, &alice, &conflicting).await;
    reply.problem(StatusCode::CONFLICT, "step_conflict");
    let reply = api
        .post(
            &route,
            &alice,
            &json!({"steps": [{"index": 0, "status": "skipped"}]}),
        )
        .await;
    reply.problem(StatusCode::CONFLICT, "step_conflict");
    let reply = api
        .post(
            &route,
            &alice,
            &json!({"steps": [{"index": 0, "status": "running"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    // Out-of-range and pending reports on a running execution are refused the same way.
    for body in [
        json!({"steps": [{"index": 3, "status": "passed"}]}),
        json!({"steps": [{"index": 1, "status": "pending"}]}),
    ] {
        api.post(&route, &alice, &body)
            .await
            .problem(StatusCode::BAD_REQUEST, "validation_failed");
    }
    assert_eq!(api.snapshot(&execution, &alice).await, after_first);

    // Once the execution is terminal, reports are 409 and change nothing.
    let cancelled = api
        .post_empty(&format!("/api/v1/executions/{execution}/cancel"), &alice)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    let terminal = api.snapshot(&execution, &alice).await;
    for body in [
        json!({"steps": [{"index": 1, "status": "passed"}]}),
        pass0.clone(),
    ] {
        api.post(&route, &alice, &body)
            .await
            .problem(StatusCode::CONFLICT, "invalid_transition");
    }
    api.post_empty(&format!("/api/v1/executions/{execution}/cancel"), &alice)
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition");
    api.post_empty(&format!("/api/v1/executions/{execution}/complete"), &alice)
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(api.snapshot(&execution, &alice).await, terminal);
}

#[tokio::test]
async fn retry_of_a_live_execution_is_409() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace = api.snapshot(&execution, &alice).await;
    api.post_empty(&format!("/api/v1/executions/{execution}/retry"), &alice)
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace);
}

#[tokio::test]
async fn step_reports_on_a_suite_are_refused() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let suite = api.create_suite(&alice, "suite", &[&case]).await;
    let execution = api.start_suite(&alice, &suite).await;
    let before = api.snapshot(&execution, &alice).await;
    let reply = api
        .post(
            &format!("/api/v1/executions/{execution}/steps"),
            &alice,
            &json!({"steps": [{"index": 0, "status": "passed"}]}),
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.text());
    assert_eq!(api.snapshot(&execution, &alice).await, before);
}

#[tokio::test]
async fn routing_errors() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let execution = api.start_case(&alice, &case).await;
    let before = inventory(&api, &alice).await;
    let trace = api.snapshot(&execution, &alice).await;

    // `/` is the dashboard (tests/api_dashboard.rs); the paths around it are not routes.
    for path in [
        "/index.html",
        "/assets",
        "/assets/0000000000000000/app.js",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v2/test-cases",
        "/api/v1/nope",
        "/api/v1/test-cases/x/y",
        "/api/v1/executions/case/extra",
        &format!("/api/v1/executions/{execution}/steps/0"),
        &format!("/api/v1/executions/{execution}/logs"),
        "/api/v1//test-cases",
        "/API/V1/test-cases",
    ] {
        let reply = api.get(path, &alice).await;
        reply.problem(StatusCode::NOT_FOUND, "not_found");
    }
    // Unauthenticated, an unknown path is still a 404.
    let reply = api
        .send(Method::GET, "/api/v1/nope", None, Bytes::new())
        .await;
    reply.problem(StatusCode::NOT_FOUND, "not_found");

    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/executions".to_owned(), "GET"),
        (Method::PUT, "/api/v1/test-cases".to_owned(), "GET, POST"),
        (
            Method::PATCH,
            format!("/api/v1/test-cases/{case}"),
            "GET, PUT, DELETE",
        ),
        (Method::GET, "/api/v1/executions/case".to_owned(), "POST"),
        (Method::POST, "/api/v1/health".to_owned(), "GET"),
        (
            Method::DELETE,
            format!("/api/v1/executions/{execution}"),
            "GET",
        ),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}/cancel"),
            "POST",
        ),
        (
            Method::PUT,
            format!("/api/v1/executions/{execution}/steps"),
            "GET, POST",
        ),
    ] {
        let reply = api.send(method, &path, Some(&alice), Bytes::new()).await;
        reply.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let got = reply
            .header(header::ALLOW)
            .unwrap_or_else(|| panic!("{}: 405 without Allow", reply.what));
        let mut got: Vec<&str> = got.split(',').map(str::trim).collect();
        let mut want: Vec<&str> = allow.split(", ").collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{}", reply.what);
    }

    // Ids that do not have the shape runledger hands out cannot exist.
    let ulid = ulid::Ulid::new().to_string();
    for (path, code) in [
        ("/api/v1/test-cases/abc".to_owned(), "test_case_not_found"),
        (
            "/api/v1/test-cases/tc_short".to_owned(),
            "test_case_not_found",
        ),
        (
            format!("/api/v1/test-cases/ts_{ulid}"),
            "test_case_not_found",
        ),
        (
            format!("/api/v1/test-cases/tc_{ulid}0"),
            "test_case_not_found",
        ),
        (
            format!("/api/v1/test-suites/tc_{ulid}"),
            "test_suite_not_found",
        ),
        (
            format!("/api/v1/executions/tc_{ulid}"),
            "execution_not_found",
        ),
        (
            format!("/api/v1/executions/ex_{}", &ulid[..25]),
            "execution_not_found",
        ),
        (
            "/api/v1/executions/ex_..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
            "execution_not_found",
        ),
        (
            format!("/api/v1/executions/ex_{}%00/history", &ulid[..23]),
            "execution_not_found",
        ),
        (
            format!("/api/v1/executions/{}/steps", execution.to_lowercase()),
            "execution_not_found",
        ),
    ] {
        let reply = api.get(&path, &alice).await;
        reply.problem(StatusCode::NOT_FOUND, code);
    }
    let ill = format!("/api/v1/test-cases/tc_{}", "Z".repeat(27));
    api.put(&ill, &alice, &external_case("x", 1))
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    api.delete(&ill, &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    api.post_empty("/api/v1/executions/ex_bad/cancel", &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "execution_not_found");

    assert_eq!(inventory(&api, &alice).await, before);
    assert_eq!(api.snapshot(&execution, &alice).await, trace);
}

#[tokio::test]
async fn bad_starts_create_no_execution() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let suite = api.create_suite(&alice, "suite", &[&case]).await;
    let before = inventory(&api, &alice).await;
    assert!(before.2.is_empty());

    let start = |config: Value| json!({"test_case_id": case, "config": config});
    for (body, field) in [
        (start(json!({"timeout_s": 0})), "config.timeout_s"),
        (start(json!({"timeout_s": 999_999_999})), "config.timeout_s"),
        (start(json!({"max_retries": 99})), "config.max_retries"),
        (start(json!({"environment": ""})), "config.environment"),
        (start(json!({"tags": [""]})), "config.tags[0]"),
        (
            start(json!({"variables": {"bad name!": "x"}})),
            "config.variables.bad name!",
        ),
    ] {
        api.post("/api/v1/executions/case", &alice, &body)
            .await
            .validation(field);
    }
    let reply = api
        .post(
            "/api/v1/executions/case",
            &alice,
            &start(json!({"bogus": true})),
        )
        .await;
    names_field(&reply, "config", "bogus");
    let reply = api
        .post(
            "/api/v1/executions/suite",
            &alice,
            &json!({"test_suite_id": suite, "config": {"max_retries": 99}}),
        )
        .await;
    reply.validation("config.max_retries");
    let reply = api
        .post(
            "/api/v1/executions/suite",
            &alice,
            &json!({"test_suite_id": suite, "config": {"timeout_s": 0}}),
        )
        .await;
    reply.validation("config.timeout_s");
    // Missing required fields.
    api.post("/api/v1/executions/case", &alice, &json!({}))
        .await
        .problem(StatusCode::BAD_REQUEST, "validation_failed");
    api.post(
        "/api/v1/executions/suite",
        &alice,
        &json!({"test_case_id": case}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "validation_failed");

    // Unknown (well-formed but absent) and ill-formed ids.
    for id in [
        absent_id("tc_"),
        suite.clone(),
        String::new(),
        "../../etc/passwd".into(),
        "tc_\u{0}".into(),
        format!("tc_{}", "9".repeat(5_000)),
    ] {
        api.post(
            "/api/v1/executions/case",
            &alice,
            &json!({"test_case_id": id}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    }
    for id in [absent_id("ts_"), case.clone(), "ts_".into()] {
        api.post(
            "/api/v1/executions/suite",
            &alice,
            &json!({"test_suite_id": id}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "test_suite_not_found");
    }
    // A broken Idempotency-Key.
    let bearer = format!("Bearer {alice}");
    let body = serde_json::to_vec(&json!({"test_case_id": case})).unwrap();
    for key in [&b"\xff\xfe"[..], b"", &[b'k'; 300][..]] {
        let reply = api
            .raw(
                Method::POST,
                "/api/v1/executions/case",
                &[
                    ("authorization", bearer.as_bytes()),
                    ("idempotency-key", key),
                ],
                body.clone(),
            )
            .await;
        reply.validation("Idempotency-Key");
    }

    assert_eq!(inventory(&api, &alice).await, before);
    // A good start still works afterwards.
    api.start_case(&alice, &case).await;
    assert_eq!(inventory(&api, &alice).await.2.len(), 1);
}

/// JSON has one kind of number and the OpenAPI document's `"type": "integer"` admits `3.0`
/// and `3e0` as well as `3` (schemathesis sent such): they are the integers they spell.
/// A fraction is still refused.
#[tokio::test]
async fn whole_numbers_written_as_floats_are_integers() {
    let api = Api::new();
    let alice = api.token("alice");
    let created = api
        .post(
            "/api/v1/test-cases",
            &alice,
            &json!({"name": "c", "timeout_s": 300.0,
                    "steps": [{"name": "s", "action": "http",
                               "http": {"method": "GET", "url": "http://127.0.0.1:9/", "timeout_ms": 5e3},
                               "expect": {"status": 2.0e2}}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let case = created.json();
    assert_eq!(case["timeout_s"], json!(300));
    assert_eq!(case["steps"][0]["http"]["timeout_ms"], json!(5000));
    assert_eq!(case["steps"][0]["expect"]["status"], json!(200));

    let external = api.create_external_case(&alice, "external", 2).await;
    let execution = api.start_case(&alice, &external).await;
    let reply = api
        .post(
            &format!("/api/v1/executions/{execution}/steps"),
            &alice,
            &json!({"steps": [{"index": 1.0, "status": "passed", "duration_ms": 12.0}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["progress"]["passed"], json!(1));

    let before = inventory(&api, &alice).await;
    for (body, field) in [
        (
            json!({"name": "c", "timeout_s": 300.5, "steps": [{"name": "s", "action": "external"}]}),
            "timeout_s",
        ),
        (
            json!({"name": "c", "timeout_s": -300.0, "steps": [{"name": "s", "action": "external"}]}),
            "timeout_s",
        ),
        (
            json!({"name": "c", "timeout_s": 1e300, "steps": [{"name": "s", "action": "external"}]}),
            "timeout_s",
        ),
    ] {
        let reply = api.post("/api/v1/test-cases", &alice, &body).await;
        names_field(&reply, field, field);
    }
    assert_eq!(inventory(&api, &alice).await, before);
}

/// The bodies of complete, cancel and retry are optional and documented as nullable: JSON
/// `null` is no body, as an empty one is (schemathesis sent `null`).
#[tokio::test]
async fn a_null_body_is_no_body() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    for command in ["complete", "cancel"] {
        let execution = api.start_case(&alice, &case).await;
        let reply = api
            .post_raw(
                &format!("/api/v1/executions/{execution}/{command}"),
                &alice,
                &b"null"[..],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{command}: {}", reply.text());
        let retried = api
            .post_raw(
                &format!("/api/v1/executions/{execution}/retry"),
                &alice,
                &b" null "[..],
            )
            .await;
        assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.text());
    }
    let execution = api.start_case(&alice, &case).await;
    for body in [&b"[]"[..], b"5", br#"{"reason": 5}"#, b"nul"] {
        let reply = api
            .post_raw(
                &format!("/api/v1/executions/{execution}/cancel"),
                &alice,
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    }
}
