//! Execution stores: the embedded adapter and the conformance suite every adapter passes.

pub mod conformance;
pub mod embedded;
