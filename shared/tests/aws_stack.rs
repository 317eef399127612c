//! The deployment template, proven on the emulator: `infra/template.yaml` passes cfn-lint, and
//! once translated (aws-sam-translator) and created on the emulator's CloudFormation
//! (`scripts/emulator_stack.py`), the functions' handlers, configured only from the stack (each
//! function's environment as the emulator's Lambda holds it, the JWT secret read from SSM the
//! way a cold start does), run a suite end to end. The test plays the Lambda service: it polls
//! the queues the stack's event source mappings name and the queues standing in for the
//! targets of the stack's bus rules, and invokes the handler the mapping or rule names. So the
//! names of tables, indexes, queues, buses and variables in the template must be the ones the
//! code reads, and the routes, triggers and rule patterns must be the ones it serves.

use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use runledger::api::{API_PREFIX, RouteGroup, routes};
use runledger::aws::lambda_sdk_config;
use runledger::bus::eventbridge::EVENT_SOURCE;
use runledger::domain::events::EventKind;
use runledger::lambda::FunctionContext;
use runledger::lambda::spec::{self as functions, FunctionSpec, Trigger};
use runledger::queue::sqs::MAX_RECEIVE_COUNT;
use runledger::settings::{
    ALLOW_PRIVATE_TARGETS, AwsSettings, JWT_SECRET_PARAMETER, STREAM_MAX_SECONDS,
};
use runledger::store::dynamo::{
    INDEX_ACTIVE, INDEX_ALL, INDEX_OWNER, INDEX_PARENT, TTL_ATTRIBUTE, projection_of,
};
use runledger_testkit::emulator::{Emulator, REGION, emulator_python, unique_name, workspace_root};
use runledger_testkit::lambda::*;
use runledger_testkit::tokens::authenticator_with;
use runledger_testkit::wire::id_of;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const OWNER: &str = "alice";
const SECRET: &str = "stack-test-jwt-secret-0123456789abcdef";
/// The emulator's account.
const ACCOUNT: &str = "123456789012";

// ------------------------------------------------------------------------------------------
// The stack
// ------------------------------------------------------------------------------------------

/// What `scripts/emulator_stack.py` reports about the stack it created.
struct Stack {
    description: Value,
}

