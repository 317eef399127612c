//! What travels over HTTP: request bodies and response documents. Each type is both what the
//! handlers serialize or parse and what the OpenAPI document describes, so the two cannot drift.

use crate::domain::analytics::{Bucket, Flakiness, PeriodSummary, Rollup};
use crate::domain::catalog::RunnerKind;
use crate::domain::execution::{
    ChildCounts, Execution, ExecutionConfig, ExecutionKind, ExecutionStatus, HistoryEntry,
    Priority, Progress, StepReport, StepResult, StepStorage, SuitePlan,
};
use crate::domain::time::Timestamp;
use crate::engine::Analytics;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::LazyLock;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The longest `reason` a cancel takes.
pub const MAX_CANCEL_REASON_CHARS: usize = 1000;

/// The execution trace: `GET /executions/{id}` and the answer of every command on one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutionTrace {
    pub id: String,
    pub kind: ExecutionKind,
    pub name: String,
    pub test_case_id: Option<String>,
    pub test_suite_id: Option<String>,
    pub parent_id: Option<String>,
    pub owner: String,
    pub status: ExecutionStatus,
    pub priority: Priority,
    /// `builtin` or `external`; `null` for suites.
    pub runner: Option<RunnerKind>,
    pub attempt: u32,
    pub retry_of: Option<String>,
    pub retried_by: Option<String>,
    pub config: ExecutionConfig,
    pub tags: Vec<String>,
    pub timeout_s: u64,
    pub max_retries: u32,
    pub environment: Option<String>,
    pub created_at: Timestamp,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// When the execution times out if it is still not finished.
    pub deadline_at: Option<Timestamp>,
    pub progress: Progress,
    pub history_count: u32,
    /// A suite child's position in its suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Case executions: `inline` below 50 steps, `partitioned` from 50 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StepStorage>,
    /// Inline case executions only, and not in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepResult>>,
    /// Suite executions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<ChildCounts>,
    /// In a suite's children listing: this child's failure does not fail the suite (its case
    /// was quarantined when it ended). Left out unless true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

impl ExecutionTrace {
    /// The trace of `e`. `with_steps` is false in listings, which keep items small; inline
    /// steps are always on `GET /executions/{id}` and `/steps`.
    pub fn of(e: &Execution, with_steps: bool) -> Self {
        let progress = match (&e.kind, &e.suite) {
            (ExecutionKind::Suite, Some(plan)) => plan.progress(),
            _ => e.progress,
        };
        let steps = (with_steps && e.storage == Some(StepStorage::Inline)).then(|| e.steps.clone());
        ExecutionTrace {
            id: e.id.clone(),
            kind: e.kind,
            name: e.name.clone(),
            test_case_id: e.test_case_id.clone(),
            test_suite_id: e.test_suite_id.clone(),
            parent_id: e.parent_id.clone(),
            owner: e.owner.clone(),
            status: e.status,
            priority: e.priority,
            runner: e.runner,
            attempt: e.attempt,
            retry_of: e.retry_of.clone(),
            retried_by: e.retried_by.clone(),
            config: e.config.clone(),
            tags: e.tags.clone(),
            timeout_s: e.timeout_s,
            max_retries: e.max_retries,
            environment: e.config.environment.clone(),
            created_at: e.created_at,
            queued_at: e.queued_at,
            started_at: e.started_at,
            finished_at: e.finished_at,
            duration_ms: e.duration_ms,
            deadline_at: e.deadline_at,
            progress,
            history_count: e.history_len,
            slot: e.slot,
            storage: e.storage,
            steps,
            children: e.suite.as_ref().map(SuitePlan::counts),
            muted: false,
        }
    }

    /// Every top-level field a trace may have, in document order; `?fields=` picks from
    /// these. Read off the schema, so it is the documented list.
    pub fn field_names() -> &'static [String] {
        static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
            let schema = serde_json::to_value(<ExecutionTrace as utoipa::PartialSchema>::schema())
                .unwrap_or_default();
            schema["properties"]
                .as_object()
                .map(|properties| properties.keys().cloned().collect())
                .unwrap_or_default()
        });
        &NAMES
    }
}

/// Any subset of a trace's fields: what `GET /executions/{id}?fields=` answers. Its schema is
/// the trace's with nothing required; it is never built, only documented.
pub struct ExecutionTraceFields;

impl PartialSchema for ExecutionTraceFields {
    fn schema() -> RefOr<Schema> {
        let mut schema = ExecutionTrace::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.clear();
            object.description = Some(
                "The fields of an execution trace that `fields` asked for (any subset)".into(),
            );
        }
        schema
    }
}

impl ToSchema for ExecutionTraceFields {
    fn name() -> Cow<'static, str> {
        "ExecutionTraceFields".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ExecutionTrace::name().into(), ExecutionTrace::schema()));
        ExecutionTrace::schemas(schemas);
    }
}

