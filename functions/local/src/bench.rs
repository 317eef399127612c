//! `runledger-local bench`: drives the engine through the router, in process and over
//! loopback HTTP, with the durable file store, and prints throughput, latency percentiles,
//! read-your-write visibility and peak memory.

use crate::runtime::{LocalRuntime, RuntimeSettings, StoreLocation};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use runledger::api::Router;
use runledger::auth::JwtSettings;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use watchers::{SentTimes, WatchPlan, Watched};

mod floor;
mod imports;
mod open_loop;
mod watchers;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Executions started and reported on.
    #[arg(long, default_value_t = 1000)]
    pub executions: usize,
    /// Steps per execution (each reported in its own request).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// `in-process`, `http` or `both` (the default; with `--watchers`, `http` only).
    #[arg(long)]
    pub transport: Option<String>,
    /// Repeat the whole measurement this many times and also print the medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// `embedded` (throughput and latency) or `aws` (AWS requests per operation, against the
    /// emulator `AWS_ENDPOINT_URL` points at, on a table, queues and bus of its own that it
    /// deletes at the end).
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// With `--backend aws`: keep the table, queues and bus instead of deleting them at the
    /// end, and print their names.
    #[arg(long)]
    pub keep: bool,
    /// With `--backend aws`: run even without `AWS_ENDPOINT_URL`, that is against the real
    /// AWS account your credentials name. It creates and deletes a table, 8 queues and a bus
    /// there and sends them hundreds of requests, which costs money.
    #[arg(long)]
    pub yes_real_account: bool,
    /// Watch live: this many Server-Sent Events watchers of the event logs in all, over
    /// loopback HTTP: `--watchers-on-one` of them on the first execution, the rest one per
    /// execution (round robin when there are more than executions). Each run is also run
    /// without watchers, for comparison.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    /// With `--watchers`: how many of them all watch one execution (the first); default a
    /// tenth of `--watchers`, at most 100.
    #[arg(long)]
    pub watchers_on_one: Option<usize>,
    /// Import instead: a generated JUnit report of this many tests (1..1000), in process, on a
    /// fresh store each run: its first import (every test new) and the next (every test known).
    #[arg(long)]
    pub import: Option<usize>,
    /// Measure analytics' cost: each run also without counting finishes in rollups,
    /// alternating, and the medians side by side (with `--backend aws`: the requests per
    /// operation without rollups, then with them).
    #[arg(long)]
    pub analytics: bool,
    /// Also measure the store's floor: redb's own durable commits of 1 KiB rows, one write
    /// per commit and 64 per commit, before each run, and each transport's step reports/s
    /// as a share of the batched figure.
    #[arg(long)]
    pub floor: bool,
    /// Open loop: offer step reports at this many per second, on a fixed schedule across all
    /// the executions (all started first, so all are active), with at most `--concurrency`
    /// in flight; a report's latency runs from its slot in the schedule, so one that waited
    /// to be sent counts its wait (no coordinated omission).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    InProcess,
    Http,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::InProcess => "in-process",
            Transport::Http => "http",
        }
    }
}

