//! Reports out: an execution as JUnit XML or CTRF JSON.

use crate::api::extract::{Call, ExecutionId, StrictQuery};
use crate::api::openapi::NotFound;
use crate::api::problem::Problem;
use crate::report::ReportFormat;
use axum::response::{IntoResponse, Response};
use http::header;
use serde::Deserialize;
use utoipa::IntoParams;

/// The query of `GET /executions/{id}/report`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// `junit` (default) or `ctrf`.
    #[param(value_type = Option<String>, pattern = "^(junit|ctrf)$")]
    format: Option<String>,
}

/// Export an execution as a test report
///
/// A case or suite execution, imported or run here, as JUnit XML (Surefire's shape: one
/// `<testcase>` per test with its last attempt's outcome, earlier failed attempts as
/// `<flakyFailure>`/`<rerunFailure>`) or as CTRF JSON (`retryAttempts` and `flaky` filled).
/// A test is one case execution with its attempts; one that has not finished is `skipped`.
#[utoipa::path(get, path = "/executions/{id}/report", tag = "executions",
    params(("id" = String, Path), ReportParams),
    responses((status = 200, description = "The report",
               content((String = "application/xml"), (serde_json::Value = "application/json"))),
              NotFound))]
pub async fn export(
    call: Call<StrictQuery<ReportParams>, ExecutionId>,
) -> Result<Response, Problem> {
    let format = match call.query.format.as_deref() {
        None => ReportFormat::Junit,
        Some(text) => ReportFormat::parse(text)
            .ok_or_else(|| Problem::field("format", "must be `junit` or `ctrf`"))?,
    };
    let run = call.api.engine.export(&call.caller, &call.id).await?;
    let extension = match format {
        ReportFormat::Junit => "xml",
        ReportFormat::Ctrf => "json",
    };
    let disposition = format!("attachment; filename=\"{}.{extension}\"", call.id.0);
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        format.write(&run),
    )
        .into_response())
}
