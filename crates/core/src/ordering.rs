//! Which object version a key's result may describe: always the key's newest one.
//!
//! S3 delivers notifications at least once and in no particular order (an asynchronous
//! invocation may be retried for up to six hours), and executions are also started by
//! reconcile, backfill, `pipeline retry` and failed-event replay, which carry no
//! `sequencer`. So the rule cannot rest on sequencers. It rests on what S3 itself says:
//!
//! > A result (manifest, quarantine report, catalog `~latest`) is written only for the
//! > version that S3 reports as the key's current one, checked *after* reading the stored
//! > result, and written conditionally on what was read (`If-None-Match: *` or
//! > `If-Match: <etag>`; a DynamoDB condition for the catalog).
//!
//! Why that converges on the newest version: versions become current in upload order and
//! never current again once replaced. A writer for an older version either read a newer
//! result (then its check, made later, sees a version that is not its own and it stands
//! down) or conditions on an older state (then its write is refused once the newer one is
//! written, and the next round reads it). The newest version's writer is current at every
//! check, so it wins. [`decide`] is that rule, pure; the writers live in
//! `pipeline_lambda::publish` and `pipeline_lambda::catalog`.
//!
//! Sequencers are still parsed and recorded (the catalog keeps them), but nothing is
//! ordered by them: an emulator's sequencers mean nothing, and half the starters lack one.

use std::cmp::Ordering;

use crate::naming::VersionToken;

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
    /// AWS: "right pad the shorter value with zeros, and then do a lexicographical
    /// comparison".
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

/// What S3 answered when asked for the key's current version (HeadObject without a
/// versionId), after the stored result was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentVersion {
    /// The current version's id (`None` or `"null"` in an unversioned or suspended bucket)
    /// and ETag.
    Exists {
        version_id: Option<String>,
        etag: Option<String>,
    },
    /// No current version: the key was deleted (404, or a delete marker).
    Missing,
}

impl CurrentVersion {
    /// The current version's identity, by the naming rule.
    pub fn token(&self) -> Option<VersionToken<'_>> {
        match self {
            CurrentVersion::Exists { version_id, etag } => Some(VersionToken::from_parts(
                version_id.as_deref(),
                etag.as_deref(),
                None,
            )),
            CurrentVersion::Missing => None,
        }
    }
}

/// What a writer may do with the result currently stored for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ours is the key's current version: write (conditionally on what was read).
    Write,
    /// The stored result is for this very version: writing again is idempotent.
    Rewrite,
    /// A newer version exists: keep what is stored, write nothing. `current` says which.
    Superseded { current: String },
}

