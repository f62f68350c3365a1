//! S3 event notifications: which records start an execution, which are skipped, which are bad.

use aws_lambda_events::s3::S3EventRecord;
use serde_json::Value;

use crate::error::PipelineError;
use crate::key::ObjectKey;
use crate::layout::OutputLayout;
use crate::naming::{ExecutionName, VersionToken};
use crate::payload::{ExecutionInput, SourceObject};

/// What to do with one notification delivered to ingest.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPlan {
    /// `s3:TestEvent`, sent when a notification is configured: a success that starts nothing.
    TestEvent,
    /// One entry per record, in order.
    Records(Vec<RecordPlan>),
}

/// The decision for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordPlan {
    Start {
        name: ExecutionName,
        input: ExecutionInput,
    },
    Skip {
        key: String,
        reason: SkipReason,
    },
    /// A record that cannot be processed. The others still are; ingest reports it as failed.
    Reject {
        index: usize,
        error: PipelineError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A key ending in `/`, written by "create folder".
    FolderMarker,
    /// Removal, restore, replication, ... events.
    NotObjectCreated(String),
    /// Thumbnails, manifests and quarantine written by the pipeline itself.
    PipelineOutput,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::FolderMarker => f.write_str("folder marker"),
            SkipReason::NotObjectCreated(e) => write!(f, "not an ObjectCreated event ({e})"),
            SkipReason::PipelineOutput => f.write_str("written by the pipeline itself"),
        }
    }
}

/// The event notification major version this code understands (AWS sends 2.0-2.3).
pub const SUPPORTED_EVENT_MAJOR: &str = "2";

/// Decides, without any I/O, what ingest does with an event.
pub fn plan_event(event: &Value, layout: &OutputLayout) -> Result<EventPlan, PipelineError> {
    let Some(records) = event.get("Records") else {
        return match event.get("Event").and_then(Value::as_str) {
            Some("s3:TestEvent") => Ok(EventPlan::TestEvent),
            _ => Err(PipelineError::invalid_event(
                "neither an S3 event notification (no Records) nor s3:TestEvent",
            )),
        };
    };
    let Some(records) = records.as_array() else {
        return Err(PipelineError::invalid_event("Records is not an array"));
    };
    Ok(EventPlan::Records(
        records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                plan_record(record, layout)
                    .unwrap_or_else(|error| RecordPlan::Reject { index, error })
            })
            .collect(),
    ))
}

/// When a source comes without an event time (hand-made ones).
const FALLBACK_EVENT_TIME: &str = "2026-11-29T08:00:00.000Z";

/// The `ObjectCreated:Put` notification (event version 2.1) S3 sends for `source`, shaped
/// and encoded as AWS sends it: the key URL-encoded, the versionId and sequencer when the
/// source has them, the ETag without quotes. The inverse of [`plan_event`] (a test holds
/// them to that), for tests and the load test that deliver events by hand.
pub fn object_created_notification(
    source: &SourceObject,
    event_time: Option<&str>,
) -> Result<Value, crate::key::KeyError> {
    let encoded = ObjectKey::from_decoded(source.key.clone())?.encode_for_event();
    let mut object = serde_json::json!({
        "key": encoded,
        "size": source.size.unwrap_or(0),
        "eTag": source.etag.as_deref().unwrap_or_default().trim_matches('"'),
    });
    for (field, value) in [
        ("versionId", &source.version_id),
        ("sequencer", &source.sequencer),
    ] {
        if let Some(v) = value {
            object[field] = Value::String(v.clone());
        }
    }
    let bucket = &source.bucket;
    Ok(serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": event_time.unwrap_or(FALLBACK_EVENT_TIME),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "pipeline",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": object}
    }]}))
}

