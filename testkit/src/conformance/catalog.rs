//! Test cases and suites in the catalog: round trips, versions, listing and isolation.

use super::*;

/// Test cases and suites: create, get, replace (version bump, stale version refused), delete,
/// and owner isolation.
pub async fn catalog_round_trip(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let alice = h.user.clone();
    let mallory = fresh_user();
    let admin = Caller::admin("conformance-admin");

    let mut input = case_input("round trip", &["smoke"], external_steps(2));
    input.description = Some("the first version".into());
    input
        .variables
        .insert("base_url".into(), "http://127.0.0.1:1".into());
    input.timeout_s = Some(120);
    let created = h
        .engine
        .create_entry::<TestCase>(&alice, input)
        .await
        .expect("create");
    assert!(created.id.starts_with("tc_"), "{}", created.id);
    assert_eq!(created.owner, h.owner());
    assert_eq!(created.version, 1);
    assert_eq!((created.created_at, created.updated_at), (h.now(), h.now()));
    assert_eq!(
        h.engine
            .get_entry::<TestCase>(&alice, &created.id)
            .await
            .expect("get"),
        created
    );
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(created.clone())
    );

    // A replacement bumps the version and keeps id, owner and creation time.
    h.advance_secs(1);
    let replaced = h
        .engine
        .replace_entry::<TestCase>(
            &alice,
            &created.id,
            case_input("round trip v2", &["nightly"], external_steps(3)),
        )
        .await
        .expect("replace");
    assert_eq!(replaced.version, 2);
    assert_eq!(
        (replaced.id.as_str(), replaced.owner.as_str()),
        (created.id.as_str(), h.owner())
    );
    assert_eq!(replaced.created_at, created.created_at);
    assert_eq!(replaced.updated_at, h.now());
    assert_eq!(replaced.steps.len(), 3);
    assert_eq!(replaced.description, None, "a replacement is whole");
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(replaced.clone())
    );

    // A stale expected version is a conflict and changes nothing.
    let mut stale = replaced.clone();
    stale.name = "stale writer".into();
    stale.version = 2;
    match h.store.replace_entry::<TestCase>(&stale, 1).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale replace must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(replaced.clone())
    );
    // The right expected version wins.
    let mut v3 = replaced.clone();
    v3.name = "round trip v3".into();
    v3.version = 3;
    h.store
        .replace_entry::<TestCase>(&v3, 2)
        .await
        .expect("replace at the current version");
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(v3.clone())
    );
    // Replacing what does not exist is a conflict too, and creates nothing.
    let mut ghost = v3.clone();
    ghost.id = format!("tc_{}", ulid::Ulid::new());
    match h.store.replace_entry::<TestCase>(&ghost, 3).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("replacing a missing case must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&ghost.id).await.unwrap(),
        None
    );
    // Inserting an id that exists is a conflict and keeps the stored case.
    let mut clash = v3.clone();
    clash.name = "clash".into();
    match h.store.insert_entry::<TestCase>(&clash).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("inserting an existing id must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        Some(v3.clone())
    );

    // Another user cannot see, replace or delete it; an administrator can see it.
    expect_not_found(h.engine.get_entry::<TestCase>(&mallory, &created.id).await);
    expect_not_found(
        h.engine
            .replace_entry::<TestCase>(
                &mallory,
                &created.id,
                case_input("taken", &[], external_steps(1)),
            )
            .await,
    );
    expect_not_found(
        h.engine
            .delete_entry::<TestCase>(&mallory, &created.id)
            .await,
    );
    assert_eq!(
        h.engine
            .get_entry::<TestCase>(&admin, &created.id)
            .await
            .expect("admin get"),
        v3
    );

    // Delete.
    h.engine
        .delete_entry::<TestCase>(&alice, &created.id)
        .await
        .expect("delete");
    expect_not_found(h.engine.get_entry::<TestCase>(&alice, &created.id).await);
    assert_eq!(
        h.store.get_entry::<TestCase>(&created.id).await.unwrap(),
        None
    );
    assert!(
        !h.store.delete_entry::<TestCase>(&created.id).await.unwrap(),
        "a second delete finds nothing"
    );
    expect_not_found(h.engine.delete_entry::<TestCase>(&alice, &created.id).await);

    // Suites, the same way.
    let a = h.external_case("suite member a", 1).await;
    let b = h.external_case("suite member b", 1).await;
    let input = TestSuiteInput {
        name: "round trip suite".into(),
        description: Some("d".into()),
        test_case_ids: vec![a.id.clone(), b.id.clone()],
        mode: SuiteMode::Sequential,
        max_parallel: None,
        fail_fast: true,
        tags: vec!["nightly".into()],
    };
    let suite = h
        .engine
        .create_entry::<TestSuite>(&alice, input.clone())
        .await
        .expect("create suite");
    assert!(suite.id.starts_with("ts_"));
    assert_eq!((suite.version, suite.owner.as_str()), (1, h.owner()));
    assert_eq!(suite.max_parallel, DEFAULT_MAX_PARALLEL);
    assert_eq!(suite.test_case_ids, vec![a.id.clone(), b.id.clone()]);
    assert_eq!(
        h.engine
            .get_entry::<TestSuite>(&alice, &suite.id)
            .await
            .expect("get suite"),
        suite
    );
    h.advance_secs(1);
    let replaced_suite = h
        .engine
        .replace_entry::<TestSuite>(
            &alice,
            &suite.id,
            TestSuiteInput {
                mode: SuiteMode::Parallel,
                max_parallel: Some(3),
                test_case_ids: vec![b.id.clone()],
                ..input.clone()
            },
        )
        .await
        .expect("replace suite");
    assert_eq!(replaced_suite.version, 2);
    assert_eq!(replaced_suite.created_at, suite.created_at);
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        Some(replaced_suite.clone())
    );
    let mut stale_suite = replaced_suite.clone();
    stale_suite.version = 2;
    stale_suite.name = "stale".into();
    match h.store.replace_entry::<TestSuite>(&stale_suite, 1).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale suite replace must be a conflict, got {other:?}"),
    }
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        Some(replaced_suite.clone())
    );
    match h.store.insert_entry::<TestSuite>(&replaced_suite).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("inserting an existing suite id must be a conflict, got {other:?}"),
    }
    // Members must exist and be visible.
    let errors = expect_validation(
        h.engine
            .create_entry::<TestSuite>(
                &alice,
                TestSuiteInput {
                    test_case_ids: vec![a.id.clone(), UNKNOWN_CASE.into()],
                    ..input.clone()
                },
            )
            .await,
    );
    assert_eq!(fields(&errors), vec!["test_case_ids[1]"]);
    let errors = expect_validation(
        h.engine
            .create_entry::<TestSuite>(&mallory, input.clone())
            .await,
    );
    assert_eq!(
        fields(&errors),
        vec!["test_case_ids[0]", "test_case_ids[1]"]
    );
    expect_not_found(h.engine.get_entry::<TestSuite>(&mallory, &suite.id).await);
    expect_not_found(
        h.engine
            .delete_entry::<TestSuite>(&mallory, &suite.id)
            .await,
    );
    assert_eq!(
        h.engine
            .get_entry::<TestSuite>(&admin, &suite.id)
            .await
            .expect("admin"),
        replaced_suite
    );
    h.engine
        .delete_entry::<TestSuite>(&alice, &suite.id)
        .await
        .expect("delete suite");
    assert_eq!(
        h.store.get_entry::<TestSuite>(&suite.id).await.unwrap(),
        None
    );
    assert!(!h.store.delete_entry::<TestSuite>(&suite.id).await.unwrap());
    expect_not_found(h.engine.get_entry::<TestSuite>(&alice, &suite.id).await);
}