/// Decides whether a result for `ours` may replace the one stored for `stored` (`None`:
/// nothing stored) at the same key, given `current`, S3's answer read after `stored`.
///
/// - `stored` is `ours` already: [`Decision::Rewrite`].
/// - `ours` is S3's current version: [`Decision::Write`].
/// - the key has no current version (deleted) or `ours` cannot be identified: write only
///   where nothing is stored (so a deleted object still gets its report), else keep it.
/// - otherwise a newer version exists: [`Decision::Superseded`].
pub fn decide(
    stored: Option<VersionToken<'_>>,
    ours: VersionToken<'_>,
    current: &CurrentVersion,
) -> Decision {
    if stored == Some(ours) && ours != VersionToken::Unknown {
        return Decision::Rewrite;
    }
    match current.token() {
        Some(now) if ours != VersionToken::Unknown && now == ours => Decision::Write,
        Some(now) if ours != VersionToken::Unknown => Decision::Superseded {
            current: format!("{} (current in S3)", now.describe()),
        },
        _ => match stored {
            None => Decision::Write,
            Some(kept) => Decision::Superseded {
                current: match current {
                    CurrentVersion::Missing => {
                        format!("{} (the key has no current version)", kept.describe())
                    }
                    CurrentVersion::Exists { .. } => kept.describe(),
                },
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionToken::{ETag, Sequencer as Seq, Unknown, VersionId};

    fn seq(s: &str) -> Sequencer {
        Sequencer::parse(s).unwrap()
    }

    fn current(version: &str) -> CurrentVersion {
        CurrentVersion::Exists {
            version_id: Some(version.into()),
            etag: Some("\"e\"".into()),
        }
    }

    fn unversioned(etag: &str) -> CurrentVersion {
        CurrentVersion::Exists {
            version_id: Some("null".into()),
            etag: Some(format!("\"{etag}\"")),
        }
    }

    fn check(
        stored: Option<VersionToken<'_>>,
        ours: VersionToken<'_>,
        now: &CurrentVersion,
        expected: Decision,
    ) {
        assert_eq!(
            decide(stored, ours, now),
            expected,
            "{stored:?} / {ours:?} / {now:?}"
        );
    }

    fn superseded(current: &str) -> Decision {
        Decision::Superseded {
            current: current.into(),
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
    fn decide_table() {
        let v2_now = current("v2");
        // Nothing stored: only the current version writes.
        check(None, VersionId("v2"), &v2_now, Decision::Write);
        check(
            None,
            VersionId("v1"),
            &v2_now,
            superseded("version v2 (current in S3)"),
        );
        // Retried step: the same version is stored.
        check(
            Some(VersionId("v1")),
            VersionId("v1"),
            &v2_now,
            Decision::Rewrite,
        );
        // The current version replaces an older result...
        check(
            Some(VersionId("v1")),
            VersionId("v2"),
            &v2_now,
            Decision::Write,
        );
        // ...and an older version never replaces a newer one, whichever has a sequencer.
        check(
            Some(VersionId("v2")),
            VersionId("v1"),
            &v2_now,
            superseded("version v2 (current in S3)"),
        );
        // Neither is current (v3 is on its way): stand down, v3 will write.
        check(
            Some(VersionId("v1")),
            VersionId("v2"),
            &current("v3"),
            superseded("version v3 (current in S3)"),
        );
    }

    #[test]
    fn decide_unversioned_and_suspended_buckets_compare_etags() {
        let now = unversioned("bbb");
        check(Some(ETag("aaa")), ETag("bbb"), &now, Decision::Write);
        check(
            Some(ETag("bbb")),
            ETag("aaa"),
            &now,
            superseded("ETag bbb (current in S3)"),
        );
        // An object written before versioning was enabled ("null") against a newer one.
        check(
            Some(ETag("aaa")),
            ETag("aaa"),
            &current("v7"),
            Decision::Rewrite,
        );
        check(
            None,
            ETag("aaa"),
            &current("v7"),
            superseded("version v7 (current in S3)"),
        );
    }

    #[test]
    fn decide_deleted_key_reports_once_and_keeps_what_is_there() {
        let gone = CurrentVersion::Missing;
        check(None, VersionId("v1"), &gone, Decision::Write);
        check(
            Some(VersionId("v2")),
            VersionId("v1"),
            &gone,
            superseded("version v2 (the key has no current version)"),
        );
    }

    #[test]
    fn decide_sequencers_order_nothing() {
        // A meaningless emulator sequencer, or a real one, never overrides S3's answer.
        let now = current("v2");
        check(Some(Seq("FF")), VersionId("v2"), &now, Decision::Write);
        check(
            None,
            Seq("FF"),
            &now,
            superseded("version v2 (current in S3)"),
        );
    }

    #[test]
    fn decide_unidentified_version_writes_only_where_nothing_is_stored() {
        let now = current("v2");
        check(None, Unknown, &now, Decision::Write);
        check(
            Some(VersionId("v2")),
            Unknown,
            &now,
            superseded("version v2"),
        );
        check(
            Some(Unknown),
            Unknown,
            &now,
            superseded("an unidentified version"),
        );
    }
}
