use super::*;
use crate::domain::execution::{MAX_MESSAGE_BYTES, MAX_OUTPUT_BYTES};
use crate::report::{ImportedTest, MAX_TESTS, RunCounts};
use std::time::{Duration, Instant};

fn read(xml: &str) -> ImportedRun {
    match read_junit(xml.as_bytes()) {
        Ok(run) => run,
        Err(error) => panic!("{error}: {xml}"),
    }
}

fn test<'a>(run: &'a ImportedRun, name: &str) -> &'a ImportedTest {
    let found: Vec<_> = run.tests.iter().filter(|test| test.name == name).collect();
    assert_eq!(found.len(), 1, "one test named {name} in {:#?}", run.tests);
    found[0]
}

fn statuses(test: &ImportedTest) -> Vec<AttemptStatus> {
    test.attempts.iter().map(|attempt| attempt.status).collect()
}

use AttemptStatus::{Error, Failed, Passed, Skipped};

#[test]
fn a_bare_testsuite_with_each_outcome() {
    let run = read(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="unit" tests="4" timestamp="2026-11-30T10:00:00">
  <testcase classname="calc" name="adds" time="0.25"/>
  <testcase classname="calc" name="divides" time="1.5">
    <failure message="expected 2, got 3" type="AssertionError">trace line 1
trace line 2</failure>
    <system-out>some output</system-out>
    <system-err>some errors</system-err>
  </testcase>
  <testcase classname="calc" name="explodes"><error type="NullPointerException"/></testcase>
  <testcase classname="calc" name="later" time="0"><skipped message="not yet"/></testcase>
</testsuite>"#,
    );
    assert_eq!(run.name.as_deref(), Some("unit"));
    assert_eq!(
        run.started_at.map(|at| at.to_rfc3339()).as_deref(),
        Some("2026-11-30T10:00:00.000Z")
    );
    assert_eq!(
        run.counts(),
        RunCounts {
            tests: 4,
            passed: 1,
            failed: 1,
            errored: 1,
            skipped: 1,
            flaky: 0
        }
    );
    let adds = test(&run, "adds");
    assert_eq!(
        (adds.suite.as_str(), adds.classname.as_str()),
        ("unit", "calc")
    );
    assert_eq!(adds.attempts[0].duration_ms, Some(250));
    let divides = &test(&run, "divides").attempts[0];
    assert_eq!(divides.status, Failed);
    assert_eq!(divides.duration_ms, Some(1500));
    assert_eq!(divides.message.as_deref(), Some("expected 2, got 3"));
    assert_eq!(
        divides.output.as_deref(),
        Some("trace line 1\ntrace line 2\nsome output\nsome errors")
    );
    assert!(!divides.truncated);
    let explodes = &test(&run, "explodes").attempts[0];
    assert_eq!(explodes.status, Error);
    assert_eq!(explodes.message.as_deref(), Some("NullPointerException"));
    assert_eq!(explodes.duration_ms, None);
    let later = &test(&run, "later").attempts[0];
    assert_eq!(
        (later.status, later.message.as_deref()),
        (Skipped, Some("not yet"))
    );
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn surefire_reruns_and_flakes_are_earlier_attempts() {
    // Maven Surefire 3 with -Dsurefire.rerunFailingTestsCount=2.
    let run = read(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" name="com.example.CartTest" time="0.052" tests="4" errors="0" skipped="0" failures="1">
  <properties>
    <property name="java.version" value="17.0.15"/>
    <property name="os.name" value="Linux"/>
  </properties>
  <testcase name="addsItem" classname="com.example.CartTest" time="0.011"/>
  <testcase name="flaky" classname="com.example.CartTest" time="0.004">
    <flakyFailure message="expected: &lt;1&gt; but was: &lt;2&gt;" type="org.opentest4j.AssertionFailedError">
      <stackTrace>org.opentest4j.AssertionFailedError: expected: &lt;1&gt; but was: &lt;2&gt;
	at com.example.CartTest.flaky(CartTest.java:31)</stackTrace>
      <system-out>first try</system-out>
    </flakyFailure>
    <flakyError message="connection reset" type="java.net.SocketException">
      <stackTrace>java.net.SocketException: connection reset</stackTrace>
    </flakyError>
  </testcase>
  <testcase name="alwaysFails" classname="com.example.CartTest" time="0.003">
    <failure message="boom" type="java.lang.AssertionError">java.lang.AssertionError: boom</failure>
    <rerunFailure message="boom again" type="java.lang.AssertionError">
      <stackTrace>java.lang.AssertionError: boom again</stackTrace>
    </rerunFailure>
    <rerunError message="broke" type="java.lang.IllegalStateException"/>
  </testcase>
  <testcase name="explodes" classname="com.example.CartTest" time="0.001">
    <error message="NPE" type="java.lang.NullPointerException">java.lang.NullPointerException: NPE</error>
  </testcase>
</testsuite>"#,
    );
    assert_eq!(
        run.counts(),
        RunCounts {
            tests: 4,
            passed: 2,
            failed: 1,
            errored: 1,
            skipped: 0,
            flaky: 1
        }
    );
    let flaky = test(&run, "flaky");
    assert_eq!(statuses(flaky), [Failed, Error, Passed]);
    assert!(flaky.is_flaky());
    assert_eq!(
        flaky.attempts[0].message.as_deref(),
        Some("expected: <1> but was: <2>")
    );
    assert_eq!(
        flaky.attempts[0].output.as_deref(),
        Some(
            "org.opentest4j.AssertionFailedError: expected: <1> but was: <2>\n\tat \
             com.example.CartTest.flaky(CartTest.java:31)\nfirst try"
        )
    );
    assert_eq!(flaky.attempts[2].duration_ms, Some(4));
    assert_eq!(flaky.attempts[0].duration_ms, None);
    let always = test(&run, "alwaysFails");
    assert_eq!(statuses(always), [Failed, Error, Failed]);
    assert!(!always.is_flaky());
    assert_eq!(always.attempts[2].message.as_deref(), Some("boom"));
    assert_eq!(always.suite, "com.example.CartTest");
}

#[test]
fn gotestsum_rerun_fails_repeats_test_cases() {
    // gotestsum --junitfile with --rerun-fails=2: one suite per package, each run of a test
    // its own <testcase>.
    let run = read(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="6" failures="4" errors="0" time="0.523">
	<testsuite tests="6" failures="4" time="0.012" name="example.com/shop/cart" timestamp="2026-11-30T10:00:00Z">
		<properties>
			<property name="go.version" value="go1.23.2 linux/amd64"></property>
		</properties>
		<testcase classname="example.com/shop/cart" name="TestFlaky" time="0.010">
			<failure message="Failed" type="">=== RUN   TestFlaky&#xA;    cart_test.go:12: flaked&#xA;--- FAIL: TestFlaky (0.01s)&#xA;</failure>
		</testcase>
		<testcase classname="example.com/shop/cart" name="TestBroken" time="0.000">
			<failure message="Failed" type="">=== RUN   TestBroken&#xA;--- FAIL: TestBroken (0.00s)&#xA;</failure>
		</testcase>
		<testcase classname="example.com/shop/cart" name="TestAdd" time="0.000"></testcase>
		<testcase classname="example.com/shop/cart" name="TestBroken" time="0.000">
			<failure message="Failed" type="">=== RUN   TestBroken&#xA;--- FAIL: TestBroken (0.00s)&#xA;</failure>
		</testcase>
		<testcase classname="example.com/shop/cart" name="TestBroken" time="0.000">
			<failure message="Failed" type="">=== RUN   TestBroken&#xA;--- FAIL: TestBroken (0.00s)&#xA;</failure>
		</testcase>
		<testcase classname="example.com/shop/cart" name="TestFlaky" time="0.002"></testcase>
	</testsuite>
</testsuites>"#,
    );
    assert_eq!(run.name, None);
    assert_eq!(
        run.counts(),
        RunCounts {
            tests: 3,
            passed: 2,
            failed: 1,
            errored: 0,
            skipped: 0,
            flaky: 1
        }
    );
    let flaky = test(&run, "TestFlaky");
    assert_eq!(statuses(flaky), [Failed, Passed]);
    assert_eq!(
        flaky.attempts[0].output.as_deref(),
        Some("=== RUN   TestFlaky\n    cart_test.go:12: flaked\n--- FAIL: TestFlaky (0.01s)")
    );
    assert_eq!(
        flaky
            .attempts
            .iter()
            .map(|a| a.duration_ms)
            .collect::<Vec<_>>(),
        [Some(10), Some(2)]
    );
    assert_eq!(statuses(test(&run, "TestBroken")), [Failed, Failed, Failed]);
    assert_eq!(test(&run, "TestAdd").suite, "example.com/shop/cart");
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn junit5_console_launcher_legacy_xml() {
    // ConsoleLauncher --reports-dir: TEST-junit-jupiter.xml.
    let run = read(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="JUnit Jupiter" tests="3" skipped="1" failures="1" errors="0" time="0.123" hostname="build" timestamp="2026-11-30T10:00:00">
<properties>
<property name="java.version" value="17.0.15"/>
</properties>
<testcase name="adds()" classname="com.example.CalculatorTests" time="0.012">
<system-out><![CDATA[
unique-id: [engine:junit-jupiter]/[class:com.example.CalculatorTests]/[method:adds()]
display-name: adds()
]]></system-out>
</testcase>
<testcase name="divides()" classname="com.example.CalculatorTests" time="0.003">
<failure message="expected: &lt;2&gt; but was: &lt;3&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <2> but was: <3>
	at com.example.CalculatorTests.divides(CalculatorTests.java:20)
]]></failure>
</testcase>
<testcase name="skips()" classname="com.example.CalculatorTests" time="0">
<skipped><![CDATA[public void com.example.CalculatorTests.skips() is @Disabled]]></skipped>
</testcase>
</testsuite>"#,
    );
    assert_eq!(
        run.counts(),
        RunCounts {
            tests: 3,
            passed: 1,
            failed: 1,
            errored: 0,
            skipped: 1,
            flaky: 0
        }
    );
    let divides = &test(&run, "divides()").attempts[0];
    assert_eq!(
        divides.message.as_deref(),
        Some("expected: <2> but was: <3>")
    );
    assert!(
        divides
            .output
            .as_deref()
            .unwrap()
            .contains("but was: <3>\n\tat com.example")
    );
    let skips = &test(&run, "skips()").attempts[0];
    assert_eq!(
        skips.message.as_deref(),
        Some("public void com.example.CalculatorTests.skips() is @Disabled")
    );
    assert!(
        test(&run, "adds()").attempts[0]
            .output
            .as_deref()
            .unwrap()
            .starts_with("unique-id: [engine:junit-jupiter]")
    );
}

