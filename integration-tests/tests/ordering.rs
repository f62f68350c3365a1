//! End-to-end: a key's result always names the key's newest version, whoever started the
//! execution, on the deployed stack and the emulator's S3. Reconcile-style starts carry no
//! sequencer; events are invoked by hand (the emulator delivers each exactly once); two
//! publishers race on one key through S3 conditional writes.
//!
//! Keys live under `held/`, which does not notify ingest (`InputPrefix=incoming/`), so
//! nothing starts unless the test starts it.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::Result;
use integration_tests::{jpeg_with_orientation_6, TestPipeline};
use pipeline_aws::reconcile::{start_version, StartResult};
use pipeline_aws::{ObjectLocation, ObjectStore, SfnStarter, StoreError, WriteCondition};
use pipeline_core::event::object_created_notification;
use pipeline_core::payload::{ExecutionInput, SourceObject};
use pipeline_core::report::ObjectStatus;
use pipeline_lambda::publish::{publish_result, Published};

fn held_stack() -> Vec<(String, String)> {
    vec![("InputPrefix".into(), "incoming/".into())]
}

/// Uploads a version of `key` and returns it as an execution's source: evented (with the
/// event's fields) or as the reconciler lists it (no sequencer).
async fn upload(p: &TestPipeline, key: &str, w: u32, h: u32) -> Result<SourceObject> {
    p.upload(key, jpeg_with_orientation_6(w, h)?).await?;
    let head = p
        .store
        .head(ObjectLocation::latest(p.input_bucket(), key))
        .await?;
    Ok(SourceObject {
        bucket: p.input_bucket().to_string(),
        key: key.to_string(),
        version_id: head.version_id,
        sequencer: None,
        etag: head.etag.map(|e| e.trim_matches('"').to_string()),
        size: Some(head.size),
    })
}

/// The event S3 would send for `source`, with a sequencer.
fn event_of(source: &SourceObject, sequencer: &str) -> serde_json::Value {
    let evented = SourceObject {
        sequencer: Some(sequencer.to_string()),
        ..source.clone()
    };
    object_created_notification(&evented, None).unwrap()
}

/// Starts `source` as the reconciler (or backfill) does: by name, without a sequencer.
async fn reconcile_start(p: &TestPipeline, source: &SourceObject) -> Result<()> {
    let starter = SfnStarter::new(
        p.local.clients.sfn.clone(),
        &p.local.stack.state_machine_arn,
    );
    let r = start_version(&starter, source, 5, None).await;
    assert!(matches!(r, StartResult::Started { .. }), "{r:?}");
    Ok(())
}

fn status_of(runs: &[pipeline_aws::ObjectRun], source: &SourceObject) -> ObjectStatus {
    runs.iter()
        .find(|r| {
            let input: ExecutionInput =
                serde_json::from_str(r.detail.input.as_deref().unwrap_or("null")).unwrap();
            input.source.version_id == source.version_id
        })
        .map(|r| r.status.clone())
        .unwrap_or_else(|| panic!("no execution of {:?}", source.version_id))
}

