//! The validation rules as JSON Schema, for the OpenAPI document. Each schema is built from the
//! constants the validators check, so the document states exactly what a request must meet:
//! a request valid against the document is never refused for its shape (only for what it
//! names: an id that does not exist, a step index beyond the execution's steps). Fields name
//! these with `#[schema(schema_with = ...)]`.

use super::catalog::{
    HTTP_METHODS, HttpRequestSpec, MAX_DESCRIPTION_CHARS, MAX_MAX_PARALLEL, MAX_STEP_TIMEOUT_MS,
    MAX_STEPS, MAX_SUITE_CASES, MAX_TIMEOUT_S, MAX_URL_CHARS, MAX_VARIABLE_NAME_CHARS, StepAction,
    StepDefinition,
};
use super::execution::{
    MAX_ENVIRONMENT_CHARS, MAX_RETRIES_LIMIT, MAX_STEPS_PER_REPORT, StepReport, StepStatus,
};
use super::validation::{MAX_NAME_CHARS, MAX_TAG_CHARS, MAX_TAGS};
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// What `str::trim` removes: Rust's `char::is_whitespace` (Unicode `White_Space`), as
/// inclusive ranges.
pub const WHITESPACE: [(char, char); 10] = [
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// A pattern met by any text with a character outside [`WHITESPACE`]: not blank. Spelled
/// with `\uXXXX` escapes, which ECMA 262, Rust's and Python's regular expressions read alike
/// (their `\s` classes differ).
pub fn not_blank_pattern() -> String {
    let class: String = WHITESPACE
        .iter()
        .map(|&(from, to)| {
            if from == to {
                format!("\\u{:04x}", u32::from(from))
            } else {
                format!("\\u{:04x}-\\u{:04x}", u32::from(from), u32::from(to))
            }
        })
        .collect();
    format!("[^{class}]")
}

/// Variable names: letters, digits, `_`, `-` and `.` (see `is_variable_name`).
pub const VARIABLE_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]+$";

/// A JSON Pointer (RFC 6901): empty, or starting with `/`.
pub const JSON_POINTER_PATTERN: &str = "^(/|$)";

/// What `http::HeaderName` takes: an RFC 9110 token.
pub const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// The longest header name `http::HeaderName` takes.
pub const MAX_HEADER_NAME_BYTES: usize = (1 << 16) - 1;

/// A built-in step's URL: `http://`, `https://`, or a `{{placeholder}}` first.
pub const URL_PATTERN: &str = "^(\\{\\{|https?://)";

fn typed(types: &[Type]) -> SchemaType {
    match types {
        [one] => SchemaType::new(one.clone()),
        many => many.iter().cloned().collect(),
    }
}

fn string(min: usize, max: usize, nullable: bool) -> ObjectBuilder {
    let types: &[Type] = if nullable {
        &[Type::String, Type::Null]
    } else {
        &[Type::String]
    };
    ObjectBuilder::new()
        .schema_type(typed(types))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
}

fn integer(min: u64, max: u64, nullable: bool, format: KnownFormat) -> ObjectBuilder {
    let types: &[Type] = if nullable {
        &[Type::Integer, Type::Null]
    } else {
        &[Type::Integer]
    };
    ObjectBuilder::new()
        .schema_type(typed(types))
        .format(Some(SchemaFormat::KnownFormat(format)))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}

/// A string map whose keys are variable names.
fn map_by_variable_name(values: ObjectBuilder) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(variable_name()))
        .additional_properties(Some(values))
}

fn variable_name() -> ObjectBuilder {
    string(1, MAX_VARIABLE_NAME_CHARS, false).pattern(Some(VARIABLE_NAME_PATTERN))
}

fn json_pointer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(JSON_POINTER_PATTERN))
}

/// A name: 1..200 characters, not blank.
pub fn name() -> RefOr<Schema> {
    string(1, MAX_NAME_CHARS, false)
        .pattern(Some(not_blank_pattern()))
        .description(Some(format!(
            "1..{MAX_NAME_CHARS} characters, not only whitespace"
        )))
        .into()
}

/// An optional description of at most 4,000 characters.
pub fn description() -> RefOr<Schema> {
    string(0, MAX_DESCRIPTION_CHARS, true).into()
}

/// Up to 50 tags of 1..100 characters each.
pub fn tags() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(string(1, MAX_TAG_CHARS, false))
        .max_items(Some(MAX_TAGS))
        .into()
}

/// Variables: variable names to string values.
pub fn variables() -> RefOr<Schema> {
    map_by_variable_name(ObjectBuilder::new().schema_type(Type::String)).into()
}

/// An optional execution timeout in seconds, 1 s to 7 days.
pub fn timeout_s() -> RefOr<Schema> {
    integer(1, MAX_TIMEOUT_S, true, KnownFormat::Int64).into()
}

/// An optional count of automatic retries.
pub fn max_retries() -> RefOr<Schema> {
    integer(0, u64::from(MAX_RETRIES_LIMIT), true, KnownFormat::Int32).into()
}

/// An optional environment name.
pub fn environment() -> RefOr<Schema> {
    string(1, MAX_ENVIRONMENT_CHARS, true).into()
}

/// An optional bound on a parallel suite's active children.
pub fn max_parallel() -> RefOr<Schema> {
    integer(1, u64::from(MAX_MAX_PARALLEL), true, KnownFormat::Int32)
        .description(Some(
            "Children active at once in `parallel` mode (default 10)",
        ))
        .into()
}

