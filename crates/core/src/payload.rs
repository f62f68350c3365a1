//! One serde type per state boundary of the state machine.
//!
//! Payloads carry S3 references and metadata only, never file bytes: Step Functions
//! limits a state's payload to 256 KiB. The JSON shapes are fixed by fixtures in
//! `state-machine/fixtures/` and by the Parameters of `state-machine/pipeline.asl.json`.

use serde::{Deserialize, Serialize};

use crate::image_info::ImageFormat;

/// The object version an execution processes, as the event described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    pub bucket: String,
    /// Decoded key, exactly as stored in the bucket.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The part of a manifest or report that says which version it describes; any schema
/// version of either has it. Publishers and the reconciler read only this.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedSource {
    pub source: SourceObject,
}

impl RecordedSource {
    /// A manifest or report is small; a bigger object at its key is not ours to parse.
    pub const MAX_BYTES: u64 = 1024 * 1024;

    /// The source a stored manifest or report records, `None` when it is not one.
    pub fn parse(body: &[u8]) -> Option<SourceObject> {
        serde_json::from_slice::<RecordedSource>(body)
            .ok()
            .map(|r| r.source)
    }
}

/// A pointer to an object the pipeline wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// Input of an execution, written by ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInput {
    pub source: SourceObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
}

/// Input of the `Inspect` task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectInput {
    pub source: SourceObject,
}

/// Output of `Inspect` (kept at `$.inspection`). `supported == false` routes to quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    pub supported: bool,
    /// What the bytes really are, e.g. "JPEG image" or "HTML document".
    pub detected: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ImageFormat>,
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// EXIF orientation 1-8 (1 = as stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u8>,
    pub duration_ms: u64,
}

/// Input of the `Transform` task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformInput {
    pub source: SourceObject,
    pub inspection: Inspection,
}

/// One thumbnail written by `Transform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// The requested longest side.
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub content_type: String,
}

/// Output of `Transform` (kept at `$.transform`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformOutput {
    pub thumbnails: Vec<Thumbnail>,
    pub duration_ms: u64,
}

/// Facts about the running execution, from the Step Functions context object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionContext {
    pub name: String,
    pub started_at: String,
}

/// Input of the `Load` task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadInput {
    pub source: SourceObject,
    pub inspection: Inspection,
    pub transform: TransformOutput,
    pub execution: ExecutionContext,
}

/// How an execution ended for its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Processed,
    Quarantined,
    /// A newer write to the same key already has its result (S3 `sequencer` order): this
    /// execution wrote no manifest or report and removed its own per-version outputs.
    Superseded,
}

/// Output of `Load`: the execution's output for a processed (or superseded) object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOutput {
    pub outcome: Outcome,
    /// The key's manifest: this version's, or the newer one that superseded it.
    pub manifest: ObjectRef,
    pub thumbnails: Vec<ObjectRef>,
    /// For `superseded`: which version holds the result instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

/// Timings of the steps before load, measured by the functions themselves. Load's own
/// time is not in the manifest: the manifest is the same bytes on every retry of load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTimings {
    pub inspect_ms: u64,
    pub transform_ms: u64,
}

/// The manifest written per processed object (`manifests/<key>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub source: SourceObject,
    pub sha256: String,
    pub format: ImageFormat,
    pub content_type: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    pub outputs: Vec<Thumbnail>,
    pub timings_ms: StepTimings,
    pub execution_name: String,
    pub execution_started_at: String,
}

/// A failure as Step Functions hands it to a Catch target (`{"Error": .., "Cause": ..}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl Failure {
    /// The human-readable reason. A Lambda error's Cause is itself JSON
    /// (`{"errorType": .., "errorMessage": ..}`); other causes are plain text.
    pub fn reason(&self) -> String {
        #[derive(Deserialize)]
        struct LambdaCause {
            #[serde(rename = "errorMessage")]
            error_message: String,
        }
        match serde_json::from_str::<LambdaCause>(&self.cause) {
            Ok(c) => c.error_message,
            Err(_) => self.cause.clone(),
        }
    }
}

