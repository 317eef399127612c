//! The test catalog: test cases (ordered steps) and test suites (ordered test cases), and
//! what every kind of catalog entry has in common ([`CatalogEntry`]).

use super::ids::{TEST_CASE_PREFIX, TEST_SUITE_PREFIX};
use super::schema;
use super::time::Timestamp;
use super::validation::{MAX_NAME_CHARS, ValidationErrors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const MAX_STEPS: usize = 10_000;
pub const MAX_SUITE_CASES: usize = 1_000;
/// The most steps a suite's test cases may hold in all. Each child is a record and each of
/// its steps may be reported: this bounds what one suite start commits to.
pub const MAX_SUITE_STEPS: u64 = 200_000;
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 30_000;
pub const MAX_STEP_TIMEOUT_MS: u64 = 600_000;
pub const DEFAULT_MAX_PARALLEL: u32 = 10;
pub const MAX_MAX_PARALLEL: u32 = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// A built-in step's URL, before templating.
pub const MAX_URL_CHARS: usize = 8_192;
pub const MAX_VARIABLE_NAME_CHARS: usize = MAX_NAME_CHARS;
pub const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A suite whose test cases hold `steps` in all (a case named twice counts twice) is too
/// large to run.
pub fn check_suite_steps(steps: u64) -> Result<(), ValidationErrors> {
    if steps > MAX_SUITE_STEPS {
        return Err(ValidationErrors::single(
            "test_case_ids",
            format!(
                "the suite's test cases hold {steps} steps in all; a suite may hold at most {MAX_SUITE_STEPS}"
            ),
        ));
    }
    Ok(())
}

/// The kinds of entries the catalog keeps. Stores key entries by kind; everything else about
/// a kind is its [`CatalogEntry`] implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum CatalogKind {
    TestCase,
    TestSuite,
}

impl CatalogKind {
    /// How messages name an entry of this kind: "test case".
    pub fn name(self) -> &'static str {
        match self {
            CatalogKind::TestCase => "test case",
            CatalogKind::TestSuite => "test suite",
        }
    }

    /// The prefix of this kind's ids: `tc_`.
    pub fn id_prefix(self) -> &'static str {
        match self {
            CatalogKind::TestCase => TEST_CASE_PREFIX,
            CatalogKind::TestSuite => TEST_SUITE_PREFIX,
        }
    }

    /// The problem code of a missing entry: `test_case_not_found`.
    pub fn not_found_code(self) -> &'static str {
        match self {
            CatalogKind::TestCase => "test_case_not_found",
            CatalogKind::TestSuite => "test_suite_not_found",
        }
    }

    /// The kind a [`name`](Self::name) names.
    pub fn named(name: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|k| k.name() == name)
    }
}

/// An entry of the catalog: owned, tagged, versioned, created and replaced from a client's
/// input. Stores keep it as its JSON document, indexed by kind, id, owner and tags.
pub trait CatalogEntry: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: CatalogKind;
    /// What a client sends to create or replace an entry.
    type Input: Send + Sync + 'static;

    fn id(&self) -> &str;
    fn owner(&self) -> &str;
    fn tags(&self) -> &[String];
    fn version(&self) -> u64;

    /// The input's own checks; those that need other entries are [`references`](Self::references).
    fn validate(input: &Self::Input) -> Result<(), ValidationErrors>;

    /// Other entries the input names, each of which must exist and be visible to the caller.
    fn references(_input: &Self::Input) -> Vec<Reference> {
        Vec::new()
    }

    /// Checks what the referenced entries hold together: `steps`, the steps of every
    /// referenced test case (each time it is named).
    fn check_referenced_steps(_steps: u64) -> Result<(), ValidationErrors> {
        Ok(())
    }

    /// A new entry, version 1.
    fn create(id: String, owner: String, input: Self::Input, now: Timestamp) -> Self;

    /// This entry with `input`'s content: the same id, owner and creation time, the next version.
    fn replaced(&self, input: Self::Input, now: Timestamp) -> Self;
}

/// An entry an input names, and the field that names it (for the validation error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub field: String,
    pub kind: CatalogKind,
    pub id: String,
}

/// What every entry type has alike: `id`, `owner`, `tags`, `version` and `created_at` fields,
/// an input with its own `validate`, and a replacement that keeps id, owner and creation time.
macro_rules! entry_fields {
    () => {
        fn id(&self) -> &str {
            &self.id
        }

        fn owner(&self) -> &str {
            &self.owner
        }

        fn tags(&self) -> &[String] {
            &self.tags
        }

        fn version(&self) -> u64 {
            self.version
        }

        fn validate(input: &Self::Input) -> Result<(), ValidationErrors> {
            input.validate()
        }

        fn replaced(&self, input: Self::Input, now: Timestamp) -> Self {
            let next = Self::create(self.id.clone(), self.owner.clone(), input, now);
            Self {
                created_at: self.created_at,
                version: self.version + 1,
                ..next
            }
        }
    };
}

