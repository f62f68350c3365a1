//! One running MiniStack: spawn in its own process group, wait for health, stop the group.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::health::{is_healthy, pick_free_port};
use crate::owner::{start_ticks_of, OwnerId};
use crate::{last_lines, EmulatorError, Venv};

/// Fresh ports tried when MiniStack exits during start-up (e.g. someone took the port).
const START_ATTEMPTS: u32 = 3;
/// Time between SIGTERM and SIGKILL of the process group.
const STOP_GRACE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Log lines quoted in start-up errors and after a panic.
const ERROR_TAIL_LINES: usize = 40;
/// Only the end of the log is read for a tail.
const MAX_TAIL_BYTES: u64 = 64 * 1024;

/// How to start MiniStack. `Default` gives the project venv, no extra env, 60 s timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// Venv holding MiniStack, created on first use (default [`Venv::default_location`]).
    pub venv_dir: PathBuf,
    /// Extra environment for MiniStack and, through it, every function process
    /// (e.g. `SFN_WAIT_SCALE=0`). Applied last, so it can override the defaults.
    pub extra_env: Vec<(String, String)>,
    /// Longest wait for `/_ministack/health` to answer 200, all attempts together.
    pub ready_timeout: Duration,
    /// Keep the log as `<log_dir>/ministack-<run id>.log` beyond `stop`. `None`: the log is
    /// `<run dir>/ministack.log` and is deleted with the run dir.
    pub log_dir: Option<PathBuf>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            venv_dir: Venv::default_location(),
            extra_env: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            log_dir: None,
        }
    }
}

/// A healthy MiniStack child process. Stopped by [`Emulator::stop`] or, best effort, on drop.
#[derive(Debug)]
pub struct Emulator {
    /// `None` once stopped.
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// Per-run TMPDIR/STATE_DIR; `None` once deleted.
    run_dir: Option<PathBuf>,
    log_path: PathBuf,
    /// What it was started with, for [`Emulator::restart`].
    options: EmulatorOptions,
}

impl Emulator {
    /// Installs MiniStack if needed, starts it on a free loopback port and waits until healthy.
    pub fn start(opts: &EmulatorOptions) -> Result<Emulator, EmulatorError> {
        let venv = Venv::ensure(&opts.venv_dir)?;
        sweep_orphans_once();
        let run_id = next_run_id();
        let run_dir = std::env::temp_dir().join(format!("pipeline-emulator-{run_id}"));
        let log_path = match &opts.log_dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(EmulatorError::io("create", dir))?;
                dir.join(format!("ministack-{run_id}.log"))
            }
            None => run_dir.join("ministack.log"),
        };
        fs::create_dir(&run_dir).map_err(EmulatorError::io("create", &run_dir))?;
        let started = start_in(&venv, &run_dir, log_path, opts);
        // On failure the run dir is kept only when it holds the log the error points to.
        if started.is_err() && opts.log_dir.is_some() {
            let _ = fs::remove_dir_all(&run_dir);
        }
        let (child, port, log_path) = started?;
        tracing::debug!(port, log = %log_path.display(), "MiniStack healthy");
        Ok(Emulator {
            pid: child.id(),
            child: Some(child),
            port,
            run_dir: Some(run_dir),
            log_path,
            options: opts.clone(),
        })
    }

    /// Stops MiniStack as [`Emulator::stop`] does (SIGTERM first, so with `PERSIST_STATE=1`
    /// it saves its state to the run dir) and starts it again on the same port with the
    /// same run dir, environment and log. Function processes die with the old group.
    /// Errors when the port was taken in between; the emulator is then stopped.
    pub fn restart(&mut self) -> Result<(), EmulatorError> {
        let Some(run_dir) = self.run_dir.clone() else {
            return Err(EmulatorError::BadSetting {
                name: "restart",
                value: "a stopped emulator".into(),
                expected: "a running emulator",
            });
        };
        unregister(self.pid);
        if let Some(mut child) = self.child.take() {
            terminate_group(&mut child)?;
        }
        let venv = Venv::ensure(&self.options.venv_dir)?;
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut child = spawn(
            &venv,
            self.port,
            &run_dir,
            &self.log_path,
            1,
            &self.options.extra_env,
        )?;
        register(child.id(), &run_dir);
        self.pid = child.id();
        let ready = wait_until_healthy(&mut child, self.port, &run_dir, deadline);
        self.child = Some(child);
        match ready {
            Ok(()) => Ok(()),
            Err(NotReady::Exited) => Err(EmulatorError::ExitedEarly {
                status: format!("exited on restart (port {} taken?)", self.port),
                attempts: 1,
                tail: tail_of(&self.log_path, ERROR_TAIL_LINES),
                log: self.log_path.clone(),
            }),
            Err(NotReady::TimedOut) => Err(EmulatorError::NotHealthy {
                timeout: self.options.ready_timeout,
                tail: tail_of(&self.log_path, ERROR_TAIL_LINES),
                log: self.log_path.clone(),
            }),
        }
    }

    /// `http://127.0.0.1:<port>`: an IP, so the S3 SDK keeps path-style addressing.
    pub fn endpoint(&self) -> String {
        endpoint_for(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// MiniStack's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// MiniStack's combined stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of(&self.log_path, lines)
    }

    /// Stops the whole process group (SIGTERM, SIGKILL after 5 s), reaps MiniStack and
    /// deletes the run dir. Reports the first error; cleanup is attempted regardless.
    pub fn stop(mut self) -> Result<(), EmulatorError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), EmulatorError> {
        unregister(self.pid);
        let stopped = match self.child.take() {
            Some(mut child) => terminate_group(&mut child).map(drop),
            None => Ok(()),
        };
        let removed = match self.run_dir.take() {
            Some(dir) => match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(EmulatorError::io("delete", dir)(e))
                }
                _ => Ok(()),
            },
            None => Ok(()),
        };
        stopped.and(removed)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            // Shown with the failing test's output, before the log is deleted.
            eprintln!(
                "MiniStack log {} (last {ERROR_TAIL_LINES} lines):\n{}",
                self.log_path.display(),
                self.log_tail(ERROR_TAIL_LINES)
            );
        }
        if let Err(e) = self.shutdown() {
            eprintln!("warning: {e}");
        }
    }
}

