//! The history is append-only.

use super::*;

/// History is append-only: commands add entries after the old ones and never rewrite them;
/// refused or repeated commands add nothing.
pub async fn history_append_only(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let case = h.external_case("history", 2).await;
    let id = h.start(&case).await.id;
    let mut seen = h.history(&id).await;
    assert_eq!(transitions(&seen), vec![(None, Queued)]);

    async fn expect_appended(
        h: &Harness,
        id: &str,
        seen: &mut Vec<HistoryEntry>,
        added: &[(Option<ExecutionStatus>, ExecutionStatus)],
    ) {
        let now = h.history(id).await;
        assert_eq!(now.len(), seen.len() + added.len(), "{now:?}");
        assert_eq!(&now[..seen.len()], &seen[..], "old entries never change");
        assert_eq!(transitions(&now[seen.len()..]), added);
        assert_eq!(h.history(id).await, now, "reads are repeatable");
        assert_history_consistent(&h.execution(id).await, &now);
        *seen = now;
    }

    h.advance_secs(1);
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &id, &mut seen, &[(Some(Queued), Running)]).await;
    h.report(&id, &[(0, StepStatus::Passed)])
        .await
        .expect("redelivery");
    expect_appended(&h, &id, &mut seen, &[]).await;
    expect_conflict(
        h.report(&id, &[(0, StepStatus::Failed)]).await,
        "step_conflict",
    );
    expect_appended(&h, &id, &mut seen, &[]).await;
    h.report(&id, &[(1, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &id, &mut seen, &[]).await;
    h.advance_secs(1);
    h.engine.complete(&h.user, &id).await.expect("complete");
    expect_appended(&h, &id, &mut seen, &[(Some(Running), Passed)]).await;
    expect_invalid_transition(h.engine.complete(&h.user, &id).await, Passed, Passed);
    expect_invalid_transition(h.engine.cancel(&h.user, &id, None).await, Passed, Cancelled);
    expect_appended(&h, &id, &mut seen, &[]).await;
    let retry = h.engine.retry(&h.user, &id).await.expect("retry");
    expect_appended(&h, &id, &mut seen, &[]).await;
    let mut retry_seen = h.history(&retry.id).await;
    assert_eq!(transitions(&retry_seen), vec![(None, Queued)]);
    h.engine
        .cancel(&h.user, &retry.id, None)
        .await
        .expect("cancel");
    expect_appended(&h, &retry.id, &mut retry_seen, &[(Some(Queued), Cancelled)]).await;
    expect_appended(&h, &id, &mut seen, &[]).await;
    assert_eq!(seen.len(), 3);

    // A suite's history through a whole run, and its children's.
    let definition = h
        .create_suite(&[&case, &case], SuiteMode::Sequential, None, false)
        .await;
    let suite = h.start_suite(&definition, ExecutionConfig::default()).await;
    let mut suite_seen = h.history(&suite.id).await;
    let c: Vec<String> = suite
        .suite
        .expect("plan")
        .slots
        .into_iter()
        .map(|s| s.execution_id)
        .collect();
    h.report(&c[0], &[(0, StepStatus::Passed)])
        .await
        .expect("report");
    expect_appended(&h, &suite.id, &mut suite_seen, &[(Some(Queued), Running)]).await;
    h.engine.complete(&h.user, &c[0]).await.expect("complete");
    expect_appended(&h, &suite.id, &mut suite_seen, &[]).await;
    let mut second_seen = h.history(&c[1]).await;
    assert_eq!(
        transitions(&second_seen),
        vec![(None, Pending), (Some(Pending), Queued)]
    );
    h.pass(&c[1]).await;
    expect_appended(
        &h,
        &c[1],
        &mut second_seen,
        &[(Some(Queued), Running), (Some(Running), Passed)],
    )
    .await;
    expect_appended(&h, &suite.id, &mut suite_seen, &[(Some(Running), Passed)]).await;
    h.check_histories().await;
}
