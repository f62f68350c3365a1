//! Fuzz target: what ingest decides for arbitrary bytes as an S3 notification.
//!
//! Invariants: planning never panics and gives one plan per record; every planned start
//! has a valid execution name, a key of 1-1,024 bytes, and an input that serialises and
//! parses back unchanged (it becomes the execution input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::event::{plan_event, EventPlan, RecordPlan};
use pipeline_core::key::MAX_KEY_BYTES;
use pipeline_core::layout::OutputLayout;
use pipeline_core::naming::ExecutionName;
use pipeline_core::payload::ExecutionInput;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(EventPlan::Records(plans)) = plan_event(&event, &OutputLayout::new("out")) else {
        return;
    };
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(plans.len(), records);
    for plan in plans {
        if let RecordPlan::Start { name, input } = plan {
            assert!(ExecutionName::is_valid(name.as_str()), "{name:?}");
            let key = &input.source.key;
            assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES, "{key:?}");
            let json = serde_json::to_string(&input).expect("execution input serialises");
            let back: ExecutionInput = serde_json::from_str(&json).expect("and parses back");
            assert_eq!(back, input);
        }
    }
});
