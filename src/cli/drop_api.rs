//! The portal's Secure Drop API as `sealpost drop` speaks it: tus 1.0 uploads
//! at `/api/uploads` (create, `HEAD` for the offset, `PATCH` chunk by chunk)
//! and `POST /api/drops`, each request authenticated by `Authorization: Basic`
//! with the email and an app password. A dropped connection or a server that
//! is away is retried with growing pauses, and an upload goes on from the
//! offset the server says it has sealed (`HEAD`), never from the start.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// The protocol version spoken.
const TUS_VERSION: &str = "1.0.0";

/// Why the API failed, in words for the person at the PC; each kind has its
/// exit code (`sealpost drop --help` lists them).
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// The email or app password was refused (401), or sign-ins are throttled.
    #[error("{0}")]
    Auth(String),
    /// The server refused this file or drop (type, size, recipient, role).
    #[error("{0}")]
    Refused(String),
    /// The portal could not be reached (after retrying).
    #[error("{0}")]
    Unreachable(String),
    /// A drop's upload no longer exists on the server (already sent, or gone).
    #[error("{0}")]
    UploadGone(String),
    /// A local file could not be read.
    #[error("{0}")]
    Local(String),
}

/// What the server says when a drop is sent.
#[derive(Debug, Deserialize)]
pub struct Dropped {
    pub message: String,
    pub url: String,
}

/// A JSON problem (RFC 9457) from the API.
#[derive(Deserialize)]
struct ProblemJson {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
}

/// The portal's drop API for one account.
pub struct Api {
    http: reqwest::Client,
    base: String,
    email: String,
    password: String,
    /// How long a request keeps being retried while the portal is away.
    pub retry_for: Duration,
    /// Bytes sent per `PATCH`.
    pub chunk: usize,
}

/// The answer's text: a JSON problem's detail, or the plain text tus sends.
async fn reason(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if let Ok(problem) = serde_json::from_str::<ProblemJson>(&text) {
        if !problem.detail.is_empty() {
            return problem.detail;
        }
        if !problem.title.is_empty() {
            return problem.title;
        }
    }
    let text = text.trim();
    if text.is_empty() {
        format!("the portal answered {status}")
    } else {
        text.chars().take(500).collect()
    }
}

/// Whether an answer is worth trying again (the server busy or restarting).
fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::LOCKED
}

async fn refused(response: reqwest::Response) -> DropError {
    match response.status() {
        StatusCode::UNAUTHORIZED => DropError::Auth(
            "The portal refused the email address or app password (make an app password under Account → Mail apps)."
                .to_owned(),
        ),
        StatusCode::TOO_MANY_REQUESTS => DropError::Auth(reason(response).await),
        _ => DropError::Refused(reason(response).await),
    }
}

