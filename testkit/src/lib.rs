//! runledger's test support, never compiled into the product: a dev-dependency of `runledger`
//! (for its integration tests) and of `runledger-local`.
//!
//! - [`conformance`]: the store conformance suite every `ExecutionStore` adapter passes, one
//!   module per section, and the harness its checks (and other engine-level tests) use.
//! - [`stores`]: the embedded store in memory or on a fresh file, an engine over it, and a
//!   DynamoDB store on a fresh table of the emulator.
//! - [`emulator`]: the local AWS emulator (started once per test process) and unique names;
//!   [`interceptors`]: a network's round trip and injected faults for its clients.
//! - [`api`]: the in-process API harness: the router over the embedded adapters, and the
//!   checks every response must pass.
//! - [`server`]: the real `runledger-local` process on a loopback port, and an HTTP client.
//! - [`lambda`]: Lambda payloads (the samples in `events/`), replies, SQS and EventBridge
//!   helpers and a loopback HTTP target; [`scripted_aws`]: a stand-in AWS endpoint.
//! - [`builders`], [`tokens`], [`wire`]: what tests create, tokens, and reading replies;
//!   [`fakes`]: a clock that moves only when told to, and predictable ids.

pub mod api;
pub mod builders;
pub mod conformance;
pub mod emulator;
pub mod fakes;
pub mod interceptors;
pub mod lambda;
pub mod runtime_api;
pub mod scripted_aws;
pub mod server;
pub mod sse;
pub mod stores;
pub mod tokens;
pub mod wire;
