//! The `WorkQueue` adapters: the in-process priority queue ([`local`]) and SQS ([`sqs`]).

pub mod local;
pub mod sqs;
