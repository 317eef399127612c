//! End-to-end tests: the real `runledger-local` process over a socket, one server and one
//! fresh data directory per test.

use runledger_testkit::builders::external_case;
use runledger_testkit::server::{Api, POLL_DEADLINE, Server};
use runledger_testkit::tokens::SECRET;
use runledger_testkit::wire::{encode, id_of, is_terminal, statuses};
use serde_json::{Value, json};
use std::time::Duration;
use tempfile::TempDir;

fn start_server() -> (TempDir, Server) {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::start(dir.path());
    (dir, server)
}

/// An `http` step against the demo target.
fn demo_get(name: &str, path: &str, expect_status: u16) -> Value {
    json!({
        "name": name,
        "action": "http",
        "http": {"method": "GET", "url": format!("{{{{base_url}}}}{path}")},
        "expect": {"status": expect_status}
    })
}

fn demo_case(server: &Server, name: &str, steps: Vec<Value>) -> Value {
    json!({
        "name": name,
        "variables": {"base_url": format!("{}/demo", server.origin)},
        "steps": steps
    })
}

#[tokio::test]
async fn quickstart_http_case_runs_to_passed() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");

    // The health endpoint needs no token.
    let health = Api::new(&server.api_url, "not-a-token")
        .get("/health")
        .await
        .expect(200, "health");
    assert_eq!(health["status"], "ok");

    let case = json!({
        "name": "checkout API smoke",
        "tags": ["smoke"],
        "variables": {"base_url": format!("{}/demo", server.origin)},
        "steps": [
            {
                "name": "health is ok",
                "action": "http",
                "http": {"method": "GET", "url": "{{base_url}}/health",
                         "headers": {"accept": "application/json"}, "timeout_ms": 5000},
                "expect": {"status": 200, "json": {"/status": "ok"}, "body_contains": "ok",
                           "headers": {"content-type": "application/json"}}
            },
            {
                "name": "log in",
                "action": "http",
                "http": {"method": "POST", "url": "{{base_url}}/login",
                         "body": {"user": "alice", "password": "secret"}},
                "expect": {"status": 200},
                "capture": {"token": "/access_token"}
            },
            {
                "name": "order 42 has shipped",
                "action": "http",
                "http": {"method": "GET", "url": "{{base_url}}/orders/42",
                         "headers": {"authorization": "Bearer {{token}}"}},
                "expect": {"status": 200, "json": {"/id": "42", "/status": "shipped", "/items": 2}}
            }
        ]
    });
    let created = alice
        .post("/test-cases", case)
        .await
        .expect(201, "create the case");
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["version"], 1);
    let case_id = id_of(&created);
    assert!(case_id.starts_with("tc_"), "case id {case_id}");

    let started = alice.start_case(&case_id, None).await;
    let id = id_of(&started);
    assert!(id.starts_with("ex_"), "execution id {id}");
    assert_eq!(started["kind"], "case");
    assert_eq!(started["status"], "queued");
    assert_eq!(started["owner"], "alice");
    assert_eq!(started["test_case_id"], json!(case_id));
    assert_eq!(started["attempt"], 1);
    assert_eq!(started["retry_of"], Value::Null);
    assert_eq!(started["storage"], "inline");

    let done = alice.wait_terminal(&id).await;
    assert_eq!(done["status"], "passed", "execution: {done:#}");
    let steps = done["steps"].as_array().expect("inline steps");
    assert_eq!(steps.len(), 3);
    assert_eq!(statuses(steps), ["passed", "passed", "passed"], "{done:#}");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["index"], json!(i));
        assert!(step["started_at"].is_string(), "step {i}: {step}");
        assert!(step["finished_at"].is_string(), "step {i}: {step}");
        assert!(step["duration_ms"].is_u64(), "step {i}: {step}");
    }
    assert_eq!(steps[2]["name"], "order 42 has shipped");
    let progress = &done["progress"];
    assert_eq!(progress["total"], 3);
    assert_eq!(progress["completed"], 3);
    assert_eq!(progress["passed"], 3);
    assert_eq!(progress["failed"], 0);
    assert_eq!(progress["percent"].as_f64(), Some(100.0));
    assert!(done["started_at"].is_string());
    assert!(done["finished_at"].is_string());
    assert!(done["duration_ms"].is_u64());

    let history = alice.history(&id).await;
    let transitions: Vec<(Value, Value, Value)> = history
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone(), h["actor"].clone()))
        .collect();
    assert_eq!(
        transitions,
        [
            (Value::Null, json!("queued"), json!("user:alice")),
            (json!("queued"), json!("running"), json!("runner")),
            (json!("running"), json!("passed"), json!("runner")),
        ],
        "history: {history:#?}"
    );
    assert_eq!(history[0]["reason"], "started");
    assert!(history.iter().all(|h| h["at"].is_string()));

    // `?fields=` picks top-level fields.
    let picked = alice
        .get(&format!("/executions/{id}?fields=id,status,progress"))
        .await
        .expect(200, "fields");
    let mut keys: Vec<&String> = picked.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "progress", "status"]);
}

