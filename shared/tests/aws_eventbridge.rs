//! The EventBridge bus against the AWS emulator: what is put arrives once, with runledger's
//! source and detail-type, and every detail matches its JSON Schema in `events/schemas/`.
//! These tests fail (never skip) when the emulator is missing.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use runledger::bus::eventbridge::EVENT_SOURCE;
use runledger::bus::eventbridge::{EventBridgeBus, create_bus, event_kind, parse_event};
use runledger::domain::errors::StoreError;
use runledger::domain::events::{CaseEvent, CaseEventKind, DomainEvent, EventKind};
use runledger::domain::execution::{ExecutionKind, ExecutionStatus};
use runledger::domain::time::Timestamp;
use runledger::ports::EventBus;
use runledger_testkit::emulator::{Emulator, unique_name};
use runledger_testkit::lambda;
use runledger_testkit::scripted_aws::ScriptedAws;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const KINDS: [EventKind; 5] = [
    EventKind::ExecutionQueued,
    EventKind::ExecutionStarted,
    EventKind::StepFailed,
    EventKind::ExecutionFinished,
    EventKind::SuiteFinished,
];

fn id(prefix: &str, n: usize) -> String {
    format!("{prefix}_{n:026}")
}

/// A realistic event of `kind` for execution number `n`; `n` varies the optional parts.
fn event(kind: EventKind, n: usize) -> DomainEvent {
    let terminal = [
        ExecutionStatus::Passed,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Error,
    ][n % 5];
    let suite = match kind {
        EventKind::SuiteFinished => true,
        EventKind::ExecutionQueued | EventKind::ExecutionStarted => n % 2 == 1,
        EventKind::StepFailed | EventKind::ExecutionFinished => false,
    };
    let child = !suite && n.is_multiple_of(3);
    DomainEvent {
        kind,
        execution_id: id("ex", n),
        execution_kind: if suite {
            ExecutionKind::Suite
        } else {
            ExecutionKind::Case
        },
        owner: "alice".to_owned(),
        status: match kind {
            EventKind::ExecutionQueued => ExecutionStatus::Queued,
            EventKind::ExecutionStarted | EventKind::StepFailed => ExecutionStatus::Running,
            EventKind::ExecutionFinished | EventKind::SuiteFinished => terminal,
        },
        parent_id: child.then(|| id("ex", 10_000 + n)),
        test_case_id: (!suite).then(|| id("tc", n)),
        test_suite_id: (suite || child).then(|| id("ts", n)),
        attempt: 1 + (n % 3) as u32,
        step_index: (kind == EventKind::StepFailed).then_some(n as u32),
        message: (kind == EventKind::StepFailed && n.is_multiple_of(2))
            .then(|| "expected 200, got 503".to_owned()),
        at: Timestamp::from_millis(1_764_151_200_000 + n as i64),
    }
}

fn schema_file(detail_type: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/schemas")
        .join(format!(
            "{}.json",
            detail_type.to_lowercase().replace(' ', "-")
        ))
}

fn validator(detail_type: &str) -> jsonschema::Validator {
    let path = schema_file(detail_type);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    assert!(
        jsonschema::draft202012::meta::is_valid(&schema),
        "{} is not a valid draft 2020-12 schema",
        path.display()
    );
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validators() -> BTreeMap<&'static str, jsonschema::Validator> {
    KINDS
        .into_iter()
        .map(|k| (k.detail_type(), validator(k.detail_type())))
        .collect()
}

