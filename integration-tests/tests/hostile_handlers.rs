//! Hostile and broken input through the real handlers, chained the way the state machine
//! chains them (ingest -> Inspect -> IsSupported -> Transform -> Load, any error ->
//! Quarantine), on the in-memory fakes. Fast: no emulator, no packaging.
//!
//! Every case must end processed or quarantined with a named error and a report, within
//! a time limit per step, without a panic; output keys must stay under their prefixes.
//! The handler modules are compiled in from `functions/*/src/handler.rs` (the function
//! crates are binaries), so their own unit tests run here a second time.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../functions/ingest/src/handler.rs"]
#[allow(dead_code)]
mod ingest;
#[path = "../../functions/inspect/src/handler.rs"]
mod inspect;
#[path = "../../functions/load/src/handler.rs"]
mod load;
#[path = "../../functions/quarantine/src/handler.rs"]
mod quarantine;
#[path = "../../functions/transform/src/handler.rs"]
mod transform;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use integration_tests::hostile::{self, Expected, HostileCase};
use integration_tests::object_created_event;
use pipeline_aws::catalog::MemoryCatalog;
use pipeline_aws::{MemoryStarter, MemoryStore, ObjectStore};
use pipeline_core::config::PipelineConfig;
use pipeline_core::payload::{
    ExecutionContext, ExecutionInput, Failure, InspectInput, LoadInput, LoadOutput,
    QuarantineInput, QuarantineReport, TransformInput,
};
use pipeline_core::PipelineError;
use serde_json::{json, Value};

/// The configured object size limit in these tests (one case exceeds it).
const MAX_OBJECT_BYTES: u64 = 1024 * 1024;

/// Longer than any legitimate step here takes in a debug build; a step past it is a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How an execution ended.
#[derive(Debug)]
enum Ending {
    Processed(LoadOutput),
    Quarantined(Box<QuarantineReport>),
}

/// The functions' world: one input bucket, one output bucket, one state machine.
struct Pipeline {
    store: Arc<MemoryStore>,
    starter: MemoryStarter,
    config: PipelineConfig,
}

impl Pipeline {
    fn new() -> Self {
        let max = MAX_OBJECT_BYTES.to_string();
        // The input bucket is versioned, as the template makes it.
        let store = MemoryStore::new();
        store.enable_versioning("in");
        Pipeline {
            store: Arc::new(store),
            starter: MemoryStarter::new(),
            config: PipelineConfig::from_vars([
                ("OUTPUT_BUCKET", "out"),
                ("MAX_OBJECT_BYTES", max.as_str()),
            ])
            .unwrap(),
        }
    }

    /// Uploads, sends the AWS-encoded ObjectCreated event to ingest, and runs the one
    /// execution it starts to its end.
    async fn upload_and_run(&self, key: &str, body: Vec<u8>) -> Ending {
        let size = body.len() as u64;
        // The event names the version and ETag S3 gave the upload.
        let version = self.store.insert("in", key, body);
        let head = self
            .store
            .head(pipeline_aws::ObjectLocation::latest("in", key))
            .await
            .unwrap();
        let before = self.starter.started();
        let event = object_created_event("in", key, size, head.etag.as_deref(), version.as_deref());
        let report = ingest::handle(&event, &self.config.layout, &self.starter)
            .await
            .unwrap_or_else(|e| panic!("ingest failed for {key:?}: {}: {e}", e.name()));
        assert_eq!(report.started, 1, "{key:?}: {report:?}");
        let (name, input) = self
            .starter
            .started()
            .into_iter()
            .find(|(name, _)| !before.contains_key(name))
            .unwrap();
        let input: ExecutionInput = serde_json::from_str(&input).unwrap();
        assert_eq!(input.source.key, key, "ingest decodes the key exactly");
        self.execute(&name, input).await
    }