/// Where running process emulators are recorded, one `<pgid>.owner` file each, so a later
/// run can stop those whose owner was killed (their own process group outlives it).
fn registry_dir() -> PathBuf {
    std::env::temp_dir().join("pipeline-emulators")
}

/// Records MiniStack (`pgid`, its start time), its owner (this process) and its run dir.
fn register(pgid: u32, run_dir: &Path) {
    let (Some(owner), Some(leader)) = (OwnerId::current(), start_ticks_of(pgid)) else {
        return;
    };
    let dir = registry_dir();
    let record = format!(
        "owner={owner}\nleader={pgid}:{leader}\nrun_dir={}\n",
        run_dir.display()
    );
    let _ = fs::create_dir_all(&dir)
        .and_then(|()| fs::write(dir.join(format!("{pgid}.owner")), record));
}

fn unregister(pgid: u32) {
    let _ = fs::remove_file(registry_dir().join(format!("{pgid}.owner")));
}

/// A parsed registry record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Orphan {
    pub owner: OwnerId,
    pub leader: OwnerId,
    pub run_dir: PathBuf,
}

pub(crate) fn parse_record(text: &str) -> Option<Orphan> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    };
    Some(Orphan {
        owner: OwnerId::parse(field("owner")?)?,
        leader: OwnerId::parse(field("leader")?)?,
        run_dir: PathBuf::from(field("run_dir")?),
    })
}

/// Once per process: kills the process groups of emulators whose owner is gone (a test run
/// killed mid-way) and deletes their run dirs.
fn sweep_orphans_once() {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = fs::read_dir(registry_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(record) = fs::read_to_string(&path)
                .ok()
                .and_then(|t| parse_record(&t))
            else {
                let _ = fs::remove_file(&path);
                continue;
            };
            if record.owner.is_alive() {
                continue;
            }
            // Only the very process we recorded: a recycled pid has another start time.
            if record.leader.is_alive() {
                if let Ok(pgid) = i32::try_from(record.leader.pid) {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                eprintln!(
                    "emulator: stopped MiniStack pid {} left by killed run (owner {})",
                    record.leader.pid, record.owner
                );
            }
            let _ = fs::remove_dir_all(&record.run_dir);
            let _ = fs::remove_file(&path);
        }
    });
}

pub(crate) fn endpoint_for(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `<pid>-<counter>-<nanos>`: unique across processes, runs in one process, and reruns.
fn next_run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{n}-{nanos}", std::process::id())
}

