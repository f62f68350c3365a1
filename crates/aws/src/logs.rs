//! CloudWatch Logs reads (`pipeline logs`): a function's log streams and their events.
//! Behind the `logs` feature, so the functions do not link a client they never use.

use aws_config::SdkConfig;

use crate::store::error_chain;

/// One log stream of a group, newest activity last when listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub name: String,
    pub last_event_ms: Option<i64>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub epoch_ms: i64,
    pub message: String,
}

/// Reads log groups through CloudWatch Logs.
#[derive(Clone, Debug)]
pub struct Logs {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl Logs {
    pub fn new(config: &SdkConfig) -> Self {
        Logs {
            client: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }

    /// Every stream of `group`, ordered by last event time (oldest first).
    pub async fn streams(&self, group: &str) -> Result<Vec<LogStream>, String> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_log_streams()
            .log_group_name(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error_chain(&e))?;
            out.extend(page.log_streams().iter().map(|s| LogStream {
                name: s.log_stream_name().unwrap_or_default().to_string(),
                last_event_ms: s.last_event_timestamp().or(s.creation_time()),
            }));
        }
        out.sort_by_key(|s| s.last_event_ms);
        Ok(out)
    }

    /// Events of one stream from the start, or after `token` (the token this call returned
    /// last time). Returns the events and the token to pass next time.
    pub async fn events(
        &self,
        group: &str,
        stream: &str,
        token: Option<String>,
    ) -> Result<(Vec<LogEvent>, Option<String>), String> {
        let out = self
            .client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let events = out
            .events()
            .iter()
            .map(|e| LogEvent {
                epoch_ms: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().trim_end().to_string(),
            })
            .collect();
        Ok((events, out.next_forward_token().map(str::to_string)))
    }
}
