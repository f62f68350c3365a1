//! The load Lambda: write the manifest of a processed object.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = pipeline_lambda::start_etl_function().await?;
    let catalog = pipeline_lambda::catalog_from_env().await?;
    let (env, catalog) = (&env, &catalog);
    pipeline_lambda::run(move |input| handler::load(input, &env.store, catalog, &env.config)).await
}
