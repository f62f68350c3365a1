//! The subcommands. Each prints what it is doing: nothing long runs silently.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use pipeline_aws::deploy::{deploy as deploy_stack, DeployRequest, PipelineStack};
use pipeline_aws::{
    load_sdk_config, Clients, Executions, ObjectLocation, ObjectRun, ObjectStore, S3Store,
};
use pipeline_core::payload::{ExecutionOutput, QuarantineReport};
use pipeline_core::report::{ObjectStatus, Summary};
use pipeline_emulator::local::{LocalPipeline, RepoPaths};
use pipeline_emulator::EmulatorOptions;

use crate::{samples, table};

const DEMO_STACK: &str = "demo";
const WAIT: Duration = Duration::from_secs(300);

pub async fn demo(input: Option<PathBuf>, artifacts: Option<PathBuf>) -> Result<ExitCode> {
    let files = match &input {
        Some(dir) => files_under(dir)?,
        None => samples::samples()?,
    };
    if files.is_empty() {
        bail!(
            "no files to upload under {}",
            input.as_deref().unwrap_or(Path::new("")).display()
        );
    }
    let mut paths = RepoPaths::from_workspace();
    if let Some(dir) = artifacts {
        paths.artifacts = dir;
    }
    eprintln!(
        "demo: starting the embedded emulator (MiniStack {}) and deploying the stack...",
        pipeline_emulator::MINISTACK_VERSION
    );
    let local =
        LocalPipeline::start(DEMO_STACK, &paths, Vec::new(), EmulatorOptions::default()).await?;
    eprintln!(
        "demo: emulator backend {} ({}): {}; input bucket s3://{}",
        local.backend.0.name(),
        local.backend.1,
        local.emulator.describe(),
        local.stack.input_bucket
    );
    let store = S3Store::new(local.clients.s3.clone());
    let total = files.len();
    for (i, (key, body)) in files.into_iter().enumerate() {
        let bytes = body.len();
        store
            .put(
                &local.stack.input_bucket,
                &key,
                body,
                "application/octet-stream",
            )
            .await
            .with_context(|| format!("uploading {key}"))?;
        eprintln!("demo: uploaded [{}/{total}] {key} ({bytes} bytes)", i + 1);
    }
    let executions = Executions::new(local.clients.sfn.clone());
    let runs = executions
        .wait_settled(
            &local.stack.state_machine_arn,
            total,
            WAIT,
            progress_printer(),
        )
        .await
        .map_err(|e| anyhow!(e))?;
    print_report(&store, &runs).await;
    let summary = Summary::of(runs.iter().map(|r| &r.status));
    let missing = total.saturating_sub(runs.len());
    if missing > 0 {
        eprintln!(
            "demo: {missing} upload(s) never started an execution within {} s",
            WAIT.as_secs()
        );
    }
    let summary = Summary {
        failed: summary.failed + missing,
        ..summary
    };
    println!("{summary}");
    Ok(if summary.failed + summary.running == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a progress line whenever the count of finished executions changes.
fn progress_printer() -> impl FnMut(usize, usize) {
    let mut last = None;
    move |done, total| {
        if last != Some((done, total)) {
            last = Some((done, total));
            eprintln!("demo: waiting for executions: {done}/{total} finished");
        }
    }
}

/// Every regular file under `dir`, keyed by its path relative to `dir` (with `/`).
fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let body =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                out.push((key, body));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn print_report(store: &S3Store, runs: &[ObjectRun]) {
    let mut rows = Vec::new();
    for run in runs {
        let detail = match (
            &run.status,
            run.detail
                .output
                .as_deref()
                .map(serde_json::from_str::<ExecutionOutput>),
        ) {
            (ObjectStatus::Processed, Some(Ok(ExecutionOutput::Processed(out)))) => {
                format!(
                    "{} thumbnails, manifest {}",
                    out.thumbnails.len(),
                    out.manifest.key
                )
            }
            (ObjectStatus::Quarantined { error }, Some(Ok(ExecutionOutput::Quarantined(q)))) => {
                let cause = report_cause(store, &q.report.bucket, &q.report.key).await;
                format!("{error}: {cause}")
            }
            (ObjectStatus::Failed { error, cause }, _) => format!("{error}: {cause}"),
            (ObjectStatus::Superseded { by }, _) => format!("a newer write holds the result: {by}"),
            _ => String::new(),
        };
        rows.push(vec![
            run.key.clone(),
            run.status.label().to_string(),
            run.path(),
            table::duration(run.duration_ms()),
            detail,
        ]);
    }
    println!(
        "{}",
        table::render(
            &["object", "status", "path", "duration", "outputs / reason"],
            &rows
        )
    );
}

async fn report_cause(store: &S3Store, bucket: &str, key: &str) -> String {
    match store
        .get(ObjectLocation::latest(bucket, key), 1 << 20)
        .await
    {
        Ok(body) => serde_json::from_slice::<QuarantineReport>(&body)
            .map(|r| r.cause)
            .unwrap_or_else(|e| format!("unreadable report: {e}")),
        Err(e) => format!("report not readable: {e}"),
    }
}

pub async fn aws_clients() -> Clients {
    Clients::new(&load_sdk_config().await)
}

pub async fn upload(files: &[PathBuf], stack: &str, prefix: &str) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack).await?;
    let store = S3Store::new(clients.s3.clone());
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let key = format!("{prefix}{name}");
        let bytes = body.len();
        store
            .put(&stack.input_bucket, &key, body, "application/octet-stream")
            .await?;
        eprintln!(
            "uploaded [{}/{}] s3://{}/{key} ({bytes} bytes)",
            i + 1,
            files.len(),
            stack.input_bucket
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn executions(name: Option<&str>, stack: &str) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack).await?;
    let executions = Executions::new(clients.sfn.clone());
    let summaries = executions
        .list(&stack.state_machine_arn)
        .await
        .map_err(|e| anyhow!(e))?;
    match name {
        None => {
            let mut rows = Vec::new();
            for s in &summaries {
                let run = executions
                    .object_run(&s.arn)
                    .await
                    .map_err(|e| anyhow!(e))?;
                rows.push(vec![
                    s.name.clone(),
                    run.status.label().to_string(),
                    run.key.clone(),
                    table::duration(run.duration_ms()),
                ]);
            }
            println!(
                "{}",
                table::render(&["execution", "status", "object", "duration"], &rows)
            );
        }
        Some(name) => {
            let s = summaries
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| anyhow!("no execution named {name}"))?;
            let run = executions
                .object_run(&s.arn)
                .await
                .map_err(|e| anyhow!(e))?;
            println!(
                "execution {}\nobject    {}\nstatus    {} ({})\nduration  {}\n",
                s.name,
                run.key,
                run.status.label(),
                run.detail.summary.status,
                table::duration(run.duration_ms())
            );
            let rows: Vec<Vec<String>> = run
                .visits
                .iter()
                .map(|v| vec![v.name.clone(), table::duration(v.duration_ms)])
                .collect();
            println!("{}", table::render(&["state", "duration"], &rows));
            if let Some(output) = &run.detail.output {
                println!("\noutput: {output}");
            }
            if let (Some(e), c) = (&run.detail.error, &run.detail.cause) {
                println!("\nerror: {e}: {}", c.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deploy(
    stack: &str,
    artifacts: PathBuf,
    artifacts_bucket: String,
    params: &[String],
) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let paths = RepoPaths::from_workspace();
    let parameters = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--param {p:?} is not KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "deploying stack {stack} (artifacts from {})...",
        artifacts.display()
    );
    let request = DeployRequest {
        stack_name: stack.to_string(),
        template_path: paths.template,
        definition_path: paths.definition,
        artifacts_dir: artifacts,
        artifacts_bucket,
        parameters,
        timeout: Duration::from_secs(900),
    };
    let out = deploy_stack(&clients, &request).await?;
    println!(
        "input bucket   s3://{}\noutput bucket  s3://{}\nstate machine  {}",
        out.input_bucket, out.output_bucket, out.state_machine_arn
    );
    Ok(ExitCode::SUCCESS)
}
