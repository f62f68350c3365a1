//! `pipeline load`: N keys from W parallel writers on the embedded emulator, every fifth
//! written twice while its first version runs; recorded events delivered again (duplicates,
//! older after newer); one reconcile pass; then a check of every key against what S3 says
//! its newest version is, and one summary line (see `LoadReport`).

mod check;
mod plan;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::stream::{self, StreamExt};
use pipeline_aws::deploy::PipelineStack;
use pipeline_aws::executions::{ExecutionDetail, ExecutionSummary};
use pipeline_aws::reconcile::{reconcile, ReconcileRequest, StartResult, MAX_GENERATIONS};
use pipeline_aws::{Executions, ObjectStore, S3Store, SfnStarter};
use pipeline_core::image_info::sha256_hex;
use pipeline_core::key::ObjectKey;
use pipeline_core::layout::OutputLayout;
use pipeline_core::payload::{ExecutionInput, Manifest, QuarantineReport};
use pipeline_core::report::{percentile, LoadReport, ObjectStatus};
use pipeline_emulator::local::{LocalPipeline, RepoPaths};
use pipeline_emulator::EmulatorOptions;
use tokio::sync::Mutex;

use self::check::{DecodedThumbnail, Pointer, Verdict, VersionRun};
use self::plan::{Content, VersionPlan};
use crate::samples::load_image;

const STACK: &str = "s3-pipeline-load";

/// Where the keys go in the input bucket (`plan::key_of`).
const KEY_PREFIX: &str = "load/";

/// How long after its first version a key's second version is uploaded: the first one's
/// execution has started (about 55 ms after the PUT) and is still running (about 300 ms).
const SECOND_VERSION_DELAY: Duration = Duration::from_millis(100);

/// How often executions are listed while waiting.
const POLL: Duration = Duration::from_millis(300);

/// How long the executions must stay settled before a wait ends: an event invoked
/// asynchronously may still start one.
const QUIET: Duration = Duration::from_secs(2);

/// How many problems of each kind are printed.
const SHOWN: usize = 5;

/// The largest manifest, report or thumbnail read back.
const MAX_READ: u64 = 16 << 20;

