//! How a load run judges what it read back (no I/O): a key by its newest version and the
//! results naming it, a thumbnail by its pixels, a version by its executions.

use pipeline_core::naming::ExecutionName;
use pipeline_core::payload::{SourceObject, Thumbnail};
use pipeline_core::report::ObjectStatus;
use pipeline_core::transform::fit_within;

use super::plan::Content;

/// How far a thumbnail's mean red may be from its version's shade (the shades of a key's
/// versions are 128 apart; JPEG and resizing move the mean by a few levels).
pub const SHADE_TOLERANCE: f64 = 24.0;

/// One of a key's two results (its manifest or its quarantine report), as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The version the result names (`source.version_id`).
    pub version_id: Option<String>,
    /// What is wrong with it apart from the version (thumbnails, checksum, parsing).
    pub problems: Vec<String>,
}

/// What became of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The manifest names the newest version and its thumbnails are right.
    Processed,
    /// The quarantine report names the newest version.
    Quarantined,
    /// Nothing names the newest version, and there is no result at all.
    Lost(String),
    /// A result exists but names an older version, or its thumbnails are wrong.
    Stale(String),
}

/// Judges one key from S3's newest version (`None`: S3 lists no version of it) and its
/// manifest and report (`None`: absent). A result for an older version beside the one
/// naming the newest is allowed: the manifest and the report are ordered each on its own.
pub fn judge(
    newest: Option<&str>,
    manifest: Option<&Pointer>,
    report: Option<&Pointer>,
) -> Verdict {
    let Some(newest) = newest else {
        return Verdict::Lost("S3 lists no version of the key".into());
    };
    let names_newest =
        |p: Option<&Pointer>| p.is_some_and(|p| p.version_id.as_deref() == Some(newest));
    if names_newest(manifest) {
        let problems = manifest.map(|m| m.problems.as_slice()).unwrap_or_default();
        return if problems.is_empty() {
            Verdict::Processed
        } else {
            Verdict::Stale(format!(
                "the manifest names the newest version {newest}, but {}",
                problems.join("; ")
            ))
        };
    }
    if names_newest(report) {
        return Verdict::Quarantined;
    }
    let named = |what: &str, p: Option<&Pointer>| {
        p.map(|p| {
            format!(
                "the {what} names {}",
                p.version_id.as_deref().unwrap_or("no version")
            )
        })
    };
    let found: Vec<String> = [named("manifest", manifest), named("report", report)]
        .into_iter()
        .flatten()
        .collect();
    if found.is_empty() {
        Verdict::Lost(format!(
            "the newest version {newest} has neither a manifest nor a report"
        ))
    } else {
        Verdict::Stale(format!(
            "{}, but the newest version is {newest}",
            found.join(" and ")
        ))
    }
}

/// A thumbnail as decoded from the output bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedThumbnail {
    pub width: u32,
    pub height: u32,
    /// Mean of the red channel over all pixels.
    pub mean_red: f64,
}

/// What is wrong with one listed thumbnail of a manifest whose source is `source`
/// (width, height as stored) and whose version has `shade` (see `plan::VersionPlan`);
/// `decoded` is the thumbnail read back, or why it could not be.
pub fn thumbnail_problem(
    listed: &Thumbnail,
    source: (u32, u32),
    shade: u8,
    decoded: Result<DecodedThumbnail, String>,
) -> Option<String> {
    let name = &listed.key;
    let d = match decoded {
        Ok(d) => d,
        Err(why) => return Some(format!("thumbnail {name} {why}")),
    };
    if (d.width, d.height) != (listed.width, listed.height) {
        return Some(format!(
            "thumbnail {name} is {}x{}, the manifest says {}x{}",
            d.width, d.height, listed.width, listed.height
        ));
    }
    // Oriented thumbnails swap the axes; fit_within is symmetric in them.
    let (w, h) = fit_within(source.0, source.1, listed.size);
    if (d.width, d.height) != (w, h) && (d.width, d.height) != (h, w) {
        return Some(format!(
            "thumbnail {name} is {}x{}, but a {}x{} source in {} px gives {w}x{h}",
            d.width, d.height, source.0, source.1, listed.size
        ));
    }
    if (d.mean_red - f64::from(shade)).abs() > SHADE_TOLERANCE {
        return Some(format!(
            "thumbnail {name} shows another version (mean red {:.0}, this version's is {shade})",
            d.mean_red
        ));
    }
    None
}

