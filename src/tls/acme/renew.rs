//! The renewal task: issues the first certificate, then a new one when the
//! current one reaches its renewal time (`tls.acme_renew_days` before expiry),
//! by the server's clock, without a restart. A failed attempt is retried with a
//! growing pause; SIGHUP (or [`Certificates::nudge_renewal`]) makes it look again.

use std::sync::Arc;
use std::time::Duration;

use super::Acme;

/// The longest the task sleeps before looking at the clock again.
const LONGEST_SLEEP: Duration = Duration::from_hours(1);

/// Pause after the `failures`-th failed attempt in a row: 1 minute, doubling, at
/// most 6 hours.
fn retry_after(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

/// Runs until the task is stopped.
pub async fn run(acme: Arc<Acme>) {
    let mut failures = 0u32;
    loop {
        if acme.due() {
            match acme.issue().await {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures += 1;
                    let retry = retry_after(failures);
                    tracing::error!(error = %format!("{error:#}"), retry_in_seconds = retry.as_secs(), "ACME certificate request failed");
                }
            }
        }
        let wait = if failures > 0 {
            retry_after(failures)
        } else if acme.due() {
            tracing::warn!("the new ACME certificate is already due for renewal: is the server's clock right?");
            LONGEST_SLEEP
        } else {
            let seconds = acme.due_at().saturating_sub(acme.clock.now());
            Duration::from_secs(u64::try_from(seconds).unwrap_or(0)).min(LONGEST_SLEEP)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = acme.certificates.renewal_nudged() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_six_hours() {
        assert_eq!(retry_after(1), Duration::from_mins(1));
        assert_eq!(retry_after(2), Duration::from_mins(2));
        assert_eq!(retry_after(30), Duration::from_hours(6));
    }
}