impl Stack {
    /// Translates and creates the template on the emulator, with the runner allowed to reach
    /// the test's loopback HTTP target.
    fn stand_up() -> Stack {
        let emulator = Emulator::get();
        let root = workspace_root();
        let output = Command::new(emulator_python())
            .arg(root.join("scripts/emulator_stack.py"))
            .args(["--endpoint", &emulator.endpoint])
            .args(["--stack-name", &short_unique_name()])
            .args(["--jwt-secret", SECRET])
            .arg("--template")
            .arg(root.join("infra/template.yaml"))
            .args(["--parameter", "AllowPrivateTargets=true"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", emulator_python().display()));
        assert!(
            output.status.success(),
            "scripts/emulator_stack.py failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let description = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "emulator_stack.py printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        Stack { description }
    }

    fn output(&self, key: &str) -> String {
        self.description["outputs"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no stack output {key}"))
            .to_owned()
    }

    fn function(&self, spec: &FunctionSpec) -> &Value {
        let logical = logical_id(spec);
        let function = &self.description["functions"][&logical];
        assert!(function.is_object(), "the stack has no {logical}");
        function
    }

    /// The function's environment as the emulator's Lambda holds it.
    fn environment(&self, spec: &FunctionSpec) -> BTreeMap<String, String> {
        serde_json::from_value(self.function(spec)["environment"].clone())
            .expect("environment variables")
    }

    /// The resource settings the function's environment gives it.
    fn settings(&self, spec: &FunctionSpec) -> AwsSettings {
        let environment = self.environment(spec);
        AwsSettings::from_vars(&|name: &str| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("{}'s environment: {e}", spec.name))
    }

    /// The function's cold start as Lambda runs it (`FunctionContext::from_env`): its
    /// environment as the stack defines it, plus what Lambda adds (region, the role's
    /// credentials; here the emulator's endpoint), with every AWS request it makes (the cold
    /// start's included) written to `log`.
    async fn cold_start(&self, spec: &FunctionSpec, log: &CallLog) -> FunctionContext {
        let mut environment = self.environment(spec);
        let endpoint = Emulator::get().endpoint;
        for (name, value) in [
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ] {
            let previous = environment.insert(name.to_owned(), value.to_owned());
            assert_eq!(previous, None, "the template sets Lambda's own {name}");
        }
        let var = |name: &str| environment.get(name).cloned();
        let recording = Recording {
            function: logical_id(spec),
            log: Arc::clone(log),
        };
        let sdk = lambda_sdk_config(&var)
            .unwrap_or_else(|e| panic!("{}'s SDK configuration: {e}", spec.name))
            .to_builder()
            .http_client(recording)
            .build();
        FunctionContext::from_vars(spec, &sdk, &var)
            .await
            .unwrap_or_else(|e| panic!("cold start of {}: {e}", spec.name))
    }

    /// The Allow statements of the function's role, references resolved.
    fn statements(&self, logical_id: &str) -> Vec<Value> {
        self.description["functions"][logical_id]["role_policies"]["statements"]
            .as_array()
            .unwrap_or_else(|| panic!("no role policies for {logical_id}"))
            .clone()
    }

    fn mappings(&self) -> Vec<&Value> {
        self.description["event_source_mappings"]
            .as_array()
            .expect("event source mappings")
            .iter()
            .collect()
    }

    /// Every bus or schedule rule's target, with its rule.
    fn rule_targets(&self) -> Vec<(&Value, &Value)> {
        self.description["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|rule| {
                rule["targets"]
                    .as_array()
                    .expect("targets")
                    .iter()
                    .map(move |target| (rule, target))
            })
            .collect()
    }

    /// The rule targets that invoke `spec`'s function.
    fn rules_targeting(&self, spec: &FunctionSpec) -> Vec<(&Value, &Value)> {
        let logical = logical_id(spec);
        self.rule_targets()
            .into_iter()
            .filter(|(_, target)| target["function"] == json!(logical))
            .collect()
    }
}

/// A stack name no other test uses, short enough for the names the emulator derives from it
/// (an archive name, for one, has at most 48 characters).
fn short_unique_name() -> String {
    let unique = unique_name("rl");
    // `rl-` and a ULID: keep its last 10 characters, 50 random bits.
    format!("rl-{}", &unique[unique.len() - 10..])
}

/// The template's logical id of a function: `step-report` is `StepReportFunction`.
fn logical_id(spec: &FunctionSpec) -> String {
    let words: String = spec
        .name
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            let first = chars.next().expect("a word").to_ascii_uppercase();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect();
    format!("{words}Function")
}

/// The queue's name, the last segment of its URL (the environment holds AWS-style URLs, the
/// emulator answers with its own host).
fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a queue URL")
}

// ------------------------------------------------------------------------------------------
// Lint
// ------------------------------------------------------------------------------------------

/// `Alarms=false` leaves out every alarm (the idle cost's largest part): each alarm resource
/// carries the condition, and the condition is the parameter.
#[test]
fn every_alarm_is_behind_the_alarms_parameter() {
    let template =
        std::fs::read_to_string(workspace_root().join("infra/template.yaml")).expect("template");
    let lines: Vec<&str> = template.lines().collect();
    let mut alarms = 0;
    for (n, line) in lines.iter().enumerate() {
        if line.trim() == "Type: AWS::CloudWatch::Alarm" {
            alarms += 1;
            assert_eq!(
                lines.get(n + 1).map(|l| l.trim()),
                Some("Condition: CreateAlarms"),
                "the alarm at line {} has no `Condition: CreateAlarms`",
                n + 1
            );
        }
    }
    assert_eq!(alarms, 8, "the alarms infra/README.md lists");
    assert!(
        template.contains("  CreateAlarms: !Equals [!Ref Alarms, \"true\"]"),
        "the condition follows the parameter"
    );
}

#[test]
fn the_template_passes_cfn_lint() {
    let root = workspace_root();
    let cfn_lint = emulator_python().with_file_name("cfn-lint");
    let output = Command::new(&cfn_lint)
        .args(["--format", "parseable"])
        .arg(root.join("infra/template.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cfn_lint.display()));
    assert!(
        output.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // A template with a mistake fails, so the check above can fail.
    let broken = std::env::temp_dir().join(format!("{}.yaml", unique_name("broken-template")));
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).expect("template");
    let text = text.replace(
        "deadLetterTargetArn: !GetAtt HighDeadLetterQueue.Arn",
        "deadLetterTargetArn: !GetAtt HighDeadLetterQueu.Arn",
    );
    std::fs::write(&broken, text).expect("write broken template");
    let output = Command::new(&cfn_lint)
        .args(["--format", "parseable"])
        .arg(&broken)
        .output()
        .expect("cfn-lint");
    let _ = std::fs::remove_file(&broken);
    assert!(
        !output.status.success(),
        "cfn-lint accepted a reference to a missing resource"
    );
}

// ------------------------------------------------------------------------------------------
// Wiring
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_stack_wires_every_route_trigger_and_name_the_code_reads() {
    let stack = Stack::stand_up();
    let sdk = Emulator::get().sdk_config().await;

    // Exactly the functions of the specs, as Lambda must run them.
    let logical_ids: BTreeSet<String> = stack.description["functions"]
        .as_object()
        .expect("functions")
        .keys()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = functions::ALL.iter().map(logical_id).collect();
    assert_eq!(logical_ids, expected);
    for spec in functions::ALL {
        let function = stack.function(&spec);
        assert_eq!(
            function["runtime"],
            json!("provided.al2023"),
            "{}",
            spec.name
        );
        assert_eq!(function["handler"], json!("bootstrap"), "{}", spec.name);
        assert_eq!(function["architectures"], json!(["arm64"]), "{}", spec.name);
    }

    // Every route of the API goes to the function that mounts its group, and nothing else is
    // routed.
    let owner = |group: RouteGroup| {
        functions::ALL
            .iter()
            .filter(|f| f.accepts(Trigger::Http))
            .find(|f| f.routes().contains(&group))
            .map(logical_id)
            .unwrap_or_else(|| panic!("no function mounts {group:?}"))
    };
    let expected: BTreeSet<(String, String, String)> = routes::operations()
        .iter()
        .filter(|route| route.group != RouteGroup::Demo)
        .map(|route| {
            (
                route.method.to_string(),
                route.path.clone(),
                owner(route.group),
            )
        })
        .chain([(
            // What no route matches reaches the router too, for its problem+json 404.
            "ANY".to_owned(),
            "$default".to_owned(),
            owner(RouteGroup::Health),
        )])
        .collect();
    let routed: BTreeSet<(String, String, String)> = stack.description["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect("route field").to_owned();
            (field("method"), field("path"), field("function"))
        })
        .collect();
    assert_eq!(routed, expected);

    // The functions whose responses stream are behind a Function URL that streams them, with
    // no auth of Lambda's own (the function checks the bearer token) and CORS for the
    // dashboard; no other function has a URL. Each closes its streams before its timeout.
    let urls = stack.description["declared_function_urls"]
        .as_array()
        .expect("function URLs");
    let streaming: Vec<String> = functions::ALL
        .iter()
        .filter(|f| f.accepts(Trigger::StreamingHttp))
        .map(logical_id)
        .collect();
    let with_url: Vec<String> = urls
        .iter()
        .map(|u| text(&u["function"]).to_owned())
        .collect();
    assert_eq!(with_url, streaming);
    for url in urls {
        assert_eq!(url["auth_type"], json!("NONE"), "{url}");
        assert_eq!(url["invoke_mode"], json!("RESPONSE_STREAM"), "{url}");
        assert_eq!(url["cors"]["AllowMethods"], json!(["GET"]), "{url}");
        let headers = url["cors"]["AllowHeaders"].as_array().expect("headers");
        for needed in ["authorization", "last-event-id"] {
            assert!(headers.contains(&json!(needed)), "{url}");
        }
    }
    for spec in functions::ALL
        .iter()
        .filter(|f| f.accepts(Trigger::StreamingHttp))
    {
        let function = stack.function(spec);
        let timeout = function["timeout"].as_u64().expect("timeout");
        let max_stream: u64 = stack.environment(spec)[STREAM_MAX_SECONDS]
            .parse()
            .expect("seconds");
        assert!(
            max_stream + 10 <= timeout,
            "{}: streams of {max_stream} s in a {timeout} s timeout",
            spec.name
        );
    }
    assert!(stack.output("StreamUrl").starts_with("https://"));

    // Every function's environment is complete; the stack outputs name the same resources.
    for spec in functions::ALL {
        let environment = stack.environment(&spec);
        let settings = stack.settings(&spec);
        assert_eq!(settings.table, stack.output("TableName"));
        assert_eq!(settings.event_bus, stack.output("EventBusName"));
        assert_eq!(settings.queue_urls.high, stack.output("HighQueueUrl"));
        assert_eq!(settings.queue_urls.normal, stack.output("NormalQueueUrl"));
        assert_eq!(settings.queue_urls.low, stack.output("LowQueueUrl"));
        assert_eq!(
            settings.step_queue_url.as_deref(),
            Some(stack.output("StepReportQueueUrl").as_str())
        );
        // The JWT secret's parameter exactly where there are routes to authenticate.
        assert_eq!(
            environment.contains_key(JWT_SECRET_PARAMETER),
            !spec.routes().is_empty(),
            "{}",
            spec.name
        );
        assert_eq!(
            environment.contains_key(ALLOW_PRIVATE_TARGETS),
            spec.accepts(Trigger::WorkQueue),
            "{}",
            spec.name
        );
    }
    let settings = stack.settings(&functions::RUNNER);

    // SQS triggers: the runner consumes the three work queues, step-report the step queue,
    // each with partial batch failures; nothing else consumes a queue.
    let mut consumed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for mapping in stack.mappings() {
        assert_eq!(
            mapping["function_response_types"],
            json!(["ReportBatchItemFailures"]),
            "{mapping}"
        );
        if mapping.get("stream_arn").is_some() {
            continue; // the table's stream, below
        }
        consumed
            .entry(mapping["function"].as_str().expect("function").to_owned())
            .or_default()
            .insert(queue_name(mapping["queue_url"].as_str().expect("url")).to_owned());
    }
    let work_queues: BTreeSet<String> = [
        &settings.queue_urls.high,
        &settings.queue_urls.normal,
        &settings.queue_urls.low,
    ]
    .into_iter()
    .map(|url| queue_name(url).to_owned())
    .collect();
    let step_queue: BTreeSet<String> =
        [queue_name(settings.step_queue_url.as_deref().expect("step queue")).to_owned()].into();
    for spec in functions::ALL {
        let mut expected = BTreeSet::new();
        if spec.accepts(Trigger::WorkQueue) {
            expected.extend(work_queues.iter().cloned());
        }
        if spec.accepts(Trigger::StepReportQueue) {
            expected.extend(step_queue.iter().cloned());
        }
        let actual = consumed.remove(&logical_id(&spec)).unwrap_or_default();
        assert_eq!(actual, expected, "queues consumed by {}", spec.name);
    }

    // The table's stream: the log function alone takes it, one batch of a shard at a time
    // from its oldest record (each change's entries are numbered on from the ones before),
    // retried a bounded number of times, then recorded in the log's dead-letter queue; its
    // filter lets through the changes of execution items only.
    let streams: Vec<&Value> = stack
        .mappings()
        .into_iter()
        .filter(|m| m.get("stream_arn").is_some())
        .collect();
    let [stream] = streams[..] else {
        panic!("one mapping on the table's stream: {streams:?}");
    };
    let table_stream = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(&settings.table)
        .send()
        .await
        .expect("describe table")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream");
    let log_function = functions::ALL
        .iter()
        .find(|f| f.accepts(Trigger::TableStream))
        .map(logical_id)
        .expect("a function takes the stream");
    assert_eq!(stream["function"], json!(log_function));
    assert_eq!(stream["stream_arn"], json!(table_stream));
    assert_eq!(stream["parallelization_factor"], json!(1));
    assert_eq!(stream["starting_position"], json!("TRIM_HORIZON"));
    let retries = stream["maximum_retry_attempts"].as_i64().expect("retries");
    assert!((1..=100).contains(&retries), "{stream}");
    let log_dlq = stack.output("LogDeadLetterQueueUrl");
    assert_eq!(
        stream["on_failure"],
        json!(arn("sqs", queue_name(&log_dlq))),
        "{stream}"
    );
    let [pattern] = stream["filter_patterns"]
        .as_array()
        .expect("filters")
        .as_slice()
    else {
        panic!("one filter: {stream}");
    };
    let ids = [
        ("REPLACE_WITH_EXECUTION_ID", "ex_01JDX5N7Q8R9S0T1V2W3X4Y5Z7"),
        ("REPLACE_WITH_TEST_CASE_ID", "tc_01JDX5N7Q8R9S0T1V2W3X4Y5Z6"),
    ];
    let records = sample("dynamodb/table-stream-batch.json", &ids)["Records"].clone();
    let passed: Vec<String> = records
        .as_array()
        .expect("records")
        .iter()
        .filter(|record| matches_pattern(pattern, record))
        .map(|record| text(&record["dynamodb"]["Keys"]["sk"]["S"]).to_owned())
        .collect();
    assert_eq!(passed, ["EXEC", "EXEC"], "{pattern}");
    // The log's own writes (its head, its entries) never come back to it.
    for sk in ["LOG", "EV#00000000000000000001"] {
        let record = json!({"dynamodb": {"Keys": {"pk": {"S": "EX#ex_1"}, "sk": {"S": sk}}}});
        assert!(!matches_pattern(pattern, &record), "{sk} passes {pattern}");
    }

    // Each of those queues hands a message to its dead-letter queue after the receive count
    // the code's failure handling assumes.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for url in [
        &settings.queue_urls.high,
        &settings.queue_urls.normal,
        &settings.queue_urls.low,
        settings.step_queue_url.as_ref().expect("step queue"),
    ] {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let policy: Value = serde_json::from_str(
            attributes
                .get(&QueueAttributeName::RedrivePolicy)
                .unwrap_or_else(|| panic!("{url} has no redrive policy")),
        )
        .expect("redrive policy JSON");
        assert_eq!(
            policy["maxReceiveCount"].to_string().trim_matches('"'),
            MAX_RECEIVE_COUNT.to_string(),
            "{url}"
        );
    }

    // EventBridge triggers: finalize gets runledger's Execution Finished events from the bus
    // the functions publish to, and the sweep's schedule; no other function is a rule target.
    for spec in functions::ALL {
        let targets = stack.rules_targeting(&spec);
        let takes_events = spec.accepts(Trigger::DomainEvents);
        let takes_sweep = spec.accepts(Trigger::SweepSchedule);
        assert_eq!(
            targets.len(),
            usize::from(takes_events) + usize::from(takes_sweep),
            "rules targeting {}",
            spec.name
        );
        for (rule, _) in targets {
            if let Some(schedule) = rule["schedule"].as_str() {
                assert!(takes_sweep, "{}", spec.name);
                assert!(schedule.starts_with("rate(") || schedule.starts_with("cron("));
            } else {
                assert!(takes_events, "{}", spec.name);
                assert_eq!(rule["bus"], json!(settings.event_bus));
                assert_eq!(rule["event_pattern"]["source"], json!([EVENT_SOURCE]));
                assert_eq!(
                    rule["event_pattern"]["detail-type"],
                    json!([
                        EventKind::ExecutionFinished.detail_type(),
                        EventKind::SuiteFinished.detail_type()
                    ])
                );
            }
        }
    }
    let notify = notification_tap(&stack);
    assert!(!notify.is_empty());

    // The table has the key schema, indexes and TTL attribute the store uses.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamodb
        .describe_table()
        .table_name(&settings.table)
        .send()
        .await
        .expect("describe table")
        .table
        .expect("table");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_owned(), "HASH".to_owned()),
            ("sk".to_owned(), "RANGE".to_owned())
        ]
    );
    let indexes: BTreeMap<String, String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            let projection = i
                .projection()
                .and_then(|p| p.projection_type())
                .expect("projection");
            (
                i.index_name().expect("index name").to_owned(),
                projection.as_str().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [INDEX_OWNER, INDEX_ALL, INDEX_PARENT, INDEX_ACTIVE]
        .map(|name| (name.to_owned(), projection_of(name).as_str().to_owned()))
        .into();
    assert_eq!(indexes, expected);
    // The emulator's CloudFormation does not apply TTL settings: the template's is checked.
    assert_eq!(
        stack.description["declared_table_ttl"],
        json!([{"AttributeName": TTL_ATTRIBUTE, "Enabled": true}])
    );
}

