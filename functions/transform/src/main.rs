//! The transform Lambda: decode once with limits, write every configured thumbnail size.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = pipeline_lambda::start_etl_function().await?;
    let env = &env;
    pipeline_lambda::run(move |input| handler::transform(input, &env.store, &env.config)).await
}
