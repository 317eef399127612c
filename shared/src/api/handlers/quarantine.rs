//! Quarantine: put a test case in quarantine for a while (its failures then do not fail its
//! suites), lift it, list what is in quarantine, and read a test case's audit history.

use crate::api::extract::{Call, EntryId, NoQuery, StrictJson, StrictQuery};
use crate::api::openapi::NotFound;
use crate::api::params::{LISTING_PAGE, encode_cursor, page};
use crate::api::problem::Problem;
use crate::api::wire::{CaseHistory, Page, QuarantineInput};
use crate::domain::catalog::TestCase;
use crate::domain::ids::{TEST_CASE_PREFIX, is_well_formed};
use crate::domain::quarantine::Quarantine;
use crate::engine::QuarantineRequest;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use std::str::FromStr;
use utoipa::IntoParams;

/// Quarantine a test case
///
/// Until `until` (at most 30 days ahead), a failing, erroring or timed-out execution of the
/// case is still recorded as such but does not fail its suite: the suite's `children` count
/// it as `muted`. Replaces any quarantine the case had; recorded in its history and announced
/// as a `Test Case Quarantined` event.
#[utoipa::path(put, path = "/test-cases/{id}/quarantine", tag = "quarantine",
    params(("id" = String, Path)), request_body = QuarantineInput,
    responses((status = 200, description = "The quarantine", body = Quarantine), NotFound))]
pub async fn put(
    Call {
        api,
        caller,
        id: EntryId(id, ..),
        ..
    }: Call<NoQuery, EntryId<TestCase>>,
    StrictJson(input): StrictJson<QuarantineInput>,
) -> Result<Json<Quarantine>, Problem> {
    let request = QuarantineRequest {
        reason: input.reason,
        until: input.until,
    };
    Ok(Json(api.engine.quarantine(&caller, &id, request).await?))
}

/// Lift a test case's quarantine
///
/// Its failures fail its suites again from now on. `204` whether or not it was quarantined;
/// a lifted quarantine is recorded in its history and announced as `Test Case Released`.
#[utoipa::path(delete, path = "/test-cases/{id}/quarantine", tag = "quarantine",
    params(("id" = String, Path)),
    responses((status = 204, description = "Not quarantined (any more)"), NotFound))]
pub async fn delete(
    Call {
        api,
        caller,
        id: EntryId(id, ..),
        ..
    }: Call<NoQuery, EntryId<TestCase>>,
) -> Result<StatusCode, Problem> {
    api.engine.release(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A test case's audit history, oldest first
///
/// Who quarantined it, why and until when, and who lifted it.
#[utoipa::path(get, path = "/test-cases/{id}/history", tag = "quarantine",
    params(("id" = String, Path)),
    responses((status = 200, description = "The test case's history", body = CaseHistory), NotFound))]
pub async fn history(
    Call {
        api,
        caller,
        id: EntryId(id, ..),
        ..
    }: Call<NoQuery, EntryId<TestCase>>,
) -> Result<Json<CaseHistory>, Problem> {
    let items = api.engine.case_history(&caller, &id).await?;
    Ok(Json(CaseHistory { items }))
}

/// The query of `GET /quarantine`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    #[param(schema_with = crate::api::params::listing_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
    cursor: Option<String>,
}

/// The listing's cursors name their kind so.
const QUARANTINE_LISTING: &str = "quarantine";

/// Where the listing continues: a test case id.
struct CaseId(String);

impl FromStr for CaseId {
    type Err = ();

    fn from_str(id: &str) -> Result<Self, ()> {
        is_well_formed(id, TEST_CASE_PREFIX)
            .then(|| CaseId(id.to_owned()))
            .ok_or(())
    }
}

/// The caller's quarantined test cases
///
/// Those whose quarantine is in force, by test case id; an administrator's listing holds
/// everyone's. A page may hold fewer than `limit` while `next_cursor` goes on (quarantines
/// that lapsed are left out).
#[utoipa::path(get, path = "/quarantine", tag = "quarantine", params(QuarantineParams),
    responses((status = 200, description = "A page of quarantines", body = Page<Quarantine>)))]
pub async fn list(
    Call {
        api,
        caller,
        query: StrictQuery(params),
        ..
    }: Call<StrictQuery<QuarantineParams>>,
) -> Result<Json<Page<Quarantine>>, Problem> {
    let (after, limit) = page::<CaseId>(
        params.limit.as_deref(),
        params.cursor.as_deref(),
        QUARANTINE_LISTING,
        LISTING_PAGE,
    )?;
    let found = api
        .engine
        .list_quarantined(&caller, limit, after.as_ref().map(|c| c.0.as_str()))
        .await?;
    Ok(Json(Page {
        items: found.items,
        next_cursor: found
            .next_cursor
            .map(|id| encode_cursor(QUARANTINE_LISTING, &id)),
    }))
}
