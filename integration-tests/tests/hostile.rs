//! End-to-end: hostile and broken uploads through the deployed stack on the emulator.
//! Every object ends processed or quarantined with its named error and a report; no
//! execution FAILS or hangs; no output key leaves its prefix. Events S3 would never send
//! (a bad escape, an unknown major version, a 1,025-byte key) are rejected by ingest as
//! `InvalidEvent` and start nothing.
//!
//! Uses Pillow's own hostile test images (decompression bombs, truncated and broken
//! files), downloaded at test-prep time into `.pipeline/cache/` (see
//! `integration_tests::hostile::pillow_images`).

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use anyhow::Result;
use integration_tests::hostile::{self, Expected, HostileCase, PILLOW_CASES};
use integration_tests::{object_created_event, TestPipeline};
use pipeline_core::payload::{QuarantineOutput, QuarantineReport};
use pipeline_core::report::ObjectStatus;
use serde_json::json;

const MAX_OBJECT_BYTES: u64 = 1024 * 1024;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_end_processed_or_quarantined_and_nothing_fails() -> Result<()> {
    let images = hostile::pillow_images(workspace())?;
    let mut cases = hostile::cases(MAX_OBJECT_BYTES);
    for (name, expected) in PILLOW_CASES {
        cases.push(HostileCase {
            what: name,
            key: format!("hostile/pillow/{name}"),
            body: std::fs::read(images.join(name))?,
            expected,
        });
    }
    let p = TestPipeline::start_with_parameters(
        "e2e-hostile",
        vec![("MaxObjectBytes".into(), MAX_OBJECT_BYTES.to_string())],
    )
    .await?;
    for case in &cases {
        p.upload(&case.key, case.body.clone()).await?;
    }
    let runs = p.settle(cases.len()).await?;

    let mut wrong = Vec::new();
    for case in &cases {
        let Some(run) = runs.iter().find(|r| r.key == case.key) else {
            wrong.push(format!("{}: no execution for {:?}", case.what, case.key));
            continue;
        };
        let status = &run.detail.summary.status;
        if status != "SUCCEEDED" {
            wrong.push(format!("{}: execution {status}", case.what));
            continue;
        }
        match (&case.expected, &run.status) {
            (Expected::Processed, ObjectStatus::Processed) => {}
            (Expected::Quarantined(error), ObjectStatus::Quarantined { error: got })
                if got == error =>
            {
                // The report's key comes from the execution output: a hostile key's
                // outputs are hashed, not mirrored.
                let output: QuarantineOutput =
                    serde_json::from_str(run.detail.output.as_deref().unwrap_or("null"))?;
                let report: QuarantineReport =
                    serde_json::from_slice(&p.output(&output.report.key).await?)?;
                assert_eq!(report.error, *error, "{}", case.what);
                assert!(!report.cause.is_empty(), "{}", case.what);
                assert_eq!(report.source.key, case.key, "{}", case.what);
                let copy = report.copy.expect("the source is copied aside");
                assert_eq!(p.output(&copy.key).await?, case.body, "{}", case.what);
            }
            (expected, got) => {
                wrong.push(format!("{}: expected {expected:?}, got {got:?}", case.what))
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) ended wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    for object in p.list_output("").await? {
        let key = &object.key;
        let inside = [
            "thumbnails/",
            "manifests/",
            "quarantine/objects/",
            "quarantine/reports/",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix));
        assert!(inside, "output {key:?} is outside the pipeline's prefixes");
        assert!(
            !key.split('/').any(|s| s == ".." || s == "."),
            "output {key:?} has a dot segment"
        );
        assert!(
            !key.chars().any(|c| c.is_control() || c == '\\'),
            "output {key:?}"
        );
    }

    // Events S3 does not send: rejected by ingest, nothing started.
    let mut bad_escape = object_created_event(p.input_bucket(), "x.jpg", 10, None, Some("v1"));
    bad_escape["Records"][0]["s3"]["object"]["key"] = json!("bad%zz.jpg");
    let mut future = object_created_event(p.input_bucket(), "y.jpg", 10, None, Some("v1"));
    future["Records"][0]["eventVersion"] = json!("3.0");
    let mut too_long = object_created_event(p.input_bucket(), "z.jpg", 10, None, Some("v1"));
    too_long["Records"][0]["s3"]["object"]["key"] = json!("k".repeat(1025));
    for (what, event) in [
        ("invalid escape", bad_escape),
        ("event version 3.0", future),
        ("1,025-byte key", too_long),
    ] {
        let err = p.invoke_ingest(&event).await.expect_err(what);
        assert!(err.to_string().contains("InvalidEvent"), "{what}: {err:#}");
    }
    assert_eq!(
        p.runs_now().await?.len(),
        cases.len(),
        "no execution started by them"
    );
    Ok(())
}