    /// The state machine: `state-machine/pipeline.asl.json`, step by step.
    async fn execute(&self, name: &str, input: ExecutionInput) -> Ending {
        let source = input.source;
        let execution = ExecutionContext {
            name: name.to_owned(),
            started_at: "2026-11-29T08:00:00Z".into(),
        };
        let (store, config) = (self.store.clone(), self.config.clone());
        let inspected = step("Inspect", {
            let source = source.clone();
            move || {
                let (store, config, source) = (store.clone(), config.clone(), source.clone());
                async move { inspect::inspect(InspectInput { source }, &*store, &config).await }
            }
        })
        .await;
        let failure = match inspected {
            Err(failure) => failure,
            // Unsupported (Pass): the same failure record a catch would give.
            Ok(inspection) if !inspection.supported => Failure {
                error: "UnsupportedType".into(),
                cause: inspection.detected,
            },
            Ok(inspection) => {
                let (store, config) = (self.store.clone(), self.config.clone());
                let transform_input = TransformInput {
                    source: source.clone(),
                    inspection: inspection.clone(),
                };
                let transformed = step("Transform", move || {
                    let (store, config, input) =
                        (store.clone(), config.clone(), transform_input.clone());
                    async move { transform::transform(input, &*store, &config).await }
                })
                .await;
                match transformed {
                    Err(failure) => failure,
                    Ok(transform) => {
                        let (store, config) = (self.store.clone(), self.config.clone());
                        let load_input = LoadInput {
                            source: source.clone(),
                            inspection,
                            transform,
                            execution: execution.clone(),
                        };
                        let loaded = step("Load", move || {
                            let (store, config, input) =
                                (store.clone(), config.clone(), load_input.clone());
                            async move {
                                load::load(input, &*store, &MemoryCatalog::new(), &config).await
                            }
                        })
                        .await;
                        match loaded {
                            Ok(output) => return Ending::Processed(output),
                            Err(failure) => failure,
                        }
                    }
                }
            }
        };
        let (store, config) = (self.store.clone(), self.config.clone());
        let quarantine_input = QuarantineInput {
            source,
            failure,
            execution,
        };
        let output = step("Quarantine", move || {
            let (store, config, input) = (store.clone(), config.clone(), quarantine_input.clone());
            async move {
                quarantine::quarantine(
                    input,
                    &*store,
                    &MemoryCatalog::new(),
                    &config,
                    "2026-11-29T08:00:01Z".into(),
                )
                .await
            }
        })
        .await
        .unwrap_or_else(|f| panic!("QuarantineFailed: {f:?}"));
        let (body, _) = self.store.object("out", &output.report.key).unwrap();
        Ending::Quarantined(Box::new(serde_json::from_slice(&body).unwrap()))
    }
}