impl Api {
    /// An API client for the portal at `base` (`https://…`); `ca_pem` is an
    /// extra certificate to trust (a self-signed or private CA's).
    pub fn new(base: &str, email: &str, password: &str, ca_pem: Option<&[u8]>) -> Result<Self, DropError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(DropError::Local(format!(
                "The portal address must start with https:// (got {base}); app passwords never travel unencrypted."
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_mins(2))
            .user_agent(concat!("sealpost-drop/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| DropError::Local(format!("The CA certificate file is not PEM: {e}")))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| DropError::Local(format!("Could not set up HTTPS: {e}")))?;
        Ok(Self {
            http,
            base,
            email: email.to_owned(),
            password: password.to_owned(),
            retry_for: Duration::from_mins(5),
            chunk: 4 * 1024 * 1024,
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth(&self.email, Some(&self.password))
            .header("Tus-Resumable", TUS_VERSION)
    }

    /// Sends what `make` builds, retrying transport failures and transient
    /// answers with growing pauses until `retry_for` has passed; `on_retry`
    /// hears about each pause. Any other answer is returned as it is.
    async fn send(
        &self,
        make: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<reqwest::Response, DropError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            let why = match make().send().await {
                Ok(response) if !transient(response.status()) => return Ok(response),
                Ok(response) => format!("the portal answered {}", response.status()),
                Err(error) => describe(&error),
            };
            if started.elapsed() + pause > self.retry_for {
                return Err(DropError::Unreachable(format!(
                    "Could not reach the portal at {} ({why}); gave up after {} s.",
                    self.base,
                    self.retry_for.as_secs()
                )));
            }
            on_retry(&format!("{why}; trying again in {} s", pause.as_secs_f32()));
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Checks the credentials with a harmless request (a `HEAD` of an upload
    /// that can't exist: 404 when signed in, 401 when not).
    pub async fn check_credentials(&self) -> Result<(), DropError> {
        let response = self
            .send(&|| self.request(reqwest::Method::HEAD, "/api/uploads/0"), &|_| {})
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::OK => Ok(()),
            _ => Err(refused(response).await),
        }
    }

    /// Starts an upload of `length` bytes named `name`; returns its location.
    pub async fn create(&self, name: &str, length: u64, on_retry: &(dyn Fn(&str) + Sync)) -> Result<String, DropError> {
        let metadata = format!(
            "filename {}",
            base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
        );
        let response = self
            .send(
                &|| {
                    self.request(reqwest::Method::POST, "/api/uploads")
                        .header("Upload-Length", length.to_string())
                        .header("Upload-Metadata", metadata.as_str())
                },
                on_retry,
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(refused(response).await);
        }
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|l| l.starts_with("/api/uploads/"))
            .map(str::to_owned)
            .ok_or_else(|| DropError::Refused("The portal did not say where the upload goes.".to_owned()))
    }

    /// How many bytes of the upload at `location` the server has sealed.
    pub async fn offset(&self, location: &str, on_retry: &(dyn Fn(&str) + Sync)) -> Result<u64, DropError> {
        let response = self
            .send(&|| self.request(reqwest::Method::HEAD, location), on_retry)
            .await?;
        match response.status() {
            StatusCode::OK => upload_offset(&response),
            StatusCode::NOT_FOUND => Err(DropError::UploadGone(
                "The upload is no longer on the portal.".to_owned(),
            )),
            _ => Err(refused(response).await),
        }
    }

    /// Uploads `path` (of `length` bytes) to `location` from `offset` on,
    /// chunk by chunk; `progress` hears each new offset. A cut connection or
    /// a portal that restarts is retried, and the upload goes on from where
    /// the server says it stands.
    pub async fn upload(
        &self,
        path: &Path,
        location: &str,
        length: u64,
        mut offset: u64,
        progress: &(dyn Fn(u64) + Sync),
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<(), DropError> {
        let local = |e: std::io::Error| DropError::Local(format!("Could not read {}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let mut buffer = vec![0u8; self.chunk];
        let started = tokio::time::Instant::now();
        while offset < length {
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(local)?;
            let want = usize::try_from((length - offset).min(self.chunk as u64)).unwrap_or(self.chunk);
            file.read_exact(&mut buffer[..want])
                .await
                .map_err(|e| DropError::Local(format!("{} changed while it was being sent: {e}", path.display())))?;
            let body = bytes::Bytes::copy_from_slice(&buffer[..want]);
            let sent = self
                .request(reqwest::Method::PATCH, location)
                .header("Upload-Offset", offset.to_string())
                .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
                .body(body)
                .send()
                .await;
            let why = match sent {
                Ok(response) if response.status() == StatusCode::NO_CONTENT => {
                    offset = upload_offset(&response)?;
                    progress(offset);
                    continue;
                }
                Ok(response) if response.status() == StatusCode::CONFLICT || transient(response.status()) => {
                    format!("the portal answered {}", response.status())
                }
                Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                    return Err(DropError::UploadGone(
                        "The upload is no longer on the portal.".to_owned(),
                    ));
                }
                Ok(response) => return Err(refused(response).await),
                Err(error) => describe(&error),
            };
            // Cut mid-way: ask where the upload stands and go on from there.
            if started.elapsed() > self.retry_for * 4 {
                return Err(DropError::Unreachable(format!("The upload kept failing ({why}).")));
            }
            on_retry(&format!("{why}; asking the portal how far the upload got"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            offset = self.offset(location, on_retry).await?;
            on_retry(&format!(
                "the portal has sealed {offset} bytes: going on from byte {offset}"
            ));
            progress(offset);
        }
        Ok(())
    }

    /// Removes uploads a refused drop leaves behind (best effort: the portal
    /// sweeps abandoned uploads anyway).
    pub async fn discard(&self, locations: &[String]) {
        for location in locations {
            let _ = self.request(reqwest::Method::DELETE, location).send().await;
        }
    }

    /// Sends the finished uploads (their locations) to `to` as one drop.
    pub async fn drop_files(
        &self,
        to: &str,
        role: Option<&str>,
        note: &str,
        locations: &[String],
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<Dropped, DropError> {
        let ids: Vec<&str> = locations
            .iter()
            .map(|l| l.rsplit('/').next().unwrap_or_default())
            .collect();
        let body = serde_json::json!({ "to": to, "role": role, "note": note, "uploads": ids }).to_string();
        let response = self
            .send(
                &|| {
                    self.http
                        .post(self.url("/api/drops"))
                        .basic_auth(&self.email, Some(&self.password))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                on_retry,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => {
                let text = response.text().await.unwrap_or_default();
                serde_json::from_str::<Dropped>(&text)
                    .map_err(|e| DropError::Refused(format!("The portal's answer could not be read: {e}")))
            }
            StatusCode::NOT_FOUND => Err(DropError::UploadGone(reason(response).await)),
            _ => Err(refused(response).await),
        }
    }
}

fn upload_offset(response: &reqwest::Response) -> Result<u64, DropError> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| DropError::Refused("The portal did not say how far the upload got.".to_owned()))
}

/// A transport error in a few words (the chain's innermost cause helps most).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    if error.is_connect() {
        format!("could not connect: {text}")
    } else {
        text
    }
}
