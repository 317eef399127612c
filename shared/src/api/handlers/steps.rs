//! An execution's steps: page through them, report results.

use crate::api::ApiState;
use crate::api::extract::{Authenticated, ExecutionId, NoQuery, StrictJson, StrictQuery};
use crate::api::handlers::executions::PageParams;
use crate::api::params::{cursor, encode_cursor, limit};
use crate::api::problem::Problem;
use crate::api::wire::{Page, StepReportAnswer, StepsBody};
use crate::domain::execution::StepResult;
use axum::Json;
use axum::extract::State;
use http::StatusCode;

/// Page through steps in index order
#[utoipa::path(get, path = "/executions/{id}/steps", tag = "steps",
    params(("id" = String, Path), PageParams),
    responses((status = 200, description = "Inline or partitioned alike", body = Page<StepResult>)))]
pub async fn list(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<PageParams>,
    ExecutionId(id): ExecutionId,
) -> Result<Json<Page<StepResult>>, Problem> {
    let after = match cursor(query.cursor.as_deref(), "steps")? {
        Some(position) => Some(position.parse::<u32>().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "the cursor is not valid for this listing",
            )
        })?),
        None => None,
    };
    let page = api
        .engine
        .list_steps(
            &caller,
            &id,
            after,
            limit(query.limit.as_deref(), 100, 1000)?,
        )
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
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    ExecutionId(id): ExecutionId,
    StrictJson(body): StrictJson<StepsBody>,
) -> Result<Json<StepReportAnswer>, Problem> {
    let execution = api.engine.report_steps(&caller, &id, body.steps).await?;
    Ok(Json(StepReportAnswer {
        id: execution.id,
        status: execution.status,
        progress: execution.progress,
    }))
}