/// The answer of `GET /executions/{id}`: the whole trace, or with `?fields=` just those
/// fields. Only documented.
pub struct TraceOrFields;

impl PartialSchema for TraceOrFields {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(ExecutionTrace::name()))
            .item(Ref::from_schema_name(ExecutionTraceFields::name()))
            .into()
    }
}

impl ToSchema for TraceOrFields {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            ExecutionTraceFields::name().into(),
            ExecutionTraceFields::schema(),
        ));
        ExecutionTraceFields::schemas(schemas);
    }
}

/// The `fields` parameter: a comma-separated list of the trace's field names.
pub fn trace_fields_schema() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(ExecutionTrace::field_names().iter().cloned())),
        )
        .min_items(Some(1))
        .into()
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back as `cursor` for the next page. `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The audit trail, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    pub items: Vec<HistoryEntry>,
}

/// A read of an execution's event log (the JSON long poll).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<crate::domain::log::LogEntry>,
    /// The newest `seq` read: the last item's, or the query's `after`.
    pub last_seq: u64,
    /// Nothing will follow: the log's last entry (the execution ended) is read.
    pub terminal: bool,
}

/// The answer to an import: the suite execution it recorded, and what the report held.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportAnswer {
    #[serde(flatten)]
    pub trace: ExecutionTrace,
    pub import: ImportSummary,
}

/// A report's tests counted by their last attempt; `flaky` ones passed after a failed
/// attempt (and count as passed too).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportSummary {
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub skipped: usize,
    pub flaky: usize,
    /// What the reader noticed but read past (at most 20, the last one counting the rest).
    pub warnings: Vec<String>,
}

/// The answer to a step report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepReportAnswer {
    pub id: String,
    pub status: ExecutionStatus,
    pub progress: Progress,
}

/// How an analytics trend is bucketed: by UTC day, or by ISO week (a point's `date` is
/// then the week's Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalyticsBucket {
    Day,
    Week,
}

impl AnalyticsBucket {
    /// The bucket a query's `bucket` names: `day` or `week`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(AnalyticsBucket::Day),
            "week" => Some(AnalyticsBucket::Week),
            _ => None,
        }
    }
}

impl From<AnalyticsBucket> for Bucket {
    fn from(bucket: AnalyticsBucket) -> Self {
        match bucket {
            AnalyticsBucket::Day => Bucket::Day,
            AnalyticsBucket::Week => Bucket::Week,
        }
    }
}

impl From<Bucket> for AnalyticsBucket {
    fn from(bucket: Bucket) -> Self {
        match bucket {
            Bucket::Day => AnalyticsBucket::Day,
            Bucket::Week => AnalyticsBucket::Week,
        }
    }
}

/// Duration percentiles of the executions with an outcome, in milliseconds, within 1 % of
/// the exact values; each `null` when there are none.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DurationPercentiles {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// A trend point's duration percentiles, in milliseconds (`null` without durations).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendDurations {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// One bucket of an analytics trend (only buckets with executions have one).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendPoint {
    /// The bucket's first day: the day, or the Monday of the week.
    #[schema(format = Date)]
    pub date: String,
    pub executions: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Passed over executions with an outcome (`null` without any).
    pub pass_rate: Option<f64>,
    pub duration_ms: TrendDurations,
}

/// What a test's finished executions say over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalyticsSummary {
    /// The period's first UTC day, included.
    #[schema(format = Date)]
    pub since: String,
    /// The period's last UTC day, included.
    #[schema(format = Date)]
    pub until: String,
    pub bucket: AnalyticsBucket,
    /// Executions that finished in the period, whatever their status.
    pub executions: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    /// Completed with every step skipped (an imported report's skipped test).
    pub skipped: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Passed over executions with an outcome (skipped and cancelled ones have none), to
    /// three decimals; `null` without any.
    pub pass_rate: Option<f64>,
    /// Passes on a retry after a failed attempt over executions with an outcome; `null`
    /// without any.
    pub flaky_rate: Option<f64>,
    pub duration_ms: DurationPercentiles,
    /// Flakiness over the test's latest outcomes, whenever they were (not only the period's).
    pub flaky: Flakiness,
    /// Oldest first.
    pub trend: Vec<TrendPoint>,
}

impl AnalyticsSummary {
    pub fn of(analytics: &Analytics) -> Self {
        let Analytics {
            since,
            until,
            bucket,
            summary,
            ..
        } = analytics;
        let (counts, durations) = (&summary.total.counts, &summary.total.durations);
        AnalyticsSummary {
            since: since.clone(),
            until: until.clone(),
            bucket: (*bucket).into(),
            executions: counts.executions,
            passed: counts.passed,
            failed: counts.failed,
            errored: counts.errored,
            skipped: counts.skipped,
            cancelled: counts.cancelled,
            timed_out: counts.timed_out,
            pass_rate: counts.pass_rate(),
            flaky_rate: counts.flaky_rate(),
            duration_ms: DurationPercentiles {
                p50: durations.quantile(0.50),
                p90: durations.quantile(0.90),
                p95: durations.quantile(0.95),
                p99: durations.quantile(0.99),
                max: durations.max(),
            },
            flaky: summary.flaky.clone(),
            trend: summary.trend.iter().map(TrendPoint::of).collect(),
        }
    }
}

impl TrendPoint {
    fn of((date, period): &(String, PeriodSummary)) -> Self {
        let counts = &period.counts;
        TrendPoint {
            date: date.clone(),
            executions: counts.executions,
            passed: counts.passed,
            failed: counts.failed,
            errored: counts.errored,
            skipped: counts.skipped,
            cancelled: counts.cancelled,
            timed_out: counts.timed_out,
            pass_rate: counts.pass_rate(),
            duration_ms: TrendDurations {
                p50: period.durations.quantile(0.50),
                p95: period.durations.quantile(0.95),
            },
        }
    }
}

/// `GET /analytics/test-cases/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestCaseAnalytics {
    pub test_case_id: String,
    #[serde(flatten)]
    pub analytics: AnalyticsSummary,
}

