//! The signals `sealpost serve` answers, in one place: SIGTERM (what systemd
//! sends to stop a service) and SIGINT (Ctrl-C) both stop gracefully.
//! (SIGHUP, reloading certificates, sits beside them.)

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

/// Why the server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM.
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }
}

/// Listens for the stop signals; the handlers are installed when this
/// returns, so a signal that arrives before [`Signals::stop`] is awaited is
/// not lost.
#[derive(Debug)]
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Waits for SIGTERM or SIGINT.
    pub async fn stop(&mut self) -> Stop {
        tokio::select! {
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.interrupt.recv() => Stop::Interrupt,
        }
    }
}
