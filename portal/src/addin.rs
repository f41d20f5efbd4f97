//! The Outlook add-in's files (`addin-manifest/`), built into the binary and
//! served under `/addin/`: the manifest an admin deploys and the pages and
//! scripts Outlook loads. Every `https://localhost:8443` placeholder in them is
//! replaced by the configured `public_url`, so the manifest points at this portal.
//!
//! These pages run Office.js from Microsoft's CDN inside Outlook's frames, so
//! they get their own Content-Security-Policy; the rest of the portal keeps its
//! strict one (no script at all).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::routes::{Group, Routes};
use crate::{AppState, Error};

/// The add-in's manifest and files (read only).
pub fn routes() -> Routes {
    Routes::new().group(
        Group::public()
            .get("/addin/manifest.xml", manifest)
            .get("/addin/{file}", file),
    )
}

/// The host the files in `addin-manifest/` are written for.
const PLACEHOLDER: &str = "https://localhost:8443";

/// Scripts from this portal and Office.js; framed by Outlook on the web, the new
/// Outlook and Outlook's desktop web views.
const ADDIN_CSP: &str = "default-src 'none'; script-src 'self' https://appsforoffice.microsoft.com; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
frame-ancestors 'self' https://*.office.com https://*.office365.com https://*.outlook.com \
https://outlook.live.com https://*.microsoft.com https://*.cloud.microsoft";

/// A file of the add-in: its name, content type and bytes.
struct File {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// Text with the placeholder URL to fill in.
    text: bool,
}

macro_rules! text {
    ($name:literal, $type:literal) => {
        File {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../addin-manifest/src/", $name)),
            text: true,
        }
    };
}

macro_rules! png {
    ($name:literal) => {
        File {
            name: $name,
            content_type: "image/png",
            bytes: include_bytes!(concat!("../../addin-manifest/src/", $name)),
            text: false,
        }
    };
}

const FILES: &[File] = &[
    text!("commands.html", "text/html; charset=utf-8"),
    text!("commands.js", "text/javascript; charset=utf-8"),
    text!("taskpane.html", "text/html; charset=utf-8"),
    text!("taskpane.js", "text/javascript; charset=utf-8"),
    text!("taskpane.css", "text/css; charset=utf-8"),
    png!("icon-16.png"),
    png!("icon-32.png"),
    png!("icon-64.png"),
    png!("icon-80.png"),
    png!("icon-128.png"),
];

const MANIFEST: &str = include_str!("../../addin-manifest/manifest.xml");

/// `public_url` without a trailing slash, escaped for XML, HTML and a JS string.
fn base_url(public_url: &str) -> String {
    public_url
        .trim_end_matches('/')
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '<' | '>' | '\\' | '&') && !c.is_control())
        .collect()
}

fn fill(text: &str, public_url: &str) -> String {
    text.replace(PLACEHOLDER, &base_url(public_url))
}

/// `GET /addin/manifest.xml`: the manifest, pointing at this portal.
pub async fn manifest(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/xml; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"sealpost-outlook-manifest.xml\"",
            ),
        ],
        fill(MANIFEST, &state.config.public_url),
    )
        .into_response()
}

/// `GET /addin/{file}`: a page, script, stylesheet or icon of the add-in.
pub async fn file(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, Error> {
    let file = FILES.iter().find(|f| f.name == name).ok_or(Error::NotFound)?;
    let body = if file.text {
        fill(&String::from_utf8_lossy(file.bytes), &state.config.public_url).into_bytes()
    } else {
        file.bytes.to_vec()
    };
    let mut response = ([(header::CONTENT_TYPE, file.content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ADDIN_CSP));
    // Outlook caches add-in files itself; keep ours short so updates arrive.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_replaced_and_cleaned() {
        assert_eq!(
            fill(
                "<a href=\"https://localhost:8443/addin/x\">",
                "https://secure.example.com/"
            ),
            "<a href=\"https://secure.example.com/addin/x\">"
        );
        assert_eq!(base_url("https://a.example/\"><script>"), "https://a.example/script");
    }

    #[test]
    fn every_file_is_present_and_text_files_use_the_placeholder() {
        for file in FILES {
            assert!(!file.bytes.is_empty(), "{} is empty", file.name);
        }
        assert!(MANIFEST.contains(PLACEHOLDER));
        let commands = FILES.iter().find(|f| f.name == "commands.js").unwrap();
        assert!(String::from_utf8_lossy(commands.bytes).contains(PLACEHOLDER));
    }
}