/// The queue that stands in for the notifications topic (the bus rule's SNS target).
fn notification_tap(stack: &Stack) -> String {
    let topic = stack.output("NotificationTopicArn");
    let taps: Vec<String> = stack
        .rule_targets()
        .into_iter()
        .filter(|(_, target)| target["arn"] == json!(topic))
        .map(|(_, target)| target)
        .map(|target| target["tap_queue_url"].as_str().expect("tap").to_owned())
        .collect();
    assert_eq!(taps.len(), 1, "one rule notifies the topic");
    taps.into_iter().next().expect("tap")
}

// ------------------------------------------------------------------------------------------
// What each function asks of AWS, against what its role allows
// ------------------------------------------------------------------------------------------

/// One AWS request a function made: its operation (`X-Amz-Target`, every service runledger
/// calls speaks a JSON protocol) and its body.
#[derive(Debug, Clone)]
struct Call {
    function: String,
    target: String,
    body: Value,
}

type CallLog = Arc<Mutex<Vec<Call>>>;

/// The SDK's default HTTP client, writing every request a function sends to the log first.
#[derive(Debug, Clone)]
struct Recording {
    function: String,
    log: CallLog,
}

impl HttpClient for Recording {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let inner = runledger::aws::https_client().http_connector(settings, components);
        SharedHttpConnector::new(RecordingConnector {
            inner,
            function: self.function.clone(),
            log: Arc::clone(&self.log),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    function: String,
    log: CallLog,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = Call {
            function: self.function.clone(),
            target: request
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .to_owned(),
            body: request
                .body()
                .bytes()
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or(Value::Null),
        };
        self.log.lock().expect("call log").push(call);
        self.inner.call(request)
    }
}

fn arn(service: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}")
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

/// The IAM actions, each on its resource, that a request needs (a transaction needs each of
/// its items' actions; a batch send needs `sqs:SendMessage`).
fn permissions_needed(call: &Call) -> Vec<(String, String)> {
    let (service, operation) = call
        .target
        .split_once('.')
        .unwrap_or_else(|| panic!("{} sent a request without X-Amz-Target", call.function));
    let body = &call.body;
    let table = |name: &Value| arn("dynamodb", &format!("table/{}", text(name)));
    match service {
        "DynamoDB_20120810" => match operation {
            "TransactWriteItems" => body["TransactItems"]
                .as_array()
                .expect("TransactItems")
                .iter()
                .flat_map(|item| item.as_object().expect("a transaction item"))
                .map(|(kind, write)| {
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        other => panic!("a transaction item of kind {other}"),
                    };
                    (format!("dynamodb:{action}"), table(&write["TableName"]))
                })
                .collect(),
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .expect("RequestItems")
                .keys()
                .map(|name| (format!("dynamodb:{operation}"), table(&json!(name))))
                .collect(),
            _ => {
                let mut resource = table(&body["TableName"]);
                if let Some(index) = body["IndexName"].as_str() {
                    resource = format!("{resource}/index/{index}");
                }
                vec![(format!("dynamodb:{operation}"), resource)]
            }
        },
        "AmazonSQS" => {
            let action = match operation {
                "SendMessageBatch" => "SendMessage",
                other => other,
            };
            let queue = queue_name(text(&body["QueueUrl"]));
            vec![(format!("sqs:{action}"), arn("sqs", queue))]
        }
        "AWSEvents" => body["Entries"]
            .as_array()
            .expect("Entries")
            .iter()
            .map(|entry| {
                let bus = text(&entry["EventBusName"]);
                (
                    format!("events:{operation}"),
                    arn("events", &format!("event-bus/{bus}")),
                )
            })
            .collect(),
        "AmazonSSM" => vec![(
            format!("ssm:{operation}"),
            arn("ssm", &format!("parameter{}", text(&body["Name"]))),
        )],
        other => panic!("{} called an unexpected service {other}", call.function),
    }
}

