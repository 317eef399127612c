//! runledger over AWS: the engine wired to DynamoDB, SQS and EventBridge. Built once per
//! process (a Lambda cold start, or `runledger-local serve --backend aws`).

use super::dynamo::DynamoStore;
use super::eventbridge::{EventBridgeBus, create_bus};
use super::metrics::RequestCounter;
use super::sqs::{SqsWorkQueue, create_queues};
use super::{AwsSettings, QueueUrls};
use crate::api::{RouteGroup, Router};
use crate::auth::{Authenticator, JwtSettings};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::ids::{IdSource, UlidSource};
use crate::engine::Engine;
use aws_config::SdkConfig;
use std::sync::Arc;

pub struct AwsBackend {
    pub engine: Engine,
    pub queue: Arc<SqsWorkQueue>,
    pub settings: AwsSettings,
    pub sdk: SdkConfig,
}

impl AwsBackend {
    /// Wires the engine to the resources `settings` names.
    pub fn new(sdk: &SdkConfig, settings: AwsSettings) -> Self {
        Self::with_counter(sdk, settings, None)
    }

    /// The same, counting every AWS request in `counter` (for the bench).
    pub fn with_counter(
        sdk: &SdkConfig,
        settings: AwsSettings,
        counter: Option<RequestCounter>,
    ) -> Self {
        let ids: Arc<dyn IdSource> = Arc::new(UlidSource::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (dynamodb, sqs, eventbridge) = match counter {
            None => (
                aws_sdk_dynamodb::Client::new(sdk),
                aws_sdk_sqs::Client::new(sdk),
                aws_sdk_eventbridge::Client::new(sdk),
            ),
            Some(counter) => (
                aws_sdk_dynamodb::Client::from_conf(
                    aws_sdk_dynamodb::config::Builder::from(sdk)
                        .interceptor(counter.clone())
                        .build(),
                ),
                aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(sdk)
                        .interceptor(counter.clone())
                        .build(),
                ),
                aws_sdk_eventbridge::Client::from_conf(
                    aws_sdk_eventbridge::config::Builder::from(sdk)
                        .interceptor(counter)
                        .build(),
                ),
            ),
        };
        let store = DynamoStore::new(dynamodb, &settings.table, Arc::clone(&ids));
        let queue = Arc::new(SqsWorkQueue::new(sqs, settings.queue_urls.clone()));
        let bus = EventBridgeBus::new(eventbridge, &settings.event_bus);
        let engine = Engine::new(Arc::new(store), queue.clone(), Arc::new(bus), clock, ids);
        AwsBackend {
            engine,
            queue,
            settings,
            sdk: sdk.clone(),
        }
    }

    /// The router over this backend, mounting `groups`.
    pub fn router(&self, auth: Arc<Authenticator>, groups: &[RouteGroup]) -> Router {
        Router::new(self.engine.clone(), auth, groups)
    }

    /// Creates the table, queues and bus named `{prefix}` (idempotent) and returns the
    /// settings that point at them. For `--create-resources`, tests and the emulator.
    pub async fn create_resources(sdk: &SdkConfig, prefix: &str) -> Result<AwsSettings, String> {
        DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(sdk), prefix)
            .await
            .map_err(|e| e.to_string())?;
        let (queue_urls, step_queue_url): (QueueUrls, String) =
            create_queues(&aws_sdk_sqs::Client::new(sdk), prefix).await?;
        create_bus(&aws_sdk_eventbridge::Client::new(sdk), prefix).await?;
        Ok(AwsSettings {
            table: prefix.to_owned(),
            queue_urls,
            step_queue_url: Some(step_queue_url),
            event_bus: prefix.to_owned(),
        })
    }
}

/// JWT settings from `RUNLEDGER_JWT_SECRET` (and optional issuer and audience).
pub fn jwt_settings_from_env() -> Result<JwtSettings, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let secret = var("RUNLEDGER_JWT_SECRET").ok_or("RUNLEDGER_JWT_SECRET is not set")?;
    Ok(JwtSettings {
        secret: secret.into_bytes(),
        issuer: var("RUNLEDGER_JWT_ISSUER"),
        audience: var("RUNLEDGER_JWT_AUDIENCE"),
    })
}
