//! CTRF JSON (ctrf.io): the reader and the writer.
//!
//! Reading: CTRF's `passed` and `failed` are passed and failed (`failed` with `rawStatus`
//! `error` is error, as the writer writes it), `skipped`, `pending` and `other` are skipped;
//! any other status is refused. `retryAttempts` are the earlier attempts, in `attempt` order;
//! `retries` without them, or `flaky` without an earlier failure, stand for earlier failed
//! attempts of which the report says nothing more. A test's suite is its `filePath`, else the
//! first of its `suite` path; its class name is the rest of that path, joined with ` > `.
//! Fields runledger has no use for are ignored.

use super::model::{Attempt, AttemptStatus, CappedText, ImportedRun, ImportedTest, RunBuilder};
use super::{MAX_ATTEMPTS, MAX_TESTS, ReportError, excerpt};
use crate::domain::time::Timestamp;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

/// The CTRF specification version the writer follows.
pub const CTRF_SPEC_VERSION: &str = "0.0.0";

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "reportFormat")]
    report_format: Option<String>,
    results: Results,
}

#[derive(Debug, Deserialize)]
struct Results {
    tests: Bounded<Test, MAX_TESTS>,
    #[serde(default)]
    summary: Option<Summary>,
    #[serde(default)]
    environment: Option<Environment>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(default)]
    start: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Environment {
    #[serde(rename = "reportName", default)]
    report_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Test {
    name: String,
    status: String,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    stop: Option<f64>,
    #[serde(default)]
    suite: Option<SuitePath>,
    #[serde(rename = "filePath", default)]
    file_path: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    trace: Option<String>,
    #[serde(default)]
    stdout: Option<Vec<String>>,
    #[serde(default)]
    stderr: Option<Vec<String>>,
    #[serde(rename = "rawStatus", default)]
    raw_status: Option<String>,
    #[serde(default)]
    retries: Option<u64>,
    #[serde(rename = "retryAttempts", default)]
    retry_attempts: Option<Bounded<RetryAttempt, MAX_ATTEMPTS>>,
    #[serde(default)]
    flaky: Option<bool>,
}

/// CTRF's `suite`: a path of names (older producers write one string).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SuitePath {
    One(String),
    Path(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct RetryAttempt {
    #[serde(default)]
    attempt: Option<u64>,
    status: String,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    stop: Option<f64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    trace: Option<String>,
    #[serde(default)]
    stdout: Option<Vec<String>>,
    #[serde(default)]
    stderr: Option<Vec<String>>,
    #[serde(default)]
    extra: Option<Map<String, Value>>,
}

/// A JSON array of at most `N` items: reading stops at the first one past that.
#[derive(Debug)]
struct Bounded<T, const N: usize>(Vec<T>);

const TOO_MANY: &str = "more than the limit of";

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Items<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::custom(format!("{TOO_MANY} {N} items")));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }
        deserializer.deserialize_seq(Items::<T, N>(PhantomData))
    }
}

