//! Published versions and the `live` alias of the stack's functions: what is live, what
//! was, moving the alias back (`pipeline rollback`) and promoting a hot-fixed `$LATEST`
//! (a configuration change made outside CloudFormation, as the fault tests do).

use std::time::Duration;

use aws_sdk_lambda::types::LastUpdateStatus;
use pipeline_core::release::{rollback_target, RollbackError, LIVE_ALIAS};
use thiserror::Error;

use crate::store::error_chain;

#[derive(Debug, Error)]
pub enum ReleaseError {
    #[error("{operation} {function} failed: {message}")]
    Api {
        operation: &'static str,
        function: String,
        message: String,
    },
    #[error("{function}: alias {LIVE_ALIAS} points at {version:?}, not a numbered version")]
    NotNumbered { function: String, version: String },
    #[error("{function}: {source}")]
    Rollback {
        function: String,
        source: RollbackError,
    },
    #[error("{function}: its configuration update did not finish within {seconds} s")]
    UpdateTimeout { function: String, seconds: u64 },
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVersion {
    pub version: u64,
    /// `release <ReleaseId>` for versions a deploy published.
    pub description: String,
}

/// A function's versions and which one is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRelease {
    pub function: String,
    pub live: u64,
    /// Oldest first.
    pub versions: Vec<PublishedVersion>,
}

fn api(operation: &'static str, function: &str, e: &dyn std::error::Error) -> ReleaseError {
    ReleaseError::Api {
        operation,
        function: function.to_string(),
        message: error_chain(e),
    }
}

fn numbered(function: &str, version: &str) -> Result<u64, ReleaseError> {
    version.parse().map_err(|_| ReleaseError::NotNumbered {
        function: function.to_string(),
        version: version.to_string(),
    })
}

/// The live version and every published version of `function`.
pub async fn release_of(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<FunctionRelease, ReleaseError> {
    let alias = lambda
        .get_alias()
        .function_name(function)
        .name(LIVE_ALIAS)
        .send()
        .await
        .map_err(|e| api("GetAlias", function, &e))?;
    let live = numbered(function, alias.function_version().unwrap_or_default())?;
    let mut versions = Vec::new();
    let mut pages = lambda
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api("ListVersionsByFunction", function, &e))?;
        for v in page.versions() {
            // `$LATEST` is not a version one can roll back to.
            if let Some(Ok(version)) = v.version().map(str::parse::<u64>) {
                versions.push(PublishedVersion {
                    version,
                    description: v.description().unwrap_or_default().to_string(),
                });
            }
        }
    }
    versions.sort_by_key(|v| v.version);
    Ok(FunctionRelease {
        function: function.to_string(),
        live,
        versions,
    })
}

/// Moves `function`'s live alias back: to `to`, or to the version before the live one.
/// Returns `(from, to)`.
pub async fn rollback(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    to: Option<u64>,
) -> Result<(u64, u64), ReleaseError> {
    let release = release_of(lambda, function).await?;
    let numbers: Vec<u64> = release.versions.iter().map(|v| v.version).collect();
    let target =
        rollback_target(&numbers, release.live, to).map_err(|source| ReleaseError::Rollback {
            function: function.to_string(),
            source,
        })?;
    point_live_at(lambda, function, target).await?;
    Ok((release.live, target))
}

async fn point_live_at(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    version: u64,
) -> Result<(), ReleaseError> {
    lambda
        .update_alias()
        .function_name(function)
        .name(LIVE_ALIAS)
        .function_version(version.to_string())
        .send()
        .await
        .map_err(|e| api("UpdateAlias", function, &e))?;
    Ok(())
}

/// Publishes `$LATEST` as a new version (once its last update finished) and points the
/// live alias at it: what an operator does after changing a function's configuration
/// by hand. Returns the new live version.
pub async fn promote_latest(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    timeout: Duration,
) -> Result<u64, ReleaseError> {
    let started = tokio::time::Instant::now();
    loop {
        let config = lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| api("GetFunctionConfiguration", function, &e))?;
        match config.last_update_status() {
            None | Some(LastUpdateStatus::Successful) => break,
            Some(_) if started.elapsed() >= timeout => {
                return Err(ReleaseError::UpdateTimeout {
                    function: function.to_string(),
                    seconds: timeout.as_secs(),
                })
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let published = lambda
        .publish_version()
        .function_name(function)
        .description("promoted from $LATEST")
        .send()
        .await
        .map_err(|e| api("PublishVersion", function, &e))?;
    let version = numbered(function, published.version().unwrap_or_default())?;
    point_live_at(lambda, function, version).await?;
    Ok(version)
}
