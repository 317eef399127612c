//! Event log use cases: reading an execution's log, at once or waiting for what comes next,
//! and keeping it current where the store logs from its change stream.

use super::{Caller, Engine, EngineError};
use crate::domain::log::{LogEntry, PendingEntry};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// logged to it, and hands them the entries it wrote. A store that logs elsewhere (DynamoDB,
/// from its stream) is polled instead.
#[derive(Default)]
pub(super) struct LogSignal {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    signals: HashMap<String, Weak<Signal>>,
    /// Dropped signals are swept out when the map reaches this size (then twice what is
    /// left), so that a crowd of live ones is not scanned at every new reader.
    sweep_at: usize,
}

/// The newest entries of a log kept in memory for its readers.
const RECENT_ENTRIES: usize = 32;
/// The map size at which dropped signals are first swept out.
const FIRST_SWEEP: usize = 1024;

/// One execution's log signal.
///
/// Why a reader served from it still gets every entry once, in order, with no gap (as the
/// live-events tests and `bench --watchers` check): every page it returns is a run of the
/// log's entries from `after + 1` on with no gap, whether read from the store or from
/// `recent` (copies of committed entries, under their `seq`, taken only while unbroken), and
/// the reader goes on from that page's last `seq`. What the memory can get wrong is only
/// *when* a reader looks: an entry this engine did not count (written by another engine or
/// process, or by a request dropped between its commit and its wake-up) is read by the
/// timed poll, which always reads the store, or by the read after the next wake-up.
#[derive(Default)]
struct Signal {
    notify: Notify,
    /// Commits that logged to it since the signal was made, counted before its readers are
    /// woken: a reader that finds it unchanged since a read of the whole log knows that
    /// nothing was added (where every entry is written with its change, through this engine).
    commits: AtomicU64,
    /// The newest entries those commits wrote, by `seq`: a reader right behind takes them
    /// from here instead of reading the store (each reader its own copy).
    recent: Mutex<BTreeMap<u64, LogEntry>>,
}

impl Signal {
    /// The entries after `after` that are here, with no gap from `after + 1` on.
    fn recent_after(&self, after: u64, limit: usize) -> Vec<LogEntry> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let mut items = Vec::new();
        for (seq, entry) in recent.range(after.saturating_add(1)..) {
            if items.len() == limit || *seq != after + 1 + items.len() as u64 {
                break;
            }
            items.push(entry.clone());
        }
        items
    }
}

