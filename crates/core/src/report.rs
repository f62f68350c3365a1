//! What happened to each object, derived from an execution's status, output and history.

use std::fmt;

use crate::payload::{ExecutionOutput, Outcome};

/// The end state of one object, as users see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStatus {
    /// Thumbnails and a manifest were written.
    Processed,
    /// Copied to quarantine with a report; `error` is the pipeline error name.
    Quarantined { error: String },
    /// The execution failed without quarantining (needs an operator).
    Failed { error: String, cause: String },
    /// A newer write to the same key holds the result; this version wrote none.
    Superseded { by: String },
    /// Still running.
    Running,
}

impl ObjectStatus {
    /// Classifies an execution from DescribeExecution's fields. Output is parsed, never
    /// compared as text (emulators re-serialise it).
    pub fn classify(
        status: &str,
        output: Option<&str>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Self {
        match status {
            "RUNNING" | "PENDING_REDRIVE" => ObjectStatus::Running,
            "SUCCEEDED" => match output.map(serde_json::from_str::<ExecutionOutput>) {
                Some(Ok(ExecutionOutput::Processed(p))) if p.outcome == Outcome::Superseded => {
                    ObjectStatus::Superseded {
                        by: p.superseded_by.unwrap_or_default(),
                    }
                }
                Some(Ok(ExecutionOutput::Quarantined(q))) if q.outcome == Outcome::Superseded => {
                    ObjectStatus::Superseded {
                        by: q.superseded_by.unwrap_or_default(),
                    }
                }
                Some(Ok(ExecutionOutput::Processed(_))) => ObjectStatus::Processed,
                Some(Ok(ExecutionOutput::Quarantined(q))) => {
                    ObjectStatus::Quarantined { error: q.error }
                }
                Some(Err(e)) => ObjectStatus::Failed {
                    error: "UnexpectedOutput".into(),
                    cause: format!("execution output is not a pipeline result: {e}"),
                },
                None => ObjectStatus::Failed {
                    error: "UnexpectedOutput".into(),
                    cause: "execution succeeded without output".into(),
                },
            },
            other => ObjectStatus::Failed {
                error: error.unwrap_or(other).to_string(),
                cause: cause.unwrap_or_default().to_string(),
            },
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            ObjectStatus::Processed => "processed",
            ObjectStatus::Quarantined { .. } => "quarantined",
            ObjectStatus::Failed { .. } => "failed",
            ObjectStatus::Superseded { .. } => "superseded",
            ObjectStatus::Running => "running",
        }
    }
}

/// One state an execution passed through, with how long it spent there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVisit {
    pub name: String,
    pub duration_ms: Option<i64>,
}

/// Pairs "entered" and "exited" history events into visits, in order of entry.
/// `events` are `(state name, entered?, epoch ms)`.
pub fn state_visits<'a>(events: impl IntoIterator<Item = (&'a str, bool, i64)>) -> Vec<StateVisit> {
    let mut visits: Vec<(StateVisit, i64)> = Vec::new();
    for (name, entered, at) in events {
        if entered {
            visits.push((
                StateVisit {
                    name: name.to_string(),
                    duration_ms: None,
                },
                at,
            ));
        } else if let Some((visit, start)) = visits
            .iter_mut()
            .rev()
            .find(|(v, _)| v.name == name && v.duration_ms.is_none())
        {
            visit.duration_ms = Some((at - *start).max(0));
        }
    }
    visits.into_iter().map(|(v, _)| v).collect()
}

/// Counts for the demo's closing line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub processed: usize,
    pub quarantined: usize,
    pub failed: usize,
    pub running: usize,
    /// Older versions whose result a newer write to the key holds.
    pub superseded: usize,
}

impl Summary {
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a ObjectStatus>) -> Self {
        let mut s = Summary::default();
        for status in statuses {
            match status {
                ObjectStatus::Processed => s.processed += 1,
                ObjectStatus::Quarantined { .. } => s.quarantined += 1,
                ObjectStatus::Failed { .. } => s.failed += 1,
                ObjectStatus::Running => s.running += 1,
                ObjectStatus::Superseded { .. } => s.superseded += 1,
            }
        }
        s
    }
}

