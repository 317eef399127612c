//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the
//! wire types' schemas through the route table; served at `GET /api/v1/openapi.json`.
//!
//! What every operation shares is added here once: every operation needs a bearer token
//! unless its handler declares `security(())`, and states the problems every operation can
//! answer (`400`, `503`; `401` with a token, `413` with a body). Handlers list their own
//! (`404` [`NotFound`], `409` [`Conflict`]), so each operation lists every status it returns.

use super::problem::ProblemBody;
use super::{RouteGroup, routes};
use crate::domain::catalog::{HttpRequestSpec, StepDefinition};
use crate::domain::execution::StepReport;
use bytes::Bytes;
use http::Method;
use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi as _};

const BEARER: &str = "bearer";

// The schemas that fields' own schemas (`domain::schema`) refer to, which utoipa does not
// collect from them.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "runledger",
        description = "Test execution engine API (contract v1)."
    ),
    components(schemas(ProblemBody, StepDefinition, HttpRequestSpec, StepReport))
)]
struct Base;

/// The problem responses (RFC 9457) operations answer, each kept once in
/// `components.responses` and referred to by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
enum ProblemResponse {
    BadRequest,
    Unauthorized,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ServiceUnavailable,
}

impl ProblemResponse {
    fn status(self) -> &'static str {
        match self {
            ProblemResponse::BadRequest => "400",
            ProblemResponse::Unauthorized => "401",
            ProblemResponse::NotFound => "404",
            ProblemResponse::Conflict => "409",
            ProblemResponse::PayloadTooLarge => "413",
            ProblemResponse::UnsupportedMediaType => "415",
            ProblemResponse::ServiceUnavailable => "503",
        }
    }

    fn name(self) -> &'static str {
        match self {
            ProblemResponse::BadRequest => "BadRequest",
            ProblemResponse::Unauthorized => "Unauthorized",
            ProblemResponse::NotFound => "NotFound",
            ProblemResponse::Conflict => "Conflict",
            ProblemResponse::PayloadTooLarge => "PayloadTooLarge",
            ProblemResponse::UnsupportedMediaType => "UnsupportedMediaType",
            ProblemResponse::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    fn response(self) -> Response {
        let description = match self {
            ProblemResponse::BadRequest => {
                "Invalid: a value or body the schema refuses, a reference to something that does \
                 not exist (`validation_failed`, `malformed_json`, `invalid_cursor`), or a query \
                 parameter the operation does not take or given twice"
            }
            ProblemResponse::Unauthorized => {
                "A missing, malformed, expired or wrongly signed token"
            }
            ProblemResponse::NotFound => "No such id, or not the caller's (`*_not_found`)",
            ProblemResponse::Conflict => {
                "Conflicts with the current state (`invalid_transition`, `step_conflict`, \
                 `not_applicable`, `concurrent_modification`)"
            }
            ProblemResponse::PayloadTooLarge => {
                "The body is over the limit: 1 MiB, 10 MiB for an import (`payload_too_large`)"
            }
            ProblemResponse::UnsupportedMediaType => {
                "A body of a type the operation does not read (`unsupported_media_type`)"
            }
            ProblemResponse::ServiceUnavailable => {
                "Unavailable for now: an outage of a dependency, a request unanswered after \
                 30 s, or too many connections (`unavailable`, `timeout`, `too_many_connections`)"
            }
        };
        let response = ResponseBuilder::new().description(description).content(
            super::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        );
        match self {
            ProblemResponse::Unauthorized => response.header(
                "WWW-Authenticate",
                header("`Bearer`, with the error when there was a token"),
            ),
            ProblemResponse::ServiceUnavailable => {
                response.header("Retry-After", header("Seconds to wait before retrying"))
            }
            _ => response,
        }
        .build()
    }

    /// This response in an operation's responses: its status and a reference.
    fn listed(self) -> (String, RefOr<Response>) {
        (
            self.status().to_owned(),
            Ref::from_response_name(self.name()).into(),
        )
    }
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

/// `404`, for `responses(...)`: no such id, or not the caller's (another user's records
/// answer the same).
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([ProblemResponse::NotFound.listed()])
    }
}

