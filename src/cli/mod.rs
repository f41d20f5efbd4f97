//! The admin subcommands, one file per noun; `main.rs` parses and dispatches.

pub(crate) mod audit;
pub(crate) mod practice;
pub(crate) mod spool;
pub(crate) mod user;
