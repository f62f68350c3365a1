//! Step Functions: starting executions idempotently, and reading them back.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use thiserror::Error;

use crate::store::error_chain;

/// What happened when an execution was requested under a deterministic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started now (on AWS also: already running with identical input, which returns the
    /// existing execution).
    Started { execution_arn: String },
    /// An execution with this name exists: a duplicate event, already handled.
    AlreadyExists,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StartError {
    /// Throttling, network or service errors: retrying the event may succeed.
    #[error("StartExecution failed (retryable): {0}")]
    Retryable(String),
    /// The request itself is wrong (bad name, bad input, missing state machine).
    #[error("StartExecution rejected: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait ExecutionStarter: Send + Sync {
    async fn start(&self, name: &str, input_json: &str) -> Result<StartOutcome, StartError>;
    /// The status (`RUNNING`, `SUCCEEDED`, `FAILED`, ...) of the execution with this name,
    /// `None` when there is none.
    async fn status(&self, name: &str) -> Result<Option<String>, StartError>;
}

/// The ARN of the execution `name` of the state machine `state_machine_arn`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// [`ExecutionStarter`] over Step Functions.
#[derive(Clone, Debug)]
pub struct SfnStarter {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnStarter {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        SfnStarter {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

#[async_trait]
impl ExecutionStarter for SfnStarter {
    async fn start(&self, name: &str, input_json: &str) -> Result<StartOutcome, StartError> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input_json)
            .send()
            .await;
        match result {
            Ok(out) => Ok(StartOutcome::Started {
                execution_arn: out.execution_arn().to_string(),
            }),
            Err(e) => match e.code() {
                Some("ExecutionAlreadyExists") => Ok(StartOutcome::AlreadyExists),
                Some(
                    "InvalidName"
                    | "InvalidArn"
                    | "InvalidExecutionInput"
                    | "StateMachineDoesNotExist"
                    | "StateMachineDeleting"
                    | "ValidationException",
                ) => Err(StartError::Rejected(format!(
                    "{}: {}",
                    e.code().unwrap_or_default(),
                    e.message().unwrap_or_default()
                ))),
                _ => Err(StartError::Retryable(error_chain(&e))),
            },
        }
    }

    async fn status(&self, name: &str) -> Result<Option<String>, StartError> {
        let arn = execution_arn(&self.state_machine_arn, name);
        match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.status().as_str().to_string())),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(StartError::Retryable(error_chain(&e))),
        }
    }
}

/// Whether Step Functions accepts `name` as an execution name: 1-80 characters, none of
/// them whitespace, `< > { } [ ]`, `? *`, `" # % \\ ^ | ~ \` $ & , ; : /`, or a control
/// character (U+0000-001F, U+007F-009F). (This project's own names are stricter still:
/// [`pipeline_core::naming::ExecutionName::is_valid`].)
pub fn is_valid_execution_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=80).contains(&count)
        && !name.chars().any(|c| {
            c.is_whitespace()
                || matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
                || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
        })
}

/// One execution the fake knows.
#[derive(Debug, Clone)]
struct MemoryExecution {
    input: String,
    status: String,
}

/// In-memory [`ExecutionStarter`] answering as Step Functions documents for STANDARD
/// state machines: a name that breaks the naming rules is rejected (`InvalidName`); a
/// start with the name and input of a *running* execution succeeds and returns that
/// execution (no second one); any other reuse of a name is `ExecutionAlreadyExists`.
/// Started executions are `RUNNING` until [`MemoryStarter::set_status`].
#[derive(Debug, Default)]
pub struct MemoryStarter {
    executions: Mutex<BTreeMap<String, MemoryExecution>>,
    /// Names whose start fails with a retryable error (to test partial failures).
    pub failing_names: Vec<String>,
}

