//! `GET /analytics/...` through the router: external cases executed again and again (start,
//! report the step, complete) and suites run to the end, then their counts, rates, duration
//! percentiles, trend and flakiness read back; the flaky listing, its order and its pages;
//! another user's tests `404` exactly as missing ones; and bad periods, buckets, limits and
//! cursors refused as `400` problems. On the real clock (every execution finishes today),
//! but for one test on a manual clock whose executions finish on several days.

use http::StatusCode;
use runledger::api::{RouteGroup, Router};
use runledger::bus::local::LocalEventBus;
use runledger::domain::clock::Clock;
use runledger::domain::ids::UlidSource;
use runledger::domain::time::Timestamp;
use runledger::engine::Engine;
use runledger::queue::local::LocalWorkQueue;
use runledger_testkit::api::Api;
use runledger_testkit::fakes::ManualClock;
use runledger_testkit::stores::in_memory;
use runledger_testkit::tokens::authenticator;
use runledger_testkit::wire::absent_id;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Today's UTC day, as the API writes days.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn days_before(day: &str, days: u64) -> String {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    (date - chrono::Days::new(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The Monday of the week `day` is in.
fn monday_of(day: &str) -> String {
    use chrono::Datelike;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    let back = u64::from(date.weekday().num_days_from_monday());
    (date - chrono::Days::new(back))
        .format("%Y-%m-%d")
        .to_string()
}

/// Executes external case `case` (of one step) once: starts it, reports its step with
/// `status`, completes it. Returns the execution's id.
async fn execute(api: &Api, token: &str, case: &str, status: &str) -> String {
    let id = api.start_case(token, case).await;
    let body = json!({"steps": [{"index": 0, "status": status, "duration_ms": 25}]});
    let reported = api
        .post(&format!("/api/v1/executions/{id}/steps"), token, &body)
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.text());
    let completed = api
        .post_empty(&format!("/api/v1/executions/{id}/complete"), token)
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{}", completed.text());
    let expected = if status == "passed" {
        "passed"
    } else {
        "failed"
    };
    assert_eq!(completed.json()["status"], expected, "{}", completed.text());
    id
}

/// Executes `case` once per letter of `outcomes`: `P` passed, `F` failed.
async fn execute_all(api: &Api, token: &str, case: &str, outcomes: &str) {
    for outcome in outcomes.chars() {
        let status = if outcome == 'P' { "passed" } else { "failed" };
        execute(api, token, case, status).await;
    }
}

/// `GET` `uri`, asserting `200`; its body.
async fn read(api: &Api, uri: &str, token: &str) -> Value {
    let reply = api.get(uri, token).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    reply.json()
}