impl LogSignal {
    /// The signal of execution `id`'s log (shared by everyone waiting on it).
    fn watch(&self, id: &str) -> Arc<Signal> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signal) = waiting.signals.get(id).and_then(Weak::upgrade) {
            return signal;
        }
        if waiting.signals.len() >= waiting.sweep_at.max(FIRST_SWEEP) {
            waiting
                .signals
                .retain(|_, signal| signal.strong_count() > 0);
            waiting.sweep_at = 2 * waiting.signals.len();
        }
        let signal = Arc::new(Signal::default());
        waiting
            .signals
            .insert(id.to_owned(), Arc::downgrade(&signal));
        signal
    }

    /// Wakes every reader waiting on the logs a committed change wrote `log` to; `logged`
    /// are those entries as the store numbered them (empty if it numbers them later).
    pub(super) fn wake(&self, log: &[PendingEntry], logged: &[LogEntry]) {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let numbered = logged.len() == log.len();
        let mut woken: Vec<&str> = Vec::new();
        for (n, pending) in log.iter().enumerate() {
            let id = pending.execution_id.as_str();
            let Some(signal) = waiting.signals.get(id).and_then(Weak::upgrade) else {
                continue;
            };
            let mut recent = signal.recent.lock().unwrap_or_else(PoisonError::into_inner);
            // `logged` is `log` numbered, one for one, in order: checked, not trusted, since
            // an entry kept under the wrong log or seq would be sent as that one.
            let entry = logged
                .get(n)
                .filter(|e| numbered && e.at == pending.at && e.event == pending.event);
            match entry {
                Some(entry) => {
                    recent.insert(entry.seq, entry.clone());
                    while recent.len() > RECENT_ENTRIES {
                        recent.pop_first();
                    }
                }
                // An entry counted but not kept would make what is kept look complete.
                None => recent.clear(),
            }
            drop(recent);
            if !woken.contains(&id) {
                woken.push(id);
            }
        }
        // Once per log, after its entries are in place.
        for id in woken {
            if let Some(signal) = waiting.signals.get(id).and_then(Weak::upgrade) {
                signal.commits.fetch_add(1, Ordering::SeqCst);
                signal.notify.notify_waiters();
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
            seen: Mutex::new(None),
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
    signal: Arc<Signal>,
    /// What this reader's last read that reached the end of the log found.
    seen: Mutex<Option<Seen>>,
}

/// A read of the whole log that began when the signal had counted `commits`.
#[derive(Debug, Clone, Copy)]
struct Seen {
    commits: u64,
    /// The log's last entry then (0: none).
    last_seq: u64,
    /// Whether that entry was the terminal one; `None`: not known.
    terminal: Option<bool>,
}

impl LogReader {
    /// Entries after `query.after`: at once if there are any, else as soon as one is
    /// committed, or none after `query.wait`.
    pub async fn read(&self, query: LogQuery) -> Result<LogPage, EngineError> {
        let store = &self.engine.store;
        let limit = query.limit.clamp(1, MAX_LOG_PAGE);
        let deadline = Instant::now() + query.wait.min(MAX_LOG_WAIT);
        // Only where every entry commits with its change through this engine (which counts
        // the commit before it wakes the readers) does an unchanged count prove the log
        // unchanged; elsewhere entries arrive on their own, and the log is read again.
        let counted = store.log_written_with_change();
        let (mut checked_end, mut polled) = (false, false);
        loop {
            // Armed before the read, so a commit between the read and the wait still wakes it.
            let woken = self.signal.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let commits = self.signal.commits.load(Ordering::SeqCst);
            let items = if counted {
                self.read_counted(query.after, limit, commits, polled)
                    .await?
            } else {
                store.events(&self.id, query.after, limit).await?
            };
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
                () = tokio::time::sleep_until(poll.min(deadline)) => polled = true,
            }
        }
    }

    /// Entries after `after` where the engine counts the log's commits (`commits` when the
    /// read began): none if nothing committed since a read that found the log ending at
    /// `after`, else from the newest entries in memory if they follow on, else from the store.
    /// `polled`: the timed poll, which always reads the store, so that a commit whose request
    /// was dropped before it woke anyone is still seen within the poll interval.
    async fn read_counted(
        &self,
        after: u64,
        limit: usize,
        commits: u64,
        polled: bool,
    ) -> Result<Vec<LogEntry>, EngineError> {
        // A stream asks again right after each page it sent.
        let unchanged = self
            .seen()
            .is_some_and(|seen| seen.commits == commits && seen.last_seq == after);
        if unchanged && !polled {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        if !polled {
            items = self.signal.recent_after(after, limit);
        }
        if items.is_empty() {
            items = self.engine.store.events(&self.id, after, limit).await?;
        }
        // Every entry counted by `commits` was committed, and put in `recent`, before it was
        // counted: a page short of `limit` holds all of them after `after` (`recent` drops
        // its lowest first, so none above a kept one), and an unchanged count later means
        // none came since, through this engine.
        if items.len() < limit {
            self.saw(Seen {
                commits,
                last_seq: items.last().map_or(after, |e| e.seq),
                terminal: items.last().map(|e| e.event.is_terminal()),
            });
        }
        Ok(items)
    }

    fn seen(&self) -> Option<Seen> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn saw(&self, seen: Seen) {
        let mut last = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // What an earlier read learned of the same entry still holds.
        let terminal = match *last {
            Some(earlier) if earlier.last_seq == seen.last_seq => {
                seen.terminal.or(earlier.terminal)
            }
            _ => seen.terminal,
        };
        *last = Some(Seen { terminal, ..seen });
    }

    /// Whether entry `seq` is the log's last (the move to a terminal status).
    async fn has_ended_at(&self, seq: u64) -> Result<bool, EngineError> {
        if seq == 0 {
            return Ok(false);
        }
        // This reader has read that entry itself: no need to read it again.
        if let Some(terminal) = self
            .seen()
            .filter(|seen| seen.last_seq == seq)
            .and_then(|seen| seen.terminal)
        {
            return Ok(terminal);
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
