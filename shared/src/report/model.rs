//! The neutral model of an imported (or exported) test run, and the bounded builder the readers
//! fill it through.

use super::{MAX_ATTEMPTS, MAX_TESTS, ReportError, excerpt};
use crate::domain::execution::{MAX_MESSAGE_BYTES, MAX_OUTPUT_BYTES, StepStatus, cap};
use crate::domain::time::Timestamp;
use serde::Serialize;
use std::collections::HashMap;

/// A test run as a report tells it: its tests in the order the report first names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportedRun {
    /// The report's own name (`<testsuites name>`, a lone `<testsuite name>`, CTRF's
    /// `environment.reportName`), if it has one.
    pub name: Option<String>,
    /// When the run started, if the report says (the earliest suite timestamp).
    pub started_at: Option<Timestamp>,
    pub tests: Vec<ImportedTest>,
    /// What the reader noticed but could read past (a duration it could not read, tests it
    /// merged or renamed). Each warning is short; there are at most [`MAX_WARNINGS`] and a last
    /// one saying how many more there were.
    pub warnings: Vec<String>,
}

/// At most this many warnings in a run.
pub const MAX_WARNINGS: usize = 20;

/// One test and every attempt of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedTest {
    /// The test's file when the report names one, else its test suite's name (nested suites'
    /// names joined with ` / `); empty when the report names neither.
    pub suite: String,
    /// JUnit's `classname` (empty when there is none).
    pub classname: String,
    pub name: String,
    /// Oldest first; the last is the test's outcome. A reader never leaves it empty.
    pub attempts: Vec<Attempt>,
}

/// One run of a test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub status: AttemptStatus,
    pub duration_ms: Option<u64>,
    pub started_at: Option<Timestamp>,
    /// At most [`MAX_MESSAGE_BYTES`] bytes.
    pub message: Option<String>,
    /// The failure's trace, then `system-out`, then `system-err`: at most
    /// [`MAX_OUTPUT_BYTES`] bytes.
    pub output: Option<String>,
    /// Whether the message or the output was cut to its cap.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Passed,
    Failed,
    Error,
    Skipped,
}

impl AttemptStatus {
    /// Failed or errored.
    pub fn is_failure(self) -> bool {
        matches!(self, AttemptStatus::Failed | AttemptStatus::Error)
    }
}

impl From<AttemptStatus> for StepStatus {
    fn from(status: AttemptStatus) -> Self {
        match status {
            AttemptStatus::Passed => StepStatus::Passed,
            AttemptStatus::Failed => StepStatus::Failed,
            AttemptStatus::Error => StepStatus::Error,
            AttemptStatus::Skipped => StepStatus::Skipped,
        }
    }
}

/// Counts per test, by its last attempt (the contract's `import` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub skipped: usize,
    /// Tests that passed after a failed or errored attempt (also counted in `passed`).
    pub flaky: usize,
}

impl ImportedRun {
    pub fn counts(&self) -> RunCounts {
        let mut counts = RunCounts {
            tests: self.tests.len(),
            ..RunCounts::default()
        };
        for test in &self.tests {
            match test.outcome() {
                AttemptStatus::Passed => counts.passed += 1,
                AttemptStatus::Failed => counts.failed += 1,
                AttemptStatus::Error => counts.errored += 1,
                AttemptStatus::Skipped => counts.skipped += 1,
            }
            if test.is_flaky() {
                counts.flaky += 1;
            }
        }
        counts
    }
}

impl ImportedTest {
    /// What tells this test apart from every other: (suite, classname, name).
    pub fn identity(&self) -> (&str, &str, &str) {
        (&self.suite, &self.classname, &self.name)
    }

    /// The last attempt, the test's outcome.
    pub fn last_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// The last attempt's status (`skipped` for a test without attempts, which ran nothing).
    pub fn outcome(&self) -> AttemptStatus {
        self.last_attempt()
            .map_or(AttemptStatus::Skipped, |attempt| attempt.status)
    }

