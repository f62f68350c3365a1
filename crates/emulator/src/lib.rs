//! Runs the MiniStack AWS emulator as a local child process for `pipeline demo` and the tests.
//!
//! # Lifecycle
//!
//! 1. **Install** ([`Venv::ensure`]): on first use, `python3 -m venv <dir>` and one
//!    `pip install ministack==MINISTACK_VERSION` (about 30 s). Concurrent callers queue on an
//!    exclusive lock on `<dir>.lock`; a marker file written after pip succeeded makes later
//!    calls instant and an interrupted install get redone.
//! 2. **Start** ([`Emulator::start`]): reserve a free port on 127.0.0.1, make a run dir
//!    `$TMPDIR/pipeline-emulator-<pid>-<n>-<nanos>`, spawn `<venv>/bin/ministack` in its own
//!    process group with stdin closed and stdout+stderr appended to the log, then poll
//!    `GET /_ministack/health` until 200 (about 0.5 s). If MiniStack exits first (e.g. the
//!    port was taken meanwhile) it is retried on a fresh port, 3 attempts in all.
//! 3. **Use** [`Emulator::endpoint`] (`http://127.0.0.1:<port>`) as `AWS_ENDPOINT_URL`.
//! 4. **Stop** ([`Emulator::stop`], or `Drop`, also while a test panics): SIGTERM to the
//!    process group, SIGKILL to it after 5 s, reap MiniStack, delete the run dir. On drop
//!    during a panic the log tail is printed first, so the failing test shows it.
//!
//! ```no_run
//! use pipeline_emulator::{Emulator, EmulatorOptions};
//!
//! let opts = EmulatorOptions {
//!     extra_env: vec![("SFN_WAIT_SCALE".into(), "0".into())],
//!     ..EmulatorOptions::default()
//! };
//! let emulator = Emulator::start(&opts)?;
//! println!("AWS_ENDPOINT_URL={}", emulator.endpoint());
//! emulator.stop()?;
//! # Ok::<(), pipeline_emulator::EmulatorError>(())
//! ```
//!
//! # What MiniStack 1.5.33 does, from its source, and what we set
//!
//! - **Port and bind**: `GATEWAY_PORT` (beats `EDGE_PORT`, default 4566), `BIND_HOST`
//!   (default 0.0.0.0, we use 127.0.0.1). Before binding it refuses a port that already
//!   answers, exiting with status 1; only then does it write `$TMPDIR/ministack-<port>.pid`.
//!   Start-up therefore also requires that pid file to hold our child's pid.
//! - **Lambda executor**: `provided.*` runtimes run the unpacked `bootstrap` as a local
//!   subprocess against an in-process Runtime API unless `LAMBDA_EXECUTOR=docker`,
//!   `LAMBDA_STRICT=1` or an Image package; we pin `LAMBDA_EXECUTOR=local` and
//!   `LAMBDA_STRICT=0`. Function processes get a copy of MiniStack's whole environment
//!   plus `AWS_ENDPOINT_URL`, so the caller's `AWS_*` variables are removed before ours
//!   are set.
//! - **Data**: state is in memory. Persistence is opt-in (`PERSIST_STATE=1` to
//!   `STATE_DIR`, default `/tmp/ministack-state`; `S3_PERSIST=1` to `S3_DATA_DIR`, default
//!   `/tmp/ministack-data/s3`); we force both off and point both dirs into the run dir
//!   (Cognito writes its signing key to `STATE_DIR` even without persistence). Unpacked
//!   function code and the pid file go to `tempfile.gettempdir()`, i.e. `TMPDIR` = run dir.
//! - **Process groups**: function workers (`provided` bootstraps, Python/Node workers) are
//!   started with plain `subprocess.Popen`, no new session, so they stay in MiniStack's
//!   group and one `killpg` reaches them all. Warm workers live up to
//!   `LAMBDA_WARM_TTL_SECONDS` (default 300 s) and survive a SIGTERM of MiniStack alone.
//! - **Side listeners**: IoT's mTLS MQTT listener binds the fixed port 8883 by default and
//!   would clash between parallel emulators: `IOT_MTLS_ENABLED=0`. `SFTP_ENABLED=0` skips
//!   the Transfer SFTP listener. Both also shorten start-up.
//! - Useful `extra_env`: `SFN_WAIT_SCALE=0` (instant Wait states and Retry sleeps),
//!   `LAMBDA_WARM_TTL_SECONDS`, `LOG_LEVEL=DEBUG`.

pub mod backend;
pub mod container;
mod emulator;
mod error;
mod health;
pub mod local;
pub mod owner;
mod pins;
mod venv;

pub use backend::Backend;
pub use container::ContainerEmulator;
pub use emulator::{Emulator, EmulatorOptions};
pub use error::EmulatorError;
pub use pins::{MINISTACK_VERSION, SAM_TRANSLATOR_VERSION};
pub use venv::Venv;

/// The last `n` lines of `text`, joined with `\n`.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_longer_text_keeps_only_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    }

    #[test]
    fn last_lines_shorter_text_keeps_everything() {
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 5), "");
    }
}