/// Whether an IAM pattern (`*` any run of characters, `?` one) matches.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.chars().next() {
        None => value.is_empty(),
        Some('*') => (0..=value.len())
            .filter(|&i| value.is_char_boundary(i))
            .any(|i| glob(&pattern[1..], &value[i..])),
        Some(p) => value.chars().next().is_some_and(|v| {
            (p == '?' || p == v) && glob(&pattern[p.len_utf8()..], &value[v.len_utf8()..])
        }),
    }
}

/// Whether one of the statements allows `action` on `resource` (the template's statements
/// have no conditions and no denies).
fn allows(statements: &[Value], action: &str, resource: &str) -> bool {
    let any = |patterns: &Value, value: &str, fold_case: bool| match patterns {
        Value::String(one) => glob_folded(one, value, fold_case),
        Value::Array(many) => many
            .iter()
            .any(|p| glob_folded(p.as_str().unwrap_or_default(), value, fold_case)),
        _ => false,
    };
    statements.iter().any(|statement| {
        statement["Effect"] == json!("Allow")
            && any(&statement["Action"], action, true)
            && any(&statement["Resource"], resource, false)
    })
}

fn glob_folded(pattern: &str, value: &str, fold_case: bool) -> bool {
    if fold_case {
        glob(&pattern.to_ascii_lowercase(), &value.to_ascii_lowercase())
    } else {
        glob(pattern, value)
    }
}