    /// Passed after a failed or errored attempt.
    pub fn is_flaky(&self) -> bool {
        match self.attempts.split_last() {
            Some((last, earlier)) => {
                last.status == AttemptStatus::Passed
                    && earlier.iter().any(|attempt| attempt.status.is_failure())
            }
            None => false,
        }
    }
}

impl Attempt {
    /// An attempt with only a status and a duration.
    pub fn new(status: AttemptStatus, duration_ms: Option<u64>) -> Self {
        Attempt {
            status,
            duration_ms,
            started_at: None,
            message: None,
            output: None,
            truncated: false,
        }
    }

    /// Sets the message and the output from the pieces a report gives, capped: the message
    /// (or, without one, the first line of the first piece: the failure's text), and the
    /// pieces (trimmed, empty ones left out) joined by newlines.
    pub(crate) fn with_text(mut self, message: Option<&str>, pieces: &[CappedText]) -> Self {
        let mut truncated = pieces.iter().any(|piece| piece.cut);
        let fallback = pieces
            .first()
            .map(|piece| piece.text.trim())
            .and_then(|text| text.lines().next());
        let message = message
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .or(fallback);
        let (message, message_cut) = cap(message, MAX_MESSAGE_BYTES);
        let joined: Vec<&str> = pieces
            .iter()
            .map(|piece| piece.text.trim())
            .filter(|text| !text.is_empty())
            .collect();
        let joined = joined.join("\n");
        let (output, output_cut) = cap(
            Some(joined.as_str()).filter(|text| !text.is_empty()),
            MAX_OUTPUT_BYTES,
        );
        truncated |= message_cut || output_cut;
        self.message = message;
        self.output = output;
        self.truncated = truncated;
        self
    }
}

/// Text read in pieces and kept up to a cap, with a note of whether more was cut.
#[derive(Debug, Clone, Default)]
pub(crate) struct CappedText {
    pub text: String,
    pub cut: bool,
}

impl CappedText {
    /// Capped for an output piece.
    pub fn push(&mut self, more: &str) {
        if self.cut {
            return;
        }
        let room = MAX_OUTPUT_BYTES.saturating_sub(self.text.len());
        if more.len() <= room {
            self.text.push_str(more);
        } else {
            let mut end = room;
            while !more.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&more[..end]);
            self.cut = true;
        }
    }
}

/// A test's identity as a key.
pub(crate) type Identity = (String, String, String);

/// Collects a run's tests by identity, bounding the work: [`MAX_TESTS`] test cases in all,
/// [`MAX_ATTEMPTS`] attempts of one test, [`MAX_WARNINGS`] warnings.
#[derive(Debug, Default)]
pub(crate) struct RunBuilder {
    tests: Vec<ImportedTest>,
    index: HashMap<Identity, usize>,
    cases: usize,
    warnings: Vec<String>,
    more_warnings: usize,
}

impl RunBuilder {
    /// Counts one more test case (an attempt) against [`MAX_TESTS`]; call it as soon as one
    /// is seen, so an oversized report is refused before it is read whole.
    pub fn count_case(&mut self) -> Result<(), ReportError> {
        self.cases += 1;
        if self.cases > MAX_TESTS {
            return Err(ReportError::TooManyTests { limit: MAX_TESTS });
        }
        Ok(())
    }

    pub fn warn(&mut self, warning: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(warning);
        } else {
            self.more_warnings += 1;
        }
    }

    pub fn contains(&self, identity: &Identity) -> bool {
        self.index.contains_key(identity)
    }

    /// Adds attempts of a test: a new test, or a rerun of one already named (see
    /// [`append_rerun`]).
    pub fn add(&mut self, identity: Identity, attempts: Vec<Attempt>) -> Result<(), ReportError> {
        match self.index.get(&identity) {
            Some(&at) => {
                let test = &mut self.tests[at];
                append_rerun(&mut test.attempts, attempts);
                check_attempts(test)
            }
            None => {
                let (suite, classname, name) = identity.clone();
                let test = ImportedTest {
                    suite,
                    classname,
                    name,
                    attempts,
                };
                check_attempts(&test)?;
                self.index.insert(identity, self.tests.len());
                self.tests.push(test);
                Ok(())
            }
        }
    }

    /// The run, or [`ReportError::NoTests`] when nothing was recognised.
    pub fn finish(
        mut self,
        name: Option<String>,
        started_at: Option<Timestamp>,
    ) -> Result<ImportedRun, ReportError> {
        if self.tests.is_empty() {
            return Err(ReportError::NoTests);
        }
        if self.more_warnings > 0 {
            self.warnings
                .push(format!("{} more warnings left out", self.more_warnings));
        }
        Ok(ImportedRun {
            name,
            started_at,
            tests: self.tests,
            warnings: self.warnings,
        })
    }
}

