//! The inspect Lambda: sniff the object's real type, validate limits, extract metadata.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = pipeline_lambda::start_etl_function().await?;
    let env = &env;
    pipeline_lambda::run(move |input| handler::inspect(input, &env.store, &env.config)).await
}
