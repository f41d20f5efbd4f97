//! Making untrusted message content safe to show or download: HTML bodies are
//! sanitised (off the async workers, within size, depth and time limits),
//! attachment names become RFC 6266 `Content-Disposition` values and risky
//! content types are downgraded to `application/octet-stream`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::Semaphore;

/// Largest HTML body we sanitise for display.
pub const MAX_HTML_BYTES: usize = 2 * 1024 * 1024;
/// Deepest element nesting we sanitise: the sanitiser's cost grows with the
/// square of the depth, and no real mail nests anywhere near this.
pub const MAX_HTML_DEPTH: usize = 256;
/// A sanitising run that takes longer than this is not waited for.
const SANITIZE_TIME: Duration = Duration::from_secs(10);
/// Sanitising runs at once, process-wide (each holds a blocking thread).
static SANITIZERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// An HTML body made ready for the page.
#[derive(Debug, PartialEq, Eq)]
pub enum SafeHtml {
    /// Sanitised HTML (possibly empty).
    Clean(String),
    /// Too large, too deep or too slow to sanitise: the page says so instead.
    TooComplex,
}

/// Sanitises `html` on a blocking thread, one of at most two at a time, after
/// refusing bodies over [`MAX_HTML_BYTES`] or nested deeper than
/// [`MAX_HTML_DEPTH`]; gives up waiting after ten seconds.
pub async fn sanitize_html_bounded(html: String) -> SafeHtml {
    if html.len() > MAX_HTML_BYTES || html_depth(&html) > MAX_HTML_DEPTH {
        return SafeHtml::TooComplex;
    }
    let Ok(permit) = SANITIZERS.acquire().await else {
        return SafeHtml::TooComplex;
    };
    // The permit goes with the work: a run not waited for still counts.
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        sanitize_html(&html)
    });
    match tokio::time::timeout(SANITIZE_TIME, work).await {
        Ok(Ok(clean)) => SafeHtml::Clean(clean),
        Ok(Err(error)) => {
            tracing::warn!(%error, "sanitising an HTML body failed");
            SafeHtml::TooComplex
        }
        Err(_) => {
            tracing::warn!("sanitising an HTML body took too long; not shown");
            SafeHtml::TooComplex
        }
    }
}

/// Elements that never hold children, or whose end tag may be left out (a
/// second one closes the first): neither deepens the tree when repeated.
const FLAT: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "p", "li",
    "dt", "dd", "td", "th", "tr", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "rb", "rt", "rp",
];