/// One run's numbers.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    starts_per_s: f64,
    reports_per_s: f64,
    /// Completes (each finishing its execution) per second.
    completes_per_s: f64,
    report_p50_ms: f64,
    report_p99_ms: f64,
    visible_p99_ms: f64,
    /// CPU time of the whole process while the steps were reported, per 1,000 reports (0
    /// where it cannot be read).
    report_cpu_ms: f64,
    /// Of that, the watchers' thread's (`--watchers`; 0 without).
    watcher_cpu_ms: f64,
    /// How the reported steps were read back.
    visibility_read: &'static str,
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    runledger::crypto::install();
    match args.backend.as_str() {
        "embedded" => {}
        "aws" if args.watchers > 0 || args.watchers_on_one.is_some() => {
            return Err("--watchers applies to --backend embedded only".into());
        }
        "aws" => return count_aws_requests(&args).await,
        other => return Err(format!("--backend must be embedded or aws, not `{other}`")),
    }
    if args.keep || args.yes_real_account {
        return Err("--keep and --yes-real-account apply to --backend aws only".into());
    }
    if args.executions == 0 || args.steps == 0 || args.concurrency == 0 || args.runs == 0 {
        return Err("--executions, --steps, --concurrency and --runs must be at least 1".into());
    }
    if args.floor && (args.analytics || args.import.is_some() || args.watchers > 0) {
        return Err(
            "--floor goes with the step and finish workload alone: no --analytics, --import \
             or --watchers"
                .into(),
        );
    }
    if args.analytics && (args.import.is_some() || args.watchers > 0) {
        return Err(
            "--analytics compares the step and finish workload alone: no --import or \
                    --watchers"
                .into(),
        );
    }
    if args.rate.is_some() && args.import.is_some() {
        return Err("--rate paces step reports: not with --import".into());
    }
    if let Some(tests) = args.import {
        return import(&args, tests).await;
    }
    if args.watchers > 0 {
        return watch(&args).await;
    }
    if args.watchers_on_one.is_some() {
        return Err("--watchers-on-one applies to --watchers only".into());
    }
    let transports = match args.transport.as_deref().unwrap_or("both") {
        "in-process" => vec![Transport::InProcess],
        "http" => vec![Transport::Http],
        "both" => vec![Transport::InProcess, Transport::Http],
        other => {
            return Err(format!(
                "--transport must be in-process, http or both, not `{other}`"
            ));
        }
    };
    if transports.contains(&Transport::Http) {
        check_open_files(&args)?;
    }
    let load = match args.rate {
        Some(rate) => format!(
            "open loop: {rate} step reports/s offered, at most {} in flight",
            args.concurrency
        ),
        None => format!("{} in flight", args.concurrency),
    };
    println!(
        "runledger bench: {} executions x {} steps, {load}, durable file store, {} core(s)",
        args.executions,
        args.steps,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if args.analytics {
        return analytics(&args, &transports).await;
    }
    let mut visibility_read = "";
    let mut floors = Vec::new();
    let mut medians = Vec::new();
    for transport in transports {
        let mut runs = Vec::new();
        for run in 1..=args.runs {
            if args.floor {
                let floor = floor::measure().await?;
                print_floor(
                    &format!("floor before {} run {run}", transport.name()),
                    &floor,
                );
                floors.push(floor);
            }
            let (measurement, _) = measure(&args, transport, None).await?;
            print_row(&format!("{} run {run}", transport.name()), &measurement);
            visibility_read = measurement.visibility_read;
            runs.push(measurement);
        }
        if runs.len() > 1 {
            print_row(&format!("{} median", transport.name()), &median(&runs));
        }
        medians.push((transport, median(&runs)));
    }
    if args.floor {
        // The floor of all runs: the disk drifts over a bench, so one median for every
        // transport's ratio.
        let pick = |f: fn(&floor::Floor) -> f64| middle(floors.iter().map(f));
        let floor = floor::Floor {
            single_per_s: pick(|f| f.single_per_s),
            batched_per_s: pick(|f| f.batched_per_s),
        };
        print_floor(&format!("floor median of {}", floors.len()), &floor);
        for (transport, m) in &medians {
            println!(
                "{}: step reports/s {:.0} = {:.2}x the batched floor, {:.1}x the one-write-per-commit floor",
                transport.name(),
                m.reports_per_s,
                m.reports_per_s / floor.batched_per_s,
                m.reports_per_s / floor.single_per_s
            );
        }
    }
    println!("visible: every 10th reported step read back {visibility_read}");
    println!("peak RSS: {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
    Ok(())
}

fn print_floor(label: &str, floor: &floor::Floor) {
    println!(
        "{label:<20} redb, durable commits of 1 KiB rows: {:>8.0} writes/s one per commit | {:>8.0} writes/s {} per commit",
        floor.single_per_s,
        floor.batched_per_s,
        floor::BATCH
    );
}

fn print_row(label: &str, m: &Measurement) {
    println!(
        "{label:<20} starts/s {:>8.0} | step reports/s {:>8.0} | completes/s {:>7.0} | report p50 {:>6.2} ms p99 {:>6.2} ms | visible p99 {:>6.2} ms",
        m.starts_per_s,
        m.reports_per_s,
        m.completes_per_s,
        m.report_p50_ms,
        m.report_p99_ms,
        m.visible_p99_ms
    );
}

/// `--analytics`: each run with finishes counted in rollups and without, alternating on the
/// same machine, then the medians side by side.
async fn analytics(args: &BenchArgs, transports: &[Transport]) -> Result<(), String> {
    for transport in transports {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for run in 1..=args.runs {
            // Alternate which goes first, so neither always runs on a warmer machine.
            for on in if run % 2 == 1 {
                [true, false]
            } else {
                [false, true]
            } {
                let (measurement, _) = measure_with(args, *transport, None, on).await?;
                let label = format!(
                    "{} run {run} {}",
                    transport.name(),
                    if on { "rollups" } else { "no rollups" }
                );
                print_row(&label, &measurement);
                if on {
                    with.push(measurement);
                } else {
                    without.push(measurement);
                }
            }
        }
        let (on, off) = (median(&with), median(&without));
        print_row(&format!("{} median rollups", transport.name()), &on);
        print_row(&format!("{} median none", transport.name()), &off);
        println!(
            "{}: with rollups, step reports/s {:.1} % and completes/s {:.1} % of without",
            transport.name(),
            100.0 * on.reports_per_s / off.reports_per_s,
            100.0 * on.completes_per_s / off.completes_per_s
        );
    }
    Ok(())
}

/// `--import N`: each run's two imports, then the medians.
async fn import(args: &BenchArgs, tests: usize) -> Result<(), String> {
    if args.watchers > 0 || args.transport.is_some() {
        return Err("--import runs in process alone: no --watchers or --transport".into());
    }
    println!(
        "runledger bench --import: a JUnit report of {tests} tests, imported in process on a durable file store, {} core(s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut new, mut known) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let measured = imports::measure(tests).await?;
        println!(
            "run {run}: {} tests ({} flaky, {} KiB): new tests {:.1} ms, known tests {:.1} ms",
            measured.tests,
            measured.flaky,
            measured.report_bytes / 1024,
            ms(measured.new_tests),
            ms(measured.known_tests)
        );
        new.push(ms(measured.new_tests));
        known.push(ms(measured.known_tests));
    }
    println!(
        "median of {}: new tests {:.1} ms, known tests {:.1} ms",
        args.runs,
        middle(new),
        middle(known)
    );
    Ok(())
}

/// The median of `values` (the upper one of an even count); there is at least one.
fn middle(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn median(runs: &[Measurement]) -> Measurement {
    let pick = |f: fn(&Measurement) -> f64| middle(runs.iter().map(f));
    Measurement {
        starts_per_s: pick(|m| m.starts_per_s),
        reports_per_s: pick(|m| m.reports_per_s),
        completes_per_s: pick(|m| m.completes_per_s),
        report_p50_ms: pick(|m| m.report_p50_ms),
        report_p99_ms: pick(|m| m.report_p99_ms),
        visible_p99_ms: pick(|m| m.visible_p99_ms),
        report_cpu_ms: pick(|m| m.report_cpu_ms),
        watcher_cpu_ms: pick(|m| m.watcher_cpu_ms),
        visibility_read: runs[0].visibility_read,
    }
}

/// `--watchers`: every run twice over loopback HTTP, watched and unwatched, the order
/// alternating from run to run so that drift in the machine's speed weighs on both alike.
async fn watch(args: &BenchArgs) -> Result<(), String> {
    match args.transport.as_deref() {
        None | Some("http") => {}
        Some(other) => {
            return Err(format!(
                "--watchers watches over loopback HTTP: --transport must be http or left out, \
                 not `{other}`"
            ));
        }
    }
    let plan = WatchPlan::of(args)?;
    check_open_files(args)?;
    println!(
        "runledger bench --watchers: {} executions x {} steps, {} in flight, loopback HTTP, \
         durable file store, {} core(s); {} watchers: {} spread over the executions, {} on \
         the first",
        args.executions,
        args.steps,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        plan.total(),
        plan.spread,
        plan.on_one
    );
    let (mut unwatched, mut watched, mut watching) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let order = if run % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for with_watchers in order {
            let (measurement, seen) =
                measure(args, Transport::Http, with_watchers.then_some(plan)).await?;
            match seen {
                Some(seen) => {
                    print_watch_row(&format!("watched run {run}"), &measurement);
                    print_watched(&seen, plan.on_one, false);
                    watched.push(measurement);
                    watching.push(seen);
                }
                None => {
                    print_watch_row(&format!("unwatched run {run}"), &measurement);
                    unwatched.push(measurement);
                }
            }
        }
    }
    let (unwatched, watched) = (median(&unwatched), median(&watched));
    if args.runs > 1 {
        print_watch_row("unwatched median", &unwatched);
        print_watch_row("watched median", &watched);
        print_watched(&median_watched(&watching), plan.on_one, true);
    }
    let medians = if args.runs > 1 { ", medians" } else { "" };
    println!(
        "step reports/s watched / unwatched: {:.3} ({:.0} / {:.0}{medians})",
        watched.reports_per_s / unwatched.reports_per_s,
        watched.reports_per_s,
        unwatched.reports_per_s,
    );
    if unwatched.report_cpu_ms > 0.0 {
        println!(
            "CPU per step report watched / unwatched: {:.3} ({:.0} / {:.0} ms per 1,000{medians})",
            watched.report_cpu_ms / unwatched.report_cpu_ms,
            watched.report_cpu_ms,
            unwatched.report_cpu_ms,
        );
        let served = watched.report_cpu_ms - watched.watcher_cpu_ms;
        println!(
            "  of which the watchers' client thread {:.0} ms; the rest (server and reporters) \
             watched / unwatched: {:.3} ({served:.0} / {:.0} ms per 1,000{medians})",
            watched.watcher_cpu_ms,
            served / unwatched.report_cpu_ms,
            unwatched.report_cpu_ms,
        );
    }
    println!("peak RSS: {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
    Ok(())
}

fn print_watch_row(label: &str, m: &Measurement) {
    println!(
        "{label:<20} step reports/s {:>8.0} | report p50 {:>6.2} ms p99 {:>6.2} ms | CPU {:>5.0} ms per 1,000 reports (watchers' thread {:.0})",
        m.reports_per_s, m.report_p50_ms, m.report_p99_ms, m.report_cpu_ms, m.watcher_cpu_ms
    );
}

/// One run's watching numbers, or (`median`) the medians of the runs' and the totals.
fn print_watched(w: &Watched, on_one: usize, median: bool) {
    let crowd = if on_one > 0 {
        format!(
            " | the {on_one} on one execution: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            w.on_one_p50_ms, w.on_one_p99_ms, w.on_one_max_ms
        )
    } else {
        String::new()
    };
    println!(
        "  report to watcher{} p50 {:>6.2} ms p99 {:>6.2} ms max {:>7.2} ms | after the ack p50 {:.2} ms p99 {:.2} ms{crowd} | delivered {} of {} entries{}",
        if median { ", medians:" } else { "" },
        w.p50_ms,
        w.p99_ms,
        w.max_ms,
        w.after_ack_p50_ms,
        w.after_ack_p99_ms,
        w.delivered,
        w.expected,
        if median { " in all" } else { "" }
    );
}

fn median_watched(runs: &[Watched]) -> Watched {
    let pick = |f: fn(&Watched) -> f64| middle(runs.iter().map(f));
    Watched {
        p50_ms: pick(|w| w.p50_ms),
        p99_ms: pick(|w| w.p99_ms),
        max_ms: pick(|w| w.max_ms),
        after_ack_p50_ms: pick(|w| w.after_ack_p50_ms),
        after_ack_p99_ms: pick(|w| w.after_ack_p99_ms),
        on_one_p50_ms: pick(|w| w.on_one_p50_ms),
        on_one_p99_ms: pick(|w| w.on_one_p99_ms),
        on_one_max_ms: pick(|w| w.on_one_max_ms),
        delivered: runs.iter().map(|w| w.delivered).sum(),
        expected: runs.iter().map(|w| w.expected).sum(),
    }
}

/// Connections the bench's server holds at once over HTTP: every watcher's, the reporters'
/// and their idle pool, and a margin.
fn watch_connections(args: &BenchArgs) -> usize {
    args.watchers + 2 * args.concurrency + 16
}

/// The bench's server takes `serve`'s limits, but a connection cap that holds every connection
/// of the bench's own (`serve` caps at 1,024; [`check_open_files`] has made sure the
/// descriptors are there).
fn server_limits(args: &BenchArgs) -> crate::server::Limits {
    // The cap evicts idle connections, which a pooling client may be about to reuse: the
    // bench's own connections stay under it.
    let limits = crate::server::Limits::default();
    crate::server::Limits {
        max_connections: limits.max_connections.max(watch_connections(args)),
        ..limits
    }
}

/// Raises the soft open-file limit as `serve` does, and fails unless it holds both ends of
/// every connection (client and server are this one process).
fn check_open_files(args: &BenchArgs) -> Result<(), String> {
    let Some(open_files) = crate::server::raise_open_file_limit() else {
        return Ok(());
    };
    let needed = 2 * watch_connections(args) as u64 + crate::server::reserved_files(1);
    if open_files < needed {
        return Err(format!(
            "{} watchers and {} requests in flight need about {needed} open files (both ends \
             of each connection are in this process), but the limit is {open_files} and cannot \
             be raised further: raise the hard limit (ulimit -Hn) or use fewer",
            args.watchers, args.concurrency
        ));
    }
    Ok(())
}

/// Sends requests either straight into the router or over a loopback socket.
#[derive(Clone)]
struct Client {
    router: Arc<Router>,
    http: Option<(reqwest::Client, String)>,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, bytes) = match &self.http {
            None => {
                let request = Request::builder()
                    .method(method)
                    .uri(format!("/api/v1{path}"))
                    .header("authorization", format!("Bearer {}", self.token))
                    .body(Bytes::from(body))
                    .map_err(|e| e.to_string())?;
                let response = self.router.handle(request).await;
                (response.status(), response.into_body())
            }
            Some((client, base)) => {
                let response = client
                    .request(method, format!("{base}{path}"))
                    .bearer_auth(&self.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                (status, response.bytes().await.map_err(|e| e.to_string())?)
            }
        };
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Starts an execution (`kind` is `case` or `suite`, `body` names what to run); its id.
    async fn start(&self, kind: &str, body: Value) -> Result<String, String> {
        let (status, answer) = self
            .send(Method::POST, &format!("/executions/{kind}"), Some(body))
            .await?;
        expect(status, StatusCode::ACCEPTED, &answer)?;
        Ok(answer["id"].as_str().unwrap_or_default().to_owned())
    }
}

/// A runtime over a durable file store in a new temporary directory (removed when the
/// returned guard drops), and a token for the user `bench`.
async fn fresh_runtime() -> Result<(tempfile::TempDir, LocalRuntime, String), String> {
    fresh_runtime_with(true).await
}

/// [`fresh_runtime`], counting finishes in analytics rollups or not.
async fn fresh_runtime_with(
    analytics: bool,
) -> Result<(tempfile::TempDir, LocalRuntime, String), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let database = dir.path().join(crate::config::DATABASE_FILE);
    let settings = RuntimeSettings {
        jwt: JwtSettings {
            secret: b"runledger-bench-secret-0123456789abcdef".to_vec(),
            issuer: None,
            audience: None,
        },
        workers: 1,
        sweep_interval: Duration::from_secs(60),
        allow_private_targets: true,
        analytics,
    };
    let runtime = LocalRuntime::start(StoreLocation::File(&database), settings).await?;
    let token = runtime.auth.issue("bench", false, 3600);
    Ok((dir, runtime, token))
}

/// One run; with `watch`, the plan's watchers stream the logs while the steps are reported.
async fn measure(
    args: &BenchArgs,
    transport: Transport,
    watch: Option<WatchPlan>,
) -> Result<(Measurement, Option<Watched>), String> {
    measure_with(args, transport, watch, true).await
}

/// [`measure`], with finishes counted in analytics rollups or not.
async fn measure_with(
    args: &BenchArgs,
    transport: Transport,
    watch: Option<WatchPlan>,
    analytics: bool,
) -> Result<(Measurement, Option<Watched>), String> {
    let (_dir, runtime, token) = fresh_runtime_with(analytics).await?;
    let mut server = None;
    let http = match transport {
        Transport::InProcess => None,
        Transport::Http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let address = listener.local_addr().map_err(|e| e.to_string())?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let router = runtime.router.clone();
            server = Some((
                stop,
                tokio::spawn(crate::server::serve(
                    listener,
                    router,
                    server_limits(args),
                    async {
                        let _ = stopped.await;
                    },
                )),
            ));
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(args.concurrency)
                .build()
                .map_err(|e| e.to_string())?;
            Some((client, format!("http://{address}/api/v1")))
        }
    };
    let client = Client {
        router: runtime.router.clone(),
        http,
        token,
    };

    let steps: Vec<Value> = (0..args.steps)
        .map(|i| json!({"name": format!("step {i}"), "action": "external"}))
        .collect();
    let (status, case) = client
        .send(
            Method::POST,
            "/test-cases",
            Some(json!({"name": "bench case", "steps": steps})),
        )
        .await?;
    expect(status, StatusCode::CREATED, &case)?;
    let case_id = case["id"].as_str().unwrap_or_default().to_owned();

    // Phase 1: start every execution.
    let started_at = Instant::now();
    let ids = fan_out(args.executions, args.concurrency, {
        let (client, case_id) = (client.clone(), case_id.clone());
        move |_| {
            let (client, case_id) = (client.clone(), case_id.clone());
            async move {
                let id = client
                    .start("case", json!({"test_case_id": case_id}))
                    .await?;
                Ok((id, Duration::ZERO, None))
            }
        }
    })
    .await?;
    let starts_per_s = args.executions as f64 / started_at.elapsed().as_secs_f64();
    let ids: Arc<Vec<String>> = Arc::new(ids.into_iter().map(|(id, _, _)| id).collect());
    let watching = match watch {
        Some(plan) => Some(watchers::open(&client, &ids, plan).await?),
        None => None,
    };
    let sent_times = watch.map(|_| Arc::new(SentTimes::new(args.executions, args.steps)));
    // From 50 steps on a trace is partitioned, and `GET /executions/{id}` leaves its steps
    // out by contract: the server says which this case is.
    let (status, trace) = client
        .send(
            Method::GET,
            &format!("/executions/{}?fields=storage", ids[0]),
            None,
        )
        .await?;
    expect(status, StatusCode::OK, &trace)?;
    let partitioned = trace["storage"] == "partitioned";

    // Phase 2: report every step, one per request, interleaved across executions so that
    // all of them are running at once. Every 10th report is followed by a read that must
    // already show it (read-your-writes), timed from the report's response.
    let total = args.executions * args.steps;
    let executions = args.executions;
    let reports_at = Instant::now();
    let cpu_before = process_cpu();
    let watcher_cpu_before = watching.as_ref().and_then(watchers::Watching::cpu);
    // A report's latency runs from when it was due: when it was sent (closed loop), or its
    // slot in the schedule (`--rate`, open loop), so waiting to be sent counts too.
    let report = {
        let (client, ids, sent_times) = (client.clone(), Arc::clone(&ids), sent_times.clone());
        move |n: usize, due: Option<Instant>| {
            let (client, ids, sent_times) = (client.clone(), Arc::clone(&ids), sent_times.clone());
            async move {
                let (execution, step) = (n % executions, n / executions);
                let id = &ids[execution];
                let sent = Instant::now();
                let due = due.unwrap_or(sent);
                if let Some(times) = &sent_times {
                    times.mark(execution, step, sent);
                }
                let report =
                    json!({"steps": [{"index": step, "status": "passed", "duration_ms": 1}]});
                let (status, body) = client
                    .send(
                        Method::POST,
                        &format!("/executions/{id}/steps"),
                        Some(report),
                    )
                    .await?;
                expect(status, StatusCode::OK, &body)?;
                let answered = Instant::now();
                if let Some(times) = &sent_times {
                    times.mark_acked(execution, step, answered);
                }
                let latency = answered - due;
                let visible = if n.is_multiple_of(10) {
                    if read_step(&client, id, step, partitioned).await?["status"] != "passed" {
                        return Err(format!(
                            "step {step} of {id} was acknowledged but is not visible"
                        ));
                    }
                    Some(answered.elapsed())
                } else {
                    None
                };
                Ok((String::new(), latency, visible))
            }
        }
    };
    let results = match args.rate {
        None => fan_out(total, args.concurrency, move |n| report(n, None)).await?,
        Some(rate) => {
            open_loop::run(total, rate, args.concurrency, move |n, due| {
                report(n, Some(due))
            })
            .await?
        }
    };
    let reports_per_s = total as f64 / reports_at.elapsed().as_secs_f64();
    let report_cpu = match (cpu_before, process_cpu()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let watcher_cpu = match (
        watcher_cpu_before,
        watching.as_ref().and_then(watchers::Watching::cpu),
    ) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let mut latencies: Vec<Duration> = results.iter().map(|(_, l, _)| *l).collect();
    let mut visibility: Vec<Duration> = results.iter().filter_map(|(_, _, v)| *v).collect();

    // Phase 3: complete them all and check the outcome.
    let completes_at = Instant::now();
    fan_out(args.executions, args.concurrency, {
        let (client, ids) = (client.clone(), Arc::clone(&ids));
        move |n| {
            let (client, ids) = (client.clone(), Arc::clone(&ids));
            async move {
                let (status, body) = client
                    .send(
                        Method::POST,
                        &format!("/executions/{}/complete", ids[n]),
                        None,
                    )
                    .await?;
                expect(status, StatusCode::OK, &body)?;
                if body["status"] != "passed"
                    || body["progress"]["passed"] != json!(executions_steps(&body))
                {
                    return Err(format!(
                        "execution {} ended {} with progress {}",
                        ids[n], body["status"], body["progress"]
                    ));
                }
                Ok((String::new(), Duration::ZERO, None))
            }
        }
    })
    .await?;
    let completes_per_s = args.executions as f64 / completes_at.elapsed().as_secs_f64();
    let watched = match (watching, &sent_times) {
        (Some(watching), Some(sent)) => Some(watching.finish(&client, &ids, sent).await?),
        _ => None,
    };

    if let Some((stop, handle)) = server {
        let _ = stop.send(());
        let _ = handle.await;
    }
    runtime.stop().await;
    let measurement = Measurement {
        starts_per_s,
        reports_per_s,
        completes_per_s,
        report_p50_ms: percentile_ms(&mut latencies, 50.0),
        report_p99_ms: percentile_ms(&mut latencies, 99.0),
        visible_p99_ms: percentile_ms(&mut visibility, 99.0),
        report_cpu_ms: report_cpu.as_secs_f64() * 1000.0 * 1000.0 / total as f64,
        watcher_cpu_ms: watcher_cpu.as_secs_f64() * 1000.0 * 1000.0 / total as f64,
        visibility_read: if partitioned {
            "through GET /executions/{id}/steps?limit=1&cursor= (partitioned steps)"
        } else {
            "through GET /executions/{id}?fields=steps,progress (inline steps)"
        },
    };
    Ok((measurement, watched))
}

/// Step `step` of execution `id`, read the way a client reads it: in the trace while its
/// steps are inline, else as the one item of a `/steps` page, since the trace leaves
/// partitioned steps out. Either is one request whatever the step count: the `/steps`
/// cursor is the server's own "after step - 1" (the bench is this crate's own client), so
/// nothing pages from the first step.
async fn read_step(
    client: &Client,
    id: &str,
    step: usize,
    partitioned: bool,
) -> Result<Value, String> {
    if !partitioned {
        let path = format!("/executions/{id}?fields=steps,progress");
        let (status, trace) = client.send(Method::GET, &path, None).await?;
        expect(status, StatusCode::OK, &trace)?;
        return Ok(trace["steps"][step].clone());
    }
    let cursor = match step.checked_sub(1) {
        Some(before) => format!(
            "&cursor={}",
            runledger::api::params::encode_cursor("steps", &before.to_string())
        ),
        None => String::new(),
    };
    let path = format!("/executions/{id}/steps?limit=1{cursor}");
    let (status, page) = client.send(Method::GET, &path, None).await?;
    expect(status, StatusCode::OK, &page)?;
    let item = &page["items"][0];
    if item["index"] != json!(step) {
        return Err(format!(
            "GET {path} answered step {} instead of step {step}: {page}",
            item["index"]
        ));
    }
    Ok(item.clone())
}

fn executions_steps(body: &Value) -> u64 {
    body["progress"]["total"].as_u64().unwrap_or(u64::MAX)
}

type Sample = (String, Duration, Option<Duration>);

/// Runs `count` jobs with at most `concurrency` in flight; fails on the first error.
async fn fan_out<F, Fut>(count: usize, concurrency: usize, job: F) -> Result<Vec<Sample>, String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Sample, String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.min(count) {
        let (next, job) = (Arc::clone(&next), Arc::clone(&job));
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, String>(samples);
                }
                let sample = job(n).await?;
                samples.push((n, sample));
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = workers.join_next().await {
        all.extend(joined.map_err(|e| e.to_string())??);
    }
    all.sort_by_key(|(n, _)| *n);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

fn expect(status: StatusCode, wanted: StatusCode, body: &Value) -> Result<(), String> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("expected {wanted}, got {status}: {body}"))
    }
}

