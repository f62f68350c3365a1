//! The library half of xtask: the template and state-machine readers that tests outside
//! this crate build on (`integration-tests/tests/permissions.rs` takes each function's
//! role and environment from [`security`]). The `cargo xtask` binary uses the same
//! modules, so the YAML handling exists once.

pub mod asl;
pub mod security;
