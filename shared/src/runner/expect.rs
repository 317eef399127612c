//! Checking a response against a step's expectations, and JSON Pointer helpers.

use crate::domain::catalog::Expectations;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

/// Quoted values in messages are cut to this many characters.
const MAX_QUOTED_CHARS: usize = 40;

/// What the runner saw of a response.
#[derive(Debug, Clone, Default)]
pub struct ObservedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub duration_ms: u64,
}

/// Resolves an RFC 6901 JSON Pointer (`""` is the whole document; `~1` is `/`, `~0` is `~`).
pub fn json_pointer<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer)
}

/// A captured value as a variable: a string as is, anything else as compact JSON text.
pub fn captured_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks `response` against `expect`; returns one message per failed rule (empty = passed).
///
/// Without an expected status (or without expectations at all) the status must be 2xx.
pub fn check(expect: Option<&Expectations>, response: &ObservedResponse) -> Vec<String> {
    let mut failures = Vec::new();
    match expect.and_then(|e| e.status) {
        Some(wanted) if wanted != response.status => {
            failures.push(format!("expected status {wanted}, got {}", response.status))
        }
        None if !(200..300).contains(&response.status) => {
            failures.push(format!("expected a 2xx status, got {}", response.status))
        }
        _ => {}
    }
    let Some(expect) = expect else {
        return failures;
    };

    if !expect.json.is_empty() {
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(doc) => {
                for (pointer, wanted) in &expect.json {
                    match json_pointer(&doc, pointer) {
                        None => failures.push(format!("{}: not found", shorten(pointer))),
                        Some(got) if got != wanted => failures.push(format!(
                            "{}: expected {}, got {}",
                            shorten(pointer),
                            json_text(wanted),
                            json_text(got)
                        )),
                        Some(_) => {}
                    }
                }
            }
            Err(_) => failures.push(format!(
                "expected a JSON body for {} JSON check(s), but the body is not JSON",
                expect.json.len()
            )),
        }
    }

    if let Some(wanted) = &expect.body_contains {
        let body = String::from_utf8_lossy(&response.body);
        if !body.contains(wanted.as_str()) {
            failures.push(format!("body does not contain {}", quote(wanted)));
        }
    }

    for (name, wanted) in &expect.headers {
        let values: Vec<String> = response
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.is_empty() {
            failures.push(format!("header {}: missing", shorten(name)));
        } else if !values.iter().any(|v| v.contains(wanted.as_str())) {
            failures.push(format!(
                "header {}: expected to contain {}, got {}",
                shorten(name),
                quote(wanted),
                quote(&values.join(", "))
            ));
        }
    }

    if let Some(max) = expect.max_duration_ms
        && response.duration_ms > max
    {
        failures.push(format!(
            "took {} ms, more than the {max} ms allowed",
            response.duration_ms
        ));
    }
    failures
}

/// Cuts `text` to `MAX_QUOTED_CHARS` characters, marking the cut.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A string as a JSON string literal of at most about `MAX_QUOTED_CHARS` characters.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    let mut written = 0;
    for c in text.chars() {
        if written >= MAX_QUOTED_CHARS {
            out.push_str("\"…");
            return out;
        }
        let escaped = match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if c.is_control() => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        };
        written += escaped.chars().count();
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

