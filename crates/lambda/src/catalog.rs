//! Recording object versions in the catalog table (load and quarantine).

use pipeline_aws::catalog::{Catalog, Recorded};
use pipeline_aws::ObjectStore;
use pipeline_core::catalog::{sortable_sequencer, CatalogEntry, CatalogStatus, NULL_VERSION};
use pipeline_core::naming::VersionToken;
use pipeline_core::ordering::{decide, Decision};
use pipeline_core::PipelineError;
use tracing::info;

use crate::now_rfc3339;
use crate::publish::current_version;

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

/// How many read-decide-write rounds on the latest item before `Transient`.
const MAX_ROUNDS: usize = 5;

/// Records an object version in the catalog: its version item always, and the key's
/// `~latest` item by the rule of [`pipeline_core::ordering`] (only for the version S3
/// reports as current, checked after reading the stored item, written on a condition on
/// what was read). A superseded version never touches `~latest`. A failure is
/// `Transient`: the state machine retries the step, whose writes are idempotent.
pub async fn record_in_catalog(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    record: CatalogRecord<'_>,
) -> Result<Recorded, PipelineError> {
    let entry = CatalogEntry {
        key: record.source.key.clone(),
        version: record
            .source
            .version_id
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| NULL_VERSION.to_string()),
        seq: sortable_sequencer(record.source.sequencer.as_deref()).unwrap_or_default(),
        etag: record
            .source
            .etag
            .as_ref()
            .map(|e| e.trim_matches('"').to_string()),
        status: record.status,
        result_key: record.result_key.to_string(),
        error: record.error.map(str::to_string),
        thumbnails: u32::try_from(record.thumbnails).unwrap_or(u32::MAX),
        execution: record.execution.to_string(),
        recorded_at: now_rfc3339(),
    };
    catalog
        .put_version(&entry)
        .await
        .map_err(PipelineError::transient)?;
    if record.status == CatalogStatus::Superseded {
        return Ok(Recorded { latest: false });
    }
    let ours = VersionToken::of(record.source);
    for _ in 0..MAX_ROUNDS {
        let stored = catalog
            .latest(&entry.key)
            .await
            .map_err(PipelineError::transient)?;
        let now = current_version(store, record.source).await?;
        match decide(stored.as_ref().map(CatalogEntry::token), ours, &now) {
            Decision::Rewrite => return Ok(Recorded { latest: true }),
            Decision::Superseded { current } => {
                info!(key = %entry.key, current = %current, "catalog: a newer version is the latest");
                return Ok(Recorded { latest: false });
            }
            Decision::Write => {}
        }
        if catalog
            .put_latest(&entry, stored.as_ref())
            .await
            .map_err(PipelineError::transient)?
        {
            return Ok(Recorded { latest: true });
        }
    }
    Err(PipelineError::transient(format!(
        "catalog latest item of {:?} changed {MAX_ROUNDS} times while recording",
        entry.key
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::catalog::MemoryCatalog;
    use pipeline_aws::MemoryStore;
    use pipeline_core::payload::SourceObject;

    fn upload(store: &MemoryStore, body: &str, sequencer: Option<&str>) -> SourceObject {
        SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id: store.insert("in", "a.jpg", body.as_bytes().to_vec()),
            sequencer: sequencer.map(str::to_string),
            etag: None,
            size: None,
        }
    }

    async fn record(
        catalog: &MemoryCatalog,
        store: &MemoryStore,
        source: &SourceObject,
        status: CatalogStatus,
    ) -> Recorded {
        record_in_catalog(
            catalog,
            store,
            CatalogRecord {
                source,
                status,
                result_key: "manifests/a.jpg.json",
                error: None,
                thumbnails: 2,
                execution: "exec",
            },
        )
        .await
        .unwrap()
    }

    fn latest_version(catalog: &MemoryCatalog) -> Option<String> {
        catalog.entries("a.jpg").1.map(|e| e.version)
    }

    /// v2 recorded, then v1 finishing late: `~latest` stays v2, whatever sequencers the
    /// two carry (before the ordering rule a missing sequencer let the writer win), and
    /// both version items are there.
    #[tokio::test]
    async fn record_latest_older_finishing_late_never_replaces_newer() {
        // (v1's sequencer, v2's sequencer, v2's status)
        let cases = [
            // Reconciled v1 (no sequencer) after evented v2.
            (None, Some("0055AED6DCD90281E6"), CatalogStatus::Processed),
            // A late v1 event with a larger (meaningless) sequencer after reconciled v2.
            (Some("FFFFFFFF"), None, CatalogStatus::Quarantined),
        ];
        for (v1_seq, v2_seq, v2_status) in cases {
            let (catalog, store) = (MemoryCatalog::new(), MemoryStore::new());
            store.enable_versioning("in");
            let v1 = upload(&store, "one", v1_seq);
            let v2 = upload(&store, "two", v2_seq);
            assert!(record(&catalog, &store, &v2, v2_status).await.latest);
            let late = record(&catalog, &store, &v1, CatalogStatus::Processed).await;
            assert!(!late.latest, "{v1_seq:?} / {v2_seq:?}");
            assert_eq!(latest_version(&catalog), v2.version_id);
            assert_eq!(catalog.entries("a.jpg").0.len(), 2);
        }
    }

    #[tokio::test]
    async fn record_latest_newer_replaces_older_and_superseded_never_touches_it() {
        let (catalog, store) = (MemoryCatalog::new(), MemoryStore::new());
        store.enable_versioning("in");
        let v1 = upload(&store, "one", None);
        assert!(
            record(&catalog, &store, &v1, CatalogStatus::Processed)
                .await
                .latest
        );
        let v2 = upload(&store, "two", None);
        assert!(
            record(&catalog, &store, &v2, CatalogStatus::Processed)
                .await
                .latest
        );
        assert_eq!(latest_version(&catalog), v2.version_id);
        assert!(
            !record(&catalog, &store, &v1, CatalogStatus::Superseded)
                .await
                .latest
        );
        assert_eq!(latest_version(&catalog), v2.version_id);
        // A retried step of the current version is idempotent.
        assert!(
            record(&catalog, &store, &v2, CatalogStatus::Processed)
                .await
                .latest
        );
    }
}
