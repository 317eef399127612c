//! EventBus adapters: in-process fan-out, and EventBridge on AWS.

pub mod eventbridge;
pub mod local;