#[test]
fn reruns_without_an_outcome_are_read_as_failed() {
    // pytest-rerunfailures writes each rerun as a <testcase> with no child at all.
    let run = read(
        r#"<testsuites name="pytest tests"><testsuite name="pytest" tests="2">
<testcase classname="tests.test_reruns" name="test_flaky" time="0.001" />
<testcase classname="tests.test_reruns" name="test_flaky" time="0.002" />
<testcase classname="tests.test_reruns" name="test_stable" time="0.000" />
</testsuite></testsuites>"#,
    );
    let flaky = test(&run, "test_flaky");
    assert_eq!(statuses(flaky), [Failed, Passed]);
    assert!(flaky.is_flaky());
    assert_eq!(
        flaky.attempts[0].message.as_deref(),
        Some("rerun: the report gives this attempt no outcome")
    );
    assert_eq!(run.counts().flaky, 1);
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert!(
        run.warnings[0].contains("1 earlier attempts"),
        "{:?}",
        run.warnings
    );
}

#[test]
fn nested_suites_join_their_names() {
    let run = read(
        r#"<testsuites>
  <testsuite name="All tests">
    <testcase classname="top" name="direct"/>
    <testsuite name="Unit" file="/src/unit.php">
      <testcase classname="UnitTest" name="one"/>
      <testsuite name="Deeper"><testcase classname="Deep" name="two"/></testsuite>
    </testsuite>
    <testsuite name="Feature"><testcase classname="FeatureTest" name="three"/></testsuite>
  </testsuite>
</testsuites>"#,
    );
    assert_eq!(run.counts().tests, 4);
    assert_eq!(test(&run, "direct").suite, "All tests");
    assert_eq!(test(&run, "one").suite, "/src/unit.php");
    // A nested suite without a file of its own is in its parent's file.
    assert_eq!(test(&run, "two").suite, "/src/unit.php");
    assert_eq!(test(&run, "three").suite, "All tests / Feature");
}