fn percentile_ms(samples: &mut [Duration], pct: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort();
    let rank = ((pct / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
}

/// CPU time (user and system) the process has used so far, every thread; `None` where
/// /proc is absent.
fn process_cpu() -> Option<Duration> {
    cpu_of(std::path::Path::new("/proc/self/stat"))
}

/// The CPU time in a /proc `stat` file (a process's or a thread's), counted in ticks of 10 ms
/// (Linux's USER_HZ is 100).
fn cpu_of(path: &std::path::Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th of the line.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// The process's peak resident set size (VmHWM), in KiB; 0 where /proc is absent.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut samples, 50.0), 50.0);
        assert_eq!(percentile_ms(&mut samples, 99.0), 99.0);
        assert_eq!(percentile_ms(&mut [], 99.0), 0.0);
    }
}

/// `--backend aws`: [`measure_aws_requests`] on a table, queues and bus of its own, deleted
/// at the end (unless `--keep`) whether the run is done, failed, panicked or was stopped
/// (SIGINT, SIGTERM; a second one stops the cleanup).
async fn count_aws_requests(args: &BenchArgs) -> Result<(), String> {
    use runledger::aws::backend::AwsBackend;
    // Checked before the SDK loads, since loading can already call AWS (for the region, on
    // instance metadata).
    let endpoint_set = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    if !endpoint_set && !args.yes_real_account {
        return Err(real_account_refusal("AWS_ENDPOINT_URL is not set"));
    }
    let sdk = runledger::aws::sdk_config().await;
    let target = match sdk.endpoint_url() {
        Some(endpoint) => endpoint.to_owned(),
        None if !args.yes_real_account => {
            return Err(real_account_refusal(
                "AWS_ENDPOINT_URL is set but the SDK ignores it (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS)",
            ));
        }
        None => format!(
            "the real AWS account of your credentials, region {} (--yes-real-account)",
            sdk.region().map_or("unset", |r| r.as_ref())
        ),
    };
    let prefix = format!("runledger-bench-{}", std::process::id());
    println!(
        "runledger bench --backend aws: against {target}, on the table, 8 queues and bus {prefix}{}",
        if args.keep {
            " (kept: --keep)"
        } else {
            " (deleted at the end)"
        }
    );
    // A task of its own, so that a panic in it still comes back here to the cleanup.
    // With --analytics, once without rollups first: the figures before and after.
    let passes = if args.analytics {
        vec![false, true]
    } else {
        vec![true]
    };
    let (pass_sdk, pass_prefix, executions) = (sdk.clone(), prefix.clone(), args.executions);
    let mut run = tokio::spawn(async move {
        for analytics in passes {
            measure_aws_requests(pass_sdk.clone(), pass_prefix.clone(), executions, analytics)
                .await?;
        }
        Ok(())
    });
    let outcome = tokio::select! {
        joined = &mut run => joined.unwrap_or_else(|e| Err(format!("the run panicked: {e}"))),
        _ = crate::runtime::stop_signal() => {
            run.abort();
            let _ = run.await;
            Err("stopped by a signal".to_owned())
        }
    };
    if args.keep {
        println!("kept: {}", AwsBackend::resource_names(&prefix).join(", "));
        return outcome;
    }
    let deleted = tokio::select! {
        deleted = AwsBackend::delete_resources(&sdk, &prefix) => deleted,
        _ = crate::runtime::stop_signal() => Err(format!(
            "stopped by a second signal, so any of these may remain: {}",
            AwsBackend::resource_names(&prefix).join(", ")
        )),
    };
    match (outcome, deleted) {
        (outcome, Ok(())) => {
            println!("deleted the table, 8 queues and bus {prefix}");
            outcome
        }
        (outcome, Err(e)) => {
            let ran = match outcome {
                Ok(()) => "the bench ran".to_owned(),
                Err(failure) => format!("the bench failed ({failure})"),
            };
            Err(format!(
                "{ran}, but cleaning up failed: {e}; delete those by hand"
            ))
        }
    }
}

fn real_account_refusal(why: &str) -> String {
    format!(
        "refusing to run bench --backend aws: {why}, so the SDK would talk to a real AWS \
         account. The bench creates and deletes a DynamoDB table, 8 SQS queues and an \
         EventBridge bus there and sends them hundreds of requests, which costs money. Point \
         AWS_ENDPOINT_URL at an emulator (README, runledger on AWS, locally), or pass \
         --yes-real-account to run it against the account your credentials name."
    )
}

/// How many executions of one test `--backend aws` completes at once (at most).
const HOT_COMPLETES: usize = 50;

/// AWS requests per engine operation, counted by an SDK interceptor, averaged over
/// `executions` repetitions (capped at 50: this measures calls, not speed), on resources
/// named after `prefix`, which it creates (or reuses); finishes counted in analytics rollups
/// or not.
async fn measure_aws_requests(
    sdk: runledger::aws::SdkConfig,
    prefix: String,
    executions: usize,
    analytics: bool,
) -> Result<(), String> {
    use runledger::aws::backend::AwsBackend;
    use runledger::aws::metrics::Metering;
    let repetitions = executions.clamp(1, 50);
    let settings = AwsBackend::create_resources(&sdk, &prefix).await?;
    let metering = Metering::default();
    let meter = Meter {
        pricer: metering.pricer(&sdk, &settings.table),
        metering: metering.clone(),
    };
    let mut backend = AwsBackend::with_metering(&sdk, settings, Some(metering));
    if !analytics {
        backend.engine = backend.engine.clone().without_analytics();
    }
    let auth = std::sync::Arc::new(
        runledger::auth::Authenticator::new(JwtSettings {
            secret: b"runledger-bench-secret-0123456789abcdef".to_vec(),
            issuer: None,
            audience: None,
        })
        .map_err(|e| e.to_string())?,
    );
    let client = Client {
        router: Arc::new(backend.router(Arc::clone(&auth), &runledger::api::RouteGroup::ALL)),
        http: None,
        token: auth.issue("bench", false, 3600),
    };
    let case = |name: &str, steps: usize| {
        let steps: Vec<Value> = (0..steps)
            .map(|i| json!({"name": format!("step {i}"), "action": "external"}))
            .collect();
        json!({"name": name, "steps": steps})
    };
    let (_, small) = client
        .send(Method::POST, "/test-cases", Some(case("inline", 10)))
        .await?;
    let (_, large) = client
        .send(Method::POST, "/test-cases", Some(case("partitioned", 100)))
        .await?;
    let (small, large) = (
        small["id"].as_str().unwrap_or_default().to_owned(),
        large["id"].as_str().unwrap_or_default().to_owned(),
    );
    meter.reset();

    let mut rows: Vec<(&str, BTreeCounts)> = Vec::new();
    let mut measure = |name: &'static str, counts: BTreeCounts| rows.push((name, counts));
    let mut totals = BTreeCounts::default();
    let mut inline_ids = Vec::new();
    for _ in 0..repetitions {
        inline_ids.push(client.start("case", json!({"test_case_id": small})).await?);
        totals.add(meter.take().await?);
    }
    measure("start a case", totals.per(repetitions));
    let report = |index: u32| json!({"steps": [{"index": index, "status": "passed"}]});
    for (label, (method, path, body)) in [
        (
            "first step report (queued to running)",
            (Method::POST, "/steps", Some(report(0))),
        ),
        (
            "step report, inline trace",
            (Method::POST, "/steps", Some(report(1))),
        ),
        (
            "the same report again (redelivery)",
            (Method::POST, "/steps", Some(report(1))),
        ),
        (
            "status read (GET /executions/{id})",
            (Method::GET, "", None),
        ),
        ("finalize (complete)", (Method::POST, "/complete", None)),
    ] {
        let mut totals = BTreeCounts::default();
        for id in &inline_ids {
            let (status, answer) = client
                .send(
                    method.clone(),
                    &format!("/executions/{id}{path}"),
                    body.clone(),
                )
                .await?;
            expect(status, StatusCode::OK, &answer)?;
            totals.add(meter.take().await?);
        }
        measure(label, totals.per(repetitions));
    }
    let batches = repetitions.min(10);
    let mut totals = BTreeCounts::default();
    for _ in 0..batches {
        let id = client.start("case", json!({"test_case_id": large})).await?;
        meter.reset();
        let steps: Vec<Value> = (0..100)
            .map(|i| json!({"index": i, "status": "passed"}))
            .collect();
        let (status, body) = client
            .send(
                Method::POST,
                &format!("/executions/{id}/steps"),
                Some(json!({"steps": steps})),
            )
            .await?;
        expect(status, StatusCode::OK, &body)?;
        totals.add(meter.take().await?);
    }
    measure(
        "100 steps in one report, partitioned trace (whole report)",
        totals.per(batches),
    );

    // One step of a partitioned trace, after the first: its own item and the counters.
    let mut totals = BTreeCounts::default();
    for _ in 0..batches {
        let id = client.start("case", json!({"test_case_id": large})).await?;
        for index in [0, 1] {
            meter.reset();
            let path = format!("/executions/{id}/steps");
            let (status, body) = client
                .send(Method::POST, &path, Some(report(index)))
                .await?;
            expect(status, StatusCode::OK, &body)?;
        }
        totals.add(meter.take().await?);
    }
    measure("step report, partitioned trace", totals.per(batches));

    // A child of a wide parallel suite finishing: the child, and its slot in the suite.
    let suite = json!({"name": "wide", "test_case_ids": vec![small.clone(); 10],
        "mode": "parallel", "max_parallel": 10});
    let (status, body) = client
        .send(Method::POST, "/test-suites", Some(suite))
        .await?;
    expect(status, StatusCode::CREATED, &body)?;
    let suite_id = body["id"].as_str().unwrap_or_default().to_owned();
    let mut totals = BTreeCounts::default();
    let mut finishes = 0;
    for _ in 0..batches.div_ceil(5) {
        let suite_execution = client
            .start("suite", json!({"test_suite_id": suite_id}))
            .await?;
        let path = format!("/executions/{suite_execution}/children?limit=100");
        let (status, body) = client.send(Method::GET, &path, None).await?;
        expect(status, StatusCode::OK, &body)?;
        let children: Vec<String> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        // Every child but the last (whose finish also finishes the suite).
        for child in children.iter().take(children.len().saturating_sub(1)) {
            let path = format!("/executions/{child}/steps");
            let (status, body) = client.send(Method::POST, &path, Some(report(0))).await?;
            expect(status, StatusCode::OK, &body)?;
            meter.reset();
            let path = format!("/executions/{child}/complete");
            let (status, body) = client.send(Method::POST, &path, None).await?;
            expect(status, StatusCode::OK, &body)?;
            totals.add(meter.take().await?);
            finishes += 1;
        }
    }
    measure(
        "a suite child's complete (its slot rolled up)",
        totals.per(finishes.max(1)),
    );

    // Many executions of one test finishing at once: their contributions meet on its one
    // rollup item, each added by a conditional transaction that retries when it loses.
    let together = repetitions.min(HOT_COMPLETES);
    let mut hot = Vec::with_capacity(together);
    for _ in 0..together {
        let id = client.start("case", json!({"test_case_id": small})).await?;
        let path = format!("/executions/{id}/steps");
        let (status, body) = client.send(Method::POST, &path, Some(report(0))).await?;
        expect(status, StatusCode::OK, &body)?;
        hot.push(id);
    }
    meter.reset();
    let began = std::time::Instant::now();
    let mut completes = tokio::task::JoinSet::new();
    for id in hot {
        let client = client.clone();
        completes.spawn(async move {
            let path = format!("/executions/{id}/complete");
            let (status, body) = client.send(Method::POST, &path, None).await?;
            expect(status, StatusCode::OK, &body)
        });
    }
    while let Some(done) = completes.join_next().await {
        done.map_err(|e| format!("a complete panicked: {e}"))??;
    }
    let hot_elapsed = began.elapsed();
    measure(
        "complete, one test's executions all at once (one hot rollup)",
        {
            let mut totals = BTreeCounts::default();
            totals.add(meter.take().await?);
            totals.per(together)
        },
    );

    println!(
        "AWS requests per operation (average of {repetitions}; {batches} for the batch), counted by an SDK interceptor, {}:",
        if analytics {
            "finishes counted in analytics rollups"
        } else {
            "without analytics rollups"
        }
    );
    println!("| operation | DynamoDB | write units | SQS | EventBridge | DynamoDB calls |");
    println!("|---|---|---|---|---|---|");
    for (name, counts) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            counts.service("DynamoDB"),
            counts.units,
            counts.service("SQS"),
            counts.service("EventBridge"),
            counts.describe("DynamoDB")
        );
    }
    println!(
        "{together} completes of one test at once took {:.0} ms in all",
        hot_elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "(write units: each item a write touched, at its size after the operation, 1 KB a unit, \
         twice in a transaction; an estimate, since the emulator does not report them)"
    );
    Ok(())
}