impl MemoryStarter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name -> input of every execution started.
    pub fn started(&self) -> BTreeMap<String, String> {
        self.executions
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.input.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets the status an execution reports (`SUCCEEDED`, `FAILED`, ...). An unknown name
    /// becomes an execution with no input, as if started elsewhere.
    pub fn set_status(&self, name: &str, status: &str) {
        if let Ok(mut m) = self.executions.lock() {
            m.entry(name.to_string())
                .or_insert_with(|| MemoryExecution {
                    input: String::new(),
                    status: String::new(),
                })
                .status = status.to_string();
        }
    }

    fn arn(name: &str) -> String {
        format!("arn:aws:states:us-east-1:000000000000:execution:memory:{name}")
    }
}

#[async_trait]
impl ExecutionStarter for MemoryStarter {
    async fn start(&self, name: &str, input_json: &str) -> Result<StartOutcome, StartError> {
        if !is_valid_execution_name(name) {
            return Err(StartError::Rejected(format!(
                "InvalidName: Invalid Name: '{name}'"
            )));
        }
        if self.failing_names.iter().any(|n| n == name) {
            return Err(StartError::Retryable("injected failure".into()));
        }
        let mut executions = self
            .executions
            .lock()
            .map_err(|_| StartError::Retryable("lock poisoned".into()))?;
        match executions.get(name) {
            Some(e) if e.status == "RUNNING" && e.input == input_json => {
                Ok(StartOutcome::Started {
                    execution_arn: Self::arn(name),
                })
            }
            Some(_) => Ok(StartOutcome::AlreadyExists),
            None => {
                executions.insert(
                    name.to_string(),
                    MemoryExecution {
                        input: input_json.to_string(),
                        status: "RUNNING".into(),
                    },
                );
                Ok(StartOutcome::Started {
                    execution_arn: Self::arn(name),
                })
            }
        }
    }

    async fn status(&self, name: &str) -> Result<Option<String>, StartError> {
        Ok(self
            .executions
            .lock()
            .map_err(|_| StartError::Retryable("lock poisoned".into()))?
            .get(name)
            .map(|e| e.status.clone()))
    }
}

#[cfg(test)]
mod memory_starter_tests {
    use super::*;

    #[tokio::test]
    async fn memory_starter_same_name_and_input_while_running_returns_the_execution() {
        let s = MemoryStarter::new();
        let first = s.start("a", "{}").await.unwrap();
        assert_eq!(s.start("a", "{}").await.unwrap(), first);
        assert_eq!(s.started().len(), 1);
        // Other input, same name: refused even while running.
        assert_eq!(
            s.start("a", r#"{"x":1}"#).await.unwrap(),
            StartOutcome::AlreadyExists
        );
        // Closed: refused whatever the input.
        s.set_status("a", "SUCCEEDED");
        assert_eq!(
            s.start("a", "{}").await.unwrap(),
            StartOutcome::AlreadyExists
        );
    }

    #[tokio::test]
    async fn memory_starter_rejects_names_step_functions_rejects() {
        let s = MemoryStarter::new();
        let long = "x".repeat(81);
        for bad in ["", "a b", "a/b", "a:b", "ü\u{85}", long.as_str(), "tab\t"] {
            assert!(
                matches!(s.start(bad, "{}").await, Err(StartError::Rejected(_))),
                "{bad:?}"
            );
        }
        for good in ["photo-jpg-0123", "ü-é", &"x".repeat(80)] {
            assert!(s.start(good, "{}").await.is_ok(), "{good:?}");
        }
    }
}

/// One execution as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSummary {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub start_epoch_ms: i64,
    pub stop_epoch_ms: Option<i64>,
}

/// One execution in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionDetail {
    pub summary: ExecutionSummary,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// A state entered or exited, from the execution history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    pub state: String,
    pub entered: bool,
    pub epoch_ms: i64,
}

/// Reads executions back (CLI, tests, demo).
#[derive(Clone, Debug)]
pub struct Executions {
    client: aws_sdk_sfn::Client,
}

fn epoch_ms(t: &aws_sdk_sfn::primitives::DateTime) -> i64 {
    t.to_millis().unwrap_or(0)
}

fn status_text(s: &ExecutionStatus) -> String {
    s.as_str().to_string()
}