/// Reads a CTRF JSON report.
pub fn read_ctrf(input: &[u8]) -> Result<ImportedRun, ReportError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    if let Err(error) = std::str::from_utf8(input) {
        return Err(ReportError::NotUtf8 {
            offset: error.valid_up_to(),
        });
    }
    let mut json = serde_json::Deserializer::from_slice(input);
    let document: Document = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "results.tests" && inner.to_string().starts_with(TOO_MANY) {
            return ReportError::TooManyTests { limit: MAX_TESTS };
        }
        let detail = if path == "." {
            inner.to_string()
        } else {
            format!("{}: {inner}", excerpt(&path, 80))
        };
        ReportError::InvalidCtrf {
            detail: excerpt(&detail, 240),
        }
    })?;
    json.end().map_err(|error| ReportError::InvalidCtrf {
        detail: excerpt(&error.to_string(), 200),
    })?;
    if let Some(format) = &document.report_format
        && format != "CTRF"
    {
        return Err(ReportError::InvalidCtrf {
            detail: format!("reportFormat is `{}`, not `CTRF`", excerpt(format, 40)),
        });
    }
    let results = document.results;
    let mut builder = RunBuilder::default();
    let mut unnamed = 0;
    let mut implied = 0;
    for test in results.tests.0 {
        if test.name.is_empty() {
            unnamed += 1;
            continue;
        }
        let identity = identity(&test);
        let (attempts, implied_here) = attempts(&mut builder, test)?;
        implied += implied_here;
        if builder.contains(&identity) {
            builder.warn(format!(
                "test `{}` of `{}` is listed more than once; read as reruns",
                excerpt(&identity.2, 80),
                excerpt(&identity.0, 80)
            ));
        }
        builder.add(identity, attempts)?;
    }
    if unnamed > 0 {
        builder.warn(format!("{unnamed} tests without a name were left out"));
    }
    if implied > 0 {
        builder.warn(format!(
            "{implied} earlier attempts are known only from `retries` or `flaky`: read as failed, \
             without details"
        ));
    }
    let name = results
        .environment
        .and_then(|environment| environment.report_name)
        .filter(|name| !name.trim().is_empty());
    let started_at = results
        .summary
        .and_then(|summary| summary.start)
        .and_then(millis_timestamp);
    builder.finish(name, started_at)
}

fn identity(test: &Test) -> (String, String, String) {
    let path: Vec<&str> = match &test.suite {
        None => Vec::new(),
        Some(SuitePath::One(one)) => vec![one.as_str()],
        Some(SuitePath::Path(path)) => path.iter().map(String::as_str).collect(),
    };
    let (suite, classname) = match test.file_path.as_deref().filter(|file| !file.is_empty()) {
        Some(file) => (file.to_owned(), path.join(" > ")),
        None => match path.split_first() {
            Some((first, rest)) => ((*first).to_owned(), rest.join(" > ")),
            None => (String::new(), String::new()),
        },
    };
    (suite, classname, test.name.clone())
}

/// A test's attempts, oldest first, and how many of them were implied (not described).
fn attempts(builder: &mut RunBuilder, test: Test) -> Result<(Vec<Attempt>, usize), ReportError> {
    let name = test.name;
    let raw_error = test.raw_status.as_deref() == Some("error");
    let status = status(&name, &test.status, raw_error)?;
    let mut attempts = Vec::new();
    let mut implied = 0;
    match test.retry_attempts {
        Some(Bounded(mut earlier)) => {
            earlier.sort_by_key(|attempt| attempt.attempt.unwrap_or(0));
            for attempt in earlier {
                builder.count_case()?;
                let raw_error = attempt
                    .extra
                    .as_ref()
                    .and_then(|extra| extra.get("rawStatus"))
                    .and_then(Value::as_str)
                    == Some("error");
                let mut read = Attempt::new(
                    self::status(&name, &attempt.status, raw_error)?,
                    duration(attempt.duration, attempt.start, attempt.stop),
                )
                .with_text(
                    attempt.message.as_deref(),
                    &pieces(
                        attempt.trace.as_deref(),
                        attempt.stdout.as_deref(),
                        attempt.stderr.as_deref(),
                    ),
                );
                read.started_at = attempt.start.and_then(millis_timestamp);
                attempts.push(read);
            }
        }
        None => {
            let retries = test.retries.unwrap_or(0);
            if retries >= MAX_ATTEMPTS as u64 {
                return Err(too_many_attempts(&name));
            }
            for _ in 0..retries {
                builder.count_case()?;
                attempts.push(implied_failure());
                implied += 1;
            }
        }
    }
    if test.flaky == Some(true)
        && status == AttemptStatus::Passed
        && !attempts.iter().any(|attempt| attempt.status.is_failure())
    {
        builder.count_case()?;
        attempts.push(implied_failure());
        implied += 1;
    }
    builder.count_case()?;
    let mut last = Attempt::new(status, duration(test.duration, test.start, test.stop)).with_text(
        test.message.as_deref(),
        &pieces(
            test.trace.as_deref(),
            test.stdout.as_deref(),
            test.stderr.as_deref(),
        ),
    );
    last.started_at = test.start.and_then(millis_timestamp);
    attempts.push(last);
    if attempts.len() > MAX_ATTEMPTS {
        return Err(too_many_attempts(&name));
    }
    Ok((attempts, implied))
}

