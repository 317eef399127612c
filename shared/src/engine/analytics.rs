//! Analytics use cases: what a test case's or test suite's rollups say over a period, and
//! the caller's flaky test cases. The rollups themselves are written by the unit of work,
//! with the changes that finish executions; these only read them.

use super::{Caller, Engine, EngineError};
use crate::domain::analytics::{Bucket, Day, Rollup, TestAnalytics, summarize};
use crate::domain::catalog::CatalogEntry;
use crate::domain::ids::is_well_formed;
use crate::domain::quarantine::Quarantine;
use crate::ports::{CatalogHeader, Page};
use chrono::{Datelike, Days, NaiveDate};

/// The period a query that names none covers: the last 30 days, today included.
pub const DEFAULT_PERIOD_DAYS: u64 = 30;
/// The longest period one query may cover, both ends included.
pub const MAX_PERIOD_DAYS: u64 = 366;

/// What an analytics read asks for: its first and last UTC day (both included; absent: the
/// last [`DEFAULT_PERIOD_DAYS`] up to today) and how its trend is bucketed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyticsQuery {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub bucket: Bucket,
}

/// A test's analytics over the period asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    pub test_id: String,
    pub since: Day,
    pub until: Day,
    pub bucket: Bucket,
    pub summary: TestAnalytics,
}

/// The UTC day `text` names: a `YYYY-MM-DD` date, or the day an RFC 3339 timestamp falls on
/// (in UTC); `None` for anything else, and for days outside the years 0001..=9999.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let day = match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) if text.len() == 10 => day,
        Ok(_) => return None,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .with_timezone(&chrono::Utc)
            .date_naive(),
    };
    (1..=9999).contains(&day.year()).then_some(day)
}

fn format_day(day: NaiveDate) -> Day {
    day.format("%Y-%m-%d").to_string()
}

impl Engine {
    /// What the rollups of test case or suite `id` say over the period `query` asks for:
    /// totals, a trend point per bucket with executions, and its flakiness as of its latest
    /// finish. Visible to whoever may see its catalog entry, or, once the entry is deleted,
    /// the executions its rollups count; a test with neither is `NotFound`, as is one the
    /// caller may not see.
    pub async fn test_analytics<T: CatalogEntry>(
        &self,
        caller: &Caller,
        id: &str,
        query: AnalyticsQuery,
    ) -> Result<Analytics, EngineError> {
        let today = chrono::DateTime::from_timestamp_millis(self.clock.now().millis())
            .unwrap_or_default()
            .date_naive();
        let (since, until) = period(today, query)?;
        let not_found = || EngineError::not_found(T::KIND.name(), id);
        if !is_well_formed(id, T::KIND.id_prefix()) {
            return Err(not_found());
        }
        let (document, current) = tokio::try_join!(
            self.store.get_catalog(T::KIND, id),
            self.store.current_rollup(id),
        )?;
        let visible = match &document {
            Some(document) => caller.can_see(&CatalogHeader::read(document.as_bytes())?.owner),
            None => current.as_ref().is_some_and(|r| caller.can_see(&r.owner)),
        };
        if !visible {
            return Err(not_found());
        }
        let records = match &current {
            Some(_) => self.store.rollups(id, &since, &until).await?,
            // Never finished an execution: there is nothing to read.
            None => Vec::new(),
        };
        Ok(Analytics {
            test_id: id.to_owned(),
            summary: summarize(&records, current.as_ref(), query.bucket),
            since,
            until,
            bucket: query.bucket,
        })
    }

    /// The caller's flaky test cases (everyone's for an administrator), highest flip rate
    /// first, from after the flaky rank `after` (see [`Rollup::flaky_rank`]).
    ///
    /// Each with its quarantine, while one is in force.
    pub async fn flaky_tests(
        &self,
        caller: &Caller,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<(Rollup, Option<Quarantine>)>, EngineError> {
        let scope = caller.scope();
        let page = self.store.flaky(scope.as_deref(), limit, after).await?;
        let now = self.clock.now();
        let quarantines = futures_util::future::try_join_all(
            page.items
                .iter()
                .map(|r| self.store.get_quarantine(&r.test_id)),
        )
        .await?;
        let items = page
            .items
            .into_iter()
            .zip(quarantines)
            .map(|(rollup, q)| (rollup, q.filter(|q| q.is_active(now))))
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }
}

/// The first and last day of the period `query` asks for on `today`, checked: in order, and at
/// most [`MAX_PERIOD_DAYS`] long.
fn period(today: NaiveDate, query: AnalyticsQuery) -> Result<(Day, Day), EngineError> {
    let until = query.until.unwrap_or(today);
    let since = query.since.unwrap_or_else(|| {
        until
            .checked_sub_days(Days::new(DEFAULT_PERIOD_DAYS - 1))
            .unwrap_or(until)
    });
    if since > until {
        let until = format_day(until);
        return Err(EngineError::invalid(
            "since",
            format!("must not be after until ({until})"),
        ));
    }
    let days = (until - since).num_days() + 1;
    if days > MAX_PERIOD_DAYS as i64 {
        return Err(EngineError::invalid(
            "since",
            format!(
                "the period is {days} days; at most {MAX_PERIOD_DAYS} (since..until, both \
                 included)"
            ),
        ));
    }
    Ok((format_day(since), format_day(until)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn days_are_dates_or_the_utc_day_of_a_timestamp() {
        assert_eq!(parse_day("2026-11-26"), Some(day("2026-11-26")));
        assert_eq!(
            parse_day("2026-11-26T23:30:00-02:00"),
            Some(day("2026-11-27"))
        );
        assert_eq!(parse_day("2026-11-26T00:00:00Z"), Some(day("2026-11-26")));
        for bad in [
            "",
            "yesterday",
            "2026-02-30",
            "2026-1-5",
            "+12026-01-01",
            "0000-12-31",
            "2026-11-26T25:00:00Z",
            "2026-11-26 10:00",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_period_defaults_to_the_last_thirty_days_and_is_checked() {
        let today = day("2026-12-01");
        let query = |since: Option<&str>, until: Option<&str>| AnalyticsQuery {
            since: since.map(day),
            until: until.map(day),
            bucket: Bucket::Day,
        };
        let days = |since: &str, until: &str| Ok((since.to_owned(), until.to_owned()));
        let ok = |q| period(today, q).map_err(|e| e.to_string());
        assert_eq!(ok(query(None, None)), days("2026-11-02", "2026-12-01"));
        assert_eq!(
            ok(query(None, Some("2026-03-01"))),
            days("2026-01-31", "2026-03-01")
        );
        assert_eq!(
            ok(query(Some("2026-11-30"), None)),
            days("2026-11-30", "2026-12-01")
        );
        assert_eq!(
            ok(query(Some("2025-12-01"), None)),
            days("2025-12-01", "2026-12-01"),
            "366 days"
        );
        for (since, until) in [
            (Some("2025-11-30"), None),
            (Some("2026-12-02"), None),
            (Some("2026-11-02"), Some("2026-11-01")),
        ] {
            let refused = period(today, query(since, until)).unwrap_err();
            match refused {
                EngineError::Validation(errors) => assert_eq!(errors.errors[0].field, "since"),
                other => panic!("{since:?}..{until:?}: {other:?}"),
            }
        }
    }
}