fn plan_record(raw: &Value, layout: &OutputLayout) -> Result<RecordPlan, PipelineError> {
    let record: S3EventRecord = serde_json::from_value(raw.clone())
        .map_err(|e| PipelineError::invalid_event(format!("malformed record: {e}")))?;
    if let Some(version) = record.event_version.as_deref() {
        if version.split('.').next() != Some(SUPPORTED_EVENT_MAJOR) {
            return Err(PipelineError::invalid_event(format!(
                "unsupported eventVersion {version} (this ingest understands {SUPPORTED_EVENT_MAJOR}.x)"
            )));
        }
    }
    if let Some(source) = record.event_source.as_deref() {
        if source != "aws:s3" {
            return Err(PipelineError::invalid_event(format!(
                "eventSource is {source}, expected aws:s3"
            )));
        }
    }
    let encoded_key = record
        .s3
        .object
        .key
        .as_deref()
        .ok_or_else(|| PipelineError::invalid_event("record has no s3.object.key"))?;
    let key = ObjectKey::decode_from_event(encoded_key)
        .map_err(|e| PipelineError::invalid_event(format!("key {encoded_key:?}: {e}")))?;
    let bucket = record
        .s3
        .bucket
        .name
        .clone()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| PipelineError::invalid_event("record has no s3.bucket.name"))?;

    let event_name = record.event_name.clone().unwrap_or_default();
    let skip = |reason| {
        Ok(RecordPlan::Skip {
            key: key.to_string(),
            reason,
        })
    };
    if !event_name.starts_with("ObjectCreated:") {
        return skip(SkipReason::NotObjectCreated(event_name));
    }
    if key.is_folder_marker() {
        return skip(SkipReason::FolderMarker);
    }
    if layout.is_pipeline_output(&bucket, key.as_str()) {
        return skip(SkipReason::PipelineOutput);
    }

    let object = &record.s3.object;
    let source = SourceObject {
        bucket,
        key: key.to_string(),
        version_id: object.version_id.clone().filter(|v| !v.is_empty()),
        sequencer: object.sequencer.clone().filter(|s| !s.is_empty()),
        etag: object.e_tag.clone().filter(|e| !e.is_empty()),
        size: object.size.and_then(|s| u64::try_from(s).ok()),
    };
    let name = ExecutionName::for_object(&source.bucket, &key, VersionToken::of(&source));
    Ok(RecordPlan::Start {
        name,
        input: ExecutionInput {
            source,
            event_time: Some(record.event_time.to_rfc3339()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event_name: &str, bucket: &str, key: &str, version: Option<&str>) -> Value {
        let mut object = json!({
            "key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "sequencer": "0055AED6DCD90281E5"
        });
        if let Some(v) = version {
            object["versionId"] = json!(v);
        }
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-29T08:00:00.000Z", "eventName": event_name,
            "userIdentity": {"principalId": "AWS:EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": bucket, "ownerIdentity": {"principalId": "O"}, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": object}
        })
    }

    fn plan(records: Vec<Value>) -> Vec<RecordPlan> {
        match plan_event(&json!({ "Records": records }), &OutputLayout::new("out")).unwrap() {
            EventPlan::Records(r) => r,
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn plan_event_test_event_starts_nothing() {
        let ev = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-29T08:00:00.000Z",
                        "Bucket": "in", "RequestId": "R", "HostId": "H"});
        assert_eq!(
            plan_event(&ev, &OutputLayout::new("out")).unwrap(),
            EventPlan::TestEvent
        );
    }

    #[test]
    fn plan_event_unknown_shape_is_invalid_event() {
        let err = plan_event(&json!({"hello": 1}), &OutputLayout::new("out")).unwrap_err();
        assert_eq!(err.name(), "InvalidEvent");
        let err = plan_event(&json!({"Records": 3}), &OutputLayout::new("out")).unwrap_err();
        assert_eq!(err.name(), "InvalidEvent");
    }

    #[test]
    fn plan_event_created_object_starts_with_decoded_key() {
        let plans = plan(vec![record(
            "ObjectCreated:Put",
            "in",
            "My+Photo+%C3%BC.jpg",
            Some("v1"),
        )]);
        let RecordPlan::Start { name, input } = &plans[0] else {
            panic!("{plans:?}")
        };
        assert_eq!(input.source.key, "My Photo ü.jpg");
        assert_eq!(input.source.version_id.as_deref(), Some("v1"));
        assert_eq!(input.source.size, Some(1024));
        assert!(name.as_str().starts_with("My-Photo-"));
    }

    #[test]
    fn plan_event_skips_table() {
        let cases = [
            (
                record("ObjectCreated:Put", "in", "photos/", None),
                SkipReason::FolderMarker,
            ),
            (
                record("ObjectRemoved:Delete", "in", "a.jpg", None),
                SkipReason::NotObjectCreated("ObjectRemoved:Delete".into()),
            ),
            (
                record("ObjectCreated:Put", "out", "thumbnails/a.jpg/256.jpg", None),
                SkipReason::PipelineOutput,
            ),
            (
                record(
                    "ObjectCreated:Copy",
                    "out",
                    "quarantine/objects/a.jpg",
                    None,
                ),
                SkipReason::PipelineOutput,
            ),
            (
                record("ObjectCreated:Put", "out", "manifests/a.jpg.json", None),
                SkipReason::PipelineOutput,
            ),
        ];
        for (rec, expected) in cases {
            let plans = plan(vec![rec]);
            assert!(
                matches!(&plans[0], RecordPlan::Skip { reason, .. } if *reason == expected),
                "{plans:?}"
            );
        }
    }

    #[test]
    fn plan_event_bad_record_does_not_drop_others() {
        let mut future = record("ObjectCreated:Put", "in", "b.jpg", None);
        future["eventVersion"] = json!("3.0");
        let plans = plan(vec![
            record("ObjectCreated:Put", "in", "a.jpg", None),
            record("ObjectCreated:Put", "in", "bad%zz.jpg", None),
            json!({"garbage": true}),
            future,
            record("ObjectCreated:Put", "in", "c.jpg", None),
        ]);
        assert_eq!(plans.len(), 5);
        assert!(matches!(plans[0], RecordPlan::Start { .. }));
        for (i, p) in plans.iter().enumerate().take(4).skip(1) {
            assert!(
                matches!(p, RecordPlan::Reject { index, error } if *index == i && error.name() == "InvalidEvent"),
                "{p:?}"
            );
        }
        assert!(matches!(plans[4], RecordPlan::Start { .. }));
    }

    #[test]
    fn plan_event_duplicate_records_get_same_name_reupload_gets_new() {
        let a = plan(vec![
            record("ObjectCreated:Put", "in", "a.jpg", Some("v1")),
            record("ObjectCreated:Put", "in", "a.jpg", Some("v1")),
            record("ObjectCreated:Put", "in", "a.jpg", Some("v2")),
        ]);
        let names: Vec<_> = a
            .iter()
            .map(|p| match p {
                RecordPlan::Start { name, .. } => name.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names[0], names[1]);
        assert_ne!(names[0], names[2]);
    }

    fn source_input(key: &str, version: Option<&str>, sequencer: Option<&str>) -> ExecutionInput {
        ExecutionInput {
            source: SourceObject {
                bucket: "in".into(),
                key: key.into(),
                version_id: version.map(str::to_string),
                sequencer: sequencer.map(str::to_string),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                size: Some(1234),
            },
            // As ingest writes it (RFC 3339 from the event's eventTime).
            event_time: Some("2026-11-30T10:00:00+00:00".into()),
        }
    }

    #[test]
    fn object_created_notification_plans_back_to_the_same_execution_input() {
        let cases = [
            source_input("load/000004.jpg", Some("v2"), Some("0067A1B2C3D4E5F601")),
            source_input("photos/My Photo ü+1.jpg", Some("3HL4kq"), Some("01")),
            source_input("a.jpg", None, None),
        ];
        for original in cases {
            let event =
                object_created_notification(&original.source, original.event_time.as_deref())
                    .unwrap();
            let plans = plan(event["Records"].as_array().unwrap().clone());
            let [RecordPlan::Start { input, .. }] = plans.as_slice() else {
                panic!("{event}")
            };
            assert_eq!(input, &original, "{event}");
        }
    }

    #[test]
    fn object_created_notification_encodes_the_key_as_aws_does() {
        let source = source_input("photos/My Photo ü.jpg", Some("v"), None).source;
        let event = object_created_notification(&source, None).unwrap();
        assert_eq!(
            event["Records"][0]["s3"]["object"]["key"],
            "photos/My+Photo+%C3%BC.jpg"
        );
    }
}
