//! Executions: start, list, read, and the commands on one (complete, cancel, retry).

use crate::api::extract::{
    Call, ExecutionId, IdempotencyKey, OnExecution, OptionalJson, StrictJson, StrictQuery,
};
use crate::api::openapi::{Conflict, NotFound};
use crate::api::params::{LISTING_PAGE, cursor, encode_cursor, limit, page};
use crate::api::problem::Problem;
use crate::api::wire::{
    CancelBody, EmptyBody, ExecutionTrace, History, MAX_CANCEL_REASON_CHARS, Page, StartCaseBody,
    StartSuiteBody, TraceOrFields,
};
use crate::domain::execution::{ExecutionConfig, ExecutionKind, ExecutionStatus};
use crate::domain::time::Timestamp;
use crate::engine::{MAX_IDEMPOTENCY_KEY_CHARS, StartRequest};
use crate::ports::ExecutionQuery;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use strum::VariantNames;
use utoipa::IntoParams;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// What a start runs.
enum Target {
    Case(String),
    Suite(String),
}

/// `202` with a new execution, `200` with the one an `Idempotency-Key` already started.
async fn start(
    Call { api, caller, .. }: Call,
    key: IdempotencyKey,
    target: Target,
    config: Option<ExecutionConfig>,
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

/// The headers of a start.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // only documented: the `IdempotencyKey` extractor reads the header
pub struct StartHeaders {
    /// Makes the start safe to repeat: the same key from the same user within 24 hours
    /// answers `200` with the execution it started.
    #[param(rename = "Idempotency-Key", schema_with = idempotency_key_schema)]
    idempotency_key: Option<String>,
}

/// 1..255 printable ASCII characters, not counting the spaces and tabs around a header
/// value, which are not part of it (RFC 9110, section 5.5).
fn idempotency_key_schema() -> RefOr<Schema> {
    let inner = MAX_IDEMPOTENCY_KEY_CHARS.saturating_sub(2);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[\\t ]*[!-~]([ -~]{{0,{inner}}}[!-~])?[\\t ]*$"
        )))
        .description(Some(format!(
            "1..{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
        )))
        .into()
}

/// The two start routes differ only in their path, body and what they start.
macro_rules! start_handler {
    ($name:ident, $path:literal, $summary:literal, $body:ty, $target:ident, $id:ident) => {
        #[utoipa::path(post, path = $path, tag = "executions", summary = $summary,
            params(StartHeaders), request_body = $body,
            responses((status = 202, description = "Started", body = ExecutionTrace),
                      (status = 200, description = "Already started with this Idempotency-Key", body = ExecutionTrace),
                      NotFound, Conflict))]
        pub async fn $name(
            call: Call,
            key: IdempotencyKey,
            StrictJson(body): StrictJson<$body>,
        ) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
            start(call, key, Target::$target(body.$id), body.config).await
        }
    };
}

start_handler!(
    start_case,
    "/executions/case",
    "Start a test case (Idempotency-Key honoured; 200 on replay)",
    StartCaseBody,
    Case,
    test_case_id
);
start_handler!(
    start_suite,
    "/executions/suite",
    "Start a test suite (Idempotency-Key honoured; 200 on replay)",
    StartSuiteBody,
    Suite,
    test_suite_id
);

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
    #[param(schema_with = crate::api::params::listing_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
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
            limit: limit(self.limit.as_deref(), LISTING_PAGE)?,
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
    call: Call<StrictQuery<ListParams>>,
) -> Result<Json<Page<ExecutionTrace>>, Problem> {
    let query = call.query.0.into_query()?;
    let found = call.api.engine.list_executions(&call.caller, query).await?;
    Ok(trace_page("executions", found))
}

#[derive(Deserialize)]
pub struct TraceParams {
    fields: Option<String>,
}

