//! Publishing a key's result (manifest or quarantine report) so that it always describes
//! the key's newest version, whoever started the execution: the rule of
//! [`pipeline_core::ordering`].
//!
//! Each round: take the stored result as read (nothing, in the first round), ask S3 for
//! the key's current version *after* that read, [`decide`], and write conditionally on
//! what was read (`If-None-Match: *` first, so a new key needs only `s3:PutObject`;
//! `If-Match: <etag>` after a 412 made us read what is there). Another writer winning the
//! race costs a round.
//!
//! Permissions, as AWS evaluates them: the create-only write needs `s3:PutObject`; the read
//! after a 412 is of a key that exists, so `s3:GetObject` on the result prefix suffices
//! (a GET of a *missing* key without `s3:ListBucket` is 403, not 404, which is why the
//! first round does not read). The current-version check is a HeadObject on the input key:
//! `s3:GetObject` on the input objects, and `s3:ListBucket` on the input bucket so that a
//! deleted key answers 404 rather than 403.

use pipeline_aws::{ObjectLocation, ObjectStore, StoreError, WriteCondition};
use pipeline_core::naming::VersionToken;
use pipeline_core::ordering::{decide, CurrentVersion, Decision};
use pipeline_core::payload::{RecordedSource, SourceObject};
use pipeline_core::PipelineError;
use tracing::{info, warn};

use crate::from_store;

/// How many read-decide-write rounds before giving up with `Transient` (the state
/// machine then retries the whole step). Each lost round means another version of the
/// key was published meanwhile, so more than a few means something is wrong.
pub const MAX_ROUNDS: usize = 5;

/// What happened to the result a step tried to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Written (created, or replaced a result for an older version).
    Written,
    /// A result for this very version was already there (a retried step): left as it is,
    /// so the stored bytes are the first write's.
    AlreadyCurrent,
    /// A newer version of the key exists; nothing was written.
    Superseded { by: String },
}

/// S3's answer for the source key's current version (HeadObject, no versionId).
pub async fn current_version(
    store: &dyn ObjectStore,
    source: &SourceObject,
) -> Result<CurrentVersion, PipelineError> {
    match store
        .head(ObjectLocation::latest(&source.bucket, &source.key))
        .await
    {
        Ok(head) => Ok(CurrentVersion::Exists {
            version_id: head.version_id,
            etag: head.etag,
        }),
        Err(StoreError::NotFound { .. }) => Ok(CurrentVersion::Missing),
        Err(e) => Err(from_store(e)),
    }
}

