//! What the console shows, computed from what Step Functions returns: one row per
//! execution, the counters, and each state's status and duration. Pure: no I/O, no clock
//! (the caller passes `now`).

use std::collections::BTreeMap;

use pipeline_aws::executions::ExecutionDetail;
use pipeline_aws::HistoryItem;
use pipeline_core::payload::{ExecutionInput, ExecutionOutput};
use pipeline_core::report::ObjectStatus;
use serde::Serialize;

/// How far back "objects per minute" looks.
pub const RATE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One execution as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionRow {
    pub name: String,
    pub arn: String,
    /// The source object key from the execution input (empty when the input is not ours).
    pub key: String,
    /// `processed`, `quarantined`, `failed` or `running` (what happened to the object).
    pub status: &'static str,
    /// Step Functions' own status (`SUCCEEDED` for a quarantined object too).
    pub execution_status: String,
    /// The pipeline error name of a quarantined or failed object.
    pub error: Option<String>,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl ExecutionRow {
    /// Classifies a described execution. A quarantine ends `SUCCEEDED` with
    /// `{"outcome": "quarantined"}`: that is `quarantined`, never `processed`.
    pub fn from_detail(detail: &ExecutionDetail) -> Self {
        let key = detail
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str::<ExecutionInput>(i).ok())
            .map(|i| i.source.key)
            .unwrap_or_default();
        let status = ObjectStatus::classify(
            &detail.summary.status,
            detail.output.as_deref(),
            detail.error.as_deref(),
            detail.cause.as_deref(),
        );
        let error = match &status {
            ObjectStatus::Quarantined { error } | ObjectStatus::Failed { error, .. } => {
                Some(error.clone())
            }
            ObjectStatus::Processed | ObjectStatus::Running | ObjectStatus::Superseded { .. } => {
                None
            }
        };
        let s = &detail.summary;
        ExecutionRow {
            name: s.name.clone(),
            arn: s.arn.clone(),
            key,
            status: status.label(),
            execution_status: s.status.clone(),
            error,
            start_ms: s.start_epoch_ms,
            stop_ms: s.stop_epoch_ms,
            duration_ms: s.stop_epoch_ms.map(|stop| (stop - s.start_epoch_ms).max(0)),
        }
    }

    /// Finished executions never change, so their rows can be kept.
    pub fn is_final(&self) -> bool {
        self.status != "running"
    }
}

/// The console's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Counters {
    pub processed: usize,
    pub quarantined: usize,
    pub failed: usize,
    pub running: usize,
    /// Executions that finished in the last [`RATE_WINDOW_MS`], per minute.
    pub per_minute: f64,
}

impl Counters {
    pub fn of(rows: &[ExecutionRow], now_ms: i64) -> Self {
        let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
        let recent = rows
            .iter()
            .filter(|r| {
                r.stop_ms
                    .is_some_and(|stop| stop <= now_ms && now_ms - stop <= RATE_WINDOW_MS)
            })
            .count();
        Counters {
            processed: count("processed"),
            quarantined: count("quarantined"),
            failed: count("failed"),
            running: count("running"),
            per_minute: recent as f64 * 60_000.0 / RATE_WINDOW_MS as f64,
        }
    }
}

/// Rows with the given status (`all` or an empty filter keeps every row), newest first.
pub fn filter_rows(mut rows: Vec<ExecutionRow>, status: Option<&str>) -> Vec<ExecutionRow> {
    if let Some(wanted) = status.filter(|s| !s.is_empty() && *s != "all") {
        rows.retain(|r| r.status == wanted);
    }
    rows.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then(a.name.cmp(&b.name)));
    rows
}

/// How one state of one execution went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateStatus {
    /// Never entered.
    NotRun,
    /// Entered, not left, and the execution is still running.
    Running,
    /// Left normally (after retries, if any succeeded).
    Succeeded,
    /// Its last attempt failed or timed out (then caught, or the execution failed there),
    /// or it is a `Fail` state that was entered.
    Failed,
}

/// One state's status, total time spent in it and how many times it was entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateRun {
    pub status: StateStatus,
    pub duration_ms: Option<i64>,
    pub entered: usize,
}

