//! The one error type of this crate: every message says what failed and what to do about it.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while installing, starting or stopping MiniStack.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("python3 not found: install Python 3.10+ (apt-get install python3 python3-venv)")]
    PythonNotFound,

    #[error(
        "python3 is {found}, MiniStack {version} needs Python 3.10+: install a newer python3 \
         (apt-get install python3 python3-venv)"
    )]
    PythonTooOld {
        found: String,
        version: &'static str,
    },

    #[error(
        "`python3 -m venv {dir}` failed ({status}); on Debian/Ubuntu install the venv module \
         (apt-get install python3-venv). Output:\n{output}"
    )]
    VenvCreate {
        dir: PathBuf,
        status: ExitStatus,
        output: String,
    },

    #[error(
        "pip could not install ministack=={version} into {dir} ({status}); check access to \
         PyPI (proxy, PIP_INDEX_URL), or delete {dir} and retry. Output:\n{output}"
    )]
    PipInstall {
        version: &'static str,
        dir: PathBuf,
        status: ExitStatus,
        output: String,
    },

    #[error("pip reported success but {bin} is missing: delete {dir} and retry")]
    MissingBinary { bin: PathBuf, dir: PathBuf },

    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not reserve a free port on 127.0.0.1: {0}")]
    NoFreePort(#[source] std::io::Error),

    #[error(
        "MiniStack exited before it became healthy ({status}), {attempts} attempt(s) on fresh \
         ports; last lines of its log {log}:\n{tail}"
    )]
    ExitedEarly {
        status: String,
        attempts: u32,
        log: PathBuf,
        tail: String,
    },

    #[error(
        "MiniStack did not become healthy within {}s; last lines of its log {log}:\n{tail}",
        timeout.as_secs()
    )]
    NotHealthy {
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },

    #[error("could not signal MiniStack's process group {pgid}: {source}")]
    Signal {
        pgid: u32,
        #[source]
        source: nix::errno::Errno,
    },

    #[error("{name} is {value:?}; expected {expected}")]
    BadSetting {
        name: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "the {backend} emulator backend needs a Docker engine, and none answers ({detail}); \
         start Docker, or use PIPELINE_EMULATOR=process"
    )]
    DockerUnavailable {
        backend: &'static str,
        detail: String,
    },

    #[error("image {image} is not in the local Docker engine and cannot be pulled here; {hint}")]
    ImageMissing { image: String, hint: String },

    #[error("starting the {image} container failed: {detail}")]
    ContainerStart { image: String, detail: String },

    #[error(
        "the emulator container {name} did not become healthy within {}s; its last log lines:\n{tail}",
        timeout.as_secs()
    )]
    ContainerNotHealthy {
        name: String,
        timeout: Duration,
        tail: String,
    },
}

impl EmulatorError {
    /// Shorthand for [`EmulatorError::Io`] in `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
