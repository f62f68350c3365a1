//! One reconcile (or backfill) pass: list the input bucket and the results, plan with
//! [`pipeline_core::reconcile`], and start what is missing under deterministic names,
//! a bounded number at a time.
//!
//! Starting is idempotent. The first name tried is the one ingest uses for the version;
//! if an execution with that name exists and is running or succeeded, nothing is started.
//! If it ended without a result (failed, timed out, aborted, or lost with an emulator
//! restart), the next generation of the name is tried
//! ([`pipeline_core::naming::ExecutionName::generation`]), up to a limit. Running a pass
//! twice therefore starts nothing the second time.

use futures_util::stream::{self, StreamExt};
use pipeline_core::layout::OutputLayout;
use pipeline_core::naming::ExecutionName;
use pipeline_core::payload::{ExecutionInput, SourceObject};
use pipeline_core::reconcile::{plan, ResultTimes};

use crate::executions::{ExecutionStarter, StartOutcome};
use crate::store::{ObjectStore, StoreError};

/// How many fresh execution names a version may get after failed executions, for the
/// reconcile function and the CLI alike.
pub const MAX_GENERATIONS: u32 = 5;

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    pub input_bucket: String,
    /// Only keys under this prefix (empty: the whole bucket).
    pub prefix: String,
    pub layout: OutputLayout,
    /// Objects younger than this are left to their event.
    pub grace_ms: i64,
    pub now_ms: i64,
    /// How many starts are in flight at once.
    pub concurrency: usize,
    /// How many fresh generations of a name may be tried after failed executions.
    pub max_generations: u32,
}

/// What happened to one object version that had no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartResult {
    /// Started now, under this name.
    Started { key: String, name: String },
    /// An execution with this name is still running: nothing to do.
    Running { key: String, name: String },
    /// An execution with this name succeeded (its result may be on its way).
    Succeeded { key: String, name: String },
    /// Every generation up to the limit failed: needs an operator.
    Exhausted { key: String, last: String },
    /// Starting failed (throttled, rejected); the next pass tries again.
    Error { key: String, error: String },
}

impl StartResult {
    pub fn key(&self) -> &str {
        match self {
            StartResult::Started { key, .. }
            | StartResult::Running { key, .. }
            | StartResult::Succeeded { key, .. }
            | StartResult::Exhausted { key, .. }
            | StartResult::Error { key, .. } => key,
        }
    }
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub listed: usize,
    pub has_result: usize,
    pub too_recent: usize,
    pub skipped: usize,
    pub invalid_keys: Vec<(String, String)>,
    pub results: Vec<StartResult>,
}

impl ReconcileReport {
    fn count(&self, f: impl Fn(&StartResult) -> bool) -> usize {
        self.results.iter().filter(|r| f(r)).count()
    }

    pub fn started(&self) -> usize {
        self.count(|r| matches!(r, StartResult::Started { .. }))
    }

    pub fn errors(&self) -> usize {
        self.count(|r| matches!(r, StartResult::Error { .. } | StartResult::Exhausted { .. }))
            + self.invalid_keys.len()
    }

    /// One line for logs and the CLI.
    pub fn summary(&self) -> String {
        format!(
            "listed={} has_result={} too_recent={} skipped={} started={} running={} succeeded={} exhausted={} errors={}",
            self.listed,
            self.has_result,
            self.too_recent,
            self.skipped,
            self.started(),
            self.count(|r| matches!(r, StartResult::Running { .. })),
            self.count(|r| matches!(r, StartResult::Succeeded { .. })),
            self.count(|r| matches!(r, StartResult::Exhausted { .. })),
            self.count(|r| matches!(r, StartResult::Error { .. })) + self.invalid_keys.len(),
        )
    }
}