#[tokio::test]
async fn suite_with_a_failing_case_fails_and_counts_children() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let health = alice
        .create_case(demo_case(
            &server,
            "health",
            vec![demo_get("health", "/health", 200)],
        ))
        .await;
    let broken = alice
        .create_case(demo_case(
            &server,
            "broken",
            vec![
                demo_get("first", "/health", 200),
                demo_get("expects 200 from a 503", "/status/503", 200),
                demo_get("never runs", "/health", 200),
            ],
        ))
        .await;
    let teapot = alice
        .create_case(demo_case(
            &server,
            "teapot",
            vec![demo_get("teapot", "/status/418", 418)],
        ))
        .await;
    let suite_id = alice
        .create_suite(json!({
            "name": "nightly",
            "test_case_ids": [health, broken, teapot],
            "mode": "parallel"
        }))
        .await;

    let started = alice.start_suite(&suite_id, None).await;
    let id = id_of(&started);
    assert_eq!(started["kind"], "suite");
    assert_eq!(started["test_suite_id"], json!(suite_id));
    assert_eq!(started["children"]["total"], 3);
    assert!(started.get("steps").is_none(), "a suite has no steps");

    let done = alice.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "suite: {done:#}");
    let children = &done["children"];
    assert_eq!(children["total"], 3, "{children}");
    assert_eq!(children["passed"], 2, "{children}");
    assert_eq!(children["failed"], 1, "{children}");
    for zero in ["queued", "running", "cancelled", "timed_out", "error"] {
        assert_eq!(children[zero], 0, "{zero}: {children}");
    }

    let listed = alice.children(&id).await;
    assert_eq!(listed.len(), 3, "children: {listed:#?}");
    let mut seen = Vec::new();
    for child in &listed {
        assert_eq!(child["parent_id"], json!(id), "{child}");
        assert_eq!(child["kind"], "case");
        let case_id = child["test_case_id"].as_str().expect("test_case_id");
        let expected = if case_id == broken {
            "failed"
        } else {
            "passed"
        };
        assert_eq!(child["status"], expected, "child {child}");
        seen.push(case_id.to_owned());
    }
    seen.sort();
    let mut all = vec![health.clone(), broken.clone(), teapot.clone()];
    all.sort();
    assert_eq!(seen, all);

    let failing = listed
        .iter()
        .find(|c| c["test_case_id"] == json!(broken))
        .expect("the failing child");
    let failing = alice.execution(&id_of(failing)).await;
    let steps = failing["steps"].as_array().expect("steps");
    assert_eq!(
        statuses(steps),
        ["passed", "failed", "skipped"],
        "{failing:#}"
    );
    let message = steps[1]["message"].as_str().unwrap_or("");
    assert!(
        !message.is_empty(),
        "the failed step explains itself: {failing:#}"
    );
    assert!(
        message.contains("503"),
        "the message names the status it got: {message}"
    );
    assert_eq!(failing["progress"]["failed"], 1);
    assert_eq!(failing["progress"]["skipped"], 1);
    assert_eq!(failing["progress"]["completed"], 3);
}

