//! `runledger-local bench` on the real binary, with tiny numbers: the embedded bench at an
//! inline and a partitioned step count, with live watchers (`--watchers`), imports
//! (`--import`), the AWS bench against the emulator leaving nothing behind, and the AWS bench
//! refusing a real account unless told otherwise.

use runledger_testkit::emulator::{Emulator, REGION};
use runledger_testkit::server::local_binary;
use std::process::{Command, Output};
use tempfile::TempDir;

/// `runledger-local bench ARGS` with no AWS variable of the caller's: only `aws_env`, plus
/// dummy credentials and no profile or instance metadata to fall back on.
fn bench(args: &[&str], aws_env: &[(&str, &str)]) -> (Command, TempDir) {
    let home = TempDir::new().expect("a temp home");
    let mut command = Command::new(local_binary());
    command.arg("bench").args(args).current_dir(home.path());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let empty = home.path().join("empty-aws-config");
    std::fs::write(&empty, "").expect("an empty AWS config file");
    command
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(aws_env.iter().copied());
    (command, home)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_succeeded(output: &Output, what: &str) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// The first line of `text` that starts with `prefix`.
#[track_caller]
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}` in:\n{text}"))
}

/// The `visible p99` figure of a result row.
fn visible_p99(row: &str) -> f64 {
    let figure = row
        .split("visible p99")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix("ms"))
        .unwrap_or_else(|| panic!("no `visible p99 ... ms` in {row:?}"));
    figure
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`visible p99` is not a number in {row:?}"))
}

#[test]
fn bench_runs_at_inline_and_partitioned_step_counts() {
    // 60 steps: partitioned (steps are left out of `GET /executions/{id}`); 5: inline.
    for steps in ["60", "5"] {
        let (mut command, _home) = bench(
            &[
                "--executions",
                "4",
                "--steps",
                steps,
                "--concurrency",
                "4",
                "--transport",
                "both",
            ],
            &[],
        );
        let output = command.output().expect("run the bench");
        let stdout = assert_succeeded(&output, &format!("bench --steps {steps}"));
        assert!(
            stdout.contains(&format!("4 executions x {steps} steps")),
            "{stdout}"
        );
        for transport in ["in-process", "http"] {
            let row = line_starting(&stdout, &format!("{transport} run 1"));
            for figure in ["starts/s", "step reports/s", "report p50", "p99"] {
                assert!(row.contains(figure), "no {figure} in {row:?}");
            }
            // Every 10th report is read back, so 4 x N reports time a few reads.
            assert!(
                visible_p99(row) > 0.0,
                "no visibility read was timed: {row:?}"
            );
        }
        assert!(stdout.contains("peak RSS:"), "{stdout}");
    }
}

/// Every table, queue and bus whose name is `prefix` or starts with `prefix-`.
async fn resources_named(emulator: &Emulator, prefix: &str) -> Vec<String> {
    let sdk = emulator.sdk_config().await;
    let ours = |name: &str| name == prefix || name.starts_with(&format!("{prefix}-"));
    let mut found = Vec::new();
    let tables = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("list tables");
    found.extend(
        tables
            .into_iter()
            .filter(|t| ours(t))
            .map(|t| format!("table {t}")),
    );
    let queues = aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .queue_name_prefix(prefix)
        .send()
        .await
        .expect("list queues")
        .queue_urls
        .unwrap_or_default();
    found.extend(
        queues
            .into_iter()
            .filter(|url| ours(url.rsplit('/').next().unwrap_or_default()))
            .map(|url| format!("queue {url}")),
    );
    let buses = aws_sdk_eventbridge::Client::new(&sdk)
        .list_event_buses()
        .name_prefix(prefix)
        .send()
        .await
        .expect("list event buses")
        .event_buses
        .unwrap_or_default();
    found.extend(
        buses
            .into_iter()
            .filter_map(|b| b.name)
            .filter(|name| ours(name))
            .map(|name| format!("bus {name}")),
    );
    found
}

#[tokio::test]
async fn aws_bench_deletes_what_it_created() {
    let emulator = Emulator::get();
    let (mut command, _home) = bench(
        &["--backend", "aws", "--executions", "2", "--analytics"],
        &[("AWS_ENDPOINT_URL", &emulator.endpoint)],
    );
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the bench");
    // The bench names its resources after its process id.
    let prefix = format!("runledger-bench-{}", child.id());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("wait for the bench")
        .expect("run the bench");
    let stdout = assert_succeeded(&output, "bench --backend aws");
    assert_eq!(
        stdout.matches("| start a case |").count(),
        2,
        "the requests table is printed without rollups and with: {stdout}"
    );
    let (without, with) = stdout
        .split_once("finishes counted in analytics rollups")
        .unwrap_or_else(|| panic!("no table with rollups: {stdout}"));
    assert!(without.contains("without analytics rollups"), "{stdout}");
    // A complete adds its finish to the rollup: a read and a transaction more.
    let complete = |table: &str| -> f64 {
        let row = line_starting(table, "| finalize (complete) |");
        row.split('|')
            .nth(2)
            .unwrap_or_default()
            .trim()
            .parse()
            .expect("a count")
    };
    assert_eq!((complete(without), complete(with)), (2.0, 4.0), "{stdout}");
    assert!(
        with.contains("| complete, one test's executions all at once (one hot rollup) |"),
        "{stdout}"
    );
    let left = resources_named(&emulator, &prefix).await;
    assert!(left.is_empty(), "the bench left behind: {left:?}\n{stdout}");
    assert!(
        stdout.contains(&prefix),
        "the bench says what it created and deleted: {stdout}"
    );
}

#[test]
fn aws_bench_refuses_a_real_account_without_the_flag() {
    // No AWS_ENDPOINT_URL: the SDK would talk to real AWS.
    let (mut command, _home) = bench(&["--backend", "aws", "--executions", "2"], &[]);
    let output = command.output().expect("run the bench");
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "the bench ran against real AWS without --yes-real-account:\n{}\n{stderr}",
        text(&output.stdout)
    );
    for words in [
        "AWS_ENDPOINT_URL",
        "--yes-real-account",
        "creates and deletes",
        "costs money",
    ] {
        assert!(
            stderr.contains(words),
            "the refusal names {words:?}: {stderr}"
        );
    }
}

/// The number after `label` in `text` (up to the next space), e.g. `p99` in `p99 1.23 ms`.
fn figure_after(text: &str, label: &str) -> f64 {
    let rest = text
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{label}` in {text:?}"));
    let figure = rest.split_whitespace().next().unwrap_or_default();
    figure
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or_else(|_| panic!("`{label}` is not followed by a number in {text:?}"))
}

