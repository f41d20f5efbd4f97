//! Back-pressure: while more work waits in the pipeline than the configured
//! depth (`smtp.max_queue_depth`: secure messages not yet sealed, notifications
//! not yet composed, deliveries due), a new transaction's MAIL FROM gets
//! `452 4.3.1`, and the sending MTA keeps the mail in its own queue and tries
//! again later (RFC 5321 §4.2.5; RFC 3463 X.3.1 "mail system full"). So a burst
//! bigger than the workers can take never grows into an unbounded backlog here.
//!
//! The count comes from the store ([`store::Queue::backlog`]) and is reused for a
//! moment between transactions, with what was accepted since added on; a
//! count that says "full" is always fresh, so mail is refused only while the
//! backlog really is past the depth.

use std::sync::Mutex;
use std::time::Duration;

use store::Store;
use tokio::time::Instant;

use super::reply::Reply;

/// How long a count that says "not full" is reused.
const FRESH: Duration = Duration::from_millis(100);

/// The last backlog count, shared by every session of a server.
#[derive(Debug)]
pub(crate) struct Backlog {
    limit: u64,
    last: Mutex<Option<(Instant, i64)>>,
}

impl Backlog {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            last: Mutex::new(None),
        }
    }

    /// `Some(reply)` when new mail must wait. A store that cannot count lets
    /// mail in (storing it will then say whether the store works).
    pub(crate) async fn refusal(&self, store: &Store) -> Option<Reply> {
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        let cached = *self.last.lock().expect("backlog lock");
        if let Some((at, count)) = cached
            && at.elapsed() < FRESH
            && count < limit
        {
            return None;
        }
        let count = match store.queue().backlog().await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(%error, "cannot count the backlog; mail is let in");
                return None;
            }
        };
        *self.last.lock().expect("backlog lock") = Some((Instant::now(), count));
        (count >= limit).then(|| {
            tracing::warn!(
                backlog = count,
                limit,
                "backlog past smtp.max_queue_depth: new mail told to wait"
            );
            Reply::new(
                452,
                "4.3.1",
                "Too much mail is waiting to be processed; please try again later",
            )
        })
    }

    /// Counts work just added (a message accepted) until the next fresh count.
    pub(crate) fn added(&self, items: usize) {
        if let Some((_, count)) = self.last.lock().expect("backlog lock").as_mut() {
            *count = count.saturating_add(i64::try_from(items).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
#[path = "backpressure_tests.rs"]
mod tests;
