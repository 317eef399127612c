//! Execution stores: the embedded adapter and DynamoDB (the conformance suite every adapter
//! passes is in the `testkit/` crate).

pub mod dynamo;
pub mod embedded;