/// Reconciled v1 against evented v2, in both finishing orders, and v1's event delivered
/// again after v2 was published: the manifest (and the catalog's latest item) name v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_reconciled_and_evented_versions_in_both_orders_end_on_the_newest() -> Result<()> {
    let p = TestPipeline::start_with_parameters("ord-starters", held_stack()).await?;
    let catalog = pipeline_aws::catalog::DynamoCatalog::new(
        p.local.clients.dynamodb.clone(),
        &p.local.stack.catalog_table,
    );
    // Order 1: evented v2 finishes first, then the reconciled v1.
    let key = "held/first.jpg";
    let v1 = upload(&p, key, 120, 80).await?;
    let v2 = upload(&p, key, 90, 60).await?;
    assert_eq!(
        p.invoke_ingest(&event_of(&v2, "0055AED6DCD90281E6"))
            .await?["started"],
        1
    );
    p.settle(1).await?;
    reconcile_start(&p, &v1).await?;
    let runs = p.settle(2).await?;
    assert_eq!(status_of(&runs, &v2), ObjectStatus::Processed);
    assert!(
        matches!(status_of(&runs, &v1), ObjectStatus::Superseded { .. }),
        "{:?}",
        status_of(&runs, &v1)
    );
    assert_eq!(p.manifest(key).await?.source.version_id, v2.version_id);
    // v1's event, delivered again hours later with a larger sequencer: its execution
    // name is taken (reconcile started it), so nothing runs, and nothing changes.
    let late = p
        .invoke_ingest(&event_of(&v1, "FFFFFFFFFFFFFFFFFF"))
        .await?;
    assert_eq!(late["started"], 0, "{late}");
    assert_eq!(p.runs_now().await?.len(), 2);
    assert_eq!(p.manifest(key).await?.source.version_id, v2.version_id);
    assert_eq!(
        catalog.versions(key).await?.1.map(|l| l.version),
        v2.version_id
    );

    // Order 2: the reconciled v1 finishes first, then evented v2.
    let key = "held/second.jpg";
    let v1 = upload(&p, key, 120, 80).await?;
    let v2 = upload(&p, key, 90, 60).await?;
    reconcile_start(&p, &v1).await?;
    p.settle(3).await?;
    assert_eq!(
        p.invoke_ingest(&event_of(&v2, "0055AED6DCD90281E6"))
            .await?["started"],
        1
    );
    let runs = p.settle(4).await?;
    assert!(matches!(
        status_of(&runs, &v1),
        ObjectStatus::Superseded { .. }
    ));
    assert_eq!(status_of(&runs, &v2), ObjectStatus::Processed);
    let manifest = p.manifest(key).await?;
    assert_eq!(manifest.source.version_id, v2.version_id);
    assert_eq!((manifest.width, manifest.height), (90, 60));
    assert_eq!(
        catalog.versions(key).await?.1.map(|l| l.version),
        v2.version_id
    );
    Ok(())
}

/// The emulator's S3 honours the conditional writes publishing relies on, and eight
/// publishers racing on one key (six for the current version, two for an older one)
/// converge on one write of the current version: the others lose a conditional write
/// (412), read, and stand down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_conditional_writes_on_the_emulator_converge_on_the_current_version() -> Result<()>
{
    let p = TestPipeline::start_with_parameters("ord-race", held_stack()).await?;
    let out = p.output_bucket().to_string();
    let store = &p.store;

    // The two preconditions, as S3 answers them.
    let probe = "manifests/probe.json";
    store
        .put_if(
            &out,
            probe,
            b"1".to_vec(),
            "application/json",
            WriteCondition::IfAbsent,
        )
        .await?;
    let refused = store
        .put_if(
            &out,
            probe,
            b"2".to_vec(),
            "application/json",
            WriteCondition::IfAbsent,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::PreconditionFailed { .. })),
        "If-None-Match: * on an existing key: {refused:?}"
    );
    let stale = store
        .put_if(
            &out,
            probe,
            b"3".to_vec(),
            "application/json",
            WriteCondition::IfMatch("\"00000000000000000000000000000000\"".into()),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed { .. })),
        "If-Match with a stale ETag: {stale:?}"
    );
    let current = store.read_current(&out, probe, 1024).await?.unwrap();
    store
        .put_if(
            &out,
            probe,
            b"4".to_vec(),
            "application/json",
            WriteCondition::IfMatch(current.etag.unwrap()),
        )
        .await?;

    // The race.
    let key = "held/raced.jpg";
    let v1 = upload(&p, key, 120, 80).await?;
    let v2 = upload(&p, key, 90, 60).await?;
    let result_key = "manifests/held/raced.jpg.json";
    let publishers = (0..8).map(|i| {
        let source = if i % 4 == 3 { v1.clone() } else { v2.clone() };
        let body =
            serde_json::to_vec(&serde_json::json!({"source": source, "publisher": i})).unwrap();
        let (store, out) = (&p.store, out.clone());
        async move {
            let published = publish_result(store, &out, result_key, &body, &source).await;
            (source.version_id.clone(), published)
        }
    });
    let results = futures_util::future::join_all(publishers).await;
    let written = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Published::Written)))
        .count();
    assert_eq!(written, 1, "{results:#?}");
    for (version, r) in &results {
        match r {
            Ok(Published::Written | Published::AlreadyCurrent) => {
                assert_eq!(version, &v2.version_id)
            }
            Ok(Published::Superseded { .. }) => assert_eq!(version, &v1.version_id),
            Err(e) => panic!("publisher failed: {e}"),
        }
    }
    let stored = p.output(result_key).await?;
    let stored: serde_json::Value = serde_json::from_slice(&stored)?;
    assert_eq!(
        stored["source"]["version_id"].as_str(),
        v2.version_id.as_deref()
    );
    Ok(())
}