/// The AWS requests of one operation and the DynamoDB write units they cost.
struct AwsSample {
    requests: std::collections::BTreeMap<(String, String), u64>,
    units: f64,
}

/// Takes samples: the requests counted and the writes logged since the last one.
struct Meter {
    metering: runledger::aws::metrics::Metering,
    pricer: runledger::aws::metrics::WritePricer,
}

impl Meter {
    fn reset(&self) {
        self.metering.requests.take();
        self.metering.writes.take();
    }

    async fn take(&self) -> Result<AwsSample, String> {
        let requests = self.metering.requests.take();
        let units = self.pricer.write_units().await?;
        Ok(AwsSample { requests, units })
    }
}

/// Request counts by (service, operation) and write units, as averages once divided.
#[derive(Default, Clone)]
struct BTreeCounts {
    requests: std::collections::BTreeMap<(String, String), f64>,
    units: f64,
}

impl BTreeCounts {
    fn add(&mut self, sample: AwsSample) {
        for (key, n) in sample.requests {
            *self.requests.entry(key).or_default() += n as f64;
        }
        self.units += sample.units;
    }

    fn per(self, times: usize) -> Self {
        BTreeCounts {
            requests: self
                .requests
                .into_iter()
                .map(|(k, v)| (k, v / times as f64))
                .collect(),
            units: self.units / times as f64,
        }
    }

    fn service(&self, service: &str) -> f64 {
        // `+ 0.0` turns the empty sum's -0.0 into 0.0 for printing.
        self.requests
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum::<f64>()
            + 0.0
    }

    fn describe(&self, service: &str) -> String {
        let parts: Vec<String> = self
            .requests
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|((_, op), n)| format!("{op} {n:.1}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}
