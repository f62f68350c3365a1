//! The catalog: one DynamoDB item per object version, a "latest" item per key that a stale
//! event never overwrites, and per-prefix counters kept by a stream consumer.
//!
//! Items (table keys `key`, `version`):
//! - `key=<source key>, version=<version id or "null">`: what became of that version.
//! - `key=<source key>, version="~latest"`: the same fields for the key's newest version.
//!   Written by the rule of [`crate::ordering`]: only for the version S3 reports as current,
//!   checked after reading the stored item, with a condition on what was read, so an older
//!   version finishing late never replaces it.
//!
//! `seq` is the S3 sequencer right-padded with `0` to [`SEQUENCER_WIDTH`] digits: AWS says
//! to right-pad before comparing, and padded to one width the strings compare in the
//! same order as text, which is what a DynamoDB condition (`seq <= :seq`) does.
//!
//! The stream consumer turns changes of version items into counter deltas per prefix
//! (the key's first path segment) and status ([`counter_deltas`]).

use serde_json::Value;

use crate::ordering::Sequencer;

/// The sort key of the per-key latest item. `~` sorts after every version id.
pub const LATEST: &str = "~latest";
/// The sort key of an object without a version id (unversioned bucket), as S3 says it.
pub const NULL_VERSION: &str = "null";
/// Width of a stored sequencer; S3's are about 18 hex digits today.
pub const SEQUENCER_WIDTH: usize = 40;
/// The counter row for keys without a `/`.
pub const ROOT_PREFIX: &str = "(root)";

/// What a catalog item says of its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogStatus {
    Processed,
    Quarantined,
    Superseded,
}

impl CatalogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogStatus::Processed => "processed",
            CatalogStatus::Quarantined => "quarantined",
            CatalogStatus::Superseded => "superseded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "processed" => Some(CatalogStatus::Processed),
            "quarantined" => Some(CatalogStatus::Quarantined),
            "superseded" => Some(CatalogStatus::Superseded),
            _ => None,
        }
    }

    pub const ALL: [CatalogStatus; 3] = [
        CatalogStatus::Processed,
        CatalogStatus::Quarantined,
        CatalogStatus::Superseded,
    ];
}

/// One object version's entry, as load or quarantine records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub key: String,
    /// The version id, or [`NULL_VERSION`].
    pub version: String,
    /// [`sortable_sequencer`] of the event; empty when the event had none. Recorded, not
    /// ordered by.
    pub seq: String,
    /// The version's ETag (unquoted): what identifies it where `version` is `"null"`.
    pub etag: Option<String>,
    pub status: CatalogStatus,
    /// The manifest or quarantine report key.
    pub result_key: String,
    /// The error name, for quarantined versions.
    pub error: Option<String>,
    pub thumbnails: u32,
    pub execution: String,
    pub recorded_at: String,
}

impl CatalogEntry {
    /// The version this entry describes, by the naming rule.
    pub fn token(&self) -> crate::naming::VersionToken<'_> {
        crate::naming::VersionToken::from_parts(Some(&self.version), self.etag.as_deref(), None)
    }

    /// The counter row this entry counts under.
    pub fn prefix(&self) -> &str {
        prefix_of(&self.key)
    }
}

/// `None` for a missing or non-hexadecimal sequencer; otherwise upper-case, right-padded
/// with `0` to [`SEQUENCER_WIDTH`] (longer values are kept whole: they still order
/// correctly against padded ones as long as no stored value is longer).
pub fn sortable_sequencer(sequencer: Option<&str>) -> Option<String> {
    let s = Sequencer::parse(sequencer?)?;
    let mut text = s.as_str().to_string();
    while text.len() < SEQUENCER_WIDTH {
        text.push('0');
    }
    Some(text)
}

/// The first path segment of `key` (`photos/2026/a.jpg` -> `photos`), or [`ROOT_PREFIX`].
pub fn prefix_of(key: &str) -> &str {
    match key.split_once('/') {
        Some((first, _)) if !first.is_empty() => first,
        _ => ROOT_PREFIX,
    }
}

/// One change the table's stream reported, reduced to what the counters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChange {
    /// The stream record's `eventID`: unique per change, the idempotency key.
    pub event_id: String,
    /// `(prefix, status)` before and after; `None` when the item did not / no longer exist
    /// or is not a version item.
    pub before: Option<(String, CatalogStatus)>,
    pub after: Option<(String, CatalogStatus)>,
}

/// Why a stream record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream record {index}: {reason}")]
pub struct StreamRecordError {
    pub index: usize,
    pub reason: String,
}

/// Reads a DynamoDB stream event (`{"Records": [...]}`, images as `{"S": ..}` attribute
/// values). Latest items and items without a known status count for nothing.
pub fn parse_stream_event(event: &Value) -> Result<Vec<StreamChange>, StreamRecordError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| StreamRecordError {
            index: 0,
            reason: "the event has no Records array".into(),
        })?;
    records
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let fail = |reason: &str| StreamRecordError {
                index,
                reason: reason.to_string(),
            };
            let event_id = r
                .get("eventID")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| fail("no eventID"))?
                .to_string();
            let ddb = r.get("dynamodb").ok_or_else(|| fail("no dynamodb field"))?;
            Ok(StreamChange {
                event_id,
                before: ddb.get("OldImage").and_then(counted),
                after: ddb.get("NewImage").and_then(counted),
            })
        })
        .collect()
}

