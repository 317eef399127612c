//! Retrying a whole suite: a new suite execution with fresh children, lineage kept.

use runledger::domain::catalog::{TestCase, TestCaseInput, TestSuite, TestSuiteInput};
use runledger::domain::execution::{ExecutionStatus, StepStatus};
use runledger::engine::{Caller, EngineError, StartRequest};
use runledger_testkit::builders::report;
use runledger_testkit::stores::{engine_over, in_memory};
use serde_json::json;

#[tokio::test]
async fn a_finished_suite_is_retried_with_fresh_children() {
    let engine = engine_over(in_memory());
    let alice = Caller::user("alice");
    let mut case_ids = Vec::new();
    for name in ["a", "b"] {
        let input: TestCaseInput = serde_json::from_value(json!({
            "name": name, "steps": [{"name": "s", "action": "external"}]
        }))
        .unwrap();
        case_ids.push(
            engine
                .create_entry::<TestCase>(&alice, input)
                .await
                .unwrap()
                .id,
        );
    }
    let suite_input: TestSuiteInput =
        serde_json::from_value(json!({"name": "s", "test_case_ids": case_ids})).unwrap();
    let suite = engine
        .create_entry::<TestSuite>(&alice, suite_input)
        .await
        .unwrap();
    let first = engine
        .start_suite(&alice, &suite.id, StartRequest::default())
        .await
        .unwrap()
        .execution;

    let retry_too_early = engine.retry(&alice, &first.id).await;
    assert!(matches!(
        retry_too_early,
        Err(EngineError::InvalidTransition(_))
    ));

    let children = engine
        .list_children(&alice, &first.id, None, 10)
        .await
        .unwrap()
        .items;
    for (child, status) in children
        .iter()
        .zip([StepStatus::Passed, StepStatus::Failed])
    {
        engine
            .report_steps(&alice, &child.id, vec![report(0, status)])
            .await
            .unwrap();
        engine.complete(&alice, &child.id).await.unwrap();
    }
    let finished = engine.get_execution(&alice, &first.id).await.unwrap();
    assert_eq!(finished.status, ExecutionStatus::Failed);

    let retry = engine.retry(&alice, &first.id).await.unwrap();
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.retry_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(retry.status, ExecutionStatus::Queued);
    assert!(retry.storage.is_none(), "a suite has no steps of its own");
    let fresh = engine
        .list_children(&alice, &retry.id, None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(fresh.len(), 2);
    for (new, old) in fresh.iter().zip(&children) {
        assert_ne!(new.id, old.id);
        assert_eq!(new.test_case_id, old.test_case_id);
        assert_eq!(new.parent_id.as_deref(), Some(retry.id.as_str()));
        assert_eq!(new.status, ExecutionStatus::Queued);
        assert_eq!(new.progress.completed, 0);
    }
    let original = engine.get_execution(&alice, &first.id).await.unwrap();
    assert_eq!(original.retried_by.as_deref(), Some(retry.id.as_str()));
    assert_eq!(
        original.status,
        ExecutionStatus::Failed,
        "the original is never rewritten"
    );
    let old_children = engine
        .list_children(&alice, &first.id, None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(
        old_children.len(),
        2,
        "the retry's children belong to the retry only"
    );
}