/// Runs one Task: its own task (so a panic is seen, not propagated), a timeout, and the
/// state's Retry for `Transient` (3 retries). Errors become the `{Error, Cause}` record a
/// Catch hands on, with the Lambda error object as the Cause.
async fn step<T, F, Fut>(state: &str, task: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, PipelineError>> + Send + 'static,
{
    for _attempt in 0..4 {
        let outcome = tokio::time::timeout(STEP_TIMEOUT, tokio::spawn(task())).await;
        let error = match outcome {
            Err(_) => panic!("{state} hung for more than {STEP_TIMEOUT:?}"),
            Ok(Err(join)) => panic!("{state} panicked: {join}"),
            Ok(Ok(Ok(value))) => return Ok(value),
            Ok(Ok(Err(error))) => error,
        };
        if error.is_retryable() {
            continue;
        }
        let cause = json!({"errorType": error.name(), "errorMessage": error.to_string()});
        return Err(Failure {
            error: error.name().into(),
            cause: cause.to_string(),
        });
    }
    panic!("{state} failed with Transient four times");
}

/// Every output key the pipeline wrote stays under one of its prefixes, as written and
/// once a path-normalising consumer resolves `.`, `..` and backslashes.
fn assert_outputs_inside_prefixes(store: &MemoryStore) {
    for key in store.keys("out") {
        let normalised = {
            let mut parts: Vec<&str> = Vec::new();
            let unified = key.replace('\\', "/");
            for segment in unified.split('/') {
                match segment {
                    "" | "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            parts.join("/")
        };
        let inside = [
            "thumbnails/",
            "manifests/",
            "quarantine/objects/",
            "quarantine/reports/",
        ]
        .iter()
        .any(|p| key.starts_with(p) && normalised.starts_with(p));
        assert!(inside, "output key {key:?} leaves its prefix");
        assert!(!key.chars().any(char::is_control), "output key {key:?}");
        assert!(key.len() <= pipeline_core::key::MAX_KEY_BYTES);
    }
}

/// Runs one case; `Err` says how it ended wrong.
async fn check_case(p: &Pipeline, case: &HostileCase) -> Result<(), String> {
    let ending = p.upload_and_run(&case.key, case.body.clone()).await;
    match (&case.expected, &ending) {
        (Expected::Processed, Ending::Processed(out)) if !out.thumbnails.is_empty() => Ok(()),
        (Expected::Quarantined(error), Ending::Quarantined(report)) if report.error == *error => {
            assert!(!report.cause.is_empty(), "{}", case.what);
            assert_eq!(report.source.key, case.key, "{}", case.what);
            let copy = report.copy.as_ref().expect("the source is copied aside");
            assert_eq!(
                p.store.object("out", &copy.key).unwrap().0,
                case.body,
                "{}: the quarantined copy is the original",
                case.what
            );
            Ok(())
        }
        (expected, Ending::Quarantined(report)) => Err(format!(
            "{}: expected {expected:?}, got quarantined {}: {}",
            case.what, report.error, report.cause
        )),
        (expected, Ending::Processed(out)) => Err(format!(
            "{}: expected {expected:?}, got processed: {out:?}",
            case.what
        )),
    }
}

#[tokio::test]
async fn hostile_every_case_ends_processed_or_quarantined_with_its_error() {
    let p = Pipeline::new();
    let cases = hostile::cases(MAX_OBJECT_BYTES);
    let mut wrong = Vec::new();
    for case in &cases {
        if let Err(e) = check_case(&p, case).await {
            wrong.push(e);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) ended wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_outputs_inside_prefixes(&p.store);
    // One execution per case, nothing else started.
    assert_eq!(p.starter.started().len(), cases.len());
}

#[tokio::test]
async fn hostile_keys_outputs_are_hashed_under_their_prefix() {
    let p = Pipeline::new();
    let jpeg = hostile::encoded(64, 48, image::ImageFormat::Jpeg);
    let Ending::Processed(out) = p.upload_and_run("a/../../../etc/cron.d/x", jpeg).await else {
        panic!("a valid image under a hostile key is processed");
    };
    assert!(
        out.manifest.key.starts_with("manifests/_unsafe/"),
        "{out:?}"
    );
    for t in &out.thumbnails {
        assert!(t.key.starts_with("thumbnails/_unsafe/"), "{t:?}");
    }
    let manifest: pipeline_core::payload::Manifest =
        serde_json::from_slice(&p.store.object("out", &out.manifest.key).unwrap().0).unwrap();
    assert_eq!(
        manifest.source.key, "a/../../../etc/cron.d/x",
        "the manifest names the real key"
    );
    assert_outputs_inside_prefixes(&p.store);
}

#[tokio::test]
async fn hostile_event_with_invalid_escape_is_rejected_as_invalid_event_others_start() {
    let p = Pipeline::new();
    let mut event = object_created_event("in", "ok.jpg", 10, None, Some("v1"));
    let mut bad = event["Records"][0].clone();
    bad["s3"]["object"]["key"] = json!("bad%zz%.jpg");
    let mut bad_utf8 = event["Records"][0].clone();
    bad_utf8["s3"]["object"]["key"] = json!("bad%FF.jpg");
    event["Records"]
        .as_array_mut()
        .unwrap()
        .extend([bad, bad_utf8]);
    let err = ingest::handle(&event, &p.config.layout, &p.starter)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidEvent", "{err}");
    assert!(
        err.to_string().contains("record 1") && err.to_string().contains("record 2"),
        "{err}"
    );
    assert_eq!(p.starter.started().len(), 1, "the good record still starts");
}

#[tokio::test]
async fn hostile_event_with_unknown_major_version_is_rejected_as_invalid_event() {
    let p = Pipeline::new();
    for version in ["3.0", "1.0", "", "two"] {
        let mut event = object_created_event("in", "a.jpg", 10, None, Some("v1"));
        event["Records"][0]["eventVersion"] = json!(version);
        let err = ingest::handle(&event, &p.config.layout, &p.starter)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidEvent", "{version:?}: {err}");
    }
    assert!(p.starter.started().is_empty());
}

#[tokio::test]
async fn hostile_event_with_1025_byte_key_is_rejected_1024_starts() {
    let p = Pipeline::new();
    let max = "k".repeat(pipeline_core::key::MAX_KEY_BYTES);
    let over = "k".repeat(pipeline_core::key::MAX_KEY_BYTES + 1);
    let ok = ingest::handle(
        &object_created_event("in", &max, 10, None, Some("v1")),
        &p.config.layout,
        &p.starter,
    )
    .await
    .unwrap();
    assert_eq!(ok.started, 1);
    let mut event = object_created_event("in", "x", 10, None, Some("v1"));
    event["Records"][0]["s3"]["object"]["key"] = Value::String(over);
    let err = ingest::handle(&event, &p.config.layout, &p.starter)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidEvent");
    assert!(err.to_string().contains("1025 bytes"), "{err}");
}

#[tokio::test]
async fn hostile_folder_markers_start_nothing() {
    let p = Pipeline::new();
    for key in ["photos/", "a/b/", "/"] {
        p.store.insert("in", key, Vec::new());
        let report = ingest::handle(
            &object_created_event("in", key, 0, None, Some("v1")),
            &p.config.layout,
            &p.starter,
        )
        .await
        .unwrap();
        assert_eq!((report.started, report.skipped), (0, 1), "{key:?}");
    }
    assert!(p.starter.started().is_empty());
}

#[tokio::test]
async fn hostile_folder_marker_started_by_hand_is_quarantined_empty_under_unsafe() {
    // Ingest never starts one, but an operator could: it must still end in a report.
    let p = Pipeline::new();
    p.store.insert("in", "albums/", Vec::new());
    let input: ExecutionInput = serde_json::from_value(json!({
        "source": {"bucket": "in", "key": "albums/"}
    }))
    .unwrap();
    let Ending::Quarantined(report) = p.execute("by-hand", input).await else {
        panic!("expected quarantine");
    };
    assert_eq!(report.error, "EmptyObject");
    assert!(p.store.keys("out").iter().all(|k| k.contains("/_unsafe/")));
}

#[test]
fn render_thumbnails_bombs_without_pixel_limit_hit_the_allocation_limit_as_too_large() {
    // The second line of defence: with the declared-pixel check off, the decoder's own
    // allocation limit still turns every bomb into TooLarge before a buffer exists.
    use pipeline_core::image_info::ImageFormat as F;
    use pipeline_core::transform::{render_thumbnails, TransformSpec};
    let spec = TransformSpec {
        sizes: vec![64],
        max_pixels: u64::MAX,
        max_alloc_bytes: 16 * 1024 * 1024,
        ..TransformSpec::default()
    };
    let bombs = [
        ("PNG bomb 64 MP", hostile::png_bomb(8000, 8000), F::Png),
        (
            "PNG header 100,000^2",
            hostile::png_declaring(100_000, 100_000),
            F::Png,
        ),
        (
            "JPEG header 65,535^2",
            hostile::jpeg_declaring(65_535, 65_535),
            F::Jpeg,
        ),
        (
            "GIF frame 65,535^2",
            hostile::gif_declaring((32, 32), (65_535, 65_535)),
            F::Gif,
        ),
        (
            "GIF screen 65,535^2",
            hostile::gif_declaring((65_535, 65_535), (65_535, 65_535)),
            F::Gif,
        ),
        (
            "WebP header 16,383^2",
            hostile::webp_declaring(16_383, 16_383),
            F::Webp,
        ),
        (
            "WebP canvas 60,000^2",
            hostile::webp_extended_canvas(60_000, 60_000),
            F::Webp,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, bytes, format) in bombs {
        match render_thumbnails(&bytes, format, &spec) {
            Err(e) if e.name() == "TooLarge" => {}
            Err(e) => wrong.push(format!("{what}: {}: {e}", e.name())),
            Ok(t) => wrong.push(format!("{what}: decoded, {} thumbnail(s)", t.len())),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