/// Input of the `Quarantine` task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineInput {
    pub source: SourceObject,
    pub failure: Failure,
    pub execution: ExecutionContext,
}

/// The report written per quarantined object (`quarantine/reports/<key>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReport {
    pub schema_version: u32,
    pub source: SourceObject,
    pub error: String,
    pub cause: String,
    pub execution_name: String,
    pub execution_started_at: String,
    pub quarantined_at: String,
    /// Where the copy of the source is, or `None` when the source no longer existed.
    pub copy: Option<ObjectRef>,
}

/// Output of `Quarantine`: the execution's output for a quarantined (or superseded) object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineOutput {
    pub outcome: Outcome,
    pub error: String,
    /// The key's report: this version's, or the newer one that superseded it.
    pub report: ObjectRef,
    /// For `superseded`: which version holds the result instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

/// What an execution's output says, parsed by the CLI and the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExecutionOutput {
    Processed(LoadOutput),
    Quarantined(QuarantineOutput),
}

/// Version of the manifest and report layout. 2: per-version thumbnail and copy keys,
/// no `load_ms`.
pub const SCHEMA_VERSION: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::path::PathBuf;

    fn fixture(name: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../state-machine/fixtures")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Parses the fixture into `T`, serialises it back and compares as JSON values, so
    /// every field of the fixture is known to the type and nothing is dropped.
    fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
        let text = fixture(name);
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        let typed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(back, original, "{name} does not round-trip");
        typed
    }

    #[test]
    fn fixtures_round_trip_for_every_state_boundary() {
        round_trip::<ExecutionInput>("execution-input.json");
        round_trip::<InspectInput>("inspect-input.json");
        round_trip::<Inspection>("inspect-output.json");
        round_trip::<Inspection>("inspect-output-unsupported.json");
        round_trip::<TransformInput>("transform-input.json");
        round_trip::<TransformOutput>("transform-output.json");
        round_trip::<LoadInput>("load-input.json");
        round_trip::<LoadOutput>("load-output.json");
        round_trip::<QuarantineInput>("quarantine-input.json");
        round_trip::<QuarantineInput>("quarantine-input-lambda-error.json");
        round_trip::<QuarantineOutput>("quarantine-output.json");
        round_trip::<Manifest>("manifest.json");
        round_trip::<QuarantineReport>("quarantine-report.json");
    }

    #[test]
    fn execution_output_distinguishes_processed_and_quarantined() {
        let p: ExecutionOutput = serde_json::from_str(&fixture("load-output.json")).unwrap();
        assert!(matches!(p, ExecutionOutput::Processed(_)));
        let q: ExecutionOutput = serde_json::from_str(&fixture("quarantine-output.json")).unwrap();
        assert!(matches!(q, ExecutionOutput::Quarantined(_)));
    }

    #[test]
    fn failure_reason_unwraps_lambda_error_cause() {
        let input: QuarantineInput =
            serde_json::from_str(&fixture("quarantine-input-lambda-error.json")).unwrap();
        assert_eq!(input.failure.error, "InvalidImage");
        assert!(input.failure.reason().starts_with("invalid image"));
        let plain = Failure {
            error: "UnsupportedType".into(),
            cause: "HTML document".into(),
        };
        assert_eq!(plain.reason(), "HTML document");
    }

    #[test]
    fn payloads_stay_far_below_step_functions_limit() {
        // A 1,024-byte key and ten thumbnails still produce a small state.
        let long_key = "k".repeat(1024);
        let mut input: LoadInput = serde_json::from_str(&fixture("load-input.json")).unwrap();
        input.source.key = long_key.clone();
        let t = input.transform.thumbnails[0].clone();
        input.transform.thumbnails = (0..10)
            .map(|_| Thumbnail {
                key: long_key.clone(),
                ..t.clone()
            })
            .collect();
        let size = serde_json::to_vec(&input).unwrap().len();
        assert!(size < 32 * 1024, "state payload is {size} bytes");
    }
}