#[tokio::test]
async fn partitioned_execution_pages_steps_with_cursors() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("sixty", 60)).await;
    let started = alice.start_case(&case_id, None).await;
    let id = id_of(&started);
    assert_eq!(started["storage"], "partitioned");
    assert!(
        started.get("steps").is_none(),
        "no inline steps: {started:#}"
    );
    assert_eq!(started["progress"]["total"], 60);

    let batch = |range: std::ops::Range<usize>| -> Value {
        range
            .map(|i| json!({"index": i, "status": "passed", "duration_ms": i, "message": format!("ok {i}")}))
            .collect()
    };
    let first = alice.report(&id, batch(0..30)).await;
    assert_eq!(first["status"], "running");
    assert_eq!(first["progress"]["completed"], 30);
    let second = alice.report(&id, batch(30..60)).await;
    assert_eq!(second["progress"]["completed"], 60);
    assert_eq!(second["progress"]["passed"], 60);

    let trace = alice.execution(&id).await;
    assert!(trace.get("steps").is_none(), "still no inline steps");
    assert_eq!(trace["storage"], "partitioned");

    let mut indices = Vec::new();
    let mut sizes = Vec::new();
    let mut path = format!("/executions/{id}/steps?limit=25");
    loop {
        let page = alice.get(&path).await.expect(200, "a page of steps");
        let items = page["items"].as_array().expect("items");
        sizes.push(items.len());
        for step in items {
            assert_eq!(step["status"], "passed", "{step}");
            let index = step["index"].as_u64().expect("index");
            assert_eq!(step["name"], json!(format!("step-{index}")));
            assert_eq!(step["message"], json!(format!("ok {index}")));
            indices.push(index);
        }
        match &page["next_cursor"] {
            Value::String(cursor) => {
                assert!(sizes.len() < 5, "paging does not end: {sizes:?}");
                path = format!("/executions/{id}/steps?limit=25&cursor={}", encode(cursor));
            }
            Value::Null => break,
            other => panic!("bad next_cursor {other}"),
        }
    }
    assert_eq!(sizes, [25, 25, 10]);
    assert_eq!(indices, (0..60).collect::<Vec<u64>>());

    let done = alice
        .post_empty(&format!("/executions/{id}/complete"))
        .await
        .expect(200, "complete");
    assert_eq!(done["status"], "passed");
    assert_eq!(done["progress"]["completed"], 60);
    assert!(done.get("steps").is_none());
}

#[tokio::test]
async fn cancelling_a_running_suite_cancels_unfinished_children() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let mut cases = Vec::new();
    for n in 0..3 {
        cases.push(
            alice
                .create_case(external_case(&format!("ext {n}"), 2))
                .await,
        );
    }
    let suite_id = alice
        .create_suite(json!({"name": "externals", "test_case_ids": cases, "mode": "parallel"}))
        .await;
    let started = alice.start_suite(&suite_id, None).await;
    let id = id_of(&started);

    let children = alice.children(&id).await;
    assert_eq!(children.len(), 3);
    assert_eq!(statuses(&children), ["queued", "queued", "queued"]);
    let running_child = id_of(&children[0]);
    let reported = alice
        .report(&running_child, json!([{"index": 0, "status": "passed"}]))
        .await;
    assert_eq!(reported["status"], "running");
    let suite = alice.execution(&id).await;
    assert_eq!(suite["status"], "running", "{suite:#}");
    assert_eq!(suite["children"]["running"], 1);
    assert_eq!(suite["children"]["queued"], 2);

    let cancelled = alice
        .post(
            &format!("/executions/{id}/cancel"),
            json!({"reason": "no longer needed"}),
        )
        .await
        .expect(200, "cancel the suite");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["children"]["cancelled"], 3, "{cancelled:#}");

    let suite = alice.execution(&id).await;
    assert_eq!(suite["status"], "cancelled");
    let children = alice.children(&id).await;
    assert_eq!(
        statuses(&children),
        ["cancelled", "cancelled", "cancelled"],
        "{children:#?}"
    );
    let history = alice.history(&id).await;
    let last = history.last().expect("history");
    assert_eq!(last["to"], "cancelled");
    assert_eq!(last["actor"], "user:alice");
    assert_eq!(last["reason"], "no longer needed");
    let child_history = alice.history(&running_child).await;
    assert_eq!(child_history.last().unwrap()["from"], "running");
    assert_eq!(child_history.last().unwrap()["to"], "cancelled");

    alice
        .post_empty(&format!("/executions/{id}/cancel"))
        .await
        .expect_problem(409, "invalid_transition", "cancel twice");
    alice
        .post(
            &format!("/executions/{running_child}/steps"),
            json!({"steps": [{"index": 1, "status": "passed"}]}),
        )
        .await
        .expect_problem(409, "invalid_transition", "report on a cancelled child");
}

