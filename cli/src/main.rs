//! The `pipeline` command: run the demo on the embedded emulator, upload, watch executions,
//! read logs, retry quarantined objects, serve the web console, deploy.

mod catalog;
mod commands;
mod cost;
mod load;
mod operate;
mod progress;
mod release;
mod retry;
mod samples;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pipeline",
    version,
    about = "s3-pipeline: process files the moment they land in S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the embedded emulator, deploy the stack, upload files, wait, print a report.
    Demo {
        /// Upload every file under DIR instead of the built-in samples.
        #[arg(long, value_name = "DIR")]
        input: Option<PathBuf>,
        /// Folder with the function zips (from `cargo xtask package`).
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
    },
    /// Upload files to the stack's input bucket (uses the usual AWS configuration,
    /// e.g. AWS_ENDPOINT_URL for an emulator).
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Key prefix for the uploaded objects.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// List executions, or show one execution's states with durations.
    Executions {
        /// An execution name to show in detail.
        name: Option<String>,
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Refresh the list every 2 seconds until interrupted (Ctrl-C).
        #[arg(long, conflicts_with = "name")]
        watch: bool,
    },
    /// Serve the web console (executions, graph, history, thumbnails, upload) on a local port.
    Console {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Print a function's CloudWatch Logs (all its streams), optionally following new lines.
    Logs {
        /// ingest, inspect, transform, load, quarantine, or a full function name.
        function: String,
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Keep polling for new lines until interrupted (Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Start a new execution for every object whose latest execution ended in quarantine
    /// (deterministic names: running it again while retries run starts nothing more).
    Retry {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
    },
    /// Load test on the embedded emulator: upload N keys from W parallel writers (every
    /// fifth twice), deliver recorded events again, run one reconcile pass, check every key
    /// against its newest version, print one summary line (exit 1 if anything is lost,
    /// duplicated or stale).
    Load {
        #[arg(long, default_value_t = 200)]
        objects: usize,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        /// Folder with the function zips (from `cargo xtask package`).
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
    },
    /// Start executions for input objects that still have no manifest or quarantine report
    /// after a grace period (what the scheduled reconcile function does), under the same
    /// deterministic names, so nothing already started is started again.
    Reconcile {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Only keys under this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Leave objects younger than this to their S3 event.
        #[arg(long, default_value_t = 900)]
        grace_seconds: u64,
        /// Starts in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Process objects that were in the input bucket before the pipeline (or outside its
    /// notification filter): start one execution per object without a result. Running it
    /// twice starts nothing new.
    Backfill {
        /// `s3://<input bucket>/<prefix>`
        url: String,
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Starts in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// List the S3 events ingest failed to handle (its on-failure SQS queue); `--replay`
    /// invokes ingest again with each and deletes the ones that succeed.
    FailedEvents {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        #[arg(long)]
        replay: bool,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// The catalog: per-prefix counts of processed, quarantined and superseded object
    /// versions (kept from the catalog table's stream), or, with KEY, every recorded
    /// version of that key and which one is the latest.
    Catalog {
        /// A source key, exactly as stored in the input bucket.
        key: Option<String>,
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
    },
    /// Estimate the monthly AWS cost of a workload (Lambda GB-seconds, Step Functions
    /// STANDARD against EXPRESS, S3 requests and storage, logs) and explain when EXPRESS
    /// is cheaper and what idempotency it gives up.
    Cost(cost::CostArgs),
    /// Show each function's published versions and which one its `live` alias (what S3,
    /// the state machine and the schedule invoke) points at.
    Releases {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
    },
    /// Move the `live` alias back to the previous published version (of every function,
    /// or of one). The next deploy that changes anything publishes and moves it forward.
    Rollback {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Only this function (ingest, inspect, transform, load, quarantine, reconcile).
        #[arg(long)]
        function: Option<String>,
        /// This version instead of the previous one (needs --function).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Deploy (create or update) the stack through CloudFormation.
    Deploy {
        #[arg(long, default_value = "s3-pipeline")]
        stack: String,
        /// Folder with the function zips (from `cargo xtask package`).
        #[arg(long, value_name = "DIR")]
        artifacts: PathBuf,
        /// An existing bucket (or one to create) for the zips and the definition.
        #[arg(long)]
        artifacts_bucket: String,
        /// Extra template parameters, e.g. `--param ThumbnailSizes=128,512`.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { input, artifacts } => commands::demo(input, artifacts).await,
        Command::Load {
            objects,
            writers,
            artifacts,
        } => load::load(objects, writers, artifacts).await,
        Command::Upload {
            files,
            stack,
            prefix,
        } => commands::upload(&files, &stack, &prefix).await,
        Command::Executions { name, stack, watch } => {
            if watch {
                commands::watch_executions(&stack).await
            } else {
                commands::executions(name.as_deref(), &stack).await
            }
        }
        Command::Console { stack, listen } => commands::console(&stack, listen).await,
        Command::Logs {
            function,
            stack,
            follow,
        } => commands::logs(&function, &stack, follow).await,
        Command::Retry { stack } => commands::retry(&stack).await,
        Command::Reconcile {
            stack,
            prefix,
            grace_seconds,
            concurrency,
        } => operate::reconcile(&stack, &prefix, grace_seconds, concurrency).await,
        Command::Backfill {
            url,
            stack,
            concurrency,
        } => operate::backfill(&stack, &url, concurrency).await,
        Command::FailedEvents { stack, replay, max } => {
            operate::failed_events(&stack, replay, max).await
        }
        Command::Catalog { key, stack } => catalog::catalog(&stack, key.as_deref()).await,
        Command::Cost(args) => cost::cost(args).await,
        Command::Releases { stack } => release::releases(&stack).await,
        Command::Rollback {
            stack,
            function,
            to,
        } => release::rollback(&stack, function.as_deref(), to).await,
        Command::Deploy {
            stack,
            artifacts,
            artifacts_bucket,
            params,
        } => commands::deploy(&stack, artifacts, artifacts_bucket, &params).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
