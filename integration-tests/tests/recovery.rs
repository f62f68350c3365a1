//! End-to-end: what brings an object to its result when events go wrong. Out-of-order
//! delivery (an older event processed after a newer one), events that never arrived
//! (`pipeline backfill`, the reconcile function), executions that ended without a result
//! (the reconciler's next generation), all on the deployed stack on the emulator.
//!
//! The stacks here only notify for keys under `incoming/`: objects uploaded elsewhere get
//! no event, which is how a lost event is provoked (the emulator delivers every event
//! exactly once, see `../shared/EMULATOR.md`).

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Result};
use integration_tests::{jpeg_with_orientation_6, object_created_event, run_cli, TestPipeline};
use pipeline_aws::{ObjectLocation, ObjectRun, ObjectStore};
use pipeline_core::catalog::CatalogStatus;
use pipeline_core::naming::version_tag;
use pipeline_core::payload::{ExecutionInput, SourceObject};
use pipeline_core::report::ObjectStatus;
use serde_json::json;

/// Only `incoming/` keys notify ingest.
fn notify_only_incoming() -> Vec<(String, String)> {
    vec![("InputPrefix".into(), "incoming/".into())]
}

fn source_of(run: &ObjectRun) -> SourceObject {
    let input: ExecutionInput =
        serde_json::from_str(run.detail.input.as_deref().unwrap_or("null")).unwrap();
    input.source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_older_event_after_newer_never_overwrites_the_newer_result() -> Result<()> {
    let p = TestPipeline::start_with_parameters("rec-order", notify_only_incoming()).await?;
    let key = "held/photo.jpg";
    let mut versions = Vec::new();
    for (w, h) in [(120, 80), (90, 60)] {
        p.upload(key, jpeg_with_orientation_6(w, h)?).await?;
        let head = p
            .store
            .head(ObjectLocation::latest(p.input_bucket(), key))
            .await?;
        versions.push(head);
    }
    // AWS-shaped events; the sequencer grows with each write to the key.
    let event = |i: usize| {
        let v = &versions[i];
        let mut e = object_created_event(
            p.input_bucket(),
            key,
            v.size,
            v.etag.as_deref(),
            v.version_id.as_deref(),
        );
        e["Records"][0]["s3"]["object"]["sequencer"] = json!(format!("0055AED6DCD90281E{}", 5 + i));
        e
    };
    // The newer event is processed first, then the older one arrives.
    assert_eq!(p.invoke_ingest(&event(1)).await?["started"], 1);
    p.settle(1).await?;
    assert_eq!(p.invoke_ingest(&event(0)).await?["started"], 1);
    let runs = p.settle(2).await?;
    let run_of = |i: usize| {
        runs.iter()
            .find(|r| source_of(r).version_id == versions[i].version_id)
            .unwrap()
    };
    assert_eq!(run_of(1).status, ObjectStatus::Processed);
    assert!(
        matches!(&run_of(0).status, ObjectStatus::Superseded { by } if by.contains(versions[1].version_id.as_deref().unwrap())),
        "{:?}",
        run_of(0).status
    );
    let manifest = p.manifest(key).await?;
    assert_eq!(manifest.source.version_id, versions[1].version_id);
    assert_eq!((manifest.width, manifest.height), (90, 60));
    let newer_dir = format!("thumbnails/{key}/{}/", version_tag(&source_of(run_of(1)))?);
    let thumbs = p.list_output(&format!("thumbnails/{key}/")).await?;
    assert!(!thumbs.is_empty());
    assert!(
        thumbs.iter().all(|t| t.key.starts_with(&newer_dir)),
        "only the newer version's thumbnails are left: {thumbs:#?}"
    );
    for t in &manifest.outputs {
        p.output(&t.key).await?;
    }
    // The catalog agrees: both versions recorded, the key's latest item is the newer.
    let catalog = pipeline_aws::catalog::DynamoCatalog::new(
        p.local.clients.dynamodb.clone(),
        &p.local.stack.catalog_table,
    );
    let (items, latest) = catalog.versions(key).await?;
    let status_of = |i: usize| {
        items
            .iter()
            .find(|e| Some(e.version.as_str()) == versions[i].version_id.as_deref())
            .map(|e| e.status)
    };
    assert_eq!(status_of(1), Some(CatalogStatus::Processed), "{items:#?}");
    assert_eq!(status_of(0), Some(CatalogStatus::Superseded), "{items:#?}");
    assert_eq!(
        latest.map(|l| l.version),
        versions[1].version_id.clone(),
        "a stale event never replaces the latest item"
    );

    // Both events again, in reversed order: no new execution, the same outputs.
    let before = p.list_output("").await?;
    for i in [0, 1] {
        let report = p.invoke_ingest(&event(i)).await?;
        assert_eq!(
            (report["started"].as_u64(), report["duplicates"].as_u64()),
            (Some(0), Some(1)),
            "{report}"
        );
    }
    assert_eq!(p.runs_now().await?.len(), 2);
    let after = p.list_output("").await?;
    let ids = |l: &[pipeline_aws::ListedObject]| {
        l.iter()
            .map(|o| (o.key.clone(), o.etag.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_backfill_processes_200_existing_objects_once_and_a_rerun_starts_nothing(
) -> Result<()> {
    let p = TestPipeline::start_with_parameters("rec-backfill", notify_only_incoming()).await?;
    const N: usize = 200;
    let jpeg = jpeg_with_orientation_6(64, 48)?;
    let mut uploads = tokio::task::JoinSet::new();
    for writer in 0..16 {
        let store = p.store.clone();
        let bucket = p.input_bucket().to_string();
        let jpeg = jpeg.clone();
        uploads.spawn(async move {
            for i in (writer..N).step_by(16) {
                // Every tenth object is not an image: it must end quarantined, once.
                let (key, body) = if i % 10 == 9 {
                    (format!("existing/{i:03}.jpg"), b"not an image".to_vec())
                } else {
                    (format!("existing/{i:03}.jpg"), jpeg.clone())
                };
                store
                    .put(&bucket, &key, body, "application/octet-stream")
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = uploads.join_next().await {
        r??;
    }
    assert!(
        p.runs_now().await?.is_empty(),
        "no event for existing/ keys"
    );

    let url = format!("s3://{}/existing/", p.input_bucket());
    let first = run_cli(&p, &["backfill", &url, "--stack", "rec-backfill"])?;
    assert!(first.contains(" started=200 "), "{first}");
    let runs = p.settle(N).await?;
    let mut keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), N, "each object exactly once");
    let processed = runs
        .iter()
        .filter(|r| r.status == ObjectStatus::Processed)
        .count();
    let quarantined = runs
        .iter()
        .filter(|r| matches!(&r.status, ObjectStatus::Quarantined { error } if error == "UnsupportedType"))
        .count();
    assert_eq!((processed, quarantined), (180, 20));

    let second = run_cli(&p, &["backfill", &url, "--stack", "rec-backfill"])?;
    assert!(second.contains(" started=0 "), "{second}");
    assert!(second.contains(" has_result=200 "), "{second}");
    assert_eq!(p.runs_now().await?.len(), N);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reconcile_function_starts_lost_objects_and_restarts_failed_ones_once(
) -> Result<()> {
    let p = TestPipeline::start_with_parameters("rec-reconcile", notify_only_incoming()).await?;
    let now = json!({"grace_seconds": 0});
    p.upload("lost/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    // The default grace period leaves a fresh object to its (lost) event.
    let early = p.invoke("reconcile", &json!({})).await?;
    assert_eq!(early["too_recent"], 1, "{early}");
    assert_eq!(early["started"], json!([]), "{early}");

    let first = p.invoke("reconcile", &now).await?;
    assert_eq!(
        first["started"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let runs = p.settle(1).await?;
    assert_eq!(runs[0].status, ObjectStatus::Processed);
    let again = p.invoke("reconcile", &now).await?;
    assert_eq!(again["started"], json!([]), "{again}");
    assert_eq!(again["has_result"], 1, "{again}");

    // An execution that ends without a result (here: inspect and quarantine crash, so
    // the execution FAILS) is started again under the next generation of its name.
    for f in ["inspect", "quarantine"] {
        p.configure_function(f, &[("PIPELINE_FAULT", Some("crash"))], None)
            .await?;
    }
    p.upload("lost/b.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let started = p.invoke("reconcile", &now).await?;
    let first_name = started["started"][0]
        .as_str()
        .unwrap_or_else(|| panic!("reconcile started nothing for lost/b.jpg: {started}"))
        .to_string();
    let runs = p.settle(2).await?;
    let failed = runs.iter().find(|r| r.key == "lost/b.jpg").unwrap();
    assert!(
        matches!(&failed.status, ObjectStatus::Failed { .. }),
        "{:?}",
        failed.status
    );
    for f in ["inspect", "quarantine"] {
        p.configure_function(f, &[("PIPELINE_FAULT", None)], None)
            .await?;
    }
    let restarted = p.invoke("reconcile", &now).await?;
    assert_eq!(
        restarted["started"],
        json!([format!("{first_name}-g1")]),
        "{restarted}"
    );
    let runs = p.settle(3).await?;
    let b: Vec<_> = runs.iter().filter(|r| r.key == "lost/b.jpg").collect();
    assert!(
        b.iter().any(|r| r.status == ObjectStatus::Processed),
        "{b:#?}"
    );
    let last = p.invoke("reconcile", &now).await?;
    assert_eq!(last["started"], json!([]), "{last}");
    assert_eq!(last["has_result"], 2, "{last}");
    Ok(())
}

/// The ingest failure queue's messages, as `pipeline failed-events` lists them.
fn failed_events(p: &TestPipeline, stack: &str, replay: bool) -> Result<String> {
    let mut args = vec!["failed-events", "--stack", stack];
    if replay {
        args.push("--replay");
    }
    run_cli(p, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_ingest_failure_lands_in_the_failure_queue_and_replay_is_idempotent() -> Result<()> {
    let stack = "fault-ingest";
    let p = TestPipeline::start(stack).await?;
    p.configure_function("ingest", &[("PIPELINE_FAULT", Some("crash"))], None)
        .await?;
    p.upload("queued/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    // Lambda retries the asynchronous invocation (twice), then sends it to the queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let listing = loop {
        let listing = failed_events(&p, stack, false)?;
        if listing.contains("listed=1 ") {
            break listing;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the failed event never reached the queue: {listing}\n{}",
                p.local.emulator.log_tail(40)
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    assert!(listing.contains("queued/a.jpg"), "{listing}");
    assert!(p.runs_now().await?.is_empty());

    p.configure_function("ingest", &[("PIPELINE_FAULT", None)], None)
        .await?;
    // The listing hid the message for a few seconds; wait until it is visible again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let replayed = loop {
        let out = failed_events(&p, stack, true)?;
        if out.contains("replayed=1 ") || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    assert!(
        replayed.contains("listed=1 replayed=1 failed=0"),
        "{replayed}"
    );
    let runs = p.settle(1).await?;
    assert_eq!(runs[0].status, ObjectStatus::Processed);
    // Replaying the same event again starts nothing: the execution name is taken.
    let event = p.recorded_event("queued/a.jpg").await?;
    let report = p.invoke_ingest(&event).await?;
    assert_eq!(report["duplicates"], 1, "{report}");
    assert!(failed_events(&p, stack, true)?.contains("listed=0 "));
    assert_eq!(p.runs_now().await?.len(), 1);
    Ok(())
}

/// Task failures of the only execution for `key`, as the history records them.
async fn failures_of(p: &TestPipeline, run: &ObjectRun) -> Result<Vec<String>> {
    Ok(p.executions
        .task_failures(&run.detail.summary.arn)
        .await
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|(error, _)| error)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_function_that_always_crashes_is_retried_then_quarantined() -> Result<()> {
    let p = TestPipeline::start("fault-crash").await?;
    p.configure_function("transform", &[("PIPELINE_FAULT", Some("crash"))], None)
        .await?;
    p.upload("crash/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let runs = p.settle(1).await?;
    let run = &runs[0];
    assert_eq!(
        run.status,
        ObjectStatus::Quarantined {
            error: "Runtime.ExitError".into()
        },
        "{}",
        p.local.emulator.log_tail(30)
    );
    // One attempt and two retries (state-machine/README.md, Retry 3).
    let failures = failures_of(&p, run).await?;
    assert_eq!(failures, vec!["Runtime.ExitError"; 3], "{failures:?}");
    assert!(p.quarantine_report("crash/a.jpg").await?.copy.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_function_that_hangs_times_out_then_is_quarantined() -> Result<()> {
    let p = TestPipeline::start("fault-hang").await?;
    p.configure_function("transform", &[("PIPELINE_FAULT", Some("hang"))], Some(2))
        .await?;
    p.upload("hang/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let runs = p.settle(1).await?;
    assert_eq!(
        runs[0].status,
        ObjectStatus::Quarantined {
            error: "Sandbox.Timedout".into()
        }
    );
    let failures = failures_of(&p, &runs[0]).await?;
    assert_eq!(failures, vec!["Sandbox.Timedout"; 3], "{failures:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_crash_is_retried_and_recovers_once_the_function_is_fixed() -> Result<()> {
    // Real retry backoff (2 s, then 4 s), so the fix lands between two attempts.
    let p = TestPipeline::start_with("fault-recover", Vec::new(), integration_tests::Waits::Real)
        .await?;
    p.configure_function("transform", &[("PIPELINE_FAULT", Some("crash"))], None)
        .await?;
    p.upload("recover/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let runs = p.runs_now().await?;
        if let Some(run) = runs.first() {
            if !failures_of(&p, run).await?.is_empty() {
                break;
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("transform never failed: {}", p.local.emulator.log_tail(30));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    p.configure_function("transform", &[("PIPELINE_FAULT", None)], None)
        .await?;
    let runs = p.settle(1).await?;
    assert_eq!(runs[0].status, ObjectStatus::Processed, "{:?}", runs[0]);
    let failures = failures_of(&p, &runs[0]).await?;
    assert!(
        !failures.is_empty() && failures.iter().all(|e| e == "Runtime.ExitError"),
        "{failures:?}"
    );
    assert!(
        runs[0].path().contains("Transform > Load"),
        "{}",
        runs[0].path()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_throttled_to_one_concurrent_invocation_still_completes_every_object() -> Result<()>
{
    let p = TestPipeline::start_with("fault-throttle", Vec::new(), integration_tests::Waits::Real)
        .await?;
    for f in ["inspect", "transform", "load", "quarantine"] {
        p.set_reserved_concurrency(f, 1).await?;
    }
    const N: usize = 8;
    let jpeg = jpeg_with_orientation_6(200, 150)?;
    // Uploads 300 ms apart, all in flight together. MiniStack ignores `JitterStrategy`,
    // so executions started in the same instant would retry in lockstep and collide on
    // every attempt; on AWS the jitter spreads them (see state-machine/README.md).
    for i in 0..N {
        p.upload(&format!("throttle/{i}.jpg"), jpeg.clone()).await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let runs = p.settle(N).await?;
    let mut throttled = 0;
    for run in &runs {
        assert_eq!(
            run.status,
            ObjectStatus::Processed,
            "{}: {:?}",
            run.key,
            run.status
        );
        throttled += failures_of(&p, run).await?.len();
    }
    eprintln!("throttle: {N} objects processed with concurrency 1; {throttled} throttled task attempts retried");
    Ok(())
}

/// Polls the execution of `key` until it has entered `state` (it is then RUNNING there).
async fn wait_until_in_state(p: &TestPipeline, key: &str, state: &str) -> Result<ObjectRun> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(run) = p.runs_now().await?.into_iter().find(|r| r.key == key) {
            let events = p
                .executions
                .state_events(&run.detail.summary.arn)
                .await
                .map_err(anyhow::Error::msg)?;
            if events.iter().any(|e| e.entered && e.state == state) {
                return Ok(run);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("the execution of {key} never entered {state}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_emulator_restarted_mid_execution_is_recovered_by_the_reconciler() -> Result<()> {
    let mut p = TestPipeline::start_persistent("fault-restart").await?;
    // Transform hangs (for up to its 60 s timeout), so the execution is mid-step when the
    // emulator goes down.
    p.configure_function("transform", &[("PIPELINE_FAULT", Some("hang"))], Some(60))
        .await?;
    p.upload("restart/a.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let before = wait_until_in_state(&p, "restart/a.jpg", "Transform").await?;
    assert_eq!(before.detail.summary.status, "RUNNING");

    p.restart_emulator().await?;

    // What persisted: the stack, the object, the execution. An execution that was running
    // cannot resume; MiniStack ends it FAILED with States.ServiceRestart (AWS itself never
    // restarts, but an execution can end without a result in many ways: this is one).
    let after = p
        .executions
        .describe(&before.detail.summary.arn)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(after.summary.status, "FAILED", "{after:?}");
    assert_eq!(
        after.error.as_deref(),
        Some("States.ServiceRestart"),
        "{after:?}"
    );
    assert!(
        p.manifest("restart/a.jpg").await.is_err(),
        "no result may exist yet"
    );

    // The operator fixes the function; the reconciler's next pass finds a version with
    // no result whose execution ended and starts the next generation of its name.
    p.configure_function("transform", &[("PIPELINE_FAULT", None)], Some(60))
        .await?;
    let now = json!({"grace_seconds": 0});
    let started = p.invoke("reconcile", &now).await?;
    assert_eq!(
        started["started"],
        json!([format!("{}-g1", before.detail.summary.name)]),
        "{started}"
    );
    let runs = p.settle(2).await?;
    let processed: Vec<_> = runs
        .iter()
        .filter(|r| r.status == ObjectStatus::Processed)
        .collect();
    assert_eq!(processed.len(), 1, "{runs:#?}");
    let manifest = p.manifest("restart/a.jpg").await?;
    assert_eq!(manifest.source.key, "restart/a.jpg");
    let again = p.invoke("reconcile", &now).await?;
    assert_eq!(again["started"], json!([]), "{again}");
    assert_eq!(again["has_result"], 1, "{again}");
    Ok(())
}
