//! Quarantine: a test case whose failures do not fail its suites for a while. Its executions
//! are still recorded as they end; a suite's slot of a failure that happened while the case
//! was quarantined is *muted*, and a suite whose only failures are muted passes. It lapses by
//! itself at `until`.

use super::time::Timestamp;
use super::validation::ValidationErrors;
use serde::{Deserialize, Serialize};

/// The furthest ahead a quarantine may end.
pub const MAX_QUARANTINE_DAYS: i64 = 30;
/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 1024;

/// A test case's quarantine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quarantine {
    pub test_case_id: String,
    /// The test case's owner.
    pub owner: String,
    pub reason: String,
    /// When it ends by itself.
    pub until: Timestamp,
    /// Who quarantined it (`user:alice`).
    pub by: String,
    /// When.
    pub at: Timestamp,
}

impl Quarantine {
    /// Whether it holds at `now` (it lapses at `until`).
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.until
    }
}

crate::domain::named_enum! {
    /// What happened to a test case, in its audit history.
    pub enum CaseAction {
        Quarantined,
        Released,
    }
}

/// One entry of a test case's audit history, never rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseHistoryEntry {
    pub action: CaseAction,
    pub at: Timestamp,
    pub actor: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Until when (a quarantine).
    #[serde(default)]
    pub until: Option<Timestamp>,
}

/// Checks a quarantine request: a reason, and an end after `now` and at most
/// [`MAX_QUARANTINE_DAYS`] ahead.
pub fn check_request(
    reason: &str,
    until: Timestamp,
    now: Timestamp,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if reason.trim().is_empty() {
        errors.add("reason", "must not be blank");
    } else if reason.chars().count() > MAX_REASON_CHARS {
        errors.add(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        );
    }
    let latest = now.plus_millis(MAX_QUARANTINE_DAYS * 24 * 3600 * 1000);
    if until <= now {
        errors.add("until", "must be in the future");
    } else if until > latest {
        errors.add(
            "until",
            format!("must be at most {MAX_QUARANTINE_DAYS} days ahead"),
        );
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantine_ends_within_thirty_days_and_lapses_at_until() {
        let now = Timestamp::parse("2026-12-01T00:00:00Z").unwrap();
        let day = 24 * 3600 * 1000;
        assert!(check_request("flaky on CI", now.plus_millis(day), now).is_ok());
        assert!(check_request("flaky on CI", now.plus_millis(30 * day), now).is_ok());
        assert!(check_request("flaky on CI", now.plus_millis(30 * day + 1), now).is_err());
        assert!(check_request("flaky on CI", now, now).is_err());
        assert!(check_request("  ", now.plus_millis(day), now).is_err());
        let q = Quarantine {
            test_case_id: "tc_1".into(),
            owner: "alice".into(),
            reason: "flaky".into(),
            until: now.plus_millis(day),
            by: "user:alice".into(),
            at: now,
        };
        assert!(q.is_active(now.plus_millis(day - 1)));
        assert!(!q.is_active(now.plus_millis(day)));
    }
}
