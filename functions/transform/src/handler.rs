//! Transform: read the inspected version, render thumbnails (pure core), write them under
//! the version's own directory (`thumbnails/<key>/<version tag>/<size>.jpg`).

use std::time::Instant;

use pipeline_aws::{ObjectLocation, ObjectStore};
use pipeline_core::config::PipelineConfig;
use pipeline_core::key::ObjectKey;
use pipeline_core::naming::version_tag;
use pipeline_core::payload::{Thumbnail, TransformInput, TransformOutput};
use pipeline_core::transform::{render_thumbnails, RenderedThumbnail};
use pipeline_core::PipelineError;
use pipeline_lambda::{elapsed_ms, from_store};
use tracing::info;

pub async fn transform(
    input: TransformInput,
    store: &dyn ObjectStore,
    config: &PipelineConfig,
) -> Result<TransformOutput, PipelineError> {
    let started = Instant::now();
    let source = &input.source;
    let format = input.inspection.format.ok_or_else(|| {
        PipelineError::invalid_event("transform called for an object inspect did not support")
    })?;
    let key = ObjectKey::from_decoded(source.key.clone())
        .map_err(|e| PipelineError::invalid_event(format!("source key: {e}")))?;
    let version_tag = version_tag(source)
        .map_err(|e| PipelineError::invalid_event(format!("source key: {e}")))?;
    let bytes = store
        .get(ObjectLocation::from(source), config.max_object_bytes)
        .await
        .map_err(from_store)?;
    let spec = config.transform.clone();
    // Decoding and resizing are CPU-bound: keep them off the async runtime's threads.
    let rendered = tokio::task::spawn_blocking(move || render_thumbnails(&bytes, format, &spec))
        .await
        .map_err(|e| PipelineError::transient(format!("render task: {e}")))??;
    let layout = &config.layout;
    let mut thumbnails = Vec::with_capacity(rendered.len());
    for t in rendered {
        let out_key =
            layout.thumbnail_key(&key, &version_tag, t.size, RenderedThumbnail::EXTENSION);
        let bytes = t.bytes.len() as u64;
        store
            .put(
                &layout.bucket,
                &out_key,
                t.bytes,
                RenderedThumbnail::CONTENT_TYPE,
            )
            .await
            .map_err(from_store)?;
        thumbnails.push(Thumbnail {
            size: t.size,
            width: t.width,
            height: t.height,
            bucket: layout.bucket.clone(),
            key: out_key,
            bytes,
            content_type: RenderedThumbnail::CONTENT_TYPE.to_string(),
        });
    }
    let duration_ms = elapsed_ms(started);
    info!(bucket = %source.bucket, key = %source.key, thumbnails = thumbnails.len(), duration_ms, "transformed");
    Ok(TransformOutput {
        thumbnails,
        duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::MemoryStore;
    use pipeline_core::image_info::ImageFormat;
    use pipeline_core::payload::{Inspection, SourceObject};

    fn input(key: &str, format: Option<ImageFormat>) -> TransformInput {
        TransformInput {
            source: SourceObject {
                bucket: "in".into(),
                key: key.into(),
                version_id: None,
                sequencer: None,
                etag: None,
                size: None,
            },
            inspection: Inspection {
                supported: format.is_some(),
                detected: "x".into(),
                format,
                size_bytes: 1,
                sha256: None,
                width: None,
                height: None,
                orientation: None,
                duration_ms: 0,
            },
        }
    }

    #[tokio::test]
    async fn transform_writes_every_size_under_output_prefix() {
        let store = MemoryStore::new();
        let mut png = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(2000, 1000)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        store.insert("in", "a b/c.png", png.into_inner());
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let out = transform(input("a b/c.png", Some(ImageFormat::Png)), &store, &config)
            .await
            .unwrap();
        let got: Vec<_> = out
            .thumbnails
            .iter()
            .map(|t| (t.key.as_str(), t.width, t.height))
            .collect();
        let tag = version_tag(&input("a b/c.png", None).source).unwrap();
        assert_eq!(
            got,
            vec![
                (&*format!("thumbnails/a b/c.png/{tag}/1024.jpg"), 1024, 512),
                (&*format!("thumbnails/a b/c.png/{tag}/256.jpg"), 256, 128)
            ]
        );
        for t in &out.thumbnails {
            let (body, content_type) = store.object("out", &t.key).unwrap();
            assert_eq!(content_type, "image/jpeg");
            assert_eq!(body.len() as u64, t.bytes);
        }
    }

    #[tokio::test]
    async fn transform_corrupt_image_is_invalid_image_and_writes_nothing() {
        let store = MemoryStore::new();
        store.insert("in", "x.jpg", b"\xFF\xD8\xFF\xE0garbage".to_vec());
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let err = transform(input("x.jpg", Some(ImageFormat::Jpeg)), &store, &config)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidImage");
        assert!(store.keys("out").is_empty());
    }

    #[tokio::test]
    async fn transform_unsupported_inspection_is_invalid_event() {
        let store = MemoryStore::new();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let err = transform(input("x.jpg", None), &store, &config)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidEvent");
    }
}