/// Whether a Step Functions status means the execution ended without a result, so the
/// reconciler may start the next generation of its name.
pub fn ended_without_result(status: &str) -> bool {
    matches!(status, "FAILED" | "TIMED_OUT" | "ABORTED")
}

/// Whether a Step Functions status means the execution has not ended yet.
pub fn is_running(status: &str) -> bool {
    matches!(status, "RUNNING" | "PENDING_REDRIVE")
}

/// Which generation (0 ..= `max`) of `source`'s execution name `name` is.
pub fn generation_of(source: &SourceObject, name: &str, max: u32) -> Option<u32> {
    let base = ExecutionName::for_source(source).ok()?;
    (0..=max).find(|&g| base.generation(g).as_str() == name)
}

/// One execution of a version, as listed and described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRun {
    pub name: String,
    /// Step Functions' status (`SUCCEEDED`, `FAILED`, ...).
    pub status: String,
    pub outcome: ObjectStatus,
    pub start_ms: i64,
    /// Which generation of the version's name this is (0: the name ingest uses),
    /// `None` when the name is none of them.
    pub generation: Option<u32>,
}

/// Why a version's executions are more than planned: one per version, then the next
/// generation only after one that ended without a result; and never two results.
/// `runs` in any order.
pub fn duplicate_problems(runs: &[VersionRun]) -> Vec<String> {
    let mut runs: Vec<&VersionRun> = runs.iter().collect();
    runs.sort_by_key(|r| r.start_ms);
    let mut problems = Vec::new();
    let results: Vec<&str> = runs
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                ObjectStatus::Processed | ObjectStatus::Quarantined { .. }
            )
        })
        .map(|r| r.name.as_str())
        .collect();
    if results.len() > 1 {
        problems.push(format!(
            "{} executions wrote results: {}",
            results.len(),
            results.join(", ")
        ));
    }
    for (i, run) in runs.iter().enumerate() {
        let planned = match (i.checked_sub(1).map(|p| runs[p]), run.generation) {
            (None, Some(0)) => true,
            (Some(previous), Some(g)) => g > 0 && ended_without_result(&previous.status),
            _ => false,
        };
        if !planned {
            let after = i
                .checked_sub(1)
                .map(|p| format!(" after {} ({})", runs[p].name, runs[p].status))
                .unwrap_or_default();
            let generation = run
                .generation
                .map_or("not a name of this version".to_string(), |g| {
                    format!("generation {g}")
                });
            problems.push(format!(
                "unplanned execution {} ({generation}){after}",
                run.name
            ));
        }
    }
    problems
}

/// How a key's two versions' first executions met in time: whether the second version
/// was uploaded (acknowledged at `second_put_ms`) while the first one's execution ran,
/// and whether the second one's execution ended before the first one's (the older
/// version finishing last: what ordering must survive). Runs are `(start_ms, stop_ms)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overlap {
    pub uploaded_while_running: bool,
    pub newer_finished_first: bool,
}

pub fn overlap(
    first: (i64, Option<i64>),
    second_put_ms: i64,
    second: Option<(i64, Option<i64>)>,
) -> Overlap {
    let (start, stop) = first;
    Overlap {
        uploaded_while_running: start <= second_put_ms && stop.is_none_or(|s| second_put_ms < s),
        newer_finished_first: matches!(
            (stop, second.and_then(|(_, s)| s)),
            (Some(older), Some(newer)) if newer < older
        ),
    }
}