fn errors(validator: &jsonschema::Validator, detail: &Value) -> Vec<String> {
    validator
        .iter_errors(detail)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A bus whose every runledger event lands on an SQS queue, for reading back what was put.
struct ObservedBus {
    events: aws_sdk_eventbridge::Client,
    bus_name: String,
    bus_arn: String,
    observer: lambda::ObservedBus,
}

async fn observed_bus() -> ObservedBus {
    let config = Emulator::get().sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus_name = unique_name("rl-bus");
    let bus_arn = create_bus(&events, &bus_name).await.expect("create bus");
    let observer = lambda::ObservedBus::on(&config, &bus_name).await;
    ObservedBus {
        events,
        bus_name,
        bus_arn,
        observer,
    }
}

impl ObservedBus {
    /// Reads the queue until `count` events arrived (or 10 s passed), then once more to catch
    /// any extra.
    async fn read(&self, count: usize) -> Vec<EventBridgeEvent<Value>> {
        self.observer
            .read(count)
            .await
            .into_iter()
            .map(|event| serde_json::from_value(event).expect("an EventBridge event"))
            .collect()
    }
}

#[tokio::test]
async fn published_events_arrive_once_with_source_detail_type_and_a_valid_detail() {
    let bus = observed_bus().await;
    assert!(
        bus.bus_arn
            .ends_with(&format!(":event-bus/{}", bus.bus_name))
    );
    assert_eq!(
        create_bus(&bus.events, &bus.bus_name).await,
        Ok(bus.bus_arn.clone()),
        "an existing bus is fine"
    );
    let publisher = EventBridgeBus::new(bus.events.clone(), bus.bus_name.clone());
    assert_eq!(publisher.bus_name(), bus.bus_name);

    // One of each kind, one call each; then twelve at once (two PutEvents calls).
    let mut published: Vec<DomainEvent> = Vec::new();
    for (n, kind) in KINDS.into_iter().enumerate() {
        let one = event(kind, n);
        publisher
            .publish(std::slice::from_ref(&one))
            .await
            .expect("publish one");
        published.push(one);
    }
    let twelve: Vec<DomainEvent> = (100..112).map(|n| event(KINDS[n % 5], n)).collect();
    publisher.publish(&twelve).await.expect("publish twelve");
    published.extend(twelve);
    publisher.publish(&[]).await.expect("publish nothing");

    let received = bus.read(published.len()).await;
    assert_eq!(received.len(), published.len(), "every event exactly once");

    let validators = validators();
    let mut by_execution: BTreeMap<String, DomainEvent> = BTreeMap::new();
    for envelope in &received {
        assert_eq!(envelope.source, EVENT_SOURCE);
        let kind = event_kind(&envelope.detail_type).expect("a runledger detail-type");
        assert_eq!(envelope.detail["kind"], json!(envelope.detail_type));
        let problems = errors(&validators[kind.detail_type()], &envelope.detail);
        assert!(
            problems.is_empty(),
            "{} detail {} does not match its schema: {problems:?}",
            envelope.detail_type,
            envelope.detail
        );
        let parsed = parse_event(envelope).expect("parse_event");
        assert_eq!(parsed.kind, kind);
        let previous = by_execution.insert(parsed.execution_id.clone(), parsed);
        assert!(previous.is_none(), "an event arrived twice");
    }
    for sent in &published {
        assert_eq!(by_execution.get(&sent.execution_id), Some(sent));
    }
}

#[test]
fn every_kind_of_event_matches_its_schema() {
    let validators = validators();
    assert_eq!(validators.len(), 5);
    for n in 0..30 {
        for kind in KINDS {
            let detail = serde_json::to_value(event(kind, n)).expect("json");
            let problems = errors(&validators[kind.detail_type()], &detail);
            assert!(problems.is_empty(), "{detail}: {problems:?}");
            // Each schema takes its own kind only.
            for other in KINDS.into_iter().filter(|o| *o != kind) {
                assert!(
                    !validators[other.detail_type()].is_valid(&detail),
                    "{} schema accepted {detail}",
                    other.detail_type()
                );
            }
        }
    }
}

fn case_event(kind: CaseEventKind, n: usize) -> CaseEvent {
    let quarantined = kind == CaseEventKind::TestCaseQuarantined;
    let at = Timestamp::from_millis(1_764_151_200_000 + n as i64);
    CaseEvent {
        kind,
        test_case_id: id("tc", n),
        owner: "alice".into(),
        actor: "user:alice".into(),
        reason: quarantined.then(|| "flaky on CI".to_owned()),
        until: quarantined.then(|| at.plus_millis(3_600_000)),
        at,
    }
}

#[test]
fn test_case_events_match_their_schemas() {
    let quarantined = validator("Test Case Quarantined");
    let released = validator("Test Case Released");
    for n in 0..5 {
        let detail =
            serde_json::to_value(case_event(CaseEventKind::TestCaseQuarantined, n)).unwrap();
        assert!(errors(&quarantined, &detail).is_empty(), "{detail}");
        assert!(!released.is_valid(&detail), "{detail}");
        let detail = serde_json::to_value(case_event(CaseEventKind::TestCaseReleased, n)).unwrap();
        assert!(errors(&released, &detail).is_empty(), "{detail}");
        assert!(!quarantined.is_valid(&detail), "{detail}");
    }
    let mut extra = serde_json::to_value(case_event(CaseEventKind::TestCaseReleased, 1)).unwrap();
    extra["status"] = json!("failed");
    assert!(!released.is_valid(&extra), "no other field appears");
}

#[tokio::test]
async fn test_case_events_arrive_with_their_detail_type() {
    let bus = observed_bus().await;
    let publisher = EventBridgeBus::new(bus.events.clone(), bus.bus_name.clone());
    let sent = [
        case_event(CaseEventKind::TestCaseQuarantined, 1),
        case_event(CaseEventKind::TestCaseReleased, 2),
    ];
    publisher.publish_case_events(&sent).await.expect("publish");
    let received = bus.read(sent.len()).await;
    assert_eq!(received.len(), 2, "each exactly once");
    for envelope in &received {
        assert_eq!(envelope.source, EVENT_SOURCE);
        let back: CaseEvent =
            serde_json::from_value(envelope.detail.clone()).expect("a case event");
        assert_eq!(envelope.detail_type, back.kind.detail_type());
        assert!(sent.contains(&back), "{back:?}");
    }
}

#[test]
fn schemas_refuse_what_runledger_never_emits() {
    let validators = validators();
    let valid = |kind: EventKind, n: usize| serde_json::to_value(event(kind, n)).expect("json");
    let refused = |kind: EventKind, detail: Value, why: &str| {
        assert!(
            !validators[kind.detail_type()].is_valid(&detail),
            "{why}: {} accepted {detail}",
            kind.detail_type()
        );
    };

    // Every required field is required.
    for kind in KINDS {
        let detail = valid(kind, 0);
        for field in detail.as_object().expect("object").keys() {
            if field == "message" {
                continue;
            }
            let mut missing = detail.clone();
            missing.as_object_mut().expect("object").remove(field);
            refused(kind, missing, &format!("without {field}"));
        }
    }
    let mut extra = valid(EventKind::ExecutionQueued, 0);
    extra["surprise"] = json!(1);
    refused(EventKind::ExecutionQueued, extra, "an unknown field");

    let mut step_index = valid(EventKind::ExecutionFinished, 0);
    step_index["step_index"] = json!(3);
    refused(
        EventKind::ExecutionFinished,
        step_index,
        "step_index outside Step Failed",
    );

    let mut message = valid(EventKind::SuiteFinished, 0);
    message["message"] = json!("hello");
    refused(
        EventKind::SuiteFinished,
        message,
        "message outside Step Failed",
    );

    let mut status = valid(EventKind::ExecutionQueued, 0);
    status["status"] = json!("running");
    refused(
        EventKind::ExecutionQueued,
        status,
        "a queued event that is running",
    );

    let mut status = valid(EventKind::ExecutionFinished, 0);
    status["status"] = json!("running");
    refused(
        EventKind::ExecutionFinished,
        status,
        "a finished event that is not terminal",
    );

    let mut status = valid(EventKind::SuiteFinished, 0);
    status["status"] = json!("exploded");
    refused(EventKind::SuiteFinished, status, "an unknown status");

    let mut kind = valid(EventKind::SuiteFinished, 0);
    kind["execution_kind"] = json!("case");
    refused(EventKind::SuiteFinished, kind, "a suite event about a case");

    let mut kind = valid(EventKind::ExecutionStarted, 0);
    kind["execution_kind"] = json!("batch");
    refused(
        EventKind::ExecutionStarted,
        kind,
        "an unknown execution kind",
    );

    let mut suite_case = valid(EventKind::ExecutionStarted, 1);
    assert_eq!(suite_case["execution_kind"], json!("suite"));
    suite_case["test_case_id"] = json!(id("tc", 1));
    refused(
        EventKind::ExecutionStarted,
        suite_case,
        "a suite with a test case id",
    );

    for bad in [
        "2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00.000+01:00",
        "2026-11-26 10:00:00.000Z",
        "yesterday",
    ] {
        let mut at = valid(EventKind::StepFailed, 0);
        at["at"] = json!(bad);
        refused(
            EventKind::StepFailed,
            at,
            "a timestamp not in RFC 3339 UTC with millis",
        );
    }

    let mut index = valid(EventKind::StepFailed, 0);
    index["step_index"] = json!(-1);
    refused(EventKind::StepFailed, index, "a negative step index");

    let mut id_shape = valid(EventKind::StepFailed, 0);
    id_shape["execution_id"] = json!("tc_00000000000000000000000001");
    refused(
        EventKind::StepFailed,
        id_shape,
        "an execution id that is not one",
    );

    let mut attempt = valid(EventKind::ExecutionFinished, 0);
    attempt["attempt"] = json!(0);
    refused(EventKind::ExecutionFinished, attempt, "attempt 0");
}

fn envelope(source: &str, detail_type: &str, detail: Value) -> EventBridgeEvent<Value> {
    let text = json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    });
    serde_json::from_value(text).expect("an EventBridge event")
}