/// Each entered state's status and duration, from the history (oldest event first). A
/// state's visit ends at its `*StateExited` event or, when the emulator or a caught error
/// leaves none, at the next state entered (or the execution's end).
pub fn state_runs(history: &[HistoryItem], execution_running: bool) -> BTreeMap<String, StateRun> {
    struct Open {
        name: String,
        since: i64,
        failed: bool,
    }
    let mut runs: BTreeMap<String, StateRun> = BTreeMap::new();
    let mut open: Option<Open> = None;
    let close = |runs: &mut BTreeMap<String, StateRun>, o: Open, at: Option<i64>| {
        let run = runs.entry(o.name).or_insert(StateRun {
            status: StateStatus::NotRun,
            duration_ms: None,
            entered: 0,
        });
        run.status = match (o.failed, at) {
            (true, _) => StateStatus::Failed,
            (false, Some(_)) => StateStatus::Succeeded,
            (false, None) => StateStatus::Running,
        };
        if let Some(at) = at {
            run.duration_ms = Some(run.duration_ms.unwrap_or(0) + (at - o.since).max(0));
        }
    };
    for event in history {
        let kind = event.kind.as_str();
        if kind.ends_with("StateEntered") {
            if let Some(o) = open.take() {
                close(&mut runs, o, Some(event.epoch_ms));
            }
            let name = event.state.clone().unwrap_or_default();
            runs.entry(name.clone())
                .or_insert(StateRun {
                    status: StateStatus::Running,
                    duration_ms: None,
                    entered: 0,
                })
                .entered += 1;
            open = Some(Open {
                name,
                since: event.epoch_ms,
                failed: kind == "FailStateEntered",
            });
        } else if kind.ends_with("StateExited") {
            if let Some(o) = open.take() {
                if Some(&o.name) == event.state.as_ref() {
                    close(&mut runs, o, Some(event.epoch_ms));
                } else {
                    open = Some(o);
                }
            }
        } else if kind.starts_with("Execution") {
            let ended = matches!(
                kind,
                "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut"
            );
            if ended {
                if let Some(o) = open.as_mut() {
                    o.failed = true;
                }
            }
            if kind != "ExecutionStarted" {
                if let Some(o) = open.take() {
                    close(&mut runs, o, Some(event.epoch_ms));
                }
            }
        } else if let Some(o) = open.as_mut() {
            if kind.ends_with("Failed") || kind.ends_with("TimedOut") {
                o.failed = true;
            } else if kind.ends_with("Succeeded") {
                o.failed = false;
            }
        }
    }
    if let Some(o) = open {
        let end = if execution_running {
            None
        } else {
            history.last().map(|e| e.epoch_ms)
        };
        close(&mut runs, o, end);
    }
    runs
}

/// Where a processed object's thumbnails are, from the execution output.
pub fn thumbnail_keys(output: Option<&str>) -> Vec<String> {
    match output.map(serde_json::from_str::<ExecutionOutput>) {
        Some(Ok(ExecutionOutput::Processed(out))) => {
            out.thumbnails.into_iter().map(|t| t.key).collect()
        }
        _ => Vec::new(),
    }
}

