//! Function configuration, parsed once at start-up from the environment's key/value pairs.

use std::collections::HashMap;

use crate::error::PipelineError;
use crate::layout::OutputLayout;
use crate::transform::TransformSpec;

/// Everything the functions read from their environment, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    pub layout: OutputLayout,
    pub transform: TransformSpec,
    /// Objects larger than this are quarantined as `TooLarge` without being read.
    pub max_object_bytes: u64,
    /// Only ingest needs it.
    pub state_machine_arn: Option<String>,
}

pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50 * 1024 * 1024;

impl PipelineConfig {
    /// Parses `OUTPUT_BUCKET` (required), `THUMBNAILS_PREFIX`, `MANIFESTS_PREFIX`,
    /// `QUARANTINE_PREFIX`, `THUMBNAIL_SIZES` (e.g. `256,1024`), `MAX_OBJECT_BYTES`,
    /// `MAX_PIXELS`, `JPEG_QUALITY` and `STATE_MACHINE_ARN`.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, PipelineError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let bucket = get("OUTPUT_BUCKET")
            .ok_or_else(|| PipelineError::config("OUTPUT_BUCKET is not set"))?;
        let mut layout = OutputLayout::new(bucket);
        for (name, slot) in [
            ("THUMBNAILS_PREFIX", &mut layout.thumbnails_prefix),
            ("MANIFESTS_PREFIX", &mut layout.manifests_prefix),
            ("QUARANTINE_PREFIX", &mut layout.quarantine_prefix),
        ] {
            if let Some(v) = get(name) {
                *slot = v.to_string();
            }
        }
        let mut transform = TransformSpec::default();
        if let Some(sizes) = get("THUMBNAIL_SIZES") {
            transform.sizes = parse_sizes(sizes)?;
        }
        if let Some(v) = get("MAX_PIXELS") {
            transform.max_pixels = parse_number("MAX_PIXELS", v)?;
        }
        if let Some(v) = get("JPEG_QUALITY") {
            let q: u64 = parse_number("JPEG_QUALITY", v)?;
            transform.jpeg_quality = u8::try_from(q)
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or_else(|| PipelineError::config(format!("JPEG_QUALITY {v} is not 1-100")))?;
        }
        let max_object_bytes = match get("MAX_OBJECT_BYTES") {
            Some(v) => parse_number("MAX_OBJECT_BYTES", v)?,
            None => DEFAULT_MAX_OBJECT_BYTES,
        };
        Ok(PipelineConfig {
            layout,
            transform,
            max_object_bytes,
            state_machine_arn: get("STATE_MACHINE_ARN").map(str::to_string),
        })
    }
}

fn parse_number(name: &str, value: &str) -> Result<u64, PipelineError> {
    value
        .trim()
        .parse()
        .map_err(|_| PipelineError::config(format!("{name}={value:?} is not a whole number")))
}

/// `"256,1024"` -> `[256, 1024]`; sizes must be 1-16384 and are deduplicated, largest first.
pub fn parse_sizes(text: &str) -> Result<Vec<u32>, PipelineError> {
    let mut sizes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let size: u32 = part
            .parse()
            .ok()
            .filter(|s| (1..=16384).contains(s))
            .ok_or_else(|| {
                PipelineError::config(format!("THUMBNAIL_SIZES entry {part:?} is not 1-16384"))
            })?;
        sizes.push(size);
    }
    if sizes.is_empty() {
        return Err(PipelineError::config("THUMBNAIL_SIZES lists no size"));
    }
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vars_defaults() {
        let c = PipelineConfig::from_vars([("OUTPUT_BUCKET", "out")]).unwrap();
        assert_eq!(c.layout, OutputLayout::new("out"));
        assert_eq!(c.transform.sizes, vec![1024, 256]);
        assert_eq!(c.max_object_bytes, DEFAULT_MAX_OBJECT_BYTES);
        assert_eq!(c.state_machine_arn, None);
    }

    #[test]
    fn from_vars_overrides() {
        let c = PipelineConfig::from_vars([
            ("OUTPUT_BUCKET", "out"),
            ("THUMBNAILS_PREFIX", "t/"),
            ("THUMBNAIL_SIZES", "64, 128,64"),
            ("MAX_OBJECT_BYTES", "10"),
            ("MAX_PIXELS", "1000"),
            ("JPEG_QUALITY", "90"),
            ("STATE_MACHINE_ARN", "arn:sm"),
        ])
        .unwrap();
        assert_eq!(c.layout.thumbnails_prefix, "t/");
        assert_eq!(c.transform.sizes, vec![128, 64]);
        assert_eq!(c.max_object_bytes, 10);
        assert_eq!(c.transform.max_pixels, 1000);
        assert_eq!(c.transform.jpeg_quality, 90);
        assert_eq!(c.state_machine_arn.as_deref(), Some("arn:sm"));
    }

    #[test]
    fn from_vars_bad_values_are_config_errors() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("OUTPUT_BUCKET", "")],
            &[("OUTPUT_BUCKET", "o"), ("THUMBNAIL_SIZES", "0")],
            &[("OUTPUT_BUCKET", "o"), ("THUMBNAIL_SIZES", "big")],
            &[("OUTPUT_BUCKET", "o"), ("THUMBNAIL_SIZES", ",")],
            &[("OUTPUT_BUCKET", "o"), ("MAX_PIXELS", "-1")],
            &[("OUTPUT_BUCKET", "o"), ("JPEG_QUALITY", "101")],
        ];
        for vars in cases {
            let err = PipelineConfig::from_vars(vars.iter().copied()).unwrap_err();
            assert_eq!(err.name(), "ConfigError", "{vars:?}");
        }
    }
}