/// An upper estimate of how deep `html`'s elements nest, in one linear pass:
/// each start tag opens a level and each end tag closes one.
pub fn html_depth(html: &str) -> usize {
    let bytes = html.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(offset) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b == b'<')) {
        at += offset + 1;
        let rest = bytes.get(at..).unwrap_or_default();
        if rest.starts_with(b"!--") {
            let end = rest.windows(3).position(|w| w == b"-->").map_or(rest.len(), |e| e + 3);
            at += end;
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_start = usize::from(closing);
        let name_len = rest
            .get(name_start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || rest.get(name_start).is_some_and(|b| !b.is_ascii_alphabetic()) {
            continue;
        }
        let name = html
            .get(at + name_start..at + name_start + name_len)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        let self_closing = end > 0 && rest.get(end - 1) == Some(&b'/');
        at += end;
        if FLAT.contains(&name.as_str()) || self_closing {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// Sanitises an HTML mail body for display inside our page: no scripts, styles,
/// event handlers, forms, frames, images or non-web links; links open with
/// `rel="noopener noreferrer"`.
pub fn sanitize_html(html: &str) -> String {
    let mut builder = ammonia::Builder::default();
    builder
        .rm_tags(["img"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"));
    builder.clean(html).to_string()
}

/// A size people read: `812 bytes`, `14 KB`, `3.2 MB`, `1.1 GB`.
pub fn human_size(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = KB * 1024;
    const GB: u64 = MB * 1024;
    #[allow(clippy::cast_precision_loss)] // a display approximation
    let scaled = |unit: u64| bytes as f64 / unit as f64;
    match bytes {
        0..KB => format!("{bytes} bytes"),
        KB..MB => format!("{:.0} KB", scaled(KB).max(1.0)),
        MB..GB => format!("{:.1} MB", scaled(MB)),
        _ => format!("{:.1} GB", scaled(GB)),
    }
}

/// RFC 5987 `attr-char`s are kept; everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<encoded>`
/// (RFC 6266 section 4.3): old clients use the fallback, others the exact name.
pub fn content_disposition(name: &str) -> String {
    // Path separators never belong in a saved file's name.
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let name = if name.is_empty() { "attachment".to_owned() } else { name };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut out = format!("attachment; filename=\"{fallback}\"");
    let _ = write!(out, "; filename*=UTF-8''{}", utf8_percent_encode(&name, ATTR_CHAR));
    out
}

/// The `Content-Type` to send an attachment with: its own if it is a plain,
/// well-formed type browsers won't execute, else `application/octet-stream`.
pub fn download_content_type(declared: &str) -> String {
    let essence = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let well_formed = essence.split_once('/').is_some_and(|(kind, sub)| {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(kind) && token(sub)
    });
    let safe = well_formed
        && (matches!(
            essence.as_str(),
            "application/pdf"
                | "application/zip"
                | "application/msword"
                | "application/vnd.ms-excel"
                | "application/vnd.ms-powerpoint"
                | "application/rtf"
                | "application/dicom"
                | "text/plain"
                | "text/csv"
                | "image/png"
                | "image/jpeg"
                | "image/gif"
                | "image/webp"
                | "image/tiff"
                | "image/bmp"
                | "image/heic"
        ) || essence.starts_with("application/vnd.openxmlformats-officedocument.")
            || essence.starts_with("application/vnd.oasis.opendocument.")
            || essence.starts_with("audio/")
            || essence.starts_with("video/"));
    if safe {
        essence
    } else {
        "application/octet-stream".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitiser_drops_active_content() {
        let dirty = r#"<html><head><style>body{display:none}</style><script>alert(1)</script></head>
            <body><p onclick="x()">Hi <b>there</b></p><img src="https://tracker.example/p.gif" onerror="alert(2)">
            <a href="javascript:alert(3)">click</a><a href="https://example.com/">ok</a>
            <iframe src="https://evil.example"></iframe><form action="https://evil.example"><input name=x></form></body></html>"#;
        let clean = sanitize_html(dirty);
        for banned in [
            "<script",
            "alert(1)",
            "onclick",
            "onerror",
            "javascript:",
            "<img",
            "<style",
            "display:none",
            "<iframe",
            "<form",
            "<input",
        ] {
            assert!(!clean.contains(banned), "{banned} survived in {clean}");
        }
        assert!(clean.contains("<b>there</b>"));
        assert!(clean.contains(r#"href="https://example.com/""#));
        assert!(clean.contains("noopener noreferrer"));
    }

    #[test]
    fn depth_is_estimated_in_one_pass() {
        assert_eq!(html_depth("<p>a</p><p>b"), 0);
        assert_eq!(html_depth("<div><div><b>x</b></div></div><div></div>"), 3);
        assert_eq!(html_depth("<ul><li>a<li>b</ul><br/><img src=x><!-- <div><div> -->"), 1);
        assert_eq!(html_depth("a < b and 1<2 </>"), 0);
        let deep = "<div>".repeat(60_000);
        assert_eq!(html_depth(&deep), 60_000);
    }

    /// The 60,000-deep body (660 KB) that stalled every listener for 27 s is
    /// refused at once; an ordinary body is sanitised as before.
    #[tokio::test]
    async fn deep_or_huge_html_is_not_sanitised() {
        let started = std::time::Instant::now();
        let deep = format!(
            "<html><body>{}x{}</body></html>",
            "<div>".repeat(60_000),
            "</div>".repeat(60_000)
        );
        assert_eq!(sanitize_html_bounded(deep).await, SafeHtml::TooComplex);
        let huge = "<p>hello</p>".repeat(MAX_HTML_BYTES / 12 + 1);
        assert_eq!(sanitize_html_bounded(huge).await, SafeHtml::TooComplex);
        assert!(started.elapsed() < Duration::from_secs(2));
        let fine = sanitize_html_bounded("<p onclick=\"x()\">Hi <b>there</b></p>".into()).await;
        assert_eq!(fine, SafeHtml::Clean("<p>Hi <b>there</b></p>".into()));
        let nested = format!("{}x{}", "<div>".repeat(200), "</div>".repeat(200));
        assert!(matches!(sanitize_html_bounded(nested).await, SafeHtml::Clean(c) if c.contains('x')));
    }

    #[test]
    fn disposition_encodes_non_ascii_and_quotes() {
        let value = content_disposition("Résumé \"final\" 100%.pdf");
        assert_eq!(
            value,
            "attachment; filename=\"R_sum_ _final_ 100_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%20100%25.pdf"
        );
        assert!(axum::http::HeaderValue::from_str(&value).is_ok());
        let value = content_disposition("../../etc/passwd\r\nX-Evil: 1");
        assert!(!value.contains('/') && !value.contains('\r') && !value.contains('\n'));
        assert!(content_disposition("  ").contains("filename=\"attachment\""));
    }

    #[test]
    fn risky_types_download_as_octet_stream() {
        assert_eq!(download_content_type("application/pdf; name=x.pdf"), "application/pdf");
        assert_eq!(download_content_type("IMAGE/PNG"), "image/png");
        for risky in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/javascript",
            "application/x-msdownload",
            "text/plain\r\nX: y",
            "",
        ] {
            assert_eq!(download_content_type(risky), "application/octet-stream", "{risky:?}");
        }
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1024), "1 KB");
        assert_eq!(human_size(150 * 1024), "150 KB");
        assert_eq!(human_size(3 * 1024 * 1024 + 300_000), "3.3 MB");
    }
}
