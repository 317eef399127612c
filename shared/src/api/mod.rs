//! The one HTTP router: every route of the contract, over plain `http` types, so the local
//! server and every Lambda function mount the same code. A Lambda function mounts only the
//! route groups it owns; the local server mounts all of them.

mod demo;
pub mod openapi;
pub mod params;
pub mod problem;
mod strict;
pub mod views;

use crate::auth::Authenticator;
use crate::domain::catalog::{CatalogEntry, CatalogKind, TestCase, TestSuite};
use crate::domain::execution::{ExecutionConfig, ExecutionKind, ExecutionStatus, StepReport};
use crate::domain::ids::{EXECUTION_PREFIX, is_well_formed};
use crate::domain::time::Timestamp;
use crate::engine::{Caller, Engine, StartRequest};
use crate::ports::{ExecutionQuery, Page};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use params::{Query, encode_cursor, json_body};
use problem::Problem;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use strum::VariantNames;
use tracing::Instrument;

/// Request bodies above this get `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const API_PREFIX: &str = "/api/v1";

/// The groups of routes; each Lambda function owns some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteGroup {
    /// `GET /health`.
    Health,
    /// Test case and test suite CRUD.
    Catalog,
    /// Starting and retrying executions.
    Start,
    /// Every `GET` on executions.
    Status,
    /// Step reports and completion.
    StepReport,
    /// Cancellation.
    Finalize,
    /// A tiny HTTP target for the quickstart (local server only).
    Demo,
}

impl RouteGroup {
    /// What the local server mounts: everything.
    pub const ALL: [RouteGroup; 7] = [
        RouteGroup::Health,
        RouteGroup::Catalog,
        RouteGroup::Start,
        RouteGroup::Status,
        RouteGroup::StepReport,
        RouteGroup::Finalize,
        RouteGroup::Demo,
    ];
}

/// The query parameters each listing takes (the OpenAPI document lists the same).
mod queries {
    pub const CATALOG: &[&str] = &["tag", "limit", "cursor"];
    pub const EXECUTIONS: &[&str] = &[
        "status",
        "kind",
        "test_case_id",
        "test_suite_id",
        "tag",
        "since",
        "until",
        "limit",
        "cursor",
    ];
    pub const EXECUTION: &[&str] = &["fields"];
    pub const PAGE: &[&str] = &["limit", "cursor"];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    OpenApi,
    TestCases,
    TestCase(String),
    TestSuites,
    TestSuite(String),
    Executions,
    StartCase,
    StartSuite,
    Execution(String),
    Steps(String),
    Children(String),
    History(String),
    Complete(String),
    Cancel(String),
    Retry(String),
}

impl Route {
    fn resolve(path: &str) -> Option<Route> {
        let rest = path.strip_prefix(API_PREFIX)?;
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
        let route = match segments.as_slice() {
            ["health"] => Route::Health,
            ["openapi.json"] => Route::OpenApi,
            ["test-cases"] => Route::TestCases,
            ["test-cases", id] => Route::TestCase(id.to_string()),
            ["test-suites"] => Route::TestSuites,
            ["test-suites", id] => Route::TestSuite(id.to_string()),
            ["executions"] => Route::Executions,
            ["executions", "case"] => Route::StartCase,
            ["executions", "suite"] => Route::StartSuite,
            ["executions", id] => Route::Execution(id.to_string()),
            ["executions", id, "steps"] => Route::Steps(id.to_string()),
            ["executions", id, "children"] => Route::Children(id.to_string()),
            ["executions", id, "history"] => Route::History(id.to_string()),
            ["executions", id, "complete"] => Route::Complete(id.to_string()),
            ["executions", id, "cancel"] => Route::Cancel(id.to_string()),
            ["executions", id, "retry"] => Route::Retry(id.to_string()),
            _ => return None,
        };
        Some(route)
    }