#[test]
fn the_same_name_in_different_files_is_two_tests() {
    // jest-junit with addFileAttribute: both files' describe blocks are named `checkout`.
    let run = read(
        r#"<testsuites name="jest tests">
  <testsuite name="checkout"><testcase classname="checkout same name" name="checkout same name" file="test/alpha.test.js"/></testsuite>
  <testsuite name="checkout"><testcase classname="checkout same name" name="checkout same name" file="test/beta.test.js"><failure>boom</failure></testcase></testsuite>
</testsuites>"#,
    );
    assert_eq!(run.tests.len(), 2);
    assert_eq!(run.tests[0].suite, "test/alpha.test.js");
    assert_eq!(run.tests[1].suite, "test/beta.test.js");
    assert_eq!(
        (run.tests[0].outcome(), run.tests[1].outcome()),
        (Passed, Failed)
    );
    assert!(run.warnings.is_empty());
}

#[test]
fn same_named_suites_without_files_are_told_apart() {
    // node:test's junit reporter: one <testsuite> per describe, no file anywhere.
    let run = read(
        r#"<testsuites>
  <testsuite name="checkout"><testcase name="same name" classname="test"/><testcase name="alpha only" classname="test"/></testsuite>
  <testsuite name="checkout"><testcase name="same name" classname="test"><failure message="no"/></testcase><testcase name="beta only" classname="test"/></testsuite>
  <testsuite name="checkout"><testcase name="same name" classname="test"/></testsuite>
  <testsuite name="checkout"><testcase name="gamma only" classname="test"/></testsuite>
</testsuites>"#,
    );
    let suites: Vec<(&str, &str, AttemptStatus)> = run
        .tests
        .iter()
        .map(|test| (test.suite.as_str(), test.name.as_str(), test.outcome()))
        .collect();
    assert_eq!(
        suites,
        [
            ("checkout", "same name", Passed),
            ("checkout", "alpha only", Passed),
            ("checkout #2", "same name", Failed),
            ("checkout #2", "beta only", Passed),
            ("checkout #3", "same name", Passed),
            ("checkout", "gamma only", Passed),
        ]
    );
    assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
    assert!(run.warnings[0].contains("read as `checkout #2`"));
}

