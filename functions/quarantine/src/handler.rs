//! Quarantine: copy the rejected version to `quarantine/objects/<key>/<version tag>`, then
//! publish `quarantine/reports/<key>.json`, unless a newer write to the key already has
//! its report (then the copy goes again and the execution ends `superseded`).

use pipeline_aws::catalog::Catalog;
use pipeline_aws::{ObjectLocation, ObjectStore, StoreError};
use pipeline_core::catalog::CatalogStatus;
use pipeline_core::config::PipelineConfig;
use pipeline_core::key::ObjectKey;
use pipeline_core::naming::version_tag;
use pipeline_core::payload::{
    ObjectRef, Outcome, QuarantineInput, QuarantineOutput, QuarantineReport, SCHEMA_VERSION,
};
use pipeline_core::PipelineError;
use pipeline_lambda::publish::{publish_result, Published};
use pipeline_lambda::{from_store, record_in_catalog, CatalogRecord};
use tracing::{info, warn};

/// Quarantines one object. A source that no longer exists is still reported (with no
/// copy): the report is what tells the user what happened, so it is always written.
pub async fn quarantine(
    input: QuarantineInput,
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
    config: &PipelineConfig,
    now: String,
) -> Result<QuarantineOutput, PipelineError> {
    let source = &input.source;
    let bad_key = |e| PipelineError::invalid_event(format!("source key: {e}"));
    let key = ObjectKey::from_decoded(source.key.clone()).map_err(bad_key)?;
    let tag = version_tag(source).map_err(bad_key)?;
    let layout = &config.layout;
    let copy_key = layout.quarantine_object_key(&key, &tag);
    let copy = match store
        .copy(ObjectLocation::from(source), &layout.bucket, &copy_key)
        .await
    {
        Ok(()) => Some(ObjectRef {
            bucket: layout.bucket.clone(),
            key: copy_key,
        }),
        Err(StoreError::NotFound { .. }) => {
            warn!(bucket = %source.bucket, key = %source.key, "source gone; reporting without a copy");
            None
        }
        Err(e) => return Err(from_store(e)),
    };
    let report = QuarantineReport {
        schema_version: SCHEMA_VERSION,
        source: source.clone(),
        error: input.failure.error.clone(),
        cause: input.failure.reason(),
        execution_name: input.execution.name.clone(),
        execution_started_at: input.execution.started_at.clone(),
        quarantined_at: now,
        copy,
    };
    let report_ref = ObjectRef {
        bucket: layout.bucket.clone(),
        key: layout.quarantine_report_key(&key),
    };
    let body = serde_json::to_vec_pretty(&report)
        .map_err(|e| PipelineError::invalid_event(format!("serialising report: {e}")))?;
    let published =
        publish_result(store, &report_ref.bucket, &report_ref.key, &body, source).await?;
    if let Published::Superseded { by } = published {
        if let Some(copy) = &report.copy {
            store
                .delete(&copy.bucket, &copy.key)
                .await
                .map_err(from_store)?;
        }
        record_in_catalog(
            catalog,
            store,
            CatalogRecord {
                source,
                status: CatalogStatus::Superseded,
                result_key: &report_ref.key,
                error: Some(&report.error),
                thumbnails: 0,
                execution: &report.execution_name,
            },
        )
        .await?;
        info!(bucket = %source.bucket, key = %source.key, superseded_by = %by,
              execution = %report.execution_name, outcome = "superseded", "superseded");
        return Ok(QuarantineOutput {
            outcome: Outcome::Superseded,
            error: report.error,
            report: report_ref,
            superseded_by: Some(by),
        });
    }
    record_in_catalog(
        catalog,
        store,
        CatalogRecord {
            source,
            status: CatalogStatus::Quarantined,
            result_key: &report_ref.key,
            error: Some(&report.error),
            thumbnails: 0,
            execution: &report.execution_name,
        },
    )
    .await?;
    info!(bucket = %source.bucket, key = %source.key, error = %report.error, cause = %report.cause,
          execution = %report.execution_name, outcome = "quarantined", "quarantined");
    Ok(QuarantineOutput {
        outcome: Outcome::Quarantined,
        error: report.error,
        report: report_ref,
        superseded_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::catalog::MemoryCatalog;
    use pipeline_aws::MemoryStore;

    fn fixture() -> QuarantineInput {
        let text =
            include_str!("../../../state-machine/fixtures/quarantine-input-lambda-error.json");
        serde_json::from_str(text).unwrap()
    }

    fn config() -> PipelineConfig {
        PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap()
    }

    #[tokio::test]
    async fn quarantine_copies_source_and_writes_report_with_reason() {
        let store = MemoryStore::new();
        let input = fixture();
        let s = &input.source;
        store.insert_version(
            &s.bucket,
            &s.key,
            b"broken".to_vec(),
            s.version_id.as_deref().unwrap(),
        );
        let out = quarantine(
            input.clone(),
            &store,
            &MemoryCatalog::new(),
            &config(),
            "2026-11-29T08:00:00Z".into(),
        )
        .await
        .unwrap();
        assert_eq!(out.error, "InvalidImage");
        let tag = version_tag(&input.source).unwrap();
        let copy_key = format!("quarantine/objects/{}/{tag}", input.source.key);
        assert_eq!(store.object("out", &copy_key).unwrap().0, b"broken");
        let (body, _) = store.object("out", &out.report.key).unwrap();
        let report: QuarantineReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.error, "InvalidImage");
        assert_eq!(report.cause, "invalid image: unexpected end of file");
        assert_eq!(report.execution_name, input.execution.name);
        assert_eq!(report.copy.map(|c| c.key), Some(copy_key));
    }

    #[tokio::test]
    async fn quarantine_older_version_after_newer_keeps_newer_report() {
        let store = MemoryStore::new();
        let at = |id: &str, seq: &str| {
            let mut input = fixture();
            input.source.version_id = Some(id.into());
            input.source.sequencer = Some(seq.into());
            store.insert_version(
                &input.source.bucket,
                &input.source.key,
                id.as_bytes().to_vec(),
                id,
            );
            input
        };
        // Uploaded in order (v2 is current); quarantined in reverse.
        let older = at("v1", "09");
        let newer = at("v2", "0A");
        let out = quarantine(
            newer.clone(),
            &store,
            &MemoryCatalog::new(),
            &config(),
            "t2".into(),
        )
        .await
        .unwrap();
        assert_eq!(out.outcome, Outcome::Quarantined);
        let stale = quarantine(
            older.clone(),
            &store,
            &MemoryCatalog::new(),
            &config(),
            "t1".into(),
        )
        .await
        .unwrap();
        assert_eq!(stale.outcome, Outcome::Superseded);
        let (body, _) = store.object("out", &out.report.key).unwrap();
        let report: QuarantineReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.source, newer.source);
        let stale_copy = format!(
            "quarantine/objects/{}/{}",
            older.source.key,
            version_tag(&older.source).unwrap()
        );
        assert!(store.object("out", &stale_copy).is_none());
        assert!(store.object("out", &report.copy.unwrap().key).is_some());
    }

    #[tokio::test]
    async fn quarantine_missing_source_still_writes_report() {
        let store = MemoryStore::new();
        let out = quarantine(
            fixture(),
            &store,
            &MemoryCatalog::new(),
            &config(),
            "t".into(),
        )
        .await
        .unwrap();
        let (body, _) = store.object("out", &out.report.key).unwrap();
        let report: QuarantineReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.copy, None);
    }
}
