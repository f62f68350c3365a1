//! The inspect Lambda: sniff the object's real type, validate limits, extract metadata.

mod handler;

use pipeline_aws::clients::{load_sdk_config, s3_client};
use pipeline_aws::S3Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_lambda::init_tracing();
    let config = pipeline_lambda::config_from_env()?;
    let store = S3Store::new(s3_client(&load_sdk_config().await));
    let (store, config) = (&store, &config);
    pipeline_lambda::run(move |input| handler::inspect(input, store, config)).await
}
