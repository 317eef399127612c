//! An execution's steps: page through them, report results.

use crate::api::extract::{OnExecution, StrictJson};
use crate::api::handlers::executions::{PageParams, PagedUnder};
use crate::api::params::encode_cursor;
use crate::api::problem::Problem;
use crate::api::wire::{Page, StepReportAnswer, StepsBody};
use crate::domain::execution::StepResult;
use axum::Json;

/// Page through steps in index order
#[utoipa::path(get, path = "/executions/{id}/steps", tag = "steps",
    params(("id" = String, Path), PageParams),
    responses((status = 200, description = "Inline or partitioned alike", body = Page<StepResult>)))]
pub async fn list(call: PagedUnder) -> Result<Json<Page<StepResult>>, Problem> {
    let (after, limit) = call.query.page::<u32>("steps", 100, 1000)?;
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
    responses((status = 200, description = "The execution's new progress", body = StepReportAnswer)))]
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
