//! `bench --watchers`: Server-Sent Events watchers of the executions' event logs, over the
//! bench's loopback server, timing each step from just before its report is sent (and from
//! its acknowledgement) to the moment each watcher of its execution has its entry, and
//! checking that every watcher gets every entry of its execution exactly once, in order.

use super::{Client, percentile_ms};
use runledger::domain::log::LogEvent;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Connections opened at once while the watchers connect (under the listener's backlog).
const OPENING_AT_ONCE: usize = 64;
/// How long all watchers may take to connect and read their first entry.
const OPEN_TIME: Duration = Duration::from_secs(60);
/// How long after the last execution completed every watcher must have had `end`.
const END_TIME: Duration = Duration::from_secs(30);

/// Who watches what.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchPlan {
    /// Watchers spread over the executions, one each (round robin beyond one per execution).
    pub spread: usize,
    /// Watchers all on the first execution, on top of `spread`.
    pub on_one: usize,
}

impl WatchPlan {
    /// `--watchers` in all, `--watchers-on-one` of them (default a tenth, at most 100) on the
    /// first execution.
    pub fn of(args: &super::BenchArgs) -> Result<WatchPlan, String> {
        let on_one = args
            .watchers_on_one
            .unwrap_or((args.watchers / 10).min(100));
        if on_one > args.watchers {
            return Err(format!(
                "--watchers-on-one ({on_one}) is part of --watchers ({}), so at most that",
                args.watchers
            ));
        }
        Ok(WatchPlan {
            spread: args.watchers - on_one,
            on_one,
        })
    }

    pub fn total(&self) -> usize {
        self.spread + self.on_one
    }

    /// The execution (its index among those reported) watcher `n` watches, and whether it is
    /// one of the `on_one` crowd.
    fn target(&self, n: usize, executions: usize) -> (usize, bool) {
        if n < self.spread {
            (n % executions, false)
        } else {
            (0, true)
        }
    }
}

/// When each step's report was about to be sent, and when its acknowledgement came back:
/// nanoseconds after `base`, 0 while not yet.
pub(super) struct SentTimes {
    base: Instant,
    steps: usize,
    at: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
}

impl SentTimes {
    pub fn new(executions: usize, steps: usize) -> Self {
        SentTimes {
            base: Instant::now(),
            steps,
            at: (0..executions * steps).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..executions * steps).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos().max(1) as u64
    }

    pub fn mark(&self, execution: usize, step: usize, at: Instant) {
        self.at[execution * self.steps + step].store(self.nanos(at), Ordering::Relaxed);
    }

    pub fn mark_acked(&self, execution: usize, step: usize, at: Instant) {
        self.acked[execution * self.steps + step].store(self.nanos(at), Ordering::Relaxed);
    }

    /// From the report's send to `received`, and from its acknowledgement (0 if the entry
    /// came first: the server wakes the watchers before it answers); `None` if that step was
    /// never reported.
    fn latency(
        &self,
        execution: usize,
        step: usize,
        received: Instant,
    ) -> Option<(Duration, Duration)> {
        if step >= self.steps {
            return None;
        }
        let n = execution * self.steps + step;
        let sent = self.at.get(n)?.load(Ordering::Relaxed);
        let acked = self.acked.get(n)?.load(Ordering::Relaxed);
        let received = self.nanos(received);
        (sent > 0 && acked > 0).then(|| {
            (
                Duration::from_nanos(received.saturating_sub(sent)),
                Duration::from_nanos(received.saturating_sub(acked)),
            )
        })
    }
}

/// What one watcher received.
struct Received {
    watcher: usize,
    execution: usize,
    on_one: bool,
    /// Every entry's `seq`, in the order received.
    seqs: Vec<u64>,
    /// Every step entry's index and when it arrived.
    steps: Vec<(u32, Instant)>,
    /// The `last_seq` of the `end` event.
    end: Option<u64>,
}

/// The watchers of one run, connected and reading.
pub(super) struct Watching {
    tasks: JoinSet<Result<Received, String>>,
    count: usize,
    thread: WatcherThread,
}

/// The watchers' own runtime, on one thread, as clients elsewhere would be: they take none of
/// the server's worker threads (only its share of the cores), and their CPU time can be told
/// apart from the server's and the reporters'.
struct WatcherThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Its `/proc/<pid>/task/<tid>/stat`, where there is one.
    stat: Option<std::path::PathBuf>,
}

