//! Durability: what the server acknowledged survives SIGKILL (no graceful shutdown at all)
//! and SIGTERM, as seen by a new server on the same data directory.

use runledger_testkit::builders::external_case;
use runledger_testkit::server::{Api, POLL_DEADLINE, Server};
use runledger_testkit::wire::{id_of, statuses};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The status each test reports for step `i`: mostly passed, some failed.
fn status_for(i: usize) -> &'static str {
    if i % 7 == 3 { "failed" } else { "passed" }
}

fn report_for(i: usize) -> Value {
    json!({
        "index": i,
        "status": status_for(i),
        "started_at": "2026-01-02T03:04:05.006Z",
        "duration_ms": 10 + i,
        "message": format!("message {i}"),
        "output": format!("output {i}")
    })
}

/// Checks every step of `id` is as [`report_for`] reported it.
fn assert_steps_as_reported(steps: &[Value], total: usize) {
    assert_eq!(steps.len(), total, "every step is listed");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["index"], json!(i), "{step}");
        assert_eq!(step["status"], status_for(i), "step {i}: {step}");
        assert_eq!(step["name"], json!(format!("step-{i}")), "{step}");
        assert_eq!(step["message"], json!(format!("message {i}")), "{step}");
        assert_eq!(step["output"], json!(format!("output {i}")), "{step}");
        assert_eq!(step["duration_ms"], json!(10 + i), "{step}");
        assert_eq!(step["started_at"], "2026-01-02T03:04:05.006Z", "{step}");
    }
}

fn expected_progress(total: usize) -> Value {
    let failed = (0..total).filter(|i| status_for(*i) == "failed").count();
    json!({"total": total, "completed": total, "passed": total - failed, "failed": failed,
           "skipped": 0, "errored": 0, "percent": 100.0})
}

#[tokio::test]
async fn acknowledged_step_reports_survive_sigkill() {
    const STEPS: usize = 30;
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("crash me", STEPS)).await;
    let id = id_of(&alice.start_case(&case_id, None).await);

    for i in 0..STEPS {
        let body = alice.report(&id, json!([report_for(i)])).await;
        assert_eq!(body["progress"]["completed"], json!(i + 1), "{body}");
    }
    // The instant the last acknowledgement arrived: no graceful shutdown.
    server.kill_hard();
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let trace = alice.execution(&id).await;
    assert_eq!(trace["status"], "running", "{trace:#}");
    assert_eq!(trace["storage"], "inline");
    assert_eq!(trace["progress"], expected_progress(STEPS), "{trace:#}");
    assert_steps_as_reported(trace["steps"].as_array().expect("inline steps"), STEPS);
    assert_steps_as_reported(&alice.all_steps(&id, 7).await, STEPS);

    let history = alice.history(&id).await;
    let transitions: Vec<(Value, Value, Value)> = history
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone(), h["actor"].clone()))
        .collect();
    assert_eq!(
        transitions,
        [
            (Value::Null, json!("queued"), json!("user:alice")),
            (json!("queued"), json!("running"), json!("user:alice")),
        ],
        "{history:#?}"
    );
    assert_eq!(trace["history_count"], 2);

    // The restarted server goes on where the first one stopped.
    let done = alice
        .post_empty(&format!("/executions/{id}/complete"))
        .await
        .expect(200, "complete after the restart");
    assert_eq!(done["status"], "failed", "some steps failed");
    assert_eq!(done["progress"], expected_progress(STEPS));
}

