//! Load: assemble the manifest from the states' outputs and write it.

use std::time::Instant;

use pipeline_aws::ObjectStore;
use pipeline_core::config::PipelineConfig;
use pipeline_core::key::ObjectKey;
use pipeline_core::payload::{
    LoadInput, LoadOutput, Manifest, ObjectRef, Outcome, StepTimings, SCHEMA_VERSION,
};
use pipeline_core::PipelineError;
use pipeline_lambda::{elapsed_ms, from_store};
use tracing::info;

pub async fn load(
    input: LoadInput,
    store: &dyn ObjectStore,
    config: &PipelineConfig,
) -> Result<LoadOutput, PipelineError> {
    let started = Instant::now();
    let key = ObjectKey::from_decoded(input.source.key.clone())
        .map_err(|e| PipelineError::invalid_event(format!("source key: {e}")))?;
    let manifest_key = config.layout.manifest_key(&key);
    let manifest = build_manifest(&input, elapsed_ms(started))?;
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PipelineError::invalid_event(format!("serialising manifest: {e}")))?;
    store
        .put(
            &config.layout.bucket,
            &manifest_key,
            body,
            "application/json",
        )
        .await
        .map_err(from_store)?;
    info!(bucket = %input.source.bucket, key = %input.source.key, manifest = %manifest_key,
          execution = %input.execution.name, outcome = "processed", "manifest written");
    Ok(LoadOutput {
        outcome: Outcome::Processed,
        manifest: ObjectRef {
            bucket: config.layout.bucket.clone(),
            key: manifest_key,
        },
        thumbnails: input
            .transform
            .thumbnails
            .iter()
            .map(|t| ObjectRef {
                bucket: t.bucket.clone(),
                key: t.key.clone(),
            })
            .collect(),
    })
}

/// The manifest for a processed object: everything comes from the states' payloads.
pub fn build_manifest(input: &LoadInput, load_ms: u64) -> Result<Manifest, PipelineError> {
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
            load_ms,
        },
        execution_name: input.execution.name.clone(),
        execution_started_at: input.execution.started_at.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::MemoryStore;

    fn fixture() -> LoadInput {
        let text = include_str!("../../../state-machine/fixtures/load-input.json");
        serde_json::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn load_writes_manifest_matching_inputs() {
        let store = MemoryStore::new();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let input = fixture();
        let out = load(input.clone(), &store, &config).await.unwrap();
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

    #[test]
    fn build_manifest_without_metadata_is_invalid_event() {
        let mut input = fixture();
        input.inspection.sha256 = None;
        assert_eq!(
            build_manifest(&input, 0).unwrap_err().name(),
            "InvalidEvent"
        );
    }
}