fn string_attribute<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image.get(name)?.get("S")?.as_str()
}

/// `(prefix, status)` of a version item's image; `None` for the latest item.
fn counted(image: &Value) -> Option<(String, CatalogStatus)> {
    let key = string_attribute(image, "key")?;
    let version = string_attribute(image, "version")?;
    if version == LATEST {
        return None;
    }
    let status = CatalogStatus::parse(string_attribute(image, "status")?)?;
    Some((prefix_of(key).to_string(), status))
}

/// The counter changes one stream change makes: `-1` for what was, `+1` for what is;
/// nothing when both are the same.
pub fn counter_deltas(change: &StreamChange) -> Vec<(String, CatalogStatus, i64)> {
    if change.before == change.after {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some((prefix, status)) = &change.before {
        out.push((prefix.clone(), *status, -1));
    }
    if let Some((prefix, status)) = &change.after {
        out.push((prefix.clone(), *status, 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sortable_sequencer_pads_so_text_order_is_aws_order() {
        let a = sortable_sequencer(Some("0055AED6DCD90281E5")).unwrap();
        let b = sortable_sequencer(Some("0055AED6DCD90281E6")).unwrap();
        // Different lengths: AWS right-pads the shorter before comparing.
        let short = sortable_sequencer(Some("0055AED6DCD90281E")).unwrap();
        let long = sortable_sequencer(Some("0055AED6DCD90281E50")).unwrap();
        assert_eq!(a.len(), SEQUENCER_WIDTH);
        assert!(a < b);
        assert_eq!(short.cmp(&a), std::cmp::Ordering::Less);
        assert_eq!(long, a, "a trailing 0 is the same position");
        assert_eq!(sortable_sequencer(Some("abc")).unwrap()[..3], *"ABC");
        assert_eq!(sortable_sequencer(Some("xyz")), None);
        assert_eq!(sortable_sequencer(Some("")), None);
        assert_eq!(sortable_sequencer(None), None);
    }

    #[test]
    fn prefix_of_is_the_first_segment() {
        assert_eq!(prefix_of("photos/2026/a.jpg"), "photos");
        assert_eq!(prefix_of("a.jpg"), ROOT_PREFIX);
        assert_eq!(prefix_of("/a.jpg"), ROOT_PREFIX);
    }

    fn image(key: &str, version: &str, status: &str) -> Value {
        json!({"key": {"S": key}, "version": {"S": version}, "status": {"S": status}})
    }

    #[test]
    fn parse_stream_event_reads_inserts_modifies_and_removes() {
        let event = json!({"Records": [
            {"eventID": "1", "eventName": "INSERT",
             "dynamodb": {"NewImage": image("p/a.jpg", "v1", "quarantined")}},
            {"eventID": "2", "eventName": "MODIFY",
             "dynamodb": {"OldImage": image("p/a.jpg", "v1", "quarantined"),
                          "NewImage": image("p/a.jpg", "v1", "processed")}},
            {"eventID": "3", "eventName": "INSERT",
             "dynamodb": {"NewImage": image("p/a.jpg", LATEST, "processed")}},
            {"eventID": "4", "eventName": "REMOVE",
             "dynamodb": {"OldImage": image("b.png", "null", "processed")}}
        ]});
        let changes = parse_stream_event(&event).unwrap();
        let deltas: Vec<_> = changes.iter().map(counter_deltas).collect();
        let q = CatalogStatus::Quarantined;
        let p = CatalogStatus::Processed;
        assert_eq!(deltas[0], vec![("p".to_string(), q, 1)]);
        assert_eq!(
            deltas[1],
            vec![("p".to_string(), q, -1), ("p".to_string(), p, 1)]
        );
        assert!(deltas[2].is_empty(), "latest items count for nothing");
        assert_eq!(deltas[3], vec![(ROOT_PREFIX.to_string(), p, -1)]);
    }

    #[test]
    fn parse_stream_event_same_status_rewrite_counts_nothing() {
        let event = json!({"Records": [{"eventID": "9", "eventName": "MODIFY",
            "dynamodb": {"OldImage": image("p/a", "v", "processed"),
                         "NewImage": image("p/a", "v", "processed")}}]});
        let changes = parse_stream_event(&event).unwrap();
        assert!(counter_deltas(&changes[0]).is_empty());
    }

    #[test]
    fn parse_stream_event_rejects_malformed_records_by_index() {
        assert!(parse_stream_event(&json!({})).is_err());
        let err = parse_stream_event(&json!({"Records": [
            {"eventID": "1", "dynamodb": {}}, {"dynamodb": {}}
        ]}))
        .unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.reason.contains("eventID"));
    }

    #[test]
    fn catalog_status_round_trips() {
        for s in CatalogStatus::ALL {
            assert_eq!(CatalogStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CatalogStatus::parse("lost"), None);
    }
}
