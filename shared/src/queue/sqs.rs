//! The SQS adapters: the work queues (one standard queue per priority, each with a dead-letter
//! queue), the asynchronous step-report queue's sender and message format, and the creation
//! of both. The Lambda side of both queues (batches with partial failures) is in
//! `crate::lambda::sqs`.
//!
//! Delivery is at least once. Duplicates are harmless: the engine only runs an execution that
//! is still `queued`, and a step report that repeats a stored terminal result changes nothing.
//! A message that keeps failing is received again until the queue's redrive policy moves it to
//! its dead-letter queue (after [`MAX_RECEIVE_COUNT`] receives).

use crate::domain::errors::StoreError;
use crate::domain::events::WorkItem;
use crate::domain::execution::{Priority, StepReport};
use crate::engine::MAX_STEPS_PER_REPORT;
use crate::ports::WorkQueue;
use crate::settings::QueueUrls;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// SQS takes at most this many entries in one batch call, and returns at most this many
/// messages from one receive.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The most message body bytes one SendMessageBatch call carries. SQS accepts more today
/// (1 MiB); 256 KiB is the long-standing limit every emulator and region honours.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// A message is moved to its dead-letter queue after this many receives.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Dead-letter queues keep messages for the longest time SQS allows (14 days).
const DLQ_RETENTION_SECONDS: u32 = 14 * 24 * 60 * 60;
/// Retries of batch entries that SQS reported failed, after the first try.
const ENTRY_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// While `receive` waits for work, each round long-polls the high queue this long (seconds).
const WAIT_ROUND_SECONDS: i32 = 1;

/// The work queues: one standard SQS queue per priority.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsWorkQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsWorkQueue { client, urls }
    }

    pub fn urls(&self) -> &QueueUrls {
        &self.urls
    }

    /// The queue that carries work of this priority.
    pub fn url_for(&self, priority: Priority) -> &str {
        match priority {
            Priority::High => &self.urls.high,
            Priority::Normal => &self.urls.normal,
            Priority::Low => &self.urls.low,
        }
    }

    /// Takes up to `max` work items, high priority first, then normal, then low: a lower
    /// queue is only read when the higher ones had fewer than `max` waiting.
    ///
    /// When all three are empty and `wait_seconds` is above 0, it waits for work for about
    /// that long (at most a second more) in rounds: a one-second long poll of the high queue,
    /// which answers as soon as high work arrives, then a look at normal and low. Idle, that is
    /// three requests a second.
    ///
    /// Each item comes with its receipt handle and queue URL for [`SqsWorkQueue::delete`];
    /// an item not deleted comes back after the queue's visibility timeout. A body that is not
    /// a work item is logged and left alone: after [`MAX_RECEIVE_COUNT`] receives the redrive
    /// policy moves it to the dead-letter queue.
    pub async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
    ) -> Result<Vec<(WorkItem, String, String)>, StoreError> {
        let max = usize::try_from(max).unwrap_or(0);
        let deadline =
            Instant::now() + Duration::from_secs(u64::try_from(wait_seconds).unwrap_or(0));
        let mut taken = Vec::new();
        if max == 0 {
            return Ok(taken);
        }
        let mut high_wait = 0;
        loop {
            self.receive_from(&self.urls.high, max, high_wait, &mut taken)
                .await?;
            for url in [&self.urls.normal, &self.urls.low] {
                self.receive_from(url, max, 0, &mut taken).await?;
            }
            if !taken.is_empty() || Instant::now() >= deadline {
                return Ok(taken);
            }
            high_wait = WAIT_ROUND_SECONDS;
        }
    }

    /// Reads one queue until it is empty or `taken` holds `max` items; the first request
    /// waits up to `wait_seconds` for a message.
    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        mut wait_seconds: i32,
        taken: &mut Vec<(WorkItem, String, String)>,
    ) -> Result<(), StoreError> {
        while taken.len() < max {
            let want = (max - taken.len()).min(MAX_BATCH_ENTRIES);
            let output = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(want as i32)
                .wait_time_seconds(wait_seconds)
                .send()
                .await
                .map_err(|e| unavailable("receive from a work queue", e))?;
            wait_seconds = 0;
            let messages = output.messages();
            if messages.is_empty() {
                return Ok(());
            }
            for message in messages {
                let message_id = message.message_id().unwrap_or("-");
                let (Some(body), Some(receipt)) = (message.body(), message.receipt_handle()) else {
                    tracing::warn!(message_id, "work message without body or receipt handle");
                    continue;
                };
                match parse_work_item(body) {
                    Ok(item) => taken.push((item, receipt.to_owned(), url.to_owned())),
                    Err(error) => tracing::warn!(
                        message_id,
                        %error,
                        "not a work item; left for the dead-letter queue"
                    ),
                }
            }
        }
        Ok(())
    }

    /// Deletes a received message once its work is done (or needs no doing).
    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| unavailable("delete a work message", e))?;
        Ok(())
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn enqueue(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        for priority in <Priority as strum::IntoEnumIterator>::iter() {
            let bodies = items
                .iter()
                .filter(|item| item.priority == priority)
                .map(|item| {
                    serde_json::to_string(item)
                        .map_err(|e| StoreError::Unavailable(format!("encode a work item: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !bodies.is_empty() {
                send_bodies(&self.client, self.url_for(priority), bodies).await?;
            }
        }
        Ok(())
    }
}

/// Decodes a work queue message body.
pub fn parse_work_item(body: &str) -> Result<WorkItem, String> {
    serde_json::from_str(body).map_err(|e| format!("not a work item: {e}"))
}

/// One message of the asynchronous step-report queue: step results for one execution, as the
/// `POST /executions/{id}/steps` body carries them, and who reported them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReportMessage {
    pub execution_id: String,
    /// The actor recorded in the audit history, e.g. `ci:github`.
    pub reporter: String,
    pub steps: Vec<StepReport>,
}

impl StepReportMessage {
    /// Decodes a step-report queue message body.
    pub fn parse(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("not a step report message: {e}"))
    }
}

/// The same fields as [`StepReportMessage`], borrowed, for encoding a slice of its steps.
#[derive(Serialize)]
struct StepReportBody<'a> {
    execution_id: &'a str,
    reporter: &'a str,
    steps: &'a [StepReport],
}