#[test]
fn the_policy_check_matches_the_way_iam_does() {
    let statements = vec![json!({
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "sqs:Send*"],
        "Resource": ["arn:aws:dynamodb:r:1:table/t", "arn:aws:dynamodb:r:1:table/t/index/*", "arn:aws:sqs:r:1:q?"],
    })];
    assert!(allows(
        &statements,
        "dynamodb:GetItem",
        "arn:aws:dynamodb:r:1:table/t"
    ));
    assert!(allows(
        &statements,
        "DynamoDB:getitem",
        "arn:aws:dynamodb:r:1:table/t/index/gsi1"
    ));
    assert!(allows(&statements, "sqs:SendMessage", "arn:aws:sqs:r:1:q1"));
    assert!(!allows(
        &statements,
        "dynamodb:PutItem",
        "arn:aws:dynamodb:r:1:table/t"
    ));
    assert!(!allows(
        &statements,
        "dynamodb:GetItem",
        "arn:aws:dynamodb:r:1:table/t2"
    ));
    assert!(!allows(
        &statements,
        "sqs:SendMessage",
        "arn:aws:sqs:r:1:q12"
    ));
    let denied = vec![json!({"Effect": "Deny", "Action": "*", "Resource": "*"})];
    assert!(!allows(
        &denied,
        "dynamodb:GetItem",
        "arn:aws:dynamodb:r:1:table/t"
    ));
}

// ------------------------------------------------------------------------------------------
// A suite through the stack
// ------------------------------------------------------------------------------------------

/// The part of the Lambda service the emulator cannot play: delivery from the stack's queues
/// and bus rules to the handlers they name.
struct LambdaService<'a> {
    stack: &'a Stack,
    sqs: aws_sdk_sqs::Client,
    functions: BTreeMap<String, FunctionContext>,
    /// The table's stream mappings: each function, and the stream as its mapping reads it.
    streams: tokio::sync::Mutex<Vec<(String, TableStream)>>,
}

impl LambdaService<'_> {
    /// What Lambda does with a message its function took: delete it.
    async fn delete(&self, url: &str, message: &aws_sdk_sqs::types::Message) {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(message.receipt_handle().expect("handle"))
            .send()
            .await
            .expect("delete");
    }

    /// Delivers until a full round finds nothing to deliver; returns how many invocations it
    /// made.
    async fn settle(&self) -> usize {
        let mut invocations = 0;
        loop {
            let mut delivered = 0;
            for mapping in self.stack.mappings() {
                let function = &self.functions[mapping["function"].as_str().expect("function")];
                // The table's stream is read below.
                let Some(url) = mapping["queue_url"].as_str() else {
                    continue;
                };
                let batch_size = mapping["batch_size"].as_i64().unwrap_or(10).clamp(1, 10);
                let messages = self
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(batch_size as i32)
                    .send()
                    .await
                    .expect("receive")
                    .messages
                    .unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let arn = mapping["queue_arn"].as_str().expect("arn");
                let response = invoke(function, sqs_event(&messages, arn)).await;
                assert_eq!(failed_ids(&response), Vec::<String>::new(), "{response}");
                for message in &messages {
                    self.delete(url, message).await;
                }
                delivered += 1;
            }
            for (function, stream) in self.streams.lock().await.iter_mut() {
                while let Some(batch) = stream.next_batch().await {
                    let response = invoke(&self.functions[function.as_str()], batch).await;
                    assert_eq!(stream.done(&response), 0, "records failed: {response}");
                    delivered += 1;
                }
            }
            for (_, target) in self.stack.rule_targets() {
                let Some(function) = target["function"].as_str() else {
                    continue;
                };
                let tap = target["tap_queue_url"].as_str().expect("tap");
                for message in receive(&self.sqs, tap, 0).await {
                    let event: Value =
                        serde_json::from_str(message.body().expect("body")).expect("event");
                    invoke(&self.functions[function], event).await;
                    self.delete(tap, &message).await;
                    delivered += 1;
                }
            }
            if delivered == 0 {
                return invocations;
            }
            invocations += delivered;
        }
    }
}