#[test]
fn parse_event_round_trips_and_refuses_foreign_events() {
    for (n, kind) in KINDS.into_iter().enumerate() {
        let sent = event(kind, n);
        let detail = serde_json::to_value(&sent).expect("json");
        assert_eq!(
            parse_event(&envelope(EVENT_SOURCE, kind.detail_type(), detail)),
            Ok(sent)
        );
    }
    let detail = serde_json::to_value(event(EventKind::StepFailed, 2)).expect("json");
    assert!(parse_event(&envelope("aws.events", "Step Failed", detail.clone())).is_err());
    assert!(parse_event(&envelope(EVENT_SOURCE, "Scheduled Event", detail.clone())).is_err());
    assert!(
        parse_event(&envelope(
            EVENT_SOURCE,
            "Execution Finished",
            detail.clone()
        ))
        .is_err(),
        "the detail-type must match the detail's kind"
    );
    let mut broken = detail;
    broken.as_object_mut().expect("object").remove("owner");
    assert!(parse_event(&envelope(EVENT_SOURCE, "Step Failed", broken)).is_err());
    assert!(parse_event(&envelope(EVENT_SOURCE, "Step Failed", json!("text"))).is_err());
}

fn put_entries(request: &Value) -> Vec<DomainEvent> {
    request["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| serde_json::from_str(e["Detail"].as_str().expect("detail")).expect("an event"))
        .collect()
}

#[tokio::test]
async fn events_put_ten_to_a_call_and_refused_ones_again() {
    let fake = ScriptedAws::start(
        "application/x-amz-json-1.1",
        vec![
            json!({
                "FailedEntryCount": 1,
                "Entries": [
                    {"EventId": "e0"},
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                    {"EventId": "e2"}
                ]
            }),
            json!({"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}]}),
            json!({"FailedEntryCount": 0, "Entries": []}),
        ],
    )
    .await;
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&fake.sdk_config().await),
        "runledger-test",
    );
    let three: Vec<DomainEvent> = (0..3).map(|n| event(KINDS[n], n)).collect();
    bus.publish(&three).await.expect("put after one retry");
    let twelve: Vec<DomainEvent> = (0..12).map(|n| event(KINDS[n % 5], n)).collect();
    bus.publish(&twelve).await.expect("put twelve");

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    let entry = &requests[0]["Entries"][1];
    assert_eq!(entry["Source"], json!(EVENT_SOURCE));
    assert_eq!(entry["DetailType"], json!(three[1].kind.detail_type()));
    assert_eq!(entry["EventBusName"], json!("runledger-test"));
    assert!(
        entry.get("Resources").is_none_or(|r| r == &json!([])),
        "no resources: {entry}"
    );
    assert_eq!(put_entries(&requests[0]), three);
    assert_eq!(
        put_entries(&requests[1]),
        vec![three[1].clone()],
        "only the refused entry is put again"
    );
    assert_eq!(put_entries(&requests[2]), twelve[..10]);
    assert_eq!(put_entries(&requests[3]), twelve[10..]);
}

#[tokio::test]
async fn events_that_keep_failing_make_the_bus_unavailable() {
    let fake = ScriptedAws::start(
        "application/x-amz-json-1.1",
        vec![json!({
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]
        })],
    )
    .await;
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&fake.sdk_config().await),
        "runledger-test",
    );
    let started = Instant::now();
    let error = bus
        .publish(&[event(EventKind::SuiteFinished, 0)])
        .await
        .expect_err("keeps failing");
    assert!(
        matches!(&error, StoreError::Unavailable(m) if m.contains("ThrottlingException")),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 4, "the first try and three retries");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the backoff is short"
    );
}