#[test]
fn a_test_in_two_suites_of_one_file_is_rerun() {
    let run = read(
        r#"<testsuites>
  <testsuite name="a" file="t.js"><testcase name="x"><failure/></testcase></testsuite>
  <testsuite name="b" file="t.js"><testcase name="x"/></testsuite>
</testsuites>"#,
    );
    assert_eq!(run.tests.len(), 1);
    assert_eq!(statuses(&run.tests[0]), [Failed, Passed]);
    assert!(run.warnings[0].contains("more than one <testsuite>"));
}

#[test]
fn references_are_resolved_and_nothing_else() {
    let run = read(
        "<testsuite name=\"a &amp; b\"><testcase classname=\"c&#x41;\" name=\"t&lt;1&gt;\">\
         <failure message=\"line 1&#10;line 2\">x &amp; y &#169; &quot;z&quot; &apos;w&apos;\r\nnext</failure>\
         </testcase></testsuite>",
    );
    let t = &run.tests[0];
    assert_eq!(
        (t.suite.as_str(), t.classname.as_str(), t.name.as_str()),
        ("a & b", "cA", "t<1>")
    );
    assert_eq!(t.attempts[0].message.as_deref(), Some("line 1\nline 2"));
    assert_eq!(
        t.attempts[0].output.as_deref(),
        Some("x & y © \"z\" 'w'\nnext")
    );
}

#[test]
fn text_is_capped_as_step_results_are() {
    let big = "x".repeat(3 * MAX_OUTPUT_BYTES);
    let message = "m".repeat(2 * MAX_MESSAGE_BYTES);
    let xml = format!(
        "<testsuite><testcase name=\"t\"><failure message=\"{message}\">{big}</failure>\
         <system-out>{big}</system-out></testcase></testsuite>"
    );
    let attempt = &read(&xml).tests[0].attempts[0];
    assert!(attempt.truncated);
    assert_eq!(attempt.message.as_ref().unwrap().len(), MAX_MESSAGE_BYTES);
    assert_eq!(attempt.output.as_ref().unwrap().len(), MAX_OUTPUT_BYTES);
}

