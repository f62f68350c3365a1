//! Test harness for the end-to-end suite: one emulator and one deployed stack per test,
//! plus what a user would do with them (upload, wait, read the output bucket).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_lambda::primitives::Blob;
use pipeline_aws::{Executions, ListedObject, ObjectLocation, ObjectRun, ObjectStore, S3Store};
use pipeline_core::payload::{Manifest, QuarantineReport};
use pipeline_emulator::local::{LocalPipeline, RepoPaths};
use pipeline_emulator::EmulatorOptions;
use serde_json::Value;

pub mod hostile;

/// How long a test waits for its executions.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

/// Whether the state machine's Retry backoff and Wait states take their real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waits {
    /// Instant (`SFN_WAIT_SCALE=0`): most tests.
    Instant,
    /// As written in the definition: tests that act between two attempts.
    Real,
}

/// A deployed pipeline on its own emulator. Dropping it stops everything.
pub struct TestPipeline {
    pub local: LocalPipeline,
    pub store: S3Store,
    pub executions: Executions,
}

impl TestPipeline {
    /// Starts an emulator and deploys the stack under `stack_name` (unique per test).
    pub async fn start(stack_name: &str) -> Result<Self> {
        Self::start_with_parameters(stack_name, Vec::new()).await
    }

    /// [`Self::start`] with template parameters (e.g. `("MaxObjectBytes", "1048576")`).
    pub async fn start_with_parameters(
        stack_name: &str,
        parameters: Vec<(String, String)>,
    ) -> Result<Self> {
        Self::start_with(stack_name, parameters, Waits::Instant).await
    }

    /// [`Self::start_with_parameters`], choosing whether Retry backoff really waits.
    pub async fn start_with(
        stack_name: &str,
        parameters: Vec<(String, String)>,
        waits: Waits,
    ) -> Result<Self> {
        let extra_env = match waits {
            // Retry backoff sleeps are instant, so retried steps don't slow the suite.
            Waits::Instant => vec![("SFN_WAIT_SCALE".into(), "0".into())],
            Waits::Real => Vec::new(),
        };
        Self::start_with_env(stack_name, parameters, extra_env).await
    }

