//! The AWS adapters: DynamoDB store, SQS work queue, EventBridge bus, and their settings.

pub mod backend;
pub mod dynamo;
pub mod eventbridge;
pub mod lambda;
pub mod metrics;
pub mod sqs;
pub mod testkit;

use aws_config::{BehaviorVersion, SdkConfig};

/// Resource names and URLs, from `RUNLEDGER_` variables (the SAM template sets them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// `RUNLEDGER_TABLE`: the single DynamoDB table.
    pub table: String,
    /// `RUNLEDGER_QUEUE_HIGH_URL`, `..._NORMAL_URL`, `..._LOW_URL`: work queues by priority.
    pub queue_urls: QueueUrls,
    /// `RUNLEDGER_STEP_QUEUE_URL`: the asynchronous step-report queue.
    pub step_queue_url: Option<String>,
    /// `RUNLEDGER_EVENT_BUS`: the custom EventBridge bus.
    pub event_bus: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueUrls {
    pub high: String,
    pub normal: String,
    pub low: String,
}

pub const DEFAULT_TABLE: &str = "runledger";
pub const DEFAULT_EVENT_BUS: &str = "runledger";
/// The `source` of every event runledger puts on its bus.
pub const EVENT_SOURCE: &str = "runledger";

impl AwsSettings {
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        Ok(AwsSettings {
            table: var("RUNLEDGER_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            queue_urls: QueueUrls {
                high: required("RUNLEDGER_QUEUE_HIGH_URL")?,
                normal: required("RUNLEDGER_QUEUE_NORMAL_URL")?,
                low: required("RUNLEDGER_QUEUE_LOW_URL")?,
            },
            step_queue_url: var("RUNLEDGER_STEP_QUEUE_URL"),
            event_bus: var("RUNLEDGER_EVENT_BUS").unwrap_or_else(|| DEFAULT_EVENT_BUS.to_owned()),
        })
    }
}

/// The SDK configuration from the standard AWS variables (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for an emulator). Built once per process (per Lambda cold start).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