impl Executions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Executions { client }
    }

    pub async fn list(&self, state_machine_arn: &str) -> Result<Vec<ExecutionSummary>, String> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error_chain(&e))?;
            for e in page.executions() {
                out.push(ExecutionSummary {
                    arn: e.execution_arn().to_string(),
                    name: e.name().to_string(),
                    status: status_text(e.status()),
                    start_epoch_ms: epoch_ms(e.start_date()),
                    stop_epoch_ms: e.stop_date().map(epoch_ms),
                });
            }
        }
        Ok(out)
    }

    pub async fn describe(&self, execution_arn: &str) -> Result<ExecutionDetail, String> {
        let d = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(ExecutionDetail {
            summary: ExecutionSummary {
                arn: d.execution_arn().to_string(),
                name: d.name().unwrap_or_default().to_string(),
                status: status_text(d.status()),
                start_epoch_ms: epoch_ms(d.start_date()),
                stop_epoch_ms: d.stop_date().map(epoch_ms),
            },
            input: d.input().map(str::to_string),
            output: d.output().map(str::to_string),
            error: d.error().map(str::to_string),
            cause: d.cause().map(str::to_string),
        })
    }

    /// States entered and exited, in order (from [`Executions::history`]).
    pub async fn state_events(&self, execution_arn: &str) -> Result<Vec<StateEvent>, String> {
        Ok(self
            .history(execution_arn)
            .await?
            .into_iter()
            .filter_map(|h| {
                Some(StateEvent {
                    entered: h.kind.ends_with("StateEntered"),
                    state: h.state?,
                    epoch_ms: h.epoch_ms,
                })
            })
            .collect())
    }
}

/// One event of an execution's history, reduced to what a reader shows: its id, type,
/// time, the state it names (entered / exited events) and its error, cause or payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub id: i64,
    /// The event type as Step Functions names it, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    pub epoch_ms: i64,
    /// The state's name, for `*StateEntered` / `*StateExited` events.
    pub state: Option<String>,
    /// `error: cause` of a failure event, or the input / output of a state or execution.
    pub detail: Option<String>,
}

impl Executions {
    /// The whole history of one execution, oldest first.
    pub async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryItem>, String> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error_chain(&e))?;
            out.extend(page.events().iter().map(history_item));
        }
        Ok(out)
    }

    /// Every failed task attempt, in order, as `(error, cause)`: what the retries saw.
    /// `TaskFailed` / `TaskTimedOut` (MiniStack; AWS for service integrations) and
    /// `LambdaFunctionFailed` / `LambdaFunctionTimedOut` (AWS, for a function ARN Resource).
    pub async fn task_failures(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<(String, String)>, String> {
        const FAILURES: [&str; 4] = [
            "TaskFailed",
            "TaskTimedOut",
            "LambdaFunctionFailed",
            "LambdaFunctionTimedOut",
        ];
        Ok(self
            .history(execution_arn)
            .await?
            .into_iter()
            .filter(|h| FAILURES.contains(&h.kind.as_str()))
            .map(|h| {
                let detail = h.detail.unwrap_or_default();
                match detail.split_once(": ") {
                    Some((error, cause)) => (error.to_string(), cause.to_string()),
                    None => (detail, String::new()),
                }
            })
            .collect())
    }

    /// The deployed definition (ASL JSON text) of a state machine.
    pub async fn definition(&self, state_machine_arn: &str) -> Result<String, String> {
        let d = self
            .client
            .describe_state_machine()
            .state_machine_arn(state_machine_arn)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(d.definition().to_string())
    }
}