    /// Like [`Self::start`] with MiniStack's persistence on (`PERSIST_STATE=1`,
    /// `S3_PERSIST=1`): its state and objects survive [`Self::restart_emulator`].
    pub async fn start_persistent(stack_name: &str) -> Result<Self> {
        let extra_env = [
            ("SFN_WAIT_SCALE", "0"),
            ("PERSIST_STATE", "1"),
            ("S3_PERSIST", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        Self::start_with_env(stack_name, Vec::new(), extra_env).await
    }

    /// Starts an emulator and deploys the SAM form of the stack through the SAM transform
    /// (see [`LocalPipeline::start_sam`]).
    pub async fn start_sam(stack_name: &str) -> Result<Self> {
        let options = EmulatorOptions {
            extra_env: vec![("SFN_WAIT_SCALE".into(), "0".into())],
            ..EmulatorOptions::default()
        };
        let local = LocalPipeline::start_sam(stack_name, &RepoPaths::from_workspace(), options)
            .await
            .context("deploying the SAM form on the emulator")?;
        Ok(Self::wrap(stack_name, local))
    }

    fn wrap(stack_name: &str, local: LocalPipeline) -> Self {
        announce(&format!(
            "e2e [{stack_name}] backend {} ({}): {}",
            local.backend.0.name(),
            local.backend.1,
            local.emulator.describe()
        ));
        let store = S3Store::new(local.clients.s3.clone());
        let executions = Executions::new(local.clients.sfn.clone());
        TestPipeline {
            local,
            store,
            executions,
        }
    }

    async fn start_with_env(
        stack_name: &str,
        parameters: Vec<(String, String)>,
        extra_env: Vec<(String, String)>,
    ) -> Result<Self> {
        let paths = RepoPaths::from_workspace();
        for f in pipeline_aws::deploy::FUNCTIONS {
            let zip = paths.artifacts.join(format!("{f}.zip"));
            if !zip.exists() {
                bail!(
                    "{} is missing: the e2e suite deploys the packaged functions; run `cargo xtask test` \
                     (or `cargo xtask package` first)",
                    zip.display()
                );
            }
        }
        let options = EmulatorOptions {
            extra_env,
            ..EmulatorOptions::default()
        };
        let local = LocalPipeline::start(stack_name, &paths, parameters, options)
            .await
            .context("starting the pipeline on the emulator")?;
        Ok(Self::wrap(stack_name, local))
    }

    /// Updates the deployed stack with these template parameters (same code).
    pub async fn redeploy(&mut self, parameters: Vec<(String, String)>) -> Result<()> {
        self.local
            .redeploy(&RepoPaths::from_workspace(), parameters)
            .await
            .context("redeploying the stack")
    }

    /// Restarts the emulator with its data (see [`LocalPipeline::restart_emulator`]) and
    /// points this pipeline's clients at it again.
    pub async fn restart_emulator(&mut self) -> Result<()> {
        self.local
            .restart_emulator()
            .await
            .context("restarting the emulator")?;
        announce(&format!(
            "e2e [{}] emulator restarted: {}",
            self.local.stack.stack_name,
            self.local.emulator.describe()
        ));
        self.store = S3Store::new(self.local.clients.s3.clone());
        self.executions = Executions::new(self.local.clients.sfn.clone());
        Ok(())
    }

    pub fn input_bucket(&self) -> &str {
        &self.local.stack.input_bucket
    }

    pub fn output_bucket(&self) -> &str {
        &self.local.stack.output_bucket
    }

    pub async fn upload(&self, key: &str, body: Vec<u8>) -> Result<()> {
        self.store
            .put(self.input_bucket(), key, body, "application/octet-stream")
            .await
            .with_context(|| format!("uploading {key}"))
    }

    /// Waits until `expected` executions exist and all have finished.
    pub async fn settle(&self, expected: usize) -> Result<Vec<ObjectRun>> {
        let runs = self
            .executions
            .wait_settled(
                &self.local.stack.state_machine_arn,
                expected,
                SETTLE_TIMEOUT,
                |_, _| {},
            )
            .await
            .map_err(|e| anyhow!(e))?;
        if runs.len() != expected || runs.iter().any(|r| r.detail.summary.status == "RUNNING") {
            bail!(
                "expected {expected} finished executions, got {}: {:#?}\n--- emulator log ---\n{}",
                runs.len(),
                runs.iter()
                    .map(|r| (&r.key, &r.detail.summary.status))
                    .collect::<Vec<_>>(),
                self.local.emulator.log_tail(60)
            );
        }
        Ok(runs)
    }

    /// All executions right now, without waiting.
    pub async fn runs_now(&self) -> Result<Vec<ObjectRun>> {
        self.executions
            .object_runs(&self.local.stack.state_machine_arn)
            .await
            .map_err(|e| anyhow!(e))
    }

    pub async fn output(&self, key: &str) -> Result<Vec<u8>> {
        self.store
            .get(ObjectLocation::latest(self.output_bucket(), key), u64::MAX)
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.output_bucket()))
    }

    pub async fn list_output(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        Ok(self.store.list(self.output_bucket(), prefix).await?)
    }

    pub async fn manifest(&self, source_key: &str) -> Result<Manifest> {
        let body = self.output(&format!("manifests/{source_key}.json")).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    pub async fn quarantine_report(&self, source_key: &str) -> Result<QuarantineReport> {
        let body = self
            .output(&format!("quarantine/reports/{source_key}.json"))
            .await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Invokes the ingest function directly with `event`, as S3 would; returns its report.
    pub async fn invoke_ingest(&self, event: &Value) -> Result<Value> {
        self.invoke("ingest", event).await
    }

    /// The deployed name of a function (`ingest`, `transform`, ...).
    pub fn function(&self, short: &str) -> Result<&str> {
        self.local
            .stack
            .function(short)
            .ok_or_else(|| anyhow!("stack has no {short} function"))
    }

    /// Sets (`Some`) or removes (`None`) environment variables of a function, and
    /// optionally its timeout, as an operator would with UpdateFunctionConfiguration,
    /// then publishes it and moves the function's `live` alias to it.
    pub async fn configure_function(
        &self,
        short: &str,
        vars: &[(&str, Option<&str>)],
        timeout_seconds: Option<i32>,
    ) -> Result<()> {
        let name = self.function(short)?;
        let lambda = &self.local.clients.lambda;
        let current = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .with_context(|| format!("reading the configuration of {name}"))?;
        let mut env = current
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        for (k, v) in vars {
            match v {
                Some(v) => env.insert((*k).to_string(), (*v).to_string()),
                None => env.remove(*k),
            };
        }
        lambda
            .update_function_configuration()
            .function_name(name)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(env))
                    .build(),
            )
            .set_timeout(timeout_seconds)
            .send()
            .await
            .with_context(|| format!("updating the configuration of {name}"))?;
        // Everything invokes the `live` alias: publish the change and move it there.
        pipeline_aws::releases::promote_latest(lambda, name, Duration::from_secs(30))
            .await
            .with_context(|| format!("promoting the new configuration of {name}"))?;
        Ok(())
    }

