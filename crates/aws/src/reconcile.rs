//! One reconcile (or backfill) pass: list the input bucket and the results, plan with
//! [`pipeline_core::reconcile`], and start what is missing under deterministic names,
//! a bounded number at a time.
//!
//! A version "has a result" when its manifest or report records that very version (read
//! from the result itself, not guessed from timestamps); see [`pipeline_core::reconcile`].
//!
//! Starting is idempotent. The first name tried is the one ingest uses for the version
//! (one naming rule, [`pipeline_core::naming::VersionToken`]). Its status is read first
//! (DescribeExecution): Step Functions answers a StartExecution with the name and input of
//! a running execution by returning it, so a start alone cannot tell "started" from
//! "already running". Running: nothing to do. Succeeded: its result is read again, and if
//! it still does not record the version (it was superseded when it ran, or an older one's
//! result replaced it), the version gets the next generation. Failed, timed out, aborted
//! or lost with an emulator restart: the next generation of the name is tried
//! ([`pipeline_core::naming::ExecutionName::generation`]), up to a limit. Running a pass
//! twice therefore starts nothing the second time.

use futures_util::stream::{self, StreamExt};
use pipeline_core::layout::OutputLayout;
use pipeline_core::naming::ExecutionName;
use pipeline_core::payload::{ExecutionInput, RecordedSource, SourceObject};
use pipeline_core::reconcile::{
    covers, plan, results_to_read, InputObject, RecordedSources, ResultTimes,
};

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
    /// An execution with this name succeeded and its result records the version.
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
    let to_read: Vec<String> = objects
        .iter()
        .flat_map(|o| results_to_read(o, layout, &results))
        .collect();
    let recorded: RecordedSources = stream::iter(to_read)
        .map(|key| async move {
            let source = recorded_source(store, &layout.bucket, &key).await?;
            Ok::<_, StoreError>((key, source))
        })
        .buffer_unordered(request.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let planned = plan(
        &objects,
        &request.input_bucket,
        layout,
        &results,
        &recorded,
        request.now_ms,
        request.grace_ms,
    );
    on_planned(planned.to_start.len());
    let by_key: std::collections::BTreeMap<&str, &InputObject> =
        objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let starts = stream::iter(planned.to_start.iter())
        .map(|source| {
            let object = by_key.get(source.key.as_str()).copied();
            async move {
                let check = object.map(|object| ResultCheck {
                    store,
                    layout,
                    object,
                    input_bucket: &request.input_bucket,
                });
                let result =
                    start_version(starter, source, request.max_generations, check.as_ref()).await;
                on_result(&result);
                result
            }
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

/// The source a manifest or report records, `None` when it is gone or unreadable.
async fn recorded_source(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<Option<SourceObject>, StoreError> {
    match store
        .read_current(bucket, key, RecordedSource::MAX_BYTES)
        .await
    {
        Ok(Some(stored)) => Ok(RecordedSource::parse(&stored.body)),
        // Listed a moment ago, gone now (or a 403 for a key deleted meanwhile, where the
        // role may list only some prefixes): it records nothing.
        Ok(None)
        | Err(StoreError::NotFound { .. })
        | Err(StoreError::AccessDenied { .. })
        | Err(StoreError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a version's results again, after its execution was found SUCCEEDED.
pub struct ResultCheck<'a> {
    pub store: &'a dyn ObjectStore,
    pub layout: &'a OutputLayout,
    pub object: &'a InputObject,
    pub input_bucket: &'a str,
}

impl ResultCheck<'_> {
    /// Whether the version's manifest or report records it now.
    async fn covered(&self) -> Result<bool, StoreError> {
        let Ok(key) = pipeline_core::key::ObjectKey::from_decoded(self.object.key.clone()) else {
            return Ok(false);
        };
        for result in [
            self.layout.manifest_key(&key),
            self.layout.quarantine_report_key(&key),
        ] {
            let recorded = recorded_source(self.store, &self.layout.bucket, &result).await?;
            if recorded.is_some_and(|r| covers(&r, self.object, self.input_bucket)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Starts one version under its deterministic name, or the next generation of it.
/// `check` re-reads the version's results when an execution under one of its names
/// succeeded (without it, a success counts as done).
pub async fn start_version(
    starter: &dyn ExecutionStarter,
    source: &SourceObject,
    max_generations: u32,
    check: Option<&ResultCheck<'_>>,
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
        let status = match starter.status(&name_str).await {
            Ok(s) => s,
            Err(e) => return error(e.to_string()),
        };
        match status.as_deref() {
            None => {}
            Some("RUNNING" | "PENDING_REDRIVE") => {
                return StartResult::Running {
                    key,
                    name: name_str,
                }
            }
            Some("SUCCEEDED") => {
                let covered = match check {
                    Some(c) => match c.covered().await {
                        Ok(covered) => covered,
                        Err(e) => return error(e.to_string()),
                    },
                    None => true,
                };
                if covered {
                    return StartResult::Succeeded {
                        key,
                        name: name_str,
                    };
                }
                // Succeeded without a result for this version: the next generation.
                continue;
            }
            // Ended without a result: try the next generation.
            Some(_) => continue,
        }
        match starter.start(&name_str, &input).await {
            Ok(StartOutcome::Started { .. }) => {
                return StartResult::Started {
                    key,
                    name: name_str,
                }
            }
            // Started by someone else between the status read and the start (an event
            // arriving now): it is running.
            Ok(StartOutcome::AlreadyExists) => {
                return StartResult::Running {
                    key,
                    name: name_str,
                }
            }
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

    /// A manifest recording `version` of `key` (what load writes, reduced).
    fn manifest_for(store: &MemoryStore, key: &str, version: Option<&str>) {
        let (size, etag) = store
            .object("in", key)
            .map(|(b, _)| (b.len(), crate::store::tests_support::etag(&b)))
            .unwrap();
        let body = serde_json::json!({"source": {
            "bucket": "in", "key": key, "version_id": version, "etag": etag, "size": size
        }});
        store.insert(
            "out",
            &format!("manifests/{key}.json"),
            serde_json::to_vec(&body).unwrap(),
        );
    }

    #[tokio::test]
    async fn reconcile_starts_missing_ones_once() {
        let store = MemoryStore::new();
        store.enable_versioning("in");
        let mut versions = std::collections::BTreeMap::new();
        for k in ["a.jpg", "b.jpg", "c.jpg", "dir/"] {
            versions.insert(k, store.insert("in", k, b"x".to_vec()));
            store.set_last_modified("in", k, 10);
        }
        manifest_for(&store, "c.jpg", versions["c.jpg"].as_deref());
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

    /// A result written after the upload that records another version (an older
    /// version's late result) is not a result for the current version.
    #[tokio::test]
    async fn reconcile_result_for_another_version_does_not_cover() {
        let store = MemoryStore::new();
        store.enable_versioning("in");
        let v1 = store.insert("in", "a.jpg", b"one".to_vec());
        let v2 = store.insert("in", "a.jpg", b"two".to_vec());
        store.set_last_modified("in", "a.jpg", 10);
        manifest_for(&store, "a.jpg", v1.as_deref());
        store.set_last_modified("out", "manifests/a.jpg.json", 20);
        let starter = MemoryStarter::new();
        let r = pass(&store, &starter, 1_000).await;
        assert_eq!((r.started(), r.has_result), (1, 0), "{}", r.summary());
        let input: ExecutionInput =
            serde_json::from_str(starter.started().values().next().unwrap()).unwrap();
        assert_eq!(input.source.version_id, v2);
    }

    /// An execution of the current version that succeeded but whose result does not
    /// record the version (it was superseded, or its result was replaced): the version
    /// gets the next generation rather than being counted as done.
    #[tokio::test]
    async fn reconcile_succeeded_without_a_result_for_its_version_starts_the_next_generation() {
        let store = MemoryStore::new();
        store.enable_versioning("in");
        store.insert("in", "a.jpg", b"x".to_vec());
        store.set_last_modified("in", "a.jpg", 10);
        let starter = MemoryStarter::new();
        let first = pass(&store, &starter, 1_000).await;
        let StartResult::Started { name, .. } = &first.results[0] else {
            panic!("{first:?}")
        };
        starter.set_status(name, "SUCCEEDED");
        let second = pass(&store, &starter, 1_000).await;
        assert!(
            matches!(&second.results[0], StartResult::Started { name: g1, .. } if g1 == &format!("{name}-g1")),
            "{second:?}"
        );
        // Once a result records the version, a succeeded execution is done.
        let version = store
            .list_latest_versions("in", "")
            .await
            .unwrap()
            .remove(0)
            .version_id;
        manifest_for(&store, "a.jpg", version.as_deref());
        store.set_last_modified("out", "manifests/a.jpg.json", 20);
        starter.set_status(&format!("{name}-g1"), "SUCCEEDED");
        let third = pass(&store, &starter, 1_000).await;
        assert_eq!(
            (third.started(), third.has_result),
            (0, 1),
            "{}",
            third.summary()
        );
    }

    /// Unversioned bucket: the execution ingest started from the event (which has a
    /// sequencer) and the one reconcile derives from the listing (which has not) have one
    /// name, so reconcile finds it running instead of starting a duplicate.
    #[tokio::test]
    async fn reconcile_unversioned_bucket_finds_the_evented_execution() {
        let store = MemoryStore::new();
        store.insert("in", "a.jpg", b"x".to_vec());
        store.set_last_modified("in", "a.jpg", 10);
        let etag = crate::store::tests_support::etag(b"x");
        let evented = SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id: None,
            sequencer: Some("0055AED6DCD90281E5".into()),
            etag: Some(etag),
            size: Some(1),
        };
        let starter = MemoryStarter::new();
        let name = ExecutionName::for_source(&evented).unwrap();
        let input = serde_json::to_string(&ExecutionInput {
            source: evented,
            event_time: Some("2026-11-29T08:00:00.000Z".into()),
        })
        .unwrap();
        starter.start(name.as_str(), &input).await.unwrap();
        let r = pass(&store, &starter, 1_000).await;
        assert_eq!(r.started(), 0, "{}", r.summary());
        assert!(
            matches!(&r.results[0], StartResult::Running { name: n, .. } if n == name.as_str())
        );
        assert_eq!(starter.started().len(), 1);
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
