//! The catalog table and the counters table (see `pipeline_core::catalog` for the model):
//! writing an object version's entry, applying stream changes to the per-prefix counters
//! exactly once, and reading both back for `pipeline catalog`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use pipeline_core::catalog::{counter_deltas, CatalogEntry, CatalogStatus, StreamChange, LATEST};
use thiserror::Error;

use crate::store::error_chain;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("{operation} on table {table} failed: {message}")]
    Failed {
        operation: &'static str,
        table: String,
        message: String,
    },
    #[error("table {table} holds an item that is not a catalog entry: {detail}")]
    Malformed { table: String, detail: String },
}

fn table_error(operation: &'static str, table: &str, e: &dyn std::error::Error) -> CatalogError {
    CatalogError::Failed {
        operation,
        table: table.to_string(),
        message: error_chain(e),
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Whether the key's latest item now describes this version (false: a newer version
    /// exists; this one was stale for the key).
    pub latest: bool,
}

/// Where load and quarantine record what became of an object version. The ordering of
/// the latest item is decided by the caller (`pipeline_lambda::catalog`, by the rule of
/// `pipeline_core::ordering`); the table only offers a read and a conditional write.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Writes the version item (`dynamodb:PutItem`). Idempotent: a retried step writes
    /// the same item.
    async fn put_version(&self, entry: &CatalogEntry) -> Result<(), CatalogError>;
    /// The key's latest item, read strongly consistently (`dynamodb:GetItem`).
    async fn latest(&self, key: &str) -> Result<Option<CatalogEntry>, CatalogError>;
    /// Replaces the key's latest item with `entry` only if it is still `expected` (`None`:
    /// only if there is none): `false` when another writer changed it meanwhile
    /// (`dynamodb:PutItem` with a condition).
    async fn put_latest(
        &self,
        entry: &CatalogEntry,
        expected: Option<&CatalogEntry>,
    ) -> Result<bool, CatalogError>;
}

/// The DynamoDB catalog table.
#[derive(Clone, Debug)]
pub struct DynamoCatalog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn item_of(entry: &CatalogEntry, version: &str) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("key".to_string(), s(&entry.key)),
        ("version".to_string(), s(version)),
        ("object_version".to_string(), s(&entry.version)),
        ("seq".to_string(), s(&entry.seq)),
        ("status".to_string(), s(entry.status.as_str())),
        ("result_key".to_string(), s(&entry.result_key)),
        (
            "thumbnails".to_string(),
            AttributeValue::N(entry.thumbnails.to_string()),
        ),
        ("execution".to_string(), s(&entry.execution)),
        ("recorded_at".to_string(), s(&entry.recorded_at)),
    ]);
    if let Some(error) = &entry.error {
        item.insert("error".to_string(), s(error));
    }
    if let Some(etag) = &entry.etag {
        item.insert("etag".to_string(), s(etag));
    }
    item
}

fn entry_of(
    table: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<CatalogEntry, CatalogError> {
    let text = |name: &str| -> Result<String, CatalogError> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| CatalogError::Malformed {
                table: table.to_string(),
                detail: format!("no string attribute {name}"),
            })
    };
    let status_text = text("status")?;
    let status = CatalogStatus::parse(&status_text).ok_or_else(|| CatalogError::Malformed {
        table: table.to_string(),
        detail: format!("unknown status {status_text:?}"),
    })?;
    Ok(CatalogEntry {
        key: text("key")?,
        version: text("object_version")?,
        seq: text("seq")?,
        status,
        result_key: text("result_key")?,
        error: item.get("error").and_then(|v| v.as_s().ok()).cloned(),
        etag: item.get("etag").and_then(|v| v.as_s().ok()).cloned(),
        thumbnails: item
            .get("thumbnails")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        execution: text("execution")?,
        recorded_at: text("recorded_at")?,
    })
}