/// Environment that makes MiniStack self-contained; see the crate docs for why each is set.
pub(crate) fn base_env(port: u16, run_dir: &Path) -> Vec<(&'static str, String)> {
    let run = run_dir.display().to_string();
    let mut env = vec![
        ("GATEWAY_PORT", port.to_string()),
        ("BIND_HOST", "127.0.0.1".into()),
        ("AWS_ENDPOINT_URL", endpoint_for(port)),
        ("TMPDIR", run.clone()),
        ("STATE_DIR", format!("{run}/state")),
        ("S3_DATA_DIR", format!("{run}/s3")),
    ];
    env.extend(shared_env());
    env
}

/// What MiniStack gets in every backend: fixed credentials and region, no persistence,
/// functions as local processes, no side listeners.
pub(crate) fn shared_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("PERSIST_STATE", "0".into()),
        ("S3_PERSIST", "0".into()),
        ("LAMBDA_EXECUTOR", "local".into()),
        ("LAMBDA_STRICT", "0".into()),
        ("IOT_MTLS_ENABLED", "0".into()),
        ("SFTP_ENABLED", "0".into()),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
}

fn spawn(
    venv: &Venv,
    port: u16,
    run_dir: &Path,
    log_path: &Path,
    attempt: u32,
    extra_env: &[(String, String)],
) -> Result<Child, EmulatorError> {
    use std::os::unix::process::CommandExt;

    let mut log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(EmulatorError::io("open", log_path))?;
    writeln!(
        log,
        "--- pipeline-emulator: MiniStack {} on 127.0.0.1:{port}, attempt {attempt}/{START_ATTEMPTS} ---",
        crate::MINISTACK_VERSION
    )
    .map_err(EmulatorError::io("write", log_path))?;
    let stderr_log = log
        .try_clone()
        .map_err(EmulatorError::io("open", log_path))?;

    let bin = venv.ministack_bin();
    let mut command = Command::new(&bin);
    // Function processes inherit MiniStack's environment: no AWS_* of the caller's
    // (profiles, session tokens, per-service endpoints) may leak into them.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .envs(base_env(port, run_dir))
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .current_dir(run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr_log))
        .process_group(0);
    command.spawn().map_err(EmulatorError::io("start", bin))
}

/// Spawns MiniStack until one attempt gets healthy: the child, its port and the log path.
fn start_in(
    venv: &Venv,
    run_dir: &Path,
    log_path: PathBuf,
    opts: &EmulatorOptions,
) -> Result<(Child, u16, PathBuf), EmulatorError> {
    let deadline = Instant::now() + opts.ready_timeout;
    let mut last_exit = String::from("status unknown");
    for attempt in 1..=START_ATTEMPTS {
        let port = pick_free_port()?;
        let mut child = spawn(venv, port, run_dir, &log_path, attempt, &opts.extra_env)?;
        // Recorded before it is healthy: a run killed during start-up leaves no orphan.
        register(child.id(), run_dir);
        let ready = wait_until_healthy(&mut child, port, run_dir, deadline);
        if ready.is_err() {
            unregister(child.id());
        }
        match ready {
            Ok(()) => return Ok((child, port, log_path)),
            Err(NotReady::Exited) => {
                // Nothing else runs in a group that never got healthy; reap the leader.
                last_exit = match terminate_group(&mut child) {
                    Ok(status) => status.to_string(),
                    Err(e) => e.to_string(),
                };
            }
            Err(NotReady::TimedOut) => {
                let _ = terminate_group(&mut child);
                return Err(EmulatorError::NotHealthy {
                    timeout: opts.ready_timeout,
                    tail: tail_of(&log_path, ERROR_TAIL_LINES),
                    log: log_path,
                });
            }
        }
    }
    Err(EmulatorError::ExitedEarly {
        status: last_exit,
        attempts: START_ATTEMPTS,
        tail: tail_of(&log_path, ERROR_TAIL_LINES),
        log: log_path,
    })
}

enum NotReady {
    Exited,
    TimedOut,
}

/// Healthy means: `/_ministack/health` answers 200 *and* our child wrote
/// `<TMPDIR>/ministack-<port>.pid`, which MiniStack does only after checking that the
/// port is free. So a foreign server that grabbed the port first is not mistaken for ours.
fn wait_until_healthy(
    child: &mut Child,
    port: u16,
    run_dir: &Path,
    deadline: Instant,
) -> Result<(), NotReady> {
    let pid_file = run_dir.join(format!("ministack-{port}.pid"));
    loop {
        if leader_exited(child) {
            return Err(NotReady::Exited);
        }
        if is_healthy(port) && pid_file_names(&pid_file, child.id()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::TimedOut);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn pid_file_names(path: &Path, pid: u32) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.trim() == pid.to_string())
}