#[tokio::test]
async fn concurrent_step_reports_survive_sigkill() {
    const STEPS: usize = 60; // partitioned storage
    const REPORTERS: usize = 10;
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice
        .create_case(external_case("crash me too", STEPS))
        .await;
    let id = id_of(&alice.start_case(&case_id, None).await);
    // A second execution, inline, reported on at the same time.
    let small_case = alice.create_case(external_case("small", REPORTERS)).await;
    let small = id_of(&alice.start_case(&small_case, None).await);

    let mut tasks = tokio::task::JoinSet::new();
    for reporter in 0..REPORTERS {
        let (alice, id, small) = (alice.clone(), id.clone(), small.clone());
        tasks.spawn(async move {
            for i in (reporter..STEPS).step_by(REPORTERS) {
                let body = alice.report(&id, json!([report_for(i)])).await;
                assert_eq!(body["id"], json!(id));
            }
            alice.report(&small, json!([report_for(reporter)])).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a reporter task");
    }
    server.kill_hard();
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let trace = alice.execution(&id).await;
    assert_eq!(trace["status"], "running", "{trace:#}");
    assert_eq!(trace["storage"], "partitioned");
    assert_eq!(trace["progress"], expected_progress(STEPS), "{trace:#}");
    assert_steps_as_reported(&alice.all_steps(&id, 25).await, STEPS);
    let history = alice.history(&id).await;
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_eq!(history[1]["to"], "running");

    let small_trace = alice.execution(&small).await;
    assert_eq!(small_trace["progress"], expected_progress(REPORTERS));
    assert_steps_as_reported(small_trace["steps"].as_array().unwrap(), REPORTERS);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_keeps_everything() {
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("graceful", 5)).await;
    let id = id_of(&alice.start_case(&case_id, None).await);
    alice
        .report(&id, json!([report_for(0), report_for(1), report_for(2)]))
        .await;
    let finished_case = alice.create_case(external_case("finished", 2)).await;
    let finished = id_of(&alice.start_case(&finished_case, None).await);
    alice
        .post_empty(&format!("/executions/{finished}/complete"))
        .await
        .expect(200, "complete");

    // A request in flight when SIGTERM arrives still gets its answer.
    let slow = {
        let origin = server.origin.clone();
        tokio::spawn(async move {
            runledger::crypto::install();
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let response = client
                .get(format!("{origin}/demo/slow/2000"))
                .send()
                .await
                .expect("the in-flight request is answered");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        })
    };
    // Give the request time to reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = server
        .terminate(Duration::from_secs(15))
        .await
        .expect("the server exits within 15 s of SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log_text()
    );
    let (code, text) = slow.await.expect("the slow request task");
    assert_eq!(code, 200, "in-flight request: {text}");
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let trace = alice.execution(&id).await;
    assert_eq!(trace["status"], "running");
    assert_eq!(trace["progress"]["completed"], 3);
    let steps = trace["steps"].as_array().expect("steps");
    assert_eq!(
        statuses(steps),
        ["passed", "passed", "passed", "pending", "pending"]
    );
    assert_steps_as_reported(&steps[..3], 3);
    let done = alice.execution(&finished).await;
    assert_eq!(done["status"], "passed");
    assert_eq!(alice.history(&finished).await.len(), 3);
    let listed = alice.get("/executions").await.expect(200, "list");
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let _ = Api::new(&server.api_url, &server.printed_token)
        .get("/executions")
        .await
        .expect(200, "the printed token works after a restart");
}

#[tokio::test]
async fn builtin_runs_cut_by_sigkill_are_recovered_on_restart() {
    let dir = TempDir::new().expect("a temp data dir");
    // One worker: the slow case holds it, so the second case is still queued at the kill.
    let mut server = Server::start_with(dir.path(), &[("RUNLEDGER_WORKERS", "1")]);
    let alice = server.client("alice");
    let base_url = format!("{}/demo", server.origin);
    let slow_case = alice
        .create_case(json!({
            "name": "slow",
            "variables": {"base_url": base_url},
            "steps": [{"name": "slow", "action": "http",
                       "http": {"method": "GET", "url": "{{base_url}}/slow/1500"},
                       "expect": {"status": 200}}]
        }))
        .await;
    let quick_case = alice
        .create_case(json!({
            "name": "quick",
            "variables": {"base_url": base_url},
            "steps": [{"name": "health", "action": "http",
                       "http": {"method": "GET", "url": "{{base_url}}/health"},
                       "expect": {"status": 200, "json": {"/status": "ok"}}}]
        }))
        .await;
    let interrupted = id_of(
        &alice
            .start_case(&slow_case, Some(json!({"max_retries": 1})))
            .await,
    );
    alice
        .wait_until(&interrupted, POLL_DEADLINE, "the runner picks it up", |e| {
            e["status"] == "running"
        })
        .await;
    let waiting = id_of(&alice.start_case(&quick_case, None).await);
    assert_eq!(alice.execution(&waiting).await["status"], "queued");
    server.kill_hard();
    // The cases' `base_url` names this port: the new server takes it over.
    let address = server.address().to_owned();
    drop(server);

    let server = Server::start_at(dir.path(), &address, &[]);
    let alice = server.client("alice");
    let errored = alice.execution(&interrupted).await;
    assert_eq!(errored["status"], "error", "{errored:#}");
    let history = alice.history(&interrupted).await;
    let last = history.last().expect("history");
    assert_eq!(
        (&last["from"], &last["to"], &last["actor"]),
        (&json!("running"), &json!("error"), &json!("runner")),
        "{history:#?}"
    );
    let retry_id = errored["retried_by"]
        .as_str()
        .unwrap_or_else(|| panic!("an automatic retry follows: {errored:#}"))
        .to_owned();

    let retried = alice.wait_terminal(&retry_id).await;
    assert_eq!(retried["status"], "passed", "{retried:#}");
    assert_eq!(retried["attempt"], 2);
    assert_eq!(retried["retry_of"], json!(interrupted));

    let quick = alice.wait_terminal(&waiting).await;
    assert_eq!(
        quick["status"], "passed",
        "the queued run is run after the restart: {quick:#}"
    );
    let actors: Vec<Value> = alice
        .history(&waiting)
        .await
        .iter()
        .map(|h| h["actor"].clone())
        .collect();
    assert_eq!(
        actors,
        [json!("user:alice"), json!("runner"), json!("runner")]
    );
}

#[tokio::test]
async fn deadlines_and_idempotency_keys_survive_sigkill() {
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("forgotten", 2)).await;
    let key = [("Idempotency-Key", "crash-key")];
    let started = alice
        .post_with(
            "/executions/case",
            json!({"test_case_id": case_id, "config": {"timeout_s": 1}}),
            &key,
        )
        .await
        .expect(202, "start with a key");
    let id = id_of(&started);
    server.kill_hard();
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let again = alice
        .post_with(
            "/executions/case",
            json!({"test_case_id": case_id, "config": {"timeout_s": 1}}),
            &key,
        )
        .await
        .expect(200, "the same key after a restart");
    assert_eq!(again["id"], json!(id));
    let done = alice
        .wait_until(&id, Duration::from_secs(8), "the deadline passes", |e| {
            e["status"] != "queued"
        })
        .await;
    assert_eq!(done["status"], "timed_out", "{done:#}");
    let history = alice.history(&id).await;
    assert_eq!(history.last().unwrap()["actor"], "engine:timeout-sweep");
}

#[tokio::test]
async fn sigkill_in_the_middle_of_concurrent_batches_keeps_them_atomic() {
    const STEPS: usize = 400;
    const BATCH: usize = 5;
    const BATCHES: usize = STEPS / BATCH;
    const REPORTERS: usize = 8;
    const KILL_AFTER: usize = 30;
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("torn", STEPS)).await;
    let id = id_of(&alice.start_case(&case_id, None).await);

    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for reporter in 0..REPORTERS {
        let (alice, id, acked) = (alice.clone(), id.clone(), Arc::clone(&acked));
        tasks.spawn(async move {
            for batch in (reporter..BATCHES).step_by(REPORTERS) {
                let steps: Vec<Value> = (batch * BATCH..(batch + 1) * BATCH)
                    .map(report_for)
                    .collect();
                let sent = alice
                    .try_send(
                        reqwest::Method::POST,
                        &format!("/executions/{id}/steps"),
                        Some(json!({ "steps": steps })),
                        &[],
                    )
                    .await;
                match sent {
                    Ok(resp) if resp.status == 200 => acked.lock().unwrap().push(batch),
                    Ok(resp) => panic!("batch {batch}: HTTP {} {}", resp.status, resp.text),
                    // The server was killed under this request: it was never acknowledged.
                    Err(_) => return,
                }
            }
        });
    }
    let deadline = Instant::now() + POLL_DEADLINE;
    while acked.lock().unwrap().len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "reports are too slow");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Killed while other batches are in flight.
    server.kill_hard();
    let acked_at_kill: Vec<usize> = acked.lock().unwrap().clone();
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a reporter task");
    }
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let steps = alice.all_steps(&id, 1000).await;
    assert_eq!(steps.len(), STEPS);
    let mut present = 0;
    for batch in 0..BATCHES {
        let range = batch * BATCH..(batch + 1) * BATCH;
        let reported = steps[range.clone()]
            .iter()
            .filter(|s| s["status"] != "pending")
            .count();
        assert!(
            reported == 0 || reported == BATCH,
            "batch {batch} is torn: {reported} of {BATCH} steps stored: {:#?}",
            &steps[range]
        );
        if acked_at_kill.contains(&batch) {
            assert_eq!(reported, BATCH, "acknowledged batch {batch} was lost");
        }
        if reported == BATCH {
            assert_steps_as_reported_from(&steps[range], batch * BATCH);
        }
        present += reported;
    }
    eprintln!(
        "{} batches acknowledged before the kill, {} stored after the restart",
        acked_at_kill.len(),
        present / BATCH
    );
    assert!(present >= acked_at_kill.len() * BATCH);
    let trace = alice.execution(&id).await;
    assert_eq!(trace["status"], "running");
    assert_eq!(
        trace["progress"]["completed"],
        json!(present),
        "progress agrees with the stored steps: {trace:#}"
    );
    assert_log_agrees(&alice, &id, &steps).await;
}

