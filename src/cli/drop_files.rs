//! What `sealpost drop` and its watched folder share: the command's
//! arguments, failures with their exit codes, the screen (progress bars or
//! plain lines), the files as read from disk, and uploading them.

use std::path::{Path, PathBuf};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::drop_api::{Api, DropError};

/// Exit codes, for scripts (docs/secure-drop.md).
pub const EXIT_OK: u8 = 0;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;
pub const EXIT_UNREACHABLE: u8 = 5;
pub const EXIT_LOCAL: u8 = 6;

#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 sent; 2 usage or credentials missing; 3 email or app password refused; \
                        4 refused by the portal (file type, size, recipient); 5 portal unreachable; \
                        6 a local file could not be read.\n\
                        Credentials: SEALPOST_EMAIL and SEALPOST_APP_PASSWORD, or --credentials FILE \
                        (mode 0600) with `email = \"…\"` and `app_password = \"…\"`."
)]
pub struct DropArgs {
    /// Files to send (one drop carries them all).
    #[arg(required_unless_present = "watch", conflicts_with = "watch")]
    pub files: Vec<PathBuf>,
    /// The recipient's email address (one).
    #[arg(long)]
    pub to: String,
    /// How you know a new recipient: `patient`, `doctor_in_practice`, `staff_in_practice`,
    /// `doctor_other_practice` or `staff_other_practice` (needed the first time only).
    #[arg(long)]
    pub role: Option<String>,
    /// A note sealed with the files (only the recipient reads it, after signing in).
    #[arg(long, default_value = "")]
    pub note: String,
    /// The portal's address, e.g. `https://secure.example.com`.
    #[arg(long, env = "SEALPOST_DROP_PORTAL")]
    pub portal: Option<String>,
    /// A TOML file (mode 0600) with `email` and `app_password`.
    #[arg(long, env = "SEALPOST_DROP_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// An extra certificate (PEM) to trust for the portal, e.g. its self-signed one.
    #[arg(long, env = "SEALPOST_DROP_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Watch this folder: send each file once it stopped growing, then move it to
    /// DIR/sent/ (or DIR/failed/ with a reason file).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// With --watch: seconds a file's size and time must stay the same before it is sent.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub settle: u64,
    /// How long to keep retrying while the portal can't be reached.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub retry_for: u64,
    /// Bytes per upload request (tuning; default 4 MiB).
    #[arg(long, hide = true, default_value_t = 4 * 1024 * 1024)]
    pub chunk_bytes: usize,
    /// With --watch: stop after this many files were handled (for tests and scripts).
    #[arg(long, hide = true)]
    pub max_files: Option<usize>,
}

/// A failure with its exit code and words for the person.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<DropError> for Failure {
    fn from(error: DropError) -> Self {
        let code = match &error {
            DropError::Auth(_) => EXIT_AUTH,
            DropError::Refused(_) | DropError::UploadGone(_) => EXIT_REFUSED,
            DropError::Unreachable(_) => EXIT_UNREACHABLE,
            DropError::Local(_) => EXIT_LOCAL,
        };
        Self {
            code,
            message: error.to_string(),
        }
    }
}

/// Where a message goes for the person: bars when stderr is a terminal,
/// plain lines otherwise.
pub struct Screen {
    pub bars: MultiProgress,
}

impl Screen {
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::new(),
        }
    }

    pub fn say(&self, text: &str) {
        if self.bars.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }

    pub fn bar(&self, length: u64, name: &str) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(length));
        bar.set_style(
            ProgressStyle::with_template("{prefix:20!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        bar
    }
}

/// A local file to send: path, name, length.
pub struct LocalFile {
    pub path: PathBuf,
    pub name: String,
    pub length: u64,
}

/// Checks a file exists and is a regular file; its name and length.
pub fn local_file(path: &Path) -> Result<LocalFile, Failure> {
    let metadata = std::fs::metadata(path).map_err(|e| Failure {
        code: EXIT_LOCAL,
        message: format!("Can't read {}: {e}", path.display()),
    })?;
    if !metadata.is_file() {
        return Err(Failure {
            code: EXIT_LOCAL,
            message: format!("{} is not a file.", path.display()),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(LocalFile {
        path: path.to_owned(),
        name,
        length: metadata.len(),
    })
}

/// Uploads `files` (each resumed after a cut) and returns their locations;
/// `known` holds locations from an earlier run to go on with.
pub async fn upload_all(
    api: &Api,
    screen: &Screen,
    files: &[LocalFile],
    known: &mut dyn FnMut(usize, &str),
    resume_from: &[Option<String>],
) -> Result<Vec<String>, DropError> {
    let total: u64 = files.iter().map(|f| f.length).sum();
    let overall = (files.len() > 1).then(|| {
        let bar = screen.bar(total, "all files");
        bar.set_message(format!("{} files", files.len()));
        bar
    });
    let mut done_before = 0;
    let mut locations = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        let bar = screen.bar(file.length, &file.name);
        let on_retry = |why: &str| screen.say(&format!("{}: {why}", file.name));
        let mut location = resume_from.get(index).cloned().flatten();
        let mut offset = 0;
        if let Some(previous) = &location {
            match api.offset(previous, &on_retry).await {
                Ok(at) => {
                    offset = at;
                    screen.say(&format!("{}: going on from byte {at}", file.name));
                }
                Err(DropError::UploadGone(_)) => {
                    screen.say(&format!("{}: the earlier upload is gone; starting again", file.name));
                    location = None;
                }
                Err(other) => return Err(other),
            }
        }
        let location = match location {
            Some(location) => location,
            None => {
                let made = api
                    .create(&file.name, file.length, &on_retry)
                    .await
                    .map_err(|e| match e {
                        DropError::Refused(why) => DropError::Refused(format!("{}: {why}", file.name)),
                        other => other,
                    })?;
                known(index, &made);
                made
            }
        };
        bar.set_position(offset);
        let progress = |at: u64| {
            bar.set_position(at);
            if let Some(all) = &overall {
                all.set_position(done_before + at);
            }
        };
        api.upload(&file.path, &location, file.length, offset, &progress, &on_retry)
            .await?;
        bar.finish_with_message("sealed");
        done_before += file.length;
        locations.push(location);
    }
    if let Some(all) = overall {
        all.finish_with_message("uploaded");
    }
    Ok(locations)
}