#[test]
fn unreadable_durations_and_nameless_cases_are_warned_about() {
    let run = read(
        r#"<testsuite><testcase name="t" time="soon"/><testcase classname="c"/><testcase name="u" time="-1"/></testsuite>"#,
    );
    assert_eq!(run.tests.len(), 2);
    assert_eq!(run.tests[0].attempts[0].duration_ms, None);
    assert_eq!(run.warnings.len(), 3, "{:?}", run.warnings);
    assert!(run.warnings[0].contains("time `soon`"));
    assert!(run.warnings[1].contains("without a name"));
}

// ---- hostile and broken input --------------------------------------------------------------

fn refused(input: &[u8]) -> ReportError {
    match read_junit(input) {
        Ok(run) => panic!("read {run:?}"),
        Err(error) => error,
    }
}

#[test]
fn billion_laughs_is_refused_without_expanding() {
    let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<testsuite name="&lol9;"><testcase name="&lol9;"/></testsuite>"#;
    let error = refused(xml.as_bytes());
    assert_eq!(error, ReportError::Doctype);
    assert!(
        error
            .to_string()
            .contains("DTDs and entity declarations are refused")
    );
}

#[test]
fn external_entities_are_refused() {
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="t"><failure>&xxe;</failure></testcase></testsuite>"#;
    assert_eq!(refused(xxe.as_bytes()), ReportError::Doctype);
    let external_dtd = r#"<!DOCTYPE testsuite SYSTEM "http://example.com/evil.dtd"><testsuite/>"#;
    assert_eq!(refused(external_dtd.as_bytes()), ReportError::Doctype);
    // Without a declaration, an entity reference is undefined, in text or in an attribute.
    let in_text =
        r#"<testsuite><testcase name="t"><failure>&xxe;</failure></testcase></testsuite>"#;
    assert_eq!(
        refused(in_text.as_bytes()),
        ReportError::UndefinedEntity { name: "xxe".into() }
    );
    let in_attribute = r#"<testsuite><testcase name="&xxe;"/></testsuite>"#;
    assert_eq!(
        refused(in_attribute.as_bytes()),
        ReportError::UndefinedEntity { name: "xxe".into() }
    );
    // HTML's entities are not XML's.
    let html = r#"<testsuite><testcase name="t"><failure>&nbsp;</failure></testcase></testsuite>"#;
    assert_eq!(
        refused(html.as_bytes()),
        ReportError::UndefinedEntity {
            name: "nbsp".into()
        }
    );
}

#[test]
fn truncated_xml_is_refused() {
    let whole = r#"<testsuite name="s"><testcase name="t"><failure message="m">trace</failure></testcase></testsuite>"#;
    for cut in [whole.len() - 5, whole.len() - 20, 60, 45, 25] {
        let error = refused(&whole.as_bytes()[..cut]);
        assert!(
            matches!(
                error,
                ReportError::Truncated { .. } | ReportError::MalformedXml { .. }
            ),
            "{cut}: {error:?}"
        );
    }
    assert_eq!(
        refused(&whole.as_bytes()[..whole.len() - "</testsuite>".len()]),
        ReportError::Truncated {
            element: "testsuite".into()
        }
    );
    assert!(
        refused(b"<testsuite><testcase name=\"t\"></testsuite>")
            .to_string()
            .contains("not well-formed")
    );
}

