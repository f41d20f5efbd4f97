//! A message's self-destruct countdown in words ("Deletes in 12 days"), as
//! the message page and the lists show it.

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// How long until `expires_at`, seen at `now` (Unix seconds), in words.
pub(super) fn deletes_in(now: i64, expires_at: i64) -> String {
    let left = expires_at - now;
    if left <= 0 {
        "Deleted".to_owned()
    } else if left < HOUR {
        "Deletes in less than an hour".to_owned()
    } else if left < DAY {
        let hours = left / HOUR;
        format!("Deletes in {hours} hour{}", if hours == 1 { "" } else { "s" })
    } else {
        // Whole days left, rounded down: "12 days" until 12 days are no longer left.
        let days = left / DAY;
        format!("Deletes in {days} day{}", if days == 1 { "" } else { "s" })
    }
}

/// Whether the countdown should stand out (a day or less left).
pub(super) fn soon(now: i64, expires_at: i64) -> bool {
    expires_at - now <= DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_in_days_then_hours() {
        assert_eq!(deletes_in(0, 30 * DAY), "Deletes in 30 days");
        assert_eq!(deletes_in(0, 12 * DAY + 5), "Deletes in 12 days");
        assert_eq!(deletes_in(0, DAY), "Deletes in 1 day");
        assert_eq!(deletes_in(0, DAY - 1), "Deletes in 23 hours");
        assert_eq!(deletes_in(0, HOUR), "Deletes in 1 hour");
        assert_eq!(deletes_in(0, 59), "Deletes in less than an hour");
        assert_eq!(deletes_in(10, 10), "Deleted");
        assert!(soon(0, DAY) && !soon(0, DAY + 1));
    }
}