/// Publishes `body` at `bucket/key` as the result for `source`, unless `source` is not
/// the key's current version in S3.
pub async fn publish_result(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    body: &[u8],
    source: &SourceObject,
) -> Result<Published, PipelineError> {
    let ours = VersionToken::of(source);
    // Round 1 assumes nothing is stored and writes create-only: no read of a key that may
    // not exist. A 412 says something is there; later rounds read it.
    let mut stored: Option<(Option<SourceObject>, String)> = None;
    for round in 1..=MAX_ROUNDS {
        if round > 1 {
            stored = match store
                .read_current(bucket, key, RecordedSource::MAX_BYTES)
                .await
                .map_err(from_store)?
            {
                None => None,
                Some(current) => {
                    let Some(etag) = current.etag else {
                        return Err(PipelineError::transient(format!(
                            "s3://{bucket}/{key} was read without an ETag"
                        )));
                    };
                    let recorded = RecordedSource::parse(&current.body);
                    if recorded.is_none() {
                        warn!(
                            bucket,
                            key, "existing result is unreadable; replacing it if ours is current"
                        );
                    }
                    Some((recorded, etag))
                }
            };
        }
        // After the read: S3's answer must be at least as new as what was read.
        let now = current_version(store, source).await?;
        let stored_token = stored.as_ref().map(|(recorded, _)| {
            recorded
                .as_ref()
                .filter(|r| r.bucket == source.bucket && r.key == source.key)
                .map_or(VersionToken::Unknown, VersionToken::of)
        });
        match decide(stored_token, ours, &now) {
            Decision::Rewrite => return Ok(Published::AlreadyCurrent),
            Decision::Superseded { current } => {
                info!(bucket, key, current = %current, "a newer version exists");
                return Ok(Published::Superseded { by: current });
            }
            Decision::Write => {}
        }
        let condition = match &stored {
            None => WriteCondition::IfAbsent,
            Some((_, etag)) => WriteCondition::IfMatch(etag.clone()),
        };
        match store
            .put_if(bucket, key, body.to_vec(), "application/json", condition)
            .await
        {
            Ok(()) => return Ok(Published::Written),
            Err(StoreError::PreconditionFailed { .. }) => {
                info!(
                    bucket,
                    key, round, "result changed while publishing; reading again"
                );
            }
            Err(e) => return Err(from_store(e)),
        }
    }
    Err(PipelineError::transient(format!(
        "s3://{bucket}/{key} changed {MAX_ROUNDS} times while publishing"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use pipeline_aws::{ListedObject, MemoryStore, ObjectHead, StoredObject};
    use pipeline_core::reconcile::InputObject;
    use std::sync::Mutex;

    const RESULT: &str = "manifests/a.jpg.json";

    /// The input bucket is versioned, as the template makes it.
    fn store() -> MemoryStore {
        let s = MemoryStore::new();
        s.enable_versioning("in");
        s
    }

    /// Uploads a version of `in/a.jpg`; the source is what an execution of it carries:
    /// with a sequencer when evented, without when reconciled (or backfilled, retried).
    fn upload(store: &MemoryStore, body: &str, evented: bool) -> SourceObject {
        let version_id = store.insert("in", "a.jpg", body.as_bytes().to_vec());
        SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id,
            // Deliberately meaningless order (an emulator's): nothing may rely on it.
            sequencer: evented.then(|| "FF".to_string()),
            etag: None,
            size: Some(body.len() as u64),
        }
    }

    fn body(s: &SourceObject, marker: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "source": s, "marker": marker })).unwrap()
    }

    async fn publish(store: &dyn ObjectStore, s: &SourceObject, marker: &str) -> Published {
        publish_result(store, "out", RESULT, &body(s, marker), s)
            .await
            .unwrap()
    }

    fn stored_marker(store: &MemoryStore) -> String {
        let (bytes, _) = store.object("out", RESULT).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["marker"].as_str().unwrap().to_string()
    }

    fn superseded_by_current(s: &SourceObject) -> Published {
        Published::Superseded {
            by: format!(
                "version {} (current in S3)",
                s.version_id.as_deref().unwrap()
            ),
        }
    }

    #[tokio::test]
    async fn publish_in_order_newer_replaces_older() {
        let store = store();
        let v1 = upload(&store, "one", true);
        assert_eq!(publish(&store, &v1, "v1").await, Published::Written);
        let v2 = upload(&store, "two", true);
        assert_eq!(publish(&store, &v2, "v2").await, Published::Written);
        assert_eq!(stored_marker(&store), "v2");
    }

    /// Reconciled v1 against evented v2, v2 finishing first: v1 never replaces it.
    #[tokio::test]
    async fn publish_reconciled_v1_after_evented_v2_is_superseded() {
        let store = store();
        let v1 = upload(&store, "one", false);
        let v2 = upload(&store, "two", true);
        assert_eq!(publish(&store, &v2, "v2").await, Published::Written);
        assert_eq!(publish(&store, &v1, "v1").await, superseded_by_current(&v2));
        assert_eq!(stored_marker(&store), "v2");
    }

    /// Reconciled v1 against evented v2, v1 finishing first (while v2 is still running):
    /// v1 stands down as soon as v2 exists, and v2 writes.
    #[tokio::test]
    async fn publish_reconciled_v1_before_evented_v2_then_v2_wins() {
        let store = store();
        let v1 = upload(&store, "one", false);
        let v2 = upload(&store, "two", true);
        assert_eq!(publish(&store, &v1, "v1").await, superseded_by_current(&v2));
        assert_eq!(publish(&store, &v2, "v2").await, Published::Written);
        assert_eq!(stored_marker(&store), "v2");
    }

    /// v1 published while current; v2 reconciled (no sequencer) later replaces it; then
    /// v1's event arrives again, hours late (an asynchronous invocation retried), and its
    /// execution publishes: the reconciled v2 stays.
    #[tokio::test]
    async fn publish_late_v1_event_after_reconciled_v2_is_superseded() {
        let store = store();
        let v1 = upload(&store, "one", true);
        assert_eq!(publish(&store, &v1, "v1").await, Published::Written);
        let v2 = upload(&store, "two", false);
        assert_eq!(publish(&store, &v2, "v2").await, Published::Written);
        let mut late = v1.clone();
        late.sequencer = Some("FFFFFFFFFFFFFFFFFFFF".into());
        assert_eq!(
            publish(&store, &late, "v1-late").await,
            superseded_by_current(&v2)
        );
        assert_eq!(stored_marker(&store), "v2");
    }

    #[tokio::test]
    async fn publish_same_version_again_keeps_first_bytes() {
        let store = store();
        let s = upload(&store, "one", true);
        assert_eq!(publish(&store, &s, "first").await, Published::Written);
        assert_eq!(
            publish(&store, &s, "retry").await,
            Published::AlreadyCurrent
        );
        assert_eq!(stored_marker(&store), "first");
    }

    #[tokio::test]
    async fn publish_replaces_an_unreadable_result() {
        let store = store();
        store.insert("out", RESULT, b"not json".to_vec());
        let s = upload(&store, "one", true);
        assert_eq!(publish(&store, &s, "ok").await, Published::Written);
        assert_eq!(stored_marker(&store), "ok");
    }

    /// The source was deleted before its execution published (a report must still tell
    /// what happened): written where nothing is stored, never over another version.
    #[tokio::test]
    async fn publish_deleted_source_reports_where_nothing_is_stored() {
        let store = store();
        let v1 = upload(&store, "one", true);
        store.delete("in", "a.jpg").await.unwrap();
        assert_eq!(publish(&store, &v1, "v1").await, Published::Written);
        let v2 = upload(&store, "two", true);
        assert_eq!(publish(&store, &v2, "v2").await, Published::Written);
        store.delete("in", "a.jpg").await.unwrap();
        assert!(matches!(
            publish(&store, &v1, "v1-again").await,
            Published::Superseded { .. }
        ));
        assert_eq!(stored_marker(&store), "v2");
    }

    /// An unversioned bucket identifies versions by ETag.
    #[tokio::test]
    async fn publish_unversioned_bucket_orders_by_what_s3_holds() {
        let store = MemoryStore::new();
        let source = |store: &MemoryStore, body: &str| {
            store.insert("in", "a.jpg", body.as_bytes().to_vec());
            let etag = store
                .latest_versions("in")
                .into_iter()
                .next()
                .and_then(|o: InputObject| o.etag)
                .unwrap();
            SourceObject {
                bucket: "in".into(),
                key: "a.jpg".into(),
                version_id: None,
                sequencer: None,
                etag: Some(etag.trim_matches('"').into()),
                size: None,
            }
        };
        let one = source(&store, "one");
        let two = source(&store, "two");
        assert!(matches!(
            publish(&store, &one, "one").await,
            Published::Superseded { .. }
        ));
        assert_eq!(publish(&store, &two, "two").await, Published::Written);
        assert_eq!(stored_marker(&store), "two");
    }

    /// A store that lets another writer in at the worst moment: right before the first
    /// conditional write of the publisher under test, `race` runs against the same data.
    type Race = Box<dyn FnOnce(std::sync::Arc<MemoryStore>) + Send>;

    struct Racing {
        inner: std::sync::Arc<MemoryStore>,
        race: Mutex<Option<Race>>,
        conditional_writes: Mutex<Vec<String>>,
    }

    impl Racing {
        fn new(
            inner: std::sync::Arc<MemoryStore>,
            race: impl FnOnce(std::sync::Arc<MemoryStore>) + Send + 'static,
        ) -> Self {
            Racing {
                inner,
                race: Mutex::new(Some(Box::new(race))),
                conditional_writes: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl ObjectStore for Racing {
        async fn head(&self, at: ObjectLocation<'_>) -> Result<ObjectHead, StoreError> {
            self.inner.head(at).await
        }
        async fn get_prefix(
            &self,
            at: ObjectLocation<'_>,
            len: u64,
        ) -> Result<Vec<u8>, StoreError> {
            self.inner.get_prefix(at, len).await
        }
        async fn get(&self, at: ObjectLocation<'_>, max: u64) -> Result<Vec<u8>, StoreError> {
            self.inner.get(at, max).await
        }
        async fn put(&self, b: &str, k: &str, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
            self.inner.put(b, k, body, ct).await
        }
        async fn copy(&self, from: ObjectLocation<'_>, b: &str, k: &str) -> Result<(), StoreError> {
            self.inner.copy(from, b, k).await
        }
        async fn list(&self, b: &str, p: &str) -> Result<Vec<ListedObject>, StoreError> {
            self.inner.list(b, p).await
        }
        async fn list_latest_versions(
            &self,
            b: &str,
            p: &str,
        ) -> Result<Vec<InputObject>, StoreError> {
            self.inner.list_latest_versions(b, p).await
        }
        async fn read_current(
            &self,
            b: &str,
            k: &str,
            max: u64,
        ) -> Result<Option<StoredObject>, StoreError> {
            self.inner.read_current(b, k, max).await
        }
        async fn put_if(
            &self,
            b: &str,
            k: &str,
            body: Vec<u8>,
            ct: &str,
            condition: WriteCondition,
        ) -> Result<(), StoreError> {
            let race = self.race.lock().unwrap().take();
            if let Some(race) = race {
                race(self.inner.clone());
            }
            let result = self.inner.put_if(b, k, body, ct, condition.clone()).await;
            self.conditional_writes.lock().unwrap().push(format!(
                "{condition:?} -> {}",
                if result.is_ok() { "ok" } else { "refused" }
            ));
            result
        }
        async fn delete(&self, b: &str, k: &str) -> Result<(), StoreError> {
            self.inner.delete(b, k).await
        }
    }

    /// Runs a future to completion on a fresh current-thread runtime (the racing writer
    /// runs inside another publisher's call, so it cannot await on the outer runtime).
    fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
    where
        F::Output: Send,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap()
                        .block_on(f)
                })
                .join()
                .unwrap()
        })
    }

    /// Two publishers on one key, the conditional write refused: v1 checked S3 while it was
    /// current; before its create-only write lands, v2 is uploaded and published. v1's
    /// write is refused (412), it reads v2's result, asks S3 again and stands down.
    #[tokio::test]
    async fn publish_conflict_older_loses_the_race_and_stands_down() {
        let inner = std::sync::Arc::new(store());
        let v1 = upload(&inner, "one", true);
        let racing = Racing::new(inner.clone(), |inner| {
            let v2 = upload(&inner, "two", true);
            assert_eq!(block_on(publish(&*inner, &v2, "v2")), Published::Written);
        });
        let v2_now = inner.latest_versions("in").remove(0);
        let result = publish(&racing, &v1, "v1").await;
        let current = inner.latest_versions("in").remove(0);
        assert_ne!(
            current.version_id, v2_now.version_id,
            "v2 was uploaded in the race"
        );
        assert_eq!(
            result,
            Published::Superseded {
                by: format!("version {} (current in S3)", current.version_id.unwrap())
            }
        );
        assert_eq!(stored_marker(&inner), "v2");
        assert_eq!(
            racing.conditional_writes.lock().unwrap().as_slice(),
            ["IfAbsent -> refused"]
        );
    }

    /// Two publishers on one key, the other way round: v2 (current) checked S3; before its
    /// create-only write lands, a v1 publisher that had checked earlier writes its result.
    /// v2's write is refused, it reads v1's result and replaces it on its ETag.
    #[tokio::test]
    async fn publish_conflict_newer_replaces_what_the_older_wrote_meanwhile() {
        let inner = std::sync::Arc::new(store());
        let v1 = upload(&inner, "one", true);
        let v2 = upload(&inner, "two", true);
        let stale = body(&v1, "v1");
        let racing = Racing::new(inner.clone(), move |inner| {
            block_on(inner.put_if(
                "out",
                RESULT,
                stale,
                "application/json",
                WriteCondition::IfAbsent,
            ))
            .unwrap();
        });
        assert_eq!(publish(&racing, &v2, "v2").await, Published::Written);
        assert_eq!(stored_marker(&inner), "v2");
        let writes = racing.conditional_writes.lock().unwrap().clone();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[0], "IfAbsent -> refused");
        assert!(
            writes[1].starts_with("IfMatch(") && writes[1].ends_with("-> ok"),
            "{writes:?}"
        );
    }

    /// Two executions of the same version (a reconcile generation and a late event)
    /// publishing at once: the second finds the first's result and keeps its bytes.
    #[tokio::test]
    async fn publish_conflict_same_version_is_already_current() {
        let inner = std::sync::Arc::new(store());
        let v1 = upload(&inner, "one", true);
        let twin = v1.clone();
        let racing = Racing::new(inner.clone(), move |inner| {
            assert_eq!(
                block_on(publish(&*inner, &twin, "first")),
                Published::Written
            );
        });
        assert_eq!(
            publish(&racing, &v1, "second").await,
            Published::AlreadyCurrent
        );
        assert_eq!(stored_marker(&inner), "first");
    }
}
