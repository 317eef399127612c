//! Test reports: reading JUnit XML and CTRF JSON into one neutral model of a test run
//! (imports), and writing that model back out as either format (exports).
//!
//! - [`read_junit`] reads the JUnit XML dialects test tools write (Maven Surefire, pytest's
//!   xunit1 and xunit2 with pytest-rerunfailures, jest-junit, gotestsum, the JUnit 5 console
//!   launcher, node:test, mocha-junit-reporter). It never reads a DTD or expands an entity: a
//!   report with a `<!DOCTYPE>` is refused.
//! - [`read_ctrf`] reads CTRF JSON (ctrf.io).
//! - [`write_junit`] writes Surefire's shape of JUnit XML; [`write_ctrf`] writes CTRF JSON
//!   valid against the CTRF schema.
//!
//! A test is identified by its suite (its file when the report names one, else its test suite),
//! its class name and its name ([`ImportedTest::identity`]). Repeated runs of one test
//! (reruns) are its [`Attempt`]s, oldest first; its outcome is its last attempt's. Every
//! reader bounds its work ([`MAX_TESTS`], [`MAX_ATTEMPTS`], [`MAX_DEPTH`]) and caps each
//! attempt's message and output as step results are capped.
//!
//! Everything here is pure: no I/O, no clock.

mod ctrf;
pub mod export;
pub mod import;
mod junit;
mod model;

pub use ctrf::{read_ctrf, write_ctrf};
pub use junit::{read_junit, write_junit};
pub use model::{Attempt, AttemptStatus, ImportedRun, ImportedTest, MAX_WARNINGS, RunCounts};

/// At most this many test cases in one report, reruns included (each `<testcase>` and each
/// Surefire rerun element, each CTRF test and retry attempt counts once).
pub const MAX_TESTS: usize = 100_000;
/// At most this many attempts of one test.
pub const MAX_ATTEMPTS: usize = 100;
/// At most this many levels of nested XML elements.
pub const MAX_DEPTH: usize = 64;

/// The two report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    Junit,
    Ctrf,
}

impl ReportFormat {
    /// `junit` or `ctrf` (as in `?format=`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "junit" => Some(ReportFormat::Junit),
            "ctrf" => Some(ReportFormat::Ctrf),
            _ => None,
        }
    }

    /// Reads a report of this format.
    pub fn read(self, input: &[u8]) -> Result<ImportedRun, ReportError> {
        match self {
            ReportFormat::Junit => read_junit(input),
            ReportFormat::Ctrf => read_ctrf(input),
        }
    }

    /// Writes a run in this format.
    pub fn write(self, run: &ImportedRun) -> String {
        match self {
            ReportFormat::Junit => write_junit(run),
            ReportFormat::Ctrf => write_ctrf(run),
        }
    }

    /// The media type of a report of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Junit => "application/xml",
            ReportFormat::Ctrf => "application/json",
        }
    }
}

/// Why a report was refused. The messages are meant for a `400` problem's `detail`: they say
/// what is wrong and quote at most a short excerpt of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the report is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error(
        "the report has a document type declaration (<!DOCTYPE>); DTDs and entity declarations \
         are refused, never read"
    )]
    Doctype,
    #[error(
        "the report refers to the entity `&{name};`, which XML does not predefine; entities are \
         never expanded"
    )]
    UndefinedEntity { name: String },
    #[error("the report is not well-formed XML: {detail} (near byte {offset})")]
    MalformedXml { detail: String, offset: u64 },
    #[error("the report ends before its <{element}> element is closed (is it truncated?)")]
    Truncated { element: String },
    #[error("the report's root element is <{root}>: JUnit XML has <testsuites> or <testsuite>")]
    NotJunit { root: String },
    #[error("the report nests elements more than {limit} levels deep")]
    TooDeep { limit: usize },
    #[error(
        "the report holds more than {limit} test cases (reruns included); split it into smaller \
         reports"
    )]
    TooManyTests { limit: usize },
    #[error("test `{name}` has more than {limit} attempts")]
    TooManyAttempts { name: String, limit: usize },
    #[error("the report holds no recognisable tests")]
    NoTests,
    #[error("the report is not valid CTRF: {detail}")]
    InvalidCtrf { detail: String },
    #[error(
        "CTRF test `{name}` has status `{status}`; CTRF's statuses are passed, failed, skipped, \
         pending and other"
    )]
    UnknownStatus { name: String, status: String },
}

/// At most `max` characters of `text` (an excerpt of the input for an error message), with an
/// ellipsis when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("ééééé", 2), "éé…");
    }

    #[test]
    fn formats_parse_and_read() {
        assert_eq!(ReportFormat::parse("junit"), Some(ReportFormat::Junit));
        assert_eq!(ReportFormat::parse("ctrf"), Some(ReportFormat::Ctrf));
        assert_eq!(ReportFormat::parse("xml"), None);
        let run = ReportFormat::Junit
            .read(b"<testsuite name=\"s\"><testcase classname=\"c\" name=\"t\" time=\"0.5\"/></testsuite>")
            .unwrap();
        assert_eq!(run.counts().passed, 1);
        // CTRF always has a duration: the round trip needs one to begin with.
        let ctrf = ReportFormat::Ctrf.write(&run);
        assert_eq!(
            ReportFormat::Ctrf.read(ctrf.as_bytes()).unwrap().tests,
            run.tests
        );
    }
}
