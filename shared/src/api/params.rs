//! Query strings, page sizes, opaque cursors and JSON bodies, all checked strictly.

use super::problem::Problem;
use super::strict::Strict;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::str::FromStr;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// How many items a page of a listing holds: `limit`, 1..`max`, `default` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

/// Listings of test cases, suites, executions and children.
pub const LISTING_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// `GET /executions/{id}/steps`.
pub const STEPS_PAGE: PageSize = PageSize {
    default: 100,
    max: 1000,
};

impl PageSize {
    /// The `limit` parameter's schema.
    pub fn schema(self) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(self.max as f64))
            .default(Some(self.default.into()))
            .into()
    }
}

/// `limit` of [`LISTING_PAGE`], for `#[param(schema_with = ...)]`.
pub fn listing_limit_schema() -> RefOr<Schema> {
    LISTING_PAGE.schema()
}

/// `limit` of [`STEPS_PAGE`].
pub fn steps_limit_schema() -> RefOr<Schema> {
    STEPS_PAGE.schema()
}

/// A request's query parameters; each may appear once, and only the ones a route knows.
/// Empty values count as absent.
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    pub fn parse<N: AsRef<str>>(raw: Option<&str>, allowed: &[N]) -> Result<Self, Problem> {
        let mut params = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.iter().any(|name| name.as_ref() == key) {
                let known = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(AsRef::as_ref)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Problem::field(
                    &key,
                    format!("unknown query parameter; this route takes: {known}"),
                ));
            }
            if params.insert(key.to_string(), value.to_string()).is_some() {
                return Err(Problem::field(&key, "given more than once"));
            }
        }
        params.retain(|_, value| !value.is_empty());
        Ok(Query { params })
    }

    /// The parameters as a JSON object of strings, for a typed parameter struct.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, Problem> {
        let object: serde_json::Map<String, serde_json::Value> = self
            .params
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| Problem::field("query", strip_position(&e.to_string())))
    }
}

/// `limit`, within `1..=size.max`, or `size.default` when absent.
pub fn limit(text: Option<&str>, size: PageSize) -> Result<usize, Problem> {
    let PageSize { default, max } = size;
    match text {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Problem::field(
                "limit",
                format!("must be an integer 1..{max}"),
            )),
        },
    }
}

/// Where a page continues (`cursor`, checked first) and how many items it holds (`limit`).
pub fn page<T: FromStr>(
    limit_text: Option<&str>,
    cursor_text: Option<&str>,
    listing: &str,
    size: PageSize,
) -> Result<(Option<T>, usize), Problem> {
    let after = parsed_cursor(cursor_text, listing)?;
    Ok((after, limit(limit_text, size)?))
}

/// The position a `cursor` encodes, checked to belong to this kind of listing.
pub fn cursor(text: Option<&str>, kind: &str) -> Result<Option<String>, Problem> {
    text.map(|c| decode_cursor(kind, c)).transpose()
}

/// [`cursor`] for a listing whose position is not an id (a step index): a position that does
/// not parse is as invalid as a tampered cursor.
pub fn parsed_cursor<T: FromStr>(text: Option<&str>, kind: &str) -> Result<Option<T>, Problem> {
    cursor(text, kind)?
        .map(|position| position.parse().map_err(|_| invalid_cursor()))
        .transpose()
}

fn invalid_cursor() -> Problem {
    Problem::new(
        http::StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "the cursor is not valid for this listing",
    )
}

/// Cursors are opaque to clients: a listing kind and a position, base64url-encoded.
pub fn encode_cursor(kind: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

fn decode_cursor(kind: &str, cursor: &str) -> Result<String, Problem> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    let position = text
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid_cursor)?;
    let sane = !position.is_empty()
        && position.len() <= 64
        && position
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if sane {
        Ok(position.to_owned())
    } else {
        Err(invalid_cursor())
    }
}

/// Parses a JSON body strictly; type errors and unknown fields name the field.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::new(
            http::StatusCode::BAD_REQUEST,
            "malformed_json",
            "this route needs a JSON body",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(Strict(&mut deserializer)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Decided on the whole body: serde_json reports a wrongly typed enum value as a
        // syntax error, and a type error can come before a later syntax error.
        let not_json = std::str::from_utf8(body).is_err()
            || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err();
        if not_json {
            Problem::new(
                http::StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            Problem::field(&field, strip_position(&inner.to_string()))
        }
    })?;
    deserializer.end().map_err(|_| {
        Problem::new(
            http::StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body has trailing characters after the JSON value",
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let encoded = encode_cursor("executions", "ex_01ABC");
        assert_eq!(
            cursor(Some(&encoded), "executions").unwrap().as_deref(),
            Some("ex_01ABC")
        );
        assert!(
            cursor(Some(&encoded), "test-cases").is_err(),
            "a cursor belongs to its listing"
        );
        for bad in ["%%%", "bm9wZQ", "ZXhlY3V0aW9uczpleF8wMS8uLg"] {
            assert!(cursor(Some(bad), "executions").is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None, LISTING_PAGE).unwrap(), 50);
        assert_eq!(limit(Some("200"), LISTING_PAGE).unwrap(), 200);
        for bad in ["0", "201", "-1", "ten", "99999999999999999999999"] {
            assert!(limit(Some(bad), LISTING_PAGE).is_err(), "{bad}");
        }
        assert_eq!(limit(Some("1000"), STEPS_PAGE).unwrap(), 1000);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(Query::parse(Some("colour=red"), &["limit"]).is_err());
        assert!(Query::parse(Some("limit=1&limit=2"), &["limit"]).is_err());
    }

    #[test]
    fn body_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            count: u32,
        }
        let problem = json_body::<Body>(br#"{"count": "three"}"#).unwrap_err();
        assert_eq!(problem.errors[0].field, "count");
        assert!(!problem.errors[0].message.contains("line"));
        let problem = json_body::<Body>(br#"{"count": 3, "extra": 1}"#).unwrap_err();
        assert!(problem.errors[0].message.contains("extra"));
        assert_eq!(
            json_body::<Body>(b"{not json").unwrap_err().code,
            "malformed_json"
        );
    }
}