/// Appends a rerun's attempts to a test's: an earlier attempt that passed (had no outcome) is
/// taken as failed, since a test is rerun only after it failed. Returns how many were.
pub(crate) fn append_rerun(attempts: &mut Vec<Attempt>, more: Vec<Attempt>) -> usize {
    let mut converted = 0;
    if let Some(last) = attempts.last_mut()
        && last.status == AttemptStatus::Passed
    {
        last.status = AttemptStatus::Failed;
        if last.message.is_none() {
            last.message = Some("rerun: the report gives this attempt no outcome".to_owned());
        }
        converted = 1;
    }
    attempts.extend(more);
    converted
}

pub(crate) fn check_attempts(test: &ImportedTest) -> Result<(), ReportError> {
    if test.attempts.len() > MAX_ATTEMPTS {
        return Err(ReportError::TooManyAttempts {
            name: excerpt(&test.name, 100),
            limit: MAX_ATTEMPTS,
        });
    }
    Ok(())
}

/// A duration in whole milliseconds from seconds as reports write them (`0.25`, `12`,
/// `1,234.5` as some locales format it); `None` for anything negative or unreadable.
pub(crate) fn seconds_to_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let normal = if text.contains('.') {
        text.replace(',', "")
    } else {
        text.replace(',', ".")
    };
    let seconds: f64 = normal.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let millis = (seconds * 1000.0).round();
    // u64::MAX as f64 rounds up; anything that large is nonsense anyway.
    if millis >= 1.8e19 {
        return None;
    }
    Some(millis as u64)
}

