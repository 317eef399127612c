//! The SQS adapters against the AWS emulator: work queues by priority, batching, dead-letter
//! queues, partial batch failures and the step-report queue. These tests fail (never skip)
//! when the emulator is missing.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use runledger::domain::errors::StoreError;
use runledger::domain::events::WorkItem;
use runledger::domain::execution::{Priority, StepReport, StepStatus};
use runledger::domain::time::Timestamp;
use runledger::lambda::sqs::process_batch;
use runledger::ports::WorkQueue;
use runledger::queue::sqs::{
    MAX_RECEIVE_COUNT, SqsStepReportSender, SqsWorkQueue, StepReportMessage, create_queues,
    parse_work_item,
};
use runledger::settings::QueueUrls;
use runledger_testkit::emulator::{Emulator, unique_name};
use runledger_testkit::lambda::receive;
use runledger_testkit::scripted_aws::ScriptedAws;
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

async fn client() -> Client {
    Client::new(&Emulator::get().sdk_config().await)
}

fn execution_id(n: usize) -> String {
    format!("ex_{n:026}")
}

fn sqs_message(id: Option<&str>, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = id.map(str::to_owned);
    message.body = Some(body.to_owned());
    message
}

fn event_of(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

#[tokio::test]
async fn work_items_come_out_by_priority_each_exactly_once() {
    let client = client().await;
    let (urls, _) = create_queues(&client, &unique_name("rl-prio"))
        .await
        .expect("create queues");
    let queue = SqsWorkQueue::new(client.clone(), urls);

    // 7 high, 12 normal (more than one batch call), 6 low, interleaved.
    let priorities = |i: usize| match i % 4 {
        0 => Priority::High,
        1 | 3 => Priority::Normal,
        _ => Priority::Low,
    };
    let items: Vec<WorkItem> = (0..25)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: priorities(i),
        })
        .collect();
    let count = |p: Priority| items.iter().filter(|i| i.priority == p).count();
    assert_eq!(
        (
            count(Priority::High),
            count(Priority::Normal),
            count(Priority::Low)
        ),
        (7, 12, 6)
    );
    queue.enqueue(&items).await.expect("enqueue 25 items");

    let mut received = Vec::new();
    loop {
        let batch = queue.receive(10, 0).await.expect("receive");
        assert!(batch.len() <= 10, "receive returns at most max items");
        if batch.is_empty() {
            break;
        }
        for (item, receipt, url) in batch {
            assert_eq!(
                url,
                queue.url_for(item.priority),
                "{item:?} came from its queue"
            );
            queue.delete(&url, &receipt).await.expect("delete");
            received.push(item);
        }
    }
    let order: Vec<Priority> = received.iter().map(|i| i.priority).collect();
    assert!(
        order.is_sorted(),
        "high before normal before low, got {order:?}"
    );
    assert_eq!(received.len(), 25, "every item exactly once");
    let by_id: BTreeMap<&str, Priority> = received
        .iter()
        .map(|i| (i.execution_id.as_str(), i.priority))
        .collect();
    let expected: BTreeMap<&str, Priority> = items
        .iter()
        .map(|i| (i.execution_id.as_str(), i.priority))
        .collect();
    assert_eq!(by_id, expected);

    // Nothing left, and a waiting receive waits about as long as asked.
    let started = Instant::now();
    assert!(queue.receive(5, 1).await.expect("receive").is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_receive_takes_high_priority_work_that_arrived_last() {
    let client = client().await;
    let (urls, _) = create_queues(&client, &unique_name("rl-late"))
        .await
        .expect("create queues");
    let queue = SqsWorkQueue::new(client, urls);
    let low: Vec<WorkItem> = (0..3)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: Priority::Low,
        })
        .collect();
    queue.enqueue(&low).await.expect("enqueue low");
    let urgent = WorkItem {
        execution_id: execution_id(99),
        priority: Priority::High,
    };
    queue
        .enqueue(std::slice::from_ref(&urgent))
        .await
        .expect("enqueue high");
    let first = queue.receive(1, 0).await.expect("receive");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, urgent);
}

