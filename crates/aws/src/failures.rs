//! Ingest's on-failure destination: the SQS queue where Lambda puts an S3 event that
//! ingest could not handle after its retries. Listing and replaying it.
//!
//! Lambda's record is `{requestContext, requestPayload, responseContext, responsePayload}`;
//! `requestPayload` is the original S3 event. Replaying invokes ingest synchronously with
//! it and deletes the message only when ingest succeeded. Ingest starts executions under
//! deterministic names, so a replayed event never processes an object twice.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::store::error_chain;

#[derive(Debug, Error)]
pub enum FailureQueueError {
    #[error("{operation} failed: {message}")]
    Api {
        operation: &'static str,
        message: String,
    },
    #[error("message {message_id} is not a Lambda failure record: {reason}")]
    NotARecord { message_id: String, reason: String },
}

/// One event that ingest failed to handle.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEvent {
    pub message_id: String,
    pub receipt_handle: String,
    /// The original S3 notification.
    pub event: Value,
    /// The keys the event names (decoded as S3 encodes them is ingest's job; raw here).
    pub keys: Vec<String>,
    pub condition: String,
    pub error: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(default)]
    request_context: RequestContext,
    request_payload: Value,
    #[serde(default)]
    response_payload: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    #[serde(default)]
    condition: String,
}

/// Parses one message body (a Lambda on-failure record).
pub fn parse_record(
    message_id: &str,
    receipt_handle: &str,
    body: &str,
) -> Result<FailedEvent, FailureQueueError> {
    let record: Record = serde_json::from_str(body).map_err(|e| FailureQueueError::NotARecord {
        message_id: message_id.to_string(),
        reason: e.to_string(),
    })?;
    let keys = record.request_payload["Records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r["s3"]["object"]["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let error = match &record.response_payload {
        Some(p) => format!(
            "{}: {}",
            p["errorType"].as_str().unwrap_or("unknown"),
            p["errorMessage"].as_str().unwrap_or_default()
        ),
        None => "no error payload".into(),
    };
    Ok(FailedEvent {
        message_id: message_id.to_string(),
        receipt_handle: receipt_handle.to_string(),
        event: record.request_payload,
        keys,
        condition: record.request_context.condition,
        error,
    })
}

fn api<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> FailureQueueError {
    FailureQueueError::Api {
        operation,
        message: match e.code() {
            Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
            None => error_chain(&e),
        },
    }
}

/// Receives up to `max` messages, hiding each for `visibility_seconds` (so a replay can
/// delete it). Messages that are not failure records are returned as errors, not dropped.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
    visibility_seconds: i32,
) -> Result<Vec<Result<FailedEvent, FailureQueueError>>, FailureQueueError> {
    let mut out = Vec::new();
    while out.len() < max {
        let batch = (max - out.len()).min(10) as i32;
        let page = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(batch)
            .visibility_timeout(visibility_seconds)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| api("ReceiveMessage", e))?;
        let messages = page.messages();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            out.push(parse_record(
                m.message_id().unwrap_or_default(),
                m.receipt_handle().unwrap_or_default(),
                m.body().unwrap_or_default(),
            ));
        }
    }
    Ok(out)
}

/// Invokes `function` synchronously with the event; `Ok` only when it succeeded.
pub async fn replay(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    event: &Value,
) -> Result<Value, FailureQueueError> {
    let out = lambda
        .invoke()
        .function_name(function)
        // The live release, as S3 invokes it (see `pipeline_core::release`).
        .qualifier(pipeline_core::release::LIVE_ALIAS)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| FailureQueueError::Api {
            operation: "Invoke",
            message: error_chain(&e),
        })?;
    let payload: Value = out
        .payload()
        .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
        .unwrap_or(Value::Null);
    if let Some(kind) = out.function_error() {
        return Err(FailureQueueError::Api {
            operation: "Invoke",
            message: format!("{kind}: {payload}"),
        });
    }
    Ok(payload)
}

/// Deletes a handled message.
pub async fn delete(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt_handle: &str,
) -> Result<(), FailureQueueError> {
    sqs.delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api("DeleteMessage", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_record_reads_the_original_event_and_error() {
        let body = r#"{"version":"1.0","requestContext":{"condition":"RetriesExhausted","approximateInvokeCount":3},
            "requestPayload":{"Records":[{"s3":{"bucket":{"name":"in"},"object":{"key":"a+b.jpg"}}}]},
            "responseContext":{"statusCode":200,"functionError":"Unhandled"},
            "responsePayload":{"errorType":"Transient","errorMessage":"throttled"}}"#;
        let e = parse_record("m1", "r1", body).unwrap();
        assert_eq!(e.keys, ["a+b.jpg"]);
        assert_eq!(e.condition, "RetriesExhausted");
        assert_eq!(e.error, "Transient: throttled");
        assert_eq!(e.event["Records"][0]["s3"]["bucket"]["name"], "in");
    }

    #[test]
    fn parse_record_rejects_other_messages_by_name() {
        let err = parse_record("m2", "r2", "hello").unwrap_err();
        assert!(err.to_string().contains("m2"), "{err}");
    }
}
