//! `runledger-local`: the whole of runledger in one process over the embedded store.

pub mod bench;
pub mod config;
pub mod runtime;
pub mod server;