#[tokio::test]
async fn a_waiting_receive_takes_work_that_arrives_while_it_waits() {
    let client = client().await;
    let (urls, _) = create_queues(&client, &unique_name("rl-wait"))
        .await
        .expect("create queues");
    let queue = SqsWorkQueue::new(client, urls);
    let producer = queue.clone();
    let items = [Priority::High, Priority::Low].map(|priority| WorkItem {
        execution_id: execution_id(priority as usize),
        priority,
    });
    let sent = items.clone();
    let started = Instant::now();
    let enqueue = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        for item in sent {
            producer.enqueue(&[item]).await.expect("enqueue");
        }
    });
    let mut received = Vec::new();
    while received.len() < items.len() && started.elapsed() < Duration::from_secs(10) {
        received.extend(queue.receive(5, 8).await.expect("receive"));
    }
    enqueue.await.expect("producer");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1_400), "{waited:?}");
    assert!(waited < Duration::from_secs(6), "woke up late: {waited:?}");
    let got: Vec<WorkItem> = received.into_iter().map(|(item, _, _)| item).collect();
    assert_eq!(got.len(), 2);
    assert!(items.iter().all(|i| got.contains(i)), "{got:?}");
}

#[tokio::test]
async fn large_enqueues_are_split_into_batches_of_ten() {
    let client = client().await;
    let (urls, _) = create_queues(&client, &unique_name("rl-split"))
        .await
        .expect("create queues");
    let queue = SqsWorkQueue::new(client.clone(), urls.clone());
    // The emulator refuses a SendMessageBatch of more than ten entries.
    let items: Vec<WorkItem> = (0..47)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: Priority::Normal,
        })
        .collect();
    queue.enqueue(&items).await.expect("enqueue 47 items");
    queue.enqueue(&[]).await.expect("enqueue nothing");
    let messages = receive(&client, &urls.normal, 0).await;
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            parse_work_item(m.body().expect("body"))
                .expect("a work item")
                .execution_id
        })
        .collect();
    assert_eq!(messages.len(), 47);
    assert_eq!(ids.len(), 47);
    assert!(receive(&client, &urls.high, 0).await.is_empty());
    assert!(receive(&client, &urls.low, 0).await.is_empty());
}

#[tokio::test]
async fn every_queue_has_a_dead_letter_queue_and_creation_is_idempotent() {
    let client = client().await;
    let prefix = unique_name("rl-dlq");
    let (urls, step_url) = create_queues(&client, &prefix)
        .await
        .expect("create queues");
    let again = create_queues(&client, &prefix)
        .await
        .expect("create the same queues again");
    assert_eq!(again, (urls.clone(), step_url.clone()));

    let named = [
        ("high", &urls.high),
        ("normal", &urls.normal),
        ("low", &urls.low),
        ("step-reports", &step_url),
    ];
    for (suffix, url) in named {
        let name = format!("{prefix}-{suffix}");
        assert!(url.ends_with(&name), "{url} is {name}");
        let attributes = client
            .get_queue_attributes()
            .queue_url(url.as_str())
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        let policy: serde_json::Value = serde_json::from_str(
            attributes
                .get(&QueueAttributeName::RedrivePolicy)
                .expect("a redrive policy"),
        )
        .expect("policy JSON");
        let target = policy["deadLetterTargetArn"].as_str().expect("target ARN");
        assert!(target.ends_with(&format!(":{name}-dlq")), "{target}");
        let max = &policy["maxReceiveCount"];
        let max = max
            .as_u64()
            .or_else(|| max.as_str().and_then(|s| s.parse().ok()));
        assert_eq!(max, Some(u64::from(MAX_RECEIVE_COUNT)));
        client
            .get_queue_url()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("the dead-letter queue exists");
    }

    // A poison message moves to the dead-letter queue after MAX_RECEIVE_COUNT receives.
    client
        .send_message()
        .queue_url(&urls.low)
        .message_body("not a work item")
        .send()
        .await
        .expect("send");
    let queue = SqsWorkQueue::new(client.clone(), urls.clone());
    for _ in 0..MAX_RECEIVE_COUNT {
        let output = client
            .receive_message()
            .queue_url(&urls.low)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive");
        assert_eq!(output.messages().len(), 1);
    }
    assert!(
        queue.receive(10, 0).await.expect("receive").is_empty(),
        "the poison message is gone from the work queue"
    );
    let dlq_url = client
        .get_queue_url()
        .queue_name(format!("{prefix}-low-dlq"))
        .send()
        .await
        .expect("dlq")
        .queue_url
        .expect("dlq url");
    let dead = receive(&client, &dlq_url, 0).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("not a work item"));
}