/// `409`, for `responses(...)`: the command does not apply to the record as it is now, or
/// lost a race to another.
pub struct Conflict;

/// `415`, for `responses(...)`: a body of a type the operation does not read.
pub struct UnsupportedMediaType;

impl IntoResponses for UnsupportedMediaType {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([ProblemResponse::UnsupportedMediaType.listed()])
    }
}

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([ProblemResponse::Conflict.listed()])
    }
}

struct SharedByEveryOperation;

impl Modify for SharedByEveryOperation {
    fn modify(&self, document: &mut OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        for problem in <ProblemResponse as strum::IntoEnumIterator>::iter() {
            components
                .responses
                .insert(problem.name().to_owned(), problem.response().into());
        }
        for item in document.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                match &operation.security {
                    // `security(())` on a handler: no token needed.
                    Some(requirements) if requirements.iter().all(is_empty) => {
                        operation.security = None
                    }
                    Some(_) => {}
                    None => {
                        operation.security =
                            Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])])
                    }
                }
                // Every operation checks its query; a body can be too large; any request
                // can meet an outage or time out.
                let mut shared = vec![
                    ProblemResponse::BadRequest,
                    ProblemResponse::ServiceUnavailable,
                ];
                if operation.security.is_some() {
                    shared.push(ProblemResponse::Unauthorized);
                }
                if operation.request_body.is_some() {
                    shared.push(ProblemResponse::PayloadTooLarge);
                }
                operation
                    .responses
                    .responses
                    .extend(shared.into_iter().map(ProblemResponse::listed));
                // An empty query value counts as absent (`params::Query`).
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter
                        && parameter.parameter_in == ParameterIn::Query
                    {
                        allow_empty_value(parameter);
                    }
                }
            }
        }
    }
}

/// Sets `allowEmptyValue`, which utoipa leaves out (OpenAPI 3.1 still defines it, though it
/// deprecates it): it is written through the parameter's extensions, whose keys utoipa
/// writes as they are.
fn allow_empty_value(parameter: &mut Parameter) {
    parameter
        .extensions
        .get_or_insert_with(Default::default)
        .insert("allowEmptyValue".to_owned(), true.into());
}

fn is_empty(requirement: &SecurityRequirement) -> bool {
    requirement == &SecurityRequirement::default()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// The methods a path item has operations for.
pub fn methods(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::PATCH, &item.patch),
    ]
    .into_iter()
    .filter(|(_, operation)| operation.is_some())
    .map(|(method, _)| method)
    .collect()
}

/// The whole API's document, whichever groups a host mounts.
pub fn document() -> OpenApi {
    let (_, paths) = routes::documented(&RouteGroup::ALL).split_for_parts();
    let mut document = Base::openapi().merge_from(paths);
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    SharedByEveryOperation.modify(&mut document);
    document
}

/// [`document`] as the committed `shared/openapi.json` has it (`scripts/openapi` writes it).
pub fn document_text() -> String {
    document().to_pretty_json().unwrap_or_default() + "\n"
}

