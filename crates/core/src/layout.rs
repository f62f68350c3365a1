//! Where the pipeline writes: thumbnails, manifests and quarantine under fixed prefixes.
//!
//! Output keys mirror the source key so a user finds `thumbnails/<key>/256.jpg` next to
//! `manifests/<key>.json`. S3 keys are limited to 1,024 bytes, so a source key too long
//! for its prefix and suffix is replaced by `_long/<sha256 of the key>`.

use sha2::{Digest, Sha256};

use crate::key::{ObjectKey, MAX_KEY_BYTES};

/// The output bucket and the prefixes the pipeline owns in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLayout {
    pub bucket: String,
    pub thumbnails_prefix: String,
    pub manifests_prefix: String,
    pub quarantine_prefix: String,
}

impl OutputLayout {
    pub fn new(bucket: impl Into<String>) -> Self {
        OutputLayout {
            bucket: bucket.into(),
            thumbnails_prefix: "thumbnails/".into(),
            manifests_prefix: "manifests/".into(),
            quarantine_prefix: "quarantine/".into(),
        }
    }

    /// `thumbnails/<key>/<size>.<ext>`
    pub fn thumbnail_key(&self, source: &ObjectKey, size: u32, extension: &str) -> String {
        derived_key(
            &self.thumbnails_prefix,
            source,
            &format!("/{size}.{extension}"),
        )
    }

    /// `manifests/<key>.json`
    pub fn manifest_key(&self, source: &ObjectKey) -> String {
        derived_key(&self.manifests_prefix, source, ".json")
    }

    /// `quarantine/objects/<key>`: the copy of the rejected source.
    pub fn quarantine_object_key(&self, source: &ObjectKey) -> String {
        derived_key(&format!("{}objects/", self.quarantine_prefix), source, "")
    }

    /// `quarantine/reports/<key>.json`: why it was rejected.
    pub fn quarantine_report_key(&self, source: &ObjectKey) -> String {
        derived_key(
            &format!("{}reports/", self.quarantine_prefix),
            source,
            ".json",
        )
    }

    /// Whether `bucket/key` is something the pipeline wrote itself. Ingest skips these,
    /// so even a deployment whose input and output are one bucket cannot loop.
    pub fn is_pipeline_output(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket
            && [
                &self.thumbnails_prefix,
                &self.manifests_prefix,
                &self.quarantine_prefix,
            ]
            .iter()
            .any(|p| !p.is_empty() && key.starts_with(p.as_str()))
    }
}

fn derived_key(prefix: &str, source: &ObjectKey, suffix: &str) -> String {
    let readable = format!("{prefix}{source}{suffix}");
    if readable.len() <= MAX_KEY_BYTES {
        return readable;
    }
    let digest = Sha256::digest(source.as_str().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_long/{hex}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ObjectKey {
        ObjectKey::from_decoded(s).unwrap()
    }

    #[test]
    fn layout_keys_mirror_source_key() {
        let l = OutputLayout::new("out");
        let k = key("a/My Photo.jpg");
        assert_eq!(
            l.thumbnail_key(&k, 256, "jpg"),
            "thumbnails/a/My Photo.jpg/256.jpg"
        );
        assert_eq!(l.manifest_key(&k), "manifests/a/My Photo.jpg.json");
        assert_eq!(
            l.quarantine_object_key(&k),
            "quarantine/objects/a/My Photo.jpg"
        );
        assert_eq!(
            l.quarantine_report_key(&k),
            "quarantine/reports/a/My Photo.jpg.json"
        );
    }

    #[test]
    fn layout_long_key_falls_back_to_hash_within_limit() {
        let l = OutputLayout::new("out");
        let k = key(&"x".repeat(MAX_KEY_BYTES));
        for derived in [
            l.thumbnail_key(&k, 1024, "jpg"),
            l.manifest_key(&k),
            l.quarantine_object_key(&k),
            l.quarantine_report_key(&k),
        ] {
            assert!(derived.len() <= MAX_KEY_BYTES, "{derived}");
            assert!(derived.contains("_long/"), "{derived}");
        }
        // Distinct long keys stay distinct.
        let k2 = key(&"y".repeat(MAX_KEY_BYTES));
        assert_ne!(l.manifest_key(&k), l.manifest_key(&k2));
    }

    #[test]
    fn is_pipeline_output_table() {
        let l = OutputLayout::new("out");
        let cases = [
            ("out", "thumbnails/a.jpg/256.jpg", true),
            ("out", "manifests/a.jpg.json", true),
            ("out", "quarantine/reports/a.json", true),
            ("out", "photos/a.jpg", false),
            ("in", "thumbnails/a.jpg", false),
            ("out", "thumbnailsX/a.jpg", false),
        ];
        for (bucket, k, expected) in cases {
            assert_eq!(l.is_pipeline_output(bucket, k), expected, "{bucket}/{k}");
        }
    }
}