fn counts(analytics: &Value) -> Vec<u64> {
    [
        "executions",
        "passed",
        "failed",
        "errored",
        "skipped",
        "cancelled",
        "timed_out",
    ]
    .iter()
    .map(|name| {
        analytics[*name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {analytics}"))
    })
    .collect()
}

/// The duration percentiles are all there, in order.
#[track_caller]
fn assert_durations_present(durations: &Value, names: &[&str]) {
    let values: Vec<u64> = names
        .iter()
        .map(|name| {
            durations[*name]
                .as_u64()
                .unwrap_or_else(|| panic!("no {name} in {durations}"))
        })
        .collect();
    assert!(values.is_sorted(), "{durations}");
}

#[tokio::test]
async fn an_external_cases_executions_add_up_to_its_analytics() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "checkout", 1).await;
    execute_all(&api, &alice, &case, "PFPFP").await;
    // A cancelled execution counts, but has no outcome: no rate, no flip, no duration.
    let cancelled = api.start_case(&alice, &case).await;
    let reply = api
        .post_empty(&format!("/api/v1/executions/{cancelled}/cancel"), &alice)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let uri = format!("/api/v1/analytics/test-cases/{case}");
    let analytics = read(&api, &uri, &alice).await;
    let today = today();
    assert_eq!(analytics["test_case_id"], case);
    assert_eq!(analytics["since"], days_before(&today, 29), "{analytics}");
    assert_eq!(analytics["until"], today);
    assert_eq!(analytics["bucket"], "day");
    assert_eq!(counts(&analytics), [6, 3, 2, 0, 0, 1, 0], "{analytics}");
    assert_eq!(analytics["pass_rate"], 0.6);
    assert_eq!(analytics["flaky_rate"], 0.0);
    assert_durations_present(
        &analytics["duration_ms"],
        &["p50", "p90", "p95", "p99", "max"],
    );
    assert_eq!(
        analytics["flaky"],
        json!({"is_flaky": true, "flip_rate": 1.0, "window": 20, "retry_passes": 0,
               "last_outcomes": "PFPFP"})
    );
    let trend = analytics["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 1, "{analytics}");
    assert_eq!(trend[0]["date"], today);
    assert_eq!(counts(&trend[0]), [6, 3, 2, 0, 0, 1, 0]);
    assert_eq!(trend[0]["pass_rate"], 0.6);
    assert_durations_present(&trend[0]["duration_ms"], &["p50", "p95"]);
    let keys: BTreeSet<&str> = trend[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "date",
        "executions",
        "passed",
        "failed",
        "errored",
        "skipped",
        "cancelled",
        "timed_out",
        "pass_rate",
        "duration_ms",
    ]
    .into();
    assert_eq!(keys, expected);

    // The same period named with a timestamp and a date; then a week's bucket, whose point is
    // the week's Monday.
    let explicit = read(
        &api,
        &format!("{uri}?since={today}T00:00:00Z&until={today}"),
        &alice,
    )
    .await;
    assert_eq!(
        (&explicit["since"], &explicit["until"]),
        (&json!(today), &json!(today))
    );
    assert_eq!(counts(&explicit), counts(&analytics));
    assert_eq!(explicit["trend"], analytics["trend"]);
    let weekly = read(&api, &format!("{uri}?bucket=week"), &alice).await;
    assert_eq!(weekly["bucket"], "week");
    let weeks = weekly["trend"].as_array().unwrap();
    assert_eq!(weeks.len(), 1, "{weekly}");
    assert_eq!(weeks[0]["date"], monday_of(&today));
    assert_eq!(counts(&weeks[0]), [6, 3, 2, 0, 0, 1, 0]);

    // A period that ended yesterday holds none of it; flakiness is the latest all the same.
    let yesterday = days_before(&today, 1);
    let before = read(&api, &format!("{uri}?until={yesterday}"), &alice).await;
    assert_eq!(counts(&before), [0; 7], "{before}");
    assert_eq!(before["pass_rate"], Value::Null);
    assert_eq!(before["flaky_rate"], Value::Null);
    assert_eq!(
        before["duration_ms"],
        json!({"p50": null, "p90": null, "p95": null, "p99": null, "max": null})
    );
    assert_eq!(before["trend"], json!([]));
    assert_eq!(before["flaky"], analytics["flaky"]);
    assert_eq!(before["since"], days_before(&today, 30));

    // A stable case is not flaky; one that never ran has nothing to say, but exists.
    let stable = api.create_external_case(&alice, "login", 1).await;
    execute_all(&api, &alice, &stable, "PPPPP").await;
    let analytics = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{stable}"),
        &alice,
    )
    .await;
    assert_eq!(analytics["pass_rate"], 1.0);
    assert_eq!(analytics["flaky"]["is_flaky"], false);
    assert_eq!(analytics["flaky"]["flip_rate"], 0.0);
    assert_eq!(analytics["flaky"]["last_outcomes"], "PPPPP");
    let idle = api.create_external_case(&alice, "idle", 1).await;
    let analytics = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{idle}"),
        &alice,
    )
    .await;
    assert_eq!(counts(&analytics), [0; 7]);
    assert_eq!(
        analytics["flaky"],
        json!({"is_flaky": false, "flip_rate": 0.0, "window": 20, "retry_passes": 0,
               "last_outcomes": ""})
    );
}