/// A report's timestamp: RFC 3339, or without an offset (jest-junit, mocha, Surefire) as UTC.
pub(crate) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Some(at) = Timestamp::parse(text) {
        return Some(at);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(Timestamp::from_millis(naive.and_utc().timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(status: AttemptStatus) -> Attempt {
        Attempt::new(status, Some(1))
    }

    fn test(statuses: &[AttemptStatus]) -> ImportedTest {
        ImportedTest {
            suite: "s".into(),
            classname: "c".into(),
            name: "t".into(),
            attempts: statuses.iter().copied().map(attempt).collect(),
        }
    }

    #[test]
    fn outcome_is_the_last_attempt_and_flaky_is_a_pass_after_a_failure() {
        use AttemptStatus::*;
        assert_eq!(test(&[Failed, Passed]).outcome(), Passed);
        assert!(test(&[Failed, Passed]).is_flaky());
        assert!(test(&[Error, Failed, Passed]).is_flaky());
        assert!(!test(&[Passed]).is_flaky());
        assert!(!test(&[Failed, Failed]).is_flaky());
        assert!(!test(&[Skipped, Passed]).is_flaky());
        assert!(!test(&[Passed, Failed]).is_flaky());
        assert_eq!(test(&[]).outcome(), Skipped);
        assert!(!test(&[]).is_flaky());
    }

    #[test]
    fn counts_go_by_last_attempt() {
        use AttemptStatus::*;
        let run = ImportedRun {
            tests: vec![
                test(&[Passed]),
                test(&[Failed, Passed]),
                test(&[Failed, Failed]),
                test(&[Error]),
                test(&[Skipped]),
            ],
            ..ImportedRun::default()
        };
        assert_eq!(
            run.counts(),
            RunCounts {
                tests: 5,
                passed: 2,
                failed: 1,
                errored: 1,
                skipped: 1,
                flaky: 1
            }
        );
    }

    #[test]
    fn text_is_capped_on_char_boundaries() {
        let mut piece = CappedText::default();
        piece.push(&"é".repeat(MAX_OUTPUT_BYTES));
        assert!(piece.cut);
        assert!(piece.text.len() <= MAX_OUTPUT_BYTES);
        piece.push("more");
        assert!(!piece.text.ends_with("more"));
        let long_message = "m".repeat(MAX_MESSAGE_BYTES + 10);
        let attempt =
            Attempt::new(AttemptStatus::Failed, None).with_text(Some(&long_message), &[piece]);
        assert!(attempt.truncated);
        assert_eq!(attempt.message.unwrap().len(), MAX_MESSAGE_BYTES);
        assert!(attempt.output.unwrap().len() <= MAX_OUTPUT_BYTES);
    }

    #[test]
    fn message_falls_back_to_the_first_line_of_the_trace() {
        let mut trace = CappedText::default();
        trace.push("\n  AssertionError: boom\n  at x\n");
        let mut out = CappedText::default();
        out.push("  \n");
        let attempt = Attempt::new(AttemptStatus::Failed, None).with_text(None, &[trace, out]);
        assert_eq!(attempt.message.as_deref(), Some("AssertionError: boom"));
        assert_eq!(
            attempt.output.as_deref(),
            Some("AssertionError: boom\n  at x")
        );
        assert!(!attempt.truncated);
        // Standard output is no message.
        let mut out = CappedText::default();
        out.push("printed");
        let attempt = Attempt::new(AttemptStatus::Passed, None)
            .with_text(None, &[CappedText::default(), out]);
        assert_eq!(attempt.message, None);
        assert_eq!(attempt.output.as_deref(), Some("printed"));
    }

    #[test]
    fn reads_seconds_as_reports_write_them() {
        assert_eq!(seconds_to_millis("0.25"), Some(250));
        assert_eq!(seconds_to_millis("12"), Some(12_000));
        assert_eq!(seconds_to_millis("0.0004"), Some(0));
        assert_eq!(seconds_to_millis("1,234.5"), Some(1_234_500));
        assert_eq!(seconds_to_millis("0,5"), Some(500));
        assert_eq!(seconds_to_millis("-1"), None);
        assert_eq!(seconds_to_millis("NaN"), None);
        assert_eq!(seconds_to_millis("inf"), None);
        assert_eq!(seconds_to_millis("1e300"), None);
        assert_eq!(seconds_to_millis("soon"), None);
    }

    #[test]
    fn reads_timestamps_with_and_without_offsets() {
        let utc = parse_timestamp("2026-12-01T20:30:29.800870+00:00").unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-12-01T20:30:29.800Z");
        let naive = parse_timestamp("2026-12-01T20:30:50").unwrap();
        assert_eq!(naive.to_rfc3339(), "2026-12-01T20:30:50.000Z");
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn builder_merges_attempts_and_bounds_them() {
        let mut builder = RunBuilder::default();
        let id: Identity = ("s".into(), "c".into(), "t".into());
        builder
            .add(id.clone(), vec![attempt(AttemptStatus::Failed)])
            .unwrap();
        builder
            .add(id.clone(), vec![attempt(AttemptStatus::Passed)])
            .unwrap();
        let too_many = vec![attempt(AttemptStatus::Failed); MAX_ATTEMPTS];
        assert_eq!(
            builder.add(id, too_many),
            Err(ReportError::TooManyAttempts {
                name: "t".into(),
                limit: MAX_ATTEMPTS
            })
        );
        for _ in 0..MAX_WARNINGS + 3 {
            builder.warn("w".into());
        }
        let run = builder.finish(None, None).unwrap();
        assert_eq!(run.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(run.warnings.last().unwrap(), "3 more warnings left out");
        assert_eq!(
            RunBuilder::default().finish(None, None),
            Err(ReportError::NoTests)
        );
    }
}
