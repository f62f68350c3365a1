//! Where the pipeline writes: thumbnails, manifests and quarantine under fixed prefixes.
//!
//! Output keys mirror the source key so a user finds `thumbnails/<key>/<version>/256.jpg` next to
//! `manifests/<key>.json`. S3 keys are limited to 1,024 bytes, so a source key too long
//! for its prefix and suffix is replaced by `_long/<sha256 of the key>`.
//!
//! Any byte string is a legal S3 key, including `../x`, `/x`, `a\b` and control
//! characters. Mirrored as they are, such keys would leave their prefix for any consumer
//! that normalises paths (an HTTP stack, a sync to a file system, a Windows tool), so a key
//! that is not [`is_mirrorable`] is replaced by `_unsafe/<sha256 of the key>`. Source keys
//! that themselves start with `_long/` or `_unsafe/` are hashed too, so the hashed names
//! cannot be forged by an upload and no two source keys share an output key.

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

    /// `thumbnails/<key>/<version tag>/<size>.<ext>`: one directory per object version
    /// ([`crate::naming::version_tag`]), so versions never share an output key.
    pub fn thumbnail_key(
        &self,
        source: &ObjectKey,
        version_tag: &str,
        size: u32,
        extension: &str,
    ) -> String {
        derived_key(
            &self.thumbnails_prefix,
            source,
            &format!("/{version_tag}/{size}.{extension}"),
        )
    }

    /// `manifests/<key>.json`
    pub fn manifest_key(&self, source: &ObjectKey) -> String {
        derived_key(&self.manifests_prefix, source, ".json")
    }

    /// `quarantine/objects/<key>/<version tag>`: the copy of the rejected version.
    pub fn quarantine_object_key(&self, source: &ObjectKey, version_tag: &str) -> String {
        derived_key(
            &format!("{}objects/", self.quarantine_prefix),
            source,
            &format!("/{version_tag}"),
        )
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

/// Where hashed key parts go: keys too long to mirror, and keys unsafe to mirror.
pub const LONG_KEYS_DIR: &str = "_long/";
pub const UNSAFE_KEYS_DIR: &str = "_unsafe/";

/// Whether a source key can be used as it is inside an output key: no empty, `.` or `..`
/// path segment (so no leading `/` and no `//`), no backslash, no control character, and
/// not under one of the directories that hold hashed keys.
pub fn is_mirrorable(key: &str) -> bool {
    !key.starts_with(LONG_KEYS_DIR)
        && !key.starts_with(UNSAFE_KEYS_DIR)
        && !key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        && !key.chars().any(|c| c == '\\' || c.is_control())
}

fn derived_key(prefix: &str, source: &ObjectKey, suffix: &str) -> String {
    if !is_mirrorable(source.as_str()) {
        return hashed_key(prefix, UNSAFE_KEYS_DIR, source, suffix);
    }
    let readable = format!("{prefix}{source}{suffix}");
    if readable.len() <= MAX_KEY_BYTES {
        return readable;
    }
    hashed_key(prefix, LONG_KEYS_DIR, source, suffix)
}

fn hashed_key(prefix: &str, dir: &str, source: &ObjectKey, suffix: &str) -> String {
    let digest = Sha256::digest(source.as_str().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{dir}{hex}{suffix}")
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
            l.thumbnail_key(&k, "0123456789abcdef", 256, "jpg"),
            "thumbnails/a/My Photo.jpg/0123456789abcdef/256.jpg"
        );
        assert_eq!(l.manifest_key(&k), "manifests/a/My Photo.jpg.json");
        assert_eq!(
            l.quarantine_object_key(&k, "0123456789abcdef"),
            "quarantine/objects/a/My Photo.jpg/0123456789abcdef"
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
            l.thumbnail_key(&k, "0123456789abcdef", 1024, "jpg"),
            l.manifest_key(&k),
            l.quarantine_object_key(&k, "0123456789abcdef"),
            l.quarantine_report_key(&k),
        ] {
            assert!(derived.len() <= MAX_KEY_BYTES, "{derived}");
            assert!(derived.contains("_long/"), "{derived}");
        }
        // Distinct long keys stay distinct.
        let k2 = key(&"y".repeat(MAX_KEY_BYTES));
        assert_ne!(l.manifest_key(&k), l.manifest_key(&k2));
    }

    /// Every output key of `source`, with the prefix it must stay under.
    fn derived(l: &OutputLayout, source: &ObjectKey) -> Vec<(String, String)> {
        vec![
            (
                l.thumbnails_prefix.clone(),
                l.thumbnail_key(source, "0123456789abcdef", 256, "jpg"),
            ),
            (l.manifests_prefix.clone(), l.manifest_key(source)),
            (
                format!("{}objects/", l.quarantine_prefix),
                l.quarantine_object_key(source, "0123456789abcdef"),
            ),
            (
                format!("{}reports/", l.quarantine_prefix),
                l.quarantine_report_key(source),
            ),
        ]
    }

    /// What a path-normalising consumer would see: `.`/`..` resolved, `\` as `/`.
    fn normalised(key: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        let key = key.replace('\\', "/");
        for segment in key.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        out.join("/")
    }

    #[test]
    fn layout_hostile_keys_never_escape_their_prefix() {
        let l = OutputLayout::new("out");
        let hostile = [
            "../../etc/passwd",
            "..",
            "./x.jpg",
            "a/../../b.jpg",
            "a/./b.jpg",
            "/abs.jpg",
            "//double.jpg",
            "a//b.jpg",
            "..\\..\\win.jpg",
            "dir\\x.jpg",
            "line\nbreak.jpg",
            "tab\t.jpg",
            "nul\0.jpg",
            "esc\u{1b}[31m.jpg",
            "del\u{7f}.jpg",
            "c1\u{85}.jpg",
            "ends/with/..",
            "_long/0123abcd",
            "_unsafe/0123abcd",
        ];
        for raw in hostile {
            let k = key(raw);
            assert!(!is_mirrorable(raw), "{raw:?} must not be mirrored");
            for (prefix, out) in derived(&l, &k) {
                assert!(out.starts_with(&prefix), "{raw:?} -> {out:?}");
                assert!(
                    normalised(&out).starts_with(prefix.trim_end_matches('/')),
                    "{raw:?} -> {out:?} escapes {prefix} once normalised"
                );
                assert!(
                    out[prefix.len()..].starts_with(UNSAFE_KEYS_DIR),
                    "{raw:?} -> {out:?}"
                );
                assert!(!out.chars().any(|c| c.is_control() || c == '\\'), "{out:?}");
                assert!(out.len() <= MAX_KEY_BYTES);
            }
        }
    }

    #[test]
    fn layout_ordinary_keys_are_mirrored_unchanged() {
        let l = OutputLayout::new("out");
        for raw in [
            "a.jpg",
            "photos/2026/My Photo.jpg",
            "100% real.jpg",
            "a+b=c.jpg",
            "日本/ünïcödé 写真.jpg",
            "...jpg",
            "a..b/c.jpg",
            "x/_long/y.jpg",
        ] {
            assert!(is_mirrorable(raw), "{raw:?}");
            assert_eq!(l.manifest_key(&key(raw)), format!("manifests/{raw}.json"));
        }
    }

    #[test]
    fn layout_distinct_keys_get_distinct_outputs_even_when_hashed() {
        let l = OutputLayout::new("out");
        let long = "x".repeat(MAX_KEY_BYTES);
        let hashed_long = l.manifest_key(&key(&long));
        // An upload named like the hashed output of another key gets its own hashed name.
        let forged = hashed_long
            .trim_start_matches("manifests/")
            .trim_end_matches(".json")
            .to_string();
        let keys = [long.as_str(), forged.as_str(), "../a", "a", "/a", "a/"];
        let outputs: std::collections::BTreeSet<String> =
            keys.iter().map(|k| l.manifest_key(&key(k))).collect();
        assert_eq!(outputs.len(), keys.len(), "{outputs:#?}");
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
