//! Analytics: what every finished execution adds to its test's rollups, and what the
//! rollups say about the test (counts, rates, duration percentiles, flakiness).
//!
//! A test (case or suite) has one rollup record per day it finished executions on. The
//! newest is its *current* record: the unit of work reads it, adds the execution that just
//! finished and writes it in the same atomic change as the finishing transition, so an
//! execution counts exactly once. On the first finish of a new day the current record is
//! kept as its day's record and a fresh one starts, carrying the outcome window on.

use super::execution::{ExecutionKind, ExecutionStatus};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How many of a test's latest outcomes flakiness looks at.
pub const WINDOW: usize = 20;
/// The flip rate from which a test case is flaky...
pub const FLAKY_FLIP_RATE: f64 = 0.2;
/// ...over at least this many outcomes.
pub const FLAKY_MIN_OUTCOMES: usize = 5;
/// The sketch's relative accuracy: half the promised 1 %, so that rounding the estimate to
/// whole milliseconds still stays within 1 % of the exact value.
pub const RELATIVE_ACCURACY: f64 = 0.005;

/// A UTC calendar day, `YYYY-MM-DD` (sorts as it reads).
pub type Day = String;

/// The UTC day `at` falls on.
pub fn day_of(at: Timestamp) -> Day {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at.millis())
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The Monday that starts the ISO week `day` is in (`None` for a malformed day).
pub fn week_of(day: &str) -> Option<Day> {
    use chrono::Datelike;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let monday = date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()));
    Some(monday.format("%Y-%m-%d").to_string())
}

/// A mergeable duration histogram with log-sized buckets (DDSketch's scheme): a value `x`
/// goes to bucket `ceil(log_γ x)` with `γ = (1 + α) / (1 − α)`, and a bucket's estimate,
/// `2γ^k / (γ + 1)`, is within `α` of every value in it. Kept dense from its lowest bucket,
/// which for durations that vary by a factor of ten is a couple of hundred small counts.
///
/// A crate's sketch would do the arithmetic, but this one is stored in every rollup record of
/// both stores: its stored form has to be ours, stable and compact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationSketch {
    /// Durations of 0 ms (the log scale has no bucket for them).
    #[serde(default, skip_serializing_if = "is_zero")]
    zero: u64,
    /// The index of `bins[0]`.
    #[serde(default)]
    offset: i32,
    #[serde(default)]
    bins: Vec<u64>,
    #[serde(default)]
    max: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

impl DurationSketch {
    pub fn add(&mut self, duration_ms: u64) {
        self.max = self.max.max(duration_ms);
        if duration_ms == 0 {
            self.zero += 1;
            return;
        }
        let index = ((duration_ms as f64).ln() / gamma().ln()).ceil() as i32;
        self.add_to_bin(index, 1);
    }

