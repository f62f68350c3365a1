//! The `pipeline` command's library half: what the integration tests call in-process
//! (the web console) and what the binary's subcommands share.

pub mod console;
