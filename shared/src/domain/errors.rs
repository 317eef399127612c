//! The errors the domain's records can fail with, whichever store serves them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing store could not be reached or failed; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record could not be decoded: a bug or a damaged database.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A conditional write lost a race (a version or status changed underneath).
    #[error("conflict: {0}")]
    Conflict(String),
}
