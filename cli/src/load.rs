//! `pipeline load`: N objects from W parallel writers on the embedded emulator, then a check
//! of every object and one summary line (see `LoadReport`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use pipeline_aws::{Executions, ObjectStore, S3Store};
use pipeline_core::report::{percentile, LoadReport, ObjectStatus};
use pipeline_emulator::local::{LocalPipeline, RepoPaths};
use pipeline_emulator::EmulatorOptions;
use tokio::sync::Mutex;

use crate::samples::load_object;

const STACK: &str = "s3-pipeline-load";

pub async fn load(
    objects: usize,
    writers: usize,
    artifacts: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    if objects == 0 || writers == 0 {
        bail!("--objects and --writers must be at least 1");
    }
    let mut paths = RepoPaths::from_workspace();
    if let Some(dir) = artifacts {
        paths.artifacts = dir;
    }
    eprintln!("load: starting the emulator and deploying the stack...");
    let local = LocalPipeline::start(STACK, &paths, Vec::new(), EmulatorOptions::default()).await?;
    eprintln!(
        "load: backend {} ({}): {}",
        local.backend.0.name(),
        local.backend.1,
        local.emulator.describe()
    );
    let store = Arc::new(S3Store::new(local.clients.s3.clone()));
    let bucket = local.stack.input_bucket.clone();

    // Writers take the next index until all objects are uploaded.
    let next = Arc::new(AtomicUsize::new(0));
    let uploaded_at: Arc<Mutex<BTreeMap<String, (i64, bool)>>> = Arc::default();
    let started_ms = now_ms();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, bucket, next, uploaded_at) = (
            store.clone(),
            bucket.clone(),
            next.clone(),
            uploaded_at.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= objects {
                    return Ok::<(), anyhow::Error>(());
                }
                let (body, quarantine) = load_object(i)?;
                let key = format!("load/{i:06}.jpg");
                store
                    .put(&bucket, &key, body, "image/jpeg")
                    .await
                    .with_context(|| format!("uploading {key}"))?;
                let mut map = uploaded_at.lock().await;
                map.insert(key, (now_ms(), quarantine));
                let done = map.len();
                if done % (objects / 10).max(1) == 0 || done == objects {
                    eprintln!("load: uploaded {done}/{objects}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| anyhow!("writer task: {e}"))??;
    }
    let upload_s = (now_ms() - started_ms) as f64 / 1000.0;
    eprintln!("load: {objects} uploads in {upload_s:.1} s from {writers} writers; waiting for executions...");

    let executions = Executions::new(local.clients.sfn.clone());
    let mut last_tenth = usize::MAX;
    let runs = executions
        .wait_settled(
            &local.stack.state_machine_arn,
            objects,
            Duration::from_secs(60 + objects as u64),
            |done, total| {
                let tenth = done * 10 / total.max(1);
                if tenth != last_tenth {
                    last_tenth = tenth;
                    eprintln!("load: executions finished {done}/{total}");
                }
            },
        )
        .await
        .map_err(|e| anyhow!(e))?;

    // What is in the output bucket, listed once per prefix.
    let out = &local.stack.output_bucket;
    let manifests = listed_sources(&*store, out, "manifests/", ".json").await?;
    let reports = listed_sources(&*store, out, "quarantine/reports/", ".json").await?;

    let uploaded = uploaded_at.lock().await;
    let mut per_key: BTreeMap<&str, Vec<&pipeline_aws::ObjectRun>> = BTreeMap::new();
    for run in &runs {
        per_key.entry(run.key.as_str()).or_default().push(run);
    }
    let (mut processed, mut quarantined, mut lost, mut duplicated) = (0, 0, 0, 0);
    let mut latencies = Vec::new();
    let mut last_stop = started_ms;
    let mut wrong = Vec::new();
    for (key, (put_ms, expect_quarantine)) in uploaded.iter() {
        let key_runs = per_key
            .get(key.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if key_runs.len() > 1 {
            duplicated += 1;
        }
        let Some(run) = key_runs.first() else {
            lost += 1;
            continue;
        };
        if let Some(stop) = run.detail.summary.stop_epoch_ms {
            latencies.push(u64::try_from(stop - put_ms).unwrap_or(0));
            last_stop = last_stop.max(stop);
        }
        match &run.status {
            ObjectStatus::Processed if manifests.contains(key.as_str()) => processed += 1,
            ObjectStatus::Quarantined { .. } if reports.contains(key.as_str()) => quarantined += 1,
            _ => lost += 1,
        }
        let is_quarantined = matches!(run.status, ObjectStatus::Quarantined { .. });
        if is_quarantined != *expect_quarantine {
            // Why: the last failed task attempt in the history (the execution's own error
            // of a Fail state only says where to look), truncated.
            let last_failure = executions
                .task_failures(&run.detail.summary.arn)
                .await
                .ok()
                .and_then(|f| f.last().cloned());
            let why: String = match last_failure {
                Some((error, cause)) => format!("last task failure {error}: {cause}"),
                None => [run.detail.error.as_deref(), run.detail.cause.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
            }
            .chars()
            .take(300)
            .collect();
            wrong.push(format!("{key}: {} ({why})", run.status.label()));
        }
    }
    let report = LoadReport {
        objects,
        processed,
        quarantined,
        lost,
        duplicated,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        objects_per_s: objects as f64 / ((last_stop - started_ms).max(1) as f64 / 1000.0),
    };
    if !wrong.is_empty() {
        eprintln!(
            "load: {} object(s) ended differently than their content implies: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
    }
    println!("{report}");
    Ok(if lost == 0 && duplicated == 0 && wrong.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Source keys that have an output under `prefix` (`<prefix><source key><suffix>`).
async fn listed_sources(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    suffix: &str,
) -> Result<BTreeSet<String>> {
    Ok(store
        .list(bucket, prefix)
        .await?
        .into_iter()
        .filter_map(|o| {
            o.key
                .strip_prefix(prefix)
                .and_then(|k| k.strip_suffix(suffix))
                .map(str::to_string)
        })
        .collect())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
