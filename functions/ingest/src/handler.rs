//! Ingest: plan the event (pure), start one execution per planned record, report.

use pipeline_aws::{ExecutionStarter, StartError, StartOutcome};
use pipeline_core::event::{plan_event, EventPlan, RecordPlan};
use pipeline_core::layout::OutputLayout;
use pipeline_core::PipelineError;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

/// What one invocation did (its return value, visible in the Lambda console and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Started, or (on AWS) found running with the same input, which StartExecution
    /// answers by returning the running execution: either way one execution.
    pub started: usize,
    pub duplicates: usize,
    pub skipped: usize,
    pub test_event: bool,
}

/// Starts an execution for every ObjectCreated record. Every record is attempted even
/// when an earlier one fails; the invocation then fails as a whole (`Transient` if any
/// failure may pass on retry, which is safe because names are deterministic, else
/// `InvalidEvent`) so Lambda's asynchronous invocation retries the event, which is safe
/// because execution names are deterministic.
pub async fn handle(
    event: &Value,
    layout: &OutputLayout,
    starter: &dyn ExecutionStarter,
) -> Result<IngestReport, PipelineError> {
    let mut report = IngestReport::default();
    let records = match plan_event(event, layout)? {
        EventPlan::TestEvent => {
            info!("s3:TestEvent received; nothing to start");
            report.test_event = true;
            return Ok(report);
        }
        EventPlan::Records(records) => records,
    };
    let mut retryable: Vec<String> = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    for plan in records {
        match plan {
            RecordPlan::Skip { key, reason } => {
                info!(key = %key, reason = %reason, outcome = "skipped", "record skipped");
                report.skipped += 1;
            }
            RecordPlan::Reject { index, error } => {
                error!(record = index, error = %error, outcome = "rejected", "record rejected");
                rejected.push(format!("record {index}: {error}"));
            }
            RecordPlan::Start { name, input } => {
                let json = serde_json::to_string(&input)
                    .map_err(|e| PipelineError::invalid_event(format!("serialising input: {e}")))?;
                let (bucket, key) = (&input.source.bucket, &input.source.key);
                match starter.start(name.as_str(), &json).await {
                    Ok(StartOutcome::Started { execution_arn }) => {
                        info!(bucket = %bucket, key = %key, execution = %name, arn = %execution_arn, outcome = "started", "execution started");
                        report.started += 1;
                    }
                    Ok(StartOutcome::AlreadyExists) => {
                        info!(bucket = %bucket, key = %key, execution = %name, outcome = "duplicate", "execution already exists: duplicate event");
                        report.duplicates += 1;
                    }
                    Err(StartError::Retryable(e)) => {
                        warn!(bucket = %bucket, key = %key, execution = %name, error = %e, outcome = "failed", "start failed, will be retried");
                        retryable.push(format!("{key}: {e}"));
                    }
                    Err(StartError::Rejected(e)) => {
                        error!(bucket = %bucket, key = %key, execution = %name, error = %e, outcome = "rejected", "start rejected");
                        rejected.push(format!("{key}: {e}"));
                    }
                }
            }
        }
    }
    let summary = |errors: &[String]| {
        format!(
            "{} record(s) failed after {} started, {} duplicate(s), {} skipped: {}",
            errors.len(),
            report.started,
            report.duplicates,
            report.skipped,
            errors.join("; ")
        )
    };
    if !retryable.is_empty() {
        retryable.extend(rejected);
        return Err(PipelineError::transient(summary(&retryable)));
    }
    if !rejected.is_empty() {
        return Err(PipelineError::invalid_event(summary(&rejected)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::MemoryStarter;
    use serde_json::json;

    fn record(key: &str, version: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-29T08:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "A"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "in", "arn": "arn:aws:s3:::in"},
                   "object": {"key": key, "size": 10, "versionId": version, "sequencer": "01"}}
        })
    }

    fn layout() -> OutputLayout {
        OutputLayout::new("out")
    }

    /// At-least-once delivery as Step Functions answers it: the same event while its
    /// execution runs gets the running execution back (AWS returns it for the same name
    /// and input), and after it ended `ExecutionAlreadyExists`. Either way one execution.
    #[tokio::test]
    async fn handle_same_event_twice_starts_once() {
        let starter = MemoryStarter::new();
        let event = json!({"Records": [record("a+b.jpg", "v1")]});
        let first = handle(&event, &layout(), &starter).await.unwrap();
        let while_running = handle(&event, &layout(), &starter).await.unwrap();
        assert_eq!((first.started, first.duplicates), (1, 0));
        assert_eq!((while_running.started, while_running.duplicates), (1, 0));
        let started = starter.started();
        assert_eq!(started.len(), 1);
        let (name, input) = started.iter().next().unwrap();
        let input: Value = serde_json::from_str(input).unwrap();
        assert_eq!(input["source"]["key"], "a b.jpg");
        starter.set_status(name, "SUCCEEDED");
        let after = handle(&event, &layout(), &starter).await.unwrap();
        assert_eq!((after.started, after.duplicates), (0, 1));
        assert_eq!(starter.started().len(), 1);
    }

    #[tokio::test]
    async fn handle_test_event_starts_nothing() {
        let starter = MemoryStarter::new();
        let event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "in"});
        let report = handle(&event, &layout(), &starter).await.unwrap();
        assert!(report.test_event);
        assert!(starter.started().is_empty());
    }

    #[tokio::test]
    async fn handle_bad_record_fails_invocation_after_starting_the_others() {
        let starter = MemoryStarter::new();
        let event = json!({"Records": [record("a.jpg", "v1"), record("bad%zz", "v1"), record("c.jpg", "v1")]});
        let err = handle(&event, &layout(), &starter).await.unwrap_err();
        assert_eq!(err.name(), "InvalidEvent");
        assert!(err.to_string().contains("record 1"), "{err}");
        assert_eq!(starter.started().len(), 2);
    }

    #[tokio::test]
    async fn handle_retryable_start_failure_is_transient_and_others_start() {
        let mut starter = MemoryStarter::new();
        let plan = plan_event(&json!({"Records": [record("b.jpg", "v1")]}), &layout()).unwrap();
        let EventPlan::Records(r) = plan else {
            panic!()
        };
        let RecordPlan::Start { name, .. } = &r[0] else {
            panic!()
        };
        starter.failing_names.push(name.to_string());
        let event = json!({"Records": [record("a.jpg", "v1"), record("b.jpg", "v1")]});
        let err = handle(&event, &layout(), &starter).await.unwrap_err();
        assert_eq!(err.name(), "Transient");
        assert_eq!(starter.started().len(), 1);
    }

    #[tokio::test]
    async fn handle_pipeline_outputs_and_folders_are_skipped() {
        let starter = MemoryStarter::new();
        let mut own = record("thumbnails/a.jpg/256.jpg", "v1");
        own["s3"]["bucket"]["name"] = json!("out");
        let event = json!({"Records": [own, record("folder/", "v1")]});
        let report = handle(&event, &layout(), &starter).await.unwrap();
        assert_eq!(report.skipped, 2);
        assert!(starter.started().is_empty());
    }
}
