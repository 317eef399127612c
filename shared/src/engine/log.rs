//! Event log use cases: reading an execution's log, and keeping it current where the store
//! logs from its change stream.

use super::{Engine, EngineError};

impl Engine {
    /// Takes what has committed into the event log, on a store that logs from its change
    /// stream and follows it itself (a no-op elsewhere).
    pub async fn sync_log(&self) -> Result<(), EngineError> {
        Ok(self.store.sync_log().await?)
    }
}
