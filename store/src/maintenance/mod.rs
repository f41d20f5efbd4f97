//! What an admin runs beside a live server to keep a deployment healthy for
//! years: key rotation (`rotate`), backups and restores (`backup`), and the audit
//! export for a SIEM (`audit_export`), and what a load balancer and a
//! monitoring system ask (`health`). Each is an `impl Store` of its own.

pub mod audit_export;
pub mod backup;
pub mod health;
pub mod rotate;
