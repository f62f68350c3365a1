//! `pipeline retry`: a new execution for each object whose latest execution ended in
//! quarantine, under a deterministic name, so that a second `retry` while the first
//! retry runs starts nothing more.
//!
//! The retry name is derived here rather than in `core::naming` because it is a CLI
//! policy on top of ingest's names (`<fragment>-<32 hex>`), not something a function does.

use std::collections::BTreeMap;

use pipeline_core::naming::{VersionToken, MAX_NAME_LEN};
use pipeline_core::payload::ExecutionInput;

/// The name of retry number `attempt` (1, 2, ...) of the object whose first execution is
/// `root`: `<fragment>-<hash>-r<attempt>`, the fragment shortened so the whole stays within
/// 80 chars of `[A-Za-z0-9_-]`. Other characters in `root` become `_`.
pub fn retry_name(root: &str, attempt: u32) -> String {
    let clean: String = root
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix = format!("-r{attempt}");
    let (fragment, hash) = match clean.rsplit_once('-') {
        Some((f, h)) if h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()) => (f, h),
        _ => ("", clean.as_str()),
    };
    let tail = if fragment.is_empty() {
        hash.to_string()
    } else {
        format!("-{hash}")
    };
    let room = MAX_NAME_LEN.saturating_sub(tail.len() + suffix.len());
    let mut name: String = fragment.chars().take(room).collect();
    name.push_str(&tail);
    // A root without the ingest shape may still be too long: keep its end (most unique).
    let keep = MAX_NAME_LEN - suffix.len();
    if name.len() > keep {
        name = name.split_off(name.len() - keep);
    }
    name.push_str(&suffix);
    name
}

/// What `retry` knows about one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    pub name: String,
    /// `processed`, `quarantined`, `failed` or `running`.
    pub status: &'static str,
    pub start_ms: i64,
    /// The execution input, reused as the retry's input.
    pub input: Option<String>,
}

/// One execution `retry` will start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPlan {
    pub name: String,
    pub key: String,
    pub input: String,
}

