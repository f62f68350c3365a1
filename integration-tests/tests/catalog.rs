//! End-to-end: the catalog table (one item per object version, written by load and
//! quarantine) and its stream consumer (per-prefix counters through an event source
//! mapping), read back with `pipeline catalog`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use integration_tests::{jpeg_with_orientation_6, run_cli, try_cli, TestPipeline};
use pipeline_aws::catalog::{Counters, DynamoCatalog, PrefixCounts};
use pipeline_core::catalog::CatalogStatus;
use serde_json::json;

fn counts_of(rows: &[PrefixCounts], prefix: &str) -> [i64; 3] {
    let row = rows.iter().find(|r| r.prefix == prefix);
    CatalogStatus::ALL.map(|s| row.and_then(|r| r.counts.get(&s).copied()).unwrap_or(0))
}

/// Polls the counters (the stream is consumed asynchronously) until `expected` holds.
async fn wait_for_counts(counters: &Counters, expected: &[(&str, [i64; 3])]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = counters.all().await?;
        if expected.iter().all(|(p, c)| counts_of(&rows, p) == *c) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("counters never reached {expected:?}: {rows:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_records_every_version_and_the_stream_consumer_counts_each_once() -> Result<()> {
    let stack = "catalog";
    let p = TestPipeline::start(stack).await?;
    for key in ["a/1.jpg", "a/2.jpg", "b/3.jpg"] {
        p.upload(key, jpeg_with_orientation_6(120, 80)?).await?;
    }
    p.upload("b/bad.jpg", b"\xFF\xD8\xFF\xE0 not really a jpeg".to_vec())
        .await?;
    p.settle(4).await?;

    let catalog = DynamoCatalog::new(
        p.local.clients.dynamodb.clone(),
        &p.local.stack.catalog_table,
    );
    let (versions, latest) = catalog.versions("b/bad.jpg").await?;
    assert_eq!(versions.len(), 1, "{versions:#?}");
    assert_eq!(versions[0].status, CatalogStatus::Quarantined);
    assert!(versions[0].error.is_some());
    assert_eq!(latest.map(|l| l.version), Some(versions[0].version.clone()));

    let counters = Counters::new(
        p.local.clients.dynamodb.clone(),
        &p.local.stack.counters_table,
    );
    wait_for_counts(&counters, &[("a", [2, 0, 0]), ("b", [1, 1, 0])]).await?;

    // The same stream record delivered twice (a retried batch) counts once.
    let record = json!({"Records": [{
        "eventID": "test-duplicate-1", "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": "1",
                     "NewImage": {"key": {"S": "c/x.jpg"}, "version": {"S": "v1"},
                                  "status": {"S": "processed"}}}}]});
    for _ in 0..2 {
        let out = p.invoke("counters", &record).await?;
        assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    }
    wait_for_counts(&counters, &[("c", [1, 0, 0])]).await?;

    let table = run_cli(&p, &["catalog", "--stack", stack])?;
    assert!(
        table.contains("total: prefixes=3 processed=4 quarantined=1 superseded=0"),
        "{table}"
    );
    let one = run_cli(&p, &["catalog", "--stack", stack, "a/1.jpg"])?;
    assert!(one.contains("status=processed"), "{one}");
    assert!(one.contains("latest"), "{one}");
    let none = try_cli(&p, &["catalog", "--stack", stack, "nope.jpg"])?;
    assert!(
        !none.success && none.stdout.contains("no version recorded"),
        "{none:?}"
    );

    // `pipeline cost` measures step durations from these executions.
    let bill = run_cli(
        &p,
        &[
            "cost",
            "--objects",
            "1000000",
            "--avg-megapixels",
            "12",
            "--stack",
            stack,
        ],
    )?;
    assert!(bill.contains("measured from 4 executions"), "{bill}");
    assert!(bill.contains("ExecutionAlreadyExists"), "{bill}");
    assert!(
        bill.contains("STANDARD") && bill.contains("EXPRESS"),
        "{bill}"
    );
    Ok(())
}
