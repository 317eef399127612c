//! The OpenAPI 3.0 document, generated from the router's route table and the wire types'
//! `JsonSchema` derives; served at `GET /api/v1/openapi.json`. Tests hold the route table to
//! the router, so the document cannot list a route that does not exist or miss one that does.

use super::{
    API_PREFIX, CancelBody, RouteGroup, StartCaseBody, StartSuiteBody, StepsBody, queries,
};
use crate::domain::catalog::RunnerKind;
use crate::domain::catalog::{TestCase, TestCaseInput, TestSuite, TestSuiteInput};
use crate::domain::execution::{
    ChildCounts, ExecutionConfig, ExecutionKind, ExecutionStatus, HistoryEntry, Priority, Progress,
    StepResult, StepStorage,
};
use crate::domain::time::Timestamp;
use crate::domain::validation::FieldError;
use http::Method;
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// One documented route.
pub struct RouteDoc {
    pub method: Method,
    /// Path under the API prefix, with `{id}` for the id segment.
    pub path: &'static str,
    pub group: RouteGroup,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    pub request: Option<SchemaOf>,
    pub status: u16,
    pub response: Option<SchemaOf>,
}

macro_rules! schema {
    ($t:ty) => {
        Some(|g: &mut SchemaGenerator| g.subschema_for::<$t>())
    };
}

/// Every route of the API: the document is built from this list.
pub fn routes() -> Vec<RouteDoc> {
    use RouteGroup::*;
    let route = |method, path, group, summary, query, request, status, response| RouteDoc {
        method,
        path,
        group,
        summary,
        query,
        request,
        status,
        response,
    };
    vec![
        route(
            Method::GET,
            "/health",
            Health,
            "Liveness; no authentication",
            &[],
            None,
            200,
            schema!(HealthDoc),
        ),
        route(
            Method::GET,
            "/openapi.json",
            Health,
            "This document; no authentication",
            &[],
            None,
            200,
            None,
        ),
        route(
            Method::POST,
            "/test-cases",
            Catalog,
            "Create a test case",
            &[],
            schema!(TestCaseInput),
            201,
            schema!(TestCase),
        ),
        route(
            Method::GET,
            "/test-cases",
            Catalog,
            "List test cases",
            queries::CATALOG,
            None,
            200,
            schema!(Page<TestCase>),
        ),
        route(
            Method::GET,
            "/test-cases/{id}",
            Catalog,
            "Get a test case",
            &[],
            None,
            200,
            schema!(TestCase),
        ),
        route(
            Method::PUT,
            "/test-cases/{id}",
            Catalog,
            "Replace a test case (bumps version)",
            &[],
            schema!(TestCaseInput),
            200,
            schema!(TestCase),
        ),
        route(
            Method::DELETE,
            "/test-cases/{id}",
            Catalog,
            "Delete a test case",
            &[],
            None,
            204,
            None,
        ),
        route(
            Method::POST,
            "/test-suites",
            Catalog,
            "Create a test suite",
            &[],
            schema!(TestSuiteInput),
            201,
            schema!(TestSuite),
        ),
        route(
            Method::GET,
            "/test-suites",
            Catalog,
            "List test suites",
            queries::CATALOG,
            None,
            200,
            schema!(Page<TestSuite>),
        ),
        route(
            Method::GET,
            "/test-suites/{id}",
            Catalog,
            "Get a test suite",
            &[],
            None,
            200,
            schema!(TestSuite),
        ),
        route(
            Method::PUT,
            "/test-suites/{id}",
            Catalog,
            "Replace a test suite (bumps version)",
            &[],
            schema!(TestSuiteInput),
            200,
            schema!(TestSuite),
        ),
        route(
            Method::DELETE,
            "/test-suites/{id}",
            Catalog,
            "Delete a test suite",
            &[],
            None,
            204,
            None,
        ),
        route(
            Method::POST,
            "/executions/case",
            Start,
            "Start a test case (Idempotency-Key honoured; 200 on replay)",
            &[],
            schema!(StartCaseBody),
            202,
            schema!(ExecutionTrace),
        ),
        route(
            Method::POST,
            "/executions/suite",
            Start,
            "Start a test suite (Idempotency-Key honoured; 200 on replay)",
            &[],
            schema!(StartSuiteBody),
            202,
            schema!(ExecutionTrace),
        ),
        route(
            Method::GET,
            "/executions",
            Status,
            "List executions, newest first",
            queries::EXECUTIONS,
            None,
            200,
            schema!(Page<ExecutionTrace>),
        ),
        route(
            Method::GET,
            "/executions/{id}",
            Status,
            "Get an execution trace",
            queries::EXECUTION,
            None,
            200,
            schema!(ExecutionTrace),
        ),
        route(
            Method::GET,
            "/executions/{id}/steps",
            Status,
            "Page through steps in index order",
            queries::PAGE,
            None,
            200,
            schema!(Page<StepResult>),
        ),
        route(
            Method::POST,
            "/executions/{id}/steps",
            StepReport,
            "Report 1..500 step results",
            &[],
            schema!(StepsBody),
            200,
            schema!(StepReportAnswer),
        ),
        route(
            Method::GET,
            "/executions/{id}/children",
            Status,
            "A suite's child executions",
            queries::PAGE,
            None,
            200,
            schema!(Page<ExecutionTrace>),
        ),
        route(
            Method::GET,
            "/executions/{id}/history",
            Status,
            "The audit trail, oldest first",
            &[],
            None,
            200,
            schema!(History),
        ),
        route(
            Method::POST,
            "/executions/{id}/complete",
            StepReport,
            "The reporter is done: derive passed or failed",
            &[],
            None,
            200,
            schema!(ExecutionTrace),
        ),
        route(
            Method::POST,
            "/executions/{id}/cancel",
            Finalize,
            "Cancel (a suite's unfinished children too)",
            &[],
            schema!(CancelBody),
            200,
            schema!(ExecutionTrace),
        ),
        route(
            Method::POST,
            "/executions/{id}/retry",
            Start,
            "Start a new attempt of a finished execution",
            &[],
            None,
            202,
            schema!(ExecutionTrace),
        ),
    ]
}