impl DynamoCatalog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoCatalog {
            client,
            table: table.into(),
        }
    }

    fn failed(&self, operation: &'static str, e: &dyn std::error::Error) -> CatalogError {
        table_error(operation, &self.table, e)
    }

    /// Every entry of `key`: its versions, and (second) the latest item when there is one.
    pub async fn versions(
        &self,
        key: &str,
    ) -> Result<(Vec<CatalogEntry>, Option<CatalogEntry>), CatalogError> {
        let mut versions = Vec::new();
        let mut latest = None;
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":k", s(key))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("Query", &e))?;
            for item in page.items() {
                let entry = entry_of(&self.table, item)?;
                match item.get("version").and_then(|v| v.as_s().ok()) {
                    Some(v) if v == LATEST => latest = Some(entry),
                    _ => versions.push(entry),
                }
            }
        }
        Ok((versions, latest))
    }
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn put_version(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(entry, &entry.version)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("PutItem", &e))
    }

    async fn latest(&self, key: &str) -> Result<Option<CatalogEntry>, CatalogError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", s(key))
            .key("version", s(LATEST))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", &e))?;
        out.item()
            .map(|item| entry_of(&self.table, item))
            .transpose()
    }

    async fn put_latest(
        &self,
        entry: &CatalogEntry,
        expected: Option<&CatalogEntry>,
    ) -> Result<bool, CatalogError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(entry, LATEST)))
            .expression_attribute_names("#k", "key");
        // Optimistic concurrency on what was read: the version it named, and when and by
        // which execution it was recorded (every write records a new time).
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(#k)"),
            Some(read) => put
                .condition_expression("#ov = :ov AND #ra = :ra AND #ex = :ex")
                .expression_attribute_names("#ov", "object_version")
                .expression_attribute_names("#ra", "recorded_at")
                .expression_attribute_names("#ex", "execution")
                .expression_attribute_values(":ov", s(&read.version))
                .expression_attribute_values(":ra", s(&read.recorded_at))
                .expression_attribute_values(":ex", s(&read.execution)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.failed("PutItem", &e)),
        }
    }
}

/// An in-memory catalog with DynamoDB's semantics for these calls, for handler tests.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    items: Mutex<BTreeMap<(String, String), CatalogEntry>>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// `(versions, latest)` of `key`.
    pub fn entries(&self, key: &str) -> (Vec<CatalogEntry>, Option<CatalogEntry>) {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut versions = Vec::new();
        let mut latest = None;
        for ((k, v), entry) in items.iter() {
            if k == key {
                if v == LATEST {
                    latest = Some(entry.clone());
                } else {
                    versions.push(entry.clone());
                }
            }
        }
        (versions, latest)
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn put_version(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.insert((entry.key.clone(), entry.version.clone()), entry.clone());
        Ok(())
    }

    async fn latest(&self, key: &str) -> Result<Option<CatalogEntry>, CatalogError> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        Ok(items.get(&(key.to_string(), LATEST.to_string())).cloned())
    }

    async fn put_latest(
        &self,
        entry: &CatalogEntry,
        expected: Option<&CatalogEntry>,
    ) -> Result<bool, CatalogError> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (entry.key.clone(), LATEST.to_string());
        let holds = match (items.get(&slot), expected) {
            (None, None) => true,
            (Some(stored), Some(read)) => {
                (&stored.version, &stored.recorded_at, &stored.execution)
                    == (&read.version, &read.recorded_at, &read.execution)
            }
            _ => false,
        };
        if holds {
            items.insert(slot, entry.clone());
        }
        Ok(holds)
    }
}

/// The per-prefix counters table, kept by the stream consumer.
#[derive(Clone, Debug)]
pub struct Counters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// A prefix's counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixCounts {
    pub prefix: String,
    pub counts: BTreeMap<CatalogStatus, i64>,
}

/// How long the marker of an applied stream record is kept (DynamoDB TTL): streams keep
/// records 24 h, so a redelivery can never come later than that.
const MARKER_TTL_SECONDS: i64 = 48 * 3600;
const MARKER_PREFIX: &str = "event#";

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// The same stream record was applied before (a retried batch).
    AlreadyCounted,
    /// It changes no counter.
    Nothing,
}

