//! Executions: start, list, read, and the commands on one (complete, cancel, retry).

use crate::api::ApiState;
use crate::api::extract::{
    Authenticated, ExecutionId, IdempotencyKey, NoQuery, OptionalJson, StrictJson, StrictQuery,
};
use crate::api::params::{cursor, encode_cursor, limit};
use crate::api::problem::Problem;
use crate::api::wire::{
    CancelBody, EmptyBody, ExecutionTrace, History, Page, StartCaseBody, StartSuiteBody,
};
use crate::domain::execution::{ExecutionConfig, ExecutionKind, ExecutionStatus};
use crate::domain::time::Timestamp;
use crate::engine::{Caller, StartRequest};
use crate::ports::ExecutionQuery;
use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use strum::VariantNames;
use utoipa::IntoParams;

const MAX_CANCEL_REASON_CHARS: usize = 1000;

/// What a start runs.
enum Target {
    Case(String),
    Suite(String),
}

/// `202` with a new execution, `200` with the one an `Idempotency-Key` already started.
async fn start(
    api: ApiState,
    caller: Caller,
    target: Target,
    config: Option<ExecutionConfig>,
    key: IdempotencyKey,
) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
    let request = StartRequest {
        config: config.unwrap_or_default(),
        idempotency_key: key.0,
    };
    let started = match target {
        Target::Case(id) => api.engine.start_case(&caller, &id, request).await?,
        Target::Suite(id) => api.engine.start_suite(&caller, &id, request).await?,
    };
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ExecutionTrace::of(&started.execution, true))))
}

/// Start a test case (Idempotency-Key honoured; 200 on replay)
#[utoipa::path(post, path = "/executions/case", tag = "executions",
    params(("Idempotency-Key" = Option<String>, Header)), request_body = StartCaseBody,
    responses((status = 202, description = "Started", body = ExecutionTrace),
              (status = 200, description = "Already started with this Idempotency-Key", body = ExecutionTrace)))]
pub async fn start_case(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    key: IdempotencyKey,
    StrictJson(body): StrictJson<StartCaseBody>,
) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
    let target = Target::Case(body.test_case_id);
    start(api, caller, target, body.config, key).await
}

/// Start a test suite (Idempotency-Key honoured; 200 on replay)
#[utoipa::path(post, path = "/executions/suite", tag = "executions",
    params(("Idempotency-Key" = Option<String>, Header)), request_body = StartSuiteBody,
    responses((status = 202, description = "Started", body = ExecutionTrace),
              (status = 200, description = "Already started with this Idempotency-Key", body = ExecutionTrace)))]
pub async fn start_suite(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    key: IdempotencyKey,
    StrictJson(body): StrictJson<StartSuiteBody>,
) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
    start(
        api,
        caller,
        Target::Suite(body.test_suite_id),
        body.config,
        key,
    )
    .await
}

/// The filters of `GET /executions`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(value_type = Option<ExecutionStatus>)]
    status: Option<String>,
    /// `case` or `suite`.
    #[param(value_type = Option<ExecutionKind>)]
    kind: Option<String>,
    test_case_id: Option<String>,
    test_suite_id: Option<String>,
    tag: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<Timestamp>)]
    since: Option<String>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<Timestamp>)]
    until: Option<String>,
    /// 1..200, default 50.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListParams {
    fn into_query(self) -> Result<ExecutionQuery, Problem> {
        let status = self
            .status
            .map(|s| {
                ExecutionStatus::parse(&s).ok_or_else(|| {
                    let names = ExecutionStatus::VARIANTS.join(", ");
                    Problem::field("status", format!("must be one of {names}"))
                })
            })
            .transpose()?;
        let kind = self
            .kind
            .map(|k| {
                ExecutionKind::parse(&k).ok_or_else(|| {
                    let kinds = ExecutionKind::VARIANTS.join(" or ");
                    Problem::field("kind", format!("must be {kinds}"))
                })
            })
            .transpose()?;
        let time = |name: &str, text: Option<&str>| -> Result<Option<Timestamp>, Problem> {
            text.map(|t| {
                Timestamp::parse(t)
                    .ok_or_else(|| Problem::field(name, "must be an RFC 3339 timestamp"))
            })
            .transpose()
        };
        Ok(ExecutionQuery {
            owner: None,
            status,
            kind,
            since: time("since", self.since.as_deref())?,
            until: time("until", self.until.as_deref())?,
            limit: limit(self.limit.as_deref(), 50, 200)?,
            after: cursor(self.cursor.as_deref(), "executions")?,
            test_case_id: self.test_case_id,
            test_suite_id: self.test_suite_id,
            tag: self.tag,
        })
    }
}

fn trace_page(
    kind: &str,
    page: crate::ports::Page<crate::domain::execution::Execution>,
) -> Json<Page<ExecutionTrace>> {
    Json(Page {
        items: page
            .items
            .iter()
            .map(|e| ExecutionTrace::of(e, false))
            .collect(),
        next_cursor: page.next_cursor.map(|p| encode_cursor(kind, &p)),
    })
}