/// Listing test cases and suites: tag filter, cursor paging (each seen once) and owners.
pub async fn catalog_listing(store: Arc<dyn ExecutionStore>) {
    let h = Harness::new(store);
    let alice = h.user.clone();
    let bob = fresh_user();
    let admin = Caller::admin("conformance-admin");
    let marker = fresh_tag();

    let mut all = BTreeSet::new();
    let mut even = BTreeSet::new();
    for i in 0..7 {
        let tags: Vec<&str> = if i % 2 == 0 {
            vec![marker.as_str(), "even"]
        } else {
            vec![marker.as_str()]
        };
        let case = h
            .create_case(&alice, &format!("listing {i}"), &tags, external_steps(1))
            .await;
        all.insert(case.id.clone());
        if i % 2 == 0 {
            even.insert(case.id);
        }
    }
    let listed = h.list_cases(&alice, None, 3).await;
    let listed_ids: Vec<String> = listed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(listed_ids.len(), 7, "every case once: {listed_ids:?}");
    assert_eq!(listed_ids.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert!(listed.iter().all(|c| c.owner == h.owner()));

    let tagged = h.list_cases(&alice, Some("even"), 3).await;
    let tagged_ids: Vec<String> = tagged.iter().map(|c| c.id.clone()).collect();
    assert_eq!(tagged_ids.len(), 4, "{tagged_ids:?}");
    assert_eq!(tagged_ids.into_iter().collect::<BTreeSet<_>>(), even);
    assert!(
        h.list_cases(&alice, Some("no-such-tag"), 3)
            .await
            .is_empty()
    );

    // Bob sees only his own; an administrator sees everyone's.
    let bobs = h
        .create_case(&bob, "bob's", &[&marker, "even"], external_steps(1))
        .await;
    let seen_by_bob: Vec<String> = h
        .list_cases(&bob, None, 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_bob, vec![bobs.id.clone()]);
    let seen_by_bob: Vec<String> = h
        .list_cases(&bob, Some("even"), 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_bob, vec![bobs.id.clone()]);
    let seen_by_admin: Vec<String> = h
        .list_cases(&admin, Some(&marker), 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen_by_admin.len(), 8, "{seen_by_admin:?}");
    let mut everyone = all.clone();
    everyone.insert(bobs.id.clone());
    assert_eq!(seen_by_admin.into_iter().collect::<BTreeSet<_>>(), everyone);

    // A deleted case leaves the listing.
    let gone = all.iter().next().cloned().expect("seven cases");
    h.engine
        .delete_entry::<TestCase>(&alice, &gone)
        .await
        .expect("delete");
    let after_delete: BTreeSet<String> = h
        .list_cases(&alice, None, 3)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    all.remove(&gone);
    assert_eq!(after_delete, all);

    // Suites.
    let members: Vec<TestCase> = h.list_cases(&alice, None, 10).await;
    let mut suites = BTreeSet::new();
    for (i, member) in members.iter().take(3).enumerate() {
        let input = TestSuiteInput {
            name: format!("listing suite {i}"),
            description: None,
            test_case_ids: vec![member.id.clone()],
            mode: SuiteMode::Parallel,
            max_parallel: None,
            fail_fast: false,
            tags: vec![marker.clone()],
        };
        suites.insert(
            h.engine
                .create_entry::<TestSuite>(&alice, input)
                .await
                .expect("suite")
                .id,
        );
    }
    let listed: Vec<String> = h
        .list_suites(&alice, None, 2)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), suites);
    assert_eq!(h.list_suites(&alice, Some(&marker), 2).await.len(), 3);
    assert!(h.list_suites(&bob, None, 2).await.is_empty());
    let by_admin: BTreeSet<String> = h
        .list_suites(&admin, Some(&marker), 2)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(by_admin, suites);
}
