//! Publishing a key's result (manifest or quarantine report) so that an older event never
//! overwrites a newer result: read, decide by `sequencer` ([`pipeline_core::ordering`]),
//! write conditionally on the ETag read, and start over when another writer got there first.

use pipeline_aws::{ObjectStore, StoreError, WriteCondition};
use pipeline_core::ordering::{decide, Decision};
use pipeline_core::payload::SourceObject;
use pipeline_core::PipelineError;
use serde::Deserialize;
use tracing::{info, warn};

use crate::from_store;

/// How many read-decide-write rounds before giving up with `Transient` (the state
/// machine then retries the whole step). Each lost round means another version of the
/// key was published meanwhile, so more than a few means something is wrong.
pub const MAX_ROUNDS: usize = 5;

/// A manifest or report is small; a bigger object at its key is not ours to parse.
const MAX_RESULT_BYTES: u64 = 1024 * 1024;

/// What happened to the result a step tried to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Written (created, or replaced a result for an older version).
    Written,
    /// A result for this very version was already there (a retried step): left as it is,
    /// so the stored bytes are the first write's.
    AlreadyCurrent,
    /// A newer write to the key holds the result; nothing was written.
    Superseded { by: String },
}

/// The part of a manifest or report that says which version it describes. Any schema
/// version of either has it.
#[derive(Deserialize)]
struct RecordedSource {
    source: SourceObject,
}

/// Publishes `body` at `bucket/key` as the result for `source`, unless a result for a
/// newer version of the same source key is already there.
pub async fn publish_result(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    body: &[u8],
    source: &SourceObject,
) -> Result<Published, PipelineError> {
    for round in 1..=MAX_ROUNDS {
        let current = store
            .read_current(bucket, key, MAX_RESULT_BYTES)
            .await
            .map_err(from_store)?;
        let recorded = current.as_ref().and_then(|c| {
            serde_json::from_slice::<RecordedSource>(&c.body)
                .map_err(|e| warn!(bucket, key, error = %e, "existing result is unreadable; replacing it"))
                .ok()
                .map(|r| r.source)
        });
        let condition = match &current {
            None => WriteCondition::IfAbsent,
            Some(c) => match &c.etag {
                Some(etag) => WriteCondition::IfMatch(etag.clone()),
                None => {
                    return Err(PipelineError::transient(format!(
                        "s3://{bucket}/{key} was read without an ETag"
                    )))
                }
            },
        };
        match decide(recorded.as_ref(), source) {
            Decision::Rewrite => return Ok(Published::AlreadyCurrent),
            Decision::Superseded { current } => {
                info!(bucket, key, current = %current, "a newer version holds the result");
                return Ok(Published::Superseded { by: current });
            }
            Decision::Write => {}
        }
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
    use pipeline_aws::MemoryStore;

    fn source(version: &str, sequencer: &str) -> SourceObject {
        SourceObject {
            bucket: "in".into(),
            key: "a.jpg".into(),
            version_id: Some(version.into()),
            sequencer: Some(sequencer.into()),
            etag: None,
            size: None,
        }
    }

    fn body(s: &SourceObject, marker: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "source": s, "marker": marker })).unwrap()
    }

    async fn publish(store: &MemoryStore, s: &SourceObject, marker: &str) -> Published {
        publish_result(store, "out", "manifests/a.jpg.json", &body(s, marker), s)
            .await
            .unwrap()
    }

    fn stored_marker(store: &MemoryStore) -> String {
        let (bytes, _) = store.object("out", "manifests/a.jpg.json").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["marker"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn publish_in_order_newer_replaces_older() {
        let store = MemoryStore::new();
        assert_eq!(
            publish(&store, &source("v1", "01"), "old").await,
            Published::Written
        );
        assert_eq!(
            publish(&store, &source("v2", "02"), "new").await,
            Published::Written
        );
        assert_eq!(stored_marker(&store), "new");
    }

    #[tokio::test]
    async fn publish_reversed_older_never_overwrites_newer() {
        let store = MemoryStore::new();
        assert_eq!(
            publish(&store, &source("v2", "02"), "new").await,
            Published::Written
        );
        assert_eq!(
            publish(&store, &source("v1", "01"), "old").await,
            Published::Superseded {
                by: "version v2 (sequencer 02)".into()
            }
        );
        assert_eq!(stored_marker(&store), "new");
    }

    #[tokio::test]
    async fn publish_same_version_again_keeps_first_bytes() {
        let store = MemoryStore::new();
        let s = source("v1", "01");
        assert_eq!(publish(&store, &s, "first").await, Published::Written);
        assert_eq!(
            publish(&store, &s, "retry").await,
            Published::AlreadyCurrent
        );
        assert_eq!(stored_marker(&store), "first");
    }

    #[tokio::test]
    async fn publish_replaces_an_unreadable_result() {
        let store = MemoryStore::new();
        store.insert("out", "manifests/a.jpg.json", b"not json".to_vec());
        assert_eq!(
            publish(&store, &source("v1", "01"), "ok").await,
            Published::Written
        );
        assert_eq!(stored_marker(&store), "ok");
    }
}
