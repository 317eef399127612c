//! The Lambda functions end to end on the AWS emulator: the sample payloads in `events/`
//! (placeholders filled in) go through `runledger::lambda::handle` of the function that
//! owns them, over a fresh table, queues and bus, and the tests look at what came back and
//! at what landed in DynamoDB, SQS and EventBridge. They fail (never skip) when the emulator
//! is missing.

use aws_config::SdkConfig;
use runledger::auth::Authenticator;
use runledger::aws::backend::AwsBackend;
use runledger::domain::events::WorkItem;
use runledger::domain::execution::{ExecutionStatus, StepStatus};
use runledger::engine::Caller;
use runledger::lambda::shape::{EventShape, classify};
use runledger::lambda::spec::{self as functions, FunctionSpec, Trigger};
use runledger::lambda::{FunctionContext, InvocationError, handle};
use runledger::ports::StepRunner;
use runledger::runner::HttpStepRunner;
use runledger::runner::target_guard::TargetPolicy;
use runledger::settings::AwsSettings;
use runledger_testkit::emulator::{Emulator, unique_name};
use runledger_testkit::lambda::*;
use runledger_testkit::tokens::authenticator;
use runledger_testkit::wire::id_of;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const OWNER: &str = "alice";
/// The message of `events/sqs/step-report-batch.json` that is not a step report.
const MALFORMED_MESSAGE_ID: &str = "e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a603";

// ------------------------------------------------------------------------------------------
// The functions over fresh resources
// ------------------------------------------------------------------------------------------

struct World {
    sdk: SdkConfig,
    settings: AwsSettings,
    backend: AwsBackend,
    auth: Arc<Authenticator>,
    runner: Arc<dyn StepRunner>,
    bus: ObservedBus,
}

impl World {
    async fn new() -> World {
        let sdk = Emulator::get().sdk_config().await;
        let settings = AwsBackend::create_resources(&sdk, &unique_name("fn"))
            .await
            .expect("create the table, queues and bus");
        // Before anything publishes: the rule only sees events put after it exists.
        let bus = ObservedBus::on(&sdk, &settings.event_bus).await;
        let backend = AwsBackend::new(&sdk, settings.clone());
        let auth = Arc::new(authenticator());
        // The test's HTTP target listens on loopback, which the runner refuses on AWS.
        let runner: Arc<dyn StepRunner> = Arc::new(HttpStepRunner::new(TargetPolicy {
            allow_private: true,
        }));
        World {
            sdk,
            settings,
            backend,
            auth,
            runner,
            bus,
        }
    }

    /// A function as its cold start builds it, over this world's resources.
    fn function(&self, spec: &FunctionSpec) -> FunctionContext {
        let mut function = FunctionContext::new(spec, &self.backend);
        if !spec.routes().is_empty() {
            function = function.with_auth(Arc::clone(&self.auth));
        }
        if spec.accepts(Trigger::WorkQueue) {
            function = function.with_runner(Arc::clone(&self.runner));
        }
        function
    }

    fn token(&self, user: &str) -> String {
        self.auth.issue(user, false, 600)
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }
}

