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

/// What identifies the object version, by one rule for every starter (ingest, reconcile,
/// backfill, retry, failed-event replay): the versionId when the bucket gives a real one,
/// else the ETag, else (events only) the sequencer.
///
/// The ETag comes before the sequencer because reconcile and backfill list objects, and a
/// listing has ETags but no sequencers: in an unversioned or versioning-suspended bucket
/// ingest and reconcile must arrive at the same name, or reconcile would start a second
/// execution of a version whose first one is still running. The price: re-uploading bytes a
/// key held before (same ETag) to an unversioned bucket reuses that version's name, and the
/// reconciler, not the event, processes it again (see `infra/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionToken<'a> {
    VersionId(&'a str),
    ETag(&'a str),
    Sequencer(&'a str),
    /// Nothing identifies the version (only from hand-made events).
    Unknown,
}

impl<'a> VersionToken<'a> {
    /// Picks the identifier the rule above names. `"null"` is the versionId S3 reports for
    /// objects written while versioning was off or suspended, so it identifies nothing.
    pub fn of(source: &'a SourceObject) -> Self {
        Self::from_parts(
            source.version_id.as_deref(),
            source.etag.as_deref(),
            source.sequencer.as_deref(),
        )
    }

    /// The same rule over loose parts (a listing, a HeadObject answer, a catalog item).
    pub fn from_parts(
        version_id: Option<&'a str>,
        etag: Option<&'a str>,
        sequencer: Option<&'a str>,
    ) -> Self {
        let usable = |v: Option<&'a str>| v.filter(|s| !s.is_empty() && *s != "null");
        if let Some(v) = usable(version_id) {
            VersionToken::VersionId(v)
        } else if let Some(e) = usable(etag.map(|e| e.trim_matches('"'))) {
            VersionToken::ETag(e)
        } else if let Some(s) = usable(sequencer) {
            VersionToken::Sequencer(s)
        } else {
            VersionToken::Unknown
        }
    }

    /// How a person reads it: `version 3HL4kqt...`, `ETag 9b2cf5...`.
    pub fn describe(&self) -> String {
        match self {
            VersionToken::VersionId(v) => format!("version {v}"),
            VersionToken::ETag(e) => format!("ETag {e}"),
            VersionToken::Sequencer(s) => format!("sequencer {s}"),
            VersionToken::Unknown => "an unidentified version".into(),
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
        let hash = version_hex(bucket, key, version, HASH_HEX_LEN);
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

    /// The name of the `n`th fresh start for the same object version: `self` for 0, else
    /// `<shorter fragment>-<same hash>-g<n>`. Step Functions never reuses a name, so an
    /// execution that ended without a result (failed, aborted, lost with the service) is
    /// started again under the next generation; the hash still names the version, and a
    /// second reconciler run finds the same generation and starts nothing.
    pub fn generation(&self, n: u32) -> ExecutionName {
        if n == 0 {
            return self.clone();
        }
        let suffix = format!("-g{n}");
        let (fragment, hash) = match self.0.rsplit_once('-') {
            Some((f, h)) if h.len() == HASH_HEX_LEN => (f, h),
            _ => ("", self.0.as_str()),
        };
        let room = MAX_NAME_LEN.saturating_sub(hash.len() + 1 + suffix.len());
        let fragment: String = fragment.chars().take(room).collect();
        let fragment = fragment.trim_end_matches('-');
        if fragment.is_empty() {
            ExecutionName(format!("{hash}{suffix}"))
        } else {
            ExecutionName(format!("{fragment}-{hash}{suffix}"))
        }
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

/// Length of [`version_tag`]: 64 bits of the same digest the execution name uses.
pub const VERSION_TAG_LEN: usize = 16;

/// A short, stable, path-safe tag for one object version (`[0-9a-f]{16}`): the
/// directory its thumbnails are written under, so two versions of a key never write to
/// the same output key and a stale execution cannot overwrite a newer one's thumbnails.
pub fn version_tag(source: &SourceObject) -> Result<String, crate::key::KeyError> {
    let key = ObjectKey::from_decoded(source.key.clone())?;
    Ok(version_hex(
        &source.bucket,
        &key,
        VersionToken::of(source),
        VERSION_TAG_LEN,
    ))
}

/// The first `len` hex digits of sha256 over the length-prefixed bucket, key and version.
fn version_hex(bucket: &str, key: &ObjectKey, version: VersionToken<'_>, len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in [bucket, key.as_str(), &version.tagged()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(len)
        .collect()
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

    fn k(key: &str) -> ObjectKey {
        ObjectKey::from_decoded(key).unwrap()
    }

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
    fn version_token_prefers_version_id_then_etag_then_sequencer() {
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
        assert_eq!(VersionToken::of(&s), VersionToken::ETag("e"));
        s.etag = None;
        assert_eq!(VersionToken::of(&s), VersionToken::Sequencer("s"));
        s.sequencer = None;
        assert_eq!(VersionToken::of(&s), VersionToken::Unknown);
    }

    #[test]
    fn version_tag_is_the_execution_names_hash_prefix_per_version() {
        let src = |v: &str| SourceObject {
            bucket: "in".into(),
            key: "a/b c.jpg".into(),
            version_id: Some(v.into()),
            sequencer: None,
            etag: None,
            size: None,
        };
        let tag = version_tag(&src("v1")).unwrap();
        assert_eq!(tag.len(), VERSION_TAG_LEN);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        let name = ExecutionName::for_source(&src("v1")).unwrap();
        let hash = name.as_str().rsplit('-').next().unwrap();
        assert!(hash.starts_with(&tag), "{name} / {tag}");
        assert_ne!(tag, version_tag(&src("v2")).unwrap());
    }

    #[test]
    fn generation_names_stay_valid_distinct_and_keep_the_hash() {
        let long = "x".repeat(300) + ".jpg";
        for key in ["a.jpg", long.as_str(), "ü.jpg"] {
            let base = ExecutionName::for_object("b", &k(key), VersionToken::VersionId("v"));
            let hash = base.as_str().rsplit('-').next().unwrap().to_string();
            assert_eq!(base.generation(0), base);
            let g1 = base.generation(1);
            let g12 = base.generation(12);
            for g in [&g1, &g12] {
                assert!(ExecutionName::is_valid(g.as_str()), "{g}");
                assert!(g.as_str().contains(&hash), "{g}");
            }
            assert!(g1.as_str().ends_with("-g1") && g12.as_str().ends_with("-g12"));
            assert_ne!(g1, base);
        }
    }

    /// One naming rule: the execution an event starts and the one reconcile (or backfill,
    /// or retry's grouping) derives from a listing of the same version get one name, in a
    /// versioned bucket, an unversioned one (no versionId) and a suspended one ("null").
    #[test]
    fn execution_name_event_and_listing_agree_for_every_bucket_kind() {
        let evented = |version_id: Option<&str>| SourceObject {
            bucket: "in".into(),
            key: "a/b c.jpg".into(),
            version_id: version_id.map(str::to_string),
            sequencer: Some("0055AED6DCD90281E5".into()),
            etag: Some("9b2cf535f27731c974343645a3985328".into()),
            size: Some(10),
        };
        // What a listing gives: no sequencer, the ETag in quotes.
        let listed = |version_id: Option<&str>| SourceObject {
            sequencer: None,
            etag: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
            ..evented(version_id)
        };
        for version in [Some("3HL4kqtJlcpXroDTDmJ"), None, Some("null")] {
            let a = ExecutionName::for_source(&evented(version)).unwrap();
            let b = ExecutionName::for_source(&listed(version)).unwrap();
            assert_eq!(a, b, "{version:?}");
            assert_eq!(
                version_tag(&evented(version)).unwrap(),
                version_tag(&listed(version)).unwrap()
            );
        }
        // Versioned: two versions with equal bytes are two executions.
        assert_ne!(
            ExecutionName::for_source(&evented(Some("v1"))).unwrap(),
            ExecutionName::for_source(&evented(Some("v2"))).unwrap()
        );
    }

    #[test]
    fn is_valid_rejects_bad_names() {
        for bad in ["", "a b", "a/b", "x".repeat(81).as_str(), "é"] {
            assert!(!ExecutionName::is_valid(bad), "{bad:?}");
        }
    }
}
