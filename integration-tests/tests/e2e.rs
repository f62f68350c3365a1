//! End-to-end: the deployed pipeline on the embedded emulator, checked the way a user
//! would check it, by looking in the buckets and at the executions.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::Result;
use integration_tests::{jpeg_with_orientation_6, photo, TestPipeline};
use pipeline_core::image_info::{sha256_hex, ImageFormat};
use pipeline_core::naming::version_tag;
use pipeline_core::report::ObjectStatus;
use serde_json::json;

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("thumbnail decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_real_photos_and_png_get_every_thumbnail_and_a_manifest() -> Result<()> {
    let p = TestPipeline::start("e2e-photos").await?;
    let mut uploads = Vec::new();
    for (name, key) in [
        ("firstgeneration.jpg", "photos/firstgeneration.jpg"),
        ("the-mouse.jpg", "photos/the-mouse.jpg"),
        ("desert.png", "art/desert.png"),
    ] {
        let (_, bytes) = photo(name)?;
        p.upload(key, bytes.clone()).await?;
        uploads.push((key.to_string(), bytes));
    }
    let rotated = jpeg_with_orientation_6(600, 400)?;
    p.upload("phone/rotated.jpg", rotated.clone()).await?;
    uploads.push(("phone/rotated.jpg".into(), rotated));

    let runs = p.settle(uploads.len()).await?;
    for run in &runs {
        assert_eq!(
            run.status,
            ObjectStatus::Processed,
            "{}: {:?}",
            run.key,
            run.detail
        );
        assert_eq!(
            run.path(),
            "Inspect > IsSupported > Transform > Load",
            "{}",
            run.key
        );
    }
    for (key, bytes) in &uploads {
        let original = decode(bytes);
        let m = p.manifest(key).await?;
        assert_eq!(m.source.key, *key);
        assert_eq!(m.source.bucket, p.input_bucket());
        assert!(
            m.source.version_id.is_some(),
            "versioned input bucket gives a versionId"
        );
        assert_eq!(m.sha256, sha256_hex(bytes));
        assert_eq!(m.size_bytes, bytes.len() as u64);
        assert_eq!((m.width, m.height), (original.width(), original.height()));
        let expected_format = if key.ends_with(".png") {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg
        };
        assert_eq!(m.format, expected_format);
        let sizes: Vec<u32> = m.outputs.iter().map(|o| o.size).collect();
        assert_eq!(sizes, vec![1024, 256], "{key}");
        // Displayed orientation: EXIF 6 swaps the axes.
        let (dw, dh) = if m.orientation == 6 {
            (m.height, m.width)
        } else {
            (m.width, m.height)
        };
        for out in &m.outputs {
            let thumb = decode(&p.output(&out.key).await?);
            let tag = version_tag(&m.source)?;
            assert_eq!(out.key, format!("thumbnails/{key}/{tag}/{}.jpg", out.size));
            assert_eq!(
                (thumb.width(), thumb.height()),
                (out.width, out.height),
                "{}",
                out.key
            );
            assert_eq!(
                thumb.width().max(thumb.height()),
                out.size.min(dw.max(dh)),
                "{}",
                out.key
            );
            assert_eq!(
                thumb.width() > thumb.height(),
                dw > dh,
                "orientation of {}",
                out.key
            );
            assert_eq!(p.output(&out.key).await?.len() as u64, out.bytes);
        }
    }
    let rotated = p.manifest("phone/rotated.jpg").await?;
    assert_eq!(rotated.orientation, 6);
    assert!(
        rotated.outputs.iter().all(|o| o.height > o.width),
        "EXIF rotation applied"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_broken_inputs_are_quarantined_with_the_right_error() -> Result<()> {
    let p = TestPipeline::start("e2e-broken").await?;
    let (_, photo_bytes) = photo("the-mouse.jpg")?;
    let cases = [
        (
            "bad/truncated.jpg",
            photo_bytes[..photo_bytes.len() / 2].to_vec(),
            "InvalidImage",
        ),
        (
            "bad/notes.jpg",
            b"these are my notes, not a photo\n".to_vec(),
            "UnsupportedType",
        ),
        (
            "bad/page.jpg",
            b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            "UnsupportedType",
        ),
        ("bad/empty.jpg", Vec::new(), "EmptyObject"),
    ];
    for (key, body, _) in &cases {
        p.upload(key, body.clone()).await?;
    }
    let runs = p.settle(cases.len()).await?;
    for (key, body, error) in &cases {
        let run = runs
            .iter()
            .find(|r| r.key == *key)
            .expect("an execution per object");
        assert_eq!(
            run.status,
            ObjectStatus::Quarantined {
                error: error.to_string()
            },
            "{key}"
        );
        assert_eq!(
            run.detail.summary.status, "SUCCEEDED",
            "quarantine is a handled outcome"
        );
        let report = p.quarantine_report(key).await?;
        assert_eq!(report.error, *error, "{key}");
        assert!(!report.cause.is_empty());
        assert_eq!(report.execution_name, run.detail.summary.name);
        let copy = report.copy.expect("source copied to quarantine");
        assert_eq!(
            p.output(&copy.key).await?,
            *body,
            "quarantined copy is the original bytes"
        );
        assert!(
            p.list_output(&format!("thumbnails/{key}/"))
                .await?
                .is_empty(),
            "no thumbnails for {key}"
        );
        assert!(
            p.list_output(&format!("manifests/{key}")).await?.is_empty(),
            "no manifest for {key}"
        );
    }
    let notes = runs.iter().find(|r| r.key == "bad/notes.jpg").unwrap();
    assert_eq!(
        notes.path(),
        "Inspect > IsSupported > Unsupported > Quarantine"
    );
    assert_eq!(
        p.quarantine_report("bad/page.jpg").await?.cause,
        "HTML document"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_keys_with_spaces_unicode_plus_and_percent_keep_their_exact_key() -> Result<()> {
    let p = TestPipeline::start("e2e-keys").await?;
    let body = jpeg_with_orientation_6(64, 48)?;
    let keys = [
        "my holiday photo.jpg",
        "日本/ünïcödé 写真.jpg",
        "a+b=c.jpg",
        "100% real.jpg",
    ];
    for key in keys {
        p.upload(key, body.clone()).await?;
    }
    let runs = p.settle(keys.len()).await?;
    for key in keys {
        let run = runs
            .iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no execution for {key:?}: {runs:#?}"));
        assert_eq!(run.status, ObjectStatus::Processed, "{key}");
        let m = p.manifest(key).await?;
        assert_eq!(m.source.key, key);
        for out in &m.outputs {
            let tag = version_tag(&m.source)?;
            assert_eq!(out.key, format!("thumbnails/{key}/{tag}/{}.jpg", out.size));
            decode(&p.output(&out.key).await?);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_same_recorded_event_twice_gives_one_execution_and_one_set_of_outputs() -> Result<()> {
    let p = TestPipeline::start("e2e-dup").await?;
    let key = "dup/My Photo+1.jpg";
    p.upload(key, jpeg_with_orientation_6(300, 200)?).await?;
    let first = p.settle(1).await?;
    let outputs_before = p.list_output("").await?;

    let event = p.recorded_event(key).await?;
    for _ in 0..2 {
        let report = p.invoke_ingest(&event).await?;
        assert_eq!(report["started"], 0, "{report}");
        assert_eq!(report["duplicates"], 1, "{report}");
    }
    let runs = p.settle(1).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].detail.summary.arn, first[0].detail.summary.arn);
    let outputs_after = p.list_output("").await?;
    let keys =
        |l: &[pipeline_aws::ListedObject]| l.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&outputs_after), keys(&outputs_before));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_test_event_folder_marker_and_own_outputs_start_nothing() -> Result<()> {
    let p = TestPipeline::start("e2e-skip").await?;
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-29T08:00:00.000Z",
                            "Bucket": p.input_bucket(), "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
    let report = p.invoke_ingest(&test_event).await?;
    assert_eq!(report["test_event"], true);

    p.upload("albums/2026/", Vec::new()).await?;
    // An event for the pipeline's own output (as a single-bucket deployment would send).
    let own = integration_tests::object_created_event(
        p.output_bucket(),
        "thumbnails/x.jpg/256.jpg",
        10,
        None,
        None,
    );
    assert_eq!(p.invoke_ingest(&own).await?["skipped"], 1);

    // A real upload after them: exactly one execution proves the notification path works
    // and that nothing before it (test event, folder marker, own output) started one.
    p.upload("albums/2026/after.jpg", jpeg_with_orientation_6(80, 60)?)
        .await?;
    let runs = p.settle(1).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].key, "albums/2026/after.jpg");
    // The pipeline wrote thumbnails and a manifest; none of them started an execution.
    assert!(!p.list_output("thumbnails/").await?.is_empty());
    assert_eq!(p.runs_now().await?.len(), 1);
    Ok(())
}
