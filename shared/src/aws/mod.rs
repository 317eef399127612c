//! runledger over AWS: the SDK configuration, the engine assembled over the AWS adapters
//! ([`backend`]) and request counting ([`metrics`]). The SQS work queue is in `queue::sqs`,
//! the Lambda host in `lambda`, the `RUNLEDGER_*` variables in `settings`.

pub mod backend;
pub mod metrics;

use crate::settings::Vars;
use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// The SDK configuration from the full default chain (`AWS_REGION`, credentials from the
/// environment, profiles, SSO, web identity or instance metadata, `AWS_ENDPOINT_URL` for an
/// emulator): for `runledger-local` on a laptop or a server.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK's HTTP client: hyper over rustls with ring ([`crate::crypto`]), the SDK's own
/// connector and timeouts otherwise. Every SDK configuration runledger builds sets it: no SDK
/// crate carries a default client.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
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
        .http_client(https_client())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}
