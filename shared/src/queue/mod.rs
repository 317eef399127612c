//! WorkQueue adapters: the in-process priority queue.

pub mod local;