    /// Reserved concurrency of a function (the Lambda throttle).
    pub async fn set_reserved_concurrency(&self, short: &str, n: i32) -> Result<()> {
        let name = self.function(short)?;
        self.local
            .clients
            .lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(n)
            .send()
            .await
            .with_context(|| format!("setting the concurrency of {name}"))?;
        Ok(())
    }

    /// Invokes a function synchronously with `payload`; its result, or an error naming
    /// the function error.
    pub async fn invoke(&self, short: &str, payload: &Value) -> Result<Value> {
        let name = self.function(short)?;
        let out = self
            .local
            .clients
            .lambda
            .invoke()
            .function_name(name)
            .payload(Blob::new(serde_json::to_vec(payload)?))
            .send()
            .await
            .with_context(|| format!("invoking {short}"))?;
        let result: Value =
            serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or(b"null"))?;
        if let Some(err) = out.function_error() {
            bail!("{short} failed ({err}): {result}");
        }
        Ok(result)
    }

    /// An S3 ObjectCreated notification for an object in the input bucket, shaped and
    /// encoded exactly as AWS sends it.
    pub async fn recorded_event(&self, key: &str) -> Result<Value> {
        let head = self
            .store
            .head(ObjectLocation::latest(self.input_bucket(), key))
            .await?;
        Ok(object_created_event(
            self.input_bucket(),
            key,
            head.size,
            head.etag.as_deref(),
            head.version_id.as_deref(),
        ))
    }
}

/// The `pipeline` binary of this workspace (built by `cargo xtask test` before the tests),
/// next to the test executables' `deps/` folder.
pub fn pipeline_cli() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target dir")?;
    let cli = dir.join("pipeline");
    if !cli.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --workspace --bins --features integration-tests/e2e` \
             (`cargo xtask test` does)",
            cli.display()
        );
    }
    Ok(cli)
}

/// What a `pipeline` run printed, and whether it succeeded.
#[derive(Debug)]
pub struct CliRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `pipeline` CLI against the test's emulator, as a user would with
/// `AWS_ENDPOINT_URL`, whatever its exit status.
pub fn try_cli(p: &TestPipeline, args: &[&str]) -> Result<CliRun> {
    let out = std::process::Command::new(pipeline_cli()?)
        .args(args)
        .env("AWS_ENDPOINT_URL", p.local.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .context("running pipeline")?;
    Ok(CliRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    })
}

/// [`try_cli`], failing on a non-zero exit; returns stdout.
pub fn run_cli(p: &TestPipeline, args: &[&str]) -> Result<String> {
    let run = try_cli(p, args)?;
    if !run.success {
        bail!("pipeline {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    }
    Ok(run.stdout)
}

/// Writes one line to the real stderr, past the test harness's output capture, so the CI
/// log names every test's emulator (process or container) even when the test passes.
pub fn announce(line: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// An AWS-shaped `ObjectCreated:Put` event (event version 2.1) for one object, with a
/// fixed sequencer ([`pipeline_core::event::object_created_notification`]).
pub fn object_created_event(
    bucket: &str,
    key: &str,
    size: u64,
    etag: Option<&str>,
    version: Option<&str>,
) -> Value {
    let source = pipeline_core::payload::SourceObject {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version.map(str::to_string),
        sequencer: Some("0055AED6DCD90281E5".into()),
        etag: etag.map(str::to_string),
        size: Some(size),
    };
    pipeline_core::event::object_created_notification(&source, None)
        .unwrap_or_else(|_| serde_json::json!({"Records": []}))
}

/// Real photos come from a Debian wallpaper package (`ukui-wallpapers`, installed by
/// `.ci/run`); `PIPELINE_PHOTOS` points elsewhere.
pub fn photo(name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let dir = std::env::var_os("PIPELINE_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/backgrounds"));
    let path = dir.join(name);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "real test photo {} is missing: install it with `apt-get install ukui-wallpapers` \
             (.ci/run does) or set PIPELINE_PHOTOS",
            path.display()
        )
    })?;
    Ok((path, bytes))
}

/// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
pub fn jpeg_with_orientation_6(width: u32, height: u32) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    Ok(pipeline_core::transform::encode_jpeg_with_orientation(
        &img, 6, 90,
    )?)
}