#[tokio::test]
async fn a_suite_runs_through_the_handlers_configured_from_the_stack() {
    let stack = Stack::stand_up();
    let sdk = Emulator::get().sdk_config().await;
    let calls: CallLog = Arc::default();
    let mut functions = BTreeMap::new();
    for spec in functions::ALL {
        functions.insert(logical_id(&spec), stack.cold_start(&spec, &calls).await);
    }
    let streams = stack
        .mappings()
        .into_iter()
        .filter_map(|mapping| {
            let arn = mapping.get("stream_arn")?.as_str().expect("stream ARN");
            let batch_size = mapping["batch_size"].as_u64().unwrap_or(100) as usize;
            let mut stream = TableStream::at(&sdk, arn, batch_size);
            for pattern in mapping["filter_patterns"].as_array().expect("filters") {
                stream = stream.filtered(pattern.clone());
            }
            Some((text(&mapping["function"]).to_owned(), stream))
        })
        .collect();
    let service = LambdaService {
        stack: &stack,
        sqs: aws_sdk_sqs::Client::new(&sdk),
        functions,
        streams: tokio::sync::Mutex::new(streams),
    };
    let function = |spec: &FunctionSpec| &service.functions[&logical_id(spec)];
    let (catalog, start, status, step_report) = (
        function(&functions::CATALOG),
        function(&functions::START),
        function(&functions::STATUS),
        function(&functions::STEP_REPORT),
    );
    // A token signed with the secret the stack's functions read from SSM.
    let token = authenticator_with(SECRET.as_bytes()).issue(OWNER, false, 600);
    let (base_url, hits) = http_target().await;

    // A suite of two built-in http cases (one target answers 503) and one external case.
    let mut cases = create_http_cases(
        catalog,
        &token,
        &base_url,
        &[("api health", "/health"), ("payments", "/unavailable")],
    )
    .await;
    let external = http(
        catalog,
        sample(
            "apigw/create-test-case.json",
            &[("REPLACE_WITH_TOKEN", &token)],
        ),
    )
    .await;
    assert_eq!(external.status, 201, "{:#}", external.raw);
    cases.push(id_of(&external.body));
    let suite = create_suite(catalog, &token, &cases).await;
    let started = start_suite(start, &token, &suite).await;
    let execution = id_of(&started.body);
    let refs = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", execution.as_str()),
    ];
    let children = http(
        status,
        with_path(
            sample("apigw/get-execution.json", &refs),
            &format!("{API_PREFIX}/executions/{execution}/children"),
        ),
    )
    .await;
    assert_eq!(children.status, 200, "{:#}", children.raw);
    let child_id = |name: &str| {
        children.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["name"] == json!(name))
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no child {name}: {:#}", children.body))
            .to_owned()
    };
    let (healthy, failing, browser) = (
        child_id("api health"),
        child_id("payments"),
        child_id("browser checkout flow"),
    );

    // The browser agent reports its three steps through the stack's step-report queue, and
    // the queue delivers the report twice.
    let report = json!({
        "execution_id": browser,
        "reporter": "ci:browser-agent",
        "steps": (0..3).map(|index| json!({"index": index, "status": "passed", "duration_ms": 100})).collect::<Vec<_>>(),
    });
    for _ in 0..2 {
        service
            .sqs
            .send_message()
            .queue_url(stack.output("StepReportQueueUrl"))
            .message_body(report.to_string())
            .send()
            .await
            .expect("send step report");
    }

    // The runner runs the http cases from the work queue, step-report records the browser's
    // steps, finalize takes the finished events from the bus.
    assert!(service.settle().await > 0, "nothing was delivered");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "each http case ran once");
    let completed = http(
        step_report,
        sample(
            "apigw/complete-execution.json",
            &[
                ("REPLACE_WITH_TOKEN", &token),
                ("REPLACE_WITH_EXECUTION_ID", &browser),
            ],
        ),
    )
    .await;
    assert_eq!(completed.status, 200, "{:#}", completed.raw);
    assert_eq!(completed.body["status"], json!("passed"));
    assert_eq!(completed.body["progress"]["passed"], json!(3));
    service.settle().await;

    // The event log the log function wrote from the table's stream, read through the status
    // function's long poll: gap-free, and the same story as the trace and its history.
    let browser_refs = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", browser.as_str()),
    ];
    let log = http(
        status,
        with_query(
            sample("apigw/get-execution-events.json", &browser_refs),
            "after=0&wait=0",
        ),
    )
    .await;
    assert_eq!(log.status, 200, "{:#}", log.raw);
    let items = log.body["items"].as_array().expect("items");
    let seqs: Vec<u64> = items
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=items.len() as u64).collect::<Vec<_>>(),
        "{items:#?}"
    );
    assert_eq!(log.body["terminal"], json!(true), "{:#}", log.body);
    let moves: Vec<&str> = items
        .iter()
        .filter(|e| e["type"] == json!("status"))
        .map(|e| text(&e["data"]["to"]))
        .collect();
    let browser_history = http(
        status,
        sample("apigw/get-execution-history.json", &browser_refs),
    )
    .await;
    let history_moves: Vec<&str> = browser_history.body["items"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| text(&e["to"]))
        .collect();
    assert_eq!(moves, history_moves);
    let steps: Vec<(u64, &str)> = items
        .iter()
        .filter(|e| e["type"] == json!("step"))
        .map(|e| {
            (
                e["data"]["index"].as_u64().expect("index"),
                text(&e["data"]["status"]),
            )
        })
        .collect();
    assert_eq!(steps, [(0, "passed"), (1, "passed"), (2, "passed")]);

    // The same log as Server-Sent Events through the stream function (configured from the
    // stack, as its Function URL would invoke it): a finished execution's stream replays
    // from after `Last-Event-ID` and ends.
    let stream = function(&functions::STREAM);
    let mut request = sample("apigw/function-url-stream-events.json", &browser_refs);
    request["headers"]["last-event-id"] = json!("1");
    let (code, headers, body) = streamed(stream, request, std::time::Duration::from_secs(20)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/event-stream")
    );
    let sent: Vec<(String, String)> = body
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                    .map(str::to_owned)
            };
            Some((field("event")?, field("id").unwrap_or_default()))
        })
        .collect();
    let mut expected: Vec<(String, String)> = items
        .iter()
        .skip(1)
        .map(|e| (text(&e["type"]).to_owned(), e["seq"].to_string()))
        .collect();
    expected.push(("end".to_owned(), String::new()));
    assert_eq!(sent, expected, "{body}");
    // Without a token: 401, as from the API.
    let mut anonymous = sample("apigw/function-url-stream-events.json", &browser_refs);
    anonymous["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("authorization");
    let (code, _, body) = streamed(stream, anonymous, std::time::Duration::from_secs(5)).await;
    assert_eq!(code, 401, "{body}");

    // A long poll waiting on a running execution answers with the entry of the step reported
    // meanwhile, once the log function has taken that change from the stream.
    let watched = http(
        start,
        without_header(
            sample(
                "apigw/start-case.json",
                &[
                    ("REPLACE_WITH_TOKEN", &token),
                    ("REPLACE_WITH_TEST_CASE_ID", &cases[2]),
                ],
            ),
            "idempotency-key",
        ),
    )
    .await;
    assert_eq!(watched.status, 202, "{:#}", watched.raw);
    let watched = id_of(&watched.body);
    service.settle().await;
    let watched_refs = [
        ("REPLACE_WITH_TOKEN", token.as_str()),
        ("REPLACE_WITH_EXECUTION_ID", watched.as_str()),
    ];
    let so_far = http(
        status,
        with_query(
            sample("apigw/get-execution-events.json", &watched_refs),
            "after=0&wait=0",
        ),
    )
    .await;
    let last_seq = so_far.body["last_seq"].as_u64().expect("last_seq");
    assert!(last_seq >= 1, "{:#}", so_far.body);
    let waiting = http(
        status,
        with_query(
            sample("apigw/get-execution-events.json", &watched_refs),
            &format!("after={last_seq}&wait=20"),
        ),
    );
    let reporting = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let reported = http(
            step_report,
            sample("apigw/report-steps.json", &watched_refs),
        )
        .await;
        assert_eq!(reported.status, 200, "{:#}", reported.raw);
        service.settle().await;
    };
    let began = std::time::Instant::now();
    let (woken, ()) = tokio::join!(waiting, reporting);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(15),
        "the poll waited it out"
    );
    assert_eq!(woken.status, 200, "{:#}", woken.raw);
    let first = &woken.body["items"][0];
    assert_eq!(first["seq"], json!(last_seq + 1), "{:#}", woken.body);
    let new_steps: Vec<&Value> = woken.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["type"] == json!("step"))
        .collect();
    assert_eq!(new_steps.len(), 1, "{:#}", woken.body);
    assert_eq!(new_steps[0]["data"]["index"], json!(0));
    assert_eq!(woken.body["terminal"], json!(false));

    // The suite's trace and history, through the status function.
    let trace = http(status, sample("apigw/get-execution.json", &refs)).await;
    assert_eq!(trace.status, 200, "{:#}", trace.raw);
    assert_eq!(trace.body["status"], json!("failed"), "{:#}", trace.body);
    let counts = &trace.body["children"];
    assert_eq!(
        (&counts["total"], &counts["passed"], &counts["failed"]),
        (&json!(3), &json!(2), &json!(1)),
        "{counts}"
    );
    let history = http(status, sample("apigw/get-execution-history.json", &refs)).await;
    let path: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["to"].as_str().expect("to"))
        .collect();
    assert_eq!(path, ["queued", "running", "failed"]);

    // The failing case on its own, outside any suite.
    let alone = http(
        start,
        sample(
            "apigw/start-case.json",
            &[
                ("REPLACE_WITH_TOKEN", &token),
                ("REPLACE_WITH_TEST_CASE_ID", &cases[1]),
            ],
        ),
    )
    .await;
    assert_eq!(alone.status, 202, "{:#}", alone.raw);
    let alone = id_of(&alone.body);
    service.settle().await;

    // The notifications topic got the failed suite and the failed case run on its own, once
    // each: not the suite's failing case (it is in the suite's trace), nothing that passed.
    let notified: Vec<(String, String)> = receive(&service.sqs, &notification_tap(&stack), 2)
        .await
        .iter()
        .map(|m| {
            let event: Value = serde_json::from_str(m.body().expect("body")).expect("event");
            assert_eq!(event["detail"]["status"], json!("failed"), "{event}");
            (
                text(&event["detail-type"]).to_owned(),
                text(&event["detail"]["execution_id"]).to_owned(),
            )
        })
        .collect();
    let mut notified_sorted = notified.clone();
    notified_sorted.sort();
    let expected = vec![
        ("Execution Finished".to_owned(), alone.clone()),
        ("Suite Finished".to_owned(), execution.clone()),
    ];
    assert_eq!(notified_sorted, expected, "notified {notified:?}");
    assert!(
        !notified
            .iter()
            .any(|(_, id)| [&healthy, &browser, &failing].contains(&id))
    );

    // The sweep's schedule reaches finalize, and with nothing overdue changes nothing.
    let sweep = invoke(
        &service.functions[&logical_id(&functions::FINALIZE)],
        sample("eventbridge/scheduled-sweep.json", &[]),
    )
    .await;
    assert_eq!(service.settle().await, 0, "the sweep published {sweep}");
    let health = http(status, sample("apigw/health.json", &[])).await;
    assert_eq!(health.status, 200, "{:#}", health.raw);
    let unmatched = http(
        status,
        with_path(sample("apigw/health.json", &[]), "/api/v1/no-such-thing"),
    )
    .await;
    unmatched.assert_problem(404, "not_found");

    // The nightly schedule's input, as the template writes it, starts the suite as its owner
    // through the start function, and a retried delivery of the same tick starts nothing more.
    let schedules = stack.description["declared_schedules"]
        .as_array()
        .expect("declared schedules");
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    assert_eq!(
        schedules[0]["target_function"],
        json!(logical_id(&functions::START))
    );
    let suite_id = trace.body["test_suite_id"].as_str().expect("suite id");
    let input = text(&schedules[0]["input"])
        .replace("${NightlySuiteId}", suite_id)
        .replace("${NightlySuiteOwner}", OWNER)
        .replace("<aws.scheduler.scheduled-time>", "2026-11-27T02:00:00Z");
    let input: Value = serde_json::from_str(&input).expect("the schedule's input is JSON");
    let first = invoke(start, input.clone()).await;
    assert_eq!(first["created"], json!(true), "{first}");
    assert_eq!(first["execution"]["owner"], json!(OWNER));
    assert_eq!(first["execution"]["test_suite_id"], json!(suite_id));
    let again = invoke(start, input).await;
    assert_eq!(again["created"], json!(false), "{again}");
    assert_eq!(again["execution"]["id"], first["execution"]["id"]);

    // A test case quarantined through the catalog function, which announces it.
    let until = runledger::domain::time::Timestamp::now()
        .plus_millis(24 * 3600 * 1000)
        .to_rfc3339();
    let quarantined = http(
        catalog,
        sample(
            "apigw/quarantine-test-case.json",
            &[
                ("REPLACE_WITH_TOKEN", token.as_str()),
                ("REPLACE_WITH_TEST_CASE_ID", cases[2].as_str()),
                ("REPLACE_WITH_UNTIL", until.as_str()),
            ],
        ),
    )
    .await;
    assert_eq!(quarantined.status, 200, "{:#}", quarantined.raw);
    assert_eq!(quarantined.body["until"], json!(until));

    // Least privilege, checked: every AWS request each function made on the way (its cold
    // start's SSM read included) is allowed by its own role, as the stack defines it.
    let calls = calls.lock().expect("call log").clone();
    let mut exercised: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut refused = Vec::new();
    for call in &calls {
        let statements = stack.statements(&call.function);
        for (action, resource) in permissions_needed(call) {
            if !allows(&statements, &action, &resource) {
                refused.push(format!("{}: {action} on {resource}", call.function));
            }
            exercised
                .entry(call.function.clone())
                .or_default()
                .insert(action);
        }
    }
    assert!(refused.is_empty(), "not allowed by the roles: {refused:#?}");
    for spec in functions::ALL {
        let actions = exercised
            .get(&logical_id(&spec))
            .cloned()
            .unwrap_or_default();
        assert!(!actions.is_empty(), "{} made no AWS request", spec.name);
    }
    assert!(exercised[&logical_id(&functions::RUNNER)].contains("events:PutEvents"));
    assert!(exercised[&logical_id(&functions::START)].contains("sqs:SendMessage"));
    // And the roles are narrow: what a function does not do, its role does not allow.
    let table = arn("dynamodb", &format!("table/{}", stack.output("TableName")));
    let status_role = stack.statements(&logical_id(&functions::STATUS));
    assert!(!allows(&status_role, "dynamodb:PutItem", &table));
    assert!(!allows(
        &status_role,
        "sqs:SendMessage",
        &arn("sqs", queue_name(&stack.output("HighQueueUrl")))
    ));
    let runner_role = stack.statements(&logical_id(&functions::RUNNER));
    assert!(!allows(
        &runner_role,
        "ssm:GetParameter",
        &arn("ssm", "parameter/runledger/jwt-secret")
    ));
    assert!(!allows(&runner_role, "dynamodb:DeleteItem", &table));
    assert!(exercised[&logical_id(&functions::LOG)].contains("dynamodb:BatchWriteItem"));
    let log_role = stack.statements(&logical_id(&functions::LOG));
    for action in ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"] {
        assert!(
            !allows(&log_role, action, &table),
            "the log role allows {action}"
        );
    }
    assert!(!allows(
        &log_role,
        "ssm:GetParameter",
        &arn("ssm", "parameter/runledger/jwt-secret")
    ));
    assert!(exercised[&logical_id(&functions::STREAM)].contains("dynamodb:Query"));
    let stream_role = stack.statements(&logical_id(&functions::STREAM));
    for action in [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
    ] {
        assert!(
            !allows(&stream_role, action, &table),
            "the stream role allows {action}"
        );
    }
    assert!(exercised[&logical_id(&functions::CATALOG)].contains("events:PutEvents"));
    let catalog_role = stack.statements(&logical_id(&functions::CATALOG));
    assert!(!allows(
        &catalog_role,
        "sqs:SendMessage",
        &arn("sqs", queue_name(&stack.output("HighQueueUrl")))
    ));
}