/// The event log after a crash agrees with the trace: gap-free, its transitions the
/// history's, and one entry for each stored step with its status (and none for the rest).
async fn assert_log_agrees(alice: &Api, id: &str, steps: &[Value]) {
    let mut log: Vec<Value> = Vec::new();
    loop {
        let after = log.last().map_or(0, |e| e["seq"].as_u64().expect("seq"));
        let page = alice
            .get(&format!("/executions/{id}/events?after={after}&limit=500"))
            .await
            .expect(200, "the log");
        let items = page["items"].as_array().expect("items").clone();
        if items.is_empty() {
            break;
        }
        log.extend(items);
    }
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry["seq"], json!(i + 1), "gap-free: {entry}");
    }
    let transitions: Vec<(Value, Value)> = log
        .iter()
        .filter(|e| e["type"] == "status")
        .map(|e| (e["data"]["from"].clone(), e["data"]["to"].clone()))
        .collect();
    let history: Vec<(Value, Value)> = alice
        .history(id)
        .await
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone()))
        .collect();
    assert_eq!(transitions, history);
    let mut logged: Vec<(u64, Value)> = log
        .iter()
        .filter(|e| e["type"] == "step")
        .map(|e| {
            (
                e["data"]["index"].as_u64().expect("index"),
                e["data"]["status"].clone(),
            )
        })
        .collect();
    logged.sort_by_key(|(index, _)| *index);
    let stored: Vec<(u64, Value)> = steps
        .iter()
        .filter(|s| s["status"] != "pending")
        .map(|s| (s["index"].as_u64().expect("index"), s["status"].clone()))
        .collect();
    assert_eq!(logged, stored, "one entry per stored step");
}

