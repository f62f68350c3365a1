//! Deterministic Step Functions execution names: one per object version.
//!
//! The same bucket + key + version always yields the same name, so a duplicate S3 event
//! (notifications are at-least-once) hits `ExecutionAlreadyExists` instead of processing
//! twice; a re-upload of the same key is a new version and yields a new name.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::key::ObjectKey;
use crate::payload::SourceObject;

/// Step Functions' limit on execution names.
pub const MAX_NAME_LEN: usize = 80;
const HASH_HEX_LEN: usize = 32;
const MAX_FRAGMENT_LEN: usize = MAX_NAME_LEN - HASH_HEX_LEN - 1;

/// What identifies the object version: versionId, else sequencer, else eTag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionToken<'a> {
    VersionId(&'a str),
    Sequencer(&'a str),
    ETag(&'a str),
    /// Nothing identifies the version (only from hand-made events).
    Unknown,
}

impl<'a> VersionToken<'a> {
    /// Picks the strongest identifier the source carries. `"null"` is the versionId S3
    /// reports for objects written while versioning was off, so it identifies nothing.
    pub fn of(source: &'a SourceObject) -> Self {
        let usable = |v: &'a Option<String>| v.as_deref().filter(|s| !s.is_empty() && *s != "null");
        if let Some(v) = usable(&source.version_id) {
            VersionToken::VersionId(v)
        } else if let Some(s) = usable(&source.sequencer) {
            VersionToken::Sequencer(s)
        } else if let Some(e) = usable(&source.etag) {
            VersionToken::ETag(e.trim_matches('"'))
        } else {
            VersionToken::Unknown
        }
    }

    fn tagged(&self) -> String {
        match self {
            VersionToken::VersionId(v) => format!("v:{v}"),
            VersionToken::Sequencer(s) => format!("s:{s}"),
            VersionToken::ETag(e) => format!("e:{e}"),
            VersionToken::Unknown => "u:".to_string(),
        }
    }
}

/// A valid Step Functions execution name: 1-80 chars of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionName(String);

impl ExecutionName {
    /// `<readable fragment of the file name>-<32 hex chars of sha256(bucket, key, version)>`.
    pub fn for_object(bucket: &str, key: &ObjectKey, version: VersionToken<'_>) -> Self {
        let mut hasher = Sha256::new();
        for part in [bucket, key.as_str(), &version.tagged()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let hash: String = digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .chars()
            .take(HASH_HEX_LEN)
            .collect();
        let fragment = readable_fragment(key.file_name());
        ExecutionName(format!("{fragment}-{hash}"))
    }

    pub fn for_source(source: &SourceObject) -> Result<Self, crate::key::KeyError> {
        let key = ObjectKey::from_decoded(source.key.clone())?;
        Ok(Self::for_object(
            &source.bucket,
            &key,
            VersionToken::of(source),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` satisfies Step Functions' rules for execution names, in the
    /// conservative form this project uses (also safe for CloudWatch log stream names).
    pub fn is_valid(name: &str) -> bool {
        (1..=MAX_NAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

impl fmt::Display for ExecutionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn readable_fragment(file_name: &str) -> String {
    let mut out = String::with_capacity(MAX_FRAGMENT_LEN);
    let mut last_dash = true;
    for c in file_name.chars() {
        if out.len() >= MAX_FRAGMENT_LEN {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            last_dash = false;
        } else if !last_dash {
            out.push('-');
            last_dash = true;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "object".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(bucket: &str, key: &str, v: VersionToken<'_>) -> String {
        ExecutionName::for_object(bucket, &ObjectKey::from_decoded(key).unwrap(), v).0
    }

    #[test]
    fn execution_name_same_version_same_name() {
        let a = name("in", "a/My Photo.jpg", VersionToken::VersionId("v1"));
        let b = name("in", "a/My Photo.jpg", VersionToken::VersionId("v1"));
        assert_eq!(a, b);
        assert!(a.starts_with("My-Photo-jpg-"), "{a}");
    }

    #[test]
    fn execution_name_any_difference_changes_name() {
        let base = name("in", "k.jpg", VersionToken::VersionId("v1"));
        for other in [
            name("in", "k.jpg", VersionToken::VersionId("v2")),
            name("in2", "k.jpg", VersionToken::VersionId("v1")),
            name("in", "k2.jpg", VersionToken::VersionId("v1")),
            name("in", "k.jpg", VersionToken::Sequencer("v1")),
            name("in", "k.jpg", VersionToken::ETag("v1")),
            // Length-prefixing keeps ("a","bc") apart from ("ab","c").
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(
            name("a", "bc", VersionToken::Unknown),
            name("ab", "c", VersionToken::Unknown)
        );
    }

    #[test]
    fn execution_name_always_valid_for_step_functions() {
        let long = format!("{}/{}", "d".repeat(500), "é".repeat(200));
        let keys = [
            "x.jpg",
            "日本語.png",
            "...",
            "a b+c%d#e{f}[g]<h>?*\"|~`$&,;:\\^.jpg",
            "folder/",
            long.as_str(),
            "\u{1}\u{7f}ctrl.jpg",
            "_____________________________________________________________________.jpg",
        ];
        for key in keys {
            let n = name("bucket", key, VersionToken::Sequencer("0055AED6DCD90281E5"));
            assert!(ExecutionName::is_valid(&n), "{key:?} -> {n:?}");
            assert!(n.len() <= MAX_NAME_LEN);
        }
    }

    #[test]
    fn version_token_prefers_version_id_then_sequencer_then_etag() {
        let mut s = SourceObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("v".into()),
            sequencer: Some("s".into()),
            etag: Some("\"e\"".into()),
            size: None,
        };
        assert_eq!(VersionToken::of(&s), VersionToken::VersionId("v"));
        s.version_id = Some("null".into());
        assert_eq!(VersionToken::of(&s), VersionToken::Sequencer("s"));
        s.sequencer = None;
        assert_eq!(VersionToken::of(&s), VersionToken::ETag("e"));
        s.etag = None;
        assert_eq!(VersionToken::of(&s), VersionToken::Unknown);
    }

    #[test]
    fn is_valid_rejects_bad_names() {
        for bad in ["", "a b", "a/b", "x".repeat(81).as_str(), "é"] {
            assert!(!ExecutionName::is_valid(bad), "{bad:?}");
        }
    }
}