/// How many events of each (execution, detail-type) there are.
fn tally(events: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        let key = (
            event["detail"]["execution_id"]
                .as_str()
                .expect("execution_id")
                .to_owned(),
            event["detail-type"]
                .as_str()
                .expect("detail-type")
                .to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn key(execution: &str, detail_type: &str) -> (String, String) {
    (execution.to_owned(), detail_type.to_owned())
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn every_sample_has_the_shape_its_directory_says() {
    for (name, event) in samples_in("apigw") {
        let expected = if name.starts_with("rest-v1") {
            EventShape::ApiGatewayV1
        } else {
            EventShape::ApiGatewayV2
        };
        assert_eq!(classify(&event), expected, "apigw/{name}");
        // lambda_http (and so `cargo lambda invoke` against any lambda_http function) reads
        // it as the same kind of request.
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_value(event).unwrap_or_else(|e| panic!("apigw/{name}: {e}"));
        let origin = format!("{:?}", request.request_origin());
        let wanted = if expected == EventShape::ApiGatewayV1 {
            "ApiGatewayV1"
        } else {
            "ApiGatewayV2"
        };
        assert_eq!(origin, wanted, "apigw/{name}");
    }
    // The Execution Finished sample carries a detail runledger could have emitted.
    let ulid = "01JDX5N7Q8R9S0T1V2W3X4Y5Z6";
    let finished = sample(
        "eventbridge/execution-finished.json",
        &[
            ("REPLACE_WITH_EXECUTION_ID", &format!("ex_{ulid}")),
            ("REPLACE_WITH_PARENT_EXECUTION_ID", &format!("ex_{ulid}")),
            ("REPLACE_WITH_TEST_CASE_ID", &format!("tc_{ulid}")),
            ("REPLACE_WITH_TEST_SUITE_ID", &format!("ts_{ulid}")),
        ],
    );
    let schema_file = events_dir().join("schemas/execution-finished.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_file).expect("schema"))
            .expect("schema JSON");
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("validator");
    let problems: Vec<String> = validator
        .iter_errors(&finished["detail"])
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");

    for (dir, shape) in [
        ("sqs", EventShape::Sqs),
        ("dynamodb", EventShape::DynamoDbStream),
        ("eventbridge", EventShape::EventBridge),
        ("scheduler", EventShape::ScheduledStart),
    ] {
        for (name, event) in samples_in(dir) {
            assert_eq!(classify(&event), shape, "{dir}/{name}");
        }
    }
}

#[tokio::test]
async fn http_requests_reach_only_the_routes_their_function_owns() {
    let world = World::new().await;
    let [
        start,
        status,
        step_report,
        finalize,
        runner,
        catalog,
        log,
        stream,
    ] = functions::ALL.map(|spec| world.function(&spec));
    let token = world.token(OWNER);
    let auth = [("REPLACE_WITH_TOKEN", token.as_str())];

    // Health: the status function, no token, JSON text.
    let health = http(&status, sample("apigw/health.json", &[])).await;
    assert_eq!(health.status, 200, "{:#}", health.raw);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.raw["isBase64Encoded"], json!(false));
    assert_eq!(health.body["status"], json!("ok"));
    // The gateway's request id, when the client sent none.
    assert_eq!(health.header("x-request-id"), Some("Zxq0tgVnIAMEb7g="));

    // The dashboard's page: the gateway's `$default` route sends every path no API route
    // claims to the status function, which serves it, gzipped (so base64) when asked.
    let mut page_request = with_path(sample("apigw/health.json", &[]), "/");
    page_request["headers"]["accept-encoding"] = json!("gzip, br");
    let page = handle(&status, page_request).await.expect("the page");
    assert_eq!(page["statusCode"], json!(200), "{page:#}");
    assert_eq!(
        page["headers"]["content-type"],
        json!("text/html; charset=utf-8")
    );
    assert_eq!(page["headers"]["content-encoding"], json!("gzip"));
    assert_eq!(page["isBase64Encoded"], json!(true));
    let gzipped = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        page["body"].as_str().expect("a body"),
    )
    .expect("base64");
    let mut html = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut html)
        .expect("gzip of UTF-8");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    http(&catalog, with_path(sample("apigw/health.json", &[]), "/"))
        .await
        .assert_problem(404, "not_found");

    // The same through the runtime's entry point, as Lambda calls it.
    let mut lambda_context = lambda_runtime::Context::default();
    lambda_context.request_id = "5f0e3b8a-9c41-4d7e-a2b6-1c3d5e7f9a0b".into();
    let through_runtime = runledger::lambda::invoke(
        &status,
        lambda_runtime::LambdaEvent::new(sample("apigw/health.json", &[]), lambda_context),
    )
    .await
    .expect("health through invoke");
    assert_eq!(through_runtime["statusCode"], json!(200));

    // Each route answers in its own function and is an unknown path (404) in every other
    // one; the runner and the log function, which have no routes, refuse HTTP altogether, and
    // the stream function refuses it answered whole (it streams its answers; see below).
    let nowhere = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", "ex_01JDNOTHEREXXXXXXXXXXXXXXX"),
    ];
    let owners: [(&str, &FunctionContext); 3] = [
        ("apigw/health.json", &status),
        ("apigw/create-test-case.json", &catalog),
        ("apigw/cancel-execution.json", &finalize),
    ];
    for (path, owner) in owners {
        for function in [&start, &status, &step_report, &finalize, &catalog] {
            if !std::ptr::eq(function, owner) {
                http(function, sample(path, &nowhere))
                    .await
                    .assert_problem(404, "not_found");
            }
        }
        for function in [&runner, &log, &stream] {
            let name = function.spec().name;
            let error = handle(function, sample(path, &nowhere))
                .await
                .expect_err("no HTTP answered whole");
            assert!(
                matches!(&error, InvocationError::NotAccepted { function, received }
                    if *function == name && received.contains("HTTP API")),
                "{name}: {error}"
            );
        }
    }

    // Catalog: a test case of three external steps.
    let created = http(&catalog, sample("apigw/create-test-case.json", &auth)).await;
    assert_eq!(created.status, 201, "{:#}", created.raw);
    let case = id_of(&created.body);
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/test-cases/{case}").as_str())
    );
    assert_eq!(created.body["owner"], json!(OWNER));

    // Start, twice with the same Idempotency-Key: one execution.
    let start_case = sample(
        "apigw/start-case.json",
        &[
            ("REPLACE_WITH_TOKEN", &token),
            ("REPLACE_WITH_TEST_CASE_ID", &case),
        ],
    );
    let started = http(&start, start_case.clone()).await;
    assert_eq!(started.status, 202, "{:#}", started.raw);
    let first = id_of(&started.body);
    assert_eq!(started.body["status"], json!("queued"));
    assert_eq!(started.body["environment"], json!("staging"));
    let again = http(&start, start_case.clone()).await;
    assert_eq!(again.status, 200, "{:#}", again.raw);
    assert_eq!(id_of(&again.body), first);

    // No token: 401 with the challenge header intact.
    let anonymous = http(&start, without_header(start_case.clone(), "authorization")).await;
    anonymous.assert_problem(401, "unauthenticated");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));

    // The trace, for its owner only.
    let owner_refs = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", first.as_str()),
    ];
    let trace = http(&status, sample("apigw/get-execution.json", &owner_refs)).await;
    assert_eq!(trace.status, 200, "{:#}", trace.raw);
    assert_eq!(trace.body["status"], json!("queued"));
    assert_eq!(trace.body["progress"]["total"], json!(3));
    assert_eq!(trace.body["steps"].as_array().map(Vec::len), Some(3));
    let bob = world.token("bob");
    let bob_refs = [
        ("REPLACE_WITH_TOKEN", bob.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", first.as_str()),
    ];
    http(&status, sample("apigw/get-execution.json", &bob_refs))
        .await
        .assert_problem(404, "execution_not_found");

    // Step reports: HTTP API (text body), then a Function URL (base64 body).
    let reported = http(&step_report, sample("apigw/report-steps.json", &owner_refs)).await;
    assert_eq!(reported.status, 200, "{:#}", reported.raw);
    assert_eq!(reported.body["progress"]["completed"], json!(1));
    let via_url = sample("apigw/function-url-report-steps.json", &owner_refs);
    assert_eq!(via_url["isBase64Encoded"], json!(true));
    let reported = http(&step_report, via_url.clone()).await;
    assert_eq!(reported.status, 200, "{:#}", reported.raw);
    assert_eq!(reported.body["progress"]["completed"], json!(2));
    assert_eq!(reported.body["progress"]["failed"], json!(1));
    let mut broken = via_url;
    broken["body"] = json!("this is not base64!");
    http(&step_report, broken)
        .await
        .assert_problem(400, "malformed_body");

    // REST API (payload 1.0) on stage `prod`: the stage is not part of the route, and the
    // response has the REST shape.
    let listed = http(&status, sample("apigw/rest-v1-list-executions.json", &auth)).await;
    assert_eq!(listed.status, 200, "{:#}", listed.raw);
    assert!(
        listed.raw.get("multiValueHeaders").is_some(),
        "{:#}",
        listed.raw
    );
    assert_eq!(listed.header("content-type"), Some("application/json"));
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", listed.body);
    assert_eq!(items[0]["id"], json!(first));
    assert_eq!(items[0]["status"], json!("running"));

    // Complete: the unreported step is skipped and the execution failed.
    let completed = http(
        &step_report,
        sample("apigw/complete-execution.json", &owner_refs),
    )
    .await;
    assert_eq!(completed.status, 200, "{:#}", completed.raw);
    assert_eq!(completed.body["status"], json!("failed"));
    assert_eq!(completed.body["progress"]["skipped"], json!(1));
    // Cancelling what has ended is a conflict.
    http(
        &finalize,
        sample("apigw/cancel-execution.json", &owner_refs),
    )
    .await
    .assert_problem(409, "invalid_transition");

    // A second execution (another key), cancelled while queued.
    let mut other_start = start_case;
    other_start["headers"]["idempotency-key"] = json!("deploy-4712-browser-checkout");
    let second = id_of(&http(&start, other_start).await.body);
    assert_ne!(second, first);
    let cancel = sample(
        "apigw/cancel-execution.json",
        &[
            ("REPLACE_WITH_TOKEN", &token),
            ("REPLACE_WITH_EXECUTION_ID", &second),
        ],
    );
    let cancelled = http(&finalize, cancel).await;
    assert_eq!(cancelled.status, 200, "{:#}", cancelled.raw);
    assert_eq!(cancelled.body["status"], json!("cancelled"));

    // The table.
    let engine = &world.backend.engine;
    let admin = Caller::admin("test");
    let stored = engine.get_execution(&admin, &first).await.expect("first");
    assert_eq!(stored.status, ExecutionStatus::Failed);
    let statuses: Vec<StepStatus> = stored.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Passed, StepStatus::Failed, StepStatus::Skipped]
    );
    let history = engine.history(&admin, &first).await.expect("history");
    let path: Vec<ExecutionStatus> = history.iter().map(|h| h.to).collect();
    assert_eq!(
        path,
        [
            ExecutionStatus::Queued,
            ExecutionStatus::Running,
            ExecutionStatus::Failed
        ]
    );
    let history = engine.history(&admin, &second).await.expect("history");
    let last = history.last().expect("an entry");
    assert_eq!(last.to, ExecutionStatus::Cancelled);
    assert_eq!(last.actor, format!("user:{OWNER}"));
    assert_eq!(last.reason.as_deref(), Some("superseded by deploy 4712"));

    // External cases put nothing on the work queues.
    let sqs = world.sqs();
    for url in [
        &world.settings.queue_urls.high,
        &world.settings.queue_urls.normal,
        &world.settings.queue_urls.low,
    ] {
        assert!(receive(&sqs, url, 0).await.is_empty(), "{url}");
    }

    // The bus: each event once.
    let events = world.bus.read(6).await;
    let expected: BTreeMap<(String, String), usize> = [
        (key(&first, "Execution Queued"), 1),
        (key(&first, "Execution Started"), 1),
        (key(&first, "Step Failed"), 1),
        (key(&first, "Execution Finished"), 1),
        (key(&second, "Execution Queued"), 1),
        (key(&second, "Execution Finished"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(tally(&events), expected);

    // Payloads for no function, or for another one, are errors that say what arrived.
    for (function, event, needle) in [
        (&status, json!("hello"), "string"),
        (&catalog, json!({"ping": true}), "ping"),
        (
            &status,
            sample(
                "sqs/runner-work-items.json",
                &[
                    ("REPLACE_WITH_EXECUTION_ID", "ex_1"),
                    ("REPLACE_WITH_SECOND_EXECUTION_ID", "ex_2"),
                ],
            ),
            "SQS",
        ),
        (
            &start,
            sample("eventbridge/scheduled-sweep.json", &[]),
            "Scheduled Event",
        ),
        (
            &runner,
            sample("eventbridge/scheduled-sweep.json", &[]),
            "Scheduled Event",
        ),
        (
            &finalize,
            sample(
                "scheduler/start-suite.json",
                &[("REPLACE_WITH_TEST_SUITE_ID", "ts_1")],
            ),
            "scheduled start",
        ),
    ] {
        let error = handle(function, event).await.expect_err("refused");
        assert!(
            matches!(&error, InvocationError::NotAccepted { .. })
                && error.to_string().contains(needle),
            "{}: {error}",
            function.spec().name
        );
    }
}

/// Creates the external test case of `events/apigw/create-test-case.json` and starts it.
async fn started_external_case(world: &World, token: &str) -> (String, String) {
    let catalog = world.function(&functions::CATALOG);
    let start = world.function(&functions::START);
    let created = http(
        &catalog,
        sample(
            "apigw/create-test-case.json",
            &[("REPLACE_WITH_TOKEN", token)],
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{:#}", created.raw);
    let case = id_of(&created.body);
    let started = http(
        &start,
        sample(
            "apigw/start-case.json",
            &[
                ("REPLACE_WITH_TOKEN", token),
                ("REPLACE_WITH_TEST_CASE_ID", &case),
            ],
        ),
    )
    .await;
    assert_eq!(started.status, 202, "{:#}", started.raw);
    (case, id_of(&started.body))
}

#[tokio::test]
async fn step_reports_from_sqs_count_once_however_often_delivered() {
    let world = World::new().await;
    let step_report = world.function(&functions::STEP_REPORT);
    let token = world.token(OWNER);
    let (_, execution) = started_external_case(&world, &token).await;
    let batch = sample(
        "sqs/step-report-batch.json",
        &[("REPLACE_WITH_EXECUTION_ID", &execution)],
    );

    // The same batch three times (a redelivery after a timeout, say): only the malformed
    // message fails, every time, and the steps count once.
    for delivery in 1..=3 {
        let response = invoke(&step_report, batch.clone()).await;
        assert_eq!(
            failed_ids(&response),
            [MALFORMED_MESSAGE_ID],
            "delivery {delivery}"
        );
    }
    let engine = &world.backend.engine;
    let caller = Caller::user(OWNER);
    let stored = engine
        .get_execution(&caller, &execution)
        .await
        .expect("get");
    assert_eq!(stored.status, ExecutionStatus::Running);
    let progress = stored.progress;
    assert_eq!(
        (
            progress.total,
            progress.completed,
            progress.passed,
            progress.failed
        ),
        (3, 2, 1, 1)
    );
    assert_eq!(
        stored.steps[1].message.as_deref(),
        Some("the cart stayed empty")
    );
    let history = engine.history(&caller, &execution).await.expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1].to, ExecutionStatus::Running);
    assert_eq!(history[1].actor, "ci:github");

    // Failed (so retried, then kept in the dead-letter queue): an execution that does not
    // exist, a step index the execution does not have, a body that is no report at all.
    // Acknowledged: a report that would turn a passed step into a failed one.
    let records = batch["Records"].as_array().expect("records");
    let message = |id: &str, body: Value| {
        let mut record = records[0].clone();
        record["messageId"] = json!(id);
        record["body"] = json!(body.to_string());
        record
    };
    let report = |execution: &str, index: u32, status: &str| {
        json!({"execution_id": execution, "reporter": "ci:github",
               "steps": [{"index": index, "status": status}]})
    };
    let mixed = json!({"Records": [
        message("m-unknown", report("ex_01JDNOTHEREXXXXXXXXXXXXXXX", 0, "passed")),
        message("m-index", report(&execution, 7, "passed")),
        message("m-conflict", report(&execution, 0, "failed")),
        message("m-no-report", json!({"execution_id": execution})),
    ]});
    let response = invoke(&step_report, mixed).await;
    assert_eq!(
        failed_ids(&response),
        ["m-unknown", "m-index", "m-no-report"]
    );
    let stored = engine
        .get_execution(&caller, &execution)
        .await
        .expect("get");
    assert_eq!(stored.steps[0].status, StepStatus::Passed);
    assert_eq!(stored.progress.completed, 2);

    // Once the execution has ended, redeliveries are acknowledged: nothing can change.
    let completed = engine
        .complete(&caller, &execution)
        .await
        .expect("complete");
    assert_eq!(completed.status, ExecutionStatus::Failed);
    let response = invoke(&step_report, batch.clone()).await;
    assert_eq!(failed_ids(&response), [MALFORMED_MESSAGE_ID]);
    let history = engine.history(&caller, &execution).await.expect("history");
    assert_eq!(history.len(), 3, "{history:?}");

    // One Step Failed event for the failed step, however often it was reported.
    let events = world.bus.read(4).await;
    let counts = tally(&events);
    assert_eq!(
        counts.get(&key(&execution, "Step Failed")),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&key(&execution, "Execution Started")),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&key(&execution, "Execution Finished")),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(events.len(), 4, "{counts:?}");
}

/// The execution of `events/dynamodb/table-stream-batch.json`, given a fresh id.
fn stream_batch(execution: &str) -> Value {
    sample(
        "dynamodb/table-stream-batch.json",
        &[
            ("REPLACE_WITH_EXECUTION_ID", execution),
            ("REPLACE_WITH_TEST_CASE_ID", "tc_01JDX5N7Q8R9S0T1V2W3X4Y5Z6"),
        ],
    )
}

/// `(seq, type, what)` of each entry of an execution's log, as the store holds it.
async fn logged(world: &World, execution: &str) -> Vec<(u64, String, String)> {
    let entries = world
        .backend
        .engine
        .store()
        .events(execution, 0, 500)
        .await
        .expect("the log");
    entries
        .iter()
        .map(|entry| {
            let entry = serde_json::to_value(entry).expect("an entry");
            let what = match entry["type"].as_str() {
                Some("status") => entry["data"]["to"].as_str().unwrap_or("?").to_owned(),
                Some("step") => format!(
                    "{} {}",
                    entry["data"]["index"],
                    entry["data"]["status"].as_str().unwrap_or("?")
                ),
                _ => entry["data"].to_string(),
            };
            let kind = entry["type"].as_str().unwrap_or("?").to_owned();
            (entry["seq"].as_u64().expect("seq"), kind, what)
        })
        .collect()
}

fn fresh_execution_id() -> String {
    format!("ex_{}", ulid::Ulid::new())
}

#[tokio::test]
async fn the_log_function_logs_stream_records_once_in_order_and_stops_at_a_failure() {
    let world = World::new().await;
    let log = world.function(&functions::LOG);
    let execution = fresh_execution_id();
    let batch = stream_batch(&execution);

    // A catalog entry, a definition snapshot, the execution's start, its first step report and
    // an idempotency claim's expiry: only the execution's two changes log, in order, and
    // delivering the batch again (a retry after a timeout, say) logs nothing more.
    let expected = vec![
        (1, "status".to_owned(), "queued".to_owned()),
        (2, "status".to_owned(), "running".to_owned()),
        (3, "step".to_owned(), "0 passed".to_owned()),
    ];
    for delivery in 1..=2 {
        let response = invoke(&log, batch.clone()).await;
        assert_eq!(failed_ids(&response), Vec::<String>::new(), "{response}");
        assert_eq!(
            logged(&world, &execution).await,
            expected,
            "delivery {delivery}"
        );
    }

    // A record that cannot be logged (an execution item that is not one) stops the batch: it
    // and every record after it are reported by sequence number, and nothing after it is
    // logged, so that Lambda's redelivery from there keeps the order.
    let records = batch["Records"].as_array().expect("records");
    let (before, after) = (fresh_execution_id(), fresh_execution_id());
    let retargeted = |record: &Value, id: &str, sequence: &str| {
        let text = record.to_string().replace(&execution, id);
        let mut record: Value = serde_json::from_str(&text).expect("a record");
        record["dynamodb"]["SequenceNumber"] = json!(sequence);
        record
    };
    let start = &records[2];
    let mut corrupt = retargeted(start, &fresh_execution_id(), "900000000000000000002");
    corrupt["dynamodb"]["NewImage"]["data"] = json!({"S": "not an execution"});
    let mixed = json!({"Records": [
        retargeted(start, &before, "900000000000000000001"),
        corrupt,
        retargeted(start, &after, "900000000000000000003"),
        records[4].clone(),
    ]});
    let response = invoke(&log, mixed.clone()).await;
    let remove_sequence = records[4]["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("a sequence number");
    assert_eq!(
        failed_ids(&response),
        [
            "900000000000000000002",
            "900000000000000000003",
            remove_sequence
        ]
    );
    assert_eq!(logged(&world, &before).await.len(), 1);
    assert!(logged(&world, &after).await.is_empty());

    // A failed record without a sequence number cannot be named: the whole batch fails, to
    // come again whole. So does a batch that is not one.
    let mut unnamed = mixed;
    unnamed["Records"][1]["dynamodb"]
        .as_object_mut()
        .expect("a change")
        .remove("SequenceNumber");
    let error = handle(&log, unnamed).await.expect_err("the batch fails");
    assert!(
        matches!(error, InvocationError::Malformed { .. }),
        "{error}"
    );
    let broken = json!({"Records": [{"eventSource": "aws:dynamodb", "dynamodb": "nothing"}]});
    let error = handle(&log, broken).await.expect_err("not a batch");
    assert!(
        matches!(error, InvocationError::Malformed { .. }),
        "{error}"
    );

    // Stream records are the log function's alone.
    let status = world.function(&functions::STATUS);
    let error = handle(&status, batch).await.expect_err("refused");
    assert!(
        matches!(&error, InvocationError::NotAccepted { received, .. }
            if received.contains("DynamoDB stream")),
        "{error}"
    );
}

#[tokio::test]
async fn a_suite_runs_end_to_end_through_the_functions() {
    let world = World::new().await;
    let [start, status, _, finalize, runner, catalog, _, _] =
        functions::ALL.map(|spec| world.function(&spec));
    let token = world.token(OWNER);
    let (base_url, hits) = http_target().await;

    // Three http cases over HTTP: two healthy, one whose target answers 503.
    let cases = create_http_cases(
        &catalog,
        &token,
        &base_url,
        &[
            ("order service health", "/health"),
            ("inventory health", "/health"),
            ("payment gateway health", "/unavailable"),
        ],
    )
    .await;
    let suite = create_suite(&catalog, &token, &cases).await;

    // Start it (priority high): three work items on the high queue, nothing elsewhere.
    let started = start_suite(&start, &token, &suite).await;
    let execution = id_of(&started.body);
    assert_eq!(started.body["kind"], json!("suite"));
    assert_eq!(started.body["children"]["total"], json!(3));
    let sqs = world.sqs();
    let high = &world.settings.queue_urls.high;
    let messages = receive(&sqs, high, 3).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    for url in [
        &world.settings.queue_urls.normal,
        &world.settings.queue_urls.low,
    ] {
        assert!(receive(&sqs, url, 0).await.is_empty());
    }
    let children = world
        .backend
        .engine
        .list_children(&Caller::user(OWNER), &execution, None, 10)
        .await
        .expect("children")
        .items;
    let mut child_ids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
    let mut queued: Vec<String> = messages
        .iter()
        .map(|m| {
            let item: WorkItem = serde_json::from_str(m.body().expect("body")).expect("work item");
            assert_eq!(item.priority, runledger::domain::execution::Priority::High);
            item.execution_id
        })
        .collect();
    child_ids.sort();
    queued.sort();
    assert_eq!(queued, child_ids);

    // The runner takes the batch as the event source mapping delivers it; then the same
    // batch again (at least once): nothing runs twice.
    let batch = sqs_event(&messages, &queue_arn(&sqs, high).await);
    assert_eq!(
        failed_ids(&invoke(&runner, batch.clone()).await),
        Vec::<String>::new()
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "each case's one step ran once"
    );
    assert_eq!(
        failed_ids(&invoke(&runner, batch).await),
        Vec::<String>::new()
    );
    let work = sample(
        "sqs/runner-work-items.json",
        &[
            ("REPLACE_WITH_EXECUTION_ID", &child_ids[0]),
            ("REPLACE_WITH_SECOND_EXECUTION_ID", &child_ids[1]),
        ],
    );
    assert_eq!(
        failed_ids(&invoke(&runner, work).await),
        Vec::<String>::new()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "redeliveries run nothing");

    // The bus: one Execution Finished per child, one Suite Finished.
    let events = world.bus.read(3 * 3 + 3).await;
    let counts = tally(&events);
    for child in &child_ids {
        assert_eq!(
            counts.get(&key(child, "Execution Finished")),
            Some(&1),
            "{counts:?}"
        );
    }
    assert_eq!(
        counts.get(&key(&execution, "Suite Finished")),
        Some(&1),
        "{counts:?}"
    );
    let suite_finished = events
        .iter()
        .find(|e| e["detail-type"] == json!("Suite Finished"))
        .expect("Suite Finished");
    assert_eq!(suite_finished["detail"]["status"], json!("failed"));

    // finalize gets every Execution Finished event twice: the suite is settled already, so
    // nothing changes and nothing more is published.
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == json!("Execution Finished"))
        .collect();
    assert_eq!(finished.len(), 3);
    for event in finished.iter().chain(finished.iter()) {
        let outcome = invoke(&finalize, (*event).clone()).await;
        assert_eq!(outcome["reconciled"], json!(false), "{outcome}");
        assert_eq!(outcome["execution_id"], event["detail"]["execution_id"]);
    }
    let child = &children[0];
    let sample_event = sample(
        "eventbridge/execution-finished.json",
        &[
            ("REPLACE_WITH_EXECUTION_ID", &child.id),
            ("REPLACE_WITH_PARENT_EXECUTION_ID", &execution),
            (
                "REPLACE_WITH_TEST_CASE_ID",
                child.test_case_id.as_deref().expect("case id"),
            ),
            ("REPLACE_WITH_TEST_SUITE_ID", &suite),
        ],
    );
    let outcome = invoke(&finalize, sample_event).await;
    assert_eq!(outcome["reconciled"], json!(false), "{outcome}");
    let queued_event = events
        .iter()
        .find(|e| e["detail-type"] == json!("Execution Queued"))
        .expect("a queued event");
    let outcome = invoke(&finalize, queued_event.clone()).await;
    assert_eq!(outcome["ignored"], json!("Execution Queued"));
    let extra = world.bus.read(0).await;
    assert!(extra.is_empty(), "finalize published {extra:?}");

    // The trace through the status function.
    let refs = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", execution.as_str()),
    ];
    let trace = http(&status, sample("apigw/get-execution.json", &refs)).await;
    assert_eq!(trace.status, 200, "{:#}", trace.raw);
    assert_eq!(trace.body["status"], json!("failed"));
    let counts = &trace.body["children"];
    assert_eq!(
        (
            &counts["total"],
            &counts["passed"],
            &counts["failed"],
            &counts["running"],
            &counts["queued"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(0), &json!(0)),
        "{counts}"
    );
    let history = http(&status, sample("apigw/get-execution-history.json", &refs)).await;
    assert_eq!(history.status, 200, "{:#}", history.raw);
    let entries = history.body["items"].as_array().expect("items");
    let path: Vec<&str> = entries
        .iter()
        .map(|e| e["to"].as_str().expect("to"))
        .collect();
    assert_eq!(path, ["queued", "running", "failed"], "{entries:?}");
    assert_eq!(entries[0]["actor"], json!(format!("user:{OWNER}")));
    let listed = http(
        &status,
        with_path(
            sample("apigw/get-execution.json", &refs),
            &format!("/api/v1/executions/{execution}/children"),
        ),
    )
    .await;
    assert_eq!(listed.status, 200, "{:#}", listed.raw);
    let mut outcomes: Vec<(String, String)> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("inventory health".to_owned(), "passed".to_owned()),
            ("order service health".to_owned(), "passed".to_owned()),
            ("payment gateway health".to_owned(), "failed".to_owned()),
        ]
    );
    let failing = children
        .iter()
        .find(|c| c.name == "payment gateway health")
        .expect("the failing child");
    let failing = world
        .backend
        .engine
        .get_execution(&Caller::user(OWNER), &failing.id)
        .await
        .expect("child");
    let message = failing.steps[0].message.as_deref().unwrap_or_default();
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn schedules_start_executions_and_sweep_timeouts() {
    let world = World::new().await;
    let start = world.function(&functions::START);
    let finalize = world.function(&functions::FINALIZE);
    let catalog = world.function(&functions::CATALOG);
    let token = world.token(OWNER);
    let created = http(
        &catalog,
        sample(
            "apigw/create-test-case.json",
            &[("REPLACE_WITH_TOKEN", &token)],
        ),
    )
    .await;
    let case = id_of(&created.body);
    let suite_request = sample(
        "apigw/create-test-suite.json",
        &[
            ("REPLACE_WITH_TOKEN", &token),
            ("REPLACE_WITH_TEST_CASE_ID_A", &case),
            ("REPLACE_WITH_TEST_CASE_ID_B", &case),
            ("REPLACE_WITH_TEST_CASE_ID_C", &case),
        ],
    );
    let suite_request = with_body(
        suite_request,
        json!({"name": "nightly regression", "test_case_ids": [case], "tags": ["nightly"]}),
    );
    let suite = http(&catalog, suite_request).await;
    assert_eq!(suite.status, 201, "{:#}", suite.raw);
    let suite = id_of(&suite.body);

    // The scheduler's payload starts the suite as its owner; a retried delivery of the same
    // tick (same idempotency key) starts nothing more.
    let scheduled = sample(
        "scheduler/start-suite.json",
        &[("REPLACE_WITH_TEST_SUITE_ID", &suite)],
    );
    let first = invoke(&start, scheduled.clone()).await;
    assert_eq!(first["created"], json!(true), "{first}");
    let execution = first["execution"]["id"].as_str().expect("id").to_owned();
    assert_eq!(first["execution"]["kind"], json!("suite"));
    assert_eq!(first["execution"]["owner"], json!(OWNER));
    let second = invoke(&start, scheduled.clone()).await;
    assert_eq!(second["created"], json!(false), "{second}");
    assert_eq!(second["execution"]["id"], json!(execution));
    let stored = world
        .backend
        .engine
        .get_execution(&Caller::user(OWNER), &execution)
        .await
        .expect("stored");
    assert_eq!(stored.config.environment.as_deref(), Some("staging"));
    assert_eq!(stored.priority, runledger::domain::execution::Priority::Low);
    let history = world
        .backend
        .engine
        .history(&Caller::user(OWNER), &execution)
        .await
        .expect("history");
    assert_eq!(history[0].actor, format!("user:{OWNER}"));

    // Payloads that cannot start anything are errors, for the scheduler's retries and DLQ.
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut payload = scheduled.clone();
        change(&mut payload);
        payload
    };
    let refused = [
        (
            edit(&|p| {
                p.as_object_mut().expect("object").remove("owner");
            }),
            "owner",
        ),
        (edit(&|p| p["owner"] = json!(" ")), "owner"),
        (edit(&|p| p["test_case_id"] = json!(case)), "exactly one"),
        (edit(&|p| p["surprise"] = json!(1)), "surprise"),
        (
            edit(&|p| p["config"]["timeout_s"] = json!(0)),
            "config.timeout_s",
        ),
        (
            edit(&|p| p["test_suite_id"] = json!("ts_01JDNOTHEREXXXXXXXXXXXXXXX")),
            "no test suite",
        ),
        (edit(&|p| p["owner"] = json!("bob")), "no test suite"),
    ];
    for (payload, needle) in refused {
        let error = handle(&start, payload.clone()).await.expect_err("refused");
        assert!(
            matches!(
                error,
                InvocationError::Malformed { .. } | InvocationError::Refused(_)
            ) && error.to_string().contains(needle),
            "{payload}: {error}"
        );
    }

    // The sweep: a case with a one-second timeout, overdue, is timed out by the scheduled
    // event; the next sweep finds nothing.
    let started = http(
        &start,
        with_body(
            sample(
                "apigw/start-case.json",
                &[
                    ("REPLACE_WITH_TOKEN", &token),
                    ("REPLACE_WITH_TEST_CASE_ID", &case),
                ],
            ),
            json!({"test_case_id": case, "config": {"timeout_s": 1}}),
        ),
    )
    .await;
    assert_eq!(started.status, 202, "{:#}", started.raw);
    let short = id_of(&started.body);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let sweep = sample("eventbridge/scheduled-sweep.json", &[]);
    assert_eq!(
        invoke(&finalize, sweep.clone()).await,
        json!({"timed_out": 1})
    );
    assert_eq!(invoke(&finalize, sweep).await, json!({"timed_out": 0}));
    let stored = world
        .backend
        .engine
        .get_execution(&Caller::user(OWNER), &short)
        .await
        .expect("stored");
    assert_eq!(stored.status, ExecutionStatus::TimedOut);
    // Its Execution Finished event, to finalize: a case without a suite settles nothing.
    let events = world.bus.read(1).await;
    let timed_out = events
        .iter()
        .find(|e| {
            e["detail-type"] == json!("Execution Finished")
                && e["detail"]["execution_id"] == json!(short)
        })
        .expect("the timed-out case's event");
    assert_eq!(timed_out["detail"]["status"], json!("timed_out"));
    let outcome = invoke(&finalize, timed_out.clone()).await;
    assert_eq!(outcome, json!({"execution_id": short, "reconciled": false}));
    // A malformed runledger event is an error (EventBridge retries it, then its DLQ).
    let mut broken = timed_out.clone();
    broken["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("owner");
    let error = handle(&finalize, broken).await.expect_err("malformed");
    assert!(
        matches!(error, InvocationError::Malformed { .. }),
        "{error}"
    );
}
