//! What the reconciler (and `pipeline backfill`) should start: input objects whose current
//! version has neither a manifest nor a quarantine report that records it, once a grace
//! period has passed.
//!
//! Events can be lost (an ingest that failed for good, a notification configured after
//! the upload, an emulator restarted mid-run). The bucket itself is the truth: every
//! object's latest version must end with a result. A result "covers" a version when the
//! version it records (its `source`) is that version, by the naming rule
//! ([`crate::naming::VersionToken`]: the versionId, else the ETag). Timestamps only spare
//! reads: a result written before the version was uploaded cannot record it, so only the
//! results listed as newer than their version are read. The executions are started under
//! the same deterministic names ingest uses ([`crate::naming::ExecutionName`]), so a
//! version already started is never started twice.

use std::collections::BTreeMap;

use crate::error::PipelineError;
use crate::event::SkipReason;
use crate::key::ObjectKey;
use crate::layout::OutputLayout;
use crate::naming::VersionToken;
use crate::payload::SourceObject;

/// The reconcile function's own settings (besides [`crate::config::PipelineConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileConfig {
    pub input_bucket: String,
    /// `RECONCILE_PREFIX`: only keys under it (default: all).
    pub prefix: String,
    /// `RECONCILE_GRACE_SECONDS` (default 900): younger objects are left to their event.
    pub grace_seconds: u64,
    /// `RECONCILE_CONCURRENCY` (default 8): starts in flight at once.
    pub concurrency: usize,
}

impl ReconcileConfig {
    pub const DEFAULT_GRACE_SECONDS: u64 = 900;
    pub const DEFAULT_CONCURRENCY: usize = 8;

    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, PipelineError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let number = |name: &str, default: u64| -> Result<u64, PipelineError> {
            get(name).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| {
                    PipelineError::config(format!("{name}={v:?} is not a whole number"))
                })
            })
        };
        let concurrency = number("RECONCILE_CONCURRENCY", Self::DEFAULT_CONCURRENCY as u64)?;
        Ok(ReconcileConfig {
            input_bucket: get("INPUT_BUCKET")
                .ok_or_else(|| PipelineError::config("INPUT_BUCKET is not set"))?
                .to_string(),
            prefix: get("RECONCILE_PREFIX").unwrap_or_default().to_string(),
            grace_seconds: number("RECONCILE_GRACE_SECONDS", Self::DEFAULT_GRACE_SECONDS)?,
            concurrency: usize::try_from(concurrency)
                .ok()
                .filter(|c| (1..=100).contains(c))
                .ok_or_else(|| {
                    PipelineError::config(format!(
                        "RECONCILE_CONCURRENCY {concurrency} is not 1-100"
                    ))
                })?,
        })
    }
}

/// The latest version of one input object, as ListObjectVersions describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputObject {
    pub key: String,
    /// `None` in a bucket that was never versioned (S3 reports `"null"`).
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified_ms: i64,
}

impl InputObject {
    /// The version as an execution's source: what reconcile starts, and what a result
    /// must record to cover it.
    pub fn source(&self, input_bucket: &str) -> SourceObject {
        SourceObject {
            bucket: input_bucket.to_string(),
            key: self.key.clone(),
            version_id: self.version_id.clone(),
            sequencer: None,
            etag: self.etag.as_ref().map(|e| e.trim_matches('"').to_string()),
            size: Some(self.size),
        }
    }
}

/// Output keys (manifests and quarantine reports) with their LastModified, from listings.
pub type ResultTimes = BTreeMap<String, i64>;

/// What the results that might cover a version record: result key -> the source it
/// names (`None`: unreadable, or not read).
pub type RecordedSources = BTreeMap<String, Option<SourceObject>>;

/// The result keys worth reading for `object`: its manifest and report, where listed as
/// written at or after the version was uploaded (an older result cannot record it).
pub fn results_to_read(
    object: &InputObject,
    layout: &OutputLayout,
    results: &ResultTimes,
) -> Vec<String> {
    let Ok(key) = ObjectKey::from_decoded(object.key.clone()) else {
        return Vec::new();
    };
    [
        layout.manifest_key(&key),
        layout.quarantine_report_key(&key),
    ]
    .into_iter()
    .filter(|k| {
        results
            .get(k)
            .is_some_and(|at| *at >= object.last_modified_ms)
    })
    .collect()
}

/// Whether a result recording `recorded` covers the listed `object`.
pub fn covers(recorded: &SourceObject, object: &InputObject, input_bucket: &str) -> bool {
    let listed = object.source(input_bucket);
    recorded.bucket == listed.bucket
        && recorded.key == listed.key
        && VersionToken::of(recorded) != VersionToken::Unknown
        && VersionToken::of(recorded) == VersionToken::of(&listed)
}

