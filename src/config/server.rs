//! `[server]`: how the running process behaves as a whole.

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Seconds a stopping server (SIGTERM, Ctrl-C) gives what is in flight —
    /// an SMTP message being received, an IMAP command, a portal request or
    /// upload — to finish before it exits anyway. 0 stops at once.
    pub shutdown_grace: u64,
    /// Messages each stage of the pipeline (sealing, composing notifications,
    /// delivering) works on at once; 0 means eight per CPU core available.
    pub workers: usize,
    /// Seconds a claimed mail job stays with the node that claimed it: if the
    /// node dies, another takes the job over after this long.
    pub job_lease: i64,
    /// Seconds a claimed delivery stays with the node that claimed it after its
    /// last renewal (a delivery still sending renews it every third of this).
    pub delivery_lease: i64,
}

impl Server {
    /// [`workers`](Self::workers) with 0 resolved to eight per core available.
    #[must_use]
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => gateway::workers::default_concurrency(),
            n => n,
        }
    }
}

impl Server {
    /// A lease lasts at least a second.
    pub(super) fn check_leases(&self, problems: &mut Vec<String>) {
        if self.job_lease < 1 || self.delivery_lease < 1 {
            problems.push("server.job_lease and server.delivery_lease must be at least 1 (seconds)".into());
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            shutdown_grace: 30,
            workers: 0,
            job_lease: store::claims::JOB_LEASE,
            delivery_lease: store::claims::OUTBOUND_LEASE,
        }
    }
}
