//! Making untrusted message content safe to show or download: HTML bodies are
//! sanitised, attachment names become RFC 6266 `Content-Disposition` values and
//! risky content types are downgraded to `application/octet-stream`.

use std::collections::HashSet;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

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