/// Why an input object needs nothing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// A manifest or report records this very version.
    HasResult,
    /// Uploaded less than the grace period ago: its event is probably still in flight.
    TooRecent,
    /// Not something the pipeline processes.
    Skipped(SkipReason),
    /// A key S3 cannot have produced (e.g. over 1,024 bytes): reported, never started.
    InvalidKey(String),
}

/// The plan for one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcilePlan {
    /// Versions to start, in key order.
    pub to_start: Vec<SourceObject>,
    pub has_result: usize,
    pub too_recent: usize,
    pub skipped: usize,
    pub invalid_keys: Vec<(String, String)>,
}

/// Decides one object. `recorded` holds what [`results_to_read`] named, read.
pub fn settle(
    object: &InputObject,
    input_bucket: &str,
    layout: &OutputLayout,
    results: &ResultTimes,
    recorded: &RecordedSources,
    now_ms: i64,
    grace_ms: i64,
) -> Option<Settled> {
    let key = match ObjectKey::from_decoded(object.key.clone()) {
        Ok(k) => k,
        Err(e) => return Some(Settled::InvalidKey(e.to_string())),
    };
    if key.is_folder_marker() {
        return Some(Settled::Skipped(SkipReason::FolderMarker));
    }
    if layout.is_pipeline_output(input_bucket, &object.key) {
        return Some(Settled::Skipped(SkipReason::PipelineOutput));
    }
    let covered = results_to_read(object, layout, results)
        .iter()
        .filter_map(|k| recorded.get(k).and_then(Option::as_ref))
        .any(|source| covers(source, object, input_bucket));
    if covered {
        return Some(Settled::HasResult);
    }
    if now_ms.saturating_sub(object.last_modified_ms) < grace_ms {
        return Some(Settled::TooRecent);
    }
    None
}