#[tokio::test]
async fn manual_retry_of_a_failed_execution() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("flaky", 2)).await;
    let id = id_of(&alice.start_case(&case_id, None).await);
    alice
        .report(
            &id,
            json!([{"index": 0, "status": "failed", "message": "expected 200, got 503"}]),
        )
        .await;
    let failed = alice
        .post_empty(&format!("/executions/{id}/complete"))
        .await
        .expect(200, "complete");
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        statuses(failed["steps"].as_array().unwrap()),
        ["failed", "skipped"]
    );

    let retry = alice
        .post_empty(&format!("/executions/{id}/retry"))
        .await
        .expect(202, "retry");
    let retry_id = id_of(&retry);
    assert_ne!(retry_id, id);
    assert_eq!(retry["attempt"], 2);
    assert_eq!(retry["retry_of"], json!(id));
    assert_eq!(retry["status"], "queued");
    assert_eq!(retry["test_case_id"], json!(case_id));
    assert_eq!(
        statuses(retry["steps"].as_array().unwrap()),
        ["pending", "pending"]
    );
    let original = alice.execution(&id).await;
    assert_eq!(original["retried_by"], json!(retry_id));
    assert_eq!(original["status"], "failed", "the original stays as it was");

    alice
        .report(&retry_id, json!([{"index": 0, "status": "passed"}]))
        .await;
    alice
        .post_empty(&format!("/executions/{retry_id}/retry"))
        .await
        .expect_problem(409, "invalid_transition", "retry a running execution");
    assert_eq!(alice.execution(&retry_id).await["status"], "running");
}

#[tokio::test]
async fn max_retries_retries_a_failing_case_exactly_once() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let case_id = alice
        .create_case(demo_case(
            &server,
            "always 500",
            vec![demo_get("wants 200", "/status/500", 200)],
        ))
        .await;
    let first = alice
        .start_case(&case_id, Some(json!({"max_retries": 1})))
        .await;
    let first_id = id_of(&first);
    assert_eq!(first["max_retries"], 1);

    let list_path = format!("/executions?test_case_id={case_id}");
    let deadline = std::time::Instant::now() + POLL_DEADLINE;
    let items = loop {
        let page = alice.get(&list_path).await.expect(200, "list executions");
        let items = page["items"].as_array().expect("items").clone();
        if items.len() >= 2 && items.iter().all(|e| is_terminal(&e["status"])) {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two finished attempts never appeared: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A third attempt would come right after the second ended: give it time to show.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let page = alice.get(&list_path).await.expect(200, "list executions");
    let items_later = page["items"].as_array().expect("items");
    assert_eq!(items_later.len(), 2, "exactly two attempts: {page:#}");
    assert_eq!(items_later.len(), items.len());

    // Newest first.
    let (second, first) = (&items_later[0], &items_later[1]);
    assert_eq!(first["id"], json!(first_id));
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["status"], "failed");
    assert_eq!(first["retried_by"], second["id"]);
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["status"], "failed");
    assert_eq!(second["retry_of"], json!(first_id));
    assert_eq!(second["retried_by"], Value::Null);

    let history = alice.history(&id_of(second)).await;
    assert_eq!(history[0]["from"], Value::Null);
    assert_eq!(history[0]["to"], "queued");
    assert_eq!(history[0]["actor"], "engine");
    let reason = history[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("automatic retry"), "reason: {reason}");
}

#[tokio::test]
async fn an_execution_past_its_timeout_is_timed_out_by_the_sweep() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("never reported", 3)).await;
    let started = alice
        .start_case(&case_id, Some(json!({"timeout_s": 1})))
        .await;
    let id = id_of(&started);
    assert_eq!(started["timeout_s"], 1);
    assert!(started["deadline_at"].is_string());

    let done = alice
        .wait_until(&id, Duration::from_secs(8), "timed out", |e| {
            e["status"] != "queued"
        })
        .await;
    assert_eq!(done["status"], "timed_out", "{done:#}");
    assert!(done["finished_at"].is_string());
    let history = alice.history(&id).await;
    let last = history.last().expect("history");
    assert_eq!(last["from"], "queued");
    assert_eq!(last["to"], "timed_out");
    assert_eq!(last["actor"], "engine:timeout-sweep");
    assert_eq!(history.len(), 2, "{history:#?}");

    alice
        .post(
            &format!("/executions/{id}/steps"),
            json!({"steps": [{"index": 0, "status": "passed"}]}),
        )
        .await
        .expect_problem(409, "invalid_transition", "report after the timeout");
}

