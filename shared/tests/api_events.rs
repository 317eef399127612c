//! `GET /executions/{id}/events` through the router: the JSON long poll (at once, waiting,
//! woken by the commit), a finished execution's stream (replayed, then `end`), and refusals;
//! and the engine's log readers under it: those that keep up take new entries from the commit
//! that wrote them (no store read), a commit that woke no one is still read, and readers
//! falling behind while two engines write the log at once get all of it, once, in order.

use http::{Method, StatusCode};
use runledger::domain::analytics::Rollup;
use runledger::domain::catalog::{CatalogKind, TestCase};
use runledger::domain::errors::StoreError;
use runledger::domain::execution::{Execution, HistoryEntry, StepReport, StepResult};
use runledger::domain::log::LogEntry;
use runledger::domain::quarantine::{CaseHistoryEntry, Quarantine};
use runledger::domain::time::Timestamp;
use runledger::domain::workflow::{ChangeSet, WorkflowError};
use runledger::engine::{Caller, Engine, LogQuery};
use runledger::ports::{
    CatalogQuery, CatalogRecord, ChildrenQuery, ExecutionQuery, ExecutionStore, OwnerScope, Page,
    Plan, PlanSize, StepsQuery,
};
use runledger_testkit::api::Api;
use runledger_testkit::sse::Sent;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn events(id: &str, query: &str) -> String {
    format!("/api/v1/executions/{id}/events{query}")
}

