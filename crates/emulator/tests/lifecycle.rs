//! Starts a real MiniStack (installing it on first use: needs python3 and PyPI), runs a
//! function in it, stops it, and checks that nothing of it is left.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use base64::Engine as _;
use pipeline_emulator::{Emulator, EmulatorOptions};

#[test]
fn emulator_stop_with_warm_function_leaves_no_process_port_or_run_dir() {
    let started = Instant::now();
    let emulator = Emulator::start(&EmulatorOptions::default()).unwrap();
    eprintln!("started in {:.2} s", started.elapsed().as_secs_f64());
    let (port, pgid, log_path) = (
        emulator.port(),
        emulator.pid(),
        emulator.log_path().to_owned(),
    );
    assert_eq!(emulator.endpoint(), format!("http://127.0.0.1:{port}"));
    assert!(log_path.is_file());

    // A warm Python worker and a `sleep` it started: processes in MiniStack's group
    // that a SIGTERM of MiniStack alone would leave running.
    let reported = invoke_pid_reporting_function(port, &emulator).unwrap();
    assert_eq!(reported["pgid"], u64::from(pgid), "{reported}");
    let members = live_group_members(pgid).unwrap();
    for key in ["pid", "sleeper"] {
        let pid = reported[key].as_u64().unwrap();
        assert!(members.contains(&pid), "{key} {pid} not in {members:?}");
    }

    emulator.stop().unwrap();

    assert_eq!(live_group_members(pgid).unwrap(), Vec::<u64>::new());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
    assert!(!log_path.exists(), "run dir (with the log) not deleted");
}

#[test]
fn emulator_dropped_while_test_panics_stops_group_and_closes_port() {
    let mut seen = None;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let emulator = Emulator::start(&EmulatorOptions::default()).unwrap();
        seen = Some((emulator.port(), emulator.pid()));
        panic!("test failure while the emulator runs");
    }));
    assert!(unwound.is_err());
    let (port, pgid) = seen.unwrap();
    assert_eq!(live_group_members(pgid).unwrap(), Vec::<u64>::new());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
}

#[test]
fn emulator_start_port_always_taken_fails_with_log_tail() {
    // Forcing MiniStack onto a port we hold makes every attempt exit early.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let log_dir = std::env::temp_dir().join(format!("emulator-taken-{}", std::process::id()));
    let opts = EmulatorOptions {
        extra_env: vec![("GATEWAY_PORT".into(), port.to_string())],
        log_dir: Some(log_dir.clone()),
        ..EmulatorOptions::default()
    };
    let error = Emulator::start(&opts).unwrap_err().to_string();
    assert!(
        error.starts_with("MiniStack exited before it became healthy"),
        "{error}"
    );
    assert!(error.contains("3 attempt(s)"), "{error}");
    assert!(
        error.contains("already in use"),
        "log tail missing: {error}"
    );
    std::fs::remove_dir_all(log_dir).unwrap();
}

type TestResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Deploys a Python function that starts `sleep 300` and returns its own pid, its process
/// group and the sleeper's pid; invokes it once.
fn invoke_pid_reporting_function(port: u16, emulator: &Emulator) -> TestResult<serde_json::Value> {
    // The `sleep` child stands for any process a function leaves behind: unlike the
    // worker, it does not exit when MiniStack closes the worker's pipes.
    let code = "import os, subprocess\n\
                def handler(event, context):\n    \
                    sleeper = subprocess.Popen(['sleep', '300'])\n    \
                    return {'pid': os.getpid(), 'pgid': os.getpgid(0), 'sleeper': sleeper.pid}\n";
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("index.py", zip::write::SimpleFileOptions::default())?;
    zip.write_all(code.as_bytes())?;
    let zip_bytes = zip.finish()?.into_inner();
    let create = serde_json::json!({
        "FunctionName": "pid-reporter",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/test",
        "Handler": "index.handler",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip_bytes)},
    });
    let (status, body) = post(port, "/2015-03-31/functions", &create.to_string())?;
    assert_eq!(status, 201, "{body}\n{}", emulator.log_tail(30));
    let (status, body) = post(port, "/2015-03-31/functions/pid-reporter/invocations", "{}")?;
    assert_eq!(status, 200, "{body}\n{}", emulator.log_tail(30));
    Ok(serde_json::from_str(&body)?)
}

/// Minimal HTTP/1.1 POST; MiniStack checks no signature.
fn post(port: u16, path: &str, body: &str) -> TestResult<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head.get(9..12).ok_or("no status code")?.parse()?;
    Ok((status, body.to_owned()))
}

/// Pids of the non-zombie processes in process group `pgid`, from /proc (Linux).
fn live_group_members(pgid: u32) -> TestResult<Vec<u64>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited meanwhile
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
        let after_comm = stat.rfind(") ").ok_or("unexpected /proc stat format")?;
        let fields: Vec<&str> = stat[after_comm + 2..].split(' ').collect();
        if fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str()) {
            members.push(pid);
        }
    }
    Ok(members)
}
