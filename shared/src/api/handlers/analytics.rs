//! Analytics: a test case's or test suite's counts, rates, durations, flakiness and trend
//! over a period, and the caller's flaky test cases.

use crate::api::ApiState;
use crate::api::extract::{Call, EntryId, StrictQuery};
use crate::api::openapi::NotFound;
use crate::api::params::{LISTING_PAGE, encode_cursor, page};
use crate::api::problem::Problem;
use crate::api::wire::{
    AnalyticsBucket, AnalyticsSummary, FlakyTestCase, Page, TestCaseAnalytics, TestSuiteAnalytics,
};
use crate::domain::catalog::{CatalogEntry, TestCase, TestSuite};
use crate::domain::ids::{TEST_CASE_PREFIX, is_well_formed};
use crate::engine::{AnalyticsQuery, Caller, DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS, parse_day};
use axum::Json;
use serde::Deserialize;
use std::str::FromStr;
use utoipa::IntoParams;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

/// The query of a test's analytics.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// The period's first UTC day, included: a date, or a timestamp whose UTC day it is
    /// (default: 29 days before `until`).
    #[param(schema_with = day_schema)]
    since: Option<String>,
    /// The period's last UTC day, included: a date or a timestamp (default: today). The
    /// period is at most 366 days.
    #[param(schema_with = day_schema)]
    until: Option<String>,
    /// `day` (default) or `week`.
    #[param(value_type = Option<AnalyticsBucket>)]
    bucket: Option<String>,
}

/// A `YYYY-MM-DD` date or an RFC 3339 timestamp.
fn day_schema() -> RefOr<Schema> {
    let format = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    AnyOfBuilder::new()
        .item(format(KnownFormat::Date))
        .item(format(KnownFormat::DateTime))
        .into()
}

impl AnalyticsParams {
    fn into_query(self) -> Result<AnalyticsQuery, Problem> {
        let day = |name: &str, text: Option<&str>| {
            text.map(|text| {
                parse_day(text).ok_or_else(|| {
                    Problem::field(
                        name,
                        "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp, in the years \
                         0001..9999",
                    )
                })
            })
            .transpose()
        };
        let bucket = match self.bucket.as_deref() {
            None => AnalyticsBucket::Day,
            Some(text) => AnalyticsBucket::parse(text)
                .ok_or_else(|| Problem::field("bucket", "must be `day` or `week`"))?,
        };
        Ok(AnalyticsQuery {
            since: day("since", self.since.as_deref())?,
            until: day("until", self.until.as_deref())?,
            bucket: bucket.into(),
        })
    }
}

async fn summary<T: CatalogEntry>(
    api: &ApiState,
    caller: &Caller,
    id: &str,
    params: AnalyticsParams,
) -> Result<AnalyticsSummary, Problem> {
    let query = params.into_query()?;
    let analytics = api.engine.test_analytics::<T>(caller, id, query).await?;
    Ok(AnalyticsSummary::of(&analytics))
}

// The defaults the documentation states are the engine's.
const _: () = assert!(DEFAULT_PERIOD_DAYS == 30 && MAX_PERIOD_DAYS == 366);

/// A test case's analytics over a period
///
/// Counts of its executions that finished in the period (by final status), pass and flaky
/// rates over those with an outcome, duration percentiles, its flakiness over its latest
/// outcomes, and a trend point per day or week with executions. Default: the last 30 days up
/// to today (UTC), by day.
#[utoipa::path(get, path = "/analytics/test-cases/{id}", tag = "analytics",
    params(("id" = String, Path), AnalyticsParams),
    responses((status = 200, description = "The test case's analytics", body = TestCaseAnalytics),
              NotFound))]
pub async fn test_case(
    Call {
        api,
        caller,
        query: StrictQuery(params),
        id: EntryId(id, ..),
    }: Call<StrictQuery<AnalyticsParams>, EntryId<TestCase>>,
) -> Result<Json<TestCaseAnalytics>, Problem> {
    let analytics = summary::<TestCase>(&api, &caller, &id, params).await?;
    Ok(Json(TestCaseAnalytics {
        test_case_id: id,
        analytics,
    }))
}