fn seqs(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

fn parse_stream(text: &str) -> (Vec<Sent>, usize) {
    runledger_testkit::sse::parse(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_at_once_or_when_the_change_commits() {
    let api = Arc::new(Api::new());
    let token = api.token("watcher");
    let case = api.create_external_case(&token, "watched", 2).await;
    let id = api.start_case(&token, &case).await;

    let first = api.get(&events(&id, ""), &token).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let page = first.json();
    assert_eq!(seqs(&page), vec![1]);
    assert_eq!(page["items"][0]["type"], "status");
    assert_eq!(page["items"][0]["data"]["to"], "queued");
    assert_eq!(page["last_seq"], 1);
    assert_eq!(page["terminal"], false);

    // Nothing new: an empty answer after the wait, with the reader's own position.
    let began = Instant::now();
    let empty = api
        .get(&events(&id, "?after=1&wait=1"), &token)
        .await
        .json();
    assert!(began.elapsed() >= Duration::from_millis(900), "it waited");
    assert_eq!(seqs(&empty), Vec::<u64>::new());
    assert_eq!(empty["last_seq"], 1);

    // A waiting poll is answered as soon as a report commits, not at the end of its wait.
    let (poller, poll_id, poll_token) = (Arc::clone(&api), id.clone(), token.clone());
    let waiting = tokio::spawn(async move {
        let began = Instant::now();
        let reply = poller
            .get(&events(&poll_id, "?after=1&wait=20"), &poll_token)
            .await;
        (reply.json(), began.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"steps": [{"index": 1, "status": "failed", "message": "boom"}]});
    let reported = api
        .post(&format!("/api/v1/executions/{id}/steps"), &token, &body)
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.text());
    let (page, took) = waiting.await.expect("the poll");
    assert!(
        took < Duration::from_secs(5),
        "woken by the commit, took {took:?}"
    );
    assert_eq!(seqs(&page), vec![2, 3], "{page}");
    assert_eq!(page["items"][0]["data"]["to"], "running");
    assert_eq!(page["items"][1]["type"], "step");
    assert_eq!(page["items"][1]["data"]["index"], 1);
    assert_eq!(page["items"][1]["data"]["message"], "boom");
    assert_eq!(page["items"][1]["data"]["progress"]["failed"], 1);

    let done = api
        .post_empty(&format!("/api/v1/executions/{id}/complete"), &token)
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let page = api
        .get(&events(&id, "?after=3&limit=1"), &token)
        .await
        .json();
    assert_eq!(seqs(&page), vec![4], "limit caps the page");
    assert_eq!(page["terminal"], false);
    let page = api.get(&events(&id, "?after=4"), &token).await.json();
    assert_eq!(
        page["items"][page["items"].as_array().unwrap().len() - 1]["data"]["to"],
        "failed"
    );
    assert_eq!(page["terminal"], true);
    let last = page["last_seq"].as_u64().unwrap();
    let after_end = api
        .get(&events(&id, &format!("?after={last}&wait=5")), &token)
        .await
        .json();
    assert_eq!(seqs(&after_end), Vec::<u64>::new());
    assert_eq!(after_end["terminal"], true, "at once: nothing will follow");
}

#[tokio::test]
async fn a_finished_executions_stream_replays_resumes_and_ends() {
    let api = Api::new();
    let token = api.token("streamer");
    let case = api.create_external_case(&token, "streamed", 3).await;
    let id = api.start_case(&token, &case).await;
    let body =
        json!({"steps": [{"index": 0, "status": "passed"}, {"index": 2, "status": "passed"}]});
    api.post(&format!("/api/v1/executions/{id}/steps"), &token, &body)
        .await;
    api.post_empty(&format!("/api/v1/executions/{id}/complete"), &token)
        .await;
    let json_log = api.get(&events(&id, "?limit=500"), &token).await.json();
    let total = seqs(&json_log).len() as u64;
    assert_eq!(
        total, 6,
        "queued, running, 2 steps, 1 skipped, passed: {json_log}"
    );

    let bearer = format!("Bearer {token}");
    let stream = |extra: Vec<(&'static str, String)>, query: String| {
        let (id, bearer) = (id.clone(), bearer.clone());
        let api = &api;
        async move {
            let mut headers: Vec<(&str, Vec<u8>)> = vec![
                ("authorization", bearer.into_bytes()),
                ("accept", b"text/event-stream".to_vec()),
            ];
            headers.extend(extra.into_iter().map(|(n, v)| (n, v.into_bytes())));
            let headers: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let reply = api
                .raw(Method::GET, &events(&id, &query), &headers, "")
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(reply.header("content-type"), Some("text/event-stream"));
            parse_stream(&reply.text()).0
        }
    };
    let all = stream(vec![], String::new()).await;
    assert_eq!(
        all.len() as u64,
        total + 1,
        "every entry, then end: {all:#?}"
    );
    for (i, sent) in all.iter().take(total as usize).enumerate() {
        let entry: Value = serde_json::from_str(&sent.data).expect("an entry as JSON");
        assert_eq!(sent.id.as_deref(), Some((i + 1).to_string().as_str()));
        assert_eq!(sent.event.as_deref(), entry["type"].as_str());
        assert_eq!(
            entry, json_log["items"][i],
            "the same entry as the long poll"
        );
    }
    let end = all.last().unwrap();
    assert_eq!(end.event.as_deref(), Some("end"));
    assert_eq!(end.id, None);

    let resumed = stream(vec![("last-event-id", "4".into())], String::new()).await;
    let ids: Vec<_> = resumed.iter().filter_map(|s| s.id.clone()).collect();
    assert_eq!(ids, ["5", "6"], "Last-Event-ID resumes after that entry");
    let by_query = stream(vec![], "?after=5".into()).await;
    assert_eq!(by_query.len(), 2, "?after= resumes too: {by_query:#?}");
    let header_wins = stream(vec![("last-event-id", "6".into())], "?after=1".into()).await;
    assert_eq!(header_wins.len(), 1, "nothing after the last, then end");
    assert_eq!(header_wins[0].event.as_deref(), Some("end"));
}

#[tokio::test]
async fn the_log_is_owner_only_and_its_query_is_checked() {
    let api = Api::new();
    let token = api.token("owner");
    let case = api.create_external_case(&token, "private", 1).await;
    let id = api.start_case(&token, &case).await;

    let other = api.get(&events(&id, ""), &api.token("someone-else")).await;
    other.problem(StatusCode::NOT_FOUND, "execution_not_found");
    let stranger_stream = api
        .raw(
            Method::GET,
            &events(&id, ""),
            &[
                (
                    "authorization",
                    format!("Bearer {}", api.token("x")).as_bytes(),
                ),
                ("accept", b"text/event-stream"),
            ],
            "",
        )
        .await;
    stranger_stream.problem(StatusCode::NOT_FOUND, "execution_not_found");
    let admin = api.get(&events(&id, ""), &api.admin_token("root")).await;
    assert_eq!(admin.status, StatusCode::OK);
    let anonymous = api.send(Method::GET, &events(&id, ""), None, "").await;
    anonymous.unauthorized("unauthenticated");
    let missing = api
        .get(&events("ex_01M8SJJG4YV5PY929S776N67E2", ""), &token)
        .await;
    missing.problem(StatusCode::NOT_FOUND, "execution_not_found");

    for (query, field) in [
        ("?wait=26", "wait"),
        ("?wait=-1", "wait"),
        ("?after=abc", "after"),
        ("?after=1.5", "after"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?since=1", "since"),
    ] {
        let reply = api.get(&events(&id, query), &token).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text()
        );
        assert!(reply.text().contains(field), "{query}: {}", reply.text());
    }
    let bad_resume = api
        .raw(
            Method::GET,
            &events(&id, ""),
            &[
                ("authorization", format!("Bearer {token}").as_bytes()),
                ("accept", b"text/event-stream"),
                ("last-event-id", b"seven"),
            ],
            "",
        )
        .await;
    assert_eq!(
        bad_resume.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_resume.text()
    );
}

#[tokio::test]
async fn a_stream_closes_itself_at_the_hosts_time_limit_between_events() {
    use runledger::api::{RouteGroup, Router};
    use runledger_testkit::stores::{engine_over, in_memory};
    use runledger_testkit::tokens::authenticator;
    // As the stream function hosts it: streams on, closed after a limit (1 s here).
    const EVERY_GROUP: u16 = RouteGroup::set(&RouteGroup::ALL);
    let router = Router::streaming_of::<EVERY_GROUP>(
        engine_over(in_memory()),
        Arc::new(authenticator()),
        Duration::from_secs(1),
    );
    let api = Api { router };
    let token = api.token("streamer");
    let case = api.create_external_case(&token, "open-ended", 2).await;
    let id = api.start_case(&token, &case).await;
    let bearer = format!("Bearer {token}");
    let headers: [(&str, &[u8]); 2] = [
        ("authorization", bearer.as_bytes()),
        ("accept", b"text/event-stream"),
    ];
    let began = Instant::now();
    let reply = api.raw(Method::GET, &events(&id, ""), &headers, "").await;
    let took = began.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // What was there, and no `end`: the execution goes on, the client resumes.
    let (sent, _) = parse_stream(&reply.text());
    let ids: Vec<_> = sent.iter().map(|s| s.id.as_deref()).collect();
    assert_eq!(ids, [Some("1")], "{sent:#?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

/// The embedded store, counting the reads of its event logs.
struct CountingStore {
    inner: Arc<dyn ExecutionStore>,
    log_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl ExecutionStore for CountingStore {
    async fn insert_catalog(&self, record: &CatalogRecord) -> Result<(), StoreError> {
        self.inner.insert_catalog(record).await
    }
    async fn replace_catalog(
        &self,
        record: &CatalogRecord,
        version: u64,
    ) -> Result<(), StoreError> {
        self.inner.replace_catalog(record, version).await
    }
    async fn get_catalog(&self, kind: CatalogKind, id: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_catalog(kind, id).await
    }
    async fn delete_catalog(&self, kind: CatalogKind, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_catalog(kind, id).await
    }
    async fn list_catalog(
        &self,
        kind: CatalogKind,
        query: &CatalogQuery,
    ) -> Result<Page<String>, StoreError> {
        self.inner.list_catalog(kind, query).await
    }
    async fn apply(
        &self,
        now: Timestamp,
        plan: Plan,
        size: PlanSize,
    ) -> Result<ChangeSet, WorkflowError> {
        self.inner.apply(now, plan, size).await
    }
    fn max_steps_per_change(&self) -> usize {
        self.inner.max_steps_per_change()
    }
    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.inner.get_execution(id).await
    }
    async fn get_definition(&self, id: &str) -> Result<Option<TestCase>, StoreError> {
        self.inner.get_definition(id).await
    }
    async fn list_steps(&self, query: &StepsQuery) -> Result<Vec<StepResult>, StoreError> {
        self.inner.list_steps(query).await
    }
    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.history(id).await
    }
    async fn events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.log_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.events(id, after, limit).await
    }
    async fn sync_log(&self) -> Result<(), StoreError> {
        self.inner.sync_log().await
    }
    fn log_poll_interval(&self) -> Duration {
        self.inner.log_poll_interval()
    }
    fn log_written_with_change(&self) -> bool {
        self.inner.log_written_with_change()
    }
    async fn list_executions(&self, query: &ExecutionQuery) -> Result<Page<Execution>, StoreError> {
        self.inner.list_executions(query).await
    }
    async fn list_children(&self, query: &ChildrenQuery) -> Result<Page<Execution>, StoreError> {
        self.inner.list_children(query).await
    }
    async fn overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.overdue(now, limit).await
    }
    async fn active(&self, limit: usize) -> Result<Vec<Execution>, StoreError> {
        self.inner.active(limit).await
    }

    async fn current_rollup(&self, test_id: &str) -> Result<Option<Rollup>, StoreError> {
        self.inner.current_rollup(test_id).await
    }

    async fn rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError> {
        self.inner.rollups(test_id, since, until).await
    }

    async fn flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError> {
        self.inner.flaky(owner, limit, after).await
    }

    async fn put_quarantine(
        &self,
        quarantine: &Quarantine,
        entry: &CaseHistoryEntry,
    ) -> Result<(), StoreError> {
        self.inner.put_quarantine(quarantine, entry).await
    }

    async fn lift_quarantine(
        &self,
        test_case_id: &str,
        entry: &CaseHistoryEntry,
    ) -> Result<bool, StoreError> {
        self.inner.lift_quarantine(test_case_id, entry).await
    }

    async fn get_quarantine(&self, test_case_id: &str) -> Result<Option<Quarantine>, StoreError> {
        self.inner.get_quarantine(test_case_id).await
    }

    async fn list_quarantines(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, StoreError> {
        self.inner.list_quarantines(owner, limit, after).await
    }

    async fn case_history(&self, test_case_id: &str) -> Result<Vec<CaseHistoryEntry>, StoreError> {
        self.inner.case_history(test_case_id).await
    }
}

/// Follows `id`'s log the way a stream does (one read after another, each waiting), until its
/// terminal entry; sends each page's last seq on `progress`.
fn follow(
    engine: &Engine,
    id: &str,
    progress: tokio::sync::mpsc::UnboundedSender<u64>,
) -> tokio::task::JoinHandle<Vec<LogEntry>> {
    let (engine, id) = (engine.clone(), id.to_owned());
    tokio::spawn(async move {
        let reader = engine
            .log_reader(&Caller::user("watcher"), &id)
            .await
            .expect("a reader");
        let mut entries: Vec<LogEntry> = Vec::new();
        loop {
            let after = entries.last().map_or(0, |e| e.seq);
            let query = LogQuery {
                after,
                limit: 500,
                wait: Duration::from_secs(20),
            };
            let page = reader.read(query).await.expect("a read");
            entries.extend(page.items);
            let _ = progress.send(page.last_seq);
            if page.terminal {
                return entries;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_keeping_up_take_each_new_entry_without_reading_the_store() {
    let store = Arc::new(CountingStore {
        inner: runledger_testkit::stores::in_memory(),
        log_reads: AtomicUsize::new(0),
    });
    let api = Api::over(store.clone());
    let token = api.token("watcher");
    let case = api.create_external_case(&token, "followed", 20).await;
    let id = api.start_case(&token, &case).await;
    let engine = api.router.engine().clone();
    // Three readers of one log, each caught up (at the start entry) before the reports.
    let mut followers = Vec::new();
    for _ in 0..3 {
        let (progress, mut seen) = tokio::sync::mpsc::unbounded_channel();
        followers.push((follow(&engine, &id, progress), {
            assert_eq!(seen.recv().await, Some(1));
            seen
        }));
    }
    let before = store.log_reads.load(Ordering::SeqCst);
    for index in 0..20 {
        let body = json!({"steps": [{"index": index, "status": "passed"}]});
        let reply = api
            .post(&format!("/api/v1/executions/{id}/steps"), &token, &body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        // Queued is entry 1, running 2 (with the first report): step `index` is `index + 3`.
        let seq = index + 3;
        for (_, seen) in &mut followers {
            while seen.recv().await.expect("a follower") < seq {}
        }
    }
    // None at all, but for the timed poll (a read each second of waiting) on a slow machine;
    // reading the store for each entry would be 3 readers x 20 entries.
    let reads = store.log_reads.load(Ordering::SeqCst) - before;
    assert!(
        reads < 10,
        "readers that keep up take each entry from the commit that wrote it, not the store: \
         {reads} reads"
    );
    let done = api
        .post_empty(&format!("/api/v1/executions/{id}/complete"), &token)
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let log = store.inner.events(&id, 0, 500).await.expect("the log");
    assert_eq!(log.len(), 23, "queued, running, 20 steps, passed");
    for (follower, _) in followers {
        let entries = follower.await.expect("a follower");
        assert_eq!(
            entries, log,
            "every entry once, in order, as the store has it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_woke_no_reader_is_still_read_within_the_poll_interval() {
    let store = runledger_testkit::stores::in_memory();
    let api = Api::over(Arc::clone(&store));
    let token = api.token("watcher");
    let case = api.create_external_case(&token, "unannounced", 2).await;
    let id = api.start_case(&token, &case).await;
    let (progress, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let follower = follow(api.router.engine(), &id, progress);
    assert_eq!(seen.recv().await, Some(1));
    // Another engine over the same store commits, and wakes none of this one's readers (as a
    // request dropped between its commit and its wake-up would not).
    let other = runledger_testkit::stores::engine_over(store);
    let report: StepReport =
        serde_json::from_value(json!({"index": 0, "status": "passed"})).expect("a report");
    let began = Instant::now();
    other
        .report_steps(&Caller::user("watcher"), &id, vec![report])
        .await
        .expect("the report");
    assert_eq!(seen.recv().await, Some(3), "running, then the step");
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "read by the poll (every 1 s), took {took:?}"
    );
    other
        .complete(&Caller::user("watcher"), &id)
        .await
        .expect("complete");
    let entries = follower.await.expect("the follower");
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "the skipped step and the end too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_every_entry_once_while_two_engines_report_at_once() {
    // Engine `a` wakes its own readers; `b` writes to the same store and wakes none of them,
    // as another process would, or a request dropped between its commit and its wake-up.
    const STEPS: usize = 60;
    let store = runledger_testkit::stores::in_memory();
    let api = Api::over(Arc::clone(&store));
    let token = api.token("watcher");
    let case = api.create_external_case(&token, "contended", STEPS).await;
    let id = api.start_case(&token, &case).await;
    let a = api.router.engine().clone();
    let b = runledger_testkit::stores::engine_over(Arc::clone(&store));
    let mut followers = Vec::new();
    for _ in 0..4 {
        let (progress, mut seen) = tokio::sync::mpsc::unbounded_channel();
        followers.push(follow(&a, &id, progress));
        assert_eq!(
            seen.recv().await,
            Some(1),
            "each reader is at the start entry"
        );
        // The rest of its progress is not waited for: the readers fall behind and catch up.
        tokio::spawn(async move { while seen.recv().await.is_some() {} });
    }
    let mut reporters = tokio::task::JoinSet::new();
    for reporter in 0..4 {
        // One reporter in four goes through `b`.
        let engine = if reporter == 3 { b.clone() } else { a.clone() };
        let id = id.clone();
        reporters.spawn(async move {
            for index in (reporter..STEPS).step_by(4) {
                let report: StepReport =
                    serde_json::from_value(json!({"index": index, "status": "passed"}))
                        .expect("a report");
                engine
                    .report_steps(&Caller::user("watcher"), &id, vec![report])
                    .await
                    .expect("the report");
            }
        });
    }
    while let Some(done) = reporters.join_next().await {
        done.expect("a reporter");
    }
    a.complete(&Caller::user("watcher"), &id)
        .await
        .expect("complete");
    let log = store.events(&id, 0, 500).await.expect("the log");
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=STEPS as u64 + 3).collect::<Vec<_>>(),
        "queued, running, a step each, passed: no gap"
    );
    for follower in followers {
        let entries = tokio::time::timeout(Duration::from_secs(20), follower)
            .await
            .expect("every follower reaches the end")
            .expect("a follower");
        assert_eq!(
            entries, log,
            "every entry once, in order, as the store has it"
        );
    }
}
