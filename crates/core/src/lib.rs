//! Pure domain logic of s3-pipeline: everything that can be decided from inputs alone.
//!
//! Architecture invariant: this crate does no I/O (no network, no files, no clock, no
//! environment reads). It cannot fail for reasons outside its inputs, so it is tested
//! with plain table-driven unit tests. Adapters (AWS SDK, Lambda runtime) live elsewhere
//! and call into it.

pub mod catalog;
pub mod config;
pub mod cost;
pub mod error;
pub mod event;
pub mod image_info;
pub mod jpeg;
pub mod key;
pub mod layout;
pub mod naming;
pub mod ordering;
pub mod payload;
pub mod reconcile;
pub mod release;
pub mod report;
pub mod sniff;
pub mod transform;
pub mod webp;

pub use error::PipelineError;
