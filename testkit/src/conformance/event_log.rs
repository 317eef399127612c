//! The event log: one entry per transition, per step whose status changed and per change of
//! a suite child's status, numbered 1, 2, 3, ... with no gaps, agreeing with the trace.

use super::*;
use runledger::domain::log::{LogEntry, LogEvent};

impl Harness {
    /// The whole event log of an execution, once the store has taken in every change.
    pub async fn log(&self, id: &str) -> Vec<LogEntry> {
        self.store.sync_log().await.expect("sync the log");
        let mut all: Vec<LogEntry> = Vec::new();
        loop {
            let after = all.last().map_or(0, |e| e.seq);
            let page = self
                .store
                .events(id, after, 7)
                .await
                .unwrap_or_else(|e| panic!("events of {id}: {e:?}"));
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        assert_log_consistent(&all);
        all
    }
}

/// Gap-free from 1, at most one terminal entry, and it is the last.
#[track_caller]
pub fn assert_log_consistent(log: &[LogEntry]) {
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1, "seq is gap-free: {log:#?}");
    }
    if let Some(terminal) = log.iter().position(|e| e.event.is_terminal()) {
        assert_eq!(
            terminal,
            log.len() - 1,
            "the terminal entry is the last: {log:#?}"
        );
    }
}

/// The log's status entries, as (from, to).
pub fn statuses(log: &[LogEntry]) -> Vec<(Option<ExecutionStatus>, ExecutionStatus)> {
    log.iter()
        .filter_map(|e| match &e.event {
            LogEvent::Status { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// The log's step entries, as (index, status).
pub fn step_entries(log: &[LogEntry]) -> Vec<(u32, StepStatus)> {
    log.iter()
        .filter_map(|e| match &e.event {
            LogEvent::Step { index, status, .. } => Some((*index, *status)),
            _ => None,
        })
        .collect()
}

/// The log records a case's life: its transitions as its history has them, each step once
/// per status change (a redelivery or a refused report adds nothing), the counts the trace
/// has; a suite's log has its own transitions and every change of its children's slots; a
/// partitioned execution's never-reported steps, skipped when it completes, have no entries.
pub async fn event_log(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("logged", 3).await;
    let id = h.start(&case).await.id;
    let log = h.log(&id).await;
    assert_eq!(statuses(&log), vec![(None, Queued)]);
    match &log[0].event {
        LogEvent::Status { actor, reason, .. } => {
            assert_eq!(*actor, h.actor());
            assert_eq!(reason.as_deref(), Some("started"));
        }
        other => panic!("expected a status entry, got {other:?}"),
    }

    h.report(&id, &[(1, StepStatus::Failed)])
        .await
        .expect("report");
    h.report(&id, &[(1, StepStatus::Failed)])
        .await
        .expect("redelivery");
    expect_conflict(
        h.report(&id, &[(1, StepStatus::Passed)]).await,
        "step_conflict",
    );
    h.report(&id, &[(0, StepStatus::Passed), (2, StepStatus::Passed)])
        .await
        .expect("report");
    let log = h.log(&id).await;
    assert_eq!(
        statuses(&log),
        vec![(None, Queued), (Some(Queued), Running)]
    );
    assert_eq!(
        step_entries(&log),
        vec![
            (1, StepStatus::Failed),
            (0, StepStatus::Passed),
            (2, StepStatus::Passed)
        ]
    );
    match &log.last().expect("entries").event {
        LogEvent::Step { progress, name, .. } => {
            assert_eq!(*progress, h.execution(&id).await.progress);
            assert_eq!(name, "step 2");
        }
        other => panic!("expected a step entry, got {other:?}"),
    }

    h.advance_secs(1);
    let done = h.engine.complete(&h.user, &id).await.expect("complete");
    let log = h.log(&id).await;
    assert_eq!(
        statuses(&log),
        transitions(&h.history(&id).await),
        "the log's transitions are the history's"
    );
    assert_eq!(statuses(&log).last(), Some(&(Some(Running), done.status)));
    assert!(log.last().expect("entries").event.is_terminal());
    assert_eq!(
        log.last().expect("entries").at,
        h.now(),
        "stamped when it was made"
    );
    let after_end = h
        .store
        .events(&id, log.len() as u64, 10)
        .await
        .expect("read");
    assert!(after_end.is_empty(), "nothing after the terminal entry");
    let tail = h.store.events(&id, 2, 2).await.expect("read");
    assert_eq!(tail, log[2..4].to_vec(), "reads resume after any seq");

    // A suite: its own transitions and every change of a child's slot, with the counts.
    let [a, b] = h.external_cases("child ", 1).await;
    let suite = h
        .create_suite(&[&a, &b], SuiteMode::Sequential, None, false)
        .await;
    let run = h.start_suite(&suite, ExecutionConfig::default()).await;
    let children = h.children(&run.id).await;
    h.pass(&children[0].id).await;
    h.fail(&children[1].id).await;
    let log = h.log(&run.id).await;
    assert_eq!(
        statuses(&log),
        transitions(&h.history(&run.id).await),
        "the suite's transitions"
    );
    let slots: Vec<(String, ExecutionStatus, u32)> = log
        .iter()
        .filter_map(|e| match &e.event {
            LogEvent::Child {
                execution_id,
                status,
                children,
                ..
            } => Some((execution_id.clone(), *status, children.failed)),
            _ => None,
        })
        .collect();
    let (first, second) = (children[0].id.clone(), children[1].id.clone());
    assert_eq!(
        slots,
        vec![
            (first.clone(), Queued, 0),
            (first.clone(), Running, 0),
            (first, Passed, 0),
            (second.clone(), Queued, 0),
            (second.clone(), Running, 0),
            (second, Failed, 1),
        ],
        "{log:#?}"
    );
    assert_eq!(statuses(&log).last(), Some(&(Some(Running), Failed)));
    let child_log = h.log(&children[1].id).await;
    assert_eq!(
        statuses(&child_log),
        transitions(&h.history(&children[1].id).await)
    );

    // Partitioned: reported steps are logged; the unreported ones skipped at the end are not.
    let wide = h.external_case("wide", PARTITION_THRESHOLD + 10).await;
    let id = h.start(&wide).await.id;
    h.report(&id, &[(3, StepStatus::Passed)])
        .await
        .expect("report");
    let big: Vec<(u32, StepStatus)> = (10..40).map(|i| (i, StepStatus::Passed)).collect();
    h.report(&id, &big).await.expect("a report of 30 steps");
    h.report(&id, &[(59, StepStatus::Error)])
        .await
        .expect("report");
    h.engine.complete(&h.user, &id).await.expect("complete");
    let log = h.log(&id).await;
    let mut expected = vec![(3, StepStatus::Passed)];
    expected.extend(big);
    expected.push((59, StepStatus::Error));
    assert_eq!(step_entries(&log), expected);
    assert_eq!(
        statuses(&log),
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Failed)
        ]
    );
    h.check_histories().await;
}
