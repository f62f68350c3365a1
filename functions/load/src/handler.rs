//! Load: assemble the manifest from the states' outputs and publish it, unless a newer
//! write to the same key already has its result (then this version's thumbnails go).

use pipeline_aws::catalog::Catalog;
use pipeline_aws::ObjectStore;
use pipeline_core::catalog::CatalogStatus;
use pipeline_core::config::PipelineConfig;
use pipeline_core::key::ObjectKey;
use pipeline_core::payload::{
    LoadInput, LoadOutput, Manifest, ObjectRef, Outcome, StepTimings, SCHEMA_VERSION,
};
use pipeline_core::PipelineError;
use pipeline_lambda::publish::{publish_result, Published};
use pipeline_lambda::{from_store, record_in_catalog, CatalogRecord};
use tracing::info;

pub async fn load(
    input: LoadInput,
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
    config: &PipelineConfig,
) -> Result<LoadOutput, PipelineError> {
    let key = ObjectKey::from_decoded(input.source.key.clone())
        .map_err(|e| PipelineError::invalid_event(format!("source key: {e}")))?;
    let manifest_ref = ObjectRef {
        bucket: config.layout.bucket.clone(),
        key: config.layout.manifest_key(&key),
    };
    let manifest = build_manifest(&input)?;
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PipelineError::invalid_event(format!("serialising manifest: {e}")))?;
    let published = publish_result(
        store,
        &manifest_ref.bucket,
        &manifest_ref.key,
        &body,
        &input.source,
    )
    .await?;
    let thumbnails = input
        .transform
        .thumbnails
        .iter()
        .map(|t| ObjectRef {
            bucket: t.bucket.clone(),
            key: t.key.clone(),
        })
        .collect::<Vec<_>>();
    if let Published::Superseded { by } = published {
        // This version's thumbnails are under its own version directory, which no
        // manifest names now: remove them rather than leave orphans.
        for t in &thumbnails {
            store.delete(&t.bucket, &t.key).await.map_err(from_store)?;
        }
        record_in_catalog(
            catalog,
            store,
            CatalogRecord {
                source: &input.source,
                status: CatalogStatus::Superseded,
                result_key: &manifest_ref.key,
                error: None,
                thumbnails: 0,
                execution: &input.execution.name,
            },
        )
        .await?;
        info!(bucket = %input.source.bucket, key = %input.source.key, superseded_by = %by,
              execution = %input.execution.name, outcome = "superseded", "superseded");
        return Ok(LoadOutput {
            outcome: Outcome::Superseded,
            manifest: manifest_ref,
            thumbnails: Vec::new(),
            superseded_by: Some(by),
        });
    }
    record_in_catalog(
        catalog,
        store,
        CatalogRecord {
            source: &input.source,
            status: CatalogStatus::Processed,
            result_key: &manifest_ref.key,
            error: None,
            thumbnails: thumbnails.len(),
            execution: &input.execution.name,
        },
    )
    .await?;
    info!(bucket = %input.source.bucket, key = %input.source.key, manifest = %manifest_ref.key,
          execution = %input.execution.name, outcome = "processed",
          already_current = published == Published::AlreadyCurrent, "manifest published");
    Ok(LoadOutput {
        outcome: Outcome::Processed,
        manifest: manifest_ref,
        thumbnails,
        superseded_by: None,
    })
}

