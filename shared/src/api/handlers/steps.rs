//! An execution's steps: page through them, report results.

use crate::api::extract::{Call, ExecutionId, OnExecution, StrictJson, StrictQuery};
use crate::api::openapi::{Conflict, NotFound};
use crate::api::params::{STEPS_PAGE, encode_cursor, page};
use crate::api::problem::Problem;
use crate::api::wire::{Page, StepReportAnswer, StepsBody};
use crate::domain::execution::StepResult;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

/// The query of `GET /executions/{id}/steps`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StepPageParams {
    #[param(schema_with = crate::api::params::steps_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
    cursor: Option<String>,
}

/// Page through steps in index order
#[utoipa::path(get, path = "/executions/{id}/steps", tag = "steps",
    params(("id" = String, Path), StepPageParams),
    responses((status = 200, description = "Inline or partitioned alike", body = Page<StepResult>), NotFound))]
pub async fn list(
    call: Call<StrictQuery<StepPageParams>, ExecutionId>,
) -> Result<Json<Page<StepResult>>, Problem> {
    let query = &call.query;
    let (after, limit) = page::<u32>(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        "steps",
        STEPS_PAGE,
    )?;
    let page = call
        .api
        .engine
        .list_steps(&call.caller, &call.id, after, limit)
        .await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor.map(|p| encode_cursor("steps", &p)),
    }))
}

/// Report 1..500 step results
#[utoipa::path(post, path = "/executions/{id}/steps", tag = "steps",
    params(("id" = String, Path)), request_body = StepsBody,
    responses((status = 200, description = "The execution's new progress (also for a report \
                                             that repeats what is already recorded)", body = StepReportAnswer),
              NotFound, Conflict))]
pub async fn report(
    call: OnExecution,
    StrictJson(body): StrictJson<StepsBody>,
) -> Result<Json<StepReportAnswer>, Problem> {
    let execution = call
        .api
        .engine
        .report_steps(&call.caller, &call.id, body.steps)
        .await?;
    Ok(Json(StepReportAnswer {
        id: execution.id,
        status: execution.status,
        progress: execution.progress,
    }))
}