/// A JSON value as (shortened) compact JSON text.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        other => shorten(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn response(status: u16, body: &str) -> ObservedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        ObservedResponse {
            status,
            headers,
            body: Bytes::from(body.to_owned()),
            duration_ms: 120,
        }
    }

    #[test]
    fn without_expectations_status_must_be_2xx() {
        assert!(check(None, &response(200, "")).is_empty());
        assert!(check(None, &response(204, "")).is_empty());
        assert_eq!(
            check(None, &response(503, "")),
            vec!["expected a 2xx status, got 503"]
        );
        assert_eq!(
            check(None, &response(302, "")),
            vec!["expected a 2xx status, got 302"]
        );
        // Expectations without a status keep the 2xx rule.
        let expect = Expectations {
            body_contains: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            check(Some(&expect), &response(404, "x")),
            vec!["expected a 2xx status, got 404"]
        );
        assert!(check(Some(&Expectations::default()), &response(201, "")).is_empty());
    }

    #[test]
    fn status_is_compared_exactly() {
        let expect = Expectations {
            status: Some(503),
            ..Default::default()
        };
        // An explicit non-2xx status passes.
        assert!(check(Some(&expect), &response(503, "")).is_empty());
        let expect = Expectations {
            status: Some(200),
            ..Default::default()
        };
        assert_eq!(
            check(Some(&expect), &response(503, "")),
            vec!["expected status 200, got 503"]
        );
        assert_eq!(
            check(Some(&expect), &response(201, "")),
            vec!["expected status 200, got 201"]
        );
    }

    #[test]
    fn json_values_are_compared_at_pointers() {
        let expect = Expectations {
            json: BTreeMap::from([
                ("/status".to_owned(), json!("ok")),
                ("/count".to_owned(), json!(3)),
                ("/items/1/id".to_owned(), json!({"x": [1]})),
            ]),
            ..Default::default()
        };
        let body = r#"{"status":"ok","count":3,"items":[{},{"id":{"x":[1]}}]}"#;
        assert!(check(Some(&expect), &response(200, body)).is_empty());

        let body = r#"{"status":"down","count":"3","items":[]}"#;
        assert_eq!(
            check(Some(&expect), &response(200, body)),
            vec![
                "/count: expected 3, got \"3\"",
                "/items/1/id: not found",
                "/status: expected \"ok\", got \"down\"",
            ]
        );
    }

    #[test]
    fn json_check_on_a_non_json_body_fails() {
        let expect = Expectations {
            json: BTreeMap::from([("/status".to_owned(), json!("ok"))]),
            ..Default::default()
        };
        let failures = check(Some(&expect), &response(200, "<html>ok</html>"));
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("not JSON"), "{failures:?}");
    }

    #[test]
    fn json_pointer_follows_rfc_6901() {
        let doc = json!({"a/b": 1, "m~n": 2, "": 3, "list": [10, 20], "x": {"y": null}});
        assert_eq!(json_pointer(&doc, "/a~1b"), Some(&json!(1)));
        assert_eq!(json_pointer(&doc, "/m~0n"), Some(&json!(2)));
        assert_eq!(json_pointer(&doc, "/"), Some(&json!(3)));
        assert_eq!(json_pointer(&doc, ""), Some(&doc));
        assert_eq!(json_pointer(&doc, "/list/1"), Some(&json!(20)));
        assert_eq!(json_pointer(&doc, "/x/y"), Some(&Value::Null));
        assert_eq!(json_pointer(&doc, "/list/2"), None);
        assert_eq!(json_pointer(&doc, "/a/b"), None);
        assert_eq!(json_pointer(&doc, "a"), None);

        let expect = Expectations {
            json: BTreeMap::from([
                ("/m~0n".to_owned(), json!(2)),
                ("/a~1b".to_owned(), json!(1)),
            ]),
            ..Default::default()
        };
        assert!(check(Some(&expect), &response(200, &doc.to_string())).is_empty());
    }

    #[test]
    fn captured_strings() {
        assert_eq!(captured_string(&json!("tok")), "tok");
        assert_eq!(captured_string(&json!(42)), "42");
        assert_eq!(captured_string(&json!(true)), "true");
        assert_eq!(captured_string(&Value::Null), "null");
        assert_eq!(captured_string(&json!({"a": [1, "b"]})), r#"{"a":[1,"b"]}"#);
    }

    #[test]
    fn body_contains_is_a_substring_check() {
        let expect = Expectations {
            body_contains: Some("\"ok\"".into()),
            ..Default::default()
        };
        assert!(check(Some(&expect), &response(200, r#"{"status":"ok"}"#)).is_empty());
        assert_eq!(
            check(Some(&expect), &response(200, r#"{"status":"down"}"#)),
            vec![r#"body does not contain "\"ok\"""#]
        );
        // Invalid UTF-8 is read lossily rather than failing the check outright.
        let mut observed = response(200, "");
        observed.body = Bytes::from_static(b"\xff\xfe \"ok\"");
        assert!(check(Some(&expect), &observed).is_empty());
    }

    #[test]
    fn headers_are_matched_case_insensitively_by_containment() {
        let expect = Expectations {
            headers: BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())]),
            ..Default::default()
        };
        assert!(check(Some(&expect), &response(200, "")).is_empty());

        let mut observed = response(200, "");
        observed
            .headers
            .insert("content-type", HeaderValue::from_static("text/plain"));
        assert_eq!(
            check(Some(&expect), &observed),
            vec![
                r#"header Content-Type: expected to contain "application/json", got "text/plain""#
            ]
        );
        observed.headers.clear();
        assert_eq!(
            check(Some(&expect), &observed),
            vec!["header Content-Type: missing"]
        );
    }

    #[test]
    fn max_duration_is_inclusive() {
        let mut expect = Expectations {
            max_duration_ms: Some(120),
            ..Default::default()
        };
        assert!(check(Some(&expect), &response(200, "")).is_empty());
        expect.max_duration_ms = Some(100);
        assert_eq!(
            check(Some(&expect), &response(200, "")),
            vec!["took 120 ms, more than the 100 ms allowed"]
        );
    }

    #[test]
    fn all_failures_are_reported_and_messages_stay_short() {
        let long = "x".repeat(10_000);
        let expect = Expectations {
            status: Some(200),
            json: BTreeMap::from([("/a".to_owned(), json!(long.clone()))]),
            body_contains: Some(long.clone()),
            headers: BTreeMap::from([("x-long".to_owned(), long.clone())]),
            max_duration_ms: Some(1),
        };
        let mut observed = response(500, &json!({"a": "y".repeat(10_000)}).to_string());
        observed.headers.insert(
            "x-long",
            HeaderValue::from_str(&"z".repeat(10_000)).unwrap(),
        );
        let failures = check(Some(&expect), &observed);
        assert_eq!(failures.len(), 5, "{failures:?}");
        for failure in &failures {
            assert!(failure.chars().count() < 200, "{failure}");
        }
    }
}
