//! A run killed mid-way leaves its emulator behind (MiniStack has its own process group; a
//! container outlives its client). The next run must remove it when it starts, and must
//! leave alone emulators whose owner is alive. Runs on whichever backend is selected.

// A test file: its helpers fail by panicking, like the test they belong to.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_emulator::backend::Settings;
use pipeline_emulator::local::RunningEmulator;
use pipeline_emulator::EmulatorOptions;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulators_of_killed_runs_and_failed_tests_are_removed() {
    killed_run_emulator_is_removed_when_the_next_run_starts().await;
    failing_test_removes_its_emulator_while_unwinding().await;
}

async fn killed_run_emulator_is_removed_when_the_next_run_starts() {
    // The victim: another process that starts an emulator and is then SIGKILLed.
    let mut victim = Command::new(env!("CARGO_BIN_EXE_emulator-victim"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(victim.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let started: Value = serde_json::from_str(&first_line)
        .unwrap_or_else(|e| panic!("victim printed {first_line:?}: {e}"));
    eprintln!("victim started {started}");
    victim.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    victim.wait().unwrap();

    let orphan = Orphan::from_report(&started).unwrap();
    assert!(
        orphan.is_running(),
        "the killed run's emulator should still be there before the next run: {started}"
    );
    let endpoint = started["endpoint"].as_str().unwrap();
    assert!(answers(endpoint), "orphan at {endpoint} no longer answers");

    // The next run: its first emulator start sweeps orphans.
    let (backend, why) = Settings::from_env()
        .choose(pipeline_emulator::container::probe)
        .unwrap();
    eprintln!("next run on backend {} ({why})", backend.name());
    let next = RunningEmulator::start(&backend, EmulatorOptions::default(), "next-run")
        .await
        .unwrap();
    eprintln!("next run: {}", next.describe());

    let deadline = Instant::now() + Duration::from_secs(15);
    while orphan.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !orphan.is_running(),
        "the killed run's emulator is still there after the next run started: {started}"
    );
    assert!(!answers(endpoint), "something still answers at {endpoint}");
    // The live run's own emulator was not swept.
    assert!(
        answers(&next.endpoint()),
        "the next run's own emulator was removed"
    );
    drop(next);
}

enum Orphan {
    Process(u32),
    Container(String),
}

impl Orphan {
    fn from_report(report: &Value) -> Option<Orphan> {
        match report["pid"].as_u64() {
            Some(pid) => u32::try_from(pid).ok().map(Orphan::Process),
            None => Some(Orphan::Container(report["id"].as_str()?.to_string())),
        }
    }

    fn is_running(&self) -> bool {
        match self {
            // A zombie would not be "running", but MiniStack's parent is gone, so init
            // reaps it; /proc/<pid> disappears.
            Orphan::Process(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z ")),
            Orphan::Container(id) => Command::new("docker")
                .args(["inspect", "--format", "{{.State.Running}}", id])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true"),
        }
    }
}

/// Whether an HTTP server answers `GET /_localstack/health` (both emulators serve it).
fn answers(endpoint: &str) -> bool {
    use std::io::{Read, Write};
    let Some(addr) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /_localstack/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Runs after the sweep above (in the same test: the sweep runs once per process, at its
/// first emulator start, and must find the victim's orphan).
async fn failing_test_removes_its_emulator_while_unwinding() {
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (backend, _) = Settings::from_env()
                .choose(pipeline_emulator::container::probe)
                .unwrap();
            let emulator = RunningEmulator::start(&backend, EmulatorOptions::default(), "failing")
                .await
                .unwrap();
            let report = match &emulator {
                RunningEmulator::Process(p) => {
                    serde_json::json!({"pid": p.pid(), "endpoint": p.endpoint()})
                }
                RunningEmulator::Container(c) => {
                    serde_json::json!({"id": c.id(), "endpoint": c.endpoint()})
                }
            };
            tx.send(report).unwrap();
            panic!("a test failing while its emulator runs");
        })
    })
    .join();
    assert!(failed.is_err(), "the simulated test should have failed");
    let report = rx.recv().unwrap();
    let orphan = Orphan::from_report(&report).unwrap();
    assert!(
        !orphan.is_running(),
        "a failed test left its emulator running: {report}"
    );
    assert!(!answers(report["endpoint"].as_str().unwrap()));
}
