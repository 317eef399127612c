//! Event log use cases: reading an execution's log, at once or waiting for what comes next,
//! and keeping it current where the store logs from its change stream.

use super::{Caller, Engine, EngineError};
use crate::domain::log::LogEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The most entries one read returns.
pub const MAX_LOG_PAGE: usize = 500;
/// The longest a read waits for an entry (under API Gateway's 30 s and the router's time
/// limit).
pub const MAX_LOG_WAIT: Duration = Duration::from_secs(25);

/// A read of an execution's log: entries after `after`, at most `limit`, waiting up to `wait`
/// for the first one.
#[derive(Debug, Clone, Copy)]
pub struct LogQuery {
    pub after: u64,
    pub limit: usize,
    pub wait: Duration,
}

/// What a read of the log found.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub items: Vec<LogEntry>,
    /// The newest `seq` the reader has now: the last item's, or the query's `after`.
    pub last_seq: u64,
    /// The log is complete up to `last_seq`: its last entry (a move to a terminal status)
    /// is read, and nothing will follow.
    pub terminal: bool,
}

/// Wakes the readers waiting on an execution's log when this engine commits a change that
/// logged to it. A store that logs elsewhere (DynamoDB, from its stream) is polled instead.
#[derive(Default)]
pub(super) struct LogSignal {
    waiting: Mutex<HashMap<String, Weak<Notify>>>,
}

impl LogSignal {
    /// The signal of execution `id`'s log (shared by everyone waiting on it).
    fn watch(&self, id: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = waiting.get(id).and_then(Weak::upgrade) {
            return notify;
        }
        if waiting.len() >= 1024 {
            waiting.retain(|_, notify| notify.strong_count() > 0);
        }
        let notify = Arc::new(Notify::new());
        waiting.insert(id.to_owned(), Arc::downgrade(&notify));
        notify
    }

    /// Wakes every reader waiting on these executions' logs.
    pub(super) fn wake<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            if let Some(notify) = waiting.get(id).and_then(Weak::upgrade) {
                notify.notify_waiters();
            }
        }
    }
}

impl Engine {
    /// Entries of an execution's event log after `query.after`: at once if there are any,
    /// else as soon as one is committed, or none after `query.wait`. Owner-only, like every
    /// execution read.
    pub async fn read_log(
        &self,
        caller: &Caller,
        id: &str,
        query: LogQuery,
    ) -> Result<LogPage, EngineError> {
        self.log_reader(caller, id).await?.read(query).await
    }

    /// A reader of an execution's log, for reading it again and again (a stream): the
    /// caller's right to see it is checked once, here.
    pub async fn log_reader(&self, caller: &Caller, id: &str) -> Result<LogReader, EngineError> {
        self.get_execution(caller, id).await?;
        Ok(LogReader {
            engine: self.clone(),
            id: id.to_owned(),
            signal: self.log_signal.watch(id),
        })
    }

    /// Takes what has committed into the event log, on a store that logs from its change
    /// stream and follows it itself (a no-op elsewhere).
    pub async fn sync_log(&self) -> Result<(), EngineError> {
        Ok(self.store.sync_log().await?)
    }
}

/// Reads one execution's log (see [`Engine::log_reader`]).
pub struct LogReader {
    engine: Engine,
    id: String,
    signal: Arc<Notify>,
}

impl LogReader {
    /// Entries after `query.after`: at once if there are any, else as soon as one is
    /// committed, or none after `query.wait`.
    pub async fn read(&self, query: LogQuery) -> Result<LogPage, EngineError> {
        let store = &self.engine.store;
        let limit = query.limit.clamp(1, MAX_LOG_PAGE);
        let deadline = Instant::now() + query.wait.min(MAX_LOG_WAIT);
        let mut checked_end = false;
        loop {
            // Armed before the read, so a commit between the read and the wait still wakes it.
            let woken = self.signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let items = store.events(&self.id, query.after, limit).await?;
            if !items.is_empty() || Instant::now() >= deadline {
                return self.page(query.after, items).await;
            }
            // A reader who has the log's last entry is told at once: nothing will follow.
            if !checked_end {
                checked_end = true;
                if self.has_ended_at(query.after).await? {
                    return self.page(query.after, items).await;
                }
            }
            let poll = Instant::now() + store.log_poll_interval();
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(poll.min(deadline)) => {}
            }
        }
    }

    /// Whether entry `seq` is the log's last (the move to a terminal status).
    async fn has_ended_at(&self, seq: u64) -> Result<bool, EngineError> {
        if seq == 0 {
            return Ok(false);
        }
        let entry = self.engine.store.events(&self.id, seq - 1, 1).await?;
        Ok(entry.first().is_some_and(|e| e.event.is_terminal()))
    }

    async fn page(&self, after: u64, items: Vec<LogEntry>) -> Result<LogPage, EngineError> {
        let terminal = match items.last() {
            Some(last) => last.event.is_terminal(),
            // Nothing new: complete if the entry the reader already has is the terminal one.
            None => self.has_ended_at(after).await?,
        };
        let last_seq = items.last().map_or(after, |e| e.seq);
        Ok(LogPage {
            items,
            last_seq,
            terminal,
        })
    }
}
