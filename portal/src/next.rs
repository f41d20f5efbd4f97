//! Where a person goes next: the guard on `next` redirects (only paths on this
//! site) and the sign-in URL that leads on to one. A leaf: the session, the
//! error pages and the sign-in pages all use it.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// `next` if it is a path on this site, else `None`. Refuses absolute URLs,
/// scheme-relative `//host` and `/\host` (browsers treat `\` as `/`), and
/// anything with control characters, so sign-in can't redirect elsewhere.
pub fn safe_next(next: &str) -> Option<&str> {
    let mut chars = next.chars();
    let ok = chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 2000;
    ok.then_some(next)
}

/// Characters escaped when a path is put in the `next` query parameter.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'`');

/// The sign-in page that leads on to `next`.
pub fn signin_url(next: &str) -> String {
    match safe_next(next) {
        Some(next) if next != "/" => format!("/signin?next={}", utf8_percent_encode(next, QUERY_VALUE)),
        _ => "/signin".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_guard_refuses_other_sites() {
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "evil.com",
            "",
            "/\t/evil.com",
            "/m/x\\y",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        for good in ["/", "/inbox", "/m/0123456789abcdef0123456789abcdef", "/m/1?x=//y"] {
            assert_eq!(safe_next(good), Some(good));
        }
    }

    #[test]
    fn signin_url_keeps_next() {
        assert_eq!(signin_url("/m/abc"), "/signin?next=/m/abc");
        assert_eq!(
            signin_url("/m/abc?invite=a&b=c"),
            "/signin?next=/m/abc%3Finvite%3Da%26b%3Dc"
        );
        assert_eq!(signin_url("//evil.com"), "/signin");
    }
}