#[test]
fn non_xml_input_is_refused() {
    assert_eq!(
        refused(b"<testsuite>\xff\xfe garbage</testsuite>"),
        ReportError::NotUtf8 { offset: 11 }
    );
    // UTF-16 (with its byte order mark) is not UTF-8 either.
    assert_eq!(
        refused(b"\xff\xfe<\0t\0"),
        ReportError::NotUtf8 { offset: 0 }
    );
    assert!(matches!(
        refused(b"just some text"),
        ReportError::MalformedXml { .. }
    ));
    assert!(matches!(
        refused(br#"{"results": {"tests": []}}"#),
        ReportError::MalformedXml { .. }
    ));
    assert!(matches!(refused(b""), ReportError::MalformedXml { .. }));
    assert_eq!(
        refused(b"<html><body/></html>"),
        ReportError::NotJunit {
            root: "html".into()
        }
    );
    assert_eq!(refused(b"<testsuites/>"), ReportError::NoTests);
    assert_eq!(
        refused(b"<testsuite><properties/><testcase/></testsuite>"),
        ReportError::NoTests
    );
}

#[test]
fn errors_quote_only_excerpts() {
    let long = "a".repeat(100_000);
    let error = refused(format!("<{long}/>").as_bytes());
    assert!(error.to_string().len() < 200, "{error}");
    let error = refused(format!("<testsuite><testcase name=\"&{long};\"/></testsuite>").as_bytes());
    assert!(error.to_string().len() < 200, "{error}");
    let error = refused(format!("<testsuite><{long}></{long}x></testsuite>").as_bytes());
    assert!(error.to_string().len() < 300, "{error}");
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 100_000;
    let xml = format!(
        "<testsuites>{}{}</testsuites>",
        "<testsuite>".repeat(depth),
        "</testsuite>".repeat(depth)
    );
    assert_eq!(
        refused(xml.as_bytes()),
        ReportError::TooDeep { limit: MAX_DEPTH }
    );
}

#[test]
fn two_hundred_thousand_empty_test_cases_are_refused_fast() {
    let xml = format!(
        "<testsuite name=\"big\">{}</testsuite>",
        "<testcase/>".repeat(200_000)
    );
    let started = Instant::now();
    let error = refused(xml.as_bytes());
    assert_eq!(error, ReportError::TooManyTests { limit: MAX_TESTS });
    assert!(error.to_string().contains("more than 100000 test cases"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Surefire's rerun elements count too.
    let cases: String = (0..70_000)
        .map(|n| {
            format!("<testcase name=\"t{n}\"><failure/><rerunFailure/><rerunFailure/></testcase>")
        })
        .collect();
    let reruns = format!("<testsuite>{cases}</testsuite>");
    assert_eq!(
        refused(reruns.as_bytes()),
        ReportError::TooManyTests { limit: MAX_TESTS }
    );
}

#[test]
fn the_limit_itself_is_accepted() {
    let mut xml = String::from("<testsuite name=\"big\">");
    for n in 0..MAX_TESTS {
        xml.push_str(&format!("<testcase classname=\"c\" name=\"t{n}\"/>"));
    }
    xml.push_str("</testsuite>");
    let started = Instant::now();
    let run = read(&xml);
    assert_eq!(run.counts().tests, MAX_TESTS);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn too_many_attempts_of_one_test_are_refused() {
    let xml = format!(
        "<testsuite>{}</testsuite>",
        "<testcase name=\"again\"><failure/></testcase>".repeat(MAX_ATTEMPTS + 1)
    );
    assert_eq!(
        refused(xml.as_bytes()),
        ReportError::TooManyAttempts {
            name: "again".into(),
            limit: MAX_ATTEMPTS
        }
    );
}

// ---- writing ---------------------------------------------------------------------------------

fn attempt(status: AttemptStatus, ms: u64, message: Option<&str>, output: Option<&str>) -> Attempt {
    Attempt {
        status,
        duration_ms: Some(ms),
        started_at: None,
        message: message.map(str::to_owned),
        output: output.map(str::to_owned),
        truncated: false,
    }
}

fn sample_run() -> ImportedRun {
    let nasty = "a&b <c> \"d\" 'e'\ttab\r\nline\u{1}";
    ImportedRun {
        name: Some("nightly <main>".into()),
        started_at: Timestamp::parse("2026-11-30T10:00:00Z"),
        tests: vec![
            ImportedTest {
                suite: "tests/test_a.py".into(),
                classname: "tests.test_a".into(),
                name: "test_ok".into(),
                attempts: vec![attempt(Passed, 5, None, Some("printed"))],
            },
            ImportedTest {
                suite: "tests/test_a.py".into(),
                classname: "tests.test_a".into(),
                name: "test_flaky[x<y]".into(),
                attempts: vec![
                    attempt(Failed, 7, Some("first"), Some("trace 1")),
                    attempt(Error, 8, Some("second"), None),
                    attempt(Passed, 9, None, None),
                ],
            },
            ImportedTest {
                suite: "tests/test_b.py".into(),
                classname: "tests.test_b".into(),
                name: "test_ok".into(),
                attempts: vec![
                    attempt(Failed, 1, Some("again"), None),
                    attempt(Failed, 2, Some(nasty), Some(nasty)),
                ],
            },
            ImportedTest {
                suite: "tests/test_b.py".into(),
                classname: "tests.test_b".into(),
                name: "test_broken".into(),
                attempts: vec![attempt(Error, 3, Some("kaput"), Some("stack"))],
            },
            ImportedTest {
                suite: String::new(),
                classname: String::new(),
                name: "test_skip".into(),
                attempts: vec![attempt(Skipped, 0, Some("later"), None)],
            },
        ],
        warnings: Vec::new(),
    }
}

#[test]
fn writes_surefire_shape() {
    let xml = write_junit(&sample_run());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"nightly &lt;main&gt;\" tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"1\""), "{xml}");
    assert!(xml.contains("<testsuite name=\"tests/test_a.py\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"0.014\">"), "{xml}");
    assert!(xml.contains("<flakyFailure message=\"first\" time=\"0.007\">\n        <stackTrace>trace 1</stackTrace>\n      </flakyFailure>"), "{xml}");
    assert!(
        xml.contains("<flakyError message=\"second\" time=\"0.008\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<rerunFailure message=\"again\" time=\"0.001\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"a&amp;b &lt;c&gt; &quot;d&quot; 'e'&#9;tab&#13;&#10;line\u{FFFD}\">a&amp;b &lt;c&gt; \"d\" 'e'\ttab&#13;\nline\u{FFFD}</failure>"), "{xml}");
    assert!(
        xml.contains("<error message=\"kaput\">stack</error>"),
        "{xml}"
    );
    assert!(xml.contains("<skipped message=\"later\"/>"), "{xml}");
    assert!(xml.contains("<system-out>printed</system-out>"), "{xml}");
    assert!(xml.contains("name=\"test_flaky[x&lt;y]\""), "{xml}");
}

#[test]
fn written_junit_reads_back_the_same() {
    let run = sample_run();
    let back = read(&write_junit(&run));
    assert_eq!(back.counts(), run.counts());
    assert_eq!(back.name, run.name);
    assert_eq!(back.started_at, run.started_at);
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    for (written, read) in run.tests.iter().zip(&back.tests) {
        assert_eq!(read.identity(), written.identity());
        assert_eq!(statuses(read), statuses(written));
        assert_eq!(read.is_flaky(), written.is_flaky());
        let durations = |test: &ImportedTest| -> Vec<_> {
            test.attempts.iter().map(|a| a.duration_ms).collect()
        };
        assert_eq!(durations(read), durations(written));
        // A control character cannot be written: it comes back as U+FFFD.
        let messages = |test: &ImportedTest| -> Vec<_> {
            test.attempts
                .iter()
                .map(|a| a.message.as_ref().map(|m| m.replace('\u{1}', "\u{FFFD}")))
                .collect()
        };
        assert_eq!(messages(read), messages(written), "{}", read.name);
    }
    // Outputs come back too, a control character as U+FFFD and a CR LF as it was.
    let nasty = &back.tests[2].attempts[1];
    assert_eq!(
        nasty.output.as_deref(),
        Some("a&b <c> \"d\" 'e'\ttab\r\nline\u{FFFD}")
    );
    assert_eq!(back.tests[0].attempts[0].output.as_deref(), Some("printed"));
    assert_eq!(back.tests[1].attempts[0].output.as_deref(), Some("trace 1"));
}

#[test]
fn a_test_without_attempts_is_written_as_skipped() {
    let run = ImportedRun {
        tests: vec![ImportedTest {
            suite: "s".into(),
            classname: String::new(),
            name: "never".into(),
            attempts: Vec::new(),
        }],
        ..ImportedRun::default()
    };
    let back = read(&write_junit(&run));
    assert_eq!(back.tests[0].outcome(), Skipped);
}