/// The document as served: the committed `shared/openapi.json` (without its indentation,
/// see `build.rs`), which a test keeps equal to [`document`]. A file rather than generated at
/// start, so that a Lambda bootstrap carries the JSON instead of the code that builds it.
pub fn document_json() -> Bytes {
    Bytes::from_static(include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use strum::VariantNames;

    #[test]
    fn the_document_is_complete_openapi() {
        let doc: Value = serde_json::from_slice(&document_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "TestCaseInput",
            "StepDefinition",
            "ExecutionConfig",
            "StepReport",
            "ExecutionTrace",
            "Problem",
        ] {
            assert!(schemas.contains_key(name), "{name} missing from components");
        }
        // Strict input: unknown fields are refused, and the schema says so.
        assert_eq!(schemas["TestCaseInput"]["additionalProperties"], false);
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths["/api/v1/executions/{id}/steps"]["post"]["requestBody"].is_object());
        assert!(paths["/api/v1/health"]["get"].get("security").is_none());
        assert_eq!(
            paths["/api/v1/executions"]["get"]["security"],
            serde_json::json!([{"bearer": []}])
        );
        // Every status an operation answers is listed; nothing hides behind `default`.
        let responses = &paths["/api/v1/test-cases"]["post"]["responses"];
        let statuses: Vec<&str> = responses
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(statuses, ["201", "400", "401", "409", "413", "503"]);
        assert_eq!(
            responses["400"]["$ref"],
            "#/components/responses/BadRequest"
        );
        let health = &paths["/api/v1/health"]["get"]["responses"];
        assert!(health.get("401").is_none() && health.get("400").is_some());
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }

    #[test]
    fn the_committed_and_served_documents_are_the_one_the_handlers_generate() {
        let committed = include_str!("../../openapi.json");
        let generated = document_text();
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        assert!(
            committed == generated,
            "shared/openapi.json is not what the handlers generate (first difference at line \
             {}): run scripts/openapi and commit the result",
            first_difference + 1
        );
        let compact = document().to_json().unwrap();
        assert_eq!(
            String::from_utf8(document_json().to_vec()).unwrap(),
            compact
        );
    }

    /// The document's bounds are the validators' constants. They are built from them, so this
    /// guards the committed file and anyone replacing a schema with literals.
    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        use crate::api::params::{LISTING_PAGE, STEPS_PAGE};
        use crate::api::wire::{ExecutionTrace, MAX_CANCEL_REASON_CHARS};
        use crate::domain::catalog::*;
        use crate::domain::execution::*;
        use crate::domain::validation::{MAX_NAME_CHARS, MAX_TAG_CHARS, MAX_TAGS};
        use crate::engine::MAX_IDEMPOTENCY_KEY_CHARS;
        use serde_json::json;

        let doc: Value = serde_json::from_slice(&document_json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let case = &schemas["TestCaseInput"]["properties"];
        let name = &case["name"];
        assert_eq!(
            (&name["minLength"], &name["maxLength"]),
            (&json!(1), &json!(MAX_NAME_CHARS))
        );
        assert_eq!(name["pattern"], crate::domain::schema::not_blank_pattern());
        assert_eq!(case["timeout_s"]["maximum"], json!(MAX_TIMEOUT_S));
        assert_eq!(case["timeout_s"]["minimum"], json!(1));
        assert_eq!(
            case["description"]["maxLength"],
            json!(MAX_DESCRIPTION_CHARS)
        );
        assert_eq!(case["tags"]["maxItems"], json!(MAX_TAGS));
        assert_eq!(case["tags"]["items"]["maxLength"], json!(MAX_TAG_CHARS));
        for steps in case["steps"]["oneOf"].as_array().unwrap() {
            assert_eq!(
                (&steps["minItems"], &steps["maxItems"]),
                (&json!(1), &json!(MAX_STEPS))
            );
        }
        let http = &schemas["HttpRequestSpec"]["properties"];
        assert_eq!(http["url"]["maxLength"], json!(MAX_URL_CHARS));
        assert_eq!(http["timeout_ms"]["maximum"], json!(MAX_STEP_TIMEOUT_MS));
        assert_eq!(http["method"]["enum"], json!(HTTP_METHODS));
        let suite = &schemas["TestSuiteInput"]["properties"];
        assert_eq!(suite["max_parallel"]["maximum"], json!(MAX_MAX_PARALLEL));
        assert_eq!(suite["max_parallel"]["minimum"], json!(1));
        assert_eq!(suite["test_case_ids"]["maxItems"], json!(MAX_SUITE_CASES));
        let config = &schemas["ExecutionConfig"]["properties"];
        assert_eq!(config["timeout_s"]["maximum"], json!(MAX_TIMEOUT_S));
        assert_eq!(config["max_retries"]["maximum"], json!(MAX_RETRIES_LIMIT));
        assert_eq!(
            config["environment"]["maxLength"],
            json!(MAX_ENVIRONMENT_CHARS)
        );
        let report = &schemas["StepsBody"]["properties"]["steps"];
        assert_eq!(
            (&report["minItems"], &report["maxItems"]),
            (&json!(1), &json!(MAX_STEPS_PER_REPORT))
        );
        assert_eq!(
            schemas["StepReport"]["properties"]["index"]["maximum"],
            json!(MAX_STEPS - 1)
        );
        assert_eq!(
            schemas["CancelBody"]["properties"]["reason"]["maxLength"],
            json!(MAX_CANCEL_REASON_CHARS)
        );

        let parameter = |path: &str, method: &str, name: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
                .clone()
        };
        for path in [
            "/api/v1/test-cases",
            "/api/v1/test-suites",
            "/api/v1/executions",
            "/api/v1/executions/{id}/children",
            "/api/v1/analytics/flaky",
            "/api/v1/quarantine",
        ] {
            let limit = parameter(path, "get", "limit");
            assert_eq!(
                limit["schema"]["maximum"],
                json!(LISTING_PAGE.max),
                "{path}"
            );
            assert_eq!(
                limit["schema"]["default"],
                json!(LISTING_PAGE.default),
                "{path}"
            );
            assert_eq!(limit["schema"]["minimum"], json!(1), "{path}");
            assert_eq!(limit["allowEmptyValue"], true, "{path}");
        }
        let steps_limit = parameter("/api/v1/executions/{id}/steps", "get", "limit");
        assert_eq!(steps_limit["schema"]["maximum"], json!(STEPS_PAGE.max));
        assert_eq!(steps_limit["schema"]["default"], json!(STEPS_PAGE.default));
        let status = parameter("/api/v1/executions", "get", "status");
        assert_eq!(
            status["schema"]["$ref"],
            "#/components/schemas/ExecutionStatus"
        );
        assert_eq!(
            schemas["ExecutionStatus"]["enum"],
            json!(ExecutionStatus::VARIANTS)
        );
        let fields = parameter("/api/v1/executions/{id}", "get", "fields");
        assert_eq!(
            fields["schema"]["items"]["enum"],
            json!(ExecutionTrace::field_names())
        );
        assert_eq!(
            (&fields["style"], &fields["explode"]),
            (&json!("form"), &json!(false))
        );
        assert!(schemas["ExecutionTraceFields"].get("required").is_none());
        let required = schemas["ExecutionTrace"]["required"].as_array().unwrap();
        assert!(required.contains(&json!("id")) && required.contains(&json!("status")));
        for path in ["/api/v1/executions/case", "/api/v1/executions/suite"] {
            let key = parameter(path, "post", "Idempotency-Key");
            let pattern = key["schema"]["pattern"].as_str().unwrap();
            let inner = format!("{{0,{}}}", MAX_IDEMPOTENCY_KEY_CHARS - 2);
            assert!(pattern.contains(&inner), "{pattern}");
            let responses = &doc["paths"][path]["post"]["responses"];
            assert!(
                responses["200"].is_object() && responses["202"].is_object(),
                "{path}"
            );
        }
    }

    #[test]
    fn every_mounted_route_is_documented_once() {
        let operations = routes::operations();
        assert_eq!(operations.len(), 33);
        let document = document();
        let documented: usize = document
            .paths
            .paths
            .values()
            .map(|i| methods(i).len())
            .sum();
        assert_eq!(documented, operations.len());
    }
}
