//! Waiting after errors. A worker whose store calls fail waits before trying
//! again, twice as long each time up to a cap, and says so in the log once per
//! interval rather than once per try (issue 8: with the database gone, the
//! delivery worker looped without pause, writing ~4 MB of log a second).

use std::time::Duration;

use tokio::time::Instant;

/// Backoff and log throttling for one worker.
#[derive(Debug)]
pub struct Backoff {
    what: &'static str,
    base: Duration,
    cap: Duration,
    log_every: Duration,
    failures: u32,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl Backoff {
    /// 1 s, 2 s, 4 s … at most a minute; a repeated error is logged once a minute.
    pub fn new(what: &'static str) -> Self {
        Self::with(
            what,
            Duration::from_secs(1),
            Duration::from_mins(1),
            Duration::from_mins(1),
        )
    }

    pub fn with(what: &'static str, base: Duration, cap: Duration, log_every: Duration) -> Self {
        Self {
            what,
            base,
            cap,
            log_every,
            failures: 0,
            last_logged: None,
            unlogged: 0,
        }
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait after the failures so far: `base · 2^(n-1)`, at most `cap`.
    pub fn delay(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (self.failures - 1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// Records a failure and returns how long to wait before the next try. The
    /// error is logged unless one was logged less than an interval ago; the line
    /// says how many went unlogged since.
    pub fn fail(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.fail_at(Instant::now(), error)
    }

    /// [`fail`](Self::fail) at a given time (tests pass their own).
    pub fn fail_at(&mut self, now: Instant, error: &dyn std::fmt::Display) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = self.delay();
        if self.should_log(now) {
            tracing::error!(
                worker = self.what,
                %error,
                failures = self.failures,
                unlogged = self.unlogged,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "worker error; backing off"
            );
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        wait
    }

    /// Whether a failure at `now` is logged (and if so, starts a new interval).
    fn should_log(&mut self, now: Instant) -> bool {
        match self.last_logged {
            Some(at) if now.saturating_duration_since(at) < self.log_every => false,
            _ => {
                self.last_logged = Some(now);
                true
            }
        }
    }

    /// Things work again: the next failure waits `base` and is logged at once.
    pub fn succeed(&mut self) {
        if self.failures > 0 {
            tracing::info!(worker = self.what, failures = self.failures, "worker recovered");
        }
        self.failures = 0;
        self.last_logged = None;
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts at 1 s, capped at a minute, a repeated error logged once a minute.
    fn test_backoff() -> Backoff {
        Backoff::with(
            "test",
            Duration::from_secs(1),
            Duration::from_mins(1),
            Duration::from_mins(1),
        )
    }

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let mut backoff = test_backoff();
        let start = Instant::now();
        let waits: Vec<u64> = (0..9).map(|_| backoff.fail_at(start, &"db gone").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        for _ in 0..100 {
            assert_eq!(backoff.fail_at(start, &"db gone"), Duration::from_mins(1));
        }
        backoff.succeed();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.fail_at(start, &"db gone"), Duration::from_secs(1));
    }

    #[test]
    fn a_repeated_error_is_logged_once_per_interval() {
        let mut backoff = test_backoff();
        let start = Instant::now();
        let mut logged = 0;
        // An hour of failing every second (as a worker with no backoff would).
        for second in 0..3600 {
            let now = start + Duration::from_secs(second);
            logged += u32::from(backoff.should_log(now));
        }
        assert_eq!(logged, 60);
        // After recovering, the first new error is logged at once.
        backoff.succeed();
        assert!(backoff.should_log(start + Duration::from_hours(1)));
    }

    /// The loop a worker runs against a store that keeps failing, on a simulated
    /// clock: in ten minutes it tries 15 times, not millions.
    #[test]
    fn a_failing_loop_tries_rarely() {
        let mut backoff = test_backoff();
        let start = Instant::now();
        let mut now = start;
        let mut tries = 0;
        while now.duration_since(start) < Duration::from_mins(10) {
            tries += 1;
            now += backoff.fail_at(now, &"db gone");
        }
        // 1+2+4+8+16+32 = 63 s, then one try a minute.
        assert_eq!(tries, 6 + 9);
        assert_eq!(backoff.unlogged, 0, "each try was a minute apart: all logged");
    }
}
