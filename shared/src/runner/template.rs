//! `{{name}}` placeholders in step URLs, header values and bodies.
//!
//! A placeholder is `{{`, a variable name (letters, digits, `_`, `-`, `.`), `}}`, with
//! optional whitespace inside the braces. Anything else between braces (or an unclosed
//! `{{`) is left as it is, so bodies holding other brace syntax pass through. Values
//! put in are not templated again.
//!
//! Every render has a limit on what it produces (see `limits`): it stops as soon as the
//! output would exceed it and never allocates more than it.

use crate::domain::catalog::is_variable_name;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{0}`")]
    UnknownVariable(String),
    /// The caller knows which cap `limit` is and names it.
    #[error("the rendered text exceeds {limit} bytes")]
    TooLong { limit: usize },
}

/// Replaces every `{{name}}` in `text` with the variable's value; the result is at most
/// `limit` bytes.
pub fn render(
    text: &str,
    vars: &BTreeMap<String, String>,
    limit: usize,
) -> Result<String, TemplateError> {
    let mut out = Capped::new(text.len(), limit);
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push(&rest[..open])?;
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            // Unclosed: the rest is literal text.
            out.push(&rest[open..])?;
            return Ok(out.text);
        };
        let name = after_open[..close].trim();
        if is_variable_name(name) {
            let value = vars
                .get(name)
                .ok_or_else(|| TemplateError::UnknownVariable(name.to_owned()))?;
            out.push(value)?;
            rest = &after_open[close + 2..];
        } else {
            // Not a placeholder: keep one brace and look again from the next one, so
            // `{{{name}}}` renders as `{value}`.
            out.push("{")?;
            rest = &rest[open + 1..];
        }
    }
    out.push(rest)?;
    Ok(out.text)
}

/// Templates every string leaf of `value` (object keys are left alone); the leaves together
/// are at most `limit` bytes.
pub fn render_json(
    value: &Value,
    vars: &BTreeMap<String, String>,
    limit: usize,
) -> Result<Value, TemplateError> {
    let mut left = limit;
    render_value(value, vars, &mut left).map_err(|e| match e {
        TemplateError::TooLong { .. } => TemplateError::TooLong { limit },
        other => other,
    })
}

fn render_value(
    value: &Value,
    vars: &BTreeMap<String, String>,
    left: &mut usize,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => {
            let rendered = render(s, vars, *left)?;
            *left = left.saturating_sub(rendered.len());
            Value::String(rendered)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_value(item, vars, left))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, item) in map {
                out.insert(key.clone(), render_value(item, vars, left)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A string that refuses to grow past `limit`, its capacity included.
struct Capped {
    text: String,
    limit: usize,
}

impl Capped {
    fn new(expected: usize, limit: usize) -> Self {
        Capped {
            text: String::with_capacity(expected.min(limit)),
            limit,
        }
    }

    fn push(&mut self, piece: &str) -> Result<(), TemplateError> {
        let needed = self.text.len() + piece.len();
        if needed > self.limit {
            return Err(TemplateError::TooLong { limit: self.limit });
        }
        reserve_within(&mut self.text, needed, self.limit);
        self.text.push_str(piece);
        Ok(())
    }
}

/// Makes room for `needed` bytes in `text` without growing its capacity past `limit`.
fn reserve_within(text: &mut String, needed: usize, limit: usize) {
    if needed > text.capacity() {
        let target = grown_capacity(text.capacity(), needed, limit);
        text.reserve_exact(target - text.len());
    }
}

/// The capacity a buffer of `capacity` grows to for `needed` bytes (`needed <= limit`):
/// doubling, as `String` and `Vec` would, but never past `limit`, so a capped output never
/// holds more memory than its cap.
pub(super) fn grown_capacity(capacity: usize, needed: usize, limit: usize) -> usize {
    needed.max(capacity.saturating_mul(2)).min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A limit none of the ordinary cases come near.
    const ROOMY: usize = 1024 * 1024;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("base_url".to_owned(), "http://127.0.0.1:9999".to_owned()),
            ("token".to_owned(), "abc".to_owned()),
            ("user.id".to_owned(), "42".to_owned()),
            ("tricky".to_owned(), "{{token}}".to_owned()),
        ])
    }

    #[test]
    fn replaces_placeholders() {
        assert_eq!(
            render("{{base_url}}/users/{{user.id}}?t={{token}}", &vars(), ROOMY).unwrap(),
            "http://127.0.0.1:9999/users/42?t=abc"
        );
    }

    #[test]
    fn allows_whitespace_inside_braces() {
        assert_eq!(
            render("Bearer {{ token }}/{{\ttoken\n}}", &vars(), ROOMY).unwrap(),
            "Bearer abc/abc"
        );
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it() {
        let err = render("{{ base_url }}/{{nope}}", &vars(), ROOMY).unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable("nope".into()));
        assert_eq!(err.to_string(), "unknown variable `nope`");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        for text in ["", "plain", "{ single } braces }}", "{\"a\":{\"b\":1}}"] {
            assert_eq!(render(text, &vars(), ROOMY).unwrap(), text);
        }
    }

    #[test]
    fn unclosed_placeholder_is_left_literally() {
        assert_eq!(
            render("{{token}} and {{token", &vars(), ROOMY).unwrap(),
            "abc and {{token"
        );
        assert_eq!(render("x {{", &vars(), ROOMY).unwrap(), "x {{");
    }

    #[test]
    fn non_names_between_braces_are_left_alone() {
        assert_eq!(
            render("{{}} {{a b}}", &vars(), ROOMY).unwrap(),
            "{{}} {{a b}}"
        );
        assert_eq!(render("{{{token}}}", &vars(), ROOMY).unwrap(), "{abc}");
    }

    #[test]
    fn values_are_not_templated_again() {
        assert_eq!(render("{{tricky}}", &vars(), ROOMY).unwrap(), "{{token}}");
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(render("é{{token}}ü{{", &vars(), ROOMY).unwrap(), "éabcü{{");
    }

    #[test]
    fn render_json_templates_string_leaves_only() {
        let body = json!({
            "{{token}}": "{{token}}",
            "nested": {"list": ["{{user.id}}", 1, true, null, {"u": "{{ base_url }}/x"}]},
            "n": 3.5
        });
        assert_eq!(
            render_json(&body, &vars(), ROOMY).unwrap(),
            json!({
                "{{token}}": "abc",
                "nested": {"list": ["42", 1, true, null, {"u": "http://127.0.0.1:9999/x"}]},
                "n": 3.5
            })
        );
    }

    #[test]
    fn render_json_reports_unknown_variables_in_leaves() {
        let err = render_json(&json!({"a": ["{{missing}}"]}), &vars(), ROOMY).unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable("missing".into()));
    }

    fn big() -> BTreeMap<String, String> {
        BTreeMap::from([("v".to_owned(), "x".repeat(40_000))])
    }

    #[test]
    fn output_up_to_the_limit_is_fine_and_holds_no_more() {
        let text = "{{v}}-{{v}}";
        let exact = 80_001;
        let out = render(text, &big(), exact).unwrap();
        assert_eq!(out.len(), exact);
        assert!(out.capacity() <= exact, "{}", out.capacity());
        assert_eq!(
            render(text, &big(), exact - 1),
            Err(TemplateError::TooLong { limit: exact - 1 })
        );
    }

    #[test]
    fn literal_text_counts_too() {
        assert_eq!(render("abcd", &vars(), 4).unwrap(), "abcd");
        assert_eq!(
            render("abcde", &vars(), 4),
            Err(TemplateError::TooLong { limit: 4 })
        );
        assert_eq!(
            render("ab{{", &vars(), 4),
            Ok("ab{{".to_owned()),
            "an unclosed placeholder is literal text"
        );
        assert_eq!(
            render("abc{{", &vars(), 4),
            Err(TemplateError::TooLong { limit: 4 })
        );
        assert_eq!(
            render("{{{token}}}", &vars(), 4),
            Err(TemplateError::TooLong { limit: 4 })
        );
        assert_eq!(render("", &vars(), 0).unwrap(), "");
    }

    #[test]
    fn rendering_stops_at_the_limit() {
        // 5,000 copies of a 40,000-character value (200 MB) against a 64 KiB limit: refused
        // once the second copy would not fit. The unknown variable after it is never reached.
        let text = format!("{}{{{{nope}}}}", "{{v}}".repeat(5_000));
        assert_eq!(
            render(&text, &big(), 64 * 1024),
            Err(TemplateError::TooLong { limit: 64 * 1024 })
        );
        // Without the limit in the way, it is reached.
        assert_eq!(
            render("{{v}}{{nope}}", &big(), ROOMY),
            Err(TemplateError::UnknownVariable("nope".into()))
        );
    }

    #[test]
    fn render_json_limits_the_leaves_together() {
        let body = json!({"a": "{{v}}", "b": ["{{v}}", {"c": "{{v}}"}], "n": 1});
        assert!(render_json(&body, &big(), 120_000).is_ok());
        // Each leaf fits; the three together do not.
        assert_eq!(
            render_json(&body, &big(), 119_999),
            Err(TemplateError::TooLong { limit: 119_999 })
        );
        // It stops there: the unknown variable in a later leaf is never reached.
        let body = json!({"a": "{{v}}", "b": "{{v}}", "c": "{{nope}}"});
        assert_eq!(
            render_json(&body, &big(), 50_000),
            Err(TemplateError::TooLong { limit: 50_000 })
        );
    }
}