fn history_item(e: &HistoryEvent) -> HistoryItem {
    let failure = |error: Option<&str>, cause: Option<&str>| {
        Some(format!(
            "{}: {}",
            error.unwrap_or_default(),
            cause.unwrap_or_default()
        ))
    };
    let (state, detail) = if let Some(d) = e.state_entered_event_details() {
        (Some(d.name().to_string()), d.input().map(str::to_string))
    } else if let Some(d) = e.state_exited_event_details() {
        (Some(d.name().to_string()), d.output().map(str::to_string))
    } else if let Some(d) = e.lambda_function_failed_event_details() {
        (None, failure(d.error(), d.cause()))
    } else if let Some(d) = e.lambda_function_timed_out_event_details() {
        (None, failure(d.error(), d.cause()))
    } else if let Some(d) = e.task_failed_event_details() {
        (None, failure(d.error(), d.cause()))
    } else if let Some(d) = e.task_timed_out_event_details() {
        (None, failure(d.error(), d.cause()))
    } else if let Some(d) = e.execution_failed_event_details() {
        (None, failure(d.error(), d.cause()))
    } else if let Some(d) = e.lambda_function_succeeded_event_details() {
        (None, d.output().map(str::to_string))
    } else if let Some(d) = e.task_succeeded_event_details() {
        (None, d.output().map(str::to_string))
    } else if let Some(d) = e.execution_succeeded_event_details() {
        (None, d.output().map(str::to_string))
    } else if let Some(d) = e.execution_started_event_details() {
        (None, d.input().map(str::to_string))
    } else {
        (None, None)
    };
    HistoryItem {
        id: e.id(),
        kind: e.r#type().as_str().to_string(),
        epoch_ms: epoch_ms(e.timestamp()),
        state,
        detail,
    }
}

/// One object's execution, classified: what the demo table and the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRun {
    /// The decoded source key from the execution input (empty when the input is not ours).
    pub key: String,
    pub detail: ExecutionDetail,
    pub status: pipeline_core::report::ObjectStatus,
    pub visits: Vec<pipeline_core::report::StateVisit>,
}

impl ObjectRun {
    pub fn duration_ms(&self) -> Option<i64> {
        self.detail
            .summary
            .stop_epoch_ms
            .map(|stop| stop - self.detail.summary.start_epoch_ms)
    }

    /// `Inspect > IsSupported > Transform > Load`
    pub fn path(&self) -> String {
        self.visits
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(" > ")
    }
}

impl Executions {
    /// Every execution of the state machine, described and classified.
    pub async fn object_runs(&self, state_machine_arn: &str) -> Result<Vec<ObjectRun>, String> {
        let mut runs = Vec::new();
        for summary in self.list(state_machine_arn).await? {
            runs.push(self.object_run(&summary.arn).await?);
        }
        runs.sort_by(|a, b| {
            a.key.cmp(&b.key).then(
                a.detail
                    .summary
                    .start_epoch_ms
                    .cmp(&b.detail.summary.start_epoch_ms),
            )
        });
        Ok(runs)
    }

    pub async fn object_run(&self, execution_arn: &str) -> Result<ObjectRun, String> {
        let detail = self.describe(execution_arn).await?;
        let key = detail
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str::<pipeline_core::payload::ExecutionInput>(i).ok())
            .map(|i| i.source.key)
            .unwrap_or_default();
        let status = pipeline_core::report::ObjectStatus::classify(
            &detail.summary.status,
            detail.output.as_deref(),
            detail.error.as_deref(),
            detail.cause.as_deref(),
        );
        let events = self.state_events(execution_arn).await?;
        let visits = pipeline_core::report::state_visits(
            events
                .iter()
                .map(|e| (e.state.as_str(), e.entered, e.epoch_ms)),
        );
        Ok(ObjectRun {
            key,
            detail,
            status,
            visits,
        })
    }

    /// Waits until at least `expected` executions exist and none is running, calling
    /// `progress(done, total)` as they finish; returns them all, or the ones seen at timeout.
    pub async fn wait_settled(
        &self,
        state_machine_arn: &str,
        expected: usize,
        timeout: std::time::Duration,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<ObjectRun>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let list = self.list(state_machine_arn).await?;
            let done = list.iter().filter(|e| e.status != "RUNNING").count();
            progress(done, expected.max(list.len()));
            if (list.len() >= expected && done == list.len())
                || tokio::time::Instant::now() >= deadline
            {
                return self.object_runs(state_machine_arn).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
}