/// Why a version's last execution ended differently than its content implies (`None`:
/// it did not). `newest`: the version is the key's newest, so nothing can supersede it.
pub fn ending_problem(last: &ObjectStatus, content: Content, newest: bool) -> Option<String> {
    match (last, content) {
        (ObjectStatus::Running, _) => Some("still running".into()),
        (ObjectStatus::Failed { error, .. }, _) => Some(format!("failed ({error})")),
        (ObjectStatus::Processed, Content::Truncated)
        | (ObjectStatus::Quarantined { .. }, Content::Jpeg) => {
            Some(format!("{}, but it is {}", last.label(), content.label()))
        }
        (ObjectStatus::Superseded { by }, _) if newest => Some(format!(
            "superseded by {by:?}, but it is the newest version"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(version: &str, problems: &[&str]) -> Pointer {
        Pointer {
            version_id: Some(version.to_string()),
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn kind(v: &Verdict) -> &'static str {
        match v {
            Verdict::Processed => "processed",
            Verdict::Quarantined => "quarantined",
            Verdict::Lost(_) => "lost",
            Verdict::Stale(_) => "stale",
        }
    }

    #[test]
    fn judge_table() {
        let m2 = pointer("v2", &[]);
        let m1 = pointer("v1", &[]);
        let r2 = pointer("v2", &[]);
        let r1 = pointer("v1", &[]);
        let m2_bad = pointer("v2", &["thumbnail t/256.jpg is missing"]);
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a Pointer>,
            Option<&'a Pointer>,
            &'a str,
        );
        let cases: [Case; 11] = [
            (Some("v2"), Some(&m2), None, "processed"),
            (Some("v2"), Some(&m2), Some(&r1), "processed"),
            (Some("v2"), None, Some(&r2), "quarantined"),
            (Some("v2"), Some(&m1), Some(&r2), "quarantined"),
            (Some("v2"), Some(&m1), None, "stale"),
            (Some("v2"), None, Some(&r1), "stale"),
            (Some("v2"), Some(&m1), Some(&r1), "stale"),
            (Some("v2"), Some(&m2_bad), None, "stale"),
            (Some("v2"), Some(&m2_bad), Some(&r2), "stale"),
            (Some("v2"), None, None, "lost"),
            (None, Some(&m2), None, "lost"),
        ];
        for (newest, manifest, report, expected) in cases {
            let got = judge(newest, manifest, report);
            assert_eq!(
                kind(&got),
                expected,
                "{newest:?} {manifest:?} {report:?}: {got:?}"
            );
        }
    }

    #[test]
    fn judge_says_which_versions_it_found() {
        let got = judge(Some("v2"), Some(&pointer("v1", &[])), None);
        assert_eq!(
            got,
            Verdict::Stale("the manifest names v1, but the newest version is v2".into())
        );
    }

    fn thumb(size: u32, width: u32, height: u32) -> Thumbnail {
        Thumbnail {
            size,
            width,
            height,
            bucket: "out".into(),
            key: format!("thumbnails/k/t/{size}.jpg"),
            bytes: 1,
            content_type: "image/jpeg".into(),
        }
    }

    fn decoded(width: u32, height: u32, mean_red: f64) -> Result<DecodedThumbnail, String> {
        Ok(DecodedThumbnail {
            width,
            height,
            mean_red,
        })
    }

    #[test]
    fn thumbnail_problem_table() {
        let cases = [
            // A 320x200 source: 256 px scales it, 1024 px keeps it.
            (
                thumb(256, 256, 160),
                (320, 200),
                decoded(256, 160, 40.0),
                None,
            ),
            (
                thumb(1024, 320, 200),
                (320, 200),
                decoded(320, 200, 30.0),
                None,
            ),
            // Rotated by its EXIF orientation.
            (
                thumb(256, 160, 256),
                (320, 200),
                decoded(160, 256, 40.0),
                None,
            ),
            (
                thumb(256, 256, 160),
                (320, 200),
                decoded(255, 160, 40.0),
                Some("is 255x160, the manifest says 256x160"),
            ),
            (
                thumb(256, 320, 200),
                (320, 200),
                decoded(320, 200, 40.0),
                Some("gives 256x160"),
            ),
            (
                thumb(1024, 1024, 640),
                (320, 200),
                decoded(1024, 640, 40.0),
                Some("gives 320x200"),
            ),
            (
                thumb(256, 256, 160),
                (320, 200),
                decoded(256, 160, 168.0),
                Some("shows another version"),
            ),
            (
                thumb(256, 256, 160),
                (320, 200),
                Err("is missing".into()),
                Some("thumbnails/k/t/256.jpg is missing"),
            ),
        ];
        for (listed, source, d, expected) in cases {
            let got = thumbnail_problem(&listed, source, 40, d);
            match expected {
                None => assert_eq!(got, None, "{listed:?}"),
                Some(part) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(part)),
                    "{listed:?}: {got:?} should contain {part:?}"
                ),
            }
        }
    }

    fn run(
        name: &str,
        status: &str,
        outcome: ObjectStatus,
        start_ms: i64,
        generation: Option<u32>,
    ) -> VersionRun {
        VersionRun {
            name: name.into(),
            status: status.into(),
            outcome,
            start_ms,
            generation,
        }
    }

    fn failed() -> ObjectStatus {
        ObjectStatus::Failed {
            error: "States.ServiceRestart".into(),
            cause: String::new(),
        }
    }

    #[test]
    fn duplicate_problems_table() {
        let p = ObjectStatus::Processed;
        let q = ObjectStatus::Quarantined {
            error: "InvalidImage".into(),
        };
        let cases: Vec<(Vec<VersionRun>, usize)> = vec![
            (vec![], 0),
            (vec![run("a", "SUCCEEDED", p.clone(), 1, Some(0))], 0),
            (vec![run("a", "SUCCEEDED", q.clone(), 1, Some(0))], 0),
            // Restarted by the reconciler after a failure: planned.
            (
                vec![
                    run("a-g1", "SUCCEEDED", p.clone(), 2, Some(1)),
                    run("a", "FAILED", failed(), 1, Some(0)),
                ],
                0,
            ),
            (
                vec![
                    run("a", "TIMED_OUT", failed(), 1, Some(0)),
                    run("a-g1", "ABORTED", failed(), 2, Some(1)),
                    run("a-g2", "SUCCEEDED", q.clone(), 3, Some(2)),
                ],
                0,
            ),
            // A second execution after one that succeeded: unplanned, and two results.
            (
                vec![
                    run("a", "SUCCEEDED", p.clone(), 1, Some(0)),
                    run("a-g1", "SUCCEEDED", p.clone(), 2, Some(1)),
                ],
                2,
            ),
            // Superseded and then processed: one result, but still one run too many.
            (
                vec![
                    run(
                        "a",
                        "SUCCEEDED",
                        ObjectStatus::Superseded { by: "v2".into() },
                        1,
                        Some(0),
                    ),
                    run("b", "SUCCEEDED", p.clone(), 2, None),
                ],
                1,
            ),
            // A name that is no generation of the version's.
            (vec![run("x", "SUCCEEDED", p.clone(), 1, None)], 1),
            // The first run is not the ingest name.
            (vec![run("a-g1", "SUCCEEDED", p.clone(), 1, Some(1))], 1),
        ];
        for (runs, expected) in cases {
            let got = duplicate_problems(&runs);
            assert_eq!(got.len(), expected, "{runs:?}: {got:?}");
        }
    }

    #[test]
    fn generation_of_table() {
        let source = SourceObject {
            bucket: "in".into(),
            key: "load/000001.jpg".into(),
            version_id: Some("v1".into()),
            sequencer: None,
            etag: None,
            size: None,
        };
        let base = ExecutionName::for_source(&source).unwrap();
        let other = ExecutionName::for_source(&SourceObject {
            version_id: Some("v2".into()),
            ..source.clone()
        })
        .unwrap();
        let cases = [
            (base.as_str().to_string(), Some(0)),
            (base.generation(1).as_str().to_string(), Some(1)),
            (base.generation(5).as_str().to_string(), Some(5)),
            (base.generation(6).as_str().to_string(), None),
            (other.as_str().to_string(), None),
            ("x".to_string(), None),
        ];
        for (name, expected) in cases {
            assert_eq!(generation_of(&source, &name, 5), expected, "{name}");
        }
    }

    #[test]
    fn overlap_table() {
        let cases = [
            ((100, Some(400)), 200, Some((250, Some(500))), (true, false)),
            ((100, Some(400)), 200, Some((250, Some(350))), (true, true)),
            (
                (100, Some(150)),
                200,
                Some((250, Some(300))),
                (false, false),
            ),
            ((300, Some(400)), 200, Some((250, Some(350))), (false, true)),
            ((100, None), 200, None, (true, false)),
            ((100, Some(400)), 200, None, (true, false)),
        ];
        for (first, put, second, (during, reversed)) in cases {
            assert_eq!(
                overlap(first, put, second),
                Overlap {
                    uploaded_while_running: during,
                    newer_finished_first: reversed
                },
                "{first:?} {put} {second:?}"
            );
        }
    }

    #[test]
    fn ending_problem_table() {
        use Content::{Jpeg, Truncated};
        let q = ObjectStatus::Quarantined {
            error: "InvalidImage".into(),
        };
        let s = ObjectStatus::Superseded { by: "v2".into() };
        let cases = [
            (ObjectStatus::Processed, Jpeg, true, false),
            (q.clone(), Truncated, true, false),
            (s.clone(), Jpeg, false, false),
            (s.clone(), Truncated, false, false),
            (s, Jpeg, true, true),
            (ObjectStatus::Processed, Truncated, false, true),
            (q, Jpeg, true, true),
            (failed(), Jpeg, false, true),
            (ObjectStatus::Running, Truncated, true, true),
        ];
        for (status, content, newest, wrong) in cases {
            assert_eq!(
                ending_problem(&status, content, newest).is_some(),
                wrong,
                "{status:?} {content:?} newest={newest}"
            );
        }
    }
}
