//! One handler per endpoint, grouped by resource. A handler takes its extractors in the order
//! the API checks them (see `extract`), calls one use case and shapes its answer.

pub mod analytics;
pub mod catalog;
pub mod events;
pub mod executions;
pub mod health;
pub mod imports;
pub mod quarantine;
pub mod reports;
pub mod steps;
