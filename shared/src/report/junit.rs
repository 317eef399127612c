//! JUnit XML: the reader (every common dialect, streaming, never a DTD or an entity) and the
//! writer (Surefire's shape).
//!
//! Reading, in short:
//!
//! - The root is `<testsuites>` or `<testsuite>`; `<testsuite>`s may nest. A `<testcase>`'s
//!   suite is its `file` attribute, else its nearest suite's `file` (or `filepath`), else the
//!   names of its enclosing `<testsuite>`s joined with ` / `.
//! - `<failure>` is failed, `<error>` error, `<skipped>` skipped, none passed (the first of
//!   them counts when there are several). The message is the element's `message` attribute,
//!   else the first line of its text, else its `type`. The output is its text, then the test's
//!   `system-out` and `system-err`.
//! - A test named again in the same `<testsuite>` (pytest-rerunfailures, gotestsum
//!   `--rerun-fails`, Gradle's test retry) is rerun: each `<testcase>` is an attempt, in order.
//!   pytest-rerunfailures writes its reruns without an outcome; since a rerun follows a
//!   failure, an earlier attempt without one is read as failed.
//! - Surefire's `rerunFailure`, `rerunError`, `flakyFailure` and `flakyError` children are
//!   earlier attempts (failed or errored) of their `<testcase>`, whose own outcome is the last.
//! - Two `<testsuite>`s of the same name with the same test in them and no file to tell them
//!   apart (node:test writes no file) are two suites: the later one is read as `name #2`.
//! - Durations are `time` in seconds; a `timestamp` is read where there is one.

use super::model::{
    Attempt, AttemptStatus, CappedText, Identity, ImportedRun, RunBuilder, append_rerun,
    parse_timestamp, seconds_to_millis,
};
use super::{MAX_ATTEMPTS, MAX_DEPTH, ReportError, excerpt};
use crate::domain::time::Timestamp;
use quick_xml::Reader;
use quick_xml::escape::{EscapeError, resolve_xml_entity};
use quick_xml::events::{BytesRef, BytesStart, Event};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Reads a JUnit XML report. See the module's documentation for how each dialect is read.
pub fn read_junit(input: &[u8]) -> Result<ImportedRun, ReportError> {
    let text = utf8(input)?;
    let mut reader = Reader::from_str(text);
    let mut parser = Parser::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|error| xml_error(error, reader.error_position()))?;
        parser.offset = reader.buffer_position();
        match event {
            Event::DocType(_) => return Err(ReportError::Doctype),
            Event::Start(element) => parser.start(&element)?,
            Event::Empty(element) => {
                parser.start(&element)?;
                parser.end()?;
            }
            Event::End(_) => parser.end()?,
            Event::Text(text) => parser.text(&text.xml10_content()),
            Event::CData(data) => parser.text(&data.xml10_content()),
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference, reader.buffer_position())?;
                parser.text(resolved.encode_utf8(&mut [0; 4]));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    parser.finish()
}

/// The input as text: UTF-8, without a byte order mark.
fn utf8(input: &[u8]) -> Result<&str, ReportError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    std::str::from_utf8(input).map_err(|error| ReportError::NotUtf8 {
        offset: error.valid_up_to(),
    })
}

fn xml_error(error: quick_xml::Error, offset: u64) -> ReportError {
    use quick_xml::errors::IllFormedError;
    match error {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            ReportError::UndefinedEntity {
                name: excerpt(&name, 40),
            }
        }
        quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(name)) => {
            ReportError::Truncated {
                element: excerpt(&name, 40),
            }
        }
        other => ReportError::MalformedXml {
            detail: excerpt(&other.to_string(), 160),
            offset,
        },
    }
}

/// A character reference, or one of XML's five predefined entities; nothing else.
fn resolve_reference(reference: &BytesRef<'_>, offset: u64) -> Result<char, ReportError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            Ok(None) | Err(_) => Err(ReportError::MalformedXml {
                detail: format!(
                    "`&{};` is not a valid character reference",
                    excerpt(reference, 20)
                ),
                offset,
            }),
        };
    }
    resolve_xml_entity(reference)
        .and_then(|text| text.chars().next())
        .ok_or_else(|| ReportError::UndefinedEntity {
            name: excerpt(reference, 40),
        })
}