/// `GET /analytics/test-suites/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestSuiteAnalytics {
    pub test_suite_id: String,
    #[serde(flatten)]
    pub analytics: AnalyticsSummary,
}

/// A flaky test case, as its latest finish left it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlakyTestCase {
    pub test_case_id: String,
    /// Whose executions its analytics count.
    pub owner: String,
    pub flaky: Flakiness,
    /// The UTC day of its latest finish.
    #[schema(format = Date)]
    pub last_day: String,
    /// Its quarantine, while one is in force (`null` otherwise).
    pub quarantine: Option<crate::domain::quarantine::Quarantine>,
}

impl FlakyTestCase {
    pub fn of(rollup: &Rollup, quarantine: Option<crate::domain::quarantine::Quarantine>) -> Self {
        FlakyTestCase {
            test_case_id: rollup.test_id.clone(),
            owner: rollup.owner.clone(),
            flaky: rollup.flakiness(),
            last_day: rollup.day.clone(),
            quarantine,
        }
    }
}

// The schema states the domain's limit.
const _: () = assert!(crate::domain::quarantine::MAX_REASON_CHARS == 1024);

/// `PUT /test-cases/{id}/quarantine`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineInput {
    /// Why (1 to 1,024 characters, not blank).
    #[schema(min_length = 1, max_length = 1024)]
    pub reason: String,
    /// When it ends by itself: after now, at most 30 days ahead.
    pub until: Timestamp,
}

/// A test case's audit history, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseHistory {
    pub items: Vec<crate::domain::quarantine::CaseHistoryEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCaseBody {
    pub test_case_id: String,
    #[serde(default)]
    pub config: Option<ExecutionConfig>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSuiteBody {
    pub test_suite_id: String,
    #[serde(default)]
    pub config: Option<ExecutionConfig>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsBody {
    #[schema(schema_with = crate::domain::schema::reported_steps)]
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    #[schema(schema_with = cancel_reason_schema)]
    pub reason: Option<String>,
}

fn cancel_reason_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(
            [Type::String, Type::Null]
                .into_iter()
                .collect::<utoipa::openapi::schema::SchemaType>(),
        )
        .max_length(Some(MAX_CANCEL_REASON_CHARS))
        .into()
}

/// Routes that take no body accept an empty one, or `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::execution::StepResult;

    #[test]
    fn the_trace_serializes_only_documented_fields() {
        let fields = ExecutionTrace::field_names();
        assert_eq!(fields.len(), 31, "{fields:?}");
        let mut case = crate::domain::execution::tests_support::sample(ExecutionStatus::Running);
        case.steps = vec![StepResult::pending(0, "a")];
        case.storage = Some(StepStorage::Inline);
        let mut suite = case.clone();
        suite.kind = ExecutionKind::Suite;
        suite.storage = None;
        suite.slot = Some(1);
        suite.suite = Some(SuitePlan {
            mode: crate::domain::catalog::SuiteMode::Parallel,
            concurrency: 1,
            fail_fast: false,
            slots: vec![],
        });
        for (execution, optional) in [(&case, "steps"), (&suite, "children")] {
            let view = serde_json::to_value(ExecutionTrace::of(execution, true)).unwrap();
            let keys = view.as_object().unwrap();
            for key in keys.keys() {
                assert!(fields.contains(key), "field {key} is not documented");
            }
            assert!(keys.contains_key(optional), "{optional}");
        }
        let listed = serde_json::to_value(ExecutionTrace::of(&case, false)).unwrap();
        assert!(listed.get("steps").is_none(), "listings leave steps out");
        assert!(
            listed.get("muted").is_none(),
            "muted is left out unless true"
        );
        let mut muted = ExecutionTrace::of(&case, false);
        muted.muted = true;
        assert_eq!(serde_json::to_value(muted).unwrap()["muted"], true);
    }
}