/// Like [`assert_steps_as_reported`] for a slice starting at step `first`.
fn assert_steps_as_reported_from(steps: &[Value], first: usize) {
    for (offset, step) in steps.iter().enumerate() {
        let i = first + offset;
        assert_eq!(step["index"], json!(i), "{step}");
        assert_eq!(step["status"], status_for(i), "step {i}: {step}");
        assert_eq!(step["message"], json!(format!("message {i}")), "{step}");
        assert_eq!(step["output"], json!(format!("output {i}")), "{step}");
    }
}

/// Completes racing a SIGKILL: after the restart, the case's analytics count exactly the
/// executions that are stored finished (none twice, none lost), acknowledged or not.
#[tokio::test]
async fn sigkill_in_the_middle_of_completes_keeps_rollups_exact() {
    const EXECUTIONS: usize = 60;
    const WORKERS: usize = 6;
    const KILL_AFTER: usize = 20;
    let dir = TempDir::new().expect("a temp data dir");
    let mut server = Server::start(dir.path());
    let alice = server.client("alice");
    let case_id = alice.create_case(external_case("counted", 1)).await;
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        let id = id_of(&alice.start_case(&case_id, None).await);
        let status = if i % 3 == 0 { "failed" } else { "passed" };
        alice
            .report(&id, json!([{"index": 0, "status": status}]))
            .await;
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (alice, ids, acked) = (alice.clone(), Arc::clone(&ids), Arc::clone(&acked));
        tasks.spawn(async move {
            for n in (worker..EXECUTIONS).step_by(WORKERS) {
                let path = format!("/executions/{}/complete", ids[n]);
                match alice
                    .try_send(reqwest::Method::POST, &path, None, &[])
                    .await
                {
                    Ok(resp) if resp.status == 200 => acked.lock().unwrap().push(n),
                    Ok(resp) => panic!("complete {n}: HTTP {} {}", resp.status, resp.text),
                    Err(_) => return,
                }
            }
        });
    }
    let deadline = Instant::now() + POLL_DEADLINE;
    while acked.lock().unwrap().len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "completes are too slow");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill_hard();
    let acked_at_kill = acked.lock().unwrap().clone();
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a worker task");
    }
    drop(server);

    let server = Server::start(dir.path());
    let alice = server.client("alice");
    let (mut passed, mut failed) = (0u64, 0u64);
    for (n, id) in ids.iter().enumerate() {
        let status = alice.execution(id).await["status"].clone();
        match status.as_str() {
            Some("passed") => passed += 1,
            Some("failed") => failed += 1,
            _ => assert!(
                !acked_at_kill.contains(&n),
                "acknowledged complete {n} was lost"
            ),
        }
    }
    let analytics = alice
        .get(&format!("/analytics/test-cases/{case_id}"))
        .await
        .expect(200, "analytics");
    eprintln!(
        "{} completes acknowledged before the kill, {} stored finished after the restart",
        acked_at_kill.len(),
        passed + failed
    );
    assert!(passed + failed >= acked_at_kill.len() as u64);
    assert_eq!(
        analytics["executions"],
        json!(passed + failed),
        "{analytics:#}"
    );
    assert_eq!(analytics["passed"], json!(passed), "{analytics:#}");
    assert_eq!(analytics["failed"], json!(failed), "{analytics:#}");
}