impl std::fmt::Display for Summary {
    /// `summary: processed=N quarantined=M failed=K` (still-running objects count as failed:
    /// the demo only prints this after waiting, so a running one did not finish in time).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: processed={} quarantined={} failed={}",
            self.processed,
            self.quarantined,
            self.failed + self.running
        )?;
        if self.superseded > 0 {
            write!(f, " superseded={}", self.superseded)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESSED: &str = include_str!("../../../state-machine/fixtures/load-output.json");
    const QUARANTINED: &str =
        include_str!("../../../state-machine/fixtures/quarantine-output.json");

    #[test]
    fn classify_table() {
        let cases = [
            (("RUNNING", None, None, None), "running"),
            (("SUCCEEDED", Some(PROCESSED), None, None), "processed"),
            (("SUCCEEDED", Some(QUARANTINED), None, None), "quarantined"),
            (("SUCCEEDED", Some("{\"x\":1}"), None, None), "failed"),
            (("SUCCEEDED", None, None, None), "failed"),
            (
                ("FAILED", None, Some("QuarantineFailed"), Some("c")),
                "failed",
            ),
            (("TIMED_OUT", None, None, None), "failed"),
            (("ABORTED", None, None, None), "failed"),
        ];
        for ((status, output, error, cause), expected) in cases {
            assert_eq!(
                ObjectStatus::classify(status, output, error, cause).label(),
                expected,
                "{status} {output:?}"
            );
        }
        assert_eq!(
            ObjectStatus::classify("SUCCEEDED", Some(QUARANTINED), None, None),
            ObjectStatus::Quarantined {
                error: "UnsupportedType".into()
            }
        );
    }

    #[test]
    fn state_visits_pairs_enter_and_exit() {
        let v = state_visits([
            ("Inspect", true, 100),
            ("Inspect", false, 150),
            ("IsSupported", true, 150),
            ("IsSupported", false, 151),
            ("Transform", true, 151),
        ]);
        let got: Vec<_> = v.iter().map(|v| (v.name.as_str(), v.duration_ms)).collect();
        assert_eq!(
            got,
            vec![
                ("Inspect", Some(50)),
                ("IsSupported", Some(1)),
                ("Transform", None)
            ]
        );
    }

    #[test]
    fn summary_line_format() {
        let s = Summary::of(&[
            ObjectStatus::Processed,
            ObjectStatus::Processed,
            ObjectStatus::Quarantined {
                error: "InvalidImage".into(),
            },
        ]);
        assert_eq!(s.to_string(), "summary: processed=2 quarantined=1 failed=0");
    }
}

/// The one-line result of a load run (`cargo xtask load`). Keys are judged by what S3
/// says their newest version is, and by the result (manifest or report) naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Keys uploaded.
    pub objects: usize,
    /// Object versions uploaded (a key written twice counts twice).
    pub versions: usize,
    /// Event notifications delivered to ingest a second time (duplicates, out of order).
    pub redelivered: usize,
    /// Keys whose newest version has a manifest naming it, with every thumbnail in place.
    pub processed: usize,
    /// Keys whose newest version has a quarantine report naming it.
    pub quarantined: usize,
    /// Keys whose newest version has no result at all (no manifest or report for the key).
    pub lost: usize,
    /// Versions processed more than once, or with more executions than planned (one per
    /// version, plus a new generation only after one ended without a result).
    pub duplicated: usize,
    /// Keys whose result names an older version, or whose manifest's thumbnails are
    /// missing or wrong.
    pub stale: usize,
    /// Upload acknowledged -> execution stopped, over the versions that finished.
    pub p50_ms: u64,
    pub p99_ms: u64,
    /// Keys per second from the first upload to the last end of an execution the uploads
    /// started.
    pub objects_per_s: f64,
}

impl LoadReport {
    /// Whether the run found anything lost, processed twice or stale.
    pub fn failed(&self) -> bool {
        self.lost > 0 || self.duplicated > 0 || self.stale > 0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "objects={} versions={} redelivered={} processed={} quarantined={} lost={} duplicated={} stale={} p50_ms={} p99_ms={} objects_per_s={:.1}",
            self.objects,
            self.versions,
            self.redelivered,
            self.processed,
            self.quarantined,
            self.lost,
            self.duplicated,
            self.stale,
            self.p50_ms,
            self.p99_ms,
            self.objects_per_s
        )
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`; 0 when empty.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank_matches_definition() {
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[3, 1, 2], 0.0), 1);
    }

    fn report() -> LoadReport {
        LoadReport {
            objects: 200,
            versions: 240,
            redelivered: 100,
            processed: 180,
            quarantined: 20,
            lost: 0,
            duplicated: 0,
            stale: 0,
            p50_ms: 812,
            p99_ms: 2304,
            objects_per_s: 31.25,
        }
    }

    #[test]
    fn load_report_prints_one_line_in_the_documented_order() {
        let cases = [
            (
                report(),
                "objects=200 versions=240 redelivered=100 processed=180 quarantined=20 lost=0 duplicated=0 stale=0 p50_ms=812 p99_ms=2304 objects_per_s=31.2",
            ),
            (
                LoadReport {
                    processed: 177,
                    lost: 1,
                    duplicated: 2,
                    stale: 2,
                    objects_per_s: 0.04,
                    ..report()
                },
                "objects=200 versions=240 redelivered=100 processed=177 quarantined=20 lost=1 duplicated=2 stale=2 p50_ms=812 p99_ms=2304 objects_per_s=0.0",
            ),
        ];
        for (r, expected) in cases {
            assert_eq!(r.to_string(), expected);
        }
    }

    #[test]
    fn load_report_fails_on_any_lost_duplicated_or_stale() {
        let cases = [
            (report(), false),
            (
                LoadReport {
                    lost: 1,
                    ..report()
                },
                true,
            ),
            (
                LoadReport {
                    duplicated: 1,
                    ..report()
                },
                true,
            ),
            (
                LoadReport {
                    stale: 1,
                    ..report()
                },
                true,
            ),
            (
                LoadReport {
                    redelivered: 0,
                    quarantined: 0,
                    ..report()
                },
                false,
            ),
        ];
        for (r, expected) in cases {
            assert_eq!(r.failed(), expected, "{r}");
        }
    }
}
