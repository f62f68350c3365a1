//! Typed pipeline errors with stable names that the state machine's Retry and Catch match.

use thiserror::Error;

/// Every error a pipeline function can raise. `name()` is what reaches Step Functions as
/// the error type, so these names are a public contract with `state-machine/`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    /// The object's real content (sniffed from its bytes) is not an allowed image type.
    #[error("unsupported content: {detected}")]
    UnsupportedType { detected: String },
    /// The bytes claim to be an allowed image type but cannot be decoded.
    #[error("invalid image: {reason}")]
    InvalidImage { reason: String },
    /// The object or its decoded pixels exceed a configured limit.
    #[error("too large: {detail}")]
    TooLarge { detail: String },
    /// A zero-byte object.
    #[error("the object is empty (0 bytes)")]
    EmptyObject,
    /// The object (or the version the event named) no longer exists.
    #[error("source object s3://{bucket}/{key} not found")]
    SourceMissing { bucket: String, key: String },
    /// AWS refused the call for want of a permission (403 AccessDenied). Permanent: the
    /// role lacks a grant, so a retry would be refused the same way.
    #[error("access denied: {action} on {resource}")]
    AccessDenied { action: String, resource: String },
    /// A failure that may succeed when retried (throttling, network, 5xx).
    #[error("transient failure: {reason}")]
    Transient { reason: String },
    /// An event or state payload that does not have the expected shape.
    #[error("invalid event: {reason}")]
    InvalidEvent { reason: String },
    /// The function's configuration is missing or malformed.
    #[error("configuration error: {reason}")]
    Config { reason: String },
}

impl PipelineError {
    /// Names of every variant, as matched by the state machine.
    pub const NAMES: [&'static str; 9] = [
        "UnsupportedType",
        "InvalidImage",
        "TooLarge",
        "EmptyObject",
        "SourceMissing",
        "AccessDenied",
        "Transient",
        "InvalidEvent",
        "ConfigError",
    ];

    /// The stable error name Step Functions sees (`Error` in Retry/Catch).
    pub fn name(&self) -> &'static str {
        match self {
            Self::UnsupportedType { .. } => "UnsupportedType",
            Self::InvalidImage { .. } => "InvalidImage",
            Self::TooLarge { .. } => "TooLarge",
            Self::EmptyObject => "EmptyObject",
            Self::SourceMissing { .. } => "SourceMissing",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::Transient { .. } => "Transient",
            Self::InvalidEvent { .. } => "InvalidEvent",
            Self::Config { .. } => "ConfigError",
        }
    }

    /// Whether a retry may succeed. Only `Transient` is retried by the state machine.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub fn invalid_image(reason: impl std::fmt::Display) -> Self {
        Self::InvalidImage {
            reason: reason.to_string(),
        }
    }

    pub fn too_large(what: &str, actual: u64, limit: u64) -> Self {
        Self::TooLarge {
            detail: format!("{what} {actual} exceeds the limit {limit}"),
        }
    }

    pub fn transient(reason: impl std::fmt::Display) -> Self {
        Self::Transient {
            reason: reason.to_string(),
        }
    }

    pub fn invalid_event(reason: impl std::fmt::Display) -> Self {
        Self::InvalidEvent {
            reason: reason.to_string(),
        }
    }

    pub fn config(reason: impl std::fmt::Display) -> Self {
        Self::Config {
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_every_variant_is_listed_in_names() {
        let all = [
            PipelineError::UnsupportedType {
                detected: "x".into(),
            },
            PipelineError::invalid_image("x"),
            PipelineError::too_large("object size", 2, 1),
            PipelineError::EmptyObject,
            PipelineError::SourceMissing {
                bucket: "b".into(),
                key: "k".into(),
            },
            PipelineError::AccessDenied {
                action: "s3:GetObject".into(),
                resource: "arn:aws:s3:::b/k".into(),
            },
            PipelineError::transient("x"),
            PipelineError::invalid_event("x"),
            PipelineError::config("x"),
        ];
        let names: Vec<_> = all.iter().map(PipelineError::name).collect();
        assert_eq!(names, PipelineError::NAMES);
    }

    #[test]
    fn is_retryable_only_transient_is_retried() {
        assert!(PipelineError::transient("throttled").is_retryable());
        assert!(!PipelineError::invalid_image("bad").is_retryable());
        assert!(!PipelineError::EmptyObject.is_retryable());
    }
}
