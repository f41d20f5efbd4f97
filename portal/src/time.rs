//! Times as the reader reads them: in the time zone of their profile if they
//! chose one, else their browser's (`/static/tz.js` puts it in a cookie), else
//! the server's. A zone from a profile or a cookie counts only if the tz
//! database knows it; every time shown names its zone, so none is ever a bare
//! UTC time the reader has to convert.

use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The cookie `/static/tz.js` sets to the browser's IANA time zone.
pub const COOKIE: &str = "sealpost_tz";

/// Longer names are not zones (the longest in the database has 32 bytes).
const MAX_NAME: usize = 64;

/// Where the zone a page uses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Profile,
    Browser,
    Server,
}

/// The reader's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    pub tz: Tz,
    pub source: Source,
}

/// A zone name from the tz database (`Europe/Paris`), or `None`.
pub fn parse(name: &str) -> Option<Tz> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    Tz::from_str(name).ok()
}

/// The reader's zone: the profile's, else the browser's, else the server's.
pub fn choose(profile: Option<&str>, browser: Option<&str>) -> Zone {
    if let Some(tz) = profile.and_then(parse) {
        return Zone {
            tz,
            source: Source::Profile,
        };
    }
    if let Some(tz) = browser.and_then(parse) {
        return Zone {
            tz,
            source: Source::Browser,
        };
    }
    Zone {
        tz: server_zone(),
        source: Source::Server,
    }
}

/// The server's zone, found once: `TZ`, else the `/etc/localtime` link, else
/// `/etc/timezone`, else UTC.
pub fn server_zone() -> Tz {
    static ZONE: OnceLock<Tz> = OnceLock::new();
    *ZONE.get_or_init(|| {
        let link = std::fs::read_link("/etc/localtime").ok();
        server_zone_from(
            std::env::var("TZ").ok().as_deref(),
            link.as_ref().and_then(|p| p.to_str()),
            std::fs::read_to_string("/etc/timezone").ok().as_deref(),
        )
    })
}

/// The server's zone from its sources (testable): `TZ` (`:Area/City` or
/// `Area/City`), the target of `/etc/localtime` (`…/zoneinfo/Area/City`), the
/// content of `/etc/timezone`.
pub fn server_zone_from(tz_env: Option<&str>, localtime: Option<&str>, etc_timezone: Option<&str>) -> Tz {
    tz_env
        .and_then(|v| parse(v.trim_start_matches(':')))
        .or_else(|| {
            localtime
                .and_then(|target| target.split_once("zoneinfo/"))
                .and_then(|(_, name)| parse(name))
        })
        .or_else(|| etc_timezone.and_then(parse))
        .unwrap_or(Tz::UTC)
}

/// A time as a page shows it and as a `<time datetime>` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// For people: `Wed 2 Dec 2026, 09:05 EST`.
    pub text: String,
    /// For machines: RFC 3339 with the zone's offset.
    pub machine: String,
}

impl Zone {
    /// `seconds` (Unix time) in this zone.
    pub fn show(&self, seconds: i64) -> Shown {
        let utc = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap_or_default();
        let local = utc.with_timezone(&self.tz);
        Shown {
            text: local.format("%a %-d %b %Y, %H:%M %Z").to_string(),
            machine: local.to_rfc3339(),
        }
    }

    /// The zone's name for people: `America/New_York`.
    pub fn name(&self) -> &'static str {
        self.tz.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_wins_then_the_browser_then_the_server() {
        let both = choose(Some("Asia/Tokyo"), Some("Europe/Paris"));
        assert_eq!((both.tz, both.source), (Tz::Asia__Tokyo, Source::Profile));
        let browser = choose(None, Some("Europe/Paris"));
        assert_eq!((browser.tz, browser.source), (Tz::Europe__Paris, Source::Browser));
        // A profile or cookie the tz database does not know counts as none.
        let bad_profile = choose(Some("Mars/Olympus"), Some("Europe/Paris"));
        assert_eq!(bad_profile.source, Source::Browser);
        for cookie in ["", "Not/A_Zone", "../../etc/passwd", "<script>", &"A".repeat(5000)] {
            let zone = choose(None, Some(cookie));
            assert_eq!((zone.tz, zone.source), (server_zone(), Source::Server), "{cookie:?}");
        }
    }

    #[test]
    fn the_server_zone_comes_from_tz_the_localtime_link_or_etc_timezone() {
        assert_eq!(
            server_zone_from(Some(":America/Chicago"), None, None),
            Tz::America__Chicago
        );
        assert_eq!(
            server_zone_from(Some("bogus"), Some("/usr/share/zoneinfo/Europe/Berlin"), None),
            Tz::Europe__Berlin
        );
        assert_eq!(
            server_zone_from(None, Some("/etc/elsewhere"), Some("Australia/Sydney\n")),
            Tz::Australia__Sydney
        );
        assert_eq!(server_zone_from(None, None, None), Tz::UTC);
    }

    #[test]
    fn times_name_their_zone_and_follow_daylight_saving() {
        // 2026-12-02 14:05 UTC and 2026-07-01 14:05 UTC.
        let (winter, summer) = (1_796_220_300, 1_782_914_700);
        let ny = choose(Some("America/New_York"), None);
        assert_eq!(ny.show(winter).text, "Wed 2 Dec 2026, 09:05 EST");
        assert_eq!(ny.show(winter).machine, "2026-12-02T09:05:00-05:00");
        assert_eq!(ny.show(summer).text, "Wed 1 Jul 2026, 10:05 EDT");
        let utc = choose(Some("UTC"), None);
        assert_eq!(utc.show(winter).text, "Wed 2 Dec 2026, 14:05 UTC");
    }
}