/// One version as uploaded.
#[derive(Debug, Clone)]
struct Uploaded {
    plan: VersionPlan,
    key: String,
    version_id: String,
    /// When PutObject was acknowledged.
    put_ms: i64,
    sha256: String,
}

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
    let stack = &local.stack;
    let executions = Executions::new(local.clients.sfn.clone());
    let arn = stack.state_machine_arn.as_str();
    let versions = plan::version_count(objects);
    let timeout = Duration::from_secs(60 + versions as u64);

    // 1. Uploads, every fifth key twice.
    let started_ms = now_ms();
    let uploads = upload(&local.clients.s3, &stack.input_bucket, objects, writers).await?;
    let upload_s = (now_ms() - started_ms) as f64 / 1000.0;
    eprintln!(
        "load: {versions} versions of {objects} keys uploaded in {upload_s:.1} s from {writers} writers"
    );

    // 2. Redelivery, while the executions run.
    wait_started(&executions, arn, versions).await?;
    let redelivered = redeliver(&local, &executions, &uploads, objects, writers).await?;

    // 3. Everything the events started, settled.
    let first = settle(&executions, arn, versions, timeout, "events").await?;
    let last_stop = first
        .iter()
        .filter_map(|e| e.stop_epoch_ms)
        .max()
        .unwrap_or(started_ms);

    // 4. One reconcile pass, as the schedule would run it, and what it started.
    let started = reconcile_once(&local).await?;
    let all = settle(
        &executions,
        arn,
        first.len() + started,
        timeout,
        "reconcile",
    )
    .await?;

    // 5. Every key and every version, from what S3 says.
    eprintln!(
        "load: checking {objects} keys (newest versions, manifests, reports, thumbnails) and {} executions...",
        all.len()
    );
    let details = describe_all(&executions, &all, writers).await?;
    let runs = VersionRuns::group(&details);
    let listed = list_versions(
        &S3Store::new(local.clients.s3.clone()),
        &stack.input_bucket,
        KEY_PREFIX,
    )
    .await?;
    let verdicts = judge_keys(&local, &uploads, &listed, objects, writers).await?;

    let mut lost = Vec::new();
    let mut stale = Vec::new();
    let (mut processed, mut quarantined) = (0, 0);
    for (key, verdict) in &verdicts {
        match verdict {
            Verdict::Processed => processed += 1,
            Verdict::Quarantined => quarantined += 1,
            Verdict::Lost(why) => lost.push(format!("{key}: {why}")),
            Verdict::Stale(why) => stale.push(format!("{key}: {why}")),
        }
    }
    let mut duplicated = Vec::new();
    let mut wrong = Vec::new();
    let mut latencies = Vec::new();
    for u in &uploads {
        let version_runs = runs.of_version(&u.key, &u.version_id);
        let plain: Vec<VersionRun> = version_runs.iter().map(|r| r.run.clone()).collect();
        let problems = check::duplicate_problems(&plain);
        if !problems.is_empty() {
            duplicated.push(format!(
                "{} version {}: {}",
                u.key,
                u.version_id,
                problems.join("; ")
            ));
        }
        if let Some(stop) = version_runs
            .iter()
            .min_by_key(|r| r.run.start_ms)
            .and_then(|r| r.stop_ms)
        {
            latencies.push(u64::try_from(stop - u.put_ms).unwrap_or(0));
        }
        let newest = listed.get(&u.key).and_then(|v| v.newest.as_deref()) == Some(&u.version_id);
        if let Some(last) = version_runs.iter().max_by_key(|r| r.run.start_ms) {
            if let Some(problem) = check::ending_problem(&last.run.outcome, u.plan.content, newest)
            {
                wrong.push((u, last.arn.clone(), problem));
            }
        }
    }
    // Did the run provoke what it means to? Second versions against their first ones.
    let (mut pairs, mut during, mut reversed) = (0, 0, 0);
    for u in uploads.iter().filter(|u| u.plan.ordinal == 1) {
        let Some(older) = uploads
            .iter()
            .find(|o| o.plan.index == u.plan.index && o.plan.ordinal == 0)
        else {
            continue;
        };
        let first_run = |v: &Uploaded| {
            runs.of_version(&v.key, &v.version_id)
                .iter()
                .min_by_key(|r| r.run.start_ms)
                .map(|r| (r.run.start_ms, r.stop_ms))
        };
        let Some(first) = first_run(older) else {
            continue;
        };
        let o = check::overlap(first, u.put_ms, first_run(u));
        pairs += 1;
        during += usize::from(o.uploaded_while_running);
        reversed += usize::from(o.newer_finished_first);
    }
    eprintln!(
        "load: second versions: {pairs} keys; {during} uploaded while the first version's execution ran; {reversed} finished before the first version's"
    );
    for stray in &runs.strays {
        duplicated.push(stray.clone());
    }
    for (key, v) in &listed {
        let uploaded = uploads.iter().filter(|u| &u.key == key).count();
        if v.count != uploaded {
            stale.push(format!(
                "{key}: S3 lists {} version(s), {uploaded} were uploaded",
                v.count
            ));
        }
    }

    let report = LoadReport {
        objects,
        versions: uploads.len(),
        redelivered,
        processed,
        quarantined,
        lost: lost.len(),
        duplicated: duplicated.len(),
        stale: stale.len(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        objects_per_s: objects as f64 / ((last_stop - started_ms).max(1) as f64 / 1000.0),
    };
    print_problems("lost", "key(s) whose newest version has no result", &lost);
    print_problems(
        "stale",
        "key(s) whose result is not the newest version's",
        &stale,
    );
    print_problems(
        "duplicated",
        "version(s) with more executions or results than planned",
        &duplicated,
    );
    let mut wrong_lines = Vec::new();
    for (u, arn, problem) in &wrong {
        // Why: the last failed task attempt in the history (a Fail state's own error only
        // says where to look), for the few that are printed.
        let why = if wrong_lines.len() < SHOWN {
            last_failure(&executions, &details, arn).await
        } else {
            String::new()
        };
        wrong_lines.push(format!(
            "{} version {} ({}): {problem}{why}",
            u.key,
            u.version_id,
            u.plan.content.label()
        ));
    }
    print_problems(
        "wrong",
        "version(s) ended differently than their content implies",
        &wrong_lines,
    );
    println!("{report}");
    Ok(if report.failed() || !wrong.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Uploads every planned version from `writers` parallel writers, each taking the next key;
/// a key's second version follows its first after [`SECOND_VERSION_DELAY`].
async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    objects: usize,
    writers: usize,
) -> Result<Vec<Uploaded>> {
    let total = plan::version_count(objects);
    eprintln!("load: uploading {total} versions of {objects} keys from {writers} writers...");
    let next = Arc::new(AtomicUsize::new(0));
    let uploaded: Arc<Mutex<Vec<Uploaded>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (s3, bucket, next, uploaded) = (
            s3.clone(),
            bucket.to_string(),
            next.clone(),
            uploaded.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= objects {
                    return Ok::<(), anyhow::Error>(());
                }
                for v in plan::versions(i) {
                    if v.ordinal > 0 {
                        tokio::time::sleep(SECOND_VERSION_DELAY).await;
                    }
                    let u = put_version(&s3, &bucket, v).await?;
                    let mut all = uploaded.lock().await;
                    all.push(u);
                    let done = all.len();
                    if done % (total / 10).max(1) == 0 || done == total {
                        eprintln!("load: uploaded {done}/{total}");
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| anyhow!("writer task: {e}"))??;
    }
    let mut all = std::mem::take(&mut *uploaded.lock().await);
    all.sort_by_key(|u| (u.plan.index, u.plan.ordinal));
    Ok(all)
}

async fn put_version(s3: &aws_sdk_s3::Client, bucket: &str, v: VersionPlan) -> Result<Uploaded> {
    let body = load_image(v.index, v.shade, v.content == Content::Truncated)?;
    let sha256 = sha256_hex(&body);
    let key = plan::key_of(v.index);
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("image/jpeg")
        .body(ByteStream::from(body))
        .send()
        .await
        .with_context(|| format!("uploading {key}"))?;
    let version_id = out
        .version_id()
        .filter(|id| !id.is_empty() && *id != "null")
        .with_context(|| {
            format!("PutObject of {key} returned no VersionId: is s3://{bucket} versioned?")
        })?
        .to_string();
    Ok(Uploaded {
        plan: v,
        key,
        version_id,
        put_ms: now_ms(),
        sha256,
    })
}

/// Waits until there are as many executions as uploaded versions (each event started
/// one), or a minute passes (events may be lost: the reconciler's job).
async fn wait_started(executions: &Executions, arn: &str, versions: usize) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_tenth = usize::MAX;
    loop {
        let n = executions.list(arn).await.map_err(|e| anyhow!(e))?.len();
        let tenth = n * 10 / versions.max(1);
        if tenth != last_tenth {
            last_tenth = tenth;
            eprintln!("load: executions started {n}/{versions}");
        }
        if n >= versions {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("load: only {n} of {versions} versions started an execution within 60 s");
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Delivers recorded events to ingest again (see [`plan::redeliveries`]), rebuilt from the
/// inputs of the executions they started, asynchronously as S3 invokes it. Returns how
/// many were delivered.
async fn redeliver(
    local: &LocalPipeline,
    executions: &Executions,
    uploads: &[Uploaded],
    objects: usize,
    writers: usize,
) -> Result<usize> {
    let groups = plan::redeliveries(objects);
    let planned: usize = groups.iter().map(Vec::len).sum();
    eprintln!("load: redelivery: reading back the events ingest received...");
    let listed = executions
        .list(&local.stack.state_machine_arn)
        .await
        .map_err(|e| anyhow!(e))?;
    let details = describe_all(executions, &listed, writers).await?;
    // The first execution of each version holds the event as ingest received it.
    let mut inputs: BTreeMap<(String, String), (i64, ExecutionInput)> = BTreeMap::new();
    for d in &details {
        let Some(input) = parse_input(d) else {
            continue;
        };
        let Some(version) = input.source.version_id.clone() else {
            continue;
        };
        let at = d.summary.start_epoch_ms;
        let slot = inputs.entry((input.source.key.clone(), version));
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((at, input));
            }
            std::collections::btree_map::Entry::Occupied(mut o) if o.get().0 > at => {
                o.insert((at, input));
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
        }
    }
    let by_plan: BTreeMap<(usize, usize), &Uploaded> = uploads
        .iter()
        .map(|u| ((u.plan.index, u.plan.ordinal), u))
        .collect();
    // Ingest as the emulator's bucket notification invokes it (the unqualified function:
    // MiniStack ignores the async config of the `live` alias, see ARCHITECTURE.md).
    let ingest = local
        .stack
        .function("ingest")
        .context("the stack has no ingest function")?
        .to_string();
    eprintln!(
        "load: redelivery: {planned} events of {} keys to {ingest} (asynchronous invocations)...",
        groups.len()
    );
    let lambda = &local.clients.lambda;
    let done = AtomicUsize::new(0);
    let results: Vec<Result<usize>> = stream::iter(groups)
        .map(|group| {
            let (ingest, inputs, by_plan, done) = (&ingest, &inputs, &by_plan, &done);
            async move {
                let mut delivered = 0;
                for (index, ordinal) in group {
                    let Some(u) = by_plan.get(&(index, ordinal)) else {
                        continue;
                    };
                    let Some((_, input)) = inputs.get(&(u.key.clone(), u.version_id.clone()))
                    else {
                        eprintln!(
                            "load: redelivery: {} version {} started no execution: nothing to redeliver",
                            u.key, u.version_id
                        );
                        continue;
                    };
                    let event = plan::recorded_event(input)
                        .map_err(|e| anyhow!("{}: {e}", u.key))?;
                    let out = lambda
                        .invoke()
                        .function_name(ingest.as_str())
                        .invocation_type(InvocationType::Event)
                        .payload(Blob::new(serde_json::to_vec(&event)?))
                        .send()
                        .await
                        .with_context(|| format!("invoking {ingest} for {}", u.key))?;
                    if out.status_code() != 202 {
                        bail!(
                            "invoking {ingest} for {} answered {} (expected 202)",
                            u.key,
                            out.status_code()
                        );
                    }
                    delivered += 1;
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % (planned / 5).max(1) == 0 || n == planned {
                        eprintln!("load: redelivered {n}/{planned}");
                    }
                }
                Ok(delivered)
            }
        })
        .buffer_unordered(writers)
        .collect()
        .await;
    let mut delivered = 0;
    for r in results {
        delivered += r?;
    }
    Ok(delivered)
}

/// Waits until at least `expected` executions exist and none has run for [`QUIET`], or
/// `timeout` passes; returns the list.
async fn settle(
    executions: &Executions,
    arn: &str,
    expected: usize,
    timeout: Duration,
    phase: &str,
) -> Result<Vec<ExecutionSummary>> {
    eprintln!("load: waiting for the executions ({phase}) to finish...");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_tenth = usize::MAX;
    let mut quiet_since: Option<(tokio::time::Instant, usize)> = None;
    loop {
        let list = executions.list(arn).await.map_err(|e| anyhow!(e))?;
        let done = list
            .iter()
            .filter(|e| !check::is_running(&e.status))
            .count();
        let total = expected.max(list.len());
        let tenth = done * 10 / total.max(1);
        if tenth != last_tenth {
            last_tenth = tenth;
            eprintln!("load: executions finished {done}/{total}");
        }
        if list.len() >= expected && done == list.len() {
            match quiet_since {
                Some((since, n)) if n == list.len() => {
                    if since.elapsed() >= QUIET {
                        return Ok(list);
                    }
                }
                _ => quiet_since = Some((tokio::time::Instant::now(), list.len())),
            }
        } else {
            quiet_since = None;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "load: gave up waiting after {} s: {done} of {total} executions finished",
                timeout.as_secs()
            );
            return Ok(list);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One reconcile pass over the input bucket with no grace period, as the schedule would
/// run it once everything is older than its grace; returns how many it started.
async fn reconcile_once(local: &LocalPipeline) -> Result<usize> {
    let stack: &PipelineStack = &local.stack;
    eprintln!(
        "load: reconcile: one pass over s3://{} (grace 0 s)...",
        stack.input_bucket
    );
    let store = S3Store::new(local.clients.s3.clone());
    let starter = SfnStarter::new(local.clients.sfn.clone(), stack.state_machine_arn.clone());
    let request = ReconcileRequest {
        input_bucket: stack.input_bucket.clone(),
        prefix: String::new(),
        layout: OutputLayout::new(stack.output_bucket.clone()),
        grace_ms: 0,
        now_ms: now_ms(),
        concurrency: 8,
        max_generations: MAX_GENERATIONS,
    };
    let report = reconcile(
        &store,
        &starter,
        &request,
        &|n| eprintln!("load: reconcile: {n} version(s) without a result"),
        &|r| match r {
            StartResult::Started { key, name } => {
                eprintln!("load: reconcile: started {name} for {key}")
            }
            StartResult::Exhausted { key, last } => {
                eprintln!("load: reconcile: every generation failed up to {last} ({key})")
            }
            StartResult::Error { key, error } => {
                eprintln!("load: reconcile: could not start {key}: {error}")
            }
            StartResult::Running { .. } | StartResult::Succeeded { .. } => {}
        },
    )
    .await?;
    eprintln!("load: reconcile: {}", report.summary());
    Ok(report.started())
}

async fn describe_all(
    executions: &Executions,
    list: &[ExecutionSummary],
    concurrency: usize,
) -> Result<Vec<ExecutionDetail>> {
    let described: Vec<Result<ExecutionDetail, String>> = stream::iter(list)
        .map(|e| executions.describe(&e.arn))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    described
        .into_iter()
        .map(|d| d.map_err(|e| anyhow!(e)))
        .collect()
}

fn parse_input(d: &ExecutionDetail) -> Option<ExecutionInput> {
    serde_json::from_str(d.input.as_deref()?).ok()
}

/// An execution of one version, with where to find it.
struct RunOf {
    run: VersionRun,
    arn: String,
    stop_ms: Option<i64>,
}

/// Executions grouped by the version their input names.
struct VersionRuns {
    by_version: BTreeMap<(String, String), Vec<RunOf>>,
    /// Executions whose input names no version (or is not ours), described.
    strays: Vec<String>,
}

impl VersionRuns {
    fn group(details: &[ExecutionDetail]) -> Self {
        let mut by_version: BTreeMap<(String, String), Vec<RunOf>> = BTreeMap::new();
        let mut strays = Vec::new();
        for d in details {
            let name = &d.summary.name;
            let Some(input) = parse_input(d) else {
                strays.push(format!(
                    "execution {name}: its input is not an ExecutionInput"
                ));
                continue;
            };
            let Some(version) = input.source.version_id.clone() else {
                strays.push(format!(
                    "{}: execution {name} names no version",
                    input.source.key
                ));
                continue;
            };
            let run = VersionRun {
                name: name.clone(),
                status: d.summary.status.clone(),
                outcome: ObjectStatus::classify(
                    &d.summary.status,
                    d.output.as_deref(),
                    d.error.as_deref(),
                    d.cause.as_deref(),
                ),
                start_ms: d.summary.start_epoch_ms,
                generation: check::generation_of(&input.source, name, MAX_GENERATIONS),
            };
            by_version
                .entry((input.source.key, version))
                .or_default()
                .push(RunOf {
                    run,
                    arn: d.summary.arn.clone(),
                    stop_ms: d.summary.stop_epoch_ms,
                });
        }
        VersionRuns { by_version, strays }
    }

    /// The runs of one version.
    fn of_version(&self, key: &str, version: &str) -> &[RunOf] {
        self.by_version
            .get(&(key.to_string(), version.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What S3 lists for one key.
#[derive(Debug, Default)]
struct ListedKey {
    count: usize,
    /// The version ListObjectVersions marks `IsLatest`.
    newest: Option<String>,
}

/// Every version under `prefix`, by key: how many S3 holds and which is the newest.
async fn list_versions(
    store: &S3Store,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, ListedKey>> {
    let mut out: BTreeMap<String, ListedKey> = BTreeMap::new();
    for v in store
        .list_versions(bucket, prefix)
        .await
        .with_context(|| format!("ListObjectVersions s3://{bucket}/{prefix}"))?
    {
        let entry = out.entry(v.object.key).or_default();
        entry.count += 1;
        if v.is_latest {
            entry.newest = v.object.version_id;
        }
    }
    Ok(out)
}

/// Judges every key (see [`check::judge`]), reading its manifest, report and thumbnails.
async fn judge_keys(
    local: &LocalPipeline,
    uploads: &[Uploaded],
    listed: &BTreeMap<String, ListedKey>,
    objects: usize,
    concurrency: usize,
) -> Result<Vec<(String, Verdict)>> {
    let store = S3Store::new(local.clients.s3.clone());
    let layout = OutputLayout::new(local.stack.output_bucket.clone());
    let done = AtomicUsize::new(0);
    let judged: Vec<Result<(String, Verdict)>> = stream::iter(0..objects)
        .map(|i| {
            let (store, layout, done) = (&store, &layout, &done);
            async move {
                let key = plan::key_of(i);
                let newest = listed.get(&key).and_then(|l| l.newest.clone());
                let newest_upload = uploads
                    .iter()
                    .find(|u| Some(&u.version_id) == newest.as_ref());
                let object_key = ObjectKey::from_decoded(key.clone())?;
                let manifest = read_manifest(store, layout, &object_key, newest_upload).await?;
                let report = read_optional(
                    store,
                    &layout.bucket,
                    &layout.quarantine_report_key(&object_key),
                )
                .await?
                .map(|body| {
                    match serde_json::from_slice::<QuarantineReport>(&body) {
                        Ok(r) => Pointer {
                            version_id: r.source.version_id,
                            problems: Vec::new(),
                        },
                        Err(e) => Pointer {
                            version_id: None,
                            problems: vec![format!("the report does not parse: {e}")],
                        },
                    }
                });
                let verdict = check::judge(newest.as_deref(), manifest.as_ref(), report.as_ref());
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % (objects / 5).max(1) == 0 || n == objects {
                    eprintln!("load: checked {n}/{objects} keys");
                }
                Ok((key, verdict))
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    judged.into_iter().collect()
}

/// The key's manifest as a [`Pointer`]; when it names the newest version (`newest`), with
/// what is wrong with its checksum and thumbnails.
async fn read_manifest(
    store: &S3Store,
    layout: &OutputLayout,
    key: &ObjectKey,
    newest: Option<&Uploaded>,
) -> Result<Option<Pointer>> {
    let Some(body) = read_optional(store, &layout.bucket, &layout.manifest_key(key)).await? else {
        return Ok(None);
    };
    let manifest: Manifest = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Some(Pointer {
                version_id: None,
                problems: vec![format!("the manifest does not parse: {e}")],
            }))
        }
    };
    let mut problems = Vec::new();
    if let Some(u) = newest.filter(|u| manifest.source.version_id.as_deref() == Some(&u.version_id))
    {
        if manifest.sha256 != u.sha256 {
            problems.push(format!(
                "its sha256 {} is not the newest version's {}",
                manifest.sha256, u.sha256
            ));
        }
        if manifest.outputs.is_empty() {
            problems.push("it lists no thumbnails".into());
        }
        for t in &manifest.outputs {
            let decoded = match read_optional(store, &t.bucket, &t.key).await? {
                None => Err("is missing".to_string()),
                Some(bytes) => decode_thumbnail(&bytes),
            };
            problems.extend(check::thumbnail_problem(
                t,
                (manifest.width, manifest.height),
                u.plan.shade,
                decoded,
            ));
        }
    }
    Ok(Some(Pointer {
        version_id: manifest.source.version_id,
        problems,
    }))
}

fn decode_thumbnail(bytes: &[u8]) -> Result<DecodedThumbnail, String> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| format!("does not decode: {e}"))?
        .to_rgb8();
    let pixels = u64::from(img.width()) * u64::from(img.height());
    let red: u64 = img.pixels().map(|p| u64::from(p.0[0])).sum();
    Ok(DecodedThumbnail {
        width: img.width(),
        height: img.height(),
        mean_red: red as f64 / pixels.max(1) as f64,
    })
}

/// The object's bytes, `None` when there is none.
async fn read_optional(store: &S3Store, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(store
        .read_current(bucket, key, MAX_READ)
        .await?
        .map(|stored| stored.body))
}

/// `: last task failure E: C` (or the execution's own error and cause), truncated.
async fn last_failure(executions: &Executions, details: &[ExecutionDetail], arn: &str) -> String {
    let last = executions
        .task_failures(arn)
        .await
        .ok()
        .and_then(|f| f.last().cloned());
    let why: String = match last {
        Some((error, cause)) => format!("last task failure {error}: {cause}"),
        None => details
            .iter()
            .find(|d| d.summary.arn == arn)
            .map(|d| {
                [d.error.as_deref(), d.cause.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            })
            .unwrap_or_default(),
    };
    if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.chars().take(300).collect::<String>())
    }
}

/// `load: N <kind> <what>:` and the first [`SHOWN`] problems, each naming its key.
fn print_problems(kind: &str, what: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    eprintln!("load: {} {kind}: {what}:", problems.len());
    for p in problems.iter().take(SHOWN) {
        eprintln!("load:   {p}");
    }
    if problems.len() > SHOWN {
        eprintln!("load:   ... and {} more", problems.len() - SHOWN);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
