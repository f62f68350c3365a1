//! `pipeline catalog`: the per-prefix counters, or every version of one key with the one
//! the key's latest item names.

use std::process::ExitCode;

use anyhow::Result;
use pipeline_aws::catalog::{Counters, DynamoCatalog};
use pipeline_aws::deploy::PipelineStack;
use pipeline_core::catalog::CatalogStatus;

use crate::commands::aws_clients;

pub async fn catalog(stack_name: &str, key: Option<&str>) -> Result<ExitCode> {
    let clients = aws_clients().await;
    let stack = PipelineStack::describe(&clients, stack_name).await?;
    match key {
        None => {
            let counters = Counters::new(clients.dynamodb.clone(), &stack.counters_table);
            let rows = counters.all().await?;
            println!(
                "{:<24} {:>10} {:>12} {:>11}",
                "PREFIX", "PROCESSED", "QUARANTINED", "SUPERSEDED"
            );
            let mut totals = [0i64; 3];
            for row in &rows {
                let n: Vec<i64> = CatalogStatus::ALL
                    .iter()
                    .map(|s| row.counts.get(s).copied().unwrap_or(0))
                    .collect();
                for (t, v) in totals.iter_mut().zip(&n) {
                    *t += v;
                }
                println!("{:<24} {:>10} {:>12} {:>11}", row.prefix, n[0], n[1], n[2]);
            }
            println!(
                "total: prefixes={} processed={} quarantined={} superseded={}",
                rows.len(),
                totals[0],
                totals[1],
                totals[2]
            );
        }
        Some(key) => {
            let catalog = DynamoCatalog::new(clients.dynamodb.clone(), &stack.catalog_table);
            let (versions, latest) = catalog.versions(key).await?;
            if versions.is_empty() {
                println!("{key}: no version recorded (not processed yet, or not in this stack)");
                return Ok(ExitCode::FAILURE);
            }
            let latest_version = latest.as_ref().map(|l| l.version.as_str());
            for v in &versions {
                let mark = if Some(v.version.as_str()) == latest_version {
                    "latest"
                } else {
                    ""
                };
                println!(
                    "{key}  version={}  status={}{}  thumbnails={}  result={}  execution={}  recorded={}  {mark}",
                    v.version,
                    v.status.as_str(),
                    v.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                    v.thumbnails,
                    v.result_key,
                    v.execution,
                    v.recorded_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