#[tokio::test]
async fn idempotency_key_returns_the_same_execution_per_user() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    // Bob's token comes from the `token` subcommand, signed with the same secret.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runledger-local"))
        .args(["token", "--sub", "bob", "--ttl", "600"])
        .env("RUNLEDGER_JWT_SECRET", SECRET)
        .env_remove("RUNLEDGER_JWT_ISSUER")
        .env_remove("RUNLEDGER_JWT_AUDIENCE")
        .env("RUNLEDGER_DATA_DIR", server.data_dir.join("token-cli"))
        .output()
        .expect("run `runledger-local token`");
    assert!(output.status.success(), "token: {output:?}");
    let bob_token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let bob = Api::new(&server.api_url, &bob_token);

    let alice_case = alice.create_case(external_case("alice's", 1)).await;
    let bob_case = bob.create_case(external_case("bob's", 1)).await;
    let key = [("Idempotency-Key", "deploy-1234")];

    let first = alice
        .post_with(
            "/executions/case",
            json!({"test_case_id": alice_case}),
            &key,
        )
        .await
        .expect(202, "first start");
    let again = alice
        .post_with(
            "/executions/case",
            json!({"test_case_id": alice_case}),
            &key,
        )
        .await
        .expect(200, "the same start again");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["attempt"], 1);

    let bobs = bob
        .post_with("/executions/case", json!({"test_case_id": bob_case}), &key)
        .await
        .expect(202, "another user, same key");
    assert_ne!(bobs["id"], first["id"]);
    assert_eq!(bobs["owner"], "bob");

    let listed = alice.get("/executions").await.expect(200, "alice's list");
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed:#}");
    assert_eq!(items[0]["id"], first["id"]);
    // Bob cannot see alice's execution, nor start her case.
    bob.get(&format!("/executions/{}", id_of(&first)))
        .await
        .expect_problem(404, "execution_not_found", "bob reads alice's execution");
    bob.post("/executions/case", json!({"test_case_id": alice_case}))
        .await
        .expect(404, "bob starts alice's case");
}

#[tokio::test]
async fn sequential_suite_starts_children_one_after_another() {
    let (_dir, server) = start_server();
    let alice = server.client("alice");
    let one = alice.create_case(external_case("one", 2)).await;
    let two = alice.create_case(external_case("two", 2)).await;
    let suite_id = alice
        .create_suite(
            json!({"name": "in order", "test_case_ids": [one, two], "mode": "sequential"}),
        )
        .await;
    let id = id_of(&alice.start_suite(&suite_id, None).await);

    let children = alice.children(&id).await;
    let by_case = |children: &[Value], case: &str| -> Value {
        children
            .iter()
            .find(|c| c["test_case_id"] == json!(case))
            .unwrap_or_else(|| panic!("no child for {case}: {children:#?}"))
            .clone()
    };
    let first = by_case(&children, &one);
    let second = by_case(&children, &two);
    assert_eq!(first["status"], "queued", "{children:#?}");
    assert_eq!(second["status"], "pending", "{children:#?}");
    // A pending child takes no reports yet.
    alice
        .post(
            &format!("/executions/{}/steps", id_of(&second)),
            json!({"steps": [{"index": 0, "status": "passed"}]}),
        )
        .await
        .expect_problem(409, "invalid_transition", "report on a pending child");

    alice
        .report(
            &id_of(&first),
            json!([{"index": 0, "status": "passed"}, {"index": 1, "status": "passed"}]),
        )
        .await;
    let done = alice
        .post_empty(&format!("/executions/{}/complete", id_of(&first)))
        .await
        .expect(200, "complete the first child");
    assert_eq!(done["status"], "passed");

    let second_now = alice.execution(&id_of(&second)).await;
    assert_eq!(second_now["status"], "queued", "{second_now:#}");
    let history = alice.history(&id_of(&second)).await;
    assert_eq!(history.last().unwrap()["from"], "pending");
    assert_eq!(history.last().unwrap()["to"], "queued");
    let suite = alice.execution(&id).await;
    assert_eq!(suite["status"], "running");
    assert_eq!(suite["children"]["passed"], 1);
    assert_eq!(suite["children"]["queued"], 1);

    alice
        .post_empty(&format!("/executions/{}/complete", id_of(&second)))
        .await
        .expect(200, "complete the second child");
    let suite = alice.execution(&id).await;
    assert_eq!(suite["status"], "passed", "{suite:#}");
    assert_eq!(suite["children"]["passed"], 2);
}
