//! Execution stores: the embedded adapter (the conformance suite every adapter passes is in
//! the `testkit/` crate).

pub mod embedded;
