//! The embedded event bus: in-process fan-out to local subscribers, and a log line per event.

use crate::domain::errors::StoreError;
use crate::domain::events::{CaseEvent, DomainEvent};
use crate::ports::EventBus;
use async_trait::async_trait;
use tokio::sync::broadcast;

pub struct LocalEventBus {
    sender: broadcast::Sender<DomainEvent>,
    case_sender: broadcast::Sender<CaseEvent>,
}

impl Default for LocalEventBus {
    fn default() -> Self {
        LocalEventBus {
            sender: broadcast::channel(4096).0,
            case_sender: broadcast::channel(256).0,
        }
    }
}

impl LocalEventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber sees every event published after it subscribed.
    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.sender.subscribe()
    }

    /// A new subscriber to test case events.
    pub fn subscribe_case_events(&self) -> broadcast::Receiver<CaseEvent> {
        self.case_sender.subscribe()
    }
}

#[async_trait]
impl EventBus for LocalEventBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError> {
        for event in events {
            tracing::info!(
                event = event.kind.detail_type(),
                execution_id = %event.execution_id,
                status = %event.status,
                "event"
            );
            // No subscriber is fine: events are notifications, the trace is the record.
            let _ = self.sender.send(event.clone());
        }
        Ok(())
    }

    async fn publish_case_events(&self, events: &[CaseEvent]) -> Result<(), StoreError> {
        for event in events {
            tracing::info!(
                event = event.kind.detail_type(),
                test_case_id = %event.test_case_id,
                "event"
            );
            let _ = self.case_sender.send(event.clone());
        }
        Ok(())
    }
}