/// List executions, newest first
#[utoipa::path(get, path = "/executions", tag = "executions", params(ListParams),
    responses((status = 200, description = "A page of executions (without steps)", body = Page<ExecutionTrace>)))]
pub async fn list(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<ListParams>,
) -> Result<Json<Page<ExecutionTrace>>, Problem> {
    let found = api
        .engine
        .list_executions(&caller, query.into_query()?)
        .await?;
    Ok(trace_page("executions", found))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceParams {
    /// Comma-separated top-level fields to return (e.g. `id,status,progress`).
    fields: Option<String>,
}

/// Parses `?fields=a,b` against the trace's fields.
fn parse_fields(raw: Option<&str>) -> Result<Option<Vec<String>>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let known = ExecutionTrace::field_names();
    let mut fields = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if !known.iter().any(|k| k == name) {
            return Err(Problem::field(
                "fields",
                format!("unknown field `{name}`; known: {}", known.join(", ")),
            ));
        }
        fields.push(name.to_owned());
    }
    Ok(Some(fields))
}

/// Get an execution trace
#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    params(("id" = String, Path), TraceParams),
    responses((status = 200, description = "The trace (only the asked-for fields with `fields`)", body = ExecutionTrace)))]
pub async fn get(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<TraceParams>,
    ExecutionId(id): ExecutionId,
) -> Result<Json<Value>, Problem> {
    let fields = parse_fields(query.fields.as_deref())?;
    let execution = api.engine.get_execution(&caller, &id).await?;
    let view = serde_json::to_value(ExecutionTrace::of(&execution, true)).unwrap_or_default();
    Ok(Json(match (fields, view) {
        (Some(fields), Value::Object(mut all)) => {
            let picked: Map<String, Value> = fields
                .into_iter()
                .filter_map(|f| all.remove(&f).map(|v| (f, v)))
                .collect();
            Value::Object(picked)
        }
        (_, view) => view,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(value_type = Option<u32>)]
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
}

/// A suite's child executions
#[utoipa::path(get, path = "/executions/{id}/children", tag = "executions",
    params(("id" = String, Path), PageParams),
    responses((status = 200, description = "Every attempt of every child, in suite order", body = Page<ExecutionTrace>)))]
pub async fn children(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    StrictQuery(query): StrictQuery<PageParams>,
    ExecutionId(id): ExecutionId,
) -> Result<Json<Page<ExecutionTrace>>, Problem> {
    let after = cursor(query.cursor.as_deref(), "children")?;
    let found = api
        .engine
        .list_children(
            &caller,
            &id,
            after.as_deref(),
            limit(query.limit.as_deref(), 50, 200)?,
        )
        .await?;
    Ok(trace_page("children", found))
}

/// The audit trail, oldest first
#[utoipa::path(get, path = "/executions/{id}/history", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, description = "One entry per state transition", body = History)))]
pub async fn history(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    ExecutionId(id): ExecutionId,
) -> Result<Json<History>, Problem> {
    let items = api.engine.history(&caller, &id).await?;
    Ok(Json(History { items }))
}

/// The reporter is done: derive passed or failed
#[utoipa::path(post, path = "/executions/{id}/complete", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, description = "The finished trace", body = ExecutionTrace)))]
pub async fn complete(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    ExecutionId(id): ExecutionId,
    _: OptionalJson<EmptyBody>,
) -> Result<Json<ExecutionTrace>, Problem> {
    let execution = api.engine.complete(&caller, &id).await?;
    Ok(Json(ExecutionTrace::of(&execution, true)))
}

/// Cancel (a suite's unfinished children too)
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path)), request_body(content = Option<CancelBody>),
    responses((status = 200, description = "The cancelled trace", body = ExecutionTrace)))]
pub async fn cancel(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    ExecutionId(id): ExecutionId,
    OptionalJson(body): OptionalJson<CancelBody>,
) -> Result<Json<ExecutionTrace>, Problem> {
    let reason = body.and_then(|b| b.reason);
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_CANCEL_REASON_CHARS)
    {
        return Err(Problem::field(
            "reason",
            format!("at most {MAX_CANCEL_REASON_CHARS} characters"),
        ));
    }
    let execution = api.engine.cancel(&caller, &id, reason).await?;
    Ok(Json(ExecutionTrace::of(&execution, true)))
}

/// Start a new attempt of a finished execution
#[utoipa::path(post, path = "/executions/{id}/retry", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 202, description = "The new attempt", body = ExecutionTrace)))]
pub async fn retry(
    State(api): State<ApiState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    ExecutionId(id): ExecutionId,
    _: OptionalJson<EmptyBody>,
) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
    let retry = api.engine.retry(&caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionTrace::of(&retry, true))))
}