    fn add_to_bin(&mut self, index: i32, count: u64) {
        if self.bins.is_empty() {
            self.offset = index;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let at = (index - self.offset) as usize;
        if at >= self.bins.len() {
            self.bins.resize(at + 1, 0);
        }
        self.bins[at] += count;
    }

    pub fn merge(&mut self, other: &DurationSketch) {
        self.zero += other.zero;
        self.max = self.max.max(other.max);
        for (i, count) in other.bins.iter().enumerate() {
            if *count > 0 {
                self.add_to_bin(other.offset + i as i32, *count);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.zero + self.bins.iter().sum::<u64>()
    }

    pub fn max(&self) -> Option<u64> {
        (self.count() > 0).then_some(self.max)
    }

    /// The estimate of the value of rank `⌊q·(n−1)⌋` in sorted order (`q` in 0..=1), in whole
    /// milliseconds, within 1 % of it; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0);
        }
        if rank == count - 1 {
            return Some(self.max);
        }
        let mut seen = self.zero;
        for (i, bin) in self.bins.iter().enumerate() {
            seen += bin;
            if seen > rank {
                let index = self.offset + i as i32;
                let g = gamma();
                let estimate = 2.0 * g.powi(index) / (g + 1.0);
                // Never above the largest value seen (the top bucket's estimate can be).
                return Some((estimate.round() as u64).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Counts of finished executions by final status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub executions: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub timed_out: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Executions that passed on a retry after a failed attempt.
    #[serde(default)]
    pub retry_passes: u64,
}

impl OutcomeCounts {
    pub fn record(&mut self, finish: &Finish) {
        self.executions += 1;
        match finish.status {
            _ if finish.skipped => self.skipped += 1,
            ExecutionStatus::Passed => self.passed += 1,
            ExecutionStatus::Failed => self.failed += 1,
            ExecutionStatus::Error => self.errored += 1,
            ExecutionStatus::TimedOut => self.timed_out += 1,
            ExecutionStatus::Cancelled => self.cancelled += 1,
            ExecutionStatus::Skipped => self.skipped += 1,
            // Not an outcome: a finish is terminal.
            ExecutionStatus::Pending | ExecutionStatus::Queued | ExecutionStatus::Running => {}
        }
        if finish.retry_pass && !finish.skipped {
            self.retry_passes += 1;
        }
    }

    pub fn merge(&mut self, other: &OutcomeCounts) {
        self.executions += other.executions;
        self.passed += other.passed;
        self.failed += other.failed;
        self.errored += other.errored;
        self.timed_out += other.timed_out;
        self.skipped += other.skipped;
        self.cancelled += other.cancelled;
        self.retry_passes += other.retry_passes;
    }

    /// Executions with an outcome: skipped and cancelled ones have none.
    pub fn with_outcome(&self) -> u64 {
        self.passed + self.failed + self.errored + self.timed_out
    }

    /// Passed over executions with an outcome (`None` without any).
    pub fn pass_rate(&self) -> Option<f64> {
        rate(self.passed, self.with_outcome())
    }

    /// Passes on a retry over executions with an outcome.
    pub fn flaky_rate(&self) -> Option<f64> {
        rate(self.retry_passes, self.with_outcome())
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round3(part as f64 / whole as f64))
}

/// Rates are given to three decimals.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One execution's outcome, as flakiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    /// Passed on a retry after a failed attempt.
    RetryPass,
    /// Failed, errored or timed out.
    Fail,
}

impl Mark {
    /// The mark of a finish; skipped and cancelled executions have none.
    pub fn of(finish: &Finish) -> Option<Mark> {
        match finish.status {
            _ if finish.skipped => None,
            ExecutionStatus::Passed if finish.retry_pass => Some(Mark::RetryPass),
            ExecutionStatus::Passed => Some(Mark::Pass),
            s if s.is_failure() => Some(Mark::Fail),
            _ => None,
        }
    }

    fn letter(self) -> char {
        match self {
            Mark::Pass => 'P',
            Mark::RetryPass => 'R',
            Mark::Fail => 'F',
        }
    }

    fn passed(self) -> bool {
        self != Mark::Fail
    }
}

/// A test's latest outcomes, oldest first, at most [`WINDOW`]: `P`, `F`, or `R` for a pass on
/// a retry after a failed attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OutcomeWindow(String);

impl OutcomeWindow {
    pub fn push(&mut self, mark: Mark) {
        self.0.push(mark.letter());
        while self.0.len() > WINDOW {
            self.0.remove(0);
        }
    }

    fn marks(&self) -> impl Iterator<Item = Mark> + '_ {
        self.0.chars().map(|c| match c {
            'P' => Mark::Pass,
            'R' => Mark::RetryPass,
            _ => Mark::Fail,
        })
    }

    /// Changes between neighbours over (outcomes − 1); 0 with fewer than two.
    pub fn flip_rate(&self) -> f64 {
        let passed: Vec<bool> = self.marks().map(Mark::passed).collect();
        if passed.len() < 2 {
            return 0.0;
        }
        let flips = passed.windows(2).filter(|w| w[0] != w[1]).count();
        round3(flips as f64 / (passed.len() - 1) as f64)
    }

    pub fn flakiness(&self) -> Flakiness {
        let flip_rate = self.flip_rate();
        let retry_passes = self.marks().filter(|m| *m == Mark::RetryPass).count() as u32;
        let outcomes = self.0.len();
        Flakiness {
            is_flaky: (outcomes >= FLAKY_MIN_OUTCOMES && flip_rate >= FLAKY_FLIP_RATE)
                || retry_passes > 0,
            flip_rate,
            window: WINDOW as u32,
            retry_passes,
            last_outcomes: self.0.replace('R', "P"),
        }
    }
}

/// The contract's `flaky` object.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Flakiness {
    pub is_flaky: bool,
    /// Changes between neighbouring outcomes over (outcomes − 1).
    pub flip_rate: f64,
    /// How many latest outcomes are looked at.
    pub window: u32,
    /// Passes on a retry after a failed attempt, within the window.
    pub retry_passes: u32,
    /// `P` passed, `F` failed, errored or timed out; oldest first.
    pub last_outcomes: String,
}

/// A finished execution, as its test's rollup records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    pub status: ExecutionStatus,
    pub duration_ms: Option<u64>,
    /// Passed on a retry after a failed attempt.
    pub retry_pass: bool,
    /// Ran nothing: it completed with every step skipped (a skipped test of a report).
    pub skipped: bool,
}

/// One test's rollup for one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// The test case or test suite.
    pub test_id: String,
    pub kind: ExecutionKind,
    /// The owner of the executions it counts, who may read it.
    pub owner: String,
    pub day: Day,
    pub counts: OutcomeCounts,
    #[serde(default)]
    pub durations: DurationSketch,
    /// The test's latest outcomes as of this record's last change, across days.
    #[serde(default)]
    pub window: OutcomeWindow,
}

