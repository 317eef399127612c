//! runledger over AWS: the engine wired to DynamoDB, SQS and EventBridge. Built once per
//! process (a Lambda cold start, or `runledger-local serve --backend aws`).

use super::metrics::Metering;
use crate::api::{RouteGroup, Router};
use crate::auth::{Authenticator, JwtSettings};
use crate::bus::eventbridge::{EventBridgeBus, create_bus, delete_bus};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::ids::{IdSource, UlidSource};
use crate::engine::Engine;
use crate::queue::sqs::{SqsWorkQueue, create_queues, delete_queue, queue_names};
use crate::settings::{
    AwsSettings, JWT_SECRET, JWT_SECRET_PARAMETER, JwtVariables, QueueUrls, Vars,
};
use crate::store::dynamo::DynamoStore;
use aws_config::SdkConfig;
use std::sync::Arc;

pub struct AwsBackend {
    pub engine: Engine,
    /// The engine's store, for what only DynamoDB does (logging the table's stream records).
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsWorkQueue>,
    pub settings: AwsSettings,
    pub sdk: SdkConfig,
}

impl AwsBackend {
    /// Wires the engine to the resources `settings` names (as a Lambda function: the `log`
    /// function writes the event log from the table's stream).
    pub fn new(sdk: &SdkConfig, settings: AwsSettings) -> Self {
        Self::build(sdk, settings, None, false)
    }

    /// The same, also writing the event log from the table's stream whenever the engine's
    /// `sync_log` is called, where no `log` function does (`runledger-local --backend aws`).
    #[cfg(feature = "log-follower")]
    pub fn following_the_log(sdk: &SdkConfig, settings: AwsSettings) -> Self {
        Self::build(sdk, settings, None, true)
    }

    /// The same, counting every AWS request and logging every DynamoDB write in `metering`
    /// (for the bench).
    pub fn with_metering(
        sdk: &SdkConfig,
        settings: AwsSettings,
        metering: Option<Metering>,
    ) -> Self {
        Self::build(sdk, settings, metering, false)
    }

