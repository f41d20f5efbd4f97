//! SIGHUP: what a running server reloads without a restart. Today that is the
//! TLS certificate: the files are read again (a bad pair keeps the one in use)
//! and the ACME renewal task looks at its certificate again. Other settings need
//! a restart. Kept apart from shutdown (SIGTERM) handling so `serve` can run both.

use std::future::Future;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::tls::Certificates;

/// Reloads what can be reloaded (see the module doc).
pub fn reload(certificates: &Certificates) {
    match certificates.reload() {
        Ok(()) => {}
        Err(error) => tracing::error!(
            error = %format!("{error:#}"),
            "SIGHUP: the TLS certificate files are not usable; still serving the previous certificate"
        ),
    }
    certificates.nudge_renewal();
}

/// Installs the SIGHUP handler now (so a signal sent right after start-up is not
/// lost) and returns the task that reloads on each SIGHUP.
pub fn on_sighup(certificates: Arc<Certificates>) -> std::io::Result<impl Future<Output = ()>> {
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS certificate");
            reload(&certificates);
        }
    })
}
