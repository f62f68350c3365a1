//! The fault switch: makes a function crash or hang on purpose, so the fault tests can
//! prove that the state machine retries, recovers and quarantines, and that a failed
//! ingest lands in its on-failure destination.
//!
//! It is off unless the function's configuration sets `PIPELINE_FAULT`, and it is read
//! once at start-up like the rest of the configuration. Nothing else changes behaviour:
//! with the variable unset, `trip` returns at once. The template never sets it; the tests
//! set it with `UpdateFunctionConfiguration` and clear it the same way.
//!
//! - `PIPELINE_FAULT=crash`: the process exits in the middle of the invocation, as an
//!   out-of-memory kill or a segfault would (Lambda reports `Runtime.ExitError`).
//! - `PIPELINE_FAULT=hang`: the invocation never returns, so the function's timeout
//!   fires (Lambda reports `Sandbox.Timedout`).

use std::time::Duration;

use pipeline_core::PipelineError;
use tracing::error;

pub const FAULT_VAR: &str = "PIPELINE_FAULT";

/// The exit status of a crash on purpose (EX_SOFTWARE).
const CRASH_STATUS: i32 = 70;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Crash,
    Hang,
}

/// The parsed switch: `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultSwitch(Option<Fault>);

impl FaultSwitch {
    pub fn off() -> Self {
        FaultSwitch(None)
    }

    /// From the function's environment; an unknown value is a configuration error, so a
    /// typo cannot silently turn a fault test into a pass.
    pub fn from_env() -> Result<Self, PipelineError> {
        Self::parse(std::env::var(FAULT_VAR).ok().as_deref())
    }

    pub fn parse(value: Option<&str>) -> Result<Self, PipelineError> {
        match value.map(str::trim) {
            None | Some("") | Some("off") => Ok(FaultSwitch(None)),
            Some("crash") => Ok(FaultSwitch(Some(Fault::Crash))),
            Some("hang") => Ok(FaultSwitch(Some(Fault::Hang))),
            Some(other) => Err(PipelineError::config(format!(
                "{FAULT_VAR}={other:?}: expected crash, hang or off"
            ))),
        }
    }

    pub fn fault(&self) -> Option<Fault> {
        self.0
    }

    /// Called at the start of every invocation, after the payload was received.
    pub async fn trip(&self) {
        match self.0 {
            None => {}
            Some(Fault::Crash) => {
                error!(
                    fault = "crash",
                    "{FAULT_VAR} is set: exiting mid-invocation"
                );
                std::process::exit(CRASH_STATUS);
            }
            Some(Fault::Hang) => {
                error!(fault = "hang", "{FAULT_VAR} is set: never returning");
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_switch_parse_table() {
        assert_eq!(FaultSwitch::parse(None).unwrap().fault(), None);
        assert_eq!(FaultSwitch::parse(Some("")).unwrap().fault(), None);
        assert_eq!(FaultSwitch::parse(Some("off")).unwrap().fault(), None);
        assert_eq!(
            FaultSwitch::parse(Some("crash")).unwrap().fault(),
            Some(Fault::Crash)
        );
        assert_eq!(
            FaultSwitch::parse(Some(" hang ")).unwrap().fault(),
            Some(Fault::Hang)
        );
        let err = FaultSwitch::parse(Some("crahs")).unwrap_err();
        assert_eq!(err.name(), "ConfigError");
    }

    #[tokio::test]
    async fn fault_switch_off_returns_at_once() {
        FaultSwitch::off().trip().await;
    }
}