    fn build(
        sdk: &SdkConfig,
        settings: AwsSettings,
        metering: Option<Metering>,
        follow_log: bool,
    ) -> Self {
        let ids: Arc<dyn IdSource> = Arc::new(UlidSource::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (dynamodb, sqs, eventbridge) = match metering {
            None => (
                aws_sdk_dynamodb::Client::new(sdk),
                aws_sdk_sqs::Client::new(sdk),
                aws_sdk_eventbridge::Client::new(sdk),
            ),
            Some(Metering { requests, writes }) => (
                aws_sdk_dynamodb::Client::from_conf(
                    aws_sdk_dynamodb::config::Builder::from(sdk)
                        .interceptor(requests.clone())
                        .interceptor(writes)
                        .build(),
                ),
                aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(sdk)
                        .interceptor(requests.clone())
                        .build(),
                ),
                aws_sdk_eventbridge::Client::from_conf(
                    aws_sdk_eventbridge::config::Builder::from(sdk)
                        .interceptor(requests)
                        .build(),
                ),
            ),
        };
        #[allow(unused_mut)]
        let mut store = DynamoStore::new(dynamodb, &settings.table, Arc::clone(&ids));
        #[cfg(feature = "log-follower")]
        if follow_log {
            store = store.following_the_log(aws_sdk_dynamodbstreams::Client::new(sdk));
        }
        #[cfg(not(feature = "log-follower"))]
        let _ = follow_log;
        let store = Arc::new(store);
        let queue = Arc::new(SqsWorkQueue::new(sqs, settings.queue_urls.clone()));
        let bus = EventBridgeBus::new(eventbridge, &settings.event_bus);
        let engine = Engine::new(store.clone(), queue.clone(), Arc::new(bus), clock, ids);
        AwsBackend {
            engine,
            store,
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

    /// What [`Self::create_resources`] creates under `prefix`, one line each.
    pub fn resource_names(prefix: &str) -> Vec<String> {
        let mut names = vec![format!("DynamoDB table {prefix}")];
        names.extend(
            queue_names(prefix)
                .into_iter()
                .map(|q| format!("SQS queue {q}")),
        );
        names.push(format!("EventBridge bus {prefix}"));
        names
    }

    /// Deletes what [`Self::create_resources`] creates under `prefix`, whichever of it exists
    /// (so it also cleans up after a creation that failed halfway). Tries every resource even
    /// when one fails; the error names those left and the first failure.
    pub async fn delete_resources(sdk: &SdkConfig, prefix: &str) -> Result<(), String> {
        let mut left: Vec<(String, String)> = Vec::new();
        if let Err(e) = DynamoStore::delete_table(&aws_sdk_dynamodb::Client::new(sdk), prefix).await
        {
            left.push((format!("DynamoDB table {prefix}"), e));
        }
        let sqs = aws_sdk_sqs::Client::new(sdk);
        for queue in queue_names(prefix) {
            if let Err(e) = delete_queue(&sqs, &queue).await {
                left.push((format!("SQS queue {queue}"), e));
            }
        }
        if let Err(e) = delete_bus(&aws_sdk_eventbridge::Client::new(sdk), prefix).await {
            left.push((format!("EventBridge bus {prefix}"), e));
        }
        match left.first() {
            None => Ok(()),
            Some((_, first)) => {
                let names: Vec<&str> = left.iter().map(|(name, _)| name.as_str()).collect();
                Err(format!(
                    "could not delete {} (the first error: {first})",
                    names.join(", ")
                ))
            }
        }
    }
}

/// JWT settings from `RUNLEDGER_JWT_SECRET` or the SSM parameter `RUNLEDGER_JWT_SECRET_PARAMETER`
/// names (read once, decrypted, at cold start), and the optional `RUNLEDGER_JWT_ISSUER` and
/// `RUNLEDGER_JWT_AUDIENCE`. Setting both the secret and the parameter is refused as
/// ambiguous.
pub async fn jwt_settings(var: Vars<'_>, sdk: &SdkConfig) -> Result<JwtSettings, String> {
    let jwt = JwtVariables::from_vars(var);
    let secret = match (jwt.secret, jwt.secret_parameter) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "both {JWT_SECRET} and {JWT_SECRET_PARAMETER} are set: set one"
            ));
        }
        (Some(secret), None) => secret,
        (None, Some(name)) => read_secret_parameter(&aws_sdk_ssm::Client::new(sdk), &name).await?,
        (None, None) => {
            return Err(format!(
                "{JWT_SECRET_PARAMETER} (or {JWT_SECRET}) is not set"
            ));
        }
    };
    Ok(JwtSettings {
        secret: secret.into_bytes(),
        issuer: jwt.issuer,
        audience: jwt.audience,
    })
}

/// The decrypted value of an SSM parameter. The error names the parameter, never its value.
async fn read_secret_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    let output = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the JWT secret parameter {name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(e)
            )
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("the JWT secret parameter {name} has no value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sdk() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    async fn settings_from(pairs: &[(&str, &str)]) -> Result<JwtSettings, String> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        jwt_settings(&|name: &str| vars.get(name).cloned(), &sdk()).await
    }

    #[tokio::test]
    async fn the_secret_comes_from_exactly_one_place() {
        let settings = settings_from(&[
            (JWT_SECRET, "0123456789abcdef0123456789abcdef"),
            ("RUNLEDGER_JWT_ISSUER", "ci"),
            ("RUNLEDGER_JWT_AUDIENCE", ""),
        ])
        .await
        .expect("settings");
        assert_eq!(settings.secret, b"0123456789abcdef0123456789abcdef");
        assert_eq!(settings.issuer.as_deref(), Some("ci"));
        assert_eq!(settings.audience, None, "empty counts as unset");

        let Err(both) = settings_from(&[(JWT_SECRET, "x"), (JWT_SECRET_PARAMETER, "/p")]).await
        else {
            panic!("a secret and a parameter both set were accepted");
        };
        assert!(both.contains("set one"), "{both}");
        let Err(neither) = settings_from(&[(JWT_SECRET, "")]).await else {
            panic!("no secret was accepted");
        };
        assert!(neither.contains(JWT_SECRET_PARAMETER), "{neither}");
    }
}
