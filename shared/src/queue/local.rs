//! The embedded work queue: an in-process priority queue that runner workers pull from.
//! Higher priority first; first in, first out within a priority.

use crate::domain::events::WorkItem;
use crate::ports::{StoreError, WorkQueue};
use async_trait::async_trait;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub struct LocalWorkQueue {
    heap: Mutex<BinaryHeap<Reverse<(crate::domain::execution::Priority, u64, String)>>>,
    next_seq: Mutex<u64>,
    ready: Notify,
}

impl LocalWorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the next item.
    pub async fn next(&self) -> WorkItem {
        loop {
            // Register interest before checking, so a push between the check and the
            // wait is not missed.
            let notified = self.ready.notified();
            if let Some(item) = self.try_next() {
                return item;
            }
            notified.await;
        }
    }

    pub fn try_next(&self) -> Option<WorkItem> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        heap.pop()
            .map(|Reverse((priority, _, execution_id))| WorkItem {
                execution_id,
                priority,
            })
    }

    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl WorkQueue for LocalWorkQueue {
    async fn enqueue(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        {
            let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
            let mut seq = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
            for item in items {
                *seq += 1;
                heap.push(Reverse((item.priority, *seq, item.execution_id.clone())));
            }
        }
        for _ in items {
            self.ready.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::execution::Priority;

    fn item(id: &str, priority: Priority) -> WorkItem {
        WorkItem {
            execution_id: id.into(),
            priority,
        }
    }

    #[tokio::test]
    async fn higher_priority_first_then_fifo() {
        let queue = LocalWorkQueue::new();
        queue
            .enqueue(&[
                item("low", Priority::Low),
                item("n1", Priority::Normal),
                item("high", Priority::High),
                item("n2", Priority::Normal),
            ])
            .await
            .unwrap();
        let order: Vec<_> = (0..4)
            .map(|_| queue.try_next().unwrap().execution_id)
            .collect();
        assert_eq!(order, ["high", "n1", "n2", "low"]);
        assert!(queue.try_next().is_none());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_up() {
        let queue = std::sync::Arc::new(LocalWorkQueue::new());
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.enqueue(&[item("x", Priority::Normal)]).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.execution_id, "x");
    }
}
