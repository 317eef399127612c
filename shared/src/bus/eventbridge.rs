//! The EventBridge adapter: domain events on a custom bus, and their decoding on the way in.
//!
//! Every event has `source` [`EVENT_SOURCE`], `detail-type` [`EventKind::detail_type`] and the
//! serialized [`DomainEvent`] as its `detail`. The JSON Schemas of the details are in
//! `events/schemas/`, one per detail-type.

use crate::domain::errors::StoreError;
use crate::domain::events::{CaseEvent, DomainEvent, EventKind};
use crate::ports::EventBus;
use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Deserialize;
use std::time::Duration;

/// The `source` of every event runledger puts on its bus.
pub const EVENT_SOURCE: &str = "runledger";

/// PutEvents takes at most this many entries a call.
pub const MAX_PUT_ENTRIES: usize = 10;
/// Retries of entries that PutEvents reported failed, after the first try.
const ENTRY_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The event kind of an EventBridge detail-type, if it is one of runledger's.
pub fn event_kind(detail_type: &str) -> Option<EventKind> {
    EventKind::from_detail_type(detail_type)
}

/// Publishes domain events to a custom EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.into(),
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn entry(&self, event: &DomainEvent) -> Result<PutEventsRequestEntry, StoreError> {
        self.entry_of(event.kind.detail_type(), event)
    }

    fn entry_of(
        &self,
        detail_type: &str,
        detail: &impl serde::Serialize,
    ) -> Result<PutEventsRequestEntry, StoreError> {
        let detail = serde_json::to_string(detail)
            .map_err(|e| StoreError::Unavailable(format!("encode an event: {e}")))?;
        Ok(PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .event_bus_name(&self.bus_name)
            .build())
    }

    /// One PutEvents call, then retries of the entries it reported failed (a few, with a
    /// short doubling backoff).
    async fn put_batch(&self, mut pending: Vec<PutEventsRequestEntry>) -> Result<(), StoreError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let output = self
                .client
                .put_events()
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("put events: {}", DisplayErrorContext(e)))
                })?;
            if output.failed_entry_count() == 0
                && output.entries().iter().all(|e| e.error_code().is_none())
            {
                return Ok(());
            }
            // Result entries are in request order; one that has no event id failed.
            let results = output.entries();
            let mut first_error = String::new();
            let mut failed = Vec::new();
            for (i, entry) in pending.into_iter().enumerate() {
                let result = results.get(i);
                if result.is_some_and(|r| r.event_id().is_some() && r.error_code().is_none()) {
                    continue;
                }
                let code = result
                    .and_then(|r| r.error_code())
                    .unwrap_or("missing result");
                let message = result.and_then(|r| r.error_message()).unwrap_or("");
                tracing::warn!(
                    detail_type = entry.detail_type().unwrap_or(""),
                    code,
                    message,
                    attempt,
                    "EventBridge refused an event"
                );
                if first_error.is_empty() {
                    first_error = format!("{code}: {message}");
                }
                failed.push(entry);
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt >= ENTRY_RETRIES {
                return Err(StoreError::Unavailable(format!(
                    "{} events could not be put after {} attempts ({first_error})",
                    failed.len(),
                    attempt + 1
                )));
            }
            pending = failed;
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    /// Puts the events ten to a call, in order.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(MAX_PUT_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|e| self.entry(e))
                .collect::<Result<Vec<_>, _>>()?;
            self.put_batch(entries).await?;
        }
        Ok(())
    }

    async fn publish_case_events(&self, events: &[CaseEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(MAX_PUT_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|e| self.entry_of(e.kind.detail_type(), e))
                .collect::<Result<Vec<_>, _>>()?;
            self.put_batch(entries).await?;
        }
        Ok(())
    }
}

/// Creates the custom bus `name` and returns its ARN; an existing bus (or `default`) is fine.
pub async fn create_bus(client: &Client, name: &str) -> Result<String, String> {
    if name != "default" {
        match client.create_event_bus().name(name).send().await {
            Ok(output) => {
                if let Some(arn) = output.event_bus_arn {
                    return Ok(arn);
                }
            }
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(format!("CreateEventBus {name}: {}", DisplayErrorContext(e))),
        }
    }
    client
        .describe_event_bus()
        .name(name)
        .send()
        .await
        .map_err(|e| format!("DescribeEventBus {name}: {}", DisplayErrorContext(e)))?
        .arn
        .ok_or_else(|| format!("DescribeEventBus {name} returned no ARN"))
}

/// Deletes the custom bus `name`; one that does not exist is fine.
pub async fn delete_bus(client: &Client, name: &str) -> Result<(), String> {
    match client.delete_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(format!("DeleteEventBus {name}: {}", DisplayErrorContext(e))),
    }
}

/// Decodes one of runledger's own events as EventBridge delivers it to a Lambda function:
/// the source must be [`EVENT_SOURCE`], the detail-type one of [`EventKind`]'s, and the detail
/// a [`DomainEvent`] of that kind.
pub fn parse_event(event: &EventBridgeEvent<serde_json::Value>) -> Result<DomainEvent, String> {
    if event.source != EVENT_SOURCE {
        return Err(format!(
            "source {:?} is not runledger's ({EVENT_SOURCE:?})",
            event.source
        ));
    }
    let kind = event_kind(&event.detail_type)
        .ok_or_else(|| format!("unknown detail-type {:?}", event.detail_type))?;
    let domain = DomainEvent::deserialize(&event.detail)
        .map_err(|e| format!("the detail of a {:?} event: {e}", event.detail_type))?;
    if domain.kind != kind {
        return Err(format!(
            "detail-type {:?} carries a {:?} detail",
            event.detail_type,
            domain.kind.detail_type()
        ));
    }
    Ok(domain)
}
