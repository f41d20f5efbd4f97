//! The `sealpost` binary's library half: configuration, TLS and wiring, shared
//! by `main.rs` and the end-to-end tests.

pub mod admin_http;
pub mod app;
pub mod config;
pub mod reload;
pub mod signals;
pub mod tls;
