//! The quarantine Lambda: copy a rejected object aside and write a report saying why.

mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = pipeline_lambda::start_etl_function().await?;
    let catalog = pipeline_lambda::catalog_from_env().await?;
    let (env, catalog) = (&env, &catalog);
    pipeline_lambda::run(move |input| {
        handler::quarantine(
            input,
            &env.store,
            catalog,
            &env.config,
            pipeline_lambda::now_rfc3339(),
        )
    })
    .await
}