/// The manifest for a processed object: everything comes from the states' payloads, so a
/// retried load produces the same bytes.
pub fn build_manifest(input: &LoadInput) -> Result<Manifest, PipelineError> {
    let i = &input.inspection;
    let missing = |field: &str| {
        PipelineError::invalid_event(format!("inspection has no {field} for a supported object"))
    };
    let format = i.format.ok_or_else(|| missing("format"))?;
    Ok(Manifest {
        schema_version: SCHEMA_VERSION,
        source: input.source.clone(),
        sha256: i.sha256.clone().ok_or_else(|| missing("sha256"))?,
        format,
        content_type: format.content_type().to_string(),
        size_bytes: i.size_bytes,
        width: i.width.ok_or_else(|| missing("width"))?,
        height: i.height.ok_or_else(|| missing("height"))?,
        orientation: i.orientation.unwrap_or(1),
        outputs: input.transform.thumbnails.clone(),
        timings_ms: StepTimings {
            inspect_ms: i.duration_ms,
            transform_ms: input.transform.duration_ms,
        },
        execution_name: input.execution.name.clone(),
        execution_started_at: input.execution.started_at.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::catalog::MemoryCatalog;
    use pipeline_aws::MemoryStore;

    fn fixture() -> LoadInput {
        let text = include_str!("../../../state-machine/fixtures/load-input.json");
        serde_json::from_str(text).unwrap()
    }

    /// A store holding the fixture's source version, current in its versioned bucket.
    fn store_with_source() -> MemoryStore {
        let store = MemoryStore::new();
        upload(&store, &fixture());
        store
    }

    /// Uploads `input`'s source version (it becomes the key's current version).
    fn upload(store: &MemoryStore, input: &LoadInput) {
        let s = &input.source;
        store.insert_version(
            &s.bucket,
            &s.key,
            b"jpeg".to_vec(),
            s.version_id.as_deref().unwrap(),
        );
    }

    #[tokio::test]
    async fn load_writes_manifest_matching_inputs() {
        let store = store_with_source();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let input = fixture();
        let out = load(input.clone(), &store, &MemoryCatalog::new(), &config)
            .await
            .unwrap();
        assert_eq!(out.outcome, Outcome::Processed);
        assert_eq!(
            out.manifest.key,
            format!("manifests/{}.json", input.source.key)
        );
        let (body, ct) = store.object("out", &out.manifest.key).unwrap();
        assert_eq!(ct, "application/json");
        let m: Manifest = serde_json::from_slice(&body).unwrap();
        assert_eq!(m.source, input.source);
        assert_eq!(m.outputs, input.transform.thumbnails);
        assert_eq!((m.width, m.height, m.orientation), (4000, 3000, 6));
        assert_eq!(m.timings_ms.transform_ms, input.transform.duration_ms);
        assert_eq!(out.thumbnails.len(), 2);
    }

    /// The fixture as another version of the same key, with thumbnails of its own.
    fn version(store: &MemoryStore, id: &str, sequencer: &str) -> LoadInput {
        let mut input = fixture();
        input.source.version_id = Some(id.into());
        input.source.sequencer = Some(sequencer.into());
        for t in &mut input.transform.thumbnails {
            t.key = t.key.replace("86ee8c73fa5d029e", id);
            store.insert(&t.bucket, &t.key, id.as_bytes().to_vec());
        }
        input
    }

    #[tokio::test]
    async fn load_reversed_order_keeps_the_newer_manifest_and_removes_stale_thumbnails() {
        let store = MemoryStore::new();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let newer = version(&store, "v2", "0055AED6DCD90281E6");
        let older = version(&store, "v1", "0055AED6DCD90281E5");
        upload(&store, &older);
        upload(&store, &newer);
        let first = load(newer.clone(), &store, &MemoryCatalog::new(), &config)
            .await
            .unwrap();
        assert_eq!(first.outcome, Outcome::Processed);
        let stale = load(older.clone(), &store, &MemoryCatalog::new(), &config)
            .await
            .unwrap();
        assert_eq!(stale.outcome, Outcome::Superseded);
        assert_eq!(
            stale.superseded_by.as_deref(),
            Some("version v2 (current in S3)")
        );
        assert!(stale.thumbnails.is_empty());
        let (body, _) = store.object("out", &first.manifest.key).unwrap();
        let m: Manifest = serde_json::from_slice(&body).unwrap();
        assert_eq!(m.source, newer.source);
        for t in &newer.transform.thumbnails {
            assert_eq!(store.object(&t.bucket, &t.key).unwrap().0, b"v2");
        }
        for t in &older.transform.thumbnails {
            assert!(store.object(&t.bucket, &t.key).is_none(), "{} left", t.key);
        }
    }

    #[tokio::test]
    async fn load_retried_writes_the_same_bytes() {
        let store = store_with_source();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let out = load(fixture(), &store, &MemoryCatalog::new(), &config)
            .await
            .unwrap();
        let (first, _) = store.object("out", &out.manifest.key).unwrap();
        // Empty (make unreadable) the stored manifest so that the retry has to write it again.
        store.insert("out", &out.manifest.key, Vec::new());
        let again = load(fixture(), &store, &MemoryCatalog::new(), &config)
            .await
            .unwrap();
        let (second, _) = store.object("out", &again.manifest.key).unwrap();
        assert_eq!(first, second);
        assert_eq!(again.outcome, Outcome::Processed);
    }

    #[test]
    fn build_manifest_without_metadata_is_invalid_event() {
        let mut input = fixture();
        input.inspection.sha256 = None;
        assert_eq!(build_manifest(&input).unwrap_err().name(), "InvalidEvent");
    }
}
