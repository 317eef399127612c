//! Test cases and test suites: create, list, get, replace, delete.

use crate::api::ApiState;
use crate::api::extract::{
    Authenticated, NoQuery, StrictJson, StrictQuery, TestCaseId, TestSuiteId,
};
use crate::api::params::{cursor, encode_cursor, limit};
use crate::api::problem::Problem;
use crate::api::wire::Page;
use crate::domain::catalog::{TestCase, TestCaseInput, TestSuite, TestSuiteInput};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

/// The query of a catalog listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogParams {
    /// Only entries with this tag.
    tag: Option<String>,
    /// 1..200, default 50.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn created<T: serde::Serialize>(location: String, entry: T) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(entry),
    )
}

fn page<T>(kind: &str, page: crate::ports::Page<T>) -> Json<Page<T>> {
    Json(Page {
        items: page.items,
        next_cursor: page.next_cursor.map(|p| encode_cursor(kind, &p)),
    })
}

/// Create a test case
#[utoipa::path(post, path = "/test-cases", tag = "catalog", request_body = TestCaseInput,
    responses((status = 201, description = "Created", body = TestCase)))]
pub async fn create_test_case(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    StrictJson(input): StrictJson<TestCaseInput>,
) -> Result<impl IntoResponse, Problem> {
    let case = api.engine.create_test_case(&caller, input).await?;
    Ok(created(
        format!("{}/test-cases/{}", crate::api::API_PREFIX, case.id),
        case,
    ))
}

/// List test cases
#[utoipa::path(get, path = "/test-cases", tag = "catalog", params(CatalogParams),
    responses((status = 200, description = "A page of test cases", body = Page<TestCase>)))]
pub async fn list_test_cases(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<CatalogParams>,
) -> Result<Json<Page<TestCase>>, Problem> {
    let found = api
        .engine
        .list_test_cases(
            &caller,
            query.tag,
            limit(query.limit.as_deref(), 50, 200)?,
            cursor(query.cursor.as_deref(), "test-cases")?,
        )
        .await?;
    Ok(page("test-cases", found))
}

/// Get a test case
#[utoipa::path(get, path = "/test-cases/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, description = "The test case", body = TestCase)))]
pub async fn get_test_case(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestCaseId(id): TestCaseId,
) -> Result<Json<TestCase>, Problem> {
    Ok(Json(api.engine.get_test_case(&caller, &id).await?))
}

/// Replace a test case (bumps version)
#[utoipa::path(put, path = "/test-cases/{id}", tag = "catalog", params(("id" = String, Path)),
    request_body = TestCaseInput,
    responses((status = 200, description = "The new version", body = TestCase)))]
pub async fn replace_test_case(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestCaseId(id): TestCaseId,
    StrictJson(input): StrictJson<TestCaseInput>,
) -> Result<Json<TestCase>, Problem> {
    Ok(Json(
        api.engine.replace_test_case(&caller, &id, input).await?,
    ))
}

/// Delete a test case
#[utoipa::path(delete, path = "/test-cases/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_test_case(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestCaseId(id): TestCaseId,
) -> Result<StatusCode, Problem> {
    api.engine.delete_test_case(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a test suite
#[utoipa::path(post, path = "/test-suites", tag = "catalog", request_body = TestSuiteInput,
    responses((status = 201, description = "Created", body = TestSuite)))]
pub async fn create_test_suite(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    StrictJson(input): StrictJson<TestSuiteInput>,
) -> Result<impl IntoResponse, Problem> {
    let suite = api.engine.create_test_suite(&caller, input).await?;
    Ok(created(
        format!("{}/test-suites/{}", crate::api::API_PREFIX, suite.id),
        suite,
    ))
}

/// List test suites
#[utoipa::path(get, path = "/test-suites", tag = "catalog", params(CatalogParams),
    responses((status = 200, description = "A page of test suites", body = Page<TestSuite>)))]
pub async fn list_test_suites(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<CatalogParams>,
) -> Result<Json<Page<TestSuite>>, Problem> {
    let found = api
        .engine
        .list_test_suites(
            &caller,
            query.tag,
            limit(query.limit.as_deref(), 50, 200)?,
            cursor(query.cursor.as_deref(), "test-suites")?,
        )
        .await?;
    Ok(page("test-suites", found))
}

/// Get a test suite
#[utoipa::path(get, path = "/test-suites/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, description = "The test suite", body = TestSuite)))]
pub async fn get_test_suite(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestSuiteId(id): TestSuiteId,
) -> Result<Json<TestSuite>, Problem> {
    Ok(Json(api.engine.get_test_suite(&caller, &id).await?))
}

/// Replace a test suite (bumps version)
#[utoipa::path(put, path = "/test-suites/{id}", tag = "catalog", params(("id" = String, Path)),
    request_body = TestSuiteInput,
    responses((status = 200, description = "The new version", body = TestSuite)))]
pub async fn replace_test_suite(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestSuiteId(id): TestSuiteId,
    StrictJson(input): StrictJson<TestSuiteInput>,
) -> Result<Json<TestSuite>, Problem> {
    Ok(Json(
        api.engine.replace_test_suite(&caller, &id, input).await?,
    ))
}

/// Delete a test suite
#[utoipa::path(delete, path = "/test-suites/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_test_suite(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    TestSuiteId(id): TestSuiteId,
) -> Result<StatusCode, Problem> {
    api.engine.delete_test_suite(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
