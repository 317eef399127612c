//! Parallel reporting against the DynamoDB store on the emulator (moto with atomic writes, as
//! on AWS), through the HTTP routes: a CI pipeline's workers reporting steps of one execution
//! at once, and a wide suite's children finishing together. Every request must be answered
//! `2xx`, the counts must be exact, and 20 reporters must take no longer than one.

use aws_sdk_dynamodb::config::SharedInterceptor;
use http::StatusCode;
use runledger::aws::metrics::RequestCounter;
use runledger_testkit::api::Api;
use runledger_testkit::interceptors::RoundTrip;
use runledger_testkit::stores::{dynamo_table, dynamo_table_with};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPORTERS: usize = 20;

/// A DynamoDB request's time as a Lambda function sees it, at the slow end: the emulator
/// waits this long before answering each request of the timed test, so that the test
/// measures whether reporters wait for each other, not how fast moto is. (moto also spends
/// tens of milliseconds of its own on each write, one write at a time, which DynamoDB does
/// not: the measured ratio is an upper bound.)
const ROUND_TRIP: Duration = Duration::from_millis(20);

/// The tests here time the emulator: one at a time, so neither measures the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reports every step of a fresh `steps`-step execution, one step a request, from `reporters`
/// concurrent reporters; returns the execution's trace, how long the reports took, and how
/// many DynamoDB writes they made (a lost race shows as a write more: the failed one).
async fn report_all(
    api: &Arc<Api>,
    counter: &RequestCounter,
    case_id: &str,
    steps: usize,
    reporters: usize,
) -> (Value, Duration, u64) {
    let token = api.token("ci");
    let id = api.start_case(&token, case_id).await;
    counter.take();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for reporter in 0..reporters {
        let (api, id, token) = (Arc::clone(api), id.clone(), token.clone());
        tasks.spawn(async move {
            for index in (reporter..steps).step_by(reporters) {
                let status = if index % 10 == 3 { "failed" } else { "passed" };
                let body = json!({"steps": [{"index": index, "status": status, "duration_ms": 5}]});
                let reply = api
                    .post(&format!("/api/v1/executions/{id}/steps"), &token, &body)
                    .await;
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "step {index}: {}",
                    reply.text()
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("reporter");
    }
    let took = started.elapsed();
    let requests = counter
        .take()
        .into_iter()
        .filter(|((service, operation), _)| {
            service == "DynamoDB"
                && [
                    "PutItem",
                    "UpdateItem",
                    "DeleteItem",
                    "TransactWriteItems",
                    "BatchWriteItem",
                ]
                .contains(&operation.as_str())
        })
        .map(|(_, n)| n)
        .sum();
    let trace = api.get(&format!("/api/v1/executions/{id}"), &token).await;
    assert_eq!(trace.status, StatusCode::OK, "{}", trace.text());
    (trace.json(), took, requests)
}

fn assert_exact(trace: &Value, steps: usize) {
    let failed = (0..steps).filter(|i| i % 10 == 3).count() as u64;
    let progress = &trace["progress"];
    assert_eq!(progress["completed"], steps as u64, "{progress}");
    assert_eq!(progress["failed"], failed, "{progress}");
    assert_eq!(progress["passed"], steps as u64 - failed, "{progress}");
    assert_eq!(progress["percent"], 100.0, "{progress}");
    assert_eq!(trace["status"], "running");
}

/// Every step of one execution reported once, one step a request: 40 steps kept inline in the
/// trace, and 100 steps kept as their own items; by one reporter, then by 20 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reporters_on_one_execution_do_not_contend() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // A store whose every DynamoDB request is counted: a lost race would show as more.
    let counter = RequestCounter::new();
    let (_, _, store) = dynamo_table_with(
        "contention",
        vec![
            SharedInterceptor::new(counter.clone()),
            SharedInterceptor::new(RoundTrip(ROUND_TRIP)),
        ],
    )
    .await;
    let api = Arc::new(Api::over(store));
    let token = api.token("ci");
    let mut ratios = Vec::new();
    for steps in [40usize, 100] {
        let case = api
            .create_external_case(&token, "parallel workers", steps)
            .await;
        let (serial, one, serial_requests) = report_all(&api, &counter, &case, steps, 1).await;
        assert_exact(&serial, steps);
        let (parallel, twenty, parallel_requests) =
            report_all(&api, &counter, &case, steps, REPORTERS).await;
        assert_exact(&parallel, steps);
        // No write lost a race: one write a report, however many reporters.
        assert_eq!(
            serial_requests, steps as u64,
            "{steps} steps: writes with 1 reporter"
        );
        assert_eq!(
            parallel_requests, serial_requests,
            "{steps} steps: writes with {REPORTERS} reporters and with 1"
        );
        let ratio = twenty.as_secs_f64() / one.as_secs_f64();
        println!(
            "{steps} steps: 1 reporter {:.2} s, {REPORTERS} reporters {:.2} s (ratio {ratio:.2}), \
             {serial_requests} DynamoDB writes each",
            one.as_secs_f64(),
            twenty.as_secs_f64()
        );
        ratios.push((steps, twenty, one));
    }
    // No report waits for another: each writes its own step, and racing first reports all
    // make the same start (the write counts above prove no lost races). So with a network
    // between reporters and the table, 20 reporters take less time than one (before step
    // writes stopped contending, and with no round trip at all: 7.2x one's time, with 503s).
    for (steps, twenty, one) in ratios {
        assert!(
            twenty <= one,
            "{REPORTERS} reporters took {twenty:?}, one took {one:?} ({steps} steps)"
        );
    }
}

/// 60 children of a parallel suite, each reported and completed, 20 at a time: every request
/// answered, every child counted once, the suite passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wide_suite_finishes_when_its_children_land_together() {
    const CHILDREN: usize = 60;
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_, _, store) = dynamo_table("contention").await;
    let api = Arc::new(Api::over(store));
    let token = api.token("ci");
    let case = api.create_external_case(&token, "shard", 1).await;
    let suite = json!({
        "name": "sharded run",
        "test_case_ids": vec![case.clone(); CHILDREN],
        "mode": "parallel",
        "max_parallel": CHILDREN,
    });
    let suite_id = api
        .post_for_id("/api/v1/test-suites", &token, &suite, StatusCode::CREATED)
        .await;
    let execution = api.start_suite(&token, &suite_id).await;
    let children = api
        .list_ids(
            &format!("/api/v1/executions/{execution}/children?limit=100"),
            &token,
        )
        .await;
    assert_eq!(children.len(), CHILDREN);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..REPORTERS {
        let mine: Vec<String> = children
            .iter()
            .skip(worker)
            .step_by(REPORTERS)
            .cloned()
            .collect();
        let (api, token) = (Arc::clone(&api), token.clone());
        tasks.spawn(async move {
            for child in mine {
                let body = json!({"steps": [{"index": 0, "status": "passed"}]});
                let reply = api
                    .post(&format!("/api/v1/executions/{child}/steps"), &token, &body)
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "report: {}", reply.text());
                let reply = api
                    .post_empty(&format!("/api/v1/executions/{child}/complete"), &token)
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "complete: {}", reply.text());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("worker");
    }
    println!(
        "{CHILDREN} children reported and completed by {REPORTERS} workers in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let trace = api
        .get(&format!("/api/v1/executions/{execution}"), &token)
        .await
        .json();
    assert_eq!(trace["status"], "passed", "{trace}");
    assert_eq!(trace["children"]["total"], CHILDREN as u64, "{trace}");
    assert_eq!(trace["children"]["passed"], CHILDREN as u64, "{trace}");
    let history = api
        .get(&format!("/api/v1/executions/{execution}/history"), &token)
        .await
        .json();
    let finished = history["items"]
        .as_array()
        .expect("history entries")
        .iter()
        .filter(|entry| entry["to"] == "passed")
        .count();
    assert_eq!(finished, 1, "the suite finished once: {history}");
}
