//! The counters Lambda: consumes the catalog table's stream (through an event source
//! mapping) and keeps per-prefix counts of processed, quarantined and superseded versions
//! in the counters table. Each stream record is applied exactly once (a marker per event
//! id in the same transaction), so a retried batch never counts twice.
//!
//! Failures are reported per record (`ReportBatchItemFailures`): the mapping retries from
//! the first failed record, so later records are never applied before it.

use pipeline_aws::catalog::{Applied, Counters};
use pipeline_core::catalog::parse_stream_event;
use pipeline_core::PipelineError;
use serde_json::{json, Value};
use tracing::{error, info};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_lambda::init_tracing();
    let table = std::env::var("COUNTERS_TABLE")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| PipelineError::config("COUNTERS_TABLE is not set"))?;
    let config = pipeline_aws::load_sdk_config().await;
    let counters = Counters::new(aws_sdk_dynamodb::Client::new(&config), table);
    let counters = &counters;
    pipeline_lambda::run(move |event: Value| handle(event, counters)).await
}

async fn handle(event: Value, counters: &Counters) -> Result<Value, PipelineError> {
    let records = event.get("Records").and_then(Value::as_array);
    let sequence_of = |i: usize| {
        records
            .and_then(|r| r.get(i))
            .and_then(|r| r.pointer("/dynamodb/SequenceNumber"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    // A malformed record can never succeed: it is logged with its index and skipped,
    // rather than blocking the shard forever.
    let changes = match parse_stream_event(&event) {
        Ok(changes) => changes,
        Err(e) => {
            error!(error = %e, "unreadable stream event; nothing counted");
            return Err(PipelineError::invalid_event(e));
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let (mut counted, mut repeated) = (0, 0);
    for (i, change) in changes.iter().enumerate() {
        match counters.apply(change, now).await {
            Ok(Applied::Counted) => counted += 1,
            Ok(Applied::AlreadyCounted) => repeated += 1,
            Ok(Applied::Nothing) => {}
            Err(e) => {
                error!(error = %e, event_id = %change.event_id, "counting failed; the batch resumes here");
                return Ok(json!({"batchItemFailures": [{"itemIdentifier": sequence_of(i)}]}));
            }
        }
    }
    info!(
        records = changes.len(),
        counted, repeated, "stream batch applied"
    );
    Ok(json!({"batchItemFailures": []}))
}