#[test]
fn bench_watchers_streams_every_entry_and_prints_the_latencies_and_throughputs() {
    // 10 watchers: 9 spread round the 4 executions, 1 (a tenth) more on the first.
    let (mut command, _home) = bench(
        &[
            "--executions",
            "4",
            "--steps",
            "5",
            "--concurrency",
            "4",
            "--watchers",
            "10",
            "--runs",
            "3",
        ],
        &[],
    );
    let output = command.output().expect("run the bench");
    let stdout = assert_succeeded(&output, "bench --watchers 10");
    assert!(
        stdout.contains("10 watchers: 9 spread over the executions, 1 on the first"),
        "{stdout}"
    );
    let medians = line_starting(&stdout, "  report to watcher, medians:");
    let (p50, p99) = (figure_after(medians, "p50"), figure_after(medians, "p99"));
    assert!(
        p50 > 0.0 && p50 <= p99,
        "report-to-watcher p50 {p50} ms, p99 {p99} ms: {medians:?}"
    );
    // Each watcher gets its execution's 8 entries (queued, running, 5 steps, passed), in
    // each of the 3 runs; the bench itself fails if any is missing, repeated or out of order.
    assert!(
        medians.contains("delivered 240 of 240 entries"),
        "{medians:?}"
    );
    let ratio = line_starting(&stdout, "step reports/s watched / unwatched:");
    // `step reports/s watched / unwatched: 0.950 (4321 / 4549, medians)`
    let numbers: Vec<f64> = ratio
        .split_once('(')
        .and_then(|(_, rest)| rest.split([',', ')']).next())
        .unwrap_or_else(|| panic!("no `(watched / unwatched)` in {ratio:?}"))
        .split(" / ")
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {n:?} in {ratio:?}"))
        })
        .collect();
    let [watched, unwatched] = numbers[..] else {
        panic!("not two throughputs in {ratio:?}");
    };
    assert!(
        watched > 0.0 && unwatched > 0.0,
        "both throughputs are measured: {ratio:?}"
    );
    for row in ["unwatched median", "watched median"] {
        let line = line_starting(&stdout, row);
        assert!(figure_after(line, "step reports/s") > 0.0, "{line:?}");
    }
}

