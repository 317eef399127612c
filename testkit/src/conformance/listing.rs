//! Listing executions: order, filters, cursor paging and owner isolation.

use super::*;

/// list_executions: newest first, every filter, cursor paging and owner isolation.
pub async fn list_executions(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let bob = fresh_user();
    let admin = Caller::admin("conformance-admin");
    let marker = fresh_tag();
    let x = h
        .create_case(&h.user, "list x", &[&marker, "x"], external_steps(1))
        .await;
    let y = h
        .create_case(&h.user, "list y", &[&marker, "y"], external_steps(1))
        .await;
    let definition = TestSuiteInput {
        name: "list suite".into(),
        description: None,
        test_case_ids: vec![x.id.clone()],
        mode: SuiteMode::Parallel,
        max_parallel: None,
        fail_fast: false,
        tags: vec!["nightly".into()],
    };
    let definition = h
        .engine
        .create_entry::<TestSuite>(&h.user, definition)
        .await
        .expect("suite");

    let e1 = h.start(&x).await.id;
    h.advance_secs(1);
    let t2 = h.now();
    let e2 = h.start(&y).await.id;
    h.advance_secs(1);
    let t3 = h.now();
    let e3 = h
        .start_with(
            &x,
            ExecutionConfig {
                tags: vec!["ci".into()],
                ..ExecutionConfig::default()
            },
        )
        .await
        .id;
    h.advance_secs(1);
    let t4 = h.now();
    let s4 = h
        .start_suite(
            &definition,
            ExecutionConfig {
                tags: vec![marker.clone()],
                ..ExecutionConfig::default()
            },
        )
        .await;
    let c4 = s4.suite.as_ref().expect("plan").slots[0]
        .execution_id
        .clone();
    let s4 = s4.id;
    h.advance_secs(1);
    let e5 = h.start(&y).await.id;
    h.advance_secs(1);
    h.engine.cancel(&h.user, &e1, None).await.expect("cancel");
    h.pass(&e2).await;
    h.fail(&e5).await;

    let q = ExecutionQuery::default;
    let everything = h.list_all(&h.user, q(), 100).await;
    let all_ids = ids(&everything);
    assert_eq!(
        id_set(all_ids.iter().map(String::as_str)),
        id_set([&e1, &e2, &e3, &s4, &c4, &e5].map(String::as_str))
    );
    assert_eq!(all_ids.first(), Some(&e5), "newest first");
    assert_eq!(all_ids.last(), Some(&e1), "oldest last");
    assert!(everything.iter().all(|e| e.owner == h.owner()));
    // Paging two at a time sees the same list, in the same order.
    assert_eq!(ids(&h.list_all(&h.user, q(), 2).await), all_ids);
    assert_eq!(ids(&h.list_all(&h.user, q(), 1).await), all_ids);

    let listed_order = &all_ids;
    let check = |query: ExecutionQuery, expected: &[&String]| {
        let expected_order: Vec<String> = listed_order
            .iter()
            .filter(|id| expected.contains(id))
            .cloned()
            .collect();
        let h = &h;
        async move {
            let listed = h.list_all(&h.user, query.clone(), 2).await;
            assert_eq!(ids(&listed), expected_order, "{query:?}");
        }
    };
    check(
        ExecutionQuery {
            status: Some(Cancelled),
            ..q()
        },
        &[&e1],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Passed),
            ..q()
        },
        &[&e2],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Failed),
            ..q()
        },
        &[&e5],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Queued),
            ..q()
        },
        &[&e3, &s4, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(TimedOut),
            ..q()
        },
        &[],
    )
    .await;
    check(
        ExecutionQuery {
            kind: Some(ExecutionKind::Suite),
            ..q()
        },
        &[&s4],
    )
    .await;
    check(
        ExecutionQuery {
            kind: Some(ExecutionKind::Case),
            ..q()
        },
        &[&e1, &e2, &e3, &c4, &e5],
    )
    .await;
    check(
        ExecutionQuery {
            test_case_id: Some(x.id.clone()),
            ..q()
        },
        &[&e1, &e3, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            test_suite_id: Some(definition.id.clone()),
            ..q()
        },
        &[&s4, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("ci".into()),
            ..q()
        },
        &[&e3],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("nightly".into()),
            ..q()
        },
        &[&s4],
    )
    .await;
    check(
        ExecutionQuery {
            tag: Some("x".into()),
            ..q()
        },
        &[&e1, &e3, &c4],
    )
    .await;
    check(
        ExecutionQuery {
            since: Some(t3),
            ..q()
        },
        &[&e3, &s4, &c4, &e5],
    )
    .await;
    check(
        ExecutionQuery {
            until: Some(t3),
            ..q()
        },
        &[&e1, &e2],
    )
    .await;
    check(
        ExecutionQuery {
            since: Some(t2),
            until: Some(t4),
            ..q()
        },
        &[&e2, &e3],
    )
    .await;
    check(
        ExecutionQuery {
            status: Some(Queued),
            kind: Some(ExecutionKind::Case),
            tag: Some("x".into()),
            ..q()
        },
        &[&e3, &c4],
    )
    .await;

    // Owners see only their own; an owner in the query cannot widen that.
    let bobs_case = h
        .create_case(&bob, "bob's", &[&marker], external_steps(1))
        .await;
    let bobs = h
        .engine
        .start_case(&bob, &bobs_case.id, StartRequest::default())
        .await
        .expect("bob starts")
        .execution
        .id;
    assert_eq!(ids(&h.list_all(&bob, q(), 10).await), vec![bobs.clone()]);
    let widened = ExecutionQuery {
        owner: Some(h.owner().to_owned()),
        ..q()
    };
    assert_eq!(
        ids(&h.list_all(&bob, widened, 10).await),
        vec![bobs.clone()]
    );
    assert_eq!(
        ids(&h.list_all(&h.user, q(), 100).await),
        all_ids,
        "bob's execution is not alice's"
    );
    let by_admin = h
        .list_all(
            &admin,
            ExecutionQuery {
                tag: Some(marker.clone()),
                ..q()
            },
            3,
        )
        .await;
    let mut expected = id_set(all_ids.iter().map(String::as_str));
    expected.insert(bobs.clone());
    assert_eq!(
        id_set(by_admin.iter().map(|e| e.id.as_str())),
        expected,
        "an administrator sees everyone's"
    );
    h.check_histories().await;
    h.check_histories_of(&bob).await;
}
