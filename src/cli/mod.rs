//! The admin subcommands, one file per noun; `main.rs` parses and dispatches.

pub(crate) mod audit;
pub(crate) mod audit_export;
pub(crate) mod backup;
pub(crate) mod dkim;
pub(crate) mod drop;
pub(crate) mod drop_api;
pub(crate) mod drop_files;
pub(crate) mod drop_watch;
pub(crate) mod keys;
pub(crate) mod practice;
pub(crate) mod queue;
pub(crate) mod spool;
pub(crate) mod tlsrpt;
pub(crate) mod user;
