//! Lambda payloads for tests that drive the functions' handlers: the samples in `events/`
//! with their placeholders filled, the gateway's view of an HTTP reply, SQS batches as an event
//! source mapping delivers them, reading queues and what a bus published, and a loopback HTTP
//! target for `http` steps.

use crate::emulator::{REGION, unique_name, workspace_root};
use crate::wire::id_of;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use base64::Engine as _;
use runledger::bus::eventbridge::EVENT_SOURCE;
use runledger::lambda::{FunctionContext, handle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// Samples
// ------------------------------------------------------------------------------------------

pub fn events_dir() -> PathBuf {
    workspace_root().join("events")
}

/// A sample payload with its placeholders replaced (those it has); none may be left.
pub fn sample(path: &str, substitutions: &[(&str, &str)]) -> Value {
    let file = events_dir().join(path);
    let mut text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    for (placeholder, value) in substitutions {
        text = text.replace(placeholder, value);
    }
    if let Some(at) = text.find("REPLACE_WITH_") {
        panic!(
            "{path}: placeholder left at {}",
            &text[at..(at + 40).min(text.len())]
        );
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every sample file under `events/<dir>/`.
pub fn samples_in(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir().join(dir))
        .unwrap_or_else(|e| panic!("events/{dir}: {e}"))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "events/{dir} has no samples");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read sample");
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, value)
        })
        .collect()
}

/// Replaces an HTTP sample's body (text, not base64).
pub fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = json!(body.to_string());
    event["isBase64Encoded"] = json!(false);
    event
}

/// Points an HTTP API sample at another path.
pub fn with_path(mut event: Value, path: &str) -> Value {
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event
}

/// Gives an HTTP API sample this query string (`a=1&b=2`), raw and parsed.
pub fn with_query(mut event: Value, query: &str) -> Value {
    // Plain `name=value` pairs only (nothing to percent-decode in the tests' queries).
    let parsed: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), json!(value))
        })
        .collect();
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = Value::Object(parsed);
    event
}

pub fn without_header(mut event: Value, name: &str) -> Value {
    event["headers"]
        .as_object_mut()
        .expect("headers")
        .remove(name);
    event
}

/// An HTTP response as the gateway got it, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub raw: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// An RFC 9457 problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{:#}", self.raw);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], json!(status), "{}", self.body);
        assert_eq!(self.body["code"], json!(code), "{}", self.body);
        assert_eq!(
            self.raw["isBase64Encoded"],
            json!(false),
            "problems stay text"
        );
    }
}

pub fn reply(raw: Value) -> Reply {
    let mut headers = BTreeMap::new();
    if let Some(single) = raw["headers"].as_object() {
        for (name, value) in single {
            headers.insert(name.to_lowercase(), value.as_str().unwrap_or("").to_owned());
        }
    }
    if let Some(multi) = raw["multiValueHeaders"].as_object() {
        for (name, values) in multi {
            if let Some(first) = values.as_array().and_then(|v| v.first()) {
                headers.insert(name.to_lowercase(), first.as_str().unwrap_or("").to_owned());
            }
        }
    }
    let text = match raw["body"].as_str() {
        None => String::new(),
        Some(text) if raw["isBase64Encoded"] == json!(true) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 body"),
        )
        .expect("utf-8 body"),
        Some(text) => text.to_owned(),
    };
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body {text:?}: {e}"))
    };
    Reply {
        status: u16::try_from(raw["statusCode"].as_u64().expect("statusCode")).expect("status"),
        headers,
        body,
        raw,
    }
}

pub async fn http(function: &FunctionContext, event: Value) -> Reply {
    match handle(function, event).await {
        Ok(raw) => reply(raw),
        Err(e) => panic!("`{}` failed an HTTP request: {e}", function.spec().name),
    }
}