#[tokio::test]
async fn a_queue_made_without_a_dead_letter_queue_gets_one() {
    let client = client().await;
    let prefix = unique_name("rl-old");
    let old_url = client
        .create_queue()
        .queue_name(format!("{prefix}-normal"))
        .send()
        .await
        .expect("create a bare queue")
        .queue_url
        .expect("url");
    let (urls, _) = create_queues(&client, &prefix)
        .await
        .expect("create queues over an existing one");
    assert_eq!(urls.normal, old_url);
    let attributes = client
        .get_queue_attributes()
        .queue_url(&old_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .expect("attributes")
        .attributes
        .unwrap_or_default();
    let policy = attributes
        .get(&QueueAttributeName::RedrivePolicy)
        .expect("a redrive policy now");
    assert!(
        policy.contains(&format!(":{prefix}-normal-dlq")),
        "{policy}"
    );
}

#[tokio::test]
async fn one_bad_message_fails_alone() {
    let client = client().await;
    let (urls, _) = create_queues(&client, &unique_name("rl-batch"))
        .await
        .expect("create queues");
    let queue = SqsWorkQueue::new(client.clone(), urls.clone());
    let items: Vec<WorkItem> = (0..4)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: Priority::Normal,
        })
        .collect();
    queue.enqueue(&items[..2]).await.expect("enqueue");
    client
        .send_message()
        .queue_url(&urls.normal)
        .message_body("{\"execution_id\": 7}")
        .send()
        .await
        .expect("send a malformed message");
    queue.enqueue(&items[2..]).await.expect("enqueue");

    // The batch as Lambda would hand it over: the messages SQS delivers.
    let messages = receive(&client, &urls.normal, 0).await;
    assert_eq!(messages.len(), 5);
    let bad_id = messages
        .iter()
        .find(|m| m.body() == Some("{\"execution_id\": 7}"))
        .and_then(|m| m.message_id())
        .expect("the malformed message")
        .to_owned();
    let records = messages
        .iter()
        .map(|m| {
            let mut record = sqs_message(m.message_id(), m.body().unwrap_or_default());
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record
        })
        .collect();

    let handled = Cell::new(0);
    let parsed = std::cell::RefCell::new(Vec::new());
    let response = process_batch(event_of(records), |message| {
        handled.set(handled.get() + 1);
        let result = parse_work_item(message.body.as_deref().unwrap_or_default());
        let parsed = &parsed;
        async move {
            parsed.borrow_mut().push(result?);
            Ok(())
        }
    })
    .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec![bad_id.as_str()]);
    assert_eq!(
        handled.get(),
        5,
        "the bad message does not stop its batch mates"
    );
    let mut good = parsed.into_inner();
    good.sort_by(|a, b| a.execution_id.cmp(&b.execution_id));
    assert_eq!(good, items);

    // The response is what Lambda reads.
    let json = serde_json::to_value(&response).expect("response JSON");
    assert_eq!(
        json,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": bad_id}]})
    );
}

#[tokio::test]
async fn a_failed_message_without_an_id_fails_the_whole_batch() {
    let good = serde_json::to_string(&WorkItem {
        execution_id: execution_id(1),
        priority: Priority::Low,
    })
    .expect("json");
    let event = event_of(vec![
        sqs_message(Some("m-1"), &good),
        sqs_message(None, &good),
        sqs_message(None, "garbage"),
        sqs_message(Some("m-4"), "garbage"),
    ]);
    let response = process_batch(event, |message| {
        let body = message.body.clone().unwrap_or_default();
        async move { parse_work_item(&body).map(|_| ()) }
    })
    .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // An empty identifier makes Lambda retry the whole batch; the id-less message that
    // succeeded is not reported.
    assert_eq!(failed, vec!["", "m-4"]);

    let all_good = event_of(vec![sqs_message(Some("m-1"), &good)]);
    let response = process_batch(all_good, |_| async { Ok(()) }).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        process_batch(SqsEvent::default(), |_| async {
            Err("never called".to_owned())
        })
        .await
        .batch_item_failures
        .is_empty()
    );
}