    /// The methods this path takes, each with the group that owns it.
    fn methods(&self) -> &'static [(Method, RouteGroup)] {
        use RouteGroup::*;
        match self {
            Route::Health | Route::OpenApi => &[(Method::GET, Health)],
            Route::TestCases | Route::TestSuites => {
                &[(Method::GET, Catalog), (Method::POST, Catalog)]
            }
            Route::TestCase(_) | Route::TestSuite(_) => &[
                (Method::GET, Catalog),
                (Method::PUT, Catalog),
                (Method::DELETE, Catalog),
            ],
            Route::Executions | Route::Execution(_) | Route::Children(_) | Route::History(_) => {
                &[(Method::GET, Status)]
            }
            Route::StartCase | Route::StartSuite | Route::Retry(_) => &[(Method::POST, Start)],
            Route::Steps(_) => &[(Method::GET, Status), (Method::POST, StepReport)],
            Route::Complete(_) => &[(Method::POST, StepReport)],
            Route::Cancel(_) => &[(Method::POST, Finalize)],
        }
    }
}

pub struct Router {
    engine: Engine,
    auth: Arc<Authenticator>,
    groups: Vec<RouteGroup>,
}

impl Router {
    pub fn new(engine: Engine, auth: Arc<Authenticator>, groups: &[RouteGroup]) -> Self {
        Router {
            engine,
            auth,
            groups: groups.to_vec(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Handles one request whose body the host has already read (at most
    /// [`MAX_BODY_BYTES`] + 1 bytes: anything longer is refused here).
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| ulid::Ulid::new().to_string());
        let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
        let mut response = async {
            let response = match self.route(request).await {
                Ok(response) => response,
                Err(problem) => problem.into_response(),
            };
            tracing::debug!(status = response.status().as_u16(), "response");
            response
        }
        .instrument(span)
        .await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }

    async fn route(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Problem> {
        let path = request.uri().path().to_owned();
        if self.groups.contains(&RouteGroup::Demo)
            && let Some(response) = demo::handle(&request, &path).await
        {
            return Ok(response);
        }
        let route = Route::resolve(&path)
            .ok_or_else(|| Problem::not_found(format!("no route for {path}")))?;
        let methods = route.methods();
        let mounted: Vec<&(Method, RouteGroup)> = methods
            .iter()
            .filter(|(_, g)| self.groups.contains(g))
            .collect();
        if mounted.is_empty() {
            return Err(Problem::not_found(format!("no route for {path}")));
        }
        if !mounted.iter().any(|(m, _)| m == request.method()) {
            let allowed: Vec<Method> = mounted.iter().map(|(m, _)| m.clone()).collect();
            return Err(Problem::method_not_allowed(&allowed));
        }
        if request.body().len() > MAX_BODY_BYTES {
            return Err(Problem::too_large(MAX_BODY_BYTES));
        }
        match route {
            Route::Health => {
                return Ok(json_response(
                    StatusCode::OK,
                    &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
                ));
            }
            Route::OpenApi => return Ok(json_response(StatusCode::OK, &openapi::document())),
            _ => {}
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = self.auth.authenticate(authorization)?;
        self.dispatch(route, &caller, &request).await
    }

    async fn dispatch(
        &self,
        route: Route,
        caller: &Caller,
        request: &Request<Bytes>,
    ) -> Result<Response<Bytes>, Problem> {
        let raw_query = request.uri().query();
        let body = request.body();
        let method = request.method().clone();
        let engine = &self.engine;
        match (route, method) {
            (Route::TestCases, method) => {
                catalog_route::<TestCase>(engine, caller, &method, raw_query, body, None).await
            }
            (Route::TestCase(id), method) => {
                catalog_route::<TestCase>(engine, caller, &method, raw_query, body, Some(&id)).await
            }
            (Route::TestSuites, method) => {
                catalog_route::<TestSuite>(engine, caller, &method, raw_query, body, None).await
            }
            (Route::TestSuite(id), method) => {
                catalog_route::<TestSuite>(engine, caller, &method, raw_query, body, Some(&id))
                    .await
            }
            (Route::StartCase, _) => {
                Query::parse(raw_query, &[])?;
                let start: StartCaseBody = json_body(body)?;
                let request = start_request(request, start.config)?;
                let started = engine
                    .start_case(caller, &start.test_case_id, request)
                    .await?;
                Ok(started_response(started))
            }
            (Route::StartSuite, _) => {
                Query::parse(raw_query, &[])?;
                let start: StartSuiteBody = json_body(body)?;
                let request = start_request(request, start.config)?;
                let started = engine
                    .start_suite(caller, &start.test_suite_id, request)
                    .await?;
                Ok(started_response(started))
            }
            (Route::Executions, _) => {
                let query = Query::parse(
                    raw_query,
                    &[
                        "status",
                        "kind",
                        "test_case_id",
                        "test_suite_id",
                        "tag",
                        "since",
                        "until",
                        "limit",
                        "cursor",
                    ],
                )?;
                let filter = execution_query(&query)?;
                let page = engine.list_executions(caller, filter).await?;
                Ok(page_response("executions", page, |e| {
                    views::execution(e, false)
                }))
            }
            (Route::Execution(id), _) => {
                let query = Query::parse(raw_query, queries::EXECUTION)?;
                let fields = views::parse_fields(query.get("fields"))?;
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let view = views::execution(&engine.get_execution(caller, id).await?, true);
                Ok(ok(&match fields {
                    Some(fields) => views::select(view, &fields),
                    None => view,
                }))
            }
            (Route::Steps(id), Method::GET) => {
                let query = Query::parse(raw_query, queries::PAGE)?;
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let after = match query.cursor("steps")? {
                    Some(position) => Some(position.parse::<u32>().map_err(|_| {
                        Problem::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_cursor",
                            "the cursor is not valid for this listing",
                        )
                    })?),
                    None => None,
                };
                let page = engine
                    .list_steps(caller, id, after, query.limit(100, 1000)?)
                    .await?;
                Ok(page_response("steps", page, |s| json!(s)))
            }
            (Route::Steps(id), _) => {
                Query::parse(raw_query, &[])?;
                let report: StepsBody = json_body(body)?;
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let execution = engine.report_steps(caller, id, report.steps).await?;
                Ok(ok(
                    &json!({"id": execution.id, "status": execution.status, "progress": execution.progress}),
                ))
            }
            (Route::Children(id), _) => {
                let query = Query::parse(raw_query, queries::PAGE)?;
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let after = query.cursor("children")?;
                let page = engine
                    .list_children(caller, id, after.as_deref(), query.limit(50, 200)?)
                    .await?;
                Ok(page_response("children", page, |e| {
                    views::execution(e, false)
                }))
            }
            (Route::History(id), _) => {
                Query::parse(raw_query, &[])?;
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let items = engine.history(caller, id).await?;
                Ok(ok(&json!({"items": items})))
            }
            (Route::Complete(id), _) => {
                Query::parse(raw_query, &[])?;
                if !body.is_empty() {
                    json_body::<EmptyBody>(body)?;
                }
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                Ok(ok(&views::execution(
                    &engine.complete(caller, id).await?,
                    true,
                )))
            }
            (Route::Cancel(id), _) => {
                Query::parse(raw_query, &[])?;
                let reason = if body.is_empty() {
                    None
                } else {
                    json_body::<CancelBody>(body)?.reason
                };
                if reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
                    return Err(Problem::field("reason", "at most 1000 characters"));
                }
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                Ok(ok(&views::execution(
                    &engine.cancel(caller, id, reason).await?,
                    true,
                )))
            }
            (Route::Retry(id), _) => {
                Query::parse(raw_query, &[])?;
                if !body.is_empty() {
                    json_body::<EmptyBody>(body)?;
                }
                let id = known_id(&id, EXECUTION_PREFIX, "execution")?;
                let retry = engine.retry(caller, id).await?;
                Ok(json_response(
                    StatusCode::ACCEPTED,
                    &views::execution(&retry, true),
                ))
            }
            (Route::Health | Route::OpenApi, _) => unreachable!("answered before authentication"),
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StartCaseBody {
    test_case_id: String,
    #[serde(default)]
    config: Option<ExecutionConfig>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StartSuiteBody {
    test_suite_id: String,
    #[serde(default)]
    config: Option<ExecutionConfig>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StepsBody {
    steps: Vec<StepReport>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn start_request(
    request: &Request<Bytes>,
    config: Option<ExecutionConfig>,
) -> Result<StartRequest, Problem> {
    let idempotency_key = match request.headers().get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| Problem::field("Idempotency-Key", "must be printable ASCII"))?
                .to_owned(),
        ),
    };
    Ok(StartRequest {
        config: config.unwrap_or_default(),
        idempotency_key,
    })
}

/// The path segment of a kind's collection: `test-cases`.
fn collection<T: CatalogEntry>() -> &'static str {
    match T::KIND {
        CatalogKind::TestCase => "test-cases",
        CatalogKind::TestSuite => "test-suites",
    }
}

/// A catalog collection (`id` is `None`: `POST` creates, `GET` lists) or one of its entries
/// (`GET`, `PUT` replaces, `DELETE`), for every kind of entry.
async fn catalog_route<T: CatalogEntry>(
    engine: &Engine,
    caller: &Caller,
    method: &Method,
    raw_query: Option<&str>,
    body: &Bytes,
    id: Option<&str>,
) -> Result<Response<Bytes>, Problem>
where
    T::Input: DeserializeOwned,
{
    let collection = collection::<T>();
    let Some(id) = id else {
        if *method == Method::POST {
            Query::parse(raw_query, &[])?;
            let entry = engine
                .create_entry::<T>(caller, json_body::<T::Input>(body)?)
                .await?;
            let location = format!("{API_PREFIX}/{collection}/{}", entry.id());
            return Ok(created(&location, &json!(entry)));
        }
        let query = Query::parse(raw_query, queries::CATALOG)?;
        let tag = query.get("tag").map(str::to_owned);
        let (limit, after) = (query.limit(50, 200)?, query.cursor(collection)?);
        let page = engine.list_entries::<T>(caller, tag, limit, after).await?;
        return Ok(page_response(collection, page, |e| json!(e)));
    };
    Query::parse(raw_query, &[])?;
    let id = known_id(id, T::KIND.id_prefix(), T::KIND.name())?;
    match *method {
        Method::GET => Ok(ok(&json!(engine.get_entry::<T>(caller, id).await?))),
        Method::PUT => {
            let input = json_body::<T::Input>(body)?;
            Ok(ok(&json!(
                engine.replace_entry::<T>(caller, id, input).await?
            )))
        }
        _ => {
            engine.delete_entry::<T>(caller, id).await?;
            Ok(no_content())
        }
    }
}

/// Ids in paths must have the shape runledger hands out; anything else cannot exist.
fn known_id<'a>(id: &'a str, prefix: &str, what: &'static str) -> Result<&'a str, Problem> {
    if is_well_formed(id, prefix) {
        Ok(id)
    } else {
        Err(crate::engine::EngineError::not_found(what, id).into())
    }
}

/// "must be one of a, b, c", from a derived name list.
fn one_of(names: &[&str]) -> String {
    format!("must be one of {}", names.join(", "))
}

fn execution_query(query: &Query) -> Result<ExecutionQuery, Problem> {
    let status = match query.get("status") {
        Some(s) => Some(
            ExecutionStatus::parse(s)
                .ok_or_else(|| Problem::field("status", one_of(ExecutionStatus::VARIANTS)))?,
        ),
        None => None,
    };
    let kind = match query.get("kind") {
        Some(k) => Some(k.parse::<ExecutionKind>().map_err(|_| {
            let kinds = ExecutionKind::VARIANTS.join(" or ");
            Problem::field("kind", format!("must be {kinds}"))
        })?),
        None => None,
    };
    let time = |name: &str| -> Result<Option<Timestamp>, Problem> {
        match query.get(name) {
            Some(text) => Timestamp::parse(text)
                .map(Some)
                .ok_or_else(|| Problem::field(name, "must be an RFC 3339 timestamp")),
            None => Ok(None),
        }
    };
    Ok(ExecutionQuery {
        owner: None,
        status,
        kind,
        test_case_id: query.get("test_case_id").map(str::to_owned),
        test_suite_id: query.get("test_suite_id").map(str::to_owned),
        tag: query.get("tag").map(str::to_owned),
        since: time("since")?,
        until: time("until")?,
        limit: query.limit(50, 200)?,
        after: query.cursor("executions")?,
    })
}

fn started_response(started: crate::engine::Started) -> Response<Bytes> {
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json_response(status, &views::execution(&started.execution, true))
}

fn page_response<T>(kind: &str, page: Page<T>, view: impl Fn(&T) -> Value) -> Response<Bytes> {
    let items: Vec<Value> = page.items.iter().map(view).collect();
    let next_cursor = page
        .next_cursor
        .map(|position| encode_cursor(kind, &position));
    ok(&json!({"items": items, "next_cursor": next_cursor}))
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn ok(body: &Value) -> Response<Bytes> {
    json_response(StatusCode::OK, body)
}

fn created(location: &str, body: &Value) -> Response<Bytes> {
    let mut response = json_response(StatusCode::CREATED, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn no_content() -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