fn too_many_attempts(name: &str) -> ReportError {
    ReportError::TooManyAttempts {
        name: excerpt(name, 100),
        limit: MAX_ATTEMPTS,
    }
}

/// A CTRF status as an attempt's; anything but CTRF's five is refused.
fn status(name: &str, status: &str, raw_error: bool) -> Result<AttemptStatus, ReportError> {
    match status {
        "passed" => Ok(AttemptStatus::Passed),
        "failed" if raw_error => Ok(AttemptStatus::Error),
        "failed" => Ok(AttemptStatus::Failed),
        "skipped" | "pending" | "other" => Ok(AttemptStatus::Skipped),
        other => Err(ReportError::UnknownStatus {
            name: excerpt(name, 100),
            status: excerpt(other, 40),
        }),
    }
}

/// An earlier attempt the report only counts.
fn implied_failure() -> Attempt {
    let mut attempt = Attempt::new(AttemptStatus::Failed, None);
    attempt.message = Some("an earlier attempt failed (the report gives no details)".to_owned());
    attempt
}

/// A duration in milliseconds: `duration`, else `stop - start`.
fn duration(duration: Option<f64>, start: Option<f64>, stop: Option<f64>) -> Option<u64> {
    let millis = match (duration, start, stop) {
        (Some(duration), _, _) => duration,
        (None, Some(start), Some(stop)) => stop - start,
        _ => return None,
    };
    (0.0..1.8e19)
        .contains(&millis)
        .then(|| millis.round() as u64)
}

/// Milliseconds since the epoch as a timestamp (none for zero or nonsense).
fn millis_timestamp(millis: f64) -> Option<Timestamp> {
    // Up to the year 9999.
    (millis.is_finite() && millis > 0.0 && millis < 253_402_300_800_000.0)
        .then(|| Timestamp::from_millis(millis.round() as i64))
}

/// The trace, the standard output and the standard error as capped pieces.
fn pieces(
    trace: Option<&str>,
    stdout: Option<&[String]>,
    stderr: Option<&[String]>,
) -> [CappedText; 3] {
    let lines = |lines: Option<&[String]>| {
        let mut piece = CappedText::default();
        for line in lines.unwrap_or_default() {
            piece.push(line);
            piece.push("\n");
        }
        piece
    };
    let mut first = CappedText::default();
    if let Some(trace) = trace {
        first.push(trace);
    }
    [first, lines(stdout), lines(stderr)]
}

