//! Stand-ins for the system's clock and ids, so tests control time and know their ids.

use runledger::domain::clock::Clock;
use runledger::domain::ids::IdSource;
use runledger::domain::time::Timestamp;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A clock that moves only when told to.
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(start: Timestamp) -> Self {
        ManualClock {
            millis: AtomicI64::new(start.millis()),
        }
    }

    pub fn advance_millis(&self, millis: i64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Predictable ids: `00000000000000000000000001`, `...02`, ...
#[derive(Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdSource for SequentialIds {
    fn next_ulid(&self) -> String {
        format!("{:026}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
}
