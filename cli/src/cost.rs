//! `pipeline cost`: the monthly AWS bill for a workload, STANDARD against EXPRESS, from
//! step durations measured on a deployed stack (`--stack`), or from the model's
//! placeholder profile, said loudly, when there is nothing to measure.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use pipeline_aws::deploy::PipelineStack;
use pipeline_aws::Executions;
use pipeline_core::cost::{
    estimate, Architecture, DurationProfile, ExecutionPaths, MemorySizes, Prices, Step, StepSample,
    Workload,
};
use pipeline_core::report::state_visits;
use serde_json::Value;

use crate::commands::aws_clients;

/// The definition the stack deploys (the same file, embedded at build time).
const DEFINITION: &str = include_str!("../../state-machine/pipeline.asl.json");

#[derive(clap::Args)]
pub struct CostArgs {
    /// Objects uploaded per month.
    #[arg(long)]
    pub objects: u64,
    /// Average image size in megapixels.
    #[arg(long)]
    pub avg_megapixels: f64,
    /// Share of objects that end in quarantine (0-1).
    #[arg(long, default_value_t = 0.0)]
    pub quarantined_fraction: f64,
    /// Average task retries per object.
    #[arg(long, default_value_t = 0.0)]
    pub retries_per_object: f64,
    /// Price Lambda for arm64 (Graviton) instead of x86_64.
    #[arg(long)]
    pub arm64: bool,
    /// Measure step durations from this deployed stack's recent executions.
    #[arg(long)]
    pub stack: Option<String>,
    /// Read at most this many executions when measuring.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
}

pub async fn cost(args: CostArgs) -> Result<ExitCode> {
    let definition: Value = serde_json::from_str(DEFINITION).context("the embedded definition")?;
    let paths = ExecutionPaths::from_definition(&definition)?;
    let profile = match &args.stack {
        Some(stack) => {
            let (samples, executions) = measure(stack, args.samples).await?;
            println!(
                "durations: measured from {executions} executions of stack {stack} ({} step samples); \
                 ingest has no state in a history, so its line stays the model's placeholder",
                samples.len()
            );
            DurationProfile::fit(&samples)?
        }
        None => {
            println!(
                "durations: NOT MEASURED: the model's placeholder profile (see crates/core/src/cost.rs); \
                 pass --stack NAME to measure them from a deployed stack's executions"
            );
            DurationProfile::measured_default()
        }
    };
    let mut workload = Workload::new(args.objects, args.avg_megapixels);
    workload.quarantined_fraction = args.quarantined_fraction;
    workload.retries_per_object = args.retries_per_object;
    let architecture = if args.arm64 {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    };
    let bill = estimate(
        &workload,
        &profile,
        &Prices::us_east_1(architecture),
        &MemorySizes::DEPLOYED,
        &paths,
    )?;
    println!("{bill}");
    println!("{}", bill.explanation());
    Ok(ExitCode::SUCCESS)
}

/// Step samples (state durations against the image's megapixels) from the most recent
/// successful executions of `stack`; also how many executions they came from.
async fn measure(stack_name: &str, limit: usize) -> Result<(Vec<StepSample>, usize)> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    let executions = Executions::new(clients.sfn.clone());
    let mut listed = executions
        .list(&stack.state_machine_arn)
        .await
        .map_err(anyhow::Error::msg)?;
    listed.retain(|e| e.status == "SUCCEEDED");
    listed.sort_by_key(|e| std::cmp::Reverse(e.start_epoch_ms));
    listed.truncate(limit);
    let mut samples = Vec::new();
    for summary in &listed {
        let history = executions
            .history(&summary.arn)
            .await
            .map_err(anyhow::Error::msg)?;
        // The image's size, from what Inspect handed on (`$.inspection`).
        let megapixels = history
            .iter()
            .filter(|h| h.kind.ends_with("StateExited") && h.state.as_deref() == Some("Inspect"))
            .filter_map(|h| serde_json::from_str::<Value>(h.detail.as_deref()?).ok())
            .find_map(|out| {
                let w = out.pointer("/inspection/width")?.as_f64()?;
                let h = out.pointer("/inspection/height")?.as_f64()?;
                Some(w * h / 1e6)
            })
            .unwrap_or(0.0);
        let events = history.iter().filter_map(|h| {
            let state = h.state.as_deref()?;
            Some((state, h.kind.ends_with("StateEntered"), h.epoch_ms))
        });
        for visit in state_visits(events) {
            let (Some(step), Some(ms)) = (Step::from_state_name(&visit.name), visit.duration_ms)
            else {
                continue;
            };
            samples.push(StepSample {
                step,
                megapixels,
                duration_ms: ms as f64,
            });
        }
    }
    if listed.is_empty() {
        bail!("stack {stack_name} has no successful execution to measure: process some objects first, or leave out --stack");
    }
    Ok((samples, listed.len()))
}
