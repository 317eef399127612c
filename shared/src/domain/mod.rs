//! The domain: pure types and rules, no I/O.

pub mod catalog;
pub mod clock;
pub mod events;
pub mod execution;
pub mod ids;
pub mod time;
pub mod validation;
pub mod workflow;
