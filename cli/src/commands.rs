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

use crate::progress::Progress;
use crate::retry::{plan_retries, PastRun};
use crate::{samples, table};
use pipeline_aws::{ExecutionStarter, ExecutionSummary, SfnStarter, StartOutcome};
use pipeline_cli::console::{self, model::ExecutionRow, RowCache};

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
    upload_all(&store, &local.stack.input_bucket, files, "demo: uploading").await?;
    let executions = Executions::new(local.clients.sfn.clone());
    let mut progress = Progress::new("demo: waiting for executions", total as u64, "finished");
    let runs = executions
        .wait_settled(
            &local.stack.state_machine_arn,
            total,
            WAIT,
            |done, total| progress.set(done as u64, total as u64, ""),
        )
        .await
        .map_err(|e| anyhow!(e))?;
    progress.finish();
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

/// Uploads `(key, body)` pairs to `bucket` with a progress bar over the bytes.
async fn upload_all(
    store: &S3Store,
    bucket: &str,
    files: Vec<(String, Vec<u8>)>,
    label: &'static str,
) -> Result<()> {
    let total_bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let count = files.len();
    let mut progress = Progress::new(label, total_bytes, "bytes");
    let mut sent = 0u64;
    for (i, (key, body)) in files.into_iter().enumerate() {
        let bytes = body.len() as u64;
        store
            .put(bucket, &key, body, "application/octet-stream")
            .await
            .with_context(|| format!("uploading {key}"))?;
        sent += bytes;
        progress.set(
            sent,
            total_bytes,
            &format!("[{}/{count}] s3://{bucket}/{key} ({bytes} bytes)", i + 1),
        );
    }
    progress.finish();
    Ok(())
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
    let mut bodies = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        bodies.push((format!("{prefix}{name}"), body));
    }
    upload_all(&store, &stack.input_bucket, bodies, "uploading").await?;
    Ok(ExitCode::SUCCESS)
}

/// The stack's clients, outputs, execution reader and current executions.
async fn stack_executions(
    stack: &str,
) -> Result<(Clients, PipelineStack, Executions, Vec<ExecutionSummary>)> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack).await?;
    let executions = Executions::new(clients.sfn.clone());
    let summaries = executions
        .list(&stack.state_machine_arn)
        .await
        .map_err(|e| anyhow!(e))?;
    Ok((clients, stack, executions, summaries))
}

pub async fn executions(name: Option<&str>, stack: &str) -> Result<ExitCode> {
    let (_, _, executions, summaries) = stack_executions(stack).await?;
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

/// `executions --watch`: the list, refreshed every 2 s until Ctrl-C. On a terminal the
/// screen is redrawn; otherwise each refresh is printed when the table changed.
pub async fn watch_executions(stack: &str) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack).await?;
    let executions = Executions::new(clients.sfn.clone());
    let cache = RowCache::default();
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let rows = cache.rows(&executions, &stack.state_machine_arn).await?;
        let rows = console::model::filter_rows(rows, None);
        let counters = console::model::Counters::of(&rows, now_ms());
        let table = format!(
            "{}\nprocessed={} quarantined={} failed={} running={} objects/min={:.1}",
            execution_table(&rows),
            counters.processed,
            counters.quarantined,
            counters.failed,
            counters.running,
            counters.per_minute
        );
        if terminal {
            print!("\x1b[2J\x1b[H{table}\n\n(refreshing every 2 s; Ctrl-C to stop)\n");
        } else if table != last {
            println!("{table}\n");
        }
        last = table;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn execution_table(rows: &[ExecutionRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                match &r.error {
                    Some(e) => format!("{} ({e})", r.status),
                    None => r.status.to_string(),
                },
                table::duration(r.duration_ms),
                r.name.clone(),
            ]
        })
        .collect();
    table::render(&["object", "status", "duration", "execution"], &rows)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `console`: serves the web console until Ctrl-C.
pub async fn console(stack: &str, listen: std::net::SocketAddr) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "console: stack {} (input s3://{}), serving http://{addr}/ (Ctrl-C to stop)",
        stack.stack_name, stack.input_bucket
    );
    tokio::select! {
        served = console::serve(listener, &clients, stack) => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `logs`: every stream of the function's log group, oldest first; with `follow`, polls
/// for new streams and lines until Ctrl-C.
pub async fn logs(function: &str, stack: &str, follow: bool) -> Result<ExitCode> {
    let config = load_sdk_config().await;
    let clients = Clients::new(&config);
    let stack = PipelineStack::describe(&clients, stack).await?;
    let name = stack
        .function(function)
        .map(str::to_string)
        .or_else(|| {
            stack
                .functions
                .iter()
                .any(|(_, n)| n == function)
                .then(|| function.to_string())
        })
        .ok_or_else(|| {
            anyhow!(
                "{function} is not a function of stack {}: one of {}",
                stack.stack_name,
                stack
                    .functions
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let group = format!("/aws/lambda/{name}");
    let logs = pipeline_aws::logs::Logs::new(&config);
    eprintln!("logs: {group}");
    let mut tokens: std::collections::BTreeMap<String, Option<String>> = Default::default();
    loop {
        let streams = logs.streams(&group).await.map_err(|e| anyhow!(e))?;
        for stream in streams {
            let token = tokens.get(&stream.name).cloned().flatten();
            let (events, next) = logs
                .events(&group, &stream.name, token.clone())
                .await
                .map_err(|e| anyhow!(e))?;
            // An unchanged token means nothing new was read (CloudWatch answers the same
            // token again at the end of a stream).
            if token.is_none() || next != token {
                for e in &events {
                    println!("{} {} {}", format_ms(e.epoch_ms), stream.name, e.message);
                }
            }
            tokens.insert(stream.name, next);
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `retry`: one new execution per object whose latest execution was quarantined.
pub async fn retry(stack: &str) -> Result<ExitCode> {
    let (clients, stack, executions, summaries) = stack_executions(stack).await?;
    let mut runs = Vec::new();
    for s in &summaries {
        let detail = executions.describe(&s.arn).await.map_err(|e| anyhow!(e))?;
        let row = ExecutionRow::from_detail(&detail);
        runs.push(PastRun {
            name: row.name,
            status: row.status,
            start_ms: row.start_ms,
            input: detail.input,
        });
    }
    let plans = plan_retries(&runs);
    if plans.is_empty() {
        eprintln!(
            "retry: nothing to start (no object version whose latest execution is a finished \
             quarantine with no execution still running)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let starter = SfnStarter::new(clients.sfn.clone(), stack.state_machine_arn.clone());
    let mut failed = 0;
    for plan in &plans {
        match starter.start(&plan.name, &plan.input).await {
            Ok(StartOutcome::Started { .. }) => {
                println!("started  {}  {}", plan.name, plan.key);
            }
            Ok(StartOutcome::AlreadyExists) => {
                println!("exists   {}  {} (already retried)", plan.name, plan.key);
            }
            Err(e) => {
                failed += 1;
                eprintln!("retry: {}: {e}", plan.key);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