#[test]
fn bench_import_times_a_new_and_a_known_report() {
    let (mut command, _home) = bench(&["--import", "100", "--runs", "3"], &[]);
    let output = command.output().expect("run the bench");
    let stdout = assert_succeeded(&output, "bench --import 100");
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(runs.len(), 3, "{stdout}");
    for run in runs {
        // `run 1: 100 tests (2 flaky, 7 KiB): new tests 12.3 ms, known tests 9.8 ms`
        assert!(run.contains(": 100 tests (2 flaky,"), "{run}");
        let (new, known) = (
            figure_after(run, "new tests"),
            figure_after(run, "known tests"),
        );
        assert!(new > 0.0 && known > 0.0, "{run}");
    }
    let median = line_starting(&stdout, "median of 3:");
    assert!(figure_after(median, "new tests") > 0.0, "{median}");
    // What it is not for.
    let (mut command, _home) = bench(&["--import", "1001"], &[]);
    let output = command.output().expect("run the bench");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("1..1000"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn bench_analytics_prints_both_medians_side_by_side() {
    let args = [
        "--analytics",
        "--executions",
        "20",
        "--steps",
        "2",
        "--concurrency",
        "4",
        "--runs",
        "1",
        "--transport",
        "in-process",
    ];
    let (mut command, _home) = bench(&args, &[]);
    let output = command.output().expect("run the bench");
    let stdout = assert_succeeded(&output, "bench --analytics");
    for row in ["in-process median rollups", "in-process median none"] {
        let line = line_starting(&stdout, row);
        assert!(figure_after(line, "completes/s") > 0.0, "{line}");
    }
    let ratio = line_starting(&stdout, "in-process: with rollups");
    assert!(figure_after(ratio, "completes/s") > 0.0, "{ratio}");
    let (mut command, _home) = bench(&["--analytics", "--import", "10"], &[]);
    let output = command.output().expect("run the bench");
    assert!(
        !output.status.success(),
        "--analytics and --import do not mix"
    );
}

#[test]
fn bench_rate_paces_the_reports_and_floor_prints_the_ratio() {
    // 40 reports at 200/s: the schedule alone takes 0.2 s, so the served rate is about 200/s
    // (it cannot be more) and the ratio line names both floors.
    let (mut command, _home) = bench(
        &[
            "--executions",
            "20",
            "--steps",
            "2",
            "--rate",
            "200",
            "--concurrency",
            "8",
            "--transport",
            "both",
            "--floor",
        ],
        &[],
    );
    let output = command.output().expect("run the bench");
    let stdout = assert_succeeded(&output, "bench --rate --floor");
    assert!(
        stdout.contains("open loop: 200 step reports/s offered, at most 8 in flight"),
        "{stdout}"
    );
    for transport in ["in-process", "http"] {
        let row = line_starting(&stdout, &format!("{transport} run 1"));
        let served = figure_after(row, "step reports/s");
        assert!(served > 0.0 && served <= 210.0, "{row}");
        let ratio = line_starting(&stdout, &format!("{transport}: step reports/s"));
        assert!(ratio.contains("x the batched floor"), "{ratio}");
    }
    let floor = line_starting(&stdout, "floor median of 2");
    assert!(figure_after(floor, "1 KiB rows:") > 0.0, "{floor}");
    assert!(figure_after(floor, "one per commit |") > 0.0, "{floor}");

    let (mut command, _home) = bench(&["--rate", "0"], &[]);
    let output = command.output().expect("run the bench");
    assert!(!output.status.success(), "a rate of 0 is refused");
    let (mut command, _home) = bench(&["--floor", "--analytics"], &[]);
    let output = command.output().expect("run the bench");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--floor"),
        "{}",
        text(&output.stderr)
    );
}
