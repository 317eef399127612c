//! Watching an execution live over the real server: a Server-Sent Events client dropped and
//! reconnected (with `Last-Event-ID`) 100 times while concurrent reporters report a 200-step
//! execution receives every entry exactly once, in order, with no gap, and the entries agree
//! with the trace.

use rand::Rng;
use runledger_testkit::server::Server;
use runledger_testkit::sse::EventStream;
use runledger_testkit::tokens::mint_token;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const STEPS: usize = 200;
const REPORTERS: usize = 4;
const DROPS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_with_nothing_missed_or_repeated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let api = server.client("watcher");
    let token = mint_token("watcher", false);
    let steps: Vec<Value> = (0..STEPS)
        .map(|i| json!({"name": format!("step {i}"), "action": "external"}))
        .collect();
    let case = api
        .create_case(json!({"name": "watched live", "steps": steps}))
        .await;
    let execution = api.start_case(&case, None).await;
    let id = execution["id"].as_str().expect("an id").to_owned();
    let url = format!("{}/executions/{id}/events", server.api_url);

    let mut reporters = tokio::task::JoinSet::new();
    for reporter in 0..REPORTERS {
        let (api, id) = (api.clone(), id.clone());
        reporters.spawn(async move {
            for index in (reporter..STEPS).step_by(REPORTERS) {
                let status = if index % 17 == 5 { "failed" } else { "passed" };
                let body = json!({"steps": [{"index": index, "status": status}]});
                api.post(&format!("/executions/{id}/steps"), body)
                    .await
                    .expect(200, "a step report");
                // Paced, so the watcher drops and reconnects while the execution runs.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
    }
    let running = Arc::new(AtomicBool::new(true));
    let finisher = {
        let (api, id, running) = (api.clone(), id.clone(), Arc::clone(&running));
        tokio::spawn(async move {
            while let Some(done) = reporters.join_next().await {
                done.expect("a reporter");
            }
            running.store(false, Ordering::SeqCst);
            api.post_empty(&format!("/executions/{id}/complete"))
                .await
                .expect(200, "complete");
        })
    };

    runledger::crypto::install();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut received: Vec<Value> = Vec::new();
    let (mut drops, mut drops_while_running, mut ended) = (0, 0, false);
    let mut rng = rand::rng();
    while !ended {
        let last = received.last().map(|e| e["seq"].as_u64().expect("seq"));
        let mut stream = EventStream::open(&client, &url, &token, last)
            .await
            .expect("the stream opens");
        // Drop after a few entries, until 100 drops; then read to the end.
        let mut keep = if drops < DROPS {
            rng.random_range(1..=2)
        } else {
            usize::MAX
        };
        loop {
            let Some(sent) = stream
                .next(Duration::from_secs(30))
                .await
                .expect("an event")
            else {
                break;
            };
            if sent.event.as_deref() == Some("end") {
                ended = true;
                break;
            }
            let entry: Value = serde_json::from_str(&sent.data).expect("an entry");
            assert_eq!(sent.id.as_deref(), Some(entry["seq"].to_string().as_str()));
            assert_eq!(sent.event.as_deref(), entry["type"].as_str());
            received.push(entry);
            keep -= 1;
            if keep == 0 {
                drops += 1;
                if running.load(Ordering::SeqCst) {
                    drops_while_running += 1;
                }
                break;
            }
        }
    }
    finisher.await.expect("the reports");
    assert!(drops >= DROPS, "dropped {drops} times");
    assert!(
        drops_while_running >= DROPS / 2,
        "only {drops_while_running} drops while the reporters ran"
    );

    // Every seq once, in order, from 1 with no gap.
    for (i, entry) in received.iter().enumerate() {
        assert_eq!(entry["seq"], i as u64 + 1, "gap or repeat at {i}");
    }
    // What the log says agrees with the trace: the start and the end, each step's status.
    let trace = api.execution(&id).await;
    let statuses: Vec<&Value> = received
        .iter()
        .filter(|e| e["type"] == "status")
        .map(|e| &e["data"]["to"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("queued"), &json!("running"), &trace["status"]]
    );
    assert_eq!(trace["status"], "failed");
    let mut logged: BTreeMap<u64, Value> = BTreeMap::new();
    for entry in received.iter().filter(|e| e["type"] == "step") {
        let index = entry["data"]["index"].as_u64().expect("index");
        assert!(
            logged
                .insert(index, entry["data"]["status"].clone())
                .is_none(),
            "step {index} twice"
        );
    }
    assert_eq!(logged.len(), STEPS);
    let mut cursor: Option<String> = None;
    let mut stored = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/executions/{id}/steps?limit=100&cursor={c}"),
            None => format!("/executions/{id}/steps?limit=100"),
        };
        let page = api.get(&path).await.expect(200, "steps");
        for step in page["items"].as_array().expect("items") {
            let index = step["index"].as_u64().expect("index");
            assert_eq!(logged[&index], step["status"], "step {index}");
            stored += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(stored, STEPS);
    let last = received.last().expect("entries");
    assert_eq!(
        last["data"]["to"], "failed",
        "the terminal entry is the last"
    );
}
