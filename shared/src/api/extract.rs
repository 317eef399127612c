//! What a handler takes from a request, each checked strictly and refused with a problem:
//! the caller, the query, the id in the path, the JSON body, the idempotency key.
//!
//! axum runs extractors in argument order, so handlers list them as the API checks them:
//! the caller (`401`), the query (`400`), the id (`404`), then the body (`413`, `400`).

use super::ApiState;
use super::params::{Query, json_body};
use super::problem::Problem;
use crate::domain::catalog::CatalogEntry;
use crate::domain::ids::{EXECUTION_PREFIX, is_well_formed};
use crate::engine::{Caller, EngineError};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::ops::Deref;
use utoipa::IntoParams;

/// The authenticated caller (`Authorization: Bearer <JWT>`).
pub struct Authenticated(pub Caller);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Authenticated(state.auth.authenticate(authorization)?))
    }
}

/// What an authenticated handler takes from the request head, checked in the API's order:
/// the caller (`401`), the query `Q` (`400`), then the path's id `I` (`404`). The body, if any,
/// is the handler's last extractor, so it is read after all of these.
pub struct Call<Q = NoQuery, I = ()> {
    pub api: ApiState,
    pub caller: Caller,
    pub query: Q,
    pub id: I,
}

/// A request on one execution, without query parameters.
pub type OnExecution = Call<NoQuery, ExecutionId>;

impl<Q, I> FromRequestParts<ApiState> for Call<Q, I>
where
    Q: FromRequestParts<ApiState> + Send,
    I: FromRequestParts<ApiState> + Send,
    Problem: From<Q::Rejection> + From<I::Rejection>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        let query = Q::from_request_parts(parts, state).await?;
        let id = I::from_request_parts(parts, state).await?;
        Ok(Call {
            api: state.clone(),
            caller,
            query,
            id,
        })
    }
}

/// The query string as the typed, documented parameters `T`: a parameter `T` does not list,
/// or one given twice, is `400`; empty values count as absent.
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + IntoParams> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let names: Vec<String> = T::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        Query::parse(parts.uri.query(), &names)?
            .into_typed()
            .map(StrictQuery)
    }
}

impl<T> Deref for StrictQuery<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A route without query parameters: any parameter is `400`.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Query::parse::<&str>(parts.uri.query(), &[])?;
        Ok(NoQuery)
    }
}

/// Ids in paths: only the shape runledger hands out can exist, anything else is the kind's
/// `404`, exactly as an unknown id.
async fn path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    prefix: &str,
    what: &'static str,
) -> Result<String, Problem> {
    let id = axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map(|path| path.0)
        .unwrap_or_default();
    if is_well_formed(&id, prefix) {
        Ok(id)
    } else {
        Err(EngineError::not_found(what, &id).into())
    }
}

/// `{id}` of `/executions/{id}/...`.
pub struct ExecutionId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ExecutionId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        path_id(parts, state, EXECUTION_PREFIX, "execution")
            .await
            .map(ExecutionId)
    }
}

impl Deref for ExecutionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// `{id}` of a catalog entry of type `T` (`/test-cases/{id}`, `/test-suites/{id}`).
pub struct EntryId<T>(pub String, pub PhantomData<T>);

impl<S: Send + Sync, T: CatalogEntry> FromRequestParts<S> for EntryId<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        path_id(parts, state, T::KIND.id_prefix(), T::KIND.name())
            .await
            .map(|id| EntryId(id, PhantomData))
    }
}

/// The body, read up to the body limit (`413` beyond it) and parsed as strict JSON into `T`:
/// structs only as objects, unknown fields refused, errors naming the field.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let body = body_bytes(request, state).await?;
        json_body(&body).map(StrictJson)
    }
}

/// A body that may be left out: empty or JSON `null` is `None` (the document describes it as
/// nullable), anything else must parse as `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let body = body_bytes(request, state).await?;
        if body.is_empty() {
            return Ok(OptionalJson(None));
        }
        json_body(&body).map(OptionalJson)
    }
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Problem::too_large(super::MAX_BODY_BYTES)
            }
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            ),
        })
}

/// The optional `Idempotency-Key` header of a start.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(value) => value
                .to_str()
                .map(|key| IdempotencyKey(Some(key.to_owned())))
                .map_err(|_| Problem::field("Idempotency-Key", "must be printable ASCII")),
        }
    }
}
