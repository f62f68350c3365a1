//! Glue shared by the Lambda binaries: logging set-up, configuration from the
//! environment, and pipeline errors as Lambda diagnostics with stable error types.

use std::future::Future;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pipeline_aws::clients::{load_sdk_config, s3_client};
use pipeline_aws::{S3Store, StoreError};
use pipeline_core::config::PipelineConfig;
use pipeline_core::PipelineError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub mod catalog;
pub mod fault;
pub mod publish;

pub use catalog::{catalog_from_env, record_in_catalog, CatalogRecord};

/// Sets up `tracing`: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda's advanced
/// logging controls), text otherwise; level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// What every ETL function builds once at start-up: its configuration and an S3 store.
pub struct FunctionEnv {
    pub config: PipelineConfig,
    pub store: S3Store,
}

/// Sets up logging, parses the configuration and builds the S3 client, once per cold start.
pub async fn start_etl_function() -> Result<FunctionEnv, PipelineError> {
    init_tracing();
    let config = config_from_env()?;
    let store = S3Store::new(s3_client(&load_sdk_config().await));
    Ok(FunctionEnv { config, store })
}

/// Reads the function's configuration from its environment, once, at start-up.
pub fn config_from_env() -> Result<PipelineConfig, PipelineError> {
    PipelineConfig::from_vars(std::env::vars())
}

/// A handler error. Its `error_type` is the pipeline error's stable name, which the state
/// machine's Retry and Catch match (without this, Step Functions would see a Rust type name).
#[derive(Debug)]
pub struct FunctionError(pub PipelineError);

impl From<PipelineError> for FunctionError {
    fn from(e: PipelineError) -> Self {
        FunctionError(e)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.0.name().to_string(),
            error_message: e.0.to_string(),
        }
    }
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.name(), self.0)
    }
}

/// Maps a storage failure to the pipeline error the state machine acts on: a missing
/// object is permanent, an oversized one is `TooLarge`, a refused one is `AccessDenied`
/// (permanent: the role lacks a grant), anything else may pass on retry.
pub fn from_store(e: StoreError) -> PipelineError {
    match e {
        StoreError::NotFound { bucket, key } => PipelineError::SourceMissing { bucket, key },
        StoreError::AccessDenied {
            operation,
            bucket,
            key,
        } => PipelineError::AccessDenied {
            action: operation.to_string(),
            resource: format!("s3://{bucket}/{key}"),
        },
        StoreError::TooLarge { limit, .. } => PipelineError::TooLarge {
            detail: format!("object is larger than {limit} bytes"),
        },
        // Only reached when a writer gave up re-reading: the state machine retries it.
        StoreError::Failed { .. } | StoreError::PreconditionFailed { .. } => {
            PipelineError::transient(e)
        }
    }
}

/// Runs a handler that takes the state's typed payload. The payload is parsed here, so a
/// malformed one is an `InvalidEvent` the state machine can match (the runtime's own
/// deserialisation error would reach Step Functions as a Rust type name).
pub async fn run<T, O, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    T: DeserializeOwned,
    O: Serialize,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<O, PipelineError>>,
{
    let handler = &handler;
    let fault = &fault::FaultSwitch::from_env()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        fault.trip().await;
        let input = parse_payload::<T>(event.payload)?;
        handler(input).await.map_err(FunctionError)
    }))
    .await
}

/// Parses a state payload into its typed form.
pub fn parse_payload<T: DeserializeOwned>(payload: Value) -> Result<T, FunctionError> {
    serde_json::from_value(payload)
        .map_err(|e| FunctionError(PipelineError::invalid_event(format!("payload: {e}"))))
}

/// The current time as RFC 3339, for reports.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Milliseconds elapsed since `start`, saturating.
pub fn elapsed_ms(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_error_type_is_stable_name() {
        for e in [
            PipelineError::invalid_image("x"),
            PipelineError::transient("x"),
            PipelineError::EmptyObject,
        ] {
            let name = e.name();
            let d: Diagnostic = FunctionError(e).into();
            assert_eq!(d.error_type, name);
        }
    }

    #[test]
    fn from_store_table() {
        let nf = StoreError::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(from_store(nf).name(), "SourceMissing");
        let big = StoreError::TooLarge {
            bucket: "b".into(),
            key: "k".into(),
            limit: 1,
        };
        assert_eq!(from_store(big).name(), "TooLarge");
        let denied = StoreError::AccessDenied {
            operation: "GetObject",
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(from_store(denied).name(), "AccessDenied");
        let other = StoreError::Failed {
            operation: "GetObject",
            message: "503".into(),
        };
        assert_eq!(from_store(other).name(), "Transient");
    }
}