impl Rollup {
    pub fn new(test_id: &str, kind: ExecutionKind, owner: &str, day: Day) -> Self {
        Rollup {
            test_id: test_id.to_owned(),
            kind,
            owner: owner.to_owned(),
            day,
            counts: OutcomeCounts::default(),
            durations: DurationSketch::default(),
            window: OutcomeWindow::default(),
        }
    }

    /// The record that follows this one on a later `day`: fresh counts, the same window.
    pub fn next_day(&self, day: Day) -> Self {
        Rollup {
            window: self.window.clone(),
            ..Rollup::new(&self.test_id, self.kind, &self.owner, day)
        }
    }

    pub fn record(&mut self, finish: &Finish) {
        self.counts.record(finish);
        if let Some(mark) = Mark::of(finish) {
            self.window.push(mark);
            // Durations of executions with an outcome: a skipped or cancelled one says
            // nothing about how long the test takes.
            if let Some(ms) = finish.duration_ms {
                self.durations.add(ms);
            }
        }
    }

    pub fn flakiness(&self) -> Flakiness {
        self.window.flakiness()
    }

    /// Where a flaky test case's current record sorts in the flaky listing: highest flip
    /// rate first, then by id. `None` for one that is not flaky, and for suites (the listing
    /// is of test cases).
    pub fn flaky_rank(&self) -> Option<String> {
        let flaky = self.flakiness();
        if self.kind != ExecutionKind::Case || !flaky.is_flaky {
            return None;
        }
        let inverse = 1000 - (flaky.flip_rate * 1000.0).round().clamp(0.0, 1000.0) as u32;
        Some(format!("{inverse:04}#{}", self.test_id))
    }
}

/// What one finished execution adds to its test's rollups: enough to add it later, on a
/// store that applies it after the finishing write (see the DynamoDB store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub test_id: String,
    pub kind: ExecutionKind,
    pub owner: String,
    /// The day it finished on (the change's day).
    pub day: Day,
    pub status: ExecutionStatus,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub retry_pass: bool,
    #[serde(default)]
    pub skipped: bool,
}

impl Contribution {
    pub fn finish(&self) -> Finish {
        Finish {
            status: self.status,
            duration_ms: self.duration_ms,
            retry_pass: self.retry_pass,
            skipped: self.skipped,
        }
    }
}

/// A test's rollups after contributions: its current record, and the record it replaced
/// when a contribution started a new day (kept as that day's).
#[derive(Debug, Clone, PartialEq)]
pub struct Advanced {
    pub current: Rollup,
    pub archived: Option<Rollup>,
}

impl Advanced {
    /// From the test's current record as stored (`None`: it has none).
    pub fn from(current: Option<Rollup>) -> Option<Self> {
        current.map(|current| Advanced {
            current,
            archived: None,
        })
    }

