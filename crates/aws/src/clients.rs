//! SDK configuration and client construction, in one place.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};

/// Loads the standard AWS configuration chain (env, profile, IMDS, ...). Honours
/// `AWS_ENDPOINT_URL`, which is how functions running in the emulator find it.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// Configuration for a local emulator at `endpoint` (e.g. `http://127.0.0.1:4566`),
/// with the emulator's dummy credentials.
pub async fn sdk_config_for_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

/// All SDK clients the project uses, built once from one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Clients {
            s3: s3_client(config),
            sfn: sfn_client(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }
}

/// An S3 client. With an overridden endpoint (an emulator) it uses path-style addressing:
/// virtual-host style would need `<bucket>.<host>` to resolve.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A Step Functions client.
pub fn sfn_client(config: &SdkConfig) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(config)
}
