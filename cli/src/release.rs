//! `pipeline releases` and `pipeline rollback`: the functions' published versions and
//! their `live` alias, which everything invokes.

use std::process::ExitCode;

use anyhow::{bail, Result};
use pipeline_aws::deploy::{PipelineStack, FUNCTIONS};
use pipeline_aws::releases::{release_of, rollback as move_back};
use pipeline_core::release::LIVE_ALIAS;

use crate::commands::aws_clients;

/// The deployed names of `only` (a short name such as `transform`) or of every function.
fn selected(stack: &PipelineStack, only: Option<&str>) -> Result<Vec<(String, String)>> {
    match only {
        None => Ok(stack.functions.clone()),
        Some(short) => match stack.function(short) {
            Some(name) => Ok(vec![(short.to_string(), name.to_string())]),
            None => bail!(
                "stack {} has no function {short:?} (it has {})",
                stack.stack_name,
                FUNCTIONS.join(", ")
            ),
        },
    }
}

/// One line per function: the live version and the published ones.
pub async fn releases(stack_name: &str) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    for (short, name) in &stack.functions {
        let release = release_of(&clients.lambda, name).await?;
        let live_note = release
            .versions
            .iter()
            .find(|v| v.version == release.live)
            .map(|v| v.description.as_str())
            .unwrap_or_default();
        let all: Vec<String> = release
            .versions
            .iter()
            .map(|v| v.version.to_string())
            .collect();
        println!(
            "{short:<11} {LIVE_ALIAS}={:<4} ({live_note}) versions {}",
            release.live,
            all.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the live alias of one function, or of all, back one version (or to `to`).
pub async fn rollback(stack_name: &str, only: Option<&str>, to: Option<u64>) -> Result<ExitCode> {
    if to.is_some() && only.is_none() {
        bail!("--to names a version of one function: give --function too");
    }
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    let mut failed = 0;
    for (short, name) in selected(&stack, only)? {
        match move_back(&clients.lambda, &name, to).await {
            Ok((from, to)) => println!("{short:<11} {LIVE_ALIAS} {from} -> {to}"),
            Err(e) => {
                failed += 1;
                eprintln!("{short:<11} not rolled back: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