fn report(index: u32, status: StepStatus) -> StepReport {
    StepReport {
        index,
        status,
        name: Some(format!("step {index}")),
        started_at: Some(Timestamp::from_millis(1_764_151_200_000)),
        finished_at: Some(Timestamp::from_millis(1_764_151_200_840)),
        duration_ms: Some(840),
        message: (status == StepStatus::Failed).then(|| "expected 200, got 503".to_owned()),
        output: Some("é".repeat(100)),
    }
}

#[tokio::test]
async fn step_report_messages_round_trip() {
    let client = client().await;
    let (_, step_url) = create_queues(&client, &unique_name("rl-steps"))
        .await
        .expect("create queues");
    let sender = SqsStepReportSender::new(client.clone(), step_url.clone());
    let mut messages: Vec<StepReportMessage> = (0..12)
        .map(|i| StepReportMessage {
            execution_id: execution_id(i),
            reporter: "ci:github".to_owned(),
            steps: (0..3)
                .map(|s| {
                    let status = if s == 2 && i % 2 == 0 {
                        StepStatus::Failed
                    } else {
                        StepStatus::Passed
                    };
                    report(s, status)
                })
                .collect(),
        })
        .collect();
    // More steps than one report carries: sent as two messages (500 + 100 steps).
    messages.push(StepReportMessage {
        execution_id: execution_id(500),
        reporter: "agent:browser".to_owned(),
        steps: (0..600).map(|s| report(s, StepStatus::Passed)).collect(),
    });
    sender.send(&messages).await.expect("send 13 reports");

    let received: Vec<StepReportMessage> = receive(&client, &step_url, 0)
        .await
        .iter()
        .map(|m| StepReportMessage::parse(m.body().expect("body")).expect("a step report"))
        .collect();
    assert_eq!(received.len(), 14);
    let mut by_execution: BTreeMap<String, Vec<StepReportMessage>> = BTreeMap::new();
    for message in received {
        by_execution
            .entry(message.execution_id.clone())
            .or_default()
            .push(message);
    }
    for sent in &messages[..12] {
        assert_eq!(
            by_execution.get(&sent.execution_id),
            Some(&vec![sent.clone()])
        );
    }
    let mut parts = by_execution
        .remove(&execution_id(500))
        .expect("the split one");
    parts.sort_by_key(|p| p.steps[0].index);
    assert_eq!(
        parts.iter().map(|p| p.steps.len()).collect::<Vec<_>>(),
        vec![500, 100]
    );
    assert!(parts.iter().all(|p| p.reporter == "agent:browser"));
    let steps: Vec<StepReport> = parts.into_iter().flat_map(|p| p.steps).collect();
    assert_eq!(steps, messages[12].steps);
}

#[tokio::test]
async fn oversized_step_reports_are_split_to_fit_a_batch() {
    let client = client().await;
    let (_, step_url) = create_queues(&client, &unique_name("rl-big"))
        .await
        .expect("create queues");
    let sender = SqsStepReportSender::new(client.clone(), step_url.clone());
    // 100 steps of 10 KB output each: about 1 MB, far above one batch's 256 KiB.
    let message = StepReportMessage {
        execution_id: execution_id(1),
        reporter: "ci:github".to_owned(),
        steps: (0..100)
            .map(|s| StepReport {
                output: Some("x".repeat(10_000)),
                ..report(s, StepStatus::Passed)
            })
            .collect(),
    };
    sender
        .send(std::slice::from_ref(&message))
        .await
        .expect("send");
    let mut parts: Vec<StepReportMessage> = receive(&client, &step_url, 0)
        .await
        .iter()
        .map(|m| {
            let body = m.body().expect("body");
            assert!(body.len() <= runledger::queue::sqs::MAX_BATCH_BYTES);
            StepReportMessage::parse(body).expect("a step report")
        })
        .collect();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    parts.sort_by_key(|p| p.steps[0].index);
    let steps: Vec<StepReport> = parts.into_iter().flat_map(|p| p.steps).collect();
    assert_eq!(steps, message.steps);

    // One step larger than a message can carry is refused, not sent.
    let huge = StepReportMessage {
        execution_id: execution_id(2),
        reporter: "ci:github".to_owned(),
        steps: vec![StepReport {
            output: Some("x".repeat(300_000)),
            ..report(0, StepStatus::Passed)
        }],
    };
    assert!(sender.send(&[huge]).await.is_err());
    assert!(receive(&client, &step_url, 0).await.is_empty());
}