impl WatcherThread {
    fn start() -> Result<WatcherThread, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stat_tx, stat_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-watchers".into())
            .spawn(move || {
                let link = std::fs::read_link("/proc/thread-self").ok();
                let _ =
                    stat_tx.send(link.map(|l| std::path::Path::new("/proc").join(l).join("stat")));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| e.to_string())?;
        let stat = stat_rx.recv().ok().flatten();
        Ok(WatcherThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            stat,
        })
    }
}

impl Drop for WatcherThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One run's watching numbers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watched {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the report's acknowledgement instead (0 for an entry that came before it).
    pub after_ack_p50_ms: f64,
    pub after_ack_p99_ms: f64,
    /// The same for the watchers all on one execution (0 when there are none).
    pub on_one_p50_ms: f64,
    pub on_one_p99_ms: f64,
    pub on_one_max_ms: f64,
    pub delivered: u64,
    pub expected: u64,
}

/// Opens the plan's watchers of `ids` and returns once every one is connected and has read
/// its execution's first entry (so the reports that follow all find them streaming).
pub(super) async fn open(
    client: &Client,
    ids: &Arc<Vec<String>>,
    plan: WatchPlan,
) -> Result<Watching, String> {
    let Some((_, base)) = &client.http else {
        return Err("watchers need the HTTP transport".into());
    };
    // A client of their own: each stream holds its connection, never back in a pool.
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let thread = WatcherThread::start()?;
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (ready, mut readied) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = JoinSet::new();
    for watcher in 0..plan.total() {
        let (execution, on_one) = plan.target(watcher, ids.len());
        let url = format!("{base}/executions/{}/events", ids[execution]);
        let (http, token, opening, ready) = (
            http.clone(),
            client.token.clone(),
            Arc::clone(&opening),
            ready.clone(),
        );
        let watch = async move {
            let mut received = Received {
                watcher,
                execution,
                on_one,
                seqs: Vec::new(),
                steps: Vec::new(),
                end: None,
            };
            let permit = opening.acquire_owned().await.map_err(|e| e.to_string())?;
            let first = async {
                let mut stream = Stream::open(&http, &url, &token).await?;
                while received.seqs.is_empty() {
                    if !stream.take(&mut received).await? {
                        return Err("the stream closed before its first entry".to_owned());
                    }
                }
                Ok(stream)
            };
            let mut stream = match first.await {
                Ok(stream) => stream,
                Err(e) => {
                    let e = format!("watcher {watcher} of {url}: {e}");
                    let _ = ready.send(Err(e.clone()));
                    return Err(e);
                }
            };
            drop(permit);
            let _ = ready.send(Ok(()));
            while stream.take(&mut received).await? {}
            Ok(received)
        };
        tasks.spawn_on(watch, &thread.handle);
    }
    drop(ready);
    let all_ready = async {
        for _ in 0..plan.total() {
            match readied.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err("a watcher ended before it was connected".to_owned()),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(OPEN_TIME, all_ready).await {
        Ok(Ok(())) => Ok(Watching {
            tasks,
            count: plan.total(),
            thread,
        }),
        Ok(Err(e)) => Err(format!("a watcher could not connect: {e}")),
        Err(_) => Err(format!(
            "the {} watchers were not all connected within {OPEN_TIME:?}",
            plan.total()
        )),
    }
}

impl Watching {
    /// The CPU time the watchers' thread has used so far (`None` where it cannot be read).
    pub fn cpu(&self) -> Option<Duration> {
        super::cpu_of(self.thread.stat.as_deref()?)
    }

    /// Once every execution has ended: waits for each watcher's `end`, checks that each got
    /// exactly its execution's log (as the store holds it), and times every step entry.
    pub async fn finish(
        mut self,
        client: &Client,
        ids: &[String],
        sent: &SentTimes,
    ) -> Result<Watched, String> {
        let mut all = Vec::with_capacity(self.count);
        let joined = tokio::time::timeout(END_TIME, async {
            while let Some(done) = self.tasks.join_next().await {
                all.push(done.map_err(|e| format!("a watcher failed: {e}"))??);
            }
            Ok::<_, String>(())
        })
        .await;
        match joined {
            Ok(outcome) => outcome?,
            Err(_) => {
                return Err(format!(
                    "{} of {} watchers had not received `end` {END_TIME:?} after every \
                     execution ended (a missed wake-up?)",
                    self.count - all.len(),
                    self.count
                ));
            }
        }
        // What each execution's log holds: every seq, and the step index of each step entry.
        let mut logs: Vec<Option<(Vec<u64>, Vec<u32>)>> = vec![None; ids.len()];
        let (mut latencies, mut after_ack, mut on_one) = (Vec::new(), Vec::new(), Vec::new());
        let (mut delivered, mut expected) = (0u64, 0u64);
        for watcher in &all {
            if logs[watcher.execution].is_none() {
                logs[watcher.execution] = Some(log_of(client, &ids[watcher.execution]).await?);
            }
            let Some((seqs, steps)) = &logs[watcher.execution] else {
                unreachable!("read just above");
            };
            delivered += watcher.seqs.len() as u64;
            expected += seqs.len() as u64;
            check(watcher, &ids[watcher.execution], seqs, steps)?;
            for &(step, at) in &watcher.steps {
                let (latency, since_ack) = sent
                    .latency(watcher.execution, step as usize, at)
                    .ok_or_else(|| {
                        format!(
                            "watcher {} got step {step} of {}, which was never reported",
                            watcher.watcher, ids[watcher.execution]
                        )
                    })?;
                latencies.push(latency);
                after_ack.push(since_ack);
                if watcher.on_one {
                    on_one.push(latency);
                }
            }
        }
        let max_ms = |samples: &[Duration]| {
            samples
                .iter()
                .max()
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Ok(Watched {
            p50_ms: percentile_ms(&mut latencies, 50.0),
            p99_ms: percentile_ms(&mut latencies, 99.0),
            max_ms: max_ms(&latencies),
            after_ack_p50_ms: percentile_ms(&mut after_ack, 50.0),
            after_ack_p99_ms: percentile_ms(&mut after_ack, 99.0),
            on_one_p50_ms: percentile_ms(&mut on_one, 50.0),
            on_one_p99_ms: percentile_ms(&mut on_one, 99.0),
            on_one_max_ms: max_ms(&on_one),
            delivered,
            expected,
        })
    }
}

/// Every entry of `id`'s log, read from the server as a JSON long poll (one page after
/// another): their seqs, and the step index of each step entry.
async fn log_of(client: &Client, id: &str) -> Result<(Vec<u64>, Vec<u32>), String> {
    let (mut seqs, mut steps) = (Vec::new(), Vec::new());
    loop {
        let after = seqs.last().copied().unwrap_or(0);
        let path = format!("/executions/{id}/events?after={after}&limit=500");
        let (status, page) = client.send(http::Method::GET, &path, None).await?;
        super::expect(status, http::StatusCode::OK, &page)?;
        let items: Vec<runledger::domain::log::LogEntry> =
            serde_json::from_value(page["items"].clone())
                .map_err(|e| format!("GET {path}: unreadable entries ({e}): {page}"))?;
        for item in &items {
            seqs.push(item.seq);
            if let LogEvent::Step { index, .. } = item.event {
                steps.push(index);
            }
        }
        if page["terminal"] == true {
            return Ok((seqs, steps));
        }
        if items.is_empty() {
            return Err(format!("the log of {id} has not ended: {page}"));
        }
    }
}

/// Fails unless `watcher` got exactly the log's entries, each once, in order, then `end`.
fn check(watcher: &Received, id: &str, seqs: &[u64], steps: &[u32]) -> Result<(), String> {
    let who = format!(
        "watcher {} of execution {id}{}",
        watcher.watcher,
        if watcher.on_one {
            " (one of those all on it)"
        } else {
            ""
        }
    );
    if watcher.seqs != seqs {
        let first_difference = watcher
            .seqs
            .iter()
            .zip(seqs)
            .position(|(got, wanted)| got != wanted)
            .unwrap_or(watcher.seqs.len().min(seqs.len()));
        return Err(format!(
            "{who} received {} entries where the log has {}; they differ from the {}th on \
             (received seqs {:?}, the log's {:?})",
            watcher.seqs.len(),
            seqs.len(),
            first_difference + 1,
            watcher.seqs,
            seqs
        ));
    }
    let got_steps: Vec<u32> = watcher.steps.iter().map(|(index, _)| *index).collect();
    if got_steps != steps {
        return Err(format!(
            "{who} received step entries {got_steps:?}, the log has {steps:?}"
        ));
    }
    if watcher.end != seqs.last().copied() {
        return Err(format!(
            "{who} received `end` at {:?}, the log's last entry is {:?}",
            watcher.end,
            seqs.last()
        ));
    }
    Ok(())
}

/// A live event stream, read chunk by chunk.
struct Stream {
    response: reqwest::Response,
    /// Bytes of an event still arriving.
    pending: Vec<u8>,
    ended: bool,
}

impl Stream {
    async fn open(http: &reqwest::Client, url: &str, token: &str) -> Result<Stream, String> {
        let response = http
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != reqwest::StatusCode::OK {
            let status = response.status();
            return Err(format!(
                "{status}: {}",
                response.text().await.unwrap_or_default()
            ));
        }
        Ok(Stream {
            response,
            pending: Vec::new(),
            ended: false,
        })
    }

    /// Reads the next chunk into `received`; `false` once the server has closed the stream.
    async fn take(&mut self, received: &mut Received) -> Result<bool, String> {
        let Some(chunk) = self.response.chunk().await.map_err(|e| e.to_string())? else {
            if !self.pending.iter().all(u8::is_ascii_whitespace) {
                return Err(format!(
                    "the stream closed inside an event: {:?}",
                    String::from_utf8_lossy(&self.pending)
                ));
            }
            return Ok(false);
        };
        // Timed as it arrives: every event of the chunk came with it.
        let at = Instant::now();
        self.pending.extend_from_slice(&chunk);
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let block = std::str::from_utf8(&block).map_err(|e| e.to_string())?;
            self.event(block, at, received)?;
        }
        Ok(true)
    }

    /// One event (or comment) block.
    fn event(&mut self, block: &str, at: Instant, received: &mut Received) -> Result<(), String> {
        let (mut id, mut kind, mut data) = (None, None, None);
        for line in block.lines() {
            match line.split_once(':') {
                // A comment: the keep-alive.
                Some(("", _)) => {}
                Some(("id", value)) => id = Some(value.trim_start()),
                Some(("event", value)) => kind = Some(value.trim_start()),
                Some(("data", value)) => data = Some(value.trim_start()),
                _ if line.is_empty() => {}
                _ => return Err(format!("unexpected line {line:?} in the stream")),
            }
        }
        let Some(data) = data else {
            return Ok(());
        };
        if self.ended {
            return Err(format!("an event after `end`: {block:?}"));
        }
        if kind == Some("end") {
            let end: serde_json::Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
            self.ended = true;
            received.end = end["last_seq"].as_u64();
            return Ok(());
        }
        let entry: Entry =
            serde_json::from_str(data).map_err(|e| format!("an unreadable entry ({e}): {data}"))?;
        if id != Some(entry.seq.to_string().as_str()) || kind != Some(entry.kind.as_str()) {
            return Err(format!(
                "the event's id or type disagrees with its entry: {block:?}"
            ));
        }
        received.seqs.push(entry.seq);
        if entry.kind == "step" {
            let index = entry
                .data
                .index
                .ok_or_else(|| format!("a step entry without an index: {data}"))?;
            received.steps.push((index, at));
        }
        Ok(())
    }
}

/// What the bench reads of an entry.
#[derive(serde::Deserialize)]
struct Entry {
    seq: u64,
    #[serde(rename = "type")]
    kind: String,
    data: EntryData,
}

#[derive(serde::Deserialize)]
struct EntryData {
    index: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_goes_round_the_executions_and_the_rest_on_the_first() {
        let plan = WatchPlan {
            spread: 5,
            on_one: 2,
        };
        let targets: Vec<_> = (0..plan.total()).map(|n| plan.target(n, 3)).collect();
        assert_eq!(
            targets,
            [
                (0, false),
                (1, false),
                (2, false),
                (0, false),
                (1, false),
                (0, true),
                (0, true)
            ]
        );
    }
}
