//! Starts one emulator on the backend the environment selects, prints what it started as
//! one JSON line, and waits to be killed. `tests/cleanup.rs` kills it with SIGKILL (no
//! destructor runs) to leave an orphan behind, as a test run killed mid-way does.

use std::time::Duration;

use anyhow::Result;
use pipeline_emulator::backend::Settings;
use pipeline_emulator::local::RunningEmulator;
use pipeline_emulator::EmulatorOptions;

#[tokio::main]
async fn main() -> Result<()> {
    let (backend, _) = tokio::task::spawn_blocking(|| {
        Settings::from_env().choose(pipeline_emulator::container::probe)
    })
    .await??;
    let emulator = RunningEmulator::start(&backend, EmulatorOptions::default(), "victim").await?;
    let line = match &emulator {
        RunningEmulator::Process(p) => {
            serde_json::json!({"backend": "process", "pid": p.pid(), "endpoint": p.endpoint()})
        }
        RunningEmulator::Container(c) => {
            serde_json::json!({"backend": backend.name(), "id": c.id(), "name": c.name(), "endpoint": c.endpoint()})
        }
    };
    println!("{line}");
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(emulator);
    Ok(())
}
