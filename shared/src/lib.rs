//! runledger: a test execution engine. This crate holds everything that is not a process
//! entry point: the domain, the use cases, the ports and their embedded adapters, the
//! built-in HTTP runner, authentication and the one HTTP router every host mounts.

pub mod api;
pub mod auth;
pub mod aws;
pub mod bus;
pub mod crypto;
pub mod domain;
pub mod engine;
pub mod lambda;
pub mod ports;
pub mod queue;
pub mod report;
pub mod runner;
pub mod settings;
pub mod store;
