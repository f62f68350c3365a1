//! Which of two results for one key wins: S3 `sequencer` ordering, as AWS documents it.
//!
//! S3 delivers notifications at least once and in no particular order, and for two quick
//! writes to one key the older event may be processed last. Every ObjectCreated event
//! carries a `sequencer`: a hexadecimal string that grows with each write *to the same
//! key* (it means nothing across keys). AWS: sequencers "can be of different lengths. So,
//! to compare these values, first right pad the shorter value with zeros, and then do a
//! lexicographical comparison."
//!
//! The manifest and the quarantine report record the source version they describe, so a
//! writer reads the current one, asks [`decide`] whether it may replace it, and writes
//! conditionally on the ETag it read. Thumbnails are written under a per-version
//! directory ([`crate::naming::version_tag`]), so a stale execution can never overwrite a
//! newer version's thumbnails either: only the pointer (the manifest) is contended.

use std::cmp::Ordering;

use crate::naming::VersionToken;
use crate::payload::SourceObject;

/// A validated sequencer: non-empty, hexadecimal, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequencer(String);

impl Sequencer {
    /// `None` for an empty or non-hexadecimal value (such a value orders nothing).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sequencer(t.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialOrd for Sequencer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sequencer {
    /// Right-pads the shorter value with `0`, then compares lexicographically.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        let len = a.len().max(b.len());
        let padded = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(b'0');
        (0..len)
            .map(|i| padded(a, i).cmp(&padded(b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// What a writer may do with the result currently stored for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is stored, or ours is newer: write (conditionally on what was read).
    Write,
    /// The stored result is for this very version: writing again is idempotent.
    Rewrite,
    /// The stored result is for a newer write to the key: keep it, write nothing.
    Superseded { current: String },
}

/// Decides whether `ours` may replace the result stored for `current` (same key).
///
/// Ordering comes from sequencers only. When either side has none (an execution started
/// by `pipeline reconcile` or `backfill`, which list the latest version rather than
/// receive an event), the newer claim cannot be proved and the writer wins, as it
/// would without ordering: those tools only ever start the latest version.
pub fn decide(current: Option<&SourceObject>, ours: &SourceObject) -> Decision {
    let Some(current) = current else {
        return Decision::Write;
    };
    if same_version(current, ours) {
        return Decision::Rewrite;
    }
    let seq = |s: &SourceObject| s.sequencer.as_deref().and_then(Sequencer::parse);
    match (seq(current), seq(ours)) {
        (Some(theirs), Some(mine)) if theirs > mine => Decision::Superseded {
            current: describe(current),
        },
        _ => Decision::Write,
    }
}

/// Whether two sources name the same object version (same bucket, key and identity).
pub fn same_version(a: &SourceObject, b: &SourceObject) -> bool {
    a.bucket == b.bucket && a.key == b.key && VersionToken::of(a) == VersionToken::of(b)
}

fn describe(s: &SourceObject) -> String {
    match (VersionToken::of(s), s.sequencer.as_deref()) {
        (VersionToken::VersionId(v), Some(q)) => format!("version {v} (sequencer {q})"),
        (VersionToken::VersionId(v), None) => format!("version {v}"),
        (VersionToken::Sequencer(q), _) => format!("sequencer {q}"),
        (VersionToken::ETag(e), _) => format!("ETag {e}"),
        (VersionToken::Unknown, _) => "an unidentified version".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> Sequencer {
        Sequencer::parse(s).unwrap()
    }

    fn source(version: Option<&str>, sequencer: Option<&str>) -> SourceObject {
        SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id: version.map(str::to_string),
            sequencer: sequencer.map(str::to_string),
            etag: Some("e".into()),
            size: Some(1),
        }
    }

    #[test]
    fn sequencer_compare_right_pads_the_shorter_value() {
        // Right padding: "0A" is "0A00..", so it is greater than "09FFFF".
        assert!(seq("0A") > seq("09FFFF"));
        assert!(seq("0055AED6DCD90281E5") > seq("0055AED6DCD90281E4"));
        assert_eq!(seq("ab").cmp(&seq("AB00")), Ordering::Equal);
        assert!(seq("1") < seq("10000001"));
    }

    #[test]
    fn sequencer_parse_rejects_non_hex_and_empty() {
        for bad in ["", "  ", "xyz", "12-34", "0x12"] {
            assert_eq!(Sequencer::parse(bad), None, "{bad:?}");
        }
        assert_eq!(seq(" 0a ").as_str(), "0A");
    }

    #[test]
    fn decide_nothing_stored_writes() {
        assert_eq!(
            decide(None, &source(Some("v1"), Some("01"))),
            Decision::Write
        );
    }

    #[test]
    fn decide_same_version_rewrites() {
        let s = source(Some("v1"), Some("01"));
        assert_eq!(decide(Some(&s), &s), Decision::Rewrite);
    }

    #[test]
    fn decide_older_event_is_superseded_by_newer_result() {
        let newer = source(Some("v2"), Some("0055AED6DCD90281E6"));
        let older = source(Some("v1"), Some("0055AED6DCD90281E5"));
        assert_eq!(
            decide(Some(&newer), &older),
            Decision::Superseded {
                current: "version v2 (sequencer 0055AED6DCD90281E6)".into()
            }
        );
        assert_eq!(decide(Some(&older), &newer), Decision::Write);
    }

    #[test]
    fn decide_without_sequencers_lets_the_writer_win() {
        let listed = source(Some("v3"), None);
        let evented = source(Some("v2"), Some("FF"));
        assert_eq!(decide(Some(&evented), &listed), Decision::Write);
        assert_eq!(decide(Some(&listed), &evented), Decision::Write);
    }

    #[test]
    fn decide_unversioned_bucket_orders_by_sequencer() {
        let a = source(None, Some("10"));
        let b = source(None, Some("0F"));
        assert_eq!(
            decide(Some(&a), &b),
            Decision::Superseded {
                current: "sequencer 10".into()
            }
        );
    }
}
