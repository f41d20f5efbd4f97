//! End-of-DATA → sealed → notification delivered, timed in this process.
//!
//! The SMTP session marks a secure message's end of DATA by its id; the sealer
//! observes the seal latency; the notifier links each notification it queues
//! to the message; the delivery worker observes the notification latency when
//! that notification is handed on. The database's times are whole seconds, too
//! coarse for these, so the instants are kept in memory: a message sealed or a
//! notification delivered by another node (or after a restart) is simply not
//! timed. A notification's entry is dropped when it is delivered; past
//! [`SWEEP_AT`] entries, those older than [`KEEP`] go, and past that nothing
//! new is timed, so the maps stay small (a few MB at most) whatever happens.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::metrics;

/// How long an unfinished timing is kept.
const KEEP: Duration = Duration::from_secs(300);
/// Past this many entries, old ones are swept on the next insert.
const SWEEP_AT: usize = 20_000;

#[derive(Default)]
struct Timings {
    /// Message id → its end of DATA.
    accepted: HashMap<String, Instant>,
    /// Queued notification id → the end of DATA of the message it announces.
    notifications: HashMap<String, Instant>,
}

fn timings() -> std::sync::MutexGuard<'static, Timings> {
    static TIMINGS: LazyLock<Mutex<Timings>> = LazyLock::new(Mutex::default);
    // A poisoned lock only means another thread panicked while timing: the
    // maps are still usable.
    TIMINGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn insert(map: &mut HashMap<String, Instant>, key: &str, at: Instant) {
    if map.len() >= SWEEP_AT {
        map.retain(|_, at| at.elapsed() < KEEP);
    }
    if map.len() < SWEEP_AT {
        map.insert(key.to_owned(), at);
    }
}

/// A secure message got its 250.
pub fn accepted(message: &str) {
    insert(&mut timings().accepted, message, Instant::now());
}

/// The message is sealed: observes end of DATA → sealed.
pub fn sealed(message: &str) {
    let at = timings().accepted.get(message).copied();
    if let Some(at) = at {
        metrics().seal_latency.observe(at.elapsed().as_secs_f64());
    }
}

/// A notification of `message` was queued as `outbound`.
pub fn notification_queued(message: &str, outbound: &str) {
    let mut timings = timings();
    if let Some(at) = timings.accepted.get(message).copied() {
        insert(&mut timings.notifications, outbound, at);
    }
}

/// A queued item was handed on: if it was a timed notification, observes end
/// of DATA → notification delivered.
pub fn delivered(outbound: &str) {
    let at = timings().notifications.remove(outbound);
    if let Some(at) = at {
        metrics().notification_latency.observe(at.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_timed_from_its_messages_end_of_data() {
        accepted("m-latency-test");
        sealed("m-latency-test");
        notification_queued("m-latency-test", "o-latency-test");
        delivered("o-latency-test");
        // Delivered twice (a retry that was not one): observed once.
        delivered("o-latency-test");
        let text = metrics().encode();
        let count = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("sealpost_{name}_count")))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        assert!(count("seal_latency_seconds") >= 1, "{text}");
        assert_eq!(count("notification_latency_seconds"), 1, "{text}");
        // An unknown id is not timed and does not panic.
        delivered("never-queued");
        sealed("never-accepted");
    }
}
