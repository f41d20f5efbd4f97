//! What an admin runs beside a live server to keep a deployment healthy for
//! years: key rotation (`rotate`), backups and restores (`backup`), and the audit
//! export for a SIEM (`audit_export`). Each is an `impl Store` of its own.

pub mod audit_export;
pub mod backup;
pub mod rotate;