/// A test suite's analytics over a period
///
/// As for a test case, over the suite's executions (each run of the suite counts once, by
/// its final status).
#[utoipa::path(get, path = "/analytics/test-suites/{id}", tag = "analytics",
    params(("id" = String, Path), AnalyticsParams),
    responses((status = 200, description = "The test suite's analytics", body = TestSuiteAnalytics),
              NotFound))]
pub async fn test_suite(
    Call {
        api,
        caller,
        query: StrictQuery(params),
        id: EntryId(id, ..),
    }: Call<StrictQuery<AnalyticsParams>, EntryId<TestSuite>>,
) -> Result<Json<TestSuiteAnalytics>, Problem> {
    let analytics = summary::<TestSuite>(&api, &caller, &id, params).await?;
    Ok(Json(TestSuiteAnalytics {
        test_suite_id: id,
        analytics,
    }))
}

/// The query of `GET /analytics/flaky`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlakyParams {
    #[param(schema_with = crate::api::params::listing_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
    cursor: Option<String>,
}

/// The listing's cursors name their kind so.
const FLAKY_LISTING: &str = "flaky";

/// Where the flaky listing continues: a test case's flaky rank (`{inverse flip rate:04}#{id}`,
/// see `Rollup::flaky_rank`), carried in a cursor as `{inverse}_{id}` (cursor positions are
/// letters, digits and `_`).
struct FlakyPosition(String);

impl FlakyPosition {
    fn of_rank(rank: &str) -> String {
        rank.replacen('#', "_", 1)
    }
}

impl FromStr for FlakyPosition {
    type Err = ();

    fn from_str(position: &str) -> Result<Self, ()> {
        let (inverse, rest) = position.split_at_checked(4).ok_or(())?;
        let id = rest.strip_prefix('_').ok_or(())?;
        let sane =
            inverse.bytes().all(|b| b.is_ascii_digit()) && is_well_formed(id, TEST_CASE_PREFIX);
        sane.then(|| FlakyPosition(format!("{inverse}#{id}")))
            .ok_or(())
    }
}

/// The caller's flaky test cases, highest flip rate first
///
/// Test cases whose latest outcomes flip (a flip rate of at least 0.2 over at least 5
/// outcomes) or that passed on a retry after a failed attempt, each with its `flaky` object
/// and the day of its latest finish; an administrator's listing holds everyone's.
#[utoipa::path(get, path = "/analytics/flaky", tag = "analytics", params(FlakyParams),
    responses((status = 200, description = "A page of flaky test cases", body = Page<FlakyTestCase>)))]
pub async fn flaky(
    Call {
        api,
        caller,
        query: StrictQuery(params),
        ..
    }: Call<StrictQuery<FlakyParams>>,
) -> Result<Json<Page<FlakyTestCase>>, Problem> {
    let (after, limit) = page::<FlakyPosition>(
        params.limit.as_deref(),
        params.cursor.as_deref(),
        FLAKY_LISTING,
        LISTING_PAGE,
    )?;
    let found = api
        .engine
        .flaky_tests(&caller, limit, after.as_ref().map(|p| p.0.as_str()))
        .await?;
    Ok(Json(Page {
        items: found
            .items
            .iter()
            .map(|(rollup, quarantine)| FlakyTestCase::of(rollup, quarantine.clone()))
            .collect(),
        next_cursor: found
            .next_cursor
            .map(|rank| encode_cursor(FLAKY_LISTING, &FlakyPosition::of_rank(&rank))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaky_positions_carry_ranks_and_refuse_anything_else() {
        let rank = "0000#tc_01JDQ7Z8X9Y0ABCDEFGHJKMNPQ";
        let position = FlakyPosition::of_rank(rank);
        assert_eq!(position, "0000_tc_01JDQ7Z8X9Y0ABCDEFGHJKMNPQ");
        assert_eq!(position.parse::<FlakyPosition>().unwrap().0, rank);
        for bad in [
            "",
            "0000",
            "0000_",
            "00a0_tc_01JDQ7Z8X9Y0ABCDEFGHJKMNPQ",
            "0000_ts_01JDQ7Z8X9Y0ABCDEFGHJKMNPQ",
            "0000_tc_01JDQ7Z8X9Y0ABCDEFGHJKMNP",
            "000_tc_01JDQ7Z8X9Y0ABCDEFGHJKMNPQ",
        ] {
            assert!(bad.parse::<FlakyPosition>().is_err(), "{bad}");
        }
    }
}