/// Groups executions by the object version they process (bucket, key, and the version's
/// identity by the one naming rule, [`VersionToken`]: the versionId, else the ETag, so
/// the versions of a key in an unversioned bucket stay apart); for each group whose latest
/// execution is quarantined, plans the next attempt, numbered by how many executions the
/// group already has. A group with a running execution is left alone (its retry is in
/// flight).
pub fn plan_retries(runs: &[PastRun]) -> Vec<RetryPlan> {
    type Source = (String, String, String);
    let mut groups: BTreeMap<Source, Vec<&PastRun>> = BTreeMap::new();
    for run in runs {
        let Some(input) = run.input.as_deref() else {
            continue;
        };
        let Ok(parsed) = serde_json::from_str::<ExecutionInput>(input) else {
            continue;
        };
        let s = parsed.source;
        let version = format!("{:?}", VersionToken::of(&s));
        groups
            .entry((s.bucket, s.key, version))
            .or_default()
            .push(run);
    }
    let mut plans = Vec::new();
    for ((_, key, _), mut group) in groups {
        group.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(a.name.cmp(&b.name)));
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        if group.iter().any(|r| r.status == "running") || last.status != "quarantined" {
            continue;
        }
        let attempt = u32::try_from(group.len()).unwrap_or(u32::MAX);
        plans.push(RetryPlan {
            name: retry_name(&first.name, attempt),
            key,
            input: last.input.clone().unwrap_or_default(),
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_core::naming::ExecutionName;

    const HASH: &str = "0123456789abcdef0123456789abcdef";

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    fn input(key: &str, version: &str) -> Option<String> {
        Some(
            serde_json::json!({"source": {"bucket": "in", "key": key, "version_id": version}})
                .to_string(),
        )
    }

    fn run(name: &str, status: &'static str, start_ms: i64, key: &str) -> PastRun {
        PastRun {
            name: name.into(),
            status,
            start_ms,
            input: input(key, "v1"),
        }
    }

    #[test]
    fn retry_name_keeps_hash_and_stays_valid() {
        let cases = [
            (
                format!("photo_jpg-{HASH}"),
                1,
                format!("photo_jpg-{HASH}-r1"),
            ),
            (
                format!("{}-{HASH}", "a".repeat(47)),
                12,
                format!("{}-{HASH}-r12", "a".repeat(43)),
            ),
            ("odd name!".to_string(), 2, "odd_name_-r2".to_string()),
            ("x".repeat(100), 3, format!("{}-r3", "x".repeat(77))),
        ];
        for (root, attempt, expected) in cases {
            let got = retry_name(&root, attempt);
            assert_eq!(got, expected, "{root}");
            assert!(valid(&got), "{got}");
        }
    }

    #[test]
    fn retry_name_of_real_ingest_names_is_valid_and_distinct_per_attempt() {
        let key = pipeline_core::key::ObjectKey::from_decoded(format!("{}.jpg", "ü".repeat(300)))
            .unwrap();
        let root = ExecutionName::for_object(
            "bucket",
            &key,
            pipeline_core::naming::VersionToken::VersionId("v1"),
        );
        let names: Vec<String> = (1..=3).map(|n| retry_name(root.as_str(), n)).collect();
        for n in &names {
            assert!(valid(n), "{n}");
        }
        assert_ne!(names[0], names[1]);
        assert_eq!(names[0], retry_name(root.as_str(), 1), "deterministic");
    }

    #[test]
    fn plan_retries_only_latest_quarantined_numbered_by_group_size() {
        let root = format!("bad_jpg-{HASH}");
        let runs = [
            run(&root, "quarantined", 1, "bad.jpg"),
            run("good-x", "processed", 2, "good.jpg"),
            run("failed-x", "failed", 3, "broken.jpg"),
        ];
        let plans = plan_retries(&runs);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, format!("bad_jpg-{HASH}-r1"));
        assert_eq!(plans[0].key, "bad.jpg");
        assert_eq!(plans[0].input, runs[0].input.clone().unwrap());
    }

    #[test]
    fn plan_retries_twice_while_first_retry_runs_starts_nothing() {
        let root = format!("bad_jpg-{HASH}");
        let first_retry = retry_name(&root, 1);
        let runs = [
            run(&root, "quarantined", 1, "bad.jpg"),
            run(&first_retry, "running", 5, "bad.jpg"),
        ];
        assert!(plan_retries(&runs).is_empty());
        // Once it ended quarantined again, the next attempt is number 2.
        let runs = [
            run(&root, "quarantined", 1, "bad.jpg"),
            run(&first_retry, "quarantined", 5, "bad.jpg"),
        ];
        assert_eq!(plan_retries(&runs)[0].name, retry_name(&root, 2));
    }

    #[test]
    fn plan_retries_other_version_and_bad_input_are_separate_or_skipped() {
        let mut other_version = run("b", "quarantined", 2, "bad.jpg");
        other_version.input = input("bad.jpg", "v2");
        let no_input = PastRun {
            name: "c".into(),
            status: "quarantined",
            start_ms: 3,
            input: Some("not json".into()),
        };
        let plans = plan_retries(&[
            run("a", "quarantined", 1, "bad.jpg"),
            other_version,
            no_input,
        ]);
        let names: Vec<_> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["a-r1", "b-r1"]);
    }

    /// Unversioned bucket: two uploads of one key are two versions (ETags), not one group.
    #[test]
    fn plan_retries_unversioned_versions_are_grouped_by_etag() {
        let unversioned = |name: &str, etag: &str, start_ms: i64| {
            PastRun {
            name: name.into(),
            status: "quarantined",
            start_ms,
            input: Some(
                serde_json::json!({"source": {"bucket": "in", "key": "k.jpg", "version_id": "null", "etag": etag}})
                    .to_string(),
            ),
        }
        };
        let plans = plan_retries(&[unversioned("a", "e1", 1), unversioned("b", "e2", 2)]);
        let names: Vec<_> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["a-r1", "b-r1"]);
    }
}
