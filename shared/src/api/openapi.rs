//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the
//! wire types' schemas through the route table; served at `GET /api/v1/openapi.json`.
//!
//! What every operation shares is added here once: errors are problem documents, and every
//! operation needs a bearer token unless its handler declares `security(())`.

use super::problem::ProblemBody;
use super::{RouteGroup, routes};
use bytes::Bytes;
use http::Method;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "runledger",
        description = "Test execution engine API (contract v1)."
    ),
    components(schemas(ProblemBody))
)]
struct Base;

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
        let problem = ResponseBuilder::new()
            .description("A problem (RFC 9457)")
            .content(
                super::problem::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for item in document.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                operation
                    .responses
                    .responses
                    .insert("default".into(), problem.clone().into());
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
            }
        }
    }
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
        assert!(paths["/api/v1/test-cases"]["post"]["responses"]["default"].is_object());
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

    #[test]
    fn every_mounted_route_is_documented_once() {
        let operations = routes::operations();
        assert_eq!(operations.len(), 23);
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
