//! `{{name}}` placeholders in step URLs, header values and bodies.
//!
//! A placeholder is `{{`, a variable name (letters, digits, `_`, `-`, `.`), `}}`, with
//! optional whitespace inside the braces. Anything else between braces (or an unclosed
//! `{{`) is left as it is, so bodies holding other brace syntax pass through. Values
//! put in are not templated again.

use crate::domain::catalog::is_variable_name;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{0}`")]
    UnknownVariable(String),
}

/// Replaces every `{{name}}` in `text` with the variable's value.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            // Unclosed: the rest is literal text.
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = after_open[..close].trim();
        if is_variable_name(name) {
            let value = vars
                .get(name)
                .ok_or_else(|| TemplateError::UnknownVariable(name.to_owned()))?;
            out.push_str(value);
            rest = &after_open[close + 2..];
        } else {
            // Not a placeholder: keep one brace and look again from the next one, so
            // `{{{name}}}` renders as `{value}`.
            out.push('{');
            rest = &rest[open + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Templates every string leaf of `value` (object keys are left alone).
pub fn render_json(value: &Value, vars: &BTreeMap<String, String>) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_json(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, item) in map {
                out.insert(key.clone(), render_json(item, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            render("{{base_url}}/users/{{user.id}}?t={{token}}", &vars()).unwrap(),
            "http://127.0.0.1:9999/users/42?t=abc"
        );
    }

    #[test]
    fn allows_whitespace_inside_braces() {
        assert_eq!(
            render("Bearer {{ token }}/{{\ttoken\n}}", &vars()).unwrap(),
            "Bearer abc/abc"
        );
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it() {
        let err = render("{{ base_url }}/{{nope}}", &vars()).unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable("nope".into()));
        assert_eq!(err.to_string(), "unknown variable `nope`");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        for text in ["", "plain", "{ single } braces }}", "{\"a\":{\"b\":1}}"] {
            assert_eq!(render(text, &vars()).unwrap(), text);
        }
    }

    #[test]
    fn unclosed_placeholder_is_left_literally() {
        assert_eq!(
            render("{{token}} and {{token", &vars()).unwrap(),
            "abc and {{token"
        );
        assert_eq!(render("x {{", &vars()).unwrap(), "x {{");
    }

    #[test]
    fn non_names_between_braces_are_left_alone() {
        assert_eq!(render("{{}} {{a b}}", &vars()).unwrap(), "{{}} {{a b}}");
        assert_eq!(render("{{{token}}}", &vars()).unwrap(), "{abc}");
    }

    #[test]
    fn values_are_not_templated_again() {
        assert_eq!(render("{{tricky}}", &vars()).unwrap(), "{{token}}");
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(render("é{{token}}ü{{", &vars()).unwrap(), "éabcü{{");
    }

    #[test]
    fn render_json_templates_string_leaves_only() {
        let body = json!({
            "{{token}}": "{{token}}",
            "nested": {"list": ["{{user.id}}", 1, true, null, {"u": "{{ base_url }}/x"}]},
            "n": 3.5
        });
        assert_eq!(
            render_json(&body, &vars()).unwrap(),
            json!({
                "{{token}}": "abc",
                "nested": {"list": ["42", 1, true, null, {"u": "http://127.0.0.1:9999/x"}]},
                "n": 3.5
            })
        );
    }

    #[test]
    fn render_json_reports_unknown_variables_in_leaves() {
        let err = render_json(&json!({"a": ["{{missing}}"]}), &vars()).unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable("missing".into()));
    }
}