/// Lists, plans and starts. `on_result` is called as each start completes (progress).
pub async fn reconcile(
    store: &dyn ObjectStore,
    starter: &dyn ExecutionStarter,
    request: &ReconcileRequest,
    on_planned: &(dyn Fn(usize) + Sync),
    on_result: &(dyn Fn(&StartResult) + Sync),
) -> Result<ReconcileReport, StoreError> {
    let objects = store
        .list_latest_versions(&request.input_bucket, &request.prefix)
        .await?;
    let layout = &request.layout;
    let mut results = ResultTimes::new();
    for prefix in [
        layout.manifests_prefix.clone(),
        format!("{}reports/", layout.quarantine_prefix),
    ] {
        for o in store.list(&layout.bucket, &prefix).await? {
            results.insert(o.key, o.last_modified_ms.unwrap_or(i64::MAX));
        }
    }
    let planned = plan(
        &objects,
        &request.input_bucket,
        layout,
        &results,
        request.now_ms,
        request.grace_ms,
    );
    on_planned(planned.to_start.len());
    let starts = stream::iter(planned.to_start.iter())
        .map(|source| async move {
            let result = start_version(starter, source, request.max_generations).await;
            on_result(&result);
            result
        })
        .buffer_unordered(request.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut starts = starts;
    starts.sort_by(|a, b| a.key().cmp(b.key()));
    Ok(ReconcileReport {
        listed: objects.len(),
        has_result: planned.has_result,
        too_recent: planned.too_recent,
        skipped: planned.skipped,
        invalid_keys: planned.invalid_keys,
        results: starts,
    })
}

/// Starts one version under its deterministic name, or the next generation of it.
pub async fn start_version(
    starter: &dyn ExecutionStarter,
    source: &SourceObject,
    max_generations: u32,
) -> StartResult {
    let key = source.key.clone();
    let error = |error: String| StartResult::Error {
        key: source.key.clone(),
        error,
    };
    let base = match ExecutionName::for_source(source) {
        Ok(n) => n,
        Err(e) => return error(e.to_string()),
    };
    let input = ExecutionInput {
        source: source.clone(),
        event_time: None,
    };
    let input = match serde_json::to_string(&input) {
        Ok(i) => i,
        Err(e) => return error(e.to_string()),
    };
    let mut last = base.clone();
    for g in 0..=max_generations {
        let name = base.generation(g);
        last = name.clone();
        let name_str = name.as_str().to_string();
        match starter.start(&name_str, &input).await {
            Ok(StartOutcome::Started { .. }) => {
                return StartResult::Started {
                    key,
                    name: name_str,
                }
            }
            Ok(StartOutcome::AlreadyExists) => match starter.status(&name_str).await {
                Ok(Some(s)) if s == "RUNNING" || s == "PENDING_REDRIVE" => {
                    return StartResult::Running {
                        key,
                        name: name_str,
                    }
                }
                Ok(Some(s)) if s == "SUCCEEDED" => {
                    return StartResult::Succeeded {
                        key,
                        name: name_str,
                    }
                }
                // Ended without a result: try the next generation.
                Ok(_) => continue,
                Err(e) => return error(e.to_string()),
            },
            Err(e) => return error(e.to_string()),
        }
    }
    StartResult::Exhausted {
        key,
        last: last.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executions::MemoryStarter;
    use crate::store::MemoryStore;

    fn request(now_ms: i64) -> ReconcileRequest {
        ReconcileRequest {
            input_bucket: "in".into(),
            prefix: String::new(),
            layout: OutputLayout::new("out"),
            grace_ms: 100,
            now_ms,
            concurrency: 4,
            max_generations: 3,
        }
    }

    async fn pass(store: &MemoryStore, starter: &MemoryStarter, now: i64) -> ReconcileReport {
        reconcile(store, starter, &request(now), &|_| {}, &|_| {})
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn reconcile_starts_missing_ones_once() {
        let store = MemoryStore::new();
        for k in ["a.jpg", "b.jpg", "c.jpg", "dir/"] {
            store.insert("in", k, b"x".to_vec());
            store.set_last_modified("in", k, 10);
        }
        store.insert("out", "manifests/c.jpg.json", b"{}".to_vec());
        store.set_last_modified("out", "manifests/c.jpg.json", 20);
        let starter = MemoryStarter::new();
        let first = pass(&store, &starter, 1_000).await;
        assert_eq!(first.started(), 2, "{}", first.summary());
        assert_eq!((first.has_result, first.skipped), (1, 1));
        let second = pass(&store, &starter, 1_000).await;
        assert_eq!(second.started(), 0, "{}", second.summary());
        assert!(second
            .results
            .iter()
            .all(|r| matches!(r, StartResult::Running { .. })));
        assert_eq!(starter.started().len(), 2);
    }

    #[tokio::test]
    async fn reconcile_leaves_recent_objects_to_their_event() {
        let store = MemoryStore::new();
        store.insert("in", "a.jpg", b"x".to_vec());
        store.set_last_modified("in", "a.jpg", 950);
        let starter = MemoryStarter::new();
        let r = pass(&store, &starter, 1_000).await;
        assert_eq!((r.started(), r.too_recent), (0, 1));
    }

    #[tokio::test]
    async fn reconcile_failed_execution_gets_the_next_generation_then_stops() {
        let store = MemoryStore::new();
        store.insert("in", "a.jpg", b"x".to_vec());
        store.set_last_modified("in", "a.jpg", 10);
        let starter = MemoryStarter::new();
        let first = pass(&store, &starter, 1_000).await;
        let StartResult::Started { name, .. } = &first.results[0] else {
            panic!("{first:?}")
        };
        starter.set_status(name, "FAILED");
        let second = pass(&store, &starter, 1_000).await;
        let StartResult::Started { name: g1, .. } = &second.results[0] else {
            panic!("{second:?}")
        };
        assert_eq!(g1, &format!("{name}-g1"));
        let third = pass(&store, &starter, 1_000).await;
        assert!(matches!(third.results[0], StartResult::Running { .. }));
        for g in 1..=3 {
            starter.set_status(&format!("{name}-g{g}"), "FAILED");
        }
        let last = pass(&store, &starter, 1_000).await;
        assert!(
            matches!(last.results[0], StartResult::Exhausted { .. }),
            "{last:?}"
        );
    }
}