/// The attributes of an element that the reader looks at.
#[derive(Debug, Default)]
struct Attrs {
    name: Option<String>,
    classname: Option<String>,
    class: Option<String>,
    file: Option<String>,
    filepath: Option<String>,
    time: Option<String>,
    timestamp: Option<String>,
    message: Option<String>,
    kind: Option<String>,
}

impl Attrs {
    fn of(element: &BytesStart<'_>, offset: u64) -> Result<Self, ReportError> {
        let mut attrs = Attrs::default();
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|error| ReportError::MalformedXml {
                detail: excerpt(&error.to_string(), 160),
                offset,
            })?;
            let slot = match attribute.key.local_name().into_inner() {
                "name" => &mut attrs.name,
                "classname" => &mut attrs.classname,
                "class" => &mut attrs.class,
                "file" => &mut attrs.file,
                "filepath" => &mut attrs.filepath,
                "time" => &mut attrs.time,
                "timestamp" => &mut attrs.timestamp,
                "message" => &mut attrs.message,
                "type" => &mut attrs.kind,
                _ => continue,
            };
            let value = attribute
                .normalized_value_with(quick_xml::XmlVersion::Implicit1_0, 1, resolve_xml_entity)
                .map_err(|error| xml_error(error, offset))?;
            *slot = Some(value.into_owned());
        }
        Ok(attrs)
    }
}