impl Counters {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Counters {
            client,
            table: table.into(),
        }
    }

    fn failed(&self, operation: &'static str, e: &dyn std::error::Error) -> CatalogError {
        table_error(operation, &self.table, e)
    }

    /// Applies one change exactly once: a marker item for its event id (conditional on
    /// not existing) and the counter updates, in one transaction.
    pub async fn apply(
        &self,
        change: &StreamChange,
        now_epoch_s: i64,
    ) -> Result<Applied, CatalogError> {
        let deltas = counter_deltas(change);
        if deltas.is_empty() {
            return Ok(Applied::Nothing);
        }
        let marker = Put::builder()
            .table_name(&self.table)
            .item("prefix", s(&format!("{MARKER_PREFIX}{}", change.event_id)))
            .item(
                "expires_at",
                AttributeValue::N((now_epoch_s + MARKER_TTL_SECONDS).to_string()),
            )
            .condition_expression("attribute_not_exists(prefix)")
            .build()
            .map_err(|e| self.failed("TransactWriteItems", &e))?;
        let mut items = vec![TransactWriteItem::builder().put(marker).build()];
        // One update per prefix (a transaction may touch an item once).
        let mut by_prefix: BTreeMap<&str, Vec<(CatalogStatus, i64)>> = BTreeMap::new();
        for (prefix, status, delta) in &deltas {
            by_prefix.entry(prefix).or_default().push((*status, *delta));
        }
        for (prefix, changes) in by_prefix {
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("prefix", s(prefix));
            let mut parts = Vec::new();
            for (i, (status, delta)) in changes.iter().enumerate() {
                parts.push(format!("#s{i} :d{i}"));
                update = update
                    .expression_attribute_names(format!("#s{i}"), status.as_str())
                    .expression_attribute_values(
                        format!(":d{i}"),
                        AttributeValue::N(delta.to_string()),
                    );
            }
            let update = update
                .update_expression(format!("ADD {}", parts.join(", ")))
                .build()
                .map_err(|e| self.failed("TransactWriteItems", &e))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Applied::Counted),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let marker_exists = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                        tc.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                };
                if marker_exists {
                    Ok(Applied::AlreadyCounted)
                } else {
                    Err(self.failed("TransactWriteItems", &e))
                }
            }
        }
    }

    /// Every prefix's counts, sorted by prefix.
    pub async fn all(&self) -> Result<Vec<PrefixCounts>, CatalogError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("Scan", &e))?;
            for item in page.items() {
                let Some(prefix) = item.get("prefix").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if prefix.starts_with(MARKER_PREFIX) {
                    continue;
                }
                let counts = CatalogStatus::ALL
                    .into_iter()
                    .map(|status| {
                        let n = item
                            .get(status.as_str())
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        (status, n)
                    })
                    .collect();
                out.push(PrefixCounts {
                    prefix: prefix.clone(),
                    counts,
                });
            }
        }
        out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_core::catalog::sortable_sequencer;

    fn entry(version: &str, seq: &str, status: CatalogStatus) -> CatalogEntry {
        CatalogEntry {
            key: "p/a.jpg".into(),
            version: version.into(),
            seq: sortable_sequencer(Some(seq)).unwrap_or_default(),
            status,
            result_key: "manifests/p/a.jpg.json".into(),
            error: None,
            etag: Some("9b2cf535f27731c974343645a3985328".into()),
            thumbnails: 2,
            execution: format!("exec-{version}"),
            recorded_at: "2026-11-29T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn memory_catalog_latest_is_conditional_on_what_was_read() {
        let c = MemoryCatalog::new();
        let v1 = entry("v1", "01", CatalogStatus::Processed);
        let v2 = entry("v2", "02", CatalogStatus::Processed);
        c.put_version(&v1).await.unwrap();
        assert!(c.put_latest(&v1, None).await.unwrap());
        // Create-only fails once something is there.
        assert!(!c.put_latest(&v2, None).await.unwrap());
        // A stale read fails; the read item succeeds.
        assert!(!c.put_latest(&v2, Some(&v2)).await.unwrap());
        let read = c.latest("p/a.jpg").await.unwrap().unwrap();
        assert!(c.put_latest(&v2, Some(&read)).await.unwrap());
        assert!(!c.put_latest(&v1, Some(&read)).await.unwrap());
        let (versions, latest) = c.entries("p/a.jpg");
        assert_eq!(versions.len(), 1);
        assert_eq!(latest.unwrap().version, "v2");
    }

    #[test]
    fn item_round_trips_through_entry_of() {
        let mut e = entry("v1", "AB", CatalogStatus::Quarantined);
        e.error = Some("InvalidImage".into());
        let item = item_of(&e, "v1");
        assert_eq!(entry_of("t", &item).unwrap(), e);
        let mut bad = item.clone();
        bad.insert("status".into(), s("lost"));
        assert!(entry_of("t", &bad).is_err());
    }
}