fn sent_entries(request: &Value) -> Vec<(String, WorkItem)> {
    request["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let id = e["Id"].as_str().expect("id").to_owned();
            let item = parse_work_item(e["MessageBody"].as_str().expect("body")).expect("item");
            (id, item)
        })
        .collect()
}

fn work_queue_on(fake: &ScriptedAws, client: Client) -> SqsWorkQueue {
    SqsWorkQueue::new(
        client,
        QueueUrls {
            high: format!("{}/123456789012/high", fake.endpoint),
            normal: format!("{}/123456789012/normal", fake.endpoint),
            low: format!("{}/123456789012/low", fake.endpoint),
        },
    )
}

#[tokio::test]
async fn entries_a_batch_refused_are_sent_again() {
    let fake = ScriptedAws::start(
        "application/x-amz-json-1.0",
        vec![
            json!({
                "Successful": [
                    {"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "-"},
                    {"Id": "2", "MessageId": "m2", "MD5OfMessageBody": "-"}
                ],
                "Failed": [
                    {"Id": "1", "SenderFault": false, "Code": "InternalError", "Message": "try again"}
                ]
            }),
            json!({
                "Successful": [{"Id": "1", "MessageId": "m1", "MD5OfMessageBody": "-"}],
                "Failed": []
            }),
        ],
    )
    .await;
    let queue = work_queue_on(&fake, Client::new(&fake.sdk_config().await));
    let items: Vec<WorkItem> = (0..3)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: Priority::Low,
        })
        .collect();
    queue.enqueue(&items).await.expect("sent after one retry");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[0]["QueueUrl"]
            .as_str()
            .expect("url")
            .ends_with("/low")
    );
    assert_eq!(
        sent_entries(&requests[0]),
        vec![
            ("0".to_owned(), items[0].clone()),
            ("1".to_owned(), items[1].clone()),
            ("2".to_owned(), items[2].clone())
        ]
    );
    assert_eq!(
        sent_entries(&requests[1]),
        vec![("1".to_owned(), items[1].clone())],
        "only the refused entry is sent again"
    );
}

#[tokio::test]
async fn entries_that_keep_failing_make_the_queue_unavailable() {
    let refused = json!({
        "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "-"}],
        "Failed": [{"Id": "1", "SenderFault": false, "Code": "InternalError", "Message": "down"}]
    });
    let fake = ScriptedAws::start("application/x-amz-json-1.0", vec![refused]).await;
    let queue = work_queue_on(&fake, Client::new(&fake.sdk_config().await));
    let items: Vec<WorkItem> = (0..2)
        .map(|i| WorkItem {
            execution_id: execution_id(i),
            priority: Priority::High,
        })
        .collect();
    let started = Instant::now();
    let error = queue.enqueue(&items).await.expect_err("keeps failing");
    assert!(
        matches!(&error, StoreError::Unavailable(m) if m.starts_with("1 of a batch")),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 4, "the first try and three retries");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the backoff is short"
    );

    // A fault of the sender is not retried: the same request would fail the same way.
    let sender_fault = json!({
        "Successful": [],
        "Failed": [{"Id": "0", "SenderFault": true, "Code": "InvalidParameterValue", "Message": "no"}]
    });
    let fake = ScriptedAws::start("application/x-amz-json-1.0", vec![sender_fault]).await;
    let sender = SqsStepReportSender::new(
        Client::new(&fake.sdk_config().await),
        format!("{}/123456789012/steps", fake.endpoint),
    );
    let message = StepReportMessage {
        execution_id: execution_id(1),
        reporter: "ci:github".to_owned(),
        steps: vec![report(0, StepStatus::Passed)],
    };
    assert!(matches!(
        sender.send(&[message]).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(fake.requests().len(), 1);
}
