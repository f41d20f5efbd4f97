//! Message attributes as a response writes them: a FLAGS list and an
//! INTERNALDATE (RFC 3501 §9).

use store::mailbox::Flags;

/// `\Seen \Deleted ...` for a FLAGS list.
pub(super) fn flag_list(flags: Flags) -> String {
    let mut names = Vec::new();
    for (bit, name) in [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if flags.has(bit) {
            names.push(name);
        }
    }
    format!("({})", names.join(" "))
}

/// INTERNALDATE: `17-Jul-1996 02:44:25 +0000` (RFC 3501 §9 date-time).
pub(super) fn internal_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = store::clock::civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{day:02}-{}-{year:04} {:02}:{:02}:{:02} +0000",
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_800_000_000), "15-Jan-2027 08:00:00 +0000");
    }

    #[test]
    fn flag_lists_name_the_system_flags_in_order() {
        assert_eq!(flag_list(Flags(0)), "()");
        assert_eq!(flag_list(Flags(Flags::DELETED | Flags::SEEN)), "(\\Seen \\Deleted)");
        let all = [
            Flags::SEEN,
            Flags::ANSWERED,
            Flags::FLAGGED,
            Flags::DELETED,
            Flags::DRAFT,
        ];
        let bits = all.iter().fold(0, |acc, f| acc | f);
        assert_eq!(
            flag_list(Flags(bits)),
            "(\\Seen \\Answered \\Flagged \\Deleted \\Draft)"
        );
    }
}
