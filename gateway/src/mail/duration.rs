//! Durations written for people: "24 hours", "7 days", "15 minutes".

use std::fmt;

/// A number of seconds, displayed in the largest whole unit a person reads
/// easily: days from two days up, else hours, else minutes, else seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForPeople(pub i64);

impl fmt::Display for ForPeople {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.max(0);
        let (count, unit) = if secs >= 2 * 86_400 && secs % 86_400 == 0 {
            (secs / 86_400, "day")
        } else if secs >= 3600 && secs % 3600 == 0 {
            (secs / 3600, "hour")
        } else if secs >= 60 && secs % 60 == 0 {
            (secs / 60, "minute")
        } else {
            (secs, "second")
        };
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{count} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::ForPeople;

    #[test]
    fn whole_units_people_read() {
        let said = |secs| ForPeople(secs).to_string();
        assert_eq!(said(86_400), "24 hours");
        assert_eq!(said(7 * 86_400), "7 days");
        assert_eq!(said(2 * 86_400), "2 days");
        assert_eq!(said(36 * 3600), "36 hours");
        assert_eq!(said(3600), "1 hour");
        assert_eq!(said(90 * 60), "90 minutes");
        assert_eq!(said(60), "1 minute");
        assert_eq!(said(61), "61 seconds");
        assert_eq!(said(1), "1 second");
        assert_eq!(said(-5), "0 seconds");
    }
}