/// A suite's test cases: 1..1,000 ids.
pub fn test_case_ids() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .min_items(Some(1))
        .max_items(Some(MAX_SUITE_CASES))
        .description(Some(
            "Each must be a test case that exists and that the caller can see (else `400`)",
        ))
        .into()
}

/// A test case's steps: 1..10,000, all `http` or all `external`. An `http` step has an
/// `http` request; an `external` step has no request, expectations or captures.
pub fn case_steps() -> RefOr<Schema> {
    let steps = |action: StepAction| {
        let mut rules = ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .property(
                "action",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([action_name(action)])),
            );
        rules = match action {
            StepAction::Http => rules
                .property("http", reference::<HttpRequestSpec>())
                .required("http"),
            StepAction::External => rules
                .property("http", ObjectBuilder::new().schema_type(Type::Null))
                .property("expect", ObjectBuilder::new().schema_type(Type::Null))
                .property(
                    "capture",
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .max_properties(Some(0)),
                ),
        };
        let step = AllOfBuilder::new()
            .item(reference::<StepDefinition>())
            .item(rules);
        ArrayBuilder::new()
            .items(RefOr::T(Schema::AllOf(step.build())))
            .min_items(Some(1))
            .max_items(Some(MAX_STEPS))
    };
    OneOfBuilder::new()
        .item(steps(StepAction::Http))
        .item(steps(StepAction::External))
        .description(Some(format!(
            "1..{MAX_STEPS} steps, all `http` (run by the built-in runner) or all `external` \
             (reported from outside)"
        )))
        .into()
}

fn action_name(action: StepAction) -> &'static str {
    match action {
        StepAction::Http => "http",
        StepAction::External => "external",
    }
}

/// Captures: variable names to JSON Pointers into the response body.
pub fn capture() -> RefOr<Schema> {
    map_by_variable_name(json_pointer()).into()
}

/// Expected JSON: JSON Pointers to values.
pub fn expect_json() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(json_pointer()))
        .into()
}

/// An optional expected HTTP status.
pub fn expect_status() -> RefOr<Schema> {
    integer(100, 599, true, KnownFormat::Int32).into()
}

/// A built-in step's HTTP method.
pub fn http_method() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(HTTP_METHODS))
        .into()
}

/// A built-in step's URL, before templating.
pub fn http_url() -> RefOr<Schema> {
    string(1, MAX_URL_CHARS, false)
        .pattern(Some(URL_PATTERN))
        .description(Some(
            "`http://` or `https://`, or starting with a `{{placeholder}}`",
        ))
        .into()
}

/// A built-in step's request headers, by valid header names.
pub fn http_headers() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            string(1, MAX_HEADER_NAME_BYTES, false).pattern(Some(HEADER_NAME_PATTERN)),
        ))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
        .into()
}

/// A built-in step's optional request timeout.
pub fn http_timeout_ms() -> RefOr<Schema> {
    integer(1, MAX_STEP_TIMEOUT_MS, true, KnownFormat::Int64).into()
}

/// A reported step's index: below the execution's step count, so below 10,000.
pub fn step_index() -> RefOr<Schema> {
    integer(0, (MAX_STEPS - 1) as u64, false, KnownFormat::Int32)
        .description(Some(
            "0-based; below the execution's step count (else `400`)",
        ))
        .into()
}

/// The results of one step report: 1..500.
pub fn reported_steps() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(reference::<StepReport>())
        .min_items(Some(1))
        .max_items(Some(MAX_STEPS_PER_REPORT))
        .into()
}

/// A reported step status: any but `pending` (a report cannot set a step back).
pub fn reported_status() -> RefOr<Schema> {
    let statuses: Vec<&str> = StepStatus::all()
        .filter(|s| *s != StepStatus::Pending)
        .map(StepStatus::as_str)
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(statuses))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_what_trim_removes() {
        let listed = |c: char| {
            WHITESPACE
                .iter()
                .any(|&(from, to)| (from..=to).contains(&c))
        };
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(listed(c), c.is_whitespace(), "{:?}", c);
        }
        assert!(not_blank_pattern().starts_with("[^\\u0009-\\u000d\\u0020\\u0085"));
    }

    #[test]
    fn header_names_are_what_the_http_crate_takes() {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        for b in 0..=255u8 {
            let name = [b];
            assert_eq!(
                http::HeaderName::from_bytes(&name).is_ok(),
                allowed(b),
                "byte {b}"
            );
            let class = &HEADER_NAME_PATTERN[2..HEADER_NAME_PATTERN.len() - 3];
            let in_class = class.contains(b as char)
                || (b.is_ascii_digit() && class.contains("0-9"))
                || (b.is_ascii_lowercase() && class.contains("a-z"))
                || (b.is_ascii_uppercase() && class.contains("A-Z"));
            assert_eq!(in_class, allowed(b), "byte {b} in {class}");
        }
        assert!(http::HeaderName::from_bytes(&[b'a'; MAX_HEADER_NAME_BYTES]).is_ok());
        assert!(http::HeaderName::from_bytes(&[b'a'; MAX_HEADER_NAME_BYTES + 1]).is_err());
        assert!(http::HeaderName::from_bytes(b"").is_err());
    }
}