impl CatalogEntry for TestCase {
    const KIND: CatalogKind = CatalogKind::TestCase;
    type Input = TestCaseInput;

    entry_fields!();

    fn create(id: String, owner: String, input: TestCaseInput, now: Timestamp) -> Self {
        TestCase {
            id,
            owner,
            name: input.name,
            description: input.description,
            tags: input.tags,
            variables: input.variables,
            timeout_s: input.timeout_s,
            steps: input.steps,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

impl CatalogEntry for TestSuite {
    const KIND: CatalogKind = CatalogKind::TestSuite;
    type Input = TestSuiteInput;

    entry_fields!();

    fn check_referenced_steps(steps: u64) -> Result<(), ValidationErrors> {
        check_suite_steps(steps)
    }

    /// Every listed test case.
    fn references(input: &TestSuiteInput) -> Vec<Reference> {
        input
            .test_case_ids
            .iter()
            .enumerate()
            .map(|(i, id)| Reference {
                field: format!("test_case_ids[{i}]"),
                kind: CatalogKind::TestCase,
                id: id.clone(),
            })
            .collect()
    }

    fn create(id: String, owner: String, input: TestSuiteInput, now: Timestamp) -> Self {
        TestSuite {
            id,
            owner,
            name: input.name,
            description: input.description,
            test_case_ids: input.test_case_ids,
            mode: input.mode,
            max_parallel: input.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL),
            fail_fast: input.fail_fast,
            tags: input.tags,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Http,
    External,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestSpec {
    #[schema(schema_with = schema::http_method)]
    pub method: String,
    #[schema(schema_with = schema::http_url)]
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = schema::http_headers)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is (after templating); any other JSON value is sent as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::http_timeout_ms)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::expect_status)]
    pub status: Option<u16>,
    /// JSON Pointer (RFC 6901) → expected value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = schema::expect_json)]
    pub json: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Header name → a value the response header must contain.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    #[schema(schema_with = schema::name)]
    pub name: String,
    pub action: StepAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequestSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expectations>,
    /// Variable name → JSON Pointer into the response body.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = schema::capture)]
    pub capture: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

/// What a client sends to create or replace a test case.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCaseInput {
    #[schema(schema_with = schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schema::description)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schema::tags)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = schema::variables)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = schema::timeout_s)]
    pub timeout_s: Option<u64>,
    #[schema(schema_with = schema::case_steps)]
    pub steps: Vec<StepDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestCase {
    pub id: String,
    pub owner: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    pub steps: Vec<StepDefinition>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

impl TestCase {
    /// The runner a case's steps need; validation guarantees they are all one kind.
    pub fn runner(&self) -> RunnerKind {
        match self.steps.first().map(|s| s.action) {
            Some(StepAction::Http) => RunnerKind::Builtin,
            _ => RunnerKind::External,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunnerKind {
    /// The engine's own HTTP runner runs the steps.
    Builtin,
    /// Something outside reports the steps.
    External,
}

impl TestCaseInput {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        errors.check_name("name", &self.name);
        check_description(&mut errors, self.description.as_deref());
        errors.check_tags("tags", &self.tags);
        for name in self.variables.keys() {
            if !is_variable_name(name) {
                errors.add(
                    format!("variables.{name}"),
                    "variable names are letters, digits, '_', '-' and '.'",
                );
            }
        }
        if let Some(timeout) = self.timeout_s {
            check_timeout(&mut errors, "timeout_s", timeout);
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            errors.add("steps", format!("must hold 1..{MAX_STEPS} steps"));
        }
        if let Some(first) = self.steps.first()
            && self.steps.iter().any(|s| s.action != first.action)
        {
            errors.add(
                "steps",
                "steps are all `http` or all `external`; a case cannot mix them",
            );
        }
        // A 10,000-step case with every step wrong would make a huge error list: cap it.
        for (i, step) in self.steps.iter().enumerate() {
            if errors.errors.len() >= 100 {
                break;
            }
            step.validate(&format!("steps[{i}]"), &mut errors);
        }
        errors.into_result()
    }
}

impl StepDefinition {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        errors.check_name(&format!("{path}.name"), &self.name);
        match (self.action, &self.http) {
            (StepAction::Http, None) => errors.add(
                format!("{path}.http"),
                "an `http` step needs an `http` request",
            ),
            (StepAction::Http, Some(http)) => http.validate(&format!("{path}.http"), errors),
            (StepAction::External, Some(_)) => errors.add(
                format!("{path}.http"),
                "an `external` step has no `http` request",
            ),
            (StepAction::External, None) => {}
        }
        if self.action == StepAction::External {
            if self.expect.is_some() {
                errors.add(
                    format!("{path}.expect"),
                    "only `http` steps have expectations",
                );
            }
            if !self.capture.is_empty() {
                errors.add(format!("{path}.capture"), "only `http` steps capture");
            }
        }
        if let Some(expect) = &self.expect {
            if let Some(status) = expect.status
                && !(100..=599).contains(&status)
            {
                errors.add(format!("{path}.expect.status"), "must be 100..599");
            }
            for pointer in expect.json.keys() {
                if !is_json_pointer(pointer) {
                    errors.add(
                        format!("{path}.expect.json.{pointer}"),
                        "keys are JSON Pointers: empty or starting with '/'",
                    );
                }
            }
        }
        for (name, pointer) in &self.capture {
            if !is_variable_name(name) {
                errors.add(
                    format!("{path}.capture.{name}"),
                    "variable names are letters, digits, '_', '-' and '.'",
                );
            }
            if !is_json_pointer(pointer) {
                errors.add(
                    format!("{path}.capture.{name}"),
                    "must be a JSON Pointer: empty or starting with '/'",
                );
            }
        }
    }
}

impl HttpRequestSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if !HTTP_METHODS.contains(&self.method.as_str()) {
            errors.add(
                format!("{path}.method"),
                format!("must be one of {}", HTTP_METHODS.join(", ")),
            );
        }
        // Placeholders may make up the scheme and host, so only the shape is checked here;
        // the runner checks the final URL.
        let url_ok = self.url.starts_with("{{")
            || self.url.starts_with("http://")
            || self.url.starts_with("https://");
        if !url_ok || self.url.chars().count() > MAX_URL_CHARS {
            errors.add(
                format!("{path}.url"),
                "must be an http:// or https:// URL (or start with a {{placeholder}})",
            );
        }
        if let Some(timeout) = self.timeout_ms
            && (timeout == 0 || timeout > MAX_STEP_TIMEOUT_MS)
        {
            errors.add(
                format!("{path}.timeout_ms"),
                format!("must be 1..{MAX_STEP_TIMEOUT_MS}"),
            );
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.add(format!("{path}.headers.{name}"), "not a valid header name");
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuiteMode {
    #[default]
    Parallel,
    Sequential,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSuiteInput {
    #[schema(schema_with = schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schema::description)]
    pub description: Option<String>,
    #[schema(schema_with = schema::test_case_ids)]
    pub test_case_ids: Vec<String>,
    #[serde(default)]
    pub mode: SuiteMode,
    #[serde(default)]
    #[schema(schema_with = schema::max_parallel)]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub fail_fast: bool,
    #[serde(default)]
    #[schema(schema_with = schema::tags)]
    pub tags: Vec<String>,
}

impl TestSuiteInput {
    /// Shape only; that every case exists and is visible is checked against the store.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        errors.check_name("name", &self.name);
        check_description(&mut errors, self.description.as_deref());
        errors.check_tags("tags", &self.tags);
        if self.test_case_ids.is_empty() || self.test_case_ids.len() > MAX_SUITE_CASES {
            errors.add(
                "test_case_ids",
                format!("must hold 1..{MAX_SUITE_CASES} test case ids"),
            );
        }
        if let Some(max) = self.max_parallel
            && (max == 0 || max > MAX_MAX_PARALLEL)
        {
            errors.add("max_parallel", format!("must be 1..{MAX_MAX_PARALLEL}"));
        }
        errors.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestSuite {
    pub id: String,
    pub owner: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub test_case_ids: Vec<String>,
    pub mode: SuiteMode,
    pub max_parallel: u32,
    pub fail_fast: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

impl TestSuite {
    /// How many children may be active at once.
    pub fn concurrency(&self) -> u32 {
        match self.mode {
            SuiteMode::Sequential => 1,
            SuiteMode::Parallel => self.max_parallel.max(1),
        }
    }
}

pub fn check_timeout(errors: &mut ValidationErrors, field: &str, timeout_s: u64) {
    if timeout_s == 0 || timeout_s > MAX_TIMEOUT_S {
        errors.add(field, format!("must be 1..{MAX_TIMEOUT_S} seconds"));
    }
}

fn check_description(errors: &mut ValidationErrors, description: Option<&str>) {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.add(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
}

pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_VARIABLE_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_json_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(steps: Value) -> Result<TestCaseInput, serde_json::Error> {
        serde_json::from_value(json!({"name": "c", "steps": steps}))
    }

    #[test]
    fn accepts_the_contract_example() {
        let input: TestCaseInput = serde_json::from_value(json!({
            "name": "checkout API smoke", "description": "optional", "tags": ["smoke"],
            "variables": {"base_url": "http://127.0.0.1:9999"}, "timeout_s": 300,
            "steps": [{"name": "health is ok", "action": "http",
                "http": {"method": "GET", "url": "{{base_url}}/health",
                         "headers": {"accept": "application/json"}, "body": null, "timeout_ms": 5000},
                "expect": {"status": 200, "json": {"/status": "ok"}, "body_contains": "ok",
                           "headers": {"content-type": "application/json"}, "max_duration_ms": 2000},
                "capture": {"token": "/access_token"}}]
        }))
        .unwrap();
        input.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = case(json!([{"name": "s", "action": "external", "colour": "red"}])).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn rejects_mixed_actions_with_a_field_path() {
        let input = case(json!([
            {"name": "a", "action": "external"},
            {"name": "b", "action": "http", "http": {"method": "GET", "url": "http://x"}}
        ]))
        .unwrap();
        let errors = input.validate().unwrap_err();
        assert!(errors.errors.iter().any(|e| e.field == "steps"));
    }

    #[test]
    fn reports_nested_field_paths() {
        let input = case(json!([
            {"name": "a", "action": "http", "http": {"method": "FETCH", "url": "ftp://x"}}
        ]))
        .unwrap();
        let fields: Vec<_> = input
            .validate()
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["steps[0].http.method", "steps[0].http.url"]);
    }

    #[test]
    fn step_count_bounds() {
        let step = json!({"name": "s", "action": "external"});
        assert!(case(json!([])).unwrap().validate().is_err());
        let max = Value::Array(vec![step.clone(); MAX_STEPS]);
        assert!(case(max).unwrap().validate().is_ok());
        let over = Value::Array(vec![step; MAX_STEPS + 1]);
        assert!(case(over).unwrap().validate().is_err());
    }

    #[test]
    fn suite_concurrency_follows_mode() {
        let mut suite = TestSuite {
            id: "ts_1".into(),
            owner: "a".into(),
            name: "s".into(),
            description: None,
            test_case_ids: vec![],
            mode: SuiteMode::Sequential,
            max_parallel: 5,
            fail_fast: false,
            tags: vec![],
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
            version: 1,
        };
        assert_eq!(suite.concurrency(), 1);
        suite.mode = SuiteMode::Parallel;
        assert_eq!(suite.concurrency(), 5);
    }

    #[test]
    fn kinds_name_their_ids_and_problems() {
        use strum::IntoEnumIterator;
        for kind in CatalogKind::iter() {
            assert_eq!(CatalogKind::named(kind.name()), Some(kind));
            assert_eq!(
                kind.not_found_code(),
                format!("{}_not_found", kind.name().replace(' ', "_"))
            );
        }
        assert_eq!(TestCase::KIND.id_prefix(), "tc_");
        assert_eq!(TestSuite::KIND.id_prefix(), "ts_");
        assert_eq!(CatalogKind::named("execution"), None);
    }

    #[test]
    fn a_replacement_is_the_next_version_of_the_same_entry() {
        let input: TestSuiteInput = serde_json::from_value(json!({
            "name": "first", "test_case_ids": ["tc_a", "tc_b"], "tags": ["smoke"]
        }))
        .unwrap();
        let created = TestSuite::create(
            "ts_1".into(),
            "alice".into(),
            input.clone(),
            Timestamp::from_millis(1_000),
        );
        assert_eq!(
            (created.version, created.max_parallel, created.created_at),
            (1, DEFAULT_MAX_PARALLEL, created.updated_at)
        );
        let references: Vec<_> = TestSuite::references(&input)
            .into_iter()
            .map(|r| (r.field, r.kind, r.id))
            .collect();
        assert_eq!(
            references,
            [
                (
                    "test_case_ids[0]".to_owned(),
                    CatalogKind::TestCase,
                    "tc_a".to_owned()
                ),
                (
                    "test_case_ids[1]".to_owned(),
                    CatalogKind::TestCase,
                    "tc_b".to_owned()
                ),
            ]
        );
        let renamed = TestSuiteInput {
            name: "second".into(),
            ..input
        };
        let replaced = created.replaced(renamed, Timestamp::from_millis(2_000));
        assert_eq!(
            (replaced.id(), replaced.owner(), replaced.version()),
            ("ts_1", "alice", 2)
        );
        assert_eq!(replaced.created_at, Timestamp::from_millis(1_000));
        assert_eq!(replaced.updated_at, Timestamp::from_millis(2_000));
        assert_eq!(replaced.name, "second");
        assert_eq!(replaced.tags(), ["smoke"]);

        let case_input = case(json!([{"name": "s", "action": "external"}])).unwrap();
        assert!(TestCase::references(&case_input).is_empty());
    }
}
