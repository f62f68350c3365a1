//! The one crate that builds AWS SDK clients.
//!
//! Everything else receives a [`Clients`] or one of the small traits defined here
//! ([`ObjectStore`], [`ExecutionStarter`]), each with an SDK implementation and an
//! in-memory fake for unit tests. Nothing outside this crate calls
//! `aws_config::load_defaults`.

pub mod catalog;
pub mod clients;
pub mod deploy;
pub mod executions;
pub mod failures;
pub mod iam;
#[cfg(feature = "logs")]
pub mod logs;
pub mod reconcile;
pub mod releases;
pub mod store;

pub use clients::{load_sdk_config, sdk_config_for_endpoint, Clients};
pub use executions::{
    execution_arn, ExecutionStarter, ExecutionSummary, Executions, HistoryItem, MemoryStarter,
    ObjectRun, SfnStarter, StartError, StartOutcome,
};
pub use iam::{
    AccessLog, AccessRecord, AuthorizedCatalog, AuthorizedStarter, AuthorizedStore, Policy,
    Principal,
};
pub use store::{
    ListedObject, ListedVersion, MemoryStore, ObjectHead, ObjectLocation, ObjectStore, S3Store,
    StoreError, StoredObject, WriteCondition,
};