/// Plans a pass over `objects` (the latest version of each input key).
pub fn plan(
    objects: &[InputObject],
    input_bucket: &str,
    layout: &OutputLayout,
    results: &ResultTimes,
    recorded: &RecordedSources,
    now_ms: i64,
    grace_ms: i64,
) -> ReconcilePlan {
    let mut plan = ReconcilePlan::default();
    for o in objects {
        match settle(o, input_bucket, layout, results, recorded, now_ms, grace_ms) {
            None => plan.to_start.push(o.source(input_bucket)),
            Some(Settled::HasResult) => plan.has_result += 1,
            Some(Settled::TooRecent) => plan.too_recent += 1,
            Some(Settled::Skipped(_)) => plan.skipped += 1,
            Some(Settled::InvalidKey(why)) => plan.invalid_keys.push((o.key.clone(), why)),
        }
    }
    plan.to_start.sort_by(|a, b| a.key.cmp(&b.key));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const GRACE: i64 = 60_000;

    fn object(key: &str, last_modified_ms: i64) -> InputObject {
        InputObject {
            key: key.into(),
            version_id: Some(format!("v-{key}")),
            etag: Some("\"abc\"".into()),
            size: 10,
            last_modified_ms,
        }
    }

    /// `results`: (result key, LastModified, version id it records or `None` unreadable).
    fn check(
        object: InputObject,
        results: &[(&str, i64, Option<&str>)],
        expected: Option<Settled>,
    ) {
        let layout = OutputLayout::new("out");
        let (times, recorded) = listed(results);
        assert_eq!(
            settle(&object, "in", &layout, &times, &recorded, NOW, GRACE),
            expected,
            "{object:?} {results:?}"
        );
    }

    fn listed(results: &[(&str, i64, Option<&str>)]) -> (ResultTimes, RecordedSources) {
        let times = results
            .iter()
            .map(|(k, t, _)| (k.to_string(), *t))
            .collect();
        let recorded = results
            .iter()
            .map(|(k, _, v)| {
                let key = k
                    .trim_start_matches("manifests/")
                    .trim_start_matches("quarantine/reports/")
                    .trim_end_matches(".json");
                let source = v.map(|v| SourceObject {
                    bucket: "in".into(),
                    key: key.into(),
                    version_id: Some(v.into()),
                    sequencer: Some("01".into()),
                    etag: Some("abc".into()),
                    size: Some(10),
                });
                (k.to_string(), source)
            })
            .collect();
        (times, recorded)
    }

    #[test]
    fn reconcile_config_defaults_and_errors() {
        let c = ReconcileConfig::from_vars([("INPUT_BUCKET", "in")]).unwrap();
        assert_eq!(
            (c.grace_seconds, c.concurrency, c.prefix.as_str()),
            (900, 8, "")
        );
        let c = ReconcileConfig::from_vars([
            ("INPUT_BUCKET", "in"),
            ("RECONCILE_GRACE_SECONDS", "5"),
            ("RECONCILE_CONCURRENCY", "2"),
            ("RECONCILE_PREFIX", "p/"),
        ])
        .unwrap();
        assert_eq!(
            (c.grace_seconds, c.concurrency, c.prefix.as_str()),
            (5, 2, "p/")
        );
        for bad in [
            vec![],
            vec![("INPUT_BUCKET", "in"), ("RECONCILE_CONCURRENCY", "0")],
            vec![("INPUT_BUCKET", "in"), ("RECONCILE_GRACE_SECONDS", "soon")],
        ] {
            assert_eq!(
                ReconcileConfig::from_vars(bad).unwrap_err().name(),
                "ConfigError"
            );
        }
    }

    #[test]
    fn settle_table() {
        let old = NOW - 2 * GRACE;
        let current = "v-a.jpg";
        check(object("a.jpg", old), &[], None);
        check(
            object("a.jpg", old),
            &[("manifests/a.jpg.json", old + 5, Some(current))],
            Some(Settled::HasResult),
        );
        check(
            object("a.jpg", old),
            &[("quarantine/reports/a.jpg.json", old, Some(current))],
            Some(Settled::HasResult),
        );
        // A result written after the upload that records another version does not cover
        // it (an older version's late result, or the newer version superseded it).
        check(
            object("a.jpg", old),
            &[("manifests/a.jpg.json", old + 5, Some("v-older"))],
            None,
        );
        // The manifest names an older version, the report this one: covered.
        check(
            object("a.jpg", old),
            &[
                ("manifests/a.jpg.json", old + 9, Some("v-older")),
                ("quarantine/reports/a.jpg.json", old + 5, Some(current)),
            ],
            Some(Settled::HasResult),
        );
        // An unreadable result covers nothing.
        check(
            object("a.jpg", old),
            &[("manifests/a.jpg.json", old + 5, None)],
            None,
        );
        // A result older than the current version cannot record it (not even read).
        check(
            object("a.jpg", old),
            &[("manifests/a.jpg.json", old - 1, Some(current))],
            None,
        );
        check(object("a.jpg", NOW - 10), &[], Some(Settled::TooRecent));
        check(
            object("dir/", old),
            &[],
            Some(Settled::Skipped(SkipReason::FolderMarker)),
        );
        assert!(matches!(
            settle(
                &object(&"k".repeat(1025), old),
                "in",
                &OutputLayout::new("out"),
                &ResultTimes::new(),
                &RecordedSources::new(),
                NOW,
                GRACE
            ),
            Some(Settled::InvalidKey(_))
        ));
    }

    #[test]
    fn covers_unversioned_bucket_by_etag() {
        let o = InputObject {
            key: "a.jpg".into(),
            version_id: None,
            etag: Some("\"abc\"".into()),
            size: 10,
            last_modified_ms: 0,
        };
        let recorded = |version_id: Option<&str>, etag: &str| SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id: version_id.map(str::to_string),
            sequencer: Some("0055AED6DCD90281E5".into()),
            etag: Some(etag.into()),
            size: Some(10),
        };
        assert!(covers(&recorded(None, "abc"), &o, "in"));
        assert!(covers(&recorded(Some("null"), "abc"), &o, "in"));
        assert!(!covers(&recorded(None, "def"), &o, "in"));
        assert!(!covers(&recorded(Some("v1"), "abc"), &o, "in"));
        assert!(!covers(&recorded(None, "abc"), &o, "other-bucket"));
    }

    #[test]
    fn settle_skips_the_pipelines_own_outputs_in_a_shared_bucket() {
        let layout = OutputLayout::new("same");
        let o = object("thumbnails/a.jpg/0123456789abcdef/256.jpg", 0);
        assert_eq!(
            settle(
                &o,
                "same",
                &layout,
                &ResultTimes::new(),
                &RecordedSources::new(),
                NOW,
                GRACE
            ),
            Some(Settled::Skipped(SkipReason::PipelineOutput))
        );
    }

    #[test]
    fn plan_counts_and_builds_sources_without_sequencer() {
        let old = NOW - 2 * GRACE;
        let objects = vec![
            object("b.jpg", old),
            object("a.jpg", old),
            object("done.jpg", old),
            object("new.jpg", NOW),
        ];
        let (results, recorded) = listed(&[("manifests/done.jpg.json", old, Some("v-done.jpg"))]);
        let p = plan(
            &objects,
            "in",
            &OutputLayout::new("out"),
            &results,
            &recorded,
            NOW,
            GRACE,
        );
        let keys: Vec<_> = p.to_start.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["a.jpg", "b.jpg"]);
        assert_eq!((p.has_result, p.too_recent, p.skipped), (1, 1, 0));
        let a = &p.to_start[0];
        assert_eq!(a.version_id.as_deref(), Some("v-a.jpg"));
        assert_eq!(a.etag.as_deref(), Some("abc"));
        assert_eq!(a.sequencer, None);
    }
}
