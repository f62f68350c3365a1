//! Recording object versions in the catalog table (load and quarantine).

use pipeline_core::PipelineError;

use crate::now_rfc3339;

/// The catalog table named by `CATALOG_TABLE` (load and quarantine record every object
/// version there), on the function's SDK configuration.
pub async fn catalog_from_env() -> Result<pipeline_aws::catalog::DynamoCatalog, PipelineError> {
    let table = std::env::var("CATALOG_TABLE")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| PipelineError::config("CATALOG_TABLE is not set"))?;
    let config = pipeline_aws::load_sdk_config().await;
    Ok(pipeline_aws::catalog::DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ))
}

/// What one execution's final step records in the catalog.
pub struct CatalogRecord<'a> {
    pub source: &'a pipeline_core::payload::SourceObject,
    pub status: pipeline_core::catalog::CatalogStatus,
    pub result_key: &'a str,
    pub error: Option<&'a str>,
    pub thumbnails: usize,
    pub execution: &'a str,
}

/// Records an object version in the catalog. A failure is `Transient`: the state
/// machine retries the step, whose S3 writes are idempotent.
pub async fn record_in_catalog(
    catalog: &dyn pipeline_aws::catalog::Catalog,
    record: CatalogRecord<'_>,
) -> Result<pipeline_aws::catalog::Recorded, PipelineError> {
    let entry = pipeline_core::catalog::CatalogEntry {
        key: record.source.key.clone(),
        version: record
            .source
            .version_id
            .clone()
            .unwrap_or_else(|| pipeline_core::catalog::NULL_VERSION.to_string()),
        seq: pipeline_core::catalog::sortable_sequencer(record.source.sequencer.as_deref())
            .unwrap_or_default(),
        status: record.status,
        result_key: record.result_key.to_string(),
        error: record.error.map(str::to_string),
        thumbnails: u32::try_from(record.thumbnails).unwrap_or(u32::MAX),
        execution: record.execution.to_string(),
        recorded_at: now_rfc3339(),
    };
    catalog
        .record(&entry)
        .await
        .map_err(PipelineError::transient)
}
