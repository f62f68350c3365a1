//! Reconcile: one pass of [`pipeline_aws::reconcile::reconcile`] with the function's
//! settings, which an invocation payload may narrow (e.g. `{"grace_seconds": 0}`).

use pipeline_aws::reconcile::{
    reconcile as run_pass, ReconcileRequest, StartResult, MAX_GENERATIONS,
};
use pipeline_aws::{ExecutionStarter, ObjectStore};
use pipeline_core::config::PipelineConfig;
use pipeline_core::reconcile::ReconcileConfig;
use pipeline_core::PipelineError;
use pipeline_lambda::from_store;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The invocation payload. A scheduled EventBridge event has neither field (its own
/// fields are ignored); an operator may set either.
#[derive(Debug, Default, Deserialize)]
pub struct ReconcileInvocation {
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What the pass did, as the function's result.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReconcileOutput {
    pub listed: usize,
    pub has_result: usize,
    pub too_recent: usize,
    pub skipped: usize,
    pub started: Vec<String>,
    pub errors: Vec<String>,
    pub summary: String,
}

pub async fn reconcile(
    invocation: ReconcileInvocation,
    config: &PipelineConfig,
    settings: &ReconcileConfig,
    store: &dyn ObjectStore,
    starter: &dyn ExecutionStarter,
) -> Result<ReconcileOutput, PipelineError> {
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let grace = invocation.grace_seconds.unwrap_or(settings.grace_seconds);
    let request = ReconcileRequest {
        input_bucket: settings.input_bucket.clone(),
        prefix: invocation.prefix.unwrap_or_else(|| settings.prefix.clone()),
        layout: config.layout.clone(),
        grace_ms: i64::try_from(grace.saturating_mul(1000)).unwrap_or(i64::MAX),
        now_ms,
        concurrency: settings.concurrency,
        max_generations: MAX_GENERATIONS,
    };
    let report = run_pass(store, starter, &request, &|_| {}, &|r| match r {
        StartResult::Started { key, name } => info!(key = %key, execution = %name, "started"),
        StartResult::Exhausted { key, last } => {
            warn!(key = %key, last = %last, "every execution generation failed; needs an operator")
        }
        StartResult::Error { key, error } => warn!(key = %key, error = %error, "start failed"),
        _ => {}
    })
    .await
    .map_err(from_store)?;
    info!(summary = %report.summary(), "reconciled");
    Ok(ReconcileOutput {
        listed: report.listed,
        has_result: report.has_result,
        too_recent: report.too_recent,
        skipped: report.skipped,
        started: report
            .results
            .iter()
            .filter_map(|r| match r {
                StartResult::Started { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect(),
        errors: report
            .results
            .iter()
            .filter_map(|r| match r {
                StartResult::Error { key, error } => Some(format!("{key}: {error}")),
                StartResult::Exhausted { key, last } => {
                    Some(format!("{key}: every generation failed (last {last})"))
                }
                _ => None,
            })
            .chain(report.invalid_keys.iter().map(|(k, e)| format!("{k}: {e}")))
            .collect(),
        summary: report.summary(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_aws::{MemoryStarter, MemoryStore};

    #[tokio::test]
    async fn reconcile_handler_starts_old_objects_without_results() {
        let store = MemoryStore::new();
        store.insert("in", "a.jpg", b"x".to_vec());
        store.set_last_modified("in", "a.jpg", 0);
        let starter = MemoryStarter::new();
        let config = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        let settings = ReconcileConfig::from_vars([("INPUT_BUCKET", "in")]).unwrap();
        let out = reconcile(
            serde_json::from_str(r#"{"source":"aws.events","detail-type":"Scheduled Event"}"#)
                .unwrap(),
            &config,
            &settings,
            &store,
            &starter,
        )
        .await
        .unwrap();
        assert_eq!(out.started.len(), 1, "{}", out.summary);
        assert!(out.started[0].starts_with("a-jpg-"));
        let again = reconcile(
            ReconcileInvocation::default(),
            &config,
            &settings,
            &store,
            &starter,
        )
        .await
        .unwrap();
        assert!(again.started.is_empty(), "{}", again.summary);
    }
}
