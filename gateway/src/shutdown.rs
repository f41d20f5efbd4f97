//! Graceful shutdown (SIGTERM, Ctrl-C): a [`Trigger`] the process holds and a
//! [`Shutdown`] every listener and connection holds a clone of. Stopping
//! tells them all; listeners then stop accepting, connections finish what is
//! in flight (an SMTP message being received, an IMAP command, an HTTP
//! request) and close; [`Trigger::stop`] waits until every clone is gone, or
//! the grace period is over.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Held by whatever must finish before the process exits.
#[derive(Debug, Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
}

/// Held by the process: asks every [`Shutdown`] to stop and waits for them.
#[derive(Debug)]
pub struct Trigger {
    signal: watch::Sender<bool>,
    drained: mpsc::Receiver<()>,
}

/// A trigger and the first shutdown handle.
pub fn channel() -> (Trigger, Shutdown) {
    let (signal_tx, signal_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = mpsc::channel(1);
    (
        Trigger {
            signal: signal_tx,
            drained: drain_rx,
        },
        Shutdown {
            signal: signal_rx,
            drain: drain_tx,
        },
    )
}

impl Shutdown {
    /// Whether stopping has been asked for.
    pub fn is_requested(&self) -> bool {
        *self.signal.borrow()
    }

    /// Resolves once stopping is asked for; never if the trigger is dropped
    /// without asking (the process ends another way).
    pub async fn requested(&mut self) {
        if self.signal.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The parts, for a crate that does not know this type (the portal).
    pub fn into_parts(self) -> (watch::Receiver<bool>, mpsc::Sender<()>) {
        (self.signal, self.drain)
    }
}

impl Trigger {
    /// Asks every holder of a [`Shutdown`] to stop, without waiting.
    pub fn request(&self) {
        let _ = self.signal.send(true);
    }

    /// Asks every holder of a [`Shutdown`] to stop, then waits until all of
    /// them are gone or `grace` is over; returns whether all finished in time.
    pub async fn stop(mut self, grace: Duration) -> bool {
        self.request();
        // No holder sends: `recv` ends when the last sender is dropped.
        tokio::time::timeout(grace, self.drained.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_holder_within_the_grace_period() {
        let (trigger, shutdown) = channel();
        let mut held = shutdown.clone();
        assert!(!held.is_requested());
        let finished = tokio::spawn(async move {
            held.requested().await;
            // In-flight work finishes after the signal, then lets go.
            tokio::task::yield_now().await;
            drop(held);
            true
        });
        drop(shutdown);
        assert!(trigger.stop(Duration::from_secs(30)).await, "every holder let go");
        assert!(finished.await.unwrap());

        let (trigger, shutdown) = channel();
        let stuck = shutdown.clone();
        drop(shutdown);
        assert!(
            !trigger.stop(Duration::from_millis(20)).await,
            "a holder that never lets go"
        );
        assert!(stuck.is_requested());
    }
}