/// Where a quarantined object's report is, from the execution output.
pub fn quarantine_report_key(output: Option<&str>) -> Option<String> {
    match output.map(serde_json::from_str::<ExecutionOutput>) {
        Some(Ok(ExecutionOutput::Quarantined(q))) => Some(q.report.key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::ExecutionSummary;

    const PROCESSED: &str = include_str!("../../../state-machine/fixtures/load-output.json");
    const QUARANTINED: &str =
        include_str!("../../../state-machine/fixtures/quarantine-output.json");
    const INPUT: &str = include_str!("../../../state-machine/fixtures/execution-input.json");

    fn detail(status: &str, output: Option<&str>, stop: Option<i64>) -> ExecutionDetail {
        ExecutionDetail {
            summary: ExecutionSummary {
                arn: "arn:x".into(),
                name: "n".into(),
                status: status.into(),
                start_epoch_ms: 1_000,
                stop_epoch_ms: stop,
            },
            input: Some(INPUT.into()),
            output: output.map(str::to_string),
            error: (status == "FAILED").then(|| "QuarantineFailed".to_string()),
            cause: None,
        }
    }

    fn row(status: &'static str, stop: Option<i64>) -> ExecutionRow {
        ExecutionRow {
            name: format!("{status}-{stop:?}"),
            arn: String::new(),
            key: String::new(),
            status,
            execution_status: String::new(),
            error: None,
            start_ms: 0,
            stop_ms: stop,
            duration_ms: None,
        }
    }

    fn event(kind: &str, state: Option<&str>, at: i64) -> HistoryItem {
        HistoryItem {
            id: at,
            kind: kind.into(),
            epoch_ms: at,
            state: state.map(str::to_string),
            detail: None,
        }
    }

    #[test]
    fn from_detail_succeeded_with_quarantined_output_is_quarantined() {
        let cases = [
            (
                detail("SUCCEEDED", Some(PROCESSED), Some(1_500)),
                "processed",
                None,
            ),
            (
                detail("SUCCEEDED", Some(QUARANTINED), Some(1_500)),
                "quarantined",
                Some("UnsupportedType"),
            ),
            (
                detail("FAILED", None, Some(1_500)),
                "failed",
                Some("QuarantineFailed"),
            ),
            (detail("RUNNING", None, None), "running", None),
        ];
        for (d, status, error) in cases {
            let r = ExecutionRow::from_detail(&d);
            assert_eq!(r.status, status, "{}", d.summary.status);
            assert_eq!(r.error.as_deref(), error, "{status}");
            assert_eq!(r.is_final(), status != "running");
        }
        let r = ExecutionRow::from_detail(&detail("SUCCEEDED", Some(PROCESSED), Some(1_500)));
        assert_eq!(r.duration_ms, Some(500));
        assert!(!r.key.is_empty(), "key read from the execution input");
    }

    #[test]
    fn counters_count_by_status_and_rate_over_the_window() {
        let now = 10 * 60 * 1000;
        let rows = [
            row("processed", Some(now - 1_000)),
            row("processed", Some(now - 2_000)),
            row("quarantined", Some(now - 60_000)),
            row("processed", Some(now - RATE_WINDOW_MS - 1)),
            row("failed", Some(now - 1)),
            row("running", None),
        ];
        let c = Counters::of(&rows, now);
        assert_eq!(
            (c.processed, c.quarantined, c.failed, c.running),
            (3, 1, 1, 1)
        );
        // 4 finished within the last 5 minutes: 0.8 per minute.
        assert!((c.per_minute - 0.8).abs() < 1e-9, "{}", c.per_minute);
    }

    #[test]
    fn filter_rows_keeps_status_newest_first() {
        let mut a = row("processed", Some(1));
        a.start_ms = 1;
        let mut b = row("quarantined", Some(2));
        b.start_ms = 2;
        let mut c = row("processed", Some(3));
        c.start_ms = 3;
        let all = filter_rows(vec![a.clone(), b.clone(), c.clone()], Some("all"));
        assert_eq!(all, vec![c.clone(), b.clone(), a.clone()]);
        assert_eq!(
            filter_rows(vec![a.clone(), b, c.clone()], Some("processed")),
            vec![c, a]
        );
        assert!(filter_rows(vec![row("running", None)], Some("failed")).is_empty());
    }

    #[test]
    fn state_runs_processed_execution_all_succeeded_with_durations() {
        let h = [
            event("ExecutionStarted", None, 0),
            event("TaskStateEntered", Some("Inspect"), 10),
            event("LambdaFunctionSucceeded", None, 40),
            event("TaskStateExited", Some("Inspect"), 50),
            event("ChoiceStateEntered", Some("IsSupported"), 50),
            event("ChoiceStateExited", Some("IsSupported"), 51),
            event("TaskStateEntered", Some("Transform"), 51),
            event("TaskStateExited", Some("Transform"), 151),
            event("ExecutionSucceeded", None, 152),
        ];
        let runs = state_runs(&h, false);
        let got: Vec<_> = runs
            .iter()
            .map(|(n, r)| (n.as_str(), r.status, r.duration_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Inspect", StateStatus::Succeeded, Some(40)),
                ("IsSupported", StateStatus::Succeeded, Some(1)),
                ("Transform", StateStatus::Succeeded, Some(100)),
            ]
        );
    }

    #[test]
    fn state_runs_caught_failure_is_failed_and_quarantine_succeeded() {
        // A caught error may leave no StateExited: the next StateEntered ends the visit.
        let h = [
            event("TaskStateEntered", Some("Transform"), 0),
            event("LambdaFunctionFailed", None, 30),
            event("TaskStateEntered", Some("Quarantine"), 31),
            event("LambdaFunctionSucceeded", None, 60),
            event("TaskStateExited", Some("Quarantine"), 61),
            event("ExecutionSucceeded", None, 62),
        ];
        let runs = state_runs(&h, false);
        assert_eq!(runs["Transform"].status, StateStatus::Failed);
        assert_eq!(runs["Transform"].duration_ms, Some(31));
        assert_eq!(runs["Quarantine"].status, StateStatus::Succeeded);
        assert!(!runs.contains_key("Load"), "never entered");
    }

    #[test]
    fn state_runs_retry_that_succeeds_is_succeeded() {
        let h = [
            event("TaskStateEntered", Some("Inspect"), 0),
            event("LambdaFunctionFailed", None, 5),
            event("LambdaFunctionSucceeded", None, 9),
            event("TaskStateExited", Some("Inspect"), 10),
        ];
        assert_eq!(
            state_runs(&h, false)["Inspect"].status,
            StateStatus::Succeeded
        );
    }

    #[test]
    fn state_runs_open_state_is_running_or_failed_with_the_execution() {
        let running = [event("TaskStateEntered", Some("Transform"), 0)];
        let r = state_runs(&running, true);
        assert_eq!(r["Transform"].status, StateStatus::Running);
        assert_eq!(r["Transform"].duration_ms, None);
        let failed = [
            event("TaskStateEntered", Some("Quarantine"), 0),
            event("FailStateEntered", Some("QuarantineFailed"), 5),
            event("ExecutionFailed", None, 6),
        ];
        let r = state_runs(&failed, false);
        assert_eq!(r["Quarantine"].status, StateStatus::Succeeded);
        assert_eq!(r["QuarantineFailed"].status, StateStatus::Failed);
    }

    #[test]
    fn output_locations_processed_thumbnails_and_quarantine_report() {
        assert!(!thumbnail_keys(Some(PROCESSED)).is_empty());
        assert!(thumbnail_keys(Some(QUARANTINED)).is_empty());
        assert!(thumbnail_keys(Some("not json")).is_empty());
        assert!(quarantine_report_key(Some(QUARANTINED)).is_some());
        assert_eq!(quarantine_report_key(Some(PROCESSED)), None);
        assert_eq!(quarantine_report_key(None), None);
    }
}