/// Sends step reports to the step-report queue (for high-volume reporters and tests).
#[derive(Debug, Clone)]
pub struct SqsStepReportSender {
    client: Client,
    queue_url: String,
}

impl SqsStepReportSender {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsStepReportSender {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends every message, ten to a batch call. A message with more than
    /// [`MAX_STEPS_PER_REPORT`] steps, or too large for one SQS batch, is split into several
    /// messages for the same execution (each step report stands on its own, so the parts may
    /// apply in any order). A single step too large for SQS is refused with `Unavailable`.
    pub async fn send(&self, messages: &[StepReportMessage]) -> Result<(), StoreError> {
        let mut bodies = Vec::new();
        for message in messages {
            for steps in message.steps.chunks(MAX_STEPS_PER_REPORT) {
                encode_report(message, steps, &mut bodies)?;
            }
            if message.steps.is_empty() {
                encode_report(message, &[], &mut bodies)?;
            }
        }
        send_bodies(&self.client, &self.queue_url, bodies).await
    }
}

/// Encodes `steps` of `message` as one body, halving the steps until each body fits a batch.
fn encode_report(
    message: &StepReportMessage,
    steps: &[StepReport],
    bodies: &mut Vec<String>,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(&StepReportBody {
        execution_id: &message.execution_id,
        reporter: &message.reporter,
        steps,
    })
    .map_err(|e| StoreError::Unavailable(format!("encode a step report: {e}")))?;
    if body.len() <= MAX_BATCH_BYTES {
        bodies.push(body);
        return Ok(());
    }
    if steps.len() <= 1 {
        return Err(StoreError::Unavailable(format!(
            "a step report for {} is {} bytes, more than one SQS message carries ({MAX_BATCH_BYTES})",
            message.execution_id,
            body.len()
        )));
    }
    let (first, second) = steps.split_at(steps.len() / 2);
    encode_report(message, first, bodies)?;
    encode_report(message, second, bodies)
}

/// Sends bodies in batch calls of at most ten entries and [`MAX_BATCH_BYTES`] bytes.
async fn send_bodies(
    client: &Client,
    queue_url: &str,
    bodies: Vec<String>,
) -> Result<(), StoreError> {
    let mut batch: Vec<String> = Vec::new();
    let mut batch_bytes = 0;
    for body in bodies {
        if !batch.is_empty()
            && (batch.len() == MAX_BATCH_ENTRIES || batch_bytes + body.len() > MAX_BATCH_BYTES)
        {
            send_batch(client, queue_url, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        batch_bytes += body.len();
        batch.push(body);
    }
    if !batch.is_empty() {
        send_batch(client, queue_url, batch).await?;
    }
    Ok(())
}

/// One SendMessageBatch call, then retries of the entries it reported failed (a few, with a
/// short doubling backoff). Entries failed by the sender's fault are not retried: the same
/// request would fail the same way.
async fn send_batch(
    client: &Client,
    queue_url: &str,
    bodies: Vec<String>,
) -> Result<(), StoreError> {
    // Entry ids are the positions in `bodies` (0 to 9, so they sort in order), and a retry
    // keeps them.
    let mut pending: BTreeMap<String, String> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| (i.to_string(), body))
        .collect();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let entries = pending
            .iter()
            .map(|(id, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("build a batch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| unavailable("send a message batch", e))?;
        for sent in output.successful() {
            pending.remove(sent.id());
        }
        let failed = output.failed();
        if pending.is_empty() {
            return Ok(());
        }
        let sender_faults = failed.iter().filter(|f| f.sender_fault()).count();
        for failure in failed {
            tracing::warn!(
                entry = failure.id(),
                code = failure.code(),
                message = failure.message().unwrap_or(""),
                sender_fault = failure.sender_fault(),
                attempt,
                "SQS refused a batch entry"
            );
        }
        if attempt >= ENTRY_RETRIES || sender_faults > 0 {
            let first = failed
                .first()
                .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("")))
                .unwrap_or_default();
            return Err(StoreError::Unavailable(format!(
                "{} of a batch of messages could not be sent after {} attempts ({first})",
                pending.len(),
                attempt + 1
            )));
        }
        attempt += 1;
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

fn unavailable<E>(what: &str, error: E) -> StoreError
where
    E: std::error::Error + 'static,
{
    StoreError::Unavailable(format!("{what}: {}", DisplayErrorContext(error)))
}

/// Creates the work queues `{prefix}-high`, `{prefix}-normal`, `{prefix}-low` and the
/// step-report queue `{prefix}-step-reports`, each with a dead-letter queue `{name}-dlq` and a
/// redrive policy (`maxReceiveCount` [`MAX_RECEIVE_COUNT`]). Safe to run again: existing
/// queues are kept and their redrive policy set. Returns the work queue URLs and the
/// step-report queue URL.
pub async fn create_queues(client: &Client, prefix: &str) -> Result<(QueueUrls, String), String> {
    let urls = QueueUrls {
        high: create_queue_with_dlq(client, &format!("{prefix}-high")).await?,
        normal: create_queue_with_dlq(client, &format!("{prefix}-normal")).await?,
        low: create_queue_with_dlq(client, &format!("{prefix}-low")).await?,
    };
    let step_reports = create_queue_with_dlq(client, &format!("{prefix}-step-reports")).await?;
    Ok((urls, step_reports))
}

/// The names of the queues [`create_queues`] creates under `prefix`, each followed by its
/// dead-letter queue.
pub fn queue_names(prefix: &str) -> Vec<String> {
    ["high", "normal", "low", "step-reports"]
        .iter()
        .flat_map(|role| [format!("{prefix}-{role}"), format!("{prefix}-{role}-dlq")])
        .collect()
}

/// Deletes the queue `name`; one that does not exist is fine (so this also cleans up after a
/// [`create_queues`] that failed halfway).
pub async fn delete_queue(client: &Client, name: &str) -> Result<(), String> {
    let url = match client.get_queue_url().queue_name(name).send().await {
        Ok(output) => output
            .queue_url
            .ok_or_else(|| format!("GetQueueUrl {name} returned no URL"))?,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(format!("GetQueueUrl {name}: {}", DisplayErrorContext(e))),
    };
    match client.delete_queue().queue_url(&url).send().await {
        Ok(_) => Ok(()),
        // Deleted meanwhile by someone else: gone all the same.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("DeleteQueue {name}: {}", DisplayErrorContext(e))),
    }
}

async fn create_queue_with_dlq(client: &Client, name: &str) -> Result<String, String> {
    let dlq_url = create_queue(
        client,
        &format!("{name}-dlq"),
        QueueAttributeName::MessageRetentionPeriod,
        DLQ_RETENTION_SECONDS.to_string(),
    )
    .await?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    })
    .to_string();
    create_queue(client, name, QueueAttributeName::RedrivePolicy, redrive).await
}

/// CreateQueue with one attribute. An existing queue with other attributes (SQS then answers
/// `QueueAlreadyExists`) is looked up and given the attribute.
async fn create_queue(
    client: &Client,
    name: &str,
    attribute: QueueAttributeName,
    value: String,
) -> Result<String, String> {
    let created = client
        .create_queue()
        .queue_name(name)
        .attributes(attribute.clone(), value.clone())
        .send()
        .await;
    match created {
        Ok(output) => output
            .queue_url
            .ok_or_else(|| format!("CreateQueue {name} returned no URL")),
        Err(e) if matches!(e.code(), Some("QueueAlreadyExists" | "QueueNameExists")) => {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| format!("GetQueueUrl {name}: {}", DisplayErrorContext(e)))?
                .queue_url
                .ok_or_else(|| format!("GetQueueUrl {name} returned no URL"))?;
            client
                .set_queue_attributes()
                .queue_url(&url)
                .attributes(attribute, value)
                .send()
                .await
                .map_err(|e| format!("SetQueueAttributes {name}: {}", DisplayErrorContext(e)))?;
            Ok(url)
        }
        Err(e) => Err(format!("CreateQueue {name}: {}", DisplayErrorContext(e))),
    }
}

async fn queue_arn(client: &Client, url: &str) -> Result<String, String> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {url}: {}", DisplayErrorContext(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| format!("no QueueArn for {url}"))
}