/// An open element, and what its text is for.
#[derive(Debug)]
enum Frame {
    /// `<testsuites>` or `<testsuite>` (one of `Parser::groups`).
    Group(&'static str),
    TestCase,
    /// `<failure>`, `<error>` or `<skipped>` of the test case.
    Outcome(&'static str),
    SystemOut,
    SystemErr,
    /// A Surefire rerun or flaky element.
    Rerun(&'static str),
    RerunTrace,
    RerunOut,
    RerunErr,
    /// Anything else (properties, unknown elements): text in it is not kept.
    Other,
}

impl Frame {
    fn element(&self) -> &'static str {
        match self {
            Frame::Group(element) => element,
            Frame::TestCase => "testcase",
            Frame::Outcome(element) | Frame::Rerun(element) => element,
            Frame::SystemOut | Frame::RerunOut => "system-out",
            Frame::SystemErr | Frame::RerunErr => "system-err",
            Frame::RerunTrace => "stackTrace",
            Frame::Other => "unknown",
        }
    }
}

/// An open `<testsuites>` or `<testsuite>`, and the tests read in it so far.
#[derive(Debug)]
struct Group {
    /// The names of it and its enclosing `<testsuite>`s, joined with ` / `.
    path: String,
    file: Option<String>,
    tests: Vec<PendingTest>,
    index: HashMap<Identity, usize>,
    /// Earlier attempts without an outcome read as failed reruns.
    reruns_without_outcome: usize,
}

#[derive(Debug)]
struct PendingTest {
    identity: Identity,
    /// Whether its suite is a file (else its group's name).
    suite_is_file: bool,
    attempts: Vec<Attempt>,
}

/// The `<testcase>` being read.
#[derive(Debug, Default)]
struct Case {
    suite: String,
    suite_is_file: bool,
    classname: String,
    name: Option<String>,
    duration_ms: Option<u64>,
    started_at: Option<Timestamp>,
    outcome: Option<(AttemptStatus, Option<String>)>,
    body: CappedText,
    out: CappedText,
    err: CappedText,
    /// Surefire's rerun and flaky children, read.
    earlier: Vec<Attempt>,
    rerun: Option<Rerun>,
}

#[derive(Debug)]
struct Rerun {
    status: AttemptStatus,
    message: Option<String>,
    duration_ms: Option<u64>,
    trace: CappedText,
    out: CappedText,
    err: CappedText,
}

#[derive(Debug, Default)]
struct Parser {
    builder: RunBuilder,
    frames: Vec<Frame>,
    groups: Vec<Group>,
    case: Option<Case>,
    root_seen: bool,
    /// Where in the input the event being handled ends.
    offset: u64,
    name: Option<String>,
    started_at: Option<Timestamp>,
    /// The next `#n` to try for each suite name that needed one.
    next_suffix: HashMap<String, u64>,
}

impl Parser {
    fn start(&mut self, element: &BytesStart<'_>) -> Result<(), ReportError> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(ReportError::TooDeep { limit: MAX_DEPTH });
        }
        let local = element.local_name().into_inner();
        let frame = match (self.frames.last(), local) {
            (None, "testsuites" | "testsuite") => {
                self.root_seen = true;
                self.open_group(element, local == "testsuite", true)?
            }
            (None, other) => {
                return Err(ReportError::NotJunit {
                    root: excerpt(other, 40),
                });
            }
            (Some(Frame::Group(_)), "testsuites" | "testsuite") => {
                self.open_group(element, local == "testsuite", false)?
            }
            (Some(Frame::Group(_)), "testcase") => self.open_case(element)?,
            (Some(Frame::TestCase), "failure" | "error" | "skipped") => {
                let (status, element_name) = match local {
                    "failure" => (AttemptStatus::Failed, "failure"),
                    "error" => (AttemptStatus::Error, "error"),
                    _ => (AttemptStatus::Skipped, "skipped"),
                };
                let attrs = Attrs::of(element, self.offset)?;
                if let Some(case) = self.case.as_mut()
                    && case.outcome.is_none()
                {
                    case.outcome = Some((status, attrs.message.or(attrs.kind)));
                }
                Frame::Outcome(element_name)
            }
            (Some(Frame::TestCase), "system-out") => Frame::SystemOut,
            (Some(Frame::TestCase), "system-err") => Frame::SystemErr,
            (
                Some(Frame::TestCase),
                "rerunFailure" | "rerunError" | "flakyFailure" | "flakyError",
            ) => {
                self.builder.count_case()?;
                let attrs = Attrs::of(element, self.offset)?;
                let (status, element_name) = match local {
                    "rerunFailure" => (AttemptStatus::Failed, "rerunFailure"),
                    "rerunError" => (AttemptStatus::Error, "rerunError"),
                    "flakyFailure" => (AttemptStatus::Failed, "flakyFailure"),
                    _ => (AttemptStatus::Error, "flakyError"),
                };
                if let Some(case) = self.case.as_mut() {
                    case.rerun = Some(Rerun {
                        status,
                        message: attrs.message.or(attrs.kind),
                        duration_ms: attrs.time.as_deref().and_then(seconds_to_millis),
                        trace: CappedText::default(),
                        out: CappedText::default(),
                        err: CappedText::default(),
                    });
                }
                Frame::Rerun(element_name)
            }
            (Some(Frame::Rerun(_)), "stackTrace") => Frame::RerunTrace,
            (Some(Frame::Rerun(_)), "system-out") => Frame::RerunOut,
            (Some(Frame::Rerun(_)), "system-err") => Frame::RerunErr,
            _ => Frame::Other,
        };
        self.frames.push(frame);
        Ok(())
    }

    fn open_group(
        &mut self,
        element: &BytesStart<'_>,
        is_suite: bool,
        is_root: bool,
    ) -> Result<Frame, ReportError> {
        let attrs = Attrs::of(element, self.offset)?;
        if let Some(at) = attrs.timestamp.as_deref().and_then(parse_timestamp) {
            self.started_at = Some(self.started_at.map_or(at, |earliest| earliest.min(at)));
        }
        if is_root {
            self.name = attrs.name.clone().filter(|name| !name.trim().is_empty());
        }
        let parent = self.groups.last();
        let own = attrs
            .name
            .filter(|name| is_suite && !name.trim().is_empty());
        let path = match (parent.map(|group| group.path.as_str()), own) {
            (Some(outer), Some(own)) if !outer.is_empty() => format!("{outer} / {own}"),
            (_, Some(own)) => own,
            (Some(outer), None) => outer.to_owned(),
            (None, None) => String::new(),
        };
        let file = attrs
            .file
            .or(attrs.filepath)
            .filter(|file| !file.is_empty())
            .or_else(|| parent.and_then(|group| group.file.clone()));
        self.groups.push(Group {
            path,
            file,
            tests: Vec::new(),
            index: HashMap::new(),
            reruns_without_outcome: 0,
        });
        Ok(Frame::Group(if is_suite {
            "testsuite"
        } else {
            "testsuites"
        }))
    }

    fn open_case(&mut self, element: &BytesStart<'_>) -> Result<Frame, ReportError> {
        self.builder.count_case()?;
        let attrs = Attrs::of(element, self.offset)?;
        let group = self.groups.last();
        let file = attrs
            .file
            .filter(|file| !file.is_empty())
            .or_else(|| group.and_then(|group| group.file.clone()));
        let (suite, suite_is_file) = match file {
            Some(file) => (file, true),
            None => (
                group.map(|group| group.path.clone()).unwrap_or_default(),
                false,
            ),
        };
        let name = attrs.name.filter(|name| !name.is_empty());
        let duration_ms = match attrs.time.as_deref() {
            None => None,
            Some(time) => {
                let millis = seconds_to_millis(time);
                if millis.is_none() {
                    self.builder.warn(format!(
                        "test `{}`: time `{}` is not a number of seconds; its duration is left out",
                        excerpt(name.as_deref().unwrap_or(""), 80),
                        excerpt(time, 20)
                    ));
                }
                millis
            }
        };
        self.case = Some(Case {
            suite,
            suite_is_file,
            classname: attrs.classname.or(attrs.class).unwrap_or_default(),
            name,
            duration_ms,
            started_at: attrs.timestamp.as_deref().and_then(parse_timestamp),
            ..Case::default()
        });
        Ok(Frame::TestCase)
    }

    fn text(&mut self, text: &str) {
        let Some(case) = self.case.as_mut() else {
            return;
        };
        let sink = match self.frames.last() {
            Some(Frame::Outcome(_)) => &mut case.body,
            Some(Frame::SystemOut) => &mut case.out,
            Some(Frame::SystemErr) => &mut case.err,
            Some(Frame::Rerun(_) | Frame::RerunTrace) => match case.rerun.as_mut() {
                Some(rerun) => &mut rerun.trace,
                None => return,
            },
            Some(Frame::RerunOut) => match case.rerun.as_mut() {
                Some(rerun) => &mut rerun.out,
                None => return,
            },
            Some(Frame::RerunErr) => match case.rerun.as_mut() {
                Some(rerun) => &mut rerun.err,
                None => return,
            },
            _ => return,
        };
        sink.push(text);
    }

    fn end(&mut self) -> Result<(), ReportError> {
        match self.frames.pop() {
            Some(Frame::Group(_)) => self.close_group(),
            Some(Frame::TestCase) => self.close_case(),
            Some(Frame::Rerun(_)) => {
                if let Some(case) = self.case.as_mut()
                    && let Some(rerun) = case.rerun.take()
                {
                    let attempt = Attempt::new(rerun.status, rerun.duration_ms).with_text(
                        rerun.message.as_deref(),
                        &[rerun.trace, rerun.out, rerun.err],
                    );
                    case.earlier.push(attempt);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn close_case(&mut self) -> Result<(), ReportError> {
        let Some(case) = self.case.take() else {
            return Ok(());
        };
        let Some(name) = case.name else {
            self.builder
                .warn("a <testcase> without a name was left out".to_owned());
            return Ok(());
        };
        let (status, message) = case.outcome.unwrap_or((AttemptStatus::Passed, None));
        let mut last = Attempt::new(status, case.duration_ms)
            .with_text(message.as_deref(), &[case.body, case.out, case.err]);
        last.started_at = case.started_at;
        let mut attempts = case.earlier;
        attempts.push(last);
        let identity = (case.suite, case.classname, name);
        let Some(group) = self.groups.last_mut() else {
            return Ok(());
        };
        match group.index.get(&identity) {
            Some(&at) => {
                let test = &mut group.tests[at];
                group.reruns_without_outcome += append_rerun(&mut test.attempts, attempts);
                if test.attempts.len() > MAX_ATTEMPTS {
                    return Err(ReportError::TooManyAttempts {
                        name: excerpt(&test.identity.2, 100),
                        limit: MAX_ATTEMPTS,
                    });
                }
            }
            None => {
                group.index.insert(identity.clone(), group.tests.len());
                group.tests.push(PendingTest {
                    identity,
                    suite_is_file: case.suite_is_file,
                    attempts,
                });
            }
        }
        Ok(())
    }

    /// Hands a closed group's tests to the run, renaming the group's suite when its tests
    /// collide with another group's of the same name.
    fn close_group(&mut self) -> Result<(), ReportError> {
        let Some(group) = self.groups.pop() else {
            return Ok(());
        };
        if group.reruns_without_outcome > 0 {
            self.builder.warn(format!(
                "{} earlier attempts of rerun tests in `{}` have no outcome and were read as \
                 failed (a rerun follows a failure)",
                group.reruns_without_outcome,
                excerpt(&group.path, 80)
            ));
        }
        let by_name = |test: &PendingTest| !test.suite_is_file;
        let collides = group
            .tests
            .iter()
            .filter(|test| by_name(test))
            .any(|test| self.builder.contains(&test.identity));
        let renamed = if collides {
            let next = self.next_suffix.entry(group.path.clone()).or_insert(2);
            loop {
                let candidate = format!("{} #{}", group.path, next);
                *next += 1;
                let free = group.tests.iter().filter(|test| by_name(test)).all(|test| {
                    let (_, classname, name) = &test.identity;
                    !self
                        .builder
                        .contains(&(candidate.clone(), classname.clone(), name.clone()))
                });
                if free {
                    break Some(candidate);
                }
            }
        } else {
            None
        };
        if let Some(renamed) = &renamed {
            self.builder.warn(format!(
                "two <testsuite>s named `{}` hold tests of the same name and no file tells them \
                 apart: the later one is read as `{}`",
                excerpt(&group.path, 80),
                excerpt(renamed, 90)
            ));
        }
        for test in group.tests {
            let identity = match &renamed {
                Some(renamed) if !test.suite_is_file => {
                    let (_, classname, name) = test.identity;
                    (renamed.clone(), classname, name)
                }
                _ => test.identity,
            };
            if self.builder.contains(&identity) {
                self.builder.warn(format!(
                    "test `{}` of `{}` appears in more than one <testsuite>; read as reruns",
                    excerpt(&identity.2, 80),
                    excerpt(&identity.0, 80)
                ));
            }
            self.builder.add(identity, test.attempts)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<ImportedRun, ReportError> {
        if let Some(frame) = self
            .frames
            .iter()
            .rev()
            .find(|frame| !matches!(frame, Frame::Other))
        {
            return Err(ReportError::Truncated {
                element: frame.element().to_owned(),
            });
        }
        if !self.root_seen {
            return Err(ReportError::MalformedXml {
                detail: "there is no root element".to_owned(),
                offset: 0,
            });
        }
        self.builder.finish(self.name, self.started_at)
    }
}

/// Writes a run as JUnit XML in Surefire's shape: a `<testsuite>` per suite (in the order the
/// run names them), a `<testcase>` per test with its last attempt's `<failure>`, `<error>` or
/// `<skipped>`, and its earlier failed or errored attempts as `<flakyFailure>`/`<flakyError>`
/// when it finally passed, else `<rerunFailure>`/`<rerunError>`. Earlier attempts that
/// passed or were skipped have no place in that shape and are left out.
pub fn write_junit(run: &ImportedRun) -> String {
    let mut suites: Vec<(&str, Vec<&super::ImportedTest>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for test in &run.tests {
        let index = *at.entry(&test.suite).or_insert_with(|| {
            suites.push((&test.suite, Vec::new()));
            suites.len() - 1
        });
        suites[index].1.push(test);
    }
    let counts = run.counts();
    let total_ms: u64 = run.tests.iter().map(last_duration).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    if let Some(name) = &run.name {
        attr(&mut xml, "name", name);
    }
    attr(&mut xml, "tests", &counts.tests.to_string());
    attr(&mut xml, "failures", &counts.failed.to_string());
    attr(&mut xml, "errors", &counts.errored.to_string());
    attr(&mut xml, "skipped", &counts.skipped.to_string());
    attr(&mut xml, "time", &seconds(total_ms));
    if let Some(at) = run.started_at {
        attr(&mut xml, "timestamp", &at.to_rfc3339());
    }
    xml.push_str(">\n");
    for (suite, tests) in suites {
        let count = |status: AttemptStatus| {
            tests
                .iter()
                .filter(|test| test.outcome() == status)
                .count()
                .to_string()
        };
        xml.push_str("  <testsuite");
        attr(&mut xml, "name", suite);
        attr(&mut xml, "tests", &tests.len().to_string());
        attr(&mut xml, "failures", &count(AttemptStatus::Failed));
        attr(&mut xml, "errors", &count(AttemptStatus::Error));
        attr(&mut xml, "skipped", &count(AttemptStatus::Skipped));
        let suite_ms: u64 = tests.iter().copied().map(last_duration).sum();
        attr(&mut xml, "time", &seconds(suite_ms));
        xml.push_str(">\n");
        for test in tests {
            write_case(&mut xml, test);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn last_duration(test: &super::ImportedTest) -> u64 {
    test.last_attempt()
        .and_then(|attempt| attempt.duration_ms)
        .unwrap_or(0)
}

fn write_case(xml: &mut String, test: &super::ImportedTest) {
    xml.push_str("    <testcase");
    attr(xml, "name", &test.name);
    attr(xml, "classname", &test.classname);
    let Some((last, earlier)) = test.attempts.split_last() else {
        xml.push_str(">\n      <skipped message=\"not run\"/>\n    </testcase>\n");
        return;
    };
    if let Some(ms) = last.duration_ms {
        attr(xml, "time", &seconds(ms));
    }
    if let Some(at) = last.started_at {
        attr(xml, "timestamp", &at.to_rfc3339());
    }
    let opened = xml.len();
    xml.push_str(">\n");
    let passed = last.status == AttemptStatus::Passed;
    for attempt in earlier {
        let element = match (attempt.status, passed) {
            (AttemptStatus::Failed, true) => "flakyFailure",
            (AttemptStatus::Error, true) => "flakyError",
            (AttemptStatus::Failed, false) => "rerunFailure",
            (AttemptStatus::Error, false) => "rerunError",
            _ => continue,
        };
        let _ = write!(xml, "      <{element}");
        if let Some(message) = &attempt.message {
            attr(xml, "message", message);
        }
        if let Some(ms) = attempt.duration_ms {
            attr(xml, "time", &seconds(ms));
        }
        match &attempt.output {
            Some(output) => {
                xml.push_str(">\n        <stackTrace>");
                text(xml, output);
                let _ = writeln!(xml, "</stackTrace>\n      </{element}>");
            }
            None => xml.push_str("/>\n"),
        }
    }
    let element = match last.status {
        AttemptStatus::Passed => None,
        AttemptStatus::Failed => Some("failure"),
        AttemptStatus::Error => Some("error"),
        AttemptStatus::Skipped => Some("skipped"),
    };
    match element {
        Some(element) => {
            let _ = write!(xml, "      <{element}");
            if let Some(message) = &last.message {
                attr(xml, "message", message);
            }
            match &last.output {
                Some(output) => {
                    xml.push('>');
                    text(xml, output);
                    let _ = writeln!(xml, "</{element}>");
                }
                None => xml.push_str("/>\n"),
            }
        }
        None => {
            if let Some(output) = &last.output {
                xml.push_str("      <system-out>");
                text(xml, output);
                xml.push_str("</system-out>\n");
            }
        }
    }
    if xml.len() == opened + 2 {
        // Nothing inside: `<testcase .../>`.
        xml.truncate(opened);
        xml.push_str("/>\n");
    } else {
        xml.push_str("    </testcase>\n");
    }
}

/// Milliseconds as JUnit's seconds, `1.234`.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// ` key="value"`, escaped so that a reader gets the value back exactly (line breaks and tabs
/// as character references, which attribute normalization leaves alone).
fn attr(xml: &mut String, key: &str, value: &str) {
    let _ = write!(xml, " {key}=\"");
    for c in value.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\n' => xml.push_str("&#10;"),
            '\r' => xml.push_str("&#13;"),
            '\t' => xml.push_str("&#9;"),
            c => xml.push(xml_char(c)),
        }
    }
    xml.push('"');
}

/// Element text, escaped (a carriage return as a reference, which line-end normalization
/// leaves alone).
fn text(xml: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '\r' => xml.push_str("&#13;"),
            '\n' | '\t' => xml.push(c),
            c => xml.push(xml_char(c)),
        }
    }
}

/// XML 1.0 cannot hold most control characters, even as references: they become U+FFFD.
fn xml_char(c: char) -> char {
    match c {
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => {
            '\u{FFFD}'
        }
        c => c,
    }
}

#[cfg(test)]
mod tests;
