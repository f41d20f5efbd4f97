//! Background workers that move secure mail along: sealing spooled messages
//! into the store, shredding messages past their lifetime, and sweeping what a
//! crash left behind; and what every
//! worker shares: a supervisor that restarts a worker that panics, a
//! [`Backoff`] for store errors, and bounded concurrency ([`lanes`]).

mod backoff;
pub mod lanes;
mod sealer;
mod sweeper;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use std::sync::Arc;

use store::Store;

pub use backoff::Backoff;
pub use sealer::{QUARANTINED, run_sealer};
pub use sweeper::{ORPHAN_GRACE, run_sweeper};

/// Items each stage works on at once per CPU core when the configuration says
/// 0. The stages mostly wait (for an fsync, a commit, the next SMTP reply), and
/// seals that finish together share one commit: on 2 cores, 16 at once sealed
/// and notified 1.6× as many messages a second as 2 at once (issue 14,
/// `bench/relay`), and 32 no more than 16.
const PER_CORE: usize = 8;

/// How many items each stage works on at once when the configuration says 0:
/// [`PER_CORE`] per CPU core available to the process.
#[must_use]
pub fn default_concurrency() -> usize {
    PER_CORE * std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Worker restarts after a panic since the process started (for status and tests).
pub static RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Runs a worker for ever: when it panics (or returns), logs it, waits (1 s,
/// doubling up to a minute while it keeps dying) and starts it again, so one
/// bad input can stop a worker only for a moment.
pub async fn supervise<F, Fut>(name: &'static str, start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    supervise_with(Backoff::new(name), start).await;
}

/// [`supervise`] with a given backoff (tests use short waits).
pub async fn supervise_with<F, Fut>(mut backoff: Backoff, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let started = tokio::time::Instant::now();
        let ended = AssertUnwindSafe(start()).catch_unwind().await;
        RESTARTS.fetch_add(1, Ordering::Relaxed);
        // A worker that ran a good while before dying starts again at once.
        if started.elapsed() > Duration::from_mins(10) {
            backoff.succeed();
        }
        let why = if ended.is_ok() { "stopped" } else { "panicked" };
        let wait = backoff.fail(&format_args!("worker {why}; restarting it"));
        tokio::time::sleep(wait).await;
    }
}

/// Shreds expired messages every `interval`.
pub async fn run_purger(store: Arc<Store>, interval: Duration) {
    let mut backoff = Backoff::new("purger");
    loop {
        let wait = match store.mail().purge_expired().await {
            Ok(count) => {
                backoff.succeed();
                if count > 0 {
                    tracing::info!(count, "expired messages shredded");
                }
                interval
            }
            Err(error) => backoff.fail(&format_args!("purge failed: {error}")).min(interval),
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn a_panicking_worker_is_started_again() {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        let mut done_tx = Some(done_tx);
        let backoff = Backoff::with(
            "test",
            Duration::from_millis(1),
            Duration::from_millis(4),
            Duration::from_mins(1),
        );
        let supervisor = tokio::spawn(async move {
            supervise_with(backoff, move || {
                let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
                let done = if run >= 3 { done_tx.take() } else { None };
                async move {
                    assert!(run >= 3, "worker dies on run {run}");
                    if let Some(done) = done {
                        let _ = done.send(run);
                    }
                    std::future::pending::<()>().await;
                }
            })
            .await;
        });
        let run = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run, 3, "two panics, then the third run keeps going");
        supervisor.abort();
    }
}