/// The document as JSON.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let problem = generator.subschema_for::<ProblemDoc>();
    let mut paths = Map::new();
    for route in routes() {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(route.summary));
        let mut parameters = Vec::new();
        if route.path.contains("{id}") {
            parameters.push(
                json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        for name in route.query {
            parameters.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}));
        }
        if route.group == RouteGroup::Start && !route.path.contains("{id}") {
            parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string"}}));
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(request) = route.request {
            let schema = request(&mut generator);
            operation.insert(
                "requestBody".into(),
                json!({"required": !route.path.ends_with("/cancel"),
                       "content": {"application/json": {"schema": schema}}}),
            );
        }
        let success = match route.response {
            Some(response) => {
                json!({"description": "OK", "content": {"application/json": {"schema": response(&mut generator)}}})
            }
            None => json!({"description": "OK"}),
        };
        let mut responses = Map::new();
        responses.insert(route.status.to_string(), success);
        responses.insert(
            "default".into(),
            json!({"description": "A problem (RFC 9457)", "content": {"application/problem+json": {"schema": problem}}}),
        );
        operation.insert("responses".into(), Value::Object(responses));
        if route.group != RouteGroup::Health {
            operation.insert("security".into(), json!([{"bearer": []}]));
        }
        let path = format!("{API_PREFIX}{}", route.path);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = Value::Object(operation);
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "runledger", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Test execution engine API (contract v1)."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

/// A page of a listing.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Page<T> {
    items: Vec<T>,
    /// Opaque; pass back as `cursor` for the next page. `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct HealthDoc {
    status: String,
    version: String,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct History {
    items: Vec<HistoryEntry>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct StepReportAnswer {
    id: String,
    status: ExecutionStatus,
    progress: Progress,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct ProblemDoc {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// Stable snake_case code, e.g. `execution_not_found`, `validation_failed`.
    code: String,
    detail: String,
    errors: Option<Vec<FieldError>>,
}

/// The execution trace as `views::execution` writes it; tests keep the two in step.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub(super) struct ExecutionTrace {
    id: String,
    kind: ExecutionKind,
    name: String,
    test_case_id: Option<String>,
    test_suite_id: Option<String>,
    parent_id: Option<String>,
    owner: String,
    status: ExecutionStatus,
    priority: Priority,
    /// `builtin` or `external`; absent for suites.
    runner: Option<RunnerKind>,
    attempt: u32,
    retry_of: Option<String>,
    retried_by: Option<String>,
    config: ExecutionConfig,
    tags: Vec<String>,
    timeout_s: u64,
    max_retries: u32,
    environment: Option<String>,
    created_at: Timestamp,
    queued_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    duration_ms: Option<u64>,
    /// When the execution times out if it is still not finished.
    deadline_at: Option<Timestamp>,
    progress: Progress,
    history_count: u32,
    /// A suite child's position in its suite.
    slot: Option<u32>,
    /// Case executions: `inline` below 50 steps, `partitioned` from 50 on.
    storage: Option<StepStorage>,
    /// Inline case executions only (not in listings).
    steps: Option<Vec<StepResult>>,
    /// Suite executions only.
    children: Option<ChildCounts>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::{EXECUTION_FIELDS, execution};
    use crate::domain::execution::{ExecutionKind, StepResult};

    fn trace_properties() -> Vec<String> {
        let schema = schemars::schema_for!(ExecutionTrace);
        let mut names: Vec<String> = schema.as_object().unwrap()["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_documented_trace_matches_the_view() {
        let mut fields: Vec<String> = EXECUTION_FIELDS.iter().map(|f| f.to_string()).collect();
        fields.sort();
        assert_eq!(trace_properties(), fields);
        let mut case = crate::domain::execution::tests_support::sample(ExecutionStatus::Running);
        case.steps = vec![StepResult::pending(0, "a")];
        let mut suite = case.clone();
        suite.kind = ExecutionKind::Suite;
        suite.storage = None;
        suite.slot = Some(1);
        suite.suite = Some(crate::domain::execution::SuitePlan {
            mode: crate::domain::catalog::SuiteMode::Parallel,
            concurrency: 1,
            fail_fast: false,
            slots: vec![],
        });
        for view in [execution(&case, true), execution(&suite, true)] {
            for key in view.as_object().unwrap().keys() {
                assert!(fields.contains(key), "view field {key} is not documented");
            }
        }
    }

    #[test]
    fn every_documented_route_is_routed_and_every_route_documented() {
        let mut documented = Vec::new();
        for doc in routes() {
            let path = format!(
                "{API_PREFIX}{}",
                doc.path.replace("{id}", "ex_01ARZ3NDEKTSV4RRFFQ69G5FAV")
            );
            if doc.path == "/openapi.json" {
                continue;
            }
            let route = super::super::Route::resolve(&path)
                .unwrap_or_else(|| panic!("{} is not routed", doc.path));
            assert!(
                route
                    .methods()
                    .iter()
                    .any(|(m, g)| *m == doc.method && *g == doc.group),
                "{} {} is not routed to {:?}",
                doc.method,
                doc.path,
                doc.group
            );
            documented.push((doc.method.clone(), route));
        }
        for template in [
            "/health",
            "/test-cases",
            "/test-cases/x",
            "/test-suites",
            "/test-suites/x",
            "/executions",
            "/executions/case",
            "/executions/suite",
            "/executions/x",
            "/executions/x/steps",
            "/executions/x/children",
            "/executions/x/history",
            "/executions/x/complete",
            "/executions/x/cancel",
            "/executions/x/retry",
        ] {
            let route = super::super::Route::resolve(&format!("{API_PREFIX}{template}")).unwrap();
            for (method, _) in route.methods() {
                let found = documented.iter().any(|(m, r)| {
                    m == method && std::mem::discriminant(r) == std::mem::discriminant(&route)
                });
                assert!(found, "{method} {template} is routed but not documented");
            }
        }
    }

    #[test]
    fn the_document_is_complete_openapi() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.0.3");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "TestCaseInput",
            "StepDefinition",
            "ExecutionConfig",
            "StepReport",
            "ExecutionTrace",
            "ProblemDoc",
        ] {
            assert!(schemas.contains_key(name), "{name} missing from components");
        }
        // Strict input: unknown fields are refused, and the schema says so.
        assert_eq!(schemas["TestCaseInput"]["additionalProperties"], false);
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths["/api/v1/executions/{id}/steps"]["post"]["requestBody"].is_object());
        assert!(paths["/api/v1/health"]["get"].get("security").is_none());
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
