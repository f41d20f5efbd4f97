//! Per-client throttling of failed sign-ins, shared by every door (portal, SMTP
//! AUTH, IMAP LOGIN, the contacts API): after `limit` failures from one address
//! within `window` seconds, that address may not try again on any door until the
//! window has passed.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failure counts by client address. In memory: a restart forgets them, which
/// only ever errs towards letting a person in.
#[derive(Debug, Default)]
pub struct ClientThrottle {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// The doors' prefixes on an audit `client` string.
const DOORS: [&str; 3] = ["smtp:", "imap:", "api:"];

/// The address part of an audit `client` string (`smtp:203.0.113.5` and
/// `imap:203.0.113.5` → `203.0.113.5`; IPv6 addresses keep their colons), so
/// every door spends one budget per client address.
fn key(client: &str) -> &str {
    DOORS
        .iter()
        .find_map(|door| client.strip_prefix(door))
        .unwrap_or(client)
}

impl ClientThrottle {
    /// Has `client` used up its failures for the current window?
    pub fn blocked(&self, client: &str, now: i64, limit: u32, window: i64) -> bool {
        let windows = self.windows.lock().expect("not poisoned");
        windows
            .get(key(client))
            .is_some_and(|(start, count)| now - start < window && *count >= limit)
    }

    /// Counts one failure for `client`.
    pub fn failed(&self, client: &str, now: i64, window: i64) {
        let mut windows = self.windows.lock().expect("not poisoned");
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now - *start < window);
        }
        let entry = windows.entry(key(client).to_owned()).or_insert((now, 0));
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_passes() {
        let throttle = ClientThrottle::default();
        for _ in 0..3 {
            assert!(!throttle.blocked("10.0.0.1", 100, 3, 60));
            throttle.failed("smtp:10.0.0.1", 100, 60);
        }
        assert!(
            throttle.blocked("10.0.0.1", 130, 3, 60),
            "portal and SMTP share one budget"
        );
        assert!(!throttle.blocked("10.0.0.2", 130, 3, 60));
        assert!(!throttle.blocked("10.0.0.1", 161, 3, 60));
    }

    #[test]
    fn every_door_spends_one_budget_per_address() {
        let throttle = ClientThrottle::default();
        throttle.failed("imap:2001:db8::1", 100, 60);
        throttle.failed("smtp:2001:db8::1", 100, 60);
        throttle.failed("2001:db8::1", 100, 60);
        assert!(throttle.blocked("2001:db8::1", 100, 3, 60), "IMAP, SMTP and portal");
        assert!(throttle.blocked("imap:2001:db8::1", 100, 3, 60));
        assert!(!throttle.blocked("imap:2001:db8::2", 100, 3, 60));
        assert_eq!(key("imap:10.0.0.1"), "10.0.0.1");
    }
}
