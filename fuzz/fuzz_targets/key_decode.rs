//! Fuzz target: event key decoding, and the output keys derived from any decoded key.
//!
//! Invariants: decoding never panics; a decoded key is 1-1,024 bytes and survives
//! encode -> decode unchanged; every output key stays under its prefix (no `.`/`..`/empty
//! segment, backslash or control character is mirrored) and within 1,024 bytes; the
//! execution name is valid for Step Functions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::key::{ObjectKey, MAX_KEY_BYTES};
use pipeline_core::layout::{is_mirrorable, OutputLayout};
use pipeline_core::naming::{ExecutionName, VersionToken};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for key in [
        ObjectKey::decode_from_event(text),
        ObjectKey::from_decoded(text),
    ]
    .into_iter()
    .flatten()
    {
        check_key(&key);
    }
});

fn check_key(key: &ObjectKey) {
    let raw = key.as_str();
    assert!(!raw.is_empty() && raw.len() <= MAX_KEY_BYTES, "{raw:?}");
    let again = ObjectKey::decode_from_event(&key.encode_for_event());
    assert_eq!(again.as_ref(), Ok(key), "round trip of {raw:?}");

    let layout = OutputLayout::new("out");
    // (prefix, suffix, output key)
    let outputs = [
        (
            layout.thumbnails_prefix.clone(),
            "/16384.jpg",
            layout.thumbnail_key(key, "ffffffffffffffff", 16384, "jpg"),
        ),
        (
            layout.manifests_prefix.clone(),
            ".json",
            layout.manifest_key(key),
        ),
        (
            format!("{}objects/", layout.quarantine_prefix),
            "",
            layout.quarantine_object_key(key, "ffffffffffffffff"),
        ),
        (
            format!("{}reports/", layout.quarantine_prefix),
            ".json",
            layout.quarantine_report_key(key),
        ),
    ];
    for (prefix, suffix, out) in outputs {
        assert!(out.len() <= MAX_KEY_BYTES, "{raw:?} -> {} bytes", out.len());
        let Some(rest) = out.strip_prefix(&prefix) else {
            panic!("{raw:?} -> {out:?} is not under {prefix}");
        };
        assert!(
            !rest
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".."),
            "{raw:?} -> {out:?}"
        );
        assert!(
            !rest.chars().any(|c| c == '\\' || c.is_control()),
            "{raw:?} -> {out:?}"
        );
        let fits = prefix.len() + raw.len() + suffix.len() <= MAX_KEY_BYTES;
        let expected = match (is_mirrorable(raw), fits) {
            (true, true) => format!("{raw}{suffix}"),
            (true, false) => "_long/".to_owned(),
            (false, _) => "_unsafe/".to_owned(),
        };
        assert!(rest.starts_with(&expected), "{raw:?} -> {out:?}");
    }

    let name = ExecutionName::for_object("bucket", key, VersionToken::VersionId("v1"));
    assert!(
        ExecutionName::is_valid(name.as_str()),
        "{name:?} for {raw:?}"
    );
}