#[tokio::test]
async fn a_pass_on_an_automatic_retry_makes_a_case_flaky() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "payment", 1).await;
    let start = json!({"test_case_id": case, "config": {"max_retries": 1}});
    let first = api
        .post_for_id(
            "/api/v1/executions/case",
            &alice,
            &start,
            StatusCode::ACCEPTED,
        )
        .await;
    let mut id = first.clone();
    for status in ["failed", "passed"] {
        if status == "passed" {
            let trace = read(&api, &format!("/api/v1/executions/{first}"), &alice).await;
            id = trace["retried_by"].as_str().expect("a retry").to_owned();
        }
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
    let analytics = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{case}"),
        &alice,
    )
    .await;
    assert_eq!(counts(&analytics), [2, 1, 1, 0, 0, 0, 0], "{analytics}");
    assert_eq!(analytics["pass_rate"], 0.5);
    assert_eq!(analytics["flaky_rate"], 0.5);
    assert_eq!(analytics["flaky"]["is_flaky"], true);
    assert_eq!(analytics["flaky"]["retry_passes"], 1);
    assert_eq!(analytics["flaky"]["last_outcomes"], "FP");
}

/// Runs suite `suite` once, each child's one step reported as `outcome(child's name)`;
/// returns the suite execution's final status.
async fn run_suite(
    api: &Api,
    token: &str,
    suite: &str,
    outcome: impl Fn(&str) -> &'static str,
) -> Value {
    let id = api.start_suite(token, suite).await;
    for _ in 0..20 {
        let trace = read(api, &format!("/api/v1/executions/{id}"), token).await;
        if trace["status"] != "running" && trace["status"] != "queued" {
            return trace["status"].clone();
        }
        let children = read(api, &format!("/api/v1/executions/{id}/children"), token).await;
        let child = children["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "queued" || c["status"] == "running")
            .cloned()
            .expect("a child to run");
        let child_id = child["id"].as_str().unwrap();
        let body =
            json!({"steps": [{"index": 0, "status": outcome(child["name"].as_str().unwrap())}]});
        let reply = api
            .post(
                &format!("/api/v1/executions/{child_id}/steps"),
                token,
                &body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let reply = api
            .post_empty(&format!("/api/v1/executions/{child_id}/complete"), token)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    panic!("the suite did not finish");
}

#[tokio::test]
async fn a_suites_runs_count_once_each_and_its_cases_count_too() {
    let api = Api::new();
    let alice = api.token("alice");
    let login = api.create_external_case(&alice, "login", 1).await;
    let search = api.create_external_case(&alice, "search", 1).await;
    let suite = api.create_suite(&alice, "shop", &[&login, &search]).await;
    assert_eq!(
        run_suite(&api, &alice, &suite, |_| "passed").await,
        "passed"
    );
    let failing_search = |name: &str| if name == "search" { "failed" } else { "passed" };
    assert_eq!(
        run_suite(&api, &alice, &suite, failing_search).await,
        "failed"
    );

    let uri = format!("/api/v1/analytics/test-suites/{suite}");
    let analytics = read(&api, &uri, &alice).await;
    assert_eq!(analytics["test_suite_id"], suite);
    assert!(analytics.get("test_case_id").is_none());
    assert_eq!(counts(&analytics), [2, 1, 1, 0, 0, 0, 0], "{analytics}");
    assert_eq!(analytics["pass_rate"], 0.5);
    assert_durations_present(
        &analytics["duration_ms"],
        &["p50", "p90", "p95", "p99", "max"],
    );
    assert_eq!(analytics["flaky"]["last_outcomes"], "PF");
    let trend = analytics["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 1);
    assert_eq!(trend[0]["date"], today());
    assert_eq!(counts(&trend[0]), [2, 1, 1, 0, 0, 0, 0]);

    let login = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{login}"),
        &alice,
    )
    .await;
    assert_eq!(counts(&login), [2, 2, 0, 0, 0, 0, 0]);
    let search = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{search}"),
        &alice,
    )
    .await;
    assert_eq!(counts(&search), [2, 1, 1, 0, 0, 0, 0]);
    assert_eq!(search["flaky"]["last_outcomes"], "PF");

    // A suite id on the test case route (and the reverse) is that route's 404.
    api.get(&format!("/api/v1/analytics/test-cases/{suite}"), &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    let case = login["test_case_id"].as_str().unwrap();
    api.get(&format!("/api/v1/analytics/test-suites/{case}"), &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "test_suite_not_found");
}

#[tokio::test]
async fn the_flaky_listing_holds_the_callers_flaky_cases_highest_flip_rate_first() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let flaky = api.create_external_case(&alice, "flaky", 1).await;
    execute_all(&api, &alice, &flaky, "PFPFP").await;
    let sometimes = api.create_external_case(&alice, "sometimes", 1).await;
    execute_all(&api, &alice, &sometimes, "PPPPF").await;
    let stable = api.create_external_case(&alice, "stable", 1).await;
    execute_all(&api, &alice, &stable, "PPPPP").await;
    let few = api.create_external_case(&alice, "few", 1).await;
    execute_all(&api, &alice, &few, "PF").await;
    let bobs = api.create_external_case(&bob, "bobs", 1).await;
    execute_all(&api, &bob, &bobs, "FPFPF").await;

    let page = read(&api, "/api/v1/analytics/flaky", &alice).await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["test_case_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), [flaky.as_str(), sometimes.as_str()], "{page}");
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &page["items"][0];
    assert_eq!(first["owner"], "alice");
    assert_eq!(first["last_day"], today());
    assert_eq!(
        first["flaky"],
        json!({"is_flaky": true, "flip_rate": 1.0, "window": 20, "retry_passes": 0,
               "last_outcomes": "PFPFP"})
    );
    assert_eq!(page["items"][1]["flaky"]["flip_rate"], 0.25);

    // One a page.
    let one = read(&api, "/api/v1/analytics/flaky?limit=1", &alice).await;
    assert_eq!(ids(&one), [flaky.as_str()]);
    let cursor = one["next_cursor"].as_str().expect("a next page").to_owned();
    let two = read(
        &api,
        &format!("/api/v1/analytics/flaky?limit=1&cursor={cursor}"),
        &alice,
    )
    .await;
    assert_eq!(ids(&two), [sometimes.as_str()]);
    assert_eq!(two["next_cursor"], Value::Null, "{two}");
    // Bob's listing is his own, also read on from alice's cursor.
    let bobs_page = read(&api, "/api/v1/analytics/flaky", &bob).await;
    assert_eq!(ids(&bobs_page), [bobs.as_str()]);
    let bobs_page = read(
        &api,
        &format!("/api/v1/analytics/flaky?cursor={cursor}"),
        &bob,
    )
    .await;
    assert_eq!(ids(&bobs_page), [bobs.as_str()]);

    // An administrator lists everyone's.
    let admin = api.admin_token("root");
    let all = read(&api, "/api/v1/analytics/flaky", &admin).await;
    // Ties in flip rate go by id: alice's flaky case was made first.
    assert_eq!(
        ids(&all),
        [flaky.as_str(), bobs.as_str(), sometimes.as_str()],
        "{all}"
    );

    // A case that stops flipping leaves the listing.
    execute_all(&api, &alice, &sometimes, "FFFFFFFFFFFFFFFFFFFF").await;
    let page = read(&api, "/api/v1/analytics/flaky", &alice).await;
    assert_eq!(ids(&page), [flaky.as_str()], "{page}");
}

#[tokio::test]
async fn another_users_tests_are_404_exactly_as_missing_ones() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let case = api.create_external_case(&alice, "private", 1).await;
    execute_all(&api, &alice, &case, "PF").await;
    let suite = api.create_suite(&alice, "private suite", &[&case]).await;
    run_suite(&api, &alice, &suite, |_| "passed").await;

    for (collection, id, code) in [
        ("test-cases", &case, "test_case_not_found"),
        ("test-suites", &suite, "test_suite_not_found"),
    ] {
        let prefix = &id[..3];
        let theirs = api
            .get(&format!("/api/v1/analytics/{collection}/{id}"), &bob)
            .await;
        let body = theirs.problem(StatusCode::NOT_FOUND, code);
        let missing_id = absent_id(prefix);
        let missing = api
            .get(
                &format!("/api/v1/analytics/{collection}/{missing_id}"),
                &bob,
            )
            .await;
        let absent = missing.problem(StatusCode::NOT_FOUND, code);
        assert_eq!(
            body["detail"].as_str().unwrap().replace(id.as_str(), "ID"),
            absent["detail"]
                .as_str()
                .unwrap()
                .replace(&missing_id, "ID")
        );
        assert!(!theirs.text().contains("alice"), "{}", theirs.text());
        api.get(&format!("/api/v1/analytics/{collection}/not-an-id"), &bob)
            .await
            .problem(StatusCode::NOT_FOUND, code);
        // Bad input on another user's test is still a 400: the query is checked first.
        api.get(
            &format!("/api/v1/analytics/{collection}/{id}?bucket=month"),
            &bob,
        )
        .await
        .validation("bucket");
        // The owner and an administrator see it.
        read(
            &api,
            &format!("/api/v1/analytics/{collection}/{id}"),
            &alice,
        )
        .await;
        let admin = api.admin_token("root");
        let seen = read(
            &api,
            &format!("/api/v1/analytics/{collection}/{id}"),
            &admin,
        )
        .await;
        // The case ran twice on its own and once in the suite.
        let expected = if collection == "test-cases" { 3 } else { 1 };
        assert_eq!(seen["executions"], expected, "{seen}");
    }

    // A deleted case's analytics stay its owner's to read, and nobody else's; a deleted case
    // that never ran has none.
    let reply = api
        .delete(&format!("/api/v1/test-cases/{case}"), &alice)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let kept = read(
        &api,
        &format!("/api/v1/analytics/test-cases/{case}"),
        &alice,
    )
    .await;
    assert_eq!(kept["executions"], 3);
    api.get(&format!("/api/v1/analytics/test-cases/{case}"), &bob)
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
    let never = api.create_external_case(&alice, "never", 1).await;
    let reply = api
        .delete(&format!("/api/v1/test-cases/{never}"), &alice)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    api.get(&format!("/api/v1/analytics/test-cases/{never}"), &alice)
        .await
        .problem(StatusCode::NOT_FOUND, "test_case_not_found");
}

#[tokio::test]
async fn bad_periods_buckets_limits_and_cursors_are_400_problems() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "checkout", 1).await;
    let suite = api.create_suite(&alice, "shop", &[&case]).await;
    let today = today();
    let long_ago = days_before(&today, 366);
    for base in [
        format!("/api/v1/analytics/test-cases/{case}"),
        format!("/api/v1/analytics/test-suites/{suite}"),
    ] {
        let refused: Vec<(String, &str)> = vec![
            ("since=yesterday".into(), "since"),
            ("since=2026-02-30".into(), "since"),
            ("since=2026-1-5".into(), "since"),
            ("since=0000-01-01".into(), "since"),
            ("since=2026-11-26T25:00:00Z".into(), "since"),
            ("since=%00%ff".into(), "since"),
            (format!("since={}", "9".repeat(5000)), "since"),
            ("until=20261126".into(), "until"),
            ("until=+12026-01-01".into(), "until"),
            (
                format!("since={today}&until={}", days_before(&today, 1)),
                "since",
            ),
            (format!("since={long_ago}"), "since"),
            ("since=2020-01-01&until=2026-01-01".into(), "since"),
            (
                "until=2000-01-01T00:00:00Z&since=1998-12-31".into(),
                "since",
            ),
            ("bucket=month".into(), "bucket"),
            ("bucket=DAY".into(), "bucket"),
            ("bucket=day&bucket=week".into(), "bucket"),
            ("colour=red".into(), "colour"),
            ("limit=1".into(), "limit"),
        ];
        for (query, field) in refused {
            api.get(&format!("{base}?{query}"), &alice)
                .await
                .validation(field);
        }
        // The longest period there is, and empty values, which count as absent.
        let year = read(
            &api,
            &format!("{base}?since={}", days_before(&today, 365)),
            &alice,
        )
        .await;
        assert_eq!(year["until"], today);
        let empty = read(&api, &format!("{base}?since=&until=&bucket="), &alice).await;
        assert_eq!(empty["bucket"], "day");
    }

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("since=2026-01-01", "since"),
    ] {
        api.get(&format!("/api/v1/analytics/flaky?{query}"), &alice)
            .await
            .validation(field);
    }
    assert_eq!(
        read(&api, "/api/v1/analytics/flaky?limit=200", &alice).await["items"],
        json!([])
    );
    // A cursor of another listing, one tampered with, and garbage.
    let other = api.create_external_case(&alice, "another", 1).await;
    let listing = read(&api, "/api/v1/test-cases?limit=1", &alice).await;
    let catalog_cursor = listing["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    let b64 = |text: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    };
    for cursor in [
        catalog_cursor,
        b64("flaky:x"),
        b64(&format!("flaky:{other}")),
        b64(&format!("flaky:0000_{}", absent_id("ts_"))),
        b64(&format!("flaky:00x0_{}", absent_id("tc_"))),
        "%%%".to_owned(),
        "bm9wZQ".to_owned(),
    ] {
        api.get(&format!("/api/v1/analytics/flaky?cursor={cursor}"), &alice)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    }
    // A well-formed position past everything is an empty page, not an error.
    let past = b64(&format!("flaky:9999_{}", absent_id("tc_")));
    let page = read(
        &api,
        &format!("/api/v1/analytics/flaky?cursor={past}"),
        &alice,
    )
    .await;
    assert_eq!(page["items"], json!([]));

    // Without a token, every analytics route is 401.
    for uri in [
        format!("/api/v1/analytics/test-cases/{case}"),
        format!("/api/v1/analytics/test-suites/{suite}"),
        "/api/v1/analytics/flaky".to_owned(),
    ] {
        api.send(http::Method::GET, &uri, None, bytes::Bytes::new())
            .await
            .unauthorized("unauthenticated");
        // And they take GET only.
        let reply = api.post_empty(&uri, &alice).await;
        reply.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

/// A manual clock: executions that finish on several days, with known durations.
#[tokio::test]
async fn weeks_merge_the_days_and_percentiles_are_the_durations() {
    // Thursday 2026-11-26, 10:00 UTC.
    let start = Timestamp::parse("2026-11-26T10:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::starting_at(start));
    let engine = Engine::new(
        in_memory(),
        Arc::new(LocalWorkQueue::new()),
        Arc::new(LocalEventBus::new()),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::new(UlidSource::default()),
    );
    let api = Api {
        router: Router::new(engine, Arc::new(authenticator()), &RouteGroup::ALL),
    };
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "checkout", 1).await;
    const DAY: i64 = 24 * 3600 * 1000;
    // Thursday, Friday, Sunday of one week; Monday and Tuesday of the next. Each execution
    // runs `duration` ms from its first report to its completion.
    let plan = [
        ("2026-11-26", "passed", 100),
        ("2026-11-26", "failed", 200),
        ("2026-11-27", "passed", 300),
        ("2026-11-29", "passed", 400),
        ("2026-11-30", "failed", 500),
        ("2026-12-01", "passed", 600),
        ("2026-12-01", "passed", 700),
    ];
    let mut day = "2026-11-26";
    for (on, status, duration) in plan {
        if on != day {
            let from = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            let to = chrono::NaiveDate::parse_from_str(on, "%Y-%m-%d").unwrap();
            clock.advance_millis((to - from).num_days() * DAY);
            day = on;
        }
        let id = api.start_case(&alice, &case).await;
        let body = json!({"steps": [{"index": 0, "status": status}]});
        let reply = api
            .post(&format!("/api/v1/executions/{id}/steps"), &alice, &body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        clock.advance_millis(duration);
        let reply = api
            .post_empty(&format!("/api/v1/executions/{id}/complete"), &alice)
            .await;
        assert_eq!(reply.json()["duration_ms"], duration, "{}", reply.text());
    }
    let uri = format!("/api/v1/analytics/test-cases/{case}");

    // The default period ends on the clock's today.
    let daily = read(&api, &uri, &alice).await;
    assert_eq!(
        (&daily["since"], &daily["until"]),
        (&json!("2026-11-02"), &json!("2026-12-01"))
    );
    assert_eq!(counts(&daily), [7, 5, 2, 0, 0, 0, 0]);
    assert_eq!(daily["pass_rate"], 0.714);
    let dates: Vec<&str> = daily["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["date"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2026-11-26",
            "2026-11-27",
            "2026-11-29",
            "2026-11-30",
            "2026-12-01"
        ]
    );
    assert_eq!(daily["trend"][0]["pass_rate"], 0.5);
    assert_eq!(daily["trend"][4]["executions"], 2);
    // Percentiles of 100..700 (rank ⌊q·(n−1)⌋), within 1 %; the max exact.
    let within = |got: &Value, exact: f64| {
        let got = got.as_f64().unwrap_or_else(|| panic!("{got}"));
        assert!((got - exact).abs() <= exact * 0.01, "{got} vs {exact}");
    };
    let durations = &daily["duration_ms"];
    within(&durations["p50"], 400.0);
    within(&durations["p90"], 600.0);
    within(&durations["p95"], 600.0);
    within(&durations["p99"], 600.0);
    assert_eq!(durations["max"], 700);
    within(&daily["trend"][0]["duration_ms"]["p50"], 100.0);
    within(&daily["trend"][0]["duration_ms"]["p95"], 100.0);
    assert_eq!(daily["flaky"]["last_outcomes"], "PFPPFPP");
    assert_eq!(daily["flaky"]["flip_rate"], 0.667);

    // By week: Thursday to Sunday are one point (Monday the 23rd), Monday and Tuesday the next.
    let weekly = read(&api, &format!("{uri}?bucket=week"), &alice).await;
    let weeks = weekly["trend"].as_array().unwrap();
    assert_eq!(weeks.len(), 2, "{weekly}");
    assert_eq!(weeks[0]["date"], "2026-11-23");
    assert_eq!(counts(&weeks[0]), [4, 3, 1, 0, 0, 0, 0]);
    assert_eq!(weeks[0]["pass_rate"], 0.75);
    within(&weeks[0]["duration_ms"]["p50"], 200.0);
    assert_eq!(weeks[1]["date"], "2026-11-30");
    assert_eq!(counts(&weeks[1]), [3, 2, 1, 0, 0, 0, 0]);
    assert_eq!(counts(&weekly), counts(&daily));

    // A period picks its days, the current one included or not.
    let middle = read(
        &api,
        &format!("{uri}?since=2026-11-27&until=2026-11-30"),
        &alice,
    )
    .await;
    assert_eq!(counts(&middle), [3, 2, 1, 0, 0, 0, 0]);
    assert_eq!(middle["duration_ms"]["max"], 500);
    let last = read(&api, &format!("{uri}?since=2026-12-01T00:00:00Z"), &alice).await;
    assert_eq!(counts(&last), [2, 2, 0, 0, 0, 0, 0]);
    let first = read(
        &api,
        &format!("{uri}?until=2026-11-26T23:59:59.999Z"),
        &alice,
    )
    .await;
    assert_eq!(counts(&first), [2, 1, 1, 0, 0, 0, 0]);
    assert_eq!(first["since"], "2026-10-28");
    // A timestamp's UTC day: 01:00 on the 27th at +02:00 is still the 26th.
    let offset = read(
        &api,
        &format!("{uri}?since=2026-11-27T01:00:00%2B02:00&until=2026-11-26"),
        &alice,
    )
    .await;
    assert_eq!(counts(&offset), [2, 1, 1, 0, 0, 0, 0]);
}