/// SIGTERM to the group, up to [`STOP_GRACE`] for the leader to exit, SIGKILL to the group
/// (kills function processes that ignored SIGTERM), then reap the leader.
fn terminate_group(child: &mut Child) -> Result<ExitStatus, EmulatorError> {
    let pgid = child.id();
    // Linux pids fit in i32 (pid_max <= 2^22); i32::MAX would match no group.
    let group = Pid::from_raw(i32::try_from(pgid).unwrap_or(i32::MAX));
    let signal_group = |signal| match killpg(group, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(EmulatorError::Signal { pgid, source }),
    };
    let termed = signal_group(Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while !leader_exited(child) && Instant::now() < deadline {
        std::thread::sleep(POLL_INTERVAL);
    }
    let killed = signal_group(Signal::SIGKILL);
    let status = child.wait().map_err(EmulatorError::io(
        "wait for",
        format!("MiniStack pid {pgid}"),
    ))?;
    termed.and(killed).map(|()| status)
}

/// Whether the group leader has exited, without reaping it: an unreaped leader keeps its
/// pid, hence the group id, from being reused while we still signal the group.
#[cfg(target_os = "linux")]
fn leader_exited(child: &Child) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

    let Ok(pid) = i32::try_from(child.id()) else {
        return false;
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Without `waitid(WNOWAIT)` the leader is reaped here; the group id could then in theory
/// be reused before the SIGKILL that follows within microseconds.
#[cfg(not(target_os = "linux"))]
fn leader_exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// Last `lines` lines of the log, reading at most its last 64 KiB.
fn tail_of(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};

    let read_end = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read_end() {
        Ok(text) => last_lines(&text, lines),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_uses_project_venv_60s_and_no_log_dir() {
        let opts = EmulatorOptions::default();
        assert_eq!(opts.venv_dir, Venv::default_location());
        assert!(opts.extra_env.is_empty());
        assert_eq!(opts.ready_timeout, Duration::from_secs(60));
        assert_eq!(opts.log_dir, None);
    }

    #[test]
    fn endpoint_for_port_is_ip_not_localhost() {
        assert_eq!(endpoint_for(4566), "http://127.0.0.1:4566");
    }

    #[test]
    fn base_env_keeps_all_state_in_run_dir_and_persistence_off() {
        let env: std::collections::HashMap<_, _> =
            base_env(40123, Path::new("/tmp/run")).into_iter().collect();
        assert_eq!(env["GATEWAY_PORT"], "40123");
        assert_eq!(env["BIND_HOST"], "127.0.0.1");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:40123");
        assert_eq!(env["TMPDIR"], "/tmp/run");
        assert_eq!(env["STATE_DIR"], "/tmp/run/state");
        assert_eq!(env["S3_DATA_DIR"], "/tmp/run/s3");
        assert_eq!(env["PERSIST_STATE"], "0");
        assert_eq!(env["S3_PERSIST"], "0");
        assert_eq!(env["LAMBDA_EXECUTOR"], "local");
        assert_eq!(env["IOT_MTLS_ENABLED"], "0");
    }

    #[test]
    fn parse_record_reads_owner_leader_and_run_dir() {
        let record = parse_record("owner=10:20\nleader=30:40\nrun_dir=/tmp/run x\n").unwrap();
        assert_eq!(
            record.owner,
            OwnerId {
                pid: 10,
                start_ticks: 20
            }
        );
        assert_eq!(
            record.leader,
            OwnerId {
                pid: 30,
                start_ticks: 40
            }
        );
        assert_eq!(record.run_dir, PathBuf::from("/tmp/run x"));
        assert_eq!(parse_record("owner=10:20\nrun_dir=/x\n"), None);
    }

    #[test]
    fn next_run_id_two_calls_differ() {
        assert_ne!(next_run_id(), next_run_id());
    }

    #[test]
    fn tail_of_missing_file_says_so() {
        let tail = tail_of(Path::new("/nonexistent/ministack.log"), 5);
        assert!(
            tail.starts_with("(could not read /nonexistent/ministack.log"),
            "{tail}"
        );
    }

    #[test]
    fn pid_file_names_only_exact_pid() {
        let path = std::env::temp_dir().join(format!("emulator-pid-test-{}", std::process::id()));
        fs::write(&path, "1234\n").unwrap();
        assert!(pid_file_names(&path, 1234));
        assert!(!pid_file_names(&path, 123));
        fs::remove_file(&path).unwrap();
        assert!(!pid_file_names(&path, 1234));
    }
}
