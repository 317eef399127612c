//! The AWS adapters: DynamoDB store, SQS work queue, EventBridge bus, and their settings.

pub mod backend;
pub mod lambda;
pub mod metrics;
pub mod sqs;

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

/// A variable lookup: the process environment ([`env_var`]) in Lambda, a map in tests that
/// configure a function from a stack's definition. An empty value counts as unset.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// [`Vars`] over the process environment.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(&env_var)
    }

    pub fn from_vars(var: Vars<'_>) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
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

/// The SDK configuration from the full default chain (`AWS_REGION`, credentials from the
/// environment, profiles, SSO, web identity or instance metadata, `AWS_ENDPOINT_URL` for an
/// emulator): for `runledger-local` on a laptop or a server.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The SDK configuration inside Lambda, from the variables Lambda sets: `AWS_REGION` and the
/// execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), and `AWS_ENDPOINT_URL` when pointed at an emulator. Lambda always
/// gives credentials this way, so the rest of the default chain (profiles, SSO, STS, instance
/// metadata) stays out of the bootstraps: about a megabyte of each.
pub fn lambda_sdk_config(var: Vars<'_>) -> Result<SdkConfig, String> {
    use aws_config::Region;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .ok_or("AWS_REGION is not set")?;
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}
