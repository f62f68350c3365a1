//! Inspect: size checks from HEAD, sniffing from a ranged read, metadata from the bytes.

use std::time::Instant;

use pipeline_aws::{ObjectLocation, ObjectStore};
use pipeline_core::config::PipelineConfig;
use pipeline_core::image_info::{read_header, sha256_hex};
use pipeline_core::payload::{InspectInput, Inspection};
use pipeline_core::sniff::{sniff, Sniffed, SNIFF_BYTES};
use pipeline_core::PipelineError;
use pipeline_lambda::{elapsed_ms, from_store};
use tracing::info;

pub async fn inspect(
    input: InspectInput,
    store: &dyn ObjectStore,
    config: &PipelineConfig,
) -> Result<Inspection, PipelineError> {
    let started = Instant::now();
    let source = &input.source;
    let at = ObjectLocation::from(source);
    let head = store.head(at).await.map_err(from_store)?;
    if head.size == 0 {
        return Err(PipelineError::EmptyObject);
    }
    if head.size > config.max_object_bytes {
        return Err(PipelineError::too_large(
            "object size in bytes",
            head.size,
            config.max_object_bytes,
        ));
    }
    // A ranged read is enough to reject what is not an allowed image.
    let head_bytes = store
        .get_prefix(at, SNIFF_BYTES as u64)
        .await
        .map_err(from_store)?;
    let format = match sniff(&head_bytes) {
        Sniffed::Image(format) => format,
        Sniffed::Other(detected) => {
            info!(bucket = %source.bucket, key = %source.key, detected, supported = false, "inspected");
            return Ok(Inspection {
                supported: false,
                detected: detected.to_string(),
                format: None,
                size_bytes: head.size,
                sha256: None,
                width: None,
                height: None,
                orientation: None,
                duration_ms: elapsed_ms(started),
            });
        }
    };
    let bytes = store
        .get(at, config.max_object_bytes)
        .await
        .map_err(from_store)?;
    let header = read_header(&bytes, format)?;
    if header.pixels() > config.transform.max_pixels {
        return Err(PipelineError::too_large(
            "pixel count",
            header.pixels(),
            config.transform.max_pixels,
        ));
    }
    let inspection = Inspection {
        supported: true,
        detected: format.description().to_string(),
        format: Some(format),
        size_bytes: bytes.len() as u64,
        sha256: Some(sha256_hex(&bytes)),
        width: Some(header.width),
        height: Some(header.height),
        orientation: Some(header.orientation),
        duration_ms: elapsed_ms(started),
    };
    info!(bucket = %source.bucket, key = %source.key, format = ?format, width = header.width,
          height = header.height, orientation = header.orientation, supported = true, "inspected");
    Ok(inspection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::MemoryStore;
    use pipeline_core::image_info::ImageFormat;
    use pipeline_core::payload::SourceObject;

    fn input(key: &str) -> InspectInput {
        InspectInput {
            source: SourceObject {
                bucket: "in".into(),
                key: key.into(),
                version_id: None,
                sequencer: None,
                etag: None,
                size: None,
            },
        }
    }

    fn config() -> PipelineConfig {
        PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(w, h)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[tokio::test]
    async fn inspect_png_named_jpg_reports_real_type_and_metadata() {
        let store = MemoryStore::new();
        let bytes = png(30, 20);
        store.insert("in", "photo.jpg", bytes.clone());
        let out = inspect(input("photo.jpg"), &store, &config())
            .await
            .unwrap();
        assert!(out.supported);
        assert_eq!(out.format, Some(ImageFormat::Png));
        assert_eq!(
            (out.width, out.height, out.orientation),
            (Some(30), Some(20), Some(1))
        );
        assert_eq!(out.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
        assert_eq!(out.size_bytes, bytes.len() as u64);
    }

    #[tokio::test]
    async fn inspect_text_named_jpg_is_unsupported() {
        let store = MemoryStore::new();
        store.insert("in", "notes.jpg", "just some text, not an image");
        let out = inspect(input("notes.jpg"), &store, &config())
            .await
            .unwrap();
        assert!(!out.supported);
        assert_eq!(out.detected, "text");
    }

    #[tokio::test]
    async fn inspect_error_table() {
        let store = MemoryStore::new();
        store.insert("in", "empty.jpg", Vec::new());
        store.insert("in", "big.png", png(400, 400));
        let mut truncated = png(50, 50);
        truncated.truncate(20);
        store.insert("in", "cut.png", truncated);
        let mut small_limits = config();
        small_limits.transform.max_pixels = 1000;
        let cases = [
            ("empty.jpg", config(), "EmptyObject"),
            ("missing.jpg", config(), "SourceMissing"),
            ("big.png", small_limits, "TooLarge"),
            ("cut.png", config(), "InvalidImage"),
        ];
        for (key, cfg, expected) in cases {
            let err = inspect(input(key), &store, &cfg).await.unwrap_err();
            assert_eq!(err.name(), expected, "{key}: {err}");
        }
        let mut tiny = config();
        tiny.max_object_bytes = 10;
        let err = inspect(input("big.png"), &store, &tiny).await.unwrap_err();
        assert_eq!(err.name(), "TooLarge");
    }
}
