//! Reports in: a test run that something else ran, recorded from the report it wrote.

use crate::api::extract::{Call, IdempotencyKey, StrictQuery};
use crate::api::openapi::{Conflict, UnsupportedMediaType};
use crate::api::problem::Problem;
use crate::api::wire::{ExecutionTrace, ImportAnswer, ImportSummary};
use crate::engine::ImportRequest;
use crate::report::ReportFormat;
use axum::Json;
use axum::body::Body;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

/// The largest report an import takes.
pub const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

/// The query of `POST /imports`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `junit` or `ctrf`; by default told by `Content-Type` (`application/xml`, `text/xml`:
    /// JUnit XML; `application/json`: CTRF).
    #[param(value_type = Option<String>, pattern = "^(junit|ctrf)$")]
    format: Option<String>,
    /// The suite to record the run under (default: the report's own name, else `imported`).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200)]
    suite: Option<String>,
    /// The environment the tests ran in.
    #[param(value_type = Option<String>, min_length = 1, max_length = 100)]
    environment: Option<String>,
    /// Tags for the execution, comma-separated.
    tags: Option<String>,
}

/// Import a test report (JUnit XML or CTRF)
///
/// Records the run the report tells as one finished suite execution with a case execution
/// per attempt of each test. Each test (by its suite or file, class name and name) is an
/// `external` test case, registered in the catalog the first time a report names it and
/// reused after; so is the suite, by name. Reruns of a test are attempts of it; one that
/// passed after a failed attempt is flaky. With an `Idempotency-Key` already used by this user
/// in the last 24 hours: `200` with the execution that import recorded.
#[utoipa::path(post, path = "/imports", tag = "imports",
    params(ImportParams,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes the import safe to repeat")),
    request_body(content((String = "application/xml"), (serde_json::Value = "application/json")),
                 description = "The report file, at most 10 MiB"),
    responses((status = 201, description = "Recorded", body = ImportAnswer),
              (status = 200, description = "Recorded before, under this Idempotency-Key", body = ImportAnswer),
              Conflict, UnsupportedMediaType))]
pub async fn import(
    call: Call<StrictQuery<ImportParams>>,
    key: IdempotencyKey,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportAnswer>), Problem> {
    let params = &call.query.0;
    let format = match params.format.as_deref() {
        Some(text) => ReportFormat::parse(text)
            .ok_or_else(|| Problem::field("format", "must be `junit` or `ctrf`"))?,
        None => sniffed(&headers)?,
    };
    let report = axum::body::to_bytes(body, MAX_IMPORT_BYTES)
        .await
        .map_err(|_| Problem::too_large(MAX_IMPORT_BYTES))?;
    if report.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_report",
            "the body is empty: send the report file itself",
        ));
    }
    let tags = params
        .tags
        .as_deref()
        .map(|tags| {
            tags.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let request = ImportRequest {
        report,
        format,
        suite: params.suite.clone(),
        environment: params.environment.clone(),
        tags,
        idempotency_key: key.0,
    };
    let imported = call.api.engine.import(&call.caller, request).await?;
    let status = if imported.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let counts = imported.counts;
    Ok((
        status,
        Json(ImportAnswer {
            trace: ExecutionTrace::of(&imported.execution, true),
            import: ImportSummary {
                tests: counts.tests,
                passed: counts.passed,
                failed: counts.failed,
                errored: counts.errored,
                skipped: counts.skipped,
                flaky: counts.flaky,
                warnings: imported.warnings,
            },
        }),
    ))
}

/// The format `Content-Type` names.
fn sniffed(headers: &HeaderMap) -> Result<ReportFormat, Problem> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/xml" | "text/xml") => Ok(ReportFormat::Junit),
        Some("application/json") => Ok(ReportFormat::Ctrf),
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JUnit XML as application/xml (or text/xml) or CTRF as application/json, or say ?format=junit|ctrf",
        )),
    }
}
