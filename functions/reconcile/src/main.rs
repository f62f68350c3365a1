//! The reconcile Lambda, run by an EventBridge schedule: starts executions for input
//! objects that still have no manifest or quarantine report after a grace period.

mod handler;

use pipeline_aws::clients::{load_sdk_config, s3_client, sfn_client};
use pipeline_aws::{S3Store, SfnStarter};
use pipeline_core::reconcile::ReconcileConfig;
use pipeline_core::PipelineError;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_lambda::init_tracing();
    let config = pipeline_lambda::config_from_env()?;
    let reconcile = ReconcileConfig::from_vars(std::env::vars())?;
    let arn = config
        .state_machine_arn
        .clone()
        .ok_or_else(|| PipelineError::config("STATE_MACHINE_ARN is not set"))?;
    let sdk = load_sdk_config().await;
    let store = S3Store::new(s3_client(&sdk));
    let starter = SfnStarter::new(sfn_client(&sdk), arn);
    let env = &(config, reconcile, store, starter);
    pipeline_lambda::run(move |invocation| {
        handler::reconcile(invocation, &env.0, &env.1, &env.2, &env.3)
    })
    .await
}
