//! Operator commands that recover objects: `reconcile`, `backfill` and `failed-events`.
//! Each reports progress as it goes and ends with one summary line.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use pipeline_aws::deploy::PipelineStack;
use pipeline_aws::failures;
use pipeline_aws::reconcile::{
    reconcile as run_pass, ReconcileRequest, StartResult, MAX_GENERATIONS,
};
use pipeline_aws::{S3Store, SfnStarter};
use pipeline_core::layout::OutputLayout;

use crate::commands::aws_clients;

/// `s3://bucket/prefix` -> (bucket, prefix).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("{url:?} is not an s3://bucket/prefix URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("{url:?} names no bucket");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// One pass over the stack's input bucket: start what has no result. Shared by
/// `reconcile` (with a grace period) and `backfill` (grace 0, one prefix).
async fn pass(
    stack_name: &str,
    prefix: &str,
    grace_seconds: u64,
    concurrency: usize,
    label: &str,
    bucket_check: Option<&str>,
) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    if let Some(bucket) = bucket_check {
        if bucket != stack.input_bucket {
            bail!(
                "s3://{bucket} is not the input bucket of stack {stack_name} (s3://{}): the pipeline's functions may only read their input bucket",
                stack.input_bucket
            );
        }
    }
    let store = S3Store::new(clients.s3.clone());
    let starter = SfnStarter::new(clients.sfn.clone(), stack.state_machine_arn.clone());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let request = ReconcileRequest {
        input_bucket: stack.input_bucket.clone(),
        prefix: prefix.to_string(),
        layout: OutputLayout::new(stack.output_bucket.clone()),
        grace_ms: i64::try_from(grace_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
        now_ms,
        concurrency,
        max_generations: MAX_GENERATIONS,
    };
    eprintln!(
        "{label}: listing s3://{}/{prefix} and the results in s3://{}...",
        stack.input_bucket, stack.output_bucket
    );
    let total = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let report = run_pass(
        &store,
        &starter,
        &request,
        &|n| {
            total.store(n, Ordering::SeqCst);
            eprintln!(
                "{label}: {n} object(s) without a result; starting with {concurrency} in flight"
            );
        },
        &|r| {
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            let of = total.load(Ordering::SeqCst);
            let line = match r {
                StartResult::Started { key, name } => format!("started {name} for {key}"),
                StartResult::Running { key, name } => format!("already running: {name} ({key})"),
                StartResult::Succeeded { key, name } => {
                    format!("already succeeded: {name} ({key})")
                }
                StartResult::Exhausted { key, last } => {
                    format!("every execution failed up to {last} ({key}): needs an operator")
                }
                StartResult::Error { key, error } => format!("could not start {key}: {error}"),
            };
            eprintln!("{label}: [{n}/{of}] {line}");
        },
    )
    .await?;
    for (key, why) in &report.invalid_keys {
        eprintln!("{label}: skipped invalid key {key:?}: {why}");
    }
    println!("{label}: {}", report.summary());
    Ok(if report.errors() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn reconcile(
    stack: &str,
    prefix: &str,
    grace_seconds: u64,
    concurrency: usize,
) -> Result<ExitCode> {
    pass(stack, prefix, grace_seconds, concurrency, "reconcile", None).await
}

pub async fn backfill(stack: &str, url: &str, concurrency: usize) -> Result<ExitCode> {
    let (bucket, prefix) = parse_s3_url(url)?;
    pass(stack, &prefix, 0, concurrency, "backfill", Some(&bucket)).await
}

/// Lists the events in ingest's failure queue; with `replay`, re-invokes ingest with each
/// and deletes the message when that succeeded.
pub async fn failed_events(stack_name: &str, replay: bool, max: usize) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    let ingest = stack
        .function("ingest")
        .context("the stack has no ingest function")?
        .to_string();
    // Hidden long enough to replay them; listed-only messages come back after this.
    let visibility = if replay { 120 } else { 5 };
    let messages =
        failures::receive(&clients.sqs, &stack.failure_queue_url, max, visibility).await?;
    eprintln!(
        "failed-events: {} message(s) in {}",
        messages.len(),
        stack.failure_queue_url
    );
    let (mut replayed, mut failed) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                failed += 1;
                eprintln!("failed-events: [{}/{}] {e}", i + 1, messages.len());
                continue;
            }
        };
        println!(
            "{}\t{}\t{}\t{}",
            m.message_id,
            m.keys.join(","),
            m.condition,
            m.error
        );
        if !replay {
            continue;
        }
        match failures::replay(&clients.lambda, &ingest, &m.event).await {
            Ok(result) => {
                failures::delete(&clients.sqs, &stack.failure_queue_url, &m.receipt_handle).await?;
                replayed += 1;
                eprintln!(
                    "failed-events: [{}/{}] replayed {}: {result}",
                    i + 1,
                    messages.len(),
                    m.message_id
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "failed-events: [{}/{}] replay of {} failed, message kept: {e}",
                    i + 1,
                    messages.len(),
                    m.message_id
                );
            }
        }
    }
    println!(
        "failed-events: listed={} replayed={replayed} failed={failed}",
        messages.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_s3_url_table() {
        assert_eq!(
            parse_s3_url("s3://b/p/q/").unwrap(),
            ("b".to_string(), "p/q/".to_string())
        );
        assert_eq!(
            parse_s3_url("s3://b").unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(parse_s3_url("b/p").is_err());
        assert!(parse_s3_url("s3:///p").is_err());
    }
}