    /// Adds `c` to `state` (the test's records so far), starting the day's record first when
    /// the current one is of an earlier day.
    pub fn add(state: Option<Advanced>, c: &Contribution) -> Advanced {
        let mut state = match state {
            None => Advanced {
                current: Rollup::new(&c.test_id, c.kind, &c.owner, c.day.clone()),
                archived: None,
            },
            Some(state) if state.current.day < c.day => Advanced {
                current: state.current.next_day(c.day.clone()),
                // A second new day in one go keeps the first one's record, not the older.
                archived: Some(state.current),
            },
            Some(state) => state,
        };
        state.current.record(&c.finish());
        state
    }
}

/// How the trend is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bucket {
    #[default]
    Day,
    Week,
}

/// Counts and durations over a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeriodSummary {
    pub counts: OutcomeCounts,
    pub durations: DurationSketch,
}

impl PeriodSummary {
    fn add(&mut self, record: &Rollup) {
        self.counts.merge(&record.counts);
        self.durations.merge(&record.durations);
    }
}

/// What a test's rollups say over a period: totals, a trend point per bucket (only those
/// with executions, oldest first), and its flakiness as of its latest record.
#[derive(Debug, Clone, PartialEq)]
pub struct TestAnalytics {
    pub total: PeriodSummary,
    pub trend: Vec<(Day, PeriodSummary)>,
    pub flaky: Flakiness,
}

