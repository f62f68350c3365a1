//! The ingest Lambda: S3 ObjectCreated notification -> one Step Functions execution per object version.

mod handler;

use lambda_runtime::{service_fn, LambdaEvent};
use pipeline_aws::clients::{load_sdk_config, sfn_client};
use pipeline_aws::SfnStarter;
use pipeline_core::PipelineError;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_lambda::init_tracing();
    let config = pipeline_lambda::config_from_env()?;
    let arn = config
        .state_machine_arn
        .clone()
        .ok_or_else(|| PipelineError::config("STATE_MACHINE_ARN is not set"))?;
    let starter = SfnStarter::new(sfn_client(&load_sdk_config().await), arn);
    let (starter, layout) = (&starter, &config.layout);
    let fault = &pipeline_lambda::fault::FaultSwitch::from_env()?;
    // The raw event is taken as JSON so that one malformed record cannot fail the others.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        fault.trip().await;
        handler::handle(&event.payload, layout, starter)
            .await
            .map_err(pipeline_lambda::FunctionError)
    }))
    .await
}