/// A request to a function whose responses stream, read to the end of its body (which must
/// come within `within`): status, headers (lowercase names) and body text.
pub async fn streamed(
    function: &FunctionContext,
    event: Value,
    within: Duration,
) -> (u16, BTreeMap<String, String>, String) {
    use futures_util::StreamExt;
    let response = runledger::lambda::handle_streaming(function, event)
        .await
        .unwrap_or_else(|e| panic!("`{}` failed a streamed request: {e}", function.spec().name));
    let prelude = response.metadata_prelude;
    let headers = prelude
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let mut stream = response.stream;
    let mut body = Vec::new();
    tokio::time::timeout(within, async {
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.expect("a body chunk"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not end within {within:?}"));
    let text = String::from_utf8(body).expect("a UTF-8 body");
    (prelude.status_code.as_u16(), headers, text)
}

pub async fn invoke(function: &FunctionContext, event: Value) -> Value {
    handle(function, event)
        .await
        .unwrap_or_else(|e| panic!("`{}` failed: {e}", function.spec().name))
}

pub fn failed_ids(batch_response: &Value) -> Vec<String> {
    batch_response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {batch_response}"))
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_owned()
        })
        .collect()
}

/// Received SQS messages as Lambda's event source mapping delivers them.
pub fn sqs_event(messages: &[Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Receives from a queue until `count` messages came (or 10 s passed), then once more.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) -> Vec<Message> {
    let mut received = Vec::new();
    let started = Instant::now();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let messages = output.messages();
        received.extend(messages.iter().cloned());
        if messages.is_empty() {
            if received.len() >= count || started.elapsed() > Duration::from_secs(10) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN")
}

/// A tiny HTTP target on loopback: `/health` answers 200 `{"status":"ok"}`, everything else
/// 503. Counts the requests it answers.
pub async fn http_target() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let request = String::from_utf8_lossy(&head);
                let (status, body) = if request.starts_with("GET /health ") {
                    ("200 OK", r#"{"status":"ok"}"#)
                } else {
                    ("503 Service Unavailable", r#"{"status":"down"}"#)
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, hits)
}

/// Creates one `http` test case per `(name, path)` through the catalog function, from
/// `apigw/create-http-test-case.json`: a GET of `base_url` + `path` that expects the target's
/// healthy answer. Returns their ids, in order.
pub async fn create_http_cases(
    catalog: &FunctionContext,
    token: &str,
    base_url: &str,
    cases: &[(&str, &str)],
) -> Vec<String> {
    let request = sample(
        "apigw/create-http-test-case.json",
        &[
            ("REPLACE_WITH_TOKEN", token),
            ("REPLACE_WITH_BASE_URL", base_url),
        ],
    );
    let definition: Value =
        serde_json::from_str(request["body"].as_str().expect("body")).expect("case JSON");
    let mut ids = Vec::new();
    for (name, path) in cases {
        let mut body = definition.clone();
        body["name"] = json!(name);
        body["steps"][0]["http"]["url"] = json!(format!("{{{{base_url}}}}{path}"));
        let created = http(catalog, with_body(request.clone(), body)).await;
        assert_eq!(created.status, 201, "{:#}", created.raw);
        ids.push(id_of(&created.body));
    }
    ids
}

/// Creates a suite of the first three of `cases` through the catalog function, from
/// `apigw/create-test-suite.json`, asserting `201`; returns its id.
pub async fn create_suite(catalog: &FunctionContext, token: &str, cases: &[String]) -> String {
    let suite = http(
        catalog,
        sample(
            "apigw/create-test-suite.json",
            &[
                ("REPLACE_WITH_TOKEN", token),
                ("REPLACE_WITH_TEST_CASE_ID_A", &cases[0]),
                ("REPLACE_WITH_TEST_CASE_ID_B", &cases[1]),
                ("REPLACE_WITH_TEST_CASE_ID_C", &cases[2]),
            ],
        ),
    )
    .await;
    assert_eq!(suite.status, 201, "{:#}", suite.raw);
    id_of(&suite.body)
}

/// Starts a suite through the start function, from `apigw/start-suite.json`, asserting
/// `202`; returns the reply.
pub async fn start_suite(start: &FunctionContext, token: &str, suite_id: &str) -> Reply {
    let started = http(
        start,
        sample(
            "apigw/start-suite.json",
            &[
                ("REPLACE_WITH_TOKEN", token),
                ("REPLACE_WITH_TEST_SUITE_ID", suite_id),
            ],
        ),
    )
    .await;
    assert_eq!(started.status, 202, "{:#}", started.raw);
    started
}

/// A rule on the bus that copies every runledger event to an SQS queue.
pub struct ObservedBus {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl ObservedBus {
    pub async fn on(sdk: &SdkConfig, bus_name: &str) -> ObservedBus {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("observer"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn = queue_arn(&sqs, &queue_url).await;
        let rule = unique_name("observe-all");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(bus_name)
            .event_pattern(json!({"source": [EVENT_SOURCE]}).to_string())
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus_name)
            .targets(
                Target::builder()
                    .id("observer")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put targets");
        ObservedBus { sqs, queue_url }
    }

    /// The events that arrived since the last read: at least `count` of them unless 10 s
    /// pass first.
    pub async fn read(&self, count: usize) -> Vec<Value> {
        receive(&self.sqs, &self.queue_url, count)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().expect("body")).expect("an EventBridge event"))
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// The table's stream, as Lambda's event source mapping delivers it
// ------------------------------------------------------------------------------------------

/// Plays Lambda's event source mapping on a table's DynamoDB stream: reads the stream with the
/// DynamoDB Streams API from its oldest record (`TRIM_HORIZON`), and hands its records out in
/// order, in batches shaped as Lambda's DynamoDB event. A batch answered with
/// `batchItemFailures` comes again from the first record named there, as Lambda retries a
/// stream batch from its checkpoint. Each poll reads each shard once, as Lambda's poller does
/// (four times a second there); a mapping's filter drops the records it does not match.
pub struct TableStream {
    streams: aws_sdk_dynamodbstreams::Client,
    pub stream_arn: String,
    batch_size: usize,
    /// Each shard's next iterator (`None` once a closed shard is read to its end).
    shards: BTreeMap<String, Option<String>>,
    /// Records read and not yet acknowledged, oldest first.
    waiting: std::collections::VecDeque<Value>,
    /// How many records the batch being delivered has.
    delivering: usize,
    /// The mapping's filter pattern (`FilterCriteria`), if any.
    filter: Option<Value>,
}

impl TableStream {
    /// The stream of `table` (the newest one it has).
    pub async fn of_table(sdk: &SdkConfig, table: &str, batch_size: usize) -> TableStream {
        let arn = aws_sdk_dynamodb::Client::new(sdk)
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describe table")
            .table
            .and_then(|t| t.latest_stream_arn)
            .unwrap_or_else(|| panic!("table {table} has no stream"));
        TableStream::at(sdk, &arn, batch_size)
    }

    /// The stream whose ARN an event source mapping names.
    pub fn at(sdk: &SdkConfig, stream_arn: &str, batch_size: usize) -> TableStream {
        TableStream {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            stream_arn: stream_arn.to_owned(),
            batch_size: batch_size.max(1),
            shards: BTreeMap::new(),
            waiting: Default::default(),
            delivering: 0,
            filter: None,
        }
    }

    /// Delivers only the records `pattern` matches (an event source mapping's filter, in
    /// EventBridge's pattern syntax: fields to match, each a list of values it may have).
    pub fn filtered(mut self, pattern: Value) -> TableStream {
        self.filter = Some(pattern);
        self
    }

    /// The next batch as Lambda's event (`{"Records": [...]}`), `None` when nothing waits.
    /// Answer it with [`done`](Self::done) before asking for the next.
    pub async fn next_batch(&mut self) -> Option<Value> {
        if self.waiting.len() < self.batch_size {
            self.read().await;
        }
        if self.waiting.is_empty() {
            return None;
        }
        self.delivering = self.waiting.len().min(self.batch_size);
        let records: Vec<Value> = self.waiting.iter().take(self.delivering).cloned().collect();
        Some(json!({ "Records": records }))
    }

    /// What the function answered the batch with: its records are taken, up to the first one
    /// its `batchItemFailures` names. Returns how many it names.
    pub fn done(&mut self, response: &Value) -> usize {
        let failed = failed_ids(response);
        let first = failed.first().and_then(|id| {
            self.waiting
                .iter()
                .take(self.delivering)
                .position(|r| r["dynamodb"]["SequenceNumber"] == json!(id))
        });
        let taken = first.unwrap_or(self.delivering);
        self.waiting.drain(..taken);
        self.delivering = 0;
        failed.len()
    }

    /// Delivers every waiting batch to `function`'s handler, as Lambda would, until none is
    /// left; every batch must be taken whole. Returns how many records it delivered.
    pub async fn deliver_all(&mut self, function: &FunctionContext) -> usize {
        let mut delivered = 0;
        while let Some(batch) = self.next_batch().await {
            let records = self.delivering;
            let response = invoke(function, batch).await;
            assert_eq!(self.done(&response), 0, "records failed: {response}");
            delivered += records;
        }
        delivered
    }

    /// Reads what the shards have past where they were read to.
    async fn read(&mut self) {
        // The shards are looked up when none is being read (at first, and once every shard
        // read so far has closed), not on every poll.
        if !self.shards.values().any(Option::is_some) {
            self.find_shards().await;
        }
        let open: Vec<(String, String)> = self
            .shards
            .iter()
            .filter_map(|(shard, iterator)| Some((shard.clone(), iterator.clone()?)))
            .collect();
        for (shard_id, iterator) in open {
            // One read a shard per poll, as Lambda's poller does.
            let output = self
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(1000)
                .send()
                .await
                .expect("read the stream");
            let records = output.records.unwrap_or_default();
            self.waiting.extend(
                records
                    .iter()
                    .map(|record| lambda_record(record, &self.stream_arn, REGION))
                    .filter(|record| {
                        self.filter
                            .as_ref()
                            .is_none_or(|f| matches_pattern(f, record))
                    }),
            );
            self.shards.insert(shard_id, output.next_shard_iterator);
        }
    }

    /// Starts reading, from their oldest record, the shards not read yet.
    async fn find_shards(&mut self) {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .expect("describe the stream")
            .stream_description
            .expect("a stream description");
        for shard in description.shards.unwrap_or_default() {
            let Some(shard_id) = shard.shard_id else {
                continue;
            };
            if self.shards.contains_key(&shard_id) {
                continue;
            }
            let iterator = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("a shard iterator")
                .shard_iterator;
            self.shards.insert(shard_id, iterator);
        }
    }
}

/// Whether a record matches an event filter pattern: every field the pattern names is there,
/// and a value the pattern lists (the plain values of EventBridge's syntax).
pub fn matches_pattern(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, wanted)| {
            record
                .get(name)
                .is_some_and(|value| matches_pattern(wanted, value))
        }),
        Value::Array(allowed) => allowed.contains(record),
        other => panic!("a filter pattern holds {other}, not fields or lists of values"),
    }
}

/// A stream record as Lambda's DynamoDB event holds it (images in DynamoDB's JSON).
pub fn lambda_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
    region: &str,
) -> Value {
    let change = record.dynamodb.as_ref().expect("a stream record's change");
    let image = |item: Option<&std::collections::HashMap<String, StreamValue>>| {
        item.map(|item| {
            Value::Object(
                item.iter()
                    .map(|(name, value)| (name.clone(), dynamodb_json(value)))
                    .collect(),
            )
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change
            .approximate_creation_date_time
            .map_or(0.0, |t| t.as_secs_f64()),
        "Keys": image(change.keys.as_ref()).unwrap_or(json!({})),
        "SequenceNumber": change.sequence_number,
        "SizeBytes": change.size_bytes.unwrap_or(0),
        "StreamViewType": change.stream_view_type.as_ref().map(|t| t.as_str()),
    });
    if let Some(new) = image(change.new_image.as_ref()) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image(change.old_image.as_ref()) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version,
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region.as_deref().unwrap_or(region),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

type StreamValue = aws_sdk_dynamodbstreams::types::AttributeValue;

/// One attribute value in DynamoDB's JSON (`{"S": "..."}`, `{"N": "1"}`, ...).
fn dynamodb_json(value: &StreamValue) -> Value {
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match value {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::B(b) => json!({ "B": base64(b.as_ref()) }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(n) => json!({ "NULL": n }),
        StreamValue::Ss(v) => json!({ "SS": v }),
        StreamValue::Ns(v) => json!({ "NS": v }),
        StreamValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| base64(b.as_ref())).collect::<Vec<_>>() })
        }
        StreamValue::L(v) => json!({ "L": v.iter().map(dynamodb_json).collect::<Vec<_>>() }),
        StreamValue::M(m) => json!({
            "M": m.iter().map(|(k, v)| (k.clone(), dynamodb_json(v))).collect::<serde_json::Map<_, _>>()
        }),
        other => panic!("an attribute value of an unknown kind: {other:?}"),
    }
}
