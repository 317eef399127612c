//! Quarantine through the router: a quarantined case's failure passes its suite with
//! `children.muted`, the listing and the case's history tell what happened, the flaky
//! listing shows the quarantine, and bad requests are `400` problems that change nothing.

use http::StatusCode;
use runledger::domain::time::Timestamp;
use runledger_testkit::api::Api;
use runledger_testkit::wire::absent_id;
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;

fn hours_ahead(hours: i64) -> String {
    Timestamp::now().plus_millis(hours * HOUR).to_rfc3339()
}

async fn read(api: &Api, uri: &str, token: &str) -> Value {
    let reply = api.get(uri, token).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    reply.json()
}

/// Runs `suite` once, the child of `failing` failing and the others passing; the suite's
/// final trace.
async fn run_suite(api: &Api, token: &str, suite: &str, failing: &str) -> Value {
    let id = api.start_suite(token, suite).await;
    let children = read(api, &format!("/api/v1/executions/{id}/children"), token).await;
    for child in children["items"].as_array().unwrap() {
        let child_id = child["id"].as_str().unwrap();
        let status = if child["test_case_id"] == failing {
            "failed"
        } else {
            "passed"
        };
        let body = json!({"steps": [{"index": 0, "status": status}]});
        let uri = format!("/api/v1/executions/{child_id}/steps");
        let reply = api.post(&uri, token, &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let uri = format!("/api/v1/executions/{child_id}/complete");
        let reply = api.post_empty(&uri, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    read(api, &format!("/api/v1/executions/{id}"), token).await
}

#[tokio::test]
async fn a_quarantined_failure_passes_its_suite_until_lifted() {
    let api = Api::new();
    let alice = api.token("alice");
    let flaky = api.create_external_case(&alice, "checkout", 1).await;
    let solid = api.create_external_case(&alice, "login", 1).await;
    let suite = api.create_suite(&alice, "nightly", &[&flaky, &solid]).await;
    let uri = format!("/api/v1/test-cases/{flaky}/quarantine");

    let until = hours_ahead(24);
    let reply = api
        .put(
            &uri,
            &alice,
            &json!({"reason": "flaky on CI", "until": until}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let quarantine = reply.json();
    assert_eq!(quarantine["test_case_id"], json!(flaky));
    assert_eq!(quarantine["until"], json!(until));
    assert_eq!(quarantine["by"], "user:alice");
    assert_eq!(quarantine["reason"], "flaky on CI");

    let trace = run_suite(&api, &alice, &suite, &flaky).await;
    assert_eq!(trace["status"], "passed", "{trace}");
    assert_eq!(trace["children"]["failed"], 1);
    assert_eq!(trace["children"]["muted"], 1);
    let id = trace["id"].as_str().unwrap();
    let children = read(&api, &format!("/api/v1/executions/{id}/children"), &alice).await;
    let muted: Vec<(&Value, &Value)> = children["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["test_case_id"], &c["muted"]))
        .collect();
    assert_eq!(
        muted,
        [(&json!(flaky), &json!(true)), (&json!(solid), &Value::Null)],
        "the listing names the muted child: {children}"
    );
    let events = read(&api, &format!("/api/v1/executions/{id}/events"), &alice).await;
    let told: Vec<(&Value, &Value)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "child" && e["data"]["status"] == "failed")
        .map(|e| (&e["data"]["test_case_id"], &e["data"]["muted"]))
        .collect();
    assert_eq!(told, [(&json!(flaky), &json!(true))], "{events}");
    let listed = read(&api, "/api/v1/quarantine", &alice).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["test_case_id"], json!(flaky));
    assert_eq!(listed["next_cursor"], Value::Null);

    // Bob sees neither the case's quarantine nor its history; his listing is empty.
    let bob = api.token("bob");
    api.put(
        &uri,
        &bob,
        &json!({"reason": "mine now", "until": hours_ahead(1)}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    api.get(&format!("/api/v1/test-cases/{flaky}/history"), &bob)
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    let theirs = read(&api, "/api/v1/quarantine", &bob).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());

    let reply = api.delete(&uri, &alice).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let reply = api.delete(&uri, &alice).await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "lifting twice is fine"
    );
    let trace = run_suite(&api, &alice, &suite, &flaky).await;
    assert_eq!(trace["status"], "failed", "{trace}");
    assert_eq!(trace["children"]["muted"], 0);
    let id = trace["id"].as_str().unwrap();
    let children = read(&api, &format!("/api/v1/executions/{id}/children"), &alice).await;
    assert!(
        children["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("muted").is_none()),
        "nothing muted once lifted: {children}"
    );

    let history = read(&api, &format!("/api/v1/test-cases/{flaky}/history"), &alice).await;
    let told: Vec<(&str, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [("quarantined", "user:alice"), ("released", "user:alice")]
    );
    assert_eq!(history["items"][0]["until"], json!(until));
    let listed = read(&api, "/api/v1/quarantine", &alice).await;
    assert!(listed["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_flaky_listing_shows_the_quarantine() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "search", 1).await;
    for status in ["passed", "failed", "passed", "failed", "passed"] {
        let id = api.start_case(&alice, &case).await;
        let body = json!({"steps": [{"index": 0, "status": status}]});
        let reply = api
            .post(&format!("/api/v1/executions/{id}/steps"), &alice, &body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let reply = api
            .post_empty(&format!("/api/v1/executions/{id}/complete"), &alice)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let flaky = read(&api, "/api/v1/analytics/flaky", &alice).await;
    assert_eq!(flaky["items"][0]["test_case_id"], json!(case));
    assert_eq!(flaky["items"][0]["quarantine"], Value::Null);
    let until = hours_ahead(48);
    let uri = format!("/api/v1/test-cases/{case}/quarantine");
    let reply = api
        .put(&uri, &alice, &json!({"reason": "flips", "until": until}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let flaky = read(&api, "/api/v1/analytics/flaky", &alice).await;
    assert_eq!(flaky["items"][0]["quarantine"]["until"], json!(until));
}

#[tokio::test]
async fn bad_quarantine_requests_are_refused_and_change_nothing() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "pay", 1).await;
    let uri = format!("/api/v1/test-cases/{case}/quarantine");
    api.put(
        &uri,
        &alice,
        &json!({"reason": "x", "until": hours_ahead(31 * 24)}),
    )
    .await
    .validation("until");
    api.put(
        &uri,
        &alice,
        &json!({"reason": "x", "until": hours_ahead(-1)}),
    )
    .await
    .validation("until");
    api.put(
        &uri,
        &alice,
        &json!({"reason": "  ", "until": hours_ahead(1)}),
    )
    .await
    .validation("reason");
    api.put(
        &uri,
        &alice,
        &json!({"reason": "x".repeat(1025), "until": hours_ahead(1)}),
    )
    .await
    .validation("reason");
    for body in [
        json!({"until": hours_ahead(1)}),
        json!({"reason": "x", "until": "tomorrow"}),
        json!({"reason": "x", "until": hours_ahead(1), "by": "mallory"}),
        json!(["reason"]),
    ] {
        let reply = api.put(&uri, &alice, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
    }
    let absent = absent_id("tc_");
    api.put(
        &format!("/api/v1/test-cases/{absent}/quarantine"),
        &alice,
        &json!({"reason": "x", "until": hours_ahead(1)}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    for bad in ["limit=0", "limit=201", "cursor=bm9wZQ", "extra=1"] {
        let reply = api.get(&format!("/api/v1/quarantine?{bad}"), &alice).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }
    let history = read(&api, &format!("/api/v1/test-cases/{case}/history"), &alice).await;
    assert!(
        history["items"].as_array().unwrap().is_empty(),
        "nothing was recorded"
    );
    let listed = read(&api, "/api/v1/quarantine", &alice).await;
    assert!(listed["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_quarantine_listing_pages_and_an_admin_sees_everyones() {
    let api = Api::new();
    let alice = api.token("alice");
    let mut cases = Vec::new();
    for name in ["a", "b", "c"] {
        let case = api.create_external_case(&alice, name, 1).await;
        let reply = api
            .put(
                &format!("/api/v1/test-cases/{case}/quarantine"),
                &alice,
                &json!({"reason": "flaky", "until": hours_ahead(2)}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        cases.push(case);
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/quarantine?limit=2".to_owned();
    loop {
        let page = read(&api, &uri, &alice).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["test_case_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/quarantine?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    cases.sort();
    assert_eq!(seen, cases, "in test case id order, each once");
    let admin = api.admin_token("ops");
    let everyone = read(&api, "/api/v1/quarantine", &admin).await;
    assert_eq!(everyone["items"].as_array().unwrap().len(), 3);
}