/// Sums `records` (a test's day records within the period, any order) and takes flakiness
/// from `latest` (its current record, whatever its day).
pub fn summarize(records: &[Rollup], latest: Option<&Rollup>, bucket: Bucket) -> TestAnalytics {
    let mut sorted: Vec<&Rollup> = records.iter().collect();
    sorted.sort_by(|a, b| a.day.cmp(&b.day));
    let mut total = PeriodSummary::default();
    let mut trend: Vec<(Day, PeriodSummary)> = Vec::new();
    for record in sorted {
        total.add(record);
        let key = match bucket {
            Bucket::Day => record.day.clone(),
            Bucket::Week => week_of(&record.day).unwrap_or_else(|| record.day.clone()),
        };
        match trend.last_mut() {
            Some((day, summary)) if *day == key => summary.add(record),
            _ => {
                let mut summary = PeriodSummary::default();
                summary.add(record);
                trend.push((key, summary));
            }
        }
    }
    TestAnalytics {
        total,
        trend,
        flaky: latest.map_or_else(|| OutcomeWindow::default().flakiness(), Rollup::flakiness),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window(outcomes: &str) -> OutcomeWindow {
        let mut w = OutcomeWindow::default();
        for c in outcomes.chars() {
            w.push(match c {
                'P' => Mark::Pass,
                'R' => Mark::RetryPass,
                _ => Mark::Fail,
            });
        }
        w
    }

    #[test]
    fn the_contracts_flakiness_examples() {
        let cases = [
            ("PPPPP", 0.0, false),
            ("PFPFP", 1.0, true),
            ("PPPPF", 0.25, true),
            ("PPPPFFFF", 0.143, false),
        ];
        for (outcomes, flip_rate, is_flaky) in cases {
            let f = window(outcomes).flakiness();
            assert_eq!(f.flip_rate, flip_rate, "{outcomes}");
            assert_eq!(f.is_flaky, is_flaky, "{outcomes}");
            assert_eq!(f.last_outcomes, outcomes);
            assert_eq!(f.window, 20);
        }
    }

    #[test]
    fn few_outcomes_are_not_flaky_by_flips_but_a_retry_pass_is() {
        assert!(!window("PF").flakiness().is_flaky);
        let f = window("PR").flakiness();
        assert!(f.is_flaky);
        assert_eq!(f.retry_passes, 1);
        assert_eq!(f.last_outcomes, "PP");
    }

    #[test]
    fn the_window_keeps_the_latest_twenty() {
        let w = window(&format!("{}{}", "F".repeat(5), "P".repeat(20)));
        assert_eq!(w.flakiness().last_outcomes, "P".repeat(20));
        assert_eq!(w.flip_rate(), 0.0);
    }

    #[test]
    fn skipped_and_cancelled_count_but_have_no_outcome() {
        let mut r = Rollup::new("tc_1", ExecutionKind::Case, "alice", "2026-12-01".into());
        for (status, skipped) in [
            (ExecutionStatus::Passed, true),
            (ExecutionStatus::Cancelled, false),
        ] {
            r.record(&Finish {
                status,
                duration_ms: Some(5),
                retry_pass: false,
                skipped,
            });
        }
        r.record(&Finish {
            status: ExecutionStatus::TimedOut,
            duration_ms: Some(7),
            retry_pass: false,
            skipped: false,
        });
        assert_eq!((r.counts.skipped, r.counts.cancelled), (1, 1));
        assert_eq!(r.counts.executions, 3);
        assert_eq!(r.counts.with_outcome(), 1);
        assert_eq!(r.counts.pass_rate(), Some(0.0));
        assert_eq!(r.window, window("F"));
        assert_eq!(r.durations.count(), 1);
    }

    #[test]
    fn weeks_start_on_monday() {
        assert_eq!(week_of("2026-12-02").as_deref(), Some("2026-11-30"));
        assert_eq!(week_of("2026-11-30").as_deref(), Some("2026-11-30"));
        assert_eq!(week_of("2026-11-29").as_deref(), Some("2026-11-23"));
        assert_eq!(week_of("bad"), None);
    }

    #[test]
    fn summaries_bucket_by_week_and_take_flakiness_from_the_latest() {
        let mut a = Rollup::new("tc_1", ExecutionKind::Case, "o", "2026-11-30".into());
        let pass = Finish {
            status: ExecutionStatus::Passed,
            duration_ms: Some(10),
            retry_pass: false,
            skipped: false,
        };
        a.record(&pass);
        let mut b = a.next_day("2026-12-01".into());
        b.record(&Finish {
            status: ExecutionStatus::Failed,
            ..pass
        });
        let mut c = b.next_day("2026-12-07".into());
        c.record(&pass);
        let s = summarize(&[c.clone(), a, b], Some(&c), Bucket::Week);
        assert_eq!(s.total.counts.executions, 3);
        let weeks: Vec<(&str, u64)> = s
            .trend
            .iter()
            .map(|(d, p)| (d.as_str(), p.counts.executions))
            .collect();
        assert_eq!(weeks, [("2026-11-30", 2), ("2026-12-07", 1)]);
        assert_eq!(s.flaky.last_outcomes, "PFP");
    }

    #[test]
    fn sketch_edges() {
        let mut s = DurationSketch::default();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.max(), None);
        s.add(0);
        s.add(0);
        s.add(1_000);
        assert_eq!(s.quantile(0.0), Some(0));
        assert_eq!(s.quantile(1.0), Some(1_000));
        assert_eq!(s.max(), Some(1_000));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<DurationSketch>(&json).unwrap(), s);
    }

    fn exact(sorted: &[u64], q: f64) -> u64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Over 10,000 durations, every percentile is within 1 % of the exact one, for a
        /// sketch filled in one go and for one merged from two halves.
        #[test]
        fn percentiles_are_within_one_percent(
            durations in proptest::collection::vec(
                prop_oneof![0u64..100, 0u64..10_000, 1_000u64..3_600_000],
                10_000,
            ),
        ) {
            let mut whole = DurationSketch::default();
            let (mut left, mut right) = (DurationSketch::default(), DurationSketch::default());
            for (i, d) in durations.iter().enumerate() {
                whole.add(*d);
                if i % 2 == 0 { left.add(*d) } else { right.add(*d) }
            }
            left.merge(&right);
            prop_assert_eq!(&left, &whole);
            let mut sorted = durations.clone();
            sorted.sort_unstable();
            for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let want = exact(&sorted, q) as f64;
                let got = whole.quantile(q).unwrap() as f64;
                prop_assert!(
                    (got - want).abs() <= want * 0.01,
                    "q {}: got {}, exact {}", q, got, want
                );
            }
            prop_assert_eq!(whole.max(), sorted.last().copied());
        }
    }
}