/// Writes a run as CTRF JSON, valid against the CTRF schema: each test's last attempt is the
/// test, its earlier ones are `retryAttempts` (with `retries` and `flaky`). CTRF has no error
/// status: an errored attempt is `failed` with `rawStatus` (in `extra` for retry attempts)
/// `error`, which [`read_ctrf`] reads back as error. A failure's output is its `trace`,
/// another attempt's its `stdout`. The summary's `start` is the run's start (else its
/// earliest attempt's, else 0) and `stop` its latest end.
pub fn write_ctrf(run: &ImportedRun) -> String {
    let counts = run.counts();
    let start = run
        .started_at
        .or_else(|| {
            run.tests
                .iter()
                .flat_map(|test| &test.attempts)
                .filter_map(|attempt| attempt.started_at)
                .min()
        })
        .map_or(0, Timestamp::millis);
    let mut stop = start;
    let mut elapsed: u64 = 0;
    let mut suites = HashSet::new();
    let mut tests = Vec::with_capacity(run.tests.len());
    for test in &run.tests {
        suites.insert(test.suite.as_str());
        for attempt in &test.attempts {
            let ms = attempt.duration_ms.unwrap_or(0);
            elapsed = elapsed.saturating_add(ms);
            if let Some(at) = attempt.started_at {
                stop = stop.max(
                    at.millis()
                        .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
                );
            }
        }
        tests.push(test_json(test));
    }
    let stop = stop.max(start.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX)));
    let mut results = json!({
        "tool": {"name": "runledger"},
        "summary": {
            "tests": counts.tests,
            "passed": counts.passed,
            "failed": counts.failed + counts.errored,
            "skipped": counts.skipped,
            "pending": 0,
            "other": 0,
            "flaky": counts.flaky,
            "suites": suites.len(),
            "start": start,
            "stop": stop,
            "duration": stop.saturating_sub(start),
        },
        "tests": tests,
    });
    if let Some(name) = &run.name {
        results["environment"] = json!({"reportName": name});
    }
    let document = json!({
        "reportFormat": "CTRF",
        "specVersion": CTRF_SPEC_VERSION,
        "generatedBy": "runledger",
        "results": results,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    status: &'static str,
    duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<Vec<&'a str>>,
}

impl<'a> AttemptJson<'a> {
    fn of(attempt: &'a Attempt) -> Self {
        let duration = attempt.duration_ms.unwrap_or(0);
        let start = attempt.started_at.map(Timestamp::millis);
        let (trace, stdout) = match &attempt.output {
            Some(output) if attempt.status.is_failure() => (Some(output.as_str()), None),
            Some(output) => (None, Some(output.split('\n').collect())),
            None => (None, None),
        };
        AttemptJson {
            status: match attempt.status {
                AttemptStatus::Passed => "passed",
                AttemptStatus::Failed | AttemptStatus::Error => "failed",
                AttemptStatus::Skipped => "skipped",
            },
            duration,
            start,
            stop: start.map(|start| start.saturating_add(i64::try_from(duration).unwrap_or(0))),
            message: attempt.message.as_deref(),
            trace,
            stdout,
        }
    }
}

fn test_json(test: &ImportedTest) -> Value {
    let name = if test.name.is_empty() {
        "(unnamed)"
    } else {
        test.name.as_str()
    };
    let (last, earlier) = match test.attempts.split_last() {
        Some((last, earlier)) => (Some(last), earlier),
        None => (None, &[][..]),
    };
    let mut json = match last {
        Some(last) => serde_json::to_value(AttemptJson::of(last)).unwrap_or_default(),
        None => json!({"status": "skipped", "duration": 0}),
    };
    json["name"] = json!(name);
    let suite: Vec<&str> = match (test.suite.as_str(), test.classname.as_str()) {
        ("", "") => Vec::new(),
        (suite, "") => vec![suite],
        (suite, classname) => vec![suite, classname],
    };
    if !suite.is_empty() {
        json["suite"] = json!(suite);
    }
    if last.is_some_and(|last| last.status == AttemptStatus::Error) {
        json["rawStatus"] = json!("error");
    }
    json["retries"] = json!(earlier.len());
    if !earlier.is_empty() {
        let attempts: Vec<Value> = earlier
            .iter()
            .enumerate()
            .map(|(at, attempt)| {
                let mut json = serde_json::to_value(AttemptJson::of(attempt)).unwrap_or_default();
                json["attempt"] = json!(at + 1);
                if attempt.status == AttemptStatus::Error {
                    json["extra"] = json!({"rawStatus": "error"});
                }
                json
            })
            .collect();
        json["retryAttempts"] = json!(attempts);
    }
    json["flaky"] = json!(test.is_flaky());
    json
}

#[cfg(test)]
mod tests;