/// By hand: `#[param(schema_with)]` drops `explode`, and `fields` is one comma-separated value.
impl IntoParams for TraceParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("fields")
                .parameter_in(ParameterIn::Query)
                .description(Some(
                    "Top-level fields to return, comma-separated (e.g. `id,status,progress`)",
                ))
                .style(Some(ParameterStyle::Form))
                .explode(Some(false))
                .schema(Some(crate::api::wire::trace_fields_schema()))
                .build(),
        ]
    }
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
    responses((status = 200, description = "The trace; with `fields`, only the fields asked for", body = TraceOrFields),
              NotFound))]
pub async fn get(
    call: Call<StrictQuery<TraceParams>, ExecutionId>,
) -> Result<Json<Value>, Problem> {
    let fields = parse_fields(call.query.fields.as_deref())?;
    let execution = call
        .api
        .engine
        .get_execution(&call.caller, &call.id)
        .await?;
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

/// The query of `GET /executions/{id}/children`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(schema_with = crate::api::params::listing_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
    cursor: Option<String>,
}

/// A suite's child executions
#[utoipa::path(get, path = "/executions/{id}/children", tag = "executions",
    params(("id" = String, Path), PageParams),
    responses((status = 200, description = "Every attempt of every child, in suite order", body = Page<ExecutionTrace>),
              NotFound))]
pub async fn children(
    call: Call<StrictQuery<PageParams>, ExecutionId>,
) -> Result<Json<Page<ExecutionTrace>>, Problem> {
    let query = &call.query;
    let (after, limit) = page::<String>(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        "children",
        LISTING_PAGE,
    )?;
    let (suite, found) = call
        .api
        .engine
        .list_suite_children(&call.caller, &call.id, after.as_deref(), limit)
        .await?;
    let muted: HashSet<&str> = suite
        .suite
        .iter()
        .flat_map(|plan| &plan.slots)
        .filter(|slot| slot.muted)
        .map(|slot| slot.execution_id.as_str())
        .collect();
    let Json(mut page) = trace_page("children", found);
    for child in &mut page.items {
        child.muted = muted.contains(child.id.as_str());
    }
    Ok(Json(page))
}

/// The audit trail, oldest first
#[utoipa::path(get, path = "/executions/{id}/history", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, description = "One entry per state transition", body = History), NotFound))]
pub async fn history(call: OnExecution) -> Result<Json<History>, Problem> {
    let items = call.api.engine.history(&call.caller, &call.id).await?;
    Ok(Json(History { items }))
}

/// The reporter is done: derive passed or failed
#[utoipa::path(post, path = "/executions/{id}/complete", tag = "executions",
    params(("id" = String, Path)), request_body(content = Option<EmptyBody>, description = "Nothing, or `{}`"),
    responses((status = 200, description = "The finished trace", body = ExecutionTrace), NotFound, Conflict))]
pub async fn complete(
    call: OnExecution,
    _: OptionalJson<EmptyBody>,
) -> Result<Json<ExecutionTrace>, Problem> {
    let execution = call.api.engine.complete(&call.caller, &call.id).await?;
    Ok(Json(ExecutionTrace::of(&execution, true)))
}

/// Cancel (a suite's unfinished children too)
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path)), request_body(content = Option<CancelBody>),
    responses((status = 200, description = "The cancelled trace", body = ExecutionTrace), NotFound, Conflict))]
pub async fn cancel(
    call: OnExecution,
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
    let execution = call
        .api
        .engine
        .cancel(&call.caller, &call.id, reason)
        .await?;
    Ok(Json(ExecutionTrace::of(&execution, true)))
}

/// Start a new attempt of a finished execution
#[utoipa::path(post, path = "/executions/{id}/retry", tag = "executions",
    params(("id" = String, Path)), request_body(content = Option<EmptyBody>, description = "Nothing, or `{}`"),
    responses((status = 202, description = "The new attempt", body = ExecutionTrace), NotFound, Conflict))]
pub async fn retry(
    call: OnExecution,
    _: OptionalJson<EmptyBody>,
) -> Result<(StatusCode, Json<ExecutionTrace>), Problem> {
    let retry = call.api.engine.retry(&call.caller, &call.id).await?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionTrace::of(&retry, true))))
}
