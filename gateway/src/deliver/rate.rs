//! Per-destination rate limits: at most N messages a minute to one recipient
//! domain (`outbound.rate_limits`, else `outbound.rate_limit`), as large
//! providers ask of bulk senders. A delivery over its domain's rate is
//! postponed to when the minute has room: it waits, it is not failed, and it
//! does not count as an attempt. The count is kept in the process: clones of
//! one [`RateLimits`] share it, and each node of a cluster keeps its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A minute, in seconds: the window rates are counted in.
const WINDOW: i64 = 60;
/// Past this many domains counted, windows that have ended are dropped.
const PRUNE_AT: usize = 10_000;

/// The limits and what was sent in each domain's current minute.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    default: Option<u32>,
    by_domain: Arc<HashMap<String, u32>>,
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    sent: u32,
}

impl RateLimits {
    /// `default` messages a minute to any domain (`None`: no limit), and a
    /// limit by domain (lower case) that overrides it.
    #[must_use]
    pub fn new(default: Option<u32>, by_domain: HashMap<String, u32>) -> Self {
        Self {
            default: default.filter(|rate| *rate > 0),
            by_domain: Arc::new(by_domain),
            windows: Arc::default(),
        }
    }

    /// The limit for `domain`, when there is one.
    fn limit(&self, domain: &str) -> Option<u32> {
        self.by_domain.get(domain).copied().or(self.default)
    }

    /// Takes a slot for one message to `recipient`'s domain at `now` (Unix
    /// seconds). `Err(at)` when the domain's minute is full: `at` is when the
    /// next one starts.
    ///
    /// # Errors
    /// When the rate is reached.
    pub fn take(&self, recipient: &str, now: i64) -> Result<(), i64> {
        let domain = recipient
            .rsplit_once('@')
            .map_or("", |(_, domain)| domain)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let Some(limit) = self.limit(&domain) else {
            return Ok(());
        };
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, window| now < window.start + WINDOW);
        }
        let window = windows.entry(domain).or_insert(Window { start: now, sent: 0 });
        if now >= window.start + WINDOW || now < window.start {
            *window = Window { start: now, sent: 0 };
        }
        if window.sent >= limit {
            return Err(window.start + WINDOW);
        }
        window.sent += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_n_plus_first_message_of_a_minute_waits_for_the_next() {
        let limits = RateLimits::new(Some(5), [("slow.example".to_owned(), 2)].into());
        assert_eq!(limits.take("a@slow.example", 1000), Ok(()));
        assert_eq!(limits.take("b@SLOW.example", 1010), Ok(()));
        assert_eq!(limits.take("c@slow.example", 1020), Err(1060), "third in the minute");
        assert_eq!(limits.take("c@slow.example", 1059), Err(1060));
        // Other domains have the default: five, then wait.
        for n in 0..5 {
            assert_eq!(limits.take(&format!("{n}@other.example"), 1020), Ok(()));
        }
        assert_eq!(limits.take("x@other.example", 1020), Err(1080));
        // A new minute has room again.
        assert_eq!(limits.take("c@slow.example", 1060), Ok(()));
        assert_eq!(limits.take("d@slow.example", 1061), Ok(()));
        assert_eq!(limits.take("e@slow.example", 1062), Err(1120));
        // Clones share the count (several delivery loops).
        assert_eq!(limits.clone().take("f@slow.example", 1063), Err(1120));
    }

    #[test]
    fn without_limits_nothing_waits() {
        let limits = RateLimits::new(None, [("slow.example".to_owned(), 1)].into());
        for _ in 0..100 {
            assert_eq!(limits.take("a@fast.example", 0), Ok(()));
        }
        assert_eq!(limits.take("a@slow.example", 0), Ok(()));
        assert!(limits.take("a@slow.example", 0).is_err());
        assert!(RateLimits::default().take("a@slow.example", 0).is_ok());
    }
}
